//! Data loaders: user matrices from `.npy` and `.csv`, the IDX format, and the bundled MNIST
//! subset with the preprocessing of THEORY.md §9 (per-sample standardisation, ±1 and centred
//! one-hot targets).
//!
//! Conventions (THEORY.md §1): one pattern per row — inputs $X\in\mathbb R^{P\times d}$,
//! targets $Y\in\mathbb R^{P\times D}$ — as `ndarray::Array2<f64>`. Every loader returns a
//! [`DataError`] naming the file, position or parameter at fault; none panics on bad input.
//!
//! | file | job |
//! |---|---|
//! | [`atomic`] | files written under a temporary name and renamed over the target when whole |
//! | [`load`] | `load_matrix(path)`: `.npy` or `.csv` by extension, validated |
//! | [`npy`] | float64 / float32 `.npy` in, float64 `.npy` out |
//! | [`csv`] | headerless comma-separated numbers, errors with `file:line:column` |
//! | [`idx`] | IDX images / labels, raw or gzip |
//! | [`mnist`] | the bundled 10 000-digit subset and its two- and ten-class tasks |
//! | [`preprocess`] | per-sample standardisation, centred one-hot targets, balanced subsets |
//! | [`validate`] | checks shared by all loaders: non-empty, finite, consistent shapes |

pub mod atomic;
pub mod csv;
mod error;
pub mod idx;
pub mod load;
pub mod mnist;
pub mod npy;
pub mod preprocess;
pub mod validate;

pub use error::DataError;
