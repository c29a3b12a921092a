//! Top-level declarations: the symbol table, parameters, data, fields, conjugates,
//! functions, definitions and the action, in an order that lets each refer to all others.
//!
//! One concept, one file: the declarations and the symbol table they build.

use crate::syntax::ast::{self, ItemKind};
use crate::syntax::{Diagnostic, Span};

use super::ir::{
    self, BUILTIN_NAMES, Conjugate, Field, Function, IndexBinding, Param, ParamType, Shape, Theory,
};
use super::{Checker, Symbol};

impl Checker {
    pub(super) fn check_file(&mut self, file: &ast::File) -> Option<Theory> {
        let mut theory_name: Option<(String, Span)> = None;
        let mut action: Option<&ast::ActionDecl> = None;
        let mut action_span = Span::default();
        // Pass 1: every name, so that declarations may refer to each other in any order.
        for item in &file.items {
            match &item.kind {
                ItemKind::Theory(name) => {
                    if let Some((_, first)) = &theory_name {
                        let first = *first;
                        self.error(
                            Diagnostic::new(
                                "saddle::duplicate_theory",
                                "a file describes one theory, but this is its second `theory` line",
                                item.span,
                                "second theory declaration",
                            )
                            .with_related(first, "first declared here")
                            .with_help("put each theory in its own .action file"),
                        );
                    } else {
                        theory_name = Some((name.name.clone(), item.span));
                        self.declare(&name.name, name.span, Symbol::Theory);
                    }
                }
                ItemKind::Param(p) => self.declare_param(p),
                ItemKind::Data(names) => self.declare_data(names, item.span),
                ItemKind::Field(f) => {
                    let id = self.fields.len();
                    if self.declare(&f.name.name, f.name.span, Symbol::Field(id)) {
                        self.fields.push(Field {
                            name: f.name.name.clone(),
                            kind: f.kind,
                            indices: Vec::new(),
                            span: f.name.span,
                        });
                    }
                }
                ItemKind::Function(f) => {
                    let id = self.functions.len();
                    if self.declare(&f.name.name, f.name.span, Symbol::Function(id)) {
                        self.function_arity.push(f.params.len());
                        self.function_calls.push(Vec::new());
                        let body = ir::Expr {
                            kind: ir::ExprKind::Number(0.0),
                            shape: Shape::SCALAR,
                            span: f.body.span,
                        };
                        let params = f.params.iter().map(|p| p.name.clone()).collect();
                        self.functions.push(Function {
                            name: f.name.name.clone(),
                            params,
                            body,
                            span: f.name.span,
                        });
                    }
                }
                ItemKind::Conj(c) => {
                    let id = self.conjugates.len();
                    if self.declare(&c.name.name, c.name.span, Symbol::Conj(id)) {
                        self.conjugates.push(Conjugate {
                            name: c.name.name.clone(),
                            of: usize::MAX,
                            indices: Vec::new(),
                            span: c.name.span,
                        });
                    }
                }
                ItemKind::Action(a) => {
                    if action.is_some() {
                        self.error(
                            Diagnostic::new(
                                "saddle::duplicate_action",
                                "a theory has one action, but this is its second",
                                item.span,
                                "second action",
                            )
                            .with_related(action_span, "first action")
                            .with_help("add the terms to the first action"),
                        );
                    } else {
                        action = Some(a);
                        action_span = item.span;
                        self.declare(&a.name.name, a.name.span, Symbol::Action);
                    }
                }
                ItemKind::Definition(_) => {}
            }
        }
        let end = file
            .items
            .last()
            .map_or(Span::default(), |i| Span::new(i.span.end, i.span.end));
        if theory_name.is_none() {
            let at = file
                .items
                .first()
                .map_or(end, |i| Span::new(i.span.start, i.span.start));
            self.error(
                Diagnostic::new(
                    "saddle::missing_theory",
                    "the file has no `theory NAME` line",
                    at,
                    "expected `theory NAME` here",
                )
                .with_help("start the file with `theory my_network`"),
            );
        }
        if action.is_none() {
            self.error(
                Diagnostic::new(
                    "saddle::missing_action",
                    "the theory has no action",
                    end,
                    "expected `action S = …`",
                )
                .with_help("write the large-deviation action: `action S = …`"),
            );
        }
        // Pass 2: ranges of fields and conjugates (they need the integer parameters).
        let mut field_index = 0;
        let mut conj_index = 0;
        for item in &file.items {
            match &item.kind {
                ItemKind::Field(f)
                    if self.names.get(&f.name.name).map(|s| s.0)
                        == Some(Symbol::Field(field_index)) =>
                {
                    let indices = self.index_declaration(&f.name, &f.indices, &f.ranges);
                    self.fields[field_index].indices = indices;
                    field_index += 1;
                }
                ItemKind::Conj(c)
                    if self.names.get(&c.name.name).map(|s| s.0)
                        == Some(Symbol::Conj(conj_index)) =>
                {
                    self.conjugate_declaration(conj_index, c);
                    conj_index += 1;
                }
                _ => {}
            }
        }
        // Pass 3: bodies.
        let mut function_index = 0;
        let mut definitions = Vec::new();
        for item in &file.items {
            match &item.kind {
                ItemKind::Function(f)
                    if self.names.get(&f.name.name).map(|s| s.0)
                        == Some(Symbol::Function(function_index)) =>
                {
                    self.function_body(function_index, f);
                    function_index += 1;
                }
                ItemKind::Definition(d) => {
                    if let Some(def) = self.definition(d, item.span) {
                        definitions.push(def);
                    }
                }
                _ => {}
            }
        }
        self.check_recursion();
        let action_body = action.and_then(|a| self.action_body(a));
        if self.diagnostics.is_empty() {
            self.check_coverage(&definitions);
        }
        let (name, _) = theory_name?;
        let action = ir::Action {
            name: action?.name.name.clone(),
            body: action_body?,
        };
        Some(Theory {
            name,
            params: std::mem::take(&mut self.params),
            functions: std::mem::take(&mut self.functions),
            data: std::mem::take(&mut self.data),
            fields: std::mem::take(&mut self.fields),
            conjugates: std::mem::take(&mut self.conjugates),
            definitions,
            action,
            syntax: file.clone(),
        })
    }

