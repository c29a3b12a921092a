//! # saddle
//!
//! The statistical field theory of neural networks, from the action to the numbers.
//!
//! ```text
//! .action ──syntax──▶ AST ──check──▶ Theory (typed IR) ──symbolic/derive──▶ equations
//!                                                   └──numeric/solve──▶ kernels, GP predictions
//! ```

#![warn(missing_docs)]

pub mod syntax;
