//! Cholesky factor $LL^\top = K+\kappa I+\epsilon I$ with the jitter policy of THEORY.md §3,
//! computed in the buffer of the (owned) kernel.
//!
//! Policy: try $\epsilon=0$; on failure retry with $\epsilon=r\,\bar k$ for
//! $r\in$ [`RELATIVE_JITTERS`] $=10^{-10},10^{-9},\dots,10^{-1}$ (start $10^{-10}$, ×10, stop
//! before exceeding 0.2 — Lee et al.'s `gpr.py`); $\bar k$ is the mean of
//! $\operatorname{diag}K$ (1 if that is not positive), so the jitter is *relative* to the
//! kernel's scale. An attempt fails on a non-positive pivot, or on a positive pivot with
//! $L_{ii}^2\le P\,\varepsilon_{\text{mach}}\max_i A_{ii}$ (numerically singular: the solve
//! would amplify rounding by more than $1/(P\varepsilon_{\text{mach}})$).
//!
//! Memory: the kernel's row-major buffer is symmetrised (both triangles) and reused as the
//! column-major factor (no copy when it is in standard layout). The factorisation,
//! [`crate::numeric::dense::cholesky_lower_in_place`] (blocked, parallel bands of sequential
//! gemms; faster than faer's own on few cores), writes the lower triangle and, as scratch,
//! the strict upper triangle of its diagonal [`PANEL`] blocks only. So a restart needs no
//! copy of the matrix: the upper triangle restores the lower one, and a packed copy of the
//! diagonal blocks ($P\cdot$[`PANEL`] numbers at most) the rest.
//! No pivot is regularised one by one (faer's `LltRegularization`): that would alter single
//! pivots silently, where the policy adds one uniform, reported jitter.

use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{MatMut, MatRef};
use ndarray::Array2;
use serde::Serialize;

use super::error::{GpError, shape_error};
use crate::numeric::dense::{NonPositivePivot, PANEL, cholesky_lower_in_place};

/// Relative jitters $r$ tried, in order, after a jitter-free attempt fails.
pub const RELATIVE_JITTERS: [f64; 10] =
    [1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
/// Largest tolerated $|K_{ij}-K_{ji}|$ relative to $\max_i|K_{ii}|$.
pub const SYMMETRY_TOLERANCE: f64 = 1e-8;

/// The jitter the factorisation needed (zero when none was needed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct JitterInfo {
    /// Relative jitter $r$: 0, or one of [`RELATIVE_JITTERS`].
    pub relative: f64,
    /// Absolute jitter $\epsilon=r\,\bar k$ added to the diagonal on top of $\kappa$.
    pub absolute: f64,
    /// Number of factorisations attempted (1: succeeded without jitter).
    pub attempts: usize,
}

/// Lower Cholesky factor of $K+(\kappa+\epsilon)I$.
#[derive(Debug, Clone)]
pub struct CholeskyFactor {
    /// Column-major $P\times P$; the lower triangle holds $L$, the rest is scratch.
    buffer: Vec<f64>,
    dim: usize,
    jitter: JitterInfo,
    log_det: f64,
}

