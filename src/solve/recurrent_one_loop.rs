//! Prior fluctuations of a recurrent network at one loop: the O(1/N) covariance of every
//! block C[t, s] (t, s ≥ 1) when one weight matrix is shared over time (THEORY.md §6 (iii)).
//!
//! The recurrent network h(t) = W f(h(t−1)) + ξ(t), Wᵢⱼ ~ 𝒩(0, g/N), has the empirical
//! kernels C[t, s] = D[t, s] + (g/N) Σᵢ f(hᵢ(t−1)) f(hᵢ(s−1))ᵀ, and its action is the
//! large-deviation functional of all blocks at once: one unit's whole trajectory, over every
//! time and pattern, is Gaussian with the covariance C. Around the NNGP point the action's
//! Hessian in (C, C̃) has no C–C block, so the fluctuations u of the free entries (the
//! blocks t ≤ s as one symmetric (TP)×(TP) matrix) obey u = G u + ξ with
//!
//! * the noise of the units' average, N·Cov(ξ_IJ, ξ_KL) = g² (⟨f_I f_J f_K f_L⟩ − ⟨f_I f_J⟩⟨f_K f_L⟩),
//!   where f_I = f(h(t−1)_a) for I = (t, a): a four-point function *across times* — the
//!   correlations the shared weights carry, which a deep network (independent layers) has
//!   only within one layer;
//! * the propagation G = ∂F/∂C of the mean-field map F_IJ = D_IJ + g⟨f_I f_J⟩, by Stein's
//!   identity ∂⟨h⟩/∂Σ = ½⟨h (Σ⁻¹zzᵀΣ⁻¹ − Σ⁻¹)⟩ (values of f only, no derivatives);
//!
//! so N·Cov(u) = (I − G)⁻¹ N·Cov(ξ) (I − G)⁻ᵀ — the layered formula of [`super::one_loop`]
//! with the noise of all blocks correlated. The expectations are tensor Gauss–Hermite sums
//! over the (at most four) distinct variables they read, factorised where groups of them
//! are uncorrelated (times no shared drive links): exact to rounding for polynomial f,
//! convergent for smooth f (slowly for steep ones: the error is estimated by repeating the
//! computation at two thirds of the order), not meant for steps or signs.
//!
//! Where the NNGP cross-time kernels vanish (odd f, no bias, input at t = 0 only) the
//! equal-time blocks decouple from the cross-time ones at this order, and their N·Var is the
//! deep network's; a bias shared over time makes the recurrent readout kernel fluctuate more.

use std::collections::HashMap;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::numeric::quad::GaussHermite;

/// Why the recurrent one-loop covariance could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum RecurrentOneLoopError {
    /// A setting or an input out of range.
    #[error("{0}")]
    Setting(String),
    /// The unit output could not be evaluated.
    #[error("evaluating the unit output f: {0}")]
    Output(String),
    /// A covariance the expectations cannot use.
    #[error("{0}")]
    Covariance(String),
}

/// The unit output f, applied to every value of a slice.
pub type UnitOutput<'a> = dyn Fn(&[f64]) -> Result<Vec<f64>, String> + Sync + 'a;

/// N·Cov of every free entry of the blocks C[t, s], t, s = 1…T.
#[derive(Debug, Clone)]
pub struct RecurrentOneLoop {
    /// The number of patterns P.
    pub patterns: usize,
    /// The last time T.
    pub last_time: usize,
    /// N·Cov over the free coordinates (I, J), I ≤ J, I = (t − 1)·P + a.
    pub n_covariance: Array2<f64>,
    /// The largest change of an N·Var between the Gauss–Hermite order used and two thirds of
    /// it: the quadrature's error, by its convergence.
    pub quadrature_error: f64,
    coordinates: HashMap<(usize, usize), usize>,
}

impl RecurrentOneLoop {
    /// N·Var of every entry of the block C[t, s] (P×P; entry (a, b) belongs to pattern a at
    /// time t and pattern b at time s), t, s in 1…T.
    pub fn block_variance(&self, t: usize, s: usize) -> Option<Array2<f64>> {
        if !(1..=self.last_time).contains(&t) || !(1..=self.last_time).contains(&s) {
            return None;
        }
        let p = self.patterns;
        Some(Array2::from_shape_fn((p, p), |(a, b)| {
            let i = (t - 1) * p + a;
            let j = (s - 1) * p + b;
            let c = self.coordinates[&(i.min(j), i.max(j))];
            self.n_covariance[(c, c)]
        }))
    }
}

