//! The op tree of a compiled formula ([`Program`]) and the analyses on it: constant folding,
//! smoothness in `x`, and its value as a function of `x` alone.

use std::sync::Arc;

use num_dual::DualNum;

use crate::numeric::activation::Activation;
use crate::numeric::quad::GaussHermite;
use crate::numeric::special::ErfDual;

/// A pair-integrand recognised as a known activation, or compiled code in `x`.
#[derive(Debug, Clone)]
pub enum Integrand {
    /// A known activation (closed forms apply).
    Known(Activation),
    /// Anything else: a formula in `x` (quadrature).
    Formula(Box<Op>),
}

/// A compiled formula node.
#[derive(Debug, Clone)]
pub enum Op {
    /// A constant.
    Const(f64),
    /// The value of a slot.
    Slot(usize),
    /// The integration variable `x` (inside integrands only).
    X,
    /// Kronecker δ_αβ.
    Delta,
    /// a + b
    Add(Box<Op>, Box<Op>),
    /// a − b
    Sub(Box<Op>, Box<Op>),
    /// a · b
    Mul(Box<Op>, Box<Op>),
    /// a / b
    Div(Box<Op>, Box<Op>),
    /// a ^ b
    Pow(Box<Op>, Box<Op>),
    /// −a
    Neg(Box<Op>),
    /// A scalar function.
    Fun(Function, Box<Op>),
    /// Φ₂(h, k; ρ)
    Bvn(Box<[Op; 3]>),
    /// ⟨f(u) g(v)⟩ for (u, v) ∼ 𝒩((μ_u, μ_v), [[a, c], [c, b]]).
    Pair(Box<PairOp>),
    /// ⟨f(u)⟩ for u ∼ 𝒩(μ, v).
    Single(Box<SingleOp>),
}

/// The scalar functions of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// exp
    Exp,
    /// ln
    Ln,
    /// √
    Sqrt,
    /// erf
    Erf,
    /// tanh
    Tanh,
    /// arcsin
    Asin,
    /// arccos
    Acos,
    /// arctan
    Atan,
    /// |x|
    Abs,
    /// sign (−1 at 0)
    Sign,
    /// step (0 at 0)
    Step,
    /// max(0, x)
    Relu,
    /// standard normal CDF Φ
    NormCdf,
}

impl Function {
    /// The function on any num-dual number (kinks and jumps have derivative 0 or 1 away from
    /// the kink, as the language defines them).
    pub fn apply<D: DualNum<Primitive = f64> + Copy>(self, x: D) -> D {
        match self {
            Function::Exp => x.exp(),
            Function::Ln => x.ln(),
            Function::Sqrt => x.sqrt(),
            Function::Erf => ErfDual::erf(&x),
            Function::Tanh => x.tanh(),
            Function::Asin => x.asin(),
            Function::Acos => x.acos(),
            Function::Atan => x.atan(),
            Function::Abs => x.abs(),
            Function::Sign => D::from(if x.re() > 0.0 { 1.0 } else { -1.0 }),
            Function::Step => D::from(if x.re() > 0.0 { 1.0 } else { 0.0 }),
            Function::Relu => {
                if x.re() > 0.0 {
                    x
                } else {
                    D::zero()
                }
            }
            Function::NormCdf => ErfDual::norm_cdf(&x),
        }
    }
}

/// Operands of a pair expectation.
#[derive(Debug, Clone)]
pub struct PairOp {
    /// First integrand.
    pub f: Integrand,
    /// Second integrand.
    pub g: Integrand,
    /// Means, variances, covariance: μ_u, μ_v, a, b, c.
    pub moments: [Op; 5],
}

/// Operands of a single expectation.
#[derive(Debug, Clone)]
pub struct SingleOp {
    /// The integrand.
    pub f: Integrand,
    /// Mean and variance.
    pub moments: [Op; 2],
}

/// A compiled entry formula with its slot names.
#[derive(Debug, Clone)]
pub struct Program {
    /// The root.
    pub root: Op,
    /// Slot `i` holds the entry named `slots[i]` (`C[1]_ab`, …).
    pub slots: Vec<String>,
    /// Gauss–Hermite rule for expectations without closed form.
    pub(super) quadrature: Arc<GaussHermite>,
}

/// Whether `op` is a smooth formula of `x` alone.
pub(super) fn is_smooth_in_x(op: &Op) -> bool {
    match op {
        Op::Const(_) | Op::X => true,
        Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Div(a, b) => {
            is_smooth_in_x(a) && is_smooth_in_x(b)
        }
        // x^n for a constant n; a variable exponent of a positive base is smooth too.
        Op::Pow(a, b) => is_smooth_in_x(a) && is_smooth_in_x(b),
        Op::Neg(a) => is_smooth_in_x(a),
        Op::Fun(f, a) => {
            !matches!(
                f,
                Function::Abs | Function::Sign | Function::Step | Function::Relu
            ) && is_smooth_in_x(a)
        }
        Op::Slot(_) | Op::Delta | Op::Bvn(_) | Op::Pair(_) | Op::Single(_) => false,
    }
}

/// A formula of [`is_smooth_in_x`] at `x`.
pub(super) fn eval_in_x<D: DualNum<Primitive = f64> + Copy>(op: &Op, x: D) -> D {
    let e = |o: &Op| eval_in_x(o, x);
    match op {
        Op::Const(v) => D::from(*v),
        Op::X => x,
        Op::Add(a, b) => e(a) + e(b),
        Op::Sub(a, b) => e(a) - e(b),
        Op::Mul(a, b) => e(a) * e(b),
        Op::Div(a, b) => e(a) / e(b),
        Op::Pow(a, b) => match const_value(b) {
            Some(n) => e(a).powf(n),
            None => e(a).powd(e(b)),
        },
        Op::Neg(a) => -e(a),
        Op::Fun(f, a) => f.apply(e(a)),
        Op::Slot(_) | Op::Delta | Op::Bvn(_) | Op::Pair(_) | Op::Single(_) => D::from(f64::NAN),
    }
}

/// The value of a sub-tree made of constants only.
pub(super) fn const_value(op: &Op) -> Option<f64> {
    Some(match op {
        Op::Const(v) => *v,
        Op::Add(a, b) => const_value(a)? + const_value(b)?,
        Op::Sub(a, b) => const_value(a)? - const_value(b)?,
        Op::Mul(a, b) => const_value(a)? * const_value(b)?,
        Op::Div(a, b) => const_value(a)? / const_value(b)?,
        Op::Pow(a, b) => const_value(a)?.powf(const_value(b)?),
        Op::Neg(a) => -const_value(a)?,
        Op::Fun(f, a) => f.apply(const_value(a)?),
        _ => return None,
    })
}

/// Whether two activations are the same function.
pub(super) fn same_activation(a: &Activation, b: &Activation) -> bool {
    match (a, b) {
        (Activation::Erf { s: x }, Activation::Erf { s: y }) => x == y,
        (Activation::Step { theta: x }, Activation::Step { theta: y }) => x == y,
        (Activation::Linear, Activation::Linear)
        | (Activation::Relu, Activation::Relu)
        | (Activation::Sign, Activation::Sign)
        | (Activation::Tanh, Activation::Tanh) => true,
        _ => false,
    }
}
