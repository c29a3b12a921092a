//! Definitions, and what the saddle point is left to determine.
//!
//! Every entry of every field (at the default `int` parameters) must be exactly one of:
//! fixed by a definition (`C[0] = …`), or an order parameter with a conjugate
//! (`conj Ct[l] of C[l]`), whose value the saddle point determines. Definitions must not
//! depend on each other in a cycle.

use std::collections::{BTreeMap, HashMap};

use crate::syntax::ast;
use crate::syntax::{Diagnostic, Span};

use super::ir::{self, Definition, Expr, ExprKind, Shape};
use super::{Checker, Symbol};

/// Largest number of field entries enumerated when checking coverage.
const MAX_ENTRIES: usize = 100_000;

type Entry = (ir::FieldId, Vec<i64>);

impl Checker {
    /// The field named by `ident`, reporting anything else.
    pub(super) fn resolve_field_name(&mut self, ident: &ast::Ident) -> Option<ir::FieldId> {
        match self.names.get(&ident.name).copied() {
            Some((Symbol::Field(id), _)) => Some(id),
            Some((Symbol::Conj(_), declared)) => {
                self.error(
                    Diagnostic::new(
                        "saddle::conjugate_of_conjugate",
                        format!("`{}` is itself a conjugate field", ident.name),
                        ident.span,
                        "a conjugate",
                    )
                    .with_related(declared, "declared here")
                    .with_help("conjugates belong to `kernel` or `mean` fields"),
                );
                None
            }
            Some((_, declared)) => {
                self.error(
                    Diagnostic::new(
                        "saddle::not_a_field",
                        format!("`{}` is not a kernel or mean field", ident.name),
                        ident.span,
                        "not a field",
                    )
                    .with_related(declared, "declared here")
                    .with_help("declare it with `kernel` or `mean`"),
                );
                None
            }
            None => {
                let candidates: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
                let mut diagnostic = Diagnostic::new(
                    "saddle::unknown_field",
                    format!("there is no field called `{}`", ident.name),
                    ident.span,
                    "unknown field",
                );
                diagnostic = match super::suggest::closest(
                    &ident.name,
                    candidates.iter().map(String::as_str),
                ) {
                    Some(best) => diagnostic.with_help(format!("did you mean `{best}`?")),
                    None if candidates.is_empty() => {
                        diagnostic.with_help("declare it first: `kernel C[l] for l in 0..=L`")
                    }
                    None => {
                        diagnostic.with_help(format!("the fields are: {}", candidates.join(", ")))
                    }
                };
                self.error(diagnostic);
                None
            }
        }
    }

    /// `C[0, s] = … for s in 1..=T`
    pub(super) fn definition(&mut self, d: &ast::Definition, span: Span) -> Option<Definition> {
        let field = match self.names.get(&d.target.name).copied() {
            Some((Symbol::Conj(_), declared)) => {
                self.error(
                    Diagnostic::new(
                        "saddle::defines_conjugate",
                        format!(
                            "`{}` is a conjugate field; the saddle point determines it",
                            d.target.name
                        ),
                        d.target.span,
                        "cannot be defined",
                    )
                    .with_related(declared, "declared here")
                    .with_help("define kernel or mean fields only"),
                );
                return None;
            }
            _ => self.resolve_field_name(&d.target)?,
        };
        let (bindings, pushed) = self.push_bindings(&d.ranges);
        let result = self.definition_in_scope(field, d, bindings, span);
        self.pop_bindings(pushed);
        result
    }

    fn definition_in_scope(
        &mut self,
        field: ir::FieldId,
        d: &ast::Definition,
        bindings: Vec<ir::IndexBinding>,
        span: Span,
    ) -> Option<Definition> {
        let declared = self.fields[field].clone();
        if d.indices.len() != declared.indices.len() {
            self.error(
                Diagnostic::new(
                    "saddle::index_count",
                    format!(
                        "`{}` takes {}, but {} given",
                        declared.name,
                        super::plural(declared.indices.len(), "index", "indices"),
                        super::plural_verb(d.indices.len())
                    ),
                    d.target.span,
                    super::plural(d.indices.len(), "index", "indices"),
                )
                .with_related(declared.span, "declared here"),
            );
            return None;
        }
        let mut indices = Vec::new();
        for (index, binding) in d.indices.iter().zip(&declared.indices) {
            let value = self.int_expr(index, "an index");
            if let Some(value) = &value {
                self.check_index_in_range(
                    value,
                    index.span,
                    &declared.name,
                    binding,
                    declared.span,
                );
            }
            indices.push(value);
        }
        let body = self.expr(&d.body);
        let (indices, body): (Vec<_>, _) = (indices.into_iter().collect::<Option<_>>()?, body?);
        if body.shape != declared.shape() {
            self.error(
                Diagnostic::new(
                    "saddle::definition_shape",
                    format!(
                        "`{}` is {}, but its definition is {}",
                        declared.name,
                        declared.shape(),
                        body.shape
                    ),
                    d.body.span,
                    format!("{}", body.shape),
                )
                .with_related(declared.span, format!("declared as {}", declared.shape()))
                .with_help(if declared.shape() == Shape::KERNEL {
                    "a kernel is P×P, e.g. `g0 / d * X X^T + gb0`"
                } else {
                    "a mean field is a P-vector"
                }),
            );
            return None;
        }
        Some(Definition {
            field,
            indices,
            bindings,
            body,
            span,
        })
    }

