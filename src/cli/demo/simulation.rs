//! Theory against simulation in the demo: the posterior of finite deep erf networks sampled
//! exactly at several widths, beside the MAP kernel and the NNGP, in standard errors.

use crate::cli::CliError;
use crate::data::mnist::Mnist;
use crate::plot::{Curve, CurveFigure, Marker};

use super::*;

/// Widths of the simulation part.
pub(super) const SIMULATED_WIDTHS: [f64; 4] = [50.0, 100.0, 200.0, 400.0];

/// The finite networks themselves against the theory: at each width N, the posterior of a
/// deep erf network (L = 2) given the training digits, sampled exactly (elliptical slice
/// sampling), beside the MAP kernel and the NNGP. The statistic is the readout kernel's
/// target-weighted off-diagonal mean K̄_y = Σ_{α≠β} y_α y_β K_αβ / (P(P−1)) (same-class
/// entries minus cross-class ones), which feature learning raises by O(1/N); N·(K̄_y − K̄_y^NNGP)
/// is compared, in standard errors.
pub(super) fn simulation(args: &DemoArgs) -> Result<Written, CliError> {
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
