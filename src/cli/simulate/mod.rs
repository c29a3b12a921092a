//! `saddle simulate FILE --x X [--y Y] [--x-test XT --y-test YT] --set N=…`: the finite
//! network the action describes, sampled ([`crate::simulate`]): independent prior draws
//! (`--prior`) or the posterior given the training targets (elliptical slice sampling,
//! several chains), with standard errors, effective sample sizes and R-hat, side by side with
//! the NNGP kernels.
//!
//! Here: the arguments, the run (layered theories), shapes, output and errors; `prior` and
//! `posterior` the two kinds of run and their reports, `recurrent` recurrent theories,
//! `tables` the printed tables.

use std::path::PathBuf;

use clap::Args;
use ndarray::{Array2, concatenate};
use serde_json::{Map, Value, json};

use super::CliError;
use super::options::{load, params_json, parse_set, theory};
use super::progress::progress_bar;
use super::result::RunResult;
use super::sweep::SweepArgs;
use crate::simulate::langevin::{Langevin, WeightNetwork};
use crate::simulate::posterior::{EllipticalSlice, PosteriorSampler, Targets};
use crate::simulate::{Network, SimulateError, Simulator};
use crate::solve::nngp::{EntryKey, Kernels, NngpSettings, nngp_kernels, parameter_values};
use crate::solve::one_loop::{EntryVariance, prior_one_loop_with_progress};
use crate::syntax::{Diagnostic, Diagnostics};

mod posterior;
mod prior;
mod recurrent;
mod tables;
use posterior::*;
use prior::*;
use recurrent::*;
use tables::*;

/// Arguments of `saddle simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// The `.action` file.
    pub file: PathBuf,
    /// Training inputs (P×d, `.npy` or `.csv`).
    #[arg(long = "x", value_name = "X")]
    pub x: PathBuf,
    /// Training targets (P×D); needed unless `--prior`.
    #[arg(long = "y", value_name = "Y")]
    pub y: Option<PathBuf>,
    /// Test inputs: rows of the same network without a likelihood term.
    #[arg(long = "x-test", value_name = "XT")]
    pub x_test: Option<PathBuf>,
    /// Test targets (for MSE and accuracy).
    #[arg(long = "y-test", value_name = "YT")]
    pub y_test: Option<PathBuf>,
    /// Override a parameter: `--set N=100`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// Sample the prior (independent draws, no targets) instead of the posterior.
    #[arg(long)]
    pub prior: bool,
    /// With `--prior`: also the one-loop N·Var and mean shift N·(E[C] − C*) of every entry
    /// (THEORY.md §4.5) from the action's derivatives, beside the sampled ones, with the
    /// distance in standard errors (layered theories: pattern pair by pair, any P;
    /// recurrent theories: N·Var).
    #[arg(long, requires = "prior")]
    pub one_loop: bool,
    /// Posterior sampler: `ess`, elliptical slice sampling of the whitened pre-activations
    /// (exact); `langevin`, unadjusted Langevin dynamics of the weights (noisy gradient
    /// descent with weight decay at temperature κ; biased by O(step size); layered theories).
    #[arg(long, value_enum, default_value_t = Sampler::Ess)]
    pub sampler: Sampler,
    /// Langevin step size ε (default 0.05/λ_max, λ_max = 1 + λ_max(K_train)/κ the stiffest
    /// curvature of the potential).
    #[arg(long = "step-size", value_name = "EPS")]
    pub step_size: Option<f64>,
    /// Independent chains (posterior).
    #[arg(long, default_value_t = 4)]
    pub chains: usize,
    /// Draws: independent ones with `--prior` (default 4000), recorded per chain otherwise
    /// (default 200).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Steps discarded at the start of every chain (default: as many as recorded draws;
    /// Langevin: five relaxation times of the weights, ⌈5/ε⌉).
    #[arg(long = "burn-in")]
    pub burn_in: Option<usize>,
    /// Steps per recorded draw (default 1; Langevin: half a relaxation time of the weights,
    /// ⌈0.5/ε⌉).
    #[arg(long)]
    pub thin: Option<usize>,
    /// Seed: the same seed gives the same numbers, bit for bit.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write `result.json` and every matrix (means, standard errors, NNGP, ESS, R-hat…) as
    /// `.npy` into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Draw the readout kernel's NNGP beside its simulated mean into this `.svg` / `.png`
    /// (patterns sorted by the training targets when there are no test patterns).
    #[arg(long, value_name = "FIGURE")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub sweep: SweepArgs,
}

