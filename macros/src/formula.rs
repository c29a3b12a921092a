//! A derived pair formula (`RecExpr<Math>`, closed form) as the body of a Rust function
//! generic over `num_dual::DualNum<Primitive = f64>`.
//!
//! egg's extraction returns a tree: a subterm used twice (the `√((1 + π/2·C_αα)(1 + π/2·C_ββ))`
//! of the erf map and of its G) is written twice. The emitter hash-conses the nodes, so every
//! distinct subterm is computed once, in a `let`; the operation counts of the tree and of the
//! shared form are returned for the generated doc comment.
//!
//! In the body `c: &[f64]` holds the constants (parameters, then P, d, D), `s: &[D]` the
//! entries in slot order and `same` whether the pair is diagonal (Kronecker δ).

use std::collections::HashMap;

use egg::{Id, Language, RecExpr};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use saddle::symbolic::lang::Math;

/// A function body and its operation counts.
pub struct Body {
    /// `let` statements and the final expression.
    pub tokens: TokenStream,
    /// Operations in the formula as a tree (what the interpreter walks).
    pub tree_ops: usize,
    /// Operations after common subexpressions are shared.
    pub shared_ops: usize,
}

/// Emits `expr`; `constant` gives a symbol's index in `c`, `slot` its index in `s`. Fails
/// (with the reason) on what has no scalar closed form: a Gaussian expectation left for
/// quadrature, a Dirac δ, matrix operations.
pub fn emit(
    expr: &RecExpr<Math>,
    constant: &dyn Fn(&str) -> Option<usize>,
    slot: &dyn Fn(&str) -> Option<usize>,
) -> Result<Body, String> {
    emit_in(expr, constant, slot, false)
}

