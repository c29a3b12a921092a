//! The GP posterior: fit on $(K, Y)$, predict at test points (THEORY.md §3).
//!
//! With $LL^\top=K+(\kappa+\epsilon)I$ from [`CholeskyFactor`], $B=L^{-1}Y$ and
//! $V=L^{-1}K_*$:
//! $$\mu_*=K_*^\top(LL^\top)^{-1}Y=V^\top B,\qquad
//!   \sigma_{*j}^2=k_{**j}-\lVert V_{:j}\rVert^2,$$
//! $$\ln p(Y\mid X)=-\tfrac12\lVert B\rVert_F^2-\tfrac D2\ln\det(LL^\top)
//!   -\tfrac{PD}2\ln2\pi.$$
//! The variance needs $V$ anyway, so the mean reuses it and fitting takes one triangular solve,
//! not two; $\alpha=L^{-\top}B$ is formed only when asked for ([`GpPosterior::weights`]).
//! Prediction runs over blocks of [`PREDICT_BLOCK`] test points, so its scratch is
//! $P\times$ block, whatever $P_*$ is.

use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::solve_upper_triangular_in_place;
use faer::{Accum, Mat};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use super::error::{GpError, check_finite, shape_error};
use super::factor::{CholeskyFactor, JitterInfo};

/// Number of test points processed together in [`GpPosterior::predict`].
pub const PREDICT_BLOCK: usize = 256;

/// A fitted GP: Cholesky factor of $K+(\kappa+\epsilon)I$, whitened targets $L^{-1}Y$ and
/// $\ln p(Y|X)$.
#[derive(Debug, Clone)]
pub struct GpPosterior {
    factor: CholeskyFactor,
    /// $B=L^{-1}Y$, $P\times D$.
    whitened_targets: Mat<f64>,
    noise: f64,
    log_marginal_likelihood: f64,
}

/// Posterior predictions at the test points.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Posterior mean $\mu_*$, $P_*\times D$.
    pub mean: Array2<f64>,
    /// Latent posterior variance $\sigma_*^2$ per test point (add $\kappa$ for a noisy label);
    /// negatives from rounding are clamped to 0.
    pub latent_variance: Array1<f64>,
}

impl GpPosterior {
    /// Factors $K+\kappa I$ in `kernel`'s own buffer (jitter policy of [`CholeskyFactor`]) and
    /// solves for $L^{-1}Y$. `kernel`: symmetric $P\times P$; `targets`: $P\times D$; both finite.
    pub fn fit(
        kernel: Array2<f64>,
        targets: ArrayView2<'_, f64>,
        noise: f64,
    ) -> Result<Self, GpError> {
        let n = kernel.nrows();
        if targets.nrows() != n || targets.ncols() == 0 {
            let expected = format!("must have {n} rows (one per pattern) and ≥ 1 column");
            return Err(shape_error("targets", expected, targets.dim()));
        }
        check_finite("targets", targets)?;
        let factor = CholeskyFactor::new(kernel, noise)?;
        let mut whitened_targets = Mat::from_fn(n, targets.ncols(), |i, d| targets[[i, d]]);
        factor.solve_lower_in_place(whitened_targets.as_mut())?;
        let fit_term: f64 = (0..targets.ncols())
            .map(|d| whitened_targets.col(d).iter().map(|b| b * b).sum::<f64>())
            .sum();
        let outputs = targets.ncols() as f64;
        let log_marginal_likelihood = -0.5 * fit_term
            - 0.5 * outputs * factor.log_det()
            - 0.5 * n as f64 * outputs * (2.0 * std::f64::consts::PI).ln();
        Ok(Self {
            factor,
            whitened_targets,
            noise,
            log_marginal_likelihood,
        })
    }

    /// Posterior mean and latent variance at $P_*$ test points: `cross_kernel` is $K_*$
    /// ($P\times P_*$, column $j$ = $k(X, x_{*j})$), `test_diagonal` is $k_{**}$ ($P_*$).
    pub fn predict(
        &self,
        cross_kernel: ArrayView2<'_, f64>,
        test_diagonal: ArrayView1<'_, f64>,
    ) -> Result<Prediction, GpError> {
        let n = self.factor.dim();
        let n_test = cross_kernel.ncols();
        if cross_kernel.nrows() != n {
            let expected = format!("must have {n} rows (one per training pattern)");
            return Err(shape_error("cross_kernel", expected, cross_kernel.dim()));
        }
        if test_diagonal.len() != n_test {
            let expected = format!("must have {n_test} entries (one per column of cross_kernel)");
            return Err(shape_error(
                "test_diagonal",
                expected,
                (test_diagonal.len(), 1),
            ));
        }
        check_finite("cross_kernel", cross_kernel)?;
        check_finite("test_diagonal", test_diagonal.insert_axis(Axis(1)))?;
        let par = faer::get_global_parallelism();
        let outputs = self.whitened_targets.ncols();
        let mut mean = Array2::zeros((n_test, outputs));
        let mut latent_variance = Array1::zeros(n_test);
        let mut mean_block = Mat::<f64>::zeros(PREDICT_BLOCK.min(n_test), outputs);
        for start in (0..n_test).step_by(PREDICT_BLOCK) {
            let width = PREDICT_BLOCK.min(n_test - start);
            let mut block = Mat::from_fn(n, width, |i, j| cross_kernel[[i, start + j]]);
            self.factor.solve_lower_in_place(block.as_mut())?;
            let mean_view = mean_block.as_mut().subrows_mut(0, width);
            matmul(
                mean_view,
                Accum::Replace,
                block.transpose(),
                self.whitened_targets.as_ref(),
                1.0,
                par,
            );
            for j in 0..width {
                let explained: f64 = block.col(j).iter().map(|v| v * v).sum();
                latent_variance[start + j] = (test_diagonal[start + j] - explained).max(0.0);
                for d in 0..outputs {
                    mean[[start + j, d]] = mean_block[(j, d)];
                }
            }
        }
        Ok(Prediction {
            mean,
            latent_variance,
        })
    }

