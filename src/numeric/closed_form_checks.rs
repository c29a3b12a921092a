//! Numeric checks of the gaussian closed forms: THEORY.md T2/T2b and independent quadrature.
//!
//! Every check simplifies an `E1`/`E2` node with all rule sets, asserts that no expectation is
//! left, and evaluates the result with [`eval`](super::term_eval::eval). Independent values
//! come from the THEORY.md tables or from 1-D Simpson quadrature of
//! $\langle f(u)g(v)\rangle=\int f(u)\,\mathcal N(u;\mu_u,a)\,\langle g(v)\mid u\rangle\,du$,
//! $v\mid u\sim\mathcal N\big(\mu_v+\tfrac ca(u-\mu_u),\,b-\tfrac{c^2}a\big)$.

use std::collections::HashMap;
use std::f64::consts::PI;

use egg::RecExpr;

use super::term_eval::eval;
use crate::symbolic::lang::Math;
use crate::symbolic::rules::RuleSelection;
use crate::symbolic::runner::simplify;

/// The simplified `expr`; panics if an expectation survives.
fn closed(expr: &str) -> RecExpr<Math> {
    let expr: RecExpr<Math> = expr.parse().expect("test expression parses");
    let simplified = simplify(&expr, RuleSelection::all()).expr;
    let text = simplified.to_string();
    assert!(
        !text.contains("E1") && !text.contains("E2"),
        "no closed form: {text}"
    );
    simplified
}

fn value(expr: &RecExpr<Math>, env: &[(&str, f64)]) -> f64 {
    let env: HashMap<&str, f64> = env.iter().copied().collect();
    eval(expr, &env).unwrap_or_else(|| panic!("{expr} does not evaluate"))
}

/// The value of the simplified `expr` at `env`.
fn closed_value(expr: &str, env: &[(&str, f64)]) -> f64 {
    value(&closed(expr), env)
}

/// Composite Simpson rule with `n` (even) panels; the end values are the one-sided limits
/// from inside the interval (a jump may sit at an end).
fn simpson(f: &impl Fn(f64) -> f64, lo: f64, hi: f64, n: usize) -> f64 {
    let h = (hi - lo) / n as f64;
    let inner: f64 = (1..n)
        .map(|i| f(lo + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
        .sum();
    let nudge = 1e-9 * h;
    (f(lo + nudge) + f(hi - nudge) + inner) * h / 3.0
}

/// $\langle f(u)\rangle$, $u\sim\mathcal N(m,v)$, split at the kinks/jumps in `breaks`.
fn gauss_1d(f: impl Fn(f64) -> f64, m: f64, v: f64, breaks: &[f64]) -> f64 {
    let sd = v.sqrt();
    let density = |u: f64| (-(u - m) * (u - m) / (2.0 * v)).exp() / (2.0 * PI * v).sqrt();
    let mut points = vec![m - 14.0 * sd];
    points.extend(breaks.iter().copied().filter(|b| (b - m).abs() < 14.0 * sd));
    points.push(m + 14.0 * sd);
    let g = |u: f64| f(u) * density(u);
    points
        .windows(2)
        .map(|w| simpson(&g, w[0], w[1], 4000))
        .sum()
}

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() < tol, "{what}: {got} vs {want}");
}

const RHO: [f64; 5] = [-0.5, 0.0, 0.3, 0.9, 0.99];

