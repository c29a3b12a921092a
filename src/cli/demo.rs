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
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len}  {per_sec}  {elapsed_precise} (eta {eta})  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
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

/// NNGP accuracy, MSE and ln p(Y|X) of erf and ReLU networks against depth.
fn depth_scan(args: &DemoArgs) -> Result<Written, CliError> {
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

/// Widths of the simulation part.
const SIMULATED_WIDTHS: [f64; 4] = [50.0, 100.0, 200.0, 400.0];

/// The finite networks themselves against the theory: at each width N, the posterior of a
/// deep erf network (L = 2) given the training digits, sampled exactly (elliptical slice
/// sampling), beside the MAP kernel and the NNGP. The statistic is the readout kernel's
/// target-weighted off-diagonal mean K̄_y = Σ_{α≠β} y_α y_β K_αβ / (P(P−1)) (same-class
/// entries minus cross-class ones), which feature learning raises by O(1/N); N·(K̄_y − K̄_y^NNGP)
/// is compared, in standard errors.
fn simulation(args: &DemoArgs) -> Result<Written, CliError> {
    use crate::finite_width::{MapSettings, map_kernels};
    use crate::simulate::posterior::{
        PosteriorSettings, Targets, sample_posterior, target_weighted_off_diagonal,
    };
    use crate::simulate::{Network, Simulator};
    let mnist = Mnist::load_bundled()
        .map_err(|e| CliError::Usage(format!("the bundled MNIST data: {e}")))?;
    let train = args.train.map_or(40, |t| t.min(100));
    let split = mnist
        .two_class(0, 3, train, 2)
        .and_then(|s| s.standardised())
        .map_err(|e| CliError::Usage(format!("MNIST 0 vs 3: {e}")))?;
    let (x, y) = (&split.x_train, &split.y_train);
    let theory = crate::compile(DEEP_ERF, "examples/deep_erf.action")?;
    let settings = PosteriorSettings {
        chains: 4,
        samples: 1500,
        burn_in: 1000,
        thin: 1,
        seed: 0,
    };
    let map_samples = 20_000;
    outln!(
        "MNIST 0 vs 3: {} training digits, deep erf with L = 2 at width N. The network: its \
         posterior given the targets, {} chains × {} draws (burn-in {}) of elliptical slice \
         sampling. The theory: the MAP kernels ({} importance samples per layer) and the NNGP.",
        x.nrows(),
        settings.chains,
        settings.samples,
        settings.burn_in,
        map_samples
    );
    let products = y.dot(&y.t());
    let statistic = |k: &ndarray::Array2<f64>| {
        let p = x.nrows();
        target_weighted_off_diagonal(k.slice(ndarray::s![..p, ..p]), products.view())
    };
    // the same statistic's Monte Carlo error from per-entry errors: Σ|w|·s.e. bounds the
    // error of a weighted sum whatever the correlations
    let bound = |e: &ndarray::Array2<f64>| {
        let p = x.nrows();
        let block = e.slice(ndarray::s![..p, ..p]);
        target_weighted_off_diagonal(block, products.mapv(f64::abs).view())
    };
    let bar = progress_bar(SIMULATED_WIDTHS.len() as u64);
    let readout = "C[2] target-weighted off-diagonal";
    // (N, simulated N·δ and its s.e., ESS, R-hat, MAP N·δ and its bound)
    let mut rows: Vec<(f64, f64, f64, f64, f64, f64, f64)> = Vec::new();
    let mut nngp_value = None;
    for &n in &SIMULATED_WIDTHS {
        bar.set_message(format!("N = {n}"));
        let overrides = vec![("L".to_string(), 2.0), ("N".to_string(), n)];
        let params = crate::solve::nngp::parameter_values(&theory, &overrides)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let network = Network::new(&theory, &params).map_err(|e| CliError::Usage(e.to_string()))?;
        let simulator =
            Simulator::new(&network, x.view()).map_err(|e| CliError::Usage(e.to_string()))?;
        let posterior = sample_posterior(&simulator, Targets { y: y.view() }, settings, &|_| {})
            .map_err(|e| CliError::Usage(format!("simulating N = {n}: {e}")))?;
        let summary = posterior
            .summaries
            .iter()
            .find(|(name, _)| name == readout)
            .map(|(_, s)| *s)
            .ok_or_else(|| CliError::Usage(format!("no `{readout}` trace")))?;
        let map = map_kernels(
            &theory,
            x.view(),
            y.view(),
            None,
            &MapSettings {
                overrides,
                samples: map_samples,
                ..MapSettings::default()
            },
        )
        .map_err(|e| CliError::Usage(format!("the MAP at N = {n}: {e}")))?;
        let last = map
            .layers
            .last()
            .ok_or_else(|| CliError::Usage("the MAP has no layers".into()))?;
        let reference = statistic(&last.nngp);
        nngp_value = Some(reference);
        let map_error = last.kernel_error.as_ref().map_or(0.0, &bound);
        rows.push((
            n,
            n * (summary.mean - reference),
            n * summary.std_error,
            summary.ess,
            summary.rhat,
            n * (statistic(&last.kernel) - reference),
            n * map_error,
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let nngp_value = nngp_value.unwrap_or(f64::NAN);
    outln!();
    outln!(
        "{:>6} {:>22} {:>7} {:>6} {:>20} {:>10}",
        "N",
        "network N·δK̄_y ± s.e.",
        "ESS",
        "R-hat",
        "MAP N·δK̄_y (±≤)",
        "apart"
    );
    for &(n, sim, se, ess, rhat, map, map_bound) in &rows {
        let apart = (sim - map) / (se * se + map_bound * map_bound).sqrt();
        outln!(
            "{n:>6} {:>22} {ess:>7.0} {rhat:>6.3} {:>20} {:>9.1}σ",
            format!("{sim:.4} ± {se:.4}"),
            format!("{map:.4} (±{map_bound:.4})"),
            apart
        );
    }
    outln!();
    outln!(
        "K̄_y: the readout kernel's off-diagonal entries weighted by y_α·y_β (same class minus \
         cross class); NNGP value K̄_y* = {nngp_value:.6}; δK̄_y = K̄_y − K̄_y*. Both network and \
         MAP learn features (δK̄_y > 0, scaling as 1/N); the MAP leaves out the prior's one-loop \
         shift, of the same order (THEORY.md §4.5), so the two need not agree to the last \
         standard error. 'apart': (network − MAP) in combined standard errors (the MAP's a \
         bound)."
    );
    let figure = CurveFigure {
        title: format!(
            "network vs theory, deep erf L = 2, {} MNIST digits: Ky = mean of yα yβ Kαβ, α ≠ β",
            x.nrows()
        ),
        x_label: "width N".into(),
        y_label: "N·(Ky − Ky of the NNGP), readout kernel".into(),
        log_x: true,
        curves: vec![
            Curve {
                label: "finite network, posterior (± s.e.)".into(),
                x: rows.iter().map(|r| r.0).collect(),
                y: rows.iter().map(|r| r.1).collect(),
                error: Some(rows.iter().map(|r| r.2).collect()),
                marker: Marker::Points,
                colour: Some(0),
            },
            Curve {
                label: "MAP kernel (theory)".into(),
                x: rows.iter().map(|r| r.0).collect(),
                y: rows.iter().map(|r| r.5).collect(),
                error: None,
                marker: Marker::LinePoints,
                colour: Some(1),
            },
            Curve {
                label: "NNGP (N = ∞)".into(),
                x: vec![
                    SIMULATED_WIDTHS[0],
                    SIMULATED_WIDTHS[SIMULATED_WIDTHS.len() - 1],
                ],
                y: vec![0.0, 0.0],
                error: None,
                marker: Marker::Dashed,
                colour: Some(7),
            },
        ],
    };
    Ok(vec![(
        write_curves(&args.out, "network_vs_theory", &figure)?,
        "the simulated network's feature learning (points ± s.e.) against the MAP theory and the NNGP, across N".into(),
    )])
}

/// Widths of the feature-learning demo.
const WIDTHS: [f64; 5] = [50.0, 100.0, 200.0, 500.0, 1000.0];

/// The MAP kernels at finite width on MNIST 0 vs 3 against N.
fn feature_learning(args: &DemoArgs) -> Result<Written, CliError> {
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
