//! Gaussian-process regression with a given kernel (THEORY.md §3): posterior mean, latent
//! variance, log marginal likelihood, test error and accuracy, via one Cholesky factor.
//!
//! With training kernel $K$ ($P\times P$), targets $Y$ ($P\times D$), cross-kernel $K_*$
//! ($P\times P_*$, column $j$ = $k(X, x_{*j})$), test diagonal $k_{**}$ and readout noise
//! $\kappa$, factor $K+\kappa I+\epsilon I = LL^\top$ and
//! $$\mu_* = K_*^\top\alpha,\quad \alpha = L^{-\top}L^{-1}Y,\qquad
//!   \sigma_{*j}^2 = k_{**j} - \lVert L^{-1}K_{*,:j}\rVert^2,$$
//! $$\ln p(Y\mid X) = -\tfrac12\textstyle\sum_{d}y_d^\top\alpha_d - D\sum_i\ln L_{ii}
//!   - \tfrac{PD}2\ln 2\pi .$$
//! $(K+\kappa I)^{-1}$ is never formed. On a test set with targets $Y_*$:
//! MSE $=\frac1{P_*}\sum_j\sum_d(y_{*jd}-\mu_{*jd})^2$, expected generalisation error
//! $\varepsilon_g=\text{MSE}+\frac{D}{P_*}\sum_j\sigma_{*j}^2$ (latent, without $D\kappa$),
//! accuracy by sign ($D=1$, ±1 targets; $\mu=0$ counts as wrong) or by argmax (one-hot, $D>1$).
//!
//! ## Jitter policy (reported in [`JitterInfo`])
//! First try $\epsilon=0$. If Cholesky fails — a non-positive pivot, or a pivot $L_{ii}^2$
//! below $P\,\varepsilon_{\text{mach}}\max_i A_{ii}$, where the factor is numerically singular —
//! retry with $\epsilon = r\,\bar k$, $r = 10^{-10}, 10^{-9},\dots$ (×10, Lee et al.'s
//! `gpr.py`), giving up with [`GpError::NotPositiveDefinite`] once $r$ would exceed $0.2$.
//! The jitter is **relative**: $\bar k$ is the mean of $\operatorname{diag}K$ (1 if that is not
//! positive), so the policy does not depend on the kernel's units. Lee et al. always start at
//! $r=10^{-10}$; trying $\epsilon=0$ first leaves well-posed problems exact. All outputs,
//! including $\ln p$, are those of $K+(\kappa+\epsilon)I$.
//!
//! ## Memory
//! [`GpPosterior::fit`] takes ownership of $K$ and factors it in its own buffer; the only copy
//! is the packed lower triangle ($P(P+1)/2$ numbers) kept to restart after a failed attempt,
//! freed on return — peak $\approx1.5$ $P\times P$ matrices. Prediction works in blocks of
//! [`PREDICT_BLOCK`] test points ($P\times$ block scratch). Threads: `faer`'s global setting.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{LltError, LltParams, cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::Serialize;

/// First relative jitter tried after a jitter-free attempt fails.
pub const JITTER_START: f64 = 1e-10;
/// Relative jitters above this are not tried.
pub const JITTER_MAX: f64 = 0.2;
/// Factor between successive relative jitters.
pub const JITTER_GROWTH: f64 = 10.0;
/// Largest tolerated $|K_{ij}-K_{ji}|$ relative to $\max_i|K_{ii}|$.
pub const SYMMETRY_TOLERANCE: f64 = 1e-8;
/// Number of test points processed together in [`GpPosterior::predict`].
pub const PREDICT_BLOCK: usize = 256;

