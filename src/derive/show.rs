//! Checked expressions back to syntax trees, so that derived equations print through the
//! same renderers as the theory itself (canonical text, Unicode math, LaTeX).

use crate::check::ir::{
    Callee, Covariance, Expr, ExprKind, IndexExpr, MatrixFunction, Size, Theory,
};
use crate::syntax::Span;
use crate::syntax::ast::{self, BinaryOp, Ident};

use super::grad::Variable;

fn ident(name: &str) -> Ident {
    Ident {
        name: name.to_string(),
        span: Span::default(),
    }
}

fn node(kind: ast::ExprKind) -> ast::Expr {
    ast::Expr::new(kind, Span::default())
}

fn indices(theory: &Theory, idx: &[IndexExpr]) -> Vec<ast::Expr> {
    idx.iter().map(|i| index_expr(theory, i)).collect()
}

fn index_expr(theory: &Theory, i: &IndexExpr) -> ast::Expr {
    let mut acc: Option<ast::Expr> = None;
    for (atom, &c) in &i.terms {
        let name = match atom {
            crate::check::ir::IndexAtom::Var(v) => v.clone(),
            crate::check::ir::IndexAtom::Param(p) => theory.params[*p].name.clone(),
        };
        let mut term = node(ast::ExprKind::Name(ident(&name)));
        if c.abs() != 1 {
            term = binary(BinaryOp::Mul, number(c.abs() as f64), term);
        }
        acc = Some(match acc {
            None if c < 0 => node(ast::ExprKind::Neg(Box::new(term))),
            None => term,
            Some(a) => binary(if c < 0 { BinaryOp::Sub } else { BinaryOp::Add }, a, term),
        });
    }
    match acc {
        None => number(i.constant as f64),
        Some(a) if i.constant > 0 => binary(BinaryOp::Add, a, number(i.constant as f64)),
        Some(a) if i.constant < 0 => binary(BinaryOp::Sub, a, number(-i.constant as f64)),
        Some(a) => a,
    }
}

/// A number as syntax; a simple fraction as one (`1/2`, not `0.5`).
fn number(v: f64) -> ast::Expr {
    if v < 0.0 {
        return node(ast::ExprKind::Neg(Box::new(number(-v))));
    }
    if let Some((n, d)) = simple_fraction(v) {
        return binary(
            BinaryOp::Div,
            node(ast::ExprKind::Number(n)),
            node(ast::ExprKind::Number(d)),
        );
    }
    node(ast::ExprKind::Number(v))
}

/// `(n, d)` with `n/d == v` exactly, `1 < d ≤ 64`, for a non-integer `v ≥ 0`.
fn simple_fraction(v: f64) -> Option<(f64, f64)> {
    if !v.is_finite() || v.fract() == 0.0 || v > 1e6 {
        return None;
    }
    (2..=64).map(f64::from).find_map(|d| {
        let n = (v * d).round();
        (n / d == v).then_some((n, d))
    })
}

fn binary(op: BinaryOp, lhs: ast::Expr, rhs: ast::Expr) -> ast::Expr {
    node(ast::ExprKind::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    })
}

fn call(name: &str, args: Vec<ast::Expr>) -> ast::Expr {
    node(ast::ExprKind::Call {
        func: ident(name),
        args,
    })
}

/// A variable (field or conjugate entry) as syntax.
pub fn variable_syntax(theory: &Theory, v: &Variable) -> ast::Expr {
    to_syntax(theory, &v.expr(theory))
}

/// A checked expression as syntax.
pub fn to_syntax(theory: &Theory, e: &Expr) -> ast::Expr {
    let s = |x: &Expr| to_syntax(theory, x);
    match &e.kind {
        ExprKind::Number(v) => number(*v),
        ExprKind::Pi => node(ast::ExprKind::Name(ident("pi"))),
        ExprKind::Param(p) => node(ast::ExprKind::Name(ident(&theory.params[*p].name))),
        ExprKind::Size(size) => node(ast::ExprKind::Name(ident(match size {
            Size::Patterns => "P",
            Size::Inputs => "d",
            Size::Outputs => "D",
        }))),
        ExprKind::Index(i) => index_expr(theory, i),
        ExprKind::Identity => node(ast::ExprKind::Name(ident("I"))),
        ExprKind::Ones => node(ast::ExprKind::Name(ident("ones"))),
        ExprKind::Data(role) => {
            let name = match role {
                crate::check::ir::DataRole::Inputs => theory.data.inputs.clone(),
                crate::check::ir::DataRole::Targets => theory.data.targets.clone(),
            };
            node(ast::ExprKind::Name(ident(&name.unwrap_or_default())))
        }
        ExprKind::Field {
            field,
            indices: idx,
        } => indexed(&theory.fields[*field].name, indices(theory, idx)),
        ExprKind::Conjugate { conj, indices: idx } => {
            indexed(&theory.conjugates[*conj].name, indices(theory, idx))
        }
        ExprKind::RandomVar { name, time } => match time {
            Some(t) => indexed(name, vec![index_expr(theory, t)]),
            None => node(ast::ExprKind::Name(ident(name))),
        },
        // ĥ⁽ᵗ⁾ (the renderers put the hat on; no user name carries a combining accent)
        ExprKind::Whitened { name, time, .. } => {
            indexed(&format!("{name}\u{302}"), vec![number(*time as f64)])
        }
        ExprKind::FunctionArg(i) => node(ast::ExprKind::Name(ident(&format!("x{i}")))),
        ExprKind::Neg(a) => node(ast::ExprKind::Neg(Box::new(s(a)))),
        ExprKind::Add(a, b) => binary(BinaryOp::Add, s(a), s(b)),
        ExprKind::Sub(a, b) => binary(BinaryOp::Sub, s(a), s(b)),
        ExprKind::Mul(a, b) => {
            let op = if a.shape.is_scalar() || b.shape.is_scalar() {
                BinaryOp::Mul
            } else {
                BinaryOp::Juxtapose
            };
            binary(op, s(a), s(b))
        }
        ExprKind::Div(a, b) => binary(BinaryOp::Div, s(a), s(b)),
        ExprKind::Pow(a, b) => binary(BinaryOp::Pow, s(a), s(b)),
        ExprKind::Transpose(a) => node(ast::ExprKind::Transpose(Box::new(s(a)))),
        ExprKind::Apply { callee, args } => {
            let name = match callee {
                Callee::Builtin(b) => b.name().to_string(),
                Callee::User(id) => theory.functions[*id].name.clone(),
            };
            call(&name, args.iter().map(s).collect())
        }
        ExprKind::Matrix(f, a) => call(
            match f {
                MatrixFunction::Trace => "tr",
                MatrixFunction::Inverse => "inv",
                MatrixFunction::LogDet => "logdet",
            },
            vec![s(a)],
        ),
        ExprKind::Sum { body, .. } => s(body),
        ExprKind::Expectation {
            var,
            body,
            mean,
            cov,
        } => {
            let cov = match cov {
                Covariance::Matrix(c) => s(c),
                Covariance::Family(f) => node(ast::ExprKind::Name(ident(&theory.fields[*f].name))),
            };
            node(ast::ExprKind::Expectation {
                body: Box::new(s(body)),
                var: ident(var),
                mean: Box::new(s(mean)),
                cov: Box::new(cov),
            })
        }
    }
}

fn indexed(name: &str, idx: Vec<ast::Expr>) -> ast::Expr {
    if idx.is_empty() {
        node(ast::ExprKind::Name(ident(name)))
    } else {
        node(ast::ExprKind::Index {
            base: ident(name),
            indices: idx,
        })
    }
}
