//! Pair reduction: a P×P (or P-vector) right-hand side as one scalar formula per pattern
//! pair (α, β) (or pattern α), in the e-graph language.
//!
//! Entries are symbols: `C[1]_ab` = C⁽¹⁾_αβ, `C[1]_aa`, `C[1]_bb`, `m[2]_a`; matrices that
//! depend on the data only (`g0 / d * X X^T`) become *given* matrices `G0_ab`, … computed
//! once. Every entry of ⟨f(h) g(h)ᵀ⟩ only involves (h_α, h_β), so a Gaussian expectation
//! becomes `(E2 f g μ_α μ_β K_αα K_ββ K_αβ)` with f, g written in the variable `x`
//! (THEORY.md §2: the map depends on C_αα, C_ββ, C_αβ only); a vector ⟨f(h)⟩ becomes
//! `(E1 f μ_α K_αα)`. For a time family h\[t\] the blocks are C[t, s].
//!
//! One concept, one file: pair reduction of one right-hand side.

use egg::{Id, Language, RecExpr, Symbol};

use crate::check::ir::{
    Builtin, Callee, Covariance, Dim, Expr, ExprKind, FieldKind, IndexExpr, MatrixFunction, Shape,
    Size, Theory,
};
use crate::symbolic::lang::{Constant, Math};

use super::DeriveError;

/// Which entry of a value is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Entry (α, β) of a P×P matrix.
    Pair,
    /// Entry (α, α).
    FirstDiagonal,
    /// Entry (β, β).
    SecondDiagonal,
    /// Entry α of a P-vector.
    First,
    /// Entry β of a P-vector.
    Second,
}

impl Position {
    fn suffix(self) -> &'static str {
        match self {
            Position::Pair => "ab",
            Position::FirstDiagonal => "aa",
            Position::SecondDiagonal => "bb",
            Position::First => "a",
            Position::Second => "b",
        }
    }

    /// The position of the same entry in a matrix whose row (column) pattern is this one.
    fn diagonal(self) -> Position {
        match self {
            Position::First | Position::FirstDiagonal => Position::FirstDiagonal,
            _ => Position::SecondDiagonal,
        }
    }
}

/// A scalar formula per entry, with the data-only matrices it needs.
#[derive(Debug, Clone)]
pub struct EntryFormula {
    /// The formula.
    pub expr: RecExpr<Math>,
    /// Data-only matrices, named `G0`, `G1`, … in the formula.
    pub given: Vec<Expr>,
}

/// Lowers `e` at `position` (`Pair` for kernels, `First` for mean fields).
pub fn entry_formula(
    theory: &Theory,
    e: &Expr,
    position: Position,
) -> Result<EntryFormula, DeriveError> {
    let mut lowering = Lowering {
        theory,
        expr: RecExpr::default(),
        given: Vec::new(),
    };
    lowering.lower(e, position, &[])?;
    Ok(EntryFormula {
        expr: lowering.expr,
        given: lowering.given,
    })
}

/// The symbol of a field entry at a position: `C[1]_ab`, `m[2]_a`.
pub fn entry_symbol(name: &str, indices: &[i64], position: Position) -> String {
    let idx = if indices.is_empty() {
        String::new()
    } else {
        format!(
            "[{}]",
            indices
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    format!("{name}{idx}_{}", position.suffix())
}

/// A random variable bound by an enclosing expectation: name, and which pattern it stands at.
#[derive(Clone)]
struct RandomBinding<'a> {
    name: &'a str,
}

struct Lowering<'t> {
    theory: &'t Theory,
    expr: RecExpr<Math>,
    given: Vec<Expr>,
}

