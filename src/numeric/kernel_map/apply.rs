//! Applying one [`PairKernelMap`] to a kernel: the fused closed-form loop, or the Mehler
//! expansion for tanh and smooth user functions.

use ndarray::{Array2, ArrayView2};

use super::chain::apply_chain_into_with;
use super::hermite::{ExpansionReport, HermiteSettings};
use super::pair_map::PairKernelMap;
use super::pair_set::PairSet;
use crate::numeric::activation::Activation;
use crate::numeric::program::error::ProgramError;
use crate::numeric::vector_math::Isa;

impl PairKernelMap {
    /// Applies the map to a P×P kernel over the pairs in `pairs` (the others are 0). Only
    /// the diagonal and the upper triangle of `c` are read; the result is symmetric.
    pub fn apply(&self, c: ArrayView2<f64>, pairs: PairSet) -> Result<Array2<f64>, ProgramError> {
        let mut out = Array2::zeros(c.dim());
        self.apply_into(c, pairs, &mut out)?;
        Ok(out)
    }

    /// [`Self::apply`] into an existing P×P buffer (every entry is overwritten). For an
    /// activation without a closed form (tanh, a user function) the result comes from the
    /// Mehler expansion, and its report (terms, worst error bound, pairs that fell back to
    /// quadrature) is returned.
    pub fn apply_into(
        &self,
        c: ArrayView2<f64>,
        pairs: PairSet,
        out: &mut Array2<f64>,
    ) -> Result<Option<ExpansionReport>, ProgramError> {
        self.apply_into_with(Isa::detect(), c, pairs, out, true)
    }

    /// [`Self::apply_into`] without the lower triangle: only the diagonal and the upper
    /// triangle of `out` are written, the rest is left as it was. Enough for a kernel that is
    /// only read by another pair map (which reads no more than that), and it saves the
    /// transposed write, which is most of the memory traffic once P×P outgrows the caches.
    pub fn apply_upper_into(
        &self,
        c: ArrayView2<f64>,
        pairs: PairSet,
        out: &mut Array2<f64>,
    ) -> Result<Option<ExpansionReport>, ProgramError> {
        self.apply_into_with(Isa::detect(), c, pairs, out, false)
    }

    /// [`Self::apply_into`] (`mirror`) or [`Self::apply_upper_into`] with the loop compiled
    /// for `isa` (for tests and benches; an `isa` this CPU cannot run falls back to the
    /// portable build).
    pub fn apply_into_with(
        &self,
        isa: Isa,
        c: ArrayView2<f64>,
        pairs: PairSet,
        out: &mut Array2<f64>,
        mirror: bool,
    ) -> Result<Option<ExpansionReport>, ProgramError> {
        if matches!(self.activation, Activation::Tanh | Activation::Custom(_)) {
            let settings = HermiteSettings {
                fallback_order: self.fallback_order,
                ..HermiteSettings::default()
            };
            let needed = move |a: usize, b: usize| pairs.includes(a, b);
            let report = super::hermite::apply_into(
                &self.activation,
                (self.scale, self.offset),
                c,
                &needed,
                out,
                &settings,
            )?;
            return Ok(Some(report));
        }
        apply_chain_into_with(isa, std::slice::from_ref(self), c, pairs, out, mirror)?;
        Ok(None)
    }
}
