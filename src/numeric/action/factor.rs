//! Factorizations of [`Dense`] matrices, with derivatives flowing through them.
//!
//! * Cholesky $A=LL^\top$ of a symmetric positive-definite $A$ (reads the lower triangle),
//!   $L_{jj}=\sqrt{A_{jj}-\sum_{k<j}L_{jk}^2}$, $L_{ij}=(A_{ij}-\sum_{k<j}L_{ik}L_{jk})/L_{jj}$;
//!   a pivot $\le0$ (or NaN) is an error, never a NaN.
//! * LU with partial pivoting $PA=LU$ (pivots chosen on the real part) for the inverse and for
//!   $\ln\det A=\sum_i\ln|U_{ii}|$, which is an error unless $\det A>0$.

use num_dual::DualNum;

use super::dense::{Dense, DenseError};

impl<D: DualNum<Primitive = f64>> Dense<D> {
    /// The lower Cholesky factor $L$ of a symmetric positive-definite matrix (lower triangle read).
    pub fn cholesky(&self) -> Result<Self, DenseError> {
        self.require_square("Cholesky")?;
        let n = self.rows();
        let mut factor = Self::zeros(n, n);
        for j in 0..n {
            let mut pivot = self.get(j, j).clone();
            for k in 0..j {
                pivot -= factor.get(j, k).clone() * factor.get(j, k).clone();
            }
            let value = pivot.re();
            if value.is_nan() || value <= 0.0 || value.is_infinite() {
                return Err(DenseError::NotPositiveDefinite { pivot: j, value });
            }
            let diagonal = pivot.sqrt();
            for i in j + 1..n {
                let mut entry = self.get(i, j).clone();
                for k in 0..j {
                    entry -= factor.get(i, k).clone() * factor.get(j, k).clone();
                }
                *factor.get_mut(i, j) = entry / diagonal.clone();
            }
            *factor.get_mut(j, j) = diagonal;
        }
        Ok(factor)
    }

    /// $A^{-1}$ by LU with partial pivoting.
    pub fn inverse(&self) -> Result<Self, DenseError> {
        let lu = Lu::new(self)?;
        let n = self.rows();
        let mut inverse = Self::zeros(n, n);
        for column in 0..n {
            let unit: Vec<D> = (0..n)
                .map(|i| if i == column { D::one() } else { D::zero() })
                .collect();
            for (i, x) in lu.solve(unit).into_iter().enumerate() {
                *inverse.get_mut(i, column) = x;
            }
        }
        Ok(inverse)
    }

    /// $\ln\det A$ by LU; an error unless $\det A>0$.
    pub fn log_det(&self) -> Result<D, DenseError> {
        let lu = Lu::new(self)?;
        let mut sign = lu.permutation_sign;
        let mut log_abs = D::zero();
        for i in 0..self.rows() {
            let pivot = lu.factors.get(i, i);
            if pivot.re() < 0.0 {
                sign = -sign;
            }
            log_abs += pivot.abs().ln();
        }
        if sign < 0 {
            return Err(DenseError::NonPositiveDeterminant { sign });
        }
        Ok(log_abs)
    }
}

/// $PA=LU$: unit-lower $L$ and upper $U$ packed in one matrix, plus the row order.
struct Lu<D> {
    factors: Dense<D>,
    row_order: Vec<usize>,
    permutation_sign: i8,
}

impl<D: DualNum<Primitive = f64>> Lu<D> {
    fn new(matrix: &Dense<D>) -> Result<Self, DenseError> {
        matrix.require_square("LU")?;
        let n = matrix.rows();
        let mut factors = matrix.clone();
        let mut row_order: Vec<usize> = (0..n).collect();
        let mut permutation_sign = 1;
        let scale = matrix
            .entries()
            .iter()
            .fold(0.0_f64, |m, a| m.max(a.re().abs()));
        for k in 0..n {
            let pivot_row = (k..n)
                .max_by(|&a, &b| {
                    let (a, b) = (factors.get(a, k).re().abs(), factors.get(b, k).re().abs());
                    a.total_cmp(&b)
                })
                .unwrap_or(k);
            let value = factors.get(pivot_row, k).re();
            if !value.is_finite() || value.abs() <= f64::EPSILON * scale * n as f64 {
                return Err(DenseError::Singular { pivot: k, value });
            }
            if pivot_row != k {
                factors.swap_rows(k, pivot_row);
                row_order.swap(k, pivot_row);
                permutation_sign = -permutation_sign;
            }
            let pivot = factors.get(k, k).clone();
            for i in k + 1..n {
                let multiplier = factors.get(i, k).clone() / pivot.clone();
                for j in k + 1..n {
                    let update = multiplier.clone() * factors.get(k, j).clone();
                    *factors.get_mut(i, j) -= update;
                }
                *factors.get_mut(i, k) = multiplier;
            }
        }
        Ok(Lu {
            factors,
            row_order,
            permutation_sign,
        })
    }

