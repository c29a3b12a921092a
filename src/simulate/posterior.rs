//! The posterior of the finite network given training targets, sampled exactly.
//!
//! The state is the whitened draw Z (every population's standard normals, [`super::draw`]):
//! its prior is 𝒩(0, I), and with the readout weights integrated out the likelihood is
//! 𝒩(Y; 0, K(Z)_train + κI) per output column (the action's data term, with its constant).
//! Elliptical slice sampling (Murray, Adams & MacKay 2010) moves Z along the ellipse
//! Z cos θ + ν sin θ through a fresh prior draw ν, shrinking the bracket of θ until the
//! likelihood clears a uniformly drawn level: no step size, every move accepted, exact for
//! any likelihood. Test patterns are rows of the same network without a likelihood term; each
//! recorded draw's GP prediction on them (mean and latent variance given K(Z)) is averaged,
//! and the predictive variance is E[σ²] + Var[μ] (law of total variance).
//!
//! Each chain runs on its own seeded stream. Every entry of every field is streamed into batch
//! means (standard error and effective sample size) and half-chain moments (split-R-hat); the
//! log-likelihood and each kernel's mean diagonal, off-diagonal and target-weighted
//! off-diagonal entry (same-class minus cross-class, for ±1 targets) keep full traces for
//! the multi-chain ESS and R-hat of [`super::diagnostics::summarize`].

use std::f64::consts::TAU;

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use super::diagnostics::{
    ChainSummary, DiagnosticsError, batch_means_summary, split_rhat_from_moments, summarize,
};
use super::draw::{Draw, Simulator};
use super::{SimulateError, stream_seed};
use crate::solve::gp::GpPosterior;
use crate::solve::nngp::EntryKey;

/// Batches per chain for the batch-means standard errors (even: its halves give split-R-hat).
pub const BATCHES: usize = 10;

/// How to sample.
#[derive(Debug, Clone, Copy)]
pub struct PosteriorSettings {
    /// Independent chains.
    pub chains: usize,
    /// Draws recorded per chain.
    pub samples: usize,
    /// Steps discarded at the start of each chain.
    pub burn_in: usize,
    /// Steps per recorded draw.
    pub thin: usize,
    /// The run's seed.
    pub seed: u64,
}

/// Posterior statistics of one field entry (or of the predictive mean), entry by entry.
#[derive(Debug, Clone)]
pub struct EntryPosterior {
    /// Posterior mean.
    pub mean: Array2<f64>,
    /// Monte Carlo standard error of the mean (batch means over all chains).
    pub std_error: Array2<f64>,
    /// Effective sample size (batch means).
    pub ess: Array2<f64>,
    /// Split-R-hat.
    pub rhat: Array2<f64>,
}

/// Predictions on the test patterns.
#[derive(Debug, Clone)]
pub struct PosteriorPrediction {
    /// Posterior-predictive mean, P*×D, with its statistics.
    pub mean: EntryPosterior,
    /// Predictive (latent) variance per test pattern: E[σ²] + Var[μ] averaged over outputs.
    pub variance: Array1<f64>,
    /// Its Monte Carlo standard error.
    pub variance_std_error: Array1<f64>,
}

/// The result of [`sample_posterior`].
#[derive(Debug, Clone)]
pub struct PosteriorSample {
    /// The settings used.
    pub settings: PosteriorSettings,
    /// Every entry of every field a draw computes.
    pub entries: Vec<(EntryKey, EntryPosterior)>,
    /// Scalar summaries with full traces: `ln p(Y|Z)` and each kernel's mean diagonal,
    /// off-diagonal and target-weighted off-diagonal entry on the training patterns.
    pub summaries: Vec<(String, ChainSummary)>,
    /// Predictions on the test patterns, if any.
    pub prediction: Option<PosteriorPrediction>,
    /// Likelihood evaluations per step (1 = every first proposal accepted).
    pub evaluations_per_step: f64,
    /// Proposals whose fields could not be evaluated (rejected), over all chains.
    pub failed_evaluations: usize,
    /// Draws per chain behind the estimates: ⌊samples/BATCHES⌋·BATCHES, or the batches every
    /// kept chain completed when interrupted (`settings.chains` is then the chains kept).
    pub draws_per_chain: usize,
    /// Stopped early ([`sample_posterior_until`]): the estimates hold the draws made.
    pub interrupted: bool,
}

