//! `saddle fit` on recordings whose parameters are known: population statistics measured on
//! simulated finite networks of `binary_threshold` (N = 1000, independent draws, their full
//! covariance) at three hidden parameter sets are fitted by the theory. Each fitted
//! parameter must come back within 4 of its standard errors (from the curvature of χ²), χ²
//! must be consistent with its degrees of freedom, and the separability predicted at the fit
//! must agree with the separability at the hidden parameters within 4 of its errors. The
//! command line reads the same statistics from a targets file and finds the same fit.
//!
//! Run with `--nocapture` for the recovery table.

mod common;

use std::path::Path;

use common::{path_str, saddle, temp_file};
use saddle::simulate::statistics::measure_statistics;
use saddle::simulate::{Network, Simulator};
use saddle::solve::fit::{
    FitSettings, FreeSpec, Problem, StatisticKind, StimuliSpec, TargetSpec, TargetsFile, fit,
    separability,
};

const WIDTH: f64 = 1000.0;
const DRAWS: usize = 300;

/// Two classes of three stimuli: versions of two prototypes (overlap within a class ≈ 0.8,
/// across ≈ 0.3), scaled so the first layer's fields have variance ≈ 2.
fn stimuli() -> Vec<Vec<f64>> {
    let rows: [[f64; 4]; 6] = [
        [1.0, 0.0, 0.0, 0.0],
        [0.8, 0.6, 0.0, 0.0],
        [0.8, -0.3, 0.52, 0.0],
        [0.3, 0.0, 0.9539, 0.0],
        [0.3, 0.0, 0.7155, 0.6310],
        [0.3, 0.35, 0.75, -0.47],
    ];
    rows.iter()
        .map(|r| r.iter().map(|v| v * 2f64.sqrt() * 2.0).collect())
        .collect()
}

/// Per layer: every stimulus's activity, two distances and two angles (of pairs that do not
/// repeat one another: Q_αα = m_α for 0/1 units, so a pair's distance and angle and the two
/// activities would be collinear).
fn targets() -> Vec<TargetSpec> {
    use StatisticKind::*;
    let mut t = Vec::new();
    for l in 1..=3 {
        for a in 0..6 {
            t.push((Activity, format!("m[{l}]"), vec![a]));
        }
        t.push((Distance, format!("Q[{l}]"), vec![0, 1]));
        t.push((Distance, format!("Q[{l}]"), vec![0, 3]));
        t.push((Angle, format!("Q[{l}]"), vec![2, 5]));
        t.push((Angle, format!("Q[{l}]"), vec![3, 4]));
    }
    t.into_iter()
        .map(|(statistic, field, stimuli)| TargetSpec {
            statistic,
            field,
            stimuli,
            value: 0.0,
            error: Some(1.0),
        })
        .collect()
}

