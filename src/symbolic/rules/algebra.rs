//! Ring laws, powers, `exp`/`ln`, `sqrt` and `abs`.
//!
//! `+` is commutative and associative for scalars and same-shape matrices alike; `*` is
//! associative and distributes over `+` on both sides, but commutes only when one factor is
//! scalar ($AB\ne BA$). Subtraction and negation are normalised to $a+(-1)b$. Division, powers
//! and the transcendental rules are stated for scalars.
//!
//! Domain care (each rule is sound wherever its left side is defined):
//! * $a/a=1$ needs $a\ne0$ known; $a^0=1$ only for scalars ($A^0=I$);
//! * $(ab)^n=a^nb^n$ only for integer $n$; the converse is sound as stated;
//! * $\sqrt a\sqrt b=\sqrt{ab}$ always (both sides need $a,b\ge0$), the split only for known
//!   $a,b\ge0$; $\sqrt{a^2}=|a|$, and $|a|=a$ for known $a\ge0$;
//! * $\ln(ab)=\ln a+\ln b$ and $\ln a^n=n\ln a$ need $a,b>0$ known; the converse is sound.

use egg::rewrite as rw;

use super::Rw;
use super::conditions::{
    constant, constant_not, either_scalar, integer, nonneg, nonzero, positive, scalar,
};