    /// Solves $(K+(\kappa+\epsilon)I)\,X=B$ for a finite $P\times m$ right-hand side $B$.
    pub fn solve(&self, rhs: ArrayView2<'_, f64>) -> Result<Array2<f64>, GpError> {
        let n = self.factor.dim();
        if rhs.nrows() != n {
            return Err(shape_error("rhs", format!("must have {n} rows"), rhs.dim()));
        }
        check_finite("rhs", rhs)?;
        let mut x = Mat::from_fn(n, rhs.ncols(), |i, j| rhs[[i, j]]);
        self.factor.solve_in_place(x.as_mut())?;
        Ok(Array2::from_shape_fn(rhs.dim(), |(i, j)| x[(i, j)]))
    }

    /// $\alpha=(K+(\kappa+\epsilon)I)^{-1}Y$, $P\times D$.
    pub fn weights(&self) -> Array2<f64> {
        let mut weights = self.whitened_targets.clone();
        solve_upper_triangular_in_place(
            self.factor.lower().transpose(),
            weights.as_mut(),
            faer::get_global_parallelism(),
        );
        let shape = (weights.nrows(), weights.ncols());
        Array2::from_shape_fn(shape, |(i, d)| weights[(i, d)])
    }

    /// $\ln p(Y\mid X)$ of $K+(\kappa+\epsilon)I$.
    pub fn log_marginal_likelihood(&self) -> f64 {
        self.log_marginal_likelihood
    }

    /// The jitter the factorisation needed.
    pub fn jitter(&self) -> JitterInfo {
        self.factor.jitter()
    }

    /// The Cholesky factor.
    pub fn factor(&self) -> &CholeskyFactor {
        &self.factor
    }

