//! `saddle plot RESULT.json|DIR --out FIGURE.svg|png`: a figure from a result
//! ([`super::result`]: printed by `--json`, or a directory written by `--out DIR`).
//!
//! - kernels (`--kind kernels`, the default for results with kernels): one panel per kernel
//!   (`saddle kernel`), or, for a result with `nngp` reference kernels (`solve --method
//!   map|linear`, `simulate`), the NNGP beside the finite-width or simulated kernel of one
//!   entry (the readout by default); `--entries` picks the panels or the entry, `--labels Y`
//!   orders the patterns by class (the sign of Y, or its largest column);
//! - curves (`--kind curves`): a figure spec, as `saddle demo` writes next to each of its
//!   figures (title, axis labels, series with optional standard errors), to redraw or edit.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ndarray::Array2;
use serde_json::Value;

use super::CliError;
use super::options::load;
use crate::plot::{CurveFigure, Heatmap, Panel};

/// Which figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Kernel matrices side by side on one colour scale.
    Kernels,
    /// Curves from a figure spec (title, axes, series).
    Curves,
}

/// Arguments of `saddle plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The result (`kernel`/`solve`/`simulate` with `--json`, or the directory `--out DIR`
    /// wrote) or a figure spec.
    pub result: PathBuf,
    /// Which figure (default: curves for a figure spec, kernels otherwise).
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// The figure: `.svg` or `.png`.
    #[arg(long)]
    pub out: PathBuf,
    /// Kernel panels to draw (`C[1],C[3]`), or the layer of a finite-width result (`C[2]`);
    /// default: every kernel (at most six, the last ones), or the last layer.
    #[arg(long, value_delimiter = ',')]
    pub entries: Vec<String>,
    /// Targets (P×D, .csv or .npy): patterns are ordered by class.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Figure title (default: from the result).
    #[arg(long)]
    pub title: Option<String>,
    /// The quantity a sweep's figure draws against the swept parameter (a column of its
    /// rows: test_mse, test_accuracy, log_marginal_likelihood, readout_diagonal, …).
    #[arg(long)]
    pub metric: Option<String>,
}

/// Reads the result and draws the figure.
pub fn run(args: &PlotArgs) -> Result<(), CliError> {
    if super::sweep::is_sweep(&args.result) {
        let mut figure = super::sweep::figure(&args.result, args.metric.as_deref())?;
        if let Some(title) = &args.title {
            figure.title = title.clone();
        }
        figure
            .render(&args.out)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        outln!("wrote {}", args.out.display());
        return Ok(());
    }
    let json = super::result::read_result(&args.result)?;
    if json["command"] == "criticality" {
        super::criticality::draw(&json, &args.out)?;
        outln!("wrote {}", args.out.display());
        return Ok(());
    }
    if json["command"] == "separation" {
        super::separation::draw(&json, &args.out)?;
        outln!("wrote {}", args.out.display());
        return Ok(());
    }
    if json["command"] == "fit" {
        super::fit::draw(&json, &args.out)?;
        outln!("wrote {}", args.out.display());
        return Ok(());
    }
    let kind = args.kind.unwrap_or(if json.get("curves").is_some() {
        Kind::Curves
    } else {
        Kind::Kernels
    });
    let plot_error = |e: crate::plot::PlotError| CliError::Usage(e.to_string());
    match kind {
        Kind::Curves => {
            let mut figure: CurveFigure = serde_json::from_value(json).map_err(|e| {
                CliError::Usage(format!(
                    "{}: not a figure spec (title, x_label, y_label, curves): {e}",
                    args.result.display()
                ))
            })?;
            if let Some(title) = &args.title {
                figure.title = title.clone();
            }
            figure.render(&args.out).map_err(plot_error)?;
        }
        Kind::Kernels => {
            let labels = args
                .labels
                .as_ref()
                .map(|p| load("--labels", p))
                .transpose()?;
            draw_kernels(
                &json,
                &args.entries,
                labels.as_ref(),
                args.title.as_deref(),
                &args.out,
                &args.result,
            )?;
        }
    }
    outln!("wrote {}", args.out.display());
    Ok(())
}

