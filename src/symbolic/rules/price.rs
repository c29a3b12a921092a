//! Closed forms of the expectations that Price's theorem produces (part of the `gaussian` set).
//!
//! [`diff`](crate::symbolic::diff) turns $\partial_c\langle f g\rangle$ into $\langle f'g'\rangle$ and
//! $\partial_a\langle fg\rangle$ into $\frac12\langle f''g\rangle$ (THEORY.md §1–§2). For the
//! activations of §2 the derivatives are Gaussians and Dirac deltas:
//! $\operatorname{erf}'(sx)=\frac{2s}{\sqrt\pi}e^{-s^2x^2}$, $\operatorname{relu}'=H$,
//! $H'=\delta$, $\operatorname{sign}'=2\delta$. Their expectations (zero means):
//!
//! | bodies | value |
//! |---|---|
//! | $e^{\kappa x^2},\ e^{\lambda x^2}$ | $\big[(1-2\kappa a)(1-2\lambda b)-4\kappa\lambda c^2\big]^{-1/2}=\det(I-2\operatorname{diag}(\kappa,\lambda)\Sigma)^{-1/2}$ |
//! | $x e^{\kappa x^2},\ \operatorname{erf}(tx)$ | $\frac{2tc}{\sqrt\pi\,(1-2\kappa a)\sqrt{(1-2\kappa a)(1+2t^2b)+4\kappa t^2c^2}}$ |
//! | $\delta,\ \delta$ | $\frac{1}{2\pi\sqrt{ab-c^2}}$ (the density at the origin) |
//! | $\delta(x-\theta_1),\ \delta(x-\theta_2)$, any means | the bivariate density at $(\theta_1,\theta_2)$ |
//! | $\delta,\ \operatorname{relu}$ | $\frac{\sqrt{ab-c^2}}{2\pi a}$ |
//! | $\delta,\ H$ | $\frac{1}{2\sqrt{2\pi a}}$ |
//! | $\delta,\ g$ odd ($x$, sign, $\operatorname{erf}(sx)$) | $0$ |
//!
//! ($\langle\delta(u)g(v)\rangle=p_u(0)\,\langle g(v)\mid u=0\rangle$ with
//! $v\mid u=0\sim\mathcal N(0,b-c^2/a)$. The $x e^{\kappa x^2}$ row is $\frac12\langle\phi''\phi\rangle$
//! of the erf kernel up to constants, i.e. $\partial K/\partial a$: tilting $u$ by $e^{\kappa u^2}$ keeps
//! $v\mid u$, giving a Gaussian with $a'=\frac{a}{1-2\kappa a}$, $c'=\frac{c}{1-2\kappa a}$,
//! $b'=b+\frac{2\kappa c^2}{1-2\kappa a}$ and weight $(1-2\kappa a)^{-1/2}$, and Stein's lemma
//! $\langle u\,g(v)\rangle'=c'\langle g'(v)\rangle'$ closes it.) Singles, any mean:
//! $\langle e^{\kappa u^2}\rangle=\frac{e^{\kappa m^2/(1-2\kappa v)}}{\sqrt{1-2\kappa v}}$,
//! $\langle e^{\kappa u}\rangle=e^{\kappa m+\kappa^2v/2}$,
//! $\langle\delta(u-\theta)\rangle=\frac{e^{-(m-\theta)^2/2v}}{\sqrt{2\pi v}}$; and
//! $\delta(sy)=\delta(y)/s$ for known $s>0$.
//!
//! Check: $\partial_c$ of the erf kernel is $\frac{4s^2}{\pi}\big[(1+2s^2a)(1+2s^2b)-4s^4c^2\big]^{-1/2}$,
//! THEORY.md §2 (T2c: 0.3594465696 at $a=1,b=1.5,c=0.6,s=\sqrt\pi/2$).

use egg::{Pattern, rewrite as rw};

use super::Rw;
use super::conditions::{positive, x_free};
use crate::symbolic::lang::Math;

