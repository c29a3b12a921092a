//! Every example theory evaluates at P = 2; derivatives have the right size, are finite and
//! agree with independent routes (num-dual's own all-pairs Hessian, heap-backed duals, finite
//! differences); failures are errors.

use nalgebra::DVector;
use ndarray::{Array2, array};
use num_dual::{Dual2DVec64, DualDVec64, hessian as num_dual_hessian};

use super::tests::{compile, mixed_derivative, params, set};
use super::{ActionError, ActionEvaluator, DenseError, Owner};
use crate::check::Theory;
use crate::check::ir::FieldKind;

fn example(name: &str) -> Theory {
    let source = std::fs::read_to_string(format!("examples/{name}.action")).unwrap();
    compile(&source)
}

fn data() -> (Array2<f64>, Array2<f64>) {
    (array![[1.0, 0.4], [-0.3, 1.1]], array![[1.0], [-0.5]])
}

fn evaluator(name: &str, overrides: &[(&str, f64)], order: usize) -> ActionEvaluator {
    let theory = example(name);
    let params = params(&theory, overrides);
    let (x, y) = data();
    ActionEvaluator::new(&theory, &params, x.view(), Some(y.view()), order).unwrap()
}

/// A point where every covariance is positive definite: kernels near [[0.8, 0.2], [0.2, 0.9]]
/// (not exactly symmetric: the full-matrix variables are independent), small conjugates.
fn point(evaluator: &ActionEvaluator) -> Vec<f64> {
    let theory = evaluator.theory();
    let mut seed: u64 = 12345;
    let mut jitter = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 11) as f64 / (1_u64 << 53) as f64 - 0.5
    };
    evaluator
        .variables()
        .as_slice()
        .iter()
        .map(|v| match v.owner {
            Owner::Field(f) if theory.fields[f].kind == FieldKind::Kernel => {
                let base = if v.row == v.col {
                    0.8 + 0.1 * v.row as f64
                } else {
                    0.2
                };
                base + 0.02 * jitter()
            }
            Owner::Field(_) => 0.3 + 0.1 * v.row as f64,
            Owner::Conjugate(_) => 0.4 * jitter(),
        })
        .collect()
}