/// The `algebra` rule set.
#[rustfmt::skip]
pub fn rules() -> Vec<Rw> {
    vec![
        // ring
        rw!("add-comm";       "(+ ?a ?b)"               => "(+ ?b ?a)"),
        rw!("add-assoc";      "(+ ?a (+ ?b ?c))"        => "(+ (+ ?a ?b) ?c)"),
        rw!("add-zero";       "(+ ?a 0)"                => "?a"),
        rw!("add-self";       "(+ ?a ?a)"               => "(* 2 ?a)"),
        rw!("mul-comm";       "(* ?a ?b)"               => "(* ?b ?a)" if either_scalar("?a", "?b")),
        rw!("mul-assoc";      "(* ?a (* ?b ?c))"        => "(* (* ?a ?b) ?c)"),
        rw!("mul-assoc-rev";  "(* (* ?a ?b) ?c)"        => "(* ?a (* ?b ?c))"),
        rw!("mul-one";        "(* ?a 1)"                => "?a"),
        rw!("one-mul";        "(* 1 ?a)"                => "?a"),
        rw!("mul-zero";       "(* ?a 0)"                => "0"),
        rw!("zero-mul";       "(* 0 ?a)"                => "0"),
        // constants first and together (cheap special cases of the AC laws that the backoff
        // scheduler never bans together with them)
        rw!("const-first-add"; "(+ ?a ?c)"              => "(+ ?c ?a)" if constant_not("?c", "?a")),
        rw!("const-merge-add"; "(+ ?c (+ ?d ?a))"       => "(+ (+ ?c ?d) ?a)" if constant(&["?c", "?d"])),
        rw!("const-first-mul"; "(* ?a ?c)"              => "(* ?c ?a)" if constant_not("?c", "?a")),
        rw!("const-merge-mul"; "(* ?c (* ?d ?a))"       => "(* (* ?c ?d) ?a)" if constant(&["?c", "?d"])),
        rw!("sub-canon";      "(- ?a ?b)"               => "(+ ?a (* -1 ?b))"),
        rw!("sub-uncanon";    "(+ ?a (* -1 ?b))"        => "(- ?a ?b)"),
        rw!("neg-canon";      "(neg ?a)"                => "(* -1 ?a)"),
        rw!("neg-uncanon";    "(* -1 ?a)"               => "(neg ?a)"),
        rw!("sub-self";       "(- ?a ?a)"               => "0"),
        rw!("add-inverse";    "(+ ?a (* -1 ?a))"        => "0"),
        rw!("distribute";     "(* ?a (+ ?b ?c))"        => "(+ (* ?a ?b) (* ?a ?c))"),
        rw!("distribute-r";   "(* (+ ?a ?b) ?c)"        => "(+ (* ?a ?c) (* ?b ?c))"),
        rw!("factor";         "(+ (* ?a ?b) (* ?a ?c))" => "(* ?a (+ ?b ?c))"),
        rw!("factor-r";       "(+ (* ?a ?c) (* ?b ?c))" => "(* (+ ?a ?b) ?c)"),
        // division and powers (scalars)
        rw!("div-canon";      "(/ ?a ?b)"               => "(* ?a (^ ?b -1))" if scalar(&["?a", "?b"])),
        rw!("div-uncanon";    "(* ?a (^ ?b -1))"        => "(/ ?a ?b)" if scalar(&["?a", "?b"])),
        rw!("div-self";       "(/ ?a ?a)"               => "1" if nonzero("?a")),
        rw!("pow-zero";       "(^ ?a 0)"                => "1" if scalar(&["?a"])),
        rw!("pow-one";        "(^ ?a 1)"                => "?a"),
        rw!("pow-two";        "(* ?a ?a)"               => "(^ ?a 2)" if scalar(&["?a"])),
        rw!("pow-mul";        "(* (^ ?a ?m) (^ ?a ?n))" => "(^ ?a (+ ?m ?n))" if scalar(&["?a"])),
        rw!("pow-mul-base";   "(* ?a (^ ?a ?n))"        => "(^ ?a (+ ?n 1))" if scalar(&["?a"])),
        rw!("pow-pow";        "(^ (^ ?a ?m) ?n)"        => "(^ ?a (* ?m ?n))" if integer("?n")),
        rw!("pow-of-mul";     "(^ (* ?a ?b) ?n)"        => "(* (^ ?a ?n) (^ ?b ?n))"
                                                           if integer("?n") if scalar(&["?a", "?b"])),
        rw!("mul-of-pow";     "(* (^ ?a ?n) (^ ?b ?n))" => "(^ (* ?a ?b) ?n)" if scalar(&["?a", "?b"])),
        // square roots and absolute values
        rw!("sqrt-mul";       "(* (sqrt ?a) (sqrt ?b))" => "(sqrt (* ?a ?b))" if scalar(&["?a", "?b"])),
        rw!("sqrt-split";     "(sqrt (* ?a ?b))"        => "(* (sqrt ?a) (sqrt ?b))" if nonneg(&["?a", "?b"])),
        rw!("sqrt-div";       "(/ (sqrt ?a) (sqrt ?b))" => "(sqrt (/ ?a ?b))" if scalar(&["?a", "?b"])),
        rw!("sqrt-square";    "(^ (sqrt ?a) 2)"         => "?a"),
        rw!("sqrt-self";      "(* (sqrt ?a) (sqrt ?a))" => "?a"),
        rw!("sqrt-as-power";  "(sqrt ?a)"               => "(^ ?a 1/2)" if scalar(&["?a"])),
        rw!("power-as-sqrt";  "(^ ?a 1/2)"              => "(sqrt ?a)"),
        rw!("sqrt-of-square"; "(sqrt (^ ?a 2))"         => "(abs ?a)" if scalar(&["?a"])),
        rw!("abs-nonneg";     "(abs ?a)"                => "?a" if nonneg(&["?a"])),
        rw!("abs-neg";        "(abs (* -1 ?a))"         => "(abs ?a)"),
        // exp and ln (scalars)
        rw!("exp-zero";       "(exp 0)"                 => "1"),
        rw!("ln-one";         "(ln 1)"                  => "0"),
        rw!("exp-ln";         "(exp (ln ?a))"           => "?a"),
        rw!("ln-exp";         "(ln (exp ?a))"           => "?a"),
        rw!("exp-add";        "(exp (+ ?a ?b))"         => "(* (exp ?a) (exp ?b))" if scalar(&["?a", "?b"])),
        rw!("exp-mul";        "(* (exp ?a) (exp ?b))"   => "(exp (+ ?a ?b))" if scalar(&["?a", "?b"])),
        rw!("exp-neg";        "(exp (* -1 ?a))"         => "(^ (exp ?a) -1)" if scalar(&["?a"])),
        rw!("ln-mul";         "(ln (* ?a ?b))"          => "(+ (ln ?a) (ln ?b))" if positive(&["?a", "?b"])),
        rw!("ln-add";         "(+ (ln ?a) (ln ?b))"     => "(ln (* ?a ?b))" if scalar(&["?a", "?b"])),
        rw!("ln-pow";         "(ln (^ ?a ?n))"          => "(* ?n (ln ?a))" if positive(&["?a"])),
    ]
}

