//! Numeric evaluation of matrix expressions that need no Gaussian integral: definitions
//! (`C[0] = g0 / d * X X^T + gb0`), data-only matrices of entry formulas, and the readout
//! kernel (`gw * Q[L]`). Products of matrices go through faer; everything else is
//! entry-wise on ndarray.

use ndarray::{Array2, ArrayView2, Zip};

use crate::check::ir::{
    Builtin, Callee, DataRole, Expr, ExprKind, IndexExpr, MatrixFunction, Size,
};

/// A scalar or a matrix (vectors are P×1 matrices).
#[derive(Debug, Clone)]
pub enum Value {
    /// A number.
    Scalar(f64),
    /// A matrix.
    Matrix(Array2<f64>),
}

/// Why an expression cannot be evaluated.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum MatrixEvalError {
    /// A field entry with no value yet.
    #[error("`{0}` has no value at this point of the computation")]
    Missing(String),
    /// Inputs or targets the expression needs but the caller did not give.
    #[error("the expression needs the {0}, which were not given")]
    MissingData(&'static str),
    /// Shapes that do not fit (a bug upstream or inconsistent data).
    #[error("shapes do not fit: {0}")]
    Shape(String),
    /// A matrix to invert that has no inverse.
    #[error(
        "a matrix to invert is singular (a kernel of rank below P: more patterns than input \
         dimensions, or repeated patterns)"
    )]
    Singular,
    /// A construct this evaluator does not handle.
    #[error("cannot evaluate {0} numerically here")]
    Unsupported(String),
}

/// Looks a field entry up by field id and concrete indices.
pub type FieldLookup<'a> = dyn Fn(usize, &[i64]) -> Option<&'a Array2<f64>> + 'a;

/// What an expression can refer to.
pub struct MatrixContext<'a> {
    /// Parameter values by id.
    pub params: &'a [f64],
    /// The inputs X (P×d).
    pub inputs: Option<ArrayView2<'a, f64>>,
    /// The targets Y (P×D).
    pub targets: Option<ArrayView2<'a, f64>>,
    /// Field entries by field id and concrete indices.
    pub field: &'a FieldLookup<'a>,
    /// Field names for messages.
    pub field_name: &'a dyn Fn(usize) -> String,
}

