//! GMRES: the solution of A x = b for an operator known only through its products A v.
//!
//! The k-th iterate minimises ‖b − A x‖ over the Krylov space span{b, Ab, …, Aᵏ⁻¹b}
//! (x₀ = 0): Arnoldi builds an orthonormal basis V of it (modified Gram–Schmidt, repeated
//! once, so the basis stays orthogonal when the products are inexact) with A Vₖ = Vₖ₊₁ Hₖ,
//! and Givens rotations keep the least-squares problem min ‖‖b‖e₁ − Hₖ y‖ triangular, so its
//! residual is known after every product without forming x.
//!
//! One product per iteration, which is what matters where a product is a sweep of a
//! saddle-point map over 10⁵ samples (faer's matrix-free solvers offer BiCGSTAB, two
//! products per iteration). No restarts: the caller bounds the dimension.
//!
//! ```
//! use ndarray::{array, Array1};
//! use saddle::numeric::krylov::gmres;
//!
//! let a = array![[4.0, 1.0], [2.0, 3.0]];
//! let b = array![1.0, 2.0];
//! let solution = gmres(&mut |v: &Array1<f64>| Ok::<_, ()>(a.dot(v)), &b, 1e-12, 10).unwrap();
//! assert!((&a.dot(&solution.x) - &b).iter().all(|r| r.abs() < 1e-12));
//! assert_eq!(solution.products, 2);
//! ```

use ndarray::Array1;

/// What [`gmres`] found.
#[derive(Debug, Clone)]
pub struct KrylovSolution {
    /// The iterate.
    pub x: Array1<f64>,
    /// Its residual ‖b − A x‖ relative to ‖b‖ (by the recursion, not recomputed).
    pub residual: f64,
    /// The products A v taken.
    pub products: usize,
}

/// The operator v ↦ A v, which may fail (the error is passed on).
pub type Product<'a, E> = dyn FnMut(&Array1<f64>) -> Result<Array1<f64>, E> + 'a;

