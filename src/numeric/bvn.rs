//! Bivariate standard normal CDF $\Phi_2(h,k;\rho)=P(X<h,\,Y<k)$ for $(X,Y)$ standard normal
//! with correlation $\rho$ (THEORY.md §2 threshold row, §7.1–7.2).
//!
//! Algorithm: Drezner & Wesolowsky (1989) as refined for double precision by A. Genz (BVNU).
//! With upper limits $P(X>h,Y>k)$:
//! * $|\rho|<0.925$: $\;\Phi(-h)\Phi(-k)+\frac1{2\pi}\int_0^{\arcsin\rho}
//!   \exp\!\big(\frac{hk\sin\theta-(h^2+k^2)/2}{\cos^2\theta}\big)d\theta$ by 6-, 12- or 20-point
//!   Gauss–Legendre (by $|\rho|$);
//! * $|\rho|\ge0.925$: $\Phi(-\max(h,k))$ minus an integral over $\sqrt{1-\rho^2}$ whose leading
//!   Taylor terms are integrated analytically and the remainder by Gauss–Legendre; $\rho<0$ by
//!   reflection $k\to-k$.
//!
//! Accuracy about $10^{-15}$ absolute. Written once, generic over `D: DualNum<f64>`: branch
//! choices use real parts and every operation (exp, sqrt, asin, sin, $\Phi$) propagates
//! derivatives, e.g. Plackett's identity $\partial_\rho\Phi_2=\varphi_2(h,k;\rho)$.

use crate::numeric::special::ErfDual;
use num_dual::DualNum;
use std::f64::consts::TAU;

/// Positive Gauss–Legendre nodes and weights on $[-1,1]$ for 6, 12 and 20 points.
const LEGENDRE_6: [(f64, f64); 3] = [
    (0.932_469_514_203_152_2, 0.171_324_492_379_170_5),
    (0.661_209_386_466_264_7, 0.360_761_573_048_138_4),
    (0.238_619_186_083_197, 0.467_913_934_572_690_4),
];
const LEGENDRE_12: [(f64, f64); 6] = [
    (0.981_560_634_246_719_1, 0.047_175_336_386_511_77),
    (0.904_117_256_370_475, 0.106_939_325_995_318_3),
    (0.769_902_674_194_305, 0.160_078_328_543_346_4),
    (0.587_317_954_286_617_1, 0.203_167_426_723_065_9),
    (0.367_831_498_998_180_2, 0.233_492_536_538_354_7),
    (0.125_233_408_511_469_2, 0.249_147_045_813_402_9),
];
const LEGENDRE_20: [(f64, f64); 10] = [
    (0.993_128_599_185_094_9, 0.017_614_007_139_152_12),
    (0.963_971_927_277_913_8, 0.040_601_429_800_386_94),
    (0.912_234_428_251_326, 0.062_672_048_334_109_06),
    (0.839_116_971_822_218_8, 0.083_276_741_576_704_75),
    (0.746_331_906_460_150_8, 0.101_930_119_817_240_4),
    (0.636_053_680_726_515, 0.118_194_531_961_518_4),
    (0.510_867_001_950_827_1, 0.131_688_638_449_176_6),
    (0.373_706_088_715_419_6, 0.142_096_109_318_382_1),
    (0.227_785_851_141_645_1, 0.149_172_986_472_603_7),
    (0.076_526_521_133_497_33, 0.152_753_387_130_725_9),
];

/// Exponents below this are dropped (their terms are below $e^{-100}$).
const EXP_CUTOFF: f64 = -100.0;

/// Invalid arguments of [`bvn_cdf`] / [`bvn_pdf`].
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum BvnError {
    /// The correlation is NaN or outside $[-1,1]$ (open interval for the density).
    #[error("correlation must lie in [-1, 1] (open for the density), got {rho}")]
    InvalidCorrelation {
        /// The correlation passed.
        rho: f64,
    },
    /// A limit is NaN.
    #[error("integration limits must not be NaN, got h = {h}, k = {k}")]
    NanLimit {
        /// First limit.
        h: f64,
        /// Second limit.
        k: f64,
    },
}

