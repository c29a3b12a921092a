//! The integrand of a Gaussian expectation evaluated on the N units of one population, and
//! its empirical average: E[f(h)] ↦ (1/n) Σᵢ f(hᵢ).
//!
//! The units' pre-activations are the rows of H (n×P). A per-unit value is kept in the form
//! that makes its average a matrix product: a per-unit column vector as the rows of an n×P
//! matrix, a per-unit P×P matrix as a sum of weighted outer products Σₜ wₜ(i) uₜ(i) vₜ(i)ᵀ,
//! whose average is Σₜ Uₜᵀ diag(wₜ) Vₜ / n: the kernel φ(h)φ(h)ᵀ of a layer is one n×P by
//! n×P product, never n P×P matrices.
//!
//! One concept, one file: a population's integrand on its units (per-unit values, averages,
//! their memo).

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};

use crate::check::ir::{Builtin, Callee, Expr, ExprKind, MatrixFunction, Theory};
use crate::derive::build::mentions_random;
use crate::numeric::matrix::{MatrixContext, Value, builtin_f64};
use crate::numeric::tall::{tall_gram, tall_times};

/// Why an integrand cannot be evaluated unit by unit.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{reason}")]
pub struct UnitError {
    /// What the simulator cannot do, in words.
    pub reason: String,
    /// Where the construct was written.
    pub span: crate::syntax::Span,
}

fn unsupported(e: &Expr, reason: impl Into<String>) -> UnitError {
    UnitError {
        reason: reason.into(),
        span: e.span,
    }
}

/// One weighted outer product per unit: `scale · w(i) · u(i) v(i)ᵀ`.
#[derive(Debug, Clone)]
struct Outer {
    scale: f64,
    weight: Option<Array1<f64>>,
    left: Array2<f64>,
    right: Array2<f64>,
}

/// A value of the integrand on every unit.
#[derive(Debug, Clone)]
enum Units {
    /// The same for every unit (a parameter, a field, data).
    Constant(Value),
    /// A number per unit.
    Scalars(Array1<f64>),
    /// A P-vector per unit (column), stored as the rows of an n×P matrix.
    Columns(Array2<f64>),
    /// A row vector per unit, stored as the rows of an n×P matrix.
    Rows(Array2<f64>),
    /// A P×P matrix per unit: a sum of weighted outer products plus a constant.
    Matrices {
        terms: Vec<Outer>,
        constant: Option<Array2<f64>>,
    },
}

/// Entry-wise function values already computed on the same units (φ(h) in a tilt and again
/// in an average): the expression and its per-unit columns.
pub type UnitMemo = std::cell::RefCell<Vec<(Expr, Array2<f64>)>>;

/// Evaluates integrands on the units of one population.
pub struct UnitEvaluator<'a, 'c> {
    /// The theory (user functions).
    pub theory: &'a Theory,
    /// The population's random variable.
    pub var: &'a str,
    /// Pre-activations, one row per unit (n×P).
    pub h: ArrayView2<'a, f64>,
    /// Everything that does not depend on the units.
    pub constants: &'a MatrixContext<'c>,
    /// Function values to reuse across evaluations on these units (`h` must not change).
    pub memo: Option<&'a UnitMemo>,
    /// The members of a time family `h[t]` (n×P each, by time), for an expectation over a
    /// family; empty otherwise.
    pub times: &'a [Array2<f64>],
}

impl UnitEvaluator<'_, '_> {
    /// (1/n) Σᵢ f(hᵢ): a scalar or a matrix (P-vectors as P×1, row vectors as 1×P).
    pub fn average(&self, body: &Expr) -> Result<Value, UnitError> {
        self.weighted_average(body, None)
    }