impl MatrixContext<'_> {
    fn patterns(&self) -> Result<usize, MatrixEvalError> {
        self.inputs
            .map(|x| x.nrows())
            .ok_or(MatrixEvalError::MissingData("inputs"))
    }

    /// Evaluates an unrolled expression.
    pub fn eval(&self, e: &Expr) -> Result<Value, MatrixEvalError> {
        use Value::{Matrix, Scalar};
        Ok(match &e.kind {
            ExprKind::Number(v) if e.shape.is_scalar() => Scalar(*v),
            ExprKind::Number(v) => {
                let p = self.patterns()?;
                let cols = if e.shape.cols == crate::check::ir::Dim::One {
                    1
                } else {
                    p
                };
                Matrix(Array2::from_elem((p, cols), *v))
            }
            ExprKind::Pi => Scalar(std::f64::consts::PI),
            ExprKind::Param(id) => Scalar(self.params.get(*id).copied().unwrap_or(f64::NAN)),
            ExprKind::Size(s) => Scalar(match s {
                Size::Patterns => self.patterns()? as f64,
                Size::Inputs => self
                    .inputs
                    .ok_or(MatrixEvalError::MissingData("inputs"))?
                    .ncols() as f64,
                Size::Outputs => self
                    .targets
                    .ok_or(MatrixEvalError::MissingData("targets"))?
                    .ncols() as f64,
            }),
            ExprKind::Identity => Matrix(Array2::eye(self.patterns()?)),
            ExprKind::Ones => {
                let p = self.patterns()?;
                Matrix(Array2::ones((p, p)))
            }
            ExprKind::Data(DataRole::Inputs) => Matrix(
                self.inputs
                    .ok_or(MatrixEvalError::MissingData("inputs"))?
                    .to_owned(),
            ),
            ExprKind::Data(DataRole::Targets) => Matrix(
                self.targets
                    .ok_or(MatrixEvalError::MissingData("targets"))?
                    .to_owned(),
            ),
            ExprKind::Field { field, indices } => {
                let idx: Vec<i64> = indices.iter().map(|i: &IndexExpr| i.constant).collect();
                let value = (self.field)(*field, &idx).ok_or_else(|| {
                    let list = idx
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ");
                    MatrixEvalError::Missing(format!("{}[{list}]", (self.field_name)(*field)))
                })?;
                Matrix(value.clone())
            }
            ExprKind::Neg(a) => map(self.eval(a)?, |v| -v),
            // s X Xᵀ + o (a deep network's input kernel; `s * X X^T` parses as s X Xᵀ)
            // straight from the data: no copy of X, the symmetric product, and the scale
            // and the offset ride on the product and on its mirroring.
            ExprKind::Add(..) | ExprKind::Mul(..)
                if let Some((data, factor, offset)) = self.affine_gram(e)? =>
            {
                Matrix(gram_affine(data, factor, offset)?)
            }
            ExprKind::Add(a, b) => combine(self.eval(a)?, self.eval(b)?, |x, y| x + y)?,
            ExprKind::Sub(a, b) => combine(self.eval(a)?, self.eval(b)?, |x, y| x - y)?,
            ExprKind::Div(a, b) => match self.eval(b)? {
                Scalar(s) => map(self.eval(a)?, |v| v / s),
                Matrix(_) => return Err(MatrixEvalError::Shape("division by a matrix".into())),
            },
            ExprKind::Pow(a, b) => match (self.eval(a)?, self.eval(b)?) {
                (Scalar(x), Scalar(y)) => Scalar(x.powf(y)),
                _ => return Err(MatrixEvalError::Shape("a power of a matrix".into())),
            },
            ExprKind::Mul(a, b) => match (self.eval(a)?, self.eval(b)?) {
                (Scalar(x), Scalar(y)) => Scalar(x * y),
                (Scalar(x), Matrix(m)) | (Matrix(m), Scalar(x)) => Matrix(m * x),
                (Matrix(x), Matrix(y)) => Matrix(matmul(x.view(), y.view())?),
            },
            ExprKind::Transpose(a) => match self.eval(a)? {
                Matrix(m) => Matrix(m.t().to_owned()),
                s => s,
            },
            ExprKind::Apply {
                callee: Callee::Builtin(b),
                args,
            } if args.len() == 1 => {
                let f = builtin_f64(*b);
                map(self.eval(&args[0])?, f)
            }
            ExprKind::Matrix(MatrixFunction::Inverse, a) => match self.eval(a)? {
                Matrix(m) => Matrix(inverse(&m)?),
                Scalar(x) => Scalar(1.0 / x),
            },
            ExprKind::Matrix(MatrixFunction::LogDet, a) => match self.eval(a)? {
                Matrix(m) => Scalar(log_det(&m)?),
                Scalar(x) => Scalar(x.ln()),
            },
            ExprKind::Matrix(MatrixFunction::Trace, a) => match self.eval(a)? {
                Matrix(m) => Scalar(m.diag().sum()),
                s => s,
            },
            _ => return Err(MatrixEvalError::Unsupported(format!("{:?}", short(e)))),
        })
    }
}

impl<'d> MatrixContext<'d> {
    /// [`eval`](MatrixContext::eval) of a symmetric matrix of which only the diagonal and
    /// the upper triangle will be read (a deep network's input kernel, read only by pair
    /// maps): `s X Xᵀ + o` then skips mirroring, and its strict lower triangle must not be
    /// read; any other expression is evaluated in full.
    pub fn eval_upper_triangle(&self, e: &Expr) -> Result<Value, MatrixEvalError> {
        match self.affine_gram(e)? {
            Some((data, factor, offset)) => Ok(Value::Matrix(gram_affine_triangle(
                data, factor, offset, false,
            )?)),
            None => self.eval(e),
        }
    }

