//! Stage 2: syntax tree → checked [`Theory`].
//!
//! The checker resolves every name (parameters, fields, conjugates, index variables,
//! functions, data and the sizes P, d, D), gives every expression a shape (scalar, P-vector,
//! P×P, P×d, …), turns every index into an affine integer expression and checks it stays
//! inside the declared range of its field for every value of its variables, checks that
//! every conjugate names a field and lives where that field does, that every field entry is
//! either defined or conjugated (never both, never twice) and that definitions have no
//! cycles. It collects all problems instead of stopping at the first.

pub mod bind;
mod coverage;
mod declarations;
mod exprs;
mod indices;
pub mod ir;
mod suggest;

use std::collections::HashMap;

pub use bind::{BindError, MAX_INT_PARAM};
pub(crate) use coverage::for_each_child;
pub use ir::Theory;
pub use suggest::closest as closest_name;

use crate::syntax::{Diagnostic, Span, ast};
use ir::{Conjugate, Data, Field, Function, Param};

/// Checks a parsed file; returns the theory or every problem found.
pub fn check(file: &ast::File) -> Result<Theory, Vec<Diagnostic>> {
    let mut checker = Checker::default();
    let theory = checker.check_file(file);
    match theory {
        Some(theory) if checker.diagnostics.is_empty() => Ok(theory),
        _ => Err(checker.diagnostics),
    }
}

/// What a declared name stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Symbol {
    Param(ir::ParamId),
    Field(ir::FieldId),
    Conj(ir::ConjId),
    Function(ir::FunctionId),
    Data(ir::DataRole),
    Theory,
    Action,
}

/// An index variable in scope, with its range at the default parameter values.
#[derive(Debug, Clone)]
struct ScopedIndex {
    name: String,
    lower: i64,
    upper: i64,
}

/// A two-index kernel family with the range of its time index (default parameters).
type FamilyRange = (ir::FieldId, i64, i64);

/// The random variable of an enclosing expectation.
#[derive(Debug, Clone)]
struct ScopedRandom {
    name: String,
    /// For a family `h ~ N(0, C)` with a two-index kernel: the field and its time range.
    family: Option<FamilyRange>,
}

/// Collects declarations and problems while walking a file.
#[derive(Default)]
struct Checker {
    diagnostics: Vec<Diagnostic>,
    names: HashMap<String, (Symbol, Span)>,
    params: Vec<Param>,
    fields: Vec<Field>,
    conjugates: Vec<Conjugate>,
    functions: Vec<Function>,
    /// Arity of each user function (known before the bodies are checked).
    function_arity: Vec<usize>,
    /// Calls made by each function's body (for recursion detection).
    function_calls: Vec<Vec<(ir::FunctionId, Span)>>,
    data: Data,
    data_declared: Option<Span>,
    // scope while checking expressions
    index_scope: Vec<ScopedIndex>,
    random_scope: Vec<ScopedRandom>,
    function_params: Vec<String>,
    current_function: Option<ir::FunctionId>,
}

impl Checker {
    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Default value of an integer parameter (0 for others).
    fn int_default(&self, id: ir::ParamId) -> i64 {
        self.params.get(id).map_or(0, |p| {
            if p.ty == ir::ParamType::Int {
                p.default as i64
            } else {
                0
            }
        })
    }
}

/// "1 index", "2 indices".
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "1 is", "2 are".
fn plural_verb(n: usize) -> String {
    format!("{n} {}", if n == 1 { "is" } else { "are" })
}
