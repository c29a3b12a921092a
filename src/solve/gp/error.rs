//! Errors of GP regression, each carrying its evidence (STYLE.md rule 6).

use ndarray::ArrayView2;

/// Why GP regression could not be carried out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GpError {
    /// Cholesky of $K+\kappa I+\epsilon I$ failed for every jitter of the policy.
    #[error(
        "K + κI is not positive definite: Cholesky failed at pivot {pivot} even with jitter \
         {jitter_tried:e} (the largest the policy allows); the kernel is indefinite"
    )]
    NotPositiveDefinite {
        /// Largest absolute jitter $\epsilon$ tried.
        jitter_tried: f64,
        /// Pivot (0-based) at which the last attempt failed.
        pivot: usize,
    },
    /// An argument has the wrong shape.
    #[error("`{name}` has shape {found:?} but {expected}")]
    ShapeMismatch {
        /// The argument.
        name: &'static str,
        /// What was required.
        expected: String,
        /// The shape found (rows, columns; a vector as (len, 1)).
        found: (usize, usize),
    },
    /// An argument contains NaN or ±inf.
    #[error("`{name}` has a non-finite entry {value} at ({row}, {column})")]
    NonFinite {
        /// The argument.
        name: &'static str,
        /// 0-based row.
        row: usize,
        /// 0-based column.
        column: usize,
        /// The value found.
        value: f64,
    },
    /// The training kernel is not symmetric within
    /// [`SYMMETRY_TOLERANCE`](super::SYMMETRY_TOLERANCE).
    #[error(
        "kernel is not symmetric: K[{row}][{column}] = {value} but K[{column}][{row}] = \
         {transposed_value}"
    )]
    NotSymmetric {
        /// 0-based row.
        row: usize,
        /// 0-based column.
        column: usize,
        /// $K_{ij}$.
        value: f64,
        /// $K_{ji}$.
        transposed_value: f64,
    },
    /// The noise is negative or not finite.
    #[error("noise κ = {0} must be finite and ≥ 0")]
    InvalidNoise(f64),
    /// A result overflowed although every input was finite (targets or kernel entries too
    /// large for their squares and sums to be represented).
    #[error(
        "the {what} came out {value}: the inputs are finite but too large for it (largest |target| \
         {largest_target:e}); rescale the targets"
    )]
    Overflow {
        /// Which result.
        what: &'static str,
        /// Its value.
        value: f64,
        /// The largest |y| among the training and test targets.
        largest_target: f64,
    },
}

/// [`GpError::NonFinite`] for the first NaN / ±inf entry of `matrix`, if any.
pub(super) fn check_finite(name: &'static str, matrix: ArrayView2<'_, f64>) -> Result<(), GpError> {
    match matrix.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((row, column), &value)) => Err(GpError::NonFinite {
            name,
            row,
            column,
            value,
        }),
        None => Ok(()),
    }
}

/// [`GpError::ShapeMismatch`] for argument `name`.
pub(super) fn shape_error(name: &'static str, expected: String, found: (usize, usize)) -> GpError {
    GpError::ShapeMismatch {
        name,
        expected,
        found,
    }
}
