//! `theory!(…)` → a module describing the checked theory.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::LitStr;

/// Parses the path literal, runs the front end, emits the module.
pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let literal: LitStr = syn::parse2(input)?;
    let relative = literal.value();
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| syn::Error::new(literal.span(), "CARGO_MANIFEST_DIR is not set"))?;
    let path = std::path::Path::new(&root).join(&relative);
    let source = std::fs::read_to_string(&path).map_err(|e| {
        syn::Error::new(
            literal.span(),
            format!("cannot read `{}`: {e}", path.display()),
        )
    })?;
    let theory = saddle::compile(&source, &relative).map_err(|diagnostics| {
        let mut errors = diagnostics
            .items
            .iter()
            .map(|d| syn::Error::new(literal.span(), diagnostics.one_line(d)));
        let mut first = errors
            .next()
            .unwrap_or_else(|| syn::Error::new(literal.span(), "the theory is not well-formed"));
        for e in errors {
            first.combine(e);
        }
        first
    })?;
    let module = format_ident!("{}", theory.name);
    let names: Vec<&str> = theory.params.iter().map(|p| p.name.as_str()).collect();
    let defaults: Vec<f64> = theory.params.iter().map(|p| p.default).collect();
    let name = &theory.name;
    let absolute = path.display().to_string();
    Ok(quote! {
        /// A theory checked at compile time by `saddle_macros::theory!`.
        pub mod #module {
            /// The theory's name.
            pub const NAME: &str = #name;
            /// The `.action` source (tracked by Cargo).
            pub const SOURCE: &str = include_str!(#absolute);
            /// Parameter names and default values, in declaration order.
            pub const PARAMS: &[(&str, f64)] = &[#((#names, #defaults)),*];
        }
    })
}
