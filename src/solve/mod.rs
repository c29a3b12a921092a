//! Stage 6: solvers — NNGP kernels of any theory ([`nngp`]), Gaussian-process inference
//! with them ([`gp`]), the linearised fluctuation system around the NNGP point
//! ([`fluctuation`]), the full saddle point at finite width ([`saddle_point`]) and the prior
//! one-loop covariance ([`one_loop`]; a recurrent network's, weights shared over time, in
//! [`recurrent_one_loop`]). The step from one layer or time to the next for a
//! pair of patterns ([`step_map`]) carries the analyses of deep and recurrent dynamics: order
//! and chaos ([`criticality`]) and pattern separation ([`separation`]). [`fit`] inverts the
//! NNGP map: the parameters whose statistics reproduce recorded ones, with their errors, and
//! the separability of stimulus classes they predict.

pub mod coordinates;
pub mod criticality;
pub mod fit;
pub mod fluctuation;
pub mod gp;
pub mod nngp;
pub mod one_loop;
pub mod predict;
pub mod readout;
pub mod recurrent_one_loop;
pub mod saddle_point;
pub mod separation;
pub mod step_map;
