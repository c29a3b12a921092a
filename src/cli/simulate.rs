//! `saddle simulate FILE --x X [--y Y] [--x-test XT --y-test YT] --set N=…`: the finite
//! network the action describes, sampled ([`crate::simulate`]): independent prior draws
//! (`--prior`) or the posterior given the training targets (elliptical slice sampling,
//! several chains), with standard errors, effective sample sizes and R-hat, side by side with
//! the NNGP kernels.

use std::path::PathBuf;

use clap::Args;
use ndarray::{Array2, concatenate};
use serde_json::{Map, Value, json};

use super::CliError;
use super::options::{load, params_json, parse_set, theory};
use super::progress::progress_bar;
use super::result::RunResult;
use super::sweep::SweepArgs;
use crate::check::ir::FieldKind;
use crate::simulate::langevin::{Langevin, WeightModel, WeightNetwork};
use crate::simulate::posterior::{
    EllipticalSlice, PosteriorSampler, PosteriorSettings, Targets, sample_posterior_until,
};
use crate::simulate::prior::sample_prior_until;
use crate::simulate::recurrent_langevin::RecurrentWeights;
use crate::simulate::{
    Network, PriorDraws, RecurrentNetwork, RecurrentSimulator, SimulateError, Simulator,
};
use crate::solve::gp::accuracy;
use crate::solve::nngp::{EntryKey, Kernels, NngpSettings, nngp_kernels, parameter_values};
use crate::solve::one_loop::{EntryVariance, prior_one_loop_with_progress};
use crate::syntax::{Diagnostic, Diagnostics};

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

/// The training targets a posterior needs.
fn posterior_targets(y: Option<Array2<f64>>) -> Result<Array2<f64>, CliError> {
    y.ok_or_else(|| {
        CliError::Usage("--y is needed to sample the posterior (or pass --prior)".into())
    })
}

/// How the posterior was sampled, for the result and the table's heading.
struct SamplerInfo {
    /// In words.
    name: String,
    /// A line more, in words.
    detail: Option<String>,
    /// Its settings beyond chains and draws.
    settings: Map<String, Value>,
    /// Steps for the prior's directions to relax (1/ε of Langevin dynamics), which set the
    /// default burn-in (5 relaxations) and thinning (half of one); None: as many burn-in
    /// steps as draws, no thinning.
    relaxation: Option<f64>,
    /// The result's key for the network evaluations per step.
    evaluations: &'static str,
}

impl SamplerInfo {
    fn elliptical_slice() -> Self {
        SamplerInfo {
            name: "elliptical slice sampling".into(),
            detail: None,
            settings: Map::new(),
            relaxation: None,
            evaluations: "likelihood_evaluations_per_step",
        }
    }

    fn langevin<M: WeightModel>(sampler: &Langevin<M>, parameters: usize) -> Self {
        let eps = sampler.step_size;
        let stiffest = sampler.stiffest;
        let kappa = sampler.weights.noise();
        let (prior, stiff) = (
            sampler.variance_inflation(1.0),
            sampler.variance_inflation(stiffest),
        );
        let mut settings = Map::new();
        settings.insert("step_size".into(), json!(eps));
        settings.insert("temperature".into(), json!(kappa));
        settings.insert("weight_decay".into(), json!(kappa));
        settings.insert("weights".into(), json!(parameters));
        settings.insert("stiffest_curvature".into(), json!(stiffest));
        settings.insert(
            "variance_inflation".into(),
            json!({ "prior_directions": prior, "stiffest_direction": stiff }),
        );
        SamplerInfo {
            name: format!("unadjusted Langevin dynamics of {parameters} weights"),
            detail: Some(format!(
                "step ε = {eps:.3e} (λ_max = {stiffest:.4} at a prior draw): loss ½‖Y − f‖² \
                 with weight decay κ = {kappa} at temperature κ; the O(ε) bias: variances \
                 ×{prior:.4} along the prior, ×{stiff:.4} along the stiffest direction"
            )),
            settings,
            relaxation: Some(1.0 / eps),
            evaluations: "gradient_evaluations_per_step",
        }
    }
}