/// A network whose draw is a deterministic function of standard normals — the sampler's
/// whitened coordinates, whose prior is 𝒩(0, I): the layered [`Simulator`] (every
/// population's normals) and the recurrent simulator (the drive's normals and the one
/// weight matrix's).
pub trait WhitenedNetwork: Sync {
    /// The number of patterns P (training patterns first, then test patterns).
    fn patterns(&self) -> usize;
    /// Fresh standard normals, one array per block of the network's randomness.
    fn standard_normals(&self, rng: &mut StdRng) -> Vec<Array2<f64>>;
    /// Every field entry of the network that the normals `z` make.
    fn draw(&self, z: &[Array2<f64>]) -> Result<Draw, SimulateError>;
    /// The readout kernel on every pattern and the readout noise κ of a draw.
    fn readout(&self, draw: &Draw) -> Result<(Array2<f64>, f64), SimulateError>;
    /// An entry's name as written.
    fn entry_name(&self, key: &EntryKey) -> String;
}

impl WhitenedNetwork for Simulator<'_> {
    fn patterns(&self) -> usize {
        Simulator::patterns(self)
    }

    fn standard_normals(&self, rng: &mut StdRng) -> Vec<Array2<f64>> {
        Simulator::standard_normals(self, rng)
    }

    fn draw(&self, z: &[Array2<f64>]) -> Result<Draw, SimulateError> {
        Simulator::draw(self, z)
    }

    fn readout(&self, draw: &Draw) -> Result<(Array2<f64>, f64), SimulateError> {
        Simulator::readout(self, draw)
    }

    fn entry_name(&self, key: &EntryKey) -> String {
        self.network.name(key)
    }
}

/// Training targets and how many leading patterns they belong to.
#[derive(Debug, Clone, Copy)]
pub struct Targets<'a> {
    /// Y, P_train×D.
    pub y: ArrayView2<'a, f64>,
}

/// What a chain records at a step: the network's fields, its readout kernel on every pattern
/// and the GP given it on the training block (the likelihood with the readout weights
/// integrated out, and the prediction's factor).
pub struct Observation {
    /// Every field entry of the network.
    pub draw: Draw,
    /// The readout kernel on all patterns (the test blocks predict).
    pub kernel: Array2<f64>,
    /// The GP fitted on the training block.
    pub gp: GpPosterior,
    /// ln 𝒩(Y; 0, K_train + κI).
    pub log_likelihood: f64,
}

impl Observation {
    /// The observation of a drawn network: its readout kernel and the GP on `targets`.
    pub fn of(
        simulator: &dyn WhitenedNetwork,
        targets: Targets<'_>,
        draw: Draw,
    ) -> Result<Observation, SimulateError> {
        let train = targets.y.nrows();
        let (kernel, noise) = simulator.readout(&draw)?;
        let k_train = kernel.slice(s![..train, ..train]).to_owned();
        let gp = GpPosterior::fit(k_train, targets.y, noise)?;
        Ok(Observation {
            draw,
            kernel,
            log_likelihood: gp.log_marginal_likelihood(),
            gp,
        })
    }
}

/// A Markov chain whose stationary distribution is the posterior of the network's fields.
pub trait PosteriorChain {
    /// One step.
    fn advance(&mut self, rng: &mut StdRng) -> Result<(), SimulateError>;
    /// The current state as the sampler reports it.
    fn observe(&mut self) -> Result<&Observation, SimulateError>;
    /// Evaluations of the network (likelihood or gradient) so far.
    fn evaluations(&self) -> usize;
    /// Proposals whose fields could not be evaluated (rejected) so far.
    fn failures(&self) -> usize;
}

/// A way of sampling the posterior: it starts chains on the network's patterns.
pub trait PosteriorSampler: Sync {
    /// The network sampled.
    fn network(&self) -> &dyn WhitenedNetwork;
    /// A chain started from a prior draw made with `rng`.
    fn start<'s>(
        &'s self,
        targets: Targets<'_>,
        rng: &mut StdRng,
    ) -> Result<Box<dyn PosteriorChain + 's>, SimulateError>;
}

/// Elliptical slice sampling in the whitened coordinates Z of a [`WhitenedNetwork`].
pub struct EllipticalSlice<'a> {
    /// The network.
    pub network: &'a dyn WhitenedNetwork,
}

impl PosteriorSampler for EllipticalSlice<'_> {
    fn network(&self) -> &dyn WhitenedNetwork {
        self.network
    }

    fn start<'s>(
        &'s self,
        targets: Targets<'_>,
        rng: &mut StdRng,
    ) -> Result<Box<dyn PosteriorChain + 's>, SimulateError> {
        let z = self.network.standard_normals(rng);
        let draw = self.network.draw(&z)?;
        let observation = Observation::of(self.network, targets, draw)?;
        Ok(Box::new(SliceChain {
            network: self.network,
            y: targets.y.to_owned(),
            z,
            observation,
            evaluations: 0,
            failures: 0,
        }))
    }
}