impl Lowering<'_> {
    fn add(&mut self, node: Math) -> Id {
        self.expr.add(node)
    }

    fn symbol(&mut self, name: &str) -> Id {
        self.add(Math::Symbol(Symbol::from(name)))
    }

    fn number(&mut self, v: f64) -> Result<Id, DeriveError> {
        let c = Constant::from_decimal(v.abs()).ok_or_else(|| {
            DeriveError::Unsupported(format!("the number {v:e} has no exact rational form"))
        })?;
        let id = self.add(Math::Num(c));
        Ok(if v < 0.0 { self.add(Math::Neg(id)) } else { id })
    }

    fn lower(
        &mut self,
        e: &Expr,
        pos: Position,
        random: &[RandomBinding<'_>],
    ) -> Result<Id, DeriveError> {
        match &e.kind {
            ExprKind::Number(v) => self.number(*v),
            ExprKind::Pi => Ok(self.add(Math::Pi)),
            ExprKind::Param(id) => Ok(self.symbol(&self.theory.params[*id].name.clone())),
            ExprKind::Size(s) => Ok(self.symbol(match s {
                Size::Patterns => "P",
                Size::Inputs => "d",
                Size::Outputs => "D",
            })),
            ExprKind::Ones => self.number(1.0),
            ExprKind::Identity => match pos {
                Position::Pair => Ok(self.symbol("delta_ab")),
                _ => self.number(1.0),
            },
            ExprKind::Field { field, indices } => {
                let f = &self.theory.fields[*field];
                let pos = match (f.kind, pos) {
                    (FieldKind::Mean, Position::FirstDiagonal) => Position::First,
                    (FieldKind::Mean, Position::SecondDiagonal) => Position::Second,
                    (_, p) => p,
                };
                let name = entry_symbol(&f.name, &constants(indices), pos);
                Ok(self.symbol(&name))
            }
            ExprKind::RandomVar { name, time } => {
                if !random.iter().any(|r| r.name == name) {
                    return Err(DeriveError::Unsupported(format!(
                        "the random variable `{name}` is used outside its expectation"
                    )));
                }
                let t = time
                    .as_ref()
                    .map(|t| format!("[{}]", t.constant))
                    .unwrap_or_default();
                let which = match pos {
                    Position::First | Position::FirstDiagonal | Position::Pair => "a",
                    _ => "b",
                };
                Ok(self.symbol(&format!("{name}{t}_{which}")))
            }
            ExprKind::Whitened { name, .. } => Err(DeriveError::Unsupported(format!(
                "`{name}` whitened by the covariance of a whole time family does not reduce to one or two patterns"
            ))),
            ExprKind::FunctionArg(_) => Err(DeriveError::Unsupported(
                "a function argument outside its function".into(),
            )),
            ExprKind::Neg(a) => {
                let a = self.lower(a, pos, random)?;
                Ok(self.add(Math::Neg(a)))
            }
            ExprKind::Add(a, b) | ExprKind::Sub(a, b) => {
                let x = self.lower(a, pos, random)?;
                let y = self.lower(b, pos, random)?;
                Ok(self.add(if matches!(e.kind, ExprKind::Add(..)) {
                    Math::Add([x, y])
                } else {
                    Math::Sub([x, y])
                }))
            }
            ExprKind::Div(a, b) => {
                let x = self.lower(a, pos, random)?;
                let y = self.lower(b, Position::Pair, random)?;
                Ok(self.add(Math::Div([x, y])))
            }
            ExprKind::Pow(a, b) => {
                let x = self.lower(a, pos, random)?;
                let y = self.lower(b, pos, random)?;
                Ok(self.add(Math::Pow([x, y])))
            }
            ExprKind::Mul(a, b) if a.shape.is_scalar() || b.shape.is_scalar() => {
                let x = self.lower(a, pos, random)?;
                let y = self.lower(b, pos, random)?;
                Ok(self.add(Math::Mul([x, y])))
            }
            _ if is_data_only(e) && !e.shape.is_scalar() => {
                let index = match self.given.iter().position(|g| g == e) {
                    Some(i) => i,
                    None => {
                        self.given.push(e.clone());
                        self.given.len() - 1
                    }
                };
                Ok(self.symbol(&format!("G{index}_{}", pos.suffix())))
            }
            ExprKind::Mul(a, b) if a.shape.cols == Dim::One && b.shape.rows == Dim::One => {
                // an outer product u vᵀ: entry (α, β) is u_α v_β
                let (first, second) = match pos {
                    Position::Pair => (Position::First, Position::Second),
                    Position::FirstDiagonal => (Position::First, Position::First),
                    _ => (Position::Second, Position::Second),
                };
                let x = self.lower(a, first, random)?;
                let y = self.lower(&strip_transpose(b), second, random)?;
                Ok(self.add(Math::Mul([x, y])))
            }
            ExprKind::Apply { callee, args } if args.len() == 1 => {
                let x = self.lower(&args[0], pos, random)?;
                self.apply(*callee, x)
            }
            ExprKind::Expectation {
                var,
                body,
                mean,
                cov,
            } => self.expectation(var, body, mean, cov, pos, e.shape),
            ExprKind::Transpose(a) if e.shape.is_scalar() => self.lower(a, pos, random),
            _ => Err(DeriveError::Unsupported(format!(
                "no entry-wise form for this {} expression: {:?}",
                shape_words(e.shape),
                short(&e.kind)
            ))),
        }
    }

    fn apply(&mut self, callee: Callee, x: Id) -> Result<Id, DeriveError> {
        match callee {
            Callee::Builtin(b) => Ok(self.add(builtin_node(b, x))),
            Callee::User(id) => {
                let function = self.theory.functions[id].clone();
                self.inline(&function.body, x)
            }
        }
    }

    /// A user function's body with its argument replaced by `arg`.
    fn inline(&mut self, body: &Expr, arg: Id) -> Result<Id, DeriveError> {
        match &body.kind {
            ExprKind::FunctionArg(0) => Ok(arg),
            ExprKind::Neg(a) => {
                let a = self.inline(a, arg)?;
                Ok(self.add(Math::Neg(a)))
            }
            ExprKind::Add(a, b)
            | ExprKind::Sub(a, b)
            | ExprKind::Mul(a, b)
            | ExprKind::Div(a, b)
            | ExprKind::Pow(a, b) => {
                let x = self.inline(a, arg)?;
                let y = self.inline(b, arg)?;
                Ok(self.add(match body.kind {
                    ExprKind::Add(..) => Math::Add([x, y]),
                    ExprKind::Sub(..) => Math::Sub([x, y]),
                    ExprKind::Mul(..) => Math::Mul([x, y]),
                    ExprKind::Div(..) => Math::Div([x, y]),
                    _ => Math::Pow([x, y]),
                }))
            }
            ExprKind::Apply { callee, args } if args.len() == 1 => {
                let x = self.inline(&args[0], arg)?;
                self.apply(*callee, x)
            }
            _ => self.lower(body, Position::Pair, &[]),
        }
    }

    fn expectation(
        &mut self,
        var: &str,
        body: &Expr,
        mean: &Expr,
        cov: &Covariance,
        pos: Position,
        shape: Shape,
    ) -> Result<Id, DeriveError> {
        // Lower the integrand into a scratch expression, then split it into f(h_α) g(h_β).
        let mut inner = Lowering {
            theory: self.theory,
            expr: RecExpr::default(),
            given: std::mem::take(&mut self.given),
        };
        let root = inner.lower(body, pos, &[RandomBinding { name: var }])?;
        self.given = inner.given;
        let integrand = extract(&inner.expr, root);
        let (constant, first, second) = split_factors(&integrand, var)?;
        let constant = constant.map(|c| self.graft(&c));
        let mut moments = |slot: &Option<(String, Option<i64>, RecExpr<Math>)>,
                           at: Position|
         -> Result<Option<(Id, Id, Option<i64>)>, DeriveError> {
            let Some((_, time, _)) = slot else {
                return Ok(None);
            };
            let m = self.lower(mean, at, &[])?;
            let v = self.covariance_entry(cov, at.diagonal(), *time, *time)?;
            Ok(Some((m, v, *time)))
        };
        let first_pos = if matches!(pos, Position::Second | Position::SecondDiagonal) {
            Position::Second
        } else {
            Position::First
        };
        let a = moments(&first, first_pos)?;
        let b = moments(&second, Position::Second)?;
        let result = match (&first, &second, a, b) {
            (Some((_, _, f)), Some((_, _, g)), Some((ma, va, ta)), Some((mb, vb, tb)))
                if shape != Shape::SCALAR || pos == Position::Pair =>
            {
                let c = self.covariance_entry(cov, Position::Pair, ta, tb)?;
                let f = self.graft(f);
                let g = self.graft(g);
                self.add(Math::Expect2([f, g, ma, mb, va, vb, c]))
            }
            (Some((_, _, f)), None, Some((m, v, _)), _)
            | (None, Some((_, _, f)), None, Some((m, v, _))) => {
                let f = self.graft(f);
                self.add(Math::Expect1([f, m, v]))
            }
            _ => {
                return Err(DeriveError::Unsupported(
                    "an expectation whose integrand does not reduce to one or two patterns".into(),
                ));
            }
        };
        Ok(match constant {
            Some(c) => self.add(Math::Mul([c, result])),
            None => result,
        })
    }

    /// The entry of the covariance (or of the family block C[t, s]) at a position.
    fn covariance_entry(
        &mut self,
        cov: &Covariance,
        pos: Position,
        t: Option<i64>,
        s: Option<i64>,
    ) -> Result<Id, DeriveError> {
        match cov {
            Covariance::Matrix(c) => self.lower(c, pos, &[]),
            Covariance::Family(field) => {
                let (Some(t), Some(s)) = (t, s) else {
                    return Err(DeriveError::Unsupported(
                        "a time family used without a time index".into(),
                    ));
                };
                let name = self.theory.fields[*field].name.clone();
                Ok(self.symbol(&entry_symbol(&name, &[t, s], pos)))
            }
        }
    }

    /// Copies a standalone expression into this one; returns its root.
    fn graft(&mut self, e: &RecExpr<Math>) -> Id {
        let mut map = Vec::with_capacity(e.as_ref().len());
        for node in e.as_ref() {
            let node = node.clone().map_children(|c| map[usize::from(c)]);
            map.push(self.add(node));
        }
        map.last()
            .copied()
            .unwrap_or_else(|| self.add(Math::Num(Constant::int(0))))
    }
}

