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
//!
//! The same for exp and erf, whose libm calls dominate the jets of φ on many samples:
//! * exp x = 2ᵏ·e^r, k = round(x/ln 2) (by the 1.5·2⁵² trick), r = x − k ln 2 in two parts
//!   (Cody–Waite, |r| ≤ ln 2/2), e^r by its Taylor polynomial of degree 13 (truncation
//!   < 4·10⁻¹⁸), 2ᵏ as two exact powers of two (so subnormal results round once);
//! * erf by fdlibm's four ranges (the rational fits of erf on |x| < 0.84375 and on
//!   [0.84375, 1.25), of erfc·x·e^{x²} on [1.25, 1/0.35) and [1/0.35, 6), 1 beyond), every
//!   range evaluated and one selected, with the exponentials above; erf′ = (2/√π)e^{−x²}
//!   alongside. Errors ≤ 2 ulp for exp, ≤ 4 ulp for erf against the platform's libm (tested).

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

/// ln 2 in two parts (fdlibm): the high part has 32 trailing zero bits, so k·LN2_HI is exact.
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
/// 1.5·2⁵²: adding it rounds a number below 2⁵¹ in magnitude to an integer, held in the low
/// bits of the sum.
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// eˣ, branch-free (see the module docs). NaN gives NaN, overflow +∞, underflow 0.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f64) -> f64 {
    let xc = x.clamp(-746.0, 710.0);
    let shifted = madd::<FMA>(xc, std::f64::consts::LOG2_E, ROUNDER);
    let k = shifted - ROUNDER;
    let r = madd::<FMA>(-k, LN2_HI, xc);
    let r = madd::<FMA>(-k, LN2_LO, r);
    // e^r = Σ rⁿ/n!, n ≤ 13, by Horner
    let mut p = 1.0 / 6_227_020_800.0;
    for inverse_factorial in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = madd::<FMA>(p, r, inverse_factorial);
    }
    let k = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i64;
    let half = k >> 1;
    let power = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    let value = p * power(half) * power(k - half);
    if x.is_nan() { x } else { value }
}

#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const ERX: f64 = 8.450_629_115_104_675_292_97e-1;
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const PP: [f64; 5] = [
    1.283_791_670_955_125_585_61e-1,
    -3.250_421_072_470_014_993_70e-1,
    -2.848_174_957_559_851_047_66e-2,
    -5.770_270_296_489_441_591_57e-3,
    -2.376_301_665_665_016_260_84e-5,
];
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const QQ: [f64; 5] = [
    3.979_172_239_591_553_528_19e-1,
    6.502_224_998_876_729_444_85e-2,
    5.081_306_281_875_765_627_76e-3,
    1.324_947_380_043_216_445_26e-4,
    -3.960_228_278_775_368_123_20e-6,
];
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const PA: [f64; 7] = [
    -2.362_118_560_752_659_440_77e-3,
    4.148_561_186_837_483_316_66e-1,
    -3.722_078_760_357_013_238_47e-1,
    3.183_466_199_011_617_536_74e-1,
    -1.108_946_942_823_966_774_76e-1,
    3.547_830_432_561_823_593_71e-2,
    -2.166_375_594_868_790_843_00e-3,
];
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const QA: [f64; 6] = [
    1.064_208_804_008_442_282_86e-1,
    5.403_979_177_021_710_489_37e-1,
    7.182_865_441_419_626_628_68e-2,
    1.261_712_198_087_616_421_12e-1,
    1.363_708_391_202_905_073_62e-2,
    1.198_449_984_679_910_741_70e-2,
];
/// erfc on [1.25, 1/0.35): R(s)/S(s), s = 1/x².
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const RA: [f64; 8] = [
    -9.864_944_034_847_148_227_05e-3,
    -6.938_585_727_071_817_643_72e-1,
    -1.055_862_622_532_329_098_14e1,
    -6.237_533_245_032_600_603_96e1,
    -1.623_966_694_625_734_703_55e2,
    -1.846_050_929_067_110_359_94e2,
    -8.128_743_550_630_659_342_46e1,
    -9.814_329_344_169_145_485_92,
];
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const SA: [f64; 8] = [
    1.965_127_166_743_925_712_92e1,
    1.376_577_541_435_190_426_00e2,
    4.345_658_774_752_292_288_21e2,
    6.453_872_717_332_678_803_36e2,
    4.290_081_400_275_678_333_86e2,
    1.086_350_055_417_794_351_34e2,
    6.570_249_770_319_281_701_35,
    -6.042_441_521_485_809_874_38e-2,
];
/// erfc on [1/0.35, 28) (padded with zeros to RA's and SA's lengths).
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const RB: [f64; 8] = [
    -9.864_942_924_700_099_285_97e-3,
    -7.992_832_376_805_230_065_74e-1,
    -1.775_795_491_775_475_198_89e1,
    -1.606_363_848_558_219_160_62e2,
    -6.375_664_433_683_896_277_22e2,
    -1.025_095_131_611_077_249_54e3,
    -4.835_191_916_086_513_970_19e2,
    0.0,
];
#[allow(clippy::excessive_precision)] // fdlibm\'s decimals, which round to its doubles
const SB: [f64; 8] = [
    3.033_806_074_348_245_829_24e1,
    3.257_925_129_965_739_188_26e2,
    1.536_729_586_084_436_959_94e3,
    3.199_858_219_508_595_539_08e3,
    2.553_050_406_433_164_425_83e3,
    4.745_285_412_069_553_672_15e2,
    -2.244_095_244_658_581_833_62e1,
    0.0,
];

