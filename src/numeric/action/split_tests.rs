//! Expectations of jumps and kinks, split at their breakpoints, against closed forms: values
//! and the AD derivatives that flow through the moving breakpoints (the derivative of a jump's
//! expectation is carried entirely by the motion of the cut, which plain Gauss–Hermite cannot
//! see).

use ndarray::Array2;
use num_dual::{Dual64, DualNum};

use super::tests::{compile, params};
use super::{ActionEvaluator, Owner};
use crate::numeric::activation::Activation;
use crate::numeric::bvn::bvn_cdf;
use crate::numeric::pair::{diagonal_expectation, pair_expectation};
use crate::numeric::special::ErfDual;

/// `S = E[φ(h)ᵀ Ct φ(h) | h ~ N(0, C)] = Σ_ab Ct_ab K_φ(C)_ab` for the unit `phi`.
fn pair_theory(phi: &str) -> String {
    format!(
        "theory pair
phi(x) = {phi}
data X, Y
kernel C
conj Ct of C
action S = E[ phi(h)^T Ct phi(h) | h ~ N(0, C) ]
"
    )
}

/// A positive definite C and a non-symmetric Ct, P × P.
fn point(evaluator: &ActionEvaluator, patterns: usize) -> Vec<f64> {
    let mut values = vec![0.0; evaluator.variables().len()];
    for a in 0..patterns {
        for b in 0..patterns {
            let c = if a == b {
                0.8 + 0.3 * a as f64
            } else {
                0.35 - 0.1 * (a + b) as f64
            };
            values[index(evaluator, Owner::Field(0), a, b)] = c;
            values[index(evaluator, Owner::Conjugate(0), a, b)] =
                0.2 + 0.15 * a as f64 - 0.25 * b as f64;
        }
    }
    values
}

fn index(evaluator: &ActionEvaluator, owner: Owner, row: usize, col: usize) -> usize {
    evaluator
        .variables()
        .index_of(owner, &[], row, col)
        .expect("variable exists")
}

/// The gradient of `closed` (a function of all variables) by forward AD, one direction at a time.
fn closed_gradient(values: &[f64], closed: impl Fn(&[Dual64]) -> Dual64) -> (f64, Vec<f64>) {
    let mut gradient = Vec::with_capacity(values.len());
    let mut value = 0.0;
    for k in 0..values.len() {
        let seeded: Vec<Dual64> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| Dual64::new(v, if i == k { 1.0 } else { 0.0 }))
            .collect();
        let result = closed(&seeded);
        value = result.re;
        gradient.push(result.eps);
    }
    (value, gradient)
}

/// Value and gradient of the evaluator against the closed form, relative to the largest entry.
fn assert_matches(
    evaluator: &ActionEvaluator,
    values: &[f64],
    closed: impl Fn(&[Dual64]) -> Dual64,
    tolerance: f64,
    what: &str,
) {
    let (value, gradient) = evaluator.gradient(values).expect("gradient");
    let (want, want_gradient) = closed_gradient(values, closed);
    assert!(
        (value - want).abs() <= tolerance * want.abs().max(1.0),
        "{what}: value {value} vs closed form {want}"
    );
    let scale = want_gradient.iter().fold(1e-3_f64, |m, g| m.max(g.abs()));
    for (k, (got, want)) in gradient.iter().zip(&want_gradient).enumerate() {
        assert!(
            (got - want).abs() <= tolerance * scale,
            "{what}: ∂S/∂(variable {k}) = {got} vs closed form {want}"
        );
    }
}

/// Σ_ab Ct_ab K_ab(sym C) by the pair closed forms.
fn pair_closed_form(
    evaluator: &ActionEvaluator,
    activation: &Activation,
    patterns: usize,
) -> impl Fn(&[Dual64]) -> Dual64 {
    let at = |owner, a, b| index(evaluator, owner, a, b);
    let c: Vec<Vec<usize>> = (0..patterns)
        .map(|a| (0..patterns).map(|b| at(Owner::Field(0), a, b)).collect())
        .collect();
    let ct: Vec<Vec<usize>> = (0..patterns)
        .map(|a| {
            (0..patterns)
                .map(|b| at(Owner::Conjugate(0), a, b))
                .collect()
        })
        .collect();
    let activation = activation.clone();
    move |v: &[Dual64]| {
        let mut total = Dual64::from(0.0);
        for a in 0..patterns {
            for b in 0..patterns {
                let k = if a == b {
                    diagonal_expectation(&activation, v[c[a][a]])
                } else {
                    let cross = (v[c[a][b]] + v[c[b][a]]) * 0.5;
                    pair_expectation(&activation, v[c[a][a]], v[c[b][b]], cross)
                }
                .expect("admissible covariance");
                total += v[ct[a][b]] * k;
            }
        }
        total
    }
}

fn evaluator(source: &str, patterns: usize, order: usize) -> ActionEvaluator {
    let theory = compile(source);
    let x = Array2::<f64>::eye(patterns);
    let params = params(&theory, &[]);
    ActionEvaluator::new(&theory, &params, x.view(), None, order).expect("evaluator")
}

