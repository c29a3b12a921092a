//! Property tests of [`crate::symbolic::canonical`]: the canonical form has the value of the
//! term it came from, evaluated with [`super::term_eval`].

use std::collections::HashMap;

use proptest::prelude::*;

use egg::Id;
use egg::RecExpr;

use super::term_eval::eval;
use crate::symbolic::canonical::canonical;
use crate::symbolic::lang::Math;

fn parse(text: &str) -> RecExpr<Math> {
    text.parse().expect("test expression parses")
}

const SYMBOLS: [&str; 5] = ["a", "b", "N", "C_aa", "C_ab"];

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["0", "1", "2", "3", "1/2", "-1/4", "-2", "pi"])
            .prop_map(str::to_string),
        prop::sample::select(SYMBOLS.to_vec()).prop_map(str::to_string),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    leaf().prop_recursive(6, 60, 2, |inner| {
        let binary = prop::sample::select(vec!["+", "-", "*", "/"]);
        let unary = prop::sample::select(vec!["neg", "sqrt", "asin", "exp", "erf"]);
        let exponent = prop::sample::select(vec!["2", "-1", "1/2", "-1/2", "3", "3/2"]);
        prop_oneof![
            (binary, inner.clone(), inner.clone()).prop_map(|(o, a, b)| format!("({o} {a} {b})")),
            (unary, inner.clone()).prop_map(|(o, a)| format!("({o} {a})")),
            (inner, exponent).prop_map(|(a, k)| format!("(^ {a} {k})")),
        ]
    })
}

/// Values of every node (`None` where undefined) and whether the evaluation is well
/// conditioned: no root, power, division or arcsine near its singular point, so that
/// rounding differences between two equal formulas stay at the rounding level.
fn conditioned_value(e: &RecExpr<Math>, env: &HashMap<&str, f64>) -> Option<(f64, f64)> {
    let nodes = e.as_ref();
    let mut scale: f64 = 1.0;
    for i in 0..nodes.len() {
        let prefix = RecExpr::from(nodes[..=i].to_vec());
        let v = eval(&prefix, env)?;
        scale = scale.max(v.abs());
        let child = |id: &Id| {
            let sub = RecExpr::from(nodes[..=usize::from(*id)].to_vec());
            eval(&sub, env)
        };
        let near = |x: Option<f64>, at: f64| x.is_none_or(|x| (x - at).abs() < 1e-4);
        let bad = match &nodes[i] {
            Math::Sqrt(a) => near(child(a), 0.0),
            Math::Div([_, b]) => near(child(b), 0.0),
            Math::Pow([a, _]) => near(child(a), 0.0),
            Math::Asin(a) => near(child(a), 1.0) || near(child(a), -1.0),
            _ => false,
        };
        if bad {
            return None;
        }
    }
    Some((eval(e, env)?, scale))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn canonical_form_is_equal_and_idempotent(
        input in expression(),
        point in prop::collection::vec(-2.0f64..2.0, SYMBOLS.len()),
    ) {
        let e = parse(&input);
        let c = canonical(&e);
        prop_assert_eq!(canonical(&c).to_string(), c.to_string(), "input {}", input);
        let env: HashMap<&str, f64> = SYMBOLS.iter().copied().zip(point).collect();
        if let Some((v, scale)) = conditioned_value(&e, &env) {
            let w = eval(&c, &env);
            prop_assert!(w.is_some(), "{} = {} is defined, its canonical form {} is not", input, v, c);
            let w = w.unwrap_or(f64::NAN);
            prop_assert!(
                (v - w).abs() <= 1e-12 * scale,
                "{} = {} but canonical {} = {} (scale {})", input, v, c, w, scale
            );
        }
    }
}
