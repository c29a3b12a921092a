//! Activation functions $\phi$ of the network (THEORY.md §1, §2).
//!
//! | variant | $\phi(x)$ | $\phi'(x)$ | $\phi''(x)$ |
//! |---|---|---|---|
//! | `Linear` | $x$ | $1$ | $0$ |
//! | `Erf { s }` | $\operatorname{erf}(sx)$ | $\frac{2s}{\sqrt\pi}e^{-s^2x^2}$ | $-2s^2x\,\phi'(x)$ |
//! | `Relu` | $\max(0,x)$ | $\mathbb 1_{x>0}$ | $0$ (plus $\delta(x)$) |
//! | `Sign` | $2\,\mathbb 1_{x>0}-1$ | $0$ (plus $2\delta(x)$) | $0$ (plus $2\delta'(x)$) |
//! | `Step { theta }` | $\mathbb 1_{x>\theta}$ | $0$ (plus $\delta(x-\theta)$) | $0$ (plus $\delta'(x-\theta)$) |
//! | `Tanh` | $\tanh x$ | $1-\tanh^2x$ | $-2\tanh x\,(1-\tanh^2x)$ |
//! | `Custom` | user closure returning $(\phi,\phi',\phi'')$ | | |
//!
//! The pointwise derivatives of the kinked activations omit the distributional parts; Gaussian
//! expectations that involve them have closed forms in [`crate::numeric::pair`]. `Sign(0) = -1`
//! (so that $\mathrm{sign}=2H-1$ with $H(0)=0$); the choice has measure zero.

use crate::numeric::special::{ErfDual, lift_with_derivatives};
use num_dual::DualNum;
use std::f64::consts::FRAC_2_SQRT_PI;
use std::fmt;
use std::sync::Arc;

/// A user-supplied smooth activation: a closure returning $(\phi(x),\phi'(x),\phi''(x))$.
#[derive(Clone)]
pub struct CustomActivation {
    name: String,
    jet: Arc<dyn Fn(f64) -> [f64; 3] + Send + Sync>,
}

impl CustomActivation {
    /// Wraps `jet`, which maps $x$ to $[\phi(x),\phi'(x),\phi''(x)]$.
    pub fn new(
        name: impl Into<String>,
        jet: impl Fn(f64) -> [f64; 3] + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            jet: Arc::new(jet),
        }
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for CustomActivation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomActivation")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The activation function $\phi$.
#[derive(Clone, Debug)]
pub enum Activation {
    /// $\phi(x)=x$.
    Linear,
    /// $\phi(x)=\operatorname{erf}(s\,x)$; $s=\sqrt\pi/2$ is the unit-slope erf.
    Erf {
        /// Slope parameter $s$.
        s: f64,
    },
    /// $\phi(x)=\max(0,x)$.
    Relu,
    /// $\phi(x)=\pm1$.
    Sign,
    /// Heaviside step with threshold: $\phi(x)=\mathbb 1_{x>\theta}$.
    Step {
        /// Threshold $\theta$.
        theta: f64,
    },
    /// $\phi(x)=\tanh x$.
    Tanh,
    /// A smooth user function (see [`CustomActivation`]).
    Custom(CustomActivation),
}

/// Where a user function has no finite Gaussian expectation of its square.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Singularity {
    /// $|\phi(x)|\sim|x-\text{at}|^{-\text{exponent}}$ with exponent ≥ ½.
    Pole {
        /// The location (to about 1e-16 of the grid step).
        at: f64,
        /// The growth exponent (∞ where φ is finite only on one side and jumps there).
        exponent: f64,
    },
    /// φ is not finite at `at` nor next to it (undefined there, or overflowing).
    NotFinite {
        /// A point of the stretch.
        at: f64,
        /// φ there (NaN or ±∞).
        value: f64,
    },
}

