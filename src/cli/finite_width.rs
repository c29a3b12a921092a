//! `saddle solve --method map|posterior|linear`: the kernels of every layer at finite width N
//! — the full saddle point ([`crate::solve::saddle_point`], [`crate::finite_width::map`]), the
//! posterior mean MAP + m/N ([`crate::finite_width::posterior`]) or the linearised
//! fluctuation system around the NNGP point ([`crate::solve::fluctuation`]); for a recurrent
//! theory the MAP and the linear system over time ([`crate::finite_width::recurrent`]).
//!
//! One concept, one file: the finite-width path of `solve` — settings, checks, runs and reports
//! of map, posterior and linear.

use ndarray::{Array2, ArrayView2};
use serde_json::{Value, json};

use super::CliError;
use super::options::params_json;
use super::result::RunResult;
use super::solve_args::{Expectations, Iterate, LinearOrder, Method, SolveArgs};
use crate::check::ir::Theory;
use crate::finite_width::recurrent::{RecurrentMethod, recurrent_kernels};
use crate::finite_width::{MapSettings, SaddleIteration, linear_kernels, map_kernels};
use crate::numeric::action::ActionError;
use crate::solve::fluctuation::{FluctuationSettings, Order, linear_response};
use crate::solve::nngp::parameter_values;
use crate::solve::saddle_point::{SaddleSettings, saddle_point};
use crate::syntax::{Diagnostic, Diagnostics};

