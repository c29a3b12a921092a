//! Numeric checks of [`crate::symbolic::diff`]: derivatives against central finite
//! differences and THEORY.md §2, evaluated with [`super::term_eval`].

use std::collections::HashMap;

use egg::RecExpr;

use super::term_eval::eval;
use crate::symbolic::diff::diff;
use crate::symbolic::lang::Math;
use crate::symbolic::rules::RuleSelection;
use crate::symbolic::runner::simplify;

fn parse(text: &str) -> RecExpr<Math> {
    text.parse().expect("test expression parses")
}

fn value(expr: &RecExpr<Math>, env: &[(&str, f64)]) -> f64 {
    let env: HashMap<&str, f64> = env.iter().copied().collect();
    eval(expr, &env).unwrap_or_else(|| panic!("{expr} does not evaluate"))
}

/// Central finite difference of `expr` in `var` at `env`.
fn fd(expr: &RecExpr<Math>, var: &str, env: &[(&str, f64)]) -> f64 {
    let h = 1e-5;
    let at = |shift: f64| {
        let env: Vec<(&str, f64)> = env
            .iter()
            .map(|&(k, v)| (k, if k == var { v + shift } else { v }))
            .collect();
        value(expr, &env)
    };
    (at(h) - at(-h)) / (2.0 * h)
}

fn closed(expr: &str) -> RecExpr<Math> {
    let s = simplify(&parse(expr), RuleSelection::all());
    let text = s.expr.to_string();
    assert!(
        !text.contains("E1") && !text.contains("E2"),
        "no closed form: {text}"
    );
    s.expr
}

#[test]
fn elementary_derivatives_match_finite_differences() {
    let env = [("a", 0.37), ("s", 1.3)];
    for expr in [
        "(exp (* a (^ a 2)))",
        "(/ (ln a) (sqrt a))",
        "(erf (* s a))",
        "(- (asin (/ a 2)) (acos (/ a 3)))",
        "(* (atan a) (tanh a))",
        "(Phi (* 3 a))",
        "(^ a a)",
        "(abs (- a 1))",
        "(Phi2 a (* 2 a) (/ a 3))",
    ] {
        let e = parse(expr);
        let de = diff(&e, "a").expect("differentiable");
        let (got, want) = (value(&de, &env), fd(&e, "a", &env));
        assert!((got - want).abs() < 1e-8, "{expr}: {got} vs {want}");
    }
}

#[test]
fn erf_jacobian_is_the_compact_closed_form_of_theory_t2c() {
    let k = parse("(E2 (erf (* s x)) (erf (* s x)) 0 0 a b c)");
    let dk = diff(&k, "c").expect("Price's theorem");
    let s = simplify(&dk, RuleSelection::all());
    let text = s.expr.to_string();
    assert!(!text.contains("asin") && !text.contains("E2"), "{text}");
    let env = [
        ("a", 1.0),
        ("b", 1.5),
        ("c", 0.6),
        ("s", std::f64::consts::PI.sqrt() / 2.0),
    ];
    let got = value(&s.expr, &env);
    assert!((got - 0.3594465696).abs() < 1e-9, "{text} = {got}");
    // And it is the derivative of the closed-form kernel.
    let kc = closed("(E2 (erf (* s x)) (erf (* s x)) 0 0 a b c)");
    assert!((got - fd(&kc, "c", &env)).abs() < 1e-8);
}

#[test]
fn kink_and_jump_jacobians_match_finite_differences_of_the_kernels() {
    let env = [
        ("a", 1.2),
        ("b", 0.9),
        ("c", 0.35),
        ("m", 0.3),
        ("v", 1.7),
        ("s", 0.8),
        ("mu", 0.2),
        ("mv", -0.1),
        ("t", 0.4),
    ];
    for (kernel, var) in [
        ("(E2 (relu x) (relu x) 0 0 a b c)", "c"),
        ("(E2 (relu x) (relu x) 0 0 a b c)", "a"),
        ("(E2 (relu x) (relu x) 0 0 a b c)", "b"),
        ("(E2 (step x) (step x) 0 0 a b c)", "c"),
        ("(E2 (step (- x t)) (step (- x 1/4)) mu mv a b c)", "c"),
        ("(E2 (step x) (step (- x t)) mu mv a b c)", "c"),
        ("(E2 (sign x) (sign x) 0 0 a b c)", "c"),
        ("(E2 (erf (* s x)) (erf x) 0 0 a b c)", "c"),
        ("(E2 (erf (* s x)) (erf (* s x)) 0 0 a b c)", "a"),
        ("(E2 (erf x) (erf (* s x)) 0 0 a b c)", "b"),
        ("(E2 (erf (* s x)) (erf (* s x)) 0 0 a b c)", "s"),
        ("(E2 x (* 3 x) mu mv a b c)", "mu"),
        ("(E1 (relu x) m v)", "m"),
        ("(E1 (relu x) m v)", "v"),
        ("(E1 (erf (* s x)) m v)", "m"),
        ("(E1 (step x) m v)", "m"),
    ] {
        let derivative = diff(&parse(kernel), var).expect("Price's theorem");
        let got = value(&closed(&derivative.to_string()), &env);
        let want = fd(&closed(kernel), var, &env);
        assert!(
            (got - want).abs() < 1e-7,
            "d{kernel}/d{var}: {got} vs {want}"
        );
    }
}
