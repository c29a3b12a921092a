//! # Finite-width kernels for any number of patterns
//!
//! The saddle point of an action at finite width N, computed the way it scales: per
//! population of units (one cumulant-generating term `n · ln E[exp(A) | h ~ N(m, K)]`,
//! read off the action by [`crate::simulate::network`]) rather than as one P-dimensional
//! quadrature over vech(P) unknowns ([`crate::solve::saddle_point`], P ≤ 3).
//!
//! * [`gaussian`] finds, in the expressions themselves, tilts that are quadratic forms
//!   (linear units) and integrands of degree ≤ 2, whose tilted measure is Gaussian;
//! * [`tilted`] is one population's tilted measure — exact where Gaussian, importance
//!   sampled with common random numbers otherwise — with the tilted averages (forward
//!   equations) and ∂ ln Z / ∂K, ∂ ln Z / ∂m (backward equations);
//! * [`map`] solves the forward–backward equations by damped sweeps from the NNGP point
//!   (THEORY.md §4.3), and the linearised system around it (§4.4) matrix-free, with Monte
//!   Carlo standard errors from independent replicas;
//! * [`posterior`] adds the prior one-loop mean shift m/N to the MAP: the posterior-mean
//!   kernels a trained network averages to;
//! * [`recurrent`] solves them, and the linearised system, for a recurrent theory, whose one
//!   population of units is shared over time (one tilted measure over the trajectory).

pub mod gaussian;
pub mod map;
pub mod posterior;
pub mod recurrent;
pub mod tilted;

pub use map::{
    MapPrediction, MapSettings, MapSolution, SaddleIteration, linear_kernels, map_kernels,
};

/// Why finite-width kernels could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum FiniteWidthError {
    /// The NNGP start.
    #[error(transparent)]
    Nngp(#[from] crate::solve::nngp::NngpError),
    /// The populations could not be read off the action.
    #[error(transparent)]
    Network(#[from] crate::simulate::SimulateError),
    /// A derivation failed.
    #[error(transparent)]
    Derive(#[from] crate::derive::DeriveError),
    /// A setting out of range.
    #[error("{name} = {value}: {reason}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What is needed.
        reason: &'static str,
    },
    /// A theory outside what the sweeps handle.
    #[error("{0}")]
    Unsupported(String),
    /// An expression could not be evaluated.
    #[error("evaluating {what}: {reason}")]
    Evaluate {
        /// What was evaluated.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A tilted measure that does not exist (linear or ReLU units under a strong tilt).
    #[error(
        "the tilted measure of term {term} is not normalisable: K⁻¹ − 2Q has the eigenvalue \
         {smallest:e} (in units of K⁻¹) — the data pull harder than a width this small allows \
         (THEORY.md §4.3); increase the width N or the readout noise"
    )]
    NotNormalisable {
        /// Which term of the action (1-based).
        term: usize,
        /// The smallest eigenvalue of I − 2LᵀQL.
        smallest: f64,
    },
    /// A trajectory covariance that is not positive semi-definite (an extrapolated step of
    /// the recurrent sweeps; recoverable by a shorter step).
    #[error("the units' covariance over time is not a covariance: {0}")]
    IndefiniteCovariance(String),
    /// An action that grows without bound as some kernels shrink: it has no maximum, so
    /// there is no MAP to iterate to (THEORY.md §5.4: a measure term against too few units).
    #[error(
        "the action has no maximum: scaling {fields} by t changes S by {slope}·ln t as t → 0 \
         (the units: +{populations}, n·P/2 per population whose covariance does not shrink \
         with its kernel; the rest of the action: {rest}), so S grows without bound as these \
         kernels shrink and the sweeps would only chase a degenerate kernel (THEORY.md §5.4). \
         The rest (a measure term such as −(P+1)/2·ln det C per layer) outweighs the units: \
         {remedy}"
    )]
    NoMaximum {
        /// The kernels scaled, by name.
        fields: String,
        /// dS/d ln t as t → 0.
        slope: f64,
        /// The populations' part of the slope.
        populations: f64,
        /// The rest of the action's part.
        rest: f64,
        /// What to change: the smallest common width that makes the slope positive, or
        /// dropping the term.
        remedy: String,
    },
    /// Importance sampling with too few effective samples.
    #[error(
        "importance sampling of term {term} collapsed: an effective sample size of {ess:.1} of \
         {samples} samples — the tilt is too strong for sampling from the prior (P/N too \
         large); increase the width N or the number of samples (`--samples`)"
    )]
    Collapsed {
        /// Which term of the action (1-based).
        term: usize,
        /// The effective sample size.
        ess: f64,
        /// The number of samples.
        samples: usize,
    },
    /// The sweeps did not reach the tolerance.
    #[error(
        "the forward–backward sweeps did not converge: after {sweeps} sweeps the relative \
         change is {residual:e} (tolerance {tolerance:e}; the last changes {history:?}); \
         a smaller damping, or a larger width N, helps"
    )]
    NotConverged {
        /// Sweeps taken.
        sweeps: usize,
        /// The last relative change.
        residual: f64,
        /// The tolerance.
        tolerance: f64,
        /// The last few relative changes.
        history: Vec<f64>,
    },
}
