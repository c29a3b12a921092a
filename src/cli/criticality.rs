//! `saddle criticality FILE [--scan g=0.5:3:26]`: order and chaos of a theory's step map
//! ([`crate::solve::criticality`]) — the length fixed point q*, χ₁, the correlation map's
//! fixed points, the phase and the depth scale ξ — at each point of a scan, as a table, as
//! JSON (`--json`, `--out DIR`) and as a figure of χ₁ and ξ against the scanned parameter
//! (`--plot`).

use std::path::{Path, PathBuf};

use clap::Args;
use rayon::prelude::*;
use serde_json::{Map, Value, json};

use super::CliError;
use super::options::{params_json, parse_set, theory};
use super::progress::Spinner;
use super::result::RunResult;
use super::sweep::{Grid, ScanPoint, Sweep, parse_sweep};
use crate::check::ir::Theory;
use crate::plot::{Curve, CurveFigure, Marker};
use crate::solve::criticality::{Criticality, Slope, criticality};
use crate::solve::step_map::StepMap;

/// Arguments of `saddle criticality`.
#[derive(Debug, Clone, Args)]
pub struct CriticalityArgs {
    /// The `.action` file (a layered or recurrent theory whose last step reads only the
    /// step before).
    pub file: PathBuf,
    /// Override a parameter: `--set gb=0.1`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// Scan a parameter: `g=0.5:3:26` (26 values), `g=1,1.5,2`, `theta=0.01..1:5:log`;
    /// several make a grid, the first varying slowest.
    #[arg(long = "scan", value_name = "NAME=RANGE", value_parser = parse_sweep)]
    pub scan: Vec<Sweep>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write `DIR/result.json` (the same object).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Draw χ₁ and ξ against the (first) scanned parameter into this `.svg` / `.png`.
    #[arg(long, value_name = "FIGURE")]
    pub plot: Option<PathBuf>,
    /// Gauss–Hermite order for expectations without a closed form (200 puts tanh's q* and χ₁
    /// within 1e-10 up to q ≈ 1.5; 80 leaves errors near 1e-7 there, from its complex poles).
    #[arg(long, default_value_t = 200, value_parser = super::quadrature_order())]
    pub quadrature: usize,
}

/// One point of the scan.
type Point = ScanPoint<Criticality>;

/// Runs the analysis over the scan and reports it.
pub fn run(args: &CriticalityArgs) -> Result<(), CliError> {
    let theory = theory(&args.file)?;
    let params = theory
        .bind(&args.set)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let grid = Grid::new(&theory, &args.scan, &args.set, "--scan")?;
    // the map's structure at the base parameters: a theory without one is refused once
    let map = StepMap::from_theory(&theory, &args.set, args.quadrature)
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.file.display())))?;
    let analyse = |scan: Vec<(String, f64)>| {
        let outcome = if scan.is_empty() {
            criticality(&map).map_err(|e| e.to_string())
        } else {
            let mut set = args.set.clone();
            set.extend(scan.iter().cloned());
            StepMap::from_theory(&theory, &set, args.quadrature)
                .map_err(|e| e.to_string())
                .and_then(|map| criticality(&map).map_err(|e| e.to_string()))
        };
        Point { scan, outcome }
    };
    let spinner = Spinner::new(
        format!("analysing {} point(s) of the scan…", grid.points.len()),
        args.json || grid.points.len() < 2,
    );
    let points: Vec<Point> = (0..grid.points.len())
        .into_par_iter()
        .map(|i| analyse(grid.overrides(i)))
        .collect();
    spinner.done();
    to_result(&theory, &params, &map, &grid, &points).emit(
        args.out.as_deref(),
        args.plot.as_deref().map(|f| (f, draw as _)),
        args.json,
        || print_table(&theory, &map, &points),
    )
}

/// A slope as JSON: a number, or "infinite".
fn slope_json(slope: &Slope) -> Value {
    match slope {
        Slope::Finite(v) => json!(v),
        Slope::Infinite { .. } => json!("infinite"),
    }
}

/// A length that may be infinite (ξ at criticality) as JSON.
fn length_json(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!("infinite")
    }
}

fn point_json(map: &StepMap, point: &Point) -> Value {
    point.to_json(|c, out| criticality_json(map, c, out))
}

fn criticality_json(map: &StepMap, c: &Criticality, out: &mut Map<String, Value>) {
    out.insert(
        "fixed_point".into(),
        Value::Object(
            map.fields
                .iter()
                .zip(&c.fixed_point)
                .map(|(f, v)| (f.name.clone(), json!(v)))
                .collect(),
        ),
    );
    out.insert("diagonal_slope".into(), json!(c.diagonal_slope));
    out.insert("chi1".into(), slope_json(&c.chi1));
    if let Slope::Infinite {
        exponent,
        coefficient,
    } = c.chi1
    {
        out.insert(
            "chi1_divergence".into(),
            json!({
                "exponent": exponent,
                "law": { "exponent": 1.0 - exponent, "coefficient": coefficient },
            }),
        );
    }
    out.insert("phase".into(), json!(c.phase.name()));
    if let Some(xi) = c.depth_scale {
        out.insert("depth_scale".into(), length_json(xi));
    }
    if let Some(rho) = c.stable_correlation() {
        out.insert("stable_correlation".into(), json!(rho));
    }
    out.insert(
        "correlation_fixed_points".into(),
        Value::Array(
            c.correlation_fixed_points
                .iter()
                .map(|p| json!({ "rho": p.rho, "slope": slope_json(&p.slope), "stable": p.stable }))
                .collect(),
        ),
    );
    out.insert("iterations".into(), json!(c.iterations));
    out.insert("residual".into(), json!(c.residual));
}

