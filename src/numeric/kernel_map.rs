//! The fast path of the commonest forward equation: C' = s·K_φ(C) + o, one closed-form pair
//! expectation of a known activation with zero means (THEORY.md §2), evaluated over all
//! pattern pairs with per-pattern factors hoisted out of the pair loop:
//! erf(σx): K = (2/π) asin(2σ² C_αβ r_α r_β) with r_α = (1 + 2σ² C_αα)^{-1/2}; ReLU, sign and
//! step through ρ = C_αβ / √(C_αα C_ββ). Rows run in parallel (rayon) and are written in place,
//! so the only memory is the output matrix.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use std::f64::consts::{FRAC_2_PI, PI, TAU};

use super::activation::Activation;
use super::program::ProgramError;

/// An affine function of one pair expectation: `scale · K_φ(C) + offset`.
#[derive(Debug, Clone)]
pub struct PairKernelMap {
    /// The activation (erf, linear, ReLU, sign, step at threshold 0; tanh and custom functions
    /// through [`super::hermite_kernel_map`]).
    pub activation: Activation,
    /// Multiplies K_φ.
    pub scale: f64,
    /// Added to every entry.
    pub offset: f64,
}

impl PairKernelMap {
    /// Whether the fast path covers this activation.
    pub fn supports(activation: &Activation) -> bool {
        matches!(
            activation,
            Activation::Erf { .. }
                | Activation::Linear
                | Activation::Relu
                | Activation::Sign
                | Activation::Step { theta: 0.0 }
                | Activation::Tanh
                | Activation::Custom(_)
        )
    }

    /// Applies the map to a P×P kernel; `needed(α, β)` selects the pairs to compute (others
    /// are left 0). The result is symmetric.
    pub fn apply(
        &self,
        c: ArrayView2<f64>,
        needed: &(dyn Fn(usize, usize) -> bool + Sync),
    ) -> Result<Array2<f64>, ProgramError> {
        let mut out = Array2::zeros(c.dim());
        self.apply_into(c, needed, &mut out)?;
        Ok(out)
    }

    /// [`Self::apply`] into an existing P×P buffer (every entry is overwritten).
    pub fn apply_into(
        &self,
        c: ArrayView2<f64>,
        needed: &(dyn Fn(usize, usize) -> bool + Sync),
        out: &mut Array2<f64>,
    ) -> Result<(), ProgramError> {
        if matches!(self.activation, Activation::Tanh | Activation::Custom(_)) {
            let settings = super::hermite_kernel_map::HermiteSettings::default();
            let scale_offset = (self.scale, self.offset);
            super::hermite_kernel_map::apply_into(
                &self.activation,
                scale_offset,
                c,
                needed,
                out,
                &settings,
            )?;
            return Ok(());
        }
        let p = c.nrows();
        if out.dim() != (p, p) {
            return Err(ProgramError::Unsupported(format!(
                "an output buffer of shape {:?} for a {p}×{p} kernel",
                out.dim()
            )));
        }
        let diag: Vec<f64> = (0..p).map(|a| c[[a, a]]).collect();
        if let Some(&bad) = diag.iter().find(|d| d.is_nan() || **d < 0.0) {
            return Err(ProgramError::InvalidCovariance {
                var_u: bad,
                var_v: bad,
                cov: bad,
            });
        }
        let factor: Vec<f64> = match self.activation {
            Activation::Erf { s } => diag
                .iter()
                .map(|d| 1.0 / (1.0 + 2.0 * s * s * d).sqrt())
                .collect(),
            _ => diag
                .iter()
                .map(|d| if *d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
                .collect(),
        };
        let root: Vec<f64> = diag.iter().map(|d| d.sqrt()).collect();
        let slice = out
            .as_slice_mut()
            .ok_or_else(|| ProgramError::Unsupported("a non-contiguous kernel".into()))?;
        let (scale, offset) = (self.scale, self.offset);
        slice
            .par_chunks_mut(p)
            .enumerate()
            .try_for_each(|(a, row)| {
                clear_upper_vector_state();
                let ca = c.row(a);
                for b in a..p {
                    if !needed(a, b) {
                        continue;
                    }
                    let cab = ca[b];
                    if cab.is_nan() || cab.abs() > root[a] * root[b] * (1.0 + 1e-9) + 1e-300 {
                        return Err(ProgramError::InvalidCovariance {
                            var_u: diag[a],
                            var_v: diag[b],
                            cov: cab,
                        });
                    }
                    let k = match self.activation {
                        Activation::Erf { s } => {
                            FRAC_2_PI
                                * (2.0 * s * s * cab * factor[a] * factor[b])
                                    .clamp(-1.0, 1.0)
                                    .asin()
                        }
                        Activation::Linear => cab,
                        Activation::Relu => {
                            let rho = (cab * factor[a] * factor[b]).clamp(-1.0, 1.0);
                            root[a] * root[b] * ((1.0 - rho * rho).sqrt() + (PI - rho.acos()) * rho)
                                / TAU
                        }
                        Activation::Sign => {
                            FRAC_2_PI * (cab * factor[a] * factor[b]).clamp(-1.0, 1.0).asin()
                        }
                        _ => 0.25 + (cab * factor[a] * factor[b]).clamp(-1.0, 1.0).asin() / TAU,
                    };
                    row[b] = scale * k + offset;
                }
                Ok(())
            })?;
        crate::solve::nngp::mirror_upper(out);
        Ok(())
    }
}

/// Clears the upper halves of the vector registers (`vzeroupper`).
///
/// faer's AVX-512 matrix kernels can leave them dirty on a rayon worker; every later
/// SSE-encoded instruction on that thread then pays a state-transition penalty (measured:
/// the pair loop ran 10× slower after an X Xᵀ product). One `vzeroupper` per row restores
/// full speed; it is a no-op where AVX is absent.
#[inline]
pub fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked above), which is all `vzeroupper` needs.
            unsafe { std::arch::x86_64::_mm256_zeroupper() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::pair::pair_expectation;
    use ndarray::array;

    #[test]
    fn fast_path_matches_the_closed_forms_to_1e13() {
        let c = array![[1.0, 0.6, -0.2], [0.6, 1.5, 0.3], [-0.2, 0.3, 0.8]];
        for act in [
            Activation::Erf { s: 0.886 },
            Activation::Linear,
            Activation::Relu,
            Activation::Sign,
            Activation::Step { theta: 0.0 },
        ] {
            let map = PairKernelMap {
                activation: act.clone(),
                scale: 1.5,
                offset: 0.1,
            };
            let k = map.apply(c.view(), &|_, _| true).expect("valid kernel");
            for a in 0..3 {
                for b in 0..3 {
                    let exact: f64 = pair_expectation(&act, c[[a, a]], c[[b, b]], c[[a, b]])
                        .expect("closed form");
                    let want = 1.5 * exact + 0.1;
                    assert!(
                        (k[[a, b]] - want).abs() <= 1e-13 * want.abs().max(1.0),
                        "{act:?} ({a},{b}): {} vs {want}",
                        k[[a, b]]
                    );
                }
            }
        }
    }

    #[test]
    fn invalid_covariances_are_errors() {
        let c = array![[1.0, 2.0], [2.0, 1.0]];
        let map = PairKernelMap {
            activation: Activation::Relu,
            scale: 1.0,
            offset: 0.0,
        };
        assert!(matches!(
            map.apply(c.view(), &|_, _| true),
            Err(ProgramError::InvalidCovariance { .. })
        ));
    }
}
