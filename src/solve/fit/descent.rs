//! The fit itself: damped Gauss–Newton (Levenberg–Marquardt) descents from several starts,
//! the best kept, and the parameters' covariance from the inverse information.

use ndarray::{Array1, Array2};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

/// Settings of [`fit`].
#[derive(Debug, Clone)]
pub struct FitSettings {
    /// Starts: the given one, then uniform draws in the box.
    pub starts: usize,
    /// Seed of the extra starts.
    pub seed: u64,
    /// Levenberg–Marquardt iterations per start.
    pub max_iterations: usize,
}

impl Default for FitSettings {
    fn default() -> Self {
        FitSettings {
            starts: 8,
            seed: 1,
            max_iterations: 200,
        }
    }
}

/// One start's descent.
#[derive(Debug, Clone)]
pub struct Descent {
    /// Where it began.
    pub start: Vec<f64>,
    /// Where it ended.
    pub end: Vec<f64>,
    /// χ² there (`None` when it failed).
    pub chi2: Option<f64>,
    /// Iterations taken.
    pub iterations: usize,
    /// Why it stopped.
    pub stop: String,
}

/// The fitted parameters and what they imply.
#[derive(Debug, Clone)]
pub struct Fit {
    /// The free parameters' values.
    pub values: Vec<f64>,
    /// Their standard errors (√ of Cov's diagonal).
    pub std_errors: Vec<f64>,
    /// Cov θ̂ = (JᵀJ)⁻¹.
    pub covariance: Array2<f64>,
    /// Whether each sits on its box (its error then does not hold).
    pub at_bound: Vec<bool>,
    /// χ² at the minimum.
    pub chi2: f64,
    /// Statistics minus free parameters.
    pub dof: usize,
    /// The theory's statistics at the minimum.
    pub fitted: Vec<f64>,
    /// (fitted − observed) / error, per statistic.
    pub pulls: Vec<f64>,
    /// Every start's descent.
    pub descents: Vec<Descent>,
    /// How many starts ended within Δχ² < 10⁻⁶ (relative) of the best.
    pub agreeing_starts: usize,
}

/// Levenberg–Marquardt from one start.
pub(super) fn descend(problem: &Problem, start: Vec<f64>, max_iterations: usize) -> Descent {
    let clamp = |t: &mut Vec<f64>| {
        for (v, f) in t.iter_mut().zip(&problem.free) {
            *v = v.clamp(f.lower, f.upper);
        }
    };
    let mut theta = start.clone();
    let failed = |theta: Vec<f64>, iterations, stop: String| Descent {
        start: start.clone(),
        end: theta,
        chi2: None,
        iterations,
        stop,
    };
    let mut r = match problem.residuals(&theta) {
        Ok(r) => r,
        Err(e) => return failed(theta, 0, e),
    };
    let mut chi2 = r.dot(&r);
    let mut lambda = 1e-3;
    let k = theta.len();
    for iteration in 1..=max_iterations {
        let j = match problem.jacobian(&theta) {
            Ok(j) => j,
            Err(e) => return failed(theta, iteration, e),
        };
        let a = j.t().dot(&j);
        let g = j.t().dot(&r);
        let mut improved = false;
        while lambda < 1e12 {
            let mut damped = a.clone();
            for i in 0..k {
                damped[(i, i)] += lambda * a[(i, i)].max(1e-12);
            }
            let Some(delta) = solve_small(&damped, &(-&g)) else {
                lambda *= 10.0;
                continue;
            };
            let mut trial: Vec<f64> = theta.iter().zip(&delta).map(|(t, d)| t + d).collect();
            clamp(&mut trial);
            match problem.residuals(&trial) {
                Ok(r_trial) => {
                    let c = r_trial.dot(&r_trial);
                    if c.is_finite() && c <= chi2 {
                        let moved = trial
                            .iter()
                            .zip(&theta)
                            .zip(&problem.free)
                            .map(|((a, b), f)| (a - b).abs() / (f.upper - f.lower))
                            .fold(0.0, f64::max);
                        let drop = chi2 - c;
                        theta = trial;
                        r = r_trial;
                        chi2 = c;
                        lambda = (lambda / 10.0).max(1e-12);
                        improved = true;
                        if drop <= 1e-12 * (1.0 + chi2) && moved < 1e-9 {
                            return Descent {
                                start,
                                end: theta,
                                chi2: Some(chi2),
                                iterations: iteration,
                                stop: "converged".into(),
                            };
                        }
                        break;
                    }
                    lambda *= 10.0;
                }
                Err(_) => lambda *= 10.0,
            }
        }
        if !improved {
            // no step of any damping lowers χ²: a minimum to the precision of the model
            return Descent {
                start,
                end: theta,
                chi2: Some(chi2),
                iterations: iteration,
                stop: "converged".into(),
            };
        }
    }
    Descent {
        start,
        end: theta,
        chi2: Some(chi2),
        iterations: max_iterations,
        stop: format!("{max_iterations} iterations"),
    }
}

