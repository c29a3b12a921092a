//! Entry-wise functions of the pre-activations: how differentiable they are ([`Regularity`]:
//! smooth, kinked, jumping — what samples can see of their derivatives) and their jets
//! f(h), f′(h), f″(h) over M×P samples ([`jet`]), compiled once and run by second-order dual
//! numbers on blocks of rows in parallel, erf and exp by the vectorised kernels.

use ndarray::{Array2, ArrayView2};
use num_dual::{Dual2_64, DualNum};
use rayon::prelude::*;

use crate::check::ir::{Builtin, Callee, Expr, ExprKind, Theory};
use crate::derive::build::mentions_random;
use crate::numeric::matrix::{MatrixContext, Value};

/// How differentiable an entry-wise function is: what the samples can see of its
/// derivatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Regularity {
    /// Twice continuously differentiable: Price's theorem.
    Smooth,
    /// Kinks (relu, abs): the first derivative pointwise, the second a distribution.
    Kinked,
    /// Jumps (step, sign): already the first derivative is a distribution.
    Jumps,
}

/// How differentiable a built-in is.
pub fn builtin_regularity(b: Builtin) -> Regularity {
    match b {
        Builtin::Relu | Builtin::Abs => Regularity::Kinked,
        Builtin::Step | Builtin::Sign => Regularity::Jumps,
        _ => Regularity::Smooth,
    }
}

/// The regularity of `e` as an entry-wise function of h, None when it is not entry-wise.
pub fn regularity(theory: &Theory, var: &str, e: &Expr, in_function: bool) -> Option<Regularity> {
    let go = |x: &Expr| regularity(theory, var, x, in_function);
    let constant = |x: &Expr| {
        !mentions_random(x, Some(var))
            && x.shape.is_scalar()
            && (in_function || !x.any(&mut |y| matches!(y.kind, ExprKind::FunctionArg(_))))
    };
    match &e.kind {
        ExprKind::RandomVar { name, time: None } => (name == var).then_some(Regularity::Smooth),
        ExprKind::FunctionArg(_) => in_function.then_some(Regularity::Smooth),
        ExprKind::Neg(a) => go(a),
        ExprKind::Add(a, b) | ExprKind::Sub(a, b) | ExprKind::Mul(a, b) => {
            let entrywise =
                |x: &Expr| x.shape.is_scalar() || mentions_random(x, Some(var)) || in_function;
            if !(entrywise(a) && entrywise(b)) {
                return None;
            }
            Some(go(a)?.max(go(b)?))
        }
        ExprKind::Div(a, b) | ExprKind::Pow(a, b) => Some(go(a)?.max(go(b)?)),
        ExprKind::Apply { callee, args } => {
            let own = match callee {
                Callee::Builtin(b) => builtin_regularity(*b),
                Callee::User(id) => regularity(theory, var, &theory.functions[*id].body, true)?,
            };
            args.iter().try_fold(own, |acc, a| Some(acc.max(go(a)?)))
        }
        _ if constant(e) => Some(Regularity::Smooth),
        _ => None,
    }
}

/// A jet-valued value: the same for every entry, or one per entry.
#[derive(Clone)]
enum Jet {
    Scalar(Dual2_64),
    Entries(Vec<Dual2_64>),
}

impl Jet {
    fn map(self, f: impl Fn(Dual2_64) -> Dual2_64) -> Jet {
        match self {
            Jet::Scalar(x) => Jet::Scalar(f(x)),
            Jet::Entries(mut v) => {
                v.iter_mut().for_each(|x| *x = f(*x));
                Jet::Entries(v)
            }
        }
    }

    fn zip(self, other: Jet, f: impl Fn(Dual2_64, Dual2_64) -> Dual2_64) -> Jet {
        match (self, other) {
            (Jet::Scalar(a), Jet::Scalar(b)) => Jet::Scalar(f(a, b)),
            (Jet::Scalar(a), Jet::Entries(mut v)) => {
                v.iter_mut().for_each(|x| *x = f(a, *x));
                Jet::Entries(v)
            }
            (Jet::Entries(mut v), Jet::Scalar(b)) => {
                v.iter_mut().for_each(|x| *x = f(*x, b));
                Jet::Entries(v)
            }
            (Jet::Entries(mut a), Jet::Entries(b)) => {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x = f(*x, *y));
                Jet::Entries(a)
            }
        }
    }
}

