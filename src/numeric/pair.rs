//! Closed-form Gaussian pair expectations $K_\phi(a,b,c)=\langle\phi(u)\phi(v)\rangle$,
//! $(u,v)\sim\mathcal N\big(0,\begin{psmallmatrix}a&c\\c&b\end{psmallmatrix}\big)$ (THEORY.md §2 table).
//!
//! With $\rho=c/\sqrt{ab}$, $\theta=\arccos\rho$:
//! * linear: $c$; $\;\operatorname{erf}(sx)$: $\frac2\pi\arcsin\frac{2s^2c}{\sqrt{(1+2s^2a)(1+2s^2b)}}$;
//! * ReLU: $\frac1{2\pi}\big[w+(\tfrac\pi2+\arctan\tfrac cw)c\big]$, $w=\sqrt{ab-c^2}$ (the
//!   arc-cosine kernel $\frac{\sqrt{ab}}{2\pi}[\sin\theta+(\pi-\theta)\cos\theta]$ written so that
//!   no $\arccos$ derivative is taken; $c/2$ or $0$ on the boundary $w=0$);
//! * sign: $\frac2\pi\arcsin\rho$; $\;\mathbb 1_{x>\theta}$: $\Phi_2(-\theta/\sqrt a,-\theta/\sqrt b;\rho)$
//!   ($\frac14+\frac{\arcsin\rho}{2\pi}$ at $\theta=0$).
//!
//! Diagonal $\langle\phi(u)^2\rangle$, $u\sim\mathcal N(0,q)$: $q$, $\frac2\pi\arcsin\frac{2s^2q}{1+2s^2q}$,
//! $q/2$, $1$, $\Phi(-\theta/\sqrt q)$. Everything is generic over `D: DualNum<f64> + Copy`, so
//! num-dual gives $\partial K/\partial(a,b,c)$ (Price: $\partial K/\partial c=\langle\phi'\phi'\rangle$,
//! $\partial K/\partial a=\tfrac12\langle\phi''(u)\phi(v)\rangle$). At $c^2=ab$ (two identical
//! inputs, or rounding past it) the correlation is clamped to $\pm1$ by its real part: values
//! there are exact and finite, and derivatives in the interior are untouched. On the boundary
//! itself ReLU gives the correct one-sided first derivatives; for sign / step the true slope in
//! $c$ is infinite and the clamped form reports zero; higher derivatives there are meaningless
//! (use [`diagonal_expectation`] for $\alpha=\beta$). `Tanh` and `Custom` have no closed form:
//! [`crate::numeric::pair_quadrature`] falls back to Gauss–Hermite.

use crate::numeric::activation::{Activation, DerivativeOrderError};
use crate::numeric::bvn::{BvnError, bvn_cdf};
use crate::numeric::quad::QuadError;
use crate::numeric::special::ErfDual;
use num_dual::DualNum;
use std::f64::consts::{FRAC_2_PI, FRAC_PI_2, TAU};

/// Relative tolerance on $c^2\le ab$ (rounding of kernels built from data).
const PSD_TOLERANCE: f64 = 1e-12;

