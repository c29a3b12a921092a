//! Stage 6: solvers — NNGP kernels of any theory ([`nngp`]) and Gaussian-process inference
//! with them ([`gp`]).

pub mod gp;
pub mod nngp;
pub mod predict;
pub mod readout;
