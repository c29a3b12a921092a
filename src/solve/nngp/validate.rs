//! Checks on what enters and leaves the NNGP solver: inputs, covariances (symmetric, positive
//! semi-definite within rounding, finite), every computed entry.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::check::ir::{FieldKind, Theory};

use super::*;

/// What every returned entry must be: finite, and a kernel entry (`C[l]`, `C[t, t]`) a
/// covariance matrix — non-negative variances and |C_αβ| ≤ √(C_αα C_ββ). Hidden layers
/// meet this through the Gaussian expectations that read them; the returned ones (the last
/// layer, or the input kernel at L = 0) were not checked, and negative variance parameters
/// or overflowing inputs came out as a "kernel" with exit 0.
pub(super) fn validate_entry(
    theory: &Theory,
    key: &EntryKey,
    value: &Array2<f64>,
) -> Result<(), NngpError> {
    let covariance = theory.fields[key.0].kind == FieldKind::Kernel
        && key_is_symmetric(key.1.clone())
        && value.is_square();
    validate_matrix(&|| Kernels::name(theory, key), value, covariance)
}

/// A readout kernel (`C[L]`, or an expression such as `gw * Q[L]`) must be a covariance
/// matrix too: see [`nngp_kernels`]' check of the returned entries.
pub fn validate_covariance(name: &str, value: &Array2<f64>) -> Result<(), NngpError> {
    validate_matrix(&|| name.to_string(), value, value.is_square())
}

/// Finite entries and, with `covariance`, non-negative variances and correlations within
/// ±1, in one pass over the upper triangle.
pub(super) fn validate_matrix(
    name: &(dyn Fn() -> String + Sync),
    value: &Array2<f64>,
    covariance: bool,
) -> Result<(), NngpError> {
    let n = value.ncols();
    // √C_ββ once per pattern; then one multiply and compare per entry of the upper
    // triangle (the pass costs a few ms at P = 4000, a sqrt per entry cost 50)
    let roots: Vec<f64> = if covariance {
        value.diag().iter().map(|v| v.max(0.0).sqrt()).collect()
    } else {
        Vec::new()
    };
    let check_row = |a: usize, row: &[f64]| -> Option<NngpError> {
        if !covariance {
            let b = row.iter().position(|v| !v.is_finite())?;
            return Some(NngpError::NotFinite {
                field: name(),
                a,
                b,
            });
        }
        let variance = row[a];
        if !variance.is_finite() {
            return Some(NngpError::NotFinite {
                field: name(),
                a,
                b: a,
            });
        }
        if variance < 0.0 {
            return Some(NngpError::NotCovariance {
                field: name(),
                a,
                b: a,
                reason: format!("its variance is {variance} < 0"),
            });
        }
        let scale = roots[a] * (1.0 + 1e-9);
        // NaN compares as neither: `within` is false for it, as for ±∞
        let within = |b: usize| row[b].abs() <= scale * roots[b] + 1e-300;
        let b = (a..n).find(|&b| !within(b))?;
        let v = row[b];
        Some(if v.is_finite() {
            NngpError::NotCovariance {
                field: name(),
                a,
                b,
                reason: format!("|{v}| exceeds √(C_αα C_ββ) = {}", roots[a] * roots[b]),
            }
        } else {
            NngpError::NotFinite {
                field: name(),
                a,
                b,
            }
        })
    };
    let problem = match value.as_slice() {
        Some(flat) if n > 0 => flat
            .par_chunks(n)
            .enumerate()
            .find_map_first(|(a, row)| check_row(a, row)),
        _ => (0..value.nrows()).find_map(|a| check_row(a, &value.row(a).to_vec())),
    };
    problem.map_or(Ok(()), Err)
}

pub(super) fn validate_inputs(x: ArrayView2<f64>) -> Result<(), NngpError> {
    input_problem(x).map_or(Ok(()), |why| Err(NngpError::Data(why)))
}

/// What is wrong with inputs X, if anything: no patterns or features, or a NaN/infinite entry
/// (named by pattern and feature).
pub fn input_problem(x: ArrayView2<f64>) -> Option<String> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Some(format!(
            "the inputs are empty ({} patterns × {} features)",
            x.nrows(),
            x.ncols()
        ));
    }
    x.indexed_iter()
        .find(|(_, v)| !v.is_finite())
        .map(|((i, j), v)| format!("the inputs hold {v} at pattern {i}, feature {j}"))
}