/// The one-loop N·Cov of a recurrent network's blocks.
///
/// `kernel` is the NNGP kernel over (time, pattern) for times 0…T, time-major
/// (((T+1)·P)², block (t, s) at rows t·P…, columns s·P…); `gain` is g = N·Var(Wᵢⱼ); `order`
/// the Gauss–Hermite order per dimension of the four-point functions (the two-point ones
/// use 4·order).
pub fn recurrent_prior_covariance(
    kernel: ArrayView2<f64>,
    patterns: usize,
    gain: f64,
    output: &UnitOutput,
    order: usize,
) -> Result<RecurrentOneLoop, RecurrentOneLoopError> {
    let p = patterns;
    let n = kernel.nrows();
    if p == 0 || n != kernel.ncols() || !n.is_multiple_of(p) || n / p < 2 {
        return Err(RecurrentOneLoopError::Setting(format!(
            "the kernel over (time, pattern) is {}×{}: a square matrix of P = {p} patterns at \
             two or more times is needed",
            kernel.nrows(),
            kernel.ncols()
        )));
    }
    if !(gain.is_finite() && gain >= 0.0) {
        return Err(RecurrentOneLoopError::Setting(format!(
            "the weight variance g = {gain} is not a variance"
        )));
    }
    if !(2..=64).contains(&order) {
        return Err(RecurrentOneLoopError::Setting(format!(
            "the Gauss–Hermite order {order} is not in 2..=64"
        )));
    }
    if kernel.iter().any(|v| !v.is_finite()) {
        return Err(RecurrentOneLoopError::Covariance(
            "the kernel has an entry that is not finite".into(),
        ));
    }
    let last_time = n / p - 1;
    let (n_covariance, coordinates) = covariance_at(kernel, p, gain, output, order)?;
    // the same at two thirds of the order: the rule's error, by its change
    let (check, _) = covariance_at(kernel, p, gain, output, (2 * order / 3).max(2))?;
    let quadrature_error = n_covariance
        .diag()
        .iter()
        .zip(check.diag())
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    Ok(RecurrentOneLoop {
        patterns: p,
        last_time,
        n_covariance,
        quadrature_error,
        coordinates,
    })
}

/// N·Cov over the free coordinates and the coordinates' positions, at one quadrature order.
type CovarianceAt = (Array2<f64>, HashMap<(usize, usize), usize>);

