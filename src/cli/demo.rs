//! `saddle demo`: NNGP classification of real MNIST digits, 0 vs 3, with deep erf and ReLU
//! networks of several depths (THEORY.md §9 E3, Lee et al. 2018): test accuracy and MSE per
//! depth; `saddle demo feature-learning`: the MAP kernels at finite width N on the same
//! digits ([`crate::finite_width`]) — test error, ln p(Y|X) and kernel–target alignment per
//! layer against N, beside the NNGP.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use crate::data::mnist::Mnist;
use crate::plot::{Curve, CurveFigure, Heatmap, Marker, Panel};
use crate::solve::nngp::NngpSettings;
use crate::solve::predict::nngp_predict;

/// The bundled demos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Demo {
    /// MNIST 0 vs 3: NNGP test accuracy of deep erf and ReLU networks against depth.
    Mnist,
    /// MNIST 0 vs 3 at finite width: MAP kernels of deep erf and ReLU networks (L = 2)
    /// against the width N — test error, ln p(Y|X), alignment with YYᵀ per layer.
    FeatureLearning,
}

/// Arguments of `saddle demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which demo.
    #[arg(value_enum, default_value = "mnist")]
    pub name: Demo,
    /// Training patterns (balanced between the two digits; default 1000, feature-learning 100).
    #[arg(long)]
    pub train: Option<usize>,
    /// Test patterns (balanced; default 1000, feature-learning 400).
    #[arg(long)]
    pub test: Option<usize>,
    /// Folder for the figures (SVG and PNG) and their specs (JSON, `saddle plot` redraws them).
    #[arg(long, default_value = "saddle-demo")]
    pub out: PathBuf,
}

/// One row of the depth table: network, depth, accuracy, MSE, ln p(Y|X), seconds.
type DepthRow = (&'static str, usize, f64, f64, f64, f64);

/// One solved width: network, N, MSE, ln p(Y|X).
type WidthPoint<'a> = (&'a str, f64, f64, f64);

/// Writes a curve figure as SVG, PNG and its JSON spec; returns the PNG's path.
fn write_curves(dir: &Path, stem: &str, figure: &CurveFigure) -> Result<PathBuf, CliError> {
    let spec = serde_json::to_string_pretty(figure)
        .map_err(|e| CliError::Usage(format!("the figure spec of {stem}: {e}")))?;
    let json = dir.join(format!("{stem}.json"));
    std::fs::write(&json, spec).map_err(|source| CliError::Io {
        action: "write",
        path: json,
        source,
    })?;
    for ext in ["svg", "png"] {
        figure
            .render(&dir.join(format!("{stem}.{ext}")))
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    Ok(dir.join(format!("{stem}.png")))
}

/// Writes a heatmap as SVG and PNG; returns the PNG's path.
fn write_heatmap(dir: &Path, stem: &str, figure: &Heatmap) -> Result<PathBuf, CliError> {
    for ext in ["svg", "png"] {
        figure
            .render(&dir.join(format!("{stem}.{ext}")))
            .map_err(|e| CliError::Usage(e.to_string()))?;
    }
    Ok(dir.join(format!("{stem}.png")))
}

/// Creates the output folder.
fn create_dir(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
        action: "write",
        path: dir.to_path_buf(),
        source,
    })
}

/// One series per network from rows (network, x, y).
fn series(rows: &[(&str, f64, f64)], marker: Marker) -> Vec<Curve> {
    let mut names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let mine: Vec<&(&str, f64, f64)> = rows.iter().filter(|r| r.0 == name).collect();
            Curve {
                label: name.replace('_', " "),
                x: mine.iter().map(|r| r.1).collect(),
                y: mine.iter().map(|r| r.2).collect(),
                error: None,
                marker,
                colour: None,
            }
        })
        .collect()
}

/// The first (at most) `n` training patterns, ordered by class.
fn sorted_subset(y: &ndarray::Array2<f64>, n: usize) -> Vec<usize> {
    let n = n.min(y.nrows());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&a| usize::from(y[[a, 0]] < 0.0));
    order
}

const DEEP_ERF: &str = include_str!("../../examples/deep_erf.action");
const DEEP_RELU: &str = include_str!("../../examples/deep_relu.action");
const DEPTHS: [usize; 5] = [1, 2, 4, 8, 16];