fn targets_file() -> TargetsFile {
    TargetsFile {
        stimuli: StimuliSpec::Rows(stimuli()),
        classes: Some(vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
        fit: [("g", 0.2, 5.0), ("J", -3.0, 3.0), ("theta", -1.0, 1.5)]
            .iter()
            .map(|&(name, min, max)| FreeSpec {
                name: name.into(),
                min,
                max,
                start: None,
            })
            .collect(),
        targets: targets(),
        covariance: None,
        readout: None,
    }
}

struct Recovery {
    hidden: [f64; 3],
    values: Vec<f64>,
    std_errors: Vec<f64>,
    chi2: f64,
    dof: usize,
    separability_fitted: Vec<f64>,
    separability_error: Vec<f64>,
    separability_hidden: Vec<f64>,
}

/// Simulates the network at `hidden` (g, J, θ), measures the statistics and fits them from
/// the theory's default parameters.
fn recover(hidden: [f64; 3], seed: u64) -> (Recovery, TargetsFile) {
    let path = format!(
        "{}/examples/binary_threshold.action",
        env!("CARGO_MANIFEST_DIR")
    );
    let source = std::fs::read_to_string(&path).expect("example");
    let theory = saddle::compile(&source, "binary_threshold").expect("checks");
    let truth = theory
        .bind(&[
            ("g".into(), hidden[0]),
            ("J".into(), hidden[1]),
            ("theta".into(), hidden[2]),
            ("N".into(), WIDTH),
        ])
        .expect("binds");
    let defaults = theory.bind(&[("N".into(), WIDTH)]).expect("binds");
    let mut spec = targets_file();
    let problem = Problem::new(&theory, &defaults, &spec, Path::new("."), 80).expect("sets up");
    let network = Network::new(&theory, &truth).expect("network");
    let simulator = Simulator::new(&network, problem.stimuli.view()).expect("simulator");
    let measured =
        measure_statistics(&simulator, &problem.statistics, DRAWS, seed).expect("measures");
    for (t, (v, e)) in spec
        .targets
        .iter_mut()
        .zip(measured.mean.iter().zip(measured.std_errors()))
    {
        t.value = *v;
        t.error = Some(e);
    }
    spec.covariance = Some(
        measured
            .covariance
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect(),
    );
    let problem = Problem::new(&theory, &defaults, &spec, Path::new("."), 80).expect("sets up");
    let found = fit(&problem, &FitSettings::default()).expect("fits");
    let at_fit = separability(&problem, &found.values, &found.covariance).expect("separability");
    let at_truth = separability(&problem, &hidden, &found.covariance).expect("separability");
    (
        Recovery {
            hidden,
            values: found.values,
            std_errors: found.std_errors,
            chi2: found.chi2,
            dof: found.dof,
            separability_fitted: at_fit.accuracy,
            separability_error: at_fit.std_error,
            separability_hidden: at_truth.accuracy,
        },
        spec,
    )
}

#[test]
fn hidden_parameters_and_separability_come_back_within_their_errors() {
    let sets = [[1.5, -0.8, 0.2], [2.5, -0.3, 0.5], [1.0, -1.5, -0.1]];
    let names = ["g", "J", "theta"];
    println!(
        "| hidden (g, J, θ) | fitted g | fitted J | fitted θ | χ²/dof | separability Q[1..3]: fit ± s.e. (at hidden) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut last_spec = None;
    for (i, hidden) in sets.into_iter().enumerate() {
        let (r, spec) = recover(hidden, 11 + i as u64);
        let cells: Vec<String> = (0..3)
            .map(|k| {
                format!(
                    "{:.4} ± {:.4} ({:+.1}σ)",
                    r.values[k],
                    r.std_errors[k],
                    (r.values[k] - r.hidden[k]) / r.std_errors[k]
                )
            })
            .collect();
        let seps: Vec<String> = (0..r.separability_fitted.len())
            .map(|s| {
                format!(
                    "{:.4} ± {:.4} ({:.4})",
                    r.separability_fitted[s], r.separability_error[s], r.separability_hidden[s]
                )
            })
            .collect();
        println!(
            "| {:?} | {} | {:.1}/{} | {} |",
            r.hidden,
            cells.join(" | "),
            r.chi2,
            r.dof,
            seps.join("; ")
        );
        for (k, name) in names.iter().enumerate() {
            let pull = (r.values[k] - r.hidden[k]) / r.std_errors[k];
            assert!(
                pull.abs() < 4.0,
                "set {hidden:?}: {name} = {} ± {} is {pull:.1} s.e. from {}",
                r.values[k],
                r.std_errors[k],
                r.hidden[k]
            );
        }
        // χ² of `dof` degrees of freedom: mean dof, s.d. √(2 dof)
        let dof = r.dof as f64;
        assert!(
            (r.chi2 - dof).abs() < 5.0 * (2.0 * dof).sqrt(),
            "set {hidden:?}: χ² = {} for {dof} degrees of freedom",
            r.chi2
        );
        for s in 0..r.separability_fitted.len() {
            let gap = (r.separability_fitted[s] - r.separability_hidden[s]).abs();
            assert!(
                gap < 4.0 * r.separability_error[s] + 1e-9,
                "set {hidden:?}, step {s}: separability {} ± {} at the fit, {} at the truth",
                r.separability_fitted[s],
                r.separability_error[s],
                r.separability_hidden[s]
            );
        }
        last_spec = Some((spec, r));
    }

    // the command line, from the same statistics written as a targets file
    let (spec, r) = last_spec.expect("three sets");
    let targets: Vec<serde_json::Value> = spec
        .targets
        .iter()
        .map(|t| {
            serde_json::json!({
                "statistic": t.statistic.name(),
                "field": t.field,
                "stimuli": t.stimuli,
                "value": t.value,
            })
        })
        .collect();
    let file = serde_json::json!({
        "stimuli": stimuli(),
        "classes": [0, 0, 0, 1, 1, 1],
        "fit": [
            { "name": "g", "min": 0.2, "max": 5.0 },
            { "name": "J", "min": -3.0, "max": 3.0 },
            { "name": "theta", "min": -1.0, "max": 1.5 }
        ],
        "targets": targets,
        "covariance": spec.covariance,
    });
    let path = temp_file("fit_targets.json", &file.to_string());
    let theory_path = format!(
        "{}/examples/binary_threshold.action",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, out, err) = saddle(&[
        "fit",
        &theory_path,
        "--targets",
        path_str(&path),
        "--set",
        "N=1000",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["command"], "fit");
    for (k, name) in ["g", "J", "theta"].iter().enumerate() {
        let p = &json["fitted"][k];
        assert_eq!(p["name"], *name);
        let v = p["value"].as_f64().expect("value");
        let e = p["std_error"].as_f64().expect("error");
        assert!(
            (v - r.values[k]).abs() < 1e-6 * (1.0 + v.abs()),
            "{name}: {v} vs {}",
            r.values[k]
        );
        assert!(
            (e - r.std_errors[k]).abs() < 1e-3 * e,
            "{name}: ± {e} vs {}",
            r.std_errors[k]
        );
    }
    assert_eq!(json["dof"], r.dof);
    let steps = json["separability"]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3);
}

/// A targets file that names what the theory lacks is refused with the place and the reason,
/// exit code 1; the bundled file is read and fitted, and its table printed.
#[test]
fn the_command_line_names_bad_targets_and_fits_the_bundled_file() {
    let theory_path = format!(
        "{}/examples/binary_threshold.action",
        env!("CARGO_MANIFEST_DIR")
    );
    let bad = temp_file(
        "fit_bad_targets.json",
        r#"{ "stimuli": [[1, 0], [0, 1]], "fit": [ { "name": "gain", "min": 0, "max": 2 } ],
             "targets": [ { "statistic": "activity", "field": "m[1]", "stimuli": [0],
                            "value": 0.3, "error": 0.01 } ] }"#,
    );
    let (code, _, err) = saddle(&["fit", &theory_path, "--targets", path_str(&bad)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("fit[0]") && err.contains("no parameter `gain`") && err.contains("theta"),
        "{err}"
    );
    let bundled = format!(
        "{}/examples/binary_targets.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (code, out, err) = saddle(&[
        "fit",
        &theory_path,
        "--targets",
        &bundled,
        "--set",
        "N=1000",
        "--starts",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "g",
        "J",
        "theta",
        "χ²",
        "activity m[1] (0)",
        "separability",
        "Q[3]",
    ] {
        assert!(out.contains(needle), "`{needle}` missing from:\n{out}");
    }
}

#[test]
fn the_fit_figure_says_what_it_shows() {
    let theory_path = format!(
        "{}/examples/binary_threshold.action",
        env!("CARGO_MANIFEST_DIR")
    );
    let bundled = format!(
        "{}/examples/binary_targets.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let figure = temp_file("fit_figure.svg", "");
    let (code, _, err) = saddle(&[
        "fit",
        &theory_path,
        "--targets",
        &bundled,
        "--set",
        "N=1000",
        "--starts",
        "2",
        "--plot",
        path_str(&figure),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = saddle::plot::svg_text(&std::fs::read_to_string(&figure).expect("written"));
    for t in [
        "binary_threshold: separability by a linear readout",
        "P(correct), held-out stimulus",
        "step (Q[1] … Q[3])",
        "predicted (fitted parameters), ± s.e.",
    ] {
        assert!(text.iter().any(|s| s == t), "{t} in {text:?}");
    }
    insta::assert_debug_snapshot!("fit_svg_text", text);
}
