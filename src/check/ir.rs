//! The checked theory: every name resolved, every expression shaped, every index affine.
//!
//! Shapes are `rows × cols` over the sizes a theory knows: 1, the number of patterns P, the
//! input dimension d and the number of outputs D. A scalar is 1×1, a pattern vector P×1,
//! a kernel P×P, the data `X` P×d and the targets `Y` P×D.
//!
//! One concept, one file: the IR's types and their traversal (`children`, `any`,
//! `try_map_children`), which every later stage reads.

use std::collections::BTreeMap;
use std::fmt;

use crate::syntax::{Span, ast};

pub use crate::syntax::ast::{FieldKind, ParamType};

/// One size a matrix dimension can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// 1
    One,
    /// P, the number of patterns.
    Patterns,
    /// d, the input dimension.
    Inputs,
    /// D, the number of outputs (target columns).
    Outputs,
}

impl Dim {
    fn symbol(self) -> &'static str {
        match self {
            Dim::One => "1",
            Dim::Patterns => "P",
            Dim::Inputs => "d",
            Dim::Outputs => "D",
        }
    }
}

/// The shape of a value: `rows × cols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Number of rows.
    pub rows: Dim,
    /// Number of columns.
    pub cols: Dim,
}

impl Shape {
    /// A scalar.
    pub const SCALAR: Shape = Shape {
        rows: Dim::One,
        cols: Dim::One,
    };
    /// A P-vector (column).
    pub const VECTOR: Shape = Shape {
        rows: Dim::Patterns,
        cols: Dim::One,
    };
    /// A P×P matrix.
    pub const KERNEL: Shape = Shape {
        rows: Dim::Patterns,
        cols: Dim::Patterns,
    };

    /// `rows × cols`.
    pub fn new(rows: Dim, cols: Dim) -> Shape {
        Shape { rows, cols }
    }

    /// Whether this is a 1×1 scalar.
    pub fn is_scalar(self) -> bool {
        self == Shape::SCALAR
    }

    /// Whether rows and columns have the same size.
    pub fn is_square(self) -> bool {
        self.rows == self.cols
    }

    /// The shape of the transpose.
    pub fn transposed(self) -> Shape {
        Shape::new(self.cols, self.rows)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.rows, self.cols) {
            (Dim::One, Dim::One) => f.write_str("a scalar"),
            (Dim::Patterns, Dim::One) => f.write_str("a P-vector"),
            (Dim::One, Dim::Patterns) => f.write_str("a row P-vector"),
            (r, c) => write!(f, "a {}×{} matrix", r.symbol(), c.symbol()),
        }
    }
}

/// Index of a parameter in [`Theory::params`].
pub type ParamId = usize;
/// Index of a field in [`Theory::fields`].
pub type FieldId = usize;
/// Index of a conjugate field in [`Theory::conjugates`].
pub type ConjId = usize;
/// Index of a user function in [`Theory::functions`].
pub type FunctionId = usize;

/// A scalar parameter with its default value.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Real or integer.
    pub ty: ParamType,
    /// The value written in the file.
    pub default: f64,
    /// The declaration.
    pub span: Span,
}

/// A user-defined scalar function, applied entry-wise to vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// Its parameter names; the body refers to them as [`ExprKind::FunctionArg`].
    pub params: Vec<String>,
    /// Its body (a scalar).
    pub body: Expr,
    /// The declaration.
    pub span: Span,
}

/// The data a theory is trained on: `data X, Y`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Data {
    /// The name of the P×d input matrix.
    pub inputs: Option<String>,
    /// The name of the P×D target matrix.
    pub targets: Option<String>,
}

/// The two data matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRole {
    /// `X`, P×d.
    Inputs,
    /// `Y`, P×D.
    Targets,
}

/// A size known once the data are: P, d or D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// `P`
    Patterns,
    /// `d`
    Inputs,
    /// `D`
    Outputs,
}

/// An affine integer expression in index variables and integer parameters:
/// `constant + Σ coefficient · atom`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexExpr {
    /// The constant term.
    pub constant: i64,
    /// Non-zero coefficients, ordered by atom.
    pub terms: BTreeMap<IndexAtom, i64>,
}

/// What an index expression may depend on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IndexAtom {
    /// A bound index variable (`l`, `t`), by name.
    Var(String),
    /// An integer parameter (`L`, `T`).
    Param(ParamId),
}

impl IndexExpr {
    /// The constant `c`.
    pub fn constant(c: i64) -> Self {
        IndexExpr {
            constant: c,
            terms: BTreeMap::new(),
        }
    }