    /// Solves $Ax=b$.
    fn solve(&self, rhs: Vec<D>) -> Vec<D> {
        let n = self.factors.rows();
        let mut x: Vec<D> = self.row_order.iter().map(|&r| rhs[r].clone()).collect();
        for i in 0..n {
            for k in 0..i {
                let update = self.factors.get(i, k).clone() * x[k].clone();
                x[i] -= update;
            }
        }
        for i in (0..n).rev() {
            for k in i + 1..n {
                let update = self.factors.get(i, k).clone() * x[k].clone();
                x[i] -= update;
            }
            x[i] = x[i].clone() / self.factors.get(i, i).clone();
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::action::dense::tests::{matrix, max_difference};
    use num_dual::Dual64;

    #[test]
    fn cholesky_inverse_and_log_det_agree() {
        let a = matrix(3, 3, &[4.0, 1.2, -0.6, 1.2, 3.0, 0.4, -0.6, 0.4, 2.0]);
        let l = a.cholesky().unwrap();
        assert!(max_difference(&l.matmul(&l.transpose()).unwrap(), &a) < 1e-14);
        let product = a.matmul(&a.inverse().unwrap()).unwrap();
        assert!(max_difference(&product, &Dense::identity(3)) < 1e-14);
        let log_det_cholesky: f64 = (0..3).map(|i| 2.0 * l.get(i, i).ln()).sum();
        assert!((a.log_det().unwrap() - log_det_cholesky).abs() < 1e-14);
        // A matrix that needs pivoting and has a positive determinant (-1 · -2 = 2).
        let swap = matrix(2, 2, &[0.0, 1.0, -2.0, 0.5]);
        assert!((swap.log_det().unwrap() - 2.0_f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn failures_are_errors() {
        let indefinite = matrix(2, 2, &[1.0, 2.0, 2.0, 1.0]);
        assert!(matches!(
            indefinite.cholesky(),
            Err(DenseError::NotPositiveDefinite { pivot: 1, .. })
        ));
        assert!(matches!(
            indefinite.log_det(),
            Err(DenseError::NonPositiveDeterminant { .. })
        ));
        let singular = matrix(2, 2, &[1.0, 2.0, 2.0, 4.0]);
        assert!(matches!(
            singular.inverse(),
            Err(DenseError::Singular { .. })
        ));
        let nan = matrix(1, 1, &[f64::NAN]);
        assert!(nan.cholesky().is_err() && nan.inverse().is_err());
    }

    #[test]
    fn derivatives_flow_through_factorizations() {
        // d/dt ln det(A + tB) = tr(A⁻¹B) and d/dt (A + tB)⁻¹ = -A⁻¹BA⁻¹ at t = 0.
        let a = matrix(2, 2, &[2.0, 0.3, 0.3, 1.0]);
        let b = matrix(2, 2, &[0.5, -1.0, -1.0, 2.0]);
        let t = Dual64::from_re(0.0).derivative();
        let at = Dense::from_fn(2, 2, |i, j| t * *b.get(i, j) + *a.get(i, j));
        let a_inv = a.inverse().unwrap();
        let want = a_inv.matmul(&b).unwrap().trace().unwrap();
        assert!((at.log_det().unwrap().eps - want).abs() < 1e-14);
        let l = at.cholesky().unwrap();
        let log_det_cholesky: Dual64 = (0..2).map(|i| l.get(i, i).ln() * 2.0).sum();
        assert!((log_det_cholesky.eps - want).abs() < 1e-14);
        let d_inv = at.inverse().unwrap().map(|x| Dual64::from(x.eps));
        let want = a_inv.matmul(&b).unwrap().matmul(&a_inv).unwrap();
        for (got, want) in d_inv.entries().iter().zip(want.entries()) {
            assert!((got.re + want).abs() < 1e-14);
        }
    }
}
