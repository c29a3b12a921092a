//! Integer index expressions and ranges.
//!
//! An index is affine in the index variables and the `int` parameters
//! (`l - 1`, `2 * t + 1`, `L`). A field access is in range when, over the box of values its
//! variables take, the index's minimum and maximum lie in the field's declared range —
//! checked at the parameters' default values.

use crate::syntax::ast::{self, BinaryOp, ExprKind};
use crate::syntax::{Diagnostic, Span};

use super::ir::{IndexAtom, IndexBinding, IndexExpr, IndexRange, ParamType};
use super::{Checker, ScopedIndex, Symbol};

/// The range given to an index whose declared range could not be checked.
const UNBOUNDED: (i64, i64) = (-(1 << 40), 1 << 40);

/// A range that contains every index (stands in for a range with a reported problem).
pub(super) fn unbounded_range() -> IndexRange {
    IndexRange {
        lower: IndexExpr::constant(UNBOUNDED.0),
        upper: IndexExpr::constant(UNBOUNDED.1),
    }
}

impl Checker {
    /// `l in a..=b` → a checked range (bounds must be integer expressions without variables
    /// that are not in scope).
    pub(super) fn index_range(&mut self, binding: &ast::Binding) -> Option<IndexRange> {
        let lower = self.int_expr(&binding.lower, "a range bound");
        let upper = self.int_expr(&binding.upper, "a range bound");
        Some(IndexRange {
            lower: lower?,
            upper: upper?,
        })
    }

    /// The values of an index expression at the default parameters, over the variables in
    /// scope: `(min, max)`.
    pub(super) fn index_bounds(&self, expr: &IndexExpr) -> Option<(i64, i64)> {
        let mut lo = expr.constant;
        let mut hi = expr.constant;
        for (atom, &c) in &expr.terms {
            let (a, b) = match atom {
                IndexAtom::Param(p) => (self.int_default(*p), self.int_default(*p)),
                IndexAtom::Var(name) => {
                    let var = self.index_scope.iter().rev().find(|v| &v.name == name)?;
                    if (var.lower, var.upper) == UNBOUNDED {
                        return None; // its range was already reported
                    }
                    (var.lower, var.upper)
                }
            };
            if c >= 0 {
                lo += c * a;
                hi += c * b;
            } else {
                lo += c * b;
                hi += c * a;
            }
        }
        Some((lo, hi))
    }

    /// Evaluates a range at the default parameters.
    pub(super) fn range_values(&self, range: &IndexRange) -> Option<(i64, i64)> {
        let (lo, _) = self.index_bounds(&range.lower)?;
        let (_, hi) = self.index_bounds(&range.upper)?;
        Some((lo, hi))
    }

    /// Puts bindings in scope (checking their ranges); returns how many were pushed.
    pub(super) fn push_bindings(
        &mut self,
        bindings: &[ast::Binding],
    ) -> (Vec<IndexBinding>, usize) {
        let mut out = Vec::new();
        let mut pushed = 0;
        for binding in bindings {
            let name = &binding.var.name;
            if self.index_scope.iter().any(|v| &v.name == name)
                || self.random_scope.iter().any(|r| &r.name == name)
                || self.names.contains_key(name)
            {
                self.error(
                    Diagnostic::new(
                        "saddle::shadowed_name",
                        format!("the index `{name}` hides a name that is already in use"),
                        binding.var.span,
                        "already means something here",
                    )
                    .with_help("give the index a fresh name"),
                );
            }
            // A variable whose range has a problem still enters the scope (with every value
            // allowed), so that its uses are not reported a second time.
            let range = self.index_range(binding);
            let (lower, upper) = range
                .as_ref()
                .and_then(|r| self.range_values(r))
                .unwrap_or((UNBOUNDED.0, UNBOUNDED.1));
            self.index_scope.push(ScopedIndex {
                name: name.clone(),
                lower,
                upper,
            });
            pushed += 1;
            out.push(IndexBinding {
                var: name.clone(),
                range: range.unwrap_or_else(unbounded_range),
            });
        }
        (out, pushed)
    }

    /// Removes the last `n` index variables from scope.
    pub(super) fn pop_bindings(&mut self, n: usize) {
        let keep = self.index_scope.len().saturating_sub(n);
        self.index_scope.truncate(keep);
    }