fn covariance_at(
    kernel: ArrayView2<f64>,
    p: usize,
    gain: f64,
    output: &UnitOutput,
    order: usize,
) -> Result<CovarianceAt, RecurrentOneLoopError> {
    let last_time = kernel.nrows() / p - 1;
    // f_I reads the variable I = (t − 1)·P + a of the kernel: the first T·P rows
    let vars = last_time * p;
    let mut coordinates = HashMap::new();
    let mut pairs = Vec::new();
    for i in 0..vars {
        for j in i..vars {
            coordinates.insert((i, j), pairs.len());
            pairs.push((i, j));
        }
    }
    let m = pairs.len();
    let expectations = Expectations::new(kernel, output, order)?;

    // G: F_IJ = D_IJ + g⟨f_I f_J⟩ reads Σ_II, Σ_JJ, Σ_IJ of the variables I and J, which are
    // the free coordinates (I − P, J − P) where both are at a time ≥ 1
    let coordinate = |a: usize, b: usize| -> Option<usize> {
        (a >= p && b >= p).then(|| coordinates[&((a - p).min(b - p), (a - p).max(b - p))])
    };
    let mut propagation = faer::Mat::<f64>::identity(m, m);
    for (row, &(i, j)) in pairs.iter().enumerate() {
        for ((a, b), derivative) in expectations.covariance_derivatives(i, j)? {
            if let Some(col) = coordinate(a, b) {
                propagation[(row, col)] -= gain * derivative;
            }
        }
    }
    // N·Cov(ξ): every four-point moment once (by its multiset of variables), in parallel
    let mut keys: Vec<Vec<usize>> = Vec::new();
    for (x, &(i, j)) in pairs.iter().enumerate() {
        keys.push(sorted(&[i, j]));
        for &(k, l) in &pairs[x..] {
            keys.push(sorted(&[i, j, k, l]));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let values: Vec<f64> = keys
        .par_iter()
        .map(|key| expectations.moment(key))
        .collect::<Result<_, _>>()?;
    let moments: HashMap<Vec<usize>, f64> = keys.into_iter().zip(values).collect();
    let two_point: Vec<f64> = pairs
        .iter()
        .map(|&(i, j)| moments[&sorted(&[i, j])])
        .collect();
    let mut noise = faer::Mat::<f64>::zeros(m, m);
    for (x, &(i, j)) in pairs.iter().enumerate() {
        for (y, &(k, l)) in pairs.iter().enumerate().skip(x) {
            let four = moments[&sorted(&[i, j, k, l])];
            let v = gain * gain * (four - two_point[x] * two_point[y]);
            noise[(x, y)] = v;
            noise[(y, x)] = v;
        }
    }
    use faer::linalg::solvers::Solve;
    let lu = propagation.partial_piv_lu();
    let left = lu.solve(&noise);
    let covariance = lu.solve(left.transpose().to_owned());
    let n_covariance = Array2::from_shape_fn((m, m), |(a, b)| {
        0.5 * (covariance[(a, b)] + covariance[(b, a)])
    });
    if n_covariance.iter().any(|v| !v.is_finite()) {
        return Err(RecurrentOneLoopError::Covariance(
            "the propagation I − G is singular".into(),
        ));
    }
    Ok((n_covariance, coordinates))
}

/// The connected groups of `vars` under `linked` (union by repeated merging: at most four).
fn independent_groups(vars: &[usize], linked: impl Fn(usize, usize) -> bool) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for &v in vars {
        let (mut joined, rest): (Vec<Vec<usize>>, Vec<Vec<usize>>) = groups
            .into_iter()
            .partition(|g| g.iter().any(|&u| linked(u, v)));
        let mut group: Vec<usize> = joined.drain(..).flatten().collect();
        group.push(v);
        groups = rest;
        groups.push(group);
    }
    groups
}

/// ∂⟨f_I f_J⟩/∂Σ_ab with the entry (a, b) it is taken at.
type CovarianceDerivative = ((usize, usize), f64);

fn sorted(vars: &[usize]) -> Vec<usize> {
    let mut key = vars.to_vec();
    key.sort_unstable();
    key
}

/// Gaussian expectations of products of f over the kernel's variables.
struct Expectations<'a> {
    kernel: ArrayView2<'a, f64>,
    output: &'a UnitOutput<'a>,
    rule: std::sync::Arc<GaussHermite>,
    fine: std::sync::Arc<GaussHermite>,
}

impl<'a> Expectations<'a> {
    fn new(
        kernel: ArrayView2<'a, f64>,
        output: &'a UnitOutput<'a>,
        order: usize,
    ) -> Result<Self, RecurrentOneLoopError> {
        let rule = |n: usize| {
            GaussHermite::shared(n).map_err(|e| RecurrentOneLoopError::Setting(e.to_string()))
        };
        Ok(Expectations {
            kernel,
            output,
            rule: rule(order)?,
            fine: rule(4 * order)?,
        })
    }

    fn evaluate(&self, values: &[f64]) -> Result<Vec<f64>, RecurrentOneLoopError> {
        let out = (self.output)(values).map_err(RecurrentOneLoopError::Output)?;
        if out.len() != values.len() {
            return Err(RecurrentOneLoopError::Output(format!(
                "{} values for {} arguments",
                out.len(),
                values.len()
            )));
        }
        if let Some(bad) = out.iter().find(|v| !v.is_finite()) {
            return Err(RecurrentOneLoopError::Output(format!(
                "a value came out {bad}"
            )));
        }
        Ok(out)
    }

    /// L with L Lᵀ = Σ over `vars` (an eigendecomposition: Σ may be singular).
    fn factor(&self, vars: &[usize]) -> Result<Array2<f64>, RecurrentOneLoopError> {
        let k = vars.len();
        let sigma = faer::Mat::from_fn(k, k, |a, b| {
            0.5 * (self.kernel[(vars[a], vars[b])] + self.kernel[(vars[b], vars[a])])
        });
        let eigen = sigma
            .self_adjoint_eigen(faer::Side::Lower)
            .map_err(|e| RecurrentOneLoopError::Covariance(format!("{e:?}")))?;
        let s = eigen.S().column_vector();
        let largest = (0..k).map(|i| s[i].abs()).fold(0.0, f64::max);
        if (0..k).any(|i| s[i] < -1e-9 * largest.max(f64::MIN_POSITIVE)) {
            return Err(RecurrentOneLoopError::Covariance(format!(
                "the kernel of the variables {vars:?} is not positive semi-definite"
            )));
        }
        let u = eigen.U();
        Ok(Array2::from_shape_fn((k, k), |(a, b)| {
            u[(a, b)] * s[b].max(0.0).sqrt()
        }))
    }

