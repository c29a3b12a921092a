//! Running chains: burn-in, thinning, batches of recorded draws per chain, several chains in
//! parallel with progress, until the standard errors are met or the budget is spent.

use ndarray::{Array2, Axis, s};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;

use crate::simulate::{SimulateError, stream_seed};
use crate::solve::nngp::EntryKey;

use super::*;

/// Streamed sums of one tracked array: per-batch sums, per-half sums of squares.
pub(super) struct Stream {
    pub(super) batches: Vec<Array2<f64>>,
    /// Σ x² per batch: the half-chains of split-R-hat are any even number of leading batches
    /// (all of them, or the complete ones of an interrupted run).
    pub(super) batch_squares: Vec<Array2<f64>>,
    pub(super) batch_counts: Vec<usize>,
}

impl Stream {
    pub(super) fn new(dim: (usize, usize)) -> Self {
        Stream {
            batches: (0..BATCHES).map(|_| Array2::zeros(dim)).collect(),
            batch_squares: (0..BATCHES).map(|_| Array2::zeros(dim)).collect(),
            batch_counts: vec![0; BATCHES],
        }
    }

    pub(super) fn add(&mut self, batch: usize, value: &Array2<f64>) {
        self.batches[batch] += value;
        self.batch_counts[batch] += 1;
        self.batch_squares[batch].zip_mut_with(value, |s, v| *s += v * v);
    }
}

/// The batch of the `recorded`-th draw (0-based) of `samples`: [`BATCHES`] batches of
/// ⌊samples/BATCHES⌋ draws each, so any even number of leading batches splits into two
/// half-chains of equal length (split-R-hat); the last samples mod BATCHES draws fall in no
/// batch (≥ BATCHES) and are left out.
pub(super) fn batch_of(recorded: usize, samples: usize) -> usize {
    recorded / (samples / BATCHES).max(1)
}

/// How many leading batches `recorded` draws fill completely.
pub(super) fn complete_batches(recorded: usize, samples: usize) -> usize {
    (recorded / (samples / BATCHES).max(1)).min(BATCHES)
}

/// Draws in the first `batches` batches.
pub(super) fn draws_in(batches: usize, samples: usize) -> usize {
    batches * (samples / BATCHES)
}

pub(super) struct ChainRecord {
    /// The entries a draw computes, in the order of `streams`.
    pub(super) keys: Vec<EntryKey>,
    pub(super) streams: Vec<Stream>,
    pub(super) traces: Vec<Vec<f64>>,
    pub(super) evaluations: usize,
    pub(super) steps: usize,
    pub(super) failures: usize,
    /// Draws recorded (fewer than asked when stopped early).
    pub(super) recorded: usize,
}

