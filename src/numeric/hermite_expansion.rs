//! Mehler (Hermite) expansion of the pair expectation of an activation without a closed form
//! (tanh, smooth user functions), with a truncation bound.
//!
//! With the normalised Hermite polynomials $h_k=\mathrm{He}_k/\sqrt{k!}$ and
//! $\hat a_k(q)=\langle\phi(\sqrt q\,z)\,h_k(z)\rangle_{z\sim\mathcal N(0,1)}$, Mehler's formula
//! gives for $\rho=c/\sqrt{ab}$
//! $$K_\phi(a,b,c)=\sum_{k\ge0}\rho^k\,\hat a_k(a)\,\hat a_k(b).$$
//! Truncating after $k=K$ errs by at most $|\rho|^{K+1}\sqrt{t(a)\,t(b)}$ (Cauchy–Schwarz) with
//! the Parseval tail $t(q)=\langle\phi(\sqrt q z)^2\rangle-\sum_{k\le K}\hat a_k(q)^2$.
//! Coefficients of one parity that are all negligible (tanh is odd) are dropped; their whole
//! energy $d$ enters the bound, which per pair and relative to $\sqrt{m(a)m(b)}$,
//! $m=\langle\phi^2\rangle$, reads
//! $$R=|\rho|^{K+1}\sqrt{\tau_a\tau_b}+\eta_a+\eta_b+\eta_a\eta_b+\sqrt{d_ad_b}.$$
//! $\tau=t/m$ and $\eta=\lVert\delta\hat a\rVert_2/\sqrt m$, the coefficient error of the
//! quadrature, estimated as the change between two Gauss–Hermite orders $n_1<n_2$ (the
//! $n_2$ values are used). The coefficients of all variances are one matrix product
//! $\hat A=H F$ with $H_{ki}=w_ih_k(z_i)$ (three-term recurrence, independent of $q$) and
//! $F_{ij}=\phi(\sqrt{q_j}z_i)$. The truncation order $K$ is the smallest that meets the
//! tolerance at the largest $|\rho|$ of the kernel; the node count rises through
//! [`LEVELS`] until it is met. The first two terms of $R$ are exact bounds; $\eta$ is an
//! estimate (exponential convergence makes the change between orders dominate the error).

use ndarray::{Array2, Axis};
use rayon::prelude::*;

use super::activation::Activation;
use super::matrix::{MatrixEvalError, matmul};
use super::quad::{GaussHermite, QuadError};

/// Default bound on the error of $K_\phi$ relative to $\sqrt{m(a)m(b)}$.
pub const DEFAULT_TOLERANCE: f64 = 1e-12;

/// Largest truncation orders tried in turn (the node counts follow from [`node_counts`]).
pub const LEVELS: [usize; 4] = [64, 128, 256, 512];

/// Gauss–Hermite orders $(n_1,n_2)$ for coefficients up to order `max_order`: the integrand
/// $\phi\,h_k$ needs $n\gg k$; $n_1=\frac34n_2$ keeps the change between them a pessimistic
/// error estimate for exponentially convergent quadrature.
pub fn node_counts(max_order: usize) -> (usize, usize) {
    let high = 2 * max_order + 128;
    (high * 3 / 4, high)
}

/// Why an expansion could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExpansionError {
    /// A variance that is negative or not finite.
    #[error("variance {variance} of pattern {pattern} is negative or not finite")]
    InvalidVariance {
        /// Index of the pattern.
        pattern: usize,
        /// Its variance.
        variance: f64,
    },
    /// The activation returned NaN or an infinity.
    #[error("activation `{name}` is not finite at x = {x}")]
    NonFiniteActivation {
        /// Name of the activation.
        name: String,
        /// Where.
        x: f64,
    },
    /// The tolerance is not a positive number.
    #[error("the expansion tolerance must be positive and finite, got {tolerance}")]
    InvalidTolerance {
        /// The tolerance given.
        tolerance: f64,
    },
    /// `rho_max` outside [0, 1].
    #[error("the largest |correlation| must lie in [0, 1], got {rho_max}")]
    InvalidCorrelation {
        /// The value given.
        rho_max: f64,
    },
    /// Quadrature nodes could not be built.
    #[error(transparent)]
    Quadrature(#[from] QuadError),
    /// The coefficient product failed.
    #[error(transparent)]
    Product(#[from] MatrixEvalError),
}

/// Which Hermite orders enter the sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// Every order $k\le K$.
    All,
    /// Odd orders only (odd $\phi$ such as tanh).
    Odd,
    /// Even orders only (even $\phi$).
    Even,
}

