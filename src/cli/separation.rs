//! `saddle separation FILE`: pattern separation and the optimal processing depth or time
//! ([`crate::solve::separation`], THEORY.md §7.3) — Δ(l) = ⟨ρ⟩_within − ⟨ρ⟩_between over
//! the steps of a theory, l* = argmax Δ, and the distances — from the theory (NNGP) and,
//! with `--simulate`, from independent draws of the finite network (each value with its
//! standard error and its distance from the theory in standard errors); over `--scan`, l*
//! against a parameter (e.g. the threshold).
//!
//! One concept, one file: the `separation` command — arguments, theory and simulated curves,
//! table, JSON and figure.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::CliError;
use super::options::{load, params_json, parse_set, theory};
use super::result::RunResult;
use super::sweep::{Grid, ScanPoint, Sweep, parse_sweep};
use crate::check::ir::Theory;
use crate::plot::{Curve, CurveFigure, Marker};
use crate::simulate::glauber::{GlauberSimulator, RecurrentGlauber, simulate_glauber_separation};
use crate::simulate::separation::{SimulatedSeparation, simulate_separation};
use crate::simulate::{Network, RecurrentNetwork, RecurrentSimulator, Simulator};
use crate::solve::nngp::NngpSettings;
use crate::solve::separation::{
    GlauberTimes, PairGroups, SeparationCurve, glauber_curve, overlap_patterns, theory_curve,
};
use crate::solve::step_map::StepMap;

/// How the units are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dynamics {
    /// All units at once, step by step (the layers of a deep network, the time steps of a
    /// recurrent one).
    Synchronous,
    /// Asynchronous (Glauber): each unit at rate 1/τ, common update times for all
    /// patterns; τ ṡ = −s + F(s) for the step map F (THEORY.md §7.4).
    Glauber,
}

/// Arguments of `saddle separation`.
#[derive(Debug, Clone, Args)]
pub struct SeparationArgs {
    /// The `.action` file (a layered or recurrent theory).
    pub file: PathBuf,
    /// Input overlaps `WITHIN,BETWEEN`: a pattern and a noisy version of it, and two
    /// patterns of different classes (unit-length inputs, |x|²/d = 1).
    #[arg(long, value_name = "WITHIN,BETWEEN", value_parser = parse_overlaps,
          conflicts_with_all = ["x", "labels"])]
    pub overlaps: Option<(f64, f64)>,
    /// Patterns (P×d) instead of `--overlaps`; pairs within and between the classes that
    /// `--labels` gives.
    #[arg(long = "x", value_name = "X", requires = "labels")]
    pub x: Option<PathBuf>,
    /// The class of each pattern of `--x` (P×1).
    #[arg(long, value_name = "LABELS", requires = "x")]
    pub labels: Option<PathBuf>,
    /// Override a parameter: `--set theta=0.5`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// Scan a parameter: `theta=0:1.5:7`, `g=1,2,3`; several make a grid.
    #[arg(long = "scan", value_name = "NAME=RANGE", value_parser = parse_sweep)]
    pub scan: Vec<Sweep>,
    /// How the units are updated.
    #[arg(long, value_enum, default_value_t = Dynamics::Synchronous)]
    pub dynamics: Dynamics,
    /// With `--dynamics glauber`: the last time, in units of τ (one update per unit).
    #[arg(long, default_value_t = 8.0, value_name = "T")]
    pub time: f64,
    /// With `--dynamics glauber`: the interval between reported times, in units of τ.
    #[arg(long, default_value_t = 0.25, value_name = "DT")]
    pub interval: f64,
    /// Also simulate the finite network (width from the theory's parameters, e.g.
    /// `--set N=1000`): synchronously, layer by layer or one recurrent network whose weights
    /// are shared over time; with `--dynamics glauber`, one population of units (a layered
    /// theory's last layer, or the recurrent network) updated one at a time at rate 1/τ with
    /// couplings shared over time.
    #[arg(long)]
    pub simulate: bool,
    /// Independent networks drawn per point with `--simulate`.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Seed of the simulation: the same seed gives the same numbers, bit for bit.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write `DIR/result.json` (the same object).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Draw Δ(l) (and l* against the scanned parameter) into this `.svg` / `.png`.
    #[arg(long, value_name = "FIGURE")]
    pub plot: Option<PathBuf>,
    /// Gauss–Hermite order for expectations without a closed form.
    #[arg(long, default_value_t = 80, value_parser = super::quadrature_order())]
    pub quadrature: usize,
}

