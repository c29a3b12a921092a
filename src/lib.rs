//! # saddle
//!
//! The statistical field theory of neural networks, from the action to the numbers.
//!
//! ```text
//! .action ──syntax──▶ AST ──check──▶ Theory (typed IR) ──symbolic/derive──▶ equations
//!                                                   └──numeric/solve──▶ kernels, GP predictions
//!                                                   └──simulate──▶ sampled finite networks
//! ```

#![warn(missing_docs)]

pub mod check;
#[cfg(feature = "runtime")]
pub mod cli;
#[cfg(feature = "runtime")]
pub mod data;
pub mod derive;
#[cfg(feature = "runtime")]
pub mod finite_width;
#[cfg(feature = "runtime")]
pub mod generated;
#[cfg(feature = "runtime")]
pub mod numeric;
#[cfg(feature = "runtime")]
pub mod plot;
pub mod render;
#[cfg(feature = "runtime")]
pub mod report;
#[cfg(feature = "runtime")]
pub mod simulate;
#[cfg(feature = "runtime")]
pub mod solve;
pub mod symbolic;
pub mod syntax;

pub use check::Theory;
pub use syntax::{Diagnostic, Diagnostics};

/// The front end in one call: parse and check `source` (named `file_name` in messages).
///
/// ```
/// let source = std::fs::read_to_string("examples/deep_erf.action").unwrap();
/// let theory = saddle::compile(&source, "deep_erf.action").unwrap();
/// assert_eq!(theory.name, "deep_erf");
/// assert_eq!(theory.fields[0].name, "C");
/// ```
pub fn compile(source: &str, file_name: &str) -> Result<Theory, Diagnostics> {
    let file = syntax::parse(source, file_name)?;
    check::check(&file).map_err(|items| Diagnostics::new(file_name, source, items))
}

/// The README's Rust blocks, compiled and run as doctests (the tour's `theory!` program).
#[cfg(all(doctest, feature = "runtime"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