    /// `1 · atom`.
    pub fn atom(atom: IndexAtom) -> Self {
        let mut terms = BTreeMap::new();
        terms.insert(atom, 1);
        IndexExpr { constant: 0, terms }
    }

    /// `self + sign · other`.
    pub fn add(mut self, other: &IndexExpr, sign: i64) -> Self {
        self.constant += sign * other.constant;
        for (atom, c) in &other.terms {
            let entry = self.terms.entry(atom.clone()).or_insert(0);
            *entry += sign * c;
        }
        self.terms.retain(|_, c| *c != 0);
        self
    }

    /// `factor · self`.
    pub fn scale(mut self, factor: i64) -> Self {
        self.constant *= factor;
        for c in self.terms.values_mut() {
            *c *= factor;
        }
        self.terms.retain(|_, c| *c != 0);
        self
    }

    /// The value for given variable and parameter values (`None` if one is missing).
    pub fn eval(
        &self,
        var: &dyn Fn(&str) -> Option<i64>,
        param: &dyn Fn(ParamId) -> i64,
    ) -> Option<i64> {
        let mut value = self.constant;
        for (atom, c) in &self.terms {
            let v = match atom {
                IndexAtom::Var(name) => var(name)?,
                IndexAtom::Param(id) => param(*id),
            };
            value += c * v;
        }
        Some(value)
    }

    /// Whether it depends on the variable `name`.
    pub fn mentions(&self, name: &str) -> bool {
        self.terms
            .keys()
            .any(|a| matches!(a, IndexAtom::Var(v) if v == name))
    }
}

/// An inclusive range of integers.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRange {
    /// First value.
    pub lower: IndexExpr,
    /// Last value.
    pub upper: IndexExpr,
}

/// An index variable with its range: `l in 1..=L`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexBinding {
    /// The variable's name.
    pub var: String,
    /// Its values.
    pub range: IndexRange,
}

/// An order parameter: a kernel (P×P) or a mean field (P-vector), possibly indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Kernel or mean.
    pub kind: FieldKind,
    /// Its index variables with their ranges.
    pub indices: Vec<IndexBinding>,
    /// The declaration.
    pub span: Span,
}

impl Field {
    /// The shape of one entry of the field.
    pub fn shape(&self) -> Shape {
        match self.kind {
            FieldKind::Kernel => Shape::KERNEL,
            FieldKind::Mean => Shape::VECTOR,
        }
    }

    /// A two-index kernel whose indices run over the same range: a family `C[t, s]` of
    /// blocks of one (P·T)×(P·T) kernel, symmetric as a whole (`C[s, t] = C[t, s]ᵀ`).
    pub fn is_time_family(&self) -> bool {
        self.kind == FieldKind::Kernel
            && matches!(self.indices.as_slice(), [a, b] if a.range == b.range)
    }
}

/// A conjugate field `conj Ct[l] of C[l] for l in 1..=L`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conjugate {
    /// Its name.
    pub name: String,
    /// The field it is conjugate to.
    pub of: FieldId,
    /// Its index variables (the same as the field's) with their ranges.
    pub indices: Vec<IndexBinding>,
    /// The declaration.
    pub span: Span,
}

/// `C[0, s] = … for s in 1..=T`: entries of a field fixed by an expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The field defined.
    pub field: FieldId,
    /// Which entries, as index expressions in the bindings' variables.
    pub indices: Vec<IndexExpr>,
    /// The `for` clause.
    pub bindings: Vec<IndexBinding>,
    /// The value.
    pub body: Expr,
    /// The declaration.
    pub span: Span,
}

/// The action `S`.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Its name.
    pub name: String,
    /// Its value (a scalar).
    pub body: Expr,
}

/// A shaped expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it computes.
    pub kind: ExprKind,
    /// Its shape.
    pub shape: Shape,
    /// Where it was written.
    pub span: Span,
}

/// Entry-wise built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Builtin {
    /// `exp`
    Exp,
    /// `ln`
    Ln,
    /// `sqrt`
    Sqrt,
    /// `erf`
    Erf,
    /// `tanh`
    Tanh,
    /// `asin`
    Asin,
    /// `acos`
    Acos,
    /// `atan`
    Atan,
    /// `relu` = max(0, x)
    Relu,
    /// `step` = 1 if x > 0 else 0
    Step,
    /// `sign`
    Sign,
    /// `abs`
    Abs,
}

