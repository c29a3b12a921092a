//! Independent draws of the prior: mean, variance and standard errors of every field entry.
//!
//! With S draws xₛ of an entry, shifted by the first draw's value c for accuracy
//! (dₛ = xₛ − c), the first four moments of d give the mean x̄ with s.e. √(s²/S), the
//! unbiased variance s² and its standard error √((μ₄ − μ₂²(S−3)/(S−1))/S). N·s² is what
//! THEORY.md §4.5 predicts as Σ⁽ˡ⁾ (the one-loop covariance), N·(x̄ − C*) the shift m⁽ˡ⁾.
//! Draws run in parallel in fixed chunks, each from its own seeded stream, and the chunks are
//! summed in order: a seed gives the same numbers bit for bit on any number of threads.

use ndarray::{Array2, Zip};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;

use super::{PriorDraws, SimulateError, stream_seed};
use crate::solve::nngp::EntryKey;

/// Draws per parallel task.
const CHUNK: usize = 16;

/// Chunks run in parallel before their moments are merged.
const CHUNKS_PER_BLOCK: usize = 1024;

/// Statistics of one field entry (P×P or P×1 arrays, entry by entry).
#[derive(Debug, Clone)]
pub struct EntryStatistics {
    /// Sample mean.
    pub mean: Array2<f64>,
    /// Standard error of the mean.
    pub std_error: Array2<f64>,
    /// Sample variance (unbiased).
    pub variance: Array2<f64>,
    /// Standard error of the sample variance.
    pub variance_std_error: Array2<f64>,
}

/// The result of [`sample_prior`].
#[derive(Debug, Clone)]
pub struct PriorSample {
    /// Draws made (fewer than asked when stopped early).
    pub samples: usize,
    /// Stopped early ([`sample_prior_until`]): the statistics are of the draws made.
    pub interrupted: bool,
    /// Every entry a draw computes, in the order computed.
    pub entries: Vec<(EntryKey, EntryStatistics)>,
}

/// A chunk's moments and how many draws it made (None: skipped after a stop).
type ChunkMoments = (Vec<Moments>, usize);

#[derive(Clone)]
struct Moments {
    sums: [Array2<f64>; 4],
}

impl Moments {
    fn zeros(dim: (usize, usize)) -> Self {
        Moments {
            sums: std::array::from_fn(|_| Array2::zeros(dim)),
        }
    }

    fn add_draw(&mut self, value: &Array2<f64>, shift: &Array2<f64>) {
        let [s1, s2, s3, s4] = &mut self.sums;
        Zip::from(s1)
            .and(s2)
            .and(s3)
            .and(s4)
            .and(value)
            .and(shift)
            .for_each(|a, b, c, d, &x, &c0| {
                let dx = x - c0;
                let dx2 = dx * dx;
                *a += dx;
                *b += dx2;
                *c += dx2 * dx;
                *d += dx2 * dx2;
            });
    }

    fn merge(&mut self, other: &Moments) {
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += b;
        }
    }
}

/// `samples` independent draws of the network on the simulator's patterns, seeded with
/// `seed`; `progress` is called with the number of draws finished since its last call.
pub fn sample_prior(
    simulator: &(impl PriorDraws + ?Sized),
    samples: usize,
    seed: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PriorSample, SimulateError> {
    sample_prior_until(simulator, samples, seed, progress, &|| false)
}

/// [`sample_prior`], stopping early when `stop()` turns true (Ctrl-C): chunks of draws not
/// yet started are skipped, and the statistics are of the draws made (each is its own seeded
/// stream, so they are independent draws all the same), with [`PriorSample::interrupted`]
/// set. Fewer than 2 draws made is an error.
pub fn sample_prior_until(
    simulator: &(impl PriorDraws + ?Sized),
    samples: usize,
    seed: u64,
    progress: &(dyn Fn(u64) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<PriorSample, SimulateError> {
    if samples < 2 {
        return Err(SimulateError::Setting(format!(
            "--samples {samples}: the prior needs at least 2 draws for a standard error"
        )));
    }
    let draw_at = |s: usize| {
        let mut rng = StdRng::seed_from_u64(stream_seed(seed, s as u64));
        simulator.draw_seeded(&mut rng)
    };
    let first = draw_at(0)?;
    let keys: Vec<EntryKey> = first.entries.keys().cloned().collect();
    let shifts: Vec<Array2<f64>> = keys.iter().map(|k| first.entries[k].clone()).collect();
    let run_chunk = |c: usize| -> Result<Option<ChunkMoments>, SimulateError> {
        if stop() {
            return Ok(None);
        }
        let mut moments: Vec<Moments> = shifts.iter().map(|s| Moments::zeros(s.dim())).collect();
        let end = ((c + 1) * CHUNK).min(samples);
        for s in c * CHUNK..end {
            let draw = draw_at(s)?;
            for ((m, key), shift) in moments.iter_mut().zip(&keys).zip(&shifts) {
                m.add_draw(&draw.entries[key], shift);
            }
        }
        progress((end - c * CHUNK) as u64);
        Ok(Some((moments, end - c * CHUNK)))
    };
    // blocks of chunks in parallel, merged in chunk order (the same sums on any number of
    // threads) as each block ends, so memory stays one block's moments however many draws
    let mut total: Vec<Moments> = shifts.iter().map(|s| Moments::zeros(s.dim())).collect();
    let mut made = 0;
    let chunks = samples.div_ceil(CHUNK);
    for block in (0..chunks).step_by(CHUNKS_PER_BLOCK) {
        let partial: Vec<Result<Option<ChunkMoments>, SimulateError>> = (block
            ..(block + CHUNKS_PER_BLOCK).min(chunks))
            .into_par_iter()
            .map(run_chunk)
            .collect();
        for chunk in partial {
            if let Some((moments, count)) = chunk? {
                made += count;
                for (t, m) in total.iter_mut().zip(&moments) {
                    t.merge(m);
                }
            }
        }
        if stop() {
            break;
        }
    }
    if made < 2 {
        return Err(SimulateError::Stopped(format!(
            "stopped after {made} of {samples} draws: at least 2 are needed for a standard \
             error, nothing was written"
        )));
    }
    let n = made as f64;
    let entries = keys
        .into_iter()
        .zip(total)
        .zip(shifts)
        .map(|((key, m), shift)| {
            let [s1, s2, s3, s4] = &m.sums;
            let dim = shift.dim();
            let mut stats = EntryStatistics {
                mean: Array2::zeros(dim),
                std_error: Array2::zeros(dim),
                variance: Array2::zeros(dim),
                variance_std_error: Array2::zeros(dim),
            };
            for (idx, &c0) in shift.indexed_iter() {
                let a = s1[idx] / n;
                let b = s2[idx] / n;
                let c = s3[idx] / n;
                let d = s4[idx] / n;
                let mu2 = (b - a * a).max(0.0);
                let mu4 = (d - 4.0 * a * c + 6.0 * a * a * b - 3.0 * a.powi(4)).max(0.0);
                let variance = mu2 * n / (n - 1.0);
                stats.mean[idx] = c0 + a;
                stats.std_error[idx] = (variance / n).sqrt();
                stats.variance[idx] = variance;
                stats.variance_std_error[idx] =
                    ((mu4 - mu2 * mu2 * (n - 3.0) / (n - 1.0)).max(0.0) / n).sqrt();
            }
            (key, stats)
        })
        .collect();
    Ok(PriorSample {
        samples: made,
        interrupted: made < samples,
        entries,
    })
}
