//! Binary operators with their shape rules, and Gaussian expectations with their covariance.

use crate::syntax::ast::{self, BinaryOp, ExprKind as A};
use crate::syntax::{Diagnostic, Span};

use crate::check::ir::{Covariance, Expr, ExprKind, Shape};
use crate::check::{Checker, ScopedRandom, Symbol};

use super::*;

impl Checker {
    pub(super) fn binary(&mut self, op: BinaryOp, l: Expr, r: Expr, span: Span) -> Option<Expr> {
        let (ls, rs) = (l.shape, r.shape);
        let (l, r) = (Box::new(l), Box::new(r));
        match op {
            BinaryOp::Add | BinaryOp::Sub => {
                let shape = if ls == rs {
                    ls
                } else if (ls.is_scalar() && rs == Shape::KERNEL)
                    || (rs.is_scalar() && ls == Shape::KERNEL)
                {
                    Shape::KERNEL
                } else {
                    let verb = if op == BinaryOp::Add {
                        "add"
                    } else {
                        "subtract"
                    };
                    self.error(
                        Diagnostic::new("saddle::shape_mismatch", format!("cannot {verb} {ls} and {rs}"), span, format!("{ls} {} {rs}", op.symbol()))
                            .with_related(l.span, format!("{ls}"))
                            .with_related(r.span, format!("{rs}"))
                            .with_help("only equal shapes add; a scalar may be added to a P×P matrix (to every entry)"),
                    );
                    return None;
                };
                let kind = if op == BinaryOp::Add {
                    ExprKind::Add(l, r)
                } else {
                    ExprKind::Sub(l, r)
                };
                node(kind, shape, span)
            }
            BinaryOp::Mul | BinaryOp::Juxtapose => {
                let shape = if ls.is_scalar() {
                    rs
                } else if rs.is_scalar() {
                    ls
                } else if ls.cols == rs.rows {
                    Shape::new(ls.rows, rs.cols)
                } else {
                    self.error(
                        Diagnostic::new(
                            "saddle::product_mismatch",
                            format!("cannot multiply {ls} by {rs}: the inner sizes differ"),
                            span,
                            "inner sizes differ",
                        )
                        .with_related(l.span, format!("{ls}"))
                        .with_related(r.span, format!("{rs}"))
                        .with_help("a matrix product needs the left factor's columns to match the right factor's rows; a transpose `^T` may be missing"),
                    );
                    return None;
                };
                node(ExprKind::Mul(l, r), shape, span)
            }
            BinaryOp::Div => {
                if !rs.is_scalar() {
                    self.error(
                        Diagnostic::new(
                            "saddle::divide_by_matrix",
                            format!("cannot divide by {rs}"),
                            r.span,
                            format!("{rs}"),
                        )
                        .with_help("multiply by `inv(…)` instead"),
                    );
                    return None;
                }
                node(ExprKind::Div(l, r), ls, span)
            }
            BinaryOp::Pow => {
                if !ls.is_scalar() || !rs.is_scalar() {
                    let bad = if ls.is_scalar() { &r } else { &l };
                    self.error(
                        Diagnostic::new(
                            "saddle::power_of_matrix",
                            format!("`^` raises scalars to scalar powers, but this is {}", bad.shape),
                            bad.span,
                            format!("{}", bad.shape),
                        )
                        .with_help("write matrix products out (`A A`), use `inv(A)` for A⁻¹, or `^T` for the transpose"),
                    );
                    return None;
                }
                node(ExprKind::Pow(l, r), Shape::SCALAR, span)
            }
        }
    }

    pub(super) fn expectation(
        &mut self,
        body: &ast::Expr,
        var: &ast::Ident,
        mean: &ast::Expr,
        cov: &ast::Expr,
        span: Span,
    ) -> Option<Expr> {
        if self.names.contains_key(&var.name)
            || self.index_scope.iter().any(|v| v.name == var.name)
            || self.random_scope.iter().any(|r| r.name == var.name)
        {
            self.error(
                Diagnostic::new(
                    "saddle::shadowed_name",
                    format!(
                        "the random variable `{}` hides a name that is already in use",
                        var.name
                    ),
                    var.span,
                    "already means something here",
                )
                .with_help("give the integration variable a fresh name, e.g. `h`"),
            );
            return None;
        }
        let mean = self.expr(mean);
        let cov = self.covariance(cov);
        let (mean, (cov, family)) = (mean?, cov?);
        if !(mean.shape.is_scalar() || mean.shape == Shape::VECTOR) {
            self.error(Diagnostic::new(
                "saddle::expectation_shape",
                format!(
                    "the mean of the Gaussian must be a P-vector (or 0), but this is {}",
                    mean.shape
                ),
                mean.span,
                format!("{}", mean.shape),
            ));
            return None;
        }
        self.random_scope.push(ScopedRandom {
            name: var.name.clone(),
            family,
        });
        let body = self.expr(body);
        self.random_scope.pop();
        let body = body?;
        let shape = body.shape;
        let kind = ExprKind::Expectation {
            var: var.name.clone(),
            body: Box::new(body),
            mean: Box::new(mean),
            cov,
        };
        node(kind, shape, span)
    }

    /// The covariance of an expectation: a P×P expression, or a bare two-index kernel name
    /// (a family over time).
    pub(super) fn covariance(
        &mut self,
        cov: &ast::Expr,
    ) -> Option<(Covariance, Option<crate::check::FamilyRange>)> {
        if let A::Name(ident) = &cov.kind
            && let Some((Symbol::Field(id), declared)) = self.names.get(&ident.name).copied()
        {
            let field = self.fields[id].clone();
            match field.indices.len() {
                0 => {}
                2 => {
                    let first = &field.indices[0].range;
                    let second = &field.indices[1].range;
                    let (Some(a), Some(b)) = (self.range_values(first), self.range_values(second))
                    else {
                        return None;
                    };
                    if a != b || field.shape() != Shape::KERNEL {
                        self.error(
                            Diagnostic::new(
                                "saddle::expectation_shape",
                                format!("`{}` cannot be a time family: its two indices have different ranges", field.name),
                                cov.span,
                                "not a family",
                            )
                            .with_related(declared, "declared here"),
                        );
                        return None;
                    }
                    return Some((Covariance::Family(id), Some((id, a.0, a.1))));
                }
                n => {
                    self.error(
                        Diagnostic::new(
                            "saddle::missing_index",
                            format!("`{}` has {}: pick one kernel, e.g. `{}[…]`", field.name, crate::check::plural(n, "index", "indices"), field.name),
                            cov.span,
                            "needs indices",
                        )
                        .with_related(declared, "declared here")
                        .with_help("only a two-index kernel C[t, s] may stand bare, for a family of vectors h[t]"),
                    );
                    return None;
                }
            }
        }
        let cov = self.expr(cov)?;
        if cov.shape != Shape::KERNEL {
            self.error(
                Diagnostic::new(
                    "saddle::expectation_shape",
                    format!(
                        "the covariance of the Gaussian must be a P×P matrix, but this is {}",
                        cov.shape
                    ),
                    cov.span,
                    format!("{}", cov.shape),
                )
                .with_help("the random variable is a P-vector: one value per pattern"),
            );
            return None;
        }
        Some((Covariance::Matrix(Box::new(cov)), None))
    }
}
