//! Closed forms of the Gaussian expectations in the Jacobian $G=g\,\partial K/\partial C$
//! (THEORY.md §2, "Derivatives"), for $(u,v)\sim\mathcal N\big(0,\begin{psmallmatrix}a&c\\c&b\end{psmallmatrix}\big)$,
//! $\Delta_s=(1+2s^2a)(1+2s^2b)-4s^4c^2$, $\gamma=ab-c^2$:
//!
//! | $\phi$ | $\langle\phi'(u)\phi'(v)\rangle$ | $\langle\phi''(u)\phi(v)\rangle$ | $\langle\phi'(u)^2+\phi\phi''\rangle$, $u\sim\mathcal N(0,q)$ |
//! |---|---|---|---|
//! | $x$ | $1$ | $0$ | $1$ |
//! | $\operatorname{erf}(sx)$ | $\frac{4s^2/\pi}{\sqrt{\Delta_s}}$ | $-\frac{8s^4c/\pi}{(1+2s^2a)\sqrt{\Delta_s}}$ | $\frac{4s^2/\pi}{(1+2s^2q)\sqrt{1+4s^2q}}$ |
//! | ReLU | $\frac14+\frac{\arcsin\rho}{2\pi}$ | $\frac{\sqrt\gamma}{2\pi a}$ | $\frac12$ |
//! | sign | $\frac{2}{\pi\sqrt\gamma}$ | $-\frac{2c}{\pi a\sqrt\gamma}$ | $0$ |
//! | $\mathbb 1_{x>\theta}$ | $\frac{e^{-\theta^2(a+b-2c)/2\gamma}}{2\pi\sqrt\gamma}$ | $\varphi_a(\theta)\big[\frac\theta a\Phi(z)-\frac{c}{a\sigma}\varphi(z)\big]$ | $\frac{\theta}{2q^{3/2}}\varphi(\theta/\sqrt q)$ |
//!
//! with $\sigma^2=\gamma/a$, $z=\theta(c-a)/(a\sigma)$, $\varphi_a(\theta)=e^{-\theta^2/2a}/\sqrt{2\pi a}$.
//! The derivatives of kinks are distributions ($\phi''=\delta$ for ReLU, $\phi'=\delta$ for steps).
//! By Price's theorem these are $\partial K/\partial c$, $2\,\partial K/\partial a$ and
//! $\frac{d}{dq}\langle\phi^2\rangle$ of [`crate::numeric::pair`]; the diagonal column is the
//! $\alpha=\beta$ entry $\partial K_{\alpha\alpha}/\partial C_{\alpha\alpha}$. Sign and step
//! expectations with a delta function diverge at $\gamma=0$ ($\chi_1=\infty$, THEORY.md §7.1).

use crate::numeric::activation::Activation;
use crate::numeric::pair::{PairError, arcsin_correlation, check_covariance, check_positive};
use crate::numeric::special::{ErfDual, FRAC_1_SQRT_2PI};
use num_dual::DualNum;
use std::f64::consts::{PI, TAU};

fn no_closed_form(act: &Activation, expectation: &'static str) -> PairError {
    PairError::NoClosedForm {
        activation: act.name(),
        expectation,
    }
}

/// $\gamma=ab-c^2$, or [`PairError::Divergent`] when $\gamma\le0$.
fn positive_gap<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    (a, b, c): (D, D, D),
    expectation: &'static str,
) -> Result<D, PairError> {
    let gap = a * b - c * c;
    if gap.re() > 0.0 {
        Ok(gap)
    } else {
        Err(PairError::Divergent {
            activation: act.name(),
            expectation,
        })
    }
}