impl Builtin {
    /// All entry-wise built-ins with their names.
    pub const ALL: [(&'static str, Builtin); 12] = [
        ("exp", Builtin::Exp),
        ("ln", Builtin::Ln),
        ("sqrt", Builtin::Sqrt),
        ("erf", Builtin::Erf),
        ("tanh", Builtin::Tanh),
        ("asin", Builtin::Asin),
        ("acos", Builtin::Acos),
        ("atan", Builtin::Atan),
        ("relu", Builtin::Relu),
        ("step", Builtin::Step),
        ("sign", Builtin::Sign),
        ("abs", Builtin::Abs),
    ];

    /// The built-in called `name`.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
    }

    /// Its name in `.action` source.
    pub fn name(self) -> &'static str {
        Builtin::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Matrix built-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatrixFunction {
    /// `tr`
    Trace,
    /// `inv`
    Inverse,
    /// `logdet`
    LogDet,
}

impl MatrixFunction {
    /// The matrix built-in called `name`.
    pub fn from_name(name: &str) -> Option<MatrixFunction> {
        match name {
            "tr" => Some(MatrixFunction::Trace),
            "inv" => Some(MatrixFunction::Inverse),
            "logdet" => Some(MatrixFunction::LogDet),
            _ => None,
        }
    }
}

/// The function in an entry-wise application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callee {
    /// A built-in.
    Builtin(Builtin),
    /// A user function.
    User(FunctionId),
}

/// The covariance of a Gaussian expectation.
#[derive(Debug, Clone, PartialEq)]
pub enum Covariance {
    /// A P×P matrix: the random variable is one P-vector.
    Matrix(Box<Expr>),
    /// A two-index kernel family `C`: the random variable is a family `h[t]` with
    /// covariance blocks `C[t, s]`.
    Family(FieldId),
}

/// The kinds of checked expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A literal.
    Number(f64),
    /// π
    Pi,
    /// A parameter.
    Param(ParamId),
    /// P, d or D.
    Size(Size),
    /// An index variable or integer expression used as a number.
    Index(IndexExpr),
    /// The P×P identity `I`.
    Identity,
    /// The P×P all-ones matrix `ones`.
    Ones,
    /// `X` or `Y`.
    Data(DataRole),
    /// `C[l - 1]`
    Field {
        /// Which field.
        field: FieldId,
        /// Which entry.
        indices: Vec<IndexExpr>,
    },
    /// `Ct[l]`
    Conjugate {
        /// Which conjugate field.
        conj: ConjId,
        /// Which entry.
        indices: Vec<IndexExpr>,
    },
    /// The random variable of an enclosing expectation (`h`, or `h[t - 1]` for a family).
    RandomVar {
        /// Its name.
        name: String,
        /// The time index of a family member.
        time: Option<IndexExpr>,
    },
    /// Block `time` of the random variable of an enclosing expectation over a time family,
    /// whitened by the joint covariance Σ of the times `over`: `(Σ⁻¹ (h − m))[time]`.
    /// Never written by a user: the derivative of such an expectation with respect to a
    /// kernel block is Stein's lemma over the whole family, ∂E\[f\]/∂C[a, b] =
    /// ½ (E[f ĥ\[a\] ĥ\[b\]ᵀ] − E\[f\] E[ĥ\[a\] ĥ\[b\]ᵀ]) with ĥ = Σ⁻¹(h − m).
    Whitened {
        /// The random variable's name.
        name: String,
        /// The block.
        time: i64,
        /// The times whose joint covariance whitens (sorted; contains `time`).
        over: Vec<i64>,
    },
    /// The `i`-th parameter of the user function being defined.
    FunctionArg(usize),
    /// `-a`
    Neg(Box<Expr>),
    /// `a + b` (a scalar added to a P×P matrix adds to every entry).
    Add(Box<Expr>, Box<Expr>),
    /// `a - b`
    Sub(Box<Expr>, Box<Expr>),
    /// `a * b`, `a b`: scalar or matrix product.
    Mul(Box<Expr>, Box<Expr>),
    /// `a / s` with a scalar `s`.
    Div(Box<Expr>, Box<Expr>),
    /// `a ^ b` of scalars.
    Pow(Box<Expr>, Box<Expr>),
    /// `a^T`
    Transpose(Box<Expr>),
    /// Entry-wise function application.
    Apply {
        /// The function.
        callee: Callee,
        /// Its arguments.
        args: Vec<Expr>,
    },
    /// `tr`, `inv`, `logdet`.
    Matrix(MatrixFunction, Box<Expr>),
    /// `sum(l in a..=b, body)`
    Sum {
        /// Summation indices.
        bindings: Vec<IndexBinding>,
        /// The summand.
        body: Box<Expr>,
    },
    /// `E[ body | var ~ N(mean, cov) ]`
    Expectation {
        /// The random variable's name.
        var: String,
        /// The integrand.
        body: Box<Expr>,
        /// The mean (a scalar broadcast to every entry, or a P-vector).
        mean: Box<Expr>,
        /// The covariance.
        cov: Covariance,
    },
}

