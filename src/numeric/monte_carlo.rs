//! Seeded Monte Carlo estimates of bivariate Gaussian expectations, the independent check of
//! closed forms and quadrature (THEORY.md §10, item 1: "MC cross-check within 4 s.e.").
//!
//! With $z_1,z_2$ i.i.d. standard normal, $u=\sqrt a\,z_1$,
//! $v=\frac{c}{\sqrt a}z_1+\sqrt{b-c^2/a}\,z_2$ has covariance
//! $\begin{psmallmatrix}a&c\\c&b\end{psmallmatrix}$. The estimate of $\langle f(u)g(v)\rangle$ is
//! the sample mean of $y_s=f(u_s)g(v_s)$ with standard error $\sqrt{\widehat{\operatorname{Var}}\,y/S}$
//! (Welford's running variance). Same seed, same numbers (ChaCha-based `StdRng`).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// A Monte Carlo estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MonteCarloEstimate {
    /// Sample mean.
    pub mean: f64,
    /// Standard error of the mean.
    pub std_error: f64,
    /// Number of samples.
    pub samples: usize,
}

impl MonteCarloEstimate {
    /// $|\text{mean}-\text{value}|$ in units of the standard error.
    pub fn z_score(&self, value: f64) -> f64 {
        (self.mean - value).abs() / self.std_error
    }
}

/// Invalid input to [`pair_expectation_mc`].
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum MonteCarloError {
    /// Fewer than two samples (no standard error).
    #[error("need at least 2 samples, got {samples}")]
    TooFewSamples {
        /// Samples requested.
        samples: usize,
    },
    /// $a<0$, $b<0$, $c^2>ab$ or a non-finite entry.
    #[error("covariance [[{a}, {c}], [{c}, {b}]] is not positive semidefinite")]
    NotPositiveSemidefinite {
        /// First variance.
        a: f64,
        /// Second variance.
        b: f64,
        /// Covariance.
        c: f64,
    },
    /// $f(u)g(v)$ was infinite or NaN for some sample.
    #[error("integrand is not finite at u = {u}, v = {v}")]
    NonFiniteSample {
        /// First coordinate.
        u: f64,
        /// Second coordinate.
        v: f64,
    },
}

/// Estimate of $\langle f(u)g(v)\rangle$ for $(u,v)\sim\mathcal N\big(0,\begin{psmallmatrix}a&c\\c&b\end{psmallmatrix}\big)$
/// from `samples` draws of a generator seeded with `seed`.
pub fn pair_expectation_mc<F, G>(
    mut f: F,
    mut g: G,
    (a, b, c): (f64, f64, f64),
    samples: usize,
    seed: u64,
) -> Result<MonteCarloEstimate, MonteCarloError>
where
    F: FnMut(f64) -> f64,
    G: FnMut(f64) -> f64,
{
    if samples < 2 {
        return Err(MonteCarloError::TooFewSamples { samples });
    }
    let finite = a.is_finite() && b.is_finite() && c.is_finite();
    if !finite || a < 0.0 || b < 0.0 || c * c > a * b * (1.0 + 1e-12) {
        return Err(MonteCarloError::NotPositiveSemidefinite { a, b, c });
    }
    let l11 = a.sqrt();
    let l21 = if a > 0.0 { c / l11 } else { 0.0 };
    let l22 = (b - l21 * l21).max(0.0).sqrt();
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut mean, mut sum_sq_dev) = (0.0, 0.0);
    for s in 0..samples {
        let z1: f64 = StandardNormal.sample(&mut rng);
        let z2: f64 = StandardNormal.sample(&mut rng);
        let (u, v) = (l11 * z1, l21 * z1 + l22 * z2);
        let y = f(u) * g(v);
        if !y.is_finite() {
            return Err(MonteCarloError::NonFiniteSample { u, v });
        }
        let delta = y - mean;
        mean += delta / (s + 1) as f64;
        sum_sq_dev += delta * (y - mean);
    }
    let variance = sum_sq_dev / (samples - 1) as f64;
    Ok(MonteCarloEstimate {
        mean,
        std_error: (variance / samples as f64).sqrt(),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_are_within_four_standard_errors() {
        let (a, b, c) = (1.0, 1.5, 0.6);
        let cov = pair_expectation_mc(|u| u, |v| v, (a, b, c), 200_000, 7).unwrap();
        assert!(cov.z_score(c) < 4.0, "{cov:?}");
        // Var(uv) = ab + c^2 fixes the standard error itself.
        let expected_se = ((a * b + c * c) / 200_000.0f64).sqrt();
        assert!((cov.std_error / expected_se - 1.0).abs() < 0.05);
        let wick = pair_expectation_mc(|u| u * u, |v| v * v, (a, b, c), 200_000, 8).unwrap();
        assert!(wick.z_score(a * b + 2.0 * c * c) < 4.0, "{wick:?}");
        let var_u = pair_expectation_mc(|u| u * u, |_| 1.0, (a, b, c), 200_000, 9).unwrap();
        assert!(var_u.z_score(a) < 4.0);
    }

    #[test]
    fn seeded_runs_repeat_and_seeds_differ() {
        let run = |seed| pair_expectation_mc(f64::tanh, f64::tanh, (1.0, 1.0, 0.3), 1000, seed);
        assert_eq!(run(3).unwrap(), run(3).unwrap());
        assert_ne!(run(3).unwrap().mean, run(4).unwrap().mean);
    }

    #[test]
    fn invalid_input_is_an_error() {
        let id = |x: f64| x;
        assert!(matches!(
            pair_expectation_mc(id, id, (1.0, 1.0, 0.0), 1, 0),
            Err(MonteCarloError::TooFewSamples { .. })
        ));
        assert!(pair_expectation_mc(id, id, (1.0, 1.0, 1.5), 10, 0).is_err());
        assert!(pair_expectation_mc(id, id, (f64::NAN, 1.0, 0.0), 10, 0).is_err());
        assert!(matches!(
            pair_expectation_mc(|u: f64| 1.0 / (u - u), id, (1.0, 1.0, 0.0), 10, 0),
            Err(MonteCarloError::NonFiniteSample { .. })
        ));
    }
}
