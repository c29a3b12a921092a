//! `saddle-macros`: the compile-time face of saddle.
//!
//! `saddle_macros::theory!(DeepErf = "examples/deep_erf.action")` (a path relative to the
//! calling crate's `Cargo.toml`) or `theory!(DeepErf = r#"theory deep_erf …"#)` (the source
//! inline) runs saddle's front end and derivation — the same code the CLI runs, built with
//! `default-features = false` — while the crate compiles, and emits:
//!
//! - a struct `DeepErf` with the theory's parameters as `f64` / `usize` fields, `Default` from
//!   the file, a `with_<param>` setter per parameter;
//! - every closed-form pair formula of the forward equations (one per template: all layers
//!   of a deep network share one) and its Jacobian G, as functions generic over
//!   `num_dual::DualNum` with common subexpressions shared, documented with the equation
//!   (Unicode and LaTeX) and their operation counts;
//! - `nngp`, `predict` and `settings()`: the run-time solvers with these parameters and the
//!   generated formulas in place of the interpreter ([`saddle::generated`]).
//!
//! A theory with a mistake is a compile error: `file:line:col: reason` and the checker's hint,
//! at the literal (inside a raw inline literal where the compiler can point there).

mod expand;
mod formula;

use proc_macro::TokenStream;

/// Derives a theory at compile time: `theory!(Name = "path.action")` or
/// `theory!(Name = r#"…source…"#)`. See the crate documentation.
#[proc_macro]
pub fn theory(input: TokenStream) -> TokenStream {
    expand::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
