//! Gauss rules for the pieces of a split Gaussian integral: Gauss–Legendre on $[-1,1]$, and the
//! half-range Gauss–Hermite rule for the weight $e^{-t^2/2}$ on $[0,\infty)$.
//!
//! A weight with orthonormal polynomials $b_{k+1}p_{k+1}=(x-a_k)p_k-b_kp_{k-1}$ has its Gauss
//! nodes at the eigenvalues of the Jacobi matrix (diagonal $a_k$, off-diagonal $b_k$): each is
//! bracketed by Sturm-sequence bisection and polished by Newton on $p_n$, and the weights are the
//! Christoffel numbers $1/\sum_{k<n}p_k(x_i)^2$ (Golub–Welsch, without the eigenvectors).
//! The half-range recurrence has no closed form. It comes from the Lanczos form of the
//! discretised Stieltjes procedure (Gautschi 1982, with full reorthogonalisation) on a
//! Gauss–Legendre discretisation of $\[0,T\]$, $T=\sqrt{2n}+10$ past where $t^{2n}e^{-t^2/2}$
//! matters. Legendre nodes come from Newton on the Legendre recurrence from the usual cosine
//! guesses.
//!
//! ```
//! use saddle::numeric::gauss_rule::{GaussRule, half_range_hermite};
//!
//! // ∫₀^∞ t² e^{−t²/2} dt = √(π/2)
//! let rule: GaussRule = half_range_hermite(8).unwrap();
//! let second: f64 = rule.nodes.iter().zip(&rule.weights).map(|(t, w)| w * t * t).sum();
//! assert!((second - (std::f64::consts::PI / 2.0).sqrt()).abs() < 1e-14);
//! ```

use std::f64::consts::PI;

use super::quad::{MAX_ORDER, QuadError};

/// Nodes (ascending) and weights of one Gauss rule.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussRule {
    /// The nodes, in increasing order.
    pub nodes: Vec<f64>,
    /// Their weights.
    pub weights: Vec<f64>,
}

/// Gauss–Legendre rule of order `n` on $[-1,1]$.
pub fn legendre(n: usize) -> Result<GaussRule, QuadError> {
    check_order(n)?;
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        for _ in 0..100 {
            let (p, derivative) = legendre_value(n, x);
            let step = p / derivative;
            x -= step;
            if step.abs() <= 1e-16 {
                break;
            }
        }
        let (_, derivative) = legendre_value(n, x);
        let w = 2.0 / ((1.0 - x * x) * derivative * derivative);
        // Descending cosines: node i from the top, mirrored to the bottom.
        nodes[n - 1 - i] = x;
        nodes[i] = -x;
        weights[n - 1 - i] = w;
        weights[i] = w;
    }
    if n % 2 == 1 {
        nodes[n / 2] = 0.0;
    }
    Ok(GaussRule { nodes, weights })
}

/// $(P_n(x), P_n'(x))$ by the three-term recurrence.
fn legendre_value(n: usize, x: f64) -> (f64, f64) {
    let (mut previous, mut current) = (0.0, 1.0);
    for k in 0..n {
        let next = ((2 * k + 1) as f64 * x * current - k as f64 * previous) / (k + 1) as f64;
        previous = current;
        current = next;
    }
    (current, n as f64 * (x * current - previous) / (x * x - 1.0))
}

/// Gauss rule of order `n` for the weight $e^{-t^2/2}$ on $[0,\infty)$: exact for polynomials
/// of degree $<2n$, $\sum_i w_i=\sqrt{\pi/2}$.
pub fn half_range_hermite(n: usize) -> Result<GaussRule, QuadError> {
    check_order(n)?;
    let top = (2.0 * n as f64).sqrt() + 10.0;
    let points = 2 * n + 4 * top.ceil() as usize + 40;
    let grid = legendre(points)?;
    let (t, w): (Vec<f64>, Vec<f64>) = grid
        .nodes
        .iter()
        .zip(&grid.weights)
        .map(|(&x, &v)| {
            let t = 0.5 * top * (x + 1.0);
            (t, 0.5 * top * v * (-0.5 * t * t).exp())
        })
        .unzip();
    let (diagonal, off_diagonal) = lanczos(&t, &w, n);
    let mass = w.iter().sum::<f64>();
    Ok(from_recurrence(&diagonal, &off_diagonal, mass))
}

