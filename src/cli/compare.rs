//! `saddle compare FILE --x X --y Y --set N=…`: theory against the network it describes, on
//! the same data. The simulated posterior mean of every kernel entry (elliptical slice
//! sampling, [`crate::simulate::posterior`]) beside the NNGP, the linearised fluctuation
//! system and the full saddle point (MAP), each as N·(C − C*) and as the number of the
//! simulation's standard errors it lies away from the simulated value. For a recurrent theory
//! the posterior mean less the prior mean against the theories' shift (the recurrent prior
//! mean is itself shifted at O(1/N)).
//!
//! For a layered theory the posterior-mean kernels MAP + m/N (the prior one-loop shift,
//! [`crate::finite_width::posterior`]) stand beside the MAP: up to three patterns always,
//! beyond with `--posterior` (the shift costs seconds per pattern pair).
//!
//! Up to three patterns the layered theories are solved by P-dimensional quadrature and
//! compared entry by entry. Beyond, they are solved by the scalable solvers
//! ([`crate::finite_width`], importance sampled with their own standard errors) and compared
//! per kernel on three statistics whose full traces the sampler keeps (ESS, R-hat): the mean
//! diagonal entry, the mean off-diagonal entry, and the target-weighted off-diagonal entry
//! Σ_{α≠β} y_α·y_β K_αβ / (P(P−1)) (for ±1 targets same class minus cross class) — the one
//! feature learning raises.
//!
//! One concept, one file: the `compare` command — every method on the same data, grouped by
//! entry and printed.

use std::path::PathBuf;

use clap::Args;
use ndarray::Array2;
use serde_json::{Map, Value, json};

use super::CliError;
use super::options::{load, params_json, parse_set, theory};
use super::result::RunResult;
use crate::simulate::posterior::{PosteriorSettings, Targets, sample_posterior};
use crate::simulate::{Network, Simulator};
use crate::solve::fluctuation::{FluctuationSettings, Order, linear_response};
use crate::solve::nngp::parameter_values;
use crate::solve::saddle_point::{SaddleSettings, saddle_point};

/// Arguments of `saddle compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The `.action` file.
    pub file: PathBuf,
    /// Training inputs (P×d; up to 3 patterns a layered theory is solved by quadrature and
    /// compared entry by entry, beyond by importance sampling and compared per statistic).
    #[arg(long = "x", value_name = "X")]
    pub x: PathBuf,
    /// Training targets (P×D).
    #[arg(long = "y", value_name = "Y")]
    pub y: PathBuf,
    /// Override a parameter: `--set N=100`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// Independent chains of the simulation.
    #[arg(long, default_value_t = 4)]
    pub chains: usize,
    /// Draws recorded per chain.
    #[arg(long, default_value_t = 5000)]
    pub samples: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Beyond three patterns, add the posterior-mean kernels MAP + m/N (the prior one-loop
    /// shift, integrated pattern pair by pair: seconds a pair); up to three always.
    #[arg(long)]
    pub posterior: bool,
}

/// One method's kernels by name with their Monte Carlo standard errors (sampled), or why it
/// could not run.
type MethodKernels = Result<Vec<(String, Array2<f64>, Option<Array2<f64>>)>, String>;

/// The per-kernel statistics of the grouped comparison, named as the sampler's traces.
const STATISTICS: [&str; 3] = [
    "mean diagonal",
    "mean off-diagonal",
    "target-weighted off-diagonal",
];

/// Statistic `which` of [`STATISTICS`] of a square block on the training patterns; for a
/// matrix of standard errors the same weights in absolute value (the statistic's error if
/// the entries' errors were perfectly correlated: an upper bound).
fn statistic(which: usize, block: &Array2<f64>, targets: &Array2<f64>, bound: bool) -> f64 {
    use crate::simulate::posterior::{
        diagonal_and_off_diagonal_means, target_weighted_off_diagonal,
    };
    let (diagonal, off) = diagonal_and_off_diagonal_means(block.view());
    match which {
        0 => diagonal,
        1 => off,
        _ if bound => target_weighted_off_diagonal(block.view(), targets.mapv(f64::abs).view()),
        _ => target_weighted_off_diagonal(block.view(), targets.view()),
    }
}

