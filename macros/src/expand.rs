//! `theory!(Name = "…")` → a struct for the theory with its derived pair formulas compiled.
//!
//! Steps at compile time: read the source (a path ending in `.action`, relative to the
//! calling crate's `Cargo.toml`, or the literal itself), parse and check it, derive the
//! forward equations at the file's integer parameters, simplify each distinct pair template
//! with its Jacobian G (the code `saddle derive` runs), and emit one generic function per
//! closed-form template and per G, plus a [`saddle::generated::NativePairMap`] table that
//! the run time's NNGP solver looks equations up in. The loops, the linear algebra and the
//! quadrature stay in the run-time library.
//!
//! One concept, one file: the expansion of one `theory!` invocation, step by step as above.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use saddle::check::ir::{ParamType, Theory};
use saddle::derive::closed_form::{PairCache, PairTemplate, pair_template};
use saddle::derive::grad::Variable;
use saddle::symbolic::lang::Math;
use saddle::symbolic::print::{Style, formula};
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

use crate::formula::{Body, emit, slots};

/// `Name = "path.action"` or `Name = r#"theory …"#`.
struct Input {
    name: Ident,
    literal: LitStr,
}

impl Parse for Input {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `Name = \"path/to/theory.action\"` or `Name = r#\"theory …\"#`",
            )
        })?;
        input.parse::<Token![=]>()?;
        let literal: LitStr = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the theory's source"));
        }
        Ok(Input { name, literal })
    }
}

/// Where the source came from.
enum Origin {
    /// A file: its absolute path (for `include_str!`, which makes Cargo track it).
    File(String),
    /// The literal itself.
    Inline,
}

/// Expands one invocation.
pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let Input { name, literal } = syn::parse2(input)?;
    let value = literal.value();
    let (source, file_name, origin) = if value.trim_end().ends_with(".action") {
        let root = std::env::var("CARGO_MANIFEST_DIR")
            .map_err(|_| syn::Error::new(literal.span(), "CARGO_MANIFEST_DIR is not set"))?;
        let path = std::path::Path::new(&root).join(value.trim());
        let source = std::fs::read_to_string(&path).map_err(|e| {
            syn::Error::new(
                literal.span(),
                format!("cannot read the theory `{}`: {e}", path.display()),
            )
        })?;
        (
            source,
            value.trim().to_string(),
            Origin::File(path.display().to_string()),
        )
    } else {
        (value.clone(), format!("{name}.action"), Origin::Inline)
    };
    let theory = saddle::compile(&source, &file_name).map_err(|diagnostics| {
        let mut errors = diagnostics.items.iter().map(|d| {
            let mut message = diagnostics.one_line(d);
            if let Some(help) = &d.help {
                message.push_str(&format!("\n  help: {help}"));
            }
            let span = match origin {
                Origin::Inline => inline_span(&literal, d.span.start, d.span.end),
                Origin::File(_) => literal.span(),
            };
            syn::Error::new(span, message)
        });
        let mut first = errors
            .next()
            .unwrap_or_else(|| syn::Error::new(literal.span(), "the theory is not well-formed"));
        for e in errors {
            first.combine(e);
        }
        first
    })?;
    Ok(generate(&name, &theory, &source, &origin))
}

/// The span of bytes `start..end` of the source inside the string literal, where the
/// compiler can point there (nightly); otherwise the literal.
fn inline_span(literal: &LitStr, start: usize, end: usize) -> Span {
    let token = literal.token();
    let text = token.to_string();
    // the literal's text before the source: `"` or `r#…#"`
    let prefix = text.find('"').map_or(0, |i| i + 1);
    let raw = text.starts_with('r');
    if !raw {
        // escapes shift offsets; only a raw string maps byte for byte
        return literal.span();
    }
    token
        .subspan(prefix + start..prefix + end.max(start + 1))
        .unwrap_or_else(|| literal.span())
}

