//! Closed forms of Gaussian expectations (THEORY.md §2).
//!
//! Notation: `(E2 f g mu mv a b c)` $=\langle f(u)g(v)\rangle$ with
//! $(u,v)\sim\mathcal N\big((\mu_u,\mu_v),\begin{psmallmatrix}a&c\\c&b\end{psmallmatrix}\big)$,
//! `(E1 f m v)` $=\langle f(u)\rangle$ with $u\sim\mathcal N(m,v)$; bodies are functions of `x`.
//! Below $\rho=c/\sqrt{ab}$, $h=\mu_u/\sqrt a$, $k=\mu_v/\sqrt b$.
//!
//! Structure (linearity of the expectation; every "constant" is a term free of `x`):
//! $\langle f g\rangle=\langle g f\rangle$ with the roles of the two marginals swapped;
//! $\langle (\kappa f) g\rangle=\kappa\langle fg\rangle$; $\langle (f+h)g\rangle=\langle fg\rangle+\langle hg\rangle$;
//! $\langle \kappa\, g(v)\rangle=\kappa\langle g\rangle_{\mathcal N(\mu_v,b)}$; the same for `E1`.
//!
//! Pair closed forms:
//!
//! | $f,\ g$ | means | $\langle f(u)g(v)\rangle$ |
//! |---|---|---|
//! | $x,\ x$ | any | $c+\mu_u\mu_v$ |
//! | $\operatorname{erf}(sx),\ \operatorname{erf}(tx)$ | 0 | $\frac2\pi\arcsin\frac{2stc}{\sqrt{(1+2s^2a)(1+2t^2b)}}$ |
//! | relu, relu | 0 | $\frac{1}{2\pi}\big[\sqrt{ab-c^2}+c(\pi-\arccos\rho)\big]=\frac{\sqrt{ab}}{2\pi}[\sin\theta+(\pi-\theta)\cos\theta]$ |
//! | sign, sign | 0 | $\frac2\pi\arcsin\rho$ |
//! | sign, sign | any | $4\Phi_2(h,k;\rho)-2\Phi(h)-2\Phi(k)+1$ |
//! | step, step | 0 | $\frac14+\frac{\arcsin\rho}{2\pi}$ |
//! | $H(x-\theta_1),\ H(x-\theta_2)$ | any | $\Phi_2\big(\frac{\mu_u-\theta_1}{\sqrt a},\frac{\mu_v-\theta_2}{\sqrt b};\rho\big)$ |
//!
//! Single closed forms: $\langle u\rangle=m$, $\langle u^2\rangle=m^2+v$,
//! $\langle\operatorname{erf}(su)\rangle=\operatorname{erf}\frac{sm}{\sqrt{1+2s^2v}}$,
//! $\langle H(u-\theta)\rangle=\Phi\frac{m-\theta}{\sqrt v}$, $\langle\operatorname{sign}u\rangle=2\Phi\frac{m}{\sqrt v}-1$,
//! $\langle\operatorname{relu}u\rangle=m\Phi\frac m{\sqrt v}+\sqrt v\,e^{-m^2/2v}/\sqrt{2\pi}$.
//! Also Sheppard's $\Phi_2(0,0;\rho)=\frac14+\frac{\arcsin\rho}{2\pi}$, $\Phi(0)=\frac12$,
//! $\operatorname{erf}0=0$, oddness of $\operatorname{erf}$, and the
//! positive homogeneity of the bodies: $\operatorname{relu}(sy)=s\operatorname{relu}y$,
//! $H(sy)=H(y)$, $\operatorname{sign}(sy)=\operatorname{sign}y$ for known $s>0$ ($\operatorname{erf}(x)$ is
//! $s=1$; a unit slope has its own rules so no `(* 1 x)` is ever needed). `tanh` and user
//! functions have no rule: they stay `E1`/`E2` nodes for quadrature.

use egg::rewrite as rw;

use super::Rw;
use super::conditions::{positive, x_free};

