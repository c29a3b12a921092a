//! `.npy` input and output of design matrices (inputs $X\in\mathbb R^{P\times d}$, targets
//! $Y\in\mathbb R^{P\times D}$, kernels $K\in\mathbb R^{P\times P}$).
//!
//! Reading accepts float64 and float32 (widened exactly to f64), either byte order, C or
//! Fortran order, and 1-D or 2-D arrays; a 1-D array of length $P$ becomes a $P\times1$
//! column (one pattern per row, the convention of the whole crate). Writing always produces a
//! little-endian float64 C-order array that `numpy.load` reads back bit for bit.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
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
    // under a temporary name, renamed when whole: an interrupted write keeps the old file
    let staged = super::atomic::Staged::new(path);
    let file = File::create(staged.path()).map_err(|source| DataError::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })?;
    let mut writer = BufWriter::new(file);
    matrix
        .write_npy(&mut writer)
        .map_err(|e| npy_format(path, format!("write failed: {e}")))?;
    writer
        .flush()
        .and_then(|()| staged.commit())
        .map_err(|source| DataError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        })
}

/// Reads any-dimensional array with element type `T`. The outer `Result` is a hard failure;
/// the inner `Err` carries the dtype descriptor when the file holds another element type.
fn read_dyn<T: ReadableElement>(path: &Path) -> Result<Result<ArrayD<T>, String>, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        action: "open",
        path: path.to_owned(),
        source,
    })?;
    check_declared_size(path, &file)?;
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

/// Refuses a file whose header declares more data than the file holds, before anything is
/// allocated: the reader sizes its buffer from the header, so a 128-byte file claiming
/// 10⁹ × 10⁹ floats aborted the process (allocation failure) instead of being an error.
fn check_declared_size(path: &Path, file: &File) -> Result<(), DataError> {
    use std::io::{Read, Seek, SeekFrom};
    let available = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    let mut head = Vec::new();
    // The header is at most a few KiB; anything unparsable is left to the reader's errors.
    let read = file.take(1 << 16).read_to_end(&mut head);
    let mut rewind = file;
    rewind
        .seek(SeekFrom::Start(0))
        .map_err(|source| DataError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
    if read.is_err() || head.len() < 10 {
        return Ok(());
    }
    let (text_start, text_len) = match head[6] {
        1 => (10, usize::from(u16::from_le_bytes([head[8], head[9]]))),
        2 | 3 if head.len() >= 12 => (
            12,
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize,
        ),
        _ => return Ok(()),
    };
    let Some(text) = head.get(text_start..text_start + text_len) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(text);
    let item_size = text
        .split("'descr'")
        .nth(1)
        .and_then(|rest| rest.split('\'').nth(1))
        .and_then(|descr| descr.trim_start_matches(['<', '>', '|', '=']).get(1..))
        .and_then(|digits| digits.parse::<u128>().ok());
    let shape: Option<Vec<u128>> = text.split("'shape'").nth(1).and_then(|rest| {
        let inside = rest.split('(').nth(1)?.split(')').next()?;
        inside
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.parse::<u128>().ok())
            .collect()
    });
    let (Some(item_size), Some(shape)) = (item_size, shape) else {
        return Ok(());
    };
    let declared = shape
        .iter()
        .try_fold(item_size, |bytes, &d| bytes.checked_mul(d))
        .unwrap_or(u128::MAX);
    let data = u128::from(available).saturating_sub((text_start + text_len) as u128);
    if declared > data {
        return Err(npy_format(
            path,
            format!(
                "the header declares shape {shape:?} ({declared} bytes of data), but the file \
                 holds {data} bytes after its header"
            ),
        ));
    }
    Ok(())
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

    /// A header that claims far more data than the file holds is an error, not an
    /// allocation of 8·10¹⁸ bytes.
    #[test]
    fn a_header_that_lies_about_its_shape_is_refused() {
        let path = temp_path("lies.npy");
        let mut header =
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000000), }"
                .to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let err = read_npy_matrix(&path).unwrap_err();
        assert!(err.to_string().contains("declares shape"), "{err}");
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
