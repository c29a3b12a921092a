//! Tests of [`diff`](super::diff): shapes of the results, errors, and (with `runtime`)
//! numeric agreement with finite differences and THEORY.md §2.

use super::*;

fn parse(text: &str) -> RecExpr<Math> {
    text.parse().expect("test expression parses")
}

fn d(expr: &str, var: &str) -> Result<String, DiffError> {
    diff(&parse(expr), var).map(|e| e.to_string())
}

#[test]
fn chain_and_product_rules_keep_order_and_drop_zeros() {
    assert_eq!(d("(* x x)", "x").as_deref(), Ok("(+ x x)"));
    assert_eq!(d("(* X (* g Y))", "g").as_deref(), Ok("(* X Y)"));
    assert_eq!(
        d("(relu (* 2 a))", "a").as_deref(),
        Ok("(* (step (* 2 a)) 2)")
    );
    assert_eq!(
        d("(logdet (+ K (* g I)))", "g").as_deref(),
        Ok("(tr (* (inv (+ K (* g I))) I))")
    );
    assert_eq!(d("(^ a 3)", "a").as_deref(), Ok("(* 3 (^ a 2))"));
    assert_eq!(d("(step a)", "c").as_deref(), Ok("0"));
    // Matrix powers by the product rule, element-wise functions of matrices refused.
    assert_eq!(
        d("(^ (* g X) 3)", "g").as_deref(),
        Ok("(+ (+ (* X (^ (* g X) 2)) (* (* (* g X) X) (* g X))) (* (^ (* g X) 2) X))")
    );
    assert_eq!(
        d("(exp (* g X))", "g"),
        Err(DiffError::NonScalar {
            operation: "exp".into()
        })
    );
    assert_eq!(d("(exp X)", "g").as_deref(), Ok("0"));
}

#[test]
fn price_theorem_gives_expectations_of_derivatives() {
    let relu = "(E2 (relu x) (relu x) 0 0 a b c)";
    assert_eq!(
        d(relu, "c").as_deref(),
        Ok("(E2 (step x) (step x) 0 0 a b c)")
    );
    assert_eq!(
        d(relu, "a").as_deref(),
        Ok("(* 1/2 (E2 (delta x) (relu x) 0 0 a b c))")
    );
    assert_eq!(
        d(relu, "b").as_deref(),
        Ok("(* 1/2 (E2 (relu x) (delta x) 0 0 a b c))")
    );
    assert_eq!(
        d("(E2 x x mu mv a b c)", "mu").as_deref(),
        Ok("(E2 1 x mu mv a b c)")
    );
    assert_eq!(
        d("(E1 (relu x) m v)", "m").as_deref(),
        Ok("(E1 (step x) m v)")
    );
    assert_eq!(
        d("(E1 (relu x) m v)", "v").as_deref(),
        Ok("(* 1/2 (E1 (delta x) m v))")
    );
    // A full-matrix entry appearing in several places: the chain rule adds the terms.
    assert_eq!(
        d("(E2 (relu x) (relu x) 0 0 C_aa C_aa C_aa)", "C_aa").map(|t| t.matches("E2").count()),
        Ok(3)
    );
}

#[test]
fn dirac_deltas_outside_expectations_are_errors() {
    assert_eq!(
        d("(step c)", "c"),
        Err(DiffError::DiracDelta { function: "step" })
    );
    assert_eq!(
        d("(* 2 (sign (* 2 c)))", "c"),
        Err(DiffError::DiracDelta { function: "sign" })
    );
    let relu = "(* 1/2 (E2 (delta x) (relu x) 0 0 a b c))";
    assert_eq!(d(relu, "a"), Err(DiffError::DeltaDerivative));
    assert_eq!(d("(E1 (step x) m v)", "v"), Err(DiffError::DeltaDerivative));
    assert_eq!(
        d("(tr C[1])", "C[1]"),
        Err(DiffError::MatrixVariable {
            name: "C[1]".into()
        })
    );
    assert_eq!(diff(&RecExpr::default(), "a"), Err(DiffError::Empty));
    let bad = RecExpr::from(vec![Math::Neg(Id::from(1)), Math::Pi]);
    assert_eq!(diff(&bad, "a"), Err(DiffError::Malformed));
}

#[test]
fn slopes_inside_bodies_are_differentiated_under_the_expectation() {
    let text = d("(E1 (erf (* s x)) m v)", "s").expect("differentiable");
    assert!(
        text.starts_with("(E1 ") && text.contains("(exp (neg (^ (* s x) 2)))"),
        "{text}"
    );
}

#[cfg(feature = "runtime")]
mod numeric {
    use std::collections::HashMap;

    use super::*;
    use crate::symbolic::eval::eval;
    use crate::symbolic::rules::RuleSelection;
    use crate::symbolic::runner::simplify;

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
}