/// erf or exp of every entry, composed with the entries' own derivatives: the values and
/// slopes by the vectorised kernels of [`crate::numeric::vector_math`] (the libm calls of the
/// generic path dominate a jet over many samples), f″ from them (erf″ = −2x·erf′, exp″ = exp).
fn vectorised_builtin(b: Builtin, x: &mut [Dual2_64], isa: crate::numeric::vector_math::Isa) {
    use crate::numeric::vector_math::{erf_slice, exp_slice};
    let re: Vec<f64> = x.iter().map(|d| d.re).collect();
    let mut value = vec![0.0; re.len()];
    let mut slope = vec![0.0; re.len()];
    match b {
        Builtin::Erf => erf_slice(isa, &re, &mut value, &mut slope),
        _ => exp_slice(isa, &re, &mut value),
    }
    for ((x, &f), &d) in x.iter_mut().zip(&value).zip(&slope) {
        let (first, second) = match b {
            Builtin::Erf => (d, -2.0 * x.re * d),
            _ => (f, f),
        };
        *x = Dual2_64::new(f, first * x.v1, second * x.v1 * x.v1 + first * x.v2);
    }
}

/// Entries per block of [`jet`]: a block's dual numbers (24 bytes each, one vector per node
/// of the expression) stay in cache, and blocks run on every thread.
const JET_BLOCK: usize = 1 << 14;

/// f(h), f′(h), f″(h) entry by entry (M×P each), by second-order dual numbers: the entry-wise
/// function is compiled once (its constants evaluated, user functions inlined), then run on
/// blocks of rows in parallel, one pass over a block per node of the expression.
pub fn jet(
    theory: &Theory,
    var: &str,
    f: &Expr,
    h: ArrayView2<'_, f64>,
    constants: &MatrixContext<'_>,
) -> Result<[Array2<f64>; 3], String> {
    let program = JetProgram::compile(theory, var, f, 0, constants)?;
    let (m, p) = h.dim();
    let h = h.as_standard_layout();
    let mut out = [
        Array2::<f64>::zeros((m, p)),
        Array2::<f64>::zeros((m, p)),
        Array2::<f64>::zeros((m, p)),
    ];
    let isa = crate::numeric::vector_math::Isa::detect();
    let rows = (JET_BLOCK / p.max(1)).max(1);
    let [v, d1, d2] = &mut out;
    let (Some(input), Some(v), Some(d1), Some(d2)) = (
        h.as_slice(),
        v.as_slice_mut(),
        d1.as_slice_mut(),
        d2.as_slice_mut(),
    ) else {
        return Err("a jet of arrays not in standard layout".into());
    };
    let block = rows * p.max(1);
    input
        .par_chunks(block)
        .zip(v.par_chunks_mut(block))
        .zip(d1.par_chunks_mut(block))
        .zip(d2.par_chunks_mut(block))
        .for_each(|(((x, v), d1), d2)| {
            let seeds: Vec<Dual2_64> = x.iter().map(|&x| Dual2_64::new(x, 1.0, 0.0)).collect();
            match program.eval(&seeds, isa, &[]) {
                Jet::Scalar(y) => {
                    v.fill(y.re);
                    d1.fill(y.v1);
                    d2.fill(y.v2);
                }
                Jet::Entries(y) => {
                    for (((y, v), d1), d2) in y.iter().zip(v).zip(d1).zip(d2) {
                        (*v, *d1, *d2) = (y.re, y.v1, y.v2);
                    }
                }
            }
        });
    Ok(out)
}

