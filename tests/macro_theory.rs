//! `saddle_macros::theory!`: the derivation at compile time and the generated code, checked
//! against the interpreter on every example theory.
//!
//! Three checks per theory:
//! - every generated pair formula equals the interpreter's evaluation of the same derived
//!   formula (`numeric::program::Program`) to 1e-12 at random valid kernel entries, and every
//!   closed-form template was generated;
//! - every generated G equals the forward-mode derivative (num-dual) of the generated map,
//!   ½ of it in an off-diagonal slot (full-matrix convention), to 1e-10;
//! - the NNGP kernels computed with the generated formulas equal the interpreter's (to 1e-12,
//!   or within the Mehler expansion's own error bound where the interpreter has no closed
//!   form), and the generated formulas were used where the fused kernel maps do not apply.

use std::collections::HashMap;

use egg::RecExpr;
use ndarray::Array2;
use num_dual::Dual64;
use saddle::derive::closed_form::{PairCache, pair_template};
use saddle::generated::GeneratedTheory;
use saddle::numeric::program::Program;
use saddle::solve::nngp::{NngpSettings, nngp_kernels};
use saddle::symbolic::lang::Math;

saddle_macros::theory!(DeepErf = "examples/deep_erf.action");
saddle_macros::theory!(DeepRelu = "examples/deep_relu.action");
saddle_macros::theory!(DeepTanh = "examples/deep_tanh.action");
saddle_macros::theory!(DeepLinear = "examples/deep_linear.action");
saddle_macros::theory!(BinarySign = "examples/binary_sign.action");
saddle_macros::theory!(BinaryThreshold = "examples/binary_threshold.action");
saddle_macros::theory!(RecurrentErf = "examples/recurrent_erf.action");
saddle_macros::theory!(RecurrentErfDriven = "examples/recurrent_erf_driven.action");

// A user activation without a fast path in the run time: the Gaussian bump, whose pair
// expectation the derivation puts in closed form (the interpreter expands it in Hermite
// polynomials); and, inline, a two-parameter version of it.
saddle_macros::theory!(DeepBump = "examples/deep_bump.action");
saddle_macros::theory!(
    DeepBump2 = r#"
theory deep_bump2
param a = 1.3
param s = 0.7
param gb = 0.1
param kappa = 0.1
param N = 100
param L: int = 3
phi(x) = a * exp(-s * x^2)
data X, Y
kernel C[l] for l in 0..=L
conj Ct[l] of C[l] for l in 1..=L
C[0] = X X^T / d
action S = sum(l in 1..=L, - tr(Ct[l]^T C[l])
               + N * ln E[ exp(phi(h)^T Ct[l] phi(h) / N) | h ~ N(0, C[l-1]) ]
               + gb * tr(Ct[l]^T ones))
         - 1/2 * tr(Y^T inv(C[L] + kappa * I) Y) - D/2 * logdet(C[L] + kappa * I)
"#
);

saddle_macros::theory!(
    RecurrentTanh = r#"
theory recurrent_tanh
param g = 1.5
param gb = 0.1
param gu = 1.0
param kappa = 0.1
param N = 100
param T: int = 3
phi(x) = tanh(x)
data X, Y
kernel C[t, s]  for t in 0..=T, s in 0..=T
conj   Ct[t, s] of C[t, s] for t in 1..=T, s in 1..=T
C[0, 0] = gu / d * X X^T + gb
C[0, s] = gb * ones for s in 1..=T
C[t, 0] = gb * ones for t in 1..=T
action S = sum(t in 1..=T, s in 1..=T, - tr(Ct[t, s]^T C[t, s]) + gb * tr(Ct[t, s]^T ones))
         + N * ln E[ exp(g / N * sum(t in 1..=T, s in 1..=T, phi(h[t-1])^T Ct[t, s] phi(h[s-1])))
                     | h ~ N(0, C) ]
         - 1/2 * tr(Y^T inv(C[T, T] + kappa * I) Y)
         - D/2 * logdet(C[T, T] + kappa * I)
"#
);

/// A small deterministic input set: P patterns, d features, entries in (−1, 1).
fn inputs(p: usize, d: usize) -> Array2<f64> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    Array2::from_shape_fn((p, d), |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    })
}

