//! The example programs that embed a theory with `saddle_macros::theory!` (a depth scan, a
//! recurrent cross-time table, a pattern-separation curve) give what the interpreter gives.

use saddle::solve::nngp::{NngpSettings, nngp_kernels};
use saddle::solve::predict::nngp_predict;

// The examples are binaries; their functions are read here as modules.
#[path = "../examples/depth_scan.rs"]
mod depth_scan;
#[path = "../examples/pattern_separation.rs"]
mod pattern_separation;
#[path = "../examples/recurrent_table.rs"]
mod recurrent_table;

fn interpreted(overrides: &[(&str, f64)]) -> NngpSettings {
    NngpSettings {
        overrides: overrides.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        ..Default::default()
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(1.0)
}

#[test]
fn depth_scan_matches_the_interpreter() {
    let split = depth_scan::digits(40, 40).expect("digits");
    let depths = [1, 3, 8];
    for g in [1.5, 4.0] {
        let rows =
            depth_scan::depth_scan(depth_scan::DeepErf::default().with_g(g), &split, &depths)
                .expect("scan");
        for row in rows {
            let reference = nngp_predict(
                depth_scan::DeepErf::theory(),
                split.x_train.view(),
                split.y_train.view(),
                split.x_test.view(),
                Some(split.y_test.view()),
                &interpreted(&[("g", g), ("L", row.depth as f64)]),
            )
            .expect("interpreted");
            let metrics = reference.gp.metrics.expect("metrics");
            assert!(close(row.test_mse, metrics.mse), "{row:?} vs {metrics:?}");
            assert_eq!(row.test_accuracy, metrics.accuracy);
            assert!(close(
                row.log_marginal_likelihood,
                reference.gp.log_marginal_likelihood
            ));
            assert!(metrics.accuracy > 0.8, "0 vs 3 is easy: {metrics:?}");
        }
    }
}

#[test]
fn recurrent_table_matches_the_interpreter() {
    let x = recurrent_table::two_digits().expect("digits");
    let t = 4;
    let table = recurrent_table::cross_time_table(
        recurrent_table::RecurrentErf::default().with_T(t),
        x.view(),
    )
    .expect("table");
    let kernels = nngp_kernels(
        recurrent_table::RecurrentErf::theory(),
        x.view(),
        None,
        &interpreted(&[("T", t as f64)]),
    )
    .expect("interpreted");
    for a in 0..=t {
        for b in 0..=t {
            let c = &kernels.entries[&(0, vec![a as i64, b as i64])];
            assert!(close(table.between[[a, b]], c[[0, 1]]), "C[{a},{b}]");
        }
        assert!(close(
            table.variance[a],
            kernels.entries[&(0, vec![a as i64, a as i64])][[0, 0]]
        ));
    }
    // the equal-time kernels are the deep network's (THEORY.md §6): C(1, 1) of the recurrent
    // network is one erf layer on C(0, 0)
    assert!(table.between[[1, 1]] > 0.0);
}

#[test]
fn pattern_separation_matches_the_interpreter() {
    let x = pattern_separation::two_digits().expect("digits");
    // θ = 1 silences the network by layer 4 (a zero input variance downstream)
    for theta in [0.0, 1.0] {
        let theory = pattern_separation::BinaryThreshold::default()
            .with_L(5)
            .with_theta(theta);
        let kernels = nngp_kernels(
            pattern_separation::BinaryThreshold::theory(),
            x.view(),
            None,
            &interpreted(&[("L", 5.0), ("theta", theta)]),
        )
        .expect("interpreted");
        let curve = pattern_separation::separation(theory, x.view()).expect("curve");
        for (l, (delta, m)) in curve.iter().enumerate() {
            let q = &kernels.entries[&(1, vec![l as i64 + 1])];
            let activity = kernels.entries[&(0, vec![l as i64 + 1])][[0, 0]];
            let expected = q[[0, 0]] + q[[1, 1]] - 2.0 * q[[0, 1]];
            assert!(
                close(*delta, expected),
                "θ = {theta}, l = {}: {delta} vs {expected}",
                l + 1
            );
            assert!(close(*m, activity));
            assert!(*delta >= 0.0);
        }
    }
}
