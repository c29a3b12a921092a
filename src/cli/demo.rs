//! `saddle demo`: NNGP classification of real MNIST digits, 0 vs 3, with deep erf and ReLU
//! networks of several depths (THEORY.md §9 E3, Lee et al. 2018): test accuracy and MSE per
//! depth.

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
}

/// Arguments of `saddle demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which demo (there is one so far).
    #[arg(value_enum, default_value = "mnist")]
    pub name: Demo,
    /// Training patterns (balanced between the two digits).
    #[arg(long, default_value_t = 1000)]
    pub train: usize,
    /// Test patterns (balanced).
    #[arg(long, default_value_t = 1000)]
    pub test: usize,
}

const DEEP_ERF: &str = include_str!("../../examples/deep_erf.action");
const DEEP_RELU: &str = include_str!("../../examples/deep_relu.action");
const DEPTHS: [usize; 5] = [1, 2, 4, 8, 16];

/// Runs the demo and prints the table.
pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    let Demo::Mnist = args.name;
    let mnist = Mnist::load_bundled()
        .map_err(|e| CliError::Usage(format!("the bundled MNIST data: {e}")))?;
    let split = mnist
        .two_class(0, 3, args.train, args.test)
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
