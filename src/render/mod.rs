//! Theories as mathematics: Unicode text and LaTeX.
//!
//! One walker ([`render_expr`]) decides structure and parentheses; a [`Notation`] decides
//! how each construct looks. Conjugate fields print as the tilde of their field
//! (`Ct[l]` → `C̃⁽ˡ⁾`, `\tilde C^{(l)}`), indexed fields with the index as a superscript in
//! parentheses, Greek parameter names as Greek letters, trailing digits as subscripts,
//! Gaussian expectations as `⟨f⟩_{h∼𝒩(m, K)}`, sums as `Σ`.

mod latex;
pub(crate) mod names;
mod unicode;

use std::collections::HashMap;

use crate::check::Theory;
use crate::syntax::ast::{BinaryOp, Binding, Expr, ExprKind, ItemKind};
use crate::syntax::print::format_number;

pub use latex::{Latex, latex_document};
pub use unicode::Unicode;

/// How each construct of an expression is written in one notation.
pub trait Notation {
    /// A plain name (parameter, data, function, index variable).
    fn name(&self, name: &str) -> String;
    /// A number.
    fn number(&self, text: &str) -> String {
        text.to_string()
    }
    /// A field or conjugate with indices (already rendered); `tilde` for conjugates.
    fn field(&self, base: &str, tilde: bool, indices: &[String]) -> String;
    /// Parentheses around a sub-expression.
    fn parens(&self, inner: &str) -> String;
    /// `-a`
    fn neg(&self, inner: &str) -> String;
    /// `a + b`, `a - b`
    fn additive(&self, lhs: &str, op: char, rhs: &str) -> String;
    /// A product; `explicit` when written with `*` between two scalars' worth of factors.
    fn product(&self, lhs: &str, rhs: &str, explicit: bool) -> String;
    /// `a / b` (operands rendered without outer parentheses).
    fn fraction(
        &self,
        numerator: &str,
        denominator: &str,
        numerator_atomic: bool,
        denominator_atomic: bool,
    ) -> String;
    /// `a ^ b`
    fn power(&self, base: &str, exponent: &str) -> String;
    /// `a^T`
    fn transpose(&self, inner: &str) -> String;
    /// `inv(a)`
    fn inverse(&self, inner: &str) -> String;
    /// A function call (built-in or user).
    fn call(&self, func: &str, args: &[String]) -> String;
    /// `sum(bindings, body)`: each binding as (variable, lower, upper).
    fn sum(
        &self,
        bindings: &[(String, String, String)],
        body: &str,
        body_is_sum_of_terms: bool,
    ) -> String;
    /// `E[body | var ~ N(mean, cov)]`
    fn expectation(&self, body: &str, var: &str, mean: &str, cov: &str) -> String;
    /// A definition line `lhs = rhs`.
    fn equation(&self, lhs: &str, rhs: &str) -> String;
    /// `, l = a…b` after a definition with a `for` clause.
    fn range_clause(&self, var: &str, lower: &str, upper: &str) -> String;
    /// Running text.
    fn text(&self, text: &str) -> String;
}

/// What names stand for, as far as notation cares.
#[derive(Debug, Default, Clone)]
pub struct NameRoles {
    /// Conjugate name → the name of its field.
    pub conjugate_of: HashMap<String, String>,
}

impl NameRoles {
    /// Roles from a checked theory.
    pub fn of(theory: &Theory) -> Self {
        let conjugate_of = theory
            .conjugates
            .iter()
            .map(|c| (c.name.clone(), theory.fields[c.of].name.clone()))
            .collect();
        NameRoles { conjugate_of }
    }
}

/// Binding strength used for parenthesisation (as in the `.action` grammar).
fn precedence(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary { op, .. } => op.precedence(),
        ExprKind::Neg(_) | ExprKind::Prefix { .. } => 3,
        ExprKind::Transpose(_) => 5,
        _ => 6,
    }
}