/// An entry-wise function of one random variable, its constants evaluated.
#[derive(Debug, Clone)]
enum JetProgram {
    Input,
    Constant(f64),
    /// The i-th argument of the innermost call.
    Argument(usize),
    /// A user function's body on its arguments, each evaluated once.
    Call(Vec<JetProgram>, Box<JetProgram>),
    Neg(Box<JetProgram>),
    Add(Box<JetProgram>, Box<JetProgram>),
    Sub(Box<JetProgram>, Box<JetProgram>),
    Mul(Box<JetProgram>, Box<JetProgram>),
    Div(Box<JetProgram>, Box<JetProgram>),
    Pow(Box<JetProgram>, Box<JetProgram>),
    Builtin(Builtin, Box<JetProgram>),
}

impl JetProgram {
    /// `e` (the body of a function of `arity` arguments, or the integrand for 0) with every
    /// subexpression free of the random variable and of the arguments evaluated.
    fn compile(
        theory: &Theory,
        var: &str,
        e: &Expr,
        arity: usize,
        constants: &MatrixContext<'_>,
    ) -> Result<JetProgram, String> {
        let depends = mentions_random(e, Some(var))
            || e.any(&mut |x| matches!(x.kind, ExprKind::FunctionArg(_)));
        if !depends {
            match constants.eval(e) {
                Ok(Value::Scalar(v)) => return Ok(JetProgram::Constant(v)),
                Ok(Value::Matrix(_)) => return Err("a matrix inside an entry-wise function".into()),
                // a user function of constants (`sq(2)`) is compiled like any call below
                Err(err) if !matches!(e.kind, ExprKind::Apply { .. }) => {
                    return Err(err.to_string());
                }
                Err(_) => {}
            }
        }
        let go = |y: &Expr| Self::compile(theory, var, y, arity, constants).map(Box::new);
        Ok(match &e.kind {
            ExprKind::RandomVar { .. } => JetProgram::Input,
            ExprKind::FunctionArg(i) if *i < arity => JetProgram::Argument(*i),
            ExprKind::FunctionArg(_) => return Err("a function argument out of range".into()),
            ExprKind::Neg(a) => JetProgram::Neg(go(a)?),
            ExprKind::Add(a, b) => JetProgram::Add(go(a)?, go(b)?),
            ExprKind::Sub(a, b) => JetProgram::Sub(go(a)?, go(b)?),
            ExprKind::Mul(a, b) => JetProgram::Mul(go(a)?, go(b)?),
            ExprKind::Div(a, b) => JetProgram::Div(go(a)?, go(b)?),
            ExprKind::Pow(a, b) => JetProgram::Pow(go(a)?, go(b)?),
            ExprKind::Apply {
                callee,
                args: inner,
            } => match callee {
                Callee::Builtin(b) => match inner.as_slice() {
                    [a] => JetProgram::Builtin(*b, go(a)?),
                    _ => return Err("a built-in with several arguments".into()),
                },
                Callee::User(id) => {
                    let inner = inner
                        .iter()
                        .map(|a| Self::compile(theory, var, a, arity, constants))
                        .collect::<Result<Vec<_>, _>>()?;
                    let body = Self::compile(
                        theory,
                        var,
                        &theory.functions[*id].body,
                        inner.len(),
                        constants,
                    )?;
                    JetProgram::Call(inner, Box::new(body))
                }
            },
            _ => return Err("a construct outside an entry-wise function".into()),
        })
    }

    /// The function's jet on every entry of `seeds` (the variable's jets), `args` the
    /// innermost call's argument values.
    fn eval(&self, seeds: &[Dual2_64], isa: crate::numeric::vector_math::Isa, args: &[Jet]) -> Jet {
        let go = |a: &JetProgram| a.eval(seeds, isa, args);
        match self {
            JetProgram::Input => Jet::Entries(seeds.to_vec()),
            JetProgram::Constant(v) => Jet::Scalar(Dual2_64::from(*v)),
            // compile checked the index against the call's arity
            JetProgram::Argument(i) => args
                .get(*i)
                .cloned()
                .unwrap_or(Jet::Scalar(Dual2_64::from(f64::NAN))),
            JetProgram::Call(inner, body) => {
                let values: Vec<Jet> = inner.iter().map(go).collect();
                body.eval(seeds, isa, &values)
            }
            JetProgram::Neg(a) => go(a).map(|x| -x),
            JetProgram::Add(a, b) => go(a).zip(go(b), |x, y| x + y),
            JetProgram::Sub(a, b) => go(a).zip(go(b), |x, y| x - y),
            JetProgram::Mul(a, b) => go(a).zip(go(b), |x, y| x * y),
            JetProgram::Div(a, b) => go(a).zip(go(b), |x, y| x / y),
            JetProgram::Pow(a, b) => go(a).zip(go(b), |x, y| {
                if y.v1 == 0.0 && y.v2 == 0.0 {
                    x.powf(y.re)
                } else {
                    x.powd(y)
                }
            }),
            JetProgram::Builtin(b, a) => match (b, go(a)) {
                (Builtin::Erf | Builtin::Exp, Jet::Entries(mut x)) => {
                    vectorised_builtin(*b, &mut x, isa);
                    Jet::Entries(x)
                }
                (b, v) => v.map(|x| crate::numeric::action::ops::builtin(*b, &x)),
            },
        }
    }
}

