//! The tilted measure of one population, P(h) ∝ 𝒩(h; m, K) e^{A(h)}, and what the saddle-point
//! equations need of it: tilted averages (forward equations) and the gradients of
//! ln Z = ln E[e^{A}] with respect to K and m (backward equations, THEORY.md §4.3 (B1)):
//! $$\partial_K\ln Z=\tfrac12\big(K^{-1}\langle(h-m)(h-m)^\top\rangle_PK^{-1}-K^{-1}\big),
//! \qquad \partial_m\ln Z=K^{-1}(\langle h\rangle_P-m).$$
//!
//! Two estimators:
//! * **Gaussian** (exact), when the tilt is a quadratic form hᵀQh + bᵀh + c
//!   ([`super::gaussian`]): with V = (I − 2QK)⁻¹, Σ_P = KV, r = ∂_m ln Z = V(b + 2Qm),
//!   ∂_K ln Z = VQ + ½ r rᵀ — no inverse of K, so an ill-conditioned input kernel costs
//!   nothing in accuracy;
//! * **importance sampling** with common random numbers: h_s = m + L z_s (LLᵀ = K) for
//!   standard normals z_s drawn once, self-normalised weights w_s ∝ e^{A(h_s)}, effective
//!   sample size 1/Σw_s². The gradients use the untilted weights 1/M as a control variate,
//!   ∂_K ln Z ≈ ½ L⁻ᵀ[Σ_s (w_s − 1/M) z_s z_sᵀ]L⁻¹, exactly zero without tilt: the
//!   backward equations multiply it by the width N, and the plain estimator's O(1/√M)
//!   noise would be amplified N-fold. Where the tilt is a form of smooth entry-wise
//!   functions, Price's theorem replaces this (B1) estimator ([`super::price`]).

use faer::Side;
use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::FiniteWidthError;
use super::gaussian::{GaussianForms, outer};
use crate::check::ir::{Expr, Theory};
use crate::numeric::matrix::{MatrixContext, Value, inverse};
use crate::numeric::price::TiltForm;
use crate::numeric::tall::{tall_gram, tall_times};
use crate::simulate::draw::{covariance_factor, factor_clipped};
use crate::simulate::units::{UnitEvaluator, UnitMemo};

/// How a population's tilted expectations are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimator {
    /// Exact: the tilt is quadratic and every average is of degree ≤ 2.
    Gaussian,
    /// Self-normalised importance sampling from 𝒩(m, K).
    ImportanceSampling,
}

impl Estimator {
    /// In words, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Estimator::Gaussian => "Gaussian closed form (exact)",
            Estimator::ImportanceSampling => "importance sampling",
        }
    }
}

/// The pieces a population's evaluation reads.
pub struct PopulationContext<'a, 'c> {
    /// The theory (user functions).
    pub theory: &'a Theory,
    /// The population's random variable.
    pub var: &'a str,
    /// Fields, conjugates, parameters and data.
    pub constants: &'a MatrixContext<'c>,
    /// Which term of the action, 1-based, for messages.
    pub term: usize,
}

enum State {
    Gaussian {
        mu: Array1<f64>,
        sigma: Array2<f64>,
        cov_gradient: Array2<f64>,
        mean_gradient: Array1<f64>,
    },
    Sampled {
        h: Array2<f64>,
        /// φ(h) and the like, computed for the tilt and reused by the averages.
        memo: UnitMemo,
        weights: Array1<f64>,
        ess: f64,
        cov_gradient: Array2<f64>,
        mean_gradient: Array1<f64>,
    },
}

/// One population's tilted measure at given fields and conjugates.
pub struct TiltedMeasure {
    state: State,
}