/// Σ cᵢ zⁱ (i from 0), by Horner.
#[inline(always)]
fn polynomial<const FMA: bool>(z: f64, c: &[f64]) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| madd::<FMA>(acc, z, ci))
}

/// 1 + Σ cᵢ zⁱ⁺¹, by Horner.
#[inline(always)]
fn polynomial_one<const FMA: bool>(z: f64, c: &[f64]) -> f64 {
    madd::<FMA>(polynomial::<FMA>(z, c), z, 1.0)
}

/// (erf x, erf′ x = (2/√π)e^{−x²}), branch-free (see the module docs).
#[inline(always)]
pub fn erf_with_slope<const FMA: bool>(x: f64) -> (f64, f64) {
    let ax = x.abs();
    // |x| < 0.84375: x + x·P(x²)/Q(x²)
    let z = x * x;
    let near = madd::<FMA>(
        x,
        polynomial::<FMA>(z, &PP) / polynomial_one::<FMA>(z, &QQ),
        x,
    );
    // [0.84375, 1.25): erx + P(|x| − 1)/Q(|x| − 1)
    let t = ax - 1.0;
    let middle = ERX + polynomial::<FMA>(t, &PA) / polynomial_one::<FMA>(t, &QA);
    // [1.25, 6): 1 − e^{−z²−0.5625}·e^{(z−|x|)(z+|x|)+R/S}/|x|, z = |x| to 21 bits
    let s = 1.0 / (ax * ax).max(1.0);
    let second = ax >= 1.0 / 0.35;
    let mut r = 0.0;
    let mut big_s = 0.0;
    for i in (0..8).rev() {
        r = madd::<FMA>(r, s, if second { RB[i] } else { RA[i] });
        big_s = madd::<FMA>(big_s, s, if second { SB[i] } else { SA[i] });
    }
    let big_s = madd::<FMA>(big_s, s, 1.0);
    let zt = f64::from_bits(ax.to_bits() & 0xffff_ffff_0000_0000);
    let tail =
        exp::<FMA>(-zt * zt - 0.5625) * exp::<FMA>((zt - ax) * (zt + ax) + r / big_s) / ax.max(1.0);
    let far = 1.0 - tail;
    let magnitude = if ax < 1.25 {
        middle
    } else if ax < 6.0 {
        far
    } else {
        1.0
    };
    let value = if ax < 0.84375 {
        near
    } else {
        magnitude.copysign(x)
    };
    let slope = std::f64::consts::FRAC_2_SQRT_PI * exp::<FMA>(-z);
    if x.is_nan() { (x, x) } else { (value, slope) }
}

#[inline(always)]
fn exp_into<const FMA: bool>(x: &[f64], out: &mut [f64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = exp::<FMA>(v);
    }
}

#[inline(always)]
fn erf_into<const FMA: bool>(x: &[f64], value: &mut [f64], slope: &mut [f64]) {
    for ((v, d), &a) in value.iter_mut().zip(slope.iter_mut()).zip(x) {
        (*v, *d) = erf_with_slope::<FMA>(a);
    }
}

dispatch_by_isa! {
    /// `out[i] = exp(x[i])`, over the shorter of the two slices.
    pub fn exp_slice(x: &[f64], out: &mut [f64]) => exp_into
}

dispatch_by_isa! {
    /// `value[i] = erf(x[i])`, `slope[i] = erf′(x[i])`, over the shortest of the slices.
    pub fn erf_slice(x: &[f64], value: &mut [f64], slope: &mut [f64]) => erf_into
}

