//! Stage 6′: the finite networks an action describes, sampled directly — the check of every
//! finite-width number the theory predicts.
//!
//! * [`network`]: the network read off the action — one population of n units per
//!   cumulant-generating term `n · ln E[exp(A) | h ~ N(m, K)]`, each field an empirical
//!   average over its population (its forward equation at the NNGP point with ⟨·⟩ → (1/n) Σᵢ).
//! * [`units`]: an integrand evaluated on all units at once, averaged as matrix products.
//! * [`draw`]: one draw of every field from standard normals (whitened coordinates).
//! * [`prior`]: independent draws — the mean, N·Var and standard errors of every kernel entry,
//!   against the NNGP and its 1/N corrections (THEORY.md §4.5).
//! * [`posterior`]: the posterior given training targets by elliptical slice sampling in the
//!   whitened coordinates, the readout integrated out (likelihood 𝒩(Y; 0, K + κI)); several
//!   chains, R-hat and effective sample sizes ([`diagnostics`]), predictions on test patterns.
//! * [`langevin`]: the same posterior by unadjusted Langevin dynamics of the network's weights
//!   (noisy gradient descent with weight decay at temperature κ), its O(step) bias stated.
//!
//! * [`recurrent`]: a recurrent theory (an expectation over a time family) as one network
//!   whose weight matrix is shared over time, h(t) = W f(h(t−1)) + ξ(t);
//!   [`recurrent_langevin`]: its weights under Langevin dynamics (backpropagation through
//!   time).
//! * [`separation`]: pattern separation Δ(l) measured on independent draws.
//! * [`glauber`]: the same network under asynchronous (Glauber) updates with couplings shared
//!   over time — the continuous-time version of a theory's step (THEORY.md §7.4).
//! * [`statistics`]: population statistics (activity, distances, angles) with their
//!   covariance, as a recording would give them — the input of a fit.
//!
//! Layered theories (deep, binary with mean fields) and zero-mean recurrent theories are
//! simulated exactly; [`PriorDraws`] is what prior sampling needs of either. Both posterior
//! samplers take layered and recurrent theories.

pub mod diagnostics;
pub mod draw;
pub mod glauber;
pub mod langevin;
pub mod network;
pub mod posterior;
pub mod prior;
pub mod recurrent;
pub mod recurrent_langevin;
pub mod separation;
pub mod statistics;
pub mod units;

pub use draw::{Draw, Simulator};
pub use network::Network;
pub use recurrent::{RecurrentNetwork, RecurrentSimulator};

/// Independent draws of a network on fixed patterns: the layered [`Simulator`] and the
/// [`RecurrentSimulator`] alike.
pub trait PriorDraws: Sync {
    /// One network drawn with `rng`: every entry its units determine.
    fn draw_seeded(&self, rng: &mut rand::rngs::StdRng) -> Result<Draw, SimulateError>;
    /// An entry every draw shares (a definition from the data), if `key` is one.
    fn fixed_entry(&self, key: &EntryKey) -> Option<&ndarray::Array2<f64>>;
    /// The entry's name as written.
    fn entry_name(&self, key: &EntryKey) -> String;
    /// The patterns, one per row.
    fn inputs(&self) -> ndarray::ArrayView2<'_, f64>;
}

impl PriorDraws for Simulator<'_> {
    fn draw_seeded(&self, rng: &mut rand::rngs::StdRng) -> Result<Draw, SimulateError> {
        let z = self.standard_normals(rng);
        self.draw(&z)
    }

    fn fixed_entry(&self, key: &EntryKey) -> Option<&ndarray::Array2<f64>> {
        self.fixed.get(key)
    }

    fn entry_name(&self, key: &EntryKey) -> String {
        self.network.name(key)
    }

    fn inputs(&self) -> ndarray::ArrayView2<'_, f64> {
        self.x
    }
}

use crate::solve::nngp::EntryKey;
use crate::syntax::Span;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A parameter value that cannot be bound.
    #[error(transparent)]
    Bind(#[from] crate::check::BindError),
    /// The equations could not be derived.
    #[error("deriving the equations: {0}")]
    Derive(#[from] crate::derive::DeriveError),
    /// A part of the action the simulator cannot read as a network.
    #[error("{reason}")]
    NotSimulable {
        /// What and why, in words.
        reason: String,
        /// Where.
        span: Span,
    },
    /// A setting out of range (named, with its value).
    #[error("{0}")]
    Setting(String),
    /// Bad input data.
    #[error("{0}")]
    Data(String),
    /// An expression of a draw could not be evaluated.
    #[error("evaluating {what}: {reason}")]
    Evaluate {
        /// What was evaluated.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A covariance that is not one.
    #[error("{what} is not a covariance matrix: {reason}")]
    NotCovariance {
        /// Which matrix.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The action has no data term to read the readout from.
    #[error(
        "the action has no data term `tr(Y^T inv(K + kappa * I) Y)` / `logdet(K + kappa * I)` to read the output kernel from"
    )]
    NoReadout,
    /// The GP step of a prediction or likelihood failed.
    #[error(transparent)]
    Gp(#[from] crate::solve::gp::GpError),
    /// The chains' diagnostics could not be computed.
    #[error(transparent)]
    Diagnostics(#[from] diagnostics::DiagnosticsError),
    /// Stopped (Ctrl-C) before there was anything to estimate from.
    #[error("{0}")]
    Stopped(String),
}

/// A seed for draw (or chain) `index` of a run seeded with `seed` (SplitMix64 finaliser):
/// every draw has its own stream, so results do not depend on the number of threads.
pub fn stream_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