/// The pair/single closed forms of the `gaussian` rule set (the Price-theorem derivative forms
/// are in [`price`](super::price)).
#[rustfmt::skip]
pub fn rules() -> Vec<Rw> {
    vec![
        // structure
        rw!("E2-swap";    "(E2 ?f ?g ?mu ?mv ?a ?b ?c)"          => "(E2 ?g ?f ?mv ?mu ?b ?a ?c)"),
        rw!("E2-pull";    "(E2 (* ?k ?f) ?g ?mu ?mv ?a ?b ?c)"   => "(* ?k (E2 ?f ?g ?mu ?mv ?a ?b ?c))" if x_free(&["?k"])),
        rw!("E2-sum";     "(E2 (+ ?f ?h) ?g ?mu ?mv ?a ?b ?c)"
                          => "(+ (E2 ?f ?g ?mu ?mv ?a ?b ?c) (E2 ?h ?g ?mu ?mv ?a ?b ?c))"),
        rw!("E2-const";   "(E2 ?k ?g ?mu ?mv ?a ?b ?c)"          => "(* ?k (E1 ?g ?mv ?b))" if x_free(&["?k"])),
        rw!("E1-pull";    "(E1 (* ?k ?f) ?m ?v)"                 => "(* ?k (E1 ?f ?m ?v))" if x_free(&["?k"])),
        rw!("E1-sum";     "(E1 (+ ?f ?h) ?m ?v)"                 => "(+ (E1 ?f ?m ?v) (E1 ?h ?m ?v))"),
        rw!("E1-const";   "(E1 ?k ?m ?v)"                        => "?k" if x_free(&["?k"])),
        // positive homogeneity of the bodies
        rw!("relu-scale"; "(relu (* ?s ?y))"                     => "(* ?s (relu ?y))" if positive(&["?s"])),
        rw!("step-scale"; "(step (* ?s ?y))"                     => "(step ?y)" if positive(&["?s"])),
        rw!("sign-scale"; "(sign (* ?s ?y))"                     => "(sign ?y)" if positive(&["?s"])),
        // pairs
        rw!("E2-linear";  "(E2 x x ?mu ?mv ?a ?b ?c)"            => "(+ ?c (* ?mu ?mv))"),
        rw!("E2-erf";     "(E2 (erf (* ?s x)) (erf (* ?t x)) 0 0 ?a ?b ?c)"
                          => "(* (/ 2 pi) (asin (/ (* 2 (* (* ?s ?t) ?c)) (sqrt (* (+ 1 (* 2 (* (^ ?s 2) ?a))) (+ 1 (* 2 (* (^ ?t 2) ?b))))))))"
                          if x_free(&["?s", "?t"])),
        rw!("E2-erf-mixed"; "(E2 (erf (* ?s x)) (erf x) 0 0 ?a ?b ?c)"
                          => "(* (/ 2 pi) (asin (/ (* 2 (* ?s ?c)) (sqrt (* (+ 1 (* 2 (* (^ ?s 2) ?a))) (+ 1 (* 2 ?b)))))))"
                          if x_free(&["?s"])),
        rw!("E2-erf-unit"; "(E2 (erf x) (erf x) 0 0 ?a ?b ?c)"
                          => "(* (/ 2 pi) (asin (/ (* 2 ?c) (sqrt (* (+ 1 (* 2 ?a)) (+ 1 (* 2 ?b)))))))"),
        rw!("E2-relu";    "(E2 (relu x) (relu x) 0 0 ?a ?b ?c)"
                          => "(/ (+ (sqrt (- (* ?a ?b) (^ ?c 2))) (* ?c (- pi (acos (/ ?c (sqrt (* ?a ?b))))))) (* 2 pi))"),
        rw!("E2-sign";    "(E2 (sign x) (sign x) 0 0 ?a ?b ?c)"  => "(* (/ 2 pi) (asin (/ ?c (sqrt (* ?a ?b)))))"),
        rw!("E2-sign-means"; "(E2 (sign x) (sign x) ?mu ?mv ?a ?b ?c)"
                          => "(+ (- (* 4 (Phi2 (/ ?mu (sqrt ?a)) (/ ?mv (sqrt ?b)) (/ ?c (sqrt (* ?a ?b)))))
                                    (* 2 (+ (Phi (/ ?mu (sqrt ?a))) (Phi (/ ?mv (sqrt ?b)))))) 1)"),
        rw!("E2-step";    "(E2 (step x) (step x) 0 0 ?a ?b ?c)"  => "(+ 1/4 (/ (asin (/ ?c (sqrt (* ?a ?b)))) (* 2 pi)))"),
        rw!("E2-step-means"; "(E2 (step x) (step x) ?mu ?mv ?a ?b ?c)"
                          => "(Phi2 (/ ?mu (sqrt ?a)) (/ ?mv (sqrt ?b)) (/ ?c (sqrt (* ?a ?b))))"),
        rw!("E2-step-shift"; "(E2 (step (- x ?t)) (step (- x ?r)) ?mu ?mv ?a ?b ?c)"
                          => "(Phi2 (/ (- ?mu ?t) (sqrt ?a)) (/ (- ?mv ?r) (sqrt ?b)) (/ ?c (sqrt (* ?a ?b))))"
                          if x_free(&["?t", "?r"])),
        rw!("E2-step-shift-one"; "(E2 (step (- x ?t)) (step x) ?mu ?mv ?a ?b ?c)"
                          => "(Phi2 (/ (- ?mu ?t) (sqrt ?a)) (/ ?mv (sqrt ?b)) (/ ?c (sqrt (* ?a ?b))))"
                          if x_free(&["?t"])),
        rw!("Phi2-origin"; "(Phi2 0 0 ?r)"                       => "(+ 1/4 (/ (asin ?r) (* 2 pi)))"),
        rw!("Phi-zero";   "(Phi 0)"                              => "1/2"),
        rw!("erf-zero";   "(erf 0)"                              => "0"),
        rw!("erf-odd";    "(erf (* -1 ?y))"                      => "(* -1 (erf ?y))"),
        // singles
        rw!("E1-linear";  "(E1 x ?m ?v)"                         => "?m"),
        rw!("E1-square";  "(E1 (^ x 2) ?m ?v)"                   => "(+ (^ ?m 2) ?v)"),
        rw!("E1-erf";     "(E1 (erf (* ?s x)) ?m ?v)"            => "(erf (/ (* ?s ?m) (sqrt (+ 1 (* 2 (* (^ ?s 2) ?v))))))"
                          if x_free(&["?s"])),
        rw!("E1-erf-unit"; "(E1 (erf x) ?m ?v)"                  => "(erf (/ ?m (sqrt (+ 1 (* 2 ?v)))))"),
        rw!("E1-step";    "(E1 (step x) ?m ?v)"                  => "(Phi (/ ?m (sqrt ?v)))"),
        rw!("E1-step-shift"; "(E1 (step (- x ?t)) ?m ?v)"        => "(Phi (/ (- ?m ?t) (sqrt ?v)))" if x_free(&["?t"])),
        rw!("E1-sign";    "(E1 (sign x) ?m ?v)"                  => "(- (* 2 (Phi (/ ?m (sqrt ?v)))) 1)"),
        rw!("E1-relu";    "(E1 (relu x) ?m ?v)"
                          => "(+ (* ?m (Phi (/ ?m (sqrt ?v)))) (/ (* (sqrt ?v) (exp (neg (/ (^ ?m 2) (* 2 ?v))))) (sqrt (* 2 pi))))"),
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
        linear_pair:        "(E2 x x mu mv a b c)"                     => "(+ c (* mu mv))",
        linear_scaled:      "(E2 (* 3 x) (* g x) 0 0 a b c)"           => "(* 3 (* g c))",
        erf_pair:           "(E2 (erf (* s x)) (erf (* s x)) 0 0 a b c)"
                            => "(* (/ 2 pi) (asin (/ (* 2 (* (* s s) c)) (sqrt (* (+ 1 (* 2 (* (^ s 2) a))) (+ 1 (* 2 (* (^ s 2) b))))))))",
        erf_unit_pair:      "(E2 (erf x) (erf x) 0 0 1 1 r)"           => "(* (/ 2 pi) (asin (/ (* 2 r) 3)))",
        erf_mixed_swapped:  "(E2 (erf x) (erf (* s x)) 0 0 a b c)"
                            => "(* (/ 2 pi) (asin (/ (* 2 (* s c)) (sqrt (* (+ 1 (* 2 (* (^ s 2) b))) (+ 1 (* 2 a)))))))",
        relu_pair:          "(E2 (relu x) (relu x) 0 0 a b c)"
                            => "(/ (+ (sqrt (- (* a b) (^ c 2))) (* c (- pi (acos (/ c (sqrt (* a b))))))) (* 2 pi))",
        relu_scaled:        "(E2 (relu (* 2 x)) (relu x) 0 0 a b c)"   => "(* 2 (E2 (relu x) (relu x) 0 0 a b c))",
        sign_pair:          "(E2 (sign x) (sign x) 0 0 a b c)"         => "(* (/ 2 pi) (asin (/ c (sqrt (* a b)))))",
        step_pair:          "(E2 (step x) (step x) 0 0 a b c)"         => "(+ 1/4 (/ (asin (/ c (sqrt (* a b)))) (* 2 pi)))",
        step_zero_means:    "(Phi2 (/ 0 (sqrt a)) (/ 0 (sqrt b)) r)"   => "(+ 1/4 (/ (asin r) (* 2 pi)))",
        threshold_pair:     "(E2 (step (- x t)) (step (- x t)) mu mv a b c)"
                            => "(Phi2 (/ (- mu t) (sqrt a)) (/ (- mv t) (sqrt b)) (/ c (sqrt (* a b))))",
        threshold_one_side: "(E2 (step x) (step (- x t)) 0 0 a b c)"
                            => "(Phi2 (/ (- 0 t) (sqrt b)) (/ 0 (sqrt a)) (/ c (sqrt (* b a))))",
        constant_body:      "(E2 g (erf x) 0 0 a b c)"                 => "(* g (E1 (erf x) 0 b))",
        sum_body:           "(E2 (+ x 1) x mu mv a b c)"               => "(+ (+ c (* mu mv)) mv)",
        single_linear:      "(E1 (+ (* 2 x) 1) m v)"                   => "(+ (* 2 m) 1)",
        single_square:      "(E1 (^ x 2) m v)"                         => "(+ (^ m 2) v)",
        single_erf:         "(E1 (erf (* s x)) m v)"                   => "(erf (/ (* s m) (sqrt (+ 1 (* 2 (* (^ s 2) v))))))",
        single_erf_zero:    "(E1 (erf x) 0 v)"                         => "0",
        single_step:        "(E1 (step (- x t)) m v)"                  => "(Phi (/ (- m t) (sqrt v)))",
        single_sign_zero:   "(E1 (sign x) 0 v)"                        => "0",
        single_relu:        "(E1 (relu x) m v)"
                            => "(+ (* m (Phi (/ m (sqrt v)))) (/ (* (sqrt v) (exp (neg (/ (^ m 2) (* 2 v))))) (sqrt (* 2 pi))))",
    }

    refutes! { gaussian();
        erf_means_have_no_closed_form: "(E2 (erf x) (erf x) mu 0 a b c)" != "(* (/ 2 pi) (asin (/ (* 2 c) (sqrt (* (+ 1 (* 2 a)) (+ 1 (* 2 b)))))))",
        slope_must_be_free_of_x:       "(E1 (erf (* x x)) m v)"          != "(erf (/ (* x m) (sqrt (+ 1 (* 2 (* (^ x 2) v))))))",
        relu_negative_scale:           "(relu (* -2 x))"                 != "(* -2 (relu x))",
        relu_unknown_scale:            "(relu (* s x))"                  != "(* s (relu x))",
    }
}
