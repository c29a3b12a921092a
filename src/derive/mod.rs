//! Stage 4: the saddle-point equations of a theory.
//!
//! At concrete values of the `int` parameters the action is unrolled ([`unroll`]) and
//! differentiated ([`grad`]) with respect to every conjugate entry (forward equations,
//! ∂S/∂C̃ = 0, solved for the field: C⁽ˡ⁾ = …) and every order-parameter entry (backward
//! and output equations, ∂S/∂C = 0, solved for the conjugate). The forward equations are
//! given in tilted form and at the NNGP point C̃ = 0, where the tilted measure is the
//! Gaussian itself; [`entrywise`] reduces them to one scalar formula per pattern pair
//! (pair reduction), whose Gaussian expectations the symbolic stage puts in closed form.

pub mod build;
pub mod closed_form;
pub mod coefficient;
pub mod entrywise;
pub mod equations;
pub mod grad;
pub mod hessian;
pub mod linearised;
pub mod report;
pub mod show;
pub mod unroll;

pub use equations::{Equations, FieldEquation, derive, derive_forward};

/// Why an equation could not be derived.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DeriveError {
    /// A construct the derivation does not handle (yet), said in words.
    #[error("{0}")]
    Unsupported(String),
    /// A parameter value that cannot be bound (see [`crate::check::bind`]).
    #[error(transparent)]
    Bind(#[from] crate::check::BindError),
}