#[cfg(test)]
mod tests {
    use crate::symbolic::rules::testing::{proves, refutes};
    use crate::symbolic::rules::{RuleSelection, RuleSet};

    fn algebra() -> RuleSelection {
        RuleSelection::only(RuleSet::Algebra)
    }

    proves! { algebra();
        fold_then_cancel:      "(+ (* 2 a) (- 1 (+ 1 (* 2 a))))" => "0",
        collect_like_terms:    "(+ (* 2 a) (* 3 a))"            => "(* 5 a)",
        scalars_commute:       "(* (* a X) b)"                   => "(* (* a b) X)",
        scalar_moves_out:      "(* X (* g Y))"                   => "(* g (* X Y))",
        matrices_distribute:   "(* X (+ Y Z))"                   => "(+ (* X Y) (* X Z))",
        binomial:              "(* (+ a b) (+ a b))"             => "(+ (+ (^ a 2) (* 2 (* a b))) (^ b 2))",
        powers_add:            "(* (^ s 2) (* s s))"             => "(^ s 4)",
        power_of_product:      "(^ (* s x) 2)"                   => "(* (^ s 2) (^ x 2))",
        division_by_itself:    "(/ (* 2 pi) (* 2 pi))"           => "1",
        division_normalises:   "(/ (/ a b) c)"                   => "(/ a (* b c))",
        sqrt_combines:         "(* (sqrt a) (sqrt b))"           => "(sqrt (* a b))",
        sqrt_of_pi_squared:    "(^ (/ 2 (sqrt pi)) 2)"           => "(/ 4 pi)",
        sqrt_of_positive_square: "(sqrt (^ (exp a) 2))"          => "(exp a)",
        sqrt_splits_positive:  "(sqrt (* pi (exp a)))"           => "(* (sqrt pi) (sqrt (exp a)))",
        exp_of_sum:            "(* (exp a) (exp (neg a)))"       => "1",
        exp_ln:                "(exp (+ (ln a) (ln b)))"         => "(* a b)",
        ln_of_positive_power:  "(ln (^ (exp a) 3))"              => "(* 3 a)",
    }

    refutes! { algebra();
        matrices_do_not_commute: "(* X Y)"              != "(* Y X)",
        brackets_are_matrices:   "(* C[1] Ct[2])"       != "(* Ct[2] C[1])",
        no_abs_drop:             "(abs a)"              != "a",
        no_half_of_square:       "(^ (^ a 2) 1/2)"      != "a",
        no_sqrt_of_square:       "(sqrt (^ a 2))"       != "a",
        no_sqrt_split:           "(sqrt (* a b))"       != "(* (sqrt a) (sqrt b))",
        no_ln_split:             "(ln (* a b))"         != "(+ (ln a) (ln b))",
        no_matrix_power_zero:    "(^ X 0)"              != "1",
        no_half_power_split:     "(^ (* a b) 1/2)"      != "(* (^ a 1/2) (^ b 1/2))",
    }

    #[test]
    fn entries_commute() {
        assert!(crate::symbolic::rules::testing::reaches(
            algebra(),
            "(* C1_ab X)",
            "(* X C1_ab)",
            crate::symbolic::rules::testing::TEST_LIMITS
        ));
    }
}
