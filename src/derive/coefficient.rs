//! Scalar coefficients of derived equations in canonical form: `g·(g/N)` is `g^2/N`.
//!
//! A *coefficient* is a scalar built from numbers, π, parameters and the sizes P, d, D with
//! `+ − · / ^`. The product of two coefficients goes through the e-graph language and its
//! [`canonical`] form (one exact rational in front, equal bases gathered, `N·(g/N) = g`) and
//! comes back as a checked expression. Numbers that are not simple fractions (`0.1` is one,
//! `1/3` as a float is one, `0.123456789` is not) keep the product as it is.

use egg::{Id, RecExpr};
use num_rational::Rational64;

use crate::check::ir::{Builtin, Callee, Expr, ExprKind, Shape, Size};
use crate::symbolic::canonical::canonical;
use crate::symbolic::lang::{Constant, Math};

use crate::syntax::Span;

/// Whether `e` is a scalar coefficient (see the module docs).
pub fn is_coefficient(e: &Expr) -> bool {
    if !e.shape.is_scalar() {
        return false;
    }
    match &e.kind {
        ExprKind::Number(v) => exact(*v).is_some(),
        ExprKind::Pi | ExprKind::Param(_) | ExprKind::Size(_) => true,
        ExprKind::Neg(a) => is_coefficient(a),
        ExprKind::Add(a, b)
        | ExprKind::Sub(a, b)
        | ExprKind::Mul(a, b)
        | ExprKind::Div(a, b)
        | ExprKind::Pow(a, b) => is_coefficient(a) && is_coefficient(b),
        _ => false,
    }
}

/// The canonical form of the product `a·b` of two coefficients (`None` if either is not one).
pub fn product(a: &Expr, b: &Expr) -> Option<Expr> {
    let mut expr = RecExpr::default();
    let x = to_math(a, &mut expr)?;
    let y = to_math(b, &mut expr)?;
    expr.add(Math::Mul([x, y]));
    let canon = canonical(&expr);
    let root = Id::from(canon.as_ref().len().checked_sub(1)?);
    from_math(&canon, root)
}

/// `v` as an exact rational, when it is an integer or a fraction with denominator ≤ 64.
fn exact(v: f64) -> Option<Rational64> {
    if !v.is_finite() || v.abs() > 1e12 {
        return None;
    }
    (1..=64i64).find_map(|d| {
        let n = (v * d as f64).round();
        (n / d as f64 == v).then(|| Rational64::new(n as i64, d))
    })
}

fn size_symbol(size: Size) -> &'static str {
    match size {
        Size::Patterns => "size_P",
        Size::Inputs => "size_d",
        Size::Outputs => "size_D",
    }
}

fn to_math(e: &Expr, out: &mut RecExpr<Math>) -> Option<Id> {
    let node = match &e.kind {
        ExprKind::Number(v) => Math::Num(Constant(exact(*v)?)),
        ExprKind::Pi => Math::Pi,
        ExprKind::Param(p) => Math::Symbol(format!("param{p}").into()),
        ExprKind::Size(s) => Math::Symbol(size_symbol(*s).into()),
        ExprKind::Neg(a) => Math::Neg(to_math(a, out)?),
        ExprKind::Add(a, b) => Math::Add([to_math(a, out)?, to_math(b, out)?]),
        ExprKind::Sub(a, b) => Math::Sub([to_math(a, out)?, to_math(b, out)?]),
        ExprKind::Mul(a, b) => Math::Mul([to_math(a, out)?, to_math(b, out)?]),
        ExprKind::Div(a, b) => Math::Div([to_math(a, out)?, to_math(b, out)?]),
        ExprKind::Pow(a, b) => Math::Pow([to_math(a, out)?, to_math(b, out)?]),
        _ => return None,
    };
    Some(out.add(node))
}

fn scalar(kind: ExprKind) -> Expr {
    Expr {
        kind,
        shape: Shape::SCALAR,
        span: Span::default(),
    }
}

fn from_math(expr: &RecExpr<Math>, id: Id) -> Option<Expr> {
    let back = |i: &Id| from_math(expr, *i).map(Box::new);
    Some(scalar(match &expr[id] {
        Math::Num(c) => ExprKind::Number(c.to_f64()),
        Math::Pi => ExprKind::Pi,
        Math::Symbol(s) => match s.as_str() {
            "size_P" => ExprKind::Size(Size::Patterns),
            "size_d" => ExprKind::Size(Size::Inputs),
            "size_D" => ExprKind::Size(Size::Outputs),
            name => ExprKind::Param(name.strip_prefix("param")?.parse().ok()?),
        },
        Math::Neg(a) => ExprKind::Neg(back(a)?),
        Math::Add([a, b]) => ExprKind::Add(back(a)?, back(b)?),
        Math::Sub([a, b]) => ExprKind::Sub(back(a)?, back(b)?),
        Math::Mul([a, b]) => ExprKind::Mul(back(a)?, back(b)?),
        Math::Div([a, b]) => ExprKind::Div(back(a)?, back(b)?),
        Math::Pow([a, b]) => ExprKind::Pow(back(a)?, back(b)?),
        Math::Sqrt(a) => ExprKind::Apply {
            callee: Callee::Builtin(Builtin::Sqrt),
            args: vec![*back(a)?],
        },
        _ => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::build::{div, mul, number};

    fn param(p: usize) -> Expr {
        scalar(ExprKind::Param(p))
    }

    #[test]
    fn products_of_coefficients_are_canonical() {
        let (g, n) = (param(0), param(1));
        let got = product(&g, &div(g.clone(), n.clone())).expect("a coefficient product");
        let expected = scalar(ExprKind::Div(
            Box::new(scalar(ExprKind::Pow(
                Box::new(g.clone()),
                Box::new(number(2.0)),
            ))),
            Box::new(n.clone()),
        ));
        assert_eq!(got, expected);
        // N·(g/N) = g, 0.5·2 = 1
        assert_eq!(product(&n, &div(g.clone(), n.clone())), Some(g.clone()));
        assert_eq!(mul(number(0.5), mul(number(2.0), g.clone())), g);
        // not simple fractions: left alone
        assert!(product(&number(0.123456789), &g).is_none());
    }
}
