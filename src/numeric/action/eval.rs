//! The action as a number: a tree-walking evaluator of the checked IR, generic over the scalar.
//!
//! Values are [`Dense`] matrices (a scalar is 1×1). Field entries are resolved per concrete
//! index and cached for one evaluation (module `fields`: free entries from the variables,
//! defined ones from their definitions, kernels symmetrised, conjugates as they are).
//!
//! Sums are unrolled, user functions inlined entry-wise, and Gaussian expectations evaluated by
//! quadrature (module `expectation`).

use std::collections::{HashMap, HashSet};
use std::f64::consts::PI;
use std::sync::OnceLock;

use ndarray::ArrayView2;
use num_dual::DualNum;

use super::ActionError;
use super::dense::Dense;
use super::ops::{self, context};
use super::quadrature::{Mode, PieceRules, piece_order};
use super::variables::{Variables, eval_index, integer_params};
use crate::check::ir::{
    Callee, DataRole, Dim, Expr, ExprKind, FieldId, IndexExpr, Size, Theory, log_mgf,
};
use crate::numeric::gauss_rule;
use crate::numeric::quad::GaussHermite;

/// Evaluates the action of one theory on fixed data and parameters, for any scalar type.
#[derive(Clone, Debug)]
pub struct ActionEvaluator {
    pub(super) theory: Theory,
    params: Vec<f64>,
    pub(super) int_params: Vec<i64>,
    inputs: Dense<f64>,
    targets: Option<Dense<f64>>,
    variables: Variables,
    pub(super) rule: GaussHermite,
    /// The rules of a line split at breakpoints, built on first use.
    piece_rules: OnceLock<PieceRules>,
}

impl ActionEvaluator {
    /// Prepares the evaluation of `theory` with parameter values `params` (one per `param`, by
    /// id, `int` ones included: they fix the index ranges), inputs `x` (P×d), optional targets
    /// `y` (P×D) and `quadrature_order` Gauss–Hermite nodes per integration dimension.
    pub fn new(
        theory: &Theory,
        params: &[f64],
        x: ArrayView2<f64>,
        y: Option<ArrayView2<f64>>,
        quadrature_order: usize,
    ) -> Result<Self, ActionError> {
        let int_params = integer_params(theory, params)?;
        let inputs = data_matrix(x, "inputs X")?;
        if inputs.rows() == 0 {
            return Err(ActionError::Data {
                reason: "the inputs X have no rows (patterns)".into(),
            });
        }
        let targets = y.map(|y| data_matrix(y, "targets Y")).transpose()?;
        if let Some(targets) = &targets
            && targets.rows() != inputs.rows()
        {
            return Err(ActionError::Data {
                reason: format!(
                    "the targets Y have {} rows but the inputs X have {} patterns",
                    targets.rows(),
                    inputs.rows()
                ),
            });
        }
        Ok(ActionEvaluator {
            theory: theory.clone(),
            params: params.to_vec(),
            int_params,
            variables: Variables::new(theory, params, inputs.rows())?,
            inputs,
            targets,
            rule: GaussHermite::new(quadrature_order)?,
            piece_rules: OnceLock::new(),
        })
    }

    /// The free variables, i.e. the layout of `values` in [`ActionEvaluator::action`].
    pub fn variables(&self) -> &Variables {
        &self.variables
    }

    /// The theory evaluated.
    pub fn theory(&self) -> &Theory {
        &self.theory
    }

    /// The number of patterns P.
    pub fn patterns(&self) -> usize {
        self.inputs.rows()
    }

    /// Gauss–Hermite nodes per integration dimension.
    pub fn quadrature_order(&self) -> usize {
        self.rule.order()
    }

    /// Gauss–Legendre and half-range Hermite rules of half the quadrature order (a line cut
    /// once has two or three pieces, so about as many nodes as the plain rule), for
    /// expectations split at the breakpoints of their integrand.
    pub(super) fn piece_rules(&self) -> Result<&PieceRules, ActionError> {
        if let Some(rules) = self.piece_rules.get() {
            return Ok(rules);
        }
        let order = piece_order(self.rule.order());
        let rules = PieceRules {
            legendre: gauss_rule::legendre(order)?,
            half_range: gauss_rule::half_range_hermite(order)?,
        };
        Ok(self.piece_rules.get_or_init(|| rules))
    }