/// $\langle\phi'(u)\phi'(v)\rangle$ (= $\partial K/\partial c$ with $c$ the symmetric covariance).
pub fn pair_derivative_expectation<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    a: D,
    b: D,
    c: D,
) -> Result<D, PairError> {
    const WHAT: &str = "<phi'(u) phi'(v)>";
    check_covariance(&a, &b, &c)?;
    match act {
        Activation::Linear => Ok(D::one()),
        Activation::Erf { s } => {
            let s2 = s * s;
            let det = (a * (2.0 * s2) + 1.0) * (b * (2.0 * s2) + 1.0) - c * c * (4.0 * s2 * s2);
            Ok(det.sqrt().recip() * (4.0 * s2 / PI))
        }
        Activation::Relu => {
            check_positive(act, &a, &b)?;
            Ok(arcsin_correlation(a, b, c) / TAU + 0.25)
        }
        Activation::Sign => {
            check_positive(act, &a, &b)?;
            let gap = positive_gap(act, (a, b, c), WHAT)?;
            Ok(gap.sqrt().recip() * (2.0 / PI))
        }
        Activation::Step { theta } => {
            check_positive(act, &a, &b)?;
            let gap = positive_gap(act, (a, b, c), WHAT)?;
            let exponent = -(a + b - c * 2.0) * (theta * theta) / (gap * 2.0);
            Ok(exponent.exp() / (gap.sqrt() * TAU))
        }
        Activation::Tanh | Activation::Custom(_) => Err(no_closed_form(act, WHAT)),
    }
}

/// $\langle\phi''(u)\phi(v)\rangle$, the second derivative on the argument of variance $a$
/// (= $2\,\partial K/\partial a$).
pub fn pair_second_derivative_expectation<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    a: D,
    b: D,
    c: D,
) -> Result<D, PairError> {
    const WHAT: &str = "<phi''(u) phi(v)>";
    check_covariance(&a, &b, &c)?;
    match act {
        Activation::Linear => Ok(D::zero()),
        Activation::Erf { s } => {
            let s2 = s * s;
            let one_a = a * (2.0 * s2) + 1.0;
            let det = one_a * (b * (2.0 * s2) + 1.0) - c * c * (4.0 * s2 * s2);
            Ok(-c * (8.0 * s2 * s2 / PI) / (one_a * det.sqrt()))
        }
        Activation::Relu => {
            check_positive(act, &a, &b)?;
            let gap = a * b - c * c;
            Ok(if gap.re() > 0.0 {
                gap.sqrt() / (a * TAU)
            } else {
                D::zero()
            })
        }
        Activation::Sign => {
            check_positive(act, &a, &b)?;
            let gap = positive_gap(act, (a, b, c), WHAT)?;
            Ok(-c * (2.0 / PI) / (a * gap.sqrt()))
        }
        Activation::Step { theta } => {
            check_positive(act, &a, &b)?;
            let gap = positive_gap(act, (a, b, c), WHAT)?;
            let sigma = (gap / a).sqrt();
            let z = (c - a) * *theta / (a * sigma);
            let density_u =
                (-(a * 2.0).recip() * (theta * theta)).exp() * FRAC_1_SQRT_2PI / a.sqrt();
            Ok(density_u * (z.norm_cdf() * *theta / a - c / (a * sigma) * z.norm_pdf()))
        }
        Activation::Tanh | Activation::Custom(_) => Err(no_closed_form(act, WHAT)),
    }
}

