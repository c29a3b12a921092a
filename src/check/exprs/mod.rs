//! Expressions: name resolution and shapes.
//!
//! Shape rules: `+`/`-` need equal shapes, except that a scalar may be added to a P×P
//! matrix (to every entry: `X X^T + gb` is the bias kernel); a product with a scalar keeps
//! the other shape, otherwise it is a matrix product and the inner sizes must agree; `/`
//! divides by a scalar; `^` raises scalars; entry-wise functions take scalars or P-vectors;
//! `tr` and `logdet` take square matrices to scalars, `inv` keeps a square shape.
//!
//! Here: the recursion over expressions, names and sizes; `indexed`: field entries and
//! family members; `calls`: built-ins and user functions; `operators`: binary operators and
//! expectations.

use crate::syntax::ast::{self, ExprKind as A};
use crate::syntax::{Diagnostic, Span};

use super::ir::{self, Dim, Expr, ExprKind, Shape, Size};
use super::{Checker, Symbol};

mod calls;
mod indexed;
mod operators;

fn node(kind: ExprKind, shape: Shape, span: Span) -> Option<Expr> {
    Some(Expr { kind, shape, span })
}

impl Checker {
    /// Checks an expression; `None` when a problem was reported (no cascades).
    pub(super) fn expr(&mut self, e: &ast::Expr) -> Option<Expr> {
        let span = e.span;
        match &e.kind {
            A::Number(v) => node(ExprKind::Number(*v), Shape::SCALAR, span),
            A::Name(ident) => self.name(ident, span),
            A::Index { base, indices } => self.indexed(base, indices, span),
            A::Call { func, args } => self.call(func, args, span),
            A::Prefix { func, arg } => self.call(func, std::slice::from_ref(arg), span),
            A::Neg(inner) => {
                let inner = self.expr(inner)?;
                let shape = inner.shape;
                node(ExprKind::Neg(Box::new(inner)), shape, span)
            }
            A::Transpose(inner) => {
                let inner = self.expr(inner)?;
                let shape = inner.shape.transposed();
                node(ExprKind::Transpose(Box::new(inner)), shape, span)
            }
            A::Binary { op, lhs, rhs } => {
                let l = self.expr(lhs);
                let r = self.expr(rhs);
                self.binary(*op, l?, r?, span)
            }
            A::Sum { bindings, body } => {
                let (bindings, pushed) = self.push_bindings(bindings);
                let body = self.expr(body);
                self.pop_bindings(pushed);
                let body = body?;
                let shape = body.shape;
                node(
                    ExprKind::Sum {
                        bindings,
                        body: Box::new(body),
                    },
                    shape,
                    span,
                )
            }
            A::Expectation {
                body,
                var,
                mean,
                cov,
            } => self.expectation(body, var, mean, cov, span),
        }
    }

    fn name(&mut self, ident: &ast::Ident, span: Span) -> Option<Expr> {
        let name = ident.name.as_str();
        if self.index_scope.iter().any(|v| v.name == name) {
            let index = ir::IndexExpr::atom(ir::IndexAtom::Var(name.to_string()));
            return node(ExprKind::Index(index), Shape::SCALAR, span);
        }
        if let Some(random) = self
            .random_scope
            .iter()
            .rev()
            .find(|r| r.name == name)
            .cloned()
        {
            if random.family.is_some() {
                self.error(
                    Diagnostic::new(
                        "saddle::family_needs_time",
                        format!(
                            "`{name}` is a family of vectors over time; pick one with `{name}[t]`"
                        ),
                        span,
                        "needs a time index",
                    )
                    .with_help("the covariance of the expectation is a two-index kernel family"),
                );
                return None;
            }
            return node(
                ExprKind::RandomVar {
                    name: name.to_string(),
                    time: None,
                },
                Shape::VECTOR,
                span,
            );
        }
        if let Some(i) = self.function_params.iter().position(|p| p == name) {
            return node(ExprKind::FunctionArg(i), Shape::SCALAR, span);
        }
        match name {
            "pi" => return node(ExprKind::Pi, Shape::SCALAR, span),
            "I" => return node(ExprKind::Identity, Shape::KERNEL, span),
            "ones" => return node(ExprKind::Ones, Shape::KERNEL, span),
            "P" => return node(ExprKind::Size(Size::Patterns), Shape::SCALAR, span),
            "d" | "D" => return self.size(name, span),
            _ => {}
        }
        let Some((symbol, declared)) = self.names.get(name).copied() else {
            self.unknown_name(ident);
            return None;
        };
        match symbol {
            Symbol::Param(id) => node(ExprKind::Param(id), Shape::SCALAR, span),
            Symbol::Data(role) => {
                let cols = if role == ir::DataRole::Inputs {
                    Dim::Inputs
                } else {
                    Dim::Outputs
                };
                node(ExprKind::Data(role), Shape::new(Dim::Patterns, cols), span)
            }
            Symbol::Field(id) if self.fields[id].indices.is_empty() => {
                let shape = self.fields[id].shape();
                node(
                    ExprKind::Field {
                        field: id,
                        indices: Vec::new(),
                    },
                    shape,
                    span,
                )
            }
            Symbol::Conj(id) if self.conjugates[id].indices.is_empty() => {
                let shape = self
                    .conjugates
                    .get(id)
                    .and_then(|c| self.fields.get(c.of))
                    .map_or(Shape::KERNEL, |f| f.shape());
                node(
                    ExprKind::Conjugate {
                        conj: id,
                        indices: Vec::new(),
                    },
                    shape,
                    span,
                )
            }
            Symbol::Field(_) | Symbol::Conj(_) => {
                let vars = match symbol {
                    Symbol::Field(id) => &self.fields[id].indices,
                    Symbol::Conj(id) => &self.conjugates[id].indices,
                    _ => unreachable!("matched above"),
                };
                let example: Vec<&str> = vars.iter().map(|b| b.var.as_str()).collect();
                self.error(
                    Diagnostic::new(
                        "saddle::missing_index",
                        format!(
                            "`{name}` has {}; write `{name}[{}]`",
                            super::plural(vars.len(), "index", "indices"),
                            example.join(", ")
                        ),
                        span,
                        "needs indices",
                    )
                    .with_related(declared, "declared here"),
                );
                None
            }
            Symbol::Function(_) => {
                self.error(
                    Diagnostic::new(
                        "saddle::function_as_value",
                        format!("`{name}` is a function; call it: `{name}(x)`"),
                        span,
                        "not called",
                    )
                    .with_related(declared, "defined here"),
                );
                None
            }
            Symbol::Theory | Symbol::Action => {
                self.error(Diagnostic::new(
                    "saddle::not_a_value",
                    format!("`{name}` names the theory or the action and has no value inside an expression"),
                    span,
                    "not a value",
                ));
                None
            }
        }
    }

    /// `d` and `D` need the data declaration that gives them meaning.
    fn size(&mut self, name: &str, span: Span) -> Option<Expr> {
        let (size, present) = match name {
            "d" => (Size::Inputs, self.data.inputs.is_some()),
            _ => (Size::Outputs, self.data.targets.is_some()),
        };
        if !present {
            let what = if name == "d" {
                "the input dimension, but no inputs"
            } else {
                "the number of outputs, but no targets"
            };
            self.error(
                Diagnostic::new(
                    "saddle::size_without_data",
                    format!("`{name}` is {what} are declared"),
                    span,
                    "undefined size",
                )
                .with_help("declare the data: `data X, Y`"),
            );
            return None;
        }
        node(ExprKind::Size(size), Shape::SCALAR, span)
    }
}