impl std::fmt::Display for Singularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Singularity::Pole { at, exponent } => write!(
                f,
                "has a pole at h ≈ {at:.6} (|φ| grows like |h − {at:.6}|^−{exponent:.2}; \
                 exponents ≥ 1/2 make its square non-integrable)"
            ),
            Singularity::NotFinite { at, value } => {
                write!(
                    f,
                    "is not finite at h ≈ {at:.6} and around it (φ = {value})"
                )
            }
        }
    }
}

/// The point of largest `f` in `[lo, hi]`, by golden-section search (100 steps shrink the
/// bracket by 1e-21).
fn golden_section_peak(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - ratio * (hi - lo);
    let mut b = lo + ratio * (hi - lo);
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..100 {
        if fa.is_infinite() {
            return a;
        }
        if fb.is_infinite() {
            return b;
        }
        if fa >= fb || fb.is_nan() {
            hi = b;
            b = a;
            fb = fa;
            a = hi - ratio * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + ratio * (hi - lo);
            fb = f(b);
        }
        if hi - lo <= f64::EPSILON * hi.abs().max(lo.abs()).max(f64::MIN_POSITIVE) {
            break;
        }
    }
    if fa >= fb { a } else { b }
}

/// Evaluating an activation on a dual number needs more derivatives than it provides.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "activation `{name}` provides derivatives up to order {available}, order {requested} was requested"
)]
pub struct DerivativeOrderError {
    /// Name of the activation.
    pub name: String,
    /// Highest derivative order needed (derivative taken plus the dual type's order).
    pub requested: usize,
    /// Highest derivative order the activation provides.
    pub available: usize,
}

impl Activation {
    /// The unit-slope erf $\operatorname{erf}(\sqrt\pi x/2)$, $\phi'(0)=1$.
    pub fn unit_slope_erf() -> Self {
        Activation::Erf {
            s: 0.5 * std::f64::consts::PI.sqrt(),
        }
    }

    /// The Heaviside step $\mathbb 1_{x>0}$.
    pub fn heaviside() -> Self {
        Activation::Step { theta: 0.0 }
    }

    /// A short human-readable name, e.g. `erf(0.886x)` or `step(0.5)`.
    pub fn name(&self) -> String {
        match self {
            Activation::Linear => "linear".into(),
            Activation::Erf { s } => format!("erf({s}x)"),
            Activation::Relu => "relu".into(),
            Activation::Sign => "sign".into(),
            Activation::Step { theta } => format!("step({theta})"),
            Activation::Tanh => "tanh".into(),
            Activation::Custom(custom) => custom.name.clone(),
        }
    }

    /// Whether $\phi$ is smooth everywhere (Gauss–Hermite quadrature converges exponentially).
    pub fn is_smooth(&self) -> bool {
        matches!(
            self,
            Activation::Linear | Activation::Erf { .. } | Activation::Tanh | Activation::Custom(_)
        )
    }

    /// $[\phi(x),\phi'(x),\phi''(x)]$ (pointwise; distributional parts of kinks omitted).
    pub fn jet(&self, x: f64) -> [f64; 3] {
        match self {
            Activation::Linear => [x, 1.0, 0.0],
            Activation::Erf { s } => {
                let slope = s * FRAC_2_SQRT_PI * (-(s * x) * (s * x)).exp();
                [ErfDual::erf(&(s * x)), slope, -2.0 * s * s * x * slope]
            }
            Activation::Relu => {
                if x > 0.0 {
                    [x, 1.0, 0.0]
                } else {
                    [0.0, 0.0, 0.0]
                }
            }
            Activation::Sign => [if x > 0.0 { 1.0 } else { -1.0 }, 0.0, 0.0],
            Activation::Step { theta } => [if x > *theta { 1.0 } else { 0.0 }, 0.0, 0.0],
            Activation::Tanh => {
                let t = x.tanh();
                let slope = 1.0 - t * t;
                [t, slope, -2.0 * t * slope]
            }
            Activation::Custom(custom) => (custom.jet)(x),
        }
    }