/// Runs the theory and the simulation and prints them side by side.
pub fn run(args: &CompareArgs) -> Result<(), CliError> {
    let theory = theory(&args.file)?;
    let params =
        parameter_values(&theory, &args.set).map_err(|e| CliError::Usage(e.to_string()))?;
    let (x, y) = (load("--x", &args.x)?, load("--y", &args.y)?);
    if y.nrows() != x.nrows() {
        return Err(CliError::Usage(format!(
            "--y has {} rows but --x has {} patterns",
            y.nrows(),
            x.nrows()
        )));
    }
    let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    if crate::simulate::recurrent::is_recurrent(&theory) {
        if args.posterior {
            return Err(CliError::Usage(
                "--posterior: the posterior-mean kernels (MAP + m/N) are built for layered \
                 theories; a recurrent theory's prior one-loop shift is over time"
                    .into(),
            ));
        }
        return run_recurrent(args, &theory, &params, x.view(), y.view());
    }
    let network = Network::new(&theory, &params).map_err(|e| usage(&e))?;
    let simulator = Simulator::new(&network, x.view()).map_err(|e| usage(&e))?;
    let settings = PosteriorSettings {
        chains: args.chains,
        samples: args.samples,
        burn_in: args.samples,
        thin: 1,
        seed: args.seed,
    };
    let bar = super::progress::progress_bar(posterior_steps(&settings), args.json);
    let posterior = sample_posterior(&simulator, Targets { y: y.view() }, settings, &|n| {
        bar.inc(n)
    })
    .map_err(|e| usage(&e))?;
    bar.finish_and_clear();
    let spinner = theory_spinner(args.json);
    // P ≤ 3: exact quadrature, entry by entry; beyond: the scalable solvers, per statistic
    let grouped = x.nrows() > 3;
    let (map, linear): (MethodKernels, MethodKernels) = if grouped {
        use crate::finite_width::{MapSettings, linear_kernels, map_kernels};
        let settings = MapSettings {
            overrides: args.set.clone(),
            // independent of the chains' normals (the seed mixed with THEORY_STREAM)
            seed: args.seed ^ THEORY_STREAM,
            ..MapSettings::default()
        };
        let layers = |s: Result<crate::finite_width::MapSolution, _>| -> MethodKernels {
            s.map(|s| {
                s.layers
                    .into_iter()
                    .map(|l| (l.name, l.kernel, l.kernel_error))
                    .collect()
            })
            .map_err(|e: crate::finite_width::FiniteWidthError| e.to_string())
        };
        (
            layers(map_kernels(&theory, x.view(), y.view(), None, &settings)),
            layers(linear_kernels(
                &theory,
                x.view(),
                y.view(),
                None,
                Order::Full,
                &settings,
            )),
        )
    } else {
        let map = saddle_point(
            &theory,
            x.view(),
            Some(y.view()),
            &SaddleSettings {
                overrides: args.set.clone(),
                ..SaddleSettings::default()
            },
        )
        .map(|s| {
            s.layers
                .into_iter()
                .map(|l| (l.name, l.kernel, None))
                .collect()
        })
        .map_err(|e| e.to_string());
        let linear = linear_response(
            &theory,
            x.view(),
            Some(y.view()),
            &FluctuationSettings {
                overrides: args.set.clone(),
                quadrature_order: 64,
                order: Order::Full,
                native: &[],
            },
        )
        .map(|f| {
            f.layers
                .into_iter()
                .map(|l| (l.name, &l.nngp + &l.delta, None))
                .collect()
        })
        .map_err(|e| e.to_string());
        (map, linear)
    };
    // the posterior mean: the MAP plus the prior one-loop shift m/N, entry by entry
    let shifts = (!grouped || args.posterior).then(|| {
        crate::finite_width::posterior::one_loop_shifts(&theory, x.view(), &args.set)
            .map(|s| s.into_values().collect::<Vec<_>>())
            .map_err(|e| e.to_string())
    });
    let posterior_kernels: MethodKernels = match (&map, &shifts) {
        (_, None) => Err("beyond three patterns it needs `--posterior`".into()),
        (_, Some(Err(e))) => Err(e.clone()),
        (Err(e), _) => Err(e.clone()),
        (Ok(layers), Some(Ok(shifts))) => Ok(layers
            .iter()
            .map(|(name, k, e)| {
                let shifted = shifts
                    .iter()
                    .filter(|s| &s.name == name)
                    .find_map(|s| s.added_to(k))
                    .unwrap_or_else(|| k.clone());
                (name.clone(), shifted, e.clone())
            })
            .collect()),
    };
    spinner.done();
    let nngp = crate::solve::nngp::nngp_kernels(
        &theory,
        x.view(),
        None,
        &crate::solve::nngp::NngpSettings {
            overrides: args.set.clone(),
            outputs: Some(y.ncols()),
            ..Default::default()
        },
    )
    .map_err(|e| usage(&e))?;

    let find =
        |kernels: &MethodKernels, name: &str| -> Option<(Array2<f64>, Option<Array2<f64>>)> {
            kernels
                .as_ref()
                .ok()?
                .iter()
                .find(|(n, ..)| n == name)
                .map(|(_, k, e)| (k.clone(), e.clone()))
        };
    let targets = y.dot(&y.t());
    let mut groups = Vec::new();
    let mut rows = Vec::new();
    let mut result = RunResult::new(
        "compare",
        "compare",
        &theory.name,
        params_json(&theory, &params),
    );
    let mut units = Map::new();
    for (key, stats) in &posterior.entries {
        let name = network.name(key);
        let Some(reference) = nngp.entries.get(key) else {
            continue;
        };
        if reference.ncols() == 1 {
            continue; // mean fields: the finite-width solvers report kernels
        }
        let n = network.units_of(key).unwrap_or(1) as f64;
        let (map_k, linear_k) = (find(&map, &name), find(&linear, &name));
        let posterior_k = find(&posterior_kernels, &name);
        result.matrix(&["kernels", &name], stats.mean.clone());
        result.matrix(&["standard_errors", &name], stats.std_error.clone());
        result.matrix(&["nngp", &name], reference.clone());
        if let Some(Ok(shifts)) = &shifts
            && let Some(s) = shifts.iter().find(|s| s.name == name)
        {
            result.matrix(&["one_loop_shift", &name], s.n_shift.clone());
        }
        for (key, solved) in [
            ("linear", &linear_k),
            ("map", &map_k),
            ("posterior", &posterior_k),
        ] {
            if let Some((k, error)) = solved {
                result.matrix(&[key, &name], k.clone());
                if let Some(e) = error {
                    result.matrix(&[&format!("{key}_standard_errors"), &name], e.clone());
                }
            }
        }
        units.insert(name.clone(), json!(n));
        if grouped {
            for (which, label) in STATISTICS.iter().enumerate() {
                let Some((_, sim)) = posterior
                    .summaries
                    .iter()
                    .find(|(s, _)| *s == format!("{name} {label}"))
                else {
                    continue;
                };
                let star = statistic(which, reference, &targets, false);
                let z = |v: f64, bound: f64| {
                    let combined = sim.std_error.hypot(bound);
                    if combined > 0.0 {
                        (v - sim.mean) / combined
                    } else {
                        0.0
                    }
                };
                let method = |k: &Option<(Array2<f64>, Option<Array2<f64>>)>| {
                    k.as_ref().map(|(k, e)| {
                        let value = statistic(which, k, &targets, false);
                        let bound = e
                            .as_ref()
                            .map_or(0.0, |e| statistic(which, e, &targets, true));
                        (value, bound, z(value, bound))
                    })
                };
                let (lin, mp, post) = (method(&linear_k), method(&map_k), method(&posterior_k));
                let show = |m: Option<(f64, f64, f64)>| {
                    m.map_or("—".to_string(), |(v, _, z)| {
                        format!("{:+.4} ({z:+.1})", n * (v - star))
                    })
                };
                rows.push(format!(
                    "{:<6} {:<14} {:>18} {:>16} {:>16} {:>16} {:>16}",
                    name,
                    ["diagonal", "off-diagonal", "same − cross"][which],
                    format!("{:+.4} ± {:.4}", n * (sim.mean - star), n * sim.std_error),
                    format!("{:+.4} ({:+.1})", 0.0, z(star, 0.0)),
                    show(lin),
                    show(mp),
                    show(post),
                ));
                let pair = |m: Option<(f64, f64, f64)>| {
                    m.map_or(
                        Value::Null,
                        |(v, b, z)| json!({"value": v, "error_bound": b, "z": z}),
                    )
                };
                groups.push(json!({
                    "kernel": name,
                    "statistic": label,
                    "simulation": sim.mean,
                    "standard_error": sim.std_error,
                    "ess": sim.ess,
                    "rhat": sim.rhat,
                    "nngp": star,
                    "linear": pair(lin),
                    "map": pair(mp),
                    "posterior": pair(post),
                }));
            }
            continue;
        }
        let (map_k, linear_k, posterior_k) = (
            map_k.map(|k| k.0),
            linear_k.map(|k| k.0),
            posterior_k.map(|k| k.0),
        );
        for i in 0..reference.nrows() {
            for j in i..reference.ncols() {
                let sim = stats.mean[[i, j]];
                let se = stats.std_error[[i, j]];
                let star = reference[[i, j]];
                let shift = |v: f64| n * (v - star);
                let z = |v: f64| if se > 0.0 { (v - sim) / se } else { 0.0 };
                let method = |k: &Option<Array2<f64>>| {
                    k.as_ref().map_or("—".to_string(), |k| {
                        format!("{:+.4} ({:+.1})", shift(k[[i, j]]), z(k[[i, j]]))
                    })
                };
                rows.push(format!(
                    "{:<6} {:<6} {:>18} {:>16} {:>16} {:>16} {:>16}",
                    name,
                    format!("{},{}", i + 1, j + 1),
                    format!("{:+.4} ± {:.4}", shift(sim), n * se),
                    format!("{:+.4} ({:+.1})", 0.0, z(star)),
                    method(&linear_k),
                    method(&map_k),
                    method(&posterior_k),
                ));
            }
        }
    }
    if args.json {
        result.set("units", Some(Value::Object(units)));
        if grouped {
            result.set("groups", Some(Value::Array(groups)));
        }
        result.set("linear_error", linear.as_ref().err().map(|e| json!(e)));
        result.set("map_error", map.as_ref().err().map(|e| json!(e)));
        result.set(
            "posterior_error",
            posterior_kernels.as_ref().err().map(|e| json!(e)),
        );
        result.set(
            "simulation",
            Some(
                json!({"chains": settings.chains, "samples_per_chain": settings.samples,
                        "seed": settings.seed}),
            ),
        );
        let out = result.to_json();
        outln!("{out}");
        return Ok(());
    }
    if grouped {
        outln!(
            "theory {} on {} patterns: N·(statistic − its NNGP value) of every kernel's mean \
             diagonal, mean off-diagonal and target-weighted off-diagonal entry (same class \
             minus cross class), and in brackets the distance from the simulated posterior \
             mean in combined standard errors ({} chains × {} draws, seed {}; the theories \
             importance sampled, their error bounded by the mean entry error)",
            theory.name,
            x.nrows(),
            settings.chains,
            settings.samples,
            settings.seed
        );
    } else {
        outln!(
            "theory {} on {} patterns: N·(C − C_NNGP) of every kernel entry, and in brackets the \
             distance from the simulated posterior mean in its standard errors \
             ({} chains × {} draws, seed {})",
            theory.name,
            x.nrows(),
            settings.chains,
            settings.samples,
            settings.seed
        );
    }
    print_table(
        (6, if grouped { 14 } else { 6 }),
        &rows,
        &[
            ("linearised", linear.as_ref().err()),
            ("MAP", map.as_ref().err()),
            ("MAP + m/N", posterior_kernels.as_ref().err()),
        ],
    );
    if posterior_kernels.is_ok() {
        outln!(
            "The MAP is the posterior's mode; its mean is MAP + m/N to leading order, m the \
             prior one-loop shift of THEORY.md §4.5."
        );
    }
    Ok(())
}

