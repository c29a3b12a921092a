//! Pair expectations for every activation: the closed forms of [`crate::numeric::pair`] where
//! they exist (linear, erf, ReLU, sign, step), else Gauss–Hermite quadrature (tanh, custom)
//! with the nodes of a prebuilt [`GaussHermite`]:
//! $$K_\phi(a,b,c)\approx\frac1\pi\sum_{ij}w_iw_j\,\phi(\sqrt2L_{11}x_i)\,\phi(\sqrt2(L_{21}x_i+L_{22}x_j)),
//! \qquad\langle\phi(u)^2\rangle\approx\frac1{\sqrt\pi}\sum_iw_i\,\phi(\sqrt{2q}\,x_i)^2.$$
//! The quadrature nodes carry the dual parts of $(a,b,c)$, so num-dual derivatives of the
//! result are derivatives of the quadrature rule (exponentially accurate for smooth $\phi$).

use crate::numeric::activation::Activation;
use crate::numeric::pair::{PairError, diagonal_expectation, pair_expectation};
use crate::numeric::quad::GaussHermite;
use num_dual::DualNum;

/// [`pair_expectation`] where a closed form exists, else Gauss–Hermite with the nodes of `gh`
/// (derivatives flow through the nodes; see [`GaussHermite::expect_2d`]).
pub fn pair_expectation_or_quadrature<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    a: D,
    b: D,
    c: D,
    gh: &GaussHermite,
) -> Result<D, PairError> {
    match pair_expectation(act, a, b, c) {
        Err(PairError::NoClosedForm { .. }) => {
            act.eval_dual(&a, 0)?;
            let phi = |x: D| act.eval_dual(&x, 0).unwrap_or_else(|_| D::from(f64::NAN));
            Ok(gh.expect_2d(phi, phi, a, b, c)?)
        }
        other => other,
    }
}

/// [`diagonal_expectation`] where a closed form exists, else Gauss–Hermite.
pub fn diagonal_expectation_or_quadrature<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    q: D,
    gh: &GaussHermite,
) -> Result<D, PairError> {
    match diagonal_expectation(act, q) {
        Err(PairError::NoClosedForm { .. }) => {
            act.eval_dual(&q, 0)?;
            let phi2 = |x: D| act.eval_dual(&x, 0).map_or(D::from(f64::NAN), |y| y * y);
            Ok(gh.expect_1d(phi2, q)?)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::activation::CustomActivation;
    use crate::numeric::monte_carlo::pair_expectation_mc;
    use num_dual::{Dual3_64, Dual64};

    fn softplus() -> Activation {
        Activation::Custom(CustomActivation::new("softplus", |x: f64| {
            let sigmoid = 1.0 / (1.0 + (-x).exp());
            [x.exp().ln_1p(), sigmoid, sigmoid * (1.0 - sigmoid)]
        }))
    }

    #[test]
    fn tanh_and_custom_by_quadrature_match_monte_carlo() {
        let gh = GaussHermite::new(64).unwrap();
        let cov = (1.0, 1.5, 0.6);
        for (i, act) in [Activation::Tanh, softplus()].iter().enumerate() {
            let quad: f64 = pair_expectation_or_quadrature(act, cov.0, cov.1, cov.2, &gh).unwrap();
            let phi = |x: f64| act.value(x);
            let mc = pair_expectation_mc(phi, phi, cov, 200_000, 60 + i as u64).unwrap();
            assert!(mc.z_score(quad) < 4.0, "{}: {quad} vs {mc:?}", act.name());
            let diag: f64 = diagonal_expectation_or_quadrature(act, 1.2, &gh).unwrap();
            let as_pair: f64 = pair_expectation_or_quadrature(act, 1.2, 1.2, 1.2, &gh).unwrap();
            assert!((diag - as_pair).abs() < 1e-13, "{}", act.name());
        }
    }

    #[test]
    fn closed_forms_pass_through_and_derivatives_flow() {
        let gh = GaussHermite::new(64).unwrap();
        let erf = Activation::Erf { s: 1.0 };
        assert_eq!(
            pair_expectation_or_quadrature(&erf, 1.0, 1.5, 0.6, &gh),
            pair_expectation(&erf, 1.0, 1.5, 0.6)
        );
        // Price for the custom function through the lifted jet: dK/dc = <phi' phi'>.
        let act = softplus();
        let (a, b, c) = (0.9, 1.4, 0.3);
        let k = pair_expectation_or_quadrature(&act, a.into(), b.into(), Dual64::new(c, 1.0), &gh);
        let slope = |x: f64| act.derivative(x);
        let price = gh.expect_2d(slope, slope, a, b, c).unwrap();
        assert!((k.unwrap().eps - price).abs() < 1e-12);
        // Third-order duals need the third derivative, which a custom jet does not provide.
        let third = Dual3_64::from(c);
        assert!(matches!(
            pair_expectation_or_quadrature(&act, a.into(), b.into(), third, &gh),
            Err(PairError::DerivativeOrder(_))
        ));
        assert!(diagonal_expectation_or_quadrature(&Activation::Tanh, -1.0, &gh).is_err());
    }
}
