//! Matrix calculus on checked expressions: the gradient of a scalar with respect to one
//! field or conjugate entry, in the full-matrix convention of THEORY.md §1.
//!
//! Every entry of a kernel is an independent variable and functions see the symmetric part
//! sym(C) = (C + Cᵀ)/2, so ∇_C S = sym(∇S) for kernels; conjugates and mean fields enter
//! as they are. The workhorse is ∇_X tr(W F(X)) (`grad_trace`):
//! tr(W X) → Wᵀ, tr(W Xᵀ) → W, tr(W A B) → via A with W' = B W and via B with W' = W A,
//! tr(W Z⁻¹) → via Z with W' = −Z⁻¹ W Z⁻¹, ln det Z → via Z with W = Z⁻¹, and a Gaussian
//! expectation whose measure does not depend on X is differentiated under the integral.

use crate::check::ir::{
    Builtin, Callee, ConjId, Covariance, Expr, ExprKind, FieldId, FieldKind, IndexExpr,
    MatrixFunction, Shape, Theory,
};

use super::DeriveError;
use super::build::{
    add, apply, div, expectation, inverse, mul, neg, node, number, sub, symmetric_part, trace,
    transpose, zero,
};

/// What a gradient is taken with respect to: one concrete entry of a field or conjugate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variable {
    /// A field entry `C[2]`.
    Field(FieldId, Vec<i64>),
    /// A conjugate entry `Ct[2]`.
    Conjugate(ConjId, Vec<i64>),
}

impl Variable {
    fn matches(&self, e: &Expr) -> bool {
        let constants =
            |indices: &[IndexExpr]| -> Vec<i64> { indices.iter().map(|i| i.constant).collect() };
        match (&e.kind, self) {
            (ExprKind::Field { field, indices }, Variable::Field(f, idx)) => {
                field == f && constants(indices) == *idx
            }
            (ExprKind::Conjugate { conj, indices }, Variable::Conjugate(c, idx)) => {
                conj == c && constants(indices) == *idx
            }
            _ => false,
        }
    }

    /// The variable as an expression.
    pub fn expr(&self, theory: &Theory) -> Expr {
        let idx = |v: &[i64]| v.iter().map(|&i| IndexExpr::constant(i)).collect();
        match self {
            Variable::Field(f, v) => node(
                ExprKind::Field {
                    field: *f,
                    indices: idx(v),
                },
                theory.fields[*f].shape(),
            ),
            Variable::Conjugate(c, v) => node(
                ExprKind::Conjugate {
                    conj: *c,
                    indices: idx(v),
                },
                theory.fields[theory.conjugates[*c].of].shape(),
            ),
        }
    }
}

/// Gradient of the scalar `e` with respect to `var` (for a kernel: the symmetric part, as
/// the full-matrix convention evaluates every function on sym(C)).
pub fn gradient(theory: &Theory, e: &Expr, var: &Variable) -> Result<Expr, DeriveError> {
    let g = raw_gradient(theory, e, var)?;
    Ok(if is_kernel(theory, var) {
        symmetric_part(g)
    } else {
        g
    })
}

/// Gradient with respect to `var` as if it entered unsymmetrised; [`gradient`] is its
/// symmetric part for kernels. Stationarity conditions are solved on this form.
pub fn raw_gradient(theory: &Theory, e: &Expr, var: &Variable) -> Result<Expr, DeriveError> {
    let shape = var.expr(theory).shape;
    Gradient { theory, var, shape }.grad(e)
}

/// Whether `var` is an entry of a kernel field (not a mean field, not a conjugate).
pub fn is_kernel(theory: &Theory, var: &Variable) -> bool {
    matches!(var, Variable::Field(f, _) if theory.fields[*f].kind == FieldKind::Kernel)
}

struct Gradient<'a> {
    theory: &'a Theory,
    var: &'a Variable,
    shape: Shape,
}