    /// The readout noise $\kappa$ given to [`fit`](Self::fit).
    pub fn noise(&self) -> f64 {
        self.noise
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::linalg::solvers::DenseSolveCore;
    use ndarray::{Array, s};

    /// Deterministic uniform numbers in [−1, 1) (splitmix64), so the tests need no RNG crate.
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    /// A joint kernel on `n + n_test` points from random features, split into (K, K*, k**).
    fn random_problem(
        n: usize,
        n_test: usize,
        seed: u64,
    ) -> (Array2<f64>, Array2<f64>, Array1<f64>) {
        let mut draw = uniform(seed);
        let features = n + n_test + 5;
        let phi = Array::from_shape_fn((n + n_test, features), |_| draw());
        let joint = phi.dot(&phi.t()) / features as f64 + 0.1;
        let kernel = joint.slice(s![..n, ..n]).to_owned();
        let cross = joint.slice(s![..n, n..]).to_owned();
        let diagonal = joint.diag().slice(s![n..]).to_owned();
        (kernel, cross, diagonal)
    }

    fn to_faer(a: &Array2<f64>) -> Mat<f64> {
        Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
    }

    fn max_abs_diff<'a>(
        a: impl IntoIterator<Item = &'a f64>,
        b: impl IntoIterator<Item = &'a f64>,
    ) -> f64 {
        a.into_iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    /// Mean, variance and log marginal likelihood by an independent route: LU inverse and
    /// LU determinant of K + κI (faer `partial_piv_lu`), no Cholesky.
    fn dense_reference(
        kernel: &Array2<f64>,
        targets: &Array2<f64>,
        cross: &Array2<f64>,
        diagonal: &Array1<f64>,
        noise: f64,
    ) -> (Mat<f64>, Vec<f64>, f64) {
        let n = kernel.nrows();
        let m = to_faer(&(kernel + &(Array2::<f64>::eye(n) * noise)));
        let inverse = m.partial_piv_lu().inverse();
        let (y, k_star) = (to_faer(targets), to_faer(cross));
        let mean = k_star.transpose() * &inverse * &y;
        let explained = k_star.transpose() * &inverse * &k_star;
        let variance = (0..cross.ncols())
            .map(|j| diagonal[j] - explained[(j, j)])
            .collect();
        let quadratic = (y.transpose() * &inverse * &y)
            .diagonal()
            .column_vector()
            .sum();
        let outputs = targets.ncols() as f64;
        let lml = -0.5 * quadratic
            - 0.5 * outputs * m.determinant().ln()
            - 0.5 * (n as f64) * outputs * (2.0 * std::f64::consts::PI).ln();
        (mean, variance, lml)
    }

    #[test]
    fn matches_a_dense_lu_solve() {
        // P* = 300 > PREDICT_BLOCK exercises two blocks.
        let (n, n_test, outputs, noise) = (40, 300, 3, 0.05);
        let (kernel, cross, diagonal) = random_problem(n, n_test, 7);
        let mut draw = uniform(11);
        let targets = Array::from_shape_fn((n, outputs), |_| draw());
        let (mean_ref, variance_ref, lml_ref) =
            dense_reference(&kernel, &targets, &cross, &diagonal, noise);
        let posterior = GpPosterior::fit(kernel, targets.view(), noise).expect("SPD");
        assert_eq!(posterior.jitter().attempts, 1);
        let prediction = posterior
            .predict(cross.view(), diagonal.view())
            .expect("shapes");
        let mean_error = (0..n_test)
            .flat_map(|j| (0..outputs).map(move |d| (j, d)))
            .map(|(j, d)| (prediction.mean[[j, d]] - mean_ref[(j, d)]).abs())
            .fold(0.0, f64::max);
        let variance_error = max_abs_diff(&prediction.latent_variance, &variance_ref);
        let lml_error = (posterior.log_marginal_likelihood() - lml_ref).abs();
        eprintln!(
            "dense route: mean {mean_error:.1e}, variance {variance_error:.1e}, ln p {lml_error:.1e}"
        );
        assert!(
            mean_error < 1e-10 && variance_error < 1e-10,
            "{mean_error:e} {variance_error:e}"
        );
        assert!(lml_error < 1e-10 * lml_ref.abs(), "{lml_error:e}");
        assert!(prediction.latent_variance.iter().all(|&v| v > 0.0));
    }

    #[test]
    fn solve_inverts_the_regularised_kernel() {
        let (kernel, _, _) = random_problem(20, 0, 3);
        let rhs = Array2::from_shape_fn((20, 2), |(i, j)| (i + 3 * j) as f64 / 20.0);
        let posterior = GpPosterior::fit(kernel.clone(), rhs.view(), 0.1).expect("SPD");
        let x = posterior.solve(rhs.view()).expect("shapes");
        let residual = (&kernel + &(Array2::<f64>::eye(20) * 0.1)).dot(&x) - &rhs;
        assert!(residual.iter().all(|r| r.abs() < 1e-12));
        assert!(max_abs_diff(&posterior.weights(), &x) < 1e-15);
    }

    #[test]
    fn bad_arguments_are_named() {
        let (kernel, cross, diagonal) = random_problem(5, 2, 1);
        let err = GpPosterior::fit(kernel.clone(), Array2::zeros((4, 1)).view(), 0.1).unwrap_err();
        assert!(
            matches!(
                err,
                GpError::ShapeMismatch {
                    name: "targets",
                    found: (4, 1),
                    ..
                }
            ),
            "{err}"
        );
        let mut nan_targets = Array2::zeros((5, 1));
        nan_targets[[2, 0]] = f64::NAN;
        let err = GpPosterior::fit(kernel.clone(), nan_targets.view(), 0.1).unwrap_err();
        assert!(
            matches!(
                err,
                GpError::NonFinite {
                    name: "targets",
                    row: 2,
                    ..
                }
            ),
            "{err}"
        );
        let posterior = GpPosterior::fit(kernel, Array2::ones((5, 1)).view(), 0.1).expect("SPD");
        let err = posterior.predict(cross.t(), diagonal.view()).unwrap_err();
        assert!(
            matches!(
                err,
                GpError::ShapeMismatch {
                    name: "cross_kernel",
                    ..
                }
            ),
            "{err}"
        );
        let err = posterior
            .predict(cross.view(), diagonal.slice(s![..1]))
            .unwrap_err();
        assert!(
            matches!(
                err,
                GpError::ShapeMismatch {
                    name: "test_diagonal",
                    ..
                }
            ),
            "{err}"
        );
        let mut bad_diagonal = diagonal.clone();
        bad_diagonal[1] = f64::INFINITY;
        let err = posterior
            .predict(cross.view(), bad_diagonal.view())
            .unwrap_err();
        assert!(
            matches!(
                err,
                GpError::NonFinite {
                    name: "test_diagonal",
                    row: 1,
                    ..
                }
            ),
            "{err}"
        );
    }
}
