//! Where the integrand of an expectation is not smooth, so that the quadrature can split there.
//!
//! `sign` and `step` jump, `relu` and `abs` kink, where their argument crosses zero. When the
//! argument is affine in one time block of the random vector, $a\,h[t]+c$ with a constant scalar
//! $a\ne0$ and a constant $c$ (a scalar or a $P$-vector), entry $\alpha$ breaks at
//! $h[t]_\alpha=-c_\alpha/a$. A user function of one argument breaks where the non-smooth
//! built-ins in its body do, as long as their arguments are affine in its argument (so
//! `phi(x) = step(x - theta)` breaks at $x=\theta$). Gauss–Hermite converges only algebraically
//! across such a point (the error of a jump falls like $n^{-1/2}$ in the order); split there,
//! every piece is smooth and the quadrature converges exponentially again (module
//! `expectation`). A non-smooth function of anything else (`sign` of $h_\alpha+h_\beta$, of
//! $h^2$) is not located, and the expectation keeps the plain Gauss–Hermite rule.

use num_dual::DualNum;

use super::dense::Dense;
use super::eval::Evaluation;
use super::integrand::Integrand;
use crate::check::ir::{Builtin, Callee, Expr, ExprKind, FunctionId};

/// Nesting of user functions followed before giving up (the checker forbids recursion).
const MAX_DEPTH: usize = 32;