impl Parity {
    /// First kept order and the stride between kept orders.
    fn first_and_stride(self) -> (usize, usize) {
        match self {
            Parity::All => (0, 1),
            Parity::Odd => (1, 2),
            Parity::Even => (0, 2),
        }
    }
}

/// The truncated expansion of one activation at a set of variances.
#[derive(Clone, Debug)]
pub struct Expansion {
    terms: usize,
    parity: Parity,
    nodes: usize,
    /// Kept coefficients, coefficient-major: row `t` holds order `first + stride·t`, one
    /// column per distinct variance.
    coefficients: Array2<f64>,
    /// Distinct variance of each input position.
    column: Vec<usize>,
    mean_square: Vec<f64>,
    mean_square_change: Vec<f64>,
    tail: Vec<f64>,
    quadrature: Vec<f64>,
    dropped: Vec<f64>,
    /// $\max\sqrt{\tau_i\tau_j}$ over pairs of distinct patterns.
    worst_tail: f64,
    rho_max: f64,
    tolerance: f64,
}

/// Coefficients of all distinct variances at one Gauss–Hermite order.
struct Projection {
    coefficients: Array2<f64>,
    mean_square: Vec<f64>,
}

impl Expansion {
    /// The expansion at `variances` (repeats are computed once) whose bound
    /// [`Self::relative_bound`] is at most `tolerance` for every pair with $|\rho|\le$
    /// `rho_max`, if some level of [`LEVELS`] achieves it; else the top level
    /// ([`Self::meets_tolerance`] is then false and pairs must be checked one by one).
    pub fn new(
        activation: &Activation,
        variances: &[f64],
        rho_max: f64,
        tolerance: f64,
    ) -> Result<Self, ExpansionError> {
        if !(tolerance.is_finite() && tolerance > 0.0) {
            return Err(ExpansionError::InvalidTolerance { tolerance });
        }
        if !(0.0..=1.0).contains(&rho_max) {
            return Err(ExpansionError::InvalidCorrelation { rho_max });
        }
        if let Some((pattern, &variance)) = variances
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(ExpansionError::InvalidVariance { pattern, variance });
        }
        let mut distinct = variances.to_vec();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let column: Vec<usize> = variances
            .iter()
            .map(|v| distinct.partition_point(|d| d < v))
            .collect();
        let mut multiplicity = vec![0; distinct.len()];
        for &j in &column {
            multiplicity[j] += 1;
        }
        let (&top, lower) = LEVELS.split_last().unwrap_or((&512, &[]));
        let mut found = None;
        for &max_order in lower {
            let candidate = Self::at_level(
                activation,
                &distinct,
                &multiplicity,
                max_order,
                rho_max,
                tolerance,
            )?;
            if candidate.meets_tolerance() {
                found = Some(candidate);
                break;
            }
        }
        let mut expansion = match found {
            Some(expansion) => expansion,
            None => Self::at_level(
                activation,
                &distinct,
                &multiplicity,
                top,
                rho_max,
                tolerance,
            )?,
        };
        expansion.column = column;
        Ok(expansion)
    }

    fn at_level(
        activation: &Activation,
        distinct: &[f64],
        multiplicity: &[usize],
        max_order: usize,
        rho_max: f64,
        tolerance: f64,
    ) -> Result<Self, ExpansionError> {
        let (low, high) = node_counts(max_order);
        let coarse = project(activation, distinct, max_order, low)?;
        let fine = project(activation, distinct, max_order, high)?;
        let q = distinct.len();
        let orders = max_order + 1;
        // Per variance and order K: energy kept so far by parity, squared coefficient change.
        let mut energy = [Array2::zeros((orders, q)), Array2::zeros((orders, q))];
        let mut change = Array2::zeros((orders, q));
        for j in 0..q {
            let (mut sums, mut diff) = ([0.0, 0.0], 0.0);
            for k in 0..orders {
                let a = fine.coefficients[[k, j]];
                let delta = a - coarse.coefficients[[k, j]];
                sums[k % 2] += a * a;
                diff += delta * delta;
                energy[0][[k, j]] = sums[0];
                energy[1][[k, j]] = sums[1];
                change[[k, j]] = diff;
            }
        }
        let mean_square = fine.mean_square;
        let mean_square_change: Vec<f64> = (0..q)
            .map(|j| relative(coarse.mean_square[j] - mean_square[j], mean_square[j]).abs())
            .collect();
        // Drop a parity whose whole energy (plus the coefficient error) is negligible.
        let dropped_energy = |parity: usize, k: usize, j: usize| {
            let e = energy[parity][[k, j]].sqrt() + change[[k, j]].sqrt();
            relative(e * e, mean_square[j])
        };
        let negligible = |parity: usize| {
            (0..q).all(|j| dropped_energy(parity, max_order, j) <= tolerance / 16.0)
        };
        let parity = if negligible(0) {
            Parity::Odd
        } else if negligible(1) {
            Parity::Even
        } else {
            Parity::All
        };
        let stats = |k: usize| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
            let mut tail = vec![0.0; q];
            let mut quad = vec![0.0; q];
            let mut dropped = vec![0.0; q];
            for j in 0..q {
                let m = mean_square[j];
                let eps = change[[k, j]].sqrt();
                let kept = energy[0][[k, j]] + energy[1][[k, j]];
                let rounding = 4.0 * (k + 2) as f64 * f64::EPSILON * m;
                let allowance = 2.0 * m.sqrt() * eps + eps * eps + mean_square_change[j] * m;
                tail[j] = relative((m - kept).max(0.0) + rounding + allowance, m);
                quad[j] = relative(eps, m.sqrt());
                dropped[j] = match parity {
                    Parity::All => 0.0,
                    Parity::Odd => dropped_energy(0, k, j),
                    Parity::Even => dropped_energy(1, k, j),
                };
            }
            (tail, quad, dropped)
        };
        let worst = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let global = |k: usize, (tail, quad, dropped): &(Vec<f64>, Vec<f64>, Vec<f64>)| {
            let eta = worst(quad);
            rho_max.powi(k as i32 + 1) * worst_pair(tail, multiplicity)
                + 2.0 * eta
                + eta * eta
                + worst(dropped)
        };
        let diagonal_ok = worst(&mean_square_change) <= tolerance;
        let (first, stride) = parity.first_and_stride();
        let terms = (first..=max_order)
            .step_by(stride)
            .find(|&k| diagonal_ok && global(k, &stats(k)) <= tolerance)
            .unwrap_or(max_order - (max_order - first) % stride);
        let (tail, quadrature, dropped) = stats(terms);
        let kept: Vec<usize> = (first..=terms).step_by(stride).collect();
        let coefficients = fine.coefficients.select(Axis(0), &kept);
        Ok(Self {
            worst_tail: worst_pair(&tail, multiplicity),
            terms,
            parity,
            nodes: high,
            coefficients,
            column: Vec::new(),
            mean_square,
            mean_square_change,
            tail,
            quadrature,
            dropped,
            rho_max,
            tolerance,
        })
    }

    /// The truncation order $K$ (the last order kept).
    pub fn terms(&self) -> usize {
        self.terms
    }

    /// Which orders are summed.
    pub fn parity(&self) -> Parity {
        self.parity
    }

    /// The Gauss–Hermite order of the coefficients used.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// An upper bound of [`Self::relative_bound`] over all pairs with $|\rho|\le$ `rho_max`.
    pub fn worst_relative_bound(&self) -> f64 {
        let worst = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let eta = worst(&self.quadrature);
        self.rho_max.powi(self.terms as i32 + 1) * self.worst_tail
            + 2.0 * eta
            + eta * eta
            + worst(&self.dropped)
    }

    /// Whether every pair with $|\rho|\le$ `rho_max`, and every diagonal entry, meets the
    /// tolerance.
    pub fn meets_tolerance(&self) -> bool {
        let worst_diagonal = self.mean_square_change.iter().copied().fold(0.0, f64::max);
        self.worst_relative_bound() <= self.tolerance && worst_diagonal <= self.tolerance
    }

    /// The kept coefficients of input position `pattern`, in increasing order.
    pub fn coefficients(&self, pattern: usize) -> ndarray::ArrayView1<'_, f64> {
        self.coefficients.column(self.column[pattern])
    }

    /// $\langle\phi^2\rangle$ at the variance of input position `pattern` (the diagonal).
    pub fn mean_square(&self, pattern: usize) -> f64 {
        self.mean_square[self.column[pattern]]
    }

    /// Estimated error of [`Self::mean_square`], relative to it.
    pub fn mean_square_error(&self, pattern: usize) -> f64 {
        self.mean_square_change[self.column[pattern]]
    }

    /// $R$ of the module docs: the error bound of [`Self::value`] relative to
    /// $\sqrt{m_\alpha m_\beta}$.
    pub fn relative_bound(&self, alpha: usize, beta: usize, rho: f64) -> f64 {
        let (i, j) = (self.column[alpha], self.column[beta]);
        let (ea, eb) = (self.quadrature[i], self.quadrature[j]);
        rho.abs().powi(self.terms as i32 + 1) * (self.tail[i] * self.tail[j]).sqrt()
            + ea
            + eb
            + ea * eb
            + (self.dropped[i] * self.dropped[j]).sqrt()
    }

    /// The truncated sum $\sum_k\rho^k\hat a_k\hat b_k$ for input positions `alpha`, `beta`.
    pub fn value(&self, alpha: usize, beta: usize, rho: f64) -> f64 {
        let (a, b) = (self.coefficients(alpha), self.coefficients(beta));
        let x = self.horner_variable(rho);
        let sum = a
            .iter()
            .zip(b.iter())
            .rev()
            .fold(0.0, |acc, (ca, cb)| acc * x + ca * cb);
        sum * self.horner_factor(rho)
    }

    /// The variable of the Horner scheme over kept orders: $\rho$, or $\rho^2$ for one parity.
    pub fn horner_variable(&self, rho: f64) -> f64 {
        match self.parity {
            Parity::All => rho,
            Parity::Odd | Parity::Even => rho * rho,
        }
    }

    /// $\rho^{\text{first kept order}}$, the factor in front of the Horner sum.
    pub fn horner_factor(&self, rho: f64) -> f64 {
        match self.parity {
            Parity::Odd => rho,
            Parity::All | Parity::Even => 1.0,
        }
    }

    /// Number of kept orders (rows of the coefficient matrix).
    pub fn kept(&self) -> usize {
        self.coefficients.nrows()
    }
}