fn parse_overlaps(text: &str) -> Result<(f64, f64), String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [within, between] = parts.as_slice() else {
        return Err(format!(
            "`{text}`: give two overlaps, WITHIN,BETWEEN (e.g. 0.99,0.8)"
        ));
    };
    let number = |s: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|v| (-1.0..=1.0).contains(v))
            .ok_or_else(|| format!("`{s}` is not an overlap in [-1, 1]"))
    };
    Ok((number(within)?, number(between)?))
}

/// What was found at one point of the scan.
type Point = ScanPoint<Found>;

struct Found {
    theory: SeparationCurve,
    simulation: Option<SimulatedSeparation>,
}

/// Runs the analysis and reports it.
pub fn run(args: &SeparationArgs) -> Result<(), CliError> {
    let theory = theory(&args.file)?;
    let params = theory
        .bind(&args.set)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let grid = Grid::new(&theory, &args.scan, &args.set, "--scan")?;
    let (x, groups, input) = match (&args.x, &args.labels) {
        (Some(x), Some(labels)) => {
            let x = load("--x", x)?;
            let labels = load("--labels", labels)?;
            if labels.ncols() != 1 || labels.nrows() != x.nrows() {
                return Err(CliError::Usage(format!(
                    "--labels: a {}×{} matrix; one class per pattern of --x ({}×1) is needed",
                    labels.nrows(),
                    labels.ncols(),
                    x.nrows()
                )));
            }
            let labels: Vec<f64> = labels.column(0).to_vec();
            let groups =
                PairGroups::from_labels(&labels).map_err(|e| CliError::Usage(e.to_string()))?;
            let input = json!({ "patterns": x.nrows(), "pairs_within": groups.within.len(),
                                "pairs_between": groups.between.len() });
            (x, groups, input)
        }
        _ => {
            let (within, between) = args.overlaps.unwrap_or((0.99, 0.8));
            let (x, groups) =
                overlap_patterns(within, between).map_err(|e| CliError::Usage(e.to_string()))?;
            (
                x,
                groups,
                json!({ "overlaps": { "within": within, "between": between } }),
            )
        }
    };
    if args.dynamics == Dynamics::Glauber
        && !(args.time.is_finite()
            && args.interval.is_finite()
            && args.interval > 0.0
            && args.time >= args.interval
            && args.time / args.interval <= 100_000.0)
    {
        return Err(CliError::Usage(format!(
            "--time {} --interval {}: give 0 < interval ≤ time, at most 100000 intervals",
            args.time, args.interval
        )));
    }
    if args.simulate && args.samples < 2 {
        return Err(CliError::Usage(format!(
            "--samples {}: at least 2 draws are needed for a standard error",
            args.samples
        )));
    }
    let bar = super::progress::progress_bar(
        if args.simulate {
            (args.samples * grid.points.len()) as u64
        } else {
            0
        },
        args.json || !args.simulate,
    );
    let tick = |n: u64| bar.inc(n);
    let analyse = |scan: Vec<(String, f64)>| -> Result<Found, String> {
        let mut set = args.set.clone();
        set.extend(scan.iter().cloned());
        let settings = NngpSettings {
            overrides: set.clone(),
            quadrature_order: args.quadrature,
            ..NngpSettings::default()
        };
        if args.dynamics == Dynamics::Glauber {
            let map =
                StepMap::from_theory(&theory, &set, args.quadrature).map_err(|e| e.to_string())?;
            // RK4 substeps of at most 0.01 τ
            let substeps = (args.interval / 0.01).ceil().max(1.0) as usize;
            let times = GlauberTimes {
                end: args.time,
                interval: args.interval,
                substeps,
            };
            let curve = glauber_curve(&theory, x.view(), &settings, &map, &groups, times)
                .map_err(|e| e.to_string())?;
            let simulation = if args.simulate {
                let params = theory.bind(&set).map_err(|e| e.to_string())?;
                if crate::simulate::recurrent::is_recurrent(&theory) {
                    let network =
                        RecurrentNetwork::new(&theory, &params).map_err(|e| e.to_string())?;
                    let simulator =
                        RecurrentSimulator::new(&network, x.view()).map_err(|e| e.to_string())?;
                    let glauber =
                        RecurrentGlauber::new(&simulator, &map).map_err(|e| e.to_string())?;
                    let simulated = simulate_glauber_separation(
                        &glauber,
                        &groups,
                        times,
                        args.samples,
                        args.seed,
                        &tick,
                    )
                    .map_err(|e| e.to_string())?;
                    return Ok(Found {
                        theory: curve,
                        simulation: Some(simulated),
                    });
                }
                let network = Network::new(&theory, &params).map_err(|e| e.to_string())?;
                let simulator = Simulator::new(&network, x.view()).map_err(|e| e.to_string())?;
                let glauber = GlauberSimulator::new(&simulator, &map).map_err(|e| e.to_string())?;
                Some(
                    simulate_glauber_separation(
                        &glauber,
                        &groups,
                        times,
                        args.samples,
                        args.seed,
                        &tick,
                    )
                    .map_err(|e| e.to_string())?,
                )
            } else {
                None
            };
            return Ok(Found {
                theory: curve,
                simulation,
            });
        }
        let (steps, curve) =
            theory_curve(&theory, x.view(), &settings, &groups).map_err(|e| e.to_string())?;
        let simulation = if args.simulate {
            let params = theory.bind(&set).map_err(|e| e.to_string())?;
            let steps = &steps[..curve.steps.len()];
            let simulated = if crate::simulate::recurrent::is_recurrent(&theory) {
                // one network whose weights are shared over time
                let network = RecurrentNetwork::new(&theory, &params).map_err(|e| e.to_string())?;
                let simulator =
                    RecurrentSimulator::new(&network, x.view()).map_err(|e| e.to_string())?;
                simulate_separation(&simulator, steps, &groups, args.samples, args.seed, &tick)
            } else {
                let network = Network::new(&theory, &params).map_err(|e| e.to_string())?;
                let simulator = Simulator::new(&network, x.view()).map_err(|e| e.to_string())?;
                simulate_separation(&simulator, steps, &groups, args.samples, args.seed, &tick)
            };
            Some(simulated.map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(Found {
            theory: curve,
            simulation,
        })
    };
    // one point at a time: the simulation inside is parallel over draws
    let points: Vec<Point> = (0..grid.points.len())
        .map(|i| {
            let scan = grid.overrides(i);
            Point {
                outcome: analyse(scan.clone()),
                scan,
            }
        })
        .collect();
    bar.finish_and_clear();
    // a theory that has no steps at all is refused, not reported point by point
    if let [
        Point {
            outcome: Err(why), ..
        },
    ] = points.as_slice()
    {
        return Err(CliError::Usage(format!("{}: {why}", args.file.display())));
    }
    let mut result = RunResult::new(
        "separation",
        match (args.dynamics, args.simulate) {
            (Dynamics::Glauber, true) => "glauber+simulate-glauber",
            (Dynamics::Glauber, false) => "glauber",
            (Dynamics::Synchronous, true) => "nngp+simulate-prior",
            (Dynamics::Synchronous, false) => "nngp",
        },
        &theory.name,
        params_json(&theory, &params),
    );
    result.set("input", input);
    result.set(
        "dynamics",
        json!(match args.dynamics {
            Dynamics::Synchronous => "synchronous",
            Dynamics::Glauber => "glauber",
        }),
    );
    if args.dynamics == Dynamics::Glauber {
        result.set(
            "times",
            json!({ "end": args.time, "interval": args.interval, "unit": "tau" }),
        );
    }
    if args.simulate {
        result.set("seed", json!(args.seed));
        result.set("samples", json!(args.samples));
    }
    result.set("scan", grid.sweeps_json());
    result.set(
        "points",
        json!(points.iter().map(point_json).collect::<Vec<_>>()),
    );
    result.emit(
        args.out.as_deref(),
        args.plot.as_deref().map(|f| (f, draw as _)),
        args.json,
        || print_report(&theory, args, &points),
    )
}

fn curve_json(c: &SeparationCurve) -> Value {
    json!({
        "within": c.within,
        "between": c.between,
        "delta": c.delta,
        "distance_within": c.distance_within,
        "distance_between": c.distance_between,
    })
}

fn point_json(point: &Point) -> Value {
    point.to_json(found_json)
}

fn found_json(found: &Found, out: &mut Map<String, Value>) {
    out.insert("steps".into(), json!(found.theory.steps));
    out.insert("theory".into(), curve_json(&found.theory));
    out.insert("optimal_step".into(), json!(found.theory.optimal_step()));
    out.insert(
        "optimum".into(),
        json!(found.theory.steps[found.theory.optimal_step()]),
    );
    if let Some(why) = &found.theory.ended {
        out.insert("ended".into(), json!(why));
    }
    if let Some(sim) = &found.simulation {
        let z: Vec<f64> = sim
            .mean
            .delta
            .iter()
            .zip(&sim.std_error.delta)
            .zip(&found.theory.delta)
            .map(|((m, se), t)| if *se > 0.0 { (m - t) / se } else { 0.0 })
            .collect();
        let mut simulation = json!({
            "samples": sim.samples,
            "mean": curve_json(&sim.mean),
            "standard_errors": curve_json(&sim.std_error),
            "optimal_step": sim.optimal_step(),
            "optimal_steps_within_2se": sim.optimal_steps,
            "delta_z": z,
        });
        if let Some(why) = &sim.mean.ended {
            simulation["ended"] = json!(why);
        }
        out.insert("simulation".into(), simulation);
    }
}

fn print_report(theory: &Theory, args: &SeparationArgs, points: &[Point]) {
    let input = match (&args.x, args.overlaps) {
        (Some(x), _) => format!("the classes of {}", x.display()),
        (None, overlaps) => {
            let (w, b) = overlaps.unwrap_or((0.99, 0.8));
            format!("input overlaps {w} within, {b} between")
        }
    };
    outln!("pattern separation in {}: {input}", theory.name);
    if args.simulate {
        outln!(
            "simulation: {} independent networks per point (seed {}), Δ ± s.e. and its \
             distance z from the theory in s.e.",
            args.samples,
            args.seed
        );
    }
    if points.len() == 1 {
        let point = &points[0];
        match &point.outcome {
            Ok(found) => print_curve(found),
            Err(why) => outln!("  {why}"),
        }
        return;
    }
    let mut header = String::new();
    for (name, _) in &points[0].scan {
        header += &format!("{name:>9}");
    }
    let glauber = args.dynamics == Dynamics::Glauber;
    header += &if glauber {
        format!("{:>8}{:>12}", "t*/τ", "Δ(t*)")
    } else {
        format!("{:>8}{:>12}", "l*", "Δ(l*)")
    };
    if args.simulate {
        header += &if glauber {
            format!("{:>16}{:>22}", "t*/τ sim", "Δ(t*) sim ± s.e.")
        } else {
            format!("{:>16}{:>22}", "l* sim", "Δ(l*) sim ± s.e.")
        };
    }
    outln!("{header}");
    let step_label = |l: usize| {
        if glauber {
            crate::plot::curves::tick(l as f64 * args.interval)
        } else {
            l.to_string()
        }
    };
    let mut ended = Vec::new();
    for p in points {
        let mut row = String::new();
        for (_, v) in &p.scan {
            row += &format!("{v:>9.4}");
        }
        match &p.outcome {
            Ok(found) => {
                let l = found.theory.optimal_step();
                row += &format!("{:>8}{:>12.6}", step_label(l), found.theory.delta[l]);
                if found.theory.ended.is_some() {
                    ended.push(format!(
                        "{}: stops after {}",
                        p.scan
                            .iter()
                            .map(|(n, v)| format!("{n} = {v}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        found.theory.steps.last().map_or("", String::as_str)
                    ));
                }
                if let Some(sim) = &found.simulation {
                    let ls = sim.optimal_step();
                    // the steps the draws cannot tell from the optimum
                    let range = match (sim.optimal_steps.first(), sim.optimal_steps.last()) {
                        (Some(&a), Some(&b)) if a != b => {
                            format!("{} ({}–{})", step_label(ls), step_label(a), step_label(b))
                        }
                        _ => step_label(ls),
                    };
                    row += &format!(
                        "{range:>16}{:>22}",
                        format!("{:.4} ± {:.4}", sim.mean.delta[ls], sim.std_error.delta[ls])
                    );
                }
            }
            Err(why) => row += &format!("  {why}"),
        }
        outln!("{row}");
    }
    for line in ended {
        outln!("{line} (the activity dies out or saturates after it)");
    }
}

fn print_curve(found: &Found) {
    let t = &found.theory;
    let mut header = format!(
        "{:>8}{:>11}{:>11}{:>11}{:>12}{:>12}",
        "step", "ρ within", "ρ between", "Δ", "d within", "d between"
    );
    if found.simulation.is_some() {
        header += &format!("{:>22}{:>7}", "Δ simulated ± s.e.", "z");
    }
    outln!("{header}");
    for l in 0..t.steps.len() {
        let mut row = format!(
            "{:>8}{:>11.6}{:>11.6}{:>11.6}{:>12.6}{:>12.6}",
            t.steps[l],
            t.within[l],
            t.between[l],
            t.delta[l],
            t.distance_within[l],
            t.distance_between[l]
        );
        if let Some(sim) = &found.simulation
            && l < sim.mean.delta.len()
        {
            let (m, se) = (sim.mean.delta[l], sim.std_error.delta[l]);
            let z = if se > 0.0 {
                format!("{:.2}", (m - t.delta[l]) / se)
            } else {
                "-".into()
            };
            row += &format!("{:>22}{z:>7}", format!("{m:.6} ± {se:.6}"));
        }
        outln!("{row}");
    }
    if let Some(why) = &t.ended {
        outln!("the curve stops here: {why}");
    }
    if let Some(why) = found
        .simulation
        .as_ref()
        .and_then(|s| s.mean.ended.as_ref())
    {
        outln!("the simulated curve stops earlier: {why}");
    }
    let l = t.optimal_step();
    let what = if t.steps[l].starts_with("t = ") {
        "t*"
    } else {
        "l*"
    };
    match &found.simulation {
        Some(sim) => {
            let within: Vec<&str> = sim
                .optimal_steps
                .iter()
                .map(|&k| sim.mean.steps[k].as_str())
                .collect();
            outln!(
                "{what}: theory {}, simulation {} (steps within 2 s.e. of its largest Δ: {})",
                t.steps[l],
                sim.mean.steps[sim.optimal_step()],
                within.join(", ")
            );
        }
        None => outln!("{what} = {} (the largest Δ)", t.steps[l]),
    }
}

/// Δ(l) of every point (theory lines, simulation points ± s.e.) and, over a scan, l*
/// against the first scanned parameter.
pub(crate) fn figures(json: &Value) -> Result<Vec<CurveFigure>, CliError> {
    let theory = json["theory"].as_str().unwrap_or("theory");
    let points = json["points"].as_array().cloned().unwrap_or_default();
    let scanned = json["scan"][0]["name"].as_str();
    // Glauber curves are reported at times k·interval (in units of τ)
    let interval = match json["dynamics"].as_str() {
        Some("glauber") => json["times"]["interval"].as_f64(),
        _ => None,
    };
    let at = |l: f64| interval.map_or(l, |dt| l * dt);
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let mut delta_curves = Vec::new();
    let mut optimum = (Vec::new(), Vec::new());
    let mut optimum_sim = (Vec::new(), Vec::new());
    // at most six Δ curves: every point of a short scan, evenly spread over a long one
    let shown: Vec<usize> = if points.len() <= 6 {
        (0..points.len()).collect()
    } else {
        (0..6).map(|i| i * (points.len() - 1) / 5).collect()
    };
    for (i, p) in points.iter().enumerate() {
        let delta = numbers(&p["theory"]["delta"]);
        if delta.is_empty() {
            continue;
        }
        let label = match scanned {
            Some(name) => format!(
                "{name} = {}",
                crate::plot::curves::tick(p["scan"][name].as_f64().unwrap_or(f64::NAN))
            ),
            None => "theory".into(),
        };
        if let Some(name) = scanned
            && let Some(x) = p["scan"][name].as_f64()
        {
            optimum.0.push(x);
            optimum
                .1
                .push(at(p["optimal_step"].as_f64().unwrap_or(f64::NAN)));
            if let Some(l) = p["simulation"]["optimal_step"].as_f64() {
                optimum_sim.0.push(x);
                optimum_sim.1.push(at(l));
            }
        }
        if !shown.contains(&i) {
            continue;
        }
        let colour = shown.iter().position(|&s| s == i).unwrap_or(0);
        let steps: Vec<f64> = (0..delta.len()).map(|l| at(l as f64)).collect();
        delta_curves.push(Curve {
            label: if scanned.is_some() {
                format!("{label}, theory")
            } else {
                "theory (N = ∞)".into()
            },
            x: steps.clone(),
            y: delta,
            error: None,
            marker: Marker::LinePoints,
            colour: Some(colour),
        });
        let sim = numbers(&p["simulation"]["mean"]["delta"]);
        if !sim.is_empty() {
            delta_curves.push(Curve {
                label: if scanned.is_some() {
                    format!("{label}, simulation ± s.e.")
                } else {
                    "simulation ± s.e.".into()
                },
                x: (0..sim.len()).map(|l| at(l as f64)).collect(),
                y: sim,
                error: Some(numbers(&p["simulation"]["standard_errors"]["delta"])),
                marker: Marker::Points,
                colour: Some(colour),
            });
        }
    }
    if delta_curves.is_empty() {
        return Err(CliError::Usage(
            "the separation result has no point with a curve to draw".into(),
        ));
    }
    let mut figures = vec![CurveFigure {
        title: format!("{theory}: pattern separation"),
        x_label: if interval.is_some() {
            "time t / τ (asynchronous updates)".into()
        } else {
            "step l (layer or time)".into()
        },
        y_label: "Δ = ρ within − ρ between".into(),
        log_x: false,
        curves: delta_curves,
    }];
    if let Some(name) = scanned
        && optimum.0.len() > 1
    {
        let mut curves = vec![Curve {
            label: format!("{} theory", if interval.is_some() { "t*" } else { "l*" }),
            x: optimum.0,
            y: optimum.1,
            error: None,
            marker: Marker::LinePoints,
            colour: Some(0),
        }];
        if !optimum_sim.0.is_empty() {
            curves.push(Curve {
                label: format!(
                    "{} simulation",
                    if interval.is_some() { "t*" } else { "l*" }
                ),
                x: optimum_sim.0,
                y: optimum_sim.1,
                error: None,
                marker: Marker::Points,
                colour: Some(1),
            });
        }
        figures.push(CurveFigure {
            title: format!("{theory}: optimal processing step"),
            x_label: name.to_string(),
            y_label: if interval.is_some() {
                "t* / τ = argmax Δ".into()
            } else {
                "l* = argmax Δ".into()
            },
            log_x: false,
            curves,
        });
    }
    Ok(figures)
}

/// Draws [`figures`] into `path`.
pub(crate) fn draw(json: &Value, path: &Path) -> Result<(), CliError> {
    crate::plot::render_row(&figures(json)?, path).map_err(|e| CliError::Usage(e.to_string()))
}
