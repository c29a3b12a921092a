//! `saddle fit FILE --targets T.json`: the parameters of a network model whose theory
//! reproduces recorded population statistics ([`crate::solve::fit`]) — activity, distances
//! and angles between responses — each with its error from the curvature of χ², the
//! statistics' pulls, and, when the stimuli have classes, the predicted separability of the
//! classes by a linear readout at every step, with its error. The format of `T.json` is
//! [`crate::solve::fit::TargetsFile`] (and the README).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Value, json};

use super::CliError;
use super::options::{matrix_json, params_json, parse_set, theory};
use super::progress::Spinner;
use super::result::RunResult;
use crate::check::ir::Theory;
use crate::plot::{Curve, CurveFigure, Marker};
use crate::solve::fit::{
    Fit, FitSettings, Problem, Separability, StatisticKind, TargetsFile, fit, separability,
};

/// Arguments of `saddle fit`.
#[derive(Debug, Clone, Args)]
pub struct FitArgs {
    /// The `.action` file of the network model.
    pub file: PathBuf,
    /// The statistics to reproduce (JSON; its format is in the README).
    #[arg(long, value_name = "T.json")]
    pub targets: PathBuf,
    /// Override a parameter that is not fitted: `--set N=1000`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// Starts of the descent: the file's start, then seeded uniform draws in the box.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub starts: u64,
    /// Seed of the extra starts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Levenberg–Marquardt iterations per start.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100000))]
    pub iterations: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write `DIR/result.json` (the same object).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Draw the predicted separability against the step into this `.svg` / `.png`.
    #[arg(long, value_name = "FIGURE")]
    pub plot: Option<PathBuf>,
    /// Gauss–Hermite order for expectations without a closed form.
    #[arg(long, default_value_t = 80, value_parser = super::quadrature_order())]
    pub quadrature: usize,
}

/// Runs the fit and reports it.
pub fn run(args: &FitArgs) -> Result<(), CliError> {
    let theory = theory(&args.file)?;
    let params = theory
        .bind(&args.set)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let text = std::fs::read_to_string(&args.targets).map_err(|source| CliError::Io {
        action: "read",
        path: args.targets.clone(),
        source,
    })?;
    let file: TargetsFile = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.targets.display())))?;
    let base_dir = args.targets.parent().unwrap_or(Path::new("."));
    let targets_error = |e: crate::solve::fit::FitError| {
        CliError::Usage(format!("{}: {e}", args.targets.display()))
    };
    let problem =
        Problem::new(&theory, &params, &file, base_dir, args.quadrature).map_err(targets_error)?;
    let settings = FitSettings {
        starts: args.starts as usize,
        seed: args.seed,
        max_iterations: args.iterations as usize,
    };
    let spinner = Spinner::new(
        format!(
            "fitting {} parameter(s) from {} start(s)…",
            problem.free.len(),
            settings.starts
        ),
        args.json,
    );
    let found = fit(&problem, &settings).map_err(|e| CliError::Usage(e.to_string()))?;
    spinner.say("predicting the separability…");
    let readout = match problem.readout {
        Some(_) => Some(
            separability(&problem, &found.values, &found.covariance)
                .map_err(|e| CliError::Usage(e.to_string()))?,
        ),
        None => None,
    };
    spinner.done();
    let values = problem.parameters(&found.values);
    to_result(&theory, &values, args, &problem, &found, readout.as_ref()).emit(
        args.out.as_deref(),
        args.plot.as_deref().map(|f| (f, draw as _)),
        args.json,
        || print_table(&theory, args, &problem, &found, readout.as_ref()),
    )
}

fn to_result(
    theory: &Theory,
    values: &[f64],
    args: &FitArgs,
    problem: &Problem,
    found: &Fit,
    readout: Option<&Separability>,
) -> RunResult {
    let mut result = RunResult::new("fit", "nngp", &theory.name, params_json(theory, values));
    result.set("targets", json!(args.targets.display().to_string()));
    result.set(
        "fitted",
        Value::Array(
            problem
                .free
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    json!({
                        "name": f.name,
                        "value": found.values[i],
                        "std_error": found.std_errors[i],
                        "min": f.lower,
                        "max": f.upper,
                        "at_bound": found.at_bound[i],
                    })
                })
                .collect(),
        ),
    );
    result.set("parameter_covariance", matrix_json(&found.covariance));
    result.set("chi2", json!(found.chi2));
    result.set("dof", json!(found.dof));
    result.set(
        "starts",
        json!({ "count": found.descents.len(), "agreeing": found.agreeing_starts }),
    );
    result.set(
        "iterations",
        json!(
            found
                .descents
                .iter()
                .map(|d| d.iterations)
                .max()
                .unwrap_or(0)
        ),
    );
    result.set(
        "statistics",
        Value::Array(
            problem
                .statistics
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let (a, b) = s.stimuli;
                    let stimuli = if s.kind == StatisticKind::Activity {
                        json!([a])
                    } else {
                        json!([a, b])
                    };
                    json!({
                        "statistic": s.kind.name(),
                        "field": s.entry_name,
                        "stimuli": stimuli,
                        "observed": problem.observed[i],
                        "std_error": problem.covariance[(i, i)].sqrt(),
                        "fitted": found.fitted[i],
                        "pull": found.pulls[i],
                    })
                })
                .collect(),
        ),
    );
    if let Some(r) = readout {
        result.set(
            "separability",
            json!({
                "noise": r.noise,
                "best_step": r.steps[r.best_step],
                "steps": r.steps.iter().enumerate().map(|(i, s)| json!({
                    "step": s,
                    "accuracy": r.accuracy[i],
                    "std_error": r.std_error[i],
                })).collect::<Vec<_>>(),
            }),
        );
    }
    result
}

