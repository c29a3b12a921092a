//! The compiler: a formula of the symbolic stage (an egg `RecExpr<Math>`) into an op tree,
//! parameters and sizes folded into constants, entry symbols into numbered slots, Gaussian
//! expectations into closed forms or quadrature.

use std::collections::HashMap;

use egg::{Id, RecExpr};

use super::error::ProgramError;
use super::ops::{Function, Integrand, Op, PairOp, Program, SingleOp, eval_in_x};
use crate::numeric::activation::{Activation, CustomActivation};
use crate::numeric::quad::GaussHermite;
use crate::symbolic::lang::Math;

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
        std::sync::Mutex<HashMap<String, Option<crate::numeric::singularity::Singularity>>>,
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
