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
//!
//! An integrand with jumps or kinks (`sign`, `step`, `relu`, `abs` of an affine function of one
//! coordinate, module `breakpoints`) would make Gauss–Hermite converge only algebraically.
//! Its expectation is instead a nested sum over standard normal coordinates $z_0,z_1,\dots$,
//! $h=\mu+Lz$: coordinate $i$ breaks at $z_i=(b-\mu_i-\sum_{j<i}L_{ij}z_j)/L_{ii}$, a point
//! that moves with the outer coordinates; each line is cut there, its two tails integrated by
//! the half-range Hermite rule and the pieces between by Gauss–Legendre, each piece with half
//! the quadrature order (so a line cut once has about as many nodes as the plain rule)
//! ([`crate::numeric::gauss_rule`]), so every piece is smooth. The cuts are functions of
//! $\mu$ and $L$, so AD through the nodes sees the measure of a step too (the whole derivative of
//! $\mathbb E[\mathrm{step}(h)]$ is the motion of its cut).

use std::collections::BTreeSet;
use std::f64::consts::{PI, SQRT_2};

use num_dual::DualNum;

use super::ActionError;
use super::dense::Dense;
use super::eval::Evaluation;
use super::integrand::{Integrand, Memo};
use super::ops::{self, context, linear_algebra};
use super::quadrature::{Mode, PieceRules, piece_order, pieces};
use crate::check::ir::{Covariance, Expr};