struct SliceChain<'a> {
    network: &'a dyn WhitenedNetwork,
    y: Array2<f64>,
    z: Vec<Array2<f64>>,
    observation: Observation,
    evaluations: usize,
    failures: usize,
}

impl PosteriorChain for SliceChain<'_> {
    fn advance(&mut self, rng: &mut StdRng) -> Result<(), SimulateError> {
        let nu = self.network.standard_normals(rng);
        let level = self.observation.log_likelihood + rng.random::<f64>().ln();
        let mut theta = rng.random::<f64>() * TAU;
        let (mut low, mut high) = (theta - TAU, theta);
        loop {
            let (c, sn) = (theta.cos(), theta.sin());
            let proposal: Vec<Array2<f64>> = self
                .z
                .iter()
                .zip(&nu)
                .map(|(z, n)| z * c + n * sn)
                .collect();
            self.evaluations += 1;
            let evaluated = self
                .network
                .draw(&proposal)
                .and_then(|draw| Observation::of(self.network, Targets { y: self.y.view() }, draw));
            match evaluated {
                Ok(next) if next.log_likelihood > level => {
                    self.z = proposal;
                    self.observation = next;
                    return Ok(());
                }
                Ok(_) => {}
                Err(_) => self.failures += 1,
            }
            if theta < 0.0 {
                low = theta;
            } else {
                high = theta;
            }
            if high - low < 1e-12 {
                return Ok(());
            }
            theta = low + rng.random::<f64>() * (high - low);
        }
    }

    fn observe(&mut self) -> Result<&Observation, SimulateError> {
        Ok(&self.observation)
    }

    fn evaluations(&self) -> usize {
        self.evaluations
    }

    fn failures(&self) -> usize {
        self.failures
    }
}

/// Streamed sums of one tracked array: per-batch sums, per-half sums of squares.
struct Stream {
    batches: Vec<Array2<f64>>,
    /// Σ x² per batch: the half-chains of split-R-hat are any even number of leading batches
    /// (all of them, or the complete ones of an interrupted run).
    batch_squares: Vec<Array2<f64>>,
    batch_counts: Vec<usize>,
}

impl Stream {
    fn new(dim: (usize, usize)) -> Self {
        Stream {
            batches: (0..BATCHES).map(|_| Array2::zeros(dim)).collect(),
            batch_squares: (0..BATCHES).map(|_| Array2::zeros(dim)).collect(),
            batch_counts: vec![0; BATCHES],
        }
    }

    fn add(&mut self, batch: usize, value: &Array2<f64>) {
        self.batches[batch] += value;
        self.batch_counts[batch] += 1;
        self.batch_squares[batch].zip_mut_with(value, |s, v| *s += v * v);
    }
}

/// The batch of the `recorded`-th draw (0-based) of `samples`: [`BATCHES`] batches of
/// ⌊samples/BATCHES⌋ draws each, so any even number of leading batches splits into two
/// half-chains of equal length (split-R-hat); the last samples mod BATCHES draws fall in no
/// batch (≥ BATCHES) and are left out.
fn batch_of(recorded: usize, samples: usize) -> usize {
    recorded / (samples / BATCHES).max(1)
}

/// How many leading batches `recorded` draws fill completely.
fn complete_batches(recorded: usize, samples: usize) -> usize {
    (recorded / (samples / BATCHES).max(1)).min(BATCHES)
}

/// Draws in the first `batches` batches.
fn draws_in(batches: usize, samples: usize) -> usize {
    batches * (samples / BATCHES)
}

struct ChainRecord {
    /// The entries a draw computes, in the order of `streams`.
    keys: Vec<EntryKey>,
    streams: Vec<Stream>,
    traces: Vec<Vec<f64>>,
    evaluations: usize,
    steps: usize,
    failures: usize,
    /// Draws recorded (fewer than asked when stopped early).
    recorded: usize,
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

fn run_chain(
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
fn combine(
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
fn not_mixing(what: &str) -> SimulateError {
    SimulateError::Setting(format!(
        "the chains did not mix: {what} stays constant within each half-chain but differs \
         between them, so the posterior was not sampled (R-hat is infinite); use more units \
         (`--set N=…`), more noise (κ) or longer chains (`--samples`, `--burn-in`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_boundaries_agree_with_the_batch_of_each_draw() {
        for samples in [20, 37, 1000, 1001] {
            for k in 0..=BATCHES {
                let counted = (0..samples).filter(|&r| batch_of(r, samples) < k).count();
                assert_eq!(
                    draws_in(k, samples),
                    counted,
                    "{samples} draws, {k} batches"
                );
                assert_eq!(complete_batches(counted, samples), k);
                if counted > 0 && k > 0 {
                    assert_eq!(complete_batches(counted - 1, samples), k - 1);
                }
            }
        }
    }
}