impl<D: DualNum<Primitive = f64>> Evaluation<'_, D> {
    /// Where to cut the lines of the expectation of `integrand`, whose random blocks are the
    /// times `times` (one untimed block when empty) of `patterns` entries each: for each
    /// coordinate of the stacked random vector, its breakpoints, ascending and distinct. `None`
    /// when the integrand is smooth, or breaks somewhere that is not a point on one
    /// coordinate's line (the plain Gauss–Hermite rule then).
    pub(super) fn breakpoints(
        &mut self,
        integrand: &Integrand<'_, D>,
        patterns: usize,
        times: &[i64],
    ) -> Option<Vec<Vec<D>>> {
        let mut found = vec![Vec::new(); patterns * times.len().max(1)];
        self.collect(integrand, patterns, times, &mut found)?;
        // φ(h) read twice (φᵀ C̃ φ) lists its breakpoints twice.
        for line in &mut found {
            line.sort_by(|a, b| a.re().total_cmp(&b.re()));
            line.dedup_by(|a, b| a.re() == b.re());
        }
        found.iter().any(|line| !line.is_empty()).then_some(found)
    }

    /// Adds the breakpoints of `integrand` to `found`; `None` where one cannot be located.
    fn collect(
        &mut self,
        integrand: &Integrand<'_, D>,
        patterns: usize,
        times: &[i64],
        found: &mut [Vec<D>],
    ) -> Option<()> {
        match integrand {
            Integrand::Constant(_) | Integrand::Random(_) | Integrand::Whitened(..) => Some(()),
            Integrand::Unary(_, a) => self.collect(a, patterns, times, found),
            Integrand::Binary(_, a, b) => {
                self.collect(a, patterns, times, found)?;
                self.collect(b, patterns, times, found)
            }
            Integrand::Sum(_, terms) => terms
                .iter()
                .try_for_each(|t| self.collect(t, patterns, times, found)),
            Integrand::Apply(_, callee, args) => {
                for arg in args {
                    self.collect(arg, patterns, times, found)?;
                }
                let zeros = self.zeros(*callee, 0)?;
                if zeros.is_empty() {
                    return Some(());
                }
                let [arg] = args.as_slice() else {
                    return None;
                };
                let Affine::Linear {
                    time,
                    scale,
                    offset,
                } = integrand_affine(arg)?
                else {
                    // A non-smooth function of a constant is a constant.
                    return Some(());
                };
                let block = match time {
                    Some(t) => times.iter().position(|&s| s == t)?,
                    None => 0,
                };
                for alpha in 0..patterns {
                    let c = match offset.shape() {
                        (1, 1) => offset.get(0, 0),
                        (rows, 1) if rows == patterns => offset.get(alpha, 0),
                        _ => return None,
                    };
                    for zero in &zeros {
                        let point = solve(zero, &scale, c)?;
                        found.get_mut(block * patterns + alpha)?.push(point);
                    }
                }
                Some(())
            }
        }
    }

    /// The arguments at which a scalar function breaks: 0 for `relu`, `step`, `sign`, `abs`,
    /// none for the smooth built-ins, the breakpoints of its body for a user function of one
    /// argument; `None` if they cannot be located.
    fn zeros(&mut self, callee: Callee, depth: usize) -> Option<Vec<D>> {
        match callee {
            Callee::Builtin(builtin) if breaks(builtin) => Some(vec![D::zero()]),
            Callee::Builtin(_) => Some(Vec::new()),
            Callee::User(id) => self.function_zeros(id, depth),
        }
    }

    fn function_zeros(&mut self, id: FunctionId, depth: usize) -> Option<Vec<D>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let theory = &self.evaluator.theory;
        let function = theory.functions.get(id)?;
        let body = function.body.clone();
        let mut zeros = Vec::new();
        self.body_zeros(&body, function.params.len(), depth, &mut zeros)?;
        Some(zeros)
    }

    /// Breakpoints in the argument of a user function body.
    fn body_zeros(
        &mut self,
        body: &Expr,
        arity: usize,
        depth: usize,
        zeros: &mut Vec<D>,
    ) -> Option<()> {
        let mut recurse = |this: &mut Self, e: &Expr| this.body_zeros(e, arity, depth, zeros);
        match &body.kind {
            ExprKind::Apply { callee, args } => {
                for arg in args {
                    recurse(self, arg)?;
                }
                let inner = self.zeros(*callee, depth + 1)?;
                if inner.is_empty() {
                    return Some(());
                }
                let [arg] = args.as_slice() else {
                    return None;
                };
                match self.body_affine(arg)? {
                    // A non-smooth function of a constant is a constant.
                    Affine::Constant(_) => Some(()),
                    // Several arguments: a break in one of them is not a point on one line.
                    Affine::Linear { .. } if arity != 1 => None,
                    Affine::Linear { scale, offset, .. } => {
                        let c = offset.as_scalar()?.clone();
                        for zero in &inner {
                            zeros.push(solve(zero, &scale, &c)?);
                        }
                        Some(())
                    }
                }
            }
            ExprKind::Neg(a) | ExprKind::Transpose(a) | ExprKind::Matrix(_, a) => recurse(self, a),
            ExprKind::Add(a, b)
            | ExprKind::Sub(a, b)
            | ExprKind::Mul(a, b)
            | ExprKind::Div(a, b)
            | ExprKind::Pow(a, b) => {
                recurse(self, a)?;
                recurse(self, b)
            }
            ExprKind::Sum { .. } | ExprKind::Expectation { .. } => None,
            _ => Some(()),
        }
    }

    /// A user-function body expression as an affine function of its (single) argument.
    fn body_affine(&mut self, expr: &Expr) -> Option<Affine<D>> {
        if !mentions_argument(expr) {
            return Some(Affine::Constant(self.eval(expr, &[], &[]).ok()?));
        }
        match &expr.kind {
            ExprKind::FunctionArg(0) => Some(Affine::variable(None)),
            ExprKind::Neg(a) => Some(self.body_affine(a)?.negated()),
            ExprKind::Add(a, b)
            | ExprKind::Sub(a, b)
            | ExprKind::Mul(a, b)
            | ExprKind::Div(a, b) => {
                let (a, b) = (self.body_affine(a)?, self.body_affine(b)?);
                combine(&expr.kind, a, b)
            }
            _ => None,
        }
    }
}

/// The point where `scale · x + offset` equals `zero`, if it is a finite number.
fn solve<D: DualNum<Primitive = f64>>(zero: &D, scale: &D, offset: &D) -> Option<D> {
    if scale.re() == 0.0 {
        return None;
    }
    let point = (zero.clone() - offset.clone()) / scale.clone();
    point.re().is_finite().then_some(point)
}

/// Whether a built-in jumps or kinks at zero.
fn breaks(builtin: Builtin) -> bool {
    matches!(
        builtin,
        Builtin::Relu | Builtin::Step | Builtin::Sign | Builtin::Abs
    )
}

/// Whether a user-function body expression reads one of the function's arguments.
fn mentions_argument(expr: &Expr) -> bool {
    // Conservative: an expectation inside a body is not analysed.
    expr.any(&mut |e| {
        matches!(
            e.kind,
            ExprKind::FunctionArg(_) | ExprKind::Expectation { .. }
        )
    })
}

