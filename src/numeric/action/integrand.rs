//! The integrand of a Gaussian expectation, staged once and evaluated at every node.
//!
//! Staging evaluates every sub-expression that does not mention the random variable (with the
//! enclosing index variables bound), unrolls sums, and records which times `h[t]` of a family
//! are used. What remains is a small tree over the random blocks. At each node, `f(h[t])` is
//! computed once per function and time (`φ(h)ᵀ C̃ φ(h)` and the double sums over `t, s` reuse
//! it).

use std::collections::{BTreeSet, HashMap};

use num_dual::DualNum;

use super::ActionError;
use super::dense::Dense;
use super::eval::{Evaluation, depends_on_variables};
use super::ops::{self, context};
use super::variables::assignments;
use crate::check::ir::{Callee, Expr, ExprKind};

/// The integrand with everything that does not depend on the random variable evaluated.
pub(super) enum Integrand<'e, D> {
    /// A value independent of the random variable.
    Constant(Dense<D>),
    /// The random variable (`h`), or one time of the family (`h[t]`).
    Random(Option<i64>),
    /// One time of the family whitened by the joint covariance of the times `over`
    /// (`ĥ[t] = (Σ⁻¹(h − m))[t]`).
    Whitened(i64, &'e [i64]),
    /// `-a`, `a^T`, `tr a`, `inv a`, `logdet a` (the operator is `expr`'s).
    Unary(&'e Expr, Box<Self>),
    /// `a ± b`, `a b`, `a / b`, `a ^ b` (the operator is `expr`'s).
    Binary(&'e Expr, Box<Self>, Box<Self>),
    /// A function applied entry-wise.
    Apply(&'e Expr, Callee, Vec<Self>),
    /// An unrolled sum.
    Sum(&'e Expr, Vec<Self>),
}

/// Values of `f(h[t])` at the current node, by function and time.
pub(super) type Memo<D> = HashMap<((bool, usize), Option<i64>), Dense<D>>;

impl<D: DualNum<Primitive = f64>> Evaluation<'_, D> {
    /// Evaluates what does not depend on `var` and unrolls sums.
    pub(super) fn stage<'e>(
        &mut self,
        expr: &'e Expr,
        var: &str,
        scope: &[(String, i64)],
        args: &[D],
        times: &mut BTreeSet<Option<i64>>,
    ) -> Result<Integrand<'e, D>, ActionError> {
        if !mentions(expr, var) {
            return Ok(Integrand::Constant(self.eval(expr, scope, args)?));
        }
        Ok(match &expr.kind {
            ExprKind::RandomVar { time, .. } => {
                let time = match time {
                    Some(t) => Some(self.evaluator.index(t, scope)?),
                    None => None,
                };
                times.insert(time);
                Integrand::Random(time)
            }
            ExprKind::Whitened { time, over, .. } => {
                times.extend(over.iter().map(|&t| Some(t)));
                Integrand::Whitened(*time, over)
            }
            ExprKind::Neg(a) | ExprKind::Transpose(a) | ExprKind::Matrix(_, a) => {
                Integrand::Unary(expr, Box::new(self.stage(a, var, scope, args, times)?))
            }
            ExprKind::Add(a, b)
            | ExprKind::Sub(a, b)
            | ExprKind::Mul(a, b)
            | ExprKind::Div(a, b)
            | ExprKind::Pow(a, b) => {
                let left = Box::new(self.stage(a, var, scope, args, times)?);
                let right = Box::new(self.stage(b, var, scope, args, times)?);
                Integrand::Binary(expr, left, right)
            }
            ExprKind::Apply {
                callee,
                args: arg_exprs,
            } => {
                let staged = arg_exprs
                    .iter()
                    .map(|a| self.stage(a, var, scope, args, times))
                    .collect::<Result<Vec<_>, _>>()?;
                Integrand::Apply(expr, *callee, staged)
            }
            ExprKind::Sum { bindings, body } => {
                let mut terms = Vec::new();
                for inner in assignments(bindings, scope, &self.evaluator.int_params, "sum")? {
                    terms.push(self.stage(body, var, &inner, args, times)?);
                }
                Integrand::Sum(expr, terms)
            }
            _ => {
                return Err(ActionError::Unsupported {
                    context: context("integrand", expr.span),
                    reason: format!(
                        "a nested expectation that depends on the outer random variable `{var}`"
                    ),
                });
            }
        })
    }

    /// The staged integrand at one node; `blocks[i]` is the random vector at `times[i]`,
    /// `whitened[i]` its whitened counterpart (empty when the integrand reads none).
    pub(super) fn integrand(
        &mut self,
        integrand: &Integrand<'_, D>,
        blocks: &[Dense<D>],
        whitened: &[Dense<D>],
        times: &[i64],
        memo: &mut Memo<D>,
    ) -> Result<Dense<D>, ActionError> {
        Ok(match integrand {
            Integrand::Constant(value) => value.clone(),
            Integrand::Whitened(time, _) => times
                .iter()
                .position(|s| s == time)
                .and_then(|block| whitened.get(block))
                .cloned()
                .ok_or_else(|| ActionError::Unsupported {
                    context: "integrand".into(),
                    reason: format!("no whitened block for time {time}"),
                })?,
            Integrand::Random(time) => {
                // Staging recorded every time, so the position always exists.
                let block = time
                    .and_then(|t| times.iter().position(|&s| s == t))
                    .unwrap_or(0);
                blocks
                    .get(block)
                    .cloned()
                    .ok_or_else(|| ActionError::Unsupported {
                        context: "integrand".into(),
                        reason: format!("no random block for time {time:?}"),
                    })?
            }
            Integrand::Unary(expr, operand) => {
                let a = self.integrand(operand, blocks, whitened, times, memo)?;
                match &expr.kind {
                    ExprKind::Neg(_) => a.map(|x| -x.clone()),
                    ExprKind::Matrix(function, _) => ops::matrix_function(*function, &a, expr)?,
                    _ => a.transpose(),
                }
            }
            Integrand::Binary(expr, left, right) => {
                let a = self.integrand(left, blocks, whitened, times, memo)?;
                let b = self.integrand(right, blocks, whitened, times, memo)?;
                match &expr.kind {
                    ExprKind::Add(..) => ops::add(&a, &b, 1.0, expr)?,
                    ExprKind::Sub(..) => ops::add(&a, &b, -1.0, expr)?,
                    ExprKind::Mul(..) => ops::multiply(&a, &b, expr)?,
                    ExprKind::Div(..) => ops::divide(&a, &b, expr)?,
                    ExprKind::Pow(_, exponent) => {
                        ops::power(&a, &b, !depends_on_variables(exponent), expr)?
                    }
                    _ => unreachable_operator(expr)?,
                }
            }
            Integrand::Apply(expr, callee, args) => {
                // φ(h[t]) appears in many terms (φᵀ C̃ φ, sums over t and s): compute it once.
                let key = match args.as_slice() {
                    [Integrand::Random(time)] => Some((callee_key(*callee), *time)),
                    _ => None,
                };
                if let Some(value) = key.as_ref().and_then(|k| memo.get(k)) {
                    return Ok(value.clone());
                }
                let values = args
                    .iter()
                    .map(|a| self.integrand(a, blocks, whitened, times, memo))
                    .collect::<Result<Vec<_>, _>>()?;
                let value = self.apply(*callee, &values, expr)?;
                if let Some(key) = key {
                    memo.insert(key, value.clone());
                }
                value
            }
            Integrand::Sum(expr, terms) => {
                let mut total: Option<Dense<D>> = None;
                for term in terms {
                    let value = self.integrand(term, blocks, whitened, times, memo)?;
                    total = Some(match total {
                        None => value,
                        Some(sum) => ops::add(&sum, &value, 1.0, expr)?,
                    });
                }
                total.unwrap_or_else(|| Dense::scalar(D::zero()))
            }
        })
    }
}

/// A hashable name of a function.
fn callee_key(callee: Callee) -> (bool, usize) {
    match callee {
        Callee::Builtin(builtin) => (false, builtin as usize),
        Callee::User(id) => (true, id),
    }
}

/// A staged binary node always holds one of the five binary operators.
fn unreachable_operator<T>(expr: &Expr) -> Result<T, ActionError> {
    Err(ActionError::Unsupported {
        context: context("integrand", expr.span),
        reason: "unexpected operator".into(),
    })
}

/// Whether `expr` reads the random variable `var`.
fn mentions(expr: &Expr, var: &str) -> bool {
    expr.any(&mut |e| {
        matches!(&e.kind, ExprKind::RandomVar { name, .. } | ExprKind::Whitened { name, .. } if name == var)
    })
}

impl<D> Integrand<'_, D> {
    /// The `over` lists of the whitened variables the integrand reads.
    pub(super) fn whitening_times(&self, found: &mut Vec<Vec<i64>>) {
        match self {
            Integrand::Whitened(_, over) => found.push(over.to_vec()),
            Integrand::Constant(_) | Integrand::Random(_) => {}
            Integrand::Unary(_, a) => a.whitening_times(found),
            Integrand::Binary(_, a, b) => {
                a.whitening_times(found);
                b.whitening_times(found);
            }
            Integrand::Apply(_, _, args) | Integrand::Sum(_, args) => {
                args.iter().for_each(|a| a.whitening_times(found));
            }
        }
    }
}