impl Gradient<'_> {
    fn depends(&self, e: &Expr) -> bool {
        if self.var.matches(e) {
            return true;
        }
        let mut found = false;
        if let ExprKind::Expectation {
            cov: crate::check::ir::Covariance::Family(f),
            ..
        } = &e.kind
            && matches!(self.var, Variable::Field(field, _) if field == f)
        {
            return true;
        }
        crate::check::for_each_child(e, |c| found = found || self.depends(c));
        found
    }

    /// ∇ of a scalar.
    fn grad(&self, e: &Expr) -> Result<Expr, DeriveError> {
        if !self.depends(e) {
            return Ok(zero(self.shape));
        }
        Ok(match &e.kind {
            ExprKind::Neg(a) => neg(self.grad(a)?),
            ExprKind::Add(a, b) => add(self.grad(a)?, self.grad(b)?),
            ExprKind::Sub(a, b) => sub(self.grad(a)?, self.grad(b)?),
            ExprKind::Mul(a, b) if a.shape.is_scalar() && b.shape.is_scalar() => add(
                mul((**a).clone(), self.grad(b)?),
                mul((**b).clone(), self.grad(a)?),
            ),
            // a 1×1 product of matrices and vectors: its own trace
            ExprKind::Mul(..) => self.grad_trace(None, e)?,
            ExprKind::Div(a, b) => {
                let first = div(self.grad(a)?, (**b).clone());
                if self.depends(b) {
                    let square = mul((**b).clone(), (**b).clone());
                    sub(first, div(mul((**a).clone(), self.grad(b)?), square))
                } else {
                    first
                }
            }
            ExprKind::Pow(a, b) if !self.depends(b) => {
                let lowered = node(
                    ExprKind::Pow(a.clone(), Box::new(sub((**b).clone(), number(1.0)))),
                    Shape::SCALAR,
                );
                mul(mul((**b).clone(), lowered), self.grad(a)?)
            }
            ExprKind::Apply {
                callee: Callee::Builtin(f),
                args,
            } if args.len() == 1 && args[0].shape.is_scalar() => {
                let inner = self.grad(&args[0])?;
                let s = args[0].clone();
                match f {
                    Builtin::Ln => div(inner, s),
                    _ => mul(derivative(*f, s)?, inner),
                }
            }
            ExprKind::Matrix(MatrixFunction::Trace, m) => self.grad_trace(None, m)?,
            ExprKind::Matrix(MatrixFunction::LogDet, z) => {
                self.grad_trace(Some(inverse((**z).clone())), z)?
            }
            ExprKind::Expectation {
                var,
                body,
                mean,
                cov,
            } => {
                let under_integral =
                    expectation(var, self.grad(body)?, (**mean).clone(), cov.clone());
                add(under_integral, self.measure_gradient(var, body, mean, cov)?)
            }
            _ => return Err(self.unsupported(e)),
        })
    }

    /// The part of ∇E[f(h)] that comes from the Gaussian measure 𝒩(m, K) (Stein's lemma):
    /// ∂E/∂K = ½ K⁻¹ E[f (h − m)(h − m)ᵀ] K⁻¹ − ½ K⁻¹ E[f], ∂E/∂m = K⁻¹ E[f (h − m)],
    /// chained through K(X) and m(X).
    fn measure_gradient(
        &self,
        var: &str,
        f: &Expr,
        mean: &Expr,
        cov: &Covariance,
    ) -> Result<Expr, DeriveError> {
        let k = match cov {
            Covariance::Matrix(k) => (**k).clone(),
            Covariance::Family(field) => {
                if matches!(self.var, Variable::Field(v, _) if v == field) {
                    return Err(DeriveError::Unsupported(
                        "derivatives of an expectation over a time family with respect to its kernel blocks (recurrent backward equations) are not derived symbolically yet".into(),
                    ));
                }
                return Ok(zero(self.shape));
            }
        };
        let (k_depends, m_depends) = (self.depends(&k), self.depends(mean));
        if !k_depends && !m_depends {
            return Ok(zero(self.shape));
        }
        let h = node(
            ExprKind::RandomVar {
                name: var.to_string(),
                time: None,
            },
            Shape::VECTOR,
        );
        let centred = sub(h, mean.clone());
        let k_inv = inverse(k.clone());
        let e = |body: Expr| expectation(var, body, mean.clone(), cov.clone());
        let mut total = zero(self.shape);
        if k_depends {
            let second = e(mul(
                f.clone(),
                mul(centred.clone(), transpose(centred.clone())),
            ));
            let g = mul(
                number(0.5),
                sub(
                    mul(k_inv.clone(), mul(second, k_inv.clone())),
                    mul(e(f.clone()), k_inv.clone()),
                ),
            );
            total = add(total, self.grad_trace(Some(g), &k)?);
        }
        if m_depends {
            let gm = mul(k_inv, e(mul(f.clone(), centred)));
            total = add(total, self.grad_trace(Some(transpose(gm)), mean)?);
        }
        Ok(total)
    }

    /// ∇_X tr(W F); `w = None` stands for the identity.
    fn grad_trace(&self, w: Option<Expr>, f: &Expr) -> Result<Expr, DeriveError> {
        if !self.depends(f) {
            return Ok(zero(self.shape));
        }
        if self.var.matches(f) {
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

    fn unsupported(&self, e: &Expr) -> DeriveError {
        let _ = self.theory;
        DeriveError::Unsupported(format!(
            "no differentiation rule for this expression: {:?}",
            e.kind
        ))
    }
}

/// `W F` with `None` standing for the identity.
fn times(w: Option<Expr>, f: Expr) -> Expr {
    match w {
        Some(w) => mul(w, f),
        None => f,
    }
}

/// `F W` with `None` standing for the identity.
fn times_right(f: Expr, w: Option<Expr>) -> Expr {
    match w {
        Some(w) => mul(f, w),
        None => f,
    }
}

/// d f(s)/ds for the scalar built-ins.
fn derivative(f: Builtin, s: Expr) -> Result<Expr, DeriveError> {
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
        Builtin::Relu => apply(Builtin::Step, s),
        Builtin::Ln => div(number(1.0), s),
        Builtin::Step | Builtin::Sign | Builtin::Abs => {
            return Err(DeriveError::Unsupported(format!(
                "`{}` has no classical derivative",
                f.name()
            )));
        }
    })
}
