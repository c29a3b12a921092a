//! Gaussian expectations $\mathbb E[f(h)\mid h\sim\mathcal N(\mu,\Sigma)]$ by tensor-product
//! Gauss–Hermite quadrature, generic over the scalar so that derivatives with respect to $\mu$,
//! $\Sigma$ and everything inside $f$ flow through.
//!
//! With the Cholesky factor $\Sigma=LL^\top$ and $(x_i,w_i)$ the Gauss–Hermite rule of order $n$
//! for the weight $e^{-x^2}$,
//! $$\mathbb E[f(h)]\approx\pi^{-k/2}\sum_{i_1..i_k}w_{i_1}\cdots w_{i_k}\,
//!   f\big(\mu+\sqrt2\,L\,(x_{i_1},\dots,x_{i_k})\big),$$
//! $k$ the dimension: $P$ for `h ~ N(m, K)` ($\Sigma=\mathrm{sym}(K)$), $P\,n_t$ for a two-time
//! family `h ~ N(0, C)`, where $h=(h[t])_t$ stacks the $n_t$ times the integrand uses (sorted)
//! and $\Sigma$ has the blocks $\mathrm{sym}(C)[t,s]$. The number of nodes $n^k$ is capped at
//! [`MAX_NODES`].
//!
//! `ln E[exp(a(h))]` (a cumulant-generating function) is a log-mean-exp, accumulated in one
//! pass with a running maximum $M$ of the exponents:
//! $\ln\sum_i W_ie^{a_i}=M+\ln\sum_iW_ie^{a_i-M}$, so large tilts neither overflow nor lose
//! the small terms.
//!
//! Before the quadrature the integrand is *staged* (module `integrand`).

use std::collections::BTreeSet;
use std::f64::consts::{PI, SQRT_2};

use num_dual::DualNum;

use super::ActionError;
use super::dense::Dense;
use super::eval::Evaluation;
use super::integrand::{Integrand, Memo};
use super::ops::{self, context, linear_algebra};
use crate::check::ir::{Covariance, Expr};

/// Largest number of quadrature nodes of one expectation.
pub const MAX_NODES: usize = 2_000_000;

/// What an expectation computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// $\mathbb E[f]$.
    Mean,
    /// $\ln\mathbb E[e^{a}]$ of a scalar exponent $a$.
    LogMeanExp,
}