/// The posterior of `simulator`'s network given the training targets, reported into `out`
/// beside the NNGP in `tables`.
#[allow(clippy::too_many_arguments)]
fn report_posterior(
    args: &SimulateArgs,
    capture: bool,
    (sampler, info): (&dyn PosteriorSampler, SamplerInfo),
    mut tables: Tables<'_>,
    mut out: RunResult,
    left_out: &[String],
    (y, y_test): (Array2<f64>, Option<Array2<f64>>),
    train: usize,
) -> Result<Option<RunResult>, CliError> {
    let simulator = sampler.network();
    let tables_theory = tables.theory;
    let samples = args.samples.unwrap_or(200);
    let steps_of = |times: f64| info.relaxation.map(|r| (times * r).ceil() as usize);
    let settings = PosteriorSettings {
        chains: args.chains,
        samples,
        burn_in: args.burn_in.or(steps_of(5.0)).unwrap_or(samples),
        thin: args.thin.or(steps_of(0.5)).unwrap_or(1),
        seed: args.seed,
    };
    if let (Some(relaxation), Some(burn_in)) = (info.relaxation, args.burn_in)
        && (burn_in as f64) < 5.0 * relaxation
    {
        eprintln!(
            "note: --burn-in {burn_in} is {:.1} relaxation times of the weights (1/ε = {:.0} \
             steps each); the chains may still remember their prior draws — 5 or more \
             (the default) are safer",
            burn_in as f64 / relaxation,
            relaxation
        );
    }
    let steps = (settings.chains * (settings.burn_in + settings.samples * settings.thin)) as u64;
    let bar = progress_bar(steps, args.json);
    let tick = |n: u64| bar.inc(n);
    // Ctrl-C stops the chains and keeps the batches they completed (not inside a sweep,
    // whose points must be whole: there the sweep stops between points)
    let graceful = (!capture).then(super::interrupt::Graceful::new);
    let stop = || graceful.is_some() && super::interrupt::stopped();
    let posterior =
        sample_posterior_until(sampler, Targets { y: y.view() }, settings, &tick, &stop)
            .map_err(|e| simulate_error(&e, args))?;
    bar.finish_and_clear();
    if posterior.interrupted {
        out.set("interrupted", Some(json!(true)));
    }
    let mut described = json!({
        "name": info.name,
        "chains": posterior.settings.chains,
        "samples_per_chain": posterior.draws_per_chain,
        "burn_in": settings.burn_in,
        "thin": settings.thin,
        "failed_evaluations": posterior.failed_evaluations,
    });
    if let Value::Object(m) = &mut described {
        m.insert(
            info.evaluations.into(),
            json!(posterior.evaluations_per_step),
        );
        m.extend(info.settings.clone());
    }
    out.set("sampler", Some(described));
    let mut worst_rhat: f64 = 1.0;
    let mut least_ess = f64::INFINITY;
    for (key, stats) in &posterior.entries {
        let name = simulator.entry_name(key);
        out.matrix(&["ess", &name], stats.ess.clone());
        out.matrix(&["rhat", &name], stats.rhat.clone());
        worst_rhat = stats.rhat.iter().fold(worst_rhat, |a, &b| a.max(b));
        least_ess = stats.ess.iter().fold(least_ess, |a, &b| a.min(b));
        tables.add(key, &stats.mean, &stats.std_error, None);
    }
    let report = tables.finish(&mut out);
    out.set(
        "summaries",
        Some(Value::Array(
            posterior
                .summaries
                .iter()
                .map(|(name, s)| {
                    json!({"name": name, "mean": s.mean, "std_dev": s.std_dev,
                           "std_error": s.std_error, "ess": s.ess, "rhat": s.rhat})
                })
                .collect(),
        )),
    );
    let mut metrics = None;
    if let Some(prediction) = &posterior.prediction {
        out.matrix(&["prediction", "mean"], prediction.mean.mean.clone());
        out.vector(&["prediction", "variance"], prediction.variance.clone());
        out.matrix(
            &["prediction", "standard_errors", "mean"],
            prediction.mean.std_error.clone(),
        );
        out.vector(
            &["prediction", "standard_errors", "variance"],
            prediction.variance_std_error.clone(),
        );
        if let Some(y_test) = &y_test {
            let residual = y_test - &prediction.mean.mean;
            let mse = residual.iter().map(|r| r * r).sum::<f64>() / y_test.nrows() as f64;
            let acc = accuracy(prediction.mean.mean.view(), y_test.view())
                .map_err(|e| CliError::Usage(e.to_string()))?;
            out.set("test_mse", Some(json!(mse)));
            out.set("test_accuracy", Some(json!(acc)));
            metrics = Some((mse, acc));
        }
    }
    if capture {
        return Ok(Some(out));
    }
    write_out(args, &out)?;
    let done = || {
        stopped_early(
            posterior.interrupted,
            format!(
                "{} of {} draws per chain",
                posterior.draws_per_chain, settings.samples
            ),
        )
    };
    if args.json {
        outln!("{}", out.to_json());
        return done();
    }
    outln!(
        "theory {} — the finite network's posterior given {} training targets: {}, {} chains × \
         {} draws (burn-in {}, thin {}, seed {}), {:.2} network evaluations per step",
        tables_theory.name,
        train,
        info.name,
        posterior.settings.chains,
        posterior.draws_per_chain,
        settings.burn_in,
        settings.thin,
        settings.seed,
        posterior.evaluations_per_step
    );
    if let Some(detail) = &info.detail {
        outln!("{detail}");
    }
    print_posterior(&report);
    print_left_out(left_out);
    outln!();
    outln!(
        "{:<34} {:>12} {:>10} {:>8} {:>7}",
        "convergence",
        "mean",
        "MC s.e.",
        "ESS",
        "R-hat"
    );
    for (name, s) in &posterior.summaries {
        outln!(
            "{:<34} {:>12.6} {:>10.2e} {:>8.0} {:>7.3}",
            name,
            s.mean,
            s.std_error,
            s.ess,
            s.rhat
        );
    }
    outln!(
        "every kernel entry: smallest ESS {:.0}, largest split-R-hat {:.3}{}",
        least_ess,
        worst_rhat,
        if worst_rhat > 1.05 {
            " — above 1.05: run longer chains (--samples, --burn-in)"
        } else {
            ""
        }
    );
    if let Some((mse, acc)) = metrics {
        outln!(
            "test patterns: {} — MSE {:.6}, accuracy {:.2}%",
            simulator.patterns() - train,
            mse,
            100.0 * acc
        );
    }
    done()
}

