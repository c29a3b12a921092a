//! Gradients through traces, products and built-in functions (their derivatives), and of
//! expectations over whitened random variables.

use crate::check::ir::{Builtin, Expr, ExprKind, MatrixFunction, Shape};

use crate::derive::DeriveError;
use crate::derive::build::{
    add, apply, div, expectation, inverse, mul, neg, node, number, sub, trace, transpose, zero,
};

use super::*;

impl Gradient<'_> {
    /// ∇_X tr(W F); `w = None` stands for the identity.
    pub(super) fn grad_trace(&self, w: Option<Expr>, f: &Expr) -> Result<Expr, DeriveError> {
        if !self.depends(f) {
            return Ok(zero(self.shape));
        }
        if self.var.matches(f) {
            if self.family == FamilyMeasure::Only {
                return Ok(zero(self.shape));
            }
            return Ok(match w {
                Some(w) => transpose(w),
                None => node(ExprKind::Identity, self.shape),
            });
        }
        let matrix_product =
            matches!(&f.kind, ExprKind::Mul(a, b) if !a.shape.is_scalar() && !b.shape.is_scalar());
        if f.shape.is_scalar() && !matrix_product {
            let g = self.grad(f)?;
            return Ok(match w {
                Some(w) if w.shape.is_scalar() => mul(w, g),
                Some(w) => mul(trace(w), g),
                None => g,
            });
        }
        Ok(match &f.kind {
            ExprKind::Transpose(g) => self.grad_trace(w.map(transpose), g)?,
            ExprKind::Neg(a) => neg(self.grad_trace(w, a)?),
            ExprKind::Add(a, b) => add(self.grad_trace(w.clone(), a)?, self.grad_trace(w, b)?),
            ExprKind::Sub(a, b) => sub(self.grad_trace(w.clone(), a)?, self.grad_trace(w, b)?),
            ExprKind::Mul(a, b) if a.shape.is_scalar() => {
                let value = trace(times(w.clone(), (**b).clone()));
                add(
                    mul((**a).clone(), self.grad_trace(w, b)?),
                    mul(value, self.grad(a)?),
                )
            }
            ExprKind::Mul(a, b) if b.shape.is_scalar() => {
                let value = trace(times(w.clone(), (**a).clone()));
                add(
                    mul((**b).clone(), self.grad_trace(w, a)?),
                    mul(value, self.grad(b)?),
                )
            }
            ExprKind::Mul(a, b) => {
                // tr(W A B): through A with B W, through B with W A
                let via_a = self.grad_trace(Some(times_right((**b).clone(), w.clone())), a)?;
                let via_b = self.grad_trace(Some(times(w, (**a).clone())), b)?;
                add(via_a, via_b)
            }
            ExprKind::Div(a, s) => {
                let first = div(self.grad_trace(w.clone(), a)?, (**s).clone());
                if self.depends(s) {
                    let value = trace(times(w, (**a).clone()));
                    sub(
                        first,
                        div(mul(value, self.grad(s)?), mul((**s).clone(), (**s).clone())),
                    )
                } else {
                    first
                }
            }
            ExprKind::Matrix(MatrixFunction::Inverse, z) => {
                // d tr(W Z⁻¹) = −tr(Z⁻¹ W Z⁻¹ dZ)
                let zi = inverse((**z).clone());
                let w_next = mul(times_right(zi.clone(), w), zi);
                self.grad_trace(Some(neg(w_next)), z)?
            }
            ExprKind::Expectation {
                var,
                body,
                mean,
                cov,
            } => {
                // tr(W E[B]) = E[tr(W B)]
                let scalar = expectation(
                    var,
                    trace(times(w, (**body).clone())),
                    (**mean).clone(),
                    cov.clone(),
                );
                self.grad(&scalar)?
            }
            _ => return Err(self.unsupported(f)),
        })
    }
}

/// `W F` with `None` standing for the identity.
pub(super) fn times(w: Option<Expr>, f: Expr) -> Expr {
    match w {
        Some(w) => mul(w, f),
        None => f,
    }
}

/// `F W` with `None` standing for the identity.
pub(super) fn times_right(f: Expr, w: Option<Expr>) -> Expr {
    match w {
        Some(w) => mul(f, w),
        None => f,
    }
}

/// d f(s)/ds for the scalar built-ins.
pub(super) fn derivative(f: Builtin, s: Expr) -> Result<Expr, DeriveError> {
    let sq = || mul(s.clone(), s.clone());
    Ok(match f {
        Builtin::Exp => apply(Builtin::Exp, s),
        Builtin::Sqrt => div(number(0.5), apply(Builtin::Sqrt, s)),
        Builtin::Erf => {
            let pi = node(ExprKind::Pi, Shape::SCALAR);
            mul(
                div(number(2.0), apply(Builtin::Sqrt, pi)),
                apply(Builtin::Exp, neg(sq())),
            )
        }
        Builtin::Tanh => {
            let t = apply(Builtin::Tanh, s);
            sub(number(1.0), mul(t.clone(), t))
        }
        Builtin::Asin => div(number(1.0), apply(Builtin::Sqrt, sub(number(1.0), sq()))),
        Builtin::Acos => neg(div(
            number(1.0),
            apply(Builtin::Sqrt, sub(number(1.0), sq())),
        )),
        Builtin::Atan => div(number(1.0), add(number(1.0), sq())),
        // Kinks take their pointwise derivative, as in the symbolic engine
        // (`symbolic::diff`): relu' = step, |x|' = sign (Price's theorem inside an
        // expectation gives the same). Jumps have only a δ and are refused.
        Builtin::Relu => apply(Builtin::Step, s),
        Builtin::Abs => apply(Builtin::Sign, s),
        Builtin::Ln => div(number(1.0), s),
        Builtin::Step | Builtin::Sign => {
            return Err(DeriveError::Unsupported(format!(
                "`{}` has no classical derivative",
                f.name()
            )));
        }
    })
}

/// Whether `e` reads a whitened random variable.
pub(super) fn mentions_whitened(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x.kind, ExprKind::Whitened { .. }))
}

/// The times `t` of the family members `var[t]` that `e` reads (after unrolling, constants).
pub(super) fn random_times(
    e: &Expr,
    var: &str,
    times: &mut std::collections::BTreeSet<i64>,
) -> Result<(), DeriveError> {
    if let ExprKind::RandomVar { name, time } = &e.kind
        && name == var
    {
        let Some(t) = time.as_ref().filter(|t| t.terms.is_empty()) else {
            return Err(DeriveError::Unsupported(format!(
                "`{var}` read without a constant time in an expectation over a time family"
            )));
        };
        times.insert(t.constant);
    }
    let mut result = Ok(());
    crate::check::for_each_child(e, |c| {
        if result.is_ok() {
            result = random_times(c, var, times);
        }
    });
    result
}
