//! Checks shared by every loader: a design matrix is non-empty and finite, and paired arrays
//! (inputs $X\in\mathbb R^{P\times d}$, targets $Y\in\mathbb R^{P\times D}$, test inputs
//! $X_*\in\mathbb R^{P_*\times d}$) agree in the sizes they share (THEORY.md §1).
//!
//! Every error names the parameter and the value that failed, so a CLI can print it as is.

use ndarray::ArrayView2;

use super::DataError;

/// Checks that `matrix` has at least one row and one column and only finite entries.
///
/// `name` is the parameter or file the matrix came from; it appears in the error.
pub fn validate_matrix(name: &str, matrix: ArrayView2<'_, f64>) -> Result<(), DataError> {
    let (rows, cols) = matrix.dim();
    if rows == 0 || cols == 0 {
        return Err(DataError::Empty {
            name: name.to_owned(),
            rows,
            cols,
        });
    }
    if let Some(((row, column), &value)) = matrix.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(DataError::NonFinite {
            name: name.to_owned(),
            row,
            column,
            value,
        });
    }
    Ok(())
}

/// Checks that `matrix` has exactly `expected` rows; `reason` says where the requirement
/// comes from (e.g. "one target row per input pattern").
pub fn validate_rows(
    name: &str,
    matrix: ArrayView2<'_, f64>,
    expected: usize,
    reason: &str,
) -> Result<(), DataError> {
    check_axis(name, "rows", matrix.nrows(), expected, reason)
}

/// Checks that `matrix` has exactly `expected` columns; `reason` says where the requirement
/// comes from (e.g. "test inputs must have the feature dimension of the training inputs").
pub fn validate_columns(
    name: &str,
    matrix: ArrayView2<'_, f64>,
    expected: usize,
    reason: &str,
) -> Result<(), DataError> {
    check_axis(name, "columns", matrix.ncols(), expected, reason)
}

/// Validates a training set: both matrices non-empty and finite, one target row per input row.
pub fn validate_training_set(
    inputs: ArrayView2<'_, f64>,
    targets: ArrayView2<'_, f64>,
) -> Result<(), DataError> {
    validate_matrix("x", inputs)?;
    validate_matrix("y", targets)?;
    validate_rows(
        "y",
        targets,
        inputs.nrows(),
        "one target row per input pattern",
    )
}

fn check_axis(
    name: &str,
    axis: &'static str,
    found: usize,
    expected: usize,
    reason: &str,
) -> Result<(), DataError> {
    if found == expected {
        Ok(())
    } else {
        Err(DataError::ShapeMismatch {
            name: name.to_owned(),
            axis,
            expected,
            found,
            reason: reason.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn accepts_a_finite_matrix() {
        let x = array![[1.0, 2.0], [3.0, 4.0]];
        assert!(validate_matrix("x", x.view()).is_ok());
    }

    #[test]
    fn empty_matrix_is_named() {
        let x = Array2::<f64>::zeros((0, 3));
        let err = validate_matrix("x_test", x.view()).unwrap_err();
        assert!(matches!(
            err,
            DataError::Empty {
                rows: 0,
                cols: 3,
                ..
            }
        ));
        assert!(err.to_string().contains("x_test"), "{err}");
    }

    #[test]
    fn nan_and_inf_are_located() {
        let x = array![[1.0, 2.0], [3.0, f64::NAN]];
        let err = validate_matrix("x", x.view()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NonFinite {
                    row: 1,
                    column: 1,
                    ..
                }
            ),
            "{err}"
        );
        let y = array![[f64::NEG_INFINITY], [0.0]];
        let err = validate_matrix("y", y.view()).unwrap_err();
        assert!(
            matches!(err, DataError::NonFinite { row: 0, column: 0, value, .. } if value == f64::NEG_INFINITY)
        );
    }

    #[test]
    fn target_rows_must_match_inputs() {
        let x = Array2::<f64>::zeros((3, 2));
        let y = Array2::<f64>::zeros((2, 1));
        let err = validate_training_set(x.view(), y.view()).unwrap_err();
        assert!(matches!(
            err,
            DataError::ShapeMismatch {
                expected: 3,
                found: 2,
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("`y` has 2 rows but 3 are required"),
            "{err}"
        );
        let xt = Array2::<f64>::zeros((4, 5));
        let err = validate_columns("x_test", xt.view(), 2, "feature dimension of x").unwrap_err();
        assert!(err.to_string().contains("x_test"), "{err}");
    }
}
