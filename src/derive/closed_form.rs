//! Forward equations per pattern pair in closed form, with their Jacobian G.
//!
//! The pair formula of an NNGP forward equation ([`super::entrywise`]) is simplified by the
//! e-graph (closed forms of the Gaussian pair expectations: arcsine law for erf, arc-cosine
//! kernel for ReLU, Φ₂ for thresholds, …); G is its derivative with respect to each entry
//! of the previous kernels, by Price's theorem inside the expectation, then simplified — for
//! erf this gives the compact ⟨φ'φ'⟩ form of THEORY.md §2. In the full-matrix convention
//! G_(αβ),(αβ) = G_(αβ),(βα) = ½ ∂K_αβ/∂c (c = the covariance of the pair), G_(αβ),(αα) =
//! ∂K_αβ/∂C_αα. Formula and G are put in [`canonical`] form, so that every layer's equation
//! reads alike.

use std::collections::{BTreeMap, HashMap};

use egg::RecExpr;

use crate::check::ir::{Dim, Theory};
use crate::symbolic::canonical::canonical;
use crate::symbolic::diff::{DiffError, diff};
use crate::symbolic::lang::{Constant, Math};
use crate::symbolic::rules::RuleSelection;
use crate::symbolic::runner::{StopReason, simplify};

use super::entrywise::{Position, entry_formula, entry_symbol};
use super::equations::FieldEquation;
use super::grad::Variable;

/// A forward equation per pattern pair.
#[derive(Debug, Clone)]
pub struct PairEquation {
    /// The entry computed, e.g. `C[2]_ab`.
    pub unknown: String,
    /// Its formula, simplified (closed form where one exists), in canonical form.
    pub formula: RecExpr<Math>,
    /// Why the simplifier stopped.
    pub stop_reason: StopReason,
    /// e-graph size at the end.
    pub nodes: usize,
    /// G: (entry it is taken with respect to, derivative in the full-matrix convention).
    pub jacobian: Vec<(String, Result<RecExpr<Math>, String>)>,
}

impl PairEquation {
    /// Whether every Gaussian expectation was put in closed form.
    pub fn is_closed(&self) -> bool {
        is_closed(&self.formula)
    }
}

/// Whether a formula holds no Gaussian expectation.
fn is_closed(formula: &RecExpr<Math>) -> bool {
    !formula
        .as_ref()
        .iter()
        .any(|n| matches!(n, Math::Expect1(_) | Math::Expect2(_)))
}

/// The pair equation of a forward equation (`None` when it has no entry-wise form).
pub fn pair_equation(
    theory: &Theory,
    eq: &FieldEquation,
    with_jacobian: bool,
) -> Option<PairEquation> {
    pair_equation_cached(theory, eq, with_jacobian, &mut PairCache::default())
}

/// Simplified pair formulas by their template (field entries as placeholders): the layers of
/// a deep network and the T² blocks of a recurrent one share a handful of templates, and
/// egg, deterministic, gives each template one result. A recurrent `derive` at T = 10
/// simplified the same template a hundred times (over a minute).
#[derive(Default)]
pub struct PairCache {
    templates: HashMap<(String, bool), SimplifiedTemplate>,
}

/// A template's simplified formula and Jacobian, in placeholder names.
#[derive(Clone)]
struct SimplifiedTemplate {
    formula: RecExpr<Math>,
    stop_reason: StopReason,
    nodes: usize,
    jacobian: BTreeMap<String, Result<RecExpr<Math>, String>>,
}

/// [`pair_equation`] sharing the simplification of equal templates through `cache`.
pub fn pair_equation_cached(
    theory: &Theory,
    eq: &FieldEquation,
    with_jacobian: bool,
    cache: &mut PairCache,
) -> Option<PairEquation> {
    let nngp = eq.nngp.as_ref().ok()?;
    let position = if nngp.shape.cols == Dim::One {
        Position::First
    } else {
        Position::Pair
    };
    let raw = entry_formula(theory, nngp, position).ok()?;
    let Variable::Field(field, idx) = &eq.unknown else {
        return None;
    };
    let unknown = entry_symbol(&theory.fields[*field].name, idx, position);
    // Every layer is simplified in the same names (`C[2]_ab` → `K0_ab`), so that egg's
    // choices between equal-cost forms, and with them the printed shape, agree across layers.
    let (template, names) = placeholders(theory, &raw.expr);
    let key = (template.to_string(), with_jacobian);
    let simplified = match cache.templates.get(&key) {
        Some(done) => done.clone(),
        None => {
            let done = simplify_template(&template, &names, with_jacobian);
            cache.templates.insert(key, done.clone());
            done
        }
    };
    let mut symbols: Vec<(&String, &String)> = names.iter().collect();
    symbols.sort_by_key(|(_, real)| real.as_str());
    let jacobian = symbols
        .into_iter()
        .filter_map(|(placeholder, symbol)| {
            let derivative = simplified.jacobian.get(placeholder)?;
            Some((
                symbol.clone(),
                derivative
                    .as_ref()
                    .map(|d| rename(d, &names))
                    .map_err(Clone::clone),
            ))
        })
        .collect();
    Some(PairEquation {
        unknown,
        formula: rename(&simplified.formula, &names),
        stop_reason: simplified.stop_reason,
        nodes: simplified.nodes,
        jacobian,
    })
}

