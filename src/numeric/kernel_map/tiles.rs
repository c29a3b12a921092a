//! The symmetric write: the upper triangle copied onto the lower one tile by tile, by bands
//! of rows that own their entries.

use ndarray::Array2;
use rayon::prelude::*;

/// Rows per rayon task; the transposed write puts `BAND_ROWS` contiguous entries (512 bytes)
/// in each row of the lower triangle. Measured at P = 4000: 16 rows × 256 columns took 1.3×
/// as long as 64 × 512 (the write into the lower triangle is what costs).
pub(super) const BAND_ROWS: usize = 64;
/// Columns per tile: a tile of 64 × 512 entries is 256 KiB, in L2 while it is transposed.
pub(super) const TILE_COLUMNS: usize = 512;

/// The output buffer, written by all bands at once. Entry (α, β) with α ≤ β belongs to the
/// band of row α and (β, α) to the same band (it is the transpose write), so no two tasks
/// touch the same entry and nothing reads an entry another task writes.
pub(super) struct SharedOut(pub(super) *mut f64);
// SAFETY: see the type's docs: tasks write disjoint entries and read only their own.
unsafe impl Sync for SharedOut {}

/// (b, a) ← (a, b) for rows a of the band `rows`, columns b > a of the tile `columns`.
#[inline(always)]
pub(super) fn transpose_tile(
    out: &SharedOut,
    p: usize,
    rows: std::ops::Range<usize>,
    columns: std::ops::Range<usize>,
) {
    for b in columns.start.max(rows.start + 1)..columns.end {
        for a in rows.start..rows.end.min(b) {
            // SAFETY: (a, b) is upper and (b, a) lower, both owned by the band of row a (see
            // `SharedOut`); callers keep a, b < p.
            unsafe { *out.0.add(b * p + a) = *out.0.add(a * p + b) };
        }
    }
}

/// Copies the upper triangle of a square matrix onto the lower one: parallel bands of rows,
/// tile by tile (the same traffic as the transposed write of [`super::PairKernelMap::apply_into`]).
pub fn mirror_upper(m: &mut Array2<f64>) {
    let p = m.nrows();
    if m.ncols() != p {
        return;
    }
    let Some(slice) = m.as_slice_mut() else {
        for a in 0..p {
            for b in a + 1..p {
                m[[b, a]] = m[[a, b]];
            }
        }
        return;
    };
    let out = SharedOut(slice.as_mut_ptr());
    (0..p.div_ceil(BAND_ROWS)).into_par_iter().for_each(|band| {
        let rows = band * BAND_ROWS..((band + 1) * BAND_ROWS).min(p);
        for j0 in (rows.start..p).step_by(TILE_COLUMNS) {
            transpose_tile(&out, p, rows.clone(), j0..(j0 + TILE_COLUMNS).min(p));
        }
    });
}
