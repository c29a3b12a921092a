//! Symmetric matrices: which derived expressions are known to be symmetric, and the
//! symmetric part sym(X) = (X + Xᵀ)/2 that the full-matrix convention (THEORY.md §1) takes of
//! every kernel gradient — written as X itself when X equals its transpose.

use crate::check::ir::{Dim, Expr, ExprKind, MatrixFunction, Shape};

use super::build::{add, div, is_zero, number, transpose};

/// Whether `e` is known to be a symmetric matrix: kernels (functions see sym(C)), I, ones,
/// Gram matrices A Aᵀ, and sums, scalar multiples, inverses and expectations of those.
pub fn is_symmetric(e: &Expr) -> bool {
    if !e.shape.is_square() {
        return false;
    }
    match &e.kind {
        ExprKind::Number(_) | ExprKind::Identity | ExprKind::Ones => true,
        // A two-time block C[t, s] is symmetric only on the diagonal t = s.
        ExprKind::Field { indices, .. } => {
            e.shape == Shape::KERNEL && indices.windows(2).all(|w| w[0] == w[1])
        }
        ExprKind::Neg(a) | ExprKind::Transpose(a) => is_symmetric(a),
        ExprKind::Add(a, b) | ExprKind::Sub(a, b) => is_symmetric(a) && is_symmetric(b),
        ExprKind::Mul(a, b) if a.shape.is_scalar() => is_symmetric(b),
        ExprKind::Mul(a, b) if b.shape.is_scalar() => is_symmetric(a),
        ExprKind::Mul(a, b) => {
            matches!(&b.kind, ExprKind::Transpose(t) if **t == **a)
                || (a.shape.cols == Dim::One && **b == transpose((**a).clone()))
        }
        ExprKind::Div(a, _) => is_symmetric(a),
        ExprKind::Matrix(MatrixFunction::Inverse, a) => is_symmetric(a),
        ExprKind::Expectation { body, .. } => is_symmetric(body),
        _ => false,
    }
}

/// `(a + aᵀ)/2`
pub fn symmetric_part(a: Expr) -> Expr {
    if is_zero(&a) || is_symmetric(&a) {
        return a;
    }
    let t = transpose(a.clone());
    if t == a || same_terms(&a, &t) {
        return a;
    }
    div(add(a, t), number(2.0))
}

/// One summand of a flattened sum: its sign, its scalar factors and what they multiply.
type Summand = (bool, Vec<Expr>, Expr);

fn summands(e: &Expr) -> Vec<Summand> {
    let negated = |v: Vec<Summand>| v.into_iter().map(|(n, s, x)| (!n, s, x)).collect();
    let scaled = |v: Vec<Summand>, f: Expr| {
        v.into_iter()
            .map(|(n, mut s, x)| {
                s.push(f.clone());
                (n, s, x)
            })
            .collect()
    };
    match &e.kind {
        ExprKind::Add(a, b) => [summands(a), summands(b)].concat(),
        ExprKind::Sub(a, b) => [summands(a), negated(summands(b))].concat(),
        ExprKind::Neg(a) => negated(summands(a)),
        ExprKind::Mul(f, x) if f.shape.is_scalar() && !x.shape.is_scalar() => {
            scaled(summands(x), (**f).clone())
        }
        ExprKind::Div(x, f) if !x.shape.is_scalar() => {
            scaled(summands(x), div(number(1.0), (**f).clone()))
        }
        _ => vec![(false, Vec::new(), e.clone())],
    }
}

/// Whether two sums have the same summands in another order (`X + Y` and `Y + X`): the
/// symmetric part of a matrix equal to its transpose is the matrix itself.
fn same_terms(a: &Expr, b: &Expr) -> bool {
    let (x, mut y) = (summands(a), summands(b));
    x.len() == y.len()
        && x.iter()
            .all(|item| match y.iter().position(|other| other == item) {
                Some(i) => {
                    y.swap_remove(i);
                    true
                }
                None => false,
            })
}