/// GMRES from x₀ = 0 until ‖b − A x‖ ≤ `tolerance`·‖b‖ or `max_dimension` products, with
/// `apply` the product v ↦ A v (an error from it is passed on). Stops early where the
/// Krylov space is invariant (the solution is then exact in it), and where a product is not
/// finite (the iterate is then the one before it).
pub fn gmres<E>(
    apply: &mut Product<'_, E>,
    b: &Array1<f64>,
    tolerance: f64,
    max_dimension: usize,
) -> Result<KrylovSolution, E> {
    let n = b.len();
    let beta = b.dot(b).sqrt();
    if beta == 0.0 || !beta.is_finite() || max_dimension == 0 {
        return Ok(KrylovSolution {
            x: Array1::zeros(n),
            residual: if beta == 0.0 { 0.0 } else { 1.0 },
            products: 0,
        });
    }
    let mut basis: Vec<Array1<f64>> = vec![b / beta];
    // columns of the rotated Hessenberg matrix (R after the rotations), the rotations and
    // the rotated right-hand side ‖b‖e₁
    let mut r_columns: Vec<Vec<f64>> = Vec::new();
    let mut rotations: Vec<(f64, f64)> = Vec::new();
    let mut rhs = vec![beta];
    let mut residual = 1.0;
    let mut products = 0;
    while products < max_dimension && residual > tolerance {
        let k = basis.len() - 1;
        let mut w = apply(&basis[k])?;
        products += 1;
        if w.iter().any(|v| !v.is_finite()) {
            // a product that failed numerically: keep the iterate of the space before it
            break;
        }
        let before = w.dot(&w).sqrt();
        let mut h = vec![0.0; k + 2];
        for _ in 0..2 {
            for (i, v) in basis.iter().enumerate() {
                let c = v.dot(&w);
                h[i] += c;
                w.scaled_add(-c, v);
            }
        }
        let norm = w.dot(&w).sqrt();
        h[k + 1] = norm;
        for (i, &(c, s)) in rotations.iter().enumerate() {
            let (a, b) = (h[i], h[i + 1]);
            h[i] = c * a + s * b;
            h[i + 1] = -s * a + c * b;
        }
        let (a, b) = (h[k], h[k + 1]);
        let r = a.hypot(b);
        let (c, s) = if r == 0.0 { (1.0, 0.0) } else { (a / r, b / r) };
        h[k] = r;
        h.truncate(k + 1);
        rotations.push((c, s));
        let top = rhs[k];
        rhs[k] = c * top;
        rhs.push(-s * top);
        residual = rhs[k + 1].abs() / beta;
        r_columns.push(h);
        // an invariant subspace (or a product that vanished): the solution lies in it
        if norm <= 1e-14 * before {
            break;
        }
        basis.push(w / norm);
    }
    // back substitution R y = rhs, then x = V y
    let k = r_columns.len();
    let mut y = vec![0.0; k];
    for i in (0..k).rev() {
        let mut sum = rhs[i];
        for (j, yj) in y.iter().enumerate().skip(i + 1) {
            sum -= r_columns[j][i] * yj;
        }
        let diagonal = r_columns[i][i];
        y[i] = if diagonal == 0.0 { 0.0 } else { sum / diagonal };
    }
    let mut x = Array1::zeros(n);
    for (v, yi) in basis.iter().zip(&y) {
        x.scaled_add(*yi, v);
    }
    Ok(KrylovSolution {
        x,
        residual,
        products,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    fn random_system(n: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
        let mut rng = StdRng::seed_from_u64(seed);
        // I − J with J of spectral radius < 1 would do; a general non-symmetric matrix
        // with a dominant diagonal tests the rotations on every column
        let a = Array2::from_shape_fn((n, n), |(i, j)| {
            rng.random_range(-1.0..1.0) + if i == j { 2.0 * n as f64 } else { 0.0 }
        });
        let b = Array1::from_shape_fn(n, |_| rng.random_range(-1.0..1.0));
        (a, b)
    }

    #[test]
    fn solves_a_non_symmetric_system_to_the_tolerance_and_reports_the_true_residual() {
        let (a, b) = random_system(40, 3);
        let s = gmres(&mut |v: &Array1<f64>| Ok::<_, ()>(a.dot(v)), &b, 1e-10, 40).unwrap();
        let true_residual = (&b - &a.dot(&s.x)).dot(&(&b - &a.dot(&s.x))).sqrt() / b.dot(&b).sqrt();
        assert!(s.residual <= 1e-10, "{}", s.residual);
        assert!(
            (true_residual - s.residual).abs() < 1e-12,
            "{true_residual} vs {}",
            s.residual
        );
        assert!(
            s.products < 40,
            "a dominant diagonal converges fast: {}",
            s.products
        );
    }

    #[test]
    fn the_residual_never_grows_and_the_dimension_bounds_the_products() {
        let (a, b) = random_system(30, 5);
        let mut last = f64::INFINITY;
        for dimension in 1..8 {
            let s = gmres(
                &mut |v: &Array1<f64>| Ok::<_, ()>(a.dot(v)),
                &b,
                0.0,
                dimension,
            )
            .unwrap();
            assert_eq!(s.products, dimension);
            let r = &b - &a.dot(&s.x);
            let true_residual = r.dot(&r).sqrt() / b.dot(&b).sqrt();
            assert!((true_residual - s.residual).abs() < 1e-12);
            assert!(s.residual <= last + 1e-15);
            last = s.residual;
        }
    }

    #[test]
    fn an_invariant_space_ends_early_with_the_exact_solution() {
        // A = 3 I + a rank-one term: b's Krylov space has dimension 2
        let u = Array1::from_shape_fn(20, |i| (i as f64).sin());
        let b = Array1::from_shape_fn(20, |i| 1.0 + i as f64);
        let apply = |v: &Array1<f64>| v * 3.0 + &(&u * u.dot(v));
        let s = gmres(&mut |v: &Array1<f64>| Ok::<_, ()>(apply(v)), &b, 0.0, 20).unwrap();
        assert_eq!(s.products, 2);
        let r = &b - &apply(&s.x);
        assert!(r.dot(&r).sqrt() < 1e-12 * b.dot(&b).sqrt());
    }

    #[test]
    fn a_zero_right_hand_side_and_a_failing_product() {
        let zero = Array1::zeros(5);
        let s = gmres(
            &mut |v: &Array1<f64>| Ok::<_, ()>(v.clone()),
            &zero,
            1e-8,
            5,
        )
        .unwrap();
        assert_eq!((s.products, s.residual), (0, 0.0));
        let failed = gmres(&mut |_: &Array1<f64>| Err("no"), &Array1::ones(3), 1e-8, 5);
        assert_eq!(failed.err(), Some("no"));
        // the second product is NaN: the iterate of the first space, finite
        let mut calls = 0;
        let b = Array1::from_vec(vec![1.0, 2.0, 3.0]);
        let s = gmres(
            &mut |v: &Array1<f64>| {
                calls += 1;
                Ok::<_, ()>(if calls == 2 {
                    v * f64::NAN
                } else {
                    v * 2.0 + 0.1 * v.sum()
                })
            },
            &b,
            1e-12,
            5,
        )
        .unwrap();
        assert_eq!(s.products, 2);
        assert!(
            s.x.iter().all(|v| v.is_finite()) && s.residual < 1.0,
            "{s:?}"
        );
    }
}