/// Whether an expression renders as one visual unit (no parentheses needed around it).
fn is_atomic(e: &Expr) -> bool {
    matches!(
        e.kind,
        ExprKind::Number(_)
            | ExprKind::Name(_)
            | ExprKind::Index { .. }
            | ExprKind::Call { .. }
            | ExprKind::Expectation { .. }
    )
}

/// Renders an expression in a notation.
pub fn render_expr(e: &Expr, n: &dyn Notation, roles: &NameRoles) -> String {
    let r = |x: &Expr| render_expr(x, n, roles);
    let wrap = |x: &Expr, parens: bool| if parens { n.parens(&r(x)) } else { r(x) };
    match &e.kind {
        ExprKind::Number(v) => n.number(&format_number(*v)),
        ExprKind::Name(id) => n.name(&id.name),
        ExprKind::Index { base, indices } => {
            let rendered: Vec<String> = indices.iter().map(&r).collect();
            match roles.conjugate_of.get(&base.name) {
                Some(field) => n.field(field, true, &rendered),
                None => n.field(&base.name, false, &rendered),
            }
        }
        ExprKind::Call { func, args } if func.name == "inv" && args.len() == 1 => {
            n.inverse(&wrap(&args[0], !is_atomic(&args[0])))
        }
        ExprKind::Prefix { func, arg } if func.name == "inv" => {
            n.inverse(&wrap(arg, !is_atomic(arg)))
        }
        ExprKind::Call { func, args } => {
            n.call(&func.name, &args.iter().map(&r).collect::<Vec<_>>())
        }
        ExprKind::Prefix { func, arg } => n.call(&func.name, &[r(arg)]),
        ExprKind::Neg(inner) => n.neg(&wrap(inner, precedence(inner) <= 2)),
        ExprKind::Transpose(inner) => n.transpose(&wrap(inner, !is_atomic(inner))),
        ExprKind::Binary { op, lhs, rhs } => match op {
            BinaryOp::Add | BinaryOp::Sub => {
                let sign = if *op == BinaryOp::Add { '+' } else { '-' };
                n.additive(&r(lhs), sign, &wrap(rhs, precedence(rhs) <= 1))
            }
            BinaryOp::Mul | BinaryOp::Juxtapose => {
                let explicit = *op == BinaryOp::Mul;
                n.product(
                    &wrap(lhs, precedence(lhs) < 2),
                    &wrap(rhs, precedence(rhs) <= 2),
                    explicit,
                )
            }
            BinaryOp::Div => {
                n.fraction(&r(lhs), &r(rhs), precedence(lhs) >= 3, precedence(rhs) >= 3)
            }
            BinaryOp::Pow => n.power(&wrap(lhs, precedence(lhs) <= 4), &r(rhs)),
        },
        ExprKind::Sum { bindings, body } => {
            let b: Vec<(String, String, String)> = bindings
                .iter()
                .map(|b: &Binding| (n.name(&b.var.name), r(&b.lower), r(&b.upper)))
                .collect();
            let many_terms = matches!(
                body.kind,
                ExprKind::Binary {
                    op: BinaryOp::Add | BinaryOp::Sub,
                    ..
                }
            );
            n.sum(&b, &r(body), many_terms)
        }
        ExprKind::Expectation {
            body,
            var,
            mean,
            cov,
        } => n.expectation(&r(body), &n.name(&var.name), &r(mean), &r(cov)),
    }
}