    /// Σᵢ wᵢ f(hᵢ) with weights `w` summing to one (importance sampling), or the plain
    /// average (1/n) Σᵢ f(hᵢ) without.
    pub fn weighted_average(
        &self,
        body: &Expr,
        weights: Option<&Array1<f64>>,
    ) -> Result<Value, UnitError> {
        let n = self.h.nrows() as f64;
        let mean = |a: Array2<f64>| match weights {
            Some(w) => a.t().dot(w),
            None => a.sum_axis(Axis(0)) / n,
        };
        Ok(match self.eval(body)? {
            Units::Constant(v) => v,
            Units::Scalars(s) => Value::Scalar(match weights {
                Some(w) => s.dot(w),
                None => s.sum() / n,
            }),
            Units::Columns(c) => Value::Matrix(mean(c).insert_axis(Axis(1))),
            Units::Rows(r) => Value::Matrix(mean(r).insert_axis(Axis(0))),
            Units::Matrices { terms, constant } => {
                let p = self.h.ncols();
                let mut total = constant.unwrap_or_else(|| Array2::zeros((p, p)));
                for t in terms {
                    let combined = match (&t.weight, weights) {
                        (Some(a), Some(b)) => Some(a * b),
                        (Some(a), None) => Some(a / n),
                        (None, Some(b)) => Some(b.clone()),
                        (None, None) => None,
                    };
                    let (left, factor) = match combined {
                        Some(w) => (&t.left * &w.view().insert_axis(Axis(1)), 1.0),
                        None => (t.left, 1.0 / n),
                    };
                    let product = tall_gram(left.view(), t.right.view());
                    total.scaled_add(t.scale * factor, &product);
                }
                Value::Matrix(total)
            }
        })
    }

    /// A P-vector integrand on every unit, as the rows of an n×P matrix: f(hᵢ)ᵀ.
    pub fn columns(&self, body: &Expr) -> Result<Array2<f64>, UnitError> {
        match self.eval(body)? {
            Units::Columns(c) => Ok(c),
            _ => Err(unsupported(body, "not a P-vector per unit")),
        }
    }

    /// A scalar integrand on every unit: f(hᵢ) for i = 1..n.
    pub fn per_unit(&self, body: &Expr) -> Result<Array1<f64>, UnitError> {
        match self.eval(body)? {
            Units::Scalars(s) => Ok(s),
            Units::Constant(Value::Scalar(c)) => Ok(Array1::from_elem(self.h.nrows(), c)),
            _ => Err(unsupported(body, "a scalar per unit was expected")),
        }
    }

    fn constant(&self, e: &Expr) -> Result<Units, UnitError> {
        self.constants
            .eval(e)
            .map(Units::Constant)
            .map_err(|err| unsupported(e, err.to_string()))
    }