/// A value that is affine in one random block (or in a function's argument).
enum Affine<D> {
    /// Independent of the variable.
    Constant(Dense<D>),
    /// `scale · h[time] + offset`.
    Linear {
        time: Option<i64>,
        scale: D,
        offset: Dense<D>,
    },
}

impl<D: DualNum<Primitive = f64>> Affine<D> {
    fn variable(time: Option<i64>) -> Self {
        Affine::Linear {
            time,
            scale: D::one(),
            offset: Dense::scalar(D::zero()),
        }
    }

    /// `self + sign · c` (`c` a scalar or a vector).
    fn shifted(self, c: &Dense<D>, sign: f64) -> Option<Self> {
        Some(match self {
            Affine::Constant(x) => Affine::Constant(broadcast_add(&x, c, sign)?),
            Affine::Linear {
                time,
                scale,
                offset,
            } => Affine::Linear {
                time,
                scale,
                offset: broadcast_add(&offset, c, sign)?,
            },
        })
    }

    /// `k · self` for a scalar `k`.
    fn scaled(self, k: D) -> Self {
        match self {
            Affine::Constant(x) => Affine::Constant(x.scale(&k)),
            Affine::Linear {
                time,
                scale,
                offset,
            } => Affine::Linear {
                time,
                scale: scale * k.clone(),
                offset: offset.scale(&k),
            },
        }
    }

    fn negated(self) -> Self {
        self.scaled(-D::one())
    }
}

/// A staged integrand as an affine function of one random block, if it is one.
fn integrand_affine<D: DualNum<Primitive = f64>>(
    integrand: &Integrand<'_, D>,
) -> Option<Affine<D>> {
    match integrand {
        Integrand::Constant(value) => Some(Affine::Constant(value.clone())),
        Integrand::Random(time) => Some(Affine::variable(*time)),
        Integrand::Unary(expr, a) if matches!(expr.kind, ExprKind::Neg(_)) => {
            Some(integrand_affine(a)?.negated())
        }
        Integrand::Binary(expr, a, b) => {
            combine(&expr.kind, integrand_affine(a)?, integrand_affine(b)?)
        }
        _ => None,
    }
}

/// `a ∘ b` for `∘` one of `+ - * /`, if the result is still affine with a scalar slope.
fn combine<D: DualNum<Primitive = f64>>(
    operator: &ExprKind,
    a: Affine<D>,
    b: Affine<D>,
) -> Option<Affine<D>> {
    use Affine::{Constant, Linear};
    use ExprKind::{Add, Div, Mul, Sub};
    let scalar = |c: &Dense<D>| c.as_scalar().cloned();
    Some(match (operator, a, b) {
        (Add(..), Constant(x), Constant(y)) => Constant(broadcast_add(&x, &y, 1.0)?),
        (Sub(..), Constant(x), Constant(y)) => Constant(broadcast_add(&x, &y, -1.0)?),
        (Mul(..), Constant(x), Constant(y)) => Constant(Dense::scalar(scalar(&x)? * scalar(&y)?)),
        (Div(..), Constant(x), Constant(y)) => Constant(Dense::scalar(scalar(&x)? / scalar(&y)?)),
        (Add(..), line @ Linear { .. }, Constant(c))
        | (Add(..), Constant(c), line @ Linear { .. }) => line.shifted(&c, 1.0)?,
        (Sub(..), line @ Linear { .. }, Constant(c)) => line.shifted(&c, -1.0)?,
        (Sub(..), Constant(c), line @ Linear { .. }) => line.negated().shifted(&c, 1.0)?,
        (Mul(..), line @ Linear { .. }, Constant(c))
        | (Mul(..), Constant(c), line @ Linear { .. }) => line.scaled(scalar(&c)?),
        (Div(..), line @ Linear { .. }, Constant(c)) => line.scaled(D::one() / scalar(&c)?),
        _ => return None,
    })
}

/// `a + sign·b` where either may be a 1×1 scalar broadcast over the other.
fn broadcast_add<D: DualNum<Primitive = f64>>(
    a: &Dense<D>,
    b: &Dense<D>,
    sign: f64,
) -> Option<Dense<D>> {
    let b = b.map(|x| x.clone() * sign);
    match (a.as_scalar(), b.as_scalar()) {
        (Some(x), _) => Some(b.add_scalar(x)),
        (_, Some(y)) => Some(a.add_scalar(y)),
        _ => a.add(&b).ok(),
    }
}