    /// Where a user function makes $\langle\phi(h)^2\rangle$ diverge (or undefined) under
    /// every Gaussian, looked for on $[-40s, 40s]$ for pre-activations of standard deviation
    /// `scale` = $s$: a pole with $|\phi(x)|\sim|x-x_0|^{-p}$, $p\ge\tfrac12$, or a stretch
    /// where φ is not finite (`ln` of a negative, an overflowing `exp(x^2)`, `x/0`).
    ///
    /// Quadrature never sees a pole unless a node lands on it: `phi(x) = 1/x` gave a finite
    /// kernel with a tiny error bound. The scan evaluates φ on a grid of 8001 points, zooms
    /// (golden section) into every local maximum of $|\phi|$ and, where it is not bounded,
    /// measures the growth exponent $p$ from $|\phi|$ at distances $10^{-8}h$ and $10^{-4}h$
    /// from the peak ($h$ the grid step), on each side. An isolated non-finite point with a
    /// bounded neighbourhood (`sin(x)/x`-like 0/0) is not a singularity. Built-in activations
    /// have none.
    pub fn square_integrable_pole(&self, scale: f64) -> Option<Singularity> {
        let Activation::Custom(custom) = self else {
            return None;
        };
        let phi = |x: f64| (custom.jet)(x)[0].abs();
        const POINTS: usize = 8001;
        let reach = 40.0
            * if scale.is_finite() && scale > 0.0 {
                scale
            } else {
                1.0
            };
        let step = 2.0 * reach / (POINTS - 1) as f64;
        let grid: Vec<f64> = (0..POINTS).map(|i| -reach + step * i as f64).collect();
        let values: Vec<f64> = grid.iter().map(|&x| phi(x)).collect();
        // Growth exponent on each side of `at`: None where φ is not finite next to it.
        let growth = |at: f64| {
            let exponent = |side: f64| {
                let near = phi(at + side * 1e-8 * step);
                let far = phi(at + side * 1e-4 * step);
                (near.is_finite() && far.is_finite()).then(|| {
                    if far > 0.0 {
                        (near / far).ln() / 1e4_f64.ln()
                    } else if near > 0.0 {
                        f64::INFINITY
                    } else {
                        0.0
                    }
                })
            };
            match (exponent(-1.0), exponent(1.0)) {
                (Some(l), Some(r)) => Some(l.max(r)),
                (one, other) => one.or(other),
            }
        };
        // comparisons with a non-finite neighbour count it as lower
        let level = |i: usize| values.get(i).copied().filter(|v| v.is_finite());
        for i in 0..POINTS {
            let (at, value) = if values[i].is_finite() {
                let interior = i > 0 && i + 1 < POINTS;
                let v = values[i];
                let peak = interior
                    && level(i - 1).is_none_or(|l| v >= l)
                    && level(i + 1).is_none_or(|u| v >= u);
                if !peak {
                    continue;
                }
                (golden_section_peak(phi, grid[i - 1], grid[i + 1]), None)
            } else {
                (grid[i], Some((custom.jet)(grid[i])[0]))
            };
            match growth(at) {
                Some(p) if p >= 0.5 - 1e-3 => {
                    return Some(Singularity::Pole { at, exponent: p });
                }
                None if value.is_some() => {
                    let value = value.unwrap_or(f64::NAN);
                    return Some(Singularity::NotFinite { at, value });
                }
                _ => {}
            }
        }
        None
    }

    /// $\phi(x)$.
    pub fn value(&self, x: f64) -> f64 {
        self.jet(x)[0]
    }

    /// $\phi'(x)$ (pointwise).
    pub fn derivative(&self, x: f64) -> f64 {
        self.jet(x)[1]
    }

    /// $\phi''(x)$ (pointwise).
    pub fn second_derivative(&self, x: f64) -> f64 {
        self.jet(x)[2]
    }

