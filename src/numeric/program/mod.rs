//! Entry formulas compiled for evaluation over all pattern pairs.
//!
//! A formula of the symbolic stage (`(+ (* g (E2 …)) gb)`) is compiled once into a tree of
//! [`Op`]s: parameters and sizes become constants, entry symbols (`C[1]_ab`, `G0_aa`,
//! `m[2]_a`) become numbered *slots* that the caller fills per pair, and every Gaussian
//! expectation becomes a call into [`crate::numeric`]: a closed form where the integrand is a
//! known activation (linear, erf(s x), ReLU, sign, step(x − θ) — with means where a closed
//! form exists), Gauss–Hermite quadrature otherwise. Evaluation walks the tree without
//! allocating.
//!
//! * [`error`]: [`ProgramError`], why a formula cannot be compiled or evaluated.
//! * `ops`: the op tree ([`Op`], [`Program`]) and its analyses (constants, smoothness in `x`).
//! * `compile`: the compiler from the symbolic stage's `RecExpr<Math>` ([`Program::compile`]).
//! * `eval`: evaluation per pair on `f64` or dual numbers ([`Program::eval_dual`]).
//! * `fast_path`: recognition of `scale · K_φ + offset` ([`Program::as_pair_kernel_map`]).

mod compile;
pub mod error;
mod eval;
mod fast_path;
mod ops;

pub use error::ProgramError;
pub use ops::{Function, Integrand, Op, PairOp, Program, SingleOp};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::activation::Activation;
    use crate::symbolic::lang::Math;
    use egg::RecExpr;
    use num_dual::Dual64;
    use std::collections::HashMap;

    fn program(text: &str, constants: &[(&str, f64)]) -> Program {
        let expr: RecExpr<Math> = text.parse().expect("formula parses");
        let constants = constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        Program::compile(&expr, &constants, 120).expect("compiles")
    }

    fn slot_values(p: &Program, a: f64, b: f64, c: Dual64) -> Vec<Dual64> {
        p.slots
            .iter()
            .map(|s| match s.as_str() {
                "C_aa" => Dual64::from(a),
                "C_bb" => Dual64::from(b),
                _ => c,
            })
            .collect()
    }

    #[test]
    fn derivatives_flow_through_closed_forms() {
        // ∂K/∂c = ⟨φ'φ'⟩ (Price); THEORY.md T2c: 0.3594465696 for unit-slope erf at (1, 1.5, 0.6)
        let s = std::f64::consts::PI.sqrt() / 2.0;
        let p = program(
            "(E2 (erf (* s x)) (erf (* s x)) 0 0 C_aa C_bb C_ab)",
            &[("s", s)],
        );
        let value = p
            .eval_dual(
                &slot_values(&p, 1.0, 1.5, Dual64::from(0.6).derivative()),
                false,
            )
            .expect("evaluates");
        assert!((value.eps - 0.3594465696).abs() < 1e-9, "{}", value.eps);
    }

    #[test]
    fn derivatives_flow_through_quadrature() {
        // tanh has no closed form: Gauss–Hermite with moving nodes, against a central difference
        let p = program("(E2 (tanh x) (tanh x) 0 0 C_aa C_bb C_ab)", &[]);
        let at = |c: f64| {
            p.eval(
                &slot_values(&p, 1.0, 1.5, Dual64::from(c))
                    .iter()
                    .map(|d| d.re)
                    .collect::<Vec<_>>(),
                false,
            )
            .expect("evaluates")
        };
        let h = 1e-5;
        let numeric = (at(0.6 + h) - at(0.6 - h)) / (2.0 * h);
        let dual = p
            .eval_dual(
                &slot_values(&p, 1.0, 1.5, Dual64::from(0.6).derivative()),
                false,
            )
            .expect("evaluates");
        assert!(
            (dual.eps - numeric).abs() < 1e-8,
            "{} vs {numeric}",
            dual.eps
        );
        assert!((dual.re - at(0.6)).abs() < 1e-15);
    }

    #[test]
    fn smooth_user_formulas_take_the_hermite_fast_path() {
        // x e^{−x²/2}: same formula on both sides, smooth → a custom activation whose jet is
        // (φ, φ′, φ″) by second-order duals.
        let smooth = program(
            "(* 1.5 (E2 (* x (exp (* -0.5 (^ x 2)))) (* x (exp (* -0.5 (^ x 2)))) 0 0 C_aa C_bb C_ab))",
            &[],
        );
        let (map, _) = smooth.as_pair_kernel_map().expect("fast path");
        assert_eq!(map.scale, 1.5);
        assert!(
            matches!(map.activation, Activation::Custom(_)),
            "{:?}",
            map.activation
        );
        let x: f64 = 0.7;
        let e = (-0.5 * x * x).exp();
        let want = [x * e, (1.0 - x * x) * e, (x.powi(3) - 3.0 * x) * e];
        let got = map.activation.jet(x);
        for k in 0..3 {
            assert!(
                (got[k] - want[k]).abs() < 1e-15,
                "derivative {k}: {got:?} vs {want:?}"
            );
        }
        // The expansion's per-pair fallback: 160 nodes, or the order asked for if higher.
        assert_eq!(map.fallback_order, 160);
        let text = "(E2 (tanh x) (tanh x) 0 0 C_aa C_bb C_ab)"
            .parse()
            .expect("parses");
        for (order, fallback) in [(20, 160), (160, 160), (400, 400)] {
            let tanh = Program::compile(&text, &HashMap::new(), order).expect("compiles");
            let (map, _) = tanh.as_pair_kernel_map().expect("fast path");
            assert_eq!(map.fallback_order, fallback, "--quadrature {order}");
        }
        // A kink keeps the per-pair path; so do two different functions.
        let kinked = program("(E2 (abs x) (abs x) 0 0 C_aa C_bb C_ab)", &[]);
        assert!(kinked.as_pair_kernel_map().is_none());
        let mixed = program("(E2 (exp x) (* x x) 0 0 C_aa C_bb C_ab)", &[]);
        assert!(mixed.as_pair_kernel_map().is_none());
    }
}
