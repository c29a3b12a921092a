//! THEORY.md reference values reproduced from the *derived* equations: the per-pair closed
//! forms the e-graph finds (T2) and the Jacobian G of §2 from symbolic differentiation.

use std::collections::HashMap;

use saddle::derive::closed_form::pair_equation;
use saddle::numeric::term_eval::eval;

fn theory(phi: &str) -> saddle::Theory {
    let source = format!(
        "theory t\nparam g = 1.5\nparam gb = 0\nparam N = 100\nparam L: int = 1\nphi(x) = {phi}\ndata X\n\
         kernel C[l] for l in 0..=L\nconj Ct[l] of C[l] for l in 1..=L\nC[0] = X X^T\n\
         action S = sum(l in 1..=L, - tr(Ct[l]^T C[l]) + N * ln E[exp(g / N * phi(h)^T Ct[l] phi(h)) | h ~ N(0, C[l-1])] + gb * tr(Ct[l]^T ones))\n"
    );
    saddle::compile(&source, "t.action").unwrap_or_else(|d| panic!("{}", d.render(false)))
}

fn env(a: f64, b: f64, c: f64) -> HashMap<&'static str, f64> {
    HashMap::from([
        ("g", 1.0),
        ("gb", 0.0),
        ("N", 100.0),
        ("C[0]_aa", a),
        ("C[0]_bb", b),
        ("C[0]_ab", c),
    ])
}

#[test]
fn t2_closed_forms_found_by_the_simplifier() {
    // unit variances, K_φ(ρ) with g = 1, gb = 0
    let cases: [(&str, [f64; 5]); 5] = [
        (
            "relu(x)",
            [
                0.0544988905,
                0.1591549431,
                0.2413721419,
                0.4547691994,
                0.4951501279,
            ],
        ),
        (
            "sign(x)",
            [-0.3333333333, 0.0, 0.1939733680, 0.7128674137, 0.9098931727],
        ),
        (
            "step(x)",
            [0.1666666667, 0.25, 0.2984933420, 0.4282168534, 0.4774732932],
        ),
        (
            "erf(x)",
            [-0.2163468959, 0.0, 0.1281884337, 0.4096655294, 0.4588874755],
        ),
        (
            "erf(sqrt(pi) / 2 * x)",
            [-0.1976523674, 0.0, 0.1173589478, 0.3706789772, 0.4135780974],
        ),
    ];
    for (phi, values) in cases {
        let t = theory(phi);
        let equations = saddle::derive::derive(&t, &[]).expect("derivation");
        let pair = pair_equation(&t, &equations.forward[0], false).expect("pair formula");
        assert!(
            pair.is_closed(),
            "{phi}: no closed form found: {}",
            pair.formula
        );
        for (rho, want) in [-0.5, 0.0, 0.3, 0.9, 0.99].into_iter().zip(values) {
            let got = eval(&pair.formula, &env(1.0, 1.0, rho)).expect("evaluates");
            assert!(
                (got - want).abs() < 1e-9,
                "{phi} at ρ = {rho}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn jacobian_g_of_the_erf_map_matches_theory() {
    // THEORY.md §2: G⁽¹⁾ = g ∂K/∂C (full-matrix) at C⁽⁰⁾ = [[1, .6], [.6, 1.5]], g = 1.5,
    // unit-slope erf; rows (11), (12), (22) on the basis (11, 12, 21, 22).
    let t = theory("erf(sqrt(pi) / 2 * x)");
    let equations = saddle::derive::derive(&t, &[]).expect("derivation");
    let pair = pair_equation(&t, &equations.forward[0], true).expect("pair formula");
    let d = |wrt: &str, a: f64, b: f64, c: f64| -> f64 {
        let (_, expr) = pair
            .jacobian
            .iter()
            .find(|(w, _)| w == wrt)
            .unwrap_or_else(|| panic!("no derivative wrt {wrt}"));
        let expr = expr.as_ref().unwrap_or_else(|e| panic!("{wrt}: {e}"));
        let mut values = env(a, b, c);
        values.insert("g", 1.5);
        eval(expr, &values).expect("evaluates")
    };
    // off-diagonal pair (α, β) = (1, 2)
    let (a, b, c) = (1.0, 1.5, 0.6);
    for (got, want) in [
        (d("C[0]_aa", a, b, c), -0.09883234),
        (d("C[0]_ab", a, b, c), 0.26958493),
        (d("C[0]_bb", a, b, c), -0.07570414),
    ] {
        assert!((got - want).abs() < 1e-8, "row (12): {got} vs {want}");
    }
    // diagonal entries: all three covariance slots are the same C_αα (the off-diagonal slot
    // counts for both (αβ) and (βα), i.e. twice its full-matrix half)
    let diagonal =
        |q: f64| d("C[0]_aa", q, q, q) + d("C[0]_bb", q, q, q) + 2.0 * d("C[0]_ab", q, q, q);
    assert!(
        (diagonal(1.0) - 0.28670806).abs() < 1e-8,
        "G(11),(11) = {}",
        diagonal(1.0)
    );
    assert!(
        (diagonal(1.5) - 0.18699726).abs() < 1e-8,
        "G(22),(22) = {}",
        diagonal(1.5)
    );
    // and the compact ⟨φ'φ'⟩ form of §2: no arcsine, no unevaluated expectation
    let (_, g12) = pair
        .jacobian
        .iter()
        .find(|(w, _)| w == "C[0]_ab")
        .expect("derivative");
    let text = g12.as_ref().expect("derived").to_string();
    assert!(
        !text.contains("asin") && !text.contains("E2"),
        "G is not compact: {text}"
    );
}

/// sign, step and step(x − θ) (the bivariate normal CDF): Price's theorem would need ⟨δ′ φ⟩ for the diagonal entries of G, so they
/// come from differentiating the closed form; both against central differences of the
/// derived pair formula itself.
#[test]
fn jacobian_of_sign_and_step_on_the_diagonal_entries() {
    for phi in ["sign(x)", "step(x)", "step(x - 0.3)"] {
        let t = theory(phi);
        let equations = saddle::derive::derive(&t, &[]).expect("derivation");
        let pair = pair_equation(&t, &equations.forward[0], true).expect("pair formula");
        assert!(pair.is_closed(), "{phi}: {}", pair.formula);
        let value = |a: f64, b: f64, c: f64| eval(&pair.formula, &env(a, b, c)).expect("value");
        let (a, b, c) = (1.0, 1.5, 0.6);
        let h = 1e-6;
        for (wrt, numeric) in [
            (
                "C[0]_aa",
                (value(a + h, b, c) - value(a - h, b, c)) / (2.0 * h),
            ),
            (
                "C[0]_bb",
                (value(a, b + h, c) - value(a, b - h, c)) / (2.0 * h),
            ),
            // full-matrix convention: the pair slot counts half for (αβ) and half for (βα)
            (
                "C[0]_ab",
                (value(a, b, c + h) - value(a, b, c - h)) / (4.0 * h),
            ),
        ] {
            let (_, d) = pair
                .jacobian
                .iter()
                .find(|(w, _)| w == wrt)
                .unwrap_or_else(|| panic!("{phi}: no derivative wrt {wrt}"));
            let d = d.as_ref().unwrap_or_else(|e| panic!("{phi} {wrt}: {e}"));
            let symbolic = eval(d, &env(a, b, c)).expect("evaluates");
            assert!(
                (symbolic - numeric).abs() <= 1e-8,
                "{phi} ∂/∂{wrt}: {symbolic} vs {numeric}"
            );
        }
    }
}