    /// $\phi^{(\text{order})}(x)$ for `order` ≤ 2 on a dual number, with all derivative parts of
    /// `x` propagated (so quadrature nodes that depend on a covariance carry $d/dC$).
    ///
    /// Built-in activations work for every dual type; kinks contribute their pointwise
    /// derivative. `order > 2` is an error, and a [`CustomActivation`] knows derivatives up to
    /// order 2 only, so it needs `order + D::NDERIV ≤ 2`, else [`DerivativeOrderError`].
    pub fn eval_dual<D>(&self, x: &D, order: usize) -> Result<D, DerivativeOrderError>
    where
        D: DualNum<Primitive = f64>,
    {
        let custom = matches!(self, Activation::Custom(_));
        let requested = if custom { order + D::NDERIV } else { order };
        if requested > 2 {
            return Err(DerivativeOrderError {
                name: self.name(),
                requested,
                available: 2,
            });
        }
        let piecewise = |jet: [f64; 3]| D::from(jet[order]);
        Ok(match self {
            Activation::Linear => match order {
                0 => x.clone(),
                1 => D::one(),
                _ => D::zero(),
            },
            Activation::Erf { s } => {
                let sx = x.clone() * *s;
                match order {
                    0 => sx.erf(),
                    _ => {
                        let slope = (-sx.clone() * sx).exp() * (s * FRAC_2_SQRT_PI);
                        if order == 1 {
                            slope
                        } else {
                            slope * x.clone() * (-2.0 * s * s)
                        }
                    }
                }
            }
            Activation::Relu if order == 0 => {
                if x.re() > 0.0 {
                    x.clone()
                } else {
                    D::zero()
                }
            }
            Activation::Relu | Activation::Sign | Activation::Step { .. } => {
                piecewise(self.jet(x.re()))
            }
            Activation::Tanh => {
                let t = x.tanh();
                match order {
                    0 => t,
                    1 => D::one() - t.clone() * t,
                    _ => (D::one() - t.clone() * t.clone()) * t * (-2.0),
                }
            }
            Activation::Custom(custom) => {
                let jet = (custom.jet)(x.re());
                lift_with_derivatives(x, jet[order], jet[order + 1..].iter().copied())
            }
        })
    }
}

#[cfg(test)]
mod tests {

    fn user(f: fn(f64) -> f64) -> Activation {
        Activation::Custom(CustomActivation::new("φ", move |x: f64| [f(x), 0.0, 0.0]))
    }

    /// `1/x` gave a finite kernel with a tiny error bound: poles whose square is not
    /// integrable are found and located; integrable singularities and sharp but finite
    /// peaks are not poles.
    #[test]
    fn poles_with_a_non_integrable_square_are_found() {
        type Case = (fn(f64) -> f64, Option<(f64, f64)>);
        let cases: [Case; 7] = [
            (|x| 1.0 / x, Some((0.0, 1.0))),
            (|x| 1.0 / (x - 0.3), Some((0.3, 1.0))),
            (|x| 1.0 / (x + 2.0).powi(2), Some((-2.0, 2.0))),
            (|x| 1.0 / x.abs().sqrt(), Some((0.0, 0.5))),
            (|x| x.abs().powf(-0.25), None),
            (|x| x.tanh() * x.exp(), None),
            (|x| 1.0 / (x * x + 1e-6), None),
        ];
        for (i, (f, want)) in cases.into_iter().enumerate() {
            let found = user(f).square_integrable_pole(1.0);
            match (found, want) {
                (Some(Singularity::Pole { at: x, exponent: p }), Some((at, exponent))) => {
                    assert!((x - at).abs() < 1e-9, "case {i}: {found:?}");
                    assert!((p - exponent).abs() < 0.01, "case {i}: {found:?}");
                }
                (None, None) => {}
                other => panic!("case {i}: {other:?}"),
            }
        }
        assert_eq!(Activation::Tanh.square_integrable_pole(1.0), None);
        // a one-sided pole next to an undefined point, undefined stretches, and a removable
        // 0/0 that is no singularity
        let step_over_x = user(|x| if x > 0.0 { 1.0 / x } else { 0.0 / x });
        assert!(matches!(
            step_over_x.square_integrable_pole(1.0),
            Some(Singularity::Pole { at, .. }) if at.abs() < 1e-9
        ));
        assert!(matches!(
            user(f64::ln).square_integrable_pole(1.0),
            Some(Singularity::NotFinite { at, .. }) if at < 0.0
        ));
        assert!(matches!(
            user(|x| (x * x).exp()).square_integrable_pole(1.0),
            Some(Singularity::NotFinite { .. })
        ));
        assert_eq!(user(|x| x.sin() / x).square_integrable_pole(1.0), None);
    }

