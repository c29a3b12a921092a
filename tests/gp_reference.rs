//! GP prediction with the NNGP kernel of the example theories reproduces THEORY.md T4
//! (XOR corners, L = 2, κ = 0.1) — including the odd-activation pitfall of §3 (mean exactly 0).

mod common;

use common::example;
use ndarray::{Array2, array};
use saddle::solve::nngp::NngpSettings;
use saddle::solve::predict::nngp_predict;

struct Row {
    mean: [f64; 3],
    variance: [f64; 3],
    log_likelihood: f64,
    generalisation_error: f64,
}

fn check(theory: &saddle::Theory, sets: &[(&str, f64)], row: &Row) {
    let x = array![[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]];
    let y: Array2<f64> = array![[-1.0], [-1.0], [1.0], [1.0]];
    let x_test = array![[0.8, 1.2], [-0.7, 0.9], [0.3, -0.2]];
    let y_test: Array2<f64> = array![[-1.0], [1.0], [1.0]];
    let mut overrides: Vec<(String, f64)> = sets.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    overrides.push(("L".into(), 2.0));
    let settings = NngpSettings {
        overrides,
        ..NngpSettings::default()
    };
    let p = nngp_predict(
        theory,
        x.view(),
        y.view(),
        x_test.view(),
        Some(y_test.view()),
        &settings,
    )
    .expect("prediction");
    for j in 0..3 {
        assert!(
            (p.gp.prediction.mean[[j, 0]] - row.mean[j]).abs() < 1e-7,
            "mean {j}: {} vs {}",
            p.gp.prediction.mean[[j, 0]],
            row.mean[j]
        );
        assert!(
            (p.gp.prediction.latent_variance[j] - row.variance[j]).abs() < 1e-7,
            "variance {j}"
        );
    }
    assert!(
        (p.gp.log_marginal_likelihood - row.log_likelihood).abs() < 1e-7,
        "ln p = {}",
        p.gp.log_marginal_likelihood
    );
    let metrics = p.gp.metrics.expect("test targets given");
    assert!(
        (metrics.generalisation_error - row.generalisation_error).abs() < 1e-7,
        "ε_g = {}",
        metrics.generalisation_error
    );
}

#[test]
fn t4_erf_with_bias() {
    let row = Row {
        mean: [-0.27119969, 0.25535685, 0.05772864],
        variance: [0.08194524, 0.07306695, 0.07480800],
        log_likelihood: -16.75480876,
        generalisation_error: 0.73444628,
    };
    check(
        &example("deep_erf"),
        &[
            ("g0", 1.0),
            ("gb0", 0.1),
            ("g", 1.5),
            ("gb", 0.1),
            ("kappa", 0.1),
        ],
        &row,
    );
}

#[test]
fn t4_erf_without_bias_predicts_exactly_zero() {
    let row = Row {
        mean: [0.0, 0.0, 0.0],
        variance: [0.05446298, 0.04424092, 0.01951013],
        log_likelihood: -21.46140328,
        generalisation_error: 1.03940468,
    };
    check(
        &example("deep_erf"),
        &[
            ("g0", 1.0),
            ("gb0", 0.0),
            ("g", 1.5),
            ("gb", 0.0),
            ("kappa", 0.1),
        ],
        &row,
    );
}

#[test]
fn t4_relu() {
    let row = Row {
        mean: [-0.70934181, 0.58116856, 0.11333695],
        variance: [0.11062345, 0.07272336, 0.09481011],
        log_likelihood: -8.53350245,
        generalisation_error: 0.44141009,
    };
    check(
        &example("deep_relu"),
        &[
            ("g0", 1.0),
            ("gb0", 0.1),
            ("g", 2.0),
            ("gb", 0.1),
            ("kappa", 0.1),
        ],
        &row,
    );
}

/// THEORY.md T7: the derived output equation C̃⁽ᴸ⁾ = ½(A Y Yᵀ A − D A), A = (C⁽ᴸ⁾ + κI)⁻¹,
/// evaluated at C⁽ᴸ⁾ = [[0.8, 0.3], [0.3, 0.9]], y = (1, −1), κ = 0.1.
#[test]
fn t7_output_equation_from_the_derivation() {
    use saddle::derive::grad::Variable;
    use saddle::solve::nngp::{Kernels, evaluate_matrix};
    let theory = example("deep_erf");
    let overrides = vec![("L".to_string(), 1.0), ("kappa".to_string(), 0.1)];
    let equations = saddle::derive::derive(&theory, &overrides).expect("derivation");
    let output = equations
        .backward
        .iter()
        .find(|e| e.unknown == Variable::Conjugate(0, vec![1]))
        .expect("output equation");
    let rhs = output.rhs.as_ref().expect("derived in closed form");
    let x = array![[1.0, 0.0], [0.0, 1.0]];
    let y = array![[1.0], [-1.0]];
    let mut kernels = Kernels::default();
    kernels
        .entries
        .insert((0, vec![1]), array![[0.8, 0.3], [0.3, 0.9]]);
    let params: Vec<f64> = theory
        .params
        .iter()
        .map(|p| if p.name == "kappa" { 0.1 } else { p.default })
        .collect();
    let ct = evaluate_matrix(
        &theory,
        &params,
        x.view(),
        Some(y.view()),
        &kernels,
        rhs,
        "C̃[1]",
    )
    .expect("evaluates");
    for (got, want) in [
        (ct[[0, 0]], 0.67062948),
        (ct[[0, 1]], -1.00365798),
        (ct[[1, 0]], -1.00365798),
        (ct[[1, 1]], 0.54183813),
    ] {
        assert!((got - want).abs() < 1e-8, "C̃ = {ct}");
    }
}