    /// `(D, s, o)` when `e` is `s D Dᵀ + o` (either order) or `s D Dᵀ` (o = 0) for a data
    /// matrix D and scalars s, o (s = 1 when absent). A matrix factor is an error in a bare
    /// product, and leaves a sum to the general evaluation.
    fn affine_gram(
        &self,
        e: &Expr,
    ) -> Result<Option<(ArrayView2<'d, f64>, f64, f64)>, MatrixEvalError> {
        let (product, other) = match &e.kind {
            ExprKind::Mul(x, y) => ((x, y), None),
            ExprKind::Add(a, b) => match (&a.kind, &b.kind) {
                (ExprKind::Mul(x, y), _) if b.shape.is_scalar() => ((x, y), Some(b)),
                (_, ExprKind::Mul(x, y)) if a.shape.is_scalar() => ((x, y), Some(a)),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let Some((role, factor)) = gram_of(product.0, product.1) else {
            return Ok(None);
        };
        let data = match role {
            DataRole::Inputs => self.inputs.ok_or(MatrixEvalError::MissingData("inputs"))?,
            _ => self
                .targets
                .ok_or(MatrixEvalError::MissingData("targets"))?,
        };
        let scale = match factor.map(|f| self.eval(f)).transpose()? {
            None => 1.0,
            Some(Value::Scalar(s)) => s,
            Some(Value::Matrix(_)) if other.is_some() => return Ok(None),
            Some(Value::Matrix(_)) => {
                return Err(MatrixEvalError::Shape("a matrix factor of X X^T".into()));
            }
        };
        let offset = match other.map(|o| self.eval(o)).transpose()? {
            None => 0.0,
            Some(Value::Scalar(o)) => o,
            Some(Value::Matrix(_)) => return Ok(None),
        };
        Ok(Some((data, scale, offset)))
    }
}

fn to_faer(m: &Array2<f64>) -> faer::Mat<f64> {
    faer::Mat::from_fn(m.nrows(), m.ncols(), |i, j| m[[i, j]])
}

/// A⁻¹ by LU with partial pivoting; a singular matrix is an error.
pub fn inverse(m: &Array2<f64>) -> Result<Array2<f64>, MatrixEvalError> {
    use faer::linalg::solvers::DenseSolveCore;
    if !m.is_square() {
        return Err(MatrixEvalError::Shape(format!(
            "the inverse of a {:?} matrix",
            m.dim()
        )));
    }
    let inv = to_faer(m).partial_piv_lu().inverse();
    let out = Array2::from_shape_fn(m.dim(), |(i, j)| inv[(i, j)]);
    if out.iter().all(|v| v.is_finite()) {
        Ok(out)
    } else {
        Err(MatrixEvalError::Singular)
    }
}

/// ln det A of a positive-definite A (Cholesky); anything else is an error.
fn log_det(m: &Array2<f64>) -> Result<f64, MatrixEvalError> {
    let llt = to_faer(m).llt(faer::Side::Lower).map_err(|_| {
        MatrixEvalError::Shape("ln det of a matrix that is not positive definite".into())
    })?;
    let l = llt.L();
    Ok((0..l.nrows()).map(|i| 2.0 * l[(i, i)].ln()).sum())
}

/// `Some((role, None))` when `a b` is `D Dᵀ` for a data matrix D, `Some((role, Some(s)))`
/// when it is `(s D) Dᵀ` with a scalar s.
fn gram_of<'e>(a: &'e Expr, b: &Expr) -> Option<(DataRole, Option<&'e Expr>)> {
    let ExprKind::Transpose(t) = &b.kind else {
        return None;
    };
    let ExprKind::Data(role) = &t.kind else {
        return None;
    };
    match &a.kind {
        ExprKind::Data(r) if r == role => Some((*role, None)),
        ExprKind::Mul(s, d)
            if s.shape.is_scalar() && matches!(&d.kind, ExprKind::Data(r) if r == role) =>
        {
            Some((*role, Some(&**s)))
        }
        _ => None,
    }
}

fn short(e: &Expr) -> String {
    format!("{:?}", e.kind).chars().take(60).collect()
}

/// `m[i] = f(m[i])` for every entry, on all cores (kernels are P×P: hundreds of MB).
fn map_entries(m: &mut Array2<f64>, f: impl Fn(f64) -> f64 + Sync) {
    use rayon::prelude::*;
    match m.as_slice_mut() {
        Some(entries) => entries
            .par_iter_mut()
            .with_min_len(1 << 14)
            .for_each(|v| *v = f(*v)),
        None => m.mapv_inplace(f),
    }
}

fn map(v: Value, f: impl Fn(f64) -> f64 + Sync) -> Value {
    match v {
        Value::Scalar(x) => Value::Scalar(f(x)),
        Value::Matrix(mut m) => {
            map_entries(&mut m, f);
            Value::Matrix(m)
        }
    }
}

fn combine(
    a: Value,
    b: Value,
    f: impl Fn(f64, f64) -> f64 + Sync,
) -> Result<Value, MatrixEvalError> {
    Ok(match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => Value::Scalar(f(x, y)),
        (Value::Scalar(x), Value::Matrix(mut m)) => {
            map_entries(&mut m, |v| f(x, v));
            Value::Matrix(m)
        }
        (Value::Matrix(mut m), Value::Scalar(y)) => {
            map_entries(&mut m, |v| f(v, y));
            Value::Matrix(m)
        }
        (Value::Matrix(mut x), Value::Matrix(y)) => {
            if x.dim() != y.dim() {
                return Err(MatrixEvalError::Shape(format!(
                    "{:?} and {:?}",
                    x.dim(),
                    y.dim()
                )));
            }
            Zip::from(&mut x).and(&y).for_each(|a, &b| *a = f(*a, b));
            Value::Matrix(x)
        }
    })
}