/// Deterministic uniform numbers in (0, 1).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random valid slot values: one variance pair and a covariance inside the Cauchy–Schwarz
/// bound shared by every field (a cross-time block pairs the diagonals of two others), means
/// in (−1, 1); on a diagonal pair (`same`) both variances and the covariance are equal.
fn slot_values(slots: &[&str], rng: &mut Uniform, same: bool) -> Vec<f64> {
    let a = 0.2 + 2.0 * rng.next();
    let (b, c) = if same {
        (a, a)
    } else {
        let b = 0.2 + 2.0 * rng.next();
        (b, (2.0 * rng.next() - 1.0) * 0.9 * (a * b).sqrt())
    };
    let means: Vec<f64> = (0..slots.len()).map(|_| 2.0 * rng.next() - 1.0).collect();
    slots
        .iter()
        .zip(means)
        .map(
            |(s, mean)| match s.rsplit_once('_').map(|(_, suffix)| suffix) {
                Some("aa") => a,
                Some("bb") => b,
                Some("ab") => c,
                // means and mean-field activities: on a diagonal pair both are the same pattern's
                Some("b") if same => f64::NAN,
                _ => mean,
            },
        )
        .collect()
}

fn closed(formula: &RecExpr<Math>) -> bool {
    !formula
        .as_ref()
        .iter()
        .any(|n| matches!(n, Math::Expect1(_) | Math::Expect2(_) | Math::Delta(_)))
}

