//! Products of tall sample matrices (M×P with M ≫ P: Monte Carlo samples, units) on every
//! thread.
//!
//! ndarray's `dot` runs one sequential matrixmultiply kernel; on the sweeps' M×P×P products
//! it left a core idle. Here
//! * `A·B` (M×P times P×Q) is cut into blocks of rows, each a sequential faer product;
//! * `AᵀB` (M×P, M×Q → P×Q) into bands of output rows, each a sequential faer product over
//!   all M rows, so the sums do not depend on the number of threads; for `AᵀA` only the
//!   upper triangle is computed (half the flops) and mirrored.
//!
//! ```
//! use ndarray::array;
//! use saddle::numeric::tall::{tall_gram, tall_times};
//! let a = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
//! assert_eq!(tall_gram(a.view(), a.view()), a.t().dot(&a));
//! assert_eq!(tall_times(a.view(), a.t().slice(ndarray::s![.., ..2])), a.dot(&a.t().slice(ndarray::s![.., ..2])));
//! ```

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Rows per block of [`tall_times`] (a block's P-wide scratch stays in cache-sized pieces,
/// and blocks run on all threads).
const BLOCK: usize = 1024;

/// Output rows per band of [`tall_gram`] (bands run in parallel; the triangle's shrinking
/// bands balance over the threads).
const BAND: usize = 32;

/// Multiply–adds below which a product runs on the calling thread.
const SEQUENTIAL_WORK: usize = 1 << 20;

/// aᵀb: bands of output rows on every thread, each one sequential product over all samples
/// (faer), so the sums do not depend on the number of threads; for a = b only the upper
/// triangle is computed (half the flops) and mirrored.
///
/// # Panics
/// If `a` and `b` have different numbers of rows (as `dot` does).
pub fn tall_gram(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    let (rows, p, q) = (a.nrows(), a.ncols(), b.ncols());
    assert_eq!(
        b.nrows(),
        rows,
        "tall_gram of {:?} and {:?}",
        a.dim(),
        b.dim()
    );
    if rows == 0 || p == 0 || q == 0 {
        return Array2::zeros((p, q));
    }
    let symmetric =
        std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.dim() == b.dim() && a.strides() == b.strides();
    let a = a.as_standard_layout();
    let b = b.as_standard_layout();
    let mut out = Array2::<f64>::zeros((p, q));
    let (Some(left), Some(right)) = (a.as_slice(), b.as_slice()) else {
        return out;
    };
    let left = faer::MatRef::from_row_major_slice(left, rows, p).transpose();
    let right = faer::MatRef::from_row_major_slice(right, rows, q);
    if rows * p * q <= SEQUENTIAL_WORK {
        // a network's units (n×P, P ~ 50): the threads' wake-ups would cost more than the
        // product, and the chains already run on every thread
        if let Some(entries) = out.as_slice_mut() {
            faer::linalg::matmul::matmul(
                faer::MatMut::from_row_major_slice_mut(entries, p, q),
                faer::Accum::Replace,
                left,
                right,
                1.0,
                faer::Par::Seq,
            );
        }
        if symmetric {
            mirror_upper(&mut out);
        }
        return out;
    }
    if let Some(entries) = out.as_slice_mut() {
        entries
            .par_chunks_mut(BAND * q)
            .enumerate()
            .for_each(|(band, chunk)| {
                let first = band * BAND;
                let height = chunk.len() / q;
                let from = if symmetric { first } else { 0 };
                let dst = faer::MatMut::from_row_major_slice_mut(chunk, height, q)
                    .subcols_mut(from, q - from);
                faer::linalg::matmul::matmul(
                    dst,
                    faer::Accum::Replace,
                    left.subrows(first, height),
                    right.subcols(from, q - from),
                    1.0,
                    faer::Par::Seq,
                );
            });
    }
    if symmetric {
        mirror_upper(&mut out);
    }
    out
}

/// The lower triangle set to the upper one's transpose: aᵀa exactly symmetric.
fn mirror_upper(out: &mut Array2<f64>) {
    for i in 0..out.nrows() {
        for j in 0..i {
            out[[i, j]] = out[[j, i]];
        }
    }
}

/// a·b for a tall `a` (M×P) and a small `b` (P×Q), in blocks of rows on every thread.
///
/// # Panics
/// If the inner dimensions differ (as `dot` does).
pub fn tall_times(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    let (rows, p) = a.dim();
    let q = b.ncols();
    assert_eq!(
        b.nrows(),
        p,
        "tall_times of {:?} and {:?}",
        a.dim(),
        b.dim()
    );
    if rows == 0 || p == 0 || q == 0 {
        return Array2::zeros((rows, q));
    }
    let a = a.as_standard_layout();
    let b = b.as_standard_layout();
    let mut out = Array2::<f64>::zeros((rows, q));
    let (Some(left), Some(right), Some(dst)) = (a.as_slice(), b.as_slice(), out.as_slice_mut())
    else {
        return out;
    };
    let right = faer::MatRef::from_row_major_slice(right, p, q);
    dst.par_chunks_mut(BLOCK * q)
        .zip(left.par_chunks(BLOCK * p))
        .for_each(|(dst, left)| {
            let height = left.len() / p;
            faer::linalg::matmul::matmul(
                faer::MatMut::from_row_major_slice_mut(dst, height, q),
                faer::Accum::Replace,
                faer::MatRef::from_row_major_slice(left, height, p),
                right,
                1.0,
                faer::Par::Seq,
            );
        });
    out
}
