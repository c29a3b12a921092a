//! Integrands that are polynomials of degree ≤ 2 in a Gaussian variable, found in the
//! expression itself, and their exact Gaussian moments.
//!
//! A population's tilted measure P(h) ∝ 𝒩(h; m, K) e^{A(h)} is Gaussian exactly when the
//! tilt is a quadratic form, A(h) = hᵀQh + bᵀh + c — a linear unit φ(x) = αx + β makes
//! `g/N · φ(h)ᵀ C̃ φ(h)` one. Then (THEORY.md §4.3, linear closed forms)
//! $$\Sigma_P=(K^{-1}-2Q)^{-1}=(I-2KQ)^{-1}K,\qquad \mu_P=m+\Sigma_P(b+2Qm),$$
//! normalisable iff $I-2L^\top QL\succ0$ ($K=LL^\top$), and every average of a degree-≤2
//! integrand has a closed form in (μ_P, Σ_P): E[(A₁h+o₁)(A₂h+o₂)ᵀ] = A₁ΣA₂ᵀ + (A₁μ+o₁)(A₂μ+o₂)ᵀ.
//!
//! The degree is read off the expression by evaluating it over a small algebra of forms
//! (constants, affine vectors A h + o, quadratic scalars, sums of affine outer products),
//! with user functions inlined: an expression that leaves the algebra (erf(h), h ⊙ h, a
//! product of degree 3) is not Gaussian and goes to Monte Carlo instead.

use ndarray::{Array1, Array2, Axis};

use crate::check::ir::{Callee, Expr, ExprKind, MatrixFunction, Theory};
use crate::derive::build::mentions_random;
use crate::numeric::matrix::{MatrixContext, Value};

/// A linear map h ↦ A h: a multiple of the identity or a matrix.
#[derive(Debug, Clone)]
enum Linear {
    Scaled(f64),
    Matrix(Array2<f64>),
}

impl Linear {
    fn apply(&self, v: &Array1<f64>) -> Array1<f64> {
        match self {
            Linear::Scaled(a) => v * *a,
            Linear::Matrix(m) => m.dot(v),
        }
    }

    fn scale(&self, s: f64) -> Linear {
        match self {
            Linear::Scaled(a) => Linear::Scaled(a * s),
            Linear::Matrix(m) => Linear::Matrix(m * s),
        }
    }

    fn add(&self, other: &Linear) -> Linear {
        match (self, other) {
            (Linear::Scaled(a), Linear::Scaled(b)) => Linear::Scaled(a + b),
            (Linear::Scaled(a), Linear::Matrix(m)) | (Linear::Matrix(m), Linear::Scaled(a)) => {
                let mut out = m.clone();
                out.diag_mut().mapv_inplace(|v| v + a);
                Linear::Matrix(out)
            }
            (Linear::Matrix(a), Linear::Matrix(b)) => Linear::Matrix(a + b),
        }
    }

    /// M·A
    fn left_mul(&self, m: &Array2<f64>) -> Linear {
        match self {
            Linear::Scaled(a) => Linear::Matrix(m * *a),
            Linear::Matrix(a) => Linear::Matrix(m.dot(a)),
        }
    }

    fn transposed(&self) -> Linear {
        match self {
            Linear::Scaled(a) => Linear::Scaled(*a),
            Linear::Matrix(m) => Linear::Matrix(m.t().to_owned()),
        }
    }

    /// A M Bᵀ (self = A).
    fn sandwich(&self, m: &Array2<f64>, other: &Linear) -> Array2<f64> {
        let left = match self {
            Linear::Scaled(a) => m * *a,
            Linear::Matrix(a) => a.dot(m),
        };
        match other {
            Linear::Scaled(b) => left * *b,
            Linear::Matrix(b) => left.dot(&b.t()),
        }
    }

    /// Aᵀ B as a matrix.
    fn t_dot(&self, other: &Linear, p: usize) -> Array2<f64> {
        match (self, other) {
            (Linear::Scaled(a), Linear::Scaled(b)) => Array2::eye(p) * (a * b),
            (Linear::Scaled(a), Linear::Matrix(m)) => m * *a,
            (Linear::Matrix(m), Linear::Scaled(b)) => m.t().to_owned() * *b,
            (Linear::Matrix(a), Linear::Matrix(b)) => a.t().dot(b),
        }
    }
}

/// (A h + o)(B h + o')ᵀ
#[derive(Debug, Clone)]
struct Outer {
    left: (Linear, Array1<f64>),
    right: (Linear, Array1<f64>),
}