/// The bivariate normal density at offsets `du`, `dv` from the means:
/// $\frac{\exp(-\frac{b\,du^2-2c\,du\,dv+a\,dv^2}{2(ab-c^2)})}{2\pi\sqrt{ab-c^2}}$.
fn density(du: &str, dv: &str) -> Pattern<Math> {
    let det = "(- (* ?a ?b) (^ ?c 2))";
    format!(
        "(/ (exp (neg (/ (+ (- (* ?b (^ {du} 2)) (* 2 (* ?c (* {du} {dv})))) (* ?a (^ {dv} 2))) (* 2 {det}))))
            (* (* 2 pi) (sqrt {det})))"
    )
    .parse()
    .unwrap_or_else(|e| panic!("density pattern: {e}"))
}

/// The Price-theorem closed forms of the `gaussian` rule set.
#[rustfmt::skip]
pub fn rules() -> Vec<Rw> {
    vec![
        rw!("E2-gauss";        "(E2 (exp (* ?k (^ x 2))) (exp (* ?l (^ x 2))) 0 0 ?a ?b ?c)"
                               => "(/ 1 (sqrt (- (* (- 1 (* 2 (* ?k ?a))) (- 1 (* 2 (* ?l ?b)))) (* 4 (* (* ?k ?l) (^ ?c 2))))))"
                               if x_free(&["?k", "?l"])),
        rw!("E2-stein-erf";    "(E2 (* x (exp (* ?k (^ x 2)))) (erf (* ?t x)) 0 0 ?a ?b ?c)"
                               => "(/ (* 2 (* ?t ?c)) (* (sqrt pi) (* (- 1 (* 2 (* ?k ?a)))
                                      (sqrt (+ (* (- 1 (* 2 (* ?k ?a))) (+ 1 (* 2 (* (^ ?t 2) ?b)))) (* 4 (* ?k (* (^ ?t 2) (^ ?c 2)))))))))"
                               if x_free(&["?k", "?t"])),
        rw!("E2-stein-erf-unit"; "(E2 (* x (exp (* ?k (^ x 2)))) (erf x) 0 0 ?a ?b ?c)"
                               => "(/ (* 2 ?c) (* (sqrt pi) (* (- 1 (* 2 (* ?k ?a)))
                                      (sqrt (+ (* (- 1 (* 2 (* ?k ?a))) (+ 1 (* 2 ?b))) (* 4 (* ?k (^ ?c 2))))))))"
                               if x_free(&["?k"])),
        rw!("E1-gauss";        "(E1 (exp (* ?k (^ x 2))) ?m ?v)"
                               => "(/ (exp (/ (* ?k (^ ?m 2)) (- 1 (* 2 (* ?k ?v))))) (sqrt (- 1 (* 2 (* ?k ?v)))))"
                               if x_free(&["?k"])),
        rw!("E1-exp-linear";   "(E1 (exp (* ?k x)) ?m ?v)"           => "(exp (+ (* ?k ?m) (/ (* (^ ?k 2) ?v) 2)))" if x_free(&["?k"])),
        rw!("E1-exp-unit";     "(E1 (exp x) ?m ?v)"                  => "(exp (+ ?m (/ ?v 2)))"),
        rw!("delta-scale";     "(delta (* ?s ?y))"                   => "(/ (delta ?y) ?s)" if positive(&["?s"])),
        rw!("E2-delta";        "(E2 (delta x) (delta x) 0 0 ?a ?b ?c)" => "(/ 1 (* (* 2 pi) (sqrt (- (* ?a ?b) (^ ?c 2)))))"),
        rw!("E2-delta-means";  "(E2 (delta x) (delta x) ?mu ?mv ?a ?b ?c)" => { density("?mu", "?mv") }),
        rw!("E2-delta-shift";  "(E2 (delta (- x ?t)) (delta (- x ?r)) ?mu ?mv ?a ?b ?c)"
                               => { density("(- ?t ?mu)", "(- ?r ?mv)") } if x_free(&["?t", "?r"])),
        rw!("E2-delta-shift-one"; "(E2 (delta (- x ?t)) (delta x) ?mu ?mv ?a ?b ?c)"
                               => { density("(- ?t ?mu)", "(neg ?mv)") } if x_free(&["?t"])),
        rw!("E2-delta-relu";   "(E2 (delta x) (relu x) 0 0 ?a ?b ?c)"  => "(/ (sqrt (- (* ?a ?b) (^ ?c 2))) (* (* 2 pi) ?a))"),
        rw!("E2-delta-step";   "(E2 (delta x) (step x) 0 0 ?a ?b ?c)"  => "(/ 1 (* 2 (sqrt (* (* 2 pi) ?a))))"),
        rw!("E2-delta-sign";   "(E2 (delta x) (sign x) 0 0 ?a ?b ?c)"  => "0"),
        rw!("E2-delta-linear"; "(E2 (delta x) x 0 0 ?a ?b ?c)"         => "0"),
        rw!("E2-delta-erf";    "(E2 (delta x) (erf (* ?s x)) 0 0 ?a ?b ?c)" => "0" if x_free(&["?s"])),
        rw!("E2-delta-erf-unit"; "(E2 (delta x) (erf x) 0 0 ?a ?b ?c)" => "0"),
        rw!("E1-delta";        "(E1 (delta x) ?m ?v)"                => "(/ (exp (neg (/ (^ ?m 2) (* 2 ?v)))) (sqrt (* (* 2 pi) ?v)))"),
        rw!("E1-delta-shift";  "(E1 (delta (- x ?t)) ?m ?v)"
                               => "(/ (exp (neg (/ (^ (- ?m ?t) 2) (* 2 ?v)))) (sqrt (* (* 2 pi) ?v)))"
                               if x_free(&["?t"])),
    ]
}