fn print_table(
    theory: &Theory,
    args: &FitArgs,
    problem: &Problem,
    found: &Fit,
    readout: Option<&Separability>,
) {
    outln!(
        "fit of {} to {} statistics ({}): {} parameters, {} starts ({} reached the best χ²)",
        theory.name,
        problem.statistics.len(),
        args.targets.display(),
        problem.free.len(),
        found.descents.len(),
        found.agreeing_starts
    );
    outln!("{:<10}{:>14}{:>12}   box", "parameter", "value", "± s.e.");
    for (i, f) in problem.free.iter().enumerate() {
        outln!(
            "{:<10}{:>14.6}{:>12.6}   [{}, {}]{}",
            f.name,
            found.values[i],
            found.std_errors[i],
            f.lower,
            f.upper,
            if found.at_bound[i] {
                "  at its bound: the error does not hold"
            } else {
                ""
            }
        );
    }
    if problem.free.len() > 1 {
        let corr: Vec<String> = (0..problem.free.len())
            .flat_map(|i| (i + 1..problem.free.len()).map(move |j| (i, j)))
            .map(|(i, j)| {
                let c = found.covariance[(i, j)]
                    / (found.covariance[(i, i)] * found.covariance[(j, j)]).sqrt();
                format!("{}–{} {c:+.3}", problem.free[i].name, problem.free[j].name)
            })
            .collect();
        outln!("correlations: {}", corr.join(", "));
    }
    let per_dof = if found.dof > 0 {
        format!(" (χ²/dof = {:.3})", found.chi2 / found.dof as f64)
    } else {
        String::new()
    };
    outln!(
        "χ² = {:.4} for {} degrees of freedom{per_dof}",
        found.chi2,
        found.dof
    );
    outln!(
        "{:<30}{:>12}{:>11}{:>12}{:>8}",
        "statistic",
        "observed",
        "± s.e.",
        "fitted",
        "pull"
    );
    for (i, s) in problem.statistics.iter().enumerate() {
        outln!(
            "{:<30}{:>12.6}{:>11.6}{:>12.6}{:>8.2}",
            s.label(),
            problem.observed[i],
            problem.covariance[(i, i)].sqrt(),
            found.fitted[i],
            found.pulls[i]
        );
    }
    if let Some(r) = readout {
        outln!(
            "separability of the classes by a linear readout (leave-one-out, noise κ = {}):",
            r.noise
        );
        outln!("{:<10}{:>12}{:>11}", "step", "accuracy", "± s.e.");
        for (i, s) in r.steps.iter().enumerate() {
            outln!(
                "{:<10}{:>12.6}{:>11.6}{}",
                s,
                r.accuracy[i],
                r.std_error[i],
                if i == r.best_step { "  best" } else { "" }
            );
        }
    }
}

/// The predicted separability against the step, from a fit result.
pub(crate) fn figures(json: &Value) -> Result<Vec<CurveFigure>, CliError> {
    let steps = json["separability"]["steps"].as_array().ok_or_else(|| {
        CliError::Usage(
            "the fit has no separability to draw (give `classes` in the targets file)".into(),
        )
    })?;
    let theory = json["theory"].as_str().unwrap_or("theory");
    let mut curve = Curve {
        label: "predicted (fitted parameters), ± s.e.".into(),
        x: Vec::new(),
        y: Vec::new(),
        error: Some(Vec::new()),
        marker: Marker::LinePoints,
        colour: Some(0),
    };
    for (i, s) in steps.iter().enumerate() {
        if let (Some(a), Some(e)) = (s["accuracy"].as_f64(), s["std_error"].as_f64()) {
            curve.x.push((i + 1) as f64);
            curve.y.push(a);
            if let Some(err) = curve.error.as_mut() {
                err.push(e);
            }
        }
    }
    let first = steps.first().and_then(|s| s["step"].as_str()).unwrap_or("");
    let last = steps.last().and_then(|s| s["step"].as_str()).unwrap_or("");
    Ok(vec![CurveFigure {
        title: format!("{theory}: separability by a linear readout"),
        x_label: format!("step ({first} … {last})"),
        y_label: "P(correct), held-out stimulus".into(),
        log_x: false,
        curves: vec![curve],
    }])
}

/// Draws [`figures`] into `path`.
pub(crate) fn draw(json: &Value, path: &Path) -> Result<(), CliError> {
    crate::plot::render_row(&figures(json)?, path).map_err(|e| CliError::Usage(e.to_string()))
}
