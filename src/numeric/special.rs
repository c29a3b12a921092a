//! Error function and standard normal distribution for every num-dual number type.
//!
//! The value at the real part $x_0$ comes from `libm` ($\operatorname{erf}$, $\operatorname{erfc}$
//! to about one ulp). The derivative parts are attached by a truncated Taylor series in the
//! nilpotent part $\delta = x - x_0$ of the dual number,
//! $$f(x_0+\delta)=\sum_{k=0}^{K}\frac{f^{(k)}(x_0)}{k!}\,\delta^k,\qquad \delta^{K+1}=0,\quad K=\texttt{D::NDERIV},$$
//! which is exact for every dual type (first, second and third order, vector and nested types).
//! num-dual's own `chain_rule` is private to each type, so this is the generic route.
//! The higher derivatives are closed forms in Hermite polynomials:
//! $$\operatorname{erf}^{(k)}(x)=\tfrac{2}{\sqrt\pi}(-1)^{k-1}H_{k-1}(x)\,e^{-x^2},\qquad
//! \Phi^{(k)}(x)=(-1)^{k-1}\mathrm{He}_{k-1}(x)\,\varphi(x),$$
//! with $H_{n+1}=2xH_n-2nH_{n-1}$ (physicists') and $\mathrm{He}_{n+1}=x\,\mathrm{He}_n-n\,\mathrm{He}_{n-1}$
//! (probabilists'). $\Phi(x)=\tfrac12\operatorname{erfc}(-x/\sqrt2)$ keeps full relative accuracy in
//! the lower tail.

use num_dual::DualNum;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

/// $1/\sqrt{2\pi}$.
pub const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// `erf`, `erfc`, $\Phi$ and $\varphi$ for every dual number type with `f64` primitive
/// (`f64`, `Dual64`, `Dual2_64`, `HyperDual64`, `Dual3_64`, `DualSVec64`, `DualDVec64`,
/// `HyperDualDVec64`, nested types, …).
///
/// On a concrete `f64` call the trait explicitly (`ErfDual::erf(&x)`): the standard library has
/// an unstable inherent `f64::erf`, and method syntax triggers the `unstable_name_collisions`
/// lint. Inside code generic over `D: DualNum` plain method syntax is fine.
pub trait ErfDual: DualNum<Primitive = f64> {
    /// Error function $\operatorname{erf}(x)=\frac{2}{\sqrt\pi}\int_0^x e^{-t^2}dt$.
    fn erf(&self) -> Self;
    /// Complementary error function $1-\operatorname{erf}(x)$, accurate for large $x$.
    fn erfc(&self) -> Self;
    /// Standard normal CDF $\Phi(x)=\tfrac12\operatorname{erfc}(-x/\sqrt2)$.
    fn norm_cdf(&self) -> Self;
    /// Standard normal density $\varphi(x)=e^{-x^2/2}/\sqrt{2\pi}$.
    fn norm_pdf(&self) -> Self;
}

impl<D: DualNum<Primitive = f64>> ErfDual for D {
    fn erf(&self) -> Self {
        let x0 = self.re();
        lift_with_derivatives(self, libm::erf(x0), erf_derivatives(x0, 1.0))
    }

    fn erfc(&self) -> Self {
        let x0 = self.re();
        lift_with_derivatives(self, libm::erfc(x0), erf_derivatives(x0, -1.0))
    }

    fn norm_cdf(&self) -> Self {
        let x0 = self.re();
        let value = 0.5 * libm::erfc(-x0 * FRAC_1_SQRT_2);
        lift_with_derivatives(self, value, norm_cdf_derivatives(x0))
    }

    fn norm_pdf(&self) -> Self {
        let half_square = self.clone() * self.clone() * 0.5;
        (-half_square).exp() * FRAC_1_SQRT_2PI
    }
}

/// Applies a scalar function to a dual number given its value and derivatives at the real part.
///
/// `derivatives` yields $f'(x_0), f''(x_0), \dots$ in order; only the first `D::NDERIV` items are
/// consumed, so an iterator of at least that length makes the result exact to every order the
/// type carries. A shorter iterator truncates the series: the missing orders are taken as zero.
pub fn lift_with_derivatives<D, I>(x: &D, value: f64, derivatives: I) -> D
where
    D: DualNum<Primitive = f64>,
    I: IntoIterator<Item = f64>,
{
    let mut result = D::from(value);
    if D::NDERIV == 0 {
        return result;
    }
    let delta = x.clone() - x.re();
    let mut power = delta.clone();
    let mut factorial = 1.0;
    for (order, derivative) in (1..=D::NDERIV).zip(derivatives) {
        factorial *= order as f64;
        result += power.clone() * (derivative / factorial);
        if order < D::NDERIV {
            power *= delta.clone();
        }
    }
    result
}