/// One field entry's table row.
struct Row {
    name: String,
    mean: Array2<f64>,
    std_error: Array2<f64>,
    nngp: Option<Array2<f64>>,
    /// N·Var and its standard error (prior draws only).
    n_variance: Option<(Array2<f64>, Array2<f64>)>,
    /// N·Var at one loop (THEORY.md §4.5), where computed.
    one_loop: Option<Array2<f64>>,
    /// The one-loop mean shift N·(E[C] − C*), where computed.
    one_loop_shift: Option<Array2<f64>>,
    units: f64,
    /// A mean field (a vector in the result).
    is_mean: bool,
}

/// What every mode writes per field entry: the `kernels`/`means`, `standard_errors` and
/// `nngp` members of the result, and the rows of the table.
struct Tables<'a> {
    theory: &'a crate::Theory,
    one_loop: Vec<EntryVariance>,
    one_loop_shift: Vec<(EntryKey, Array2<f64>)>,
    units_of: &'a dyn Fn(&EntryKey) -> Option<usize>,
    nngp: &'a Kernels,
    rows: Vec<Row>,
}

impl<'a> Tables<'a> {
    fn new(
        theory: &'a crate::Theory,
        units_of: &'a dyn Fn(&EntryKey) -> Option<usize>,
        nngp: &'a Kernels,
    ) -> Self {
        Tables {
            theory,
            one_loop: Vec::new(),
            one_loop_shift: Vec::new(),
            units_of,
            nngp,
            rows: Vec::new(),
        }
    }

