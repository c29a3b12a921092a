//! Recurrent and binary theories: THEORY.md T11 (two-time kernels), §6 (i) equal-time RNN
//! kernels = deep kernels to 1e-12, §6 (ii) cross-time kernels vanish for odd φ without bias
//! and input at t = 0 only, T12 (sign units: correlation flow and pattern separation).

mod common;

use common::example;
use ndarray::{Array2, array};
use saddle::solve::nngp::{Kernels, NngpSettings, nngp_kernels};

/// Inputs with gu/d X Xᵀ = [[1, 0.6], [0.6, 1.5]] for gu = d = 2.
fn inputs() -> Array2<f64> {
    array![[1.0, 0.0], [0.6, (1.5f64 - 0.36).sqrt()]]
}

fn kernels(theory: &saddle::Theory, x: &Array2<f64>, sets: &[(&str, f64)]) -> Kernels {
    let overrides = sets.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    nngp_kernels(
        theory,
        x.view(),
        None,
        &NngpSettings {
            overrides,
            ..NngpSettings::default()
        },
    )
    .expect("kernels")
}

fn c12(k: &Kernels, t: i64, s: i64) -> f64 {
    k.entries[&(0, vec![t, s])][[0, 1]]
}

/// C₁₂(t, s) of a recurrent example against a THEORY.md T11 table (rows t, columns s).
fn check_t11(example_name: &str, expected: [[f64; 4]; 4]) {
    let k = kernels(
        &example(example_name),
        &inputs(),
        &[("g", 1.5), ("gb", 0.1), ("gu", 2.0)],
    );
    for t in 0..4 {
        for s in 0..4 {
            let want = expected[t as usize][s as usize];
            assert!(
                (c12(&k, t, s) - want).abs() < 6e-7,
                "{example_name}: C12({t},{s}) = {}, expected {want}",
                c12(&k, t, s)
            );
        }
    }
}

#[test]
fn t11_input_at_t0_only() {
    check_t11(
        "recurrent_erf",
        [
            [0.700000, 0.100000, 0.100000, 0.100000],
            [0.100000, 0.446742, 0.159247, 0.163079],
            [0.100000, 0.154155, 0.400411, 0.212391],
            [0.100000, 0.156377, 0.206359, 0.398329],
        ],
    );
}

#[test]
fn t11_same_input_at_every_step() {
    check_t11(
        "recurrent_erf_driven",
        [
            [0.700000, 0.700000, 0.700000, 0.700000],
            [0.700000, 1.046742, 0.997765, 0.992523],
            [0.700000, 0.993622, 1.083527, 1.058102],
            [0.700000, 0.985610, 1.052963, 1.079710],
        ],
    );
}

#[test]
fn equal_time_recurrent_kernels_equal_the_deep_kernels() {
    // Deep erf with C[0] = X Xᵀ + gb (gb0 = gb, g0 = d) against the RNN's C[t, t].
    let x = inputs();
    let rnn = kernels(
        &example("recurrent_erf"),
        &x,
        &[("g", 1.5), ("gb", 0.1), ("gu", 2.0), ("T", 3.0)],
    );
    let dnn = kernels(
        &example("deep_erf"),
        &x,
        &[
            ("g", 1.5),
            ("gb", 0.1),
            ("g0", 2.0),
            ("gb0", 0.1),
            ("L", 3.0),
        ],
    );
    for t in 1..=3 {
        let a = &rnn.entries[&(0, vec![t, t])];
        let b = &dnn.entries[&(0, vec![t])];
        let diff = (a - b).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
        assert!(diff <= 1e-12, "t = {t}: max difference {diff:e}");
    }
}

#[test]
fn cross_time_kernels_vanish_for_odd_units_without_bias_and_input_at_t0() {
    let k = kernels(
        &example("recurrent_erf"),
        &inputs(),
        &[("g", 1.5), ("gb", 0.0), ("gu", 2.0)],
    );
    for t in 0..4 {
        for s in 0..4 {
            if t != s {
                let m = &k.entries[&(0, vec![t, s])];
                assert!(m.iter().all(|v| v.abs() < 1e-15), "C[{t},{s}] = {m}");
            }
        }
    }
    assert!(
        c12(&k, 2, 2).abs() > 0.1,
        "equal-time kernels stay non-zero"
    );
}

