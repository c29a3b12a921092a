//! Entry formulas compiled for evaluation over all pattern pairs.
//!
//! A formula of the symbolic stage (`(+ (* g (E2 …)) gb)`) is compiled once into a tree of
//! [`Op`]s: parameters and sizes become constants, entry symbols (`C[1]_ab`, `G0_aa`,
//! `m[2]_a`) become numbered *slots* that the caller fills per pair, and every Gaussian
//! expectation becomes a call into [`crate::numeric`]: a closed form where the integrand is a
//! known activation (linear, erf(s x), ReLU, sign, step(x − θ) — with means where a closed
//! form exists), Gauss–Hermite quadrature otherwise. Evaluation walks the tree without
//! allocating.

use std::collections::HashMap;

use egg::{Id, RecExpr};

use super::activation::{Activation, CustomActivation};
use super::bvn::bvn_cdf;
use super::pair::pair_expectation;
use super::quad::GaussHermite;
use super::special::ErfDual;
use crate::symbolic::lang::Math;
use num_dual::{Dual2_64, DualNum};

/// Why a formula cannot be compiled or evaluated.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProgramError {
    /// A symbol that is neither a parameter, a size nor an entry.
    #[error("the formula uses `{0}`, which has no value here")]
    UnknownSymbol(String),
    /// A construct that cannot be evaluated numerically.
    #[error("cannot evaluate {0}")]
    Unsupported(String),
    /// A Gaussian expectation that does not exist: the function has a pole on the real line
    /// or is not finite on part of it.
    #[error("⟨{function}(h)²⟩ does not exist under a Gaussian: `{function}` {singularity}")]
    DivergentExpectation {
        /// The function's name.
        function: String,
        /// Where and how.
        singularity: super::singularity::Singularity,
    },
    /// A Gaussian expectation with an invalid covariance at some pair.
    #[error(
        "a Gaussian expectation got an invalid covariance (variances {var_u}, {var_v}, covariance {cov}): the kernel is not positive semi-definite"
    )]
    InvalidCovariance {
        /// First variance.
        var_u: f64,
        /// Second variance.
        var_v: f64,
        /// Covariance.
        cov: f64,
    },
}

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
    quadrature: std::sync::Arc<GaussHermite>,
}

impl Program {
    /// Compiles `expr`; `constants` gives the value of every parameter and size symbol; any
    /// other symbol with an `_a`, `_b`, `_aa`, `_bb` or `_ab` suffix becomes a slot.
    pub fn compile(
        expr: &RecExpr<Math>,
        constants: &HashMap<String, f64>,
        quadrature_order: usize,
    ) -> Result<Self, ProgramError> {
        let quadrature = GaussHermite::shared(quadrature_order)
            .map_err(|e| ProgramError::Unsupported(e.to_string()))?;
        let mut compiler = Compiler {
            expr,
            constants,
            slots: Vec::new(),
        };
        let root_id = Id::from(expr.as_ref().len().saturating_sub(1));
        let root = compiler.op(root_id, false)?;
        Ok(Program {
            root,
            slots: compiler.slots,
            quadrature,
        })
    }

    /// Evaluates with slot values `slots` (in the order of [`Program::slots`]); `same` says
    /// whether the pair is a diagonal one (α = β).
    pub fn eval(&self, slots: &[f64], same: bool) -> Result<f64, ProgramError> {
        self.eval_dual(slots, same)
    }

    /// [`Program::eval`] on dual numbers: derivatives with respect to the slots flow through
    /// the closed forms, the bivariate normal CDF and the quadratures (num-dual).
    pub fn eval_dual<D: DualNum<Primitive = f64> + Copy>(
        &self,
        slots: &[D],
        same: bool,
    ) -> Result<D, ProgramError> {
        self.eval_op(&self.root, slots, same, D::zero())
    }