    fn add(
        &mut self,
        key: &EntryKey,
        mean: &Array2<f64>,
        std_error: &Array2<f64>,
        n_variance: Option<(Array2<f64>, Array2<f64>)>,
    ) {
        self.rows.push(Row {
            name: Kernels::name(self.theory, key),
            mean: mean.clone(),
            std_error: std_error.clone(),
            nngp: self.nngp.entries.get(key).cloned(),
            n_variance,
            units: (self.units_of)(key).unwrap_or(1) as f64,
            one_loop: self
                .one_loop
                .iter()
                .find(|v| &v.key == key)
                .map(|v| v.n_variance.clone()),
            one_loop_shift: self
                .one_loop_shift
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone()),
            is_mean: self.theory.fields[key.0].kind == FieldKind::Mean,
        });
    }

    /// Writes the arrays into `out` (a mean field as a vector); returns the rows.
    fn finish(self, out: &mut RunResult) -> Vec<Row> {
        for row in &self.rows {
            let name = row.name.as_str();
            let put = |out: &mut RunResult, section: &str, m: &Array2<f64>| {
                if row.is_mean {
                    out.vector(&[section, name], m.column(0).to_owned());
                } else {
                    out.matrix(&[section, name], m.clone());
                }
            };
            put(
                out,
                if row.is_mean { "means" } else { "kernels" },
                &row.mean,
            );
            put(out, "standard_errors", &row.std_error);
            if let Some(v) = &row.one_loop {
                put(out, "one_loop_variance", v);
            }
            if let Some(v) = &row.one_loop_shift {
                put(out, "one_loop_shift", v);
            }
            if let Some(r) = &row.nngp {
                put(out, "nngp", r);
            }
        }
        self.rows
    }
}

/// The upper-triangle entries (or vector entries) shown for a P×P (or P×1) matrix.
fn shown_entries(m: &Array2<f64>) -> Vec<(usize, usize)> {
    if m.ncols() == 1 {
        (0..m.nrows()).map(|i| (i, 0)).collect()
    } else {
        (0..m.nrows())
            .flat_map(|i| (i..m.ncols()).map(move |j| (i, j)))
            .collect()
    }
}

fn print_prior(rows: &[Row]) {
    print_rows(rows, "mean", "s.e.", "N·(mean − NNGP)", true);
    outln!("N: the number of units of the population each field averages over.");
}

fn print_posterior(rows: &[Row]) {
    print_rows(rows, "posterior", "MC s.e.", "N·(post − NNGP)", false);
}