#[test]
fn sign_relu_and_step_pairs_match_their_closed_forms_through_the_cuts() {
    // Plain Gauss–Hermite gets these to a few per cent at best (the ∂/∂C of sign not at all);
    // split at the cuts, order 32 (16 per piece) is exact to rounding.
    let cases = [
        ("sign(x)", Activation::Sign),
        ("relu(x)", Activation::Relu),
        ("step(x - 0.3)", Activation::Step { theta: 0.3 }),
        ("relu(x) + relu(-x)", Activation::Relu),
    ];
    for (phi, activation) in &cases[..3] {
        // Three patterns (a cut that moves with two outer coordinates) for sign only: each
        // gradient entry is one pass over 20·30·30 nodes (order 20, 10 per piece).
        let runs: &[(usize, usize)] = if *phi == "sign(x)" {
            &[(2, 32), (3, 20)]
        } else {
            &[(2, 32)]
        };
        for &(patterns, order) in runs {
            let evaluator = evaluator(&pair_theory(phi), patterns, order);
            let values = point(&evaluator, patterns);
            let closed = pair_closed_form(&evaluator, activation, patterns);
            assert_matches(
                &evaluator,
                &values,
                closed,
                1e-12,
                &format!("{phi}, P = {patterns}"),
            );
        }
    }
    // |x| = relu(x) + relu(−x): two kinks at the same point, merged into one cut.
    let evaluator = evaluator(&pair_theory(cases[3].0), 2, 32);
    let values = point(&evaluator, 2);
    let (value, _) = evaluator.gradient(&values).unwrap();
    // E[|u||v|] = 2/π (√(ab−c²) + c asin(c/√(ab)))
    let (a, b) = (values[index(&evaluator, Owner::Field(0), 0, 0)], 1.1);
    let c = values[index(&evaluator, Owner::Field(0), 0, 1)];
    let ct = |i, j| values[index(&evaluator, Owner::Conjugate(0), i, j)];
    let cross =
        2.0 / std::f64::consts::PI * ((a * b - c * c).sqrt() + c * (c / (a * b).sqrt()).asin());
    let want = ct(0, 0) * a + ct(1, 1) * b + (ct(0, 1) + ct(1, 0)) * cross;
    assert!((value - want).abs() < 1e-12, "{value} vs {want}");
}

/// A threshold unit with a mean: `S = ln E[exp(Qt-tilt) | h ~ N(m, Q)]`, its measure through the
/// mean and the covariance at once.
const THRESHOLD: &str = "theory threshold
param theta = 0.3
param c = 0.9
phi(x) = step(x - theta)
data X, Y
mean m
kernel Q
conj mt of m
conj Qt of Q
action S = ln E[ exp(c * phi(h)^T Qt phi(h)) | h ~ N(m, Q) ] - mt^T m
";

#[test]
fn threshold_cgf_with_a_mean_matches_the_orthant_sum() {
    let evaluator = evaluator(THRESHOLD, 2, 32);
    let theory = evaluator.theory();
    let field = |name: &str| {
        theory
            .fields
            .iter()
            .position(|f| f.name == name)
            .expect("field")
    };
    let (m, q) = (field("m"), field("Q"));
    let conj_q = theory
        .conjugates
        .iter()
        .position(|c| c.name == "Qt")
        .expect("conjugate");
    let var = |owner, row, col| {
        evaluator
            .variables()
            .index_of(owner, &[], row, col)
            .expect("variable")
    };
    let mut values = vec![0.0; evaluator.variables().len()];
    for (row, col, v) in [(0, 0, 0.9), (0, 1, 0.3), (1, 0, 0.2), (1, 1, 1.3)] {
        values[var(Owner::Field(q), row, col)] = v;
        values[var(Owner::Conjugate(conj_q), row, col)] = 0.4 - 0.3 * row as f64 + 0.2 * col as f64;
    }
    values[var(Owner::Field(m), 0, 0)] = 0.1;
    values[var(Owner::Field(m), 1, 0)] = 0.7;
    let (m0, m1) = (var(Owner::Field(m), 0, 0), var(Owner::Field(m), 1, 0));
    let q_at = |r, c| var(Owner::Field(q), r, c);
    let qt_at = |r, c| var(Owner::Conjugate(conj_q), r, c);
    let (theta, c) = (0.3, 0.9);
    let mt: Vec<usize> = evaluator
        .variables()
        .block(
            Owner::Conjugate(
                theory
                    .conjugates
                    .iter()
                    .position(|c| c.name == "mt")
                    .expect("conjugate"),
            ),
            &[],
        )
        .expect("mt")
        .collect();
    let closed = |v: &[Dual64]| {
        let s0 = v[q_at(0, 0)].sqrt();
        let s1 = v[q_at(1, 1)].sqrt();
        let rho = (v[q_at(0, 1)] + v[q_at(1, 0)]) * 0.5 / (s0 * s1);
        let a0 = (v[m0] - theta) / s0;
        let a1 = (v[m1] - theta) / s1;
        let both = bvn_cdf(a0, a1, rho).expect("bvn");
        let (p0, p1) = (a0.norm_cdf(), a1.norm_cdf());
        // n ∈ {0,1}²: the tilt is c nᵀ Qt n.
        let tilt = |n0: f64, n1: f64| {
            (v[qt_at(0, 0)] * n0
                + v[qt_at(1, 1)] * n1
                + (v[qt_at(0, 1)] + v[qt_at(1, 0)]) * n0 * n1)
                * c
        };
        let z = (Dual64::from(1.0) - p0 - p1 + both)
            + (p0 - both) * tilt(1.0, 0.0).exp()
            + (p1 - both) * tilt(0.0, 1.0).exp()
            + both * tilt(1.0, 1.0).exp();
        let linear = mt
            .iter()
            .zip([m0, m1])
            .fold(Dual64::from(0.0), |s, (&t, mm)| s + v[t] * v[mm]);
        z.ln() - linear
    };
    assert_matches(&evaluator, &values, closed, 1e-12, "threshold cgf, P = 2");
}
