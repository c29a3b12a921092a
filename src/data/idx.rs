//! Reader for the IDX format of the MNIST database (LeCun et al.), raw or gzip-compressed.
//!
//! An IDX file is a big-endian header — two zero bytes, a type code (`0x08` = unsigned byte,
//! the only type MNIST uses), the number of dimensions $n$, then $n$ u32 sizes — followed by
//! $\prod_i \text{size}_i$ payload bytes in row-major order. Images have magic `0x00000803`
//! (count, rows, cols), labels `0x00000801` (count). The header is validated and the payload
//! length must equal the product of the sizes exactly (truncated files and trailing garbage
//! are both errors). Gzip is recognised by its magic bytes `1f 8b`, not by the file name.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use ndarray::{Array1, Array2};

use super::DataError;

/// IDX magic number of an image file: unsigned bytes, three dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// IDX magic number of a label file: unsigned bytes, one dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// A stack of grey-level images read from an IDX file.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
    /// One image per row, `rows * cols` pixels in row-major order, grey levels 0–255.
    pub pixels: Array2<u8>,
}

/// Reads an IDX image file (magic `0x00000803`), gzip-compressed or raw.
pub fn read_idx_images(path: &Path) -> Result<IdxImages, DataError> {
    parse_idx_images(&read_maybe_gzip(path)?, path)
}

/// Reads an IDX label file (magic `0x00000801`), gzip-compressed or raw.
pub fn read_idx_labels(path: &Path) -> Result<Array1<u8>, DataError> {
    parse_idx_labels(&read_maybe_gzip(path)?, path)
}

/// Parses the (decompressed) bytes of an IDX image file; `path` only names the source in errors.
pub fn parse_idx_images(bytes: &[u8], path: &Path) -> Result<IdxImages, DataError> {
    let (dims, payload) = parse_header(bytes, IMAGES_MAGIC, path)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    let pixels = Array2::from_shape_vec((count, rows * cols), payload.to_vec())
        .map_err(|e| header_error(path, format!("inconsistent sizes: {e}")))?;
    Ok(IdxImages { rows, cols, pixels })
}

/// Parses the (decompressed) bytes of an IDX label file; `path` only names the source in errors.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Array1<u8>, DataError> {
    let (_, payload) = parse_header(bytes, LABELS_MAGIC, path)?;
    Ok(Array1::from(payload.to_vec()))
}