/// $\max\sqrt{\tau_i\tau_j}$ over pairs of distinct patterns, `multiplicity[j]` of them at
/// variance `j`.
fn worst_pair(tail: &[f64], multiplicity: &[usize]) -> f64 {
    let mut order: Vec<usize> = (0..tail.len()).collect();
    order.sort_by(|&i, &j| tail[j].total_cmp(&tail[i]));
    match order.as_slice() {
        [] => 0.0,
        [first, ..] if multiplicity[*first] > 1 => tail[*first],
        [_] => 0.0,
        [first, second, ..] => (tail[*first] * tail[*second]).sqrt(),
    }
}

/// `x / scale`, 0 where the scale vanishes (then x vanishes too).
fn relative(x: f64, scale: f64) -> f64 {
    if scale > 0.0 { x / scale } else { 0.0 }
}

/// $\hat a_k(q_j)$ for $k\le$ `max_order` and $\langle\phi^2\rangle(q_j)$ with `nodes` nodes.
fn project(
    activation: &Activation,
    variances: &[f64],
    max_order: usize,
    nodes: usize,
) -> Result<Projection, ExpansionError> {
    let table = hermite_table(nodes, max_order)?;
    let q = variances.len();
    let roots: Vec<f64> = variances.iter().map(|v| v.sqrt()).collect();
    let mut flat = vec![0.0; nodes * q];
    flat.par_chunks_mut(q.max(1))
        .zip(table.points.par_iter())
        .try_for_each(|(row, &z)| {
            for (entry, root) in row.iter_mut().zip(&roots) {
                let x = root * z;
                let y = activation.value(x);
                if !y.is_finite() {
                    return Err(ExpansionError::NonFiniteActivation {
                        name: activation.name(),
                        x,
                    });
                }
                *entry = y;
            }
            Ok(())
        })?;
    let values = Array2::from_shape_vec((nodes, q), flat)
        .map_err(|e| MatrixEvalError::Shape(e.to_string()))?;
    let coefficients = matmul(table.weighted.view(), values.view())?;
    let mean_square = (0..q)
        .map(|j| {
            values
                .column(j)
                .iter()
                .zip(&table.weights)
                .map(|(y, w)| w * y * y)
                .sum()
        })
        .collect();
    Ok(Projection {
        coefficients,
        mean_square,
    })
}