    /// $S$ at `values` (one per variable of [`ActionEvaluator::variables`]). Derivatives flow
    /// through every operation, including Cholesky factors and quadrature nodes.
    pub fn action<D: DualNum<Primitive = f64>>(&self, values: &[D]) -> Result<D, ActionError> {
        if values.len() != self.variables.len() {
            return Err(ActionError::ValueCount {
                expected: self.variables.len(),
                got: values.len(),
            });
        }
        let body = &self.theory.action.body;
        let value = self.evaluation(values).eval(body, &[], &[])?;
        let value = ops::finite(value, "the action", body)?;
        value
            .as_scalar()
            .cloned()
            .ok_or_else(|| ActionError::Unsupported {
                context: context("the action", body.span),
                reason: format!("it is {}×{}, not a scalar", value.rows(), value.cols()),
            })
    }

    /// The value of a closed checked expression of this theory — scalar, vector or matrix —
    /// at `values` (one per variable of [`ActionEvaluator::variables`]), e.g. a symbolic
    /// gradient of [`crate::derive::grad::gradient`] or the right-hand side of a derived
    /// equation. "Closed": no free index variable, as [`crate::derive::unroll::unroll`]
    /// leaves it (`sum`s with their own bindings are fine).
    ///
    /// Every node is evaluated exactly as in [`ActionEvaluator::action`]: a kernel entry
    /// `C[l]` as $\mathrm{sym}(C)$ (for a two-time family the block of the symmetrised
    /// $(PT)\times(PT)$ kernel), conjugates and mean fields as they are, defined entries from
    /// their definitions, and a Gaussian expectation by the same Gauss–Hermite nodes and
    /// weights; a matrix-valued integrand is averaged entry-wise. A scalar-valued result of
    /// an expression whose shape is a matrix (a folded zero of that shape) is broadcast to
    /// every entry, as the language broadcasts scalars in sums.
    pub fn evaluate_expr<D: DualNum<Primitive = f64>>(
        &self,
        expr: &Expr,
        values: &[D],
    ) -> Result<Dense<D>, ActionError> {
        if values.len() != self.variables.len() {
            return Err(ActionError::ValueCount {
                expected: self.variables.len(),
                got: values.len(),
            });
        }
        let value = self.evaluation(values).eval(expr, &[], &[])?;
        let shape = (
            self.dimension(expr.shape.rows)?,
            self.dimension(expr.shape.cols)?,
        );
        let value = match value.as_scalar() {
            Some(s) if shape != (1, 1) => Dense::from_fn(shape.0, shape.1, |_, _| s.clone()),
            _ => value,
        };
        if value.shape() != shape {
            return Err(ActionError::Unsupported {
                context: context("expression", expr.span),
                reason: format!(
                    "its value is {}×{}, but its checked shape is {}×{}",
                    value.rows(),
                    value.cols(),
                    shape.0,
                    shape.1
                ),
            });
        }
        ops::finite(value, "the expression", expr)
    }

    /// A fresh evaluation at `values`, with empty caches.
    fn evaluation<'a, D: DualNum<Primitive = f64>>(&'a self, values: &'a [D]) -> Evaluation<'a, D> {
        Evaluation {
            evaluator: self,
            values,
            fields: HashMap::new(),
            raw: HashMap::new(),
            in_progress: HashSet::new(),
        }
    }

    pub(super) fn dimension(&self, dim: Dim) -> Result<usize, ActionError> {
        Ok(match dim {
            Dim::One => 1,
            Dim::Patterns => self.inputs.rows(),
            Dim::Inputs => self.inputs.cols(),
            Dim::Outputs => self
                .targets
                .as_ref()
                .ok_or(ActionError::MissingTargets)?
                .cols(),
        })
    }

    pub(super) fn index(
        &self,
        index: &IndexExpr,
        scope: &[(String, i64)],
    ) -> Result<i64, ActionError> {
        eval_index(index, scope, &self.int_params, "an index")
    }
}

