//! The run-time half of `saddle_macros::theory!`: what generated code calls and returns.
//!
//! At compile time the macro derives a theory's forward equations and emits, for every pair
//! template whose Gaussian expectations have a closed form, a Rust function generic over
//! [`num_dual::DualNum`] (so AD still runs through it) and a [`NativePairMap`] entry that
//! points at its `f64` instance. The NNGP solver ([`crate::solve::nngp::NngpSettings::native`])
//! looks every equation up by its template key and evaluates the generated function over the
//! pattern pairs instead of interpreting the formula; the loops, the scheduling and the
//! validation are the run time's. Equations the fused SIMD kernel maps already cover (erf,
//! ReLU, sign, linear, step at θ = 0) keep that path, which is the faster one.
//!
//! The functions below are the scalar operations generated code uses where `DualNum` has no
//! method of the same meaning: arcsine, arccosine and square roots take arguments that
//! rounding pushed just past their domain (a correlation of 1 + 1e-16) back onto it, as the
//! interpreter does. On a diagonal pair (α = β, the flag `same`) a correlation that rounding
//! left at 1 − 1e-16 is snapped to 1: arccos and Φ₂ have a square-root singularity there, so
//! the last bit of ρ would cost 1e-8 of the result (the interpreter forms ρ = c/√(ab), which
//! is exactly 1 when a = b = c; a simplified closed form such as g·c/√(g²·a·b) need not be).
//!
//! Constants of a generated function, in this order: the theory's parameters (declaration
//! order), then P (patterns), d (input features), D (outputs; NaN when unknown).
//!
//! ```
//! use saddle::generated::{asin, sqrt};
//! assert_eq!(asin(1.0 + 1e-15, false), std::f64::consts::FRAC_PI_2);
//! assert_eq!(sqrt(-1e-18), 0.0);
//! assert!(sqrt(-1.0_f64).is_nan());
//! ```

use num_dual::DualNum;

/// Re-exported for generated code (the calling crate need not depend on it).
pub use ndarray;
/// Re-exported for generated code (the calling crate need not depend on it).
pub use num_dual;

use crate::numeric::bvn::bvn_cdf;
use crate::numeric::special::ErfDual;

/// A generated pair formula: the entry formula of one template, compiled by rustc.
#[derive(Debug, Clone, Copy)]
pub struct NativePairMap {
    /// The raw template the formula was derived from
    /// ([`crate::derive::closed_form::template_key`]).
    pub key: &'static str,
    /// The entry symbols the function reads, in argument order (placeholders `K0_ab` of the
    /// template, or given matrices `G0_aa`).
    pub slots: &'static [&'static str],
    /// The formula at constants (see the module doc) and slot values; the flag says whether
    /// the pair is a diagonal one (α = β, for a Kronecker δ).
    pub eval: fn(&[f64], &[f64], bool) -> f64,
    /// The same function on dual numbers: forward-mode derivatives in any slot.
    pub eval_dual: fn(&[f64], &[num_dual::Dual64], bool) -> num_dual::Dual64,
    /// Whether the formula is in closed form (else it integrates a generated integrand by
    /// Gauss–Hermite, and the Mehler expansion of the fused kernel maps stays faster where it
    /// applies).
    pub closed_form: bool,
}

/// The constants of a generated function: parameter values, then P, d and D (NaN when the
/// number of outputs is unknown).
pub fn constants(
    params: &[f64],
    patterns: usize,
    inputs: usize,
    outputs: Option<usize>,
) -> Vec<f64> {
    let mut c = params.to_vec();
    c.push(patterns as f64);
    c.push(inputs as f64);
    c.push(outputs.map_or(f64::NAN, |d| d as f64));
    c
}

/// How far past ±1 rounding may push an argument before it is a real error.
const ROUNDING: f64 = 1e-9;
/// How close to ±1 a correlation on a diagonal pair is read as ±1.
const DIAGONAL: f64 = 1e-12;

/// Whether `r` is ±1 up to rounding: past it by at most [`ROUNDING`], or, on a diagonal
/// pair, short of it by at most [`DIAGONAL`].
fn at_unit(r: f64, same: bool) -> bool {
    let excess = r.abs() - 1.0;
    (excess > 0.0 && excess <= ROUNDING) || (same && (-DIAGONAL..=0.0).contains(&excess))
}

