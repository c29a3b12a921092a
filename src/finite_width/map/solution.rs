//! The settings of the MAP and linearised solvers and what they return: kernels per layer
//! with standard errors, per-population reports, and the GP prediction with the adapted
//! readout kernel.

use ndarray::{Array1, Array2, ArrayView2};

use crate::finite_width::tilted::Estimator;
use crate::solve::gp::{Prediction, TestMetrics};

/// Settings of [`map_kernels`](super::map_kernels).
#[derive(Debug, Clone)]
pub struct MapSettings {
    /// Parameter overrides (`--set`).
    pub overrides: Vec<(String, f64)>,
    /// Monte Carlo samples M per population (where the tilt is not Gaussian).
    pub samples: usize,
    /// Seed of the standard normals.
    pub seed: u64,
    /// Converged when a sweep changes the fields and the conjugates by less than this,
    /// relative to their size (Frobenius norms over all entries).
    pub tolerance: f64,
    /// Sweeps allowed.
    pub max_sweeps: usize,
    /// The first damping d of the conjugates' update (0 < d ≤ 1).
    pub damping: f64,
    /// Independent replicas for the Monte Carlo standard errors (0: none).
    pub replicas: usize,
    /// Sample every population, even where the Gaussian closed form is exact (for checks).
    pub force_sampling: bool,
    /// Past iterates the Anderson acceleration keeps (0: plain damped sweeps; a linearised
    /// system keeps at least 20).
    pub anderson_memory: usize,
    /// How the saddle point is iterated to (the linearised systems always use Anderson's
    /// Krylov form).
    pub iteration: SaddleIteration,
    /// Generated pair formulas for the NNGP point ([`NngpSettings::native`]).
    pub native: &'static [crate::generated::NativePairMap],
    /// Solve the linearised system by central differences of the sampled maps even where
    /// the expansion at the NNGP point applies (a check of it; much slower).
    pub linear_by_differences: bool,
    /// Add the prior one-loop mean shift m/N to the MAP ([`crate::finite_width::posterior`]): the kernels
    /// a trained network averages to, rather than their mode.
    pub posterior_mean: bool,
}

impl Default for MapSettings {
    fn default() -> Self {
        MapSettings {
            overrides: Vec::new(),
            samples: 20_000,
            seed: 0,
            tolerance: 1e-10,
            max_sweeps: 1000,
            damping: 0.5,
            replicas: 16,
            force_sampling: false,
            anderson_memory: 6,
            iteration: SaddleIteration::Anderson,
            native: &[],
            linear_by_differences: false,
            posterior_mean: false,
        }
    }
}

/// How [`map_kernels`](super::map_kernels) (and the recurrent MAP) move towards the saddle point; each counts
/// an evaluation of the sweep map (a forward and a backward pass) as one sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaddleIteration {
    /// Damped sweeps with Anderson acceleration (`anderson_memory` past iterates; plain
    /// damped sweeps with none).
    #[default]
    Anderson,
    /// Newton's method on the sweep map's residual, its linear systems solved by GMRES with
    /// differenced products (one sweep each) and a backtracking line search
    /// (`newton_krylov`).
    NewtonKrylov,
}

/// One field entry at the MAP.
#[derive(Debug, Clone)]
pub struct MapLayer {
    /// The entry, e.g. `C[2]`.
    pub name: String,
    /// Its conjugate, e.g. `Ct[2]`.
    pub conjugate_name: String,
    /// At the NNGP point.
    pub nngp: Array2<f64>,
    /// At the MAP.
    pub kernel: Array2<f64>,
    /// Its conjugate at the MAP.
    pub conjugate: Array2<f64>,
    /// Monte Carlo standard error of each entry of `kernel` (None when exact).
    pub kernel_error: Option<Array2<f64>>,
    /// Monte Carlo standard error of each entry of `conjugate`.
    pub conjugate_error: Option<Array2<f64>>,
    /// With [`MapSettings::posterior_mean`]: `kernel` is the posterior mean, this the MAP.
    pub map_kernel: Option<Array2<f64>>,
    /// With [`MapSettings::posterior_mean`]: the prior one-loop shift m (`kernel` − MAP = m/N).
    pub n_shift: Option<Array2<f64>>,
}

