//! The pest parser generated from `grammars/action.pest` and its [`Rule`]s: the one
//! definition the parser and the syntax-error messages both read.

pub use generated::{ActionParser, Rule};

mod generated {
    // The grammar's `///` comments document the rules; pest adds items of its own.
    #![allow(missing_docs)]
    use pest_derive::Parser;
    /// The pest parser generated from `grammars/action.pest`.
    #[derive(Parser)]
    #[grammar = "../grammars/action.pest"]
    pub struct ActionParser;
}
