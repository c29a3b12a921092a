//! `saddle demo`: NNGP classification of real MNIST digits, 0 vs 3, with deep erf and ReLU
//! networks of several depths (THEORY.md §9 E3, Lee et al. 2018): test accuracy and MSE per
//! depth; `saddle demo feature-learning`: the MAP kernels at finite width N on the same
//! digits ([`crate::finite_width`]) — test error, ln p(Y|X) and kernel–target alignment per
//! layer against N, beside the NNGP.
//!
//! Here: the arguments, the run and the helpers the demos share (figures, progress,
//! series); `depth`, `simulation`, `feature_learning`: one demo each.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::ProgressBar;

use super::CliError;
use super::progress::styled_bar;
use crate::plot::{Curve, CurveFigure, Heatmap, Marker};

mod depth;
mod feature_learning;
mod simulation;
use depth::*;
use feature_learning::*;
use simulation::*;

/// The bundled demos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Demo {
    /// All three parts below, their figures and an HTML report in one folder.
    Tour,
    /// MNIST 0 vs 3: NNGP test accuracy of deep erf and ReLU networks against depth.
    Mnist,
    /// MNIST 0 vs 3 at finite width: MAP kernels of deep erf and ReLU networks (L = 2)
    /// against the width N — test error, ln p(Y|X), alignment with YYᵀ per layer.
    FeatureLearning,
    /// MNIST 0 vs 3: the finite networks themselves (posterior sampling) against the MAP
    /// theory and the NNGP, across widths N.
    Simulation,
}

/// Arguments of `saddle demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which demo.
    #[arg(value_enum, default_value = "tour")]
    pub name: Demo,
    /// Training patterns (balanced between the two digits; default 1000 for the depth scan,
    /// 100 for feature learning, 40 for the simulation).
    #[arg(long)]
    pub train: Option<usize>,
    /// Test patterns (balanced; default 1000, feature learning 400; the simulation uses
    /// none).
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
    crate::data::atomic::write(&json, spec).map_err(|source| CliError::Io {
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

/// A bar with the rate, the elapsed time and the time left, then what is being done.
fn progress_bar(len: u64) -> ProgressBar {
    styled_bar(
        len,
        "{bar:40} {pos}/{len}  {per_sec}  {elapsed_precise} (eta {eta})  {msg}",
        false,
    )
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

const DEEP_ERF: &str = include_str!("../../../examples/deep_erf.action");
const DEEP_RELU: &str = include_str!("../../../examples/deep_relu.action");
const DEPTHS: [usize; 5] = [1, 2, 4, 8, 16];

/// A figure written: its PNG and a line on what it shows.
type Written = Vec<(PathBuf, String)>;

/// Runs the demo (every part for the tour), prints its tables and the figures it wrote.
pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let dir = &args.out;
    create_dir(dir)?;
    super::interrupt::on_interrupt(format!(
        "every file already in {} is whole; run the demo again for the rest",
        dir.display()
    ));
    let mut written = Written::new();
    let parts: &[Demo] = match args.name {
        Demo::Tour => &[Demo::Mnist, Demo::FeatureLearning, Demo::Simulation],
        Demo::Mnist => &[Demo::Mnist],
        Demo::FeatureLearning => &[Demo::FeatureLearning],
        Demo::Simulation => &[Demo::Simulation],
    };
    for (i, part) in parts.iter().enumerate() {
        if parts.len() > 1 {
            outln!();
            outln!(
                "── {}/{}: {} ──",
                i + 1,
                parts.len(),
                match part {
                    Demo::Mnist => "NNGP against depth",
                    Demo::FeatureLearning => "feature learning against width N",
                    _ => "theory against the simulated networks",
                }
            );
        }
        written.extend(match part {
            Demo::Mnist => depth_scan(args)?,
            Demo::FeatureLearning => feature_learning(args)?,
            _ => simulation(args)?,
        });
    }
    print_figures(dir, &written);
    if args.name == Demo::Tour {
        let theory_file = dir.join("deep_erf.action");
        crate::data::atomic::write(&theory_file, DEEP_ERF).map_err(|source| CliError::Io {
            action: "write",
            path: theory_file.clone(),
            source,
        })?;
        let page = super::report::write(&theory_file, Some(dir), &[("L".into(), 2.0)], None, dir)?;
        outln!("report: {}", page.display());
    }
    outln!(
        "done in {} — everything is in {}",
        super::progress::duration(started.elapsed()),
        dir.display()
    );
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