#[cfg(test)]
mod tests {
    use crate::symbolic::rules::testing::{proves, refutes};
    use crate::symbolic::rules::{RuleSelection, RuleSet};

    fn gaussian() -> RuleSelection {
        RuleSelection::only(RuleSet::Gaussian).with(RuleSet::Algebra)
    }

    proves! { gaussian();
        erf_derivative_pair: "(E2 (exp (neg (^ (* s x) 2))) (exp (neg (^ (* s x) 2))) 0 0 a b c)"
            => "(/ 1 (sqrt (- (* (- 1 (* 2 (* (* -1 (^ s 2)) a))) (- 1 (* 2 (* (* -1 (^ s 2)) b))))
                              (* 4 (* (* (* -1 (^ s 2)) (* -1 (^ s 2))) (^ c 2))))))",
        gauss_single:        "(E1 (exp (* k (^ x 2))) 0 v)"       => "(/ 1 (sqrt (- 1 (* 2 (* k v)))))",
        exp_single:          "(E1 (exp (* 2 x)) m v)"             => "(exp (+ (* 2 m) (* 2 v)))",
        step_step_density:   "(E2 (delta x) (delta x) 0 0 a b c)" => "(/ 1 (* (* 2 pi) (sqrt (- (* a b) (^ c 2)))))",
        sign_sign_density:   "(E2 (* 2 (delta x)) (* 2 (delta x)) 0 0 a b c)"
                             => "(* 4 (/ 1 (* (* 2 pi) (sqrt (- (* a b) (^ c 2))))))",
        relu_second_deriv:   "(E2 (relu x) (delta x) 0 0 b a c)"  => "(/ (sqrt (- (* a b) (^ c 2))) (* (* 2 pi) a))",
        delta_step:          "(E2 (delta x) (step x) 0 0 a b c)"  => "(/ 1 (* 2 (sqrt (* (* 2 pi) a))))",
        delta_odd:           "(E2 (delta x) (erf (* s x)) 0 0 a b c)" => "0",
        delta_scaled:        "(E1 (delta (* 2 x)) m v)"           => "(/ (E1 (delta x) m v) 2)",
        delta_single:        "(E1 (delta (- x t)) m v)"           => "(/ (exp (neg (/ (^ (- m t) 2) (* 2 v)))) (sqrt (* (* 2 pi) v)))",
    }

    refutes! { gaussian();
        gauss_needs_zero_means: "(E2 (exp (* k (^ x 2))) (exp (* k (^ x 2))) mu 0 a b c)" != "(/ 1 (sqrt (- (* (- 1 (* 2 (* k a))) (- 1 (* 2 (* k b)))) (* 4 (* (* k k) (^ c 2))))))",
        delta_unknown_scale:    "(delta (* s x))" != "(/ (delta x) s)",
    }
}
