//! Value-level operations of the action language on [`Dense`] values (a scalar is 1×1).
//!
//! * `a ± b`: equal shapes entry-wise; a scalar on either side is added to every entry.
//! * `a * b`: a scalar times anything scales it, otherwise the matrix product.
//! * Entry-wise functions: all arguments of one shape, scalars broadcast.
//! * `step`, `sign`, `relu` are piecewise: their derivatives are those of the active piece
//!   (zero for `step` and `sign`); `step(0) = 0`, `sign(0) = -1` as in
//!   [`crate::numeric::activation`].

use num_dual::DualNum;

use super::ActionError;
use super::dense::{Dense, DenseError};
use crate::check::ir::{Builtin, Expr, MatrixFunction};
use crate::numeric::special::ErfDual;
use crate::syntax::Span;

/// What was evaluated where an error arose.
pub(crate) fn context(what: &str, span: Span) -> Box<super::error::Context> {
    Box::new(super::error::Context {
        what: what.to_string(),
        span: Some(span),
    })
}

/// Wraps a linear-algebra failure with the expression it arose in.
pub(crate) fn linear_algebra(what: &str, expr: &Expr) -> impl FnOnce(DenseError) -> ActionError {
    let context = context(what, expr.span);
    move |source| ActionError::LinearAlgebra { context, source }
}

/// `a + b` or `a - b` (`sign` = ±1) with scalar broadcasting.
pub(crate) fn add<D: DualNum<Primitive = f64>>(
    a: &Dense<D>,
    b: &Dense<D>,
    sign: f64,
    expr: &Expr,
) -> Result<Dense<D>, ActionError> {
    let signed = |x: &D| x.clone() * sign;
    match (a.as_scalar(), b.as_scalar()) {
        (_, Some(s)) if a.shape() != b.shape() => Ok(a.add_scalar(&signed(s))),
        (Some(s), _) if a.shape() != b.shape() => Ok(b.map(signed).add_scalar(s)),
        _ => a
            .zip_map(b, "add", |x, y| x.clone() + signed(y))
            .map_err(linear_algebra("sum", expr)),
    }
}

/// `a * b`: scaling when either is a scalar, matrix product otherwise.
pub(crate) fn multiply<D: DualNum<Primitive = f64>>(
    a: &Dense<D>,
    b: &Dense<D>,
    expr: &Expr,
) -> Result<Dense<D>, ActionError> {
    match (a.as_scalar(), b.as_scalar()) {
        (Some(s), _) => Ok(b.scale(s)),
        (_, Some(s)) => Ok(a.scale(s)),
        _ => a.matmul(b).map_err(linear_algebra("product", expr)),
    }
}

/// `a / s` with a scalar `s`.
pub(crate) fn divide<D: DualNum<Primitive = f64>>(
    a: &Dense<D>,
    s: &Dense<D>,
    expr: &Expr,
) -> Result<Dense<D>, ActionError> {
    let Some(s) = s.as_scalar() else {
        return Err(ActionError::Unsupported {
            context: context("division", expr.span),
            reason: "the divisor is not a scalar".into(),
        });
    };
    if s.re() == 0.0 {
        return Err(ActionError::NotFinite {
            what: context("division by zero", expr.span),
            value: f64::INFINITY,
        });
    }
    let inverse = s.recip();
    Ok(a.scale(&inverse))
}

/// `a ^ b` of scalars; `constant_exponent` when `b` cannot carry a derivative (integer
/// exponents then use repeated multiplication, which is exact at negative bases).
pub(crate) fn power<D: DualNum<Primitive = f64>>(
    base: &Dense<D>,
    exponent: &Dense<D>,
    constant_exponent: bool,
    expr: &Expr,
) -> Result<Dense<D>, ActionError> {
    let (Some(x), Some(y)) = (base.as_scalar(), exponent.as_scalar()) else {
        return Err(ActionError::Unsupported {
            context: context("power", expr.span),
            reason: "`^` needs scalar operands".into(),
        });
    };
    let value = if constant_exponent {
        let y = y.re();
        if y.fract() == 0.0 && y.abs() <= i32::MAX as f64 {
            x.powi(y as i32)
        } else {
            x.powf(y)
        }
    } else {
        x.powd(y.clone())
    };
    finite(Dense::scalar(value), "power", expr)
}