fn constants(indices: &[IndexExpr]) -> Vec<i64> {
    indices.iter().map(|i| i.constant).collect()
}

fn strip_transpose(e: &Expr) -> Expr {
    match &e.kind {
        ExprKind::Transpose(inner) => (**inner).clone(),
        _ => e.clone(),
    }
}

fn builtin_node(b: Builtin, x: Id) -> Math {
    match b {
        Builtin::Exp => Math::Exp(x),
        Builtin::Ln => Math::Ln(x),
        Builtin::Sqrt => Math::Sqrt(x),
        Builtin::Erf => Math::Erf(x),
        Builtin::Tanh => Math::Tanh(x),
        Builtin::Asin => Math::Asin(x),
        Builtin::Acos => Math::Acos(x),
        Builtin::Atan => Math::Atan(x),
        Builtin::Abs => Math::Abs(x),
        Builtin::Sign => Math::Sign(x),
        Builtin::Step => Math::Step(x),
        Builtin::Relu => Math::Relu(x),
    }
}

/// Whether an expression depends on the data and parameters only (no field, conjugate or
/// random variable): such matrices are computed once, numerically.
pub fn is_data_only(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Field { .. }
        | ExprKind::Conjugate { .. }
        | ExprKind::RandomVar { .. }
        | ExprKind::Whitened { .. }
        | ExprKind::Expectation { .. } => false,
        ExprKind::Matrix(
            MatrixFunction::Inverse | MatrixFunction::LogDet | MatrixFunction::Trace,
            a,
        ) => is_data_only(a),
        _ => {
            let mut ok = true;
            crate::check::for_each_child(e, |c| ok = ok && is_data_only(c));
            ok
        }
    }
}