/// Why GP regression could not be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpError {
    /// Cholesky of $K+\kappa I+\epsilon I$ failed for every jitter of the policy.
    #[error("K + κI is not positive definite: Cholesky failed at pivot {pivot} even with jitter {jitter_tried:e} (the largest the policy allows); the kernel is indefinite or not a kernel")]
    NotPositiveDefinite {
        /// Largest absolute jitter $\epsilon$ tried.
        jitter_tried: f64,
        /// Pivot at which the last attempt failed (0-based).
        pivot: usize,
    },
    /// An argument has the wrong shape.
    #[error("`{name}` has shape {found:?} but {expected}")]
    ShapeMismatch {
        /// The argument.
        name: &'static str,
        /// What was required.
        expected: String,
        /// The shape found (rows, columns; vectors as (len, 1)).
        found: (usize, usize),
    },
    /// An argument contains NaN or ±inf.
    #[error("`{name}` has a non-finite entry {value} at ({row}, {column})")]
    NonFinite {
        /// The argument.
        name: &'static str,
        /// 0-based row.
        row: usize,
        /// 0-based column.
        column: usize,
        /// The value found.
        value: f64,
    },
    /// The training kernel is not symmetric within [`SYMMETRY_TOLERANCE`].
    #[error("kernel is not symmetric: K[{row}][{column}] = {value} but K[{column}][{row}] = {transposed_value}")]
    NotSymmetric {
        /// 0-based row.
        row: usize,
        /// 0-based column.
        column: usize,
        /// $K_{ij}$.
        value: f64,
        /// $K_{ji}$.
        transposed_value: f64,
    },
    /// The noise is negative or not finite.
    #[error("noise κ = {0} must be finite and ≥ 0")]
    InvalidNoise(f64),
}

/// The jitter the Cholesky factorisation needed (all zero when none was needed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct JitterInfo {
    /// Relative jitter $r$ (0, or $10^{-10}\dots10^{-1}$).
    pub relative: f64,
    /// Absolute jitter $\epsilon=r\,\bar k$ added to the diagonal on top of $\kappa$.
    pub absolute: f64,
    /// Number of factorisations attempted (1 = succeeded without jitter).
    pub attempts: usize,
}

/// A factored GP posterior: Cholesky factor of $K+\kappa I+\epsilon I$ and $\alpha$.
#[derive(Debug, Clone)]
pub struct GpPosterior {
    /// Column-major $P\times P$; the lower triangle holds $L$, the rest is scratch.
    factor: Vec<f64>,
    n_train: usize,
    weights: Mat<f64>,
    noise: f64,
    jitter: JitterInfo,
    log_marginal_likelihood: f64,
}

/// Posterior predictions at the test points.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Posterior mean $\mu_*$, $P_*\times D$.
    pub mean: Array2<f64>,
    /// Latent posterior variance $\sigma_*^2$ per test point (add $\kappa$ for a noisy label);
    /// rounding negatives are clamped to 0.
    pub latent_variance: Array1<f64>,
}

/// Errors of a prediction against test targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TestMetrics {
    /// $\frac1{P_*}\sum_j\sum_d(y_{*jd}-\mu_{*jd})^2$.
    pub mse: f64,
    /// $\varepsilon_g=\text{MSE}+\frac D{P_*}\sum_j\sigma_{*j}^2$ (THEORY.md §3).
    pub generalisation_error: f64,
    /// Fraction classified correctly (sign for $D=1$, argmax for $D>1$).
    pub accuracy: f64,
}

/// Everything [`regress`] computes.
#[derive(Debug, Clone, PartialEq)]
pub struct GpResult {
    /// Posterior mean and latent variance at the test points.
    pub prediction: Prediction,
    /// $\ln p(Y\mid X)$ of $K+(\kappa+\epsilon)I$.
    pub log_marginal_likelihood: f64,
    /// Jitter used by the Cholesky factorisation.
    pub jitter: JitterInfo,
    /// Test errors, when test targets were given.
    pub metrics: Option<TestMetrics>,
}

/// Fits on $(K, Y)$, predicts at the test points and, given test targets, scores them.
pub fn regress(
    kernel: Array2<f64>,
    targets: ArrayView2<'_, f64>,
    cross_kernel: ArrayView2<'_, f64>,
    test_diagonal: ArrayView1<'_, f64>,
    noise: f64,
    test_targets: Option<ArrayView2<'_, f64>>,
) -> Result<GpResult, GpError> {
    let posterior = GpPosterior::fit(kernel, targets, noise)?;
    let prediction = posterior.predict(cross_kernel, test_diagonal)?;
    let metrics = test_targets.map(|y| prediction.metrics(y)).transpose()?;
    Ok(GpResult {
        prediction,
        log_marginal_likelihood: posterior.log_marginal_likelihood,
        jitter: posterior.jitter,
        metrics,
    })
}

