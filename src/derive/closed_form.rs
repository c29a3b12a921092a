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

use egg::RecExpr;

use crate::check::ir::{Dim, Theory};
use crate::symbolic::canonical::canonical;
use crate::symbolic::diff::diff;
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
        !self
            .formula
            .as_ref()
            .iter()
            .any(|n| matches!(n, Math::Expect1(_) | Math::Expect2(_)))
    }
}

/// The pair equation of a forward equation (`None` when it has no entry-wise form).
pub fn pair_equation(
    theory: &Theory,
    eq: &FieldEquation,
    with_jacobian: bool,
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
    let simplified = simplify(&raw.expr, RuleSelection::all());
    let mut jacobian = Vec::new();
    if with_jacobian {
        let mut symbols: Vec<String> = raw
            .expr
            .as_ref()
            .iter()
            .filter_map(|n| match n {
                Math::Symbol(s) if is_field_entry(theory, s.as_str()) => Some(s.to_string()),
                _ => None,
            })
            .collect();
        symbols.sort();
        symbols.dedup();
        for symbol in symbols {
            let derivative = diff(&raw.expr, &symbol)
                .map_err(|e| e.to_string())
                .map(|d| {
                    // full-matrix convention: an off-diagonal covariance counts half for each of
                    // the two entries (αβ) and (βα)
                    let d = if symbol.ends_with("_ab") {
                        halve(&d)
                    } else {
                        d
                    };
                    canonical(&simplify(&d, RuleSelection::all()).expr)
                });
            jacobian.push((symbol, derivative));
        }
    }
    Some(PairEquation {
        unknown,
        formula: canonical(&simplified.expr),
        stop_reason: simplified.stop_reason,
        nodes: simplified.nodes,
        jacobian,
    })
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