    fn eval(&self, e: &Expr) -> Result<Units, UnitError> {
        if !mentions_random(e, Some(self.var)) {
            return self.constant(e);
        }
        match &e.kind {
            ExprKind::RandomVar { name, time: None } if name == self.var => {
                Ok(Units::Columns(self.h.to_owned()))
            }
            ExprKind::RandomVar {
                name,
                time: Some(time),
            } if name == self.var && time.terms.is_empty() => usize::try_from(time.constant)
                .ok()
                .and_then(|t| self.times.get(t))
                .map(|h| Units::Columns(h.clone()))
                .ok_or_else(|| {
                    unsupported(e, format!("the family member at time {}", time.constant))
                }),
            ExprKind::Neg(a) => Ok(scale(self.eval(a)?, -1.0)),
            ExprKind::Add(a, b) => add(e, self.eval(a)?, self.eval(b)?, 1.0),
            ExprKind::Sub(a, b) => add(e, self.eval(a)?, self.eval(b)?, -1.0),
            ExprKind::Mul(a, b) => multiply(e, self.eval(a)?, self.eval(b)?),
            ExprKind::Div(a, b) => match self.eval(b)? {
                Units::Constant(Value::Scalar(s)) => Ok(scale(self.eval(a)?, 1.0 / s)),
                Units::Scalars(s) => weight(e, self.eval(a)?, s.mapv(|v| 1.0 / v)),
                _ => Err(unsupported(e, "division by a matrix")),
            },
            ExprKind::Transpose(a) => Ok(transpose(self.eval(a)?)),
            ExprKind::Pow(a, b) => {
                let exponent = self.eval(b)?;
                let base = self.eval(a)?;
                match (base, exponent) {
                    (Units::Scalars(x), Units::Constant(Value::Scalar(y))) => {
                        Ok(Units::Scalars(x.mapv(|v| v.powf(y))))
                    }
                    (Units::Constant(Value::Scalar(x)), Units::Scalars(y)) => {
                        Ok(Units::Scalars(y.mapv(|v| x.powf(v))))
                    }
                    (Units::Scalars(x), Units::Scalars(y)) => Ok(Units::Scalars(
                        Zip::from(&x).and(&y).map_collect(|a, b| a.powf(*b)),
                    )),
                    _ => Err(unsupported(e, "a power of a vector or matrix")),
                }
            }
            ExprKind::Apply { callee, args } => self.apply(e, *callee, args),
            ExprKind::Matrix(MatrixFunction::Trace, a) => match self.eval(a)? {
                Units::Matrices { terms, constant } => {
                    let n = self.h.nrows();
                    let offset = constant.map_or(0.0, |c| c.diag().sum());
                    let mut out = Array1::from_elem(n, offset);
                    for t in terms {
                        let dots = (&t.left * &t.right).sum_axis(Axis(1));
                        let dots = match &t.weight {
                            Some(w) => dots * w,
                            None => dots,
                        };
                        out.scaled_add(t.scale, &dots);
                    }
                    Ok(Units::Scalars(out))
                }
                Units::Scalars(s) => Ok(Units::Scalars(s)),
                _ => Err(unsupported(e, "the trace of a vector")),
            },
            ExprKind::Matrix(..) => Err(unsupported(
                e,
                "an inverse or log-determinant of a matrix that depends on the units",
            )),
            ExprKind::RandomVar { .. } | ExprKind::Whitened { .. } => Err(unsupported(
                e,
                "a random variable of another expectation or a time family",
            )),
            ExprKind::Expectation { .. } => {
                Err(unsupported(e, "an expectation inside an expectation"))
            }
            _ => Err(unsupported(
                e,
                "this construct depends on the units in a way the simulator cannot evaluate",
            )),
        }
    }

    /// An entry-wise function of per-unit values.
    fn apply(&self, e: &Expr, callee: Callee, args: &[Expr]) -> Result<Units, UnitError> {
        if let Some(memo) = self.memo
            && let Some((_, columns)) = memo.borrow().iter().find(|(x, _)| x == e)
        {
            return Ok(Units::Columns(columns.clone()));
        }
        let value = self.apply_uncached(e, callee, args)?;
        if let (Some(memo), Units::Columns(columns)) = (self.memo, &value) {
            memo.borrow_mut().push((e.clone(), columns.clone()));
        }
        Ok(value)
    }

    fn apply_uncached(&self, e: &Expr, callee: Callee, args: &[Expr]) -> Result<Units, UnitError> {
        let values = args
            .iter()
            .map(|a| self.eval(a))
            .collect::<Result<Vec<_>, _>>()?;
        // Every argument is entry-wise compatible: per-unit arrays of one shape or constants.
        let mut layout: Option<(bool, (usize, usize))> = None; // (is_rows, dims)
        let mut arrays = Vec::with_capacity(values.len());
        for v in values {
            let (array, rows) = match v {
                Units::Columns(c) => (Elementwise::Array(c), Some(false)),
                Units::Rows(r) => (Elementwise::Array(r), Some(true)),
                Units::Scalars(s) => {
                    let n = s.len();
                    (
                        Elementwise::Array(
                            s.into_shape_with_order((n, 1))
                                .map_err(|err| unsupported(e, err.to_string()))?,
                        ),
                        None,
                    )
                }
                Units::Constant(Value::Scalar(s)) => (Elementwise::Scalar(s), None),
                _ => {
                    return Err(unsupported(e, "a function applied to a per-unit matrix"));
                }
            };
            if let (Elementwise::Array(a), Some(is_rows)) = (&array, rows) {
                match layout {
                    None => layout = Some((is_rows, a.dim())),
                    Some((r, d)) if r == is_rows && d == a.dim() => {}
                    _ => return Err(unsupported(e, "arguments of different shapes")),
                }
            }
            arrays.push(array);
        }
        let out = match callee {
            Callee::Builtin(b) => {
                let [x] = arrays.as_slice() else {
                    return Err(unsupported(e, "a built-in with several arguments"));
                };
                x.builtin(b)
            }
            Callee::User(id) => entrywise(
                self.theory,
                &self.theory.functions[id].body,
                &arrays,
                self.constants,
            )?,
        };
        Ok(match (out, layout) {
            (Elementwise::Scalar(s), _) => Units::Constant(Value::Scalar(s)),
            (Elementwise::Array(a), Some((true, _))) => Units::Rows(a),
            (Elementwise::Array(a), Some((false, _))) => Units::Columns(a),
            (Elementwise::Array(a), None) => Units::Scalars(a.column(0).to_owned()),
        })
    }
}