/// $\Phi_2(h,k;\rho)=P(X<h,\,Y<k)$; $h,k=\pm\infty$ allowed, $\rho\in[-1,1]$.
pub fn bvn_cdf<D: DualNum<Primitive = f64> + Copy>(h: D, k: D, rho: D) -> Result<D, BvnError> {
    let (hr, kr, r) = (h.re(), k.re(), rho.re());
    if hr.is_nan() || kr.is_nan() {
        return Err(BvnError::NanLimit { h: hr, k: kr });
    }
    if !(-1.0..=1.0).contains(&r) {
        return Err(BvnError::InvalidCorrelation { rho: r });
    }
    if hr == f64::NEG_INFINITY || kr == f64::NEG_INFINITY {
        return Ok(D::zero());
    }
    if hr == f64::INFINITY {
        return Ok(k.norm_cdf());
    }
    if kr == f64::INFINITY {
        return Ok(h.norm_cdf());
    }
    let upper = upper_orthant(-h, -k, rho);
    // Rounding can leave the sum a few ulps outside [0, 1].
    Ok(if upper.re() < 0.0 {
        D::zero()
    } else if upper.re() > 1.0 {
        D::one()
    } else {
        upper
    })
}

/// Bivariate standard normal density
/// $\varphi_2(h,k;\rho)=\frac{1}{2\pi\sqrt{1-\rho^2}}\exp\!\big(-\frac{h^2-2\rho hk+k^2}{2(1-\rho^2)}\big)$,
/// $|\rho|<1$.
pub fn bvn_pdf<D: DualNum<Primitive = f64> + Copy>(h: D, k: D, rho: D) -> Result<D, BvnError> {
    let r = rho.re();
    if !(r > -1.0 && r < 1.0) {
        return Err(BvnError::InvalidCorrelation { rho: r });
    }
    if h.re().is_nan() || k.re().is_nan() {
        return Err(BvnError::NanLimit {
            h: h.re(),
            k: k.re(),
        });
    }
    let one_minus = (D::one() - rho) * (D::one() + rho);
    let quadratic = h * h - rho * h * k * 2.0 + k * k;
    Ok((-quadratic / (one_minus * 2.0)).exp() / (one_minus.sqrt() * TAU))
}

/// Gauss–Legendre half rule used for a given $|\rho|$.
fn legendre_rule(abs_rho: f64) -> &'static [(f64, f64)] {
    if abs_rho < 0.3 {
        &LEGENDRE_6
    } else if abs_rho < 0.75 {
        &LEGENDRE_12
    } else {
        &LEGENDRE_20
    }
}

