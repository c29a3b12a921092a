use super::*;
use crate::symbolic::print::{Style, formula};

fn parse(s: &str) -> RecExpr<Math> {
    s.parse().expect("test expression parses")
}

fn text(s: &str) -> String {
    formula(&canonical(&parse(s)), Style::Unicode)
}

macro_rules! canon_tests {
    ($($name:ident: $input:expr => $expected:expr;)*) => {
        $(
            #[test]
            fn $name() {
                assert_eq!(text($input), $expected, "input {}", $input);
            }
        )*
    };
}

canon_tests! {
    width_cancels: "(* N (* (/ g N) (asin c)))" => "g·asin(c)";
    coefficients_gather_in_front: "(+ 1 (* C_aa (* (/ 1 2) pi)))" => "1 + π/2·C_αα";
    minus_a_negative_product_is_a_sum: "(- 1 (* (* C_aa pi) -1/2))" => "1 + π/2·C_αα";
    negative_coefficient_becomes_a_difference: "(+ a (* -1/4 (^ (* pi c) 2)))" => "a − π^2/4·c^2";
    minus_a_negation_is_a_sum: "(- a (neg b))" => "a + b";
    numbers_distribute_over_sums: "(* 1/2 (- a b))" => "a/2 − b/2";
    products_of_sums_stay_factored: "(* g (+ a b))" => "g·(a + b)";
    root_of_a_reciprocal: "(sqrt (/ 1 X))" => "1/√X";
    roots_merge: "(* (sqrt a) (sqrt b))" => "√(a·b)";
    pi_leaves_the_root: "(* (* (sqrt pi) pi) (/ a (sqrt (* b pi))))" => "π·a/√b";
    squares_stay_under_roots: "(sqrt (^ a 2))" => "√(a^2)";
    even_powers_lead_with_a_positive_term: "(^ (- t (* J m_a)) 2)" => "(J·m_α − t)^2";
    sums_under_powers_are_primitive: "(* x (+ 2 (* 2 a)))" => "2·x·(1 + a)";
    signs_leave_sums: "(* x (- t (* J m_a)))" => "-x·(J·m_α − t)";
    fraction_joins_the_denominator: "(/ (* 1/2 g) (sqrt s))" => "g/(2·√s)";
    like_terms_cancel: "(+ (* 2 x) (- y (* x 2)))" => "y";
    reparsed_rationals: "(* 0.5 (* 2 (* 1/3 x)))" => "x/3";
    leading_positive_term: "(- (neg a) 1)" => "-1 − a";
    pair_expectations_take_one_variable_order: "(- (E2 (tanh x) (erf x) 0 m C_bb C_aa C_ab) (E2 (erf x) (tanh x) m 0 C_aa C_bb C_ab))" => "0";
}

/// THEORY.md §2, unit-slope erf: the arcsine law and its compact Jacobian come out in the
/// hand-written arrangement, whatever the order egg happened to extract.
#[test]
fn erf_closed_form_and_jacobian_read_like_theory() {
    let kernel = "(* (* 2/π (* N (/ g N))) (asin (* C_ab (/ (* 1/2 pi) (sqrt (* (+ 1 (* (* C_aa 1/2) pi)) (+ (* C_bb (* 1/2 pi)) 1)))))))"
        .replace("2/π", "(/ 2 pi)");
    assert_eq!(
        text(&kernel),
        "2/π·g·asin(π/2·C_αβ/√((1 + π/2·C_αα)·(1 + π/2·C_ββ)))"
    );
    let row = "(* (/ 1/2 (sqrt (+ (* (+ (* C_bb (* 1/2 pi)) 1) (+ 1 (* C_aa (* 1/2 pi)))) (* -1/4 (^ (* pi C_ab) 2))))) (* N (/ g N)))";
    assert_eq!(
        text(row),
        "g/(2·√((1 + π/2·C_αα)·(1 + π/2·C_ββ) − π^2/4·C_αβ^2))"
    );
}

#[test]
fn matrix_terms_are_left_alone() {
    let e = parse("(* (T A) (* 1 B))");
    assert_eq!(canonical(&e), e);
}