impl TiltedMeasure {
    /// The exact Gaussian tilted measure of a quadratic tilt.
    pub fn gaussian(
        ctx: &PopulationContext<'_, '_>,
        tilt: &Expr,
        k: &Array2<f64>,
        m: &Array1<f64>,
    ) -> Result<TiltedMeasure, FiniteWidthError> {
        let p = k.nrows();
        let forms = GaussianForms {
            theory: ctx.theory,
            var: ctx.var,
            patterns: p,
            constants: ctx.constants,
        };
        let quadratic = forms.tilt(tilt).ok_or_else(|| FiniteWidthError::Evaluate {
            what: format!("the tilt of term {}", ctx.term),
            reason: "it is not a quadratic form in the units' pre-activations".into(),
        })?;
        let (q, b) = (quadratic.q, quadratic.b);
        // normalisable iff I − 2LᵀQL ≻ 0
        let factor = covariance_factor(k, &format!("the covariance of term {}", ctx.term))
            .map_err(|e| FiniteWidthError::Evaluate {
                what: format!("the covariance of term {}", ctx.term),
                reason: e.to_string(),
            })?;
        let mut whitened = factor.t().dot(&q).dot(&factor) * -2.0;
        whitened.diag_mut().mapv_inplace(|v| v + 1.0);
        let smallest = smallest_eigenvalue(&whitened);
        if smallest.is_nan() || smallest <= 0.0 {
            return Err(FiniteWidthError::NotNormalisable {
                term: ctx.term,
                smallest,
            });
        }
        let mut w = q.dot(k) * -2.0;
        w.diag_mut().mapv_inplace(|v| v + 1.0);
        let v = inverse(&w).map_err(|_| FiniteWidthError::NotNormalisable {
            term: ctx.term,
            smallest,
        })?;
        let sigma = symmetric(&k.dot(&v));
        let r = v.dot(&(&b + &(q.dot(m) * 2.0)));
        let mu = m + &sigma.dot(&(&b + &(q.dot(m) * 2.0)));
        let cov_gradient = symmetric(&(v.dot(&q) + outer(&r, &r) * 0.5));
        Ok(TiltedMeasure {
            state: State::Gaussian {
                mu,
                sigma,
                cov_gradient,
                mean_gradient: r,
            },
        })
    }

    /// The importance-sampled tilted measure on the standard normals `z` (M×P).
    pub fn sampled(
        ctx: &PopulationContext<'_, '_>,
        tilt: &Expr,
        k: &Array2<f64>,
        m: &Array1<f64>,
        z: ArrayView2<'_, f64>,
        price: Option<&TiltForm>,
        with_gradients: bool,
    ) -> Result<TiltedMeasure, FiniteWidthError> {
        let what = format!("the covariance of term {}", ctx.term);
        let factor =
            sampling_factor(k, z.nrows()).map_err(|reason| FiniteWidthError::Evaluate {
                what: what.clone(),
                reason,
            })?;
        let mut h = tall_times(z, factor.t());
        h += &m.view().insert_axis(Axis(0));
        let memo = UnitMemo::default();
        let units = UnitEvaluator {
            theory: ctx.theory,
            var: ctx.var,
            h: h.view(),
            constants: ctx.constants,
            memo: Some(&memo),
            times: &[],
        };
        let a = units
            .per_unit(tilt)
            .map_err(|e| FiniteWidthError::Evaluate {
                what: format!("the tilt of term {}", ctx.term),
                reason: e.reason,
            })?;
        if let Some(bad) = a.iter().find(|v| !v.is_finite()) {
            return Err(FiniteWidthError::Evaluate {
                what: format!("the tilt of term {}", ctx.term),
                reason: format!("it came out {bad} on a sample"),
            });
        }
        let top = a.fold(f64::NEG_INFINITY, |acc, &v| acc.max(v));
        let mut weights = a.mapv(|v| (v - top).exp());
        let total = weights.sum();
        weights /= total;
        let ess = 1.0 / weights.dot(&weights);
        // L⁻¹, for the estimators that whiten (one Stein step, B1)
        let inverse_factor = || {
            inverse(&factor).map_err(|_| FiniteWidthError::Evaluate {
                what: what.clone(),
                reason: "it is singular: the backward equation needs its inverse".into(),
            })
        };
        let (cov_gradient, mean_gradient) = match price {
            _ if !with_gradients => (Array2::zeros((0, 0)), Array1::zeros(0)),
            Some(form) => {
                let whitened = if form.second_order() {
                    None
                } else {
                    Some(tall_times(z, inverse_factor()?.view()))
                };
                form.gradients(
                    ctx.theory,
                    ctx.var,
                    h.view(),
                    weights.view(),
                    whitened.as_ref().map(|w| w.view()),
                    ctx.constants,
                )
                .map_err(|reason| FiniteWidthError::Evaluate {
                    what: format!("the tilt's derivatives in term {}", ctx.term),
                    reason,
                })?
            }
            None => {
                let samples = z.nrows() as f64;
                let excess = weights.mapv(|w| w - 1.0 / samples);
                // ½ L⁻ᵀ Zᵀ diag(w − 1/M) Z L⁻¹ and L⁻ᵀ Zᵀ (w − 1/M)
                let inv_factor = inverse_factor()?;
                let weighted = &z * &excess.view().insert_axis(Axis(1));
                let second = tall_gram(z, weighted.view());
                (
                    symmetric(&inv_factor.t().dot(&second).dot(&inv_factor)) * 0.5,
                    inv_factor.t().dot(&z.t().dot(&excess)),
                )
            }
        };
        Ok(TiltedMeasure {
            state: State::Sampled {
                h,
                memo,
                weights,
                ess,
                cov_gradient,
                mean_gradient,
            },
        })
    }

