//! A small dense matrix over any num-dual scalar.
//!
//! The action only ever sees tiny matrices ($P\le4$, $P\,T\le12$), so this is a row-major
//! `Vec<D>` with textbook algorithms, written for clarity:
//!
//! * products, transposes, sums, scalar operations, entry-wise maps, the trace;
//! * Cholesky, inverse and $\ln\det$ (module `factor`).
//!
//! The scalar only needs `DualNum<Primitive = f64>` (which implies `Clone`), so both the `Copy`
//! types (`f64`, `Dual64`, `HyperDual64`) and the heap-backed ones (`DualDVec64`) work;
//! derivatives flow through every operation, including the factorizations.

use num_dual::DualNum;

/// A failed matrix operation.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DenseError {
    /// Operand shapes do not fit the operation.
    #[error("{operation}: shapes {left:?} and {right:?} do not fit")]
    ShapeMismatch {
        /// The operation (`add`, `matmul`, …).
        operation: &'static str,
        /// `(rows, cols)` of the left operand.
        left: (usize, usize),
        /// `(rows, cols)` of the right operand.
        right: (usize, usize),
    },
    /// The operation needs a square matrix.
    #[error("{operation} needs a square matrix, got {rows}×{cols}")]
    NotSquare {
        /// The operation.
        operation: &'static str,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// Cholesky met a pivot that is not positive.
    #[error("matrix is not positive definite (Cholesky pivot {pivot} is {value:e})")]
    NotPositiveDefinite {
        /// Index of the failing pivot.
        pivot: usize,
        /// Its value (real part) before the square root.
        value: f64,
    },
    /// LU met a zero (or not finite) pivot.
    #[error("matrix is singular (LU pivot {pivot} is {value:e})")]
    Singular {
        /// Index of the failing pivot.
        pivot: usize,
        /// Its value (real part).
        value: f64,
    },
    /// `ln det` of a matrix whose determinant is not positive.
    #[error("determinant is not positive (sign {sign}), its logarithm is undefined")]
    NonPositiveDeterminant {
        /// The sign of the determinant: -1.
        sign: i8,
    },
}

/// A dense `rows × cols` matrix of scalars `D`, stored row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<D> {
    rows: usize,
    cols: usize,
    entries: Vec<D>,
}

