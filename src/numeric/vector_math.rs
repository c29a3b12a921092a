//! Branch-free arcsine and arccosine on [-1, 1] for loops that the compiler vectorises, and
//! the run-time choice of instruction set those loops are compiled for.
//!
//! The approximations are fdlibm's (Sun, 1993; as in the `libm` crate): with
//! R(z) = z·P(z)/Q(z) the Remez fit of (asin √z − √z)/√z³ on [0, 1/4],
//! * |x| < 1/2: asin x = x + x·R(x²), acos x = π/2 − (x + x·R(x²));
//! * |x| ≥ 1/2: z = (1 − |x|)/2, s = √z: asin |x| = π/2 − 2(s + s·R(z)),
//!   acos x = 2(s + s·R(z)) for x > 0 and π − 2(s + s·R(z)) for x < 0,
//!
//! with π/2 split into a high and a low part. Both branches are evaluated and one is
//! selected, so a loop over these functions has no branch and compiles to SIMD code
//! (8 lanes on AVX-512). One division and one square root per call; error ≤ 2 ulp
//! (tested against the correctly rounded-or-nearly libm of the platform).
//!
//! Arguments must lie in [-1, 1] (callers clamp); outside, the result is meaningless.

use std::f64::consts::FRAC_PI_2;

/// High part of π/2 (the f64 nearest to it).
const PIO2_HI: f64 = FRAC_PI_2;
/// π/2 − `PIO2_HI`.
const PIO2_LO: f64 = 6.123_233_995_736_766e-17;
const P_S0: f64 = 1.666_666_666_666_666_6e-1;
const P_S1: f64 = -3.255_658_186_224_009e-1;
const P_S2: f64 = 2.012_125_321_348_629_3e-1;
const P_S3: f64 = -4.005_553_450_067_941e-2;
const P_S4: f64 = 7.915_349_942_898_145e-4;
const P_S5: f64 = 3.479_331_075_960_212e-5;
const Q_S1: f64 = -2.403_394_911_734_414;
const Q_S2: f64 = 2.020_945_760_233_505_7;
const Q_S3: f64 = -6.882_839_716_054_533e-1;
const Q_S4: f64 = 7.703_815_055_590_194e-2;

/// a·b + c, fused where the instruction set has FMA (a software `fma` would be slow).
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// R(z) = z·P(z)/Q(z) ≈ (asin √z − √z)/√z, z ∈ [0, 1/2].
#[inline(always)]
fn ratio<const FMA: bool>(z: f64) -> f64 {
    let p = madd::<FMA>(z, P_S5, P_S4);
    let p = madd::<FMA>(z, p, P_S3);
    let p = madd::<FMA>(z, p, P_S2);
    let p = madd::<FMA>(z, p, P_S1);
    let p = madd::<FMA>(z, p, P_S0);
    let q = madd::<FMA>(z, Q_S4, Q_S3);
    let q = madd::<FMA>(z, q, Q_S2);
    let q = madd::<FMA>(z, q, Q_S1);
    let q = madd::<FMA>(z, q, 1.0);
    z * p / q
}

/// The pieces both functions share: (|x| < 1/2, s, s·R(z)) with z = x² or (1 − |x|)/2.
#[inline(always)]
fn reduce<const FMA: bool>(x: f64) -> (bool, f64, f64) {
    let ax = x.abs();
    let small = ax < 0.5;
    let z = if small { ax * ax } else { (1.0 - ax) * 0.5 };
    let s = if small { ax } else { z.sqrt() };
    (small, s, s * ratio::<FMA>(z))
}

/// asin x for x ∈ [-1, 1] (see the module docs); branch-free.
#[inline(always)]
pub fn asin<const FMA: bool>(x: f64) -> f64 {
    let (small, s, sr) = reduce::<FMA>(x);
    let near = s + sr;
    // 2s is exact; rounding π/2 − 2s first keeps the error near |x| = 1/2 at ~1 ulp.
    let far = (PIO2_HI - 2.0 * s) - (2.0 * sr - PIO2_LO);
    (if small { near } else { far }).copysign(x)
}

/// acos x for x ∈ [-1, 1] (see the module docs); branch-free.
#[inline(always)]
pub fn acos<const FMA: bool>(x: f64) -> f64 {
    let (small, s, sr) = reduce::<FMA>(x);
    // For |x| < 1/2, s = |x| and s + sr = asin |x|.
    let asin_ax = (s + sr).copysign(x);
    let near = PIO2_HI - (asin_ax - PIO2_LO);
    let positive = 2.0 * (s + sr);
    let negative = 2.0 * ((PIO2_HI - s) - (sr - PIO2_LO));
    if small {
        near
    } else if x > 0.0 {
        positive
    } else {
        negative
    }
}

/// The instruction sets the hot loops are compiled for, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F/DQ/VL with FMA: 8 lanes.
    Avx512,
    /// AVX2 with FMA: 4 lanes.
    Avx2,
    /// Whatever the build target allows, without assuming FMA.
    Portable,
}

impl Isa {
    /// The best instruction set of this CPU.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Every instruction set this CPU can run (for tests and benches).
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|isa| isa.runs_here())
            .collect()
    }

    /// Whether this CPU can run code compiled for `self`.
    pub fn runs_here(self) -> bool {
        match (self, Isa::detect()) {
            (Isa::Portable, _) | (Isa::Avx2, Isa::Avx512) => true,
            (want, best) => want == best,
        }
    }
}

