//! `saddle solve FILE --x X --y Y --x-test XT [--y-test YT]`: GP prediction with the NNGP
//! kernel of a theory; `--method map|linear`: the finite-width kernels of every layer
//! ([`super::finite_width`]).

use serde_json::{Value, json};

use super::CliError;
use super::options::{load, params_json, theory};
use super::progress::Spinner;
use super::result::RunResult;
use super::solve_args::{Method, SolveArgs};
use crate::solve::gp::regress;
use crate::solve::nngp::{Kernels, NngpSettings, parameter_values};
use crate::solve::predict::{check_targets, prediction_kernels, readout_fields};

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
