//! One entry point for user-supplied design matrices: `--x X.(npy|csv)` of the CLI contract.
//!
//! The format is chosen by the file extension (`.npy` or `.csv`, case-insensitive); the result
//! is a validated $P\times d$ matrix (non-empty, finite), one pattern per row.

use std::path::Path;

use ndarray::Array2;

use super::DataError;
use super::csv::read_csv_matrix;
use super::npy::read_npy_matrix;
use super::validate::validate_matrix;

/// Reads a `.npy` or `.csv` file into a non-empty, finite $P\times d$ matrix.
pub fn load_matrix(path: &Path) -> Result<Array2<f64>, DataError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let matrix = match extension.as_deref() {
        Some("npy") => read_npy_matrix(path)?,
        Some("csv") => read_csv_matrix(path)?,
        _ => {
            return Err(DataError::InvalidParameter {
                name: "path",
                value: path.display().to_string(),
                reason: "expected a file ending in .npy or .csv".to_owned(),
            });
        }
    };
    validate_matrix(&path.display().to_string(), matrix.view())?;
    Ok(matrix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::write_npy_matrix;
    use ndarray::array;

    #[test]
    fn dispatches_on_extension_and_validates() {
        let dir = std::env::temp_dir().join(format!("saddle-load-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let csv = dir.join("x.CSV");
        std::fs::write(&csv, "1,2\n3,4\n").expect("write");
        assert_eq!(
            load_matrix(&csv).expect("csv"),
            array![[1.0, 2.0], [3.0, 4.0]]
        );

        let npy = dir.join("x.npy");
        write_npy_matrix(&npy, &array![[1.0, f64::NAN]]).expect("write");
        let err = load_matrix(&npy).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NonFinite {
                    row: 0,
                    column: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("x.npy"), "{err}");

        let err = load_matrix(&dir.join("x.txt")).unwrap_err();
        assert!(err.to_string().contains("`path`"), "{err}");
    }
}