    /// Every field entry is defined once or conjugated, and definitions have no cycles.
    pub(super) fn check_coverage(&mut self, definitions: &[Definition]) {
        let mut defined: BTreeMap<Entry, usize> = BTreeMap::new();
        for (i, def) in definitions.iter().enumerate() {
            for env in self.assignments(&def.bindings) {
                let Some(entry) = self.entry(def.field, &def.indices, &env) else {
                    continue;
                };
                if let Some(&first) = defined.get(&entry) {
                    let name = self.entry_name(&entry);
                    self.error(
                        Diagnostic::new(
                            "saddle::defined_twice",
                            format!("`{name}` is defined twice"),
                            def.span,
                            "second definition",
                        )
                        .with_related(definitions[first].span, "first definition"),
                    );
                    return;
                }
                defined.insert(entry, i);
            }
        }
        let mut conjugated: BTreeMap<Entry, Span> = BTreeMap::new();
        for conj in &self.conjugates.clone() {
            let indices: Vec<ir::IndexExpr> = conj
                .indices
                .iter()
                .map(|b| ir::IndexExpr::atom(ir::IndexAtom::Var(b.var.clone())))
                .collect();
            for env in self.assignments(&conj.indices) {
                if let Some(entry) = self.entry(conj.of, &indices, &env) {
                    if let Some(&def) = defined.get(&entry) {
                        let name = self.entry_name(&entry);
                        self.error(
                            Diagnostic::new(
                                "saddle::defined_and_conjugated",
                                format!("`{name}` is fixed by a definition and also has a conjugate `{}`", conj.name),
                                definitions[def].span,
                                "defined here",
                            )
                            .with_related(conj.span, "conjugate declared here")
                            .with_help("an entry is either given (definition) or determined by the saddle point (conjugate), not both"),
                        );
                        return;
                    }
                    conjugated.insert(entry, conj.span);
                }
            }
        }
        for (id, field) in self.fields.clone().iter().enumerate() {
            let vars: Vec<ir::IndexExpr> = field
                .indices
                .iter()
                .map(|b| ir::IndexExpr::atom(ir::IndexAtom::Var(b.var.clone())))
                .collect();
            for env in self.assignments(&field.indices) {
                let Some(entry) = self.entry(id, &vars, &env) else {
                    continue;
                };
                if !defined.contains_key(&entry) && !conjugated.contains_key(&entry) {
                    let name = self.entry_name(&entry);
                    self.error(
                        Diagnostic::new(
                            "saddle::undetermined_entry",
                            format!("`{name}` is neither defined nor given a conjugate, so nothing determines it"),
                            field.span,
                            "declared here",
                        )
                        .with_help(format!("define it (`{name} = …`) or extend the range of its conjugate")),
                    );
                    break;
                }
            }
        }
        self.check_cycles(definitions, &defined);
    }