/// Whether `e` applies a function with jumps (step, sign), also inside user functions.
pub fn has_jumps(theory: &Theory, e: &Expr) -> bool {
    e.any(&mut |x| match &x.kind {
        ExprKind::Apply {
            callee: Callee::Builtin(b),
            ..
        } => builtin_regularity(*b) == Regularity::Jumps,
        ExprKind::Apply {
            callee: Callee::User(id),
            ..
        } => has_jumps(theory, &theory.functions[*id].body),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ir::Shape;
    use crate::derive::build::node;

    /// Nested user functions that use their argument several times, a parameter, a
    /// constant call and erf: the jets equal f, f′, f″ by hand on every entry, in blocks.
    #[test]
    fn jets_of_nested_user_functions_match_the_derivatives_by_hand() {
        let source = "theory t\nparam a = 0.5\nsq(x) = x * x\n\
            f(x) = sq(sq(x)) + a * erf(x) + sq(2)\ndata X, Y\n\
            kernel C[l] for l in 0..=1\nconj Ct[l] of C[l] for l in 1..=1\n\
            C[0] = X X^T / d\naction S = -tr(Ct[1]^T C[1])\n\
            + 10 * ln E[exp(f(h)^T Ct[1] f(h) / 10) | h ~ N(0, C[0])]\n";
        let theory = crate::compile(source, "t.action").expect("checks");
        let id = theory
            .functions
            .iter()
            .position(|f| f.name == "f")
            .expect("f");
        let h = node(
            ExprKind::RandomVar {
                name: "h".into(),
                time: None,
            },
            Shape::SCALAR,
        );
        let call = node(
            ExprKind::Apply {
                callee: Callee::User(id),
                args: vec![h],
            },
            Shape::SCALAR,
        );
        let params = [0.5];
        let lookup = |_: usize, _: &[i64]| -> Option<&Array2<f64>> { None };
        let name = |_: usize| String::new();
        let ctx = MatrixContext {
            params: &params,
            inputs: None,
            targets: None,
            field: &lookup,
            field_name: &name,
        };
        // more entries than one block, an odd number of columns
        let (m, p) = (JET_BLOCK / 3 + 17, 7);
        let x = Array2::from_shape_fn((m, p), |(i, j)| ((i * p + j) as f64 * 0.37).sin() * 2.0);
        let [v, d1, d2] = jet(&theory, "h", &call, x.view(), &ctx).expect("a jet");
        let gauss = |x: f64| 2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp();
        for ((&x, &v), (&d1, &d2)) in x.iter().zip(&v).zip(d1.iter().zip(&d2)) {
            let want = x.powi(4) + 0.5 * libm::erf(x) + 4.0;
            let slope = 4.0 * x.powi(3) + 0.5 * gauss(x);
            let curvature = 12.0 * x * x - x * gauss(x);
            assert!(
                (v - want).abs() < 1e-12 * want.abs().max(1.0),
                "{x}: {v} vs {want}"
            );
            assert!(
                (d1 - slope).abs() < 1e-12 * slope.abs().max(1.0),
                "{x}: {d1}"
            );
            assert!(
                (d2 - curvature).abs() < 1e-12 * curvature.abs().max(1.0),
                "{x}: {d2}"
            );
        }
    }
}