/// What every finite-width method needs of the parameters, checked before solving so the
/// error names the parameter and its value: a positive, finite width `N` (the theory's
/// width parameter, when it has one) and a readout noise κ ≥ 0 (the identity part of the
/// data term's `inv(K + κ·I)`, as `nngp` requires).
fn check_finite_width_setting(
    theory: &Theory,
    params: &[f64],
    x: ArrayView2<f64>,
    overrides: &[(String, f64)],
) -> Result<f64, CliError> {
    if let Some(id) = theory.param("N")
        && (params[id].is_nan() || params[id] <= 0.0)
    {
        return Err(CliError::Usage(format!(
            "parameter `N` = {}: the width must be positive (the finite-width terms divide by it)",
            params[id]
        )));
    }
    let settings = crate::solve::nngp::NngpSettings {
        overrides: overrides.to_vec(),
        ..crate::solve::nngp::NngpSettings::default()
    };
    let (noise, names) = crate::solve::predict::readout_noise(theory, x, &settings)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if !(noise.is_finite() && noise >= 0.0) {
        let from = if names.is_empty() {
            "constants".to_string()
        } else {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(CliError::Usage(format!(
            "the readout noise κ = {noise} (the identity part of the data term's \
             `inv(K + κ·I)`, from {from}) must be finite and ≥ 0"
        )));
    }
    Ok(noise)
}

/// `--plot`: the last layer's NNGP beside its finite-width kernel on the training patterns,
/// sorted by class.
fn plot_last_layer(
    theory: &Theory,
    layers: &[LayerOut],
    method: &str,
    width: Option<f64>,
    patterns: usize,
    y: ArrayView2<f64>,
    figure: &std::path::Path,
) -> Result<(), CliError> {
    let Some(last) = layers.last() else {
        return Err(CliError::Usage("--plot: no layer to draw".into()));
    };
    let train = |m: &ndarray::Array2<f64>| m.slice(ndarray::s![..patterns, ..patterns]).to_owned();
    let at = width.map_or(String::new(), |n| format!(", N = {n}"));
    crate::plot::Heatmap {
        title: format!("{}: {}, patterns sorted by class", theory.name, last.name),
        panels: vec![
            crate::plot::Panel {
                title: "NNGP (N = ∞)".into(),
                matrix: train(&last.nngp),
            },
            crate::plot::Panel {
                title: format!("{method}{at}"),
                matrix: train(&last.kernel),
            },
        ],
        order: Some(super::plot::class_order(&y.to_owned(), patterns)?),
    }
    .render(figure)
    .map_err(|e| CliError::Usage(e.to_string()))
}

/// One layer's result, whichever method produced it.
struct LayerOut {
    name: String,
    conjugate_name: String,
    nngp: Array2<f64>,
    kernel: Array2<f64>,
    conjugate: Array2<f64>,
    /// Monte Carlo standard errors of `kernel` and `conjugate` (sampled expectations).
    errors: Option<(Array2<f64>, Array2<f64>)>,
    /// `--method posterior`: the MAP (`kernel` is MAP + m/N) and the shift m.
    posterior: Option<(Array2<f64>, Array2<f64>)>,
}

/// Solves at finite width and reports (`map`: full saddle point; otherwise the linear system).
pub fn run(
    theory: &Theory,
    x: ArrayView2<f64>,
    y: ArrayView2<f64>,
    test: Option<(ArrayView2<f64>, Option<ArrayView2<f64>>)>,
    args: &SolveArgs,
    capture: bool,
) -> Result<Option<RunResult>, CliError> {
    let overrides = args.set.as_slice();
    let posterior = args.method == Method::Posterior;
    let map = args.method == Method::Map || posterior;
    let quadrature = args.quadrature.unwrap_or(64);
    let (json_out, out) = (args.json, args.out.as_deref());
    let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    let params = parameter_values(theory, overrides).map_err(|e| usage(&e))?;
    let noise = check_finite_width_setting(theory, &params, x, overrides)?;
    let solver_error = |e: &(dyn std::error::Error + 'static), file: &std::path::Path| {
        solver_error(e, file, noise)
    };
    let scalable = match args.expectations {
        Expectations::Auto => x.nrows() > 3,
        Expectations::Quadrature => false,
        Expectations::Scalable | Expectations::MonteCarlo => true,
    };
    let recurrent = crate::simulate::recurrent::is_recurrent(theory);
    if recurrent && args.expectations == Expectations::Quadrature {
        return Err(CliError::Usage(
            "--expectations quadrature: a recurrent theory's expectations are over the units' \
             trajectories (T·P dimensions) and are sampled; quadrature is for layered theories \
             with P ≤ 3"
                .into(),
        ));
    }
    let order: Order = args.order.unwrap_or(LinearOrder::Full).into();
    let order_name = match order {
        Order::Full => "full",
        Order::Leading => "leading",
    };
    if test.is_some() && recurrent && !map {
        return Err(CliError::Usage(
            "--x-test: the linearised system of a recurrent theory reports the kernels on the \
             training patterns; `--method map` predicts with the adapted kernels"
                .into(),
        ));
    }
    if args.iterate.is_some() && !(scalable || recurrent) {
        return Err(CliError::Usage(
            "--iterate: the quadrature path (P ≤ 3) has its own Newton iteration; \
             `--expectations scalable` iterates the sweeps as asked"
                .into(),
        ));
    }
    if test.is_some() && !(scalable || recurrent) {
        return Err(CliError::Usage(
            "--x-test: the quadrature path (P ≤ 3) reports the kernels on the training \
             patterns only; add `--expectations scalable` to predict with the adapted kernels"
                .into(),
        ));
    }
    if let Some((xt, yt)) = test {
        if xt.ncols() != x.ncols() {
            return Err(CliError::Usage(format!(
                "--x-test has {} features, --x has {}",
                xt.ncols(),
                x.ncols()
            )));
        }
        if let Some(yt) = yt
            && (yt.nrows() != xt.nrows() || yt.ncols() != y.ncols())
        {
            return Err(CliError::Usage(format!(
                "--y-test is {}×{}; it needs one row per test pattern ({}) and {} columns like --y",
                yt.nrows(),
                yt.ncols(),
                xt.nrows(),
                y.ncols()
            )));
        }
    }
    // the one-loop shift is one 2-D integral per pair of patterns (training and test):
    // say what that costs before the spinner hides it
    let patterns = x.nrows() + test.map_or(0, |t| t.0.nrows());
    let pairs = patterns * patterns.saturating_sub(1) / 2;
    if posterior && pairs > 100 && !(json_out || capture) {
        super::emit_error(format_args!(
            "note: --method posterior integrates the prior one-loop shift over {pairs} pattern \
             pairs (seconds each on one core): this takes a while\n"
        ));
    }
    let method = match args.method {
        Method::Posterior => "posterior",
        Method::Map => "map",
        _ => "linear",
    };
    let mut result = RunResult::new("solve", method, &theory.name, params_json(theory, &params));
    // no total is known in advance (the sweeps stop at convergence): a spinner with the time
    let spinner = super::progress::Spinner::new(
        if posterior {
            "solving the saddle point and the prior one-loop shift (posterior-mean kernels)…"
        } else if map {
            "solving the saddle point (MAP kernels)…"
        } else {
            "solving the linearised system…"
        },
        json_out || capture,
    );
    let mut prediction_lines = Vec::new();
    let (layers, width, extra) = if scalable || recurrent {
        let settings = MapSettings {
            overrides: overrides.to_vec(),
            samples: args.samples,
            seed: args.seed,
            force_sampling: args.expectations == Expectations::MonteCarlo,
            posterior_mean: posterior,
            ..MapSettings::default()
        };
        let settings = match args.iterate {
            None | Some(Iterate::Anderson) => settings,
            Some(Iterate::Damped) => MapSettings {
                anderson_memory: 0,
                ..settings
            },
            Some(Iterate::NewtonKrylov) => MapSettings {
                iteration: SaddleIteration::NewtonKrylov,
                ..settings
            },
        };
        let s = if recurrent {
            let method = match (map, order) {
                (true, _) => RecurrentMethod::Map,
                (false, Order::Full) => RecurrentMethod::Linear,
                (false, Order::Leading) => RecurrentMethod::LinearLeading,
            };
            recurrent_kernels(theory, x, y, test.map(|t| t.0), method, &settings)
        } else if map {
            map_kernels(theory, x, y, test.map(|t| t.0), &settings)
        } else {
            linear_kernels(theory, x, y, test.map(|t| t.0), order, &settings)
        }
        .map_err(|e| solver_error(&e, &args.file))?;
        if let Some(p) = &s.prediction {
            let scores = match test {
                Some((_, Some(yt))) => Some(p.metrics(yt).map_err(|e| usage(&e))?),
                _ => None,
            };
            let map_metrics = scores.map(|(m, _)| (m.mse, m.accuracy));
            let nngp_metrics = scores.map(|(_, n)| (n.mse, n.accuracy));
            if test.is_some() {
                result.matrix(&["prediction", "mean"], p.mean.clone());
                result.vector(&["prediction", "variance"], p.variance.clone());
                if let Some(e) = &p.mean_error {
                    result.matrix(&["prediction", "standard_errors", "mean"], e.clone());
                }
                if let Some(e) = &p.variance_error {
                    result.vector(&["prediction", "standard_errors", "variance"], e.clone());
                }
            }
            result.set(
                "log_marginal_likelihood",
                Some(json!(p.log_marginal_likelihood)),
            );
            result.set("test_mse", map_metrics.map(|m| json!(m.0)));
            result.set("test_accuracy", map_metrics.map(|m| json!(m.1)));
            let mut nngp_prediction = json!({
                "log_marginal_likelihood": p.nngp_log_marginal_likelihood,
            });
            if let (Some((mse, accuracy)), Some(object)) =
                (nngp_metrics, nngp_prediction.as_object_mut())
            {
                object.insert("test_mse".into(), json!(mse));
                object.insert("test_accuracy".into(), json!(accuracy));
            }
            result.set("nngp_prediction", Some(nngp_prediction));
            let label = match method {
                "posterior" => "posterior-mean",
                "map" => "MAP",
                _ => "linearised",
            };
            prediction_lines.push(format!(
                "  ln p(Y|X): {label} kernel {:.4}, NNGP {:.4}",
                p.log_marginal_likelihood, p.nngp_log_marginal_likelihood
            ));
            if let (Some(a), Some(b)) = (map_metrics, nngp_metrics) {
                prediction_lines.push(format!(
                    "  test MSE: {label} kernel {:.6}, NNGP {:.6}; accuracy {:.4} vs {:.4} ({} test patterns)",
                    a.0,
                    b.0,
                    a.1,
                    b.1,
                    p.mean.nrows()
                ));
            } else if test.is_some() {
                prediction_lines.push(format!(
                    "  predictions on {} test patterns (--json or --out for the values)",
                    p.mean.nrows()
                ));
            }
        }
        let populations: Vec<Value> = s
            .populations
            .iter()
            .map(|p| {
                let mut population = json!({
                    "term": p.term,
                    "units": p.units,
                    "estimator": p.estimator.describe(),
                });
                // exact measures, and the linear system's untilted one, have no ESS to report
                if let (Some(ess), Some(object)) = (p.effective_samples, population.as_object_mut())
                {
                    object.insert("effective_samples".into(), json!(ess));
                }
                population
            })
            .collect();
        let extra = json!({
            "sweeps": s.sweeps,
            "residual": s.residual,
            "tolerance": s.tolerance,
            "samples": s.samples,
            "replicas": s.replicas,
            "replica_samples": s.replica_samples,
            "seed": args.seed,
            "populations": populations,
        });
        let mut extra = extra;
        if !map && let Some(object) = extra.as_object_mut() {
            object.insert("order".into(), json!(order_name));
        }
        let layers = s
            .layers
            .into_iter()
            .map(|l| LayerOut {
                errors: l.kernel_error.zip(l.conjugate_error),
                posterior: l.map_kernel.zip(l.n_shift),
                name: l.name,
                conjugate_name: l.conjugate_name,
                nngp: l.nngp,
                kernel: l.kernel,
                conjugate: l.conjugate,
            })
            .collect::<Vec<_>>();
        (layers, s.width, extra)
    } else if map {
        let settings = SaddleSettings {
            overrides: overrides.to_vec(),
            quadrature_order: quadrature,
            ..SaddleSettings::default()
        };
        let s = saddle_point(theory, x, Some(y), &settings)
            .map_err(|e| solver_error(&e, &args.file))?;
        let extra = json!({ "iterations": s.iterations, "residual": s.residual });
        // the posterior mean: m/N of the prior one loop on the same patterns, by entry name
        let shifts = if posterior {
            crate::finite_width::posterior::one_loop_shifts(theory, x, overrides)
                .map_err(|e| solver_error(&e, &args.file))?
                .into_values()
                .map(|s| (s.name.clone(), s))
                .collect()
        } else {
            std::collections::BTreeMap::new()
        };
        let layers = s
            .layers
            .into_iter()
            .map(|l| {
                let shifted = shifts
                    .get(&l.name)
                    .and_then(|s| Some((s.added_to(&l.kernel)?, s.n_shift.clone())));
                // the posterior mean as the kernel, the MAP and m beside it
                let (kernel, posterior) = match shifted {
                    Some((mean, n_shift)) => (mean, Some((l.kernel, n_shift))),
                    None => (l.kernel, None),
                };
                LayerOut {
                    kernel,
                    posterior,
                    name: l.name,
                    conjugate_name: l.conjugate_name,
                    nngp: l.nngp,
                    conjugate: l.conjugate,
                    errors: None,
                }
            })
            .collect::<Vec<_>>();
        if posterior && layers.iter().all(|l| l.posterior.is_none()) {
            return Err(CliError::Usage(
                "--method posterior: the prior one-loop shift matched none of the kernels \
                 (their names or shapes differ), so there is no posterior mean to report"
                    .into(),
            ));
        }
        (layers, s.width, extra)
    } else {
        let settings = FluctuationSettings {
            overrides: overrides.to_vec(),
            quadrature_order: quadrature,
            order,
            native: &[],
        };
        let f = linear_response(theory, x, Some(y), &settings)
            .map_err(|e| solver_error(&e, &args.file))?;
        let layers = f
            .layers
            .into_iter()
            .map(|l| LayerOut {
                kernel: &l.nngp + &l.delta,
                name: l.name,
                conjugate_name: l.conjugate_name,
                nngp: l.nngp,
                conjugate: l.conjugate,
                errors: None,
                posterior: None,
            })
            .collect::<Vec<_>>();
        (layers, f.width, json!({ "order": order_name }))
    };
    spinner.done();
    let scaled = |l: &LayerOut| (&l.kernel - &l.nngp) * width.unwrap_or(1.0);
    // the readout is the data term's kernel: the last layer of a layered theory, and for a
    // recurrent one the block (or blocks) it reads
    let readout = if recurrent {
        let settings = crate::solve::nngp::NngpSettings {
            overrides: overrides.to_vec(),
            ..crate::solve::nngp::NngpSettings::default()
        };
        match crate::solve::predict::readout_fields(theory, &settings).as_deref() {
            Ok([key]) => Some(crate::solve::nngp::Kernels::name(theory, key)),
            _ => None,
        }
    } else {
        layers.last().map(|l| l.name.clone())
    };
    result.set("readout", readout.map(|r| json!(r)));
    let mut alignments = serde_json::Map::new();
    for l in &layers {
        result.matrix(&["kernels", &l.name], l.kernel.clone());
        result.matrix(&["conjugates", &l.conjugate_name], l.conjugate.clone());
        result.matrix(&["nngp", &l.name], l.nngp.clone());
        if let Some((k, c)) = &l.errors {
            result.matrix(&["standard_errors", &l.name], k.clone());
            result.matrix(&["standard_errors", &l.conjugate_name], c.clone());
        }
        if let Some((map_kernel, n_shift)) = &l.posterior {
            result.matrix(&["map", &l.name], map_kernel.clone());
            result.matrix(&["one_loop_shift", &l.name], n_shift.clone());
        }
        if let (Some(a), Some(b)) = (alignment(&l.kernel, y), alignment(&l.nngp, y)) {
            alignments.insert(l.name.clone(), json!({ "kernel": a, "nngp": b }));
        }
    }
    if let Value::Object(extra) = &extra {
        for (key, value) in extra {
            let key = if key == "sweeps" { "iterations" } else { key };
            result.set(key, Some(value.clone()));
        }
    }
    result.set("width", width.map(|n| json!(n)));
    if !alignments.is_empty() {
        result.set("alignment", Some(Value::Object(alignments)));
    }
    if capture {
        return Ok(Some(result));
    }
    if let Some(dir) = out {
        result.write_dir(dir)?;
    }
    if let Some(figure) = &args.plot {
        plot_last_layer(theory, &layers, method, width, x.nrows(), y, figure)?;
    }
    if json_out {
        outln!("{}", result.to_json());
        return Ok(None);
    }
    outln!(
        "theory `{}`: {} on {} training patterns{}",
        theory.name,
        if posterior {
            "posterior-mean kernels (MAP + m/N, the prior one-loop shift)"
        } else if map {
            "full saddle point (MAP kernels)"
        } else {
            "linearised fluctuation system around the NNGP point"
        },
        x.nrows(),
        width.map_or(String::new(), |n| format!(", N = {n}"))
    );
    if let (Some(iterations), Some(residual)) =
        (extra["iterations"].as_u64(), extra["residual"].as_f64())
    {
        outln!("  Newton iterations {iterations}, largest |∂S/∂u| {residual:.2e}");
    }
    if let (Some(sweeps), Some(residual)) = (extra["sweeps"].as_u64(), extra["residual"].as_f64()) {
        outln!(
            "  {} {sweeps}, last relative change {residual:.2e} (tolerance {:.0e})",
            if !map {
                "iterations of the linearised system"
            } else if recurrent {
                "iterations over time (fields and conjugates together)"
            } else {
                "forward–backward sweeps"
            },
            extra["tolerance"].as_f64().unwrap_or(f64::NAN)
        );
        for p in extra["populations"].as_array().into_iter().flatten() {
            let ess = p["effective_samples"].as_f64().map_or(String::new(), |e| {
                format!(
                    ", {} samples, effective {e:.0}",
                    extra["samples"].as_u64().unwrap_or(0)
                )
            });
            outln!(
                "  term {} ({} units): {}{ess}",
                p["term"],
                p["units"],
                p["estimator"].as_str().unwrap_or("")
            );
        }
        if let Some(r) = extra["replicas"].as_u64().filter(|r| *r > 0) {
            outln!(
                "  ± one Monte Carlo standard error, from {r} independent replicas of {} samples",
                extra["replica_samples"].as_u64().unwrap_or(0)
            );
        }
    }
    let shift = if width.is_some() {
        "N·(C − C*)"
    } else {
        "C − C*"
    };
    for line in &prediction_lines {
        outln!("{line}");
    }
    for l in &layers {
        let (kernel_error, conjugate_error) = match &l.errors {
            Some((k, c)) => (Some(k * width.unwrap_or(1.0)), Some(c.clone())),
            None => (None, None),
        };
        outln!(
            "  {}: {shift} = {}",
            l.name,
            compact(&scaled(l), kernel_error.as_ref())
        );
        if let Some((map_kernel, n_shift)) = &l.posterior {
            let n = width.unwrap_or(1.0);
            outln!(
                "  {}: of which MAP {shift} = {} and the one-loop shift m = {}",
                l.name,
                compact(&((map_kernel - &l.nngp) * n), kernel_error.as_ref()),
                compact(n_shift, None)
            );
        }
        if let (Some(a), Some(b)) = (alignment(&l.kernel, y), alignment(&l.nngp, y)) {
            outln!("  {}: alignment with YYᵀ {a:.6} (NNGP {b:.6})", l.name);
        }
        outln!(
            "  {} = {}",
            l.conjugate_name,
            compact(&l.conjugate, conjugate_error.as_ref())
        );
    }
    Ok(None)
}

/// Kernel–target alignment ⟨K, YYᵀ⟩ / (‖K‖ ‖YYᵀ‖) on the training block (None for a mean
/// field or a zero kernel).
pub(super) fn alignment(kernel: &Array2<f64>, y: ArrayView2<f64>) -> Option<f64> {
    let t = y.nrows();
    if kernel.ncols() == 1 || kernel.nrows() < t {
        return None;
    }
    let k = kernel.slice(ndarray::s![..t, ..t]);
    let yy = y.dot(&y.t());
    let norm = |m: ndarray::ArrayView2<f64>| m.iter().map(|v| v * v).sum::<f64>().sqrt();
    let denominator = norm(k) * norm(yy.view());
    (denominator > 0.0 && denominator.is_finite()).then(|| (&k * &yy).sum() / denominator)
}

/// `[[a, b], [c, d]]` with 6 significant digits (or the shape, for large P).
fn compact(m: &Array2<f64>, errors: Option<&Array2<f64>>) -> String {
    if m.len() > 36 {
        return format!("{}×{} matrix (use --json or --out)", m.nrows(), m.ncols());
    }
    let rows: Vec<String> = m
        .outer_iter()
        .enumerate()
        .map(|(i, r)| {
            let entries: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(j, v)| match errors {
                    Some(e) => format!("{v:.6} ± {:.6}", e[[i, j]]),
                    None => format!("{v:.6}"),
                })
                .collect();
            format!("[{}]", entries.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// An error of a finite-width solver. One that arose in an expression of the action is shown
/// where that expression is written (file:line:col with a caret), as the checker's are.
fn solver_error(
    error: &(dyn std::error::Error + 'static),
    file: &std::path::Path,
    noise: f64,
) -> CliError {
    let mut message = error.to_string();
    if message.contains("singular") && noise == 0.0 {
        message.push_str(
            "; with readout noise κ = 0 a kernel that is singular on the inputs (duplicate or \
             collinear patterns) has no inverse: set κ > 0 (`--set kappa=…`)",
        );
    }
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(context) = e
            .downcast_ref::<ActionError>()
            .and_then(ActionError::context)
            && let Some(span) = context.span
            // derived expressions carry no source position: those are said in words
            && !span.is_empty()
            && let Ok(source) = super::read_source(file)
            && span.end <= source.len()
        {
            let message = message.replace(&context.to_string(), &context.what);
            let diagnostic =
                Diagnostic::new("saddle::evaluation", message, span, context.what.clone());
            let file_name = super::display_name(file);
            return Diagnostics::new(&file_name, &source, vec![diagnostic]).into();
        }
        cause = e.source();
    }
    CliError::Usage(message)
}