    /// ⟨Πₖ f(x_{key[k]})⟩ for x ~ 𝒩(0, kernel), `key` sorted.
    fn moment(&self, key: &[usize]) -> Result<f64, RecurrentOneLoopError> {
        let key = key.to_vec();
        let mut distinct = key.clone();
        distinct.dedup();
        // variables uncorrelated with the rest (times the drive does not link) are independent:
        // the moment is the product over the groups, each integrated in fewer dimensions
        let groups = independent_groups(&distinct, |a, b| {
            self.kernel[(a, b)] != 0.0 || self.kernel[(b, a)] != 0.0
        });
        if groups.len() > 1 {
            return groups
                .iter()
                .map(|group| {
                    let part: Vec<usize> =
                        key.iter().copied().filter(|v| group.contains(v)).collect();
                    self.moment(&part)
                })
                .product();
        }
        let power: Vec<i32> = distinct
            .iter()
            .map(|d| key.iter().filter(|v| *v == d).count() as i32)
            .collect();
        let rule = if distinct.len() <= 2 {
            &self.fine
        } else {
            &self.rule
        };
        let (values, weights) = self.nodes(&distinct, rule)?;
        let f = self.evaluate(&values)?;
        let k = distinct.len();
        let value: f64 = weights
            .iter()
            .enumerate()
            .map(|(node, w)| {
                w * (0..k)
                    .map(|d| f[node * k + d].powi(power[d]))
                    .product::<f64>()
            })
            .sum();
        Ok(value)
    }

    /// The tensor rule's points x = √2 L z over `vars` (node-major) and normalised weights.
    fn nodes(
        &self,
        vars: &[usize],
        rule: &GaussHermite,
    ) -> Result<(Vec<f64>, Vec<f64>), RecurrentOneLoopError> {
        let k = vars.len();
        let l = self.factor(vars)?;
        let order = rule.order();
        let count = order.pow(k as u32);
        let norm = std::f64::consts::PI.powf(-(k as f64) / 2.0);
        let mut values = Vec::with_capacity(count * k);
        let mut weights = Vec::with_capacity(count);
        let mut z = vec![0.0; k];
        for node in 0..count {
            let mut rest = node;
            let mut w = norm;
            for zd in z.iter_mut() {
                let i = rest % order;
                rest /= order;
                *zd = std::f64::consts::SQRT_2 * rule.nodes()[i];
                w *= rule.weights()[i];
            }
            for a in 0..k {
                values.push((0..k).map(|b| l[(a, b)] * z[b]).sum());
            }
            weights.push(w);
        }
        Ok((values, weights))
    }

