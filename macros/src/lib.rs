//! `saddle-macros`: the compile-time face of saddle.
//!
//! `saddle_macros::theory!("examples/deep_erf.action")` runs saddle's front end (parse and
//! check — the same code the runtime uses, built with `default-features = false`) while
//! the crate compiles. A theory with a mistake is a compile error that points at the
//! literal and quotes `file:line:col: reason`; a good theory expands to a module with its
//! name, parameters and their defaults, and the source (via `include_str!`, so that Cargo
//! rebuilds when the file changes).

mod expand;

use proc_macro::TokenStream;

/// Checks a `.action` file (path relative to the crate's `Cargo.toml`) at compile time.
#[proc_macro]
pub fn theory(input: TokenStream) -> TokenStream {
    expand::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