/// arcsin, with ±1 up to rounding ([`at_unit`]) read as ±1.
pub fn asin<D: DualNum<Primitive = f64> + Copy>(x: D, same: bool) -> D {
    let r = x.re();
    if at_unit(r, same) {
        D::from(r.signum() * std::f64::consts::FRAC_PI_2)
    } else {
        x.asin()
    }
}

/// arccos, with ±1 up to rounding ([`at_unit`]) read as ±1.
pub fn acos<D: DualNum<Primitive = f64> + Copy>(x: D, same: bool) -> D {
    let r = x.re();
    if at_unit(r, same) {
        D::from(if r > 0.0 { 0.0 } else { std::f64::consts::PI })
    } else {
        x.acos()
    }
}

/// √x, with −1e-12 ≤ x < 0 (a 2×2 determinant that rounding made negative on the diagonal)
/// read as 0.
pub fn sqrt<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    let r = x.re();
    if (-1e-12..0.0).contains(&r) {
        D::zero()
    } else {
        x.sqrt()
    }
}

/// erf
pub fn erf<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    ErfDual::erf(&x)
}

/// Φ, the standard normal CDF.
pub fn norm_cdf<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    ErfDual::norm_cdf(&x)
}

/// Φ₂(h, k; ρ), the bivariate normal CDF, with ρ = ±1 up to rounding ([`at_unit`]) read as
/// ±1; NaN where it is not defined (the solver reports a non-finite entry with its pair).
///
/// An infinite limit fixes the value whatever ρ (a unit whose input variance vanished, a
/// silent layer: h = (J m − θ)/√0 = −∞, with ρ = 0/0): Φ₂(−∞, k) = Φ₂(h, −∞) = 0,
/// Φ₂(+∞, k) = Φ(k), Φ₂(h, +∞) = Φ(h).
pub fn bvn<D: DualNum<Primitive = f64> + Copy>(h: D, k: D, rho: D, same: bool) -> D {
    let (hr, kr) = (h.re(), k.re());
    if hr == f64::NEG_INFINITY || kr == f64::NEG_INFINITY {
        return D::zero();
    }
    if hr == f64::INFINITY {
        return norm_cdf(k);
    }
    if kr == f64::INFINITY {
        return norm_cdf(h);
    }
    let r = rho.re();
    let rho = if at_unit(r, same) {
        D::from(r.signum())
    } else {
        rho
    };
    bvn_cdf(h, k, rho).unwrap_or(D::from(f64::NAN))
}

/// sign, −1 at 0 (the language's convention).
pub fn sign<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    D::from(if x.re() > 0.0 { 1.0 } else { -1.0 })
}

/// step, 0 at 0.
pub fn step<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    D::from(if x.re() > 0.0 { 1.0 } else { 0.0 })
}

/// max(0, x)
pub fn relu<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    if x.re() > 0.0 { x } else { D::zero() }
}

/// |x|
pub fn abs<D: DualNum<Primitive = f64> + Copy>(x: D) -> D {
    x.abs()
}

/// Gauss–Hermite order of the expectations generated code leaves to quadrature (the NNGP
/// solver's default, [`crate::solve::nngp::NngpSettings::quadrature_order`]).
pub const QUADRATURE_ORDER: usize = 80;

fn rule() -> Option<std::sync::Arc<crate::numeric::quad::GaussHermite>> {
    crate::numeric::quad::GaussHermite::shared(QUADRATURE_ORDER).ok()
}

/// ⟨f(u)⟩ for u ∼ 𝒩(m, v), by the same Gauss–Hermite rule the interpreter uses, with a
/// generated integrand; NaN for an invalid variance.
pub fn expect1<D, F>(f: F, m: D, v: D) -> D
where
    D: DualNum<Primitive = f64> + Copy,
    F: Fn(D) -> D,
{
    rule()
        .and_then(|gh| gh.expect_1d(|u| f(u + m), v).ok())
        .unwrap_or(D::from(f64::NAN))
}