    /// An integer expression (index, range bound); `what` names its role in messages.
    pub(super) fn int_expr(&mut self, expr: &ast::Expr, what: &str) -> Option<IndexExpr> {
        match &expr.kind {
            ExprKind::Number(v) => {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    Some(IndexExpr::constant(*v as i64))
                } else {
                    self.error(Diagnostic::new(
                        "saddle::index_not_integer",
                        format!("{what} must be an integer, but `{v}` is not"),
                        expr.span,
                        "not an integer",
                    ));
                    None
                }
            }
            ExprKind::Name(ident) => {
                let name = &ident.name;
                if self.index_scope.iter().any(|v| &v.name == name) {
                    return Some(IndexExpr::atom(IndexAtom::Var(name.clone())));
                }
                match self.names.get(name).map(|s| s.0) {
                    Some(Symbol::Param(id)) if self.params[id].ty == ParamType::Int => {
                        Some(IndexExpr::atom(IndexAtom::Param(id)))
                    }
                    Some(Symbol::Param(id)) => {
                        let span = self.params[id].span;
                        self.error(
                            Diagnostic::new(
                                "saddle::real_param_as_index",
                                format!(
                                    "{what} must be an integer, but `{name}` is a real parameter"
                                ),
                                expr.span,
                                "real parameter",
                            )
                            .with_related(span, "declared here")
                            .with_help(format!(
                                "declare it as an integer: `param {name}: int = …`"
                            )),
                        );
                        None
                    }
                    Some(_) => {
                        self.error(Diagnostic::new(
                            "saddle::index_not_integer",
                            format!(
                                "{what} must be an integer, but `{name}` is not an integer quantity"
                            ),
                            expr.span,
                            "not an integer",
                        ));
                        None
                    }
                    None => {
                        self.unknown_name(ident);
                        None
                    }
                }
            }
            ExprKind::Neg(inner) => Some(self.int_expr(inner, what)?.scale(-1)),
            ExprKind::Binary {
                op: op @ (BinaryOp::Add | BinaryOp::Sub),
                lhs,
                rhs,
            } => {
                let l = self.int_expr(lhs, what);
                let r = self.int_expr(rhs, what);
                Some(l?.add(&r?, if *op == BinaryOp::Add { 1 } else { -1 }))
            }
            ExprKind::Binary {
                op: BinaryOp::Mul | BinaryOp::Juxtapose,
                lhs,
                rhs,
            } => {
                let l = self.int_expr(lhs, what)?;
                let r = self.int_expr(rhs, what)?;
                match (l.terms.is_empty(), r.terms.is_empty()) {
                    (true, _) => Some(r.scale(l.constant)),
                    (_, true) => Some(l.scale(r.constant)),
                    _ => {
                        self.error(
                            Diagnostic::new(
                                "saddle::index_not_affine",
                                format!("{what} must be affine (like `2 * l + 1`), but this multiplies two variables"),
                                expr.span,
                                "product of variables",
                            )
                            .with_help("indices may add variables and multiply them by integer constants"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.error(
                    Diagnostic::new(
                        "saddle::index_not_integer",
                        format!("{what} must be an integer expression of indices and `int` parameters"),
                        expr.span,
                        "not an integer expression",
                    )
                    .with_help("write sums and integer multiples of index variables, `int` parameters and integers"),
                );
                None
            }
        }
    }

    /// Checks that `index` stays in `range` (the `position`-th index of `owner`) for every
    /// value of its variables.
    pub(super) fn check_index_in_range(
        &mut self,
        index: &IndexExpr,
        span: Span,
        owner: &str,
        binding: &IndexBinding,
        declared_at: Span,
    ) {
        let (Some((lo, hi)), Some((flo, fhi))) =
            (self.index_bounds(index), self.range_values(&binding.range))
        else {
            return;
        };
        if lo >= flo && hi <= fhi {
            return;
        }
        let bad = if lo < flo { lo } else { hi };
        let witness = self.witness(index, bad);
        self.error(
            Diagnostic::new(
                "saddle::index_out_of_range",
                format!(
                    "this index reaches {bad}{witness}, but `{owner}` is declared for {} in {flo}..={fhi}",
                    binding.var
                ),
                span,
                format!("reaches {bad}"),
            )
            .with_related(declared_at, "declared here")
            .with_help("shift the index or narrow the range of the enclosing sum"),
        );
    }

    /// " (at l = 0)": which variable values produce the extreme value of an index.
    fn witness(&self, index: &IndexExpr, value: i64) -> String {
        let vars: Vec<String> = index
            .terms
            .iter()
            .filter_map(|(atom, &c)| match atom {
                IndexAtom::Var(name) => {
                    let v = self.index_scope.iter().rev().find(|v| &v.name == name)?;
                    let (_, hi) = self.index_bounds(index)?;
                    let at_max = value == hi;
                    let pick = if (c >= 0) == at_max { v.upper } else { v.lower };
                    Some(format!("{name} = {pick}"))
                }
                IndexAtom::Param(_) => None,
            })
            .collect();
        if vars.is_empty() {
            String::new()
        } else {
            format!(" (at {})", vars.join(", "))
        }
    }
}