/// Validates the header against `expected_magic` and the payload length against the sizes;
/// returns the sizes and the payload.
fn parse_header<'a>(
    bytes: &'a [u8],
    expected_magic: u32,
    path: &Path,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let magic = read_u32(bytes, 0).ok_or_else(|| {
        header_error(
            path,
            format!(
                "file is {} bytes, too short for a magic number",
                bytes.len()
            ),
        )
    })?;
    if magic != expected_magic {
        let what = if expected_magic == IMAGES_MAGIC {
            "an image"
        } else {
            "a label"
        };
        return Err(header_error(
            path,
            format!("magic number {magic:#010x}, expected {expected_magic:#010x} for {what} file"),
        ));
    }
    let ndim = (magic & 0xff) as usize;
    let mut dims = Vec::with_capacity(ndim);
    for axis in 0..ndim {
        let size = read_u32(bytes, 4 + 4 * axis).ok_or_else(|| {
            header_error(
                path,
                format!("header ends before the size of dimension {axis}"),
            )
        })?;
        dims.push(size as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| header_error(path, format!("sizes {dims:?} overflow")))?;
    let payload = &bytes[4 + 4 * ndim..];
    if payload.len() != expected {
        return Err(DataError::IdxPayload {
            path: path.to_owned(),
            expected,
            found: payload.len(),
        });
    }
    Ok((dims, payload))
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let word = bytes.get(offset..offset + 4)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

fn header_error(path: &Path, reason: String) -> DataError {
    DataError::IdxFormat {
        path: path.to_owned(),
        reason,
    }
}

/// Reads a file, transparently gunzipping it when it starts with the gzip magic `1f 8b`.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(|source| DataError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut decoded = Vec::new();
    GzDecoder::new(raw.as_slice())
        .read_to_end(&mut decoded)
        .map_err(|source| DataError::Io {
            action: "decompress",
            path: path.to_owned(),
            source,
        })?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn images_bytes(count: u32, rows: u32, cols: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = IMAGES_MAGIC.to_be_bytes().to_vec();
        for size in [count, rows, cols] {
            bytes.extend_from_slice(&size.to_be_bytes());
        }
        bytes.extend_from_slice(payload);
        bytes
    }

    fn p() -> &'static Path {
        Path::new("t.idx")
    }

    #[test]
    fn parses_images_row_major() {
        let payload: Vec<u8> = (0..12).collect();
        let images = parse_idx_images(&images_bytes(2, 2, 3, &payload), p()).expect("parse");
        assert_eq!(
            (images.rows, images.cols, images.pixels.dim()),
            (2, 3, (2, 6))
        );
        assert_eq!(images.pixels.row(1).to_vec(), vec![6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn parses_labels() {
        let mut bytes = LABELS_MAGIC.to_be_bytes().to_vec();
        bytes.extend_from_slice(&3u32.to_be_bytes());
        bytes.extend_from_slice(&[7, 0, 9]);
        assert_eq!(
            parse_idx_labels(&bytes, p()).expect("parse").to_vec(),
            vec![7, 0, 9]
        );
    }

    #[test]
    fn bad_magic_is_rejected() {
        let mut bytes = images_bytes(1, 1, 1, &[0]);
        let err = parse_idx_labels(&bytes, p()).unwrap_err();
        assert!(
            err.to_string()
                .contains("magic number 0x00000803, expected 0x00000801"),
            "{err}"
        );
        bytes[2] = 0x0d; // float type code
        let err = parse_idx_images(&bytes, p()).unwrap_err();
        assert!(matches!(err, DataError::IdxFormat { .. }), "{err}");
        let err = parse_idx_images(&[0, 0], p()).unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
    }

    #[test]
    fn truncated_header_and_payload_are_rejected() {
        let bytes = images_bytes(2, 2, 2, &[0; 8]);
        let err = parse_idx_images(&bytes[..10], p()).unwrap_err();
        assert!(err.to_string().contains("header ends"), "{err}");
        let err = parse_idx_images(&bytes[..bytes.len() - 1], p()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::IdxPayload {
                    expected: 8,
                    found: 7,
                    ..
                }
            ),
            "{err}"
        );
        let mut long = bytes.clone();
        long.push(0);
        let err = parse_idx_images(&long, p()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::IdxPayload {
                    expected: 8,
                    found: 9,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn huge_announced_sizes_do_not_allocate_or_panic() {
        let bytes = images_bytes(u32::MAX, u32::MAX, u32::MAX, &[1, 2, 3]);
        assert!(parse_idx_images(&bytes, p()).is_err());
    }

    #[test]
    fn gzip_and_raw_files_read_the_same() {
        let dir = std::env::temp_dir().join(format!("saddle-idx-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bytes = images_bytes(1, 2, 2, &[1, 2, 3, 4]);
        let raw_path = dir.join("raw.idx");
        std::fs::write(&raw_path, &bytes).expect("write");
        let gz_path = dir.join("packed.idx.gz");
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&bytes).expect("gzip");
        std::fs::write(&gz_path, encoder.finish().expect("gzip")).expect("write");
        let raw = read_idx_images(&raw_path).expect("raw");
        assert_eq!(raw, read_idx_images(&gz_path).expect("gz"));
        // A corrupt gzip stream is an I/O error naming the file, not a panic.
        std::fs::write(&gz_path, [0x1f, 0x8b, 8, 0, 1, 2, 3]).expect("write");
        let err = read_idx_images(&gz_path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Io {
                    action: "decompress",
                    ..
                }
            ),
            "{err}"
        );
    }
}
