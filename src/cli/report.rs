//! `saddle report THEORY.action [--result R] --out DIR`: one self-contained HTML page
//! ([`crate::report`]) with the action and its derived equations typeset, the parameters,
//! and, from a result (`--json` output, an `--out DIR` folder, a sweep folder or a folder of
//! figures such as `saddle demo` writes), its numbers and figures.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use super::CliError;
use super::options::{load, parse_set, theory};
use super::progress::Spinner;
use crate::check::ir::{ParamType, Theory};
use crate::derive::report::{Report as DerivedReport, latex_report};
use crate::render::{Latex, render_theory};
use crate::report::{Figure, Report, Table, equation_groups};

/// Arguments of `saddle report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The `.action` file.
    pub file: PathBuf,
    /// A result to include: `result.json` (or the JSON a command printed), a directory
    /// written by `--out DIR` or `--sweep`, or a folder of figures (`saddle demo`).
    #[arg(long, value_name = "RESULT")]
    pub result: Option<PathBuf>,
    /// Override a parameter (the integer ones fix how many equations are shown).
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// Targets (P×D, .csv or .npy) that order the patterns of kernel figures by class.
    #[arg(long, value_name = "Y")]
    pub labels: Option<PathBuf>,
    /// The directory to write `report.html` (and its figures as PNG) into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes the report and says where.
pub fn run(args: &ReportArgs) -> Result<(), CliError> {
    let labels = args
        .labels
        .as_ref()
        .map(|p| load("--labels", p))
        .transpose()?;
    super::interrupt::on_interrupt(format!(
        "no report written (a figure already in {} is whole)",
        args.out.display()
    ));
    let spinner = Spinner::new("deriving and typesetting the report…", false);
    let page = write(
        &args.file,
        args.result.as_deref(),
        &args.set,
        labels.as_ref(),
        &args.out,
    )?;
    spinner.done();
    outln!("report written to {}", page.display());
    Ok(())
}

/// Builds the report of `file` (with `result`, if any) into `out/report.html`.
pub fn write(
    file: &Path,
    result: Option<&Path>,
    set: &[(String, f64)],
    labels: Option<&ndarray::Array2<f64>>,
    out: &Path,
) -> Result<PathBuf, CliError> {
    let theory = theory(file)?;
    let source = super::read_source(file)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CliError::Io {
            action: "write",
            path,
            source,
        }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut report = Report {
        theory: theory.name.clone(),
        source_name: file.display().to_string(),
        source,
        action: render_theory(&theory, &Latex),
        ..Report::default()
    };
    let (result_json, sweep) = match result {
        Some(path) if super::sweep::is_sweep(path) => (None, Some(path)),
        Some(path) if path.is_dir() && !path.join("result.json").exists() => (None, None),
        Some(path) => (Some(super::result::read_result(path)?), None),
        None => (None, None),
    };
    // the parameters the result was computed at, unless --set says otherwise
    let mut overrides = set.to_vec();
    if let Some(json) = &result_json {
        if let Some(name) = json.get("theory").and_then(Value::as_str)
            && name != theory.name
        {
            return Err(CliError::Usage(format!(
                "--result: it was computed for theory `{name}`, not `{}`",
                theory.name
            )));
        }
        for (name, value) in json["params"].as_object().into_iter().flatten() {
            if let Some(v) = value.as_f64()
                && theory.param(name).is_some()
                && !overrides.iter().any(|(n, _)| n == name)
            {
                overrides.push((name.clone(), v));
            }
        }
    }
    let values = crate::solve::nngp::parameter_values(&theory, &overrides)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let equations =
        crate::derive::derive(&theory, &overrides).map_err(|e| CliError::Usage(e.to_string()))?;
    report.equations = equation_groups(&latex_report(&DerivedReport::new(&theory, &equations)));
    report.tables.push(parameter_table(&theory, &values));
    if let Some(json) = &result_json {
        report.tables.push(result_table(json));
        if json.get("kernels").is_some_and(|k| {
            k.as_object().is_some_and(|k| {
                k.values()
                    .any(|m| m.as_array().is_some_and(|r| r.len() > 1))
            })
        }) {
            let png = out.join("kernels.png");
            super::plot::draw_kernels(json, &[], labels, None, &png, file)?;
            report.figures.push(figure(&png, kernel_caption(json))?);
        }
    }
    if let Some(dir) = sweep {
        report.tables.push(sweep_table(dir)?);
        let mut spec = super::sweep::figure(dir, None)?;
        let png = out.join("sweep.png");
        spec.render(&png)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let caption = std::mem::take(&mut spec.title);
        report.figures.push(figure(&png, caption)?);
    }
    if let Some(dir) = result.filter(|p| p.is_dir()) {
        report.figures.extend(folder_figures(dir, out)?);
    }
    let html = report.html().map_err(|e| CliError::Usage(e.to_string()))?;
    let page = out.join("report.html");
    crate::data::atomic::write(&page, html).map_err(io(&page))?;
    Ok(page)
}

