//! Stage 1: `.action` text → syntax tree with spans.
//!
//! The grammar lives in `grammars/action.pest`; [`parser`] turns pest's parse tree into the
//! [`ast`]; [`errors`] words syntax errors for people; [`mod@print`] writes the canonical form
//! back (`saddle fmt`); [`diagnostic`] is the error type every front-end stage reports with;
//! [`limits`] bounds how deeply a source may nest.

pub mod ast;
pub mod comments;
pub mod diagnostic;
pub mod errors;
pub mod grammar;
pub mod limits;
pub mod parser;
pub mod print;
pub mod span;

pub use ast::File;
pub use diagnostic::{Diagnostic, Diagnostics};
pub use span::Span;

/// Parses `source` (named `file_name` in diagnostics) into a syntax tree.
pub fn parse(source: &str, file_name: &str) -> Result<File, Diagnostics> {
    parser::parse_file(source).map_err(|items| Diagnostics::new(file_name, source, items))
}