/// One line per shown entry: value, its error, the NNGP value, N·(value − NNGP) and, for the
/// prior, N·Var.
fn print_rows(rows: &[Row], value: &str, error: &str, shift: &str, with_variance: bool) {
    let variance_header = if with_variance { "N·Var" } else { "" };
    let one_loop = rows.iter().any(|r| r.one_loop.is_some());
    let one_loop_shift = rows.iter().any(|r| r.one_loop_shift.is_some());
    let header = format!(
        "{:<8} {:<8} {:>12} {:>10} {:>12} {:>16} {:>16} {:>9} {:>18}",
        "field",
        "entry",
        value,
        error,
        "NNGP",
        shift,
        variance_header,
        if one_loop { "one-loop" } else { "" },
        if one_loop_shift {
            "one-loop N·shift"
        } else {
            ""
        }
    );
    outln!("{}", header.trim_end());
    for row in rows {
        let entries = shown_entries(&row.mean);
        for (count, &(i, j)) in entries.iter().enumerate() {
            if entries.len() > 10 && count == 10 {
                outln!(
                    "{:<8} … {} more entries (--json or --out for all)",
                    "",
                    entries.len() - 10
                );
                break;
            }
            let label = if row.mean.ncols() == 1 {
                format!("{}", i + 1)
            } else {
                format!("{},{}", i + 1, j + 1)
            };
            let (nngp, shift) = match &row.nngp {
                Some(r) => (
                    format!("{:.6}", r[[i, j]]),
                    format!(
                        "{:+.4} ± {:.4}",
                        row.units * (row.mean[[i, j]] - r[[i, j]]),
                        row.units * row.std_error[[i, j]]
                    ),
                ),
                None => ("—".into(), "—".into()),
            };
            let variance = row.n_variance.as_ref().map_or(String::new(), |(v, e)| {
                format!("{:.4} ± {:.4}", v[[i, j]], e[[i, j]])
            });
            let theory = row
                .one_loop
                .as_ref()
                .map_or(String::new(), |v| format!("{:.4}", v[[i, j]]));
            // the theory's shift, and how many standard errors the sampled one lies from it
            let theory_shift = match (&row.one_loop_shift, &row.nngp) {
                (Some(m), Some(r)) => {
                    let sampled = row.units * (row.mean[[i, j]] - r[[i, j]]);
                    let error = row.units * row.std_error[[i, j]];
                    let distance = if error > 0.0 {
                        format!(" ({:+.1}σ)", (sampled - m[[i, j]]) / error)
                    } else {
                        String::new()
                    };
                    format!("{:+.4}{distance}", m[[i, j]])
                }
                (Some(m), None) => format!("{:+.4}", m[[i, j]]),
                _ => String::new(),
            };
            let line = format!(
                "{:<8} {:<8} {:>12.6} {:>10.2e} {:>12} {:>16} {:>16} {:>9} {:>18}",
                row.name,
                label,
                row.mean[[i, j]],
                row.std_error[[i, j]],
                nngp,
                shift,
                variance,
                theory,
                theory_shift
            );
            outln!("{}", line.trim_end());
        }
    }
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

/// The source text of the action's terms that are not part of the network.
/// Independent prior draws of `simulator`, reported into `out` beside the NNGP in `tables`.
fn report_prior(
    args: &SimulateArgs,
    capture: bool,
    simulator: &dyn PriorDraws,
    mut tables: Tables<'_>,
    mut out: RunResult,
    left_out: &[String],
) -> Result<Option<RunResult>, CliError> {
    let samples = args.samples.unwrap_or(4000);
    let bar = progress_bar(samples as u64, args.json);
    let tick = |n: u64| bar.inc(n);
    // Ctrl-C skips the draws not yet started and reports the ones made (not inside a sweep)
    let graceful = (!capture).then(super::interrupt::Graceful::new);
    let stop = || graceful.is_some() && super::interrupt::stopped();
    let prior = sample_prior_until(simulator, samples, args.seed, &tick, &stop)
        .map_err(|e| simulate_error(&e, args))?;
    bar.finish_and_clear();
    out.set("samples", Some(json!(prior.samples)));
    if prior.interrupted {
        out.set("interrupted", Some(json!(true)));
    }
    for (key, stats) in &prior.entries {
        let name = simulator.entry_name(key);
        out.matrix(&["variance", &name], stats.variance.clone());
        out.matrix(
            &["variance_standard_errors", &name],
            stats.variance_std_error.clone(),
        );
        let n = (tables.units_of)(key).unwrap_or(1) as f64;
        let n_variance = (&stats.variance * n, &stats.variance_std_error * n);
        tables.add(key, &stats.mean, &stats.std_error, Some(n_variance));
    }
    let theory = tables.theory;
    let report = tables.finish(&mut out);
    if capture {
        return Ok(Some(out));
    }
    write_out(args, &out)?;
    let done = || {
        stopped_early(
            prior.interrupted,
            format!("{} of {samples} draws", prior.samples),
        )
    };
    if args.json {
        outln!("{}", out.to_json());
        return done();
    }
    outln!(
        "theory {} — the finite network, {} independent prior draws (seed {}), {} patterns",
        theory.name,
        prior.samples,
        args.seed,
        simulator.inputs().nrows()
    );
    print_prior(&report);
    print_left_out(left_out);
    done()
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

/// `saddle simulate` of a recurrent theory: one network with its weights shared over time
/// ([`RecurrentNetwork`]), from its prior or its posterior given the training targets.
fn execute_recurrent(
    args: &SimulateArgs,
    capture: bool,
    theory: &crate::Theory,
    params: &[f64],
    x: &Array2<f64>,
    (y, y_test): (Option<Array2<f64>>, Option<Array2<f64>>),
    train: usize,
) -> Result<Option<RunResult>, CliError> {
    let network = RecurrentNetwork::new(theory, params).map_err(|e| simulate_error(&e, args))?;
    let simulator =
        RecurrentSimulator::new(&network, x.view()).map_err(|e| simulate_error(&e, args))?;
    let nngp = compared_nngp(theory, x, args, y.as_ref().map(|y| y.ncols()))?;
    let one_loop = if args.one_loop && args.prior {
        Some(recurrent_one_loop(&network, &simulator, &nngp)?)
    } else {
        None
    };
    let method = match (args.prior, args.sampler) {
        (true, _) => "simulate-prior",
        (false, Sampler::Ess) => "simulate-ess",
        (false, Sampler::Langevin) => "simulate-langevin",
    };
    let mut out = RunResult::new(
        "simulate",
        method,
        &theory.name,
        params_json(theory, params),
    );
    out.set("seed", Some(json!(args.seed)));
    out.set(
        "recurrent",
        Some(
            json!({ "units": network.units, "last_time": network.last_time,
                     "weight_variance": simulator.gain }),
        ),
    );
    if let Some(key) = readout_entry(theory, args) {
        out.set("readout", Some(json!(network.name(&key))));
    }
    let units = network.units;
    let family = network.family;
    let units_of = move |key: &EntryKey| (key.0 == family).then_some(units);
    let mut tables = Tables::new(theory, &units_of, &nngp);
    if let Some((variances, quadrature_error)) = one_loop {
        tables.one_loop = variances;
        out.set(
            "one_loop",
            Some(json!({ "theory": "recurrent (shared weights)",
                         "quadrature_error": quadrature_error })),
        );
    }
    if args.prior {
        return report_prior(args, capture, &simulator, tables, out, &[]);
    }
    let y = posterior_targets(y)?;
    let ess = EllipticalSlice {
        network: &simulator,
    };
    let langevin;
    let sampler: (&dyn PosteriorSampler, SamplerInfo) = match args.sampler {
        Sampler::Ess => (&ess, SamplerInfo::elliptical_slice()),
        Sampler::Langevin => {
            let weights =
                RecurrentWeights::new(&simulator).map_err(|e| simulate_error(&e, args))?;
            let parameters = weights.weight_count(y.ncols());
            langevin = Langevin::new(weights, Targets { y: y.view() }, args.step_size, args.seed)
                .map_err(|e| simulate_error(&e, args))?;
            let info = SamplerInfo::langevin(&langevin, parameters);
            (&langevin, info)
        }
    };
    report_posterior(args, capture, sampler, tables, out, &[], (y, y_test), train)
}

/// The one-loop N·Var of every block C[t, s] (t, s ≥ 1) of a recurrent network
/// ([`RecurrentSimulator::one_loop`]) and the quadrature's error estimate.
fn recurrent_one_loop(
    network: &RecurrentNetwork,
    simulator: &RecurrentSimulator,
    nngp: &Kernels,
) -> Result<(Vec<EntryVariance>, f64), CliError> {
    let one = simulator
        .one_loop(nngp, 20)
        .map_err(|e| CliError::Usage(format!("--one-loop: {e}")))?;
    let mut variances = Vec::new();
    for t in 1..=network.last_time {
        for s in 1..=network.last_time {
            let key = (network.family, vec![t as i64, s as i64]);
            if let Some(n_variance) = one.block_variance(t, s) {
                variances.push(EntryVariance {
                    name: network.name(&key),
                    key,
                    n_variance,
                });
            }
        }
    }
    Ok((variances, one.quadrature_error))
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