/// [`emit`]; inside an integrand (`in_integrand`) the symbol `x` is the closure's argument.
fn emit_in(
    expr: &RecExpr<Math>,
    constant: &dyn Fn(&str) -> Option<usize>,
    slot: &dyn Fn(&str) -> Option<usize>,
    in_integrand: bool,
) -> Result<Body, String> {
    let nodes = expr.as_ref();
    if nodes.is_empty() {
        return Err("an empty formula".into());
    }
    // hash-consing: canonical[i] is the first node equal to node i (children canonical)
    let mut canonical: Vec<usize> = Vec::with_capacity(nodes.len());
    let mut seen: HashMap<Math, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let key = node
            .clone()
            .map_children(|c| Id::from(canonical[usize::from(c)]));
        let first = *seen.entry(key).or_insert(i);
        canonical.push(first);
    }
    let root = canonical[nodes.len() - 1];
    // tree size: operations counted as often as the tree repeats them
    let mut tree: Vec<usize> = vec![0; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let children: usize = node
            .children()
            .iter()
            .map(|c| tree[usize::from(*c)])
            .fold(0, usize::saturating_add);
        tree[i] = if is_leaf(node) {
            0
        } else {
            children.saturating_add(1)
        };
    }
    // reachable canonical operation nodes, in order (children first)
    let mut reachable = vec![false; nodes.len()];
    reachable[root] = true;
    for i in (0..nodes.len()).rev() {
        if reachable[i] && canonical[i] == i {
            // integrand bodies are emitted inside their closures
            let skip = match nodes[i] {
                Math::Expect1(_) => 1,
                Math::Expect2(_) => 2,
                _ => 0,
            };
            for c in &nodes[i].children()[skip..] {
                reachable[canonical[usize::from(*c)]] = true;
            }
        }
    }
    // constant subterms (`π/2`, `2/π`) folded to one number at compile time
    let mut folded: Vec<Option<f64>> = vec![None; nodes.len()];
    for i in 0..nodes.len() {
        if canonical[i] == i {
            let arg = |id: &Id| folded[canonical[usize::from(*id)]];
            folded[i] = fold(&nodes[i], arg);
        }
    }
    let mut statements = Vec::new();
    let mut shared_ops = 0;
    let mut integrand_ops = 0;
    let value = |i: usize| -> Result<TokenStream, String> {
        let node = &nodes[i];
        if let Some(v) = folded[i] {
            Ok(quote!(D::from(#v)))
        } else if in_integrand && matches!(node, Math::Symbol(s) if s.as_str() == "x") {
            Ok(quote!(x))
        } else if is_leaf(node) {
            leaf(node, constant, slot)
        } else {
            let v = format_ident!("v{}", i);
            Ok(quote!(#v))
        }
    };
    for i in 0..nodes.len() {
        if !reachable[i] || canonical[i] != i || is_leaf(&nodes[i]) || folded[i].is_some() {
            continue;
        }
        let arg = |id: &Id| value(canonical[usize::from(*id)]);
        let rhs = match &nodes[i] {
            Math::Add([a, b]) => binary(arg(a)?, arg(b)?, quote!(+)),
            Math::Sub([a, b]) => binary(arg(a)?, arg(b)?, quote!(-)),
            Math::Mul([a, b]) => binary(arg(a)?, arg(b)?, quote!(*)),
            Math::Div([a, b]) => binary(arg(a)?, arg(b)?, quote!(/)),
            Math::Neg(a) => {
                let a = arg(a)?;
                quote!(-#a)
            }
            Math::Pow([a, b]) => {
                let base = arg(a)?;
                match &nodes[canonical[usize::from(*b)]] {
                    Math::Num(n)
                        if *n.0.denom() == 1 && n.0.numer().abs() < i64::from(i32::MAX) =>
                    {
                        let n = *n.0.numer() as i32;
                        quote!(::saddle::generated::powi(#base, #n))
                    }
                    Math::Num(n) => {
                        let e = n.to_f64();
                        quote!(#base.powf(#e))
                    }
                    _ => {
                        let e = arg(b)?;
                        quote!(#base.powd(#e))
                    }
                }
            }
            Math::Exp(a) => method(arg(a)?, "exp"),
            Math::Ln(a) => method(arg(a)?, "ln"),
            Math::Tanh(a) => method(arg(a)?, "tanh"),
            Math::Atan(a) => method(arg(a)?, "atan"),
            Math::Sqrt(a) => runtime("sqrt", &[arg(a)?]),
            Math::Erf(a) => runtime("erf", &[arg(a)?]),
            Math::Asin(a) => runtime("asin", &[arg(a)?, quote!(same)]),
            Math::Acos(a) => runtime("acos", &[arg(a)?, quote!(same)]),
            Math::Abs(a) => runtime("abs", &[arg(a)?]),
            Math::Sign(a) => runtime("sign", &[arg(a)?]),
            Math::Step(a) => runtime("step", &[arg(a)?]),
            Math::Relu(a) => runtime("relu", &[arg(a)?]),
            Math::NormCdf(a) => runtime("norm_cdf", &[arg(a)?]),
            Math::BvnCdf([h, k, r]) => runtime("bvn", &[arg(h)?, arg(k)?, arg(r)?, quote!(same)]),
            // no closed form: Gauss–Hermite with the integrands generated as closures
            Math::Expect1([f, m, v]) => {
                let (body, ops) = integrand(expr, *f, constant, slot)?;
                integrand_ops += ops;
                runtime("expect1", &[body, arg(m)?, arg(v)?])
            }
            Math::Expect2([f, g, mu, mv, a, b, c]) => {
                let (fb, fo) = integrand(expr, *f, constant, slot)?;
                let (gb, go) = integrand(expr, *g, constant, slot)?;
                integrand_ops += fo + go;
                runtime(
                    "expect2",
                    &[fb, gb, arg(mu)?, arg(mv)?, arg(a)?, arg(b)?, arg(c)?],
                )
            }
            Math::Delta(_) => return Err("a Dirac δ".into()),
            other => return Err(format!("`{other}`, not a scalar operation")),
        };
        shared_ops += 1;
        let v = format_ident!("v{}", i);
        statements.push(quote!(let #v: D = #rhs;));
    }
    let result = value(root)?;
    Ok(Body {
        tokens: quote! {
            #(#statements)*
            #result
        },
        tree_ops: tree[nodes.len() - 1],
        shared_ops: shared_ops + integrand_ops,
    })
}

/// An integrand body (in `x`) as a closure `|x: D| -> D`, with its operation count.
fn integrand(
    expr: &RecExpr<Math>,
    root: Id,
    constant: &dyn Fn(&str) -> Option<usize>,
    slot: &dyn Fn(&str) -> Option<usize>,
) -> Result<(TokenStream, usize), String> {
    let sub = subexpression(expr, root);
    let body = emit_in(&sub, constant, slot, true)?;
    let tokens = body.tokens;
    Ok((quote!(|x: D| -> D { #tokens }), body.shared_ops))
}

/// The expression rooted at `root`, as its own `RecExpr`.
fn subexpression(expr: &RecExpr<Math>, root: Id) -> RecExpr<Math> {
    fn copy(
        expr: &RecExpr<Math>,
        id: Id,
        out: &mut RecExpr<Math>,
        done: &mut HashMap<Id, Id>,
    ) -> Id {
        if let Some(&new) = done.get(&id) {
            return new;
        }
        let node = expr[id].clone().map_children(|c| copy(expr, c, out, done));
        let new = out.add(node);
        done.insert(id, new);
        new
    }
    let mut out = RecExpr::default();
    copy(expr, root, &mut out, &mut HashMap::new());
    out
}

/// The value of a node whose operands are numbers, where it is one (finite).
fn fold(node: &Math, arg: impl Fn(&Id) -> Option<f64>) -> Option<f64> {
    let v = match node {
        Math::Num(n) => n.to_f64(),
        Math::Pi => std::f64::consts::PI,
        Math::Add([a, b]) => arg(a)? + arg(b)?,
        Math::Sub([a, b]) => arg(a)? - arg(b)?,
        Math::Mul([a, b]) => arg(a)? * arg(b)?,
        Math::Div([a, b]) => arg(a)? / arg(b)?,
        Math::Neg(a) => -arg(a)?,
        Math::Pow([a, b]) => arg(a)?.powf(arg(b)?),
        Math::Sqrt(a) => arg(a)?.sqrt(),
        Math::Exp(a) => arg(a)?.exp(),
        Math::Ln(a) => arg(a)?.ln(),
        _ => return None,
    };
    v.is_finite().then_some(v)
}

fn is_leaf(node: &Math) -> bool {
    matches!(node, Math::Num(_) | Math::Pi | Math::Symbol(_))
}

fn leaf(
    node: &Math,
    constant: &dyn Fn(&str) -> Option<usize>,
    slot: &dyn Fn(&str) -> Option<usize>,
) -> Result<TokenStream, String> {
    Ok(match node {
        Math::Num(n) => {
            let v = n.to_f64();
            quote!(D::from(#v))
        }
        Math::Pi => quote!(D::from(::core::f64::consts::PI)),
        Math::Symbol(s) if s.as_str() == "delta_ab" => {
            quote!(D::from(if same { 1.0 } else { 0.0 }))
        }
        Math::Symbol(s) => {
            if let Some(i) = constant(s.as_str()) {
                quote!(D::from(c[#i]))
            } else if let Some(i) = slot(s.as_str()) {
                quote!(s[#i])
            } else {
                return Err(format!("the symbol `{s}` has no value"));
            }
        }
        _ => unreachable!("leaves are numbers and symbols"),
    })
}

fn binary(a: TokenStream, b: TokenStream, op: TokenStream) -> TokenStream {
    quote!(#a #op #b)
}

fn method(a: TokenStream, name: &str) -> TokenStream {
    let m = format_ident!("{}", name);
    quote!(#a.#m())
}

fn runtime(name: &str, args: &[TokenStream]) -> TokenStream {
    let f = format_ident!("{}", name);
    quote!(::saddle::generated::#f(#(#args),*))
}

/// The entry symbols of a formula (`…_ab`, `…_aa`, `…_bb`, `…_a`, `…_b`) that are not
/// constants, sorted: the slot order of the generated function.
pub fn slots(expr: &RecExpr<Math>, is_constant: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = expr
        .as_ref()
        .iter()
        .filter_map(|n| match n {
            Math::Symbol(s)
                if s.as_str() != "delta_ab"
                    && !is_constant(s.as_str())
                    && ["_ab", "_aa", "_bb", "_a", "_b"]
                        .iter()
                        .any(|suffix| s.as_str().ends_with(suffix)) =>
            {
                Some(s.to_string())
            }
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