impl<D: DualNum<Primitive = f64>> Dense<D> {
    /// The matrix with entry `(i, j)` equal to `entry(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut entry: impl FnMut(usize, usize) -> D) -> Self {
        let mut entries = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                entries.push(entry(i, j));
            }
        }
        Dense {
            rows,
            cols,
            entries,
        }
    }

    /// The matrix with the given row-major entries; an error unless there are `rows · cols`.
    pub fn from_vec(rows: usize, cols: usize, entries: Vec<D>) -> Result<Self, DenseError> {
        if entries.len() != rows * cols {
            return Err(DenseError::ShapeMismatch {
                operation: "from_vec",
                left: (rows, cols),
                right: (entries.len(), 1),
            });
        }
        Ok(Dense {
            rows,
            cols,
            entries,
        })
    }

    /// The all-zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self::from_fn(rows, cols, |_, _| D::zero())
    }

    /// The `n × n` identity.
    pub fn identity(n: usize) -> Self {
        Self::from_fn(n, n, |i, j| if i == j { D::one() } else { D::zero() })
    }

    /// A 1×1 matrix.
    pub fn scalar(value: D) -> Self {
        Dense {
            rows: 1,
            cols: 1,
            entries: vec![value],
        }
    }

    /// A matrix of constants (no derivative parts).
    pub fn from_f64(rows: usize, cols: usize, entry: impl Fn(usize, usize) -> f64) -> Self {
        Self::from_fn(rows, cols, |i, j| D::from(entry(i, j)))
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Entry `(i, j)`; panics only on an index outside the matrix (a bug in the caller).
    pub fn get(&self, i: usize, j: usize) -> &D {
        &self.entries[i * self.cols + j]
    }

    /// Mutable entry `(i, j)`.
    pub fn get_mut(&mut self, i: usize, j: usize) -> &mut D {
        &mut self.entries[i * self.cols + j]
    }

    /// The entries in row-major order.
    pub fn entries(&self) -> &[D] {
        &self.entries
    }

    /// The single entry of a 1×1 matrix.
    pub fn as_scalar(&self) -> Option<&D> {
        (self.rows == 1 && self.cols == 1).then(|| &self.entries[0])
    }

    /// $A^\top$.
    pub fn transpose(&self) -> Self {
        Self::from_fn(self.cols, self.rows, |i, j| self.get(j, i).clone())
    }

    /// $\tfrac12(A+A^\top)$.
    pub fn symmetrised(&self) -> Result<Self, DenseError> {
        self.require_square("symmetrisation")?;
        Ok(Self::from_fn(self.rows, self.cols, |i, j| {
            (self.get(i, j).clone() + self.get(j, i).clone()) * 0.5
        }))
    }

    /// Entry-wise map.
    pub fn map(&self, f: impl FnMut(&D) -> D) -> Self {
        Dense {
            rows: self.rows,
            cols: self.cols,
            entries: self.entries.iter().map(f).collect(),
        }
    }

    /// Entry-wise combination of two matrices of the same shape.
    pub fn zip_map(
        &self,
        other: &Self,
        operation: &'static str,
        mut f: impl FnMut(&D, &D) -> D,
    ) -> Result<Self, DenseError> {
        if self.shape() != other.shape() {
            return Err(self.mismatch(operation, other));
        }
        Ok(Dense {
            rows: self.rows,
            cols: self.cols,
            entries: self
                .entries
                .iter()
                .zip(&other.entries)
                .map(|(a, b)| f(a, b))
                .collect(),
        })
    }

    /// $A+B$.
    pub fn add(&self, other: &Self) -> Result<Self, DenseError> {
        self.zip_map(other, "add", |a, b| a.clone() + b.clone())
    }

    /// $A-B$.
    pub fn sub(&self, other: &Self) -> Result<Self, DenseError> {
        self.zip_map(other, "subtract", |a, b| a.clone() - b.clone())
    }

    /// $sA$.
    pub fn scale(&self, factor: &D) -> Self {
        self.map(|a| a.clone() * factor.clone())
    }

    /// $A+s$ on every entry.
    pub fn add_scalar(&self, shift: &D) -> Self {
        self.map(|a| a.clone() + shift.clone())
    }

    /// The matrix product $AB$.
    pub fn matmul(&self, other: &Self) -> Result<Self, DenseError> {
        if self.cols != other.rows {
            return Err(self.mismatch("matrix product", other));
        }
        Ok(Self::from_fn(self.rows, other.cols, |i, j| {
            let mut sum = D::zero();
            for k in 0..self.cols {
                sum += self.get(i, k).clone() * other.get(k, j).clone();
            }
            sum
        }))
    }

    /// $\operatorname{tr}A$.
    pub fn trace(&self) -> Result<D, DenseError> {
        self.require_square("trace")?;
        Ok((0..self.rows).map(|i| self.get(i, i).clone()).sum())
    }

    pub(super) fn require_square(&self, operation: &'static str) -> Result<(), DenseError> {
        if self.rows == self.cols {
            Ok(())
        } else {
            Err(DenseError::NotSquare {
                operation,
                rows: self.rows,
                cols: self.cols,
            })
        }
    }

    /// Swaps rows `a` and `b`.
    pub fn swap_rows(&mut self, a: usize, b: usize) {
        for j in 0..self.cols {
            self.entries.swap(a * self.cols + j, b * self.cols + j);
        }
    }

    fn mismatch(&self, operation: &'static str, other: &Self) -> DenseError {
        DenseError::ShapeMismatch {
            operation,
            left: self.shape(),
            right: other.shape(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn matrix(rows: usize, cols: usize, values: &[f64]) -> Dense<f64> {
        Dense::from_f64(rows, cols, |i, j| values[i * cols + j])
    }

    pub(crate) fn max_difference(a: &Dense<f64>, b: &Dense<f64>) -> f64 {
        a.entries()
            .iter()
            .zip(b.entries())
            .fold(0.0, |m, (x, y)| m.max((x - y).abs()))
    }

    #[test]
    fn sums_scaling_and_symmetrisation() {
        let a = matrix(2, 2, &[1.0, 2.0, 4.0, 3.0]);
        let sym = a.symmetrised().unwrap();
        assert!(max_difference(&sym, &matrix(2, 2, &[1.0, 3.0, 3.0, 3.0])) < 1e-15);
        let combined = a
            .add(&a.scale(&2.0))
            .unwrap()
            .sub(&a)
            .unwrap()
            .add_scalar(&1.0);
        assert!(max_difference(&combined, &a.map(|x| 2.0 * x + 1.0)) < 1e-15);
        let mut swapped = a.clone();
        swapped.swap_rows(0, 1);
        assert_eq!(swapped.entries(), &[4.0, 3.0, 1.0, 2.0]);
        assert!(Dense::<f64>::from_vec(2, 2, vec![1.0]).is_err());
        assert_eq!(Dense::scalar(5.0).as_scalar(), Some(&5.0));
        assert_eq!(a.as_scalar(), None);
    }

    #[test]
    fn products_transpose_and_trace() {
        let a = matrix(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let gram = a.matmul(&a.transpose()).unwrap();
        assert_eq!(gram, matrix(2, 2, &[14.0, 32.0, 32.0, 77.0]));
        assert_eq!(gram.trace().unwrap(), 91.0);
        assert!(matches!(
            a.matmul(&a),
            Err(DenseError::ShapeMismatch { .. })
        ));
        assert!(a.trace().is_err() && a.add(&gram).is_err());
    }
}