    fn eval_op<D: DualNum<Primitive = f64> + Copy>(
        &self,
        op: &Op,
        s: &[D],
        same: bool,
        x: D,
    ) -> Result<D, ProgramError> {
        let e = |o: &Op| self.eval_op(o, s, same, x);
        Ok(match op {
            Op::Const(v) => D::from(*v),
            Op::Slot(i) => s.get(*i).copied().unwrap_or(D::from(f64::NAN)),
            Op::X => x,
            Op::Delta => D::from(f64::from(u8::from(same))),
            Op::Add(a, b) => e(a)? + e(b)?,
            Op::Sub(a, b) => e(a)? - e(b)?,
            Op::Mul(a, b) => e(a)? * e(b)?,
            Op::Div(a, b) => e(a)? / e(b)?,
            Op::Pow(a, b) => match const_value(b) {
                Some(n) => e(a)?.powf(n),
                None => e(a)?.powd(e(b)?),
            },
            Op::Neg(a) => -e(a)?,
            Op::Fun(f, a) => f.apply(e(a)?),
            Op::Bvn(args) => {
                let [h, k, r] = args.as_ref();
                bvn_cdf(e(h)?, e(k)?, e(r)?)
                    .map_err(|err| ProgramError::Unsupported(err.to_string()))?
            }
            Op::Pair(p) => {
                let [mu, mv, a, b, c] = &p.moments;
                self.pair(&p.f, &p.g, [e(mu)?, e(mv)?, e(a)?, e(b)?, e(c)?], s, same)?
            }
            Op::Single(p) => {
                let [m, v] = &p.moments;
                self.single(&p.f, e(m)?, e(v)?, s, same)?
            }
        })
    }

