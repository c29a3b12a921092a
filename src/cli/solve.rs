//! `saddle solve FILE --x X --y Y --x-test XT [--y-test YT]`: GP prediction with the NNGP
//! kernel of a theory; `--method map|linear`: the finite-width kernels of every layer
//! ([`super::finite_width`]).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use super::CliError;
use super::options::{load, params_json, parse_set, theory};
use super::progress::Spinner;
use super::result::RunResult;
use super::sweep::SweepArgs;
use crate::solve::gp::regress;
use crate::solve::nngp::{Kernels, NngpSettings, parameter_values};
use crate::solve::predict::{check_targets, prediction_kernels, readout_fields};

/// Solution methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Infinite width: the NNGP kernel and exact GP inference.
    Nngp,
    /// Finite width N: the full saddle point of the action (MAP kernels of every layer):
    /// Newton's method with P-dimensional quadrature for P ≤ 3, forward–backward sweeps
    /// with Gaussian closed forms or importance sampling for any P (`--expectations`).
    Map,
    /// Finite width N: the posterior-mean kernels, the MAP plus the prior one-loop shift m/N
    /// (THEORY.md §4.5) — what a trained network's kernels average to; the MAP beside them.
    /// The shift is integrated pattern pair by pair (seconds a pair: tens of patterns).
    Posterior,
    /// Finite width N: the linearised fluctuation system around the NNGP point (one Newton
    /// step): P-dimensional quadrature for P ≤ 3, matrix-free with the expectations of
    /// `map` (closed forms or importance sampling) for any P (`--expectations`).
    Linear,
}

/// How the tilted expectations of the finite-width methods are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Expectations {
    /// P-dimensional quadrature for P ≤ 3, `scalable` beyond.
    Auto,
    /// P-dimensional Gauss–Hermite quadrature (exact, P ≤ 3).
    Quadrature,
    /// Gaussian closed forms where the tilt is quadratic (linear units), importance
    /// sampling elsewhere; any P.
    Scalable,
    /// Importance sampling everywhere (a check of the closed forms).
    MonteCarlo,
}

/// Which terms of the linearised system (THEORY.md §4.4) enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinearOrder {
    /// Every block, H δC⁽ᴸ⁾ included (one Newton step of the full action).
    Full,
    /// Without the (C, C) blocks: C̃ is the back-propagated data gradient.
    Leading,
}

impl From<LinearOrder> for crate::solve::fluctuation::Order {
    fn from(order: LinearOrder) -> Self {
        match order {
            LinearOrder::Full => Self::Full,
            LinearOrder::Leading => Self::Leading,
        }
    }
}

/// How `map` and `posterior` iterate to the saddle point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Iterate {
    /// Damped sweeps with Anderson acceleration.
    Anderson,
    /// Plain damped sweeps (no acceleration).
    Damped,
    /// Newton's method, its linear systems by GMRES on differenced sweeps.
    NewtonKrylov,
}