#[test]
fn t12_sign_units_separate_patterns_then_forget() {
    // Three unit-norm patterns: overlaps ρ(1,2) = 0.99 (same class), ρ(1,3) = 0.8 (other class).
    let rho_23: f64 = 0.8 * 0.99 + (1.0f64 - 0.64).sqrt() * (1.0f64 - 0.99f64 * 0.99).sqrt() * 0.5;
    let gram = array![[1.0, 0.99, 0.8], [0.99, 1.0, rho_23], [0.8, rho_23, 1.0]];
    let l = cholesky3(&gram);
    let theory = example("binary_sign");
    let k = kernels(
        &theory,
        &l,
        &[("g", 1.0), ("gb", 0.0), ("g0", 3.0), ("L", 8.0)],
    );
    let expected = [
        0.190000, 0.319559, 0.325665, 0.255421, 0.177568, 0.117220, 0.075738, 0.048508, 0.030956,
    ];
    for (layer, want) in expected.iter().enumerate() {
        let m = &k.entries[&(0, vec![layer as i64])];
        let delta = m[[0, 1]] - m[[0, 2]];
        assert!(
            (delta - want).abs() < 1e-6,
            "Δ({layer}) = {delta}, expected {want}"
        );
    }
}

fn cholesky3(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum();
            l[[i, j]] = if i == j {
                (a[[i, i]] - s).sqrt()
            } else {
                (a[[i, j]] - s) / l[[j, j]]
            };
        }
    }
    l
}

#[test]
fn t2b_threshold_units_mean_fields_and_second_moments() {
    // binary_threshold, first layer: m_α = Φ(−θ/√K_αα), Q_αβ = Φ₂(−θ/√K_αα, −θ/√K_ββ; ρ).
    let theory = example("binary_threshold");
    for (rho, q12) in [(0.0, 0.09519541), (0.5, 0.16331952), (0.9, 0.24532589)] {
        let x = array![[1.0, 0.0], [rho, (1.0f64 - rho * rho).sqrt()]];
        let k = kernels(&theory, &x, &[("theta", 0.5), ("g0", 2.0), ("L", 1.0)]);
        let q = &k.entries[&(1, vec![1])];
        let m = &k.entries[&(0, vec![1])];
        assert!(
            (q[[0, 1]] - q12).abs() < 6e-9,
            "ρ = {rho}: Q12 = {}",
            q[[0, 1]]
        );
        // Φ(−0.5) = 0.3085375387259869
        assert!(
            (m[[0, 0]] - 0.3085375387259869).abs() < 1e-12,
            "m = {}",
            m[[0, 0]]
        );
        assert!(
            (q[[0, 0]] - 0.3085375387259869).abs() < 1e-12,
            "Q11 = {}",
            q[[0, 0]]
        );
    }
}

#[test]
fn threshold_units_with_mean_couplings_follow_the_shifted_gaussian() {
    // Second layer: h ~ N(J m[1], g Q[1]): m[2]_α = Φ((J m[1]_α − θ)/√(g Q[1]_αα)).
    let theory = example("binary_threshold");
    let x = array![[1.0, 0.0], [0.3, (1.0f64 - 0.09).sqrt()]];
    let (g, j, theta) = (1.5, -0.8, 0.2);
    let k = kernels(
        &theory,
        &x,
        &[
            ("theta", theta),
            ("g0", 2.0),
            ("g", g),
            ("J", j),
            ("L", 2.0),
        ],
    );
    let m1 = &k.entries[&(0, vec![1])];
    let q1 = &k.entries[&(1, vec![1])];
    let m2 = &k.entries[&(0, vec![2])];
    let z = (j * m1[[0, 0]] - theta) / (g * q1[[0, 0]]).sqrt();
    let phi = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
    assert!(
        (m2[[0, 0]] - phi).abs() < 1e-12,
        "m2 = {}, expected {phi}",
        m2[[0, 0]]
    );
}