/// `compare` for a recurrent theory. The prior mean of a recurrent kernel is itself shifted by
/// O(1/N) (the weights shared over time), so what is compared is what the data do: the
/// simulated posterior mean less the simulated prior mean (independent networks, as many as
/// the posterior's draws) against the theories' shift from the NNGP — the MAP and the
/// linearised system over time ([`crate::finite_width::recurrent`], importance sampled with
/// their own standard errors).
fn run_recurrent(
    args: &CompareArgs,
    theory: &crate::Theory,
    params: &[f64],
    x: ndarray::ArrayView2<'_, f64>,
    y: ndarray::ArrayView2<'_, f64>,
) -> Result<(), CliError> {
    use crate::finite_width::MapSettings;
    use crate::finite_width::recurrent::{RecurrentMethod, recurrent_kernels};
    use crate::simulate::prior::sample_prior;
    use crate::simulate::{RecurrentNetwork, RecurrentSimulator};

    let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    let network = RecurrentNetwork::new(theory, params).map_err(|e| usage(&e))?;
    let simulator = RecurrentSimulator::new(&network, x).map_err(|e| usage(&e))?;
    let settings = PosteriorSettings {
        chains: args.chains,
        samples: args.samples,
        burn_in: args.samples,
        thin: 1,
        seed: args.seed,
    };
    let prior_draws = args.chains * args.samples;
    let bar =
        super::progress::progress_bar(posterior_steps(&settings) + prior_draws as u64, args.json);
    let tick = |n: u64| bar.inc(n);
    let posterior =
        sample_posterior(&simulator, Targets { y }, settings, &tick).map_err(|e| usage(&e))?;
    let prior = sample_prior(&simulator, prior_draws, args.seed ^ PRIOR_STREAM, &tick)
        .map_err(|e| usage(&e))?;
    bar.finish_and_clear();
    let spinner = theory_spinner(args.json);
    type Solved = Result<crate::finite_width::MapSolution, String>;
    let solve = |method| -> Solved {
        let settings = MapSettings {
            overrides: args.set.clone(),
            // independent of the chains' normals (stream 0 of the same seed)
            seed: args.seed ^ THEORY_STREAM,
            ..MapSettings::default()
        };
        recurrent_kernels(theory, x, y, None, method, &settings).map_err(|e| e.to_string())
    };
    let (map, linear) = (solve(RecurrentMethod::Map), solve(RecurrentMethod::Linear));
    spinner.done();
    let layer = |solved: &Solved, name: &str| {
        solved
            .as_ref()
            .ok()
            .and_then(|s| s.layers.iter().find(|l| l.name == name).cloned())
    };
    let nngp = crate::solve::nngp::nngp_kernels(
        theory,
        x,
        None,
        &crate::solve::nngp::NngpSettings {
            overrides: args.set.clone(),
            outputs: Some(y.ncols()),
            ..Default::default()
        },
    )
    .map_err(|e| usage(&e))?;
    let n = network.units as f64;
    let mut result = RunResult::new(
        "compare",
        "compare",
        &theory.name,
        params_json(theory, params),
    );
    let mut rows = Vec::new();
    for (key, stats) in &posterior.entries {
        let name = network.name(key);
        let (Some(reference), Some((_, before))) = (
            nngp.entries.get(key),
            prior.entries.iter().find(|(k, _)| k == key),
        ) else {
            continue;
        };
        let (map_l, linear_l) = (layer(&map, &name), layer(&linear, &name));
        result.matrix(&["kernels", &name], stats.mean.clone());
        result.matrix(&["standard_errors", &name], stats.std_error.clone());
        result.matrix(&["prior", &name], before.mean.clone());
        result.matrix(&["prior_standard_errors", &name], before.std_error.clone());
        result.matrix(&["nngp", &name], reference.clone());
        if let Some(l) = &linear_l {
            result.matrix(&["linear", &name], l.kernel.clone());
        }
        if let Some(l) = &map_l {
            result.matrix(&["map", &name], l.kernel.clone());
        }
        let cross = key.1.first() != key.1.get(1);
        for i in 0..reference.nrows() {
            for j in if cross { 0 } else { i }..reference.ncols() {
                let shift = stats.mean[[i, j]] - before.mean[[i, j]];
                let se = stats.std_error[[i, j]].hypot(before.std_error[[i, j]]);
                let star = reference[[i, j]];
                let method = |l: &Option<crate::finite_width::map::MapLayer>| {
                    l.as_ref().map_or("—".to_string(), |l| {
                        let theirs = l.kernel[[i, j]] - star;
                        let error = l.kernel_error.as_ref().map_or(0.0, |e| e[[i, j]]);
                        let combined = se.hypot(error);
                        let z = if combined > 0.0 {
                            (theirs - shift) / combined
                        } else {
                            0.0
                        };
                        format!("{:+.4} ({z:+.1})", n * theirs)
                    })
                };
                let z_nngp = if se > 0.0 { -shift / se } else { 0.0 };
                rows.push(format!(
                    "{:<8} {:<6} {:>18} {:>16} {:>16} {:>16}",
                    name,
                    format!("{},{}", i + 1, j + 1),
                    format!("{:+.4} ± {:.4}", n * shift, n * se),
                    format!("{:+.4} ({z_nngp:+.1})", 0.0),
                    method(&linear_l),
                    method(&map_l),
                ));
            }
        }
    }
    if args.json {
        result.set("width", Some(json!(n)));
        result.set(
            "comparison",
            Some(json!("posterior mean less prior mean (simulated) against the theories' shift from the NNGP")),
        );
        result.set("linear_error", linear.as_ref().err().map(|e| json!(e)));
        result.set("map_error", map.as_ref().err().map(|e| json!(e)));
        result.set(
            "simulation",
            Some(
                json!({"chains": settings.chains, "samples_per_chain": settings.samples,
                        "prior_draws": prior_draws, "seed": settings.seed}),
            ),
        );
        outln!("{}", result.to_json());
        return Ok(());
    }
    outln!(
        "theory {} (recurrent, N = {n}) on {} patterns: what the data do, N·(posterior mean − \
         prior mean) of the simulated networks ({} chains × {} draws; {prior_draws} prior \
         draws; seed {}), against the theories' N·(C − C_NNGP); in brackets the distance in \
         combined standard errors",
        theory.name,
        x.nrows(),
        settings.chains,
        settings.samples,
        settings.seed
    );
    print_table(
        (8, 6),
        &rows,
        &[
            ("linearised", linear.as_ref().err()),
            ("MAP", map.as_ref().err()),
        ],
    );
    Ok(())
}

