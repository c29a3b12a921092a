//! Test-set scores of a GP prediction (THEORY.md §3).
//!
//! For test targets $Y_*$ ($P_*\times D$), posterior mean $\mu_*$ and latent variance
//! $\sigma_*^2$:
//! $$\text{MSE}=\frac1{P_*}\sum_{j}\sum_d\,(y_{*jd}-\mu_{*jd})^2,\qquad
//!   \varepsilon_g=\text{MSE}+\frac{D}{P_*}\sum_j\sigma_{*j}^2,$$
//! $\varepsilon_g$ being the expected squared error of the Bayesian posterior against
//! noise-free labels (add $D\kappa$ for noisy ones). Accuracy: with $D=1$ (±1 targets) a
//! pattern is right when $\mu\,y>0$ — $\mu=0$ is no decision and counts as wrong; with $D>1$
//! (one-hot, possibly mean-subtracted) when $\arg\max_d\mu_d=\arg\max_d y_d$.

use ndarray::{ArrayView1, ArrayView2};
use serde::Serialize;

use super::Prediction;
use super::error::{GpError, check_finite, shape_error};

/// Errors of a prediction against test targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TestMetrics {
    /// Mean over test patterns of $\sum_d(y_{*jd}-\mu_{*jd})^2$.
    pub mse: f64,
    /// $\varepsilon_g=\text{MSE}+\frac D{P_*}\sum_j\sigma_{*j}^2$.
    pub generalisation_error: f64,
    /// Fraction classified correctly (sign for $D=1$, argmax for $D>1$).
    pub accuracy: f64,
}

impl Prediction {
    /// MSE, expected generalisation error and accuracy against `test_targets` ($P_*\times D$).
    pub fn metrics(&self, test_targets: ArrayView2<'_, f64>) -> Result<TestMetrics, GpError> {
        let accuracy = accuracy(self.mean.view(), test_targets)?;
        let n_test = self.mean.nrows() as f64;
        let squared: f64 = (&test_targets - &self.mean).iter().map(|e| e * e).sum();
        let mse = squared / n_test;
        let variance = self.mean.ncols() as f64 * self.latent_variance.sum() / n_test;
        Ok(TestMetrics {
            mse,
            generalisation_error: mse + variance,
            accuracy,
        })
    }
}

/// Fraction of rows of `mean` classified correctly against `targets` (same non-empty shape):
/// sign agreement for one output column, argmax agreement (first maximum) for several.
pub fn accuracy(mean: ArrayView2<'_, f64>, targets: ArrayView2<'_, f64>) -> Result<f64, GpError> {
    if targets.dim() != mean.dim() || mean.is_empty() {
        let expected = format!(
            "must be {:?} like the posterior mean, non-empty",
            mean.dim()
        );
        return Err(shape_error("test_targets", expected, targets.dim()));
    }
    check_finite("test_targets", targets)?;
    let argmax = |row: ArrayView1<'_, f64>| {
        let first_max = row
            .iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 { (i, v) } else { best }
            });
        first_max.0
    };
    let correct = mean
        .rows()
        .into_iter()
        .zip(targets.rows())
        .filter(|(mu, y)| match mu.len() {
            1 => mu[0] * y[0] > 0.0,
            _ => argmax(*mu) == argmax(*y),
        })
        .count();
    Ok(correct as f64 / mean.nrows() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, array};

    #[test]
    fn sign_accuracy_counts_zero_as_wrong() {
        let mean = array![[0.3], [-0.2], [0.0], [0.5]];
        let targets = array![[1.0], [-1.0], [1.0], [-1.0]];
        assert_eq!(accuracy(mean.view(), targets.view()), Ok(0.5));
    }

    #[test]
    fn argmax_accuracy_on_centred_one_hot() {
        let mean = array![[0.1, 0.7, -0.1], [0.5, 0.2, 0.1], [0.0, 0.1, 0.2]];
        let targets = array![[-0.1, 0.9, -0.1], [-0.1, 0.9, -0.1], [-0.1, -0.1, 0.9]];
        let acc = accuracy(mean.view(), targets.view()).expect("shapes agree");
        assert!((acc - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn metrics_follow_the_definitions() {
        let prediction = Prediction {
            mean: array![[0.5, 0.0], [1.0, -1.0]],
            latent_variance: Array1::from(vec![0.1, 0.3]),
        };
        let targets = array![[1.0, 0.0], [-1.0, 0.0]];
        let m = prediction.metrics(targets.view()).expect("shapes agree");
        // Squared errors 0.25 and 4 + 1 → MSE 2.625; D·mean σ² = 2·0.2 = 0.4; argmax: 1 of 2.
        assert!((m.mse - 2.625).abs() < 1e-15);
        assert!((m.generalisation_error - 3.025).abs() < 1e-15);
        assert_eq!(m.accuracy, 0.5);
    }

    #[test]
    fn mismatched_or_non_finite_targets_are_errors() {
        let mean = array![[0.5], [1.0]];
        let err = accuracy(mean.view(), array![[1.0, 0.0]].view()).unwrap_err();
        assert!(
            matches!(
                err,
                GpError::ShapeMismatch {
                    name: "test_targets",
                    ..
                }
            ),
            "{err}"
        );
        let err = accuracy(mean.view(), array![[1.0], [f64::NAN]].view()).unwrap_err();
        assert!(matches!(err, GpError::NonFinite { row: 1, .. }), "{err}");
    }
}