/// Why a pair expectation could not be evaluated.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PairError {
    /// The activation has no closed form for this expectation.
    #[error("no closed form of {expectation} for activation `{activation}`")]
    NoClosedForm {
        /// Name of the activation.
        activation: String,
        /// Which expectation, e.g. `<phi(u) phi(v)>`.
        expectation: &'static str,
    },
    /// A variance is negative, an entry is not finite, or $c^2>ab$.
    #[error("covariance [[{a}, {c}], [{c}, {b}]] is not positive semidefinite")]
    NotPositiveSemidefinite {
        /// First variance.
        a: f64,
        /// Second variance.
        b: f64,
        /// Covariance.
        c: f64,
    },
    /// A discontinuous activation at zero variance ($\phi(0)$ is a convention).
    #[error("activation `{activation}` needs positive variances, got a = {a}, b = {b}")]
    ZeroVariance {
        /// Name of the activation.
        activation: String,
        /// First variance.
        a: f64,
        /// Second variance.
        b: f64,
    },
    /// The expectation is infinite at $c^2=ab$ (delta functions of sign / step).
    #[error("{expectation} of `{activation}` diverges at c^2 = ab")]
    Divergent {
        /// Name of the activation.
        activation: String,
        /// Which expectation.
        expectation: &'static str,
    },
    /// Error from the bivariate normal CDF.
    #[error(transparent)]
    Bvn(#[from] BvnError),
    /// Error from the quadrature fallback.
    #[error(transparent)]
    Quadrature(#[from] QuadError),
    /// The activation cannot be evaluated on this dual type.
    #[error(transparent)]
    DerivativeOrder(#[from] DerivativeOrderError),
}

/// Checks $a,b\ge0$, finiteness and $c^2\le ab\,(1+10^{-12})$.
pub(crate) fn check_covariance<D: DualNum<Primitive = f64>>(
    a: &D,
    b: &D,
    c: &D,
) -> Result<(), PairError> {
    let (a, b, c) = (a.re(), b.re(), c.re());
    let finite = a.is_finite() && b.is_finite() && c.is_finite();
    if !finite || a < 0.0 || b < 0.0 || c * c > a * b * (1.0 + PSD_TOLERANCE) {
        return Err(PairError::NotPositiveSemidefinite { a, b, c });
    }
    Ok(())
}

/// Checks $a,b>0$ for discontinuous activations.
pub(crate) fn check_positive<D: DualNum<Primitive = f64>>(
    act: &Activation,
    a: &D,
    b: &D,
) -> Result<(), PairError> {
    if a.re() > 0.0 && b.re() > 0.0 {
        Ok(())
    } else {
        Err(PairError::ZeroVariance {
            activation: act.name(),
            a: a.re(),
            b: b.re(),
        })
    }
}

/// $\rho=c/\sqrt{ab}$, replaced by the constant $\pm1$ when rounding puts $|\rho|\ge1$.
pub(crate) fn clamped_correlation<D: DualNum<Primitive = f64> + Copy>(a: D, b: D, c: D) -> D {
    let rho = c / (a * b).sqrt();
    if rho.re() >= 1.0 {
        D::one()
    } else if rho.re() <= -1.0 {
        -D::one()
    } else {
        rho
    }
}

/// $\arcsin\rho$, the constant $\pm\pi/2$ for $|\rho|\ge1$ (asin of a dual at $\pm1$ would
/// multiply a zero derivative by an infinite slope).
pub(crate) fn arcsin_correlation<D: DualNum<Primitive = f64> + Copy>(a: D, b: D, c: D) -> D {
    let rho = clamped_correlation(a, b, c);
    if rho.re().abs() >= 1.0 {
        D::from(FRAC_PI_2 * rho.re())
    } else {
        rho.asin()
    }
}

/// $K_\phi(a,b,c)=\langle\phi(u)\phi(v)\rangle$ in closed form (see the module docs).
pub fn pair_expectation<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    a: D,
    b: D,
    c: D,
) -> Result<D, PairError> {
    check_covariance(&a, &b, &c)?;
    match act {
        Activation::Linear => Ok(c),
        Activation::Erf { s } => {
            let two_s2 = 2.0 * s * s;
            let norm = ((a * two_s2 + 1.0) * (b * two_s2 + 1.0)).sqrt();
            Ok((c * two_s2 / norm).asin() * FRAC_2_PI)
        }
        Activation::Relu => {
            let gap = a * b - c * c;
            if gap.re() <= 0.0 {
                // Boundary: v = ±sqrt(b/a) u; gives the correct one-sided first derivatives.
                return Ok(if c.re() > 0.0 { c * 0.5 } else { D::zero() });
            }
            // pi - theta = pi/2 + atan(c / w) for w > 0 (num-dual's atan2 divides by c).
            let w = gap.sqrt();
            Ok((w + ((c / w).atan() + FRAC_PI_2) * c) / TAU)
        }
        Activation::Sign => {
            check_positive(act, &a, &b)?;
            Ok(arcsin_correlation(a, b, c) * FRAC_2_PI)
        }
        Activation::Step { theta } => {
            check_positive(act, &a, &b)?;
            if *theta == 0.0 {
                return Ok(arcsin_correlation(a, b, c) / TAU + 0.25);
            }
            let rho = clamped_correlation(a, b, c);
            let h = -a.sqrt().recip() * *theta;
            let k = -b.sqrt().recip() * *theta;
            Ok(bvn_cdf(h, k, rho)?)
        }
        Activation::Tanh | Activation::Custom(_) => Err(PairError::NoClosedForm {
            activation: act.name(),
            expectation: "<phi(u) phi(v)>",
        }),
    }
}

/// $\langle\phi(u)^2\rangle$ for $u\sim\mathcal N(0,q)$ in closed form; equals
/// `pair_expectation(act, q, q, q)` but is cheaper.
pub fn diagonal_expectation<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    q: D,
) -> Result<D, PairError> {
    check_covariance(&q, &q, &q)?;
    match act {
        Activation::Linear => Ok(q),
        Activation::Erf { s } => {
            let two_s2q = q * (2.0 * s * s);
            Ok((two_s2q / (two_s2q + 1.0)).asin() * FRAC_2_PI)
        }
        Activation::Relu => Ok(q * 0.5),
        Activation::Sign => Ok(D::one()),
        Activation::Step { theta } => Ok(if q.re() > 0.0 {
            (-q.sqrt().recip() * *theta).norm_cdf()
        } else {
            D::from(act.value(0.0))
        }),
        Activation::Tanh | Activation::Custom(_) => Err(PairError::NoClosedForm {
            activation: act.name(),
            expectation: "<phi(u)^2>",
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::numeric::monte_carlo::pair_expectation_mc;
    use crate::numeric::quad::GaussHermite;
    use crate::numeric::tanh_sinh::integrate;
    use num_dual::Dual64;

    pub(crate) fn closed_form_activations() -> Vec<Activation> {
        vec![
            Activation::Linear,
            Activation::Erf { s: 1.0 },
            Activation::unit_slope_erf(),
            Activation::Relu,
            Activation::Sign,
            Activation::heaviside(),
            Activation::Step { theta: 0.5 },
            Activation::Step { theta: -0.8 },
        ]
    }

    const COVARIANCES: [(f64, f64, f64); 5] = [
        (1.0, 1.5, 0.6),
        (0.7, 2.0, -1.1),
        (1.0, 1.0, 0.99),
        (2.5, 0.4, 0.0),
        (0.3, 0.3, -0.29),
    ];

    /// $\langle\phi(u)\,\mathbb E[\phi(v)\mid u]\rangle$ by tanh–sinh over $u$, split at the kinks;
    /// the conditional expectation of a kinked $\phi$ of $v\mid u\sim\mathcal N(\mu,\sigma^2)$ is
    /// elementary.
    fn by_conditional_integration(act: &Activation, (a, b, c): (f64, f64, f64)) -> f64 {
        let sigma = (b - c * c / a).sqrt();
        let phi = |x: f64| ErfDual::norm_cdf(&x);
        let pdf = |x: f64| ErfDual::norm_pdf(&x);
        let conditional = |mu: f64| match act {
            Activation::Relu => mu * phi(mu / sigma) + sigma * pdf(mu / sigma),
            Activation::Sign => 2.0 * phi(mu / sigma) - 1.0,
            Activation::Step { theta } => phi((mu - theta) / sigma),
            _ => unreachable!("smooth activations are checked by Gauss–Hermite"),
        };
        let kink = match act {
            Activation::Step { theta } => theta / a.sqrt(),
            _ => 0.0,
        };
        let f = |z: f64| pdf(z) * act.value(a.sqrt() * z) * conditional(c / a.sqrt() * z);
        let left = integrate(f, -40.0, kink, 1e-15).unwrap().value;
        left + integrate(f, kink, 40.0, 1e-15).unwrap().value
    }

    #[test]
    fn theory_t2_closed_form_columns() {
        let rhos = [-0.5, 0.0, 0.3, 0.9, 0.99];
        let columns: [(Activation, [f64; 5]); 5] = [
            (
                Activation::Relu,
                [
                    0.0544988905,
                    0.1591549431,
                    0.2413721419,
                    0.4547691994,
                    0.4951501279,
                ],
            ),
            (
                Activation::Sign,
                [-0.3333333333, 0.0, 0.1939733680, 0.7128674137, 0.9098931727],
            ),
            (
                Activation::heaviside(),
                [0.1666666667, 0.25, 0.2984933420, 0.4282168534, 0.4774732932],
            ),
            (
                Activation::Erf { s: 1.0 },
                [-0.2163468959, 0.0, 0.1281884337, 0.4096655294, 0.4588874755],
            ),
            (
                Activation::unit_slope_erf(),
                [-0.1976523674, 0.0, 0.1173589478, 0.3706789772, 0.4135780974],
            ),
        ];
        for (act, values) in &columns {
            for (&rho, &want) in rhos.iter().zip(values) {
                let got = pair_expectation(act, 1.0, 1.0, rho).unwrap();
                assert!(
                    (got - want).abs() < 1e-10,
                    "{} rho={rho}: {got} vs {want}",
                    act.name()
                );
            }
        }
    }

    #[test]
    fn closed_forms_match_quadrature_and_integration() {
        let gh = GaussHermite::new(96).unwrap();
        let mut worst = 0.0f64;
        for act in closed_form_activations() {
            for &cov in &COVARIANCES {
                let got = pair_expectation(&act, cov.0, cov.1, cov.2).unwrap();
                let want = if act.is_smooth() {
                    gh.expect_2d(|u| act.value(u), |v| act.value(v), cov.0, cov.1, cov.2)
                        .unwrap()
                } else {
                    by_conditional_integration(&act, cov)
                };
                worst = worst.max((got - want).abs());
                assert!(
                    (got - want).abs() < 1e-12,
                    "{} {cov:?}: {got} vs {want}",
                    act.name()
                );
            }
        }
        eprintln!("pair closed forms vs quadrature: max abs error {worst:e}");
    }

    #[test]
    fn closed_forms_match_monte_carlo() {
        for (i, act) in closed_form_activations().into_iter().enumerate() {
            for (j, &cov) in COVARIANCES[..2].iter().enumerate() {
                let want = pair_expectation(&act, cov.0, cov.1, cov.2).unwrap();
                let seed = 100 + 10 * i as u64 + j as u64;
                let mc =
                    pair_expectation_mc(|u| act.value(u), |v| act.value(v), cov, 100_000, seed)
                        .unwrap();
                assert!(
                    mc.z_score(want) < 4.0,
                    "{} {cov:?}: {want} vs {mc:?}",
                    act.name()
                );
            }
        }
    }

    #[test]
    fn diagonal_is_exact_finite_and_differentiable() {
        for act in closed_form_activations() {
            for q in [0.3, 1.0, 2.7] {
                let pair = pair_expectation(
                    &act,
                    Dual64::new(q, 1.0),
                    Dual64::new(q, 1.0),
                    Dual64::new(q, 1.0),
                )
                .unwrap();
                let diag = diagonal_expectation(&act, Dual64::new(q, 1.0)).unwrap();
                assert!(
                    (pair.re - diag.re).abs() < 1e-15,
                    "{} q={q}: {pair} {diag}",
                    act.name()
                );
                assert!(
                    pair.eps.is_finite() && (pair.eps - diag.eps).abs() < 1e-12,
                    "{} q={q}: {pair} {diag}",
                    act.name()
                );
                let mc =
                    pair_expectation_mc(|u| act.value(u), |v| act.value(v), (q, q, q), 50_000, 5)
                        .unwrap();
                assert!(mc.z_score(diag.re) < 4.0 || mc.std_error == 0.0 && mc.mean == diag.re);
            }
        }
        assert_eq!(
            diagonal_expectation(&Activation::Step { theta: -0.1 }, 0.0),
            Ok(1.0)
        );
        assert_eq!(pair_expectation(&Activation::Relu, 0.0, 2.0, 0.0), Ok(0.0));
    }

    #[test]
    fn invalid_input_and_boundary() {
        let erf = Activation::Erf { s: 1.0 };
        assert!(matches!(
            pair_expectation(&Activation::Tanh, 1.0, 1.0, 0.0),
            Err(PairError::NoClosedForm { .. })
        ));
        assert!(matches!(
            pair_expectation(&erf, 1.0, 1.0, 1.01),
            Err(PairError::NotPositiveSemidefinite { .. })
        ));
        assert!(matches!(
            pair_expectation(&erf, f64::NAN, 1.0, 0.0),
            Err(PairError::NotPositiveSemidefinite { .. })
        ));
        assert!(matches!(
            pair_expectation(&Activation::Sign, 0.0, 1.0, 0.0),
            Err(PairError::ZeroVariance { .. })
        ));
        // The boundary c^2 = ab (two identical inputs) is exact.
        assert_eq!(
            pair_expectation(&Activation::Sign, 2.0, 0.5, -1.0),
            Ok(-1.0)
        );
        assert_eq!(pair_expectation(&Activation::Relu, 2.0, 0.5, 1.0), Ok(0.5));
    }
}