/// The recurrence coefficients $(a_k)_{k<n}$, $(b_k)_{1\le k<n}$ (stored at index $k$, index 0
/// unused) of the discrete measure $\sum_jw_j\delta_{t_j}$.
fn lanczos(t: &[f64], w: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(n);
    let start: Vec<f64> = w.iter().map(|w| w.sqrt()).collect();
    let length = norm(&start);
    basis.push(start.iter().map(|x| x / length).collect());
    let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
    for k in 0..n {
        let q = &basis[k];
        a[k] = q.iter().zip(t).map(|(q, t)| q * q * t).sum();
        if k + 1 == n {
            break;
        }
        let mut r: Vec<f64> = q.iter().zip(t).map(|(q, t)| (t - a[k]) * q).collect();
        if k > 0 {
            r.iter_mut()
                .zip(&basis[k - 1])
                .for_each(|(r, p)| *r -= b[k] * p);
        }
        // Full reorthogonalisation (twice is enough) keeps the basis orthonormal to rounding.
        for _ in 0..2 {
            for v in &basis {
                let overlap: f64 = r.iter().zip(v).map(|(r, v)| r * v).sum();
                r.iter_mut().zip(v).for_each(|(r, v)| *r -= overlap * v);
            }
        }
        b[k + 1] = norm(&r);
        basis.push(r.iter().map(|x| x / b[k + 1]).collect());
    }
    (a, b)
}

/// The Gauss rule of the orthonormal recurrence with diagonal `a`, off-diagonal `b` (index 0
/// unused) and total mass `mass`.
fn from_recurrence(a: &[f64], b: &[f64], mass: f64) -> GaussRule {
    let n = a.len();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for k in 0..n {
        let radius =
            b[k].abs() * f64::from(u8::from(k > 0)) + b.get(k + 1).map_or(0.0, |b| b.abs());
        lo = lo.min(a[k] - radius);
        hi = hi.max(a[k] + radius);
    }
    let mut nodes = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for index in 0..n {
        let (mut left, mut right) = (lo, hi);
        while right - left > 1e-9 * (1.0 + left.abs().max(right.abs())) {
            let mid = 0.5 * (left + right);
            if eigenvalues_below(a, b, mid) > index {
                right = mid;
            } else {
                left = mid;
            }
        }
        let mut x = 0.5 * (left + right);
        for _ in 0..20 {
            let (value, derivative, _) = orthonormal(a, b, mass, x);
            let step = value / derivative;
            x -= step;
            if step.abs() <= 1e-16 * (1.0 + x.abs()) {
                break;
            }
        }
        let (_, _, squares) = orthonormal(a, b, mass, x);
        nodes.push(x);
        weights.push(1.0 / squares);
    }
    GaussRule { nodes, weights }
}

/// The number of eigenvalues of the Jacobi matrix below `x` (negative pivots of the $LDL^\top$
/// factorisation of $J-xI$).
fn eigenvalues_below(a: &[f64], b: &[f64], x: f64) -> usize {
    let mut count = 0;
    let mut pivot = 1.0;
    for k in 0..a.len() {
        let coupling = if k == 0 { 0.0 } else { b[k] * b[k] };
        let safe = if pivot == 0.0 {
            f64::MIN_POSITIVE
        } else {
            pivot
        };
        pivot = a[k] - x - coupling / safe;
        count += usize::from(pivot < 0.0);
    }
    count
}

