//! Bounds on how deeply a source may nest, so that what the later stages do with an
//! expression (derivatives, simplification, printing) stays bounded in time and memory.
//!
//! Nesting counts the operations that do not chain flatly: powers, calls, negations,
//! transposes, sums and expectations. A left-associative chain of `+ - * /` (a long sum
//! of terms) does not nest: its terms sit side by side. A power tower `x^x^…^x` does, and
//! its derivative grows quadratically with the height (40 levels already take seconds to
//! differentiate and simplify).

use super::ast::{BinaryOp, Expr, ExprKind, File, ItemKind};
use super::{Diagnostic, Span};

/// The deepest nesting an expression may have.
pub const MAX_NESTING: usize = 32;

/// The deepest bracket nesting a source may have (checked before parsing, so the
/// recursive-descent parser never runs out of stack).
pub const MAX_BRACKETS: usize = 128;

/// One diagnostic per declaration whose expression nests deeper than [`MAX_NESTING`].
pub fn check_nesting(file: &File) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for item in &file.items {
        let body = match &item.kind {
            ItemKind::Function(f) => &f.body,
            ItemKind::Definition(d) => &d.body,
            ItemKind::Action(a) => &a.body,
            _ => continue,
        };
        let (depth, deepest) = nesting(body);
        if depth > MAX_NESTING {
            problems.push(
                Diagnostic::new(
                    "saddle::nesting_too_deep",
                    format!(
                        "an expression nested {depth} deep (at most {MAX_NESTING} are allowed)"
                    ),
                    deepest,
                    "nested too deeply",
                )
                .with_help(
                    "split it into named functions or definitions; power towers and deeply \
                     nested calls make the derivatives grow without bound",
                ),
            );
        }
    }
    problems
}

/// The nesting depth of `expr` and the span of its deepest part.
fn nesting(expr: &Expr) -> (usize, Span) {
    let children: Vec<&Expr> = match &expr.kind {
        ExprKind::Number(_) | ExprKind::Name(_) => return (0, expr.span),
        ExprKind::Binary { op, .. } if *op != BinaryOp::Pow => {
            // walk the left spine of the chain in a loop: a sum of thousands of terms is
            // thousands deep on the left, and recursion there would exhaust the stack
            let mut deepest = (0, expr.span);
            let mut spine = expr;
            while let ExprKind::Binary { op, lhs, rhs } = &spine.kind
                && *op != BinaryOp::Pow
            {
                let r = nesting(rhs);
                if r.0 > deepest.0 {
                    deepest = r;
                }
                spine = lhs;
            }
            let l = nesting(spine);
            return if l.0 > deepest.0 { l } else { deepest };
        }
        ExprKind::Binary { lhs, rhs, .. } => vec![lhs.as_ref(), rhs.as_ref()],
        ExprKind::Index { indices, .. } => indices.iter().collect(),
        ExprKind::Call { args, .. } => args.iter().collect(),
        ExprKind::Prefix { arg, .. } => vec![arg.as_ref()],
        ExprKind::Neg(a) | ExprKind::Transpose(a) => vec![a.as_ref()],
        ExprKind::Sum { bindings, body } => bindings
            .iter()
            .flat_map(|b| [&b.lower, &b.upper])
            .chain(std::iter::once(&**body))
            .collect(),
        ExprKind::Expectation {
            body, mean, cov, ..
        } => vec![body.as_ref(), mean.as_ref(), cov.as_ref()],
    };
    let (depth, span) = children
        .into_iter()
        .map(nesting)
        .max_by_key(|(d, _)| *d)
        .unwrap_or((0, expr.span));
    (depth + 1, if depth == 0 { expr.span } else { span })
}

#[cfg(test)]
mod tests {
    use crate::syntax::parse;

    fn tower(height: usize) -> String {
        format!("theory t\nphi(x) = {}\n", vec!["x"; height].join("^"))
    }

    #[test]
    fn power_towers_are_bounded_and_long_sums_are_not() {
        assert!(parse(&tower(super::MAX_NESTING), "t.action").is_ok());
        let err = parse(&tower(super::MAX_NESTING + 2), "t.action").err();
        let codes: Vec<&str> = err
            .iter()
            .flat_map(|d| d.items.iter().map(|i| i.code))
            .collect();
        assert_eq!(codes, ["saddle::nesting_too_deep"]);
        let long_sum = format!("theory t\nphi(x) = {}\n", vec!["x"; 5000].join(" + "));
        assert!(parse(&long_sum, "t.action").is_ok());
    }

    #[test]
    fn brackets_nested_beyond_the_bound_are_refused_before_parsing() {
        let deep = format!(
            "theory t\nphi(x) = {}x{}\n",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let err = parse(&deep, "t.action").err();
        let codes: Vec<&str> = err
            .iter()
            .flat_map(|d| d.items.iter().map(|i| i.code))
            .collect();
        assert_eq!(codes, ["saddle::nesting_too_deep"]);
    }
}
