//! Dense Cholesky factorisation scheduled as parallel bands of sequential faer kernels.
//!
//! On a machine with few cores faer's parallel gemm reaches about half the rate of one
//! sequential gemm per core, and its Cholesky inherits that. Here the factorisation is the
//! right-looking blocked algorithm of LAPACK's `dpotrf`: for each panel of [`PANEL`] columns,
//!
//! * $L_{kk}=\operatorname{chol}(A_{kk})$ (sequential, one small block),
//! * $L_{ik}=A_{ik}L_{kk}^{-\top}$ for the rows below (row bands in parallel),
//! * $A_{ij}\mathrel{-}=L_{ik}L_{jk}^\top$ for $j\le i$ in the trailing matrix (row bands in
//!   parallel, one sequential gemm each; only the lower triangle and the diagonal blocks),
//!
//! so almost all of the $P^3/3$ flops run as independent sequential gemms. It reads and
//! writes the lower triangle only (plus the upper half of the diagonal blocks, as scratch),
//! like faer's `cholesky_in_place`, and is 1.1–1.4× faster than it on 2 cores at
//! P = 4000–10000 (`cargo bench --bench gp -- Cholesky`).

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{
    LltError, LltParams, cholesky_in_place, cholesky_in_place_scratch,
};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, MatMut, Par, Spec};
use rayon::prelude::*;

/// Columns per panel: wide enough that the trailing gemms (inner dimension [`PANEL`]) run at
/// full speed, narrow enough that the sequential diagonal factor stays negligible.
pub const PANEL: usize = 256;

/// Rows per band of the parallel steps: many bands per core for balance (the trailing bands
/// grow down the matrix), each still a gemm of full speed.
const BAND: usize = 128;

// A band starts at a multiple of BAND past a panel boundary, so its square diagonal block
// (the only part of the upper triangle the trailing gemm writes) lies inside one diagonal
// PANEL block, which is what callers may treat as scratch.
const _: () = assert!(PANEL.is_multiple_of(BAND));

/// The factorisation met a pivot that is not positive: the matrix is not (numerically)
/// positive definite. `index` is the pivot's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("non-positive pivot at row {index}")]
pub struct NonPositivePivot {
    /// Row of the pivot.
    pub index: usize,
}

/// Overwrites the lower triangle of the symmetric `a` (only its lower triangle is read)
/// with its Cholesky factor $L$, $LL^\top=A$. The strict upper triangle of the diagonal
/// blocks $[kB,(k+1)B)^2$, $B=$ [`PANEL`], is used as scratch; the rest of the upper
/// triangle is not touched (a caller may keep a copy of the matrix there).
///
/// The bands run on rayon's global pool; faer's global parallelism setting does not apply.
///
/// # Panics
/// If `a` is not square (callers check shapes; this is a programming error).
///
/// ```
/// use faer::Mat;
/// let a = Mat::<f64>::from_fn(3, 3, |i, j| if i == j { 4.0 } else { 1.0 });
/// let mut l = a.clone();
/// saddle::numeric::dense::cholesky_lower_in_place(l.as_mut()).unwrap();
/// let l = Mat::<f64>::from_fn(3, 3, |i, j| if i >= j { l[(i, j)] } else { 0.0 });
/// let residual = &l * l.transpose() - &a;
/// assert!(residual.norm_max() < 1e-14);
/// ```
pub fn cholesky_lower_in_place(mut a: MatMut<'_, f64>) -> Result<(), NonPositivePivot> {
    let n = a.nrows();
    assert_eq!(a.ncols(), n, "cholesky of a non-square matrix");
    let params = <Spec<LltParams, f64>>::default();
    let mut scratch = MemBuffer::new(cholesky_in_place_scratch::<f64>(
        PANEL.min(n),
        Par::Seq,
        params,
    ));
    let mut first = 0;
    while first < n {
        let width = PANEL.min(n - first);
        let end = first + width;
        let (columns, trailing) = a.as_mut().split_at_col_mut(end);
        let (top, mut panel) = columns.subcols_mut(first, width).split_at_row_mut(end);
        let mut diagonal = top.subrows_mut(first, width);
        let stack = MemStack::new(&mut scratch);
        match cholesky_in_place(
            diagonal.as_mut(),
            Default::default(),
            Par::Seq,
            stack,
            params,
        ) {
            Ok(_) => {}
            Err(LltError::NonPositivePivot { index }) => {
                return Err(NonPositivePivot {
                    index: first + index,
                });
            }
        }
        let diagonal = diagonal.as_ref();
        row_bands(panel.as_mut())
            .into_par_iter()
            .for_each(|(_, band)| {
                solve_lower_triangular_in_place(diagonal, band.transpose_mut(), Par::Seq)
            });
        let panel = panel.as_ref();
        let remaining = n - end;
        row_bands(trailing.subrows_mut(end, remaining))
            .into_par_iter()
            .for_each(|(row, band)| {
                let height = band.nrows();
                matmul(
                    band.subcols_mut(0, row + height),
                    Accum::Add,
                    panel.subrows(row, height),
                    panel.subrows(0, row + height).transpose(),
                    -1.0,
                    Par::Seq,
                );
            });
        first = end;
    }
    Ok(())
}