/// One evaluation of the action at given variable values, with its caches.
pub(super) struct Evaluation<'a, D> {
    pub(super) evaluator: &'a ActionEvaluator,
    pub(super) values: &'a [D],
    /// Field entries as they enter expressions (kernels symmetrised).
    pub(super) fields: HashMap<(FieldId, Vec<i64>), Dense<D>>,
    /// Defined field entries as their definitions give them.
    pub(super) raw: HashMap<(FieldId, Vec<i64>), Dense<D>>,
    /// Defined entries being evaluated (a cycle guard).
    pub(super) in_progress: HashSet<(FieldId, Vec<i64>)>,
}

impl<D: DualNum<Primitive = f64>> Evaluation<'_, D> {
    /// The value of `expr` with index variables `scope` and user-function arguments `args`.
    pub(super) fn eval(
        &mut self,
        expr: &Expr,
        scope: &[(String, i64)],
        args: &[D],
    ) -> Result<Dense<D>, ActionError> {
        let evaluator = self.evaluator;
        let patterns = evaluator.patterns();
        let constant = |x: f64| Dense::scalar(D::from(x));
        Ok(match &expr.kind {
            ExprKind::Number(x) => constant(*x),
            ExprKind::Pi => constant(PI),
            ExprKind::Param(id) => {
                constant(evaluator.params.get(*id).copied().ok_or_else(|| {
                    ActionError::Unsupported {
                        context: context("parameter", expr.span),
                        reason: format!("unknown parameter id {id}"),
                    }
                })?)
            }
            ExprKind::Size(size) => {
                let dim = match size {
                    Size::Patterns => Dim::Patterns,
                    Size::Inputs => Dim::Inputs,
                    Size::Outputs => Dim::Outputs,
                };
                constant(evaluator.dimension(dim)? as f64)
            }
            ExprKind::Index(index) => constant(evaluator.index(index, scope)? as f64),
            ExprKind::Identity => Dense::identity(patterns),
            ExprKind::Ones => Dense::from_f64(patterns, patterns, |_, _| 1.0),
            ExprKind::Data(role) => {
                let data = match role {
                    DataRole::Inputs => &evaluator.inputs,
                    DataRole::Targets => evaluator
                        .targets
                        .as_ref()
                        .ok_or(ActionError::MissingTargets)?,
                };
                Dense::from_f64(data.rows(), data.cols(), |i, j| *data.get(i, j))
            }
            ExprKind::Field { field, indices } => {
                let indices = self.indices(indices, scope)?;
                self.field_value(*field, indices)?
            }
            ExprKind::Conjugate { conj, indices } => {
                let indices = self.indices(indices, scope)?;
                self.conjugate_value(*conj, &indices)?
            }
            ExprKind::RandomVar { name, .. } | ExprKind::Whitened { name, .. } => {
                return Err(ActionError::Unsupported {
                    context: context("random variable", expr.span),
                    reason: format!("`{name}` is used outside its expectation"),
                });
            }
            ExprKind::FunctionArg(i) => {
                Dense::scalar(
                    args.get(*i)
                        .cloned()
                        .ok_or_else(|| ActionError::Unsupported {
                            context: context("function argument", expr.span),
                            reason: format!("argument {i} used outside a function body"),
                        })?,
                )
            }
            ExprKind::Neg(a) => self.eval(a, scope, args)?.map(|x| -x.clone()),
            ExprKind::Add(a, b) | ExprKind::Sub(a, b) => {
                let sign = if matches!(expr.kind, ExprKind::Add(..)) {
                    1.0
                } else {
                    -1.0
                };
                let (a, b) = (self.eval(a, scope, args)?, self.eval(b, scope, args)?);
                ops::add(&a, &b, sign, expr)?
            }
            ExprKind::Mul(a, b) => {
                let (a, b) = (self.eval(a, scope, args)?, self.eval(b, scope, args)?);
                ops::multiply(&a, &b, expr)?
            }
            ExprKind::Div(a, b) => {
                let (a, b) = (self.eval(a, scope, args)?, self.eval(b, scope, args)?);
                ops::divide(&a, &b, expr)?
            }
            ExprKind::Pow(a, b) => {
                let constant_exponent = !depends_on_variables(b);
                let (a, b) = (self.eval(a, scope, args)?, self.eval(b, scope, args)?);
                ops::power(&a, &b, constant_exponent, expr)?
            }
            ExprKind::Transpose(a) => self.eval(a, scope, args)?.transpose(),
            ExprKind::Apply {
                callee,
                args: arg_exprs,
            } => {
                if let Some(value) = self.log_mean_exp(*callee, arg_exprs, scope, args)? {
                    return Ok(value);
                }
                let values = arg_exprs
                    .iter()
                    .map(|a| self.eval(a, scope, args))
                    .collect::<Result<Vec<_>, _>>()?;
                self.apply(*callee, &values, expr)?
            }
            ExprKind::Matrix(function, a) => {
                let a = self.eval(a, scope, args)?;
                ops::matrix_function(*function, &a, expr)?
            }
            ExprKind::Sum { bindings, body } => {
                let scopes =
                    super::variables::assignments(bindings, scope, &evaluator.int_params, "sum")?;
                let mut total = Dense::zeros(
                    evaluator.dimension(expr.shape.rows)?,
                    evaluator.dimension(expr.shape.cols)?,
                );
                for inner in scopes {
                    let term = self.eval(body, &inner, args)?;
                    total = ops::add(&total, &term, 1.0, expr)?;
                }
                total
            }
            ExprKind::Expectation {
                var,
                body,
                mean,
                cov,
            } => self.expectation(expr, var, body, mean, cov, scope, args, Mode::Mean)?,
        })
    }

    /// `ln E[exp(inner) | …]` evaluated as a stable log-mean-exp, if `callee(args)` has that form.
    fn log_mean_exp(
        &mut self,
        callee: Callee,
        arg_exprs: &[Expr],
        scope: &[(String, i64)],
        args: &[D],
    ) -> Result<Option<Dense<D>>, ActionError> {
        let Some(term) = log_mgf(callee, arg_exprs) else {
            return Ok(None);
        };
        let value = self.expectation(
            term.expectation,
            term.var,
            term.tilt,
            term.mean,
            term.cov,
            scope,
            args,
            Mode::LogMeanExp,
        )?;
        Ok(Some(value))
    }

    /// A built-in or user function applied entry-wise to evaluated arguments.
    pub(super) fn apply(
        &mut self,
        callee: Callee,
        values: &[Dense<D>],
        expr: &Expr,
    ) -> Result<Dense<D>, ActionError> {
        match callee {
            Callee::Builtin(function) => {
                ops::entrywise(values, expr, |x| Ok(ops::builtin(function, &x[0])))
            }
            Callee::User(id) => {
                let evaluator = self.evaluator;
                let theory = &evaluator.theory;
                let function =
                    theory
                        .functions
                        .get(id)
                        .ok_or_else(|| ActionError::Unsupported {
                            context: context("function call", expr.span),
                            reason: format!("unknown function id {id}"),
                        })?;
                ops::entrywise(values, expr, |x| {
                    let value = self.eval(&function.body, &[], x)?;
                    value
                        .as_scalar()
                        .cloned()
                        .ok_or_else(|| ActionError::Unsupported {
                            context: context(&format!("function `{}`", function.name), expr.span),
                            reason: "its body is not a scalar".into(),
                        })
                })
            }
        }
    }

    fn indices(
        &self,
        indices: &[IndexExpr],
        scope: &[(String, i64)],
    ) -> Result<Vec<i64>, ActionError> {
        indices
            .iter()
            .map(|i| self.evaluator.index(i, scope))
            .collect()
    }
}

/// Whether `expr` can carry a derivative (reads a field, conjugate, random variable or a
/// function argument).
pub(super) fn depends_on_variables(expr: &Expr) -> bool {
    expr.any(&mut |e| {
        matches!(
            e.kind,
            ExprKind::Field { .. }
                | ExprKind::Conjugate { .. }
                | ExprKind::RandomVar { .. }
                | ExprKind::Whitened { .. }
                | ExprKind::FunctionArg(_)
                | ExprKind::Expectation { .. }
        )
    })
}

/// A data matrix with finite entries.
fn data_matrix(data: ArrayView2<f64>, what: &str) -> Result<Dense<f64>, ActionError> {
    if data.iter().any(|x| !x.is_finite()) {
        return Err(ActionError::Data {
            reason: format!("the {what} contain a non-finite entry"),
        });
    }
    Ok(Dense::from_f64(data.nrows(), data.ncols(), |i, j| {
        data[[i, j]]
    }))
}
