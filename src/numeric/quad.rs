//! Gauss–Hermite quadrature for Gaussian expectations (THEORY.md §2, "Gauss–Hermite for smooth
//! $\phi$").
//!
//! Nodes and weights of $\int e^{-x^2}f(x)\,dx\approx\sum_i w_if(x_i)$: the nodes are the
//! eigenvalues of the Jacobi matrix $J$ (zero diagonal, off-diagonal $\sqrt{k/2}$; Golub–Welsch),
//! each bracketed by Sturm-sequence bisection (the number of negative pivots of $J-xI$ counts the
//! eigenvalues below $x$) and then polished by Newton on the orthonormal recurrence
//! $p_{k+1}=(x\,p_k-\sqrt{k/2}\,p_{k-1})/\sqrt{(k+1)/2}$; weights $w_i=1/(n\,p_{n-1}(x_i)^2)$
//! (from $p_n'=\sqrt{2n}\,p_{n-1}$), with rescaling so that any order works without overflow.
//! $O(n^2)$ in total. (A dense eigen solve by faer is $O(n^3)$ and, being generic code compiled
//! into this crate, slow in debug builds: 0.3 s at $n=200$.) Expectations:
//! $$\langle f(u)\rangle_{u\sim\mathcal N(0,q)}\approx\frac1{\sqrt\pi}\sum_iw_if(\sqrt{2q}\,x_i),\qquad
//! \langle f(u)g(v)\rangle\approx\frac1\pi\sum_{ij}w_iw_j\,f(\sqrt2L_{11}x_i)\,
//! g(\sqrt2(L_{21}x_i+L_{22}x_j)),$$
//! $L$ the Cholesky factor of $\begin{psmallmatrix}a&c\\c&b\end{psmallmatrix}$. The covariance entries
//! may be dual numbers: the nodes then move with $C$ and $d/dC$ flows through the quadrature.
//! Exponential convergence needs smooth integrands; do not use it for ReLU / sign / steps.

use num_dual::DualNum;
use std::collections::HashMap;
use std::f64::consts::PI;
use std::sync::{Arc, Mutex, OnceLock};

/// Largest order accepted by [`GaussHermite::new`].
pub const MAX_ORDER: usize = 5000;

/// Relative tolerance on $c^2\le ab$ before a covariance counts as not positive semidefinite.
const PSD_TOLERANCE: f64 = 1e-12;

/// Invalid input to the quadrature routines.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum QuadError {
    /// The order is 0 or above [`MAX_ORDER`].
    #[error("Gauss–Hermite order must be in 1..={max}, got {order}", max = MAX_ORDER)]
    InvalidOrder {
        /// The order requested.
        order: usize,
    },
    /// A variance is negative or not finite.
    #[error("variance must be finite and non-negative, got {variance}")]
    InvalidVariance {
        /// The offending variance.
        variance: f64,
    },
    /// $c^2>ab$, $a=0$ in two dimensions, or an entry is not finite.
    #[error("covariance [[{a}, {c}], [{c}, {b}]] is not positive semidefinite with a > 0")]
    NotPositiveSemidefinite {
        /// First variance.
        a: f64,
        /// Second variance.
        b: f64,
        /// Covariance.
        c: f64,
    },
}

/// Gauss–Hermite nodes and weights of one order; build once, evaluate many expectations.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussHermite {
    nodes: Vec<f64>,
    weights: Vec<f64>,
}

impl GaussHermite {
    /// Nodes and weights of order `order` (1 ≤ order ≤ [`MAX_ORDER`]).
    pub fn new(order: usize) -> Result<Self, QuadError> {
        if order == 0 || order > MAX_ORDER {
            return Err(QuadError::InvalidOrder { order });
        }
        // Compute the non-negative half and mirror it: exact symmetry of nodes and weights.
        let half = order.div_ceil(2);
        let mut nodes = vec![0.0; order];
        let mut weights = vec![0.0; order];
        // All nodes lie in (-sqrt(2n+1), sqrt(2n+1)).
        let bound = (2.0 * order as f64 + 1.0).sqrt();
        for i in 0..half {
            let upper = order - 1 - i;
            let guess = if upper == i {
                0.0
            } else {
                bracket_eigenvalue(order, upper, bound)
            };
            let (x, w) = polish(order, guess);
            nodes[upper] = x;
            nodes[i] = -x;
            weights[upper] = w;
            weights[i] = w;
        }
        Ok(Self { nodes, weights })
    }