    /// ⟨body⟩ under the tilted measure.
    pub fn average(
        &self,
        ctx: &PopulationContext<'_, '_>,
        body: &Expr,
    ) -> Result<Value, FiniteWidthError> {
        match &self.state {
            State::Gaussian { mu, sigma, .. } => {
                let forms = GaussianForms {
                    theory: ctx.theory,
                    var: ctx.var,
                    patterns: mu.len(),
                    constants: ctx.constants,
                };
                forms
                    .moment(body, mu, sigma)
                    .ok_or_else(|| FiniteWidthError::Evaluate {
                        what: format!("an average over the units of term {}", ctx.term),
                        reason: "its integrand is not of degree ≤ 2 in the pre-activations".into(),
                    })
            }
            State::Sampled {
                h, memo, weights, ..
            } => {
                let units = UnitEvaluator {
                    theory: ctx.theory,
                    var: ctx.var,
                    h: h.view(),
                    constants: ctx.constants,
                    memo: Some(memo),
                    times: &[],
                };
                units.weighted_average(body, Some(weights)).map_err(|e| {
                    FiniteWidthError::Evaluate {
                        what: format!("an average over the units of term {}", ctx.term),
                        reason: e.reason,
                    }
                })
            }
        }
    }

    /// ∂ ln Z / ∂K (full-matrix convention, symmetric); empty for a sampled measure made
    /// without gradients.
    pub fn covariance_gradient(&self) -> &Array2<f64> {
        match &self.state {
            State::Gaussian { cov_gradient, .. } | State::Sampled { cov_gradient, .. } => {
                cov_gradient
            }
        }
    }

    /// ∂ ln Z / ∂m.
    pub fn mean_gradient(&self) -> &Array1<f64> {
        match &self.state {
            State::Gaussian { mean_gradient, .. } | State::Sampled { mean_gradient, .. } => {
                mean_gradient
            }
        }
    }

    /// The samples h (M×P) of a sampled measure (None when exact).
    pub fn samples(&self) -> Option<&Array2<f64>> {
        match &self.state {
            State::Gaussian { .. } => None,
            State::Sampled { h, .. } => Some(h),
        }
    }

    /// The effective sample size of the importance weights (None when exact).
    pub fn effective_samples(&self) -> Option<f64> {
        match &self.state {
            State::Gaussian { .. } => None,
            State::Sampled { ess, .. } => Some(*ess),
        }
    }
}

/// L with LLᵀ = K for sampling: Cholesky, or U√Λ with the negative eigenvalues of a
/// sampled kernel clipped to zero where they are within the Monte Carlo resolution of the
/// M samples that made it (|λ| ≤ 10 λ_max/√M): the kernels' sampled tilt corrections are
/// O(1/√M) in every direction, and the weakest directions of a kernel on many patterns can
/// be smaller than that.
pub(super) fn sampling_factor(k: &Array2<f64>, samples: usize) -> Result<Array2<f64>, String> {
    let resolution = 10.0 / (samples.max(1) as f64).sqrt();
    factor_clipped(k, resolution.max(1e-9)).map_err(|reason| {
        format!("{reason}, beyond the Monte Carlo resolution of {samples} samples")
    })
}

fn symmetric(m: &Array2<f64>) -> Array2<f64> {
    (m + &m.t()) * 0.5
}

/// The smallest eigenvalue of a symmetric matrix.
fn smallest_eigenvalue(m: &Array2<f64>) -> f64 {
    let p = m.nrows();
    let a = faer::Mat::from_fn(p, p, |i, j| 0.5 * (m[[i, j]] + m[[j, i]]));
    match a.self_adjoint_eigenvalues(Side::Lower) {
        Ok(values) => values.into_iter().fold(f64::INFINITY, f64::min),
        Err(_) => f64::NAN,
    }
}