    /// Enters a name in the symbol table; reports clashes. Returns whether it was new.
    pub(super) fn declare(&mut self, name: &str, span: Span, symbol: Symbol) -> bool {
        if let Some((_, meaning)) = BUILTIN_NAMES.iter().find(|(n, _)| *n == name) {
            self.error(
                Diagnostic::new(
                    "saddle::builtin_redeclared",
                    format!("`{name}` is {meaning} and cannot be declared"),
                    span,
                    "built-in name",
                )
                .with_help(format!("choose another name than `{name}`")),
            );
            return false;
        }
        if ir::Builtin::from_name(name).is_some() {
            self.error(
                Diagnostic::new(
                    "saddle::builtin_redeclared",
                    format!("`{name}` is a built-in function and cannot be declared"),
                    span,
                    "built-in name",
                )
                .with_help(format!("choose another name than `{name}`")),
            );
            return false;
        }
        if let Some((_, first)) = self.names.get(name) {
            let first = *first;
            self.error(
                Diagnostic::new(
                    "saddle::duplicate_name",
                    format!("`{name}` is declared twice"),
                    span,
                    "declared again here",
                )
                .with_related(first, "first declared here")
                .with_help("every parameter, field, function and data matrix needs its own name"),
            );
            return false;
        }
        self.names.insert(name.to_string(), (symbol, span));
        true
    }

    fn declare_param(&mut self, p: &ast::ParamDecl) {
        let ty = p.declared_type.unwrap_or(ParamType::Real);
        if ty == ParamType::Int
            && p.default.value.fract() == 0.0
            && super::bind::value_problem(ty, p.default.value).is_some()
        {
            self.error(
                Diagnostic::new(
                    "saddle::int_param_out_of_range",
                    format!(
                        "`{}` is an `int` parameter, but its default `{}` is outside 0..={}",
                        p.name.name,
                        p.default.value,
                        super::MAX_INT_PARAM
                    ),
                    p.default.span,
                    "out of range",
                )
                .with_help(
                    "depths and numbers of time steps are bounded by 10000: unrolled sums and \
                     kernel families beyond it would not fit in memory",
                ),
            );
        }
        if ty == ParamType::Int && p.default.value.fract() != 0.0 {
            self.error(
                Diagnostic::new(
                    "saddle::int_param_not_integer",
                    format!(
                        "`{}` is an `int` parameter, but its default `{}` is not an integer",
                        p.name.name, p.default.value
                    ),
                    p.default.span,
                    "not an integer",
                )
                .with_help("give an integer default, or drop `: int` for a real parameter"),
            );
        }
        let id = self.params.len();
        if self.declare(&p.name.name, p.name.span, Symbol::Param(id)) {
            self.params.push(Param {
                name: p.name.name.clone(),
                ty,
                default: p.default.value,
                span: p.name.span,
            });
        }
    }

