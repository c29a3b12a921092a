//! The posterior-mean kernels at finite width: the MAP plus the prior one-loop mean shift.
//!
//! The MAP (THEORY.md §4.3) is the mode of the kernels' posterior. What a trained network's
//! kernels average to is the posterior *mean*, which differs from the mode at the same order
//! 1/N as the data-driven shift itself: the kernels' fluctuations (N·Cov = Σ, §4.5) pass
//! through the curvature of the kernel maps and move the mean by m/N,
//!
//!   E[C⁽ˡ⁾ | data] = C⁽ˡ⁾_MAP + m⁽ˡ⁾/N + O(1/N²),  m⁽ˡ⁾ = G⁽ˡ⁾m⁽ˡ⁻¹⁾ + ½ H_K⁽ˡ⁾ : Σ⁽ˡ⁻¹⁾,
//!
//! where the data enter m only at O(1/N) (the data term is O(1) against the action's N), so
//! m is the prior's ([`crate::solve::one_loop`], pattern pair by pattern pair, at the NNGP
//! point). On the layer-2 diagonals of an erf network m/N is a quarter to nine tenths of the
//! whole shift (the feature-learning issue's exact sampler), so the MAP alone misses it.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2};

use super::FiniteWidthError;
use crate::check::ir::Theory;
use crate::solve::nngp::{EntryKey, NngpSettings};
use crate::solve::one_loop::prior_one_loop;

/// Gauss–Hermite order of each pattern pair's 2-D grid (1e-6 relative on T8's shifts).
const PAIR_QUADRATURE: usize = 48;

/// The prior one-loop mean shift of one field entry.
#[derive(Debug, Clone)]
pub struct OneLoopShift {
    /// Its name (`C[2]`).
    pub name: String,
    /// m: E[C] = C* + m/N (P×P for a kernel, P×1 for a mean field).
    pub n_shift: Array2<f64>,
    /// The theory's width N, which divides m.
    pub width: f64,
}

impl OneLoopShift {
    /// Whether it is the shift of `value` (the same entry on the same patterns).
    pub fn fits(&self, value: &Array2<f64>) -> bool {
        self.n_shift.dim() == value.dim()
    }

    /// `value` + m/N, where the shift [`fits`](Self::fits) it.
    pub fn added_to(&self, value: &Array2<f64>) -> Option<Array2<f64>> {
        self.fits(value)
            .then(|| value + &(&self.n_shift / self.width))
    }
}

/// The prior one-loop mean shift m of every field entry on the patterns `x` (training rows,
/// then any test rows), by entry. A pair of patterns costs seconds: this is for tens of
/// patterns, not hundreds.
pub fn one_loop_shifts(
    theory: &Theory,
    x: ArrayView2<f64>,
    overrides: &[(String, f64)],
) -> Result<BTreeMap<EntryKey, OneLoopShift>, FiniteWidthError> {
    let params = crate::solve::nngp::parameter_values(theory, overrides)?;
    let width = theory.param("N").map(|id| params[id]).ok_or_else(|| {
        FiniteWidthError::Unsupported(
            "the posterior-mean kernels need the theory's width `N` (the shift is m/N)".into(),
        )
    })?;
    let settings = NngpSettings {
        overrides: overrides.to_vec(),
        ..NngpSettings::default()
    };
    let entries = prior_one_loop(theory, x, &settings, PAIR_QUADRATURE)
        .map_err(|e| FiniteWidthError::Unsupported(format!("the prior one-loop shift m/N: {e}")))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            (
                e.key,
                OneLoopShift {
                    name: e.name,
                    n_shift: e.n_shift,
                    width,
                },
            )
        })
        .collect())
}

/// Adds m/N to every field in `fields` that has a shift of its shape (kernels and mean fields
/// of the patterns `one_loop_shifts` was given).
pub(crate) fn add_shifts(
    fields: &mut BTreeMap<EntryKey, Array2<f64>>,
    shifts: &BTreeMap<EntryKey, OneLoopShift>,
) {
    for (key, value) in fields.iter_mut() {
        if let Some(shifted) = shifts.get(key).and_then(|s| s.added_to(value)) {
            *value = shifted;
        }
    }
}
