//! How separable the classes are at fitted parameters: leave-one-out accuracy of the readout
//! kernel's GP classifier.

use ndarray::{Array1, Array2, ArrayView2};

use super::*;

/// The predicted separability of the two classes at every readout step.
#[derive(Debug, Clone)]
pub struct Separability {
    /// The steps' kernel entries.
    pub steps: Vec<String>,
    /// Mean probability of the correct sign for a held-out stimulus, per step.
    pub accuracy: Vec<f64>,
    /// Its standard error from the parameters' covariance (delta method).
    pub std_error: Vec<f64>,
    /// The readout noise κ.
    pub noise: f64,
    /// The step where it is largest (0-based).
    pub best_step: usize,
}

/// Leave-one-out probability of the correct sign, averaged over the stimuli.
pub(super) fn loo_accuracy(k: ArrayView2<f64>, labels: &[f64], noise: f64) -> Result<f64, String> {
    let p = k.nrows();
    let mut a = k.to_owned();
    for i in 0..p {
        a[(i, i)] += noise;
    }
    let l_inv = inverse_cholesky(&a)?;
    let inverse = l_inv.t().dot(&l_inv);
    let first = labels[0];
    let y = Array1::from_iter(labels.iter().map(|&c| if c == first { 1.0 } else { -1.0 }));
    let ay = inverse.dot(&y);
    let mut total = 0.0;
    for i in 0..p {
        let sigma2 = 1.0 / inverse[(i, i)];
        let mean = y[i] - ay[i] * sigma2;
        total += 0.5 * libm::erfc(-y[i] * mean / (sigma2.sqrt() * std::f64::consts::SQRT_2));
    }
    Ok(total / p as f64)
}

/// The separability at `theta` (without errors).
pub(super) fn separability_values(problem: &Problem, theta: &[f64]) -> Result<Vec<f64>, FitError> {
    let Some((steps, noise)) = &problem.readout else {
        return Err(FitError::Targets(
            "the separability needs `classes` in the targets file".into(),
        ));
    };
    let labels = problem.classes.as_deref().unwrap_or(&[]);
    let kernels =
        problem
            .kernels(theta, problem.needed())
            .map_err(|reason| FitError::Separability {
                step: "all steps".into(),
                reason,
            })?;
    steps
        .iter()
        .map(|(key, name)| {
            loo_accuracy(kernels[key].view(), labels, *noise).map_err(|reason| {
                FitError::Separability {
                    step: name.clone(),
                    reason,
                }
            })
        })
        .collect()
}

/// The predicted separability of the classes at every readout step, at `theta`, with errors
/// from `covariance` (the fit's Cov θ̂).
pub fn separability(
    problem: &Problem,
    theta: &[f64],
    covariance: &Array2<f64>,
) -> Result<Separability, FitError> {
    let accuracy = separability_values(problem, theta)?;
    let gradient = problem.gradient(theta, |t| separability_values(problem, t))?;
    let std_error = (0..accuracy.len())
        .map(|s| {
            let g = gradient.row(s);
            g.dot(&covariance.dot(&g)).max(0.0).sqrt()
        })
        .collect();
    let (steps, noise) = problem.readout.clone().unwrap_or_default();
    let best_step = accuracy
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Ok(Separability {
        steps: steps.into_iter().map(|(_, n)| n).collect(),
        accuracy,
        std_error,
        noise,
        best_step,
    })
}