/// One generated pair template.
struct Generated {
    /// Function name (`C_map`, `m_map_2`).
    ident: Ident,
    template: PairTemplate,
    /// Slot order (placeholder / given symbols).
    slots: Vec<String>,
    /// The body, or why there is none.
    body: Result<Body, String>,
    /// G per placeholder: function name and body.
    jacobian: Vec<(String, Ident, Result<Body, String>)>,
    /// The first equation it serves: the entry computed (real name, e.g. `C[1]_ab`).
    unknown: String,
}

fn generate(name: &Ident, theory: &Theory, source: &str, origin: &Origin) -> TokenStream {
    let params = &theory.params;
    let n = params.len();
    let constant_index = |s: &str| -> Option<usize> {
        match s {
            "P" => Some(n),
            "d" => Some(n + 1),
            "D" => Some(n + 2),
            _ => params.iter().position(|p| p.name == s),
        }
    };
    let is_constant = |s: &str| constant_index(s).is_some();

    // Derivation at the file's values; the templates do not depend on them (every layer of
    // a deep network shares one), and equations at other depths find theirs by key.
    let mut generated: Vec<Generated> = Vec::new();
    let mut derivation_note = None;
    match saddle::derive::derive_forward(theory, &[]) {
        Ok(equations) => {
            let mut cache = PairCache::default();
            let mut per_field: BTreeMap<String, usize> = BTreeMap::new();
            for eq in &equations.forward {
                let Variable::Field(field, idx) = &eq.unknown else {
                    continue;
                };
                let Some(template) = pair_template(theory, eq, &mut cache) else {
                    continue;
                };
                if generated.iter().any(|g| g.template.key == template.key) {
                    continue;
                }
                let field_name = &theory.fields[*field].name;
                let count = per_field.entry(field_name.clone()).or_insert(0);
                *count += 1;
                let ident = if *count == 1 {
                    format_ident!("{}_map", field_name)
                } else {
                    format_ident!("{}_map_{}", field_name, count)
                };
                let mut slot_names: Vec<String> = template.names.keys().cloned().collect();
                for s in slots(&template.formula, &is_constant) {
                    if !slot_names.contains(&s) {
                        slot_names.push(s);
                    }
                }
                slot_names.sort();
                let slot_index = |s: &str| slot_names.iter().position(|x| x == s);
                let body = emit(&template.formula, &constant_index, &slot_index);
                let jacobian = template
                    .jacobian
                    .iter()
                    .map(|(placeholder, d)| {
                        let ident = format_ident!("{}_d_{}", ident, placeholder);
                        let body = d
                            .as_ref()
                            .map_err(Clone::clone)
                            .and_then(|d| emit(d, &constant_index, &slot_index));
                        (placeholder.clone(), ident, body)
                    })
                    .collect();
                let unknown = unknown_symbol(theory, *field, idx, &template);
                generated.push(Generated {
                    ident,
                    slots: slot_names,
                    body,
                    jacobian,
                    unknown,
                    template,
                });
            }
        }
        Err(e) => derivation_note = Some(e.to_string()),
    }

    let fields: Vec<TokenStream> = params
        .iter()
        .map(|p| {
            let f = format_ident!("{}", p.name);
            let doc = format!("`{}` (default {})", p.name, p.default);
            match p.ty {
                ParamType::Int => quote!(#[doc = #doc] pub #f: usize),
                ParamType::Real => quote!(#[doc = #doc] pub #f: f64),
            }
        })
        .collect();
    let defaults: Vec<TokenStream> = params
        .iter()
        .map(|p| {
            let f = format_ident!("{}", p.name);
            match p.ty {
                ParamType::Int => {
                    let v = p.default.max(0.0) as usize;
                    quote!(#f: #v)
                }
                ParamType::Real => {
                    let v = p.default;
                    quote!(#f: #v)
                }
            }
        })
        .collect();
    let setters: Vec<TokenStream> = params
        .iter()
        .map(|p| {
            let f = format_ident!("{}", p.name);
            let setter = format_ident!("with_{}", p.name);
            let doc = format!("This theory with `{}` set to `value`.", p.name);
            let ty = match p.ty {
                ParamType::Int => quote!(usize),
                ParamType::Real => quote!(f64),
            };
            quote! {
                #[doc = #doc]
                #[must_use]
                pub fn #setter(mut self, value: #ty) -> Self {
                    self.#f = value;
                    self
                }
            }
        })
        .collect();
    let values: Vec<TokenStream> = params
        .iter()
        .map(|p| {
            let f = format_ident!("{}", p.name);
            quote!(self.#f as f64)
        })
        .collect();
    let param_names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();

    let theory_name = &theory.name;
    let file_name = match origin {
        Origin::File(_) => format!("{}.action", theory.name),
        Origin::Inline => format!("{name}.action"),
    };
    let source_tokens = match origin {
        Origin::File(path) => quote!(include_str!(#path)),
        Origin::Inline => quote!(#source),
    };

    let mut functions = Vec::new();
    let mut table = Vec::new();
    let mut jacobian_table = Vec::new();
    let mut summary = Vec::new();
    for g in &generated {
        let ident = &g.ident;
        let unicode = formula(
            &real_names(&g.template.formula, &g.template.names),
            Style::Unicode,
        );
        let latex = formula(
            &real_names(&g.template.formula, &g.template.names),
            Style::Latex,
        );
        let slot_doc: Vec<String> = g
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let real = g
                    .template
                    .names
                    .get(s)
                    .cloned()
                    .unwrap_or_else(|| s.clone());
                format!("- `s[{i}]`: `{s}` (for {}: `{real}`)", g.unknown)
            })
            .collect();
        let unknown = &g.unknown;
        match &g.body {
            Ok(body) => {
                let how = if closed_form(&g.template.formula) {
                    "in closed form"
                } else {
                    "by Gauss–Hermite quadrature of generated integrands (order 80)"
                };
                summary.push(format!(
                    "- [`Self::{ident}`]: `{unknown}` {how} ({} operations as a tree, {} shared)",
                    body.tree_ops, body.shared_ops
                ));
                let doc = format!(
                    "The pair formula of `{unknown}` (and of every entry with the same template), \
                     derived at compile time:\n\n`{unknown}` = {unicode}\n\n```latex\n{latex}\n```\n\n\
                     Constants `c`: the parameters in declaration order, then P, d, D \
                     ([`Self::constants`]). Entries `s`:\n{slots}\n\n\
                     Operations: {tree} as a tree, {shared} with common subexpressions shared.",
                    slots = slot_doc.join("\n"),
                    tree = body.tree_ops,
                    shared = body.shared_ops,
                );
                let tokens = &body.tokens;
                functions.push(quote! {
                    #[doc = #doc]
                    #[allow(non_snake_case, unused_variables, clippy::all)]
                    #[inline]
                    pub fn #ident<D>(c: &[f64], s: &[D], same: bool) -> D
                    where
                        D: ::saddle::generated::num_dual::DualNum<Primitive = f64> + Copy,
                    {
                        #[allow(unused_imports)]
                        use ::saddle::generated::num_dual::DualNum as _;
                        #tokens
                    }
                });
                let key = &g.template.key;
                let closed = closed_form(&g.template.formula);
                let slot_strs: Vec<&str> = g.slots.iter().map(String::as_str).collect();
                table.push(quote! {
                    ::saddle::generated::NativePairMap {
                        key: #key,
                        slots: &[#(#slot_strs),*],
                        eval: |c, s, same| Self::#ident::<f64>(c, s, same),
                        eval_dual: |c, s, same| Self::#ident::<::saddle::generated::num_dual::Dual64>(c, s, same),
                        closed_form: #closed,
                    }
                });
            }
            Err(why) => summary.push(format!(
                "- `{unknown}`: interpreted at run time ({why}): {unicode}"
            )),
        }
        for (placeholder, dident, body) in &g.jacobian {
            let Ok(body) = body else { continue };
            let Some(d) = g
                .template
                .jacobian
                .get(placeholder)
                .and_then(|d| d.as_ref().ok())
            else {
                continue;
            };
            let real = g
                .template
                .names
                .get(placeholder)
                .cloned()
                .unwrap_or_else(|| placeholder.clone());
            let unicode = formula(&real_names(d, &g.template.names), Style::Unicode);
            let latex = formula(&real_names(d, &g.template.names), Style::Latex);
            let doc = format!(
                "G: ∂`{unknown}`/∂`{real}` (full-matrix convention: an off-diagonal entry \
                 counts half for (αβ) and half for (βα)), the derivative of [`Self::{ident}`] \
                 in its slot `{placeholder}`:\n\n{unicode}\n\n```latex\n{latex}\n```\n\n\
                 Arguments as [`Self::{ident}`]'s. Operations: {} as a tree, {} shared.",
                body.tree_ops, body.shared_ops
            );
            let key = &g.template.key;
            if g.body.is_ok() {
                jacobian_table.push(quote! {
                    ::saddle::generated::NativePairJacobian {
                        key: #key,
                        slot: #placeholder,
                        eval: |c, s, same| Self::#dident::<f64>(c, s, same),
                    }
                });
            }
            let tokens = &body.tokens;
            functions.push(quote! {
                #[doc = #doc]
                #[allow(non_snake_case, unused_variables, clippy::all)]
                #[inline]
                pub fn #dident<D>(c: &[f64], s: &[D], same: bool) -> D
                where
                    D: ::saddle::generated::num_dual::DualNum<Primitive = f64> + Copy,
                {
                    #[allow(unused_imports)]
                    use ::saddle::generated::num_dual::DualNum as _;
                    #tokens
                }
            });
        }
    }
    if let Some(why) = derivation_note {
        summary.push(format!(
            "- nothing generated: the derivation failed ({why})"
        ));
    }
    let param_doc: Vec<String> = params
        .iter()
        .map(|p| {
            let ty = match p.ty {
                ParamType::Int => "usize",
                ParamType::Real => "f64",
            };
            format!("| `{}` | `{ty}` | {} |", p.name, p.default)
        })
        .collect();
    let struct_doc = format!(
        "The theory `{theory_name}`, derived at compile time by `saddle_macros::theory!`.\n\n\
         | parameter | type | default |\n|---|---|---|\n{}\n\n\
         Pair formulas generated (the NNGP solver runs them in place of the interpreter; \
         equations the fused SIMD kernel maps cover keep that faster path):\n{}",
        param_doc.join("\n"),
        summary.join("\n")
    );
    quote! {
        #[doc = #struct_doc]
        #[derive(Debug, Clone, Copy, PartialEq)]
        #[allow(non_snake_case)]
        pub struct #name {
            #(#fields,)*
        }

        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self { #(#defaults,)* }
            }
        }

        impl ::saddle::generated::GeneratedTheory for #name {
            const NAME: &'static str = #theory_name;
            const SOURCE: &'static str = #source_tokens;
            const PARAMS: &'static [&'static str] = &[#(#param_names),*];
            const PAIR_MAPS: &'static [::saddle::generated::NativePairMap] = &[#(#table),*];
            const PAIR_JACOBIANS: &'static [::saddle::generated::NativePairJacobian] = &[#(#jacobian_table),*];

            fn theory() -> &'static ::saddle::Theory {
                static THEORY: ::std::sync::OnceLock<::saddle::Theory> = ::std::sync::OnceLock::new();
                THEORY.get_or_init(|| {
                    ::saddle::compile(Self::SOURCE, #file_name)
                        .expect("the theory was checked when the crate was compiled")
                })
            }

            fn values(&self) -> ::std::vec::Vec<f64> {
                ::std::vec![#(#values),*]
            }
        }

        #[allow(non_snake_case, dead_code)]
        impl #name {
            /// The theory's name.
            pub const NAME: &'static str = #theory_name;
            /// The `.action` source (a file is read with `include_str!`, so Cargo rebuilds
            /// when it changes).
            pub const SOURCE: &'static str = #source_tokens;

            #(#setters)*

            /// The checked theory (the same front end, run once at run time on [`Self::SOURCE`]).
            pub fn theory() -> &'static ::saddle::Theory {
                <Self as ::saddle::generated::GeneratedTheory>::theory()
            }

            /// The constants `c` of the generated pair formulas: the parameters in declaration
            /// order, then P (patterns), d (input features), D (outputs; NaN when unknown).
            pub fn constants(&self, patterns: usize, inputs: usize, outputs: ::core::option::Option<usize>) -> ::std::vec::Vec<f64> {
                ::saddle::generated::GeneratedTheory::constants(self, patterns, inputs, outputs)
            }

            /// The parameter values as `--set` overrides for the run-time solvers.
            pub fn overrides(&self) -> ::std::vec::Vec<(::std::string::String, f64)> {
                ::saddle::generated::GeneratedTheory::overrides(self)
            }

            /// NNGP solver settings with these parameter values and the generated formulas.
            pub fn settings(&self) -> ::saddle::solve::nngp::NngpSettings {
                ::saddle::solve::nngp::NngpSettings {
                    overrides: ::saddle::generated::GeneratedTheory::overrides(self),
                    native: <Self as ::saddle::generated::GeneratedTheory>::PAIR_MAPS,
                    ..::core::default::Default::default()
                }
            }

            /// NNGP kernels and mean fields of every layer / time step on inputs `x` (P×d).
            pub fn nngp(
                &self,
                x: ::saddle::generated::ndarray::ArrayView2<f64>,
            ) -> ::core::result::Result<::saddle::solve::nngp::Kernels, ::saddle::solve::nngp::NngpError> {
                ::saddle::solve::nngp::nngp_kernels(Self::theory(), x, None, &self.settings())
            }

            /// GP prediction at infinite width: kernels on train ∪ test, then regression of
            /// `y` (P×D) with the readout noise the action states; `y_test` adds test metrics.
            pub fn predict(
                &self,
                x: ::saddle::generated::ndarray::ArrayView2<f64>,
                y: ::saddle::generated::ndarray::ArrayView2<f64>,
                x_test: ::saddle::generated::ndarray::ArrayView2<f64>,
                y_test: ::core::option::Option<::saddle::generated::ndarray::ArrayView2<f64>>,
            ) -> ::core::result::Result<::saddle::solve::predict::NngpPrediction, ::saddle::solve::predict::PredictError> {
                ::saddle::solve::predict::nngp_predict(Self::theory(), x, y, x_test, y_test, &self.settings())
            }

            /// The finite-width linearised system (THEORY.md §4.4) at these parameter values,
            /// from the NNGP point the generated formulas compute.
            pub fn linearised(
                &self,
                x: ::saddle::generated::ndarray::ArrayView2<f64>,
                y: ::saddle::generated::ndarray::ArrayView2<f64>,
            ) -> ::core::result::Result<::saddle::solve::fluctuation::Fluctuations, ::saddle::solve::fluctuation::FluctuationError> {
                let settings = ::saddle::solve::fluctuation::FluctuationSettings {
                    overrides: ::saddle::generated::GeneratedTheory::overrides(self),
                    native: <Self as ::saddle::generated::GeneratedTheory>::PAIR_MAPS,
                    ..::core::default::Default::default()
                };
                ::saddle::solve::fluctuation::linear_response(Self::theory(), x, Some(y), &settings)
            }

            /// The finite-width saddle point (MAP kernels) at these parameter values, by the
            /// scalable solver ([`::saddle::finite_width::map_kernels`]), from the NNGP point
            /// the generated formulas compute.
            pub fn saddle_point(
                &self,
                x: ::saddle::generated::ndarray::ArrayView2<f64>,
                y: ::saddle::generated::ndarray::ArrayView2<f64>,
            ) -> ::core::result::Result<::saddle::finite_width::MapSolution, ::saddle::finite_width::FiniteWidthError> {
                let settings = ::saddle::finite_width::MapSettings {
                    overrides: ::saddle::generated::GeneratedTheory::overrides(self),
                    native: <Self as ::saddle::generated::GeneratedTheory>::PAIR_MAPS,
                    ..::core::default::Default::default()
                };
                ::saddle::finite_width::map_kernels(Self::theory(), x, y, None, &settings)
            }

            #(#functions)*
        }
    }
}

/// Whether a formula holds no Gaussian expectation.
fn closed_form(formula: &egg::RecExpr<Math>) -> bool {
    !formula
        .as_ref()
        .iter()
        .any(|n| matches!(n, Math::Expect1(_) | Math::Expect2(_)))
}

/// The entry a template's first equation computes, as a symbol (`C[1]_ab`, `m[2]_a`).
fn unknown_symbol(theory: &Theory, field: usize, idx: &[i64], template: &PairTemplate) -> String {
    let f = &theory.fields[field];
    let suffix = if template.names.keys().any(|k| k.ends_with("_ab"))
        || f.kind != saddle::check::ir::FieldKind::Mean
    {
        "ab"
    } else {
        "a"
    };
    if idx.is_empty() {
        format!("{}_{suffix}", f.name)
    } else {
        let idx: Vec<String> = idx.iter().map(i64::to_string).collect();
        format!("{}[{}]_{suffix}", f.name, idx.join(","))
    }
}

/// `expr` with placeholders renamed to the entries of the first equation (for the docs).
fn real_names(expr: &egg::RecExpr<Math>, names: &BTreeMap<String, String>) -> egg::RecExpr<Math> {
    expr.as_ref()
        .iter()
        .map(|node| match node {
            Math::Symbol(s) => match names.get(s.as_str()) {
                Some(real) => Math::Symbol(real.as_str().into()),
                None => node.clone(),
            },
            other => other.clone(),
        })
        .collect::<Vec<_>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion of a one-layer erf theory, pretty-printed: code generation changes show
    /// up in review.
    #[test]
    fn expansion_of_a_deep_erf_theory() {
        let source = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/deep_erf.action"
        ))
        .expect("the example exists");
        let literal = LitStr::new(&source, Span::call_site());
        let tokens = expand(quote!(DeepErf = #literal)).expect("expands");
        let file: syn::File = syn::parse2(tokens).expect("the expansion is Rust");
        let pretty = prettyplease::unparse(&file);
        // the sharing is real: fewer operations than the tree
        assert!(pretty.contains("operations as a tree"));
        insta::assert_snapshot!(pretty);
    }

    #[test]
    fn a_file_with_a_mistake_is_an_error_naming_file_line_col() {
        let path = "../tests/diagnostics/err_unknown_name.action";
        let error = expand(quote!(Bad = #path)).expect_err("does not check");
        assert!(
            error
                .to_string()
                .contains("err_unknown_name.action:15:20: unknown name `kapa`"),
            "{error}"
        );
    }

    #[test]
    fn a_file_is_a_tracked_input() {
        // `include_str!` of the file: Cargo rebuilds the crate when the theory changes
        let path = "../examples/deep_erf.action";
        let tokens = expand(quote!(DeepErf = #path))
            .expect("expands")
            .to_string();
        assert!(tokens.contains("include_str !"), "{tokens}");
        assert!(tokens.contains("examples/deep_erf.action"));
    }

    #[test]
    fn a_bad_theory_is_an_error_at_the_literal() {
        let literal = LitStr::new("theory t\nparam g = \n", Span::call_site());
        let error = expand(quote!(T = #literal)).expect_err("does not check");
        assert!(
            error
                .to_string()
                .contains("T.action:3:1: expected a number"),
            "{error}"
        );
    }
}