/// A value of an integrand as a polynomial of degree ≤ 2 in h.
#[derive(Debug, Clone)]
enum Form {
    /// Independent of h.
    Constant(Value),
    /// A column vector A h + o.
    Column(Linear, Array1<f64>),
    /// A row vector (A h + o)ᵀ.
    Row(Linear, Array1<f64>),
    /// A scalar hᵀQh + bᵀh + c (Q not necessarily symmetric; None when zero).
    Quadratic {
        q: Option<Array2<f64>>,
        b: Array1<f64>,
        c: f64,
    },
    /// A P×P matrix Σₜ sₜ (Aₜh + oₜ)(Bₜh + oₜ')ᵀ + constant.
    Outers {
        terms: Vec<(f64, Outer)>,
        constant: Option<Array2<f64>>,
    },
}

/// A tilt A(h) = hᵀQh + bᵀh + c (Q symmetric).
#[derive(Debug, Clone)]
pub struct QuadraticTilt {
    /// Q
    pub q: Array2<f64>,
    /// b
    pub b: Array1<f64>,
}

/// Reads integrands of one Gaussian variable as polynomials of degree ≤ 2.
pub struct GaussianForms<'a, 'c> {
    /// The theory (user functions).
    pub theory: &'a Theory,
    /// The random variable.
    pub var: &'a str,
    /// The number of patterns.
    pub patterns: usize,
    /// Everything that does not depend on h.
    pub constants: &'a MatrixContext<'c>,
}

impl GaussianForms<'_, '_> {
    /// The tilt as a quadratic form, or None when it is not one.
    pub fn tilt(&self, tilt: &Expr) -> Option<QuadraticTilt> {
        let p = self.patterns;
        match self.form(tilt, &[])? {
            Form::Constant(Value::Scalar(_)) => Some(QuadraticTilt {
                q: Array2::zeros((p, p)),
                b: Array1::zeros(p),
            }),
            Form::Quadratic { q, b, .. } => {
                let q = q.map_or_else(|| Array2::zeros((p, p)), |q| (&q + &q.t()) * 0.5);
                Some(QuadraticTilt { q, b })
            }
            _ => None,
        }
    }

    /// Whether `body` is a polynomial of degree ≤ 2 in h (its moments are exact).
    pub fn is_quadratic(&self, body: &Expr) -> bool {
        self.form(body, &[]).is_some()
    }

    /// E[body] under h ~ 𝒩(μ, Σ), when body has degree ≤ 2.
    pub fn moment(&self, body: &Expr, mu: &Array1<f64>, sigma: &Array2<f64>) -> Option<Value> {
        Some(match self.form(body, &[])? {
            Form::Constant(v) => v,
            Form::Column(a, o) => Value::Matrix((a.apply(mu) + o).insert_axis(Axis(1))),
            Form::Row(a, o) => Value::Matrix((a.apply(mu) + o).insert_axis(Axis(0))),
            Form::Quadratic { q, b, c } => {
                let quadratic = q.map_or(0.0, |q| (&q * sigma).sum() + mu.dot(&q.dot(mu)));
                Value::Scalar(quadratic + b.dot(mu) + c)
            }
            Form::Outers { terms, constant } => {
                let p = self.patterns;
                let mut total = constant.unwrap_or_else(|| Array2::zeros((p, p)));
                for (s, t) in terms {
                    let (a, o1) = &t.left;
                    let (b, o2) = &t.right;
                    let u = a.apply(mu) + o1;
                    let v = b.apply(mu) + o2;
                    total.scaled_add(s, &a.sandwich(sigma, b));
                    total.scaled_add(s, &outer(&u, &v));
                }
                Value::Matrix(total)
            }
        })
    }

    fn form(&self, e: &Expr, args: &[Form]) -> Option<Form> {
        if args.is_empty() && !mentions_random(e, Some(self.var)) {
            return self.constants.eval(e).ok().map(Form::Constant);
        }
        let p = self.patterns;
        match &e.kind {
            ExprKind::RandomVar { name, time: None } if name == self.var => {
                Some(Form::Column(Linear::Scaled(1.0), Array1::zeros(p)))
            }
            ExprKind::FunctionArg(i) => args.get(*i).cloned(),
            ExprKind::Neg(a) => Some(scale(self.form(a, args)?, -1.0)),
            ExprKind::Add(a, b) => add(self.form(a, args)?, self.form(b, args)?, 1.0, p),
            ExprKind::Sub(a, b) => add(self.form(a, args)?, self.form(b, args)?, -1.0, p),
            ExprKind::Mul(a, b) => multiply(self.form(a, args)?, self.form(b, args)?, p),
            ExprKind::Div(a, b) => match self.form(b, args)? {
                Form::Constant(Value::Scalar(s)) => Some(scale(self.form(a, args)?, 1.0 / s)),
                _ => None,
            },
            ExprKind::Transpose(a) => Some(transpose(self.form(a, args)?)),
            ExprKind::Matrix(MatrixFunction::Trace, a) => trace(self.form(a, args)?),
            ExprKind::Apply {
                callee: Callee::User(id),
                args: inner,
            } => {
                let values = inner
                    .iter()
                    .map(|a| self.form(a, args))
                    .collect::<Option<Vec<_>>>()?;
                self.form(&self.theory.functions[*id].body, &values)
            }
            _ if !args.is_empty() && !mentions_arg(e) => self
                .constants
                .eval(e)
                .ok()
                .and_then(|v| matches!(v, Value::Scalar(_)).then_some(Form::Constant(v))),
            _ => None,
        }
    }
}

