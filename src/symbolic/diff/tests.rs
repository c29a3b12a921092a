//! Tests of [`diff`](super::diff): shapes of the results and errors (numeric agreement with
//! finite differences and THEORY.md §2: `numeric::diff_checks`).

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
