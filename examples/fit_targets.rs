//! Makes `examples/binary_targets.json`, the targets file `saddle fit` is shown with: a
//! "recording" of 1000 binary units in three layers (`binary_threshold` at hidden
//! g = 2, J = −0.5, θ = 0.4), responding to six stimuli of two classes, summarised by the
//! statistics a recording gives — each stimulus's mean activity, distances and angles between
//! responses — averaged over 300 independently drawn networks, with their covariance.
//!
//! `cargo run --release --example fit_targets` rewrites the file and prints the fit of the
//! statistics next to the hidden values.

use std::path::Path;

use saddle::simulate::statistics::measure_statistics;
use saddle::simulate::{Network, Simulator};
use saddle::solve::fit::{FitSettings, Problem, TargetsFile, fit, separability};
use serde_json::{Value, json};

const HIDDEN: [(&str, f64); 3] = [("g", 2.0), ("J", -0.5), ("theta", 0.4)];

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
        .map(|r| r.iter().map(|v| v * 8f64.sqrt()).collect())
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("examples/binary_threshold.action"))?;
    let theory = saddle::compile(&source, "binary_threshold")?;
    let mut targets = Vec::new();
    for l in 1..=3 {
        for a in 0..6 {
            targets.push(
                json!({ "statistic": "activity", "field": format!("m[{l}]"), "stimuli": [a] }),
            );
        }
        for (kind, pair) in [
            ("distance", [0, 1]),
            ("distance", [0, 3]),
            ("angle", [2, 5]),
            ("angle", [3, 4]),
        ] {
            targets.push(json!({ "statistic": kind, "field": format!("Q[{l}]"), "stimuli": pair }));
        }
    }
    for t in &mut targets {
        t["value"] = json!(0.0);
        t["error"] = json!(1.0);
    }
    let mut file = json!({
        "stimuli": stimuli(),
        "classes": [0, 0, 0, 1, 1, 1],
        "fit": [
            { "name": "g", "min": 0.2, "max": 5.0 },
            { "name": "J", "min": -3.0, "max": 3.0 },
            { "name": "theta", "min": -1.0, "max": 1.5 }
        ],
        "targets": targets,
    });
    let spec: TargetsFile = serde_json::from_value(file.clone())?;
    let overrides: Vec<(String, f64)> = HIDDEN
        .iter()
        .map(|(n, v)| (n.to_string(), *v))
        .chain([("N".to_string(), 1000.0)])
        .collect();
    let hidden = theory.bind(&overrides)?;
    let problem = Problem::new(&theory, &hidden, &spec, root, 80)?;
    let network = Network::new(&theory, &hidden)?;
    let simulator = Simulator::new(&network, problem.stimuli.view())?;
    let measured = measure_statistics(&simulator, &problem.statistics, 300, 2026)?;
    let errors = measured.std_errors();
    if let Some(Value::Array(ts)) = file.get_mut("targets") {
        for (i, t) in ts.iter_mut().enumerate() {
            t["value"] = json!(measured.mean[i]);
            t["error"] = json!(errors[i]);
        }
    }
    file["covariance"] = json!(
        measured
            .covariance
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect::<Vec<_>>()
    );
    let path = root.join("examples/binary_targets.json");
    std::fs::write(&path, serde_json::to_string_pretty(&file)? + "\n")?;
    println!("wrote {}", path.display());

    let spec: TargetsFile = serde_json::from_value(file)?;
    let defaults = theory.bind(&[("N".into(), 1000.0)])?;
    let problem = Problem::new(&theory, &defaults, &spec, root, 80)?;
    let found = fit(&problem, &FitSettings::default())?;
    for (i, (name, truth)) in HIDDEN.iter().enumerate() {
        println!(
            "{name:>6}: hidden {truth:+.4}, fitted {:+.4} ± {:.4} ({:+.1} s.e.)",
            found.values[i],
            found.std_errors[i],
            (found.values[i] - truth) / found.std_errors[i]
        );
    }
    println!(
        "χ² = {:.1} for {} degrees of freedom",
        found.chi2, found.dof
    );
    let at_fit = separability(&problem, &found.values, &found.covariance)?;
    let truth: Vec<f64> = HIDDEN.iter().map(|(_, v)| *v).collect();
    let at_truth = separability(&problem, &truth, &found.covariance)?;
    for (s, step) in at_fit.steps.iter().enumerate() {
        println!(
            "separability at {step}: {:.4} ± {:.4} (at the hidden parameters {:.4})",
            at_fit.accuracy[s], at_fit.std_error[s], at_truth.accuracy[s]
        );
    }
    Ok(())
}
