//! Fresh P×P buffers whose pages are mapped before the hot loops write into them.
//!
//! A kernel at P = 10000 is 800 MB: 195,000 pages of 4 KiB, each mapped on its first write
//! by a page fault (kernel entry, the memory-map lock, page allocation and zeroing); in
//! `perf` they were about a sixth of a depth-10 NNGP, and they scale poorly over threads. Here the allocation asks the kernel for
//! transparent huge pages (2 MiB, `madvise(MADV_HUGEPAGE)`, Linux only; 512× fewer faults)
//! and is filled on all cores before it is handed out. Where huge pages are unavailable or
//! refused the advice is a no-op and the buffer is an ordinary one.
//!
//! Measured on the 2-core development VM (depth-10 erf NNGP, `examples/nngp_timing`):
//! best of 3 at P = 10000 1.74 → 1.36 s; single fresh runs, mean of 5–6, P = 4000 0.307 →
//! 0.274 s, P = 10000 unchanged (1.71 vs 1.72 s: there the first touch of fresh huge pages
//! is sometimes slow, 0.3–0.45 s instead of 0.07 s for 800 MB).

use ndarray::Array2;
use rayon::prelude::*;

/// Buffers smaller than this are left to the allocator as they are.
const HUGE_PAGE_THRESHOLD: usize = 4 << 20;

/// A `rows × columns` matrix filled with `value`, its pages mapped (huge where the system
/// allows) by all cores.
pub fn filled_matrix(rows: usize, columns: usize, value: f64) -> Array2<f64> {
    let len = rows * columns;
    let mut entries: Vec<f64> = Vec::with_capacity(len);
    advise_huge_pages(&entries);
    entries.par_extend(rayon::iter::repeat_n(value, len));
    Array2::from_shape_vec((rows, columns), entries)
        .unwrap_or_else(|_| Array2::from_elem((rows, columns), value))
}

/// Asks for transparent huge pages over the whole 2 MiB pages inside `entries`' allocation.
#[cfg(target_os = "linux")]
fn advise_huge_pages(entries: &Vec<f64>) {
    const HUGE_PAGE: usize = 2 << 20;
    let bytes = entries.capacity() * std::mem::size_of::<f64>();
    if bytes < HUGE_PAGE_THRESHOLD {
        return;
    }
    let start = entries.as_ptr() as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let end = (start + bytes) / HUGE_PAGE * HUGE_PAGE;
    if end > aligned {
        // SAFETY: [aligned, end) lies inside the allocation owned by `entries`, which is not
        // yet initialised; MADV_HUGEPAGE changes how its pages are backed, not their
        // contents. A failure (THP disabled, an old kernel) leaves ordinary pages.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_entries: &Vec<f64>) {}

/// Lets freed memory be reused in place rather than returned to the kernel.
///
/// glibc serves every allocation above its mmap threshold (128 KiB, adapting up to 32 MiB)
/// from a fresh mapping, whose pages fault in and are zeroed on first write, and unmaps it
/// on free. The finite-width sweeps and the samplers allocate and free M×P sample matrices
/// (10–400 MB) every sweep or step: in `perf` those faults were a third of a MAP run (deep
/// erf, L = 2, P = 50, M = 10⁵: 49 → 26 s with this, peak RSS 448 → 502 MB; at P = 200,
/// 10.5 M page faults in the first 40 s without, 0.47 M with). Serving large blocks from
/// one heap and not trimming it keeps their pages mapped for the next sweep.
/// Called at the start of the commands that sweep or sample, before any other thread
/// allocates (arenas already made keep their settings); glibc on Linux only, a no-op
/// elsewhere.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning parameters, and is valid at any
    // time; blocks already allocated keep their mapping and are freed as they were made.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        // one arena: a worker thread's own arena lives in 64 MB heaps that cannot hold
        // a sample matrix without mmap and give pages back as they shrink
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_matrices_hold_the_value_at_every_size() {
        for (rows, columns) in [(0, 0), (1, 3), (1000, 700)] {
            let m = filled_matrix(rows, columns, 0.25);
            assert_eq!(m.dim(), (rows, columns));
            assert!(m.is_standard_layout());
            assert!(m.iter().all(|&v| v == 0.25));
        }
    }
}