/// ⟨f(u) g(v)⟩ for (u, v) ∼ 𝒩((μ_u, μ_v), [[a, c], [c, b]]), as the interpreter computes a
/// pair expectation without closed form (product Gauss–Hermite on the factored covariance;
/// a vanishing variance a makes it f(μ_u)·⟨g⟩), with generated integrands; NaN for a
/// covariance that is not positive semi-definite.
pub fn expect2<D, F, G>(f: F, g: G, mu: D, mv: D, a: D, b: D, c: D) -> D
where
    D: DualNum<Primitive = f64> + Copy,
    F: Fn(D) -> D,
    G: Fn(D) -> D,
{
    let (ar, br, cr) = (a.re(), b.re(), c.re());
    if !(ar >= 0.0 && br >= 0.0 && cr.is_finite()) || cr * cr > ar * br * (1.0 + 1e-9) + 1e-300 {
        return D::from(f64::NAN);
    }
    if ar <= 0.0 {
        return f(mu) * expect1(g, mv, b);
    }
    rule()
        .and_then(|gh| gh.expect_2d(|u| f(u + mu), |v| g(v + mv), a, b, c).ok())
        .unwrap_or(D::from(f64::NAN))
}

/// x^n for an integer exponent written in the formula.
pub fn powi<D: DualNum<Primitive = f64> + Copy>(x: D, n: i32) -> D {
    x.powi(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_dual::Dual64;

    #[test]
    fn rounding_is_clamped_and_errors_are_not() {
        assert_eq!(acos(1.0_f64 + 1e-14, false), 0.0);
        assert_eq!(acos(1.0_f64 - 1e-16, true), 0.0);
        assert!(acos(1.0_f64 - 1e-16, false) > 1e-9);
        assert_eq!(acos(-1.0_f64 - 1e-14, false), std::f64::consts::PI);
        assert!(asin(1.1_f64, true).is_nan());
        assert!(bvn(0.0_f64, 0.0, 1.5, false).is_nan());
        // a silent layer: h = −1/0, ρ = 0/0
        assert_eq!(
            bvn(f64::NEG_INFINITY, f64::NEG_INFINITY, f64::NAN, true),
            0.0
        );
        assert_eq!(bvn(f64::INFINITY, 0.0, f64::NAN, false), 0.5);
        // Φ₂(0, 0; ρ) = 1/4 + asin ρ / (2π)
        let rho = 0.3_f64;
        let expected = 0.25 + rho.asin() / std::f64::consts::TAU;
        assert!((bvn(0.0_f64, 0.0, rho, false) - expected).abs() < 1e-14);
    }

    #[test]
    fn derivatives_flow_through() {
        let x = Dual64::new(0.3, 1.0);
        let d = asin(x, false).eps;
        assert!((d - 1.0 / (1.0 - 0.09_f64).sqrt()).abs() < 1e-14);
        let e = erf(x).eps;
        let want = 2.0 / std::f64::consts::PI.sqrt() * (-0.09_f64).exp();
        assert!((e - want).abs() < 1e-14);
    }
}

/// A generated Jacobian entry G of a pair formula: the derivative of the formula `key` in
/// its slot `slot` (full-matrix convention: ½ ∂/∂c for an off-diagonal covariance `_ab`).
#[derive(Debug, Clone, Copy)]
pub struct NativePairJacobian {
    /// The template of the formula differentiated.
    pub key: &'static str,
    /// The slot it is taken with respect to.
    pub slot: &'static str,
    /// As [`NativePairMap::eval`].
    pub eval: fn(&[f64], &[f64], bool) -> f64,
}

/// What `saddle_macros::theory!` implements for the struct it generates: the compile-time
/// derivation's results, and the run-time solvers with the struct's parameter values and the
/// generated formulas.
pub trait GeneratedTheory {
    /// The theory's name.
    const NAME: &'static str;
    /// The `.action` source.
    const SOURCE: &'static str;
    /// Parameter names in declaration order.
    const PARAMS: &'static [&'static str];
    /// The generated pair formulas, one per closed-form template.
    const PAIR_MAPS: &'static [NativePairMap];
    /// Their Jacobians G, where derived.
    const PAIR_JACOBIANS: &'static [NativePairJacobian];

    /// The checked theory.
    fn theory() -> &'static crate::Theory;

    /// Parameter values in declaration order.
    fn values(&self) -> Vec<f64>;

    /// The values as `--set` overrides.
    fn overrides(&self) -> Vec<(String, f64)> {
        Self::PARAMS
            .iter()
            .zip(self.values())
            .map(|(n, v)| ((*n).to_string(), v))
            .collect()
    }

    /// The constants of the generated formulas (see the module doc).
    fn constants(&self, patterns: usize, inputs: usize, outputs: Option<usize>) -> Vec<f64> {
        constants(&self.values(), patterns, inputs, outputs)
    }
}