fn shape_words(s: Shape) -> String {
    s.to_string()
}

fn short(kind: &ExprKind) -> String {
    let text = format!("{kind:?}");
    text.chars().take(80).collect()
}

/// The sub-expression rooted at `root` as a standalone expression.
fn extract(e: &RecExpr<Math>, root: Id) -> RecExpr<Math> {
    let nodes = e.as_ref();
    let mut out = RecExpr::default();
    let mut map = std::collections::HashMap::new();
    fn copy(
        nodes: &[Math],
        id: Id,
        out: &mut RecExpr<Math>,
        map: &mut std::collections::HashMap<Id, Id>,
    ) -> Id {
        if let Some(&m) = map.get(&id) {
            return m;
        }
        let node = nodes[usize::from(id)]
            .clone()
            .map_children(|c| copy(nodes, c, out, map));
        let new = out.add(node);
        map.insert(id, new);
        new
    }
    copy(nodes, root, &mut out, &mut map);
    out
}

/// Splits a product into (constant part, factor in h_α, factor in h_β); each factor carries
/// the random symbol's name and time.
#[allow(clippy::type_complexity)]
fn split_factors(
    e: &RecExpr<Math>,
    var: &str,
) -> Result<
    (
        Option<RecExpr<Math>>,
        Option<(String, Option<i64>, RecExpr<Math>)>,
        Option<(String, Option<i64>, RecExpr<Math>)>,
    ),
    DeriveError,
