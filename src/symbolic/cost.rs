//! The extraction cost: few and cheap operations, closed forms before expectations.
//!
//! The cost of a term is the sum of its node weights ([`node_weight`]):
//!
//! | nodes | weight |
//! |---|---|
//! | integers, symbols, `pi` | 1 |
//! | other rationals, `*`, `neg`, `T` | 2 |
//! | `+ -`, `abs`, `tr` | 3 |
//! | `/`, `sqrt`, `sign`, `step`, `relu` | 4 |
//! | `^` | 5 |
//! | `exp ln` | 8 |
//! | `erf tanh asin acos atan`, `inv`, `logdet` | 10 |
//! | `Phi` | 12, `delta` 20, `Phi2` 40 |
//! | `E1` | 10⁶, `E2` 10⁷ |
//!
//! so any closed form beats an `E1`/`E2` node (a closed form would need a million nodes to
//! lose). Ties are broken by a structural hash of the printed term ([`Cost::tie`]), which does
//! not depend on the order in which symbols were interned: extraction is deterministic.

use std::fmt::{self, Write};

use egg::{CostFunction, Id, Language};

use super::lang::Math;

/// The cost of a term: total weight, then a deterministic tie-breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cost {
    /// Sum of [`node_weight`] over the nodes of the term (saturating).
    pub weight: u64,
    /// FNV-1a hash of the term's structure, for ties only.
    pub tie: u64,
}

/// The extraction cost function of the symbolic stage (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct MathCost;

/// The weight of one node, ignoring its children.
pub fn node_weight(node: &Math) -> u64 {
    match node {
        Math::Num(c) if !c.0.is_integer() => 2,
        Math::Num(_) | Math::Symbol(_) | Math::Pi => 1,
        Math::Mul(_) | Math::Neg(_) | Math::Transpose(_) => 2,
        Math::Add(_) | Math::Sub(_) | Math::Abs(_) | Math::Trace(_) => 3,
        Math::Pow(_) => 5,
        Math::Div(_) | Math::Sqrt(_) | Math::Sign(_) | Math::Step(_) | Math::Relu(_) => 4,
        Math::Exp(_) | Math::Ln(_) => 8,
        Math::Erf(_)
        | Math::Tanh(_)
        | Math::Asin(_)
        | Math::Acos(_)
        | Math::Atan(_)
        | Math::Inverse(_)
        | Math::LogDet(_) => 10,
        Math::NormCdf(_) => 12,
        Math::Delta(_) => 20,
        Math::BvnCdf(_) => 40,
        Math::Expect1(_) => 1_000_000,
        Math::Expect2(_) => 10_000_000,
    }
}

impl CostFunction<Math> for MathCost {
    type Cost = Cost;

    fn cost<C>(&mut self, enode: &Math, mut costs: C) -> Cost
    where
        C: FnMut(Id) -> Cost,
    {
        let mut hasher = Fnv::default();
        // Writing into the hasher cannot fail; the result is ignored on purpose.
        let _ = write!(hasher, "{enode}");
        let mut weight = node_weight(enode);
        for &child in enode.children() {
            let c = costs(child);
            weight = weight.saturating_add(c.weight);
            hasher.mix(c.tie);
        }
        Cost {
            weight,
            tie: hasher.0,
        }
    }
}

/// FNV-1a over the bytes written into it.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn mix(&mut self, value: u64) {
        for byte in value.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Write for Fnv {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egg::RecExpr;

    fn cost(expr: &str) -> Cost {
        let expr: RecExpr<Math> = expr.parse().expect("test expression parses");
        MathCost.cost_rec(&expr)
    }

    #[test]
    fn closed_forms_beat_expectations() {
        let closed = cost(
            "(* (/ 2 pi) (asin (/ (* 2 (* (^ s 2) c)) (sqrt (* (+ 1 (* 2 (* (^ s 2) a))) (+ 1 (* 2 (* (^ s 2) b))))))))",
        );
        let node = cost("(E2 (erf (* s x)) (erf (* s x)) 0 0 a b c)");
        assert!(closed < node);
        assert!(cost("(Phi2 h k r)") < cost("(E1 (step x) m v)"));
        assert!(cost("(E1 (tanh x) m v)") < node);
    }

    #[test]
    fn prefers_few_and_cheap_operations() {
        assert!(cost("a") < cost("(* 1 a)"));
        assert!(cost("(+ a b)") < cost("(exp (ln (+ a b)))"));
        assert!(cost("(sqrt a)") < cost("(asin a)"));
    }

    #[test]
    fn ties_are_broken_by_structure_not_by_interning() {
        let (ab, ba) = (cost("(+ a b)"), cost("(+ b a)"));
        assert_eq!(ab.weight, ba.weight);
        assert_ne!(ab.tie, ba.tie);
        assert_eq!(ab, cost("(+ a b)"));
    }
}