/// Runs the demo and prints the table.
pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    if args.name == Demo::FeatureLearning {
        return feature_learning(args);
    }
    let mnist = Mnist::load_bundled()
        .map_err(|e| CliError::Usage(format!("the bundled MNIST data: {e}")))?;
    let split = mnist
        .two_class(0, 3, args.train.unwrap_or(1000), args.test.unwrap_or(1000))
        .and_then(|s| s.standardised())
        .map_err(|e| CliError::Usage(format!("MNIST 0 vs 3: {e}")))?;
    let models = [("deep_erf", DEEP_ERF), ("deep_relu", DEEP_RELU)];
    let theories = models
        .iter()
        .map(|(name, src)| {
            crate::compile(src, &format!("examples/{name}.action")).map(|t| (*name, t))
        })
        .collect::<Result<Vec<_>, _>>()?;
    outln!(
        "MNIST 0 vs 3 (bundled digits): {} training and {} test patterns, d = {}, inputs standardised per pattern, targets ±1",
        split.x_train.nrows(),
        split.x_test.nrows(),
        split.x_train.ncols()
    );
    let bar = ProgressBar::new((theories.len() * DEPTHS.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows: Vec<DepthRow> = Vec::new();
    for (name, theory) in &theories {
        for &depth in &DEPTHS {
            bar.set_message(format!("{name}, L = {depth}"));
            let settings = NngpSettings {
                overrides: vec![("L".into(), depth as f64)],
                ..NngpSettings::default()
            };
            let started = Instant::now();
            let result = nngp_predict(
                theory,
                split.x_train.view(),
                split.y_train.view(),
                split.x_test.view(),
                Some(split.y_test.view()),
                &settings,
            )
            .map_err(|e| CliError::Usage(format!("{name} at depth {depth}: {e}")))?;
            let seconds = started.elapsed().as_secs_f64();
            let metrics = result
                .gp
                .metrics
                .ok_or_else(|| CliError::Usage("no test metrics".into()))?;
            rows.push((
                *name,
                depth,
                metrics.accuracy,
                metrics.mse,
                result.gp.log_marginal_likelihood,
                seconds,
            ));
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    outln!();
    outln!(
        "{:<10} {:>5} {:>14} {:>10} {:>16} {:>8}",
        "network",
        "depth",
        "test accuracy",
        "test MSE",
        "ln p(Y|X)",
        "time/s"
    );
    for &(name, depth, accuracy, mse, lml, seconds) in &rows {
        outln!(
            "{name:<10} {depth:>5} {:>13.2}% {mse:>10.4} {lml:>16.2} {seconds:>8.2}",
            100.0 * accuracy
        );
    }
    outln!();
    outln!(
        "parameters: the examples' defaults (erf: g = 1.5, gb = 0.1; ReLU: g = 2, gb = 0.1; g0 = 1, gb0 = 0.1, kappa = 0.1)"
    );

    // figures
    let dir = &args.out;
    create_dir(dir)?;
    let pick = |f: fn(&DepthRow) -> f64| -> Vec<(&str, f64, f64)> {
        rows.iter().map(|r| (r.0, r.1 as f64, f(r))).collect()
    };
    let data = format!(
        "MNIST 0 vs 3, P = {}, {} test",
        split.x_train.nrows(),
        split.x_test.nrows()
    );
    let mut written = Vec::new();
    for (stem, y_label, values, what) in [
        (
            "nngp_accuracy_vs_depth",
            "test accuracy",
            pick(|r| r.2),
            "test accuracy",
        ),
        (
            "nngp_mse_vs_depth",
            "test MSE per pattern",
            pick(|r| r.3),
            "test MSE",
        ),
        (
            "nngp_lnp_vs_depth",
            "ln p(Y|X)",
            pick(|r| r.4),
            "log marginal likelihood",
        ),
    ] {
        let figure = CurveFigure {
            title: format!("NNGP {what} against depth ({data})"),
            x_label: "depth L (hidden layers)".into(),
            y_label: y_label.into(),
            log_x: true,
            curves: series(&values, Marker::LinePoints),
        };
        written.push((
            write_curves(dir, stem, &figure)?,
            format!("NNGP {what} against depth L, erf and ReLU"),
        ));
    }
    // the readout kernel of the erf network at three depths, on up to 200 training digits
    let show = sorted_subset(&split.y_train, 200);
    let x_shown = split.x_train.select(ndarray::Axis(0), &show);
    let depths = [1_i64, 4, 16];
    let (_, erf) = &theories[0];
    let settings = NngpSettings {
        overrides: vec![("L".into(), 16.0)],
        keep: crate::solve::nngp::Keep::Only(depths.iter().map(|&l| (0, vec![l])).collect()),
        ..NngpSettings::default()
    };
    let kernels = crate::solve::nngp::nngp_kernels(erf, x_shown.view(), None, &settings)
        .map_err(|e| CliError::Usage(format!("deep_erf kernels: {e}")))?;
    let panels = depths
        .iter()
        .filter_map(|&l| {
            kernels.entries.get(&(0, vec![l])).map(|m| Panel {
                title: format!("C[{l}], depth L = {l}"),
                matrix: m.clone(),
            })
        })
        .collect();
    let heatmap = Heatmap {
        title: format!(
            "deep erf NNGP kernels on {} training digits (0s, then 3s)",
            show.len()
        ),
        panels,
        order: None,
    };
    written.push((
        write_heatmap(dir, "nngp_kernels_erf", &heatmap)?,
        "deep erf NNGP kernel at L = 1, 4, 16, digits sorted by class: the class structure fades with depth".into(),
    ));
    print_figures(dir, &written);
    Ok(())
}

/// The closing list of figures, a line each.
fn print_figures(dir: &Path, written: &[(PathBuf, String)]) {
    outln!();
    outln!(
        "figures in {} (each as .svg and .png; curve specs as .json for `saddle plot`):",
        dir.display()
    );
    for (path, what) in written {
        let stem = path
            .file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned());
        outln!("  {stem:<28} {what}");
    }
}

/// Widths of the feature-learning demo.
const WIDTHS: [f64; 5] = [50.0, 100.0, 200.0, 500.0, 1000.0];

/// The MAP kernels at finite width on MNIST 0 vs 3 against N.
fn feature_learning(args: &DemoArgs) -> Result<(), CliError> {
    use crate::finite_width::{MapSettings, map_kernels};
    let mnist = Mnist::load_bundled()
        .map_err(|e| CliError::Usage(format!("the bundled MNIST data: {e}")))?;
    let split = mnist
        .two_class(0, 3, args.train.unwrap_or(100), args.test.unwrap_or(400))
        .and_then(|s| s.standardised())
        .map_err(|e| CliError::Usage(format!("MNIST 0 vs 3: {e}")))?;
    let models = [("deep_erf", DEEP_ERF), ("deep_relu", DEEP_RELU)];
    let samples = 10_000;
    outln!(
        "MNIST 0 vs 3 (bundled digits): {} training and {} test patterns, d = {}; MAP kernels \
         of L = 2 networks at finite width N by forward–backward sweeps, {samples} importance \
         samples per layer (no replicas here: `saddle solve --method map` reports standard errors)",
        split.x_train.nrows(),
        split.x_test.nrows(),
        split.x_train.ncols()
    );
    let bar = ProgressBar::new((models.len() * WIDTHS.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut lines = Vec::new();
    // (network, N, MSE, ln p) per solved width; (network, MSE, ln p) of the NNGP
    let mut points: Vec<(&str, f64, f64, f64)> = Vec::new();
    let mut nngp_points: Vec<(&str, f64, f64)> = Vec::new();
    let mut kernel_panels: Option<(f64, Vec<Panel>)> = None;
    for (name, source) in models {
        let theory = crate::compile(source, &format!("examples/{name}.action"))?;
        let mut nngp_row = None;
        for &n in &WIDTHS {
            bar.set_message(format!("{name}, N = {n}"));
            let settings = MapSettings {
                overrides: vec![("L".into(), 2.0), ("N".into(), n)],
                samples,
                replicas: 0,
                ..MapSettings::default()
            };
            let started = Instant::now();
            let result = map_kernels(
                &theory,
                split.x_train.view(),
                split.y_train.view(),
                Some(split.x_test.view()),
                &settings,
            );
            let seconds = started.elapsed().as_secs_f64();
            bar.inc(1);
            let solution = match result {
                Ok(s) => s,
                Err(e) => {
                    lines.push(format!("{name:<10} {n:>6} not solved: {e}"));
                    continue;
                }
            };
            let Some(prediction) = &solution.prediction else {
                continue;
            };
            let (map_scores, nngp_scores) = prediction
                .metrics(split.y_test.view())
                .map_err(|e| CliError::Usage(format!("{name} at N = {n}: {e}")))?;
            let alignments =
                |pick: &dyn Fn(&crate::finite_width::map::MapLayer) -> &ndarray::Array2<f64>| {
                    solution
                        .layers
                        .iter()
                        .map(|l| {
                            super::finite_width::alignment(pick(l), split.y_train.view())
                                .map_or("—".to_string(), |a| format!("{a:.4}"))
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                };
            points.push((name, n, map_scores.mse, prediction.log_marginal_likelihood));
            if kernel_panels.is_none()
                && let Some(last) = solution.layers.last()
            {
                // the training block (the layers also carry the test rows)
                let p = split.x_train.nrows();
                let train = |m: &ndarray::Array2<f64>| m.slice(ndarray::s![..p, ..p]).to_owned();
                kernel_panels = Some((
                    n,
                    vec![
                        Panel {
                            title: format!("{}, NNGP (N = ∞)", last.name),
                            matrix: train(&last.nngp),
                        },
                        Panel {
                            title: format!("{}, MAP, N = {n}", last.name),
                            matrix: train(&last.kernel),
                        },
                    ],
                ));
            }
            lines.push(format!(
                "{name:<10} {n:>6} {:>13.2}% {:>10.5} {:>12.2} {:>16} {seconds:>7.1}",
                100.0 * map_scores.accuracy,
                map_scores.mse,
                prediction.log_marginal_likelihood,
                alignments(&|l| &l.kernel)
            ));
            if nngp_row.is_none() {
                nngp_points.push((
                    name,
                    nngp_scores.mse,
                    prediction.nngp_log_marginal_likelihood,
                ));
                nngp_row = Some(format!(
                    "{name:<10} {:>6} {:>13.2}% {:>10.5} {:>12.2} {:>16} {:>7}",
                    "∞",
                    100.0 * nngp_scores.accuracy,
                    nngp_scores.mse,
                    prediction.nngp_log_marginal_likelihood,
                    alignments(&|l| &l.nngp),
                    "—"
                ));
            }
        }
        lines.extend(nngp_row);
    }
    bar.finish_and_clear();
    outln!();
    outln!(
        "{:<10} {:>6} {:>14} {:>10} {:>12} {:>16} {:>7}",
        "network",
        "N",
        "test accuracy",
        "test MSE",
        "ln p(Y|X)",
        "alignment l=1 2",
        "time/s"
    );
    for line in lines {
        outln!("{line}");
    }
    outln!();
    outln!(
        "alignment: ⟨K, YYᵀ⟩/(‖K‖‖YYᵀ‖) of each layer's kernel on the training patterns; \
         N = ∞ is the NNGP. Parameters: the examples' defaults (kappa = 0.1)."
    );

    // figures
    let dir = &args.out;
    create_dir(dir)?;
    let data = format!(
        "MNIST 0 vs 3, P = {}, {} test",
        split.x_train.nrows(),
        split.x_test.nrows()
    );
    let (w0, w1) = (WIDTHS[0], WIDTHS[WIDTHS.len() - 1]);
    let mut written = Vec::new();
    for (stem, y_label, what, pick, nngp_pick) in [
        (
            "map_mse_vs_width",
            "test MSE per pattern",
            "test MSE",
            (|p: &WidthPoint| p.2) as fn(&WidthPoint) -> f64,
            (|p: &(&str, f64, f64)| p.1) as fn(&(&str, f64, f64)) -> f64,
        ),
        (
            "map_lnp_vs_width",
            "ln p(Y|X)",
            "log marginal likelihood",
            |p| p.3,
            |p| p.2,
        ),
    ] {
        let rows: Vec<(&str, f64, f64)> = points.iter().map(|p| (p.0, p.1, pick(p))).collect();
        let mut curves: Vec<Curve> = series(&rows, Marker::LinePoints)
            .into_iter()
            .map(|mut c| {
                c.label = format!("{}, MAP at width N", c.label);
                c
            })
            .collect();
        for (i, c) in curves.iter_mut().enumerate() {
            c.colour = Some(i);
        }
        // each network's NNGP in the colour of its MAP curve
        let mut names: Vec<&str> = points.iter().map(|q| q.0).collect();
        names.dedup();
        for p in &nngp_points {
            curves.push(Curve {
                label: format!("{}, NNGP (N = ∞)", p.0.replace('_', " ")),
                x: vec![w0, w1],
                y: vec![nngp_pick(p); 2],
                error: None,
                marker: Marker::Dashed,
                colour: names.iter().position(|n| *n == p.0),
            });
        }
        let figure = CurveFigure {
            title: format!("{what} against width, L = 2 ({data})"),
            x_label: "width N".into(),
            y_label: y_label.into(),
            log_x: true,
            curves,
        };
        written.push((
            write_curves(dir, stem, &figure)?,
            format!("MAP {what} against width N, the NNGP as horizontal lines"),
        ));
    }
    if let Some((n, panels)) = kernel_panels {
        let heatmap = Heatmap {
            title: format!("deep erf, L = 2: readout kernel on the training digits, N = {n}"),
            panels,
            order: Some(sorted_subset(&split.y_train, split.y_train.nrows())),
        };
        written.push((
            write_heatmap(dir, "map_kernels_erf", &heatmap)?,
            format!("deep erf readout kernel, NNGP beside the MAP at N = {n}, digits sorted by class: the class blocks sharpen"),
        ));
    }
    print_figures(dir, &written);
    Ok(())
}
