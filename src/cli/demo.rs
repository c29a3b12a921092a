//! `saddle demo`: NNGP classification of real MNIST digits, 0 vs 3, with deep erf and ReLU
//! networks of several depths (THEORY.md §9 E3, Lee et al. 2018): test accuracy and MSE per
//! depth; `saddle demo feature-learning`: the MAP kernels at finite width N on the same
//! digits ([`crate::finite_width`]) — test error, ln p(Y|X) and kernel–target alignment per
//! layer against N, beside the NNGP.

use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use crate::data::mnist::Mnist;
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
    let mut rows = Vec::new();
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
    for (name, depth, accuracy, mse, lml, seconds) in rows {
        outln!(
            "{name:<10} {depth:>5} {:>13.2}% {mse:>10.4} {lml:>16.2} {seconds:>8.2}",
            100.0 * accuracy
        );
    }
    outln!();
    outln!(
        "parameters: the examples' defaults (erf: g = 1.5, gb = 0.1; ReLU: g = 2, gb = 0.1; g0 = 1, gb0 = 0.1, kappa = 0.1)"
    );
    Ok(())
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
            lines.push(format!(
                "{name:<10} {n:>6} {:>13.2}% {:>10.5} {:>12.2} {:>16} {seconds:>7.1}",
                100.0 * map_scores.accuracy,
                map_scores.mse,
                prediction.log_marginal_likelihood,
                alignments(&|l| &l.kernel)
            ));
            if nngp_row.is_none() {
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
    Ok(())
}