    fn check_cycles(&mut self, definitions: &[Definition], defined: &BTreeMap<Entry, usize>) {
        let mut edges: BTreeMap<Entry, Vec<Entry>> = BTreeMap::new();
        for def in definitions {
            for env in self.assignments(&def.bindings) {
                let Some(entry) = self.entry(def.field, &def.indices, &env) else {
                    continue;
                };
                let mut refs = Vec::new();
                self.field_references(&def.body, &mut env.clone(), &mut refs);
                edges.insert(
                    entry,
                    refs.into_iter()
                        .filter(|r| defined.contains_key(r))
                        .collect(),
                );
            }
        }
        // Depth-first search with colours: 1 = on the stack, 2 = done.
        let mut colour: HashMap<Entry, u8> = HashMap::new();
        for start in edges.keys() {
            let mut path = Vec::new();
            if let Some(cycle) = dfs(start, &edges, &mut colour, &mut path) {
                let names: Vec<String> = cycle.iter().map(|e| self.entry_name(e)).collect();
                let def = defined
                    .get(&cycle[0])
                    .map_or(Span::default(), |&i| definitions[i].span);
                self.error(
                    Diagnostic::new(
                        "saddle::definition_cycle",
                        format!(
                            "the definitions depend on each other in a cycle: {}",
                            names.join(" → ")
                        ),
                        def,
                        "part of the cycle",
                    )
                    .with_help("a definition may only use entries that do not depend on it"),
                );
                return;
            }
        }
    }

    /// All assignments of values to the bindings' variables (at default parameters).
    fn assignments(&self, bindings: &[ir::IndexBinding]) -> Vec<HashMap<String, i64>> {
        let mut out = vec![HashMap::new()];
        for binding in bindings {
            let mut next = Vec::new();
            for env in &out {
                let get =
                    |e: &ir::IndexExpr| e.eval(&|v| env.get(v).copied(), &|p| self.int_default(p));
                let (Some(lo), Some(hi)) = (get(&binding.range.lower), get(&binding.range.upper))
                else {
                    continue;
                };
                for value in lo..=hi {
                    if next.len() >= MAX_ENTRIES {
                        break;
                    }
                    let mut env = env.clone();
                    env.insert(binding.var.clone(), value);
                    next.push(env);
                }
            }
            out = next;
        }
        out
    }

    fn entry(
        &self,
        field: ir::FieldId,
        indices: &[ir::IndexExpr],
        env: &HashMap<String, i64>,
    ) -> Option<Entry> {
        let values: Option<Vec<i64>> = indices
            .iter()
            .map(|i| i.eval(&|v| env.get(v).copied(), &|p| self.int_default(p)))
            .collect();
        Some((field, values?))
    }

    fn entry_name(&self, (field, values): &Entry) -> String {
        let name = &self.fields[*field].name;
        if values.is_empty() {
            name.clone()
        } else {
            format!(
                "{name}[{}]",
                values
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }

    /// Field entries an expression reads, with sums unrolled at the default parameters.
    fn field_references(&self, e: &Expr, env: &mut HashMap<String, i64>, out: &mut Vec<Entry>) {
        match &e.kind {
            ExprKind::Field { field, indices } => {
                if let Some(entry) = self.entry(*field, indices, env) {
                    out.push(entry);
                }
            }
            ExprKind::Expectation {
                cov: ir::Covariance::Family(field),
                body,
                mean,
                ..
            } => {
                let f = &self.fields[*field];
                let vars: Vec<ir::IndexExpr> = f
                    .indices
                    .iter()
                    .map(|b| ir::IndexExpr::atom(ir::IndexAtom::Var(b.var.clone())))
                    .collect();
                for assignment in self.assignments(&f.indices) {
                    if let Some(entry) = self.entry(*field, &vars, &assignment) {
                        out.push(entry);
                    }
                }
                self.field_references(body, env, out);
                self.field_references(mean, env, out);
            }
            ExprKind::Sum { bindings, body } => {
                for assignment in self.assignments(bindings) {
                    let mut inner = env.clone();
                    inner.extend(assignment);
                    self.field_references(body, &mut inner, out);
                }
            }
            _ => for_each_child(e, |child| self.field_references(child, env, out)),
        }
    }
}

/// Calls `f` on every direct sub-expression.
pub(crate) fn for_each_child<'a>(e: &'a Expr, f: impl FnMut(&'a Expr)) {
    e.children().for_each(f);
}

fn dfs(
    node: &Entry,
    edges: &BTreeMap<Entry, Vec<Entry>>,
    colour: &mut HashMap<Entry, u8>,
    path: &mut Vec<Entry>,
) -> Option<Vec<Entry>> {
    match colour.get(node) {
        Some(2) => return None,
        Some(1) => {
            let start = path.iter().position(|e| e == node).unwrap_or(0);
            let mut cycle = path[start..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        _ => {}
    }
    colour.insert(node.clone(), 1);
    path.push(node.clone());
    for next in edges.get(node).into_iter().flatten() {
        if let Some(cycle) = dfs(next, edges, colour, path) {
            return Some(cycle);
        }
    }
    path.pop();
    colour.insert(node.clone(), 2);
    None
}
