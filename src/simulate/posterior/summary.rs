//! The chains combined: posterior means with batch-means standard errors, ESS and split R-hat
//! per entry, the predictor's mean and variance, and the entry-group summaries.

use ndarray::{Array2, ArrayView2, Axis};

use crate::simulate::SimulateError;
use crate::simulate::diagnostics::{
    DiagnosticsError, batch_means_summary, split_rhat_from_moments, summarize,
};

use super::*;

/// Σ_{α≠β} (y_α·y_β) K_αβ / (P(P−1)): the off-diagonal entries weighted by the targets'
/// products (±1 classes: same-class entries minus cross-class ones), which feature learning
/// at finite width raises. 0 for a mean field.
pub fn target_weighted_off_diagonal(
    block: ArrayView2<'_, f64>,
    target_products: ArrayView2<'_, f64>,
) -> f64 {
    let p = block.nrows();
    if block.ncols() != p || target_products.dim() != (p, p) || p < 2 {
        return 0.0;
    }
    let total: f64 = (&block * &target_products).sum();
    let diagonal: f64 = (0..p)
        .map(|a| block[[a, a]] * target_products[[a, a]])
        .sum();
    (total - diagonal) / (p * (p - 1)) as f64
}

/// The mean diagonal and mean off-diagonal entry of a square block (a P×1 mean field: its
/// mean, and 0).
pub fn diagonal_and_off_diagonal_means(block: ArrayView2<'_, f64>) -> (f64, f64) {
    if block.nrows() != block.ncols() {
        return (block.mean().unwrap_or(0.0), 0.0);
    }
    let p = block.nrows() as f64;
    let diagonal = block.diag().sum();
    let total = block.sum();
    let off = if p > 1.0 {
        (total - diagonal) / (p * (p - 1.0))
    } else {
        0.0
    };
    (diagonal / p, off)
}