#[test]
fn pair_kernels_match_theory_table_t2() {
    let table: [(&str, [f64; 5]); 5] = [
        (
            "(relu x)",
            [
                0.0544988905,
                0.1591549431,
                0.2413721419,
                0.4547691994,
                0.4951501279,
            ],
        ),
        (
            "(sign x)",
            [-0.3333333333, 0.0, 0.1939733680, 0.7128674137, 0.9098931727],
        ),
        (
            "(step x)",
            [0.1666666667, 0.25, 0.2984933420, 0.4282168534, 0.4774732932],
        ),
        (
            "(erf x)",
            [-0.2163468959, 0.0, 0.1281884337, 0.4096655294, 0.4588874755],
        ),
        (
            "(erf (* (/ (sqrt pi) 2) x))",
            [-0.1976523674, 0.0, 0.1173589478, 0.3706789772, 0.4135780974],
        ),
    ];
    for (body, values) in table {
        let kernel = closed(&format!("(E2 {body} {body} 0 0 a b c)"));
        for (rho, want) in RHO.into_iter().zip(values) {
            let got = value(&kernel, &[("a", 1.0), ("b", 1.0), ("c", rho)]);
            close(got, want, 1e-9, &format!("{body} at rho = {rho}"));
        }
    }
}

#[test]
fn threshold_kernels_match_theory_table_t2b() {
    // T2b prints 8 decimals: agreement to half a unit of the last digit.
    let table = [
        (0.5, [0.09519541, 0.16331952, 0.24532589]),
        (1.0, [0.02517149, 0.06251409, 0.11549034]),
    ];
    let kernel = closed("(E2 (step (- x t)) (step (- x t)) 0 0 a b c)");
    for (t, values) in table {
        for (rho, want) in [0.0, 0.5, 0.9].into_iter().zip(values) {
            let got = value(&kernel, &[("a", 1.0), ("b", 1.0), ("c", rho), ("t", t)]);
            close(got, want, 5.1e-9, &format!("threshold {t}, rho = {rho}"));
        }
    }
}

#[test]
fn pairs_with_means_and_mixed_slopes_match_quadrature() {
    let (mu, mv, a, b, c) = (0.3, -0.2, 1.3, 0.8, 0.4);
    let env = [
        ("mu", mu),
        ("mv", mv),
        ("a", a),
        ("b", b),
        ("c", c),
        ("s", 0.7),
        ("t", 1.6),
    ];
    let cond = |u: f64| (mv + c / a * (u - mu), b - c * c / a);
    let phi = |z: f64| 0.5 * libm::erfc(-z / 2f64.sqrt());
    let sign = |u: f64| if u > 0.0 { 1.0 } else { -1.0 };
    let want = gauss_1d(
        |u| {
            sign(u) * {
                let (m, s2) = cond(u);
                2.0 * phi(m / s2.sqrt()) - 1.0
            }
        },
        mu,
        a,
        &[0.0],
    );
    close(
        closed_value("(E2 (sign x) (sign x) mu mv a b c)", &env),
        want,
        1e-9,
        "sign, means",
    );
    let want = gauss_1d(
        |u| {
            if u > 0.4 {
                let (m, s2) = cond(u);
                phi((m - 0.1) / s2.sqrt())
            } else {
                0.0
            }
        },
        mu,
        a,
        &[0.4],
    );
    let got = closed_value("(E2 (step (- x 2/5)) (step (- x 1/10)) mu mv a b c)", &env);
    close(got, want, 1e-9, "shifted steps, means");
    let cond0 = |u: f64| (c / a * u, b - c * c / a);
    let want = gauss_1d(
        |u| {
            libm::erf(0.7 * u) * {
                let (m, s2) = cond0(u);
                libm::erf(1.6 * m / (1.0 + 2.0 * 2.56 * s2).sqrt())
            }
        },
        0.0,
        a,
        &[],
    );
    close(
        closed_value("(E2 (erf (* s x)) (erf (* t x)) 0 0 a b c)", &env),
        want,
        1e-9,
        "erf slopes s, t",
    );
}

