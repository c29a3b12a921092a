//! CSV input and output of design matrices, as the CLI contract of DESIGN.md fixes it: one
//! pattern per row, no header, comma-separated numbers.
//!
//! Reading tolerates spaces and tabs around fields, `\r\n` line endings, a UTF-8 byte-order
//! mark and blank lines at the end of the file. Everything else is an error that names the file,
//! the 1-based line and character column, and the field: a field that is not a number, an empty
//! field, NaN or ±inf, a ragged row (field count differing from the first row), and a blank
//! line followed by more data. The result is a $P\times d$ matrix of finite f64.

use std::fmt::Write as _;
use std::path::Path;

use ndarray::{Array2, ArrayBase, Data, Ix2};

use super::DataError;

/// Reads a CSV file into a $P\times d$ matrix of finite f64 (one pattern per row).
pub fn read_csv_matrix(path: &Path) -> Result<Array2<f64>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    parse_csv(&text, path)
}

/// Parses CSV `text`; `path` is used only to name the source in errors.
pub fn parse_csv(text: &str, path: &Path) -> Result<Array2<f64>, DataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut values = Vec::new();
    let mut first_row: Option<(usize, usize)> = None; // (line, field count)
    let mut rows = 0usize;
    let mut pending_blank: Option<usize> = None;

    for (index, raw_line) in text.split('\n').enumerate() {
        let line_number = index + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim().is_empty() {
            pending_blank.get_or_insert(line_number);
            continue;
        }
        if let Some(blank) = pending_blank {
            return Err(DataError::CsvBlankLine {
                path: path.to_owned(),
                line: blank,
            });
        }
        let count = parse_row(line, line_number, path, &mut values)?;
        match first_row {
            None => first_row = Some((line_number, count)),
            Some((first_line, expected)) if expected != count => {
                return Err(DataError::CsvRagged {
                    path: path.to_owned(),
                    line: line_number,
                    first_line,
                    expected,
                    found: count,
                });
            }
            Some(_) => {}
        }
        rows += 1;
    }

    let cols = first_row.map_or(0, |(_, count)| count);
    if rows == 0 {
        return Err(DataError::Empty {
            name: path.display().to_string(),
            rows: 0,
            cols: 0,
        });
    }
    Array2::from_shape_vec((rows, cols), values).map_err(|e| DataError::ShapeMismatch {
        name: path.display().to_string(),
        axis: "columns",
        expected: cols,
        found: 0,
        reason: e.to_string(),
    })
}

/// Parses the fields of one non-blank line into `values`; returns the number of fields.
fn parse_row(
    line: &str,
    line_number: usize,
    path: &Path,
    values: &mut Vec<f64>,
) -> Result<usize, DataError> {
    let mut count = 0;
    let mut offset = 0; // byte offset of the current field in `line`
    for (field_index, field) in line.split(',').enumerate() {
        let leading = field.len() - field.trim_start().len();
        let text = field.trim();
        let bad = |reason: &'static str| DataError::CsvField {
            path: path.to_owned(),
            line: line_number,
            column: line[..offset + leading].chars().count() + 1,
            field: field_index + 1,
            text: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(bad("is empty"));
        }
        let value: f64 = text.parse().map_err(|_| bad("is not a number"))?;
        if !value.is_finite() {
            return Err(bad("is not finite (NaN and ±inf are not allowed)"));
        }
        values.push(value);
        count += 1;
        offset += field.len() + 1;
    }
    Ok(count)
}

/// Writes a matrix as CSV, one row per line, with the shortest decimal form that reads back
/// bit for bit.
pub fn write_csv_matrix<S: Data<Elem = f64>>(
    path: &Path,
    matrix: &ArrayBase<S, Ix2>,
) -> Result<(), DataError> {
    let mut text = String::new();
    for row in matrix.rows() {
        for (column, value) in row.iter().enumerate() {
            if column > 0 {
                text.push(',');
            }
            // `{:?}` is the shortest representation that round-trips (exponent form when long).
            let _ = write!(text, "{value:?}");
        }
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|source| DataError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn parse(text: &str) -> Result<Array2<f64>, DataError> {
        parse_csv(text, Path::new("in.csv"))
    }

    #[test]
    fn parses_spaces_crlf_bom_and_trailing_blank_lines() {
        let m = parse("\u{feff}1, 2.5 ,-3e-2\r\n 4,\t5,6\n\n  \n").expect("parse");
        assert_eq!(m, array![[1.0, 2.5, -0.03], [4.0, 5.0, 6.0]]);
    }

    #[test]
    fn bad_field_names_line_and_column() {
        let err = parse("1,2,3\n4, x5,6\n").unwrap_err();
        match &err {
            DataError::CsvField {
                line,
                column,
                field,
                text,
                ..
            } => {
                assert_eq!((*line, *column, *field, text.as_str()), (2, 4, 2, "x5"));
            }
            other => panic!("wrong error {other:?}"),
        }
        assert_eq!(err.to_string(), "in.csv:2:4: field 2 `x5` is not a number");
    }

    #[test]
    fn nan_and_inf_are_rejected_with_position() {
        let err = parse("1,2\n3,NaN\n").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CsvField {
                    line: 2,
                    column: 3,
                    field: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse("-inf,2\n").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CsvField {
                    line: 1,
                    column: 1,
                    field: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("not finite"), "{err}");
    }

    #[test]
    fn empty_field_and_trailing_comma_are_errors() {
        let err = parse("1,,3\n").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CsvField {
                    line: 1,
                    column: 3,
                    field: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse("1,2,\n").unwrap_err();
        assert!(matches!(err, DataError::CsvField { field: 3, .. }), "{err}");
    }

    #[test]
    fn ragged_rows_are_errors() {
        let err = parse("1,2,3\n4,5,6\n7,8\n").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CsvRagged {
                    line: 3,
                    first_line: 1,
                    expected: 3,
                    found: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("in.csv:3:"), "{err}");
    }

    #[test]
    fn interior_blank_line_and_empty_file_are_errors() {
        let err = parse("1,2\n\n3,4\n").unwrap_err();
        assert!(
            matches!(err, DataError::CsvBlankLine { line: 2, .. }),
            "{err}"
        );
        assert!(matches!(
            parse("\n \n").unwrap_err(),
            DataError::Empty { .. }
        ));
    }

    #[test]
    fn write_then_read_is_bit_exact() {
        let dir = std::env::temp_dir().join(format!("saddle-csv-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("m.csv");
        let m = array![[0.1, -1e-300, 1.0 / 3.0], [2.0e300, 5.0, -0.0]];
        write_csv_matrix(&path, &m).expect("write");
        let back = read_csv_matrix(&path).expect("read");
        for (a, b) in m.iter().zip(back.iter()) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let err = read_csv_matrix(Path::new("/nonexistent/x.csv")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.csv"), "{err}");
    }
}