/// The table of either comparison: a header whose first column is `width` wide, the rows,
/// and why a method was not computed.
fn print_table(
    (width, entry): (usize, usize),
    rows: &[String],
    methods: &[(&str, Option<&String>)],
) {
    let mut header = format!(
        "{:<width$} {:<entry$} {:>18} {:>16}",
        "kernel",
        if entry > 6 { "statistic" } else { "entry" },
        "simulation",
        "NNGP",
    );
    for (name, _) in methods {
        header.push_str(&format!(" {name:>16}"));
    }
    outln!("{header}");
    for row in rows {
        outln!("{row}");
    }
    for (name, why) in methods {
        if let Some(why) = why {
            outln!("{name}: not computed — {why}");
        }
    }
}

/// The sampler's steps over all chains (the progress bar's length).
fn posterior_steps(settings: &PosteriorSettings) -> u64 {
    (settings.chains * (settings.burn_in + settings.samples * settings.thin)) as u64
}

/// A spinner with the elapsed time while the theories are solved (hidden for `--json` or
/// when stderr is not a terminal).
fn theory_spinner(json: bool) -> super::progress::Spinner {
    super::progress::Spinner::new(
        "solving the theories (NNGP, linearised, MAP, the one-loop shift)…",
        json,
    )
}

/// Mixed into the seed of the prior draws, so that they are independent of the chains'.
const PRIOR_STREAM: u64 = 0x5052_494f_5200;
/// Mixed into the seed of the theory's importance sampling, likewise.
const THEORY_STREAM: u64 = 0x5448_454f_5259;