/// Solves a small symmetric positive definite system (Cholesky); `None` if not positive.
pub(super) fn solve_small(a: &Array2<f64>, b: &Array1<f64>) -> Option<Vec<f64>> {
    let l_inv = inverse_cholesky(a).ok()?;
    let y = l_inv.dot(b);
    let x = l_inv.t().dot(&y);
    x.iter().all(|v| v.is_finite()).then(|| x.to_vec())
}

/// Fits the free parameters of `problem` to its statistics.
pub fn fit(problem: &Problem, settings: &FitSettings) -> Result<Fit, FitError> {
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut starts = vec![problem.free.iter().map(|f| f.start).collect::<Vec<_>>()];
    for _ in 1..settings.starts.max(1) {
        starts.push(
            problem
                .free
                .iter()
                .map(|f| {
                    f.lower
                        + (f.upper - f.lower) * rng.sample::<f64, _>(rand::distr::StandardUniform)
                })
                .collect(),
        );
    }
    let descents: Vec<Descent> = {
        use rayon::prelude::*;
        starts
            .into_par_iter()
            .map(|s| descend(problem, s, settings.max_iterations))
            .collect()
    };
    let best = descents
        .iter()
        .filter_map(|d| d.chi2.map(|c| (c, d)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, d)| d.clone())
        .ok_or_else(|| {
            FitError::NoConvergence(
                descents
                    .iter()
                    .map(|d| format!("from {}: {}", problem.describe(&d.start), d.stop))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    let chi2 = best.chi2.unwrap_or(f64::NAN);
    let agreeing_starts = descents
        .iter()
        .filter(|d| d.chi2.is_some_and(|c| c - chi2 <= 1e-6 * (1.0 + chi2)))
        .count();
    let theta = best.end.clone();
    let j = problem.jacobian(&theta).map_err(FitError::NoConvergence)?;
    let information = j.t().dot(&j);
    let covariance = invert_information(problem, &information)?;
    let fitted = problem.model(&theta).map_err(FitError::NoConvergence)?;
    let pulls = fitted
        .iter()
        .zip(&problem.observed)
        .enumerate()
        .map(|(i, (f, o))| (f - o) / problem.covariance[(i, i)].sqrt())
        .collect();
    let at_bound = theta
        .iter()
        .zip(&problem.free)
        .map(|(v, f)| {
            let tol = 1e-9 * (f.upper - f.lower);
            (v - f.lower).abs() <= tol || (f.upper - v).abs() <= tol
        })
        .collect();
    Ok(Fit {
        std_errors: (0..theta.len())
            .map(|i| covariance[(i, i)].sqrt())
            .collect(),
        values: theta,
        covariance,
        at_bound,
        chi2,
        dof: problem.statistics.len() - problem.free.len(),
        fitted,
        pulls,
        descents,
        agreeing_starts,
    })
}

/// (JᵀJ)⁻¹, or the flat direction when JᵀJ is (numerically) singular.
pub(super) fn invert_information(
    problem: &Problem,
    information: &Array2<f64>,
) -> Result<Array2<f64>, FitError> {
    let k = information.nrows();
    let m = faer::Mat::from_fn(k, k, |i, j| information[(i, j)]);
    let eig = m
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| FitError::NoConvergence(format!("eigenvalues of JᵀJ: {e:?}")))?;
    let s = eig.S().column_vector();
    let values: Vec<f64> = (0..k).map(|i| s[i]).collect();
    let largest = values.iter().copied().fold(0.0, f64::max);
    let (smallest_at, smallest) = values
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    if smallest.is_nan() || largest.is_nan() || smallest <= 1e-10 * largest || largest <= 0.0 {
        let u = eig.U();
        let combination = problem
            .free
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{:+.3}·{}", u[(i, smallest_at)], f.name))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(FitError::NotIdentifiable {
            combination,
            curvature: smallest,
        });
    }
    let u = eig.U();
    Ok(Array2::from_shape_fn((k, k), |(i, j)| {
        (0..k).map(|e| u[(i, e)] * u[(j, e)] / values[e]).sum()
    }))
}