/// $\langle\phi'(u)^2+\phi(u)\phi''(u)\rangle=\frac{d}{dq}\langle\phi(u)^2\rangle$ for $u\sim\mathcal N(0,q)$.
pub fn diagonal_derivative_expectation<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    q: D,
) -> Result<D, PairError> {
    check_covariance(&q, &q, &q)?;
    match act {
        Activation::Linear => Ok(D::one()),
        Activation::Erf { s } => {
            let s2 = s * s;
            Ok(((q * (2.0 * s2) + 1.0) * (q * (4.0 * s2) + 1.0).sqrt()).recip() * (4.0 * s2 / PI))
        }
        Activation::Relu => Ok(D::from(0.5)),
        Activation::Sign => Ok(D::zero()),
        Activation::Step { theta } => Ok(if q.re() > 0.0 {
            let root = q.sqrt();
            (root.recip() * *theta).norm_pdf() * *theta / (q * root * 2.0)
        } else {
            D::zero()
        }),
        Activation::Tanh | Activation::Custom(_) => {
            Err(no_closed_form(act, "<phi'(u)^2 + phi(u) phi''(u)>"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::monte_carlo::pair_expectation_mc;
    use crate::numeric::pair::tests::closed_form_activations;
    use crate::numeric::pair::{diagonal_expectation, pair_expectation};
    use crate::numeric::quad::GaussHermite;
    use crate::numeric::tanh_sinh::integrate;
    use num_dual::Dual64;

    const INTERIOR: [(f64, f64, f64); 5] = [
        (1.0, 1.5, 0.6),
        (0.7, 2.0, -1.1),
        (1.0, 1.0, 0.95),
        (2.5, 0.4, 0.0),
        (0.3, 0.3, -0.29),
    ];

    /// $\partial K/\partial(a,b,c)$ by num-dual through the closed form of $K$.
    fn kernel_gradient(act: &Activation, (a, b, c): (f64, f64, f64)) -> [f64; 3] {
        let d = |x: f64, on: bool| Dual64::new(x, if on { 1.0 } else { 0.0 });
        let k = |i: usize| {
            pair_expectation(act, d(a, i == 0), d(b, i == 1), d(c, i == 2))
                .unwrap()
                .eps
        };
        [k(0), k(1), k(2)]
    }

    #[test]
    fn price_theorem_against_autodiff_of_the_kernel() {
        let mut worst = 0.0f64;
        for act in closed_form_activations() {
            for &(a, b, c) in &INTERIOR {
                let [da, db, dc] = kernel_gradient(&act, (a, b, c));
                let checks = [
                    (dc, pair_derivative_expectation(&act, a, b, c).unwrap()),
                    (
                        2.0 * da,
                        pair_second_derivative_expectation(&act, a, b, c).unwrap(),
                    ),
                    (
                        2.0 * db,
                        pair_second_derivative_expectation(&act, b, a, c).unwrap(),
                    ),
                ];
                for (auto, closed) in checks {
                    worst = worst.max((auto - closed).abs());
                    assert!(
                        (auto - closed).abs() < 1e-10,
                        "{} {:?}: {auto} vs {closed}",
                        act.name(),
                        (a, b, c)
                    );
                }
            }
            for q in [0.2, 1.0, 3.1] {
                let auto = diagonal_expectation(&act, Dual64::new(q, 1.0)).unwrap().eps;
                let closed = diagonal_derivative_expectation(&act, q).unwrap();
                assert!((auto - closed).abs() < 1e-13, "{} q={q}", act.name());
            }
        }
        eprintln!("Price identities: max abs error {worst:e}");
    }

    #[test]
    fn smooth_closed_forms_match_gauss_hermite() {
        let gh = GaussHermite::new(96).unwrap();
        // The diagonal integrand phi'(u)^2 ~ exp(-4 s^2 q x^2) is narrow at large q: more nodes.
        let gh_1d = GaussHermite::new(400).unwrap();
        for act in [
            Activation::Erf { s: 1.0 },
            Activation::unit_slope_erf(),
            Activation::Erf { s: 0.3 },
        ] {
            let d1 = |x: f64| act.derivative(x);
            let d2 = |x: f64| act.second_derivative(x);
            for &(a, b, c) in &INTERIOR {
                let quad = gh.expect_2d(d1, d1, a, b, c).unwrap();
                assert!((pair_derivative_expectation(&act, a, b, c).unwrap() - quad).abs() < 1e-12);
                let quad = gh.expect_2d(d2, |v| act.value(v), a, b, c).unwrap();
                assert!(
                    (pair_second_derivative_expectation(&act, a, b, c).unwrap() - quad).abs()
                        < 1e-12
                );
            }
            for q in [0.0, 0.4, 2.0] {
                let quad = gh_1d
                    .expect_1d(|u: f64| d1(u) * d1(u) + act.value(u) * d2(u), q)
                    .unwrap();
                assert!((diagonal_derivative_expectation(&act, q).unwrap() - quad).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn pointwise_derivative_forms_match_monte_carlo() {
        // Wherever phi' and phi'' are ordinary functions the closed forms are plain expectations.
        let erf = Activation::unit_slope_erf();
        let relu_slope = |x: f64| Activation::Relu.derivative(x);
        for (i, &cov) in INTERIOR.iter().enumerate() {
            let (a, b, c) = cov;
            let seed = 40 + 3 * i as u64;
            let relu = pair_derivative_expectation(&Activation::Relu, a, b, c).unwrap();
            let mc = pair_expectation_mc(relu_slope, relu_slope, cov, 100_000, seed).unwrap();
            assert!(mc.z_score(relu) < 4.0, "relu {cov:?}: {relu} vs {mc:?}");
            let slope = pair_derivative_expectation(&erf, a, b, c).unwrap();
            let d1 = |x: f64| erf.derivative(x);
            let mc = pair_expectation_mc(d1, d1, cov, 100_000, seed + 1).unwrap();
            assert!(mc.z_score(slope) < 4.0, "erf {cov:?}: {slope} vs {mc:?}");
            let curvature = pair_second_derivative_expectation(&erf, a, b, c).unwrap();
            let d2 = |x: f64| erf.second_derivative(x);
            let mc = pair_expectation_mc(d2, |v| erf.value(v), cov, 100_000, seed + 2).unwrap();
            assert!(
                mc.z_score(curvature) < 4.0,
                "erf {cov:?}: {curvature} vs {mc:?}"
            );
        }
    }

    #[test]
    fn relu_slope_kernel_matches_one_dimensional_integration() {
        // <H(u) H(v)> = int_0^inf phi(z) Phi(mu(z) / sigma) dz with v | u ~ N(c u / a, b - c^2 / a).
        for &(a, b, c) in &INTERIOR {
            let sigma = (b - c * c / a).sqrt();
            let f = |z: f64| ErfDual::norm_pdf(&z) * ErfDual::norm_cdf(&(c / a.sqrt() * z / sigma));
            let want = integrate(f, 0.0, 40.0, 1e-15).unwrap().value;
            let got = pair_derivative_expectation(&Activation::Relu, a, b, c).unwrap();
            assert!(
                (got - want).abs() < 1e-14,
                "{:?}: {got} vs {want}",
                (a, b, c)
            );
        }
    }

    #[test]
    fn edge_of_chaos_slope_and_boundary_behaviour() {
        // Unit-slope erf: <phi'^2> at the diagonal is 1/sqrt(1 + pi q) (THEORY.md §2).
        let erf = Activation::unit_slope_erf();
        for q in [0.0, 0.34, 1.6] {
            let slope = pair_derivative_expectation(&erf, q, q, q).unwrap();
            assert!((slope - 1.0 / (1.0 + PI * q).sqrt()).abs() < 1e-15);
        }
        // ReLU at c^2 = ab: one-sided values; sign / step diverge.
        assert_eq!(
            pair_derivative_expectation(&Activation::Relu, 2.0, 2.0, 2.0),
            Ok(0.5)
        );
        assert_eq!(
            pair_second_derivative_expectation(&Activation::Relu, 2.0, 2.0, 2.0),
            Ok(0.0)
        );
        for act in [Activation::Sign, Activation::Step { theta: 0.3 }] {
            assert!(matches!(
                pair_derivative_expectation(&act, 1.0, 1.0, 1.0),
                Err(PairError::Divergent { .. })
            ));
            assert!(matches!(
                pair_second_derivative_expectation(&act, 1.0, 1.0, -1.0),
                Err(PairError::Divergent { .. })
            ));
        }
        assert!(matches!(
            diagonal_derivative_expectation(&Activation::Tanh, 1.0),
            Err(PairError::NoClosedForm { .. })
        ));
        assert!(pair_derivative_expectation(&erf, 1.0, -1.0, 0.0).is_err());
    }
}
