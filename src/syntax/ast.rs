//! The abstract syntax tree of a `.action` file, exactly as written.
//!
//! Every node carries the [`Span`] of its source text. Spans are metadata: two nodes compare
//! equal when they say the same thing, wherever they stand (so `parse(print(ast)) == ast`
//! is a meaningful test). Parentheses are not nodes; the printers re-insert them from
//! operator precedence.

use super::span::Span;

/// A whole `.action` file: its declarations in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// The declarations, in the order they were written.
    pub items: Vec<Item>,
    /// Comment lines after the last declaration.
    pub end_comments: Vec<String>,
}

/// One top-level declaration with the comments that belong to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// What the declaration says.
    pub kind: ItemKind,
    /// The comment lines directly above it (each with its `//`; an empty entry is a blank
    /// line between comment lines), and any comments written
    /// inside a multi-line declaration (they move above it when the file is formatted).
    pub leading_comments: Vec<String>,
    /// A `// …` comment at the end of its last line.
    pub trailing_comment: Option<String>,
    /// Whether a blank line separates it from what stands above it.
    pub blank_line_before: bool,
    /// Where it stands.
    pub span: Span,
}

/// The kinds of top-level declarations.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// `theory NAME`
    Theory(Ident),
    /// `param NAME [: int] = VALUE`
    Param(ParamDecl),
    /// `data X, Y`
    Data(Vec<Ident>),
    /// `kernel C[l] for l in …` / `mean m[l] for l in …`
    Field(FieldDecl),
    /// `conj Ct[l] of C[l] for l in …`
    Conj(ConjDecl),
    /// `phi(x) = …`
    Function(FunctionDef),
    /// `C[0] = …`
    Definition(Definition),
    /// `action S = …`
    Action(ActionDecl),
}

/// A name as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it stands.
    pub span: Span,
}

/// The declared type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A real number (the default when no type is written).
    Real,
    /// An integer (depths, numbers of time steps): usable in index ranges.
    Int,
}

/// `param NAME [: TYPE] = DEFAULT`
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// The parameter's name.
    pub name: Ident,
    /// The type written after `:`, if any.
    pub declared_type: Option<ParamType>,
    /// The default value.
    pub default: Number,
}

/// A numeric literal.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// Its value.
    pub value: f64,
    /// Where it stands.
    pub span: Span,
}

/// Whether a field is a P×P kernel or a P-vector of means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `kernel`: a P×P order parameter.
    Kernel,
    /// `mean`: a P-vector order parameter.
    Mean,
}

/// `kernel C[l] for l in 0..=L`
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDecl {
    /// Kernel or mean field.
    pub kind: FieldKind,
    /// The field's name.
    pub name: Ident,
    /// The index variables written in brackets (empty for a single field).
    pub indices: Vec<Ident>,
    /// The `for` clause giving each index its range.
    pub ranges: Vec<Binding>,
}

/// `conj Ct[l] of C[l] for l in 1..=L`
#[derive(Debug, Clone, PartialEq)]
pub struct ConjDecl {
    /// The conjugate field's name.
    pub name: Ident,
    /// Its index variables.
    pub indices: Vec<Ident>,
    /// The field it is conjugate to.
    pub of: Ident,
    /// The index variables written after the field's name.
    pub of_indices: Vec<Ident>,
    /// The `for` clause.
    pub ranges: Vec<Binding>,
}

/// `phi(x) = erf(x)`
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    /// The function's name.
    pub name: Ident,
    /// Its parameter names.
    pub params: Vec<Ident>,
    /// Its body.
    pub body: Expr,
}

/// `C[0, s] = gb * ones for s in 1..=T`
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The field being defined.
    pub target: Ident,
    /// The index expressions in brackets.
    pub indices: Vec<Expr>,
    /// The defining expression.
    pub body: Expr,
    /// The `for` clause, if any.
    pub ranges: Vec<Binding>,
}

/// `action S = …`
#[derive(Debug, Clone, PartialEq)]
pub struct ActionDecl {
    /// The action's name.
    pub name: Ident,
    /// The action itself.
    pub body: Expr,
}

/// `l in 1..=L`
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The index variable.
    pub var: Ident,
    /// Lower bound (inclusive).
    pub lower: Expr,
    /// Upper bound (inclusive).
    pub upper: Expr,
}

/// An expression with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it stands.
    pub span: Span,
}

/// The kinds of expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A numeric literal.
    Number(f64),
    /// A bare name: parameter, field, data, size, constant, index or random variable.
    Name(Ident),
    /// `C[l - 1]`, `h[t]`
    Index {
        /// The indexed name.
        base: Ident,
        /// The index expressions.
        indices: Vec<Expr>,
    },
    /// `f(a, b)`: a built-in or user function.
    Call {
        /// The function's name.
        func: Ident,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// `ln E[…]`: a built-in applied to one factor without parentheses (kept apart from
    /// [`ExprKind::Call`] only to print it back as written).
    Prefix {
        /// The built-in's name.
        func: Ident,
        /// Its argument.
        arg: Box<Expr>,
    },
    /// `-a`
    Neg(Box<Expr>),
    /// `a op b`
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `a^T`
    Transpose(Box<Expr>),
    /// `sum(l in 1..=L, body)`
    Sum {
        /// The summation indices and their ranges.
        bindings: Vec<Binding>,
        /// The summand.
        body: Box<Expr>,
    },
    /// `E[ body | var ~ N(mean, cov) ]`
    Expectation {
        /// The integrand.
        body: Box<Expr>,
        /// The Gaussian random variable it integrates over.
        var: Ident,
        /// Its mean.
        mean: Box<Expr>,
        /// Its covariance (a P×P matrix, or a two-index kernel family).
        cov: Box<Expr>,
    },
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*` (scalar or matrix product)
    Mul,
    /// Juxtaposition `A B`: the same product as `*`, kept to print it back as written.
    Juxtapose,
    /// `/`
    Div,
    /// `^`
    Pow,
}

impl BinaryOp {
    /// Binding strength: larger binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Add | BinaryOp::Sub => 1,
            BinaryOp::Mul | BinaryOp::Juxtapose | BinaryOp::Div => 2,
            BinaryOp::Pow => 4,
        }
    }

    /// The operator as written in `.action` source (`Juxtapose` is a blank).
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Juxtapose => " ",
            BinaryOp::Div => "/",
            BinaryOp::Pow => "^",
        }
    }
}

/// Precedence of unary minus: between products and powers.
pub const NEG_PRECEDENCE: u8 = 3;

impl Expr {
    /// Builds an expression node.
    pub fn new(kind: ExprKind, span: Span) -> Self {
        Expr { kind, span }
    }
}