/// Generated formulas vs the interpreter on the same derived formula, and G vs AD.
fn check_formulas<T: GeneratedTheory>() {
    let theory = T::theory();
    let equations = saddle::derive::derive_forward(theory, &[]).expect("derives");
    let params = theory.bind(&[]).expect("defaults bind");
    let (p, d, outputs) = (7, 5, 2);
    let c = saddle::generated::constants(&params, p, d, Some(outputs));
    let mut named: HashMap<String, f64> = theory
        .params
        .iter()
        .zip(&params)
        .map(|(p, v)| (p.name.clone(), *v))
        .collect();
    named.insert("P".into(), p as f64);
    named.insert("d".into(), d as f64);
    named.insert("D".into(), outputs as f64);
    let mut cache = PairCache::default();
    let mut rng = Uniform(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for eq in &equations.forward {
        let Some(template) = pair_template(theory, eq, &mut cache) else {
            continue;
        };
        let map = T::PAIR_MAPS
            .iter()
            .find(|m| m.key == template.key)
            .unwrap_or_else(|| panic!("{}: {} was not generated", T::NAME, template.formula));
        assert_eq!(map.closed_form, closed(&template.formula));
        let program = Program::compile(&template.formula, &named, 80).expect("compiles");
        // the derivation's input: the pair expectation before simplification, evaluated by
        // the interpreter's own closed forms or Gauss–Hermite quadrature
        let raw: RecExpr<Math> = template.key.parse().expect("a template parses");
        let raw = Program::compile(&raw, &named, 80).expect("compiles");
        for trial in 0..40 {
            let same = trial % 8 == 0;
            let mut values = slot_values(map.slots, &mut rng, same);
            if same {
                // m_b is m_a on a diagonal pair
                for (i, s) in map.slots.iter().enumerate() {
                    if let Some(head) = s.strip_suffix("_b") {
                        let j = map.slots.iter().position(|t| *t == format!("{head}_a"));
                        values[i] = j.map_or(0.3, |j| values[j]);
                    }
                }
            }
            let generated = (map.eval)(&c, &values, same);
            let eval = |program: &Program| {
                let slots: Vec<f64> = program
                    .slots
                    .iter()
                    .map(|s| {
                        let i = map.slots.iter().position(|t| t == s).expect("same slots");
                        values[i]
                    })
                    .collect();
                program.eval(&slots, same)
            };
            let before = eval(&raw).expect("the pair expectation evaluates");
            // On a diagonal pair a simplified closed form with arccos or Φ₂ is ill-conditioned
            // in the last bit of ρ (see `saddle::generated`), which the generated code snaps,
            // while quadrature of the unsimplified form meets a singular covariance: there the
            // nearer of the two interpreters is the reference.
            let interpreted = match eval(&program) {
                Ok(simplified)
                    if !same || (simplified - generated).abs() <= (before - generated).abs() =>
                {
                    simplified
                }
                // the interpreter's Φ₂ refuses ρ = 1 + 2e-16 from the simplified form
                Err(_) if !same => panic!("{}: the simplified formula does not evaluate", T::NAME),
                _ => before,
            };
            assert!(
                (generated - interpreted).abs() <= 1e-12 * interpreted.abs().max(1.0),
                "{} {}: generated {generated} vs interpreted {interpreted} at {values:?}",
                T::NAME,
                template.key
            );
            // Gauss–Hermite of order 80 on a singular covariance (diagonal pairs) is good to
            // about 1e-10; elsewhere to rounding
            let quadrature = if same { 1e-9 } else { 1e-10 };
            assert!(
                (generated - before).abs() <= quadrature * before.abs().max(1.0),
                "{} {}: generated {generated} vs the unsimplified pair expectation {before}",
                T::NAME,
                template.key
            );
            // G against the derivative of the generated map (off-diagonal pairs: the
            // kinks of sign/step sit on the diagonal)
            if same {
                continue;
            }
            for g in T::PAIR_JACOBIANS.iter().filter(|g| g.key == map.key) {
                let i = map.slots.iter().position(|s| *s == g.slot).expect("slot");
                let duals: Vec<Dual64> = values
                    .iter()
                    .enumerate()
                    .map(|(j, v)| Dual64::new(*v, if j == i { 1.0 } else { 0.0 }))
                    .collect();
                let derivative = (map.eval_dual)(&c, &duals, false).eps;
                let expected = if g.slot.ends_with("_ab") {
                    derivative / 2.0
                } else {
                    derivative
                };
                let got = (g.eval)(&c, &values, false);
                if map.closed_form {
                    // both exact: the symbolic derivative and AD through the generated map
                    assert!(
                        (got - expected).abs() <= 1e-10 * expected.abs().max(1.0),
                        "{} G in {}: generated {got} vs AD {expected}",
                        T::NAME,
                        g.slot
                    );
                } else {
                    // by quadrature, Price's form of G and the derivative of the quadrature
                    // converge at different rates (tanh: 1.5e-9 apart in the αβ slot, 4e-5
                    // in αα at order 80, where φ'' enters); the reference is the
                    // interpreter on the same G formula with the same rule
                    let formula = template.jacobian[g.slot].as_ref().expect("derived");
                    let program = Program::compile(formula, &named, 80).expect("compiles");
                    let reference = eval(&program).expect("evaluates");
                    assert!(
                        (got - reference).abs() <= 1e-12 * reference.abs().max(1.0),
                        "{} G in {}: generated {got} vs interpreted {reference}",
                        T::NAME,
                        g.slot
                    );
                    assert!((got - expected).abs() <= 1e-3 * expected.abs().max(1e-3));
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "{}: no generated formula was checked", T::NAME);
}

/// NNGP kernels with the generated formulas vs the interpreter.
fn check_nngp<T: GeneratedTheory>(theory_values: &T, expect_native: bool) {
    let x = inputs(9, 6);
    let settings = NngpSettings {
        overrides: theory_values.overrides(),
        native: T::PAIR_MAPS,
        ..NngpSettings::default()
    };
    let generated = nngp_kernels(T::theory(), x.view(), None, &settings).expect("generated NNGP");
    let interpreted = nngp_kernels(
        T::theory(),
        x.view(),
        None,
        &NngpSettings {
            overrides: theory_values.overrides(),
            ..Default::default()
        },
    )
    .expect("interpreted NNGP");
    assert_eq!(
        !generated.native.is_empty(),
        expect_native,
        "{}: entries computed by generated code: {:?}",
        T::NAME,
        generated.native
    );
    assert!(interpreted.native.is_empty());
    for (key, value) in &interpreted.entries {
        let other = &generated.entries[key];
        // where the interpreter expands in Hermite polynomials, its error bound is the
        // tolerance; else both evaluate the same closed form
        let bound = interpreted
            .expansions
            .values()
            .map(|r| r.worst_bound)
            .fold(0.0, f64::max);
        for (a, b) in value.iter().zip(other.iter()) {
            assert!(
                (a - b).abs() <= 1e-12 * a.abs().max(1.0) + 4.0 * bound,
                "{} {key:?}: interpreted {a} vs generated {b} (Mehler bound {bound:e})",
                T::NAME
            );
        }
    }
}

#[test]
fn the_struct_carries_the_parameters() {
    let t = DeepErf::default();
    assert_eq!((t.g, t.gb, t.kappa, t.L), (1.5, 0.1, 0.1, 3));
    let t = t.with_L(5).with_g(2.0);
    assert_eq!((t.L, t.g), (5, 2.0));
    assert_eq!(DeepErf::NAME, "deep_erf");
    assert_eq!(DeepErf::theory().params.len(), DeepErf::PARAMS.len());
    assert!(DeepErf::SOURCE.contains("theory deep_erf"));
    assert_eq!(DeepBump::NAME, "deep_bump");
    assert_eq!(
        t.overrides()
            .iter()
            .find(|(n, _)| n == "L")
            .map(|(_, v)| *v),
        Some(5.0)
    );
}

#[test]
fn generated_formulas_equal_the_interpreted_derivation() {
    check_formulas::<DeepErf>();
    check_formulas::<DeepRelu>();
    check_formulas::<DeepLinear>();
    check_formulas::<BinarySign>();
    check_formulas::<BinaryThreshold>();
    check_formulas::<RecurrentErf>();
    check_formulas::<RecurrentErfDriven>();
    check_formulas::<DeepBump>();
    check_formulas::<DeepBump2>();
}

#[test]
fn without_a_closed_form_the_integrands_are_generated() {
    // tanh: quadrature of a generated integrand; the fused Mehler expansion stays in use
    assert!(!DeepTanh::PAIR_MAPS.is_empty());
    assert!(DeepTanh::PAIR_MAPS.iter().all(|m| !m.closed_form));
    check_formulas::<DeepTanh>();
    check_nngp(&DeepTanh::default(), false);
    // recurrent tanh: the cross-time blocks have no fused path, so generated quadrature runs
    check_formulas::<RecurrentTanh>();
    check_nngp(&RecurrentTanh::default(), true);
}

#[test]
fn generated_nngp_equals_the_interpreter() {
    // erf, ReLU, sign, linear: the fused kernel maps are faster and stay in use
    check_nngp(&DeepErf::default(), false);
    check_nngp(&DeepRelu::default().with_L(6), false);
    check_nngp(&BinarySign::default(), false);
    check_nngp(&DeepLinear::default(), false);
    // thresholds with mean fields (Φ and Φ₂), cross-time blocks, user activations
    check_nngp(&BinaryThreshold::default(), true);
    check_nngp(&BinaryThreshold::default().with_L(5).with_theta(0.5), true);
    check_nngp(&RecurrentErf::default(), true);
    check_nngp(&RecurrentErf::default().with_T(5), true);
    check_nngp(&RecurrentErfDriven::default(), true);
    check_nngp(&DeepBump::default(), true);
    check_nngp(&DeepBump::default().with_L(8).with_g(3.0), true);
    check_nngp(&DeepBump2::default(), true);
}

#[test]
fn generated_prediction_equals_the_interpreter() {
    let x = inputs(12, 6);
    let y = Array2::from_shape_fn((8, 1), |(i, _)| if i % 2 == 0 { 1.0 } else { -1.0 });
    let (train, test) = (x.slice(ndarray::s![..8, ..]), x.slice(ndarray::s![8.., ..]));
    let t = BinaryThreshold::default();
    let generated = t.predict(train, y.view(), test, None).expect("predicts");
    let interpreted = saddle::solve::predict::nngp_predict(
        BinaryThreshold::theory(),
        train,
        y.view(),
        test,
        None,
        &NngpSettings {
            overrides: GeneratedTheory::overrides(&t),
            ..Default::default()
        },
    )
    .expect("predicts");
    let (g, i) = (&generated.gp.prediction, &interpreted.gp.prediction);
    for (a, b) in g
        .mean
        .iter()
        .zip(i.mean.iter())
        .chain(g.latent_variance.iter().zip(i.latent_variance.iter()))
    {
        assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn generated_finite_width_solvers_run_the_run_time_ones_at_the_struct_values() {
    let x = inputs(2, 4);
    let y = Array2::from_shape_vec((2, 1), vec![1.0, -1.0]).expect("targets");
    let t = DeepErf::default().with_L(2).with_N(50.0);
    let theory = DeepErf::theory();
    let overrides = GeneratedTheory::overrides(&t);
    let linearised = t.linearised(x.view(), y.view()).expect("linearised");
    let reference = saddle::solve::fluctuation::linear_response(
        theory,
        x.view(),
        Some(y.view()),
        &saddle::solve::fluctuation::FluctuationSettings {
            overrides: overrides.clone(),
            ..Default::default()
        },
    )
    .expect("interpreted");
    assert_eq!(linearised.width, Some(50.0));
    for (a, b) in linearised.layers.iter().zip(&reference.layers) {
        assert_eq!(a.delta, b.delta);
    }
    let map = t.saddle_point(x.view(), y.view()).expect("MAP");
    let reference = saddle::finite_width::map_kernels(
        theory,
        x.view(),
        y.view(),
        None,
        &saddle::finite_width::MapSettings {
            overrides,
            ..Default::default()
        },
    )
    .expect("interpreted");
    assert_eq!(map.width, Some(50.0));
    for (a, b) in map.layers.iter().zip(&reference.layers) {
        assert_eq!(a.kernel, b.kernel);
    }
}

#[test]
fn generated_maps_are_the_closed_forms_of_theory_md() {
    // THEORY.md §2, unit-slope erf: C' = g·(2/π)·asin(π/2·c/√((1 + π/2·a)(1 + π/2·b))) + gb
    let t = DeepErf::default();
    let c = t.constants(3, 4, None);
    let (a, ab, b) = (1.3, 0.4, 0.8);
    let h = std::f64::consts::FRAC_PI_2;
    let expected = t.g * 2.0 / std::f64::consts::PI
        * (h * ab / ((1.0 + h * a) * (1.0 + h * b)).sqrt()).asin()
        + t.gb;
    let got = DeepErf::C_map::<f64>(&c, &[a, ab, b], false);
    assert!((got - expected).abs() < 1e-15, "{got} vs {expected}");
    // the Gaussian bump: ⟨e^{−u²/2} e^{−v²/2}⟩ = 1/√((1 + a)(1 + b) − c²)
    let t = DeepBump::default();
    let c = t.constants(3, 4, None);
    let expected = t.g / ((1.0 + a) * (1.0 + b) - ab * ab).sqrt() + t.gb;
    let got = DeepBump::C_map::<f64>(&c, &[a, ab, b], false);
    assert!((got - expected).abs() < 1e-15, "{got} vs {expected}");
}

#[test]
fn generated_nngp_points_feed_the_finite_width_solvers() {
    // binary threshold units: the NNGP point comes from the generated Φ and Φ₂
    let x = inputs(2, 4);
    let y = Array2::from_shape_vec((2, 1), vec![1.0, -1.0]).expect("targets");
    let t = BinaryThreshold::default().with_L(2).with_N(200.0);
    let generated = t.linearised(x.view(), y.view()).expect("linearised");
    let interpreted = saddle::solve::fluctuation::linear_response(
        BinaryThreshold::theory(),
        x.view(),
        Some(y.view()),
        &saddle::solve::fluctuation::FluctuationSettings {
            overrides: GeneratedTheory::overrides(&t),
            ..Default::default()
        },
    )
    .expect("interpreted");
    assert!(!generated.layers.is_empty());
    for (a, b) in generated.layers.iter().zip(&interpreted.layers) {
        for (u, v) in a.delta.iter().zip(b.delta.iter()) {
            assert!(
                (u - v).abs() <= 1e-9 * v.abs().max(1.0),
                "{}: {u} vs {v}",
                a.name
            );
        }
    }
}
