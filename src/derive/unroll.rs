//! Concrete instances: every index evaluated, every `sum` written out.
//!
//! At given values of the `int` parameters, `sum(l in 1..=L, t(l))` becomes
//! `t(1) + … + t(L)` and every field reference `C[l - 1]` a concrete entry `C[0]`, `C[1]`, …
//! The result is again a checked expression, with constant indices only.

use std::collections::HashMap;

use crate::check::ir::{
    Covariance, Expr, ExprKind, FieldId, IndexBinding, IndexExpr, Shape, Theory,
};

use super::DeriveError;

/// Values of index variables during unrolling.
pub type IndexEnv = HashMap<String, i64>;

/// Evaluates an index expression; an unbound variable is an error.
pub fn index_value(index: &IndexExpr, env: &IndexEnv, ints: &[i64]) -> Result<i64, DeriveError> {
    index
        .eval(&|v| env.get(v).copied(), &|p| {
            ints.get(p).copied().unwrap_or(0)
        })
        .ok_or_else(|| {
            DeriveError::Unsupported(format!("an index uses a variable with no value: {index:?}"))
        })
}

/// A definition at concrete indices: the entry (field, indices) and its unrolled value.
pub type DefinedEntry = ((FieldId, Vec<i64>), Expr);

/// Every definition of `theory` at concrete indices, in order: the entry it gives and its
/// unrolled value (`C[0] = gu / d * X X^T + gb`, `C[0, s] = gb * ones` for each s).
pub fn defined_entries(theory: &Theory, ints: &[i64]) -> Result<Vec<DefinedEntry>, DeriveError> {
    let mut out = Vec::new();
    for def in &theory.definitions {
        for env in assignments(&def.bindings, &IndexEnv::new(), ints)? {
            let idx = def
                .indices
                .iter()
                .map(|i| index_value(i, &env, ints))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(((def.field, idx), unroll(&def.body, &env, ints)?));
        }
    }
    Ok(out)
}

/// Every assignment of the bindings' variables (in order, later ranges may use earlier ones).
pub fn assignments(
    bindings: &[IndexBinding],
    env: &IndexEnv,
    ints: &[i64],
) -> Result<Vec<IndexEnv>, DeriveError> {
    let mut out = vec![env.clone()];
    for binding in bindings {
        let mut next = Vec::new();
        for env in &out {
            let lo = index_value(&binding.range.lower, env, ints)?;
            let hi = index_value(&binding.range.upper, env, ints)?;
            for value in lo..=hi {
                let mut env = env.clone();
                env.insert(binding.var.clone(), value);
                next.push(env);
            }
        }
        out = next;
    }
    Ok(out)
}

/// The expression with every index constant and every sum expanded.
pub fn unroll(e: &Expr, env: &IndexEnv, ints: &[i64]) -> Result<Expr, DeriveError> {
    let constant = |indices: &[IndexExpr]| -> Result<Vec<IndexExpr>, DeriveError> {
        indices
            .iter()
            .map(|i| index_value(i, env, ints).map(IndexExpr::constant))
            .collect()
    };
    let node = |kind| {
        Ok(Expr {
            kind,
            shape: e.shape,
            span: e.span,
        })
    };
    let sub = |x: &Expr| unroll(x, env, ints).map(Box::new);
    match &e.kind {
        ExprKind::Index(index) => node(ExprKind::Number(index_value(index, env, ints)? as f64)),
        ExprKind::Field { field, indices } => node(ExprKind::Field {
            field: *field,
            indices: constant(indices)?,
        }),
        ExprKind::Conjugate { conj, indices } => node(ExprKind::Conjugate {
            conj: *conj,
            indices: constant(indices)?,
        }),
        ExprKind::RandomVar { name, time } => {
            let time = match time {
                Some(t) => Some(IndexExpr::constant(index_value(t, env, ints)?)),
                None => None,
            };
            node(ExprKind::RandomVar {
                name: name.clone(),
                time,
            })
        }
        ExprKind::Whitened { .. } => Ok(e.clone()),
        ExprKind::Neg(a) => node(ExprKind::Neg(sub(a)?)),
        ExprKind::Transpose(a) => node(ExprKind::Transpose(sub(a)?)),
        ExprKind::Matrix(f, a) => node(ExprKind::Matrix(*f, sub(a)?)),
        ExprKind::Add(a, b) => node(ExprKind::Add(sub(a)?, sub(b)?)),
        ExprKind::Sub(a, b) => node(ExprKind::Sub(sub(a)?, sub(b)?)),
        ExprKind::Mul(a, b) => node(ExprKind::Mul(sub(a)?, sub(b)?)),
        ExprKind::Div(a, b) => node(ExprKind::Div(sub(a)?, sub(b)?)),
        ExprKind::Pow(a, b) => node(ExprKind::Pow(sub(a)?, sub(b)?)),
        ExprKind::Apply { callee, args } => {
            let args = args
                .iter()
                .map(|a| unroll(a, env, ints))
                .collect::<Result<_, _>>()?;
            node(ExprKind::Apply {
                callee: *callee,
                args,
            })
        }
        ExprKind::Sum { bindings, body } => {
            let mut total: Option<Expr> = None;
            for inner in assignments(bindings, env, ints)? {
                let term = unroll(body, &inner, ints)?;
                total = Some(match total {
                    None => term,
                    Some(acc) => Expr {
                        kind: ExprKind::Add(Box::new(acc), Box::new(term)),
                        shape: e.shape,
                        span: e.span,
                    },
                });
            }
            Ok(total.unwrap_or(Expr {
                kind: ExprKind::Number(0.0),
                shape: e.shape,
                span: e.span,
            }))
        }
        ExprKind::Expectation {
            var,
            body,
            mean,
            cov,
        } => {
            let cov = match cov {
                Covariance::Matrix(c) => Covariance::Matrix(sub(c)?),
                Covariance::Family(f) => Covariance::Family(*f),
            };
            node(ExprKind::Expectation {
                var: var.clone(),
                body: sub(body)?,
                mean: sub(mean)?,
                cov,
            })
        }
        _ => Ok(e.clone()),
    }
}

/// A zero of the given shape.
pub fn zero(shape: Shape) -> Expr {
    Expr {
        kind: ExprKind::Number(0.0),
        shape,
        span: Default::default(),
    }
}
