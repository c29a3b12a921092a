//! What can go wrong when the action is evaluated: every failure is one of these, never a panic
//! and never a silent NaN.

use super::dense::DenseError;
use crate::numeric::quad::QuadError;
use crate::syntax::Span;

/// What was being evaluated when an evaluation failed, and where it is written in the
/// `.action` source when that is known (a byte span; the command line shows it as
/// file:line:col with a caret, see [`ActionError::context`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// What, in words: `division by zero`, `expectation over `h``.
    pub what: String,
    /// Where in the source.
    pub span: Option<Span>,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.span {
            Some(span) => write!(
                f,
                "{} (source bytes {}..{})",
                self.what, span.start, span.end
            ),
            None => f.write_str(&self.what),
        }
    }
}

// Boxed in the errors: a failure stays small on the happy path's `Result`s.
impl From<&str> for Box<Context> {
    fn from(what: &str) -> Self {
        what.to_string().into()
    }
}

impl From<String> for Box<Context> {
    fn from(what: String) -> Self {
        Box::new(Context { what, span: None })
    }
}

/// A failed evaluation of the action, its gradient or its Hessian.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ActionError {
    /// `params` does not hold one value per parameter of the theory.
    #[error("expected {expected} parameter values (one per `param`, by id), got {got}")]
    ParamCount {
        /// Number of parameters of the theory.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
    /// An `int` parameter has a value that is not an integer.
    #[error("integer parameter `{name}` = {value}: not a whole number in 0..=10000")]
    NonIntegerParam {
        /// The parameter.
        name: String,
        /// The value given.
        value: f64,
    },
    /// A data matrix has the wrong shape or non-finite entries.
    #[error("data: {reason}")]
    Data {
        /// What is wrong.
        reason: String,
    },
    /// The theory uses the targets `Y` (or their number `D`) but none were given.
    #[error("the action uses the targets (`Y` or `D`) but no targets were given")]
    MissingTargets,
    /// `values` does not hold one value per free variable.
    #[error("expected {expected} variable values (see `Variables`), got {got}")]
    ValueCount {
        /// Number of free variables.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
    /// A field or conjugate entry outside its declared range, or an index that is undefined.
    #[error("`{entry}` is not an entry of the theory at these parameter values")]
    UnknownEntry {
        /// The entry as written, e.g. `C[4]`.
        entry: String,
    },
    /// More field entries than this evaluator enumerates.
    #[error("`{name}` has more than {limit} entries at these parameter values")]
    TooManyEntries {
        /// The field or conjugate.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// Definitions refer to each other in a cycle (the checker normally rejects this).
    #[error("the definition of `{entry}` depends on itself")]
    DefinitionCycle {
        /// The entry.
        entry: String,
    },
    /// A linear-algebra failure (shape mismatch, not positive definite, singular, det ≤ 0).
    #[error("{context}: {source}")]
    LinearAlgebra {
        /// Where it arose, with the source location.
        context: Box<Context>,
        /// The failure.
        source: DenseError,
    },
    /// A Gaussian expectation would need too many quadrature nodes.
    #[error(
        "{context}: {order}^{dimensions} Gauss–Hermite nodes exceed the limit of {limit}; \
         lower the quadrature order or the number of integration dimensions"
    )]
    TooManyNodes {
        /// Where it arose.
        context: Box<Context>,
        /// Nodes per dimension.
        order: usize,
        /// Integration dimensions.
        dimensions: usize,
        /// Largest number of nodes allowed.
        limit: usize,
    },
    /// The quadrature rule could not be built.
    #[error("quadrature: {0}")]
    Quadrature(#[from] QuadError),
    /// An expression this evaluator does not handle (e.g. a nested expectation over the outer
    /// random variable).
    #[error("{context}: {reason}")]
    Unsupported {
        /// Where it arose.
        context: Box<Context>,
        /// What is not supported.
        reason: String,
    },
    /// The value (or a derivative) is NaN or infinite.
    #[error("{what} is not finite ({value})")]
    NotFinite {
        /// What was computed.
        what: Box<Context>,
        /// The offending value.
        value: f64,
    },
}

impl ActionError {
    /// What was being evaluated and where, for the failures that know it.
    pub fn context(&self) -> Option<&Context> {
        match self {
            ActionError::LinearAlgebra { context, .. }
            | ActionError::TooManyNodes { context, .. }
            | ActionError::Unsupported { context, .. } => Some(&**context),
            ActionError::NotFinite { what, .. } => Some(&**what),
            _ => None,
        }
    }
}