/// Renders a whole theory, one declaration per line, in a notation: the parameters with
/// their defaults, the functions, the fields with their ranges, the definitions and the action.
pub fn render_theory(theory: &Theory, n: &dyn Notation) -> Vec<String> {
    let roles = NameRoles::of(theory);
    let mut lines = vec![n.text(&format!("theory {}", theory.name))];
    let params: Vec<String> = theory
        .params
        .iter()
        .map(|p| {
            let value = if p.default < 0.0 {
                format!("-{}", format_number(-p.default))
            } else {
                format_number(p.default)
            };
            n.equation(&n.name(&p.name), &n.number(&value))
        })
        .collect();
    if !params.is_empty() {
        lines.push(params.join(", "));
    }
    for field in &theory.fields {
        let vars: Vec<String> = field.indices.iter().map(|b| n.name(&b.var)).collect();
        let head = if vars.is_empty() {
            n.name(&field.name)
        } else {
            n.field(&field.name, false, &vars)
        };
        let kind = match field.kind {
            crate::check::ir::FieldKind::Kernel => "kernel (P×P)",
            crate::check::ir::FieldKind::Mean => "mean field (P-vector)",
        };
        let mut line = format!("{head}{}", n.text(&format!(": {kind}")));
        for (b, decl) in field.indices.iter().zip(field_ranges(theory, &field.name)) {
            line.push_str(&n.range_clause(&n.name(&b.var), &decl.0, &decl.1));
        }
        if let Some(conj) = theory
            .conjugates
            .iter()
            .find(|c| theory.fields[c.of].name == field.name)
        {
            let conj_vars: Vec<String> = conj.indices.iter().map(|b| n.name(&b.var)).collect();
            let tilde = n.field(&field.name, true, &conj_vars);
            line.push_str(&n.text("; conjugate "));
            line.push_str(&tilde);
            for (b, decl) in conj.indices.iter().zip(conj_ranges(theory, &conj.name)) {
                line.push_str(&n.range_clause(&n.name(&b.var), &decl.0, &decl.1));
            }
        }
        lines.push(line);
    }
    for item in &theory.syntax.items {
        match &item.kind {
            ItemKind::Function(f) => {
                let params: Vec<String> = f.params.iter().map(|p| n.name(&p.name)).collect();
                let lhs = n.call(&f.name.name, &params);
                lines.push(n.equation(&lhs, &render_expr(&f.body, n, &roles)));
            }
            ItemKind::Definition(d) => {
                let indices: Vec<String> = d
                    .indices
                    .iter()
                    .map(|i| render_expr(i, n, &roles))
                    .collect();
                let lhs = if indices.is_empty() {
                    n.name(&d.target.name)
                } else {
                    n.field(&d.target.name, false, &indices)
                };
                let mut line = n.equation(&lhs, &render_expr(&d.body, n, &roles));
                for b in &d.ranges {
                    let (lo, hi) = (
                        render_expr(&b.lower, n, &roles),
                        render_expr(&b.upper, n, &roles),
                    );
                    line.push_str(&n.range_clause(&n.name(&b.var.name), &lo, &hi));
                }
                lines.push(line);
            }
            ItemKind::Action(a) => {
                lines.push(n.equation(&n.name(&a.name.name), &render_expr(&a.body, n, &roles)))
            }
            _ => {}
        }
    }
    lines
}

/// The ranges of a field's `for` clause, as written (rendered plainly).
fn field_ranges(theory: &Theory, name: &str) -> Vec<(String, String)> {
    theory
        .syntax
        .items
        .iter()
        .find_map(|i| match &i.kind {
            ItemKind::Field(f) if f.name.name == name => Some(plain_ranges(&f.indices, &f.ranges)),
            _ => None,
        })
        .unwrap_or_default()
}

/// The ranges of a conjugate's `for` clause, as written.
fn conj_ranges(theory: &Theory, name: &str) -> Vec<(String, String)> {
    theory
        .syntax
        .items
        .iter()
        .find_map(|i| match &i.kind {
            ItemKind::Conj(c) if c.name.name == name => Some(plain_ranges(&c.indices, &c.ranges)),
            _ => None,
        })
        .unwrap_or_default()
}

fn plain_ranges(
    indices: &[crate::syntax::ast::Ident],
    ranges: &[Binding],
) -> Vec<(String, String)> {
    use crate::syntax::print::print_expr;
    indices
        .iter()
        .filter_map(|i| ranges.iter().find(|b| b.var.name == i.name))
        .map(|b| (print_expr(&b.lower), print_expr(&b.upper)))
        .collect()
}
