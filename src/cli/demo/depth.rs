//! The depth scan of the demo: NNGP accuracy, test MSE and ln p(Y|X) of deep erf and ReLU
//! networks on the bundled digits against depth (1 to 16), with figures.

use std::time::Instant;

use crate::cli::CliError;
use crate::data::mnist::Mnist;
use crate::plot::{CurveFigure, Heatmap, Marker, Panel};
use crate::solve::nngp::NngpSettings;
use crate::solve::predict::nngp_predict;

use super::*;

/// NNGP accuracy, MSE and ln p(Y|X) of erf and ReLU networks against depth.
pub(super) fn depth_scan(args: &DemoArgs) -> Result<Written, CliError> {
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
    let bar = progress_bar((theories.len() * DEPTHS.len()) as u64);
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
    Ok(written)
}
