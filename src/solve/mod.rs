//! Stage 6: solvers. Today: Gaussian-process inference with a (NNGP) kernel.

pub mod gp;