    fn pair<D: DualNum<Primitive = f64> + Copy>(
        &self,
        f: &Integrand,
        g: &Integrand,
        [mu, mv, a, b, c]: [D; 5],
        s: &[D],
        same: bool,
    ) -> Result<D, ProgramError> {
        let (ar, br, cr) = (a.re(), b.re(), c.re());
        let invalid = || ProgramError::InvalidCovariance {
            var_u: ar,
            var_v: br,
            cov: cr,
        };
        if !(ar >= 0.0 && br >= 0.0 && cr.is_finite()) || cr * cr > ar * br * (1.0 + 1e-9) + 1e-300
        {
            return Err(invalid());
        }
        // Closed forms: identical known activations with zero means, step with any means,
        // linear with any means.
        if let (Integrand::Known(fa), Integrand::Known(ga)) = (f, g) {
            match (fa, ga) {
                (Activation::Linear, Activation::Linear) => return Ok(c + mu * mv),
                (Activation::Step { theta: t1 }, Activation::Step { theta: t2 })
                    if ar > 0.0 && br > 0.0 =>
                {
                    let rho = c / (a * b).sqrt();
                    let rho = if rho.re().abs() > 1.0 {
                        D::from(rho.re().signum())
                    } else {
                        rho
                    };
                    return bvn_cdf((mu - *t1) / a.sqrt(), (mv - *t2) / b.sqrt(), rho)
                        .map_err(|err| ProgramError::Unsupported(err.to_string()));
                }
                _ if mu.re() == 0.0 && mv.re() == 0.0 && same_activation(fa, ga) => {
                    if let Ok(v) = pair_expectation(fa, a, b, c) {
                        return Ok(v);
                    }
                }
                _ => {}
            }
        }
        // Gauss–Hermite on the shifted 2×2 Gaussian.
        if ar <= 0.0 {
            let fv = self.integrand(f, mu, s, same)?;
            return self.single(g, mv, b, s, same).map(|gv| fv * gv);
        }
        let mut err = None;
        let value = self
            .quadrature
            .expect_2d(
                |u: D| {
                    self.integrand(f, u + mu, s, same).unwrap_or_else(|e| {
                        err = Some(e);
                        D::zero()
                    })
                },
                |v: D| {
                    self.integrand(g, v + mv, s, same)
                        .unwrap_or(D::from(f64::NAN))
                },
                a,
                b,
                c,
            )
            .map_err(|_| invalid())?;
        match err {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    fn single<D: DualNum<Primitive = f64> + Copy>(
        &self,
        f: &Integrand,
        m: D,
        v: D,
        s: &[D],
        same: bool,
    ) -> Result<D, ProgramError> {
        let vr = v.re();
        if vr.is_nan() || vr < 0.0 {
            return Err(ProgramError::InvalidCovariance {
                var_u: vr,
                var_v: vr,
                cov: vr,
            });
        }
        if let Integrand::Known(act) = f {
            let positive = vr > 0.0;
            match act {
                Activation::Linear => return Ok(m),
                Activation::Step { theta } if positive => {
                    return Ok(ErfDual::norm_cdf(&((m - *theta) / v.sqrt())));
                }
                Activation::Sign if positive => {
                    return Ok(ErfDual::norm_cdf(&(m / v.sqrt())) * 2.0 - 1.0);
                }
                Activation::Erf { s: k } => {
                    return Ok(ErfDual::erf(&(m * *k / (v * (2.0 * k * k) + 1.0).sqrt())));
                }
                Activation::Relu if positive => {
                    let sd = v.sqrt();
                    let z = m / sd;
                    return Ok(m * ErfDual::norm_cdf(&z) + sd * ErfDual::norm_pdf(&z));
                }
                _ => {}
            }
        }
        let mut err = None;
        let value = self
            .quadrature
            .expect_1d(
                |u: D| {
                    self.integrand(f, u + m, s, same).unwrap_or_else(|e| {
                        err = Some(e);
                        D::zero()
                    })
                },
                v,
            )
            .map_err(|e| ProgramError::Unsupported(e.to_string()))?;
        match err {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    fn integrand<D: DualNum<Primitive = f64> + Copy>(
        &self,
        f: &Integrand,
        x: D,
        s: &[D],
        same: bool,
    ) -> Result<D, ProgramError> {
        match f {
            // plain numbers: the activation's own f64 code (no derivative bookkeeping)
            Integrand::Known(act) if D::NDERIV == 0 => Ok(D::from(act.value(x.re()))),
            Integrand::Known(act) => act
                .eval_dual(&x, 0)
                .map_err(|e| ProgramError::Unsupported(e.to_string())),
            Integrand::Formula(op) => self.eval_op(op, s, same, x),
        }
    }
}

impl Program {
    /// The program as `scale · K_φ(slot a, slot b, slot c) + offset` (zero means, one known
    /// activation on both sides), with the slots of C_αα, C_ββ, C_αβ — the fast path.
    pub fn as_pair_kernel_map(&self) -> Option<(super::kernel_map::PairKernelMap, [usize; 3])> {
        let (scale, offset, pair) = affine_in_pair(&self.root)?;
        let activation = match (&pair.f, &pair.g) {
            (Integrand::Known(f), Integrand::Known(g))
                if same_activation(f, g) && super::kernel_map::PairKernelMap::supports(f) =>
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
                let mut map = super::kernel_map::PairKernelMap::new(activation, scale, offset);
                // a higher quadrature order asked for also raises the expansion's fallback
                map.fallback_order = map.fallback_order.max(self.quadrature.order());
                Some((map, [*a, *b, *c]))
            }
            _ => None,
        }
    }
}

/// A formula in `x` alone (constants, arithmetic, smooth functions; no slots, no δ, no nested
/// expectation) as an activation for the Hermite fast path of [`super::kernel_map`]:
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

/// An integrand in `x` alone with a pole on the real line has no Gaussian expectation of
/// its square (see [`Activation::square_integrable_pole`]); formulas that read slots are
/// not scanned.
fn reject_poles(op: &Op) -> Result<(), ProgramError> {
    fn in_x_alone(op: &Op) -> bool {
        match op {
            Op::Const(_) | Op::X => true,
            Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Div(a, b) | Op::Pow(a, b) => {
                in_x_alone(a) && in_x_alone(b)
            }
            Op::Neg(a) | Op::Fun(_, a) => in_x_alone(a),
            Op::Slot(_) | Op::Delta | Op::Bvn(_) | Op::Pair(_) | Op::Single(_) => false,
        }
    }
    if !in_x_alone(op) {
        return Ok(());
    }
    // Every layer of a deep theory compiles the same formula: scan each formula once.
    static SCANNED: std::sync::OnceLock<
        std::sync::Mutex<HashMap<String, Option<super::singularity::Singularity>>>,
    > = std::sync::OnceLock::new();
    let key = format!("{op:?}");
    let cache = SCANNED.get_or_init(Default::default);
    let known = cache.lock().ok().and_then(|c| c.get(&key).copied());
    let found = match known {
        Some(found) => found,
        None => {
            let formula = std::sync::Arc::new(op.clone());
            let phi = Activation::Custom(CustomActivation::new("φ", move |x: f64| {
                [eval_in_x(&formula, x), 0.0, 0.0]
            }));
            let found = phi.square_integrable_pole(1.0);
            if let Ok(mut c) = cache.lock() {
                c.insert(key, found);
            }
            found
        }
    };
    match found {
        Some(singularity) => Err(ProgramError::DivergentExpectation {
            function: "φ".into(),
            singularity,
        }),
        None => Ok(()),
    }
}

/// Whether `op` is a smooth formula of `x` alone.
fn is_smooth_in_x(op: &Op) -> bool {
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
fn eval_in_x<D: DualNum<Primitive = f64> + Copy>(op: &Op, x: D) -> D {
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
fn const_value(op: &Op) -> Option<f64> {
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

fn same_activation(a: &Activation, b: &Activation) -> bool {
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

struct Compiler<'a> {
    expr: &'a RecExpr<Math>,
    constants: &'a HashMap<String, f64>,
    slots: Vec<String>,
}

impl Compiler<'_> {
    fn node(&self, id: Id) -> &Math {
        &self.expr[id]
    }

    fn op(&mut self, id: Id, in_integrand: bool) -> Result<Op, ProgramError> {
        let b = |o: Op| Box::new(o);
        Ok(match self.node(id).clone() {
            Math::Num(c) => Op::Const(c.to_f64()),
            Math::Pi => Op::Const(std::f64::consts::PI),
            Math::Symbol(s) => self.symbol(s.as_str(), in_integrand)?,
            Math::Add([x, y]) => {
                Op::Add(b(self.op(x, in_integrand)?), b(self.op(y, in_integrand)?))
            }
            Math::Sub([x, y]) => {
                Op::Sub(b(self.op(x, in_integrand)?), b(self.op(y, in_integrand)?))
            }
            Math::Mul([x, y]) => {
                Op::Mul(b(self.op(x, in_integrand)?), b(self.op(y, in_integrand)?))
            }
            Math::Div([x, y]) => {
                Op::Div(b(self.op(x, in_integrand)?), b(self.op(y, in_integrand)?))
            }
            Math::Pow([x, y]) => {
                Op::Pow(b(self.op(x, in_integrand)?), b(self.op(y, in_integrand)?))
            }
            Math::Neg(x) => Op::Neg(b(self.op(x, in_integrand)?)),
            Math::Exp(x) => Op::Fun(Function::Exp, b(self.op(x, in_integrand)?)),
            Math::Ln(x) => Op::Fun(Function::Ln, b(self.op(x, in_integrand)?)),
            Math::Sqrt(x) => Op::Fun(Function::Sqrt, b(self.op(x, in_integrand)?)),
            Math::Erf(x) => Op::Fun(Function::Erf, b(self.op(x, in_integrand)?)),
            Math::Tanh(x) => Op::Fun(Function::Tanh, b(self.op(x, in_integrand)?)),
            Math::Asin(x) => Op::Fun(Function::Asin, b(self.op(x, in_integrand)?)),
            Math::Acos(x) => Op::Fun(Function::Acos, b(self.op(x, in_integrand)?)),
            Math::Atan(x) => Op::Fun(Function::Atan, b(self.op(x, in_integrand)?)),
            Math::Abs(x) => Op::Fun(Function::Abs, b(self.op(x, in_integrand)?)),
            Math::Sign(x) => Op::Fun(Function::Sign, b(self.op(x, in_integrand)?)),
            Math::Step(x) => Op::Fun(Function::Step, b(self.op(x, in_integrand)?)),
            Math::Relu(x) => Op::Fun(Function::Relu, b(self.op(x, in_integrand)?)),
            Math::NormCdf(x) => Op::Fun(Function::NormCdf, b(self.op(x, in_integrand)?)),
            Math::BvnCdf([h, k, r]) => Op::Bvn(Box::new([
                self.op(h, in_integrand)?,
                self.op(k, in_integrand)?,
                self.op(r, in_integrand)?,
            ])),
            Math::Expect2([f, g, mu, mv, a, bb, c]) => Op::Pair(Box::new(PairOp {
                f: self.integrand(f)?,
                g: self.integrand(g)?,
                moments: [
                    self.op(mu, false)?,
                    self.op(mv, false)?,
                    self.op(a, false)?,
                    self.op(bb, false)?,
                    self.op(c, false)?,
                ],
            })),
            Math::Expect1([f, m, v]) => Op::Single(Box::new(SingleOp {
                f: self.integrand(f)?,
                moments: [self.op(m, false)?, self.op(v, false)?],
            })),
            other => {
                return Err(ProgramError::Unsupported(format!(
                    "`{other}` in an entry formula"
                )));
            }
        })
    }

    fn symbol(&mut self, name: &str, in_integrand: bool) -> Result<Op, ProgramError> {
        if name == "x" && in_integrand {
            return Ok(Op::X);
        }
        if name == "delta_ab" {
            return Ok(Op::Delta);
        }
        if let Some(v) = self.constants.get(name) {
            return Ok(Op::Const(*v));
        }
        let is_entry = ["_ab", "_aa", "_bb", "_a", "_b"]
            .iter()
            .any(|s| name.ends_with(s));
        if !is_entry {
            return Err(ProgramError::UnknownSymbol(name.to_string()));
        }
        let index = match self.slots.iter().position(|s| s == name) {
            Some(i) => i,
            None => {
                self.slots.push(name.to_string());
                self.slots.len() - 1
            }
        };
        Ok(Op::Slot(index))
    }

    /// Recognises a known activation in the integrand body (in `x`), else compiles it.
    fn integrand(&mut self, id: Id) -> Result<Integrand, ProgramError> {
        if let Some(act) = self.activation(id) {
            return Ok(Integrand::Known(act));
        }
        let op = self.op(id, true)?;
        reject_poles(&op)?;
        Ok(Integrand::Formula(Box::new(op)))
    }

    fn is_x(&self, id: Id) -> bool {
        matches!(self.node(id), Math::Symbol(s) if s.as_str() == "x")
    }

    /// A constant sub-expression's value (no `x`, no slots).
    fn constant(&mut self, id: Id) -> Option<f64> {
        let op = self.op(id, true).ok()?;
        fn pure(op: &Op) -> bool {
            match op {
                Op::Const(_) => true,
                Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Div(a, b) | Op::Pow(a, b) => {
                    pure(a) && pure(b)
                }
                Op::Neg(a) | Op::Fun(_, a) => pure(a),
                _ => false,
            }
        }
        if !pure(&op) {
            return None;
        }
        fn value(op: &Op) -> f64 {
            match op {
                Op::Const(v) => *v,
                Op::Add(a, b) => value(a) + value(b),
                Op::Sub(a, b) => value(a) - value(b),
                Op::Mul(a, b) => value(a) * value(b),
                Op::Div(a, b) => value(a) / value(b),
                Op::Pow(a, b) => value(a).powf(value(b)),
                Op::Neg(a) => -value(a),
                Op::Fun(f, a) => f.apply(value(a)),
                _ => f64::NAN,
            }
        }
        let v = value(&op);
        v.is_finite().then_some(v)
    }

    fn activation(&mut self, id: Id) -> Option<Activation> {
        match self.node(id).clone() {
            _ if self.is_x(id) => Some(Activation::Linear),
            Math::Relu(a) if self.is_x(a) => Some(Activation::Relu),
            Math::Sign(a) if self.is_x(a) => Some(Activation::Sign),
            Math::Tanh(a) if self.is_x(a) => Some(Activation::Tanh),
            Math::Step(a) if self.is_x(a) => Some(Activation::Step { theta: 0.0 }),
            Math::Step(a) => match self.node(a).clone() {
                Math::Sub([u, t]) if self.is_x(u) => {
                    self.constant(t).map(|theta| Activation::Step { theta })
                }
                _ => None,
            },
            Math::Erf(a) if self.is_x(a) => Some(Activation::Erf { s: 1.0 }),
            Math::Erf(a) => match self.node(a).clone() {
                Math::Mul([u, v]) if self.is_x(v) => {
                    self.constant(u).map(|s| Activation::Erf { s })
                }
                Math::Mul([u, v]) if self.is_x(u) => {
                    self.constant(v).map(|s| Activation::Erf { s })
                }
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::Dual64;

    fn program(text: &str, constants: &[(&str, f64)]) -> Program {
        let expr: RecExpr<Math> = text.parse().expect("formula parses");
        let constants = constants.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        Program::compile(&expr, &constants, 120).expect("compiles")
    }

    fn slot_values(p: &Program, a: f64, b: f64, c: Dual64) -> Vec<Dual64> {
        p.slots
            .iter()
            .map(|s| match s.as_str() {
                "C_aa" => Dual64::from(a),
                "C_bb" => Dual64::from(b),
                _ => c,
            })
            .collect()
    }

    #[test]
    fn derivatives_flow_through_closed_forms() {
        // ∂K/∂c = ⟨φ'φ'⟩ (Price); THEORY.md T2c: 0.3594465696 for unit-slope erf at (1, 1.5, 0.6)
        let s = std::f64::consts::PI.sqrt() / 2.0;
        let p = program(
            "(E2 (erf (* s x)) (erf (* s x)) 0 0 C_aa C_bb C_ab)",
            &[("s", s)],
        );
        let value = p
            .eval_dual(
                &slot_values(&p, 1.0, 1.5, Dual64::from(0.6).derivative()),
                false,
            )
            .expect("evaluates");
        assert!((value.eps - 0.3594465696).abs() < 1e-9, "{}", value.eps);
    }

    #[test]
    fn derivatives_flow_through_quadrature() {
        // tanh has no closed form: Gauss–Hermite with moving nodes, against a central difference
        let p = program("(E2 (tanh x) (tanh x) 0 0 C_aa C_bb C_ab)", &[]);
        let at = |c: f64| {
            p.eval(
                &slot_values(&p, 1.0, 1.5, Dual64::from(c))
                    .iter()
                    .map(|d| d.re)
                    .collect::<Vec<_>>(),
                false,
            )
            .expect("evaluates")
        };
        let h = 1e-5;
        let numeric = (at(0.6 + h) - at(0.6 - h)) / (2.0 * h);
        let dual = p
            .eval_dual(
                &slot_values(&p, 1.0, 1.5, Dual64::from(0.6).derivative()),
                false,
            )
            .expect("evaluates");
        assert!(
            (dual.eps - numeric).abs() < 1e-8,
            "{} vs {numeric}",
            dual.eps
        );
        assert!((dual.re - at(0.6)).abs() < 1e-15);
    }

    #[test]
    fn smooth_user_formulas_take_the_hermite_fast_path() {
        // x e^{−x²/2}: same formula on both sides, smooth → a custom activation whose jet is
        // (φ, φ′, φ″) by second-order duals.
        let smooth = program(
            "(* 1.5 (E2 (* x (exp (* -0.5 (^ x 2)))) (* x (exp (* -0.5 (^ x 2)))) 0 0 C_aa C_bb C_ab))",
            &[],
        );
        let (map, _) = smooth.as_pair_kernel_map().expect("fast path");
        assert_eq!(map.scale, 1.5);
        assert!(
            matches!(map.activation, Activation::Custom(_)),
            "{:?}",
            map.activation
        );
        let x: f64 = 0.7;
        let e = (-0.5 * x * x).exp();
        let want = [x * e, (1.0 - x * x) * e, (x.powi(3) - 3.0 * x) * e];
        let got = map.activation.jet(x);
        for k in 0..3 {
            assert!(
                (got[k] - want[k]).abs() < 1e-15,
                "derivative {k}: {got:?} vs {want:?}"
            );
        }
        // The expansion's per-pair fallback: 160 nodes, or the order asked for if higher.
        assert_eq!(map.fallback_order, 160);
        let text = "(E2 (tanh x) (tanh x) 0 0 C_aa C_bb C_ab)"
            .parse()
            .expect("parses");
        for (order, fallback) in [(20, 160), (160, 160), (400, 400)] {
            let tanh = Program::compile(&text, &HashMap::new(), order).expect("compiles");
            let (map, _) = tanh.as_pair_kernel_map().expect("fast path");
            assert_eq!(map.fallback_order, fallback, "--quadrature {order}");
        }
        // A kink keeps the per-pair path; so do two different functions.
        let kinked = program("(E2 (abs x) (abs x) 0 0 C_aa C_bb C_ab)", &[]);
        assert!(kinked.as_pair_kernel_map().is_none());
        let mixed = program("(E2 (exp x) (* x x) 0 0 C_aa C_bb C_ab)", &[]);
        assert!(mixed.as_pair_kernel_map().is_none());
    }
}