    use super::*;
    use num_dual::{Dual2_64, Dual3_64, Dual64};

    fn all() -> Vec<Activation> {
        vec![
            Activation::Linear,
            Activation::Erf { s: 1.0 },
            Activation::unit_slope_erf(),
            Activation::Relu,
            Activation::Sign,
            Activation::Step { theta: 0.5 },
            Activation::Tanh,
            Activation::Custom(CustomActivation::new("softplus", |x: f64| {
                let sig = 1.0 / (1.0 + (-x).exp());
                [x.exp().ln_1p(), sig, sig * (1.0 - sig)]
            })),
        ]
    }

    #[test]
    fn pointwise_derivatives_match_num_dual_of_dual_evaluation() {
        // Dual2 evaluation of phi gives phi' and phi''; compare with the f64 jet (independent
        // formulas for erf and tanh, lifted jet for the custom function).
        for act in all().iter().filter(|a| !matches!(a, Activation::Custom(_))) {
            for &x in &[-1.7, -0.2, 0.3, 0.9, 2.4] {
                let d = act
                    .eval_dual(&Dual2_64::from_re(x).derivative(), 0)
                    .unwrap();
                let [v, d1, d2] = act.jet(x);
                assert!((d.re - v).abs() < 1e-15, "{}", act.name());
                assert!(
                    (d.v1 - d1).abs() < 1e-15 && (d.v2 - d2).abs() < 1e-14,
                    "{}",
                    act.name()
                );
                let first = act.eval_dual(&Dual64::from_re(x).derivative(), 1).unwrap();
                assert!((first.re - d1).abs() < 1e-15 && (first.eps - d2).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn custom_jet_is_checked_and_lifted() {
        let softplus = all().pop().unwrap();
        let x = 0.4;
        let d = softplus
            .eval_dual(&Dual2_64::from_re(x).derivative(), 0)
            .unwrap();
        let sig = 1.0 / (1.0 + (-x).exp());
        assert!((d.v1 - sig).abs() < 1e-15 && (d.v2 - sig * (1.0 - sig)).abs() < 1e-15);
        let err = softplus.eval_dual(&Dual3_64::from_re(x), 0).unwrap_err();
        assert_eq!((err.requested, err.available), (3, 2));
        assert!(softplus.eval_dual(&Dual64::from_re(x), 2).is_err());
        assert!(Activation::Tanh.eval_dual(&x, 3).is_err());
        assert!(format!("{softplus:?}").contains("softplus"));
    }

    #[test]
    fn unit_slope_erf_has_unit_slope_and_kinks_are_pointwise() {
        assert!((Activation::unit_slope_erf().derivative(0.0) - 1.0).abs() < 1e-15);
        assert_eq!(Activation::Sign.value(0.0), -1.0);
        assert_eq!(Activation::heaviside().value(0.0), 0.0);
        assert_eq!(Activation::Step { theta: 0.5 }.value(0.6), 1.0);
        assert_eq!(Activation::Relu.jet(-2.0), [0.0, 0.0, 0.0]);
        assert!(
            Activation::Relu.value(f64::NAN) == 0.0 && Activation::Tanh.value(f64::NAN).is_nan()
        );
        assert!(!Activation::Relu.is_smooth() && Activation::Tanh.is_smooth());
    }
}