impl CholeskyFactor {
    /// Factors $K+\kappa I$, adding jitter only if needed. `kernel` must be square,
    /// non-empty, finite and symmetric within [`SYMMETRY_TOLERANCE`]; $\kappa\ge0$ finite.
    pub fn new(kernel: Array2<f64>, noise: f64) -> Result<Self, GpError> {
        let dim = kernel.nrows();
        if kernel.ncols() != dim || dim == 0 {
            let expected = "must be square and non-empty".to_owned();
            return Err(shape_error("kernel", expected, kernel.dim()));
        }
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(GpError::InvalidNoise(noise));
        }
        let mut buffer = into_row_major(kernel);
        symmetrise(&mut buffer, dim)?;
        let jitter = factor_with_jitter(&mut buffer, dim, noise)?;
        let log_det = 2.0 * (0..dim).map(|i| buffer[i * dim + i].ln()).sum::<f64>();
        Ok(Self {
            buffer,
            dim,
            jitter,
            log_det,
        })
    }

    /// $L$ as a faer view (only its lower triangle is meaningful).
    pub fn lower(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.buffer, self.dim, self.dim)
    }

    /// $P$.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The jitter used.
    pub fn jitter(&self) -> JitterInfo {
        self.jitter
    }

    /// $\ln\det(K+(\kappa+\epsilon)I)=2\sum_i\ln L_{ii}$.
    pub fn log_det(&self) -> f64 {
        self.log_det
    }

    /// Overwrites `rhs` ($P\times m$) with $L^{-1}\,$`rhs`.
    pub fn solve_lower_in_place(&self, rhs: MatMut<'_, f64>) -> Result<(), GpError> {
        self.check_rows(&rhs)?;
        solve_lower_triangular_in_place(self.lower(), rhs, faer::get_global_parallelism());
        Ok(())
    }

    /// Overwrites `rhs` ($P\times m$) with $(LL^\top)^{-1}\,$`rhs`.
    pub fn solve_in_place(&self, mut rhs: MatMut<'_, f64>) -> Result<(), GpError> {
        self.check_rows(&rhs)?;
        let par = faer::get_global_parallelism();
        solve_lower_triangular_in_place(self.lower(), rhs.as_mut(), par);
        solve_upper_triangular_in_place(self.lower().transpose(), rhs, par);
        Ok(())
    }

    fn check_rows(&self, rhs: &MatMut<'_, f64>) -> Result<(), GpError> {
        if rhs.nrows() == self.dim {
            Ok(())
        } else {
            let expected = format!("must have {} rows", self.dim);
            Err(shape_error("rhs", expected, (rhs.nrows(), rhs.ncols())))
        }
    }
}

/// Runs the jitter policy on the symmetric column-major `buffer` (lower triangle read).
fn factor_with_jitter(buffer: &mut [f64], n: usize, noise: f64) -> Result<JitterInfo, GpError> {
    let mean_diagonal = (0..n).map(|i| buffer[i * n + i]).sum::<f64>() / n as f64;
    let scale = if mean_diagonal > 0.0 {
        mean_diagonal
    } else {
        1.0
    };
    let diagonal_blocks = DiagonalBlocks::save(buffer, n);
    let mut last_failure = (0.0, 0);
    for (attempt, relative) in std::iter::once(0.0).chain(RELATIVE_JITTERS).enumerate() {
        if attempt > 0 {
            diagonal_blocks.restore(buffer, n);
        }
        let absolute = relative * scale;
        for i in 0..n {
            buffer[i * n + i] += noise + absolute;
        }
        let max_diagonal = (0..n).map(|i| buffer[i * n + i]).fold(0.0f64, f64::max);
        let floor = n as f64 * f64::EPSILON * max_diagonal;
        let matrix = MatMut::from_column_major_slice_mut(buffer, n, n);
        let failed_pivot = match cholesky_lower_in_place(matrix) {
            Err(NonPositivePivot { index }) => Some(index),
            // A positive but negligible pivot: numerically singular.
            Ok(_) => (0..n).find(|&i| buffer[i * n + i].powi(2) <= floor),
        };
        match failed_pivot {
            None => {
                return Ok(JitterInfo {
                    relative,
                    absolute,
                    attempts: attempt + 1,
                });
            }
            Some(pivot) => last_failure = (absolute, pivot),
        }
    }
    Err(GpError::NotPositiveDefinite {
        jitter_tried: last_failure.0,
        pivot: last_failure.1,
    })
}

/// The lower triangles of the diagonal [`PANEL`] blocks of the symmetric column-major
/// matrix, packed column by column: with the upper triangle, which the factorisation leaves
/// alone outside those blocks, they restore the matrix after a failed attempt.
struct DiagonalBlocks(Vec<f64>);

impl DiagonalBlocks {
    /// One past the last row of column j's diagonal block.
    fn block_end(j: usize, n: usize) -> usize {
        n.min((j / PANEL + 1) * PANEL)
    }

    fn save(buffer: &[f64], n: usize) -> Self {
        let mut packed = Vec::with_capacity(n * PANEL.min(n));
        for j in 0..n {
            let block_end = Self::block_end(j, n);
            packed.extend_from_slice(&buffer[j * n + j..j * n + block_end]);
        }
        Self(packed)
    }