/// An example, its parameter overrides and the quadrature order.
type Case = (&'static str, &'static [(&'static str, f64)], usize);

const CASES: [Case; 8] = [
    ("deep_linear", &[("L", 2.0)], 6),
    ("deep_erf", &[("L", 2.0)], 6),
    ("deep_relu", &[("L", 2.0)], 6),
    ("deep_tanh", &[("L", 2.0)], 6),
    ("binary_sign", &[("L", 2.0)], 6),
    ("binary_threshold", &[("L", 2.0)], 6),
    ("recurrent_erf", &[("T", 2.0)], 3),
    ("recurrent_erf_driven", &[("T", 2.0)], 3),
];

#[test]
fn every_example_has_finite_symmetric_derivatives() {
    for (name, overrides, order) in CASES {
        let evaluator = evaluator(name, overrides, order);
        let n = evaluator.variables().len();
        let at = point(&evaluator);
        let value = evaluator
            .action(&at)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (value_g, gradient) = evaluator.gradient(&at).unwrap();
        let (value_h, gradient_h, hessian) = evaluator.hessian(&at).unwrap();
        assert!(value.is_finite(), "{name}: {value}");
        let same = |other: f64| (other - value).abs() <= 1e-12 * value.abs().max(1.0);
        assert!(
            same(value_g) && same(value_h),
            "{name}: {value} {value_g} {value_h}"
        );
        assert_eq!((gradient.len(), hessian.len()), (n, n), "{name}");
        for i in 0..n {
            assert!(
                (gradient[i] - gradient_h[i]).abs() < 1e-12,
                "{name}: gradient {i}"
            );
            assert_eq!(hessian[i].len(), n);
            assert!(hessian[i].iter().all(|h| h.is_finite()), "{name}: row {i}");
        }
        // num-dual's single-pass second-order type (Dual2DVec64, heap-backed) gives all n²
        // entries at once: an independent route to the same Hessian.
        let (_, _, single_pass) = num_dual_hessian(
            |v: DVector<Dual2DVec64>| {
                let values: Vec<Dual2DVec64> = v.iter().cloned().collect();
                evaluator
                    .action(&values)
                    .unwrap_or(Dual2DVec64::from(f64::NAN))
            },
            &DVector::from_vec(at.clone()),
        );
        // The lower triangle by its own passes (ε₁ = e_i, ε₂ = e_j with i > j).
        let mut asymmetry: f64 = 0.0;
        for i in 0..n {
            for j in 0..n {
                let error = (single_pass[(i, j)] - hessian[i][j]).abs();
                assert!(error < 1e-12, "{name}: ({i}, {j}) {error:e}");
                if i > j && (i + j) % 3 == 0 {
                    let lower = mixed_derivative(&evaluator, &at, i, j);
                    asymmetry = asymmetry.max((lower - hessian[j][i]).abs());
                }
            }
        }
        assert!(asymmetry < 1e-10, "{name}: asymmetry {asymmetry:e}");
    }
}

#[test]
fn gradient_agrees_with_heap_duals_and_finite_differences() {
    let evaluator = evaluator("deep_tanh", &[("L", 2.0)], 10);
    let at = point(&evaluator);
    let n = at.len();
    let (_, gradient) = evaluator.gradient(&at).unwrap();
    // One pass with a heap-backed dual vector carrying all n directions.
    let duals: Vec<DualDVec64> = (0..n)
        .map(|i| {
            let mut unit = DVector::zeros(n);
            unit[i] = 1.0;
            DualDVec64::new(at[i], num_dual::Derivative::some(unit))
        })
        .collect();
    let single = evaluator.action(&duals).unwrap();
    let single = single.eps.unwrap_generic(nalgebra::Dyn(n), nalgebra::U1);
    // Central differences, step 1e-5: truncation ~1e-10 · S''', rounding ~1e-11 / 1e-5.
    for i in 0..n {
        assert!((single[i] - gradient[i]).abs() < 1e-12, "heap dual {i}");
        let shifted = |h: f64| {
            let mut x = at.clone();
            x[i] += h;
            evaluator.action(&x).unwrap()
        };
        let difference = (shifted(1e-5) - shifted(-1e-5)) / 2e-5;
        assert!(
            (difference - gradient[i]).abs() < 1e-6,
            "finite difference {i}"
        );
    }
}

#[test]
fn two_time_covariance_is_the_symmetrised_block_matrix() {
    // Cross-time kernels need not be symmetric: S depends on C[1, 2] and C[2, 1] only through
    // ½(C[1, 2] + C[2, 1]ᵀ), so ∂S/∂C[1, 2](0, 1) = ∂S/∂C[2, 1](1, 0).
    let evaluator = evaluator("recurrent_erf", &[("T", 2.0)], 4);
    let mut at = point(&evaluator);
    set(
        &evaluator,
        &mut at,
        Owner::Field(0),
        &[1, 2],
        &[0.3, 0.1, 0.25, 0.35],
    );
    let (_, gradient) = evaluator.gradient(&at).unwrap();
    let index = |t, s, r, c| {
        evaluator
            .variables()
            .index_of(Owner::Field(0), &[t, s], r, c)
            .unwrap()
    };
    for (r, c) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let (a, b) = (gradient[index(1, 2, r, c)], gradient[index(2, 1, c, r)]);
        assert!((a - b).abs() < 1e-13, "({r}, {c}): {a} vs {b}");
    }
}

#[test]
fn one_time_family_equals_the_single_layer_network() {
    // recurrent_erf at T = 1 is deep_erf at L = 1 with g0 = gu, gb0 = gb: the family
    // h ~ N(0, C) reduces to the single vector h[0] ~ N(0, C[0, 0]).
    let recurrent = evaluator("recurrent_erf", &[("T", 1.0)], 12);
    let deep = evaluator("deep_erf", &[("L", 1.0), ("g0", 1.0), ("gb0", 0.1)], 12);
    let at = point(&recurrent);
    assert_eq!(deep.variables().len(), at.len());
    let (value_r, gradient_r) = recurrent.gradient(&at).unwrap();
    let (value_d, gradient_d) = deep.gradient(&at).unwrap();
    assert!((value_r - value_d).abs() < 1e-13, "{value_r} vs {value_d}");
    for (r, d) in gradient_r.iter().zip(&gradient_d) {
        assert!((r - d).abs() < 1e-12);
    }
}

#[test]
fn variables_follow_the_declared_layout() {
    let evaluator = evaluator("binary_threshold", &[("L", 2.0)], 2);
    let variables = evaluator.variables();
    // m[1..2] (2 each), Q[1..2] (4 each), mt (2 each), Qt (4 each).
    assert_eq!(variables.len(), 24);
    assert_eq!(variables.index_of(Owner::Field(0), &[2], 1, 0), Some(3));
    assert_eq!(variables.index_of(Owner::Field(0), &[2], 1, 1), None);
    assert_eq!(variables.index_of(Owner::Field(1), &[1], 1, 0), Some(6));
    assert_eq!(variables.get(6).unwrap().to_string(), "Q[1](1, 0)");
    let deep = evaluator_defaults("deep_erf");
    // C[0] is defined: C[1..3] and Ct[1..3] remain.
    assert_eq!(deep.variables().len(), 24);
    assert_eq!(deep.variables().block(Owner::Field(0), &[0]), None);
}

fn evaluator_defaults(name: &str) -> ActionEvaluator {
    evaluator(name, &[], 2)
}

#[test]
fn failures_are_errors_not_panics() {
    let theory = example("deep_erf");
    let (x, y) = data();
    let mut p = params(&theory, &[("L", 2.0)]);
    let no_targets = ActionEvaluator::new(&theory, &p, x.view(), None, 4).unwrap();
    let at = point(&no_targets);
    assert_eq!(no_targets.action(&at), Err(ActionError::MissingTargets));
    assert!(matches!(
        no_targets.action(&at[1..]),
        Err(ActionError::ValueCount { .. })
    ));

    let deep = ActionEvaluator::new(&theory, &p, x.view(), Some(y.view()), 4).unwrap();
    let mut bad = point(&deep);
    set(
        &deep,
        &mut bad,
        Owner::Field(0),
        &[1],
        &[1.0, 2.0, 2.0, 1.0],
    );
    let error = deep.gradient(&bad).unwrap_err();
    assert!(
        matches!(&error, ActionError::LinearAlgebra { context, source: DenseError::NotPositiveDefinite { .. } }
            if context.what.contains("covariance of the expectation over `h`")),
        "{error}"
    );

    let recurrent = evaluator("recurrent_erf", &[("T", 3.0)], 20);
    let error = recurrent.action(&point(&recurrent)).unwrap_err();
    assert!(
        matches!(
            error,
            ActionError::TooManyNodes {
                order: 20,
                dimensions: 6,
                ..
            }
        ),
        "{error}"
    );

    p[theory.param("L").unwrap()] = 1.5;
    assert!(matches!(
        ActionEvaluator::new(&theory, &p, x.view(), Some(y.view()), 4),
        Err(ActionError::NonIntegerParam { .. })
    ));
    assert!(matches!(
        ActionEvaluator::new(&theory, &p[1..], x.view(), None, 4),
        Err(ActionError::ParamCount { .. })
    ));
    let nan = array![[f64::NAN, 0.0], [0.0, 1.0]];
    let p = params(&theory, &[]);
    assert!(matches!(
        ActionEvaluator::new(&theory, &p, nan.view(), None, 4),
        Err(ActionError::Data { .. })
    ));
    assert!(matches!(
        ActionEvaluator::new(&theory, &p, x.view(), Some(array![[1.0]].view()), 4),
        Err(ActionError::Data { .. })
    ));
}