/// A scalar or an array, for the entry-wise evaluation of a user function's body.
#[derive(Debug, Clone)]
enum Elementwise {
    Scalar(f64),
    Array(Array2<f64>),
}

impl Elementwise {
    /// A built-in on every entry: erf and exp by the vectorised kernels of
    /// [`crate::numeric::vector_math`] (libm's erf and exp were half of a network draw), the
    /// rest by libm.
    fn builtin(&self, b: Builtin) -> Elementwise {
        use crate::numeric::vector_math::{Isa, erf_slice, exp_slice};
        match (self, b) {
            (Elementwise::Array(a), Builtin::Erf | Builtin::Exp) => {
                let x = a.as_standard_layout();
                let Some(x) = x.as_slice() else {
                    return self.map(builtin_f64(b));
                };
                let isa = Isa::detect();
                let mut value = Array2::zeros(a.dim());
                let Some(out) = value.as_slice_mut() else {
                    return self.map(builtin_f64(b));
                };
                if b == Builtin::Erf {
                    let mut slope = vec![0.0; x.len()];
                    erf_slice(isa, x, out, &mut slope);
                } else {
                    exp_slice(isa, x, out);
                }
                Elementwise::Array(value)
            }
            _ => self.map(builtin_f64(b)),
        }
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> Elementwise {
        match self {
            Elementwise::Scalar(s) => Elementwise::Scalar(f(*s)),
            Elementwise::Array(a) => Elementwise::Array(a.mapv(f)),
        }
    }

    fn zip(self, other: Elementwise, f: impl Fn(f64, f64) -> f64) -> Elementwise {
        match (self, other) {
            (Elementwise::Scalar(a), Elementwise::Scalar(b)) => Elementwise::Scalar(f(a, b)),
            (Elementwise::Scalar(a), Elementwise::Array(b)) => {
                Elementwise::Array(b.mapv(|v| f(a, v)))
            }
            (Elementwise::Array(mut a), Elementwise::Scalar(b)) => {
                a.mapv_inplace(|v| f(v, b));
                Elementwise::Array(a)
            }
            (Elementwise::Array(mut a), Elementwise::Array(b)) => {
                Zip::from(&mut a).and(&b).for_each(|x, &y| *x = f(*x, y));
                Elementwise::Array(a)
            }
        }
    }
}

/// A user function's (scalar) body, entry by entry over its arguments' arrays.
fn entrywise(
    theory: &Theory,
    body: &Expr,
    args: &[Elementwise],
    constants: &MatrixContext<'_>,
) -> Result<Elementwise, UnitError> {
    let go = |x: &Expr| entrywise(theory, x, args, constants);
    Ok(match &body.kind {
        ExprKind::FunctionArg(i) => args
            .get(*i)
            .cloned()
            .ok_or_else(|| unsupported(body, "a function argument out of range"))?,
        ExprKind::Neg(a) => go(a)?.map(|v| -v),
        ExprKind::Add(a, b) => go(a)?.zip(go(b)?, |x, y| x + y),
        ExprKind::Sub(a, b) => go(a)?.zip(go(b)?, |x, y| x - y),
        ExprKind::Mul(a, b) => go(a)?.zip(go(b)?, |x, y| x * y),
        ExprKind::Div(a, b) => go(a)?.zip(go(b)?, |x, y| x / y),
        ExprKind::Pow(a, b) => go(a)?.zip(go(b)?, f64::powf),
        ExprKind::Apply {
            callee: Callee::Builtin(b),
            args: inner,
        } if inner.len() == 1 => go(&inner[0])?.builtin(*b),
        ExprKind::Apply {
            callee: Callee::User(id),
            args: inner,
        } => {
            let values = inner.iter().map(go).collect::<Result<Vec<_>, _>>()?;
            entrywise(theory, &theory.functions[*id].body, &values, constants)?
        }
        _ => match constants.eval(body) {
            Ok(Value::Scalar(s)) => Elementwise::Scalar(s),
            Ok(Value::Matrix(_)) => {
                return Err(unsupported(body, "a matrix inside a scalar function"));
            }
            Err(err) => return Err(unsupported(body, err.to_string())),
        },
    })
}

fn scale(u: Units, s: f64) -> Units {
    match u {
        Units::Constant(Value::Scalar(x)) => Units::Constant(Value::Scalar(x * s)),
        Units::Constant(Value::Matrix(m)) => Units::Constant(Value::Matrix(m * s)),
        Units::Scalars(x) => Units::Scalars(x * s),
        Units::Columns(x) => Units::Columns(x * s),
        Units::Rows(x) => Units::Rows(x * s),
        Units::Matrices { terms, constant } => Units::Matrices {
            terms: terms
                .into_iter()
                .map(|t| Outer {
                    scale: t.scale * s,
                    ..t
                })
                .collect(),
            constant: constant.map(|c| c * s),
        },
    }
}

fn weight(e: &Expr, u: Units, w: Array1<f64>) -> Result<Units, UnitError> {
    let column = w.view().insert_axis(Axis(1));
    Ok(match u {
        Units::Constant(Value::Scalar(x)) => Units::Scalars(w * x),
        Units::Constant(Value::Matrix(m)) if m.ncols() == 1 => Units::Columns(&column * &m.t()),
        Units::Constant(Value::Matrix(m)) if m.nrows() == 1 => Units::Rows(&column * &m),
        Units::Constant(Value::Matrix(_)) => {
            return Err(unsupported(e, "a per-unit number times a constant matrix"));
        }
        Units::Scalars(x) => Units::Scalars(x * &w),
        Units::Columns(x) => Units::Columns(x * column),
        Units::Rows(x) => Units::Rows(x * column),
        Units::Matrices { terms, constant } => {
            if constant.is_some() {
                return Err(unsupported(e, "a per-unit weight on a constant matrix"));
            }
            Units::Matrices {
                terms: terms
                    .into_iter()
                    .map(|t| Outer {
                        weight: Some(match t.weight {
                            Some(v) => v * &w,
                            None => w.clone(),
                        }),
                        ..t
                    })
                    .collect(),
                constant: None,
            }
        }
    })
}

fn broadcast_rows(v: &Array1<f64>, n: usize) -> Option<Array2<f64>> {
    v.broadcast((n, v.len())).map(|b| b.to_owned())
}

fn transpose(u: Units) -> Units {
    match u {
        Units::Constant(Value::Matrix(m)) => Units::Constant(Value::Matrix(m.t().to_owned())),
        Units::Columns(c) => Units::Rows(c),
        Units::Rows(r) => Units::Columns(r),
        Units::Matrices { terms, constant } => Units::Matrices {
            terms: terms
                .into_iter()
                .map(|t| Outer {
                    left: t.right,
                    right: t.left,
                    ..t
                })
                .collect(),
            constant: constant.map(|c| c.t().to_owned()),
        },
        other => other,
    }
}

fn add(e: &Expr, a: Units, b: Units, sign: f64) -> Result<Units, UnitError> {
    let b = scale(b, sign);
    Ok(match (a, b) {
        (Units::Constant(x), Units::Constant(y)) => Units::Constant(add_values(e, x, y)?),
        (Units::Scalars(x), Units::Scalars(y)) => Units::Scalars(x + y),
        (Units::Scalars(x), Units::Constant(Value::Scalar(y)))
        | (Units::Constant(Value::Scalar(y)), Units::Scalars(x)) => Units::Scalars(x + y),
        (Units::Columns(x), Units::Columns(y)) => Units::Columns(x + y),
        (Units::Rows(x), Units::Rows(y)) => Units::Rows(x + y),
        (Units::Columns(x), Units::Constant(c)) | (Units::Constant(c), Units::Columns(x)) => {
            Units::Columns(match c {
                Value::Scalar(s) => x + s,
                Value::Matrix(m) if m.ncols() == 1 => &x + &m.t(),
                Value::Matrix(_) => return Err(unsupported(e, "a vector plus a matrix")),
            })
        }
        (Units::Rows(x), Units::Constant(c)) | (Units::Constant(c), Units::Rows(x)) => {
            Units::Rows(match c {
                Value::Scalar(s) => x + s,
                Value::Matrix(m) if m.nrows() == 1 => &x + &m,
                Value::Matrix(_) => return Err(unsupported(e, "a row vector plus a matrix")),
            })
        }
        (
            Units::Matrices {
                terms: mut t1,
                constant: c1,
            },
            Units::Matrices {
                terms: t2,
                constant: c2,
            },
        ) => {
            t1.extend(t2);
            Units::Matrices {
                terms: t1,
                constant: match (c1, c2) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                },
            }
        }
        (Units::Matrices { terms, constant }, Units::Constant(c))
        | (Units::Constant(c), Units::Matrices { terms, constant }) => {
            let c = match c {
                Value::Matrix(m) => m,
                Value::Scalar(_) => {
                    return Err(unsupported(e, "a scalar added to a per-unit matrix"));
                }
            };
            Units::Matrices {
                terms,
                constant: Some(match constant {
                    Some(a) => a + c,
                    None => c,
                }),
            }
        }
        _ => return Err(unsupported(e, "a sum of values of different shapes")),
    })
}