/// The parts of a cumulant-generating term `ln E[exp(tilt) | var ~ N(mean, cov)]`.
#[derive(Debug, Clone, Copy)]
pub struct LogMgf<'a> {
    /// The expectation node `E[exp(tilt) | …]`.
    pub expectation: &'a Expr,
    /// The random variable's name.
    pub var: &'a str,
    /// The scalar exponent.
    pub tilt: &'a Expr,
    /// The Gaussian's mean.
    pub mean: &'a Expr,
    /// The Gaussian's covariance.
    pub cov: &'a Covariance,
}

/// `callee(args)` as a cumulant-generating term, if it is `ln` of `E[exp(scalar) | …]`.
pub fn log_mgf<'a>(callee: Callee, args: &'a [Expr]) -> Option<LogMgf<'a>> {
    let (Callee::Builtin(Builtin::Ln), [expectation]) = (callee, args) else {
        return None;
    };
    let ExprKind::Expectation {
        var,
        body,
        mean,
        cov,
    } = &expectation.kind
    else {
        return None;
    };
    let ExprKind::Apply {
        callee: Callee::Builtin(Builtin::Exp),
        args: inner,
    } = &body.kind
    else {
        return None;
    };
    let [tilt] = inner.as_slice() else {
        return None;
    };
    tilt.shape.is_scalar().then_some(LogMgf {
        expectation,
        var,
        tilt,
        mean,
        cov,
    })
}

impl Expr {
    /// The direct sub-expressions, left to right (an expectation's body, mean, then its
    /// covariance when that is a matrix). Index expressions are not sub-expressions.
    pub fn children(&self) -> impl Iterator<Item = &Expr> {
        let (fixed, rest): ([Option<&Expr>; 3], &[Expr]) = match &self.kind {
            ExprKind::Neg(a) | ExprKind::Transpose(a) | ExprKind::Matrix(_, a) => {
                ([Some(a), None, None], &[])
            }
            ExprKind::Add(a, b)
            | ExprKind::Sub(a, b)
            | ExprKind::Mul(a, b)
            | ExprKind::Div(a, b)
            | ExprKind::Pow(a, b) => ([Some(a), Some(b), None], &[]),
            ExprKind::Apply { args, .. } => ([None, None, None], args.as_slice()),
            ExprKind::Sum { body, .. } => ([Some(body), None, None], &[]),
            ExprKind::Expectation {
                body, mean, cov, ..
            } => {
                let cov = match cov {
                    Covariance::Matrix(c) => Some(c.as_ref()),
                    Covariance::Family(_) => None,
                };
                ([Some(body), Some(mean), cov], &[])
            }
            _ => ([None, None, None], &[]),
        };
        fixed.into_iter().flatten().chain(rest.iter())
    }

    /// Whether `predicate` holds for this expression or any expression inside it (pre-order,
    /// stopping at the first hit).
    pub fn any(&self, predicate: &mut impl FnMut(&Expr) -> bool) -> bool {
        predicate(self) || self.children().any(|c| c.any(predicate))
    }

    /// The same node with every direct sub-expression replaced by `f` of it (shape and span
    /// kept); the first error stops the rebuild.
    pub fn try_map_children<E>(
        &self,
        mut f: impl FnMut(&Expr) -> Result<Expr, E>,
    ) -> Result<Expr, E> {
        let mut boxed = |e: &Expr| f(e).map(Box::new);
        let kind = match &self.kind {
            ExprKind::Neg(a) => ExprKind::Neg(boxed(a)?),
            ExprKind::Transpose(a) => ExprKind::Transpose(boxed(a)?),
            ExprKind::Matrix(m, a) => ExprKind::Matrix(*m, boxed(a)?),
            ExprKind::Add(a, b) => ExprKind::Add(boxed(a)?, boxed(b)?),
            ExprKind::Sub(a, b) => ExprKind::Sub(boxed(a)?, boxed(b)?),
            ExprKind::Mul(a, b) => ExprKind::Mul(boxed(a)?, boxed(b)?),
            ExprKind::Div(a, b) => ExprKind::Div(boxed(a)?, boxed(b)?),
            ExprKind::Pow(a, b) => ExprKind::Pow(boxed(a)?, boxed(b)?),
            ExprKind::Apply { callee, args } => ExprKind::Apply {
                callee: *callee,
                args: args
                    .iter()
                    .map(|a| boxed(a).map(|b| *b))
                    .collect::<Result<_, _>>()?,
            },
            ExprKind::Sum { bindings, body } => ExprKind::Sum {
                bindings: bindings.clone(),
                body: boxed(body)?,
            },
            ExprKind::Expectation {
                var,
                body,
                mean,
                cov,
            } => ExprKind::Expectation {
                var: var.clone(),
                body: boxed(body)?,
                mean: boxed(mean)?,
                cov: match cov {
                    Covariance::Matrix(c) => Covariance::Matrix(boxed(c)?),
                    Covariance::Family(f) => Covariance::Family(*f),
                },
            },
            leaf => leaf.clone(),
        };
        Ok(Expr {
            kind,
            shape: self.shape,
            span: self.span,
        })
    }
}