    /// The rule of order `order`, built once per process ($O(n^2)$, about 0.3 ms at
    /// order 80) and shared: every compiled entry formula of a deep network holds one.
    pub fn shared(order: usize) -> Result<Arc<Self>, QuadError> {
        static CACHE: OnceLock<Mutex<HashMap<usize, Arc<GaussHermite>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        // A panic elsewhere cannot leave a half-written entry: insertion is the last step.
        let lock = || {
            cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some(rule) = lock().get(&order) {
            return Ok(rule.clone());
        }
        let rule = Arc::new(GaussHermite::new(order)?);
        lock().insert(order, rule.clone());
        Ok(rule)
    }

    /// Number of nodes.
    pub fn order(&self) -> usize {
        self.nodes.len()
    }

    /// Nodes $x_i$ in increasing order.
    pub fn nodes(&self) -> &[f64] {
        &self.nodes
    }

    /// Weights $w_i$ for the weight function $e^{-x^2}$.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// $\int e^{-x^2} f(x)\,dx \approx \sum_i w_i f(x_i)$.
    pub fn integrate<F: FnMut(f64) -> f64>(&self, mut f: F) -> f64 {
        self.nodes
            .iter()
            .zip(&self.weights)
            .map(|(&x, &w)| w * f(x))
            .sum()
    }

    /// $\langle f(u)\rangle$ for $u\sim\mathcal N(0,\text{variance})$. At variance 0 the value is
    /// $f(0)$ but derivatives with respect to the variance are not propagated (the map
    /// $q\mapsto\sqrt q$ is singular there).
    pub fn expect_1d<D, F>(&self, mut f: F, variance: D) -> Result<D, QuadError>
    where
        D: DualNum<Primitive = f64> + Copy,
        F: FnMut(D) -> D,
    {
        let q = variance.re();
        if !q.is_finite() || q < 0.0 {
            return Err(QuadError::InvalidVariance { variance: q });
        }
        let scale = if q > 0.0 {
            (variance * 2.0).sqrt()
        } else {
            D::zero()
        };
        let mut sum = D::zero();
        for (&x, &w) in self.nodes.iter().zip(&self.weights) {
            sum += f(scale * x) * w;
        }
        Ok(sum / PI.sqrt())
    }

    /// $\langle f(u)g(v)\rangle$ for $(u,v)\sim\mathcal N\big(0,\begin{psmallmatrix}a&c\\c&b\end{psmallmatrix}\big)$,
    /// $a>0$, $c^2\le ab$ (up to a relative $10^{-12}$). On the boundary $c^2=ab$ the value is
    /// right (degenerate Gaussian) but derivatives through $L_{22}=\sqrt{b-c^2/a}$ are not propagated; use
    /// [`Self::expect_1d`] for diagonal entries. No allocation: $n$ evaluations of `f`, $n^2$ of `g`.
    pub fn expect_2d<D, F, G>(&self, mut f: F, mut g: G, a: D, b: D, c: D) -> Result<D, QuadError>
    where
        D: DualNum<Primitive = f64> + Copy,
        F: FnMut(D) -> D,
        G: FnMut(D) -> D,
    {
        let (ar, br, cr) = (a.re(), b.re(), c.re());
        let finite = ar.is_finite() && br.is_finite() && cr.is_finite();
        if !finite || ar <= 0.0 || br < 0.0 || cr * cr > ar * br * (1.0 + PSD_TOLERANCE) {
            return Err(QuadError::NotPositiveSemidefinite {
                a: ar,
                b: br,
                c: cr,
            });
        }
        let root2 = std::f64::consts::SQRT_2;
        let l11 = a.sqrt();
        let l21 = c / l11;
        let schur = b - l21 * l21;
        let l22 = if schur.re() > 0.0 {
            schur.sqrt()
        } else {
            D::zero()
        };
        let mut sum = D::zero();
        for (&xi, &wi) in self.nodes.iter().zip(&self.weights) {
            let mean_v = l21 * (root2 * xi);
            let mut inner = D::zero();
            for (&xj, &wj) in self.nodes.iter().zip(&self.weights) {
                inner += g(mean_v + l22 * (root2 * xj)) * wj;
            }
            sum += f(l11 * (root2 * xi)) * inner * wi;
        }
        Ok(sum / PI)
    }
}

/// Number of eigenvalues of the $n\times n$ Hermite Jacobi matrix below `x` (Sturm count: the
/// negative pivots of the $LDL^\top$ factorisation of $J-xI$).
fn eigenvalues_below(order: usize, x: f64) -> usize {
    let mut pivot = -x;
    let mut count = usize::from(pivot < 0.0);
    for k in 1..order {
        let safe = if pivot == 0.0 {
            f64::MIN_POSITIVE
        } else {
            pivot
        };
        pivot = -x - 0.5 * k as f64 / safe;
        count += usize::from(pivot < 0.0);
    }
    count
}

/// The eigenvalue of index `index` (ascending) to about $10^{-7}$ by bisection in $[0,\text{bound}]$.
fn bracket_eigenvalue(order: usize, index: usize, bound: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, bound);
    while hi - lo > 1e-7 {
        let mid = 0.5 * (lo + hi);
        if eigenvalues_below(order, mid) > index {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Newton iteration for the root of $p_n$ near `guess`; returns (node, weight).
fn polish(order: usize, guess: f64) -> (f64, f64) {
    let mut x = guess;
    for _ in 0..8 {
        let (p_n, p_nm1, _) = orthonormal_hermite(order, x);
        let step = p_n / ((2.0 * order as f64).sqrt() * p_nm1);
        x -= step;
        if step.abs() <= 1e-15 * x.abs().max(1.0) {
            break;
        }
    }
    let (_, p_nm1, log_scale) = orthonormal_hermite(order, x);
    let weight = (-2.0 * log_scale).exp() / (order as f64 * p_nm1 * p_nm1);
    (x, weight)
}

/// $(p_n(x)\,e^{-s},\,p_{n-1}(x)\,e^{-s},\,s)$ for the orthonormal Hermite polynomials
/// ($\int e^{-x^2}p_jp_k=\delta_{jk}$), rescaled by $e^{-s}$ to stay in range.
fn orthonormal_hermite(order: usize, x: f64) -> (f64, f64, f64) {
    const BIG: f64 = 1e150;
    let mut log_scale = 0.0;
    let mut previous = 0.0;
    let mut current = PI.powf(-0.25);
    for k in 0..order {
        let next =
            (x * current - (0.5 * k as f64).sqrt() * previous) / (0.5 * (k + 1) as f64).sqrt();
        previous = current;
        current = next;
        if current.abs() > BIG {
            current /= BIG;
            previous /= BIG;
            log_scale += BIG.ln();
        }
    }
    (current, previous, log_scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::{Dual64, DualNum, HyperDual64};

    /// $\Gamma(m+\tfrac12)=\int x^{2m}e^{-x^2}dx$.
    fn even_moment(m: usize) -> f64 {
        (0..m).fold(PI.sqrt(), |acc, j| acc * (j as f64 + 0.5))
    }

    #[test]
    fn weights_sum_to_sqrt_pi_and_moments_are_exact() {
        for order in (1..=40).chain([64, 120, 200, 300, 1000]) {
            let gh = GaussHermite::new(order).unwrap();
            let total: f64 = gh.weights().iter().sum();
            assert!(
                (total / PI.sqrt() - 1.0).abs() < 1e-13,
                "n={order}: {total}"
            );
            // Exact for polynomial degree 2n-1: even moments up to 2(n-1), odd ones vanish.
            for m in 0..order.min(30) {
                let got = gh.integrate(|x| x.powi(2 * m as i32));
                assert!(
                    (got / even_moment(m) - 1.0).abs() < 1e-12,
                    "n={order} m={m}"
                );
                assert!(
                    gh.integrate(|x| x.powi(2 * m as i32 + 1)).abs() < 1e-12 * even_moment(m + 1)
                );
            }
            assert!(gh.nodes().windows(2).all(|w| w[0] < w[1]));
        }
        assert_eq!(
            GaussHermite::new(0),
            Err(QuadError::InvalidOrder { order: 0 })
        );
    }

    #[test]
    fn nodes_are_roots_and_agree_between_constructions() {
        // The polished nodes make p_n vanish to rounding, and the Christoffel formula
        // 1/sum_k p_k(x)^2 gives the same weights.
        let gh = GaussHermite::new(40).unwrap();
        for (&x, &w) in gh.nodes().iter().zip(gh.weights()) {
            let (p_n, p_nm1, s) = orthonormal_hermite(40, x);
            assert!((p_n / p_nm1).abs() < 1e-14);
            let christoffel: f64 = (0..40)
                .map(|k| orthonormal_hermite(k, x).0.powi(2))
                .sum::<f64>();
            assert!((w * christoffel - 1.0).abs() < 1e-12, "x={x} s={s}");
        }
    }

    #[test]
    fn gaussian_moments_in_one_and_two_dimensions() {
        let gh = GaussHermite::new(30).unwrap();
        let q = 1.7;
        let fourth = gh.expect_1d(|u: f64| u.powi(4), q).unwrap();
        assert!((fourth - 3.0 * q * q).abs() < 1e-13);
        let mgf = gh.expect_1d(|u: f64| (0.8 * u).exp(), q).unwrap();
        assert!((mgf - (0.32 * q).exp()).abs() < 1e-13);
        let (a, b, c) = (1.0, 1.5, 0.6);
        let wick = gh
            .expect_2d(|u: f64| u * u, |v: f64| v * v, a, b, c)
            .unwrap();
        assert!((wick - (a * b + 2.0 * c * c)).abs() < 1e-13);
        let cov = gh.expect_2d(|u: f64| u, |v: f64| v, a, b, c).unwrap();
        assert!((cov - c).abs() < 1e-14);
        let joint = gh.expect_2d(f64::exp, f64::exp, a, b, c).unwrap();
        assert!((joint - (0.5 * (a + b + 2.0 * c)).exp()).abs() < 1e-12);
        // Boundary c^2 = ab: u and v are proportional.
        let boundary = gh
            .expect_2d(|u: f64| u, |v: f64| v * v * v, 2.0, 2.0, 2.0)
            .unwrap();
        assert!((boundary - 3.0 * 4.0).abs() < 1e-12);
    }

    #[test]
    fn covariance_derivatives_flow_through_nodes_as_price_theorem_says() {
        // d/dc <tanh u tanh v> = <tanh' tanh'>, d/da = 1/2 <tanh'' tanh>, d^2/dc^2 = <tanh'' tanh''>.
        let gh = GaussHermite::new(200).unwrap();
        let (a, b, c) = (0.8, 1.3, -0.4);
        let tanh = |x: Dual64| x.tanh();
        let sech2 = |x: f64| 1.0 - x.tanh().powi(2);
        let d2 = |x: f64| -2.0 * x.tanh() * sech2(x);
        let by_c = gh
            .expect_2d(tanh, tanh, a.into(), b.into(), Dual64::new(c, 1.0))
            .unwrap();
        let price_c = gh.expect_2d(sech2, sech2, a, b, c).unwrap();
        assert!(
            (by_c.eps - price_c).abs() < 1e-12,
            "{} vs {price_c}",
            by_c.eps
        );
        let by_a = gh
            .expect_2d(tanh, tanh, Dual64::new(a, 1.0), b.into(), c.into())
            .unwrap();
        let price_a = 0.5 * gh.expect_2d(d2, f64::tanh, a, b, c).unwrap();
        assert!((by_a.eps - price_a).abs() < 1e-12);
        let hyper = |x: HyperDual64| x.tanh();
        let cc = HyperDual64::new(c, 1.0, 1.0, 0.0);
        let second = gh.expect_2d(hyper, hyper, a.into(), b.into(), cc).unwrap();
        let price_cc = gh.expect_2d(d2, d2, a, b, c).unwrap();
        assert!((second.eps1eps2 - price_cc).abs() < 1e-11);
        let var = gh
            .expect_1d(|u: Dual64| u.tanh().powi(2), Dual64::new(a, 1.0))
            .unwrap();
        let price_q = gh
            .expect_1d(|u: f64| sech2(u).powi(2) + u.tanh() * d2(u), a)
            .unwrap();
        assert!((var.eps - price_q).abs() < 1e-12);
    }

    #[test]
    fn invalid_covariances_are_errors() {
        let gh = GaussHermite::new(8).unwrap();
        let id = |x: f64| x;
        assert!(matches!(
            gh.expect_1d(id, -1.0),
            Err(QuadError::InvalidVariance { .. })
        ));
        assert!(matches!(
            gh.expect_1d(id, f64::NAN),
            Err(QuadError::InvalidVariance { .. })
        ));
        assert!(gh.expect_2d(id, id, 1.0, 1.0, 1.1).is_err());
        assert!(gh.expect_2d(id, id, 0.0, 1.0, 0.0).is_err());
        assert!(gh.expect_2d(id, id, 1.0, f64::NAN, 0.0).is_err());
        assert_eq!(gh.expect_1d(|u: f64| u + 2.0, 0.0), Ok(2.0));
    }
}