/// $\operatorname{sign}\cdot\operatorname{erf}^{(k)}(x)$ for $k=1,2,\dots$ (`sign = -1` gives erfc).
fn erf_derivatives(x: f64, sign: f64) -> impl Iterator<Item = f64> {
    let prefactor = sign * FRAC_2_SQRT_PI * (-x * x).exp();
    // (H_{n-1}, H_n) of the physicists' Hermite recurrence; erf^{(n+1)} = c (-1)^n H_n.
    let mut hermite = (0.0, 1.0);
    (0..).map(move |n: usize| {
        let sign_n = if n.is_multiple_of(2) { 1.0 } else { -1.0 };
        let term = prefactor * sign_n * hermite.1;
        let next = 2.0 * x * hermite.1 - 2.0 * n as f64 * hermite.0;
        hermite = (hermite.1, next);
        term
    })
}

/// $\Phi^{(k)}(x)$ for $k=1,2,\dots$.
fn norm_cdf_derivatives(x: f64) -> impl Iterator<Item = f64> {
    let density = FRAC_1_SQRT_2PI * (-0.5 * x * x).exp();
    // (He_{n-1}, He_n); Phi^{(n+1)} = (-1)^n He_n phi.
    let mut hermite = (0.0, 1.0);
    (0..).map(move |n: usize| {
        let sign_n = if n.is_multiple_of(2) { 1.0 } else { -1.0 };
        let term = density * sign_n * hermite.1;
        let next = x * hermite.1 - n as f64 * hermite.0;
        hermite = (hermite.1, next);
        term
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::tanh_sinh::integrate;
    use nalgebra::{DVector, SVector};
    use num_dual::{
        Dual, Dual2_64, Dual3_64, Dual64, DualNum, HyperDual64, HyperHyperDual64, gradient, hessian,
    };

    const POINTS: [f64; 9] = [-4.5, -2.0, -0.7, -0.1, 0.0, 0.3, 1.1, 2.5, 6.0];

    /// Derivatives $g^{(k)}(x)$, $k=0..2$, of $g = \operatorname{erf}'$ computed by num-dual's own
    /// `exp`, independent of the Hermite recurrence.
    fn erf_prime_by_num_dual(x: f64) -> [f64; 3] {
        let d = Dual2_64::from_re(x).derivative();
        let g = (-d * d).exp() * FRAC_2_SQRT_PI;
        [g.re, g.v1, g.v2]
    }

    #[test]
    fn erf_value_matches_direct_integration() {
        for &x in &POINTS {
            let integral = integrate(|t| FRAC_2_SQRT_PI * (-t * t).exp(), 0.0, x, 1e-15).unwrap();
            let got = ErfDual::erf(&x);
            assert!(
                (got - integral.value).abs() < 2e-15,
                "x={x}: {got} vs {}",
                integral.value
            );
            assert!((ErfDual::erfc(&x) - (1.0 - got)).abs() < 2e-16 + 1e-15 * got.abs());
        }
    }

    #[test]
    fn norm_cdf_is_integral_of_norm_pdf_with_tail_accuracy() {
        for &x in &POINTS {
            let lower = integrate(|t| ErfDual::norm_pdf(&t), -40.0, x, 1e-16).unwrap();
            assert!((ErfDual::norm_cdf(&x) - lower.value).abs() < 2e-15, "x={x}");
        }
        // Relative accuracy deep in the lower tail, where 1 - Phi(-x) would cancel.
        let x = -30.0;
        let tail = integrate(|t| ErfDual::norm_pdf(&t), -60.0, x, 1e-300).unwrap();
        assert!((ErfDual::norm_cdf(&x) / tail.value - 1.0).abs() < 1e-12);
    }

    #[test]
    fn third_order_types_agree_with_num_dual_exp() {
        for &x in &POINTS {
            let [g0, g1, g2] = erf_prime_by_num_dual(x);
            let d3 = Dual3_64::from_re(x).derivative().erf();
            for (got, want) in [(d3.v1, g0), (d3.v2, g1), (d3.v3, g2)] {
                assert!((got - want).abs() < 1e-14, "x={x}: {got} vs {want}");
            }
            let hh = HyperHyperDual64::new(x, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0).erf();
            assert!((hh.eps1eps2eps3 - g2).abs() < 1e-14);
            assert!((hh.eps1eps2 - g1).abs() < 1e-14 && (hh.eps3 - g0).abs() < 1e-14);
        }
    }

    #[test]
    fn second_order_and_nested_types_agree() {
        for &x in &POINTS {
            let [g0, g1, _] = erf_prime_by_num_dual(x);
            let d2 = Dual2_64::from_re(x).derivative().erf();
            assert!((d2.v1 - g0).abs() < 1e-15 && (d2.v2 - g1).abs() < 1e-14);
            let hd = HyperDual64::new(x, 1.0, 1.0, 0.0).erf();
            assert!((hd.eps1eps2 - g1).abs() < 1e-14);
            // Dual<Dual64>: second derivative through nesting (NDERIV = 2).
            let nested = Dual::new(Dual64::new(x, 1.0), Dual64::new(1.0, 0.0)).erf();
            assert!((nested.eps.eps - g1).abs() < 1e-14);
            let c = Dual64::from_re(x).derivative().erfc();
            assert!((c.eps + g0).abs() < 1e-15);
        }
    }

    #[test]
    fn norm_cdf_derivatives_are_norm_pdf_derivatives() {
        for &x in &POINTS {
            let cdf = Dual3_64::from_re(x).derivative().norm_cdf();
            let pdf = Dual2_64::from_re(x).derivative().norm_pdf();
            for (got, want) in [(cdf.v1, pdf.re), (cdf.v2, pdf.v1), (cdf.v3, pdf.v2)] {
                assert!((got - want).abs() < 1e-15, "x={x}: {got} vs {want}");
            }
            let [g0, ..] = erf_prime_by_num_dual(-x * FRAC_1_SQRT_2);
            assert!((pdf.re - 0.5 * FRAC_1_SQRT_2 * g0).abs() < 1e-16);
        }
    }

    #[test]
    fn gradients_and_hessians_of_vector_types() {
        // f(x, y) = erf(x y) + Phi(x - y); derivatives by hand from erf' and phi.
        fn f<D: DualNum<Primitive = f64> + Clone>(x: D, y: D) -> D {
            (x.clone() * y.clone()).erf() + (x - y).norm_cdf()
        }
        let (x, y) = (0.7, -1.3);
        let [e1, e2, _] = erf_prime_by_num_dual(x * y);
        let p = ErfDual::norm_pdf(&(x - y));
        let dp = -(x - y) * p;
        let grad_want = [e1 * y + p, e1 * x - p];
        let hess_want = [
            [e2 * y * y + dp, e2 * x * y + e1 - dp],
            [e2 * x * y + e1 - dp, e2 * x * x + dp],
        ];

        let (_, g) = gradient(|v| f(v[0], v[1]), &SVector::from([x, y]));
        let (_, gd) = gradient(
            |v| f(v[0].clone(), v[1].clone()),
            &DVector::from(vec![x, y]),
        );
        let (_, gh, h) = hessian(|v| f(v[0], v[1]), &SVector::from([x, y]));
        let (_, _, hd) = hessian(
            |v| f(v[0].clone(), v[1].clone()),
            &DVector::from(vec![x, y]),
        );
        for i in 0..2 {
            assert!((g[i] - grad_want[i]).abs() < 1e-15);
            assert!((gd[i] - grad_want[i]).abs() < 1e-15);
            assert!((gh[i] - grad_want[i]).abs() < 1e-15);
            for j in 0..2 {
                assert!((h[(i, j)] - hess_want[i][j]).abs() < 1e-14);
                assert!((hd[(i, j)] - hess_want[i][j]).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn nan_input_propagates_without_panic() {
        let d = Dual2_64::from_re(f64::NAN).derivative();
        assert!(d.erf().re.is_nan() && d.norm_cdf().v1.is_nan());
        assert!(
            ErfDual::erf(&f64::INFINITY) == 1.0 && ErfDual::norm_cdf(&f64::NEG_INFINITY) == 0.0
        );
    }
}
