//! Rewrite rules of the symbolic stage, one file per family.
//!
//! | family | file | content |
//! |---|---|---|
//! | `algebra` | [`algebra`] | ring laws (commutativity of `*` only with a scalar side), powers, `exp`/`ln`, `sqrt`, `abs` |
//! | `trig` | [`trig`] | `asin`/`acos`/`atan` relations and special values |
//! | `matrix` | [`matrix`] | transpose, trace (cyclicity, linearity, pairing), inverse, identity, `logdet` |
//! | `gaussian` | [`gaussian`], [`price`] | closed forms of `E1`/`E2` (THEORY.md §2) and of the Price-theorem derivatives |
//!
//! Every rule is *sound as a refinement*: wherever its left side is defined (real-valued,
//! finite), its right side is defined and equal. Rules that would need more (`√(ab) = √a √b`,
//! `ln(ab) = ln a + ln b`, `a/a = 1`) are guarded by the facts of
//! [`ConstantFold`](super::analysis::ConstantFold). Bodies of `E1`/`E2` are functions of the
//! free variable `x`; "free of `x`" conditions use the analysis as well.

pub mod algebra;
mod conditions;
pub mod gaussian;
pub mod matrix;
pub mod price;
mod set;
#[cfg(test)]
mod testing;
pub mod trig;

pub use set::{RuleSelection, RuleSet, UnknownRuleSet, rule_sets};

/// A rewrite of the symbolic stage (every family's rules are of this type).
pub type Rw = egg::Rewrite<crate::symbolic::lang::Math, crate::symbolic::analysis::ConstantFold>;