/// Defines `$name(isa, args…)`: the body `$generic::<FMA>(args…)` compiled once per
/// instruction set (with `#[target_feature]`, so that the inlined loop uses its vectors)
/// and chosen by `isa`. An `isa` this CPU cannot run falls back to the portable build.
macro_rules! dispatch_by_isa {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:ident) => {
        $(#[$meta])*
        $vis fn $name(isa: $crate::numeric::vector_math::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $generic::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $generic::<true>($($arg),*)
                }
                if isa.runs_here() {
                    match isa {
                        // SAFETY: `runs_here` checked that the CPU has these features.
                        $crate::numeric::vector_math::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                        // SAFETY: as above.
                        $crate::numeric::vector_math::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                        $crate::numeric::vector_math::Isa::Portable => {}
                    }
                }
            }
            let _ = isa;
            $generic::<false>($($arg),*)
        }
    };
}
pub(crate) use dispatch_by_isa;

#[inline(always)]
fn asin_into<const FMA: bool>(x: &[f64], out: &mut [f64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = asin::<FMA>(v);
    }
}

#[inline(always)]
fn acos_into<const FMA: bool>(x: &[f64], out: &mut [f64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = acos::<FMA>(v);
    }
}

dispatch_by_isa! {
    /// `out[i] = asin(x[i])` for x in [-1, 1], over the shorter of the two slices.
    pub fn asin_slice(x: &[f64], out: &mut [f64]) => asin_into
}

dispatch_by_isa! {
    /// `out[i] = acos(x[i])` for x in [-1, 1], over the shorter of the two slices.
    pub fn acos_slice(x: &[f64], out: &mut [f64]) => acos_into
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place (both finite, same sign or zero).
    fn ulps(a: f64, b: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        let ordered = |v: f64| {
            let bits = v.to_bits() as i64;
            if bits < 0 { i64::MIN - bits } else { bits }
        };
        (i128::from(ordered(a)) - i128::from(ordered(b))).unsigned_abs() as f64
    }

    /// Dense uniform sweep of [-1, 1], both endpoints, ±0, subnormals, tiny numbers,
    /// neighbours of ±1/2 and ±1, and a geometric approach to ±1.
    fn arguments() -> Vec<f64> {
        let n = 400_000;
        let mut x: Vec<f64> = (0..=n).map(|i| -1.0 + 2.0 * i as f64 / n as f64).collect();
        let mut specials = vec![
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            1e-310,
            -1e-310,
            1e-20,
            -1e-20,
            1.0,
            -1.0,
        ];
        for edge in [0.5f64, 1.0] {
            let mut v = edge;
            for _ in 0..50 {
                specials.extend([v, -v]);
                v = f64::from_bits(v.to_bits() - 1);
            }
            let mut v = 0.5f64;
            for _ in 0..50 {
                specials.extend([v, -v]);
                v = f64::from_bits(v.to_bits() + 1);
            }
        }
        for k in 1..60 {
            let v = 1.0 - 2f64.powi(-k);
            specials.extend([v, -v]);
        }
        x.append(&mut specials);
        x
    }

    fn worst(isa: Isa, f: fn(Isa, &[f64], &mut [f64]), reference: fn(f64) -> f64) -> (f64, f64) {
        let x = arguments();
        let mut out = vec![f64::NAN; x.len()];
        f(isa, &x, &mut out);
        x.iter()
            .zip(&out)
            .map(|(&v, &got)| (ulps(got, reference(v)), v))
            .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
    }

    #[test]
    fn asin_is_within_2_ulp_of_libm_on_every_instruction_set() {
        for isa in Isa::available() {
            let (err, at) = worst(isa, asin_slice, f64::asin);
            eprintln!("{isa:?}: worst {err} ulp at x = {at:e}");
            assert!(err <= 2.0, "{isa:?}: {err} ulp at x = {at:e}");
        }
    }

    #[test]
    fn acos_is_within_2_ulp_of_libm_on_every_instruction_set() {
        for isa in Isa::available() {
            let (err, at) = worst(isa, acos_slice, f64::acos);
            eprintln!("{isa:?}: worst {err} ulp at x = {at:e}");
            assert!(err <= 2.0, "{isa:?}: {err} ulp at x = {at:e}");
        }
    }

    #[test]
    fn exact_values_at_the_special_points() {
        for isa in Isa::available() {
            let x = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5];
            let mut s = [f64::NAN; 6];
            let mut c = [f64::NAN; 6];
            asin_slice(isa, &x, &mut s);
            acos_slice(isa, &x, &mut c);
            assert_eq!(s[0].to_bits(), 0.0f64.to_bits(), "{isa:?}: asin +0");
            assert_eq!(s[1].to_bits(), (-0.0f64).to_bits(), "{isa:?}: asin -0");
            assert_eq!(s[2], FRAC_PI_2, "{isa:?}");
            assert_eq!(s[3], -FRAC_PI_2, "{isa:?}");
            assert_eq!(c[2], 0.0, "{isa:?}");
            assert_eq!(c[3], std::f64::consts::PI, "{isa:?}");
            // asin(1/2) = π/6, acos(-1/2) = 2π/3.
            assert!(
                ulps(s[4], std::f64::consts::FRAC_PI_6) <= 1.0,
                "{isa:?}: {}",
                s[4]
            );
            assert!(
                ulps(c[5], 2.0 * std::f64::consts::FRAC_PI_3) <= 2.0,
                "{isa:?}: {}",
                c[5]
            );
        }
    }
}