/// A forward equation's pair formula in placeholder names (`K0_ab`, `K0_aa`, … for the
/// entries it reads; given matrices keep their names `G0_ab`): the unit the code generator
/// emits one function for. Every layer of a deep network shares one template.
#[derive(Debug, Clone)]
pub struct PairTemplate {
    /// The raw template (before simplification) as an s-expression: the key under which the
    /// run time finds code generated for it ([`template_key`]).
    pub key: String,
    /// The simplified formula in placeholder names.
    pub formula: RecExpr<Math>,
    /// G per placeholder (full-matrix convention), or why it is not available.
    pub jacobian: BTreeMap<String, Result<RecExpr<Math>, String>>,
    /// Placeholder → the entry it stands for in this equation (`K0_ab` → `C[1]_ab`).
    pub names: BTreeMap<String, String>,
}

/// The key of a raw pair formula ([`super::entrywise::entry_formula`]): its placeholder
/// template as an s-expression, with the placeholder → entry map.
pub fn template_key(theory: &Theory, raw: &RecExpr<Math>) -> (String, BTreeMap<String, String>) {
    let (template, names) = placeholders(theory, raw);
    (template.to_string(), names)
}

/// The pair template of a forward equation, simplified (sharing `cache`), with G; `None`
/// when the equation has no entry-wise form.
pub fn pair_template(
    theory: &Theory,
    eq: &FieldEquation,
    cache: &mut PairCache,
) -> Option<PairTemplate> {
    let nngp = eq.nngp.as_ref().ok()?;
    let position = if nngp.shape.cols == Dim::One {
        Position::First
    } else {
        Position::Pair
    };
    let raw = entry_formula(theory, nngp, position).ok()?;
    let (template, names) = placeholders(theory, &raw.expr);
    let key = template.to_string();
    let simplified = cache
        .templates
        .entry((key.clone(), true))
        .or_insert_with(|| simplify_template(&template, &names, true))
        .clone();
    Some(PairTemplate {
        key,
        formula: simplified.formula,
        jacobian: simplified.jacobian,
        names,
    })
}

/// Simplifies a template and, with `with_jacobian`, its derivative with respect to each
/// placeholder (canonical forms, placeholder names).
fn simplify_template(
    template: &RecExpr<Math>,
    names: &BTreeMap<String, String>,
    with_jacobian: bool,
) -> SimplifiedTemplate {
    let simplified = simplify(template, RuleSelection::all());
    let mut jacobian = BTreeMap::new();
    if with_jacobian {
        for placeholder in names.keys() {
            // Price's theorem on the expectation, or, where that needs ⟨δ′ φ⟩ (the diagonal
            // of sign/step), the derivative of the closed form found for it.
            let derivative = diff(template, placeholder)
                .or_else(|e| match e {
                    DiffError::DeltaDerivative if is_closed(&simplified.expr) => {
                        diff(&simplified.expr, placeholder).map_err(|_| DiffError::DeltaDerivative)
                    }
                    e => Err(e),
                })
                .map_err(|e| e.to_string())
                .map(|d| {
                    // full-matrix convention: an off-diagonal covariance counts half for each of
                    // the two entries (αβ) and (βα)
                    let d = if placeholder.ends_with("_ab") {
                        halve(&d)
                    } else {
                        d
                    };
                    canonical(&simplify(&d, RuleSelection::all()).expr)
                });
            jacobian.insert(placeholder.clone(), derivative);
        }
    }
    SimplifiedTemplate {
        formula: canonical(&simplified.expr),
        stop_reason: simplified.stop_reason,
        nodes: simplified.nodes,
        jacobian,
    }
}

/// `expr` with its field entries renamed to placeholders `K<i>_<entry>` (`i` counts the
/// fields in order of appearance), and the map from placeholder to real name.
pub fn placeholders(
    theory: &Theory,
    expr: &RecExpr<Math>,
) -> (RecExpr<Math>, BTreeMap<String, String>) {
    let mut heads: Vec<String> = Vec::new();
    let mut names = BTreeMap::new();
    let mut inverse = BTreeMap::new();
    for node in expr.as_ref() {
        if let Math::Symbol(s) = node
            && is_field_entry(theory, s.as_str())
            && let Some((head, suffix)) = s.as_str().rsplit_once('_')
        {
            let i = heads.iter().position(|h| h == head).unwrap_or_else(|| {
                heads.push(head.to_string());
                heads.len() - 1
            });
            let placeholder = format!("K{i}_{suffix}");
            names.insert(placeholder.clone(), s.to_string());
            inverse.insert(s.to_string(), placeholder);
        }
    }
    (rename(expr, &inverse), names)
}

/// `expr` with the symbols named in `map` renamed.
fn rename(expr: &RecExpr<Math>, map: &BTreeMap<String, String>) -> RecExpr<Math> {
    expr.as_ref()
        .iter()
        .map(|node| match node {
            Math::Symbol(s) => match map.get(s.as_str()) {
                Some(name) => Math::Symbol(name.as_str().into()),
                None => node.clone(),
            },
            _ => node.clone(),
        })
        .collect::<Vec<_>>()
        .into()
}

fn is_field_entry(theory: &Theory, symbol: &str) -> bool {
    let Some((head, suffix)) = symbol.rsplit_once('_') else {
        return false;
    };
    let name = head.split_once('[').map_or(head, |(n, _)| n);
    ["ab", "aa", "bb", "a", "b"].contains(&suffix) && theory.field(name).is_some()
}

/// `½ · e`
fn halve(e: &RecExpr<Math>) -> RecExpr<Math> {
    let mut out = e.clone();
    let root = egg::Id::from(out.as_ref().len().saturating_sub(1));
    let half = out.add(Math::Num(Constant(num_rational::Rational64::new(1, 2))));
    out.add(Math::Mul([half, root]));
    out
}