impl GpPosterior {
    /// Factors $K+\kappa I$ (jitter policy in the module docs) in `kernel`'s own buffer and
    /// solves for $\alpha=(K+\kappa I)^{-1}Y$. `kernel` must be symmetric ($P\times P$),
    /// `targets` $P\times D$, both finite; $\kappa\ge0$.
    pub fn fit(kernel: Array2<f64>, targets: ArrayView2<'_, f64>, noise: f64) -> Result<Self, GpError> {
        let n = kernel.nrows();
        if kernel.ncols() != n || n == 0 {
            return Err(shape("kernel", "must be square and non-empty", kernel.dim()));
        }
        if targets.nrows() != n || targets.ncols() == 0 {
            return Err(shape("targets", &format!("must have {n} rows (one per pattern) and ≥ 1 column"), targets.dim()));
        }
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(GpError::InvalidNoise(noise));
        }
        check_finite("kernel", kernel.view())?;
        check_finite("targets", targets)?;
        let mut factor = into_row_major(kernel);
        symmetrise_lower(&mut factor, n)?;
        let (jitter, pivot_log_sum) = factor_with_jitter(&mut factor, n, noise)?;

        let lower = MatRef::from_column_major_slice(&factor, n, n);
        let mut weights = Mat::from_fn(n, targets.ncols(), |i, d| targets[[i, d]]);
        let par = faer::get_global_parallelism();
        solve_lower_triangular_in_place(lower, weights.as_mut(), par);
        solve_upper_triangular_in_place(lower.transpose(), weights.as_mut(), par);
        let fit_term: f64 = targets.indexed_iter().map(|((i, d), y)| y * weights[(i, d)]).sum();
        let outputs = targets.ncols() as f64;
        let log_marginal_likelihood = -0.5 * fit_term
            - outputs * pivot_log_sum
            - 0.5 * n as f64 * outputs * (2.0 * std::f64::consts::PI).ln();
        Ok(Self { factor, n_train: n, weights, noise, jitter, log_marginal_likelihood })
    }

    /// Posterior mean and latent variance at $P_*$ test points: `cross_kernel` is $K_*$
    /// ($P\times P_*$), `test_diagonal` is $k_{**}$ (length $P_*$).
    pub fn predict(&self, cross_kernel: ArrayView2<'_, f64>, test_diagonal: ArrayView1<'_, f64>) -> Result<Prediction, GpError> {
        let n = self.n_train;
        let n_test = cross_kernel.ncols();
        if cross_kernel.nrows() != n {
            return Err(shape("cross_kernel", &format!("must have {n} rows (one per training pattern)"), cross_kernel.dim()));
        }
        if test_diagonal.len() != n_test {
            return Err(shape("test_diagonal", &format!("must have {n_test} entries (columns of cross_kernel)"), (test_diagonal.len(), 1)));
        }
        check_finite("cross_kernel", cross_kernel)?;
        check_finite("test_diagonal", test_diagonal.insert_axis(ndarray::Axis(1)))?;
        let lower = self.lower();
        let par = faer::get_global_parallelism();
        let outputs = self.weights.ncols();
        let mut mean = Array2::zeros((n_test, outputs));
        let mut latent_variance = Array1::zeros(n_test);
        let mut mean_scratch = Mat::<f64>::zeros(PREDICT_BLOCK.min(n_test), outputs);
        for start in (0..n_test).step_by(PREDICT_BLOCK) {
            let width = PREDICT_BLOCK.min(n_test - start);
            let mut block = Mat::from_fn(n, width, |i, j| cross_kernel[[i, start + j]]);
            let mut block_mean = mean_scratch.as_mut().subrows_mut(0, width);
            matmul(block_mean.rb_mut(), Accum::Replace, block.transpose(), self.weights.as_ref(), 1.0, par);
            solve_lower_triangular_in_place(lower, block.as_mut(), par);
            for j in 0..width {
                let explained: f64 = block.col(j).iter().map(|v| v * v).sum();
                latent_variance[start + j] = (test_diagonal[start + j] - explained).max(0.0);
                for d in 0..outputs {
                    mean[[start + j, d]] = block_mean[(j, d)];
                }
            }
        }
        Ok(Prediction { mean, latent_variance })
    }

    /// Solves $(K+\kappa I+\epsilon I)X = B$ for a $P\times m$ right-hand side.
    pub fn solve(&self, rhs: ArrayView2<'_, f64>) -> Result<Array2<f64>, GpError> {
        if rhs.nrows() != self.n_train {
            return Err(shape("rhs", &format!("must have {} rows", self.n_train), rhs.dim()));
        }
        check_finite("rhs", rhs)?;
        let mut x = Mat::from_fn(rhs.nrows(), rhs.ncols(), |i, j| rhs[[i, j]]);
        let par = faer::get_global_parallelism();
        solve_lower_triangular_in_place(self.lower(), x.as_mut(), par);
        solve_upper_triangular_in_place(self.lower().transpose(), x.as_mut(), par);
        Ok(Array2::from_shape_fn(rhs.dim(), |(i, j)| x[(i, j)]))
    }

    /// The Cholesky factor $L$ (only its lower triangle is meaningful).
    pub fn lower(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.factor, self.n_train, self.n_train)
    }

    /// $\alpha=(K+\kappa I+\epsilon I)^{-1}Y$, $P\times D$.
    pub fn weights(&self) -> Array2<f64> {
        Array2::from_shape_fn((self.weights.nrows(), self.weights.ncols()), |(i, d)| self.weights[(i, d)])
    }

    /// $\ln p(Y\mid X)$ (THEORY.md §3) of $K+(\kappa+\epsilon)I$.
    pub fn log_marginal_likelihood(&self) -> f64 {
        self.log_marginal_likelihood
    }

    /// The jitter the factorisation needed.
    pub fn jitter(&self) -> JitterInfo {
        self.jitter
    }

    /// The readout noise $\kappa$ given to [`fit`](Self::fit).
    pub fn noise(&self) -> f64 {
        self.noise
    }

    /// Number of training patterns $P$.
    pub fn n_train(&self) -> usize {
        self.n_train
    }
}