/// The statistics of the first `used` batches of every chain (all [`BATCHES`], or the even
/// number every chain completed before a stop).
pub(super) fn combine(
    simulator: &dyn WhitenedNetwork,
    settings: PosteriorSettings,
    records: Vec<ChainRecord>,
    used: usize,
    interrupted: bool,
) -> Result<PosteriorSample, SimulateError> {
    // every chain draws the same entries (the network's schedule)
    let keys = records[0].keys.clone();
    let chains = records.len();
    let draws_per_chain = draws_in(used, settings.samples);
    let total_draws = (chains * draws_per_chain) as f64;
    let stream_statistics = |index: usize| -> Result<EntryPosterior, SimulateError> {
        let dim = records[0].streams[index].batches[0].dim();
        let mut out = EntryPosterior {
            mean: Array2::zeros(dim),
            std_error: Array2::zeros(dim),
            ess: Array2::zeros(dim),
            rhat: Array2::zeros(dim),
        };
        let mut batch_means = vec![vec![0.0; used]; chains];
        let mut halves = Vec::with_capacity(2 * chains);
        for (idx, _) in out.mean.clone().indexed_iter() {
            halves.clear();
            let mut sum = 0.0;
            let mut within = 0.0;
            for (c, record) in records.iter().enumerate() {
                let stream = &record.streams[index];
                for half in 0..2 {
                    let range = half * used / 2..(half + 1) * used / 2;
                    let count: usize = stream.batch_counts[range.clone()].iter().sum();
                    let total: f64 = range.clone().map(|b| stream.batches[b][idx]).sum();
                    let mean = total / count as f64;
                    let squares: f64 = range.map(|b| stream.batch_squares[b][idx]).sum();
                    let variance =
                        ((squares - count as f64 * mean * mean) / (count as f64 - 1.0)).max(0.0);
                    halves.push((mean, variance, count));
                    sum += total;
                    within += variance;
                }
                for (b, m) in batch_means[c].iter_mut().enumerate() {
                    *m = stream.batches[b][idx] / stream.batch_counts[b] as f64;
                }
            }
            let mean = sum / total_draws;
            within /= (2 * chains) as f64;
            out.mean[idx] = mean;
            let rows: Vec<&[f64]> = batch_means.iter().map(Vec::as_slice).collect();
            let batch_size = settings.samples / BATCHES;
            if within <= 0.0 && halves.iter().any(|h| h.0 != halves[0].0) {
                return Err(not_mixing(&format!("an entry of field {}", index + 1)));
            }
            if within <= 0.0 {
                // constant over every draw (a bias-only entry): exact
                out.std_error[idx] = 0.0;
                out.ess[idx] = total_draws;
                out.rhat[idx] = 1.0;
                continue;
            }
            let (ess, se) = batch_means_summary(&rows, batch_size, within)?;
            out.std_error[idx] = se;
            out.ess[idx] = ess;
            out.rhat[idx] = split_rhat_from_moments(&halves)?;
        }
        Ok(out)
    };
    let mut entries = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        entries.push((key.clone(), stream_statistics(i)?));
    }
    let mut summaries = Vec::new();
    let trace_names =
        std::iter::once("ln p(Y|X, network)".to_string()).chain(keys.iter().flat_map(|k| {
            let name = simulator.entry_name(k);
            [
                format!("{name} mean diagonal"),
                format!("{name} mean off-diagonal"),
                format!("{name} target-weighted off-diagonal"),
            ]
        }));
    for (t, name) in trace_names.enumerate() {
        let chains_of: Vec<&[f64]> = records
            .iter()
            .map(|r| &r.traces[t][..draws_per_chain.min(r.traces[t].len())])
            .collect();
        let constant = chains_of
            .iter()
            .all(|c| c.iter().all(|v| *v == chains_of[0][0]));
        if constant && name.ends_with("off-diagonal") {
            continue;
        }
        let summary = match summarize(&chains_of) {
            Err(DiagnosticsError::Degenerate(_)) => return Err(not_mixing(&name)),
            other => other?,
        };
        summaries.push((name, summary));
    }
    let has_test = records[0].streams.len() > keys.len();
    let prediction = if has_test {
        let mean = stream_statistics(keys.len())?;
        let squares = stream_statistics(keys.len() + 1)?;
        let latent = stream_statistics(keys.len() + 2)?;
        // Var[f*] = E[σ²] + E[μ²] − E[μ]², averaged over the outputs; its error from the
        // three means' errors (independence assumed: conservative for positively
        // correlated μ² and μ).
        let outputs = mean.mean.ncols() as f64;
        let spread = (&squares.mean - &mean.mean * &mean.mean).mapv(|v| v.max(0.0));
        let spread_error = (squares.std_error.mapv(|e| e * e)
            + (&mean.mean * &mean.std_error * 2.0).mapv(|e| e * e))
        .mapv(f64::sqrt);
        let variance = &latent.mean.column(0) + &spread.sum_axis(Axis(1)) / outputs;
        let variance_std_error = (latent.std_error.column(0).mapv(|e| e * e)
            + spread_error.mapv(|e| e * e).sum_axis(Axis(1)) / (outputs * outputs))
            .mapv(f64::sqrt);
        Some(PosteriorPrediction {
            mean,
            variance,
            variance_std_error,
        })
    } else {
        None
    };
    let steps: usize = records.iter().map(|r| r.steps).sum();
    let evaluations: usize = records.iter().map(|r| r.evaluations).sum();
    Ok(PosteriorSample {
        settings,
        entries,
        summaries,
        prediction,
        evaluations_per_step: evaluations as f64 / steps.max(1) as f64,
        failed_evaluations: records.iter().map(|r| r.failures).sum(),
        draws_per_chain,
        interrupted,
    })
}

/// The chains stayed put: a quantity is constant within every half-chain but differs between
/// them (binary units with very few of them, a likelihood too sharp to move in).
pub(super) fn not_mixing(what: &str) -> SimulateError {
    SimulateError::Setting(format!(
        "the chains did not mix: {what} stays constant within each half-chain but differs \
         between them, so the posterior was not sampled (R-hat is infinite); use more units \
         (`--set N=…`), more noise (κ) or longer chains (`--samples`, `--burn-in`)"
    ))
}