/// Largest number of quadrature nodes of one expectation.
pub const MAX_NODES: usize = 2_000_000;

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
        let dims = covariance.rows();
        // Cut each line where the integrand jumps or kinks; otherwise the plain tensor grid.
        let cuts = self.breakpoints(&integrand, patterns, &times);
        // A split line has at most one piece more than its breakpoints on either side of 0,
        // each with the piece order.
        let per_dimension = cuts.as_ref().map_or(order, |points| {
            piece_order(order) * (points.iter().map(Vec::len).max().unwrap_or(0) + 2)
        });
        let nodes = node_count(per_dimension, dims).ok_or_else(|| ActionError::TooManyNodes {
            context: context(&what, expr.span),
            order: per_dimension,
            dimensions: dims,
            limit: MAX_NODES,
        })?;
        let factor = covariance
            .cholesky()
            .map_err(|source| ActionError::LinearAlgebra {
                context: context(&what, expr.span),
                source,
            })?;
        let expectation = Expectation {
            integrand: &integrand,
            mean: &mean,
            factor: &factor,
            times: &times,
            whiten,
            expr,
        };
        let mut sum = WeightedSum::new(mode);
        match cuts {
            Some(points) => {
                let rules = self.evaluator.piece_rules()?;
                let (mut z, mut h) = (Vec::with_capacity(dims), Vec::with_capacity(dims));
                let mut memo = Memo::new();
                self.split_quadrature(
                    &expectation,
                    &points,
                    rules,
                    &mut z,
                    &mut h,
                    D::one(),
                    &mut memo,
                    &mut sum,
                )?;
            }
            None => self.quadrature(&expectation, nodes, &mut sum)?,
        }
        sum.finish(expr)
    }

    /// The tensor-product Gauss–Hermite sum over $h=\mu+\sqrt2Lx$ (`nodes` = order^dims).
    fn quadrature(
        &mut self,
        expectation: &Expectation<'_, '_, D>,
        nodes: usize,
        sum: &mut WeightedSum<D>,
    ) -> Result<(), ActionError> {
        let rule = &self.evaluator.rule;
        let (order, dims) = (rule.order(), expectation.factor.rows());
        let normalisation = PI.powf(-0.5 * dims as f64);
        let mut counter = vec![0_usize; dims];
        let mut memo = Memo::new();
        for _ in 0..nodes {
            let rule = &self.evaluator.rule;
            let weight =
                normalisation * counter.iter().map(|&k| rule.weights()[k]).product::<f64>();
            // Standard normal coordinates z = √2 x.
            let z: Vec<f64> = counter.iter().map(|&k| SQRT_2 * rule.nodes()[k]).collect();
            let h: Vec<D> = (0..dims)
                .map(|i| {
                    let mut value = expectation.mean[i].clone();
                    for (j, &zj) in z.iter().enumerate().take(i + 1) {
                        value += expectation.factor.get(i, j).clone() * zj;
                    }
                    value
                })
                .collect();
            let value = self.at_node(expectation, &h, |i| D::from(z[i]), &mut memo)?;
            sum.add(value, weight, expectation.expr)?;
            // Odometer: the next multi-index of the tensor grid.
            for digit in counter.iter_mut() {
                *digit += 1;
                if *digit < order {
                    break;
                }
                *digit = 0;
            }
        }
        Ok(())
    }

    /// The nested sum over standard normal coordinates $z_0, z_1, \dots$ with $h=\mu+Lz$:
    /// coordinate $i$ breaks where $h_i=b$, i.e. at
    /// $z_i=(b-\mu_i-\sum_{j<i}L_{ij}z_j)/L_{ii}$, a point that moves with the outer
    /// coordinates; the line is cut there and each piece gets its own rule (`pieces`).
    #[expect(
        clippy::too_many_arguments,
        reason = "the state of one level of the recursion"
    )]
    fn split_quadrature(
        &mut self,
        expectation: &Expectation<'_, '_, D>,
        points: &[Vec<D>],
        rules: &PieceRules,
        z: &mut Vec<D>,
        h: &mut Vec<D>,
        weight: D,
        memo: &mut Memo<D>,
        sum: &mut WeightedSum<D>,
    ) -> Result<(), ActionError> {
        let (mean, factor) = (expectation.mean, expectation.factor);
        let level = z.len();
        if level == factor.rows() {
            let value = self.at_node(expectation, h, |i| z[i].clone(), memo)?;
            return sum.add(value, weight, expectation.expr);
        }
        // h_i = shift + L_ii z_i, the shift fixed by the outer coordinates.
        let mut shift = mean[level].clone();
        for (j, zj) in z.iter().enumerate() {
            shift += factor.get(level, j).clone() * zj.clone();
        }
        let diagonal = factor.get(level, level).clone();
        // L_ii > 0 keeps the breakpoints' order.
        let cuts: Vec<D> = points[level]
            .iter()
            .map(|b| (b.clone() - shift.clone()) / diagonal.clone())
            .collect();
        for (node, w) in pieces(cuts, rules) {
            h.push(shift.clone() + diagonal.clone() * node.clone());
            z.push(node);
            let result = self.split_quadrature(
                expectation,
                points,
                rules,
                z,
                h,
                weight.clone() * w,
                memo,
                sum,
            );
            z.pop();
            h.pop();
            result?;
        }
        Ok(())
    }

    /// The integrand at $h$ (stacked blocks), with $\hat h=\Sigma^{-1}(h-\mu)=L^{-\top}z$ when it
    /// is read.
    fn at_node(
        &mut self,
        expectation: &Expectation<'_, '_, D>,
        h: &[D],
        z: impl Fn(usize) -> D,
        memo: &mut Memo<D>,
    ) -> Result<Dense<D>, ActionError> {
        let patterns = self.evaluator.patterns();
        let factor = expectation.factor;
        let dims = factor.rows();
        memo.clear();
        let blocks: Vec<Dense<D>> = h
            .chunks(patterns)
            .map(|block| Dense::from_fn(block.len(), 1, |i, _| block[i].clone()))
            .collect();
        // ĥ = L⁻ᵀ z: one back substitution with Lᵀ.
        let whitened: Vec<Dense<D>> = if expectation.whiten {
            let mut w = vec![D::zero(); dims];
            for i in (0..dims).rev() {
                let mut value = z(i);
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
        self.integrand(
            expectation.integrand,
            &blocks,
            &whitened,
            expectation.times,
            memo,
        )
    }
}

/// The parts of one expectation that every quadrature node reads.
struct Expectation<'a, 'e, D> {
    integrand: &'a Integrand<'e, D>,
    mean: &'a [D],
    /// The Cholesky factor $L$ of the covariance.
    factor: &'a Dense<D>,
    times: &'a [i64],
    whiten: bool,
    expr: &'a Expr,
}

/// $\sum_iW_if_i$, or $\ln\sum_iW_ie^{a_i}$ accumulated with a running maximum.
struct WeightedSum<D> {
    mode: Mode,
    total: Option<Dense<D>>,
    max_exponent: f64,
    scaled_sum: D,
}

impl<D: DualNum<Primitive = f64>> WeightedSum<D> {
    fn new(mode: Mode) -> Self {
        WeightedSum {
            mode,
            total: None,
            max_exponent: f64::NEG_INFINITY,
            scaled_sum: D::zero(),
        }
    }

    /// Adds the value at one node with its weight (`f64` or `D`).
    fn add<W>(&mut self, value: Dense<D>, weight: W, expr: &Expr) -> Result<(), ActionError>
    where
        W: Clone,
        D: std::ops::Mul<W, Output = D>,
    {
        match self.mode {
            Mode::Mean => {
                let weighted = value.map(|x| x.clone() * weight.clone());
                self.total = Some(match self.total.take() {
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
                if re > self.max_exponent {
                    self.scaled_sum *= (self.max_exponent - re).exp();
                    self.max_exponent = re;
                }
                self.scaled_sum += (exponent - self.max_exponent).exp() * weight;
            }
        }
        Ok(())
    }

    fn finish(self, expr: &Expr) -> Result<Dense<D>, ActionError> {
        let value = match self.mode {
            Mode::Mean => self.total.unwrap_or_else(|| Dense::scalar(D::zero())),
            Mode::LogMeanExp => Dense::scalar(self.scaled_sum.ln() + self.max_exponent),
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
