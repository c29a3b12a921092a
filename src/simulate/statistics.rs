//! Population statistics measured on sampled networks — what a recording would give, with
//! its covariance: the input of [`crate::solve::fit`] when the "recording" is a simulation
//! whose parameters are hidden (the identifiability test of a fit).
//!
//! Each draw is an independent network; a statistic (activity, distance, angle, kernel entry
//! of a field, [`Statistic`]) is evaluated on every draw, and the sample mean comes with the
//! covariance of the mean, Σ = S_xx / M for M draws (S_xx the unbiased sample covariance).

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;

use super::{PriorDraws, SimulateError, stream_seed};
use crate::solve::fit::Statistic;

/// Statistics measured over independent draws.
#[derive(Debug, Clone)]
pub struct MeasuredStatistics {
    /// Draws made.
    pub samples: usize,
    /// The mean of each statistic over the draws.
    pub mean: Vec<f64>,
    /// The covariance of those means (sample covariance / draws).
    pub covariance: Array2<f64>,
}

impl MeasuredStatistics {
    /// The standard error of each mean.
    pub fn std_errors(&self) -> Vec<f64> {
        (0..self.mean.len())
            .map(|i| self.covariance[(i, i)].sqrt())
            .collect()
    }
}

/// `statistics` on `samples` independent networks drawn by `simulator`, seeded with `seed`
/// (every draw its own stream: the same numbers on any number of threads).
pub fn measure_statistics(
    simulator: &(impl PriorDraws + ?Sized),
    statistics: &[Statistic],
    samples: usize,
    seed: u64,
) -> Result<MeasuredStatistics, SimulateError> {
    if samples < 2 {
        return Err(SimulateError::Setting(format!(
            "samples = {samples}: a covariance needs at least 2 draws"
        )));
    }
    let rows: Vec<Array1<f64>> = (0..samples)
        .into_par_iter()
        .map(|s| {
            let mut rng = StdRng::seed_from_u64(stream_seed(seed, s as u64));
            let mut draw = simulator.draw_seeded(&mut rng)?;
            for stat in statistics {
                if !draw.entries.contains_key(&stat.entry)
                    && let Some(fixed) = simulator.fixed_entry(&stat.entry)
                {
                    draw.entries.insert(stat.entry.clone(), fixed.clone());
                }
            }
            statistics
                .iter()
                .map(|stat| {
                    stat.evaluate(&draw.entries)
                        .map_err(|reason| SimulateError::Evaluate {
                            what: stat.label(),
                            reason,
                        })
                })
                .collect::<Result<Array1<f64>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let n = statistics.len();
    let m = samples as f64;
    let mut mean = Array1::<f64>::zeros(n);
    for r in &rows {
        mean += r;
    }
    mean /= m;
    let mut covariance = Array2::<f64>::zeros((n, n));
    for r in &rows {
        let d = r - &mean;
        for i in 0..n {
            for j in 0..n {
                covariance[(i, j)] += d[i] * d[j];
            }
        }
    }
    covariance /= (m - 1.0) * m;
    Ok(MeasuredStatistics {
        samples,
        mean: mean.to_vec(),
        covariance,
    })
}