impl Prediction {
    /// MSE, expected generalisation error and accuracy against test targets ($P_*\times D$).
    pub fn metrics(&self, test_targets: ArrayView2<'_, f64>) -> Result<TestMetrics, GpError> {
        if test_targets.dim() != self.mean.dim() {
            return Err(shape("test_targets", &format!("must be {:?} like the posterior mean", self.mean.dim()), test_targets.dim()));
        }
        check_finite("test_targets", test_targets)?;
        let n_test = self.mean.nrows().max(1) as f64;
        let squared: f64 = (&test_targets - &self.mean).iter().map(|e| e * e).sum();
        let mse = squared / n_test;
        let variance = self.mean.ncols() as f64 * self.latent_variance.sum() / n_test;
        Ok(TestMetrics { mse, generalisation_error: mse + variance, accuracy: accuracy(self.mean.view(), test_targets) })
    }
}

/// Fraction of rows classified correctly: with one output, $\operatorname{sign}\mu=\operatorname{sign}y$
/// (so $\mu=0$ is wrong); with several, $\arg\max_d\mu_d=\arg\max_d y_d$ (first maximum).
/// Shapes must agree (checked by [`Prediction::metrics`]); an empty set scores 0.
pub fn accuracy(mean: ArrayView2<'_, f64>, targets: ArrayView2<'_, f64>) -> f64 {
    let argmax = |row: ArrayView1<'_, f64>| {
        row.iter().enumerate().fold((0, f64::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
    };
    let correct = mean
        .rows()
        .into_iter()
        .zip(targets.rows())
        .filter(|(mu, y)| if mu.len() == 1 { mu[0] * y[0] > 0.0 } else { argmax(*mu) == argmax(*y) })
        .count();
    correct as f64 / mean.nrows().max(1) as f64
}

/// Runs the jitter policy on the symmetric column-major buffer (lower triangle read).
/// Returns the jitter used and $\sum_i\ln L_{ii}$.
fn factor_with_jitter(buffer: &mut [f64], n: usize, noise: f64) -> Result<(JitterInfo, f64), GpError> {
    let mean_diagonal = (0..n).map(|i| buffer[i * n + i]).sum::<f64>() / n as f64;
    let scale = if mean_diagonal > 0.0 { mean_diagonal } else { 1.0 };
    let backup: Vec<f64> = (0..n).flat_map(|j| buffer[j * n + j..(j + 1) * n].iter().copied()).collect();
    let par = faer::get_global_parallelism();
    let mut scratch = MemBuffer::new(cholesky_in_place_scratch::<f64>(n, par, Default::default()));
    let mut relative = 0.0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let absolute = relative * scale;
        for i in 0..n {
            buffer[i * n + i] += noise + absolute;
        }
        let max_diagonal = (0..n).map(|i| buffer[i * n + i]).fold(0.0f64, f64::max);
        let floor = n as f64 * f64::EPSILON * max_diagonal;
        let matrix = MatMut::from_column_major_slice_mut(buffer, n, n);
        let params = <faer::Spec<LltParams, f64>>::default();
        let outcome = match cholesky_in_place(matrix, Default::default(), par, MemStack::new(&mut scratch), params) {
            Err(LltError::NonPositivePivot { index }) => Err(index),
            // A positive but negligible pivot: the factor is numerically singular.
            Ok(_) => match (0..n).find(|&i| buffer[i * n + i].powi(2) <= floor) {
                Some(index) => Err(index),
                None => Ok(()),
            },
        };
        match outcome {
            Ok(()) => {
                let log_sum = (0..n).map(|i| buffer[i * n + i].ln()).sum();
                return Ok((JitterInfo { relative, absolute, attempts }, log_sum));
            }
            Err(pivot) => {
                let next = if relative == 0.0 { JITTER_START } else { relative * JITTER_GROWTH };
                if next > JITTER_MAX {
                    return Err(GpError::NotPositiveDefinite { jitter_tried: absolute, pivot });
                }
                relative = next;
                let mut packed = backup.iter();
                for j in 0..n {
                    for (slot, value) in buffer[j * n + j..(j + 1) * n].iter_mut().zip(&mut packed) {
                        *slot = *value;
                    }
                }
            }
        }
    }
}