    /// ∂⟨f_I f_J⟩/∂Σ_ab for the covariance entries (a, b) it reads (a ≤ b), by Stein's
    /// identity: ½⟨f_I f_J (Σ⁻¹xxᵀΣ⁻¹ − Σ⁻¹)_ab⟩ per entry, twice that off the diagonal (the
    /// entry stands for Σ_ab and Σ_ba).
    fn covariance_derivatives(
        &self,
        i: usize,
        j: usize,
    ) -> Result<Vec<CovarianceDerivative>, RecurrentOneLoopError> {
        if i == j {
            let q = self.kernel[(i, i)];
            if q <= 0.0 {
                return Err(RecurrentOneLoopError::Covariance(format!(
                    "the variance of variable {i} is {q}: the derivative of ⟨f²⟩ needs q > 0"
                )));
            }
            let (x, w) = self.nodes(&[i], &self.fine)?;
            let f = self.evaluate(&x)?;
            let d: f64 = (0..w.len())
                .map(|n| w[n] * f[n] * f[n] * 0.5 * (x[n] * x[n] / (q * q) - 1.0 / q))
                .sum();
            return Ok(vec![((i, i), d)]);
        }
        let (a, b, c) = (
            self.kernel[(i, i)],
            self.kernel[(j, j)],
            0.5 * (self.kernel[(i, j)] + self.kernel[(j, i)]),
        );
        let det = a * b - c * c;
        if det.is_nan() || det <= 1e-12 * (a * b).max(f64::MIN_POSITIVE) {
            return Err(RecurrentOneLoopError::Covariance(format!(
                "the variables {i} and {j} are perfectly correlated (variances {a}, {b}, \
                 covariance {c}): the propagation through their covariance is singular"
            )));
        }
        // Σ⁻¹ = [[b, −c], [−c, a]] / det
        let (pa, pb, pc) = (b / det, a / det, -c / det);
        let (x, w) = self.nodes(&[i, j], &self.fine)?;
        let f = self.evaluate(&x)?;
        let mut d = [0.0; 3];
        for n in 0..w.len() {
            let (u, v) = (x[2 * n], x[2 * n + 1]);
            let (y0, y1) = (pa * u + pc * v, pc * u + pb * v);
            let h = w[n] * f[2 * n] * f[2 * n + 1];
            d[0] += h * 0.5 * (y0 * y0 - pa);
            d[1] += h * 0.5 * (y1 * y1 - pb);
            d[2] += h * (y0 * y1 - pc);
        }
        Ok(vec![((i, i), d[0]), ((j, j), d[1]), ((i, j), d[2])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn erf(values: &[f64]) -> Result<Vec<f64>, String> {
        let s = 0.5 * std::f64::consts::PI.sqrt();
        Ok(values.iter().map(|v| libm::erf(s * v)).collect())
    }

    fn identity(values: &[f64]) -> Result<Vec<f64>, String> {
        Ok(values.to_vec())
    }

    /// The kernel over (time, pattern) of a linear recurrent network h(t) = W h(t−1),
    /// h(0) ~ N(0, Q): C[t, s] = g^min(t,s)… built by its own recursion.
    fn linear_kernel(q: &Array2<f64>, g: f64, t: usize) -> Array2<f64> {
        let p = q.nrows();
        let mut k = Array2::zeros(((t + 1) * p, (t + 1) * p));
        for a in 0..=t {
            for b in 0..=t {
                let block: Array2<f64> = if a == 0 || b == 0 {
                    if a == b {
                        q.clone()
                    } else {
                        Array2::zeros((p, p))
                    }
                } else {
                    k.slice(ndarray::s![(a - 1) * p..a * p, (b - 1) * p..b * p])
                        .to_owned()
                        * g
                };
                k.slice_mut(ndarray::s![a * p..(a + 1) * p, b * p..(b + 1) * p])
                    .assign(&block);
            }
        }
        k
    }

    #[test]
    fn linear_units_have_the_exact_wick_covariance_at_one_step() {
        // T = 1: C[1] = (g/N) Σ h hᵀ with h ~ N(0, Q): N·Cov(C_ab, C_cd) = g²(Q_ac Q_bd + Q_ad Q_bc)
        let q = array![[1.0, 0.6], [0.6, 1.5]];
        let g = 1.3;
        let k = linear_kernel(&q, g, 1);
        let one = recurrent_prior_covariance(k.view(), 2, g, &identity, 6).expect("one loop");
        let v = one.block_variance(1, 1).expect("C[1,1]");
        for (a, b) in [(0, 0), (0, 1), (1, 1)] {
            let want = g * g * (q[(a, a)] * q[(b, b)] + q[(a, b)] * q[(a, b)]);
            assert!(
                (v[(a, b)] - want).abs() < 1e-12,
                "{a}{b}: {} vs {want}",
                v[(a, b)]
            );
        }
    }

    #[test]
    fn the_four_point_rule_has_converged() {
        let q = array![[1.0, 0.6], [0.6, 1.5]];
        let g = 1.5;
        // an erf network's kernel over three times, from the NNGP solver
        let source = std::fs::read_to_string("examples/recurrent_erf.action").expect("example");
        let theory = crate::compile(&source, "recurrent_erf.action").expect("checks");
        let x = array![[1.0, 0.0], [0.6, (1.5f64 - 0.36).sqrt()]];
        let settings = crate::solve::nngp::NngpSettings {
            overrides: [("T", 3.0), ("g", g), ("gb", 0.2), ("gu", 2.0)]
                .iter()
                .map(|(n, v)| (n.to_string(), *v))
                .collect(),
            ..Default::default()
        };
        let kernels =
            crate::solve::nngp::nngp_kernels(&theory, x.view(), None, &settings).expect("nngp");
        let k = full_kernel(&kernels, 3, 2);
        // gu/d · x xᵀ with d = 2 is Q; the bias shared over time links every time, so the
        // four-point functions do not factorise and the four-dimensional rule is exercised
        assert!((k[(0, 0)] - q[(0, 0)] - 0.2).abs() < 1e-12 && (k[(1, 3)] - 0.2).abs() < 1e-12);
        // erf(√π x/2) with variances up to 1.5 is too steep for a fast Gauss–Hermite rule
        // (it grows along the imaginary axis faster than the weight decays): the error falls
        // algebraically, and the reported estimate bounds it
        let coarse = recurrent_prior_covariance(k.view(), 2, g, &erf, 12).expect("one loop");
        let fine = recurrent_prior_covariance(k.view(), 2, g, &erf, 32).expect("one loop");
        let (a, b) = (coarse.n_covariance.diag(), fine.n_covariance.diag());
        let worst = a
            .iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            worst < coarse.quadrature_error && fine.quadrature_error < 1e-4,
            "order 12 vs 32: {worst}, estimated {} and {}",
            coarse.quadrature_error,
            fine.quadrature_error
        );
    }

    /// The NNGP blocks C[t, s] of field 0 as one matrix over (time, pattern).
    fn full_kernel(kernels: &crate::solve::nngp::Kernels, t: usize, p: usize) -> Array2<f64> {
        let mut k = Array2::zeros(((t + 1) * p, (t + 1) * p));
        for a in 0..=t {
            for b in 0..=t {
                let block = &kernels.entries[&(0, vec![a as i64, b as i64])];
                k.slice_mut(ndarray::s![a * p..(a + 1) * p, b * p..(b + 1) * p])
                    .assign(block);
            }
        }
        k
    }

    #[test]
    fn one_step_agrees_with_the_layered_one_loop_of_the_actions_hessian() {
        // T = 1 has no shared weights to correlate: the deep network's C[1], whose N·Var the
        // layered code takes from the action's exact Hessian (P-dimensional quadrature)
        let source = std::fs::read_to_string("examples/deep_erf.action").expect("example");
        let theory = crate::compile(&source, "deep_erf.action").expect("checks");
        let x = array![[1.0, 0.0], [0.6, (1.5f64 - 0.36).sqrt()]];
        let settings = crate::solve::nngp::NngpSettings {
            overrides: [
                ("L", 1.0),
                ("g", 1.5),
                ("gb", 0.0),
                ("gb0", 0.0),
                ("g0", 2.0),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), *v))
            .collect(),
            ..Default::default()
        };
        let layered = crate::solve::one_loop::prior_variances(&theory, x.view(), &settings, 48)
            .expect("layered one loop");
        let deep = &layered.last().expect("C[1]").n_variance;
        let q = array![[1.0, 0.6], [0.6, 1.5]];
        let mut k = Array2::zeros((4, 4));
        k.slice_mut(ndarray::s![0..2, 0..2]).assign(&q);
        let one = recurrent_prior_covariance(k.view(), 2, 1.5, &erf, 24).expect("one loop");
        let v = one.block_variance(1, 1).expect("C[1,1]");
        // both integrate the same erf products by Gauss–Hermite (order 96 here, 48 there),
        // whose error falls slowly for this steep erf: 1.6e-8 apart
        for (a, b) in [(0, 0), (0, 1), (1, 1)] {
            assert!(
                (v[(a, b)] - deep[(a, b)]).abs() < 5e-8,
                "{a}{b}: {} vs {}",
                v[(a, b)],
                deep[(a, b)]
            );
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let k = Array2::<f64>::eye(4);
        assert!(recurrent_prior_covariance(k.view(), 3, 1.0, &erf, 8).is_err());
        assert!(recurrent_prior_covariance(k.view(), 2, -1.0, &erf, 8).is_err());
        assert!(recurrent_prior_covariance(k.view(), 2, 1.0, &erf, 1).is_err());
        let nan = |v: &[f64]| -> Result<Vec<f64>, String> { Ok(vec![f64::NAN; v.len()]) };
        let err = recurrent_prior_covariance(k.view(), 2, 1.0, &nan, 8).expect_err("NaN");
        assert!(err.to_string().contains("NaN"), "{err}");
    }
}