> {
    let nodes = e.as_ref();
    let root = Id::from(nodes.len() - 1);
    let mut factors = Vec::new();
    fn collect(nodes: &[Math], id: Id, out: &mut Vec<Id>) {
        match &nodes[usize::from(id)] {
            Math::Mul([a, b]) => {
                collect(nodes, *a, out);
                collect(nodes, *b, out);
            }
            _ => out.push(id),
        }
    }
    collect(nodes, root, &mut factors);
    let mut constant: Vec<RecExpr<Math>> = Vec::new();
    let mut first: Vec<(String, RecExpr<Math>)> = Vec::new();
    let mut second: Vec<(String, RecExpr<Math>)> = Vec::new();
    for f in factors {
        let sub = extract(e, f);
        let symbols = random_symbols(&sub, var);
        match symbols.as_slice() {
            [] => constant.push(sub),
            [s] if s.ends_with("_a") => first.push((s.clone(), sub)),
            [s] if s.ends_with("_b") => second.push((s.clone(), sub)),
            _ => {
                return Err(DeriveError::Unsupported(
                    "an integrand that couples two patterns inside one function".into(),
                ));
            }
        }
    }
    let combine = |parts: Vec<RecExpr<Math>>| -> Option<RecExpr<Math>> {
        let mut iter = parts.into_iter();
        let first = iter.next()?;
        Some(iter.fold(first, |acc, next| {
            let mut out = RecExpr::default();
            let a = graft_into(&mut out, &acc);
            let b = graft_into(&mut out, &next);
            out.add(Math::Mul([a, b]));
            out
        }))
    };
    let side = |parts: Vec<(String, RecExpr<Math>)>| -> Result<Option<(String, Option<i64>, RecExpr<Math>)>, DeriveError> {
        let Some(symbol) = parts.first().map(|p| p.0.clone()) else { return Ok(None) };
        if parts.iter().any(|p| p.0 != symbol) {
            return Err(DeriveError::Unsupported("one pattern's factor mixes two time steps".into()));
        }
        let time = symbol.split_once('[').and_then(|(_, rest)| rest.split_once(']')).and_then(|(t, _)| t.parse().ok());
        let product = combine(parts.into_iter().map(|p| p.1).collect()).map(|p| rename_symbol(&p, &symbol, "x"));
        Ok(product.map(|p| (symbol, time, p)))
    };
    Ok((combine(constant), side(first)?, side(second)?))
}

fn graft_into(out: &mut RecExpr<Math>, e: &RecExpr<Math>) -> Id {
    let mut map = Vec::with_capacity(e.as_ref().len());
    for node in e.as_ref() {
        let node = node.clone().map_children(|c| map[usize::from(c)]);
        map.push(out.add(node));
    }
    *map.last().unwrap_or(&Id::from(0))
}

/// Names of the random symbols (`h_a`, `h[2]_b`) of variable `var` in an expression.
fn random_symbols(e: &RecExpr<Math>, var: &str) -> Vec<String> {
    let mut out: Vec<String> = e
        .as_ref()
        .iter()
        .filter_map(|n| match n {
            Math::Symbol(s) if is_random_symbol(s.as_str(), var) => Some(s.to_string()),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn is_random_symbol(s: &str, var: &str) -> bool {
    s.strip_prefix(var).is_some_and(|rest| {
        rest == "_a"
            || rest == "_b"
            || (rest.starts_with('[') && (rest.ends_with("]_a") || rest.ends_with("]_b")))
    })
}

fn rename_symbol(e: &RecExpr<Math>, from: &str, to: &str) -> RecExpr<Math> {
    let nodes: Vec<Math> = e
        .as_ref()
        .iter()
        .map(|n| match n {
            Math::Symbol(s) if s.as_str() == from => Math::Symbol(Symbol::from(to)),
            other => other.clone(),
        })
        .collect();
    RecExpr::from(nodes)
}