/// Samples the posterior of the simulator's network given `targets` on its first
/// `targets.y.nrows()` patterns; the rest are test patterns. `progress` is called with the
/// number of steps finished.
pub fn sample_posterior(
    simulator: &dyn WhitenedNetwork,
    targets: Targets<'_>,
    settings: PosteriorSettings,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PosteriorSample, SimulateError> {
    let sampler = EllipticalSlice { network: simulator };
    sample_posterior_until(&sampler, targets, settings, progress, &|| false)
}

/// [`sample_posterior`], stopping early when `stop()` turns true (Ctrl-C): every chain ends
/// its step, and the result is made of the chains that completed two batches or more, on the
/// batches all of them completed — an even number, so split-R-hat still compares equal
/// half-chains — with [`PosteriorSample::interrupted`] set, `settings.chains` the chains kept
/// and [`PosteriorSample::draws_per_chain`] the draws each holds. With fewer than two such
/// chains (stopped during burn-in, say) it is [`SimulateError::Stopped`].
pub fn sample_posterior_until(
    sampler: &dyn PosteriorSampler,
    targets: Targets<'_>,
    settings: PosteriorSettings,
    progress: &(dyn Fn(u64) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<PosteriorSample, SimulateError> {
    let simulator = sampler.network();
    let train = targets.y.nrows();
    let patterns = simulator.patterns();
    if settings.chains < 2 {
        return Err(SimulateError::Setting(format!(
            "--chains {}: R-hat compares chains, at least 2 are needed",
            settings.chains
        )));
    }
    if settings.samples < 2 * BATCHES {
        return Err(SimulateError::Setting(format!(
            "--samples {}: at least {} draws per chain are needed (standard errors come from \
             {BATCHES} batches of draws per chain)",
            settings.samples,
            2 * BATCHES
        )));
    }
    if settings.thin == 0 {
        return Err(SimulateError::Setting(
            "--thin 0: at least one step per recorded draw".into(),
        ));
    }
    if train == 0 || train > patterns || targets.y.ncols() == 0 {
        return Err(SimulateError::Data(format!(
            "the targets are {}×{}: they need one row per training pattern ({} at most) and at \
             least one column",
            train,
            targets.y.ncols(),
            patterns
        )));
    }
    if let Some(((i, j), v)) = targets.y.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(SimulateError::Data(format!(
            "the targets hold {v} at pattern {i}, column {j}"
        )));
    }
    let records: Vec<Result<ChainRecord, SimulateError>> = (0..settings.chains)
        .into_par_iter()
        .map(|chain| run_chain(sampler, targets, settings, chain, progress, stop))
        .collect();
    let records = records.into_iter().collect::<Result<Vec<_>, _>>()?;
    let complete = |r: &ChainRecord| complete_batches(r.recorded, settings.samples);
    if records.iter().all(|r| complete(r) == BATCHES) {
        return combine(simulator, settings, records, BATCHES, false);
    }
    // stopped: the chains that completed two batches or more (with more chains than threads
    // the later ones may not have started), on the batches all of them completed
    let most = records.iter().map(|r| r.recorded).max().unwrap_or(0);
    let kept: Vec<ChainRecord> = records.into_iter().filter(|r| complete(r) >= 2).collect();
    let least = kept.iter().map(complete).min().unwrap_or(0);
    let used = least - least % 2;
    if kept.len() < 2 || used < 2 {
        return Err(SimulateError::Stopped(format!(
            "stopped with {} chain(s) past two of their {BATCHES} batches (the most draws a \
             chain recorded: {most} of {}): nothing to estimate from, nothing was written",
            kept.len(),
            settings.samples
        )));
    }
    let settings = PosteriorSettings {
        chains: kept.len(),
        ..settings
    };
    combine(simulator, settings, kept, used, true)
}

pub(super) fn run_chain(
    sampler: &dyn PosteriorSampler,
    targets: Targets<'_>,
    settings: PosteriorSettings,
    chain: usize,
    progress: &(dyn Fn(u64) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<ChainRecord, SimulateError> {
    let train = targets.y.nrows();
    let patterns = sampler.network().patterns();
    let mut rng = StdRng::seed_from_u64(stream_seed(settings.seed, chain as u64));
    let mut state = sampler.start(targets, &mut rng)?;
    let first = state.observe()?;
    let keys: Vec<EntryKey> = first.draw.entries.keys().cloned().collect();
    let has_test = patterns > train;
    let mut streams: Vec<Stream> = keys
        .iter()
        .map(|k| Stream::new(first.draw.entries[k].dim()))
        .collect();
    if has_test {
        // μ, μ² (for Var[μ] and its error) and σ² of the GP prediction given the kernels
        let dim = (patterns - train, targets.y.ncols());
        streams.push(Stream::new(dim));
        streams.push(Stream::new(dim));
        streams.push(Stream::new((patterns - train, 1)));
    }
    let mut traces: Vec<Vec<f64>> = vec![Vec::with_capacity(settings.samples); 1 + 3 * keys.len()];
    let target_products = targets.y.dot(&targets.y.t());
    let steps = settings.burn_in + settings.samples * settings.thin;
    let mut recorded = 0usize;
    let mut done = 0usize;
    for step in 0..steps {
        if stop() {
            break;
        }
        done += 1;
        state.advance(&mut rng)?;
        progress(1);
        if step < settings.burn_in || !(step - settings.burn_in + 1).is_multiple_of(settings.thin) {
            continue;
        }
        let batch = batch_of(recorded, settings.samples);
        recorded += 1;
        if batch >= BATCHES {
            continue; // the last samples mod BATCHES draws: in no batch
        }
        let observed = state.observe()?;
        traces[0].push(observed.log_likelihood);
        for (i, key) in keys.iter().enumerate() {
            let value = &observed.draw.entries[key];
            streams[i].add(batch, value);
            let block = value.slice(s![..train.min(value.nrows()), ..train.min(value.ncols())]);
            let (diagonal, off) = diagonal_and_off_diagonal_means(block);
            traces[1 + 3 * i].push(diagonal);
            traces[2 + 3 * i].push(off);
            traces[3 + 3 * i].push(target_weighted_off_diagonal(block, target_products.view()));
        }
        if has_test {
            let cross = observed.kernel.slice(s![..train, train..]);
            let diagonal = observed
                .kernel
                .slice(s![train.., train..])
                .diag()
                .to_owned();
            let prediction = observed.gp.predict(cross, diagonal.view())?;
            let first = streams.len() - 3;
            streams[first].add(batch, &prediction.mean);
            streams[first + 1].add(batch, &prediction.mean.mapv(|m| m * m));
            let latent = prediction.latent_variance.insert_axis(Axis(1));
            streams[first + 2].add(batch, &latent);
        }
    }
    Ok(ChainRecord {
        keys,
        streams,
        traces,
        evaluations: state.evaluations(),
        steps: done,
        failures: state.failures(),
        recorded,
    })
}
