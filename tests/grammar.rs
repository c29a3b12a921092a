//! The grammar rule by rule: what each construct parses to (shown through the canonical
//! printer with full parentheses where precedence decides), and what it rejects.

use saddle::syntax::ast::{BinaryOp, Expr, ExprKind};
use saddle::syntax::parser::parse_expr;

/// Fully parenthesised structure of an expression, to make precedence visible.
fn shape(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Number(v) => format!("{v}"),
        ExprKind::Name(n) => n.name.clone(),
        ExprKind::Index { base, indices } => {
            format!(
                "{}[{}]",
                base.name,
                indices.iter().map(shape).collect::<Vec<_>>().join(",")
            )
        }
        ExprKind::Call { func, args } => format!(
            "{}({})",
            func.name,
            args.iter().map(shape).collect::<Vec<_>>().join(",")
        ),
        ExprKind::Prefix { func, arg } => format!("{}<{}>", func.name, shape(arg)),
        ExprKind::Neg(a) => format!("(-{})", shape(a)),
        ExprKind::Transpose(a) => format!("{}'", shape(a)),
        ExprKind::Binary { op, lhs, rhs } => {
            let op = if *op == BinaryOp::Juxtapose {
                "·"
            } else {
                op.symbol()
            };
            format!("({} {op} {})", shape(lhs), shape(rhs))
        }
        ExprKind::Sum { bindings, body } => format!(
            "sum[{}]({})",
            bindings
                .iter()
                .map(|b| format!("{}:{}..{}", b.var.name, shape(&b.lower), shape(&b.upper)))
                .collect::<Vec<_>>()
                .join(","),
            shape(body)
        ),
        ExprKind::Expectation {
            body,
            var,
            mean,
            cov,
        } => {
            format!(
                "E[{} | {} ~ N({}, {})]",
                shape(body),
                var.name,
                shape(mean),
                shape(cov)
            )
        }
    }
}

fn parses_to(source: &str, expected: &str) {
    let expr = parse_expr(source).unwrap_or_else(|d| panic!("`{source}` does not parse: {d:?}"));
    assert_eq!(shape(&expr), expected, "`{source}`");
}

fn fails(source: &str) {
    assert!(parse_expr(source).is_err(), "`{source}` should not parse");
}

#[test]
fn additive_operators_are_left_associative() {
    parses_to("a - b - c", "((a - b) - c)");
    parses_to("a + b * c", "(a + (b * c))");
}

#[test]
fn juxtaposition_is_a_product_at_the_level_of_star_and_slash() {
    parses_to("X X^T", "(X · X')");
    parses_to("g0 / d * X X^T", "(((g0 / d) * X) · X')");
    parses_to("1/2 x", "((1 / 2) · x)");
    parses_to("phi(h)^T Ct[l] phi(h)", "((phi(h)' · Ct[l]) · phi(h))");
}

#[test]
fn unary_minus_binds_tighter_than_products_and_looser_than_powers() {
    parses_to("-a^2", "(-(a ^ 2))");
    parses_to("-a b", "((-a) · b)");
    parses_to("a -b", "(a - b)");
    parses_to("a * -b", "(a * (-b))");
}

#[test]
fn powers_are_right_associative_and_t_is_always_the_transpose() {
    parses_to("a^b^c", "(a ^ (b ^ c))");
    parses_to("x^-1", "(x ^ (-1))");
    parses_to("A^T^T", "A''");
    parses_to("x^Tmax", "(x ^ Tmax)");
    parses_to("(A B)^T", "(A · B)'");
}

#[test]
fn numbers() {
    parses_to("1.5e-3", "0.0015");
    parses_to("2E2", "200");
    fails("1.");
    fails(".5");
}

#[test]
fn calls_indices_and_prefix_application() {
    parses_to("inv(C[L] + kappa * I)", "inv((C[L] + (kappa * I)))");
    parses_to("C[t-1, s]", "C[(t - 1),s]");
    parses_to("ln E[exp(x) | h ~ N(0, K)]", "ln<E[exp(x) | h ~ N(0, K)]>");
    parses_to("exp x y", "(exp<x> · y)");
    // A blank before `(` makes a product, not a call.
    parses_to("g (x)", "(g · x)");
}

#[test]
fn sums_with_one_and_two_indices() {
    parses_to("sum(l in 1..=L, a)", "sum[l:1..L](a)");
    parses_to(
        "sum(t in 1..=T, s in 0..=T, C[t, s])",
        "sum[t:1..T,s:0..T](C[t,s])",
    );
}

#[test]
fn expectations() {
    parses_to(
        "E[ f(h) | h ~ N(J * m[l-1], g * Q[l-1]) ]",
        "E[f(h) | h ~ N((J * m[(l - 1)]), (g * Q[(l - 1)]))]",
    );
}

#[test]
fn line_breaks_may_precede_an_operator_but_not_a_juxtaposed_factor() {
    parses_to("a\n + b", "(a + b)");
    parses_to("a\n * b", "(a * b)");
    fails("a\n b");
    parses_to("sum(l in 1..=L,\n  a\n  - b)", "sum[l:1..L]((a - b))");
}

#[test]
fn reserved_words_are_not_names() {
    fails("for + 1");
    fails("sum + 1");
    parses_to("former + 1", "(former + 1)");
}