/// The kernel's entries in row-major order, reusing its buffer (no copy) when it is in
/// standard layout. Read as column-major this is $K^\top$, i.e. $K$ once symmetric.
fn into_row_major(kernel: Array2<f64>) -> Vec<f64> {
    let len = kernel.len();
    if !kernel.is_standard_layout() {
        return kernel.iter().copied().collect();
    }
    let (mut buffer, offset) = kernel.into_raw_vec_and_offset();
    buffer.drain(..offset.unwrap_or(0));
    buffer.truncate(len);
    buffer
}

/// Checks $|K_{ij}-K_{ji}|$ on the row-major `buffer` and writes $(K_{ij}+K_{ji})/2$ into the
/// lower triangle of its column-major reading (entry $j n + i$, $i>j$).
fn symmetrise_lower(buffer: &mut [f64], n: usize) -> Result<(), GpError> {
    let max_diagonal = (0..n).map(|i| buffer[i * n + i].abs()).fold(0.0f64, f64::max);
    let tolerance = SYMMETRY_TOLERANCE * max_diagonal.max(f64::MIN_POSITIVE);
    for j in 0..n {
        for i in j + 1..n {
            let (k_ji, k_ij) = (buffer[j * n + i], buffer[i * n + j]);
            if (k_ij - k_ji).abs() > tolerance {
                return Err(GpError::NotSymmetric { row: i, column: j, value: k_ij, transposed_value: k_ji });
            }
            buffer[j * n + i] = 0.5 * (k_ij + k_ji);
        }
    }
    Ok(())
}

fn check_finite(name: &'static str, matrix: ArrayView2<'_, f64>) -> Result<(), GpError> {
    match matrix.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((row, column), &value)) => Err(GpError::NonFinite { name, row, column, value }),
        None => Ok(()),
    }
}

fn shape(name: &'static str, expected: &str, found: (usize, usize)) -> GpError {
    GpError::ShapeMismatch { name, expected: expected.to_owned(), found }
}