/// Probabilists' Gauss–Hermite points $z_i$, weights $w_i$ (summing to 1) and the matrix
/// $H_{ki}=w_ih_k(z_i)$.
struct HermiteTable {
    points: Vec<f64>,
    weights: Vec<f64>,
    weighted: Array2<f64>,
}

fn hermite_table(nodes: usize, max_order: usize) -> Result<HermiteTable, ExpansionError> {
    let rule = GaussHermite::shared(nodes)?;
    let points: Vec<f64> = rule
        .nodes()
        .iter()
        .map(|x| std::f64::consts::SQRT_2 * x)
        .collect();
    let norm = std::f64::consts::PI.sqrt();
    let weights: Vec<f64> = rule.weights().iter().map(|w| w / norm).collect();
    let mut weighted = Array2::zeros((max_order + 1, nodes));
    // w·h_k stays below w·e^{z²/4}·1.09 (Cramér), so the recurrence cannot overflow; it starts
    // from w so that nodes whose weight underflows contribute exactly 0.
    for i in 0..nodes {
        let (z, w) = (points[i], weights[i]);
        let (mut previous, mut current) = (0.0, w);
        for k in 0..=max_order {
            weighted[[k, i]] = current;
            let next = (z * current - (k as f64).sqrt() * previous) / ((k + 1) as f64).sqrt();
            previous = current;
            current = next;
        }
    }
    Ok(HermiteTable {
        points,
        weights,
        weighted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::activation::CustomActivation;
    use crate::numeric::tanh_sinh::integrate;

    /// Standard-normal units beyond which the Gaussian weight is below 1e-31.
    const CUT: f64 = 12.0;

    /// $\langle\phi(u)\phi(v)\rangle$ by nested tanh–sinh, with $v=\rho\sqrt{b/a}\,u+\sqrt{b(1-\rho^2)}\,w$:
    /// an independent method (no Hermite polynomials, no Gauss–Hermite nodes).
    fn nested_tanh_sinh(act: &Activation, a: f64, b: f64, rho: f64) -> f64 {
        let density = |z: f64| (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let spread = (b * (1.0 - rho * rho)).max(0.0).sqrt();
        let inner = |z: f64| {
            let mean = rho * b.sqrt() * z;
            if spread == 0.0 {
                return act.value(mean);
            }
            integrate(
                |w| act.value(mean + spread * w) * density(w),
                -CUT,
                CUT,
                1e-17,
            )
            .unwrap()
            .value
        };
        integrate(
            |z| act.value(a.sqrt() * z) * inner(z) * density(z),
            -CUT,
            CUT,
            1e-16,
        )
        .unwrap()
        .value
    }

    fn custom(name: &str, f: fn(f64) -> f64) -> Activation {
        Activation::Custom(CustomActivation::new(name, move |x| [f(x), 0.0, 0.0]))
    }

    fn expansion(act: &Activation, a: f64, b: f64, rho: f64, tolerance: f64) -> Expansion {
        Expansion::new(act, &[a, b], rho.abs(), tolerance).unwrap()
    }

    #[test]
    fn tanh_matches_nested_tanh_sinh_and_the_bound_holds() {
        // Where the bound cannot reach the tolerance (q = 5 at |rho| -> 1) it must still hold;
        // the kernel map then falls back to quadrature for that pair.
        let variances = [0.05, 1.1, 5.0];
        let correlations = [-1.0, -0.9, 0.0, 0.3, 0.97, 0.9999];
        let mut worst: f64 = 0.0;
        for (i, &a) in variances.iter().enumerate() {
            for &b in &variances[i..] {
                for &rho in &correlations {
                    let e = expansion(&Activation::Tanh, a, b, rho, DEFAULT_TOLERANCE);
                    assert_eq!(e.parity(), Parity::Odd);
                    let scale = (e.mean_square(0) * e.mean_square(1)).sqrt();
                    let reference = nested_tanh_sinh(&Activation::Tanh, a, b, rho);
                    let error = (e.value(0, 1, rho) - reference).abs() / scale;
                    let bound = e.relative_bound(0, 1, rho);
                    if e.meets_tolerance() {
                        assert!(bound <= DEFAULT_TOLERANCE);
                    }
                    if b < 5.0 {
                        assert!(
                            e.meets_tolerance(),
                            "a={a} b={b} rho={rho}: bound {bound:e}"
                        );
                    }
                    // The reference itself is good to a few 1e-15 of the scale.
                    assert!(
                        error <= bound + 1e-14,
                        "a={a} b={b} rho={rho}: {error:e} > {bound:e}"
                    );
                    worst = worst.max(error);
                }
            }
        }
        eprintln!("worst relative error against nested tanh-sinh: {worst:e}");
    }

    #[test]
    fn custom_functions_match_closed_forms_and_odd_or_even_parts_are_dropped() {
        // erf(x): (2/pi) asin(2c / sqrt((1+2a)(1+2b))); exp(-x^2): ((1+2a)(1+2b) - 4c^2)^(-1/2);
        // softplus-like x + x^2/2 (no symmetry): c + c^2/2 + ab/4.
        let erf = custom("erf", |x| crate::numeric::special::ErfDual::erf(&x));
        let bump = custom("bump", |x| (-x * x).exp());
        let quadratic = custom("quadratic", |x| x + 0.5 * x * x);
        for &(a, b) in &[(0.3_f64, 0.3_f64), (1.0, 1.5), (0.2, 3.0)] {
            for &rho in &[-1.0, -0.6, 0.0, 0.45, 0.99, 1.0] {
                let c: f64 = rho * (a * b).sqrt();
                let d = (1.0 + 2.0 * a) * (1.0 + 2.0 * b);
                let cases = [
                    (
                        &erf,
                        Parity::Odd,
                        std::f64::consts::FRAC_2_PI * (2.0 * c / d.sqrt()).asin(),
                    ),
                    (&bump, Parity::Even, 1.0 / (d - 4.0 * c * c).sqrt()),
                    (&quadratic, Parity::All, c + 0.5 * c * c + 0.25 * a * b),
                ];
                for (act, parity, exact) in cases {
                    let e = expansion(act, a, b, rho, DEFAULT_TOLERANCE);
                    assert!(e.meets_tolerance(), "{} {a} {b} {rho}", act.name());
                    assert_eq!(e.parity(), parity, "{}", act.name());
                    let scale = (e.mean_square(0) * e.mean_square(1)).sqrt();
                    let error = (e.value(0, 1, rho) - exact).abs() / scale;
                    let bound = e.relative_bound(0, 1, rho);
                    assert!(
                        error <= bound + 1e-15,
                        "{} {a} {b} {rho}: {error:e} > {bound:e}",
                        act.name()
                    );
                }
            }
        }
    }

    #[test]
    fn a_loose_tolerance_truncates_early_and_its_bound_still_holds() {
        let erf = custom("erf", |x| crate::numeric::special::ErfDual::erf(&x));
        for &tolerance in &[1e-3, 1e-6, 1e-9] {
            for &(a, b, rho) in &[
                (1.0_f64, 1.5_f64, 0.9_f64),
                (2.0, 0.5, -0.99),
                (1.0, 1.0, 1.0),
            ] {
                let e = expansion(&erf, a, b, rho, tolerance);
                let exact = std::f64::consts::FRAC_2_PI
                    * (2.0 * rho * (a * b).sqrt() / ((1.0 + 2.0 * a) * (1.0 + 2.0 * b)).sqrt())
                        .asin();
                let scale = (e.mean_square(0) * e.mean_square(1)).sqrt();
                let error = (e.value(0, 1, rho) - exact).abs() / scale;
                let bound = e.relative_bound(0, 1, rho);
                assert!(
                    bound <= tolerance && error <= bound,
                    "{tolerance}: {error:e} vs {bound:e}"
                );
                // The bound is not vacuous: the truncation error is within 1000x of it.
                assert!(
                    error >= bound * 1e-3 || error < 1e-14,
                    "{tolerance}: {error:e} vs {bound:e}"
                );
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors_not_nans() {
        let tanh = Activation::Tanh;
        assert!(matches!(
            Expansion::new(&tanh, &[1.0, -0.5], 0.5, 1e-12),
            Err(ExpansionError::InvalidVariance { pattern: 1, .. })
        ));
        assert!(Expansion::new(&tanh, &[f64::NAN], 0.5, 1e-12).is_err());
        assert!(Expansion::new(&tanh, &[1.0], 1.5, 1e-12).is_err());
        assert!(Expansion::new(&tanh, &[1.0], 0.5, 0.0).is_err());
        let broken = custom("log", f64::ln);
        assert!(matches!(
            Expansion::new(&broken, &[1.0], 0.5, 1e-12),
            Err(ExpansionError::NonFiniteActivation { .. })
        ));
        // Zero variance: phi(0) everywhere, exact.
        let shifted = custom("shifted", |x| x.tanh() + 0.5);
        let e = Expansion::new(&shifted, &[0.0, 0.0], 1.0, 1e-12).unwrap();
        assert!((e.value(0, 1, 0.0) - 0.25).abs() < 1e-15 && e.meets_tolerance());
    }
}