/// A checked theory, ready for the symbolic stage and the solvers.
#[derive(Debug, Clone)]
pub struct Theory {
    /// `theory NAME`.
    pub name: String,
    /// Parameters in declaration order.
    pub params: Vec<Param>,
    /// User functions in declaration order.
    pub functions: Vec<Function>,
    /// The data declaration.
    pub data: Data,
    /// Kernel and mean fields.
    pub fields: Vec<Field>,
    /// Conjugate fields.
    pub conjugates: Vec<Conjugate>,
    /// Definitions of field entries.
    pub definitions: Vec<Definition>,
    /// The action.
    pub action: Action,
    /// The syntax tree it was checked from (for printing).
    pub syntax: ast::File,
}

impl Theory {
    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Option<ParamId> {
        self.params.iter().position(|p| p.name == name)
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<FieldId> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The conjugate field called `name`.
    pub fn conjugate(&self, name: &str) -> Option<ConjId> {
        self.conjugates.iter().position(|c| c.name == name)
    }

    /// The conjugate of field `field`, if it has one.
    pub fn conjugate_of(&self, field: FieldId) -> Option<ConjId> {
        self.conjugates.iter().position(|c| c.of == field)
    }

    /// Default values of the integer parameters, by id (real parameters give 0).
    pub fn default_int_params(&self) -> Vec<i64> {
        self.params
            .iter()
            .map(|p| {
                if p.ty == ParamType::Int {
                    p.default as i64
                } else {
                    0
                }
            })
            .collect()
    }
}

/// Names with a fixed meaning that no declaration may take.
pub(crate) const BUILTIN_NAMES: &[(&str, &str)] = &[
    ("P", "the number of patterns"),
    ("d", "the input dimension"),
    ("D", "the number of outputs"),
    ("I", "the P×P identity"),
    ("ones", "the P×P all-ones matrix"),
    ("pi", "the constant π"),
    ("E", "the Gaussian expectation E[ … ]"),
    ("tr", "the trace"),
    ("inv", "the matrix inverse"),
    ("logdet", "the log-determinant"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn action() -> Expr {
        let source = "theory t\nparam g = 1.5\ndata X, Y\nkernel C[l] for l in 0..=1\n\
                      conj Ct[l] of C[l] for l in 1..=1\nC[0] = X X^T / d\n\
                      action S = - tr(Ct[1]^T C[1]) + ln E[exp(g * tanh(h)^T Ct[1] tanh(h)) | h ~ N(0, C[0])]\n";
        crate::compile(source, "t.action")
            .unwrap_or_else(|d| panic!("{}", d.render(false)))
            .action
            .body
    }

    #[test]
    fn children_any_and_map_walk_the_same_tree() {
        let e = action();
        let mut count = 0;
        e.any(&mut |_| {
            count += 1;
            false
        });
        assert!(count > 10, "{count} nodes");
        assert!(e.any(&mut |x| matches!(x.kind, ExprKind::RandomVar { .. })));
        assert!(!e.any(&mut |x| matches!(x.kind, ExprKind::Whitened { .. })));
        // an identity map rebuilds an equal tree
        fn identity(e: &Expr) -> Result<Expr, ()> {
            e.try_map_children(identity)
        }
        assert_eq!(identity(&e), Ok(e.clone()));
        // a failing map stops at the first error
        let failed = e.try_map_children(|_| Err::<Expr, _>("stop"));
        assert_eq!(failed, Err("stop"));
        // the expectation's children: body, mean and the matrix covariance
        let expectation = {
            let mut found = None;
            e.any(&mut |x| {
                if matches!(x.kind, ExprKind::Expectation { .. }) {
                    found = Some(x.clone());
                    true
                } else {
                    false
                }
            });
            found.expect("an expectation")
        };
        assert_eq!(expectation.children().count(), 3);
    }
}