/// How one population's expectations were computed.
#[derive(Debug, Clone)]
pub struct PopulationReport {
    /// The term of the action (1-based, in order of appearance).
    pub term: usize,
    /// Its number of units n.
    pub units: usize,
    /// The estimator.
    pub estimator: Estimator,
    /// Effective sample size of the importance weights at the MAP (sampled only).
    pub effective_samples: Option<f64>,
}

/// The MAP and how it was reached.
#[derive(Debug, Clone)]
pub struct MapSolution {
    /// The width (the parameter `N`), when the theory has one.
    pub width: Option<f64>,
    /// One per field entry with a forward equation, in the order computed.
    pub layers: Vec<MapLayer>,
    /// Sweeps taken (the MAP), or iterations of the linearised system.
    pub sweeps: usize,
    /// The last sweep's relative change.
    pub residual: f64,
    /// The tolerance the sweeps reached: the one asked for, or the Monte Carlo resolution
    /// 4/M for units with kinks (MAP); for a linearised system at least 1e-8, and 1e-3/√M
    /// where sampled.
    pub tolerance: f64,
    /// Per population.
    pub populations: Vec<PopulationReport>,
    /// Samples M per sampled population (0 when every population is exact).
    pub samples: usize,
    /// Replicas behind the standard errors.
    pub replicas: usize,
    /// Samples per replica (M / replicas, at least 2000 or M).
    pub replica_samples: usize,
    /// The number of training patterns (the first rows of every kernel; test rows follow).
    pub training: usize,
    /// The GP prediction with the adapted readout kernel (and the NNGP one beside it).
    pub prediction: Option<MapPrediction>,
}

/// GP regression with the readout kernel at the MAP, beside the NNGP kernel's.
#[derive(Debug, Clone)]
pub struct MapPrediction {
    /// Posterior mean on the test patterns (P*×D; empty without test patterns).
    pub mean: Array2<f64>,
    /// Its Monte Carlo standard error.
    pub mean_error: Option<Array2<f64>>,
    /// Latent posterior variance per test pattern.
    pub variance: Array1<f64>,
    /// Its Monte Carlo standard error.
    pub variance_error: Option<Array1<f64>>,
    /// ln p(Y | X) of the training targets under the adapted kernel.
    pub log_marginal_likelihood: f64,
    /// The same three with the NNGP kernel.
    pub nngp_mean: Array2<f64>,
    /// NNGP latent variance.
    pub nngp_variance: Array1<f64>,
    /// NNGP ln p(Y | X).
    pub nngp_log_marginal_likelihood: f64,
}

impl MapSolution {
    /// N·(C − C*) of layer `i`, when the theory has a width `N`.
    pub fn scaled_delta(&self, i: usize) -> Option<Array2<f64>> {
        let layer = self.layers.get(i)?;
        Some((&layer.kernel - &layer.nngp) * self.width?)
    }
}

impl MapPrediction {
    /// Test MSE, generalisation error and accuracy of the MAP and of the NNGP prediction
    /// against test targets (the same scores as `solve --method nngp`).
    pub fn metrics(
        &self,
        test_targets: ArrayView2<'_, f64>,
    ) -> Result<(TestMetrics, TestMetrics), crate::solve::gp::GpError> {
        let score = |mean: &Array2<f64>, variance: &Array1<f64>| {
            Prediction {
                mean: mean.clone(),
                latent_variance: variance.clone(),
            }
            .metrics(test_targets)
        };
        Ok((
            score(&self.mean, &self.variance)?,
            score(&self.nngp_mean, &self.nngp_variance)?,
        ))
    }
}
