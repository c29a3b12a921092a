//! [`PairKernelMap`]: an affine function `scale · K_φ(C) + offset` of one pair expectation.

use super::hermite::HermiteSettings;
use crate::numeric::activation::Activation;

/// An affine function of one pair expectation: `scale · K_φ(C) + offset`.
#[derive(Debug, Clone)]
pub struct PairKernelMap {
    /// The activation (erf, linear, ReLU, sign, step at threshold 0; tanh and custom functions
    /// through [`super::hermite`]).
    pub activation: Activation,
    /// Multiplies K_φ.
    pub scale: f64,
    /// Added to every entry.
    pub offset: f64,
    /// Gauss–Hermite order of the per-pair quadrature that the Mehler expansion (tanh, user
    /// functions) falls back to where its error bound is not met.
    pub fallback_order: usize,
}

impl PairKernelMap {
    /// `scale · K_φ(C) + offset`, falling back (without a closed form) to Gauss–Hermite of
    /// the default order [`HermiteSettings::default`].
    pub fn new(activation: Activation, scale: f64, offset: f64) -> Self {
        Self {
            activation,
            scale,
            offset,
            fallback_order: HermiteSettings::default().fallback_order,
        }
    }

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
    /// Whether the map has a closed form the fused loop of [`super::apply_chain_into`] runs.
    pub fn has_closed_form(&self) -> bool {
        Self::supports(&self.activation)
            && !matches!(self.activation, Activation::Tanh | Activation::Custom(_))
    }
}
