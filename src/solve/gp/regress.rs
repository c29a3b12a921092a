//! One-call GP regression: fit, predict and score (THEORY.md §3), with the known-answer test
//! T4 of THEORY.md §3 (XOR corners; linear, unit-slope erf and ReLU NNGP kernels).

use ndarray::{Array2, ArrayView1, ArrayView2};

use super::error::GpError;
use super::factor::JitterInfo;
use super::metrics::TestMetrics;
use super::posterior::{GpPosterior, Prediction};

/// Everything [`regress`] computes.
#[derive(Debug, Clone, PartialEq)]
pub struct GpResult {
    /// Posterior mean and latent variance at the test points.
    pub prediction: Prediction,
    /// $\ln p(Y\mid X)$ of $K+(\kappa+\epsilon)I$.
    pub log_marginal_likelihood: f64,
    /// Jitter the Cholesky factorisation needed.
    pub jitter: JitterInfo,
    /// Test scores, when test targets were given.
    pub metrics: Option<TestMetrics>,
}

/// Fits on $(K, Y)$, predicts at the test points ($K_*$, $k_{**}$) and, given test targets,
/// scores the prediction. `kernel` is consumed: it becomes the Cholesky factor.
pub fn regress(
    kernel: Array2<f64>,
    targets: ArrayView2<'_, f64>,
    cross_kernel: ArrayView2<'_, f64>,
    test_diagonal: ArrayView1<'_, f64>,
    noise: f64,
    test_targets: Option<ArrayView2<'_, f64>>,
) -> Result<GpResult, GpError> {
    let posterior = GpPosterior::fit(kernel, targets, noise)?;
    let prediction = posterior.predict(cross_kernel, test_diagonal)?;
    let metrics = test_targets.map(|y| prediction.metrics(y)).transpose()?;
    let result = GpResult {
        prediction,
        log_marginal_likelihood: posterior.log_marginal_likelihood(),
        jitter: posterior.jitter(),
        metrics,
    };
    let largest_target = targets
        .iter()
        .chain(test_targets.iter().flat_map(|y| y.iter()))
        .fold(0.0_f64, |m, v| m.max(v.abs()));
    let overflow = |what, value: f64| {
        (!value.is_finite()).then_some(GpError::Overflow {
            what,
            value,
            largest_target,
        })
    };
    let mut checks = vec![("log marginal likelihood", result.log_marginal_likelihood)];
    if let Some(m) = &result.metrics {
        checks.extend([
            ("test MSE", m.mse),
            ("generalisation error", m.generalisation_error),
            ("test accuracy", m.accuracy),
        ]);
    }
    let mean = result.prediction.mean.iter().copied();
    let variance = result.prediction.latent_variance.iter().copied();
    checks.extend(mean.map(|v| ("predicted mean", v)));
    checks.extend(variance.map(|v| ("predicted variance", v)));
    match checks
        .into_iter()
        .find_map(|(what, value)| overflow(what, value))
    {
        Some(error) => Err(error),
        None => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array, s};
    use std::f64::consts::PI;

    /// The activations of T4 with their closed-form $K_\phi(a,b,c)$ (THEORY.md §2), written out
    /// here so that this test does not depend on the kernel-map module.
    #[derive(Clone, Copy, Debug)]
    enum Activation {
        Linear,
        UnitSlopeErf,
        Relu,
    }

    fn k_phi(activation: Activation, a: f64, b: f64, c: f64) -> f64 {
        match activation {
            Activation::Linear => c,
            Activation::UnitSlopeErf => {
                let h = PI / 2.0;
                2.0 / PI * (h * c / ((1.0 + h * a) * (1.0 + h * b)).sqrt()).asin()
            }
            Activation::Relu => {
                let theta = (c / (a * b).sqrt()).clamp(-1.0, 1.0).acos();
                (a * b).sqrt() / (2.0 * PI) * (theta.sin() + (PI - theta) * theta.cos())
            }
        }
    }

    /// NNGP kernel of T4 on all seven points: C⁽⁰⁾ = g0 X Xᵀ/2 + gb0, then two layers
    /// C⁽ˡ⁾ = g K_φ(C⁽ˡ⁻¹⁾) + gb.
    fn t4_kernel(activation: Activation, g0: f64, gb0: f64, g: f64, gb: f64) -> Array2<f64> {
        let points = array![
            [1.0, 1.0],
            [-1.0, -1.0],
            [1.0, -1.0],
            [-1.0, 1.0],
            [0.8, 1.2],
            [-0.7, 0.9],
            [0.3, -0.2]
        ];
        let mut c = points.dot(&points.t()) * (g0 / 2.0) + gb0;
        for _ in 0..2 {
            let previous = c.clone();
            c = Array2::from_shape_fn(previous.dim(), |(i, j)| {
                let (a, b, cij) = (previous[[i, i]], previous[[j, j]], previous[[i, j]]);
                g * k_phi(activation, a, b, cij) + gb
            });
        }
        c
    }

    fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// THEORY.md T4, every row: μ*, σ*², ln p(y|X), ε_g to 1e-7 (κ = 0.1).
    #[test]
    fn reproduces_theory_t4() {
        #[rustfmt::skip]
        let rows = [
            (Activation::UnitSlopeErf, [1.0, 0.1, 1.5, 0.1],
             [-0.27119969, 0.25535685, 0.05772864], [0.08194524, 0.07306695, 0.07480800],
             -16.75480876, 0.73444628),
            (Activation::UnitSlopeErf, [1.0, 0.0, 1.5, 0.0],
             [0.0, 0.0, 0.0], [0.05446298, 0.04424092, 0.01951013], -21.46140328, 1.03940468),
            (Activation::Relu, [1.0, 0.1, 2.0, 0.1],
             [-0.70934181, 0.58116856, 0.11333695], [0.11062345, 0.07272336, 0.09481011],
             -8.53350245, 0.44141009),
            (Activation::Linear, [1.0, 0.1, 1.5, 0.1],
             [0.0, 0.0, 0.0], [0.07461957, 0.05554348, 0.02692935], -24.39709148, 1.05236413),
        ];
        let targets = array![[-1.0], [-1.0], [1.0], [1.0]];
        let test_targets = array![[-1.0], [1.0], [1.0]];
        for (activation, [g0, gb0, g, gb], mean, variance, lml, eps_g) in rows {
            let c = t4_kernel(activation, g0, gb0, g, gb);
            let result = regress(
                c.slice(s![..4, ..4]).to_owned(),
                targets.view(),
                c.slice(s![..4, 4..]),
                c.diag().slice(s![4..]),
                0.1,
                Some(test_targets.view()),
            )
            .expect("T4 is well posed");
            let metrics = result.metrics.expect("test targets given");
            let errors = [
                max_abs_diff(
                    result.prediction.mean.as_slice().expect("standard layout"),
                    &mean,
                ),
                max_abs_diff(
                    result
                        .prediction
                        .latent_variance
                        .as_slice()
                        .expect("contiguous"),
                    &variance,
                ),
                (result.log_marginal_likelihood - lml).abs(),
                (metrics.generalisation_error - eps_g).abs(),
            ];
            eprintln!(
                "T4 {activation:?} (g0, gb0, g, gb) = ({g0}, {gb0}, {g}, {gb}): |Δμ| {:.1e}, |Δσ²| {:.1e}, |Δ ln p| {:.1e}, |Δε_g| {:.1e}",
                errors[0], errors[1], errors[2], errors[3]
            );
            assert!(
                errors.iter().all(|&e| e < 1e-7),
                "{activation:?}: {errors:?}"
            );
            assert_eq!(result.jitter.attempts, 1, "κ = 0.1 needs no jitter");
        }
    }

    /// Targets of ±1e200 are finite, but their squares are not: an error, never `inf`.
    #[test]
    fn huge_targets_are_an_overflow_error_not_an_infinite_score() {
        let c = t4_kernel(Activation::Relu, 1.0, 0.1, 2.0, 0.1);
        let targets = array![[-1e200], [-1e200], [1e200], [1e200]];
        let result = regress(
            c.slice(s![..4, ..4]).to_owned(),
            targets.view(),
            c.slice(s![..4, 4..]),
            c.diag().slice(s![4..]),
            0.1,
            Some(array![[-1e200], [1e200], [1e200]].view()),
        );
        match result {
            Err(GpError::Overflow {
                what,
                largest_target,
                ..
            }) => {
                assert_eq!(what, "log marginal likelihood");
                assert_eq!(largest_target, 1e200);
            }
            other => panic!("expected an overflow error, got {other:?}"),
        }
    }

    #[test]
    fn without_test_targets_there_are_no_metrics() {
        let c = t4_kernel(Activation::Relu, 1.0, 0.1, 2.0, 0.1);
        let targets = array![[-1.0], [-1.0], [1.0], [1.0]];
        let result = regress(
            c.slice(s![..4, ..4]).to_owned(),
            targets.view(),
            c.slice(s![..4, 4..]),
            c.diag().slice(s![4..]),
            0.1,
            None,
        )
        .expect("well posed");
        assert!(result.metrics.is_none());
        assert_eq!(result.prediction.mean.dim(), (3, 1));
    }
}