impl<D: DualNum<Primitive = f64>> Evaluation<'_, D> {
    /// `E[body | var ~ N(mean, cov)]` (`expr` is the expectation), or `ln E[exp(body) | …]`.
    #[expect(clippy::too_many_arguments, reason = "the parts of one expectation")]
    pub(super) fn expectation(
        &mut self,
        expr: &Expr,
        var: &str,
        body: &Expr,
        mean: &Expr,
        cov: &Covariance,
        scope: &[(String, i64)],
        args: &[D],
        mode: Mode,
    ) -> Result<Dense<D>, ActionError> {
        let mut used = BTreeSet::new();
        let integrand = self.stage(body, var, scope, args, &mut used)?;
        let untimed = used.remove(&None);
        let times: Vec<i64> = used.into_iter().flatten().collect();
        let patterns = self.evaluator.patterns();
        let unsupported = |reason: String| ActionError::Unsupported {
            context: context(&format!("expectation over `{var}`"), expr.span),
            reason,
        };
        let (covariance, what) = match cov {
            Covariance::Matrix(cov) => {
                if !times.is_empty() {
                    return Err(unsupported(format!(
                        "`{var}[t]` indexes a single random vector"
                    )));
                }
                let value = self.eval(cov, scope, args)?;
                let value = value
                    .symmetrised()
                    .map_err(linear_algebra("covariance", cov))?;
                if value.shape() != (patterns, patterns) {
                    return Err(unsupported(format!(
                        "the covariance is not {patterns}×{patterns}"
                    )));
                }
                (value, format!("covariance of the expectation over `{var}`"))
            }
            Covariance::Family(field) => {
                if untimed {
                    return Err(unsupported(format!(
                        "`{var}` is a family over times: write `{var}[t]`"
                    )));
                }
                let mut blocks = Vec::with_capacity(times.len() * times.len());
                for &t in &times {
                    for &s in &times {
                        blocks.push(self.field_value(*field, vec![t, s])?);
                    }
                }
                let n = times.len();
                let value = Dense::from_fn(patterns * n, patterns * n, |r, c| {
                    blocks[(r / patterns) * n + c / patterns]
                        .get(r % patterns, c % patterns)
                        .clone()
                });
                let value = value
                    .symmetrised()
                    .map_err(linear_algebra("covariance", expr))?;
                let name = &self.evaluator.theory.fields[*field].name;
                let times_list: Vec<String> = times.iter().map(i64::to_string).collect();
                let what = format!(
                    "covariance of the expectation over `{var}` (blocks {name}[t, s] for t, s in {{{}}})",
                    times_list.join(", ")
                );
                (value, what)
            }
        };
        let mut whitening = Vec::new();
        integrand.whitening_times(&mut whitening);
        if let Some(over) = whitening.iter().find(|over| **over != times) {
            return Err(unsupported(format!(
                "`{var}` whitened over the times {over:?} in an integrand that reads the times {times:?}"
            )));
        }
        let whiten = !whitening.is_empty();
        let blocks = times.len().max(1);
        let mean = self.eval(mean, scope, args)?;
        let mean: Vec<D> = match mean.shape() {
            (1, 1) => vec![mean.get(0, 0).clone(); covariance.rows()],
            shape if shape == (patterns, 1) => {
                (0..blocks).flat_map(|_| mean.entries().to_vec()).collect()
            }
            shape => return Err(unsupported(format!("the mean is {}×{}", shape.0, shape.1))),
        };
        let order = self.evaluator.rule.order();
        let nodes =
            node_count(order, covariance.rows()).ok_or_else(|| ActionError::TooManyNodes {
                context: context(&what, expr.span),
                order,
                dimensions: covariance.rows(),
                limit: MAX_NODES,
            })?;
        let factor = covariance
            .cholesky()
            .map_err(|source| ActionError::LinearAlgebra {
                context: context(&what, expr.span),
                source,
            })?;
        self.quadrature(
            &integrand, &mean, &factor, &times, whiten, mode, expr, nodes,
        )
    }

    /// The tensor-product Gauss–Hermite sum over $h=\mu+\sqrt2Lz$ (`nodes` = order^dims).
    #[expect(clippy::too_many_arguments, reason = "the parts of one expectation")]
    fn quadrature(
        &mut self,
        integrand: &Integrand<'_, D>,
        mean: &[D],
        factor: &Dense<D>,
        times: &[i64],
        whiten: bool,
        mode: Mode,
        expr: &Expr,
        nodes: usize,
    ) -> Result<Dense<D>, ActionError> {
        let rule = &self.evaluator.rule;
        let (order, dims) = (rule.order(), factor.rows());
        let normalisation = PI.powf(-0.5 * dims as f64);
        let patterns = self.evaluator.patterns();
        let mut counter = vec![0_usize; dims];
        let mut memo = Memo::new();
        let mut total: Option<Dense<D>> = None;
        let (mut max_exponent, mut scaled_sum) = (f64::NEG_INFINITY, D::zero());
        for _ in 0..nodes {
            let weight =
                normalisation * counter.iter().map(|&k| rule.weights()[k]).product::<f64>();
            let z: Vec<f64> = counter.iter().map(|&k| SQRT_2 * rule.nodes()[k]).collect();
            let h: Vec<D> = (0..dims)
                .map(|i| {
                    let mut value = mean[i].clone();
                    for (j, &zj) in z.iter().enumerate().take(i + 1) {
                        value += factor.get(i, j).clone() * zj;
                    }
                    value
                })
                .collect();
            memo.clear();
            let blocks: Vec<Dense<D>> = h
                .chunks(patterns)
                .map(|block| Dense::from_fn(block.len(), 1, |i, _| block[i].clone()))
                .collect();
            // ĥ = Σ⁻¹(h − μ) = √2 L⁻ᵀ z: one back substitution with Lᵀ.
            let whitened: Vec<Dense<D>> = if whiten {
                let mut w = vec![D::zero(); dims];
                for i in (0..dims).rev() {
                    let mut value = D::from(z[i]);
                    for (j, wj) in w.iter().enumerate().skip(i + 1) {
                        value -= factor.get(j, i).clone() * wj.clone();
                    }
                    w[i] = value / factor.get(i, i).clone();
                }
                w.chunks(patterns)
                    .map(|block| Dense::from_fn(block.len(), 1, |i, _| block[i].clone()))
                    .collect()
            } else {
                Vec::new()
            };
            let value = self.integrand(integrand, &blocks, &whitened, times, &mut memo)?;
            match mode {
                Mode::Mean => {
                    let weighted = value.map(|x| x.clone() * weight);
                    total = Some(match total {
                        None => weighted,
                        Some(sum) => ops::add(&sum, &weighted, 1.0, expr)?,
                    });
                }
                Mode::LogMeanExp => {
                    let exponent =
                        value
                            .as_scalar()
                            .cloned()
                            .ok_or_else(|| ActionError::Unsupported {
                                context: context("ln E[exp(…)]", expr.span),
                                reason: "the exponent is not a scalar".into(),
                            })?;
                    let re = exponent.re();
                    if !re.is_finite() {
                        return Err(ActionError::NotFinite {
                            what: context(
                                "the exponent of ln E[exp(…)] at a quadrature node",
                                expr.span,
                            ),
                            value: re,
                        });
                    }
                    if re > max_exponent {
                        scaled_sum *= (max_exponent - re).exp();
                        max_exponent = re;
                    }
                    scaled_sum += (exponent - max_exponent).exp() * weight;
                }
            }
            // Odometer: the next multi-index of the tensor grid.
            for digit in counter.iter_mut() {
                *digit += 1;
                if *digit < order {
                    break;
                }
                *digit = 0;
            }
        }
        let value = match mode {
            Mode::Mean => total.unwrap_or_else(|| Dense::scalar(D::zero())),
            Mode::LogMeanExp => Dense::scalar(scaled_sum.ln() + max_exponent),
        };
        ops::finite(value, "the expectation", expr)
    }
}

/// `order^dims` if it is at most [`MAX_NODES`].
fn node_count(order: usize, dims: usize) -> Option<usize> {
    u32::try_from(dims)
        .ok()
        .and_then(|d| order.checked_pow(d))
        .filter(|&n| n <= MAX_NODES)
}
