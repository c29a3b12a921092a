//! The posterior of the finite network given training targets, sampled exactly.
//!
//! The state is the whitened draw Z (every population's standard normals, [`super::draw`]):
//! its prior is 𝒩(0, I), and with the readout weights integrated out the likelihood is
//! 𝒩(Y; 0, K(Z)_train + κI) per output column (the action's data term, with its constant).
//! Elliptical slice sampling (Murray, Adams & MacKay 2010) moves Z along the ellipse
//! Z cos θ + ν sin θ through a fresh prior draw ν, shrinking the bracket of θ until the
//! likelihood clears a uniformly drawn level: no step size, every move accepted, exact for
//! any likelihood. Test patterns are rows of the same network without a likelihood term; each
//! recorded draw's GP prediction on them (mean and latent variance given K(Z)) is averaged,
//! and the predictive variance is E[σ²] + Var[μ] (law of total variance).
//!
//! Each chain runs on its own seeded stream. Every entry of every field is streamed into batch
//! means (standard error and effective sample size) and half-chain moments (split-R-hat); the
//! log-likelihood and each kernel's mean diagonal, off-diagonal and target-weighted
//! off-diagonal entry (same-class minus cross-class, for ±1 targets) keep full traces for
//! the multi-chain ESS and R-hat of [`super::diagnostics::summarize`].
//!
//! Here: settings, results, the sampler interfaces ([`WhitenedNetwork`], [`PosteriorSampler`],
//! [`PosteriorChain`]) and the observation of a state; `slice`: [`EllipticalSlice`];
//! `chains`: running chains ([`sample_posterior_until`]); `summary`: chains combined.

use ndarray::{Array1, Array2, ArrayView2, s};
use rand::rngs::StdRng;

use super::SimulateError;
use super::diagnostics::ChainSummary;
use super::draw::{Draw, Simulator};
use crate::solve::gp::GpPosterior;
use crate::solve::nngp::EntryKey;

mod chains;
mod slice;
mod summary;
use chains::*;
pub use chains::{sample_posterior, sample_posterior_until};
pub use slice::EllipticalSlice;
use summary::*;
pub use summary::{diagonal_and_off_diagonal_means, target_weighted_off_diagonal};

/// Batches per chain for the batch-means standard errors (even: its halves give split-R-hat).
pub const BATCHES: usize = 10;

/// How to sample.
#[derive(Debug, Clone, Copy)]
pub struct PosteriorSettings {
    /// Independent chains.
    pub chains: usize,
    /// Draws recorded per chain.
    pub samples: usize,
    /// Steps discarded at the start of each chain.
    pub burn_in: usize,
    /// Steps per recorded draw.
    pub thin: usize,
    /// The run's seed.
    pub seed: u64,
}

/// Posterior statistics of one field entry (or of the predictive mean), entry by entry.
#[derive(Debug, Clone)]
pub struct EntryPosterior {
    /// Posterior mean.
    pub mean: Array2<f64>,
    /// Monte Carlo standard error of the mean (batch means over all chains).
    pub std_error: Array2<f64>,
    /// Effective sample size (batch means).
    pub ess: Array2<f64>,
    /// Split-R-hat.
    pub rhat: Array2<f64>,
}

/// Predictions on the test patterns.
#[derive(Debug, Clone)]
pub struct PosteriorPrediction {
    /// Posterior-predictive mean, P*×D, with its statistics.
    pub mean: EntryPosterior,
    /// Predictive (latent) variance per test pattern: E[σ²] + Var[μ] averaged over outputs.
    pub variance: Array1<f64>,
    /// Its Monte Carlo standard error.
    pub variance_std_error: Array1<f64>,
}

/// The result of [`sample_posterior`].
#[derive(Debug, Clone)]
pub struct PosteriorSample {
    /// The settings used.
    pub settings: PosteriorSettings,
    /// Every entry of every field a draw computes.
    pub entries: Vec<(EntryKey, EntryPosterior)>,
    /// Scalar summaries with full traces: `ln p(Y|Z)` and each kernel's mean diagonal,
    /// off-diagonal and target-weighted off-diagonal entry on the training patterns.
    pub summaries: Vec<(String, ChainSummary)>,
    /// Predictions on the test patterns, if any.
    pub prediction: Option<PosteriorPrediction>,
    /// Likelihood evaluations per step (1 = every first proposal accepted).
    pub evaluations_per_step: f64,
    /// Proposals whose fields could not be evaluated (rejected), over all chains.
    pub failed_evaluations: usize,
    /// Draws per chain behind the estimates: ⌊samples/BATCHES⌋·BATCHES, or the batches every
    /// kept chain completed when interrupted (`settings.chains` is then the chains kept).
    pub draws_per_chain: usize,
    /// Stopped early ([`sample_posterior_until`]): the estimates hold the draws made.
    pub interrupted: bool,
}

