//! Transpose, trace, inverse, identity and log-determinant.
//!
//! * $(A^\top)^\top=A$, $(A+B)^\top=A^\top+B^\top$, $(AB)^\top=B^\top A^\top$, $s^\top=s$ for scalars;
//! * $\operatorname{tr}A^\top=\operatorname{tr}A$, cyclicity $\operatorname{tr}AB=\operatorname{tr}BA$
//!   (with associativity: every rotation of a longer product), linearity, the pairing forms
//!   $\operatorname{tr}A^\top B=\operatorname{tr}B^\top A$ and $\operatorname{tr}AB^\top=\operatorname{tr}BA^\top$
//!   (THEORY.md §1: $\langle A,B\rangle=\operatorname{tr}A^\top B$), $\operatorname{tr}s=s$;
//! * $(A^{-1})^{-1}=A$, $(A^{-1})^\top=(A^\top)^{-1}$, $B^{-1}A^{-1}=(AB)^{-1}$ (only this way: the
//!   other needs square factors), $AA^{-1}=A^{-1}A=I$ for matrices, $s^{-1}$ as a power for scalars;
//! * $IA=AI=A$ for matrices (for a scalar, $sI\ne s$), $I^\top=I^{-1}=I$, $\ln\det I=0$,
//!   $\ln\det A^\top=\ln\det A$, $\ln\det A^{-1}=-\ln\det A$.

use egg::rewrite as rw;

use super::Rw;
use super::conditions::{matrix, scalar};

/// The `matrix` rule set.
#[rustfmt::skip]
pub fn rules() -> Vec<Rw> {
    vec![
        rw!("T-involution";   "(T (T ?a))"              => "?a"),
        rw!("T-add";          "(T (+ ?a ?b))"           => "(+ (T ?a) (T ?b))"),
        rw!("add-T";          "(+ (T ?a) (T ?b))"       => "(T (+ ?a ?b))"),
        rw!("T-mul";          "(T (* ?a ?b))"           => "(* (T ?b) (T ?a))"),
        rw!("mul-T";          "(* (T ?a) (T ?b))"       => "(T (* ?b ?a))"),
        rw!("T-scalar";       "(T ?a)"                  => "?a" if scalar(&["?a"])),
        rw!("T-identity";     "(T I)"                   => "I"),
        rw!("tr-T";           "(tr (T ?a))"             => "(tr ?a)"),
        rw!("tr-cyclic";      "(tr (* ?a ?b))"          => "(tr (* ?b ?a))"),
        rw!("tr-add";         "(tr (+ ?a ?b))"          => "(+ (tr ?a) (tr ?b))"),
        rw!("add-tr";         "(+ (tr ?a) (tr ?b))"     => "(tr (+ ?a ?b))"),
        rw!("tr-scale";       "(tr (* ?s ?a))"          => "(* ?s (tr ?a))" if scalar(&["?s"])),
        rw!("tr-scalar";      "(tr ?s)"                 => "?s" if scalar(&["?s"])),
        rw!("tr-pair";        "(tr (* (T ?a) ?b))"      => "(tr (* (T ?b) ?a))"),
        rw!("tr-pair-right";  "(tr (* ?a (T ?b)))"      => "(tr (* ?b (T ?a)))"),
        rw!("inv-involution"; "(inv (inv ?a))"          => "?a"),
        rw!("inv-T";          "(T (inv ?a))"            => "(inv (T ?a))"),
        rw!("T-inv";          "(inv (T ?a))"            => "(T (inv ?a))"),
        rw!("inv-product";    "(* (inv ?b) (inv ?a))"   => "(inv (* ?a ?b))"),
        rw!("inv-scalar";     "(inv ?s)"                => "(^ ?s -1)" if scalar(&["?s"])),
        rw!("inv-identity";   "(inv I)"                 => "I"),
        rw!("mul-inv";        "(* ?a (inv ?a))"         => "I" if matrix("?a")),
        rw!("inv-mul";        "(* (inv ?a) ?a)"         => "I" if matrix("?a")),
        rw!("identity-mul";   "(* I ?a)"                => "?a" if matrix("?a")),
        rw!("mul-identity";   "(* ?a I)"                => "?a" if matrix("?a")),
        rw!("logdet-identity";"(logdet I)"              => "0"),
        rw!("logdet-T";       "(logdet (T ?a))"         => "(logdet ?a)"),
        rw!("logdet-inv";     "(logdet (inv ?a))"       => "(* -1 (logdet ?a))"),
    ]
}

#[cfg(test)]
mod tests {
    use crate::symbolic::rules::testing::{proves, refutes};
    use crate::symbolic::rules::{RuleSelection, RuleSet};

    fn matrix() -> RuleSelection {
        RuleSelection::only(RuleSet::Matrix).with(RuleSet::Algebra)
    }

    proves! { matrix();
        double_transpose:     "(T (T (* X Y)))"                   => "(* X Y)",
        transpose_product:    "(T (* X (* Y Z)))"                 => "(* (T Z) (* (T Y) (T X)))",
        transpose_sum:        "(T (+ X (* g Y)))"                 => "(+ (T X) (* g (T Y)))",
        trace_transpose:      "(tr (T (* X Y)))"                  => "(tr (* Y X))",
        trace_cyclic:         "(tr (* X (* Y Z)))"                => "(tr (* Z (* X Y)))",
        trace_linear:         "(tr (+ (* 2 X) (* g Y)))"          => "(+ (* 2 (tr X)) (* g (tr Y)))",
        pairing_symmetric:    "(tr (* (T X) Y))"                  => "(tr (* (T Y) X))",
        pairing_right:        "(tr (* X (T Y)))"                  => "(tr (* (T Y) X))",
        quadratic_form:       "(tr (* (T V) (* (inv K) V)))"      => "(tr (* (inv K) (* V (T V))))",
        inverse_involution:   "(inv (inv (T K)))"                 => "(T K)",
        inverse_transpose:    "(T (inv K))"                       => "(inv (T K))",
        inverse_product:      "(* (inv Y) (inv X))"               => "(inv (* X Y))",
        identity_laws:        "(* (* I X) (* (inv X) I))"         => "I",
        scalar_trace:         "(tr (* g (tr X)))"                 => "(* g (tr X))",
        logdet_inverse:       "(+ (logdet (inv K)) (logdet (T K)))" => "0",
    }

    refutes! { matrix();
        no_commuting_in_trace_of_three: "(tr (* X (* Y Z)))" != "(tr (* Y (* X Z)))",
        no_inverse_split:               "(inv (* X Y))"       != "(* (inv Y) (inv X))",
        scalar_times_identity:          "(* g I)"             != "g",
        no_transpose_of_matrix:         "(T X)"               != "X",
    }
}
