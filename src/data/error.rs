//! The one error type of the data loaders.
//!
//! Every variant carries its evidence: the file, the line and column of a bad CSV field, the
//! dtype and shape found in a `.npy` header, the parameter name and the value that was refused.
//! Nothing in `data/` panics on bad input; it returns one of these.

use std::path::PathBuf;

/// Why a data file could not be read, written or turned into a design matrix.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused to open, read or write a file.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was attempted ("open", "read", "write", "decompress").
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A `.npy` file whose header or payload is malformed.
    #[error("`{path}` is not a readable .npy file: {reason}")]
    NpyFormat {
        /// The file concerned.
        path: PathBuf,
        /// What the `.npy` parser reported.
        reason: String,
    },

    /// A `.npy` file whose element type is neither float64 nor float32.
    #[error(
        "`{path}` holds elements of dtype {dtype_found}; expected float64 ('<f8') or float32 ('<f4')"
    )]
    NpyDtype {
        /// The file concerned.
        path: PathBuf,
        /// The type descriptor found in the header, as numpy writes it.
        dtype_found: String,
    },

    /// An array with a number of axes other than the one or two a design matrix can have.
    #[error("`{path}` has shape {shape:?} ({} axes); expected a 1-D vector or a 2-D matrix", shape.len())]
    NpyShape {
        /// The file concerned.
        path: PathBuf,
        /// The shape found.
        shape: Vec<usize>,
    },

    /// A CSV field that is not a finite number.
    #[error("{}:{line}:{column}: field {field} `{text}` {reason}", path.display())]
    CsvField {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based character column where the field starts.
        column: usize,
        /// 1-based index of the field in its row.
        field: usize,
        /// The offending text (trimmed).
        text: String,
        /// Why it was refused ("is not a number", "is not finite", "is empty").
        reason: &'static str,
    },

    /// A CSV row with a different number of fields than the first row.
    #[error("{}:{line}: row has {found} fields but the first row (line {first_line}) has {expected}", path.display())]
    CsvRagged {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number of the ragged row.
        line: usize,
        /// 1-based line number of the first data row.
        first_line: usize,
        /// Number of fields of the first row.
        expected: usize,
        /// Number of fields of this row.
        found: usize,
    },

    /// A blank line followed by more data inside a CSV file.
    #[error("{}:{line}: blank line inside the data (only trailing blank lines are allowed)", path.display())]
    CsvBlankLine {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number of the blank line.
        line: usize,
    },

    /// An IDX file whose header is malformed or describes something other than what was asked
    /// for, or whose content is out of range (a label that is not a digit).
    #[error("`{path}` is not a valid IDX file: {reason}")]
    IdxFormat {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An IDX payload whose size disagrees with the sizes in its header.
    #[error(
        "`{path}`: the IDX header announces {expected} payload bytes but the file holds {found}"
    )]
    IdxPayload {
        /// The file concerned.
        path: PathBuf,
        /// Payload bytes announced by the header (product of the dimensions).
        expected: usize,
        /// Payload bytes present after the header.
        found: usize,
    },

    /// A bundled data file that is not where it should be.
    #[error("bundled data file `{path}` is missing ({hint})")]
    MissingData {
        /// Where the file was looked for.
        path: PathBuf,
        /// How to fix it.
        hint: &'static str,
    },

    /// An array with no rows or no columns.
    #[error("`{name}` is empty (shape {rows}×{cols})")]
    Empty {
        /// The parameter or file the array came from.
        name: String,
        /// Number of rows found.
        rows: usize,
        /// Number of columns found.
        cols: usize,
    },

    /// A NaN or infinite entry.
    #[error("`{name}` has a non-finite entry {value} at row {row}, column {column} (0-based)")]
    NonFinite {
        /// The parameter or file the array came from.
        name: String,
        /// 0-based row index.
        row: usize,
        /// 0-based column index.
        column: usize,
        /// The offending value.
        value: f64,
    },

    /// A row with zero variance, which per-sample standardisation cannot scale to unit variance.
    #[error(
        "`{name}` row {row} (0-based) is constant, so it cannot be standardised to unit variance"
    )]
    ConstantRow {
        /// The parameter the array came from.
        name: String,
        /// 0-based row index.
        row: usize,
    },

    /// Two arrays whose sizes must agree do not.
    #[error("`{name}` has {found} {axis} but {expected} are required ({reason})")]
    ShapeMismatch {
        /// The parameter whose shape is wrong.
        name: String,
        /// "rows" or "columns".
        axis: &'static str,
        /// The size required.
        expected: usize,
        /// The size found.
        found: usize,
        /// Where the requirement comes from.
        reason: String,
    },

    /// A parameter value that cannot be honoured.
    #[error("invalid `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter name.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}
