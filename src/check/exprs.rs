//! Expressions: name resolution and shapes.
//!
//! Shape rules: `+`/`-` need equal shapes, except that a scalar may be added to a P×P
//! matrix (to every entry: `X X^T + gb` is the bias kernel); a product with a scalar keeps
//! the other shape, otherwise it is a matrix product and the inner sizes must agree; `/`
//! divides by a scalar; `^` raises scalars; entry-wise functions take scalars or P-vectors;
//! `tr` and `logdet` take square matrices to scalars, `inv` keeps a square shape.

use crate::syntax::ast::{self, BinaryOp, ExprKind as A};
use crate::syntax::{Diagnostic, Span};

use super::ir::{
    self, Builtin, Callee, Covariance, Dim, Expr, ExprKind, MatrixFunction, Shape, Size,
};
use super::{Checker, ScopedRandom, Symbol};

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

    fn indexed(&mut self, base: &ast::Ident, indices: &[ast::Expr], span: Span) -> Option<Expr> {
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
                        super::plural(bindings.len(), "index", "indices"),
                        super::plural_verb(indices.len())
                    ),
                    span,
                    super::plural(indices.len(), "index", "indices"),
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

    fn family_member(
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

    fn call(&mut self, func: &ast::Ident, args: &[ast::Expr], span: Span) -> Option<Expr> {
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

    fn arity(&mut self, name: &str, expected: usize, given: usize, span: Span) -> Option<()> {
        if expected == given {
            return Some(());
        }
        self.error(Diagnostic::new(
            "saddle::argument_count",
            format!(
                "`{name}` takes {}, but {} given",
                super::plural(expected, "argument", "arguments"),
                super::plural_verb(given)
            ),
            span,
            super::plural(given, "argument", "arguments"),
        ));
        None
    }

    fn unknown_function(&mut self, func: &ast::Ident) {
        let mut candidates: Vec<String> = Builtin::ALL.iter().map(|(n, _)| n.to_string()).collect();
        candidates.extend(["tr", "inv", "logdet"].map(String::from));
        candidates.extend(self.functions.iter().map(|f| f.name.clone()));
        let mut diagnostic = Diagnostic::new(
            "saddle::unknown_function",
            format!("unknown function `{}`", func.name),
            func.span,
            "not defined",
        );
        if let Some(help) = super::suggest::builtin_alias(&func.name) {
            self.error(diagnostic.with_help(help));
            return;
        }
        diagnostic =
            match super::suggest::closest(&func.name, candidates.iter().map(String::as_str)) {
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

    fn binary(&mut self, op: BinaryOp, l: Expr, r: Expr, span: Span) -> Option<Expr> {
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

    fn expectation(
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
    fn covariance(&mut self, cov: &ast::Expr) -> Option<(Covariance, Option<super::FamilyRange>)> {
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
                            format!("`{}` has {}: pick one kernel, e.g. `{}[…]`", field.name, super::plural(n, "index", "indices"), field.name),
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