/// `m` cut into bands of [`BAND`] rows, each with the index of its first row.
fn row_bands(mut m: MatMut<'_, f64>) -> Vec<(usize, MatMut<'_, f64>)> {
    let mut bands = Vec::with_capacity(m.nrows().div_ceil(BAND));
    let mut row = 0;
    while m.nrows() > 0 {
        let height = BAND.min(m.nrows());
        let (band, rest) = m.split_at_row_mut(height);
        bands.push((row, band));
        row += height;
        m = rest;
    }
    bands
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    /// A random SPD matrix B Bᵀ/n + I (seeded LCG).
    fn spd(n: usize, seed: u64) -> Mat<f64> {
        let mut state = seed;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let b = Mat::<f64>::from_fn(n, n, |_, _| uniform());
        let mut a = &b * b.transpose() * (1.0 / n as f64);
        for i in 0..n {
            a[(i, i)] += 1.0;
        }
        a
    }

    fn lower_part(m: &Mat<f64>) -> Mat<f64> {
        Mat::from_fn(
            m.nrows(),
            m.ncols(),
            |i, j| if i >= j { m[(i, j)] } else { 0.0 },
        )
    }

    #[test]
    fn factor_matches_faer_across_panel_boundaries() {
        // Three panels, the last ragged, and bands of the trailing update.
        for n in [1, 7, PANEL, PANEL + 1, 2 * PANEL + 91] {
            let a = spd(n, n as u64);
            let mut ours = a.clone();
            // The upper triangle is not read: poison it.
            for j in 0..n {
                for i in 0..j {
                    ours[(i, j)] = f64::NAN;
                }
            }
            cholesky_lower_in_place(ours.as_mut()).unwrap();
            let ours = lower_part(&ours);
            let reference = a.llt(faer::Side::Lower).unwrap();
            let difference = (&ours - reference.L()).norm_max();
            assert!(difference < 1e-13, "n = {n}: {difference:e}");
            let residual = (&ours * ours.transpose() - &a).norm_max();
            assert!(residual < 1e-13, "n = {n}: residual {residual:e}");
        }
    }

    #[test]
    fn the_upper_triangle_outside_the_diagonal_blocks_is_left_alone() {
        let n = 2 * PANEL + 91;
        let mut a = spd(n, 11);
        let sentinel = |i: usize, j: usize| (i * n + j) as f64;
        let inside = |i: usize, j: usize| i / PANEL == j / PANEL;
        for j in 0..n {
            for i in 0..j {
                a[(i, j)] = sentinel(i, j);
            }
        }
        cholesky_lower_in_place(a.as_mut()).unwrap();
        for j in 0..n {
            for i in 0..j {
                assert!(inside(i, j) || a[(i, j)] == sentinel(i, j), "({i}, {j})");
            }
        }
    }

    #[test]
    fn the_failing_pivot_is_reported_in_global_rows() {
        let n = PANEL + 40;
        let mut a = spd(n, 3);
        // Row PANEL + 10 repeats row 0 ...
        let bad = PANEL + 10;
        for j in 0..n {
            a[(bad, j)] = a[(0, j)];
            a[(j, bad)] = a[(j, 0)];
        }
        // ... but one less on the diagonal: the Schur complement at that pivot is −1.
        a[(bad, bad)] = a[(0, 0)] - 1.0;
        let mut m = a.clone();
        let error = cholesky_lower_in_place(m.as_mut()).unwrap_err();
        assert_eq!(error.index, bad);
    }
}
