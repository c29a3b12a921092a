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