/// Arguments of `saddle solve`.
#[derive(Debug, Clone, Args)]
pub struct SolveArgs {
    /// The `.action` file.
    pub file: PathBuf,
    /// Training inputs (P×d, `.npy` or `.csv`).
    #[arg(long = "x", value_name = "X")]
    pub x: PathBuf,
    /// Training targets (P×D; ±1 for two classes, one-hot for several).
    #[arg(long = "y", value_name = "Y")]
    pub y: PathBuf,
    /// Test inputs (needed by `--method nngp`; `map` and `linear` adapt their kernel rows too
    /// and predict with the finite-width kernel).
    #[arg(long = "x-test", value_name = "XT")]
    pub x_test: Option<PathBuf>,
    /// Test targets (for MSE and accuracy).
    #[arg(long = "y-test", value_name = "YT")]
    pub y_test: Option<PathBuf>,
    /// Override a parameter: `--set kappa=0.01`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// How to solve.
    #[arg(long, value_enum, default_value = "nngp")]
    pub method: Method,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Write `result.json` and every matrix as `.npy` into this directory (the training
    /// kernel, the predictive mean and variance; every layer's kernels for `map`/`linear`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Draw the training kernel into this `.svg` / `.png`, patterns sorted by class: the
    /// NNGP readout kernel, or (map, linear) the last layer's NNGP beside its finite-width
    /// kernel.
    #[arg(long, value_name = "FIGURE")]
    pub plot: Option<PathBuf>,
    /// Gauss–Hermite order: per pair for activations without a closed form (`nngp`, default
    /// 80; tanh and smooth user functions go through the Mehler expansion, whose per-pair
    /// fallback uses this order or 160, whichever is higher), per dimension of the
    /// P-dimensional tilted expectations (`map`, `linear`, default 64).
    #[arg(long, value_parser = super::quadrature_order())]
    pub quadrature: Option<usize>,
    /// How `map` and `linear` compute the tilted expectations.
    #[arg(long, value_enum, default_value = "auto")]
    pub expectations: Expectations,
    /// Monte Carlo samples per population (`map`, `linear` with sampled expectations).
    #[arg(long, default_value_t = 20_000)]
    pub samples: usize,
    /// Seed of the Monte Carlo samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Which terms of the linearised system enter (`--method linear`; default full).
    #[arg(long, value_enum)]
    pub order: Option<LinearOrder>,
    /// How `map` and `posterior` iterate to the saddle point (default anderson); every
    /// evaluation of the sweep map counts as one sweep.
    #[arg(long, value_enum)]
    pub iterate: Option<Iterate>,
    #[command(flatten)]
    pub sweep: SweepArgs,
}

/// Solves and reports (at every point of a `--sweep`).
pub fn run(args: &SolveArgs) -> Result<(), CliError> {
    super::sweep::run_or_sweep(
        "solve",
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

/// Solves; with `capture`, returns the result instead of printing it.
fn execute(args: &SolveArgs, capture: bool) -> Result<Option<RunResult>, CliError> {
    let theory = theory(&args.file)?;
    if args.order.is_some() && args.method != Method::Linear {
        return Err(CliError::Usage(
            "--order: the order of the linearised system (`--method linear`)".into(),
        ));
    }
    if args.iterate.is_some() && !matches!(args.method, Method::Map | Method::Posterior) {
        return Err(CliError::Usage(
            "--iterate: how the saddle point is iterated to (`--method map` or `posterior`)".into(),
        ));
    }
    if args.method != Method::Nngp {
        if args.y_test.is_some() && args.x_test.is_none() {
            return Err(CliError::Usage("--y-test needs --x-test".into()));
        }
        let (x, y) = (load("--x", &args.x)?, load("--y", &args.y)?);
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
        let test = x_test
            .as_ref()
            .map(|xt| (xt.view(), y_test.as_ref().map(|y| y.view())));
        return super::finite_width::run(&theory, x.view(), y.view(), test, args, capture);
    }
    let x_test_path = args.x_test.as_ref().ok_or_else(|| {
        CliError::Usage("--x-test is needed for `--method nngp` (GP prediction)".into())
    })?;
    let (x, y, x_test) = (
        load("--x", &args.x)?,
        load("--y", &args.y)?,
        load("--x-test", x_test_path)?,
    );
    let y_test = args
        .y_test
        .as_ref()
        .map(|p| load("--y-test", p))
        .transpose()?;
    let params =
        parameter_values(&theory, &args.set).map_err(|e| CliError::Usage(e.to_string()))?;
    let settings = NngpSettings {
        overrides: args.set.clone(),
        quadrature_order: args.quadrature.unwrap_or(80),
        ..NngpSettings::default()
    };
    let usage = |e: crate::solve::predict::PredictError| CliError::Usage(e.to_string());
    let y_test_view = y_test.as_ref().map(|y| y.view());
    check_targets(x.view(), y.view(), x_test.view(), y_test_view).map_err(usage)?;
    let spinner = Spinner::new(
        format!(
            "computing the NNGP kernels of {} + {} patterns…",
            x.nrows(),
            x_test.nrows()
        ),
        args.json || capture,
    );
    let kernels = prediction_kernels(&theory, x.view(), x_test.view(), y.ncols(), &settings)
        .map_err(usage)?;
    let readout = match readout_fields(&theory, &settings).as_deref() {
        Ok([key]) => Kernels::name(&theory, key),
        _ => "readout".to_string(),
    };
    let mut result = RunResult::new("solve", "nngp", &theory.name, params_json(&theory, &params));
    result.set("readout", Some(json!(readout)));
    // the train kernel becomes the Cholesky factor: keep it first
    if args.json || args.out.is_some() {
        result.matrix(&["kernels", &readout], kernels.train.clone());
    }
    spinner.say("GP prediction…");
    if let Some(figure) = &args.plot {
        crate::plot::Heatmap {
            title: format!(
                "{}: NNGP readout kernel, patterns sorted by class",
                theory.name
            ),
            panels: vec![crate::plot::Panel {
                title: "NNGP".into(),
                matrix: kernels.train.clone(),
            }],
            order: Some(super::plot::class_order(&y, kernels.train.nrows())?),
        }
        .render(figure)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let noise = kernels.noise;
    let expansions = kernels.expansions;
    let gp = regress(
        kernels.train,
        y.view(),
        kernels.cross.view(),
        kernels.test_diagonal.view(),
        noise,
        y_test_view,
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    spinner.done();
    let prediction = &gp.prediction;
    let metrics = gp.metrics.as_ref();
    result.matrix(&["prediction", "mean"], prediction.mean.clone());
    result.vector(
        &["prediction", "variance"],
        prediction.latent_variance.clone(),
    );
    result.set("test_mse", metrics.map(|m| json!(m.mse)));
    result.set("test_accuracy", metrics.map(|m| json!(m.accuracy)));
    result.set(
        "log_marginal_likelihood",
        Some(json!(gp.log_marginal_likelihood)),
    );
    result.set(
        "generalisation_error",
        metrics.map(|m| json!(m.generalisation_error)),
    );
    result.set("readout_noise", Some(json!(noise)));
    result.set("jitter", Some(json!(gp.jitter.absolute)));
    if !expansions.is_empty() {
        result.set(
            "expansions",
            Some(Value::Object(
                expansions
                    .iter()
                    .map(|(name, report)| (name.clone(), json!(report)))
                    .collect(),
            )),
        );
    }
    if capture {
        return Ok(Some(result));
    }
    if let Some(dir) = &args.out {
        result.write_dir(dir)?;
    }
    if args.json {
        outln!("{}", result.to_json());
        return Ok(None);
    }
    outln!(
        "theory `{}`: NNGP on {} training and {} test patterns",
        theory.name,
        x.nrows(),
        x_test.nrows()
    );
    outln!(
        "  log marginal likelihood  {:.6}",
        gp.log_marginal_likelihood
    );
    if let Some(m) = metrics {
        outln!("  test MSE                 {:.6}", m.mse);
        outln!("  test accuracy            {:.4}", m.accuracy);
        outln!("  generalisation error     {:.6}", m.generalisation_error);
    }
    if gp.jitter.absolute > 0.0 {
        outln!(
            "  jitter added to K + κI   {:.3e} (the kernel is numerically singular)",
            gp.jitter.absolute
        );
    }
    for (name, report) in &expansions {
        outln!("  {}", super::kernel::expansion_summary(name, report));
    }
    Ok(None)
}