/// Draws the kernels of a result into `out`; `labels`
/// orders the patterns by class. Also what `--plot` on `kernel`, `solve` and `simulate` runs.
pub(crate) fn draw_kernels(
    json: &Value,
    entries: &[String],
    labels: Option<&Array2<f64>>,
    title: Option<&str>,
    out: &std::path::Path,
    source: &std::path::Path,
) -> Result<(), CliError> {
    let mut panels = kernel_panels(json, entries, source)?;
    // a result on train ∪ test patterns (the training ones first, then as many test
    // patterns as it predicts) with training targets: the training block
    let test_patterns = json["prediction"]["mean"].as_array().map_or(0, Vec::len);
    if let Some(y) = labels
        && test_patterns > 0
        && panels
            .iter()
            .all(|p| p.matrix.nrows() == y.nrows() + test_patterns)
    {
        let t = y.nrows();
        for panel in &mut panels {
            panel.matrix = panel.matrix.slice(ndarray::s![..t, ..t]).to_owned();
            panel.title.push_str(", training patterns");
        }
    }
    let order = match labels {
        Some(y) => Some(class_order(y, panels[0].matrix.nrows())?),
        None => None,
    };
    let title = title.map_or_else(
        || {
            let method = match json.get("method").and_then(Value::as_str) {
                Some("simulate-ess") => "finite network, posterior (elliptical slice sampling):",
                Some("simulate-langevin") => "finite network, posterior (Langevin dynamics):",
                Some("simulate-prior") => "finite network, prior draws:",
                Some(other) => other,
                None => "nngp",
            };
            let sorted = if order.is_some() {
                ", patterns sorted by class"
            } else {
                ""
            };
            format!("{method} kernels{sorted}")
        },
        str::to_string,
    );
    Heatmap {
        title,
        panels,
        order,
    }
    .render(out)
    .map_err(|e| CliError::Usage(e.to_string()))
}

