//! Calls: built-ins and user functions, their arity, and unknown names with suggestions.

use crate::syntax::ast::{self};
use crate::syntax::{Diagnostic, Span};

use crate::check::ir::{Builtin, Callee, Expr, ExprKind, MatrixFunction, Shape};
use crate::check::{Checker, Symbol};

use super::*;

impl Checker {
    pub(super) fn call(
        &mut self,
        func: &ast::Ident,
        args: &[ast::Expr],
        span: Span,
    ) -> Option<Expr> {
        let name = func.name.as_str();
        let checked: Vec<Option<Expr>> = args.iter().map(|a| self.expr(a)).collect();
        if let Some(matrix) = MatrixFunction::from_name(name) {
            self.arity(name, 1, args.len(), span)?;
            let arg = checked.into_iter().next()??;
            if !arg.shape.is_square() || arg.shape.is_scalar() {
                self.error(
                    Diagnostic::new(
                        "saddle::needs_square_matrix",
                        format!(
                            "`{name}` needs a square matrix, but its argument is {}",
                            arg.shape
                        ),
                        arg.span,
                        format!("{}", arg.shape),
                    )
                    .with_help(if arg.shape.is_scalar() {
                        "a scalar needs no trace, inverse or determinant"
                    } else {
                        "form a square matrix first, e.g. `X X^T`"
                    }),
                );
                return None;
            }
            let shape = if matrix == MatrixFunction::Inverse {
                arg.shape
            } else {
                Shape::SCALAR
            };
            return node(ExprKind::Matrix(matrix, Box::new(arg)), shape, span);
        }
        let callee = if let Some(builtin) = Builtin::from_name(name) {
            self.arity(name, 1, args.len(), span)?;
            Callee::Builtin(builtin)
        } else {
            match self.names.get(name).copied() {
                Some((Symbol::Function(id), _)) => {
                    self.arity(name, self.function_arity[id], args.len(), span)?;
                    if let Some(current) = self.current_function {
                        self.function_calls[current].push((id, func.span));
                    }
                    Callee::User(id)
                }
                Some((_, declared)) => {
                    self.error(
                        Diagnostic::new(
                            "saddle::not_a_function",
                            format!("`{name}` is not a function"),
                            func.span,
                            "called here",
                        )
                        .with_related(declared, "declared here")
                        .with_help("to multiply, write `*` or leave a blank: `g * (…)`"),
                    );
                    return None;
                }
                None => {
                    self.unknown_function(func);
                    return None;
                }
            }
        };
        let args: Vec<Expr> = checked.into_iter().collect::<Option<_>>()?;
        let shape = args.first().map_or(Shape::SCALAR, |a| a.shape);
        for arg in &args {
            if !(arg.shape.is_scalar() || arg.shape == Shape::VECTOR) || arg.shape != shape {
                self.error(
                    Diagnostic::new(
                        "saddle::elementwise_shape",
                        format!("`{name}` applies entry-wise to scalars or P-vectors, but this argument is {}", arg.shape),
                        arg.span,
                        format!("{}", arg.shape),
                    )
                    .with_help("matrix functions other than `tr`, `inv`, `logdet` are not defined; apply it to a vector"),
                );
                return None;
            }
        }
        node(ExprKind::Apply { callee, args }, shape, span)
    }

    pub(super) fn arity(
        &mut self,
        name: &str,
        expected: usize,
        given: usize,
        span: Span,
    ) -> Option<()> {
        if expected == given {
            return Some(());
        }
        self.error(Diagnostic::new(
            "saddle::argument_count",
            format!(
                "`{name}` takes {}, but {} given",
                crate::check::plural(expected, "argument", "arguments"),
                crate::check::plural_verb(given)
            ),
            span,
            crate::check::plural(given, "argument", "arguments"),
        ));
        None
    }

    pub(super) fn unknown_function(&mut self, func: &ast::Ident) {
        let mut candidates: Vec<String> = Builtin::ALL.iter().map(|(n, _)| n.to_string()).collect();
        candidates.extend(["tr", "inv", "logdet"].map(String::from));
        candidates.extend(self.functions.iter().map(|f| f.name.clone()));
        let mut diagnostic = Diagnostic::new(
            "saddle::unknown_function",
            format!("unknown function `{}`", func.name),
            func.span,
            "not defined",
        );
        if let Some(help) = crate::check::suggest::builtin_alias(&func.name) {
            self.error(diagnostic.with_help(help));
            return;
        }
        diagnostic =
            match crate::check::suggest::closest(&func.name, candidates.iter().map(String::as_str))
            {
                Some(best) => diagnostic.with_help(format!("did you mean `{best}`?")),
                None => diagnostic.with_help(format!(
                    "define it (`{}(x) = …`) or use a built-in: {}, tr, inv, logdet",
                    func.name,
                    Builtin::ALL
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
        self.error(diagnostic);
    }
}