    fn declare_data(&mut self, names: &[ast::Ident], span: Span) {
        if let Some(first) = self.data_declared {
            self.error(
                Diagnostic::new(
                    "saddle::duplicate_data",
                    "the data are declared twice",
                    span,
                    "second `data` line",
                )
                .with_related(first, "first declared here")
                .with_help("declare inputs and targets together: `data X, Y`"),
            );
            return;
        }
        self.data_declared = Some(span);
        if names.len() > 2 {
            self.error(
                Diagnostic::new(
                    "saddle::too_many_data",
                    format!(
                        "`data` takes the inputs and the targets, but {} names are given",
                        names.len()
                    ),
                    names[2].span.to(names[names.len() - 1].span),
                    "not expected",
                )
                .with_help("write `data X, Y` (inputs P×d, targets P×D) or `data X`"),
            );
        }
        if let Some(x) = names.first()
            && self.declare(&x.name, x.span, Symbol::Data(ir::DataRole::Inputs))
        {
            self.data.inputs = Some(x.name.clone());
        }
        if let Some(y) = names.get(1)
            && self.declare(&y.name, y.span, Symbol::Data(ir::DataRole::Targets))
        {
            self.data.targets = Some(y.name.clone());
        }
    }

    fn conjugate_declaration(&mut self, id: usize, c: &ast::ConjDecl) {
        let indices = self.index_declaration(&c.name, &c.indices, &c.ranges);
        self.conjugates[id].indices = indices.clone();
        let Some(field_id) = self.resolve_field_name(&c.of) else {
            return;
        };
        self.conjugates[id].of = field_id;
        if let Some(other) = self.conjugates[..id].iter().find(|o| o.of == field_id) {
            let other_span = other.span;
            self.error(
                Diagnostic::new(
                    "saddle::duplicate_conjugate",
                    format!("`{}` already has a conjugate", c.of.name),
                    c.of.span,
                    "second conjugate of the same field",
                )
                .with_related(other_span, "first conjugate")
                .with_help("declare one conjugate per field, covering all the indices it needs"),
            );
        }
        let field = self.fields[field_id].clone();
        let written: Vec<&str> = c.of_indices.iter().map(|i| i.name.as_str()).collect();
        let own: Vec<&str> = c.indices.iter().map(|i| i.name.as_str()).collect();
        if field.indices.len() != c.indices.len() || written != own {
            let at = c.of_indices.first().map_or(c.of.span, |f| {
                f.span.to(c.of_indices[c.of_indices.len() - 1].span)
            });
            self.error(
                Diagnostic::new(
                    "saddle::conjugate_indices",
                    format!(
                        "`{}` has {} [{}], so its conjugate must be written `{}[{}] of {}[{}]`",
                        field.name,
                        super::plural(field.indices.len(), "index", "indices"),
                        field
                            .indices
                            .iter()
                            .map(|b| b.var.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        c.name.name,
                        own.join(", "),
                        field.name,
                        own.join(", ")
                    ),
                    at,
                    "indices do not match",
                )
                .with_related(field.span, "field declared here"),
            );
            return;
        }
        let defaults: Vec<i64> = (0..self.params.len())
            .map(|p| self.int_default(p))
            .collect();
        for (conj_binding, (field_binding, ident)) in
            indices.iter().zip(field.indices.iter().zip(&c.indices))
        {
            let get =
                |r: &ir::IndexExpr| r.eval(&|_| None, &|p| defaults.get(p).copied().unwrap_or(0));
            let (Some(lo), Some(hi), Some(flo), Some(fhi)) = (
                get(&conj_binding.range.lower),
                get(&conj_binding.range.upper),
                get(&field_binding.range.lower),
                get(&field_binding.range.upper),
            ) else {
                continue;
            };
            if lo < flo || hi > fhi {
                let span = c
                    .ranges
                    .iter()
                    .find(|b| b.var.name == ident.name)
                    .map_or(c.name.span, |b| b.lower.span.to(b.upper.span));
                self.error(
                    Diagnostic::new(
                        "saddle::conjugate_out_of_range",
                        format!(
                            "`{}` ranges over {} = {lo}..={hi}, but `{}` is only defined for {} = {flo}..={fhi}",
                            c.name.name, ident.name, field.name, field_binding.var
                        ),
                        span,
                        "outside the field's range",
                    )
                    .with_related(field.span, "field declared here")
                    .with_help("a conjugate can only exist where its field does"),
                );
            }
        }
    }

    /// Index variables of a field or conjugate with the ranges from its `for` clause.
    fn index_declaration(
        &mut self,
        name: &ast::Ident,
        indices: &[ast::Ident],
        ranges: &[ast::Binding],
    ) -> Vec<IndexBinding> {
        let mut out = Vec::new();
        for (i, index) in indices.iter().enumerate() {
            if indices[..i].iter().any(|o| o.name == index.name) {
                self.error(Diagnostic::new(
                    "saddle::duplicate_index",
                    format!(
                        "the index `{}` appears twice in `{}`",
                        index.name, name.name
                    ),
                    index.span,
                    "repeated index",
                ));
                continue;
            }
            match ranges.iter().find(|b| b.var.name == index.name) {
                Some(binding) => {
                    let range = self
                        .index_range(binding)
                        .unwrap_or_else(super::indices::unbounded_range);
                    out.push(IndexBinding {
                        var: index.name.clone(),
                        range,
                    });
                }
                None => {
                    out.push(IndexBinding {
                        var: index.name.clone(),
                        range: super::indices::unbounded_range(),
                    });
                    self.error(
                        Diagnostic::new(
                            "saddle::missing_range",
                            format!("the index `{}` of `{}` has no range", index.name, name.name),
                            index.span,
                            "needs a range",
                        )
                        .with_help(format!(
                            "add `for {} in 0..=L` (with your own bounds)",
                            index.name
                        )),
                    )
                }
            }
        }
        for binding in ranges {
            if !indices.iter().any(|i| i.name == binding.var.name) {
                self.error(
                    Diagnostic::new(
                        "saddle::unused_range",
                        format!("`{}` is not an index of `{}`", binding.var.name, name.name),
                        binding.var.span,
                        "not among the indices in brackets",
                    )
                    .with_help(format!(
                        "the indices of `{}` are [{}]",
                        name.name,
                        indices
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
        }
        out
    }

    fn function_body(&mut self, id: usize, f: &ast::FunctionDef) {
        for (i, p) in f.params.iter().enumerate() {
            if f.params[..i].iter().any(|o| o.name == p.name) {
                self.error(Diagnostic::new(
                    "saddle::duplicate_index",
                    format!(
                        "the parameter `{}` appears twice in `{}`",
                        p.name, f.name.name
                    ),
                    p.span,
                    "repeated",
                ));
            }
        }
        self.function_params = f.params.iter().map(|p| p.name.clone()).collect();
        self.current_function = Some(id);
        let body = self.expr(&f.body);
        self.function_params.clear();
        self.current_function = None;
        if let Some(body) = body {
            if !body.shape.is_scalar() {
                self.error(Diagnostic::new(
                    "saddle::function_not_scalar",
                    format!(
                        "the function `{}` must return a scalar, but its body is {}",
                        f.name.name, body.shape
                    ),
                    f.body.span,
                    format!("{}", body.shape),
                ));
            }
            self.functions[id].body = body;
        }
    }

    fn action_body(&mut self, a: &ast::ActionDecl) -> Option<ir::Expr> {
        let body = self.expr(&a.body)?;
        if !body.shape.is_scalar() {
            self.error(
                Diagnostic::new(
                    "saddle::action_not_scalar",
                    format!("the action must be a scalar, but this is {}", body.shape),
                    a.body.span,
                    format!("{}", body.shape),
                )
                .with_help("take a trace `tr(…)` or a quadratic form `v^T A v`"),
            );
            return None;
        }
        Some(body)
    }

    /// Reports user functions that call themselves, directly or through others.
    fn check_recursion(&mut self) {
        let n = self.function_calls.len();
        for start in 0..n {
            let mut stack = vec![start];
            let mut seen = vec![false; n];
            while let Some(f) = stack.pop() {
                for &(callee, span) in &self.function_calls[f].clone() {
                    if callee == start {
                        let name = self.functions[start].name.clone();
                        self.error(
                            Diagnostic::new(
                                "saddle::recursive_function",
                                format!("the function `{name}` calls itself"),
                                span,
                                "recursive call",
                            )
                            .with_help(
                                "functions are formulas, not programs: write the expression out",
                            ),
                        );
                        return;
                    }
                    if !seen[callee] {
                        seen[callee] = true;
                        stack.push(callee);
                    }
                }
            }
        }
    }
}