fn add_values(e: &Expr, a: Value, b: Value) -> Result<Value, UnitError> {
    Ok(match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => Value::Scalar(x + y),
        (Value::Scalar(x), Value::Matrix(m)) | (Value::Matrix(m), Value::Scalar(x)) => {
            Value::Matrix(m + x)
        }
        (Value::Matrix(x), Value::Matrix(y)) if x.dim() == y.dim() => Value::Matrix(x + y),
        _ => return Err(unsupported(e, "a sum of matrices of different shapes")),
    })
}

fn multiply(e: &Expr, a: Units, b: Units) -> Result<Units, UnitError> {
    use Units::{Columns, Constant, Matrices, Rows, Scalars};
    Ok(match (a, b) {
        (Constant(Value::Scalar(s)), u) | (u, Constant(Value::Scalar(s))) => scale(u, s),
        (Scalars(w), u) | (u, Scalars(w)) => weight(e, u, w)?,
        (Constant(Value::Matrix(x)), Constant(Value::Matrix(y))) => {
            Constant(Value::Matrix(x.dot(&y)))
        }
        // u(i) v(i)ᵀ
        (Columns(u), Rows(v)) => Matrices {
            terms: vec![Outer {
                scale: 1.0,
                weight: None,
                left: u,
                right: v,
            }],
            constant: None,
        },
        // u(i)ᵀ v(i)
        (Rows(u), Columns(v)) => Scalars((&u * &v).sum_axis(Axis(1))),
        // c · u(i) with a constant row c: a number per unit (before M u(i), which a 1×P
        // row would also fit)
        (Constant(Value::Matrix(c)), Columns(u)) if c.nrows() == 1 && u.ncols() > 1 => {
            Scalars(u.dot(&c.row(0)))
        }
        // M u(i): rows U Mᵀ
        (Constant(Value::Matrix(m)), Columns(u)) if m.ncols() == u.ncols() => {
            Columns(tall_times(u.view(), m.t()))
        }
        // c u(i)ᵀ with a constant column c
        (Constant(Value::Matrix(c)), Rows(v)) if c.ncols() == 1 => {
            let left = broadcast_rows(&c.column(0).to_owned(), v.nrows())
                .ok_or_else(|| unsupported(e, "shapes do not fit"))?;
            Matrices {
                terms: vec![Outer {
                    scale: 1.0,
                    weight: None,
                    left,
                    right: v,
                }],
                constant: None,
            }
        }
        // c · u(i) with a constant row c: a number per unit
        (Constant(Value::Matrix(c)), Columns(u)) if c.nrows() == 1 => Scalars(u.dot(&c.row(0))),
        (Rows(v), Constant(Value::Matrix(m))) if m.ncols() == 1 => Scalars(v.dot(&m.column(0))),
        (Rows(v), Constant(Value::Matrix(m))) if m.nrows() == v.ncols() => {
            Rows(tall_times(v.view(), m.view()))
        }
        (Columns(u), Constant(Value::Matrix(c))) if c.nrows() == 1 => {
            let right = broadcast_rows(&c.row(0).to_owned(), u.nrows())
                .ok_or_else(|| unsupported(e, "shapes do not fit"))?;
            Matrices {
                terms: vec![Outer {
                    scale: 1.0,
                    weight: None,
                    left: u,
                    right,
                }],
                constant: None,
            }
        }
        (Matrices { terms, constant }, Constant(Value::Matrix(m))) if m.nrows() == m.ncols() => {
            Matrices {
                terms: terms
                    .into_iter()
                    .map(|t| Outer {
                        right: tall_times(t.right.view(), m.view()),
                        ..t
                    })
                    .collect(),
                constant: constant.map(|c| c.dot(&m)),
            }
        }
        (Constant(Value::Matrix(m)), Matrices { terms, constant }) if m.nrows() == m.ncols() => {
            Matrices {
                terms: terms
                    .into_iter()
                    .map(|t| Outer {
                        left: t.left.dot(&m.t()),
                        ..t
                    })
                    .collect(),
                constant: constant.map(|c| m.dot(&c)),
            }
        }
        _ => {
            return Err(unsupported(
                e,
                "a product of per-unit values the simulator cannot form",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised erf and exp on every entry agree with libm's to an ulp or two, whatever
    /// the layout of the units (a transposed view too), NaN included.
    #[test]
    fn vectorised_builtins_agree_with_libm_entry_by_entry() {
        let values: Vec<f64> = (0..240)
            .map(|i| -9.0 + 0.075 * i as f64)
            .chain([0.0, -0.0, 1e-300, 700.0, -745.0, f64::NAN])
            .collect();
        let a = Array2::from_shape_vec((41, 6), values).unwrap();
        for array in [a.clone(), a.t().to_owned().reversed_axes()] {
            for (b, reference) in [
                (Builtin::Erf, libm::erf as fn(f64) -> f64),
                (Builtin::Exp, libm::exp),
            ] {
                let Elementwise::Array(got) = Elementwise::Array(array.clone()).builtin(b) else {
                    panic!("an array stays an array");
                };
                assert_eq!(got.dim(), array.dim());
                for (&x, &y) in array.iter().zip(&got) {
                    let want = reference(x);
                    if want.is_nan() {
                        assert!(y.is_nan(), "{b:?}({x}) = {y}");
                    } else {
                        let ulps =
                            (want - y).abs() / (want.abs() * f64::EPSILON).max(f64::MIN_POSITIVE);
                        assert!(ulps <= 2.0, "{b:?}({x}): {y} vs {want}");
                    }
                }
            }
        }
        let Elementwise::Scalar(s) = Elementwise::Scalar(0.5).builtin(Builtin::Erf) else {
            panic!("a scalar stays a scalar");
        };
        assert_eq!(s, libm::erf(0.5));
    }
}