/// `a b` through faer (parallel, cache-blocked), written straight into the result's buffer.
pub fn matmul(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Result<Array2<f64>, MatrixEvalError> {
    if a.ncols() != b.nrows() {
        return Err(MatrixEvalError::Shape(format!(
            "product of {:?} and {:?}",
            a.dim(),
            b.dim()
        )));
    }
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let layout = || MatrixEvalError::Shape("a matrix without a contiguous layout".into());
    let lhs = faer::MatRef::from_row_major_slice(a.as_slice().ok_or_else(layout)?, m, k);
    let rhs = faer::MatRef::from_row_major_slice(b.as_slice().ok_or_else(layout)?, k, n);
    let mut out = Array2::<f64>::zeros((m, n));
    let dst = faer::MatMut::from_row_major_slice_mut(out.as_slice_mut().ok_or_else(layout)?, m, n);
    faer::linalg::matmul::matmul(
        dst,
        faer::Accum::Replace,
        lhs,
        rhs,
        1.0,
        faer::get_global_parallelism(),
    );
    Ok(out)
}

/// `a aᵀ` through faer, computing the upper triangle only (half the flops of [`matmul`]) and
/// mirroring it: the result is exactly symmetric.
pub fn gram(a: ArrayView2<f64>) -> Result<Array2<f64>, MatrixEvalError> {
    gram_affine(a, 1.0, 0.0)
}

/// Rows per band of [`gram_affine`]: wide enough for gemm to run at full speed, narrow enough
/// that the bands (whose work shrinks down the matrix) balance over the cores.
const GRAM_BAND: usize = 256;

/// `s a aᵀ + o` (o added to every entry), with the scale in the product and the offset in
/// the upper triangle before it is mirrored.
///
/// The upper triangle is cut into bands of [`GRAM_BAND`] rows; band r is one sequential gemm,
/// rows rB..rB+B against columns rB..P, and the bands run in parallel. Plain gemm at full
/// speed on half the flops (plus the diagonal blocks) beats faer's triangular product, which
/// reaches only about half of gemm's rate on this machine.
pub fn gram_affine(
    a: ArrayView2<f64>,
    scale: f64,
    offset: f64,
) -> Result<Array2<f64>, MatrixEvalError> {
    gram_affine_triangle(a, scale, offset, true)
}

/// [`gram_affine`]; without `mirror` the strict lower triangle is not to be read: zero, but
/// inside the diagonal blocks of the bands s·a aᵀ without the offset (gemm computes those
/// blocks in full).
fn gram_affine_triangle(
    a: ArrayView2<f64>,
    scale: f64,
    offset: f64,
    mirror: bool,
) -> Result<Array2<f64>, MatrixEvalError> {
    use rayon::prelude::*;
    let (m, k) = a.dim();
    let a = a.as_standard_layout();
    let layout = || MatrixEvalError::Shape("a matrix without a contiguous layout".into());
    let lhs = faer::MatRef::from_row_major_slice(a.as_slice().ok_or_else(layout)?, m, k);
    let mut out = crate::numeric::buffer::filled_matrix(m, m, 0.0);
    if m == 0 {
        return Ok(out);
    }
    let entries = out.as_slice_mut().ok_or_else(layout)?;
    entries
        .par_chunks_mut(GRAM_BAND * m)
        .enumerate()
        .for_each(|(band, rows)| {
            let first = band * GRAM_BAND;
            let height = rows.len() / m;
            let dst = faer::MatMut::from_row_major_slice_mut(rows, height, m)
                .subcols_mut(first, m - first);
            faer::linalg::matmul::matmul(
                dst,
                faer::Accum::Replace,
                lhs.subrows(first, height),
                lhs.subrows(first, m - first).transpose(),
                scale,
                faer::Par::Seq,
            );
            if offset != 0.0 {
                for (i, row) in rows.chunks_mut(m).enumerate() {
                    row[first + i..].iter_mut().for_each(|v| *v += offset);
                }
            }
        });
    if mirror {
        crate::numeric::kernel_map::mirror_upper(&mut out);
    }
    Ok(out)
}

/// A built-in function on `f64`: the one definition of the plain numeric evaluators.
pub fn builtin_f64(b: Builtin) -> fn(f64) -> f64 {
    match b {
        Builtin::Exp => f64::exp,
        Builtin::Ln => f64::ln,
        Builtin::Sqrt => f64::sqrt,
        // plain libm: the dual-number erf also forms its derivatives (an exp per call)
        Builtin::Erf => libm::erf,
        Builtin::Tanh => f64::tanh,
        Builtin::Asin => f64::asin,
        Builtin::Acos => f64::acos,
        Builtin::Atan => f64::atan,
        Builtin::Abs => f64::abs,
        Builtin::Sign => |v| if v > 0.0 { 1.0 } else { -1.0 },
        Builtin::Step => |v| if v > 0.0 { 1.0 } else { 0.0 },
        Builtin::Relu => |v| v.max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_affine_is_the_scaled_product_plus_the_offset() {
        let (m, k) = (150, 33);
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 13 + j * 7) % 19) as f64 / 5.0 - 1.8);
        let plain = gram(a.view()).unwrap();
        let g = gram_affine(a.view(), 0.37, -0.25).unwrap();
        for i in 0..m {
            for j in 0..m {
                let want = 0.37 * plain[[i, j]] - 0.25;
                assert!(
                    (g[[i, j]] - want).abs() <= 1e-14 * (1.0 + want.abs()),
                    "({i},{j})"
                );
                assert_eq!(g[[i, j]], g[[j, i]]);
            }
        }
    }

    #[test]
    fn the_unmirrored_gram_has_the_same_diagonal_and_upper_triangle() {
        let (m, k) = (GRAM_BAND + 40, 9);
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 11 + j * 5) % 13) as f64 / 4.0 - 1.5);
        let full = gram_affine(a.view(), 0.5, 0.125).unwrap();
        let upper = gram_affine_triangle(a.view(), 0.5, 0.125, false).unwrap();
        for i in 0..m {
            for j in i..m {
                assert_eq!(upper[[i, j]].to_bits(), full[[i, j]].to_bits(), "({i},{j})");
            }
        }
        // below the first band's diagonal block nothing was written
        assert_eq!(upper[[m - 1, 0]], 0.0);
    }

    #[test]
    fn gram_is_the_symmetric_product_to_rounding() {
        // Three bands of GRAM_BAND rows, the last one ragged; past faer's blocking thresholds.
        let (m, k) = (2 * GRAM_BAND + 91, 77);
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 31 + j * 17) % 23) as f64 / 7.0 - 1.5);
        let g = gram(a.view()).unwrap();
        for i in 0..m {
            for j in 0..m {
                let naive: f64 = (0..k).map(|l| a[[i, l]] * a[[j, l]]).sum();
                let size: f64 = (0..k).map(|l| (a[[i, l]] * a[[j, l]]).abs()).sum();
                assert!(
                    (g[[i, j]] - naive).abs() <= 1e-14 * size.max(1.0),
                    "({i},{j}): {} vs {naive}",
                    g[[i, j]]
                );
                assert_eq!(g[[i, j]], g[[j, i]]);
            }
        }
    }
}