/// A body, the same body as a Rust function, and its kinks/jumps.
type Case = (&'static str, Box<dyn Fn(f64) -> f64>, Vec<f64>);

#[test]
fn singles_match_quadrature() {
    let (m, v) = (0.3, 1.7);
    let env = [("m", m), ("v", v), ("s", 0.8), ("t", 0.4), ("k", -0.3)];
    let cases: [Case; 7] = [
        ("(relu x)", Box::new(|u: f64| u.max(0.0)), vec![0.0]),
        (
            "(erf (* s x))",
            Box::new(|u: f64| libm::erf(0.8 * u)),
            vec![],
        ),
        (
            "(step (- x t))",
            Box::new(|u: f64| if u > 0.4 { 1.0 } else { 0.0 }),
            vec![0.4],
        ),
        (
            "(sign x)",
            Box::new(|u: f64| if u > 0.0 { 1.0 } else { -1.0 }),
            vec![0.0],
        ),
        (
            "(exp (* k (^ x 2)))",
            Box::new(|u: f64| (-0.3 * u * u).exp()),
            vec![],
        ),
        (
            "(exp (* 7/10 x))",
            Box::new(|u: f64| (0.7 * u).exp()),
            vec![],
        ),
        (
            "(+ (^ x 2) (* 3 x))",
            Box::new(|u: f64| u * u + 3.0 * u),
            vec![],
        ),
    ];
    for (body, f, breaks) in cases {
        let want = gauss_1d(f, m, v, &breaks);
        close(
            closed_value(&format!("(E1 {body} m v)"), &env),
            want,
            1e-9,
            body,
        );
    }
    let want = (-(0.4f64 - m).powi(2) / (2.0 * v)).exp() / (2.0 * PI * v).sqrt();
    close(
        closed_value("(E1 (delta (- x t)) m v)", &env),
        want,
        1e-12,
        "delta",
    );
}

#[test]
fn price_forms_match_quadrature() {
    let (a, b, c) = (1.3, 0.8, 0.4);
    let env = [("a", a), ("b", b), ("c", c), ("k", -0.3), ("l", -0.7)];
    let (m_of, s2) = (|u: f64| c / a * u, b - c * c / a);
    let gauss_given =
        |l: f64, m: f64| (l * m * m / (1.0 - 2.0 * l * s2)).exp() / (1.0 - 2.0 * l * s2).sqrt();
    let want = gauss_1d(
        |u| (-0.3 * u * u).exp() * gauss_given(-0.7, m_of(u)),
        0.0,
        a,
        &[],
    );
    let got = closed_value(
        "(E2 (exp (* k (^ x 2))) (exp (* l (^ x 2))) 0 0 a b c)",
        &env,
    );
    close(got, want, 1e-9, "gaussian pair");
    // ⟨u e^{k u²} erf(t v)⟩ with ⟨erf(t v) | u⟩ = erf(t m(u) / √(1 + 2t²σ²)).
    let t = 1.6_f64;
    let erf_given = |m: f64| libm::erf(t * m / (1.0 + 2.0 * t * t * s2).sqrt());
    let want = gauss_1d(
        |u| u * (-0.3 * u * u).exp() * erf_given(m_of(u)),
        0.0,
        a,
        &[],
    );
    let env_t = [("a", a), ("b", b), ("c", c), ("k", -0.3), ("t", t)];
    let got = closed_value(
        "(E2 (* x (exp (* k (^ x 2)))) (erf (* t x)) 0 0 a b c)",
        &env_t,
    );
    close(got, want, 1e-9, "Stein form");
    // ⟨δ(u) g(v)⟩ = p_u(0) ⟨g(v) | u = 0⟩.
    let p0 = 1.0 / (2.0 * PI * a).sqrt();
    let relu = gauss_1d(|w| w.max(0.0), 0.0, s2, &[0.0]);
    close(
        closed_value("(E2 (delta x) (relu x) 0 0 a b c)", &env),
        p0 * relu,
        1e-9,
        "delta relu",
    );
    close(
        closed_value("(E2 (delta x) (step x) 0 0 a b c)", &env),
        p0 * 0.5,
        1e-12,
        "delta step",
    );
    let density = 1.0 / (2.0 * PI * (a * b - c * c).sqrt());
    close(
        closed_value("(E2 (delta x) (delta x) 0 0 a b c)", &env),
        density,
        1e-12,
        "delta delta",
    );
}