fn mentions_arg(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x.kind, ExprKind::FunctionArg(_)))
}

/// u vᵀ
pub(super) fn outer(u: &Array1<f64>, v: &Array1<f64>) -> Array2<f64> {
    u.view()
        .insert_axis(Axis(1))
        .dot(&v.view().insert_axis(Axis(0)))
}

fn scale(f: Form, s: f64) -> Form {
    match f {
        Form::Constant(Value::Scalar(x)) => Form::Constant(Value::Scalar(x * s)),
        Form::Constant(Value::Matrix(m)) => Form::Constant(Value::Matrix(m * s)),
        Form::Column(a, o) => Form::Column(a.scale(s), o * s),
        Form::Row(a, o) => Form::Row(a.scale(s), o * s),
        Form::Quadratic { q, b, c } => Form::Quadratic {
            q: q.map(|q| q * s),
            b: b * s,
            c: c * s,
        },
        Form::Outers { terms, constant } => Form::Outers {
            terms: terms.into_iter().map(|(t, o)| (t * s, o)).collect(),
            constant: constant.map(|c| c * s),
        },
    }
}

fn transpose(f: Form) -> Form {
    match f {
        Form::Constant(Value::Matrix(m)) => Form::Constant(Value::Matrix(m.t().to_owned())),
        Form::Column(a, o) => Form::Row(a, o),
        Form::Row(a, o) => Form::Column(a, o),
        Form::Outers { terms, constant } => Form::Outers {
            terms: terms
                .into_iter()
                .map(|(s, t)| {
                    (
                        s,
                        Outer {
                            left: t.right,
                            right: t.left,
                        },
                    )
                })
                .collect(),
            constant: constant.map(|c| c.t().to_owned()),
        },
        other => other,
    }
}

fn trace(f: Form) -> Option<Form> {
    match f {
        Form::Constant(Value::Matrix(m)) => Some(Form::Constant(Value::Scalar(m.diag().sum()))),
        Form::Constant(v) => Some(Form::Constant(v)),
        Form::Quadratic { .. } => Some(f),
        Form::Outers { terms, constant } => {
            let mut total = Form::Constant(Value::Scalar(constant.map_or(0.0, |c| c.diag().sum())));
            for (s, t) in terms {
                // tr((Ah + o)(Bh + o')ᵀ) = (Bh + o')ᵀ(Ah + o)
                let p = t.left.1.len();
                let term = inner(&t.right, &t.left, p);
                total = add(total, scale(term, s), 1.0, p)?;
            }
            Some(total)
        }
        _ => None,
    }
}

/// (Ah + o)ᵀ(Bh + o') as a quadratic scalar.
fn inner(a: &(Linear, Array1<f64>), b: &(Linear, Array1<f64>), p: usize) -> Form {
    let (la, oa) = a;
    let (lb, ob) = b;
    Form::Quadratic {
        q: Some(la.t_dot(lb, p)),
        b: la.transposed().apply(ob) + lb.transposed().apply(oa),
        c: oa.dot(ob),
    }
}

fn vector_of(m: &Array2<f64>) -> Option<Array1<f64>> {
    if m.ncols() == 1 {
        Some(m.column(0).to_owned())
    } else if m.nrows() == 1 {
        Some(m.row(0).to_owned())
    } else {
        None
    }
}

