//! Feature learning in the demo: the MAP kernels at finite width on MNIST 0 vs 3 against N.

use std::time::Instant;

use crate::cli::CliError;
use crate::data::mnist::Mnist;
use crate::plot::{Curve, CurveFigure, Heatmap, Marker, Panel};

use super::*;

/// Widths of the feature-learning demo.
pub(super) const WIDTHS: [f64; 5] = [50.0, 100.0, 200.0, 500.0, 1000.0];

/// The MAP kernels at finite width on MNIST 0 vs 3 against N.
pub(super) fn feature_learning(args: &DemoArgs) -> Result<Written, CliError> {
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
    let bar = progress_bar((models.len() * WIDTHS.len()) as u64);
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
                            crate::cli::finite_width::alignment(pick(l), split.y_train.view())
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
    Ok(written)
}