/// $(q_n(x), q_n'(x), \sum_{k<n}p_k(x)^2)$ with $q_n=b_np_n$ (same roots as $p_n$).
fn orthonormal(a: &[f64], b: &[f64], mass: f64, x: f64) -> (f64, f64, f64) {
    let (mut previous, mut current) = (0.0, 1.0 / mass.sqrt());
    let (mut d_previous, mut d_current) = (0.0, 0.0);
    let mut squares = 0.0;
    let n = a.len();
    for k in 0..n {
        squares += current * current;
        let next = (x - a[k]) * current - if k == 0 { 0.0 } else { b[k] * previous };
        let d_next =
            current + (x - a[k]) * d_current - if k == 0 { 0.0 } else { b[k] * d_previous };
        if k + 1 == n {
            return (next, d_next, squares);
        }
        previous = current;
        d_previous = d_current;
        current = next / b[k + 1];
        d_current = d_next / b[k + 1];
    }
    (current, d_current, squares)
}

fn check_order(n: usize) -> Result<(), QuadError> {
    if n == 0 || n > MAX_ORDER {
        return Err(QuadError::InvalidOrder { order: n });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// $\sum_iw_ix_i^k$.
    fn moment(rule: &GaussRule, k: usize) -> f64 {
        rule.nodes
            .iter()
            .zip(&rule.weights)
            .map(|(x, w)| w * x.powi(k as i32))
            .sum()
    }

    /// $\int_0^\infty t^ke^{-t^2/2}dt=2^{(k-1)/2}\Gamma(\tfrac{k+1}2)$.
    fn half_moment(k: usize) -> f64 {
        2f64.powf((k as f64 - 1.0) / 2.0) * libm::tgamma((k as f64 + 1.0) / 2.0)
    }

    #[test]
    fn legendre_is_exact_to_degree_2n_minus_1() {
        for n in [1, 2, 5, 16, 40, 301] {
            let rule = legendre(n).unwrap();
            assert!(rule.nodes.windows(2).all(|w| w[0] < w[1]), "order {n}");
            for k in 0..2 * n {
                let got = moment(&rule, k);
                let want = if k % 2 == 1 {
                    0.0
                } else {
                    2.0 / (k as f64 + 1.0)
                };
                assert!(
                    (got - want).abs() < 1e-13,
                    "order {n}, x^{k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn half_range_hermite_is_exact_to_degree_2n_minus_1() {
        for n in [1, 3, 12, 32, 64] {
            let rule = half_range_hermite(n).unwrap();
            assert!(rule.nodes.windows(2).all(|w| w[0] < w[1]), "order {n}");
            assert!(rule.nodes[0] > 0.0 && rule.weights.iter().all(|&w| w > 0.0));
            // Relative: the moments grow like Γ((k+1)/2).
            for k in 0..2 * n {
                let got = moment(&rule, k);
                let want = half_moment(k);
                assert!(
                    (got - want).abs() < 1e-12 * want,
                    "order {n}, t^{k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn half_range_hermite_integrates_a_shifted_gaussian_tail() {
        // ∫_s^∞ φ(z) dz = Φ(−s) as φ(s) Σ w e^{−s t}: exponential convergence in the order.
        for s in [0.0_f64, 0.5, 2.0, 5.0] {
            let rule = half_range_hermite(24).unwrap();
            let density = (-0.5 * s * s).exp() / (2.0 * PI).sqrt();
            let got: f64 = rule
                .nodes
                .iter()
                .zip(&rule.weights)
                .map(|(t, w)| w * density * (-s * t).exp())
                .sum();
            let want = 0.5 * libm::erfc(s / 2f64.sqrt());
            assert!(
                (got - want).abs() < 1e-14 * want.max(1e-3),
                "s = {s}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn orders_out_of_range_are_errors() {
        assert_eq!(legendre(0), Err(QuadError::InvalidOrder { order: 0 }));
        assert!(half_range_hermite(MAX_ORDER + 1).is_err());
    }
}