/// How `simulate` samples the posterior.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sampler {
    /// Elliptical slice sampling in the whitened coordinates (exact).
    Ess,
    /// Unadjusted Langevin dynamics of the network's weights.
    Langevin,
}

/// Simulates and reports (at every point of a `--sweep`).
pub fn run(args: &SimulateArgs) -> Result<(), CliError> {
    super::sweep::run_or_sweep(
        "simulate",
        args,
        &args.file,
        &args.sweep,
        &args.set,
        args.out.as_deref(),
        |args, point| {
            let mut one = args.clone();
            one.set.extend(point);
            (one.out, one.plot, one.json) = (None, None, true);
            one
        },
        execute,
    )
}

/// Simulates; with `capture`, returns the result instead of printing it.
fn execute(args: &SimulateArgs, capture: bool) -> Result<Option<RunResult>, CliError> {
    if args.prior && args.sampler == Sampler::Langevin {
        return Err(CliError::Usage(
            "--sampler langevin samples the posterior given --y; --prior draws independent \
             networks, with no sampler"
                .into(),
        ));
    }
    if let (Some(eps), Sampler::Ess) = (args.step_size, args.sampler) {
        return Err(CliError::Usage(format!(
            "--step-size {eps}: only --sampler langevin takes a step size (elliptical slice \
             sampling has none)"
        )));
    }
    let theory = theory(&args.file)?;
    let params =
        parameter_values(&theory, &args.set).map_err(|e| CliError::Usage(e.to_string()))?;
    let x_train = load("--x", &args.x)?;
    let y = args.y.as_ref().map(|p| load("--y", p)).transpose()?;
    let x_test = args
        .x_test
        .as_ref()
        .map(|p| load("--x-test", p))
        .transpose()?;
    let y_test = args
        .y_test
        .as_ref()
        .map(|p| load("--y-test", p))
        .transpose()?;
    check_shapes(
        &x_train,
        y.as_ref(),
        x_test.as_ref(),
        y_test.as_ref(),
        args.prior,
    )?;
    let x = match &x_test {
        Some(t) => concatenate![ndarray::Axis(0), x_train, *t],
        None => x_train.clone(),
    };
    let train = x_train.nrows();
    if crate::simulate::recurrent::is_recurrent(&theory) {
        let data = (y, y_test);
        return execute_recurrent(args, capture, &theory, &params, &x, data, train);
    }
    let network = Network::new(&theory, &params).map_err(|e| simulate_error(&e, args))?;
    let simulator = Simulator::new(&network, x.view()).map_err(|e| simulate_error(&e, args))?;
    let nngp = compared_nngp(&theory, &x, args, y.as_ref().map(|y| y.ncols()))?;

    let method = match (args.prior, args.sampler) {
        (true, _) => "simulate-prior",
        (false, Sampler::Ess) => "simulate-ess",
        (false, Sampler::Langevin) => "simulate-langevin",
    };
    let mut out = RunResult::new(
        "simulate",
        method,
        &theory.name,
        params_json(&theory, &params),
    );
    out.set("seed", Some(json!(args.seed)));
    let units: Map<String, Value> = network
        .rules
        .iter()
        .filter_map(|r| {
            network
                .units_of(&r.key)
                .map(|n| (network.name(&r.key), json!(n)))
        })
        .collect();
    out.set("units", Some(Value::Object(units)));
    let left_out = left_out_terms(&network, args);
    if !left_out.is_empty() {
        out.set("left_out_terms", Some(json!(left_out)));
    }
    // the kernel the readout reads, when it is one simulated entry
    if let Some(key) = readout_entry(&theory, args)
        && network.units_of(&key).is_some()
    {
        out.set("readout", Some(json!(network.name(&key))));
    }
    let units_of = |key: &EntryKey| network.units_of(key);
    let mut tables = Tables::new(&theory, &units_of, &nngp);
    if args.prior {
        // the one-loop N·Var and mean shift beside the sampled ones, pattern pair by pair
        // (the action's derivatives on a 2-D grid)
        if args.one_loop {
            let settings = NngpSettings {
                overrides: args.set.clone(),
                ..NngpSettings::default()
            };
            let p = x.nrows() as u64;
            let bar = progress_bar(p * p.saturating_sub(1) / 2, args.json || p <= 2);
            let corrections =
                prior_one_loop_with_progress(&theory, x.view(), &settings, 48, &|_| bar.inc(1))
                    .map_err(|e| CliError::Usage(format!("--one-loop: {e}")))?;
            bar.finish_and_clear();
            // the theory's N·Var and N·shift are per the width N; the table scales each entry
            // by its population's units n (a layer of 2N units fluctuates half as much)
            let width = theory.param("N").map(|id| params[id]);
            let corrections: Vec<_> = corrections
                .into_iter()
                .map(|mut e| {
                    if let (Some(n), Some(width)) = (units_of(&e.key), width) {
                        let factor = n as f64 / width;
                        e.n_variance *= factor;
                        e.n_shift *= factor;
                    }
                    e
                })
                .collect();
            tables.one_loop_shift = corrections
                .iter()
                .map(|e| (e.key.clone(), e.n_shift.clone()))
                .collect();
            tables.one_loop = corrections
                .into_iter()
                .map(|e| EntryVariance {
                    key: e.key,
                    name: e.name,
                    n_variance: e.n_variance,
                })
                .collect();
        }
        return report_prior(args, capture, &simulator, tables, out, &left_out);
    }

    let y = posterior_targets(y)?;
    let ess = EllipticalSlice {
        network: &simulator,
    };
    let langevin;
    let sampler: (&dyn PosteriorSampler, SamplerInfo) = match args.sampler {
        Sampler::Ess => (&ess, SamplerInfo::elliptical_slice()),
        Sampler::Langevin => {
            let weights = WeightNetwork::new(&simulator).map_err(|e| simulate_error(&e, args))?;
            let parameters = weights.weight_count(y.ncols());
            langevin = Langevin::new(weights, Targets { y: y.view() }, args.step_size, args.seed)
                .map_err(|e| simulate_error(&e, args))?;
            let info = SamplerInfo::langevin(&langevin, parameters);
            (&langevin, info)
        }
    };
    report_posterior(
        args,
        capture,
        sampler,
        tables,
        out,
        &left_out,
        (y, y_test),
        train,
    )
}