    /// Rewrites the lower triangle: the diagonal blocks from the saved copy, the rest from
    /// the upper triangle (entry (i, j), i > j, is the mirror of (j, i) at `i n + j`).
    fn restore(&self, buffer: &mut [f64], n: usize) {
        let mut packed = self.0.iter();
        for j in 0..n {
            let block_end = Self::block_end(j, n);
            for (slot, saved) in buffer[j * n + j..j * n + block_end]
                .iter_mut()
                .zip(&mut packed)
            {
                *slot = *saved;
            }
            for i in block_end..n {
                buffer[j * n + i] = buffer[i * n + j];
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

/// Edge of the square tiles in which the triangle is swept: two 64×64 tiles of f64 fit in
/// L1, so the transposed reads stay in cache.
const TILE: usize = 64;

/// Checks that the row-major `buffer` is finite and $|K_{ij}-K_{ji}|$ small, and writes
/// $(K_{ij}+K_{ji})/2$ into both triangles (then the row-major and the column-major reading
/// agree): one pass over the matrix for all three, its columns of [`TILE`]-wide tiles in
/// parallel. The error reported is the first one in column-tile order, as in a serial pass.
fn symmetrise(buffer: &mut [f64], n: usize) -> Result<(), GpError> {
    use rayon::prelude::*;
    if let Some(i) = (0..n).find(|&i| !buffer[i * n + i].is_finite()) {
        return Err(non_finite(i, i, buffer[i * n + i]));
    }
    let max_diagonal = (0..n)
        .map(|i| buffer[i * n + i].abs())
        .fold(0.0f64, f64::max);
    let tolerance = SYMMETRY_TOLERANCE * max_diagonal.max(f64::MIN_POSITIVE);
    assert!(
        buffer.len() >= n * n,
        "a {n}×{n} kernel in a shorter buffer"
    );
    let entries = TileColumns(buffer.as_mut_ptr());
    let outcomes: Vec<Result<(), GpError>> = (0..n.div_ceil(TILE))
        .into_par_iter()
        .map(|t| {
            let columns = t * TILE..((t + 1) * TILE).min(n);
            // SAFETY: `buffer` holds n×n entries (asserted above), and every index below is
            // (i, j) or (j, i) with j in `columns` and j < i < n, which only the task of this
            // tile column touches (see `TileColumns`).
            unsafe { symmetrise_tile_column(&entries, n, columns, tolerance) }
        })
        .collect();
    outcomes.into_iter().collect()
}

/// The row-major kernel while [`symmetrise`] runs. The task of tile column `J` reads and
/// writes the pairs (i, j), (j, i) with j ∈ J and i > j, and nothing else: lower entries in
/// the columns J and upper entries in the rows J. Another tile column J' has its lower
/// entries in other columns and its upper entries in other rows; an upper entry (j, i) of J
/// equal to a lower entry (i', j') of J' would need i = j' < i' = j < i. So no entry is
/// touched by two tasks.
struct TileColumns(*mut f64);
// SAFETY: see the type's docs.
unsafe impl Sync for TileColumns {}

/// Checks and averages the pairs (i, j), (j, i) with j ∈ `columns`, i > j, tile by tile.
///
/// # Safety
/// `entries` points to n×n numbers, `columns` lies in 0..n, and no other thread touches the
/// pairs of these columns (see [`TileColumns`]).
unsafe fn symmetrise_tile_column(
    entries: &TileColumns,
    n: usize,
    columns: std::ops::Range<usize>,
    tolerance: f64,
) -> Result<(), GpError> {
    let at = |row: usize, column: usize| entries.0.wrapping_add(row * n + column);
    for i0 in (columns.start..n).step_by(TILE) {
        for j in columns.clone() {
            for i in i0.max(j + 1)..(i0 + TILE).min(n) {
                // SAFETY: j < i < n, both entries belong to this tile column's task.
                let (k_ji, k_ij) = unsafe { (*at(j, i), *at(i, j)) };
                if !k_ji.is_finite() {
                    return Err(non_finite(j, i, k_ji));
                }
                if !k_ij.is_finite() {
                    return Err(non_finite(i, j, k_ij));
                }
                if (k_ij - k_ji).abs() > tolerance {
                    return Err(GpError::NotSymmetric {
                        row: i,
                        column: j,
                        value: k_ij,
                        transposed_value: k_ji,
                    });
                }
                let mean = 0.5 * (k_ij + k_ji);
                // SAFETY: as above.
                unsafe {
                    *at(j, i) = mean;
                    *at(i, j) = mean;
                }
            }
        }
    }
    Ok(())
}

fn non_finite(row: usize, column: usize, value: f64) -> GpError {
    GpError::NonFinite {
        name: "kernel",
        row,
        column,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;
    use ndarray::{Array2, array, s};

    /// $\max_{ij}|(LL^\top)_{ij}-A_{ij}|$ over the lower triangle.
    fn reconstruction_error(factor: &CholeskyFactor, a: &Array2<f64>) -> f64 {
        let l = factor.lower();
        let n = factor.dim();
        let lower = Mat::from_fn(n, n, |i, j| if i >= j { l[(i, j)] } else { 0.0 });
        let product = &lower * lower.transpose();
        (0..n)
            .flat_map(|i| (0..=i).map(move |j| (i, j)))
            .map(|(i, j)| (product[(i, j)] - a[[i, j]]).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn well_posed_kernel_needs_no_jitter() {
        let k = array![[2.0, 0.5, 0.1], [0.5, 1.5, 0.2], [0.1, 0.2, 1.0]];
        let factor = CholeskyFactor::new(k.clone(), 0.1).expect("SPD");
        let jitter = factor.jitter();
        assert_eq!(
            (jitter.relative, jitter.absolute, jitter.attempts),
            (0.0, 0.0, 1)
        );
        let a = &k + &(Array2::<f64>::eye(3) * 0.1);
        assert!(reconstruction_error(&factor, &a) < 1e-15);
    }

    #[test]
    fn singular_psd_kernel_without_noise_gets_jitter_and_reports_it() {
        // Rank 2: K = F Fᵀ with F 6×2.
        let f = Array2::from_shape_fn((6, 2), |(i, j)| ((i + 1) as f64).powi(j as i32 + 1) / 6.0);
        let k = f.dot(&f.t());
        let mean_diagonal = k.diag().mean().expect("non-empty");
        let factor = CholeskyFactor::new(k.clone(), 0.0).expect("jitter rescues it");
        let jitter = factor.jitter();
        eprintln!("rank-2 6×6 kernel, κ = 0: {jitter:?}");
        assert!(
            jitter.relative >= 1e-10 && jitter.attempts >= 2,
            "{jitter:?}"
        );
        assert!(RELATIVE_JITTERS.contains(&jitter.relative));
        assert!((jitter.absolute - jitter.relative * mean_diagonal).abs() < 1e-24);
        let a = &k + &(Array2::<f64>::eye(6) * jitter.absolute);
        assert!(reconstruction_error(&factor, &a) < 1e-13 * mean_diagonal);
    }

    #[test]
    fn a_restart_across_several_panels_restores_the_whole_matrix() {
        // K = F Fᵀ of rank 2 PANEL + 10 over 2 PANEL + 37 patterns, slightly asymmetric
        // (within the tolerance): the first attempt fails at pivot 2 PANEL + 10, in the
        // third panel (a non-positive pivot there, or a negligible one found afterwards),
        // after the trailing updates have overwritten the whole lower triangle. (A failure
        // in the first panel is the 6×6 case above.)
        let (n, rank) = (2 * PANEL + 37, 2 * PANEL + 10);
        let mut state = 7u64;
        let f = Array2::from_shape_fn((n, rank), |_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        });
        let mut k = f.dot(&f.t());
        let symmetric = k.clone();
        k[[n - 1, 3]] += 1e-12;
        let factor = CholeskyFactor::new(k, 0.0).expect("jitter rescues it");
        let jitter = factor.jitter();
        assert!(jitter.attempts >= 2, "{jitter:?}");
        let mut a = symmetric.clone();
        a[[n - 1, 3]] += 0.5e-12;
        a[[3, n - 1]] += 0.5e-12;
        a.diag_mut().iter_mut().for_each(|d| *d += jitter.absolute);
        let scale = symmetric.diag().mean().expect("non-empty");
        let error = reconstruction_error(&factor, &a);
        assert!(error < 1e-13 * scale, "{error:e} (scale {scale})");
    }

    #[test]
    fn indefinite_matrix_is_not_positive_definite() {
        let k = array![[1.0, 2.0], [2.0, 1.0]]; // eigenvalues 3 and −1
        let err = CholeskyFactor::new(k, 0.0).unwrap_err();
        assert_eq!(
            err,
            GpError::NotPositiveDefinite {
                jitter_tried: 0.1,
                pivot: 1
            }
        );
        assert!(err.to_string().contains("not positive definite"), "{err}");
    }

    #[test]
    fn symmetrising_over_tile_columns_averages_every_pair_and_reports_the_first_error() {
        let n = 3 * TILE + 5;
        let base = Array2::from_shape_fn((n, n), |(i, j)| 1.0 / (1.0 + (i + j) as f64));
        // a perturbation below the tolerance in every pair, different in the two triangles
        let nudged = Array2::from_shape_fn((n, n), |(i, j)| {
            base[[i, j]] + if i > j { 1e-12 } else { 0.0 }
        });
        let mut buffer = nudged
            .as_standard_layout()
            .iter()
            .copied()
            .collect::<Vec<_>>();
        symmetrise(&mut buffer, n).unwrap();
        for i in 0..n {
            for j in 0..n {
                let want = if i == j {
                    base[[i, i]]
                } else {
                    0.5 * (nudged[[i, j]] + nudged[[j, i]])
                };
                assert_eq!(buffer[i * n + j], want, "({i},{j})");
            }
        }
        // asymmetric pairs in the third and the second tile column: the second is reported
        let mut bad = base.clone();
        bad[[n - 1, 2 * TILE + 1]] += 1.0;
        bad[[n - 2, TILE + 3]] = f64::INFINITY;
        let mut buffer = bad.iter().copied().collect::<Vec<_>>();
        assert!(matches!(
            symmetrise(&mut buffer, n),
            Err(GpError::NonFinite { row, column, .. }) if (row, column) == (n - 2, TILE + 3)
        ));
    }

    #[test]
    fn bad_inputs_are_named_errors() {
        let err = CholeskyFactor::new(array![[1.0, 0.5], [0.4, 1.0]], 0.1).unwrap_err();
        assert!(
            matches!(
                err,
                GpError::NotSymmetric {
                    row: 1,
                    column: 0,
                    ..
                }
            ),
            "{err}"
        );
        let err = CholeskyFactor::new(array![[1.0, f64::NAN], [f64::NAN, 1.0]], 0.1).unwrap_err();
        assert!(matches!(
            err,
            GpError::NonFinite {
                name: "kernel",
                row: 0,
                column: 1,
                ..
            }
        ));
        let err = CholeskyFactor::new(Array2::zeros((2, 3)), 0.1).unwrap_err();
        assert!(matches!(
            err,
            GpError::ShapeMismatch {
                name: "kernel",
                found: (2, 3),
                ..
            }
        ));
        let err = CholeskyFactor::new(Array2::eye(2), -1.0).unwrap_err();
        assert_eq!(err, GpError::InvalidNoise(-1.0));
        let factor = CholeskyFactor::new(Array2::eye(2), 0.0).expect("SPD");
        let err = factor
            .solve_in_place(Mat::zeros(3, 1).as_mut())
            .unwrap_err();
        assert!(matches!(
            err,
            GpError::ShapeMismatch {
                name: "rhs",
                found: (3, 1),
                ..
            }
        ));
    }

    #[test]
    fn any_memory_layout_gives_the_same_factor() {
        let k = array![[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let reference = CholeskyFactor::new(k.clone(), 0.0).expect("SPD");
        let fortran = k.t().as_standard_layout().into_owned().reversed_axes();
        let mut padded = Array2::<f64>::zeros((5, 5));
        padded.slice_mut(s![1..4, 1..4]).assign(&k);
        padded.slice_collapse(s![1..4, 1..4]);
        for other in [fortran, padded] {
            let factor = CholeskyFactor::new(other, 0.0).expect("SPD");
            for i in 0..3 {
                for j in 0..=i {
                    assert_eq!(factor.lower()[(i, j)], reference.lower()[(i, j)]);
                }
            }
        }
    }
}