fn to_result(
    theory: &Theory,
    params: &[f64],
    map: &StepMap,
    grid: &Grid,
    points: &[Point],
) -> RunResult {
    let mut result = RunResult::new(
        "criticality",
        "step-map",
        &theory.name,
        params_json(theory, params),
    );
    result.set("step", json!(map.describe()));
    result.set("scan", grid.sweeps_json());
    result.set(
        "points",
        json!(
            points
                .iter()
                .map(|p| point_json(map, p))
                .collect::<Vec<_>>()
        ),
    );
    result
}

fn print_table(theory: &Theory, map: &StepMap, points: &[Point]) {
    outln!(
        "criticality of {}: step map {}",
        theory.name,
        map.describe()
    );
    let scanned: Vec<&str> = points
        .first()
        .map(|p| p.scan.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    let mut header = String::new();
    for name in &scanned {
        header += &format!("{name:>9}");
    }
    for f in &map.fields {
        header += &format!("{:>14}", format!("{}*", f.name));
    }
    header += &format!("{:>14}{:>12}{:>12}{:>10}", "χ₁", "ξ", "ρ*", "phase");
    outln!("{header}");
    for p in points {
        let mut row = String::new();
        for (_, v) in &p.scan {
            row += &format!("{v:>9.4}");
        }
        match &p.outcome {
            Ok(c) => {
                for v in &c.fixed_point {
                    row += &format!("{v:>14.8}");
                }
                let chi = match c.chi1 {
                    Slope::Finite(v) => format!("{v:.8}"),
                    Slope::Infinite { .. } => "∞".into(),
                };
                let xi = match c.depth_scale {
                    Some(v) if v.is_finite() => format!("{v:.4}"),
                    Some(_) => "∞".into(),
                    None => "-".into(),
                };
                let rho = c
                    .stable_correlation()
                    .map_or("-".into(), |r| format!("{r:.6}"));
                row += &format!("{chi:>14}{xi:>12}{rho:>12}{:>10}", c.phase.name());
            }
            Err(why) => row += &format!("  {why}"),
        }
        outln!("{row}");
    }
    if let Some(Ok(c)) = points.iter().map(|p| p.outcome.as_ref()).find(|o| {
        matches!(
            o,
            Ok(Criticality {
                chi1: Slope::Infinite { .. },
                ..
            })
        )
    }) && let Slope::Infinite {
        exponent,
        coefficient,
    } = c.chi1
    {
        outln!(
            "∞: the slope at ρ → 1 diverges like (1 − ρ)^−{exponent:.3}; near ρ = 1, \
             1 − ρ' ≈ {coefficient:.6}·(1 − ρ)^{:.3} (first such point)",
            1.0 - exponent
        );
    }
}

/// χ₁ and ξ against the first scanned parameter, side by side, from a criticality result.
pub(crate) fn figures(json: &Value) -> Result<Vec<CurveFigure>, CliError> {
    let name = json["scan"][0]["name"]
        .as_str()
        .ok_or_else(|| CliError::Usage("the criticality result has no --scan to draw".into()))?;
    let theory = json["theory"].as_str().unwrap_or("theory");
    let points = json["points"].as_array().cloned().unwrap_or_default();
    let mut chi = (Vec::new(), Vec::new());
    let mut xi = (Vec::new(), Vec::new());
    let mut infinite = Vec::new();
    for p in &points {
        let Some(x) = p["scan"][name].as_f64() else {
            continue;
        };
        if let Some(v) = p["chi1"].as_f64() {
            chi.0.push(x);
            chi.1.push(v);
        } else if p["chi1"] == "infinite" {
            infinite.push(x);
        }
        if let Some(v) = p["depth_scale"].as_f64() {
            xi.0.push(x);
            xi.1.push(v);
        }
    }
    if chi.0.is_empty() && xi.0.is_empty() {
        return Err(CliError::Usage(format!(
            "no finite χ₁ or ξ to draw{}",
            if infinite.is_empty() {
                String::new()
            } else {
                " (χ₁ is infinite at every point: the slope diverges at ρ = 1)".into()
            }
        )));
    }
    let (lo, hi) = chi
        .0
        .iter()
        .chain(&xi.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let mut chi_curves = vec![Curve {
        label: "χ₁ (slope at ρ = 1)".into(),
        x: chi.0,
        y: chi.1,
        error: None,
        marker: Marker::LinePoints,
        colour: Some(0),
    }];
    chi_curves.push(Curve {
        label: "χ₁ = 1 (edge of chaos)".into(),
        x: vec![lo, hi],
        y: vec![1.0, 1.0],
        error: None,
        marker: Marker::Dashed,
        colour: Some(7),
    });
    let chi_figure = CurveFigure {
        title: format!("{theory}: order and chaos"),
        x_label: name.to_string(),
        y_label: "χ₁".into(),
        log_x: false,
        curves: chi_curves.into_iter().filter(|c| !c.x.is_empty()).collect(),
    };
    let xi_figure = CurveFigure {
        title: format!("{theory}: depth scale"),
        x_label: name.to_string(),
        y_label: "ξ = −1/ln χ (layers)".into(),
        log_x: false,
        curves: vec![Curve {
            label: "ξ at the stable correlation".into(),
            x: xi.0,
            y: xi.1,
            error: None,
            marker: Marker::LinePoints,
            colour: Some(1),
        }],
    };
    Ok(vec![chi_figure, xi_figure]
        .into_iter()
        .filter(|f| f.curves.iter().any(|c| !c.x.is_empty()))
        .collect())
}

/// Draws [`figures`] into `path`.
pub(crate) fn draw(json: &Value, path: &Path) -> Result<(), CliError> {
    crate::plot::render_row(&figures(json)?, path).map_err(|e| CliError::Usage(e.to_string()))
}