fn check_shapes(
    x: &Array2<f64>,
    y: Option<&Array2<f64>>,
    x_test: Option<&Array2<f64>>,
    y_test: Option<&Array2<f64>>,
    prior: bool,
) -> Result<(), CliError> {
    if let Some(y) = y
        && y.nrows() != x.nrows()
    {
        return Err(CliError::Usage(format!(
            "--y has {} rows but --x has {} patterns",
            y.nrows(),
            x.nrows()
        )));
    }
    if let Some(t) = x_test
        && t.ncols() != x.ncols()
    {
        return Err(CliError::Usage(format!(
            "--x-test has {} features but --x has {}",
            t.ncols(),
            x.ncols()
        )));
    }
    match (x_test, y_test) {
        (None, Some(_)) => {
            return Err(CliError::Usage("--y-test needs --x-test".into()));
        }
        (Some(t), Some(yt))
            if yt.nrows() != t.nrows() || y.is_some_and(|y| y.ncols() != yt.ncols()) =>
        {
            return Err(CliError::Usage(format!(
                "--y-test is {}×{}: it needs one row per test pattern ({}) and the columns of --y",
                yt.nrows(),
                yt.ncols(),
                t.nrows()
            )));
        }
        _ => {}
    }
    if prior && y_test.is_some() {
        return Err(CliError::Usage(
            "--y-test: the prior has no predictions to score (drop --prior to sample the \
             posterior)"
                .into(),
        ));
    }
    Ok(())
}

