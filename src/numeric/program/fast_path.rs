//! Fast-path recognition: a compiled formula that is `scale · K_φ(C_αα, C_ββ, C_αβ) + offset`
//! with zero means becomes a [`PairKernelMap`] (closed forms, the fused chain, the Mehler
//! expansion of a smooth user function).

use num_dual::Dual2_64;

use super::ops::{
    Integrand, Op, PairOp, Program, const_value, eval_in_x, is_smooth_in_x, same_activation,
};
use crate::numeric::activation::{Activation, CustomActivation};
use crate::numeric::kernel_map::PairKernelMap;

impl Program {
    /// The program as `scale · K_φ(slot a, slot b, slot c) + offset` (zero means, one known
    /// activation on both sides), with the slots of C_αα, C_ββ, C_αβ — the fast path.
    pub fn as_pair_kernel_map(&self) -> Option<(PairKernelMap, [usize; 3])> {
        let (scale, offset, pair) = affine_in_pair(&self.root)?;
        let activation = match (&pair.f, &pair.g) {
            (Integrand::Known(f), Integrand::Known(g))
                if same_activation(f, g) && PairKernelMap::supports(f) =>
            {
                f.clone()
            }
            // A user function: the same smooth formula in x on both sides.
            (Integrand::Formula(f), Integrand::Formula(g))
                if format!("{f:?}") == format!("{g:?}") =>
            {
                formula_activation(f)?
            }
            _ => return None,
        };
        let [mu, mv, a, b, c] = &pair.moments;
        let zero = |o: &Op| const_value(o) == Some(0.0);
        match (zero(mu), zero(mv), a, b, c) {
            (true, true, Op::Slot(a), Op::Slot(b), Op::Slot(c)) => {
                let mut map = PairKernelMap::new(activation, scale, offset);
                // a higher quadrature order asked for also raises the expansion's fallback
                map.fallback_order = map.fallback_order.max(self.quadrature.order());
                Some((map, [*a, *b, *c]))
            }
            _ => None,
        }
    }
}

/// A formula in `x` alone (constants, arithmetic, smooth functions; no slots, no δ, no nested
/// expectation) as an activation for the Hermite fast path of [`crate::numeric::kernel_map`]:
/// $(\phi,\phi',\phi'')$ by second-order dual numbers. Formulas with a kink or a jump
/// (`abs`, `sign`, `step`, `relu`) stay on the per-pair quadrature path.
fn formula_activation(op: &Op) -> Option<Activation> {
    if !is_smooth_in_x(op) {
        return None;
    }
    let formula = std::sync::Arc::new(op.clone());
    Some(Activation::Custom(CustomActivation::new(
        "φ",
        move |x: f64| {
            let value = eval_in_x(&formula, Dual2_64::from_re(x).derivative());
            [value.re, value.v1, value.v2]
        },
    )))
}

/// `op` as scale · pair + offset.
fn affine_in_pair(op: &Op) -> Option<(f64, f64, &PairOp)> {
    match op {
        Op::Pair(p) => Some((1.0, 0.0, p)),
        Op::Neg(x) => affine_in_pair(x).map(|(s, o, p)| (-s, -o, p)),
        Op::Add(x, y) => match (const_value(x), const_value(y)) {
            (Some(c), None) => affine_in_pair(y).map(|(s, o, p)| (s, o + c, p)),
            (None, Some(c)) => affine_in_pair(x).map(|(s, o, p)| (s, o + c, p)),
            _ => None,
        },
        Op::Sub(x, y) => match (const_value(x), const_value(y)) {
            (Some(c), None) => affine_in_pair(y).map(|(s, o, p)| (-s, c - o, p)),
            (None, Some(c)) => affine_in_pair(x).map(|(s, o, p)| (s, o - c, p)),
            _ => None,
        },
        Op::Mul(x, y) => match (const_value(x), const_value(y)) {
            (Some(c), None) => affine_in_pair(y).map(|(s, o, p)| (c * s, c * o, p)),
            (None, Some(c)) => affine_in_pair(x).map(|(s, o, p)| (c * s, c * o, p)),
            _ => None,
        },
        Op::Div(x, y) => {
            const_value(y).and_then(|c| affine_in_pair(x).map(|(s, o, p)| (s / c, o / c, p)))
        }
        _ => None,
    }
}