/// Clears the upper halves of the vector registers (`vzeroupper`).
///
/// faer's AVX-512 matrix kernels can leave them dirty on a rayon worker; every later
/// SSE-encoded instruction on that thread then pays a state-transition penalty (measured:
/// the pair loop ran 10× slower after an X Xᵀ product). One `vzeroupper` per row restores
/// full speed; it is a no-op where AVX is absent.
#[inline]
pub fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked above), which is all `vzeroupper` needs.
            unsafe { std::arch::x86_64::_mm256_zeroupper() }
        }
    }
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

    /// A dense sweep of [a, b] and its neighbours of the boundaries in `edges`.
    fn sweep(a: f64, b: f64, n: usize, edges: &[f64]) -> Vec<f64> {
        let mut x: Vec<f64> = (0..=n).map(|i| a + (b - a) * i as f64 / n as f64).collect();
        for &edge in edges {
            let (mut up, mut down) = (edge, edge);
            for _ in 0..40 {
                x.extend([up, down, -up, -down]);
                up = f64::from_bits(up.to_bits() + 1);
                down = f64::from_bits(down.to_bits() - 1);
            }
        }
        x.extend([
            0.0,
            -0.0,
            5e-324,
            -5e-324,
            1e-310,
            1e-20,
            -1e-20,
            2f64.powi(-28),
        ]);
        x
    }

    #[test]
    fn exp_is_within_2_ulp_of_libm_on_every_instruction_set() {
        let x = sweep(-745.5, 709.9, 2_000_000, &[-708.4, -1.0, 0.5, 1.0, 709.7]);
        for isa in Isa::available() {
            let mut out = vec![f64::NAN; x.len()];
            exp_slice(isa, &x, &mut out);
            let (err, at) = x
                .iter()
                .zip(&out)
                .map(|(&v, &got)| (ulps(got, v.exp()), v))
                .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
            eprintln!("{isa:?}: worst {err} ulp at x = {at:e}");
            assert!(err <= 2.0, "{isa:?}: {err} ulp at x = {at:e}");
            let special = [
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                710.0,
                -800.0,
                0.0,
            ];
            let mut out = [0.0; 6];
            exp_slice(isa, &special, &mut out);
            assert!(out[0].is_nan(), "{isa:?}");
            assert_eq!(
                out[1..],
                [f64::INFINITY, 0.0, f64::INFINITY, 0.0, 1.0],
                "{isa:?}"
            );
        }
    }

    #[test]
    fn erf_is_within_4_ulp_of_libm_and_its_slope_is_the_gaussian() {
        let x = sweep(-7.0, 7.0, 2_000_000, &[0.84375, 1.25, 1.0 / 0.35, 6.0]);
        for isa in Isa::available() {
            let mut value = vec![f64::NAN; x.len()];
            let mut slope = vec![f64::NAN; x.len()];
            erf_slice(isa, &x, &mut value, &mut slope);
            let mut worst = (0.0, 0.0);
            let mut worst_slope: f64 = 0.0;
            for ((&v, &got), &d) in x.iter().zip(&value).zip(&slope) {
                let err = ulps(got, libm::erf(v));
                if err > worst.0 {
                    worst = (err, v);
                }
                let exact = std::f64::consts::FRAC_2_SQRT_PI * (-v * v).exp();
                worst_slope = worst_slope.max((d - exact).abs() / exact.max(f64::MIN_POSITIVE));
            }
            eprintln!(
                "{isa:?}: erf worst {} ulp at x = {:e}; slope {worst_slope:e}",
                worst.0, worst.1
            );
            assert!(
                worst.0 <= 4.0,
                "{isa:?}: {} ulp at x = {:e}",
                worst.0,
                worst.1
            );
            // e^{−x²} inherits x²'s rounding, |x|²·2⁻⁵³ ≤ 6·10⁻¹⁵ at |x| = 7
            assert!(worst_slope < 1e-14, "{isa:?}: {worst_slope:e}");
            let special = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 30.0, -30.0];
            let mut v = [0.0; 5];
            let mut d = [0.0; 5];
            erf_slice(isa, &special, &mut v, &mut d);
            assert!(v[0].is_nan() && d[0].is_nan(), "{isa:?}");
            assert_eq!(v[1..], [1.0, -1.0, 1.0, -1.0], "{isa:?}");
            assert_eq!(d[1..], [0.0; 4], "{isa:?}");
        }
    }
}