/// The panels a result holds: every kernel, or the NNGP beside one finite-width kernel (and,
/// for `compare`, the linearised and MAP kernels beside the simulated networks').
fn kernel_panels(
    json: &Value,
    entries: &[String],
    path: &std::path::Path,
) -> Result<Vec<Panel>, CliError> {
    let matrix = |name: &str, v: &Value| -> Result<Array2<f64>, CliError> {
        let rows = v.as_array().ok_or_else(|| {
            CliError::Usage(format!("{}: `{name}` is not a matrix", path.display()))
        })?;
        let p = rows.len();
        let mut m = Array2::zeros((p, p));
        for (a, row) in rows.iter().enumerate() {
            let row = row.as_array().filter(|r| r.len() == p).ok_or_else(|| {
                CliError::Usage(format!(
                    "{}: `{name}` is not a square matrix (row {a})",
                    path.display()
                ))
            })?;
            for (b, x) in row.iter().enumerate() {
                m[[a, b]] = x.as_f64().ok_or_else(|| {
                    CliError::Usage(format!(
                        "{}: `{name}` holds {x} at ({a}, {b})",
                        path.display()
                    ))
                })?;
            }
        }
        Ok(m)
    };
    // a finite-width or simulated result: the NNGP beside the finite-width kernel of one
    // entry (the readout by default)
    if let (Some(kernels), Some(nngp), Some(method)) = (
        json.get("kernels").and_then(Value::as_object),
        json.get("nngp").and_then(Value::as_object),
        json.get("method").and_then(Value::as_str),
    ) {
        let readout = json
            .get("readout")
            .and_then(Value::as_str)
            .filter(|r| kernels.contains_key(*r));
        let name = match (entries.first(), readout) {
            (Some(want), _) => want.clone(),
            (None, Some(readout)) => readout.to_string(),
            (None, None) => kernels
                .iter()
                .filter(|(_, v)| is_square(v))
                .map(|(k, _)| k.clone())
                .next_back()
                .ok_or_else(|| CliError::Usage(format!("{}: no kernel", path.display())))?,
        };
        let (Some(value), Some(reference)) = (kernels.get(&name), nngp.get(&name)) else {
            let have: Vec<&str> = kernels.keys().map(String::as_str).collect();
            return Err(CliError::Usage(format!(
                "--entries {name}: the result has {}",
                have.join(", ")
            )));
        };
        let what = match method {
            "simulate-prior" => "simulated prior mean".to_string(),
            "simulate-ess" | "simulate-langevin" | "compare" => {
                "simulated posterior mean".to_string()
            }
            other => match json.get("width").and_then(Value::as_f64) {
                Some(n) => format!("{other}, N = {n}"),
                None => other.to_string(),
            },
        };
        let mut panels = vec![Panel {
            title: format!("{name}, NNGP (N = ∞)"),
            matrix: matrix(&name, reference)?,
        }];
        // a comparison holds the theories beside the simulated network: NNGP, linearised,
        // MAP and the networks, on one colour scale
        for (section, label) in [("linear", "linearised"), ("map", "MAP")] {
            if let Some(theory) = json.get(section).and_then(|s| s.get(&name)) {
                panels.push(Panel {
                    title: format!("{name}, {label}"),
                    matrix: matrix(&name, theory)?,
                });
            }
        }
        panels.push(Panel {
            title: format!("{name}, {what}"),
            matrix: matrix(&name, value)?,
        });
        return Ok(panels);
    }
    let kernels = json
        .get("kernels")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{}: no `kernels` to draw (write the result with --json or --out DIR)",
                path.display()
            ))
        })?;
    let names: Vec<&String> = if entries.is_empty() {
        let all: Vec<&String> = kernels
            .iter()
            .filter(|(_, v)| is_square(v))
            .map(|(k, _)| k)
            .collect();
        all[all.len().saturating_sub(6)..].to_vec()
    } else {
        entries
            .iter()
            .map(|e| {
                kernels.get_key_value(e).map(|(k, _)| k).ok_or_else(|| {
                    let have: Vec<&str> = kernels.keys().map(String::as_str).collect();
                    CliError::Usage(format!("--entries {e}: the result has {}", have.join(", ")))
                })
            })
            .collect::<Result<_, _>>()?
    };
    names
        .into_iter()
        .map(|name| {
            Ok(Panel {
                title: name.clone(),
                matrix: matrix(name, &kernels[name])?,
            })
        })
        .collect()
}

/// Whether a JSON value is a square matrix (kernels; mean fields are P×1).
fn is_square(v: &Value) -> bool {
    v.as_array().is_some_and(|rows| {
        rows.iter()
            .all(|r| r.as_array().is_some_and(|r| r.len() == rows.len()))
    })
}

/// Patterns ordered by class: the sign of a one-column Y (+1 first), else its largest column.
pub(crate) fn class_order(y: &Array2<f64>, patterns: usize) -> Result<Vec<usize>, CliError> {
    if y.nrows() != patterns {
        return Err(CliError::Usage(format!(
            "--labels has {} rows, the kernels {patterns} patterns",
            y.nrows()
        )));
    }
    let class = |a: usize| -> usize {
        let row = y.row(a);
        if row.len() == 1 {
            usize::from(row[0] < 0.0)
        } else {
            row.iter()
                .enumerate()
                .max_by(|x, z| x.1.total_cmp(z.1))
                .map_or(0, |(i, _)| i)
        }
    };
    let mut order: Vec<usize> = (0..patterns).collect();
    order.sort_by_key(|&a| class(a));
    Ok(order)
}
