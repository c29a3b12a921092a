//! `.npy` input and output of design matrices (inputs $X\in\mathbb R^{P\times d}$, targets
//! $Y\in\mathbb R^{P\times D}$, kernels $K\in\mathbb R^{P\times P}$).
//!
//! Reading accepts float64 and float32 (widened exactly to f64), either byte order, C or
//! Fortran order, and 1-D or 2-D arrays; a 1-D array of length $P$ becomes a $P\times1$
//! column (one pattern per row, the convention of the whole crate). Writing always produces a
//! little-endian float64 C-order array that `numpy.load` reads back bit for bit.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;

use ndarray::{Array2, ArrayBase, ArrayD, Data, Ix2};
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadableElement, WriteNpyExt};

use super::DataError;

/// Reads a 1-D or 2-D float64 / float32 `.npy` file into a $P\times d$ matrix of f64.
///
/// A 1-D array of length $P$ is returned as a $P\times1$ column. Non-finite entries are *not*
/// rejected here (a saved kernel may legitimately be inspected); call
/// [`validate_matrix`](super::validate::validate_matrix) or use
/// [`load_matrix`](super::load::load_matrix) for a checked design matrix.
pub fn read_npy_matrix(path: &Path) -> Result<Array2<f64>, DataError> {
    let array = match read_dyn::<f64>(path)? {
        Ok(array) => array,
        Err(_) => match read_dyn::<f32>(path)? {
            Ok(array) => array.mapv(f64::from),
            Err(dtype_found) => {
                return Err(DataError::NpyDtype {
                    path: path.to_owned(),
                    dtype_found,
                });
            }
        },
    };
    let shape = array.shape().to_vec();
    match *shape.as_slice() {
        [rows] => Ok(array
            .into_shape_with_order((rows, 1))
            .map_err(|e| npy_format(path, e.to_string()))?),
        [_, _] => Ok(array
            .into_dimensionality::<Ix2>()
            .map_err(|e| npy_format(path, e.to_string()))?),
        _ => Err(DataError::NpyShape {
            path: path.to_owned(),
            shape,
        }),
    }
}

/// Writes a matrix of f64 to `path` as a little-endian float64 `.npy` file (C order).
pub fn write_npy_matrix<S: Data<Elem = f64>>(
    path: &Path,
    matrix: &ArrayBase<S, Ix2>,
) -> Result<(), DataError> {
    let file = File::create(path).map_err(|source| DataError::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })?;
    matrix
        .write_npy(BufWriter::new(file))
        .map_err(|e| npy_format(path, format!("write failed: {e}")))
}

/// Reads any-dimensional array with element type `T`. The outer `Result` is a hard failure;
/// the inner `Err` carries the dtype descriptor when the file holds another element type.
fn read_dyn<T: ReadableElement>(path: &Path) -> Result<Result<ArrayD<T>, String>, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        action: "open",
        path: path.to_owned(),
        source,
    })?;
    match ArrayD::<T>::read_npy(BufReader::new(file)) {
        Ok(array) => Ok(Ok(array)),
        Err(ReadNpyError::WrongDescriptor(descriptor)) => Ok(Err(descriptor.to_string())),
        Err(ReadNpyError::Io(source)) => Err(DataError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
        Err(other) => Err(npy_format(path, other.to_string())),
    }
}

fn npy_format(path: &Path, reason: String) -> DataError {
    DataError::NpyFormat {
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array3, array};
    use ndarray_npy::write_npy;
    use std::path::PathBuf;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("saddle-npy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join(name)
    }

    #[test]
    fn f64_round_trip_is_bit_exact() {
        let path = temp_path("f64.npy");
        let m = array![[1.0, -2.5e-300, 3.0], [f64::MAX, 1.0 / 3.0, -0.0]];
        write_npy_matrix(&path, &m).expect("write");
        let back = read_npy_matrix(&path).expect("read");
        assert_eq!(back.dim(), (2, 3));
        for (a, b) in m.iter().zip(back.iter()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn fortran_order_is_read_in_logical_order() {
        let path = temp_path("fortran.npy");
        let m = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let fortran = m.t().as_standard_layout().into_owned().reversed_axes();
        assert!(!fortran.is_standard_layout());
        write_npy(&path, &fortran).expect("write");
        assert_eq!(read_npy_matrix(&path).expect("read"), m);
    }

    #[test]
    fn f32_is_widened_exactly() {
        let path = temp_path("f32.npy");
        let m: Array2<f32> = array![[0.1f32, -7.25], [1e-30, 3.5e30]];
        write_npy(&path, &m).expect("write");
        let back = read_npy_matrix(&path).expect("read");
        for (a, b) in m.iter().zip(back.iter()) {
            assert_eq!(f64::from(*a), *b);
        }
    }

    #[test]
    fn vector_becomes_a_column() {
        let path = temp_path("vec.npy");
        write_npy(&path, &Array1::from(vec![1.0f64, 2.0, 3.0])).expect("write");
        assert_eq!(
            read_npy_matrix(&path).expect("read"),
            array![[1.0], [2.0], [3.0]]
        );
    }

    #[test]
    fn wrong_dtype_is_named() {
        let path = temp_path("int.npy");
        write_npy(&path, &array![[1i64, 2], [3, 4]]).expect("write");
        let err = read_npy_matrix(&path).unwrap_err();
        assert!(
            matches!(&err, DataError::NpyDtype { dtype_found, .. } if dtype_found.contains("i8")),
            "{err}"
        );
        assert!(err.to_string().contains("int.npy"), "{err}");
    }

    #[test]
    fn three_axes_are_refused_with_the_shape() {
        let path = temp_path("cube.npy");
        write_npy(&path, &Array3::<f64>::zeros((2, 3, 4))).expect("write");
        let err = read_npy_matrix(&path).unwrap_err();
        assert!(
            matches!(&err, DataError::NpyShape { shape, .. } if shape == &[2, 3, 4]),
            "{err}"
        );
    }

    #[test]
    fn missing_and_garbage_files_are_errors() {
        let err = read_npy_matrix(&temp_path("does-not-exist.npy")).unwrap_err();
        assert!(matches!(err, DataError::Io { action: "open", .. }), "{err}");
        let path = temp_path("garbage.npy");
        std::fs::write(&path, b"this is not numpy").expect("write");
        let err = read_npy_matrix(&path).unwrap_err();
        assert!(matches!(err, DataError::NpyFormat { .. }), "{err}");
    }

    #[test]
    fn truncated_payload_is_an_error() {
        let path = temp_path("trunc.npy");
        write_npy(&path, &Array2::<f64>::ones((4, 4))).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 8]).expect("write");
        let err = read_npy_matrix(&path).unwrap_err();
        assert!(matches!(err, DataError::NpyFormat { .. }), "{err}");
    }
}