fn add(a: Form, b: Form, sign: f64, p: usize) -> Option<Form> {
    use Form::*;
    let b = scale(b, sign);
    Some(match (a, b) {
        (Constant(Value::Scalar(x)), Constant(Value::Scalar(y))) => Constant(Value::Scalar(x + y)),
        (Constant(Value::Matrix(x)), Constant(Value::Matrix(y))) => Constant(Value::Matrix(x + y)),
        (Constant(Value::Matrix(x)), Constant(Value::Scalar(y)))
        | (Constant(Value::Scalar(y)), Constant(Value::Matrix(x))) => {
            Constant(Value::Matrix(x + y))
        }
        (Column(a1, o1), Column(a2, o2)) => Column(a1.add(&a2), o1 + o2),
        (Row(a1, o1), Row(a2, o2)) => Row(a1.add(&a2), o1 + o2),
        // a scalar added to a vector: entry-wise (inside a unit's function)
        (Column(a, o), Constant(Value::Scalar(s))) | (Constant(Value::Scalar(s)), Column(a, o)) => {
            Column(a, o + s)
        }
        (Column(a, o), Constant(Value::Matrix(m))) | (Constant(Value::Matrix(m)), Column(a, o))
            if m.ncols() == 1 =>
        {
            Column(a, o + &vector_of(&m)?)
        }
        (Row(a, o), Constant(Value::Matrix(m))) | (Constant(Value::Matrix(m)), Row(a, o))
            if m.nrows() == 1 =>
        {
            Row(a, o + &vector_of(&m)?)
        }
        (Quadratic { q, b, c }, Constant(Value::Scalar(s)))
        | (Constant(Value::Scalar(s)), Quadratic { q, b, c }) => Quadratic { q, b, c: c + s },
        (
            Quadratic {
                q: q1,
                b: b1,
                c: c1,
            },
            Quadratic {
                q: q2,
                b: b2,
                c: c2,
            },
        ) => Quadratic {
            q: match (q1, q2) {
                (Some(x), Some(y)) => Some(x + y),
                (x, None) => x,
                (None, y) => y,
            },
            b: b1 + b2,
            c: c1 + c2,
        },
        (
            Outers {
                terms: mut t1,
                constant: c1,
            },
            Outers {
                terms: t2,
                constant: c2,
            },
        ) => {
            t1.extend(t2);
            Outers {
                terms: t1,
                constant: match (c1, c2) {
                    (Some(x), Some(y)) => Some(x + y),
                    (x, None) => x,
                    (None, y) => y,
                },
            }
        }
        (Outers { terms, constant }, Constant(v)) | (Constant(v), Outers { terms, constant }) => {
            let extra = match v {
                Value::Matrix(m) if m.dim() == (p, p) => m,
                Value::Scalar(s) => Array2::from_elem((p, p), s),
                Value::Matrix(_) => return None,
            };
            Outers {
                terms,
                constant: Some(constant.map_or(extra.clone(), |c| c + &extra)),
            }
        }
        _ => return None,
    })
}

fn multiply(a: Form, b: Form, p: usize) -> Option<Form> {
    use Form::*;
    Some(match (a, b) {
        (Constant(Value::Scalar(s)), f) | (f, Constant(Value::Scalar(s))) => scale(f, s),
        (Constant(Value::Matrix(m)), Constant(Value::Matrix(n))) => {
            Constant(Value::Matrix(m.dot(&n)))
        }
        (Constant(Value::Matrix(m)), Column(a, o)) if m.dim() == (p, p) => {
            Column(a.left_mul(&m), m.dot(&o))
        }
        (Constant(Value::Matrix(m)), Column(a, o)) if m.dim() == (1, p) => {
            let v = m.row(0).to_owned();
            Quadratic {
                q: None,
                b: a.transposed().apply(&v),
                c: v.dot(&o),
            }
        }
        (Row(a, o), Constant(Value::Matrix(m))) if m.dim() == (p, p) => {
            let mt = m.t().to_owned();
            Row(a.left_mul(&mt), mt.dot(&o))
        }
        (Row(a, o), Constant(Value::Matrix(m))) if m.dim() == (p, 1) => {
            let v = m.column(0).to_owned();
            Quadratic {
                q: None,
                b: a.transposed().apply(&v),
                c: o.dot(&v),
            }
        }
        (Row(a1, o1), Column(a2, o2)) => inner(&(a1, o1), &(a2, o2), p),
        (Column(a1, o1), Row(a2, o2)) => Outers {
            terms: vec![(
                1.0,
                Outer {
                    left: (a1, o1),
                    right: (a2, o2),
                },
            )],
            constant: None,
        },
        (Constant(Value::Matrix(m)), Outers { terms, constant }) if m.dim() == (p, p) => Outers {
            terms: terms
                .into_iter()
                .map(|(s, t)| {
                    let (a, o) = t.left;
                    (
                        s,
                        Outer {
                            left: (a.left_mul(&m), m.dot(&o)),
                            right: t.right,
                        },
                    )
                })
                .collect(),
            constant: constant.map(|c| m.dot(&c)),
        },
        (Outers { terms, constant }, Constant(Value::Matrix(m))) if m.dim() == (p, p) => {
            let mt = m.t().to_owned();
            Outers {
                terms: terms
                    .into_iter()
                    .map(|(s, t)| {
                        let (b, o) = t.right;
                        (
                            s,
                            Outer {
                                left: t.left,
                                right: (b.left_mul(&mt), mt.dot(&o)),
                            },
                        )
                    })
                    .collect(),
                constant: constant.map(|c| c.dot(&m)),
            }
        }
        _ => return None,
    })
}