/// $P(X>h,\,Y>k)$ for finite $h,k$ and $\rho\in[-1,1]$ (Genz's BVNU).
fn upper_orthant<D: DualNum<Primitive = f64> + Copy>(h: D, k: D, rho: D) -> D {
    let rule = legendre_rule(rho.re().abs());
    if rho.re().abs() < 0.925 {
        let half_sum_squares = (h * h + k * k) * 0.5;
        let hk = h * k;
        let arcsin_rho = rho.asin();
        let mut integral = D::zero();
        for &(node, weight) in rule {
            for t in [1.0 - node, 1.0 + node] {
                let sin_theta = (arcsin_rho * (0.5 * t)).sin();
                let exponent =
                    (sin_theta * hk - half_sum_squares) / (D::one() - sin_theta * sin_theta);
                integral += exponent.exp() * weight;
            }
        }
        return integral * arcsin_rho / (2.0 * TAU) + (-h).norm_cdf() * (-k).norm_cdf();
    }
    let negative = rho.re() < 0.0;
    let k = if negative { -k } else { k };
    let hk = h * k;
    // Consistent one-sided choice for max(h, k) and |h - k| keeps derivatives right at h = k.
    let (max_hk, distance) = if h.re() >= k.re() {
        (h, h - k)
    } else {
        (k, k - h)
    };
    let mut correction = D::zero();
    if rho.re().abs() < 1.0 {
        let one_minus = (D::one() - rho) * (D::one() + rho);
        let root = one_minus.sqrt();
        let distance_sq = distance * distance;
        let c = (-hk + 4.0) / 8.0;
        let d = (-hk + 12.0) / 16.0;
        let exponent = -(distance_sq / one_minus + hk) * 0.5;
        if exponent.re() > EXP_CUTOFF {
            let series = D::one()
                - c * (distance_sq - one_minus) * (D::one() - d * distance_sq / 5.0) / 3.0
                + c * d * one_minus * one_minus / 5.0;
            correction = root * exponent.exp() * series;
        }
        if hk.re() > EXP_CUTOFF {
            let tail = (-distance / root).norm_cdf() * TAU.sqrt();
            let series = D::one() - c * distance_sq * (D::one() - d * distance_sq / 5.0) / 3.0;
            correction -= (-hk * 0.5).exp() * tail * distance * series;
        }
        let half_root = root * 0.5;
        for &(node, weight) in rule {
            for sign in [-1.0, 1.0] {
                let x = half_root * (1.0 + sign * node);
                let xs = x * x;
                let exponent = -(distance_sq / xs + hk) * 0.5;
                if exponent.re() > EXP_CUTOFF {
                    let rs = (D::one() - xs).sqrt();
                    let taylor = D::one() + c * xs * (D::one() + d * xs);
                    let exact = (-hk * (D::one() - rs) / ((D::one() + rs) * 2.0)).exp() / rs;
                    correction += half_root * weight * exponent.exp() * (exact - taylor);
                }
            }
        }
        correction = -correction / TAU;
    }
    if negative {
        let band = (-h).norm_cdf() - (-k).norm_cdf();
        -correction + if band.re() > 0.0 { band } else { D::zero() }
    } else {
        correction + (-max_hk).norm_cdf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::tanh_sinh::integrate;
    use num_dual::{Dual64, DualNum};
    use std::f64::consts::FRAC_1_SQRT_2;

    const LIMITS: [f64; 9] = [-5.0, -2.3, -1.0, -0.4, 0.0, 0.35, 1.2, 2.7, 4.5];
    const RHOS: [f64; 13] = [
        -0.999, -0.95, -0.93, -0.8, -0.5, -0.1, 0.0, 0.2, 0.6, 0.92, 0.93, 0.99, 0.9999,
    ];

    fn phi(x: f64) -> f64 {
        ErfDual::norm_cdf(&x)
    }

    /// $\int_{-\infty}^h \varphi(x)\Phi((k-\rho x)/\sqrt{1-\rho^2})dx$ by tanh–sinh, split where
    /// the inner CDF switches.
    fn by_integration(h: f64, k: f64, rho: f64) -> f64 {
        let s = (1.0 - rho * rho).sqrt();
        let f = |x: f64| ErfDual::norm_pdf(&x) * phi((k - rho * x) / s);
        let lo = -40.0f64;
        let mut cuts = vec![lo];
        if rho != 0.0 {
            let switch = k / rho;
            for offset in [-8.0 * s, 0.0, 8.0 * s] {
                let cut = switch + offset / rho.abs();
                if cut > lo && cut < h {
                    cuts.push(cut);
                }
            }
        }
        cuts.sort_by(f64::total_cmp);
        cuts.push(h);
        cuts.windows(2)
            .map(|w| integrate(f, w[0], w[1], 1e-15).unwrap().value)
            .sum()
    }

    #[test]
    fn legendre_rules_integrate_polynomials_exactly() {
        for rule in [&LEGENDRE_6[..], &LEGENDRE_12[..], &LEGENDRE_20[..]] {
            for m in 0..rule.len() * 2 {
                let sum: f64 = rule
                    .iter()
                    .map(|(x, w)| 2.0 * w * x.powi(2 * m as i32))
                    .sum();
                assert!(
                    (sum - 2.0 / (2 * m + 1) as f64).abs() < 4e-15,
                    "n={} m={m}",
                    rule.len()
                );
            }
        }
    }

    #[test]
    fn agrees_with_one_dimensional_integration() {
        let mut worst = 0.0f64;
        for &h in &LIMITS {
            for &k in &LIMITS {
                for &rho in &RHOS {
                    let got = bvn_cdf(h, k, rho).unwrap();
                    let want = by_integration(h, k, rho);
                    worst = worst.max((got - want).abs());
                    assert!(
                        (got - want).abs() < 1e-12,
                        "h={h} k={k} rho={rho}: {got} vs {want}"
                    );
                }
            }
        }
        eprintln!("bvn vs integration: max abs error {worst:e}");
    }

    #[test]
    fn plackett_and_h_derivative_identities() {
        let (mut worst_rho, mut worst_h) = (0.0f64, 0.0f64);
        for &h in &LIMITS {
            for &k in &LIMITS {
                for &rho in &RHOS {
                    let d_rho =
                        bvn_cdf(Dual64::from(h), Dual64::from(k), Dual64::new(rho, 1.0)).unwrap();
                    let density = bvn_pdf(h, k, rho).unwrap();
                    let d_h =
                        bvn_cdf(Dual64::new(h, 1.0), Dual64::from(k), Dual64::from(rho)).unwrap();
                    let conditional =
                        ErfDual::norm_pdf(&h) * phi((k - rho * h) / (1.0 - rho * rho).sqrt());
                    worst_rho = worst_rho.max((d_rho.eps - density).abs());
                    worst_h = worst_h.max((d_h.eps - conditional).abs());
                    assert!((d_rho.eps - density).abs() < 1e-10, "h={h} k={k} rho={rho}");
                    assert!(
                        (d_h.eps - conditional).abs() < 1e-12,
                        "h={h} k={k} rho={rho}"
                    );
                }
            }
        }
        eprintln!("bvn Plackett max abs error {worst_rho:e}, d/dh max abs error {worst_h:e}");
    }

    #[test]
    fn theory_t2b_and_t2c() {
        // T2b: Phi_2(-t, -t; rho), a = b = 1.
        let t2b = [
            (0.5, [0.09519541, 0.16331952, 0.24532589]),
            (1.0, [0.02517149, 0.06251409, 0.11549034]),
        ];
        for (t, row) in t2b {
            for (rho, want) in [0.0, 0.5, 0.9].into_iter().zip(row) {
                let got: f64 = bvn_cdf(-t, -t, rho).unwrap();
                assert!(
                    (got - want).abs() < 6e-9,
                    "t={t} rho={rho}: {got} vs {want}"
                );
            }
        }
        // T2c: d/d rho Phi_2(-t, -t; rho) at t = 0.7, rho = 0.4.
        let t = Dual64::from(-0.7);
        let slope = bvn_cdf(t, t, Dual64::new(0.4, 1.0)).unwrap().eps;
        assert!((slope - 0.1223706931).abs() < 1e-10, "{slope}");
        let closed = (-0.49f64 / 1.4).exp() / (TAU * (1.0f64 - 0.16).sqrt());
        assert!((slope - closed).abs() < 1e-13);
    }

    #[test]
    fn special_cases() {
        for &h in &LIMITS {
            for &k in &LIMITS {
                let independent = bvn_cdf(h, k, 0.0).unwrap();
                assert!((independent - phi(h) * phi(k)).abs() < 1e-16);
                assert!((bvn_cdf(h, k, 1.0).unwrap() - phi(h.min(k))).abs() < 1e-16);
                let anti = (phi(h) + phi(k) - 1.0).max(0.0);
                assert!((bvn_cdf(h, k, -1.0).unwrap() - anti).abs() < 1e-15);
            }
            assert_eq!(bvn_cdf(h, f64::INFINITY, 0.3).unwrap(), phi(h));
            assert_eq!(bvn_cdf(f64::NEG_INFINITY, h, 0.3).unwrap(), 0.0);
        }
        for &rho in &RHOS {
            let orthant = 0.25 + rho.asin() / TAU;
            assert!(
                (bvn_cdf(0.0, 0.0, rho).unwrap() - orthant).abs() < 1e-15,
                "rho={rho}"
            );
        }
        assert!((bvn_cdf(0.0, 0.0, FRAC_1_SQRT_2).unwrap() - 0.375).abs() < 1e-15);
    }

    #[test]
    fn invalid_input_is_an_error() {
        assert!(matches!(
            bvn_cdf(0.0, 0.0, 1.5),
            Err(BvnError::InvalidCorrelation { .. })
        ));
        assert!(matches!(
            bvn_cdf(0.0, 0.0, f64::NAN),
            Err(BvnError::InvalidCorrelation { .. })
        ));
        assert!(matches!(
            bvn_cdf(f64::NAN, 0.0, 0.2),
            Err(BvnError::NanLimit { .. })
        ));
        assert!(matches!(
            bvn_pdf(0.0, 0.0, 1.0),
            Err(BvnError::InvalidCorrelation { .. })
        ));
    }
}
