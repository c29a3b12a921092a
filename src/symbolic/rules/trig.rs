//! Inverse trigonometric relations used by the closed forms.
//!
//! $\arccos x=\frac\pi2-\arcsin x$ (both ways), oddness of $\arcsin$ and $\arctan$,
//! $\arccos(-x)=\pi-\arccos x$, $\arctan x=\arcsin\frac{x}{\sqrt{1+x^2}}$ (both ways: valid for
//! every real $x$), $\arctan\frac{x}{\sqrt{1-x^2}}=\arcsin x$ (one way: the right side is also
//! defined at $|x|=1$), $\arctan\frac1x=\frac\pi2-\arctan x$ for known $x>0$, and the special
//! values at $0$, $\frac12$ and $1$. The ReLU and Heaviside kernels are written with
//! $\theta=\arccos\rho$; these rules let either form be chosen by cost.

use egg::rewrite as rw;

use super::Rw;
use super::conditions::positive;

/// The `trig` rule set.
#[rustfmt::skip]
pub fn rules() -> Vec<Rw> {
    vec![
        rw!("acos-to-asin";   "(acos ?x)"                             => "(- (/ pi 2) (asin ?x))"),
        rw!("asin-to-acos";   "(asin ?x)"                             => "(- (/ pi 2) (acos ?x))"),
        rw!("asin-odd";       "(asin (* -1 ?x))"                      => "(* -1 (asin ?x))"),
        rw!("atan-odd";       "(atan (* -1 ?x))"                      => "(* -1 (atan ?x))"),
        rw!("acos-reflect";   "(acos (* -1 ?x))"                      => "(- pi (acos ?x))"),
        rw!("atan-to-asin";   "(atan ?x)"                             => "(asin (/ ?x (sqrt (+ 1 (^ ?x 2)))))"),
        rw!("asin-to-atan";   "(asin (/ ?x (sqrt (+ 1 (^ ?x 2)))))"   => "(atan ?x)"),
        rw!("atan-of-ratio";  "(atan (/ ?x (sqrt (- 1 (^ ?x 2)))))"   => "(asin ?x)"),
        rw!("atan-recip";     "(atan (/ 1 ?x))"                       => "(- (/ pi 2) (atan ?x))" if positive(&["?x"])),
        rw!("asin-zero";      "(asin 0)"                              => "0"),
        rw!("asin-half";      "(asin 1/2)"                            => "(/ pi 6)"),
        rw!("asin-one";       "(asin 1)"                              => "(/ pi 2)"),
        rw!("acos-one";       "(acos 1)"                              => "0"),
        rw!("atan-zero";      "(atan 0)"                              => "0"),
        rw!("atan-one";       "(atan 1)"                              => "(/ pi 4)"),
    ]
}

#[cfg(test)]
mod tests {
    use crate::symbolic::rules::testing::{proves, refutes};
    use crate::symbolic::rules::{RuleSelection, RuleSet};

    fn trig() -> RuleSelection {
        RuleSelection::only(RuleSet::Trig).with(RuleSet::Algebra)
    }

    proves! { trig();
        acos_via_asin:        "(acos r)"                         => "(- (/ pi 2) (asin r))",
        relu_angle:           "(- pi (acos r))"                  => "(+ (/ pi 2) (asin r))",
        heaviside_forms:      "(/ (- pi (acos r)) (* 2 pi))"     => "(+ 1/4 (/ (asin r) (* 2 pi)))",
        sign_forms:           "(- 1 (/ (* 2 (acos r)) pi))"      => "(* (/ 2 pi) (asin r))",
        asin_is_odd:          "(+ (asin (neg r)) (asin r))"      => "0",
        acos_reflects:        "(+ (acos (neg r)) (acos r))"      => "pi",
        arctan_form:          "(atan (/ r (sqrt (- 1 (^ r 2)))))" => "(asin r)",
        atan_complement:      "(+ (atan (/ 1 (exp a))) (atan (exp a)))" => "(/ pi 2)",
        special_values:       "(+ (asin 1/2) (acos 1))"          => "(/ pi 6)",
        acos_zero:            "(acos 0)"                         => "(/ pi 2)",
    }

    refutes! { trig();
        no_atan_recip_unknown_sign: "(atan (/ 1 r))" != "(- (/ pi 2) (atan r))",
        no_asin_to_atan_ratio:      "(asin r)"       != "(atan (/ r (sqrt (- 1 (^ r 2)))))",
    }
}
