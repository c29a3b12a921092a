//! Indexed names: field entries `C[l]`, `C[t, s]` with affine indices checked against their
//! ranges, and members of a time family.

use crate::syntax::ast::{self};
use crate::syntax::{Diagnostic, Span};

use crate::check::ir::{self, Expr, ExprKind, Shape};
use crate::check::{Checker, ScopedRandom, Symbol};

use super::*;

impl Checker {
    pub(super) fn indexed(
        &mut self,
        base: &ast::Ident,
        indices: &[ast::Expr],
        span: Span,
    ) -> Option<Expr> {
        let name = base.name.as_str();
        if let Some(random) = self
            .random_scope
            .iter()
            .rev()
            .find(|r| r.name == name)
            .cloned()
        {
            return self.family_member(&random, indices, span);
        }
        let symbol = self.names.get(name).copied();
        let (bindings, declared, shape) = match symbol {
            Some((Symbol::Field(id), declared)) => (
                self.fields[id].indices.clone(),
                declared,
                self.fields[id].shape(),
            ),
            Some((Symbol::Conj(id), declared)) => {
                let shape = self
                    .fields
                    .get(self.conjugates[id].of)
                    .map_or(Shape::KERNEL, |f| f.shape());
                (self.conjugates[id].indices.clone(), declared, shape)
            }
            Some((_, declared)) => {
                self.error(
                    Diagnostic::new(
                        "saddle::not_indexable",
                        format!("`{name}` has no indices; only kernel, mean and conjugate fields (and expectation families) do"),
                        base.span,
                        "cannot be indexed",
                    )
                    .with_related(declared, "declared here"),
                );
                return None;
            }
            None => {
                if self.index_scope.iter().any(|v| v.name == name)
                    || self.function_params.iter().any(|p| p == name)
                {
                    self.error(Diagnostic::new(
                        "saddle::not_indexable",
                        format!("`{name}` is a number and cannot be indexed"),
                        base.span,
                        "cannot be indexed",
                    ));
                } else {
                    self.unknown_name(base);
                }
                return None;
            }
        };
        if indices.len() != bindings.len() {
            self.error(
                Diagnostic::new(
                    "saddle::index_count",
                    format!(
                        "`{name}` takes {}, but {} given",
                        crate::check::plural(bindings.len(), "index", "indices"),
                        crate::check::plural_verb(indices.len())
                    ),
                    span,
                    crate::check::plural(indices.len(), "index", "indices"),
                )
                .with_related(declared, "declared here"),
            );
            return None;
        }
        let mut checked = Vec::new();
        for (index, binding) in indices.iter().zip(&bindings) {
            let value = self.int_expr(index, "an index")?;
            self.check_index_in_range(&value, index.span, name, binding, declared);
            checked.push(value);
        }
        let kind = match symbol {
            Some((Symbol::Field(id), _)) => ExprKind::Field {
                field: id,
                indices: checked,
            },
            Some((Symbol::Conj(id), _)) => ExprKind::Conjugate {
                conj: id,
                indices: checked,
            },
            _ => return None,
        };
        node(kind, shape, span)
    }

    pub(super) fn family_member(
        &mut self,
        random: &ScopedRandom,
        indices: &[ast::Expr],
        span: Span,
    ) -> Option<Expr> {
        let Some((field, lo, hi)) = random.family else {
            self.error(
                Diagnostic::new(
                    "saddle::not_indexable",
                    format!("`{}` is one Gaussian vector, not a family over time", random.name),
                    span,
                    "cannot be indexed",
                )
                .with_help("index the random variable only when its covariance is a two-index kernel family"),
            );
            return None;
        };
        if indices.len() != 1 {
            self.error(Diagnostic::new(
                "saddle::index_count",
                format!(
                    "`{}` takes one time index, but {} are given",
                    random.name,
                    indices.len()
                ),
                span,
                "one index expected",
            ));
            return None;
        }
        let time = self.int_expr(&indices[0], "a time index")?;
        let binding = ir::IndexBinding {
            var: self.fields[field]
                .indices
                .first()
                .map_or_else(|| "t".to_string(), |b| b.var.clone()),
            range: ir::IndexRange {
                lower: ir::IndexExpr::constant(lo),
                upper: ir::IndexExpr::constant(hi),
            },
        };
        let declared = self.fields[field].span;
        self.check_index_in_range(&time, indices[0].span, &random.name, &binding, declared);
        node(
            ExprKind::RandomVar {
                name: random.name.clone(),
                time: Some(time),
            },
            Shape::VECTOR,
            span,
        )
    }
}