/// An entry-wise built-in.
pub(crate) fn builtin<D: DualNum<Primitive = f64>>(function: Builtin, x: &D) -> D {
    let positive = x.re() > 0.0;
    match function {
        Builtin::Exp => x.exp(),
        Builtin::Ln => x.ln(),
        Builtin::Sqrt => x.sqrt(),
        Builtin::Erf => ErfDual::erf(x),
        Builtin::Tanh => x.tanh(),
        Builtin::Asin => x.asin(),
        Builtin::Acos => x.acos(),
        Builtin::Atan => x.atan(),
        Builtin::Relu if positive => x.clone(),
        Builtin::Relu => D::zero(),
        Builtin::Step if positive => D::one(),
        Builtin::Step => D::zero(),
        Builtin::Sign if positive => D::one(),
        Builtin::Sign => -D::one(),
        Builtin::Abs => x.abs(),
    }
}

/// Applies `scalar_function` entry-wise to `args` (scalars broadcast to the common shape).
pub(crate) fn entrywise<D: DualNum<Primitive = f64>>(
    args: &[Dense<D>],
    expr: &Expr,
    mut scalar_function: impl FnMut(&[D]) -> Result<D, ActionError>,
) -> Result<Dense<D>, ActionError> {
    let shape = args
        .iter()
        .map(Dense::shape)
        .find(|&s| s != (1, 1))
        .unwrap_or((1, 1));
    if let Some(other) = args
        .iter()
        .find(|a| a.shape() != shape && a.shape() != (1, 1))
    {
        return Err(ActionError::LinearAlgebra {
            context: context("function arguments", expr.span),
            source: DenseError::ShapeMismatch {
                operation: "entry-wise application",
                left: shape,
                right: other.shape(),
            },
        });
    }
    let mut entries = Vec::with_capacity(shape.0 * shape.1);
    let mut scalars = Vec::with_capacity(args.len());
    for i in 0..shape.0 {
        for j in 0..shape.1 {
            scalars.clear();
            for arg in args {
                let (r, c) = if arg.shape() == (1, 1) {
                    (0, 0)
                } else {
                    (i, j)
                };
                scalars.push(arg.get(r, c).clone());
            }
            entries.push(scalar_function(&scalars)?);
        }
    }
    let value =
        Dense::from_vec(shape.0, shape.1, entries).map_err(linear_algebra("function", expr))?;
    finite(value, "function value", expr)
}

/// `tr`, `inv` or `logdet`.
pub(crate) fn matrix_function<D: DualNum<Primitive = f64>>(
    function: MatrixFunction,
    a: &Dense<D>,
    expr: &Expr,
) -> Result<Dense<D>, ActionError> {
    match function {
        MatrixFunction::Trace => a
            .trace()
            .map(Dense::scalar)
            .map_err(linear_algebra("tr", expr)),
        MatrixFunction::Inverse => a.inverse().map_err(linear_algebra("inv", expr)),
        MatrixFunction::LogDet => a
            .log_det()
            .map(Dense::scalar)
            .map_err(linear_algebra("logdet", expr)),
    }
}

/// `value` if every real part is finite, an error naming `what` otherwise.
pub(crate) fn finite<D: DualNum<Primitive = f64>>(
    value: Dense<D>,
    what: &str,
    expr: &Expr,
) -> Result<Dense<D>, ActionError> {
    match value.entries().iter().find(|x| !x.re().is_finite()) {
        Some(bad) => Err(ActionError::NotFinite {
            what: context(what, expr.span),
            value: bad.re(),
        }),
        None => Ok(value),
    }
}