fn write_out(args: &SimulateArgs, out: &RunResult) -> Result<(), CliError> {
    if let Some(figure) = &args.plot {
        let labels = match (&args.y, &args.x_test) {
            (Some(y), None) => Some(load("--y", y)?),
            _ => None,
        };
        super::plot::draw_kernels(
            &out.to_json(),
            &[],
            labels.as_ref(),
            None,
            figure,
            &args.file,
        )?;
    }
    if let Some(dir) = &args.out {
        out.write_dir(dir)?;
    }
    Ok(())
}

/// A simulation error; one about a term of the action is shown where it is written.
fn simulate_error(error: &SimulateError, args: &SimulateArgs) -> CliError {
    if let SimulateError::Stopped(why) = error {
        return CliError::Interrupted(format!("interrupted: {why}"));
    }
    if let SimulateError::NotSimulable { reason, span } = error
        && !span.is_empty()
        && let Ok(source) = super::read_source(&args.file)
        && span.end <= source.len()
    {
        let diagnostic = Diagnostic::new(
            "saddle::not_simulable",
            reason.clone(),
            *span,
            "the simulator cannot read this as a network",
        );
        return Diagnostics::new(&super::display_name(&args.file), &source, vec![diagnostic])
            .into();
    }
    CliError::Usage(error.to_string())
}

/// After a result was written and printed: a Ctrl-C that stopped the sampling early is
/// reported as an interruption (exit code 130) that says what the result holds.
fn stopped_early(interrupted: bool, held: String) -> Result<Option<RunResult>, CliError> {
    if interrupted {
        return Err(CliError::Interrupted(format!(
            "interrupted: the result holds {held} (`\"interrupted\": true`)"
        )));
    }
    Ok(None)
}

/// The NNGP kernels the simulated ones are compared with (`outputs`: D, for formulas that
/// read it).
fn compared_nngp(
    theory: &crate::Theory,
    x: &Array2<f64>,
    args: &SimulateArgs,
    outputs: Option<usize>,
) -> Result<Kernels, CliError> {
    let settings = NngpSettings {
        overrides: args.set.clone(),
        outputs,
        ..NngpSettings::default()
    };
    nngp_kernels(theory, x.view(), None, &settings)
        .map_err(|e| CliError::Usage(format!("the NNGP kernels to compare with: {e}")))
}

/// The field entry the readout kernel is, when it is exactly one.
fn readout_entry(theory: &crate::Theory, args: &SimulateArgs) -> Option<EntryKey> {
    let settings = NngpSettings {
        overrides: args.set.clone(),
        ..NngpSettings::default()
    };
    match crate::solve::predict::readout_fields(theory, &settings)
        .ok()?
        .as_slice()
    {
        [key] => Some(key.clone()),
        _ => None,
    }
}

fn left_out_terms(network: &Network, args: &SimulateArgs) -> Vec<String> {
    let source = super::read_source(&args.file).unwrap_or_default();
    network
        .left_out
        .iter()
        .map(|span| {
            source
                .get(span.start..span.end)
                .filter(|t| !t.is_empty())
                .map_or_else(
                    || "a term".to_string(),
                    |t| t.split_whitespace().collect::<Vec<_>>().join(" "),
                )
        })
        .collect()
}

fn print_left_out(terms: &[String]) {
    if terms.is_empty() {
        return;
    }
    outln!(
        "not simulated ({} term(s) that read fields but neither a conjugate nor the targets: \
         corrections of the rate function at finite P/N, not part of the network): {}",
        terms.len(),
        terms.join("; ")
    );
}
