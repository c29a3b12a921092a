//! Which sub-expressions depend on a variable, indexed once per expression: the mentions of
//! every field and conjugate entry, so that a gradient skips what cannot depend on it.

use std::collections::HashMap;

use crate::check::ir::{Covariance, Expr, ExprKind, IndexExpr};

use super::*;

/// Which entries each node of one expression may mention, by the node's address: per field
/// or conjugate, the lexicographic range of the index lists below the node (any index for a
/// time family whose joint covariance an expectation uses). A gradient skips a node whose
/// ranges exclude its variable: the partial sums of an unrolled `sum(l in 1..=L, …)`, a
/// chain L deep, mention the layers up to their own only, so the gradient with respect to
/// layer l stops at once on each of those below l instead of walking it.
///
/// Addresses are stable because the expression is borrowed for the index's lifetime: no
/// other expression can live at the address of one of its nodes meanwhile, so a lookup of
/// any other expression (one built while differentiating) finds nothing and is not pruned.
pub struct DependenceIndex<'e> {
    pub(super) mentions: HashMap<*const Expr, Vec<Mention>>,
    pub(super) _expression: std::marker::PhantomData<&'e Expr>,
}

/// The entries of one field (`conjugate` false) or conjugate mentioned below a node.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Mention {
    pub(super) conjugate: bool,
    pub(super) id: usize,
    /// `None`: any index.
    pub(super) range: Option<(Vec<i64>, Vec<i64>)>,
}

impl<'e> DependenceIndex<'e> {
    /// Indexes every node of `e`.
    pub fn new(e: &'e Expr) -> Self {
        let mut index = DependenceIndex {
            mentions: HashMap::new(),
            _expression: std::marker::PhantomData,
        };
        index.visit(e);
        index
    }

    pub(super) fn visit(&mut self, e: &Expr) -> Vec<Mention> {
        let constants = |indices: &[IndexExpr]| indices.iter().map(|i| i.constant).collect();
        let single = |idx: Vec<i64>| Some((idx.clone(), idx));
        let own = match &e.kind {
            ExprKind::Field { field, indices } => Some((false, *field, single(constants(indices)))),
            ExprKind::Conjugate { conj, indices } => {
                Some((true, *conj, single(constants(indices))))
            }
            ExprKind::Expectation {
                cov: Covariance::Family(f),
                ..
            } => Some((false, *f, None)),
            _ => None,
        };
        let mut mentions = Vec::new();
        if let Some((conjugate, id, range)) = own {
            mentions.push(Mention {
                conjugate,
                id,
                range,
            });
        }
        let mut children = Vec::new();
        crate::check::for_each_child(e, |c| children.push(c));
        for child in children {
            for mention in self.visit(child) {
                merge(&mut mentions, mention);
            }
        }
        self.mentions.insert(e as *const Expr, mentions.clone());
        mentions
    }

    /// Whether `e` (a node of the indexed expression) certainly does not mention `var`;
    /// false for any other expression.
    pub(super) fn excludes(&self, e: &Expr, var: &Variable) -> bool {
        let Some(mentions) = self.mentions.get(&(e as *const Expr)) else {
            return false;
        };
        let (conjugate, id, idx) = match var {
            Variable::Field(f, idx) => (false, *f, idx),
            Variable::Conjugate(c, idx) => (true, *c, idx),
        };
        !mentions.iter().any(|m| {
            m.conjugate == conjugate
                && m.id == id
                && m.range
                    .as_ref()
                    .is_none_or(|(low, high)| low <= idx && idx <= high)
        })
    }
}

/// Adds `mention` to `mentions`, widening the range of the same field or conjugate.
pub(super) fn merge(mentions: &mut Vec<Mention>, mention: Mention) {
    match mentions
        .iter_mut()
        .find(|m| m.conjugate == mention.conjugate && m.id == mention.id)
    {
        None => mentions.push(mention),
        Some(existing) => {
            existing.range = match (existing.range.take(), mention.range) {
                (Some((low, high)), Some((l, h))) => Some((low.min(l), high.max(h))),
                _ => None,
            }
        }
    }
}