/// Name, type, the file's value and the value used.
fn parameter_table(theory: &Theory, values: &[f64]) -> Table {
    Table {
        title: "Parameters".into(),
        header: vec![
            "parameter".into(),
            "type".into(),
            "in the file".into(),
            "used".into(),
        ],
        rows: theory
            .params
            .iter()
            .zip(values)
            .map(|(p, v)| {
                vec![
                    p.name.clone(),
                    match p.ty {
                        ParamType::Real => "real".into(),
                        ParamType::Int => "int".into(),
                    },
                    crate::syntax::print::format_number(p.default),
                    crate::syntax::print::format_number(*v),
                ]
            })
            .collect(),
    }
}

/// Every number at the top of a result, and the NNGP's beside it.
fn result_table(json: &Value) -> Table {
    let mut rows = vec![vec![
        "method".to_string(),
        json["method"].as_str().unwrap_or("").to_string(),
    ]];
    for (key, value) in json.as_object().into_iter().flatten() {
        if let Some(v) = value.as_f64() {
            rows.push(vec![key.clone(), format!("{v:.6}")]);
        }
    }
    for (key, value) in json["nngp_prediction"].as_object().into_iter().flatten() {
        if let Some(v) = value.as_f64() {
            rows.push(vec![format!("NNGP {key}"), format!("{v:.6}")]);
        }
    }
    Table {
        title: format!(
            "Result: {} {}",
            json["command"].as_str().unwrap_or("saddle"),
            json["method"].as_str().unwrap_or("")
        ),
        header: vec!["quantity".into(), "value".into()],
        rows,
    }
}

/// The rows of a sweep: each point and its main numbers.
fn sweep_table(dir: &Path) -> Result<Table, CliError> {
    let text = std::fs::read_to_string(dir.join("sweep.jsonl")).map_err(|source| CliError::Io {
        action: "read",
        path: dir.join("sweep.jsonl"),
        source,
    })?;
    let rows: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let names: Vec<String> = rows
        .first()
        .and_then(|r| r["point"].as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let metrics: Vec<&str> = [
        "test_mse",
        "test_accuracy",
        "log_marginal_likelihood",
        "readout_diagonal",
    ]
    .into_iter()
    .filter(|m| rows.iter().any(|r| r[*m].is_number()))
    .collect();
    let mut header = names.clone();
    header.extend(metrics.iter().map(|m| m.to_string()));
    Ok(Table {
        title: format!("Sweep: {} points", rows.len()),
        header,
        rows: rows
            .iter()
            .map(|r| {
                let mut cells: Vec<String> = names
                    .iter()
                    .map(|n| crate::plot::curves::tick(r["point"][n].as_f64().unwrap_or(f64::NAN)))
                    .collect();
                if let Some(error) = r["error"].as_str() {
                    cells.push(format!("error: {}", error.lines().next().unwrap_or("")));
                } else {
                    cells.extend(
                        metrics
                            .iter()
                            .map(|m| r[*m].as_f64().map_or("—".into(), |v| format!("{v:.6}"))),
                    );
                }
                cells
            })
            .collect(),
    })
}

/// What a kernel figure shows.
fn kernel_caption(json: &Value) -> String {
    let method = json["method"].as_str().unwrap_or("nngp");
    match method {
        "nngp" => "NNGP kernels, one colour scale".into(),
        "simulate-prior" | "simulate-ess" | "simulate-langevin" => {
            "The readout kernel's NNGP beside the simulated network's mean".into()
        }
        other => format!("The readout kernel: NNGP beside the finite-width kernel ({other})"),
    }
}

/// A PNG file as a figure.
fn figure(path: &Path, caption: String) -> Result<Figure, CliError> {
    let png = std::fs::read(path).map_err(|source| CliError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Figure { caption, png })
}

/// Every PNG in a folder (not the report's own), captioned by its figure spec's title when
/// one sits beside it.
fn folder_figures(dir: &Path, out: &Path) -> Result<Vec<Figure>, CliError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| CliError::Io {
            action: "read",
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .filter(|p| {
            p.parent() != Some(out) || !["kernels.png", "sweep.png"].iter().any(|n| p.ends_with(n))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let spec = path.with_extension("json");
            let caption = std::fs::read_to_string(&spec)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["title"].as_str().map(str::to_string))
                .unwrap_or_else(|| {
                    path.file_stem()
                        .map(|s| s.to_string_lossy().replace('_', " "))
                        .unwrap_or_default()
                });
            figure(&path, caption)
        })
        .collect()
}