/// A network whose draw is a deterministic function of standard normals — the sampler's
/// whitened coordinates, whose prior is 𝒩(0, I): the layered [`Simulator`] (every
/// population's normals) and the recurrent simulator (the drive's normals and the one
/// weight matrix's).
pub trait WhitenedNetwork: Sync {
    /// The number of patterns P (training patterns first, then test patterns).
    fn patterns(&self) -> usize;
    /// Fresh standard normals, one array per block of the network's randomness.
    fn standard_normals(&self, rng: &mut StdRng) -> Vec<Array2<f64>>;
    /// Every field entry of the network that the normals `z` make.
    fn draw(&self, z: &[Array2<f64>]) -> Result<Draw, SimulateError>;
    /// The readout kernel on every pattern and the readout noise κ of a draw.
    fn readout(&self, draw: &Draw) -> Result<(Array2<f64>, f64), SimulateError>;
    /// An entry's name as written.
    fn entry_name(&self, key: &EntryKey) -> String;
}

impl WhitenedNetwork for Simulator<'_> {
    fn patterns(&self) -> usize {
        Simulator::patterns(self)
    }

    fn standard_normals(&self, rng: &mut StdRng) -> Vec<Array2<f64>> {
        Simulator::standard_normals(self, rng)
    }

    fn draw(&self, z: &[Array2<f64>]) -> Result<Draw, SimulateError> {
        Simulator::draw(self, z)
    }

    fn readout(&self, draw: &Draw) -> Result<(Array2<f64>, f64), SimulateError> {
        Simulator::readout(self, draw)
    }

    fn entry_name(&self, key: &EntryKey) -> String {
        self.network.name(key)
    }
}

/// Training targets and how many leading patterns they belong to.
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    /// Y, P_train×D.
    pub y: ArrayView2<'a, f64>,
}

/// What a chain records at a step: the network's fields, its readout kernel on every pattern
/// and the GP given it on the training block (the likelihood with the readout weights
/// integrated out, and the prediction's factor).
pub struct Observation {
    /// Every field entry of the network.
    pub draw: Draw,
    /// The readout kernel on all patterns (the test blocks predict).
    pub kernel: Array2<f64>,
    /// The GP fitted on the training block.
    pub gp: GpPosterior,
    /// ln 𝒩(Y; 0, K_train + κI).
    pub log_likelihood: f64,
}

impl Observation {
    /// The observation of a drawn network: its readout kernel and the GP on `targets`.
    pub fn of(
        simulator: &dyn WhitenedNetwork,
        targets: Targets<'_>,
        draw: Draw,
    ) -> Result<Observation, SimulateError> {
        let train = targets.y.nrows();
        let (kernel, noise) = simulator.readout(&draw)?;
        let k_train = kernel.slice(s![..train, ..train]).to_owned();
        let gp = GpPosterior::fit(k_train, targets.y, noise)?;
        Ok(Observation {
            draw,
            kernel,
            log_likelihood: gp.log_marginal_likelihood(),
            gp,
        })
    }
}

/// A Markov chain whose stationary distribution is the posterior of the network's fields.
pub trait PosteriorChain {
    /// One step.
    fn advance(&mut self, rng: &mut StdRng) -> Result<(), SimulateError>;
    /// The current state as the sampler reports it.
    fn observe(&mut self) -> Result<&Observation, SimulateError>;
    /// Evaluations of the network (likelihood or gradient) so far.
    fn evaluations(&self) -> usize;
    /// Proposals whose fields could not be evaluated (rejected) so far.
    fn failures(&self) -> usize;
}

/// A way of sampling the posterior: it starts chains on the network's patterns.
pub trait PosteriorSampler: Sync {
    /// The network sampled.
    fn network(&self) -> &dyn WhitenedNetwork;
    /// A chain started from a prior draw made with `rng`.
    fn start<'s>(
        &'s self,
        targets: Targets<'_>,
        rng: &mut StdRng,
    ) -> Result<Box<dyn PosteriorChain + 's>, SimulateError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_boundaries_agree_with_the_batch_of_each_draw() {
        for samples in [20, 37, 1000, 1001] {
            for k in 0..=BATCHES {
                let counted = (0..samples).filter(|&r| batch_of(r, samples) < k).count();
                assert_eq!(
                    draws_in(k, samples),
                    counted,
                    "{samples} draws, {k} batches"
                );
                assert_eq!(complete_batches(counted, samples), k);
                if counted > 0 && k > 0 {
                    assert_eq!(complete_batches(counted - 1, samples), k - 1);
                }
            }
        }
    }
}
