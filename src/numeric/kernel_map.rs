//! The fast path of the commonest forward equation: C' = s·K_φ(C) + o, one closed-form pair
//! expectation of a known activation with zero means (THEORY.md §2), evaluated over all
//! pattern pairs with per-pattern factors hoisted out of the pair loop:
//! erf(σx): K = (2/π) asin(2σ² C_αβ r_α r_β) with r_α = (1 + 2σ² C_αα)^{-1/2}; with
//! ρ = C_αβ f_α f_β, f_α = C_αα^{-1/2}: sign (2/π) asin ρ, step(θ = 0) 1/4 + asin ρ/(2π),
//! ReLU √(C_αα C_ββ)/(2π)·[√((1−ρ)(1+ρ)) + (π − θ)ρ] with π − θ = acos(−ρ).
//!
//! The loop runs over tiles of the upper triangle: a rayon task owns a band of rows,
//! computes each row segment of a tile with the branch-free SIMD arcsine / arccosine of
//! [`super::vector_math`] (compiled for AVX-512, AVX2 or neither, chosen at run time) and
//! writes the tile's transpose into the lower triangle while it is in cache. No memory
//! beyond the output and three per-pattern vectors.
//!
//! A chain of such maps (the hidden layers of a deep network, none of them returned) runs
//! fused ([`apply_chain_into`]): entry (α, β) of layer l + 1 needs only entry (α, β) and the
//! diagonal of layer l, so the diagonals are carried through the layers first and then each
//! row segment goes through every layer in an L1 buffer. Same arithmetic per entry, so the
//! same bits as one layer at a time, with the memory traffic of a single layer.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use std::f64::consts::{FRAC_2_PI, TAU};

use super::activation::Activation;
use super::hermite_kernel_map::{ExpansionReport, HermiteSettings};
use super::program::ProgramError;
use super::vector_math::{Isa, acos, asin, dispatch_by_isa, madd};

/// Which pattern pairs to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSet {
    /// All pairs.
    All,
    /// Pairs with at least one of the first `n` patterns, and the diagonal (train kernel,
    /// train–test cross kernel and test variances; test–test covariances are skipped).
    TrainAndCross(usize),
}

/// Rows per rayon task; the transposed write puts `BAND_ROWS` contiguous entries (512 bytes)
/// in each row of the lower triangle. Measured at P = 4000: 16 rows × 256 columns took 1.3×
/// as long as 64 × 512 (the write into the lower triangle is what costs).
const BAND_ROWS: usize = 64;
/// Columns per tile: a tile of 64 × 512 entries is 256 KiB, in L2 while it is transposed.
const TILE_COLUMNS: usize = 512;
/// Relative slack in |C_αβ| ≤ √(C_αα C_ββ) for rounding of kernels built from data.
const PSD_SLACK: f64 = 1e-9;

/// An affine function of one pair expectation: `scale · K_φ(C) + offset`.
#[derive(Debug, Clone)]
pub struct PairKernelMap {
    /// The activation (erf, linear, ReLU, sign, step at threshold 0; tanh and custom functions
    /// through [`super::hermite_kernel_map`]).
    pub activation: Activation,
    /// Multiplies K_φ.
    pub scale: f64,
    /// Added to every entry.
    pub offset: f64,
    /// Gauss–Hermite order of the per-pair quadrature that the Mehler expansion (tanh, user
    /// functions) falls back to where its error bound is not met.
    pub fallback_order: usize,
}

/// The pair formula with its constants folded in: entry = `scale`·g(c, f_α f_β) + `offset`.
#[derive(Debug, Clone, Copy)]
enum Formula {
    /// `two_s2` = 2σ².
    Erf {
        two_s2: f64,
    },
    Linear,
    Relu,
    Sign,
    Step,
}

impl PairKernelMap {
    /// `scale · K_φ(C) + offset`, falling back (without a closed form) to Gauss–Hermite of
    /// the default order [`HermiteSettings::default`].
    pub fn new(activation: Activation, scale: f64, offset: f64) -> Self {
        Self {
            activation,
            scale,
            offset,
            fallback_order: HermiteSettings::default().fallback_order,
        }
    }

    /// Whether the fast path covers this activation.
    pub fn supports(activation: &Activation) -> bool {
        matches!(
            activation,
            Activation::Erf { .. }
                | Activation::Linear
                | Activation::Relu
                | Activation::Sign
                | Activation::Step { theta: 0.0 }
                | Activation::Tanh
                | Activation::Custom(_)
        )
    }

    /// Applies the map to a P×P kernel over the pairs in `pairs` (the others are 0). Only
    /// the diagonal and the upper triangle of `c` are read; the result is symmetric.
    pub fn apply(&self, c: ArrayView2<f64>, pairs: PairSet) -> Result<Array2<f64>, ProgramError> {
        let mut out = Array2::zeros(c.dim());
        self.apply_into(c, pairs, &mut out)?;
        Ok(out)
    }

    /// [`Self::apply`] into an existing P×P buffer (every entry is overwritten). For an
    /// activation without a closed form (tanh, a user function) the result comes from the
    /// Mehler expansion, and its report (terms, worst error bound, pairs that fell back to
    /// quadrature) is returned.
    pub fn apply_into(
        &self,
        c: ArrayView2<f64>,
        pairs: PairSet,
        out: &mut Array2<f64>,
    ) -> Result<Option<ExpansionReport>, ProgramError> {
        self.apply_into_with(Isa::detect(), c, pairs, out, true)
    }

    /// [`Self::apply_into`] without the lower triangle: only the diagonal and the upper
    /// triangle of `out` are written, the rest is left as it was. Enough for a kernel that is
    /// only read by another pair map (which reads no more than that), and it saves the
    /// transposed write, which is most of the memory traffic once P×P outgrows the caches.
    pub fn apply_upper_into(
        &self,
        c: ArrayView2<f64>,
        pairs: PairSet,
        out: &mut Array2<f64>,
    ) -> Result<Option<ExpansionReport>, ProgramError> {
        self.apply_into_with(Isa::detect(), c, pairs, out, false)
    }

    /// [`Self::apply_into`] (`mirror`) or [`Self::apply_upper_into`] with the loop compiled
    /// for `isa` (for tests and benches; an `isa` this CPU cannot run falls back to the
    /// portable build).
    pub fn apply_into_with(
        &self,
        isa: Isa,
        c: ArrayView2<f64>,
        pairs: PairSet,
        out: &mut Array2<f64>,
        mirror: bool,
    ) -> Result<Option<ExpansionReport>, ProgramError> {
        if matches!(self.activation, Activation::Tanh | Activation::Custom(_)) {
            let settings = HermiteSettings {
                fallback_order: self.fallback_order,
                ..HermiteSettings::default()
            };
            let needed = move |a: usize, b: usize| match pairs {
                PairSet::All => true,
                PairSet::TrainAndCross(n) => a < n || b < n || a == b,
            };
            let report = super::hermite_kernel_map::apply_into(
                &self.activation,
                (self.scale, self.offset),
                c,
                &needed,
                out,
                &settings,
            )?;
            return Ok(Some(report));
        }
        apply_chain_into_with(isa, std::slice::from_ref(self), c, pairs, out, mirror)?;
        Ok(None)
    }

    /// Whether the map has a closed form the fused loop of [`apply_chain_into`] runs.
    pub fn has_closed_form(&self) -> bool {
        Self::supports(&self.activation)
            && !matches!(self.activation, Activation::Tanh | Activation::Custom(_))
    }
}

/// Applies `maps` one after the other (C⁽ˡ⁺¹⁾ = mapₗ(C⁽ˡ⁾)) without storing the kernels in
/// between. Entry (α, β) of a layer needs only entry (α, β) and the diagonal of the layer
/// before, so each row segment runs through every layer in a buffer in L1, after the
/// diagonals have been carried through the layers first: the memory traffic of a deep
/// network is that of one layer. Every map must have a closed form
/// ([`PairKernelMap::has_closed_form`]); the values are those of applying them one by one.
pub fn apply_chain_into(
    maps: &[PairKernelMap],
    c: ArrayView2<f64>,
    pairs: PairSet,
    out: &mut Array2<f64>,
    mirror: bool,
) -> Result<(), ProgramError> {
    apply_chain_into_with(Isa::detect(), maps, c, pairs, out, mirror)
}

/// [`apply_chain_into`] with the loop compiled for `isa`.
pub fn apply_chain_into_with(
    isa: Isa,
    maps: &[PairKernelMap],
    c: ArrayView2<f64>,
    pairs: PairSet,
    out: &mut Array2<f64>,
    mirror: bool,
) -> Result<(), ProgramError> {
    let p = c.nrows();
    if c.ncols() != p || out.dim() != (p, p) {
        return Err(ProgramError::Unsupported(format!(
            "a {:?} output buffer for a {:?} kernel",
            out.dim(),
            c.dim()
        )));
    }
    let c = c.as_standard_layout();
    let c = c
        .as_slice()
        .ok_or_else(|| ProgramError::Unsupported("a non-contiguous kernel".into()))?;
    run_chain(isa, maps, Some(c), p, pairs, out, mirror)
}

/// [`apply_chain_into`] writing the result over its input: each row segment is read into an
/// L1 buffer before it is overwritten, and the pair loop reads no entry below the diagonal,
/// where the transposed writes go. Saves the second P×P buffer.
pub fn apply_chain_in_place(
    maps: &[PairKernelMap],
    c: &mut Array2<f64>,
    pairs: PairSet,
    mirror: bool,
) -> Result<(), ProgramError> {
    let p = c.nrows();
    if c.ncols() != p || !c.is_standard_layout() {
        return Err(ProgramError::Unsupported(format!(
            "a {:?} kernel that is not square and contiguous",
            c.dim()
        )));
    }
    run_chain(Isa::detect(), maps, None, p, pairs, c, mirror)
}

/// The chain over `input` (row-major P×P), or over `out` itself when `input` is `None`.
fn run_chain(
    isa: Isa,
    maps: &[PairKernelMap],
    input: Option<&[f64]>,
    p: usize,
    pairs: PairSet,
    out: &mut Array2<f64>,
    mirror: bool,
) -> Result<(), ProgramError> {
    if maps.is_empty() {
        return Err(ProgramError::Unsupported(
            "an empty chain of pair maps".into(),
        ));
    }
    let mut diag: Vec<f64> = match input {
        Some(c) => (0..p).map(|a| c[a * p + a]).collect(),
        None => (0..p).map(|a| out[[a, a]]).collect(),
    };
    let mut layers = Vec::with_capacity(maps.len());
    for (l, map) in maps.iter().enumerate() {
        let layer = Layer::new(map, diag)?;
        if l + 1 < maps.len() {
            let mut next = vec![0.0; p];
            if let Some(a) = diagonal_kernel(isa, &layer, &mut next) {
                let d = layer.diag[a];
                return Err(ProgramError::InvalidCovariance {
                    var_u: d,
                    var_v: d,
                    cov: d,
                });
            }
            diag = next;
        } else {
            diag = Vec::new();
        }
        layers.push(layer);
    }
    let out_slice = out
        .as_slice_mut()
        .ok_or_else(|| ProgramError::Unsupported("a non-contiguous output buffer".into()))?;
    let job = Job {
        layers: &layers,
        c: input,
        p,
        pairs,
        mirror,
        out: SharedOut(out_slice.as_mut_ptr()),
    };
    (0..p.div_ceil(BAND_ROWS))
        .into_par_iter()
        .try_for_each(|band| {
            clear_upper_vector_state();
            let rows = band * BAND_ROWS..((band + 1) * BAND_ROWS).min(p);
            match band_kernel(isa, &job, rows.start, rows.end) {
                None => Ok(()),
                Some(bad) => Err(ProgramError::InvalidCovariance {
                    var_u: layers[bad.layer].diag[bad.a],
                    var_v: layers[bad.layer].diag[bad.b],
                    cov: bad.cov,
                }),
            }
        })
}

/// One map with the per-pattern vectors of its input kernel's diagonal.
struct Layer {
    formula: Formula,
    scale: f64,
    offset: f64,
    diag: Vec<f64>,
    factor: Vec<f64>,
    root: Vec<f64>,
}

impl Layer {
    fn new(map: &PairKernelMap, diag: Vec<f64>) -> Result<Self, ProgramError> {
        if let Some(&bad) = diag.iter().find(|d| !(d.is_finite() && **d >= 0.0)) {
            return Err(ProgramError::InvalidCovariance {
                var_u: bad,
                var_v: bad,
                cov: bad,
            });
        }
        let formula = match map.activation {
            Activation::Erf { s } => Formula::Erf {
                two_s2: 2.0 * s * s,
            },
            Activation::Linear => Formula::Linear,
            Activation::Relu => Formula::Relu,
            Activation::Sign => Formula::Sign,
            Activation::Step { theta: 0.0 } => Formula::Step,
            ref other => {
                return Err(ProgramError::Unsupported(format!(
                    "the closed-form pair loop for `{}`",
                    other.name()
                )));
            }
        };
        if matches!(formula, Formula::Sign | Formula::Step)
            && let Some(a) = diag.iter().position(|d| *d == 0.0)
        {
            // φ(0) of a discontinuous activation is a convention, not a Gaussian average.
            return Err(ProgramError::Unsupported(format!(
                "`{}` at zero variance (pattern {a})",
                map.activation.name()
            )));
        }
        let factor: Vec<f64> = match formula {
            Formula::Erf { two_s2 } => diag
                .iter()
                .map(|d| 1.0 / (1.0 + two_s2 * d).sqrt())
                .collect(),
            _ => diag
                .iter()
                .map(|d| if *d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
                .collect(),
        };
        let root: Vec<f64> = diag.iter().map(|d| d.sqrt()).collect();
        Ok(Self {
            formula,
            scale: map.scale,
            offset: map.offset,
            diag,
            factor,
            root,
        })
    }
}

/// Everything a band of rows needs.
struct Job<'a> {
    layers: &'a [Layer],
    /// The input kernel, row-major P×P (`None`: the output buffer holds it).
    c: Option<&'a [f64]>,
    p: usize,
    pairs: PairSet,
    /// Whether to write the lower triangle.
    mirror: bool,
    out: SharedOut,
}

/// A pair whose covariance is not one (|C_αβ| > √(C_αα C_ββ) or NaN) at a layer.
struct BadPair {
    layer: usize,
    a: usize,
    b: usize,
    cov: f64,
}

/// The output buffer, written by all bands at once. Entry (α, β) with α ≤ β belongs to the
/// band of row α and (β, α) to the same band (it is the transpose write), so no two tasks
/// touch the same entry and nothing reads an entry another task writes.
struct SharedOut(*mut f64);
// SAFETY: see the type's docs: tasks write disjoint entries and read only their own.
unsafe impl Sync for SharedOut {}

/// The end of the pair columns computed on row `a` (from `a`; the rest of the row is 0).
fn needed_end(pairs: PairSet, a: usize, p: usize) -> usize {
    match pairs {
        PairSet::All => p,
        PairSet::TrainAndCross(n) if a < n => p,
        PairSet::TrainAndCross(_) => a + 1,
    }
}

/// The diagonal of a layer's output, `out[a] = layer(C_αα)` (the same arithmetic as the
/// pair loop on (α, α)); the first pattern with an invalid variance if there is one.
#[inline(always)]
fn diagonal<const FMA: bool>(layer: &Layer, out: &mut [f64]) -> Option<usize> {
    for (a, o) in out.iter_mut().enumerate() {
        let mut value = [0.0];
        if !segment::<FMA>(layer, a, &[layer.diag[a]], a, &mut value) {
            return Some(a);
        }
        *o = value[0];
    }
    None
}

dispatch_by_isa! {
    fn diagonal_kernel(layer: &Layer, out: &mut [f64]) -> Option<usize> => diagonal
}

/// Rows `i0..i1`: upper-triangle segments tile by tile, each through every layer, each tile
/// mirrored at once. Returns the first pair with an invalid covariance.
#[inline(always)]
fn band<const FMA: bool>(job: &Job<'_>, i0: usize, i1: usize) -> Option<BadPair> {
    let p = job.p;
    let last = job.layers.len() - 1;
    // the values between layers: two row segments (a tile is at most TILE_COLUMNS wide),
    // and a copy of the input segment when the chain runs in place
    let mut buffers = [[0.0_f64; TILE_COLUMNS]; 2];
    let mut staged = [0.0_f64; TILE_COLUMNS];
    for j0 in (i0..p).step_by(TILE_COLUMNS) {
        let j1 = (j0 + TILE_COLUMNS).min(p);
        for a in i0..i1.min(j1) {
            let start = a.max(j0);
            let end = needed_end(job.pairs, a, p).clamp(start, j1);
            // SAFETY: row a, columns start..j1 ⊂ the upper triangle of row a, owned by this
            // band (see `SharedOut`); in bounds since a < p and j1 ≤ p.
            let row =
                unsafe { std::slice::from_raw_parts_mut(job.out.0.add(a * p + start), j1 - start) };
            let n = end - start;
            let input: &[f64] = match job.c {
                Some(c) => &c[a * p + start..a * p + end],
                None => {
                    staged[..n].copy_from_slice(&row[..n]);
                    &staged[..n]
                }
            };
            let (computed, zero) = row.split_at_mut(n);
            zero.fill(0.0);
            for (l, layer) in job.layers.iter().enumerate() {
                let [even, odd] = &mut buffers;
                let (src, dst): (&[f64], &mut [f64]) = match (l, l % 2) {
                    (0, _) if l == last => (input, &mut *computed),
                    (0, _) => (input, &mut even[..n]),
                    (_, 1) if l == last => (&even[..n], &mut *computed),
                    (_, 1) => (&even[..n], &mut odd[..n]),
                    (_, _) if l == last => (&odd[..n], &mut *computed),
                    (_, _) => (&odd[..n], &mut even[..n]),
                };
                if !segment::<FMA>(layer, a, src, start, dst) {
                    let b = first_invalid(layer, a, src, start);
                    return Some(BadPair {
                        layer: l,
                        a,
                        b,
                        cov: src[b - start],
                    });
                }
            }
        }
        if job.mirror {
            transpose_tile(&job.out, p, i0..i1, j0..j1);
        }
    }
    None
}

/// (b, a) ← (a, b) for rows a of the band `rows`, columns b > a of the tile `columns`.
#[inline(always)]
fn transpose_tile(
    out: &SharedOut,
    p: usize,
    rows: std::ops::Range<usize>,
    columns: std::ops::Range<usize>,
) {
    for b in columns.start.max(rows.start + 1)..columns.end {
        for a in rows.start..rows.end.min(b) {
            // SAFETY: (a, b) is upper and (b, a) lower, both owned by the band of row a (see
            // `SharedOut`); callers keep a, b < p.
            unsafe { *out.0.add(b * p + a) = *out.0.add(a * p + b) };
        }
    }
}

/// Copies the upper triangle of a square matrix onto the lower one: parallel bands of rows,
/// tile by tile (the same traffic as the transposed write of [`PairKernelMap::apply_into`]).
pub fn mirror_upper(m: &mut Array2<f64>) {
    let p = m.nrows();
    if m.ncols() != p {
        return;
    }
    let Some(slice) = m.as_slice_mut() else {
        for a in 0..p {
            for b in a + 1..p {
                m[[b, a]] = m[[a, b]];
            }
        }
        return;
    };
    let out = SharedOut(slice.as_mut_ptr());
    (0..p.div_ceil(BAND_ROWS)).into_par_iter().for_each(|band| {
        let rows = band * BAND_ROWS..((band + 1) * BAND_ROWS).min(p);
        for j0 in (rows.start..p).step_by(TILE_COLUMNS) {
            transpose_tile(&out, p, rows.clone(), j0..(j0 + TILE_COLUMNS).min(p));
        }
    });
}

dispatch_by_isa! {
    fn band_kernel(job: &Job<'_>, i0: usize, i1: usize) -> Option<BadPair> => band
}

/// The first column of the segment `c` (row `a`, from `start`) with |C_αβ| > √(C_αα C_ββ)
/// (or NaN).
fn first_invalid(layer: &Layer, a: usize, c: &[f64], start: usize) -> usize {
    c.iter()
        .enumerate()
        .find(|&(k, &v)| !valid(v, layer.root[a] * (1.0 + PSD_SLACK), layer.root[start + k]))
        .map_or(start, |(k, _)| start + k)
}

/// |c| ≤ bound_a·√C_ββ, false for NaN.
#[inline(always)]
fn valid(c: f64, bound_a: f64, root_b: f64) -> bool {
    c.abs() <= bound_a * root_b + 1e-300
}

/// One row segment of one layer: `out[k] = scale·K(C_a,start+k) + offset`; false if some
/// covariance in it is invalid (the values are then meaningless).
#[inline(always)]
fn segment<const FMA: bool>(
    layer: &Layer,
    a: usize,
    c: &[f64],
    start: usize,
    out: &mut [f64],
) -> bool {
    let n = out.len();
    let (c, f_b, r_b) = (
        &c[..n],
        &layer.factor[start..start + n],
        &layer.root[start..start + n],
    );
    let (f_a, r_a) = (layer.factor[a], layer.root[a]);
    let bound_a = r_a * (1.0 + PSD_SLACK);
    let offset = layer.offset;
    let clamp = |x: f64| x.clamp(-1.0, 1.0);
    let mut ok = true;
    match layer.formula {
        Formula::Erf { two_s2 } => {
            let k = two_s2 * f_a;
            let sc = layer.scale * FRAC_2_PI;
            for i in 0..n {
                ok &= valid(c[i], bound_a, r_b[i]);
                out[i] = madd::<FMA>(sc, asin::<FMA>(clamp(k * c[i] * f_b[i])), offset);
            }
        }
        Formula::Linear => {
            for i in 0..n {
                ok &= valid(c[i], bound_a, r_b[i]);
                out[i] = madd::<FMA>(layer.scale, c[i], offset);
            }
        }
        Formula::Relu => {
            let sc = layer.scale * r_a / TAU;
            for i in 0..n {
                ok &= valid(c[i], bound_a, r_b[i]);
                let rho = clamp(f_a * c[i] * f_b[i]);
                let sin_theta = ((1.0 - rho) * (1.0 + rho)).sqrt();
                let k = madd::<FMA>(acos::<FMA>(-rho), rho, sin_theta);
                out[i] = madd::<FMA>(sc * r_b[i], k, offset);
            }
        }
        // asin has an infinite slope at ρ = ±1: ρ = C_αβ/√(C_αα C_ββ) is exactly 1 on the
        // diagonal and for repeated patterns, where C_αβ f_α f_β may be 1 − ε (an error of
        // √(2ε) ≈ 2e-8 in the kernel).
        Formula::Sign | Formula::Step => {
            let (sc, base) = match layer.formula {
                Formula::Sign => (layer.scale * FRAC_2_PI, offset),
                _ => (layer.scale / TAU, madd::<FMA>(layer.scale, 0.25, offset)),
            };
            let d_a = layer.diag[a];
            let d_b = &layer.diag[start..start + n];
            for i in 0..n {
                ok &= valid(c[i], bound_a, r_b[i]);
                let rho = clamp(c[i] / (d_a * d_b[i]).sqrt());
                out[i] = madd::<FMA>(sc, asin::<FMA>(rho), base);
            }
        }
    }
    ok
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
    use crate::numeric::pair::pair_expectation;
    use ndarray::array;
    use proptest::prelude::*;

    const ACTIVATIONS: [Activation; 5] = [
        Activation::Erf { s: 0.886 },
        Activation::Linear,
        Activation::Relu,
        Activation::Sign,
        Activation::Step { theta: 0.0 },
    ];

    /// How far the fast path may be from `pair_expectation`: 1e-13 of the size of the
    /// entry, plus the rounding of the correlation ρ (a few ε) times the condition number of
    /// the closed form in ρ where that is large: 1/√(1−x²) for asin-based kernels near |x| = 1,
    /// and for ReLU the reference's own w = √(ab − c²), whose absolute error is ≈ ε·ab/w.
    fn tolerance(act: &Activation, scale: f64, offset: f64, a: f64, b: f64, c: f64) -> f64 {
        let eps = f64::EPSILON;
        let size = match act {
            Activation::Linear | Activation::Relu => (a * b).sqrt(),
            _ => 1.0,
        };
        let argument = match act {
            Activation::Erf { s } => {
                2.0 * s * s * c / ((1.0 + 2.0 * s * s * a) * (1.0 + 2.0 * s * s * b)).sqrt()
            }
            _ if a * b > 0.0 => c / (a * b).sqrt(),
            _ => 0.0,
        };
        let gap = (1.0 - argument * argument).max(0.0);
        let conditioning = match act {
            Activation::Erf { .. } | Activation::Sign | Activation::Step { .. } if gap > 0.0 => {
                8.0 * eps / gap.sqrt()
            }
            Activation::Relu if gap > 0.0 => 8.0 * eps * (a * b).sqrt() / gap.sqrt(),
            _ => 0.0,
        };
        1e-13 * (scale.abs() * size + offset.abs()) + scale.abs() * conditioning
    }

    /// Checks every entry of the fast path, on every instruction set of this CPU, against the
    /// scalar closed form; entries outside `pairs` must be 0 and the result symmetric.
    fn check(c: &Array2<f64>, act: &Activation, scale: f64, offset: f64, pairs: PairSet) {
        let map = PairKernelMap::new(act.clone(), scale, offset);
        let p = c.nrows();
        for isa in Isa::available() {
            let mut k = Array2::from_elem((p, p), f64::NAN);
            map.apply_into_with(isa, c.view(), pairs, &mut k, true)
                .expect("valid kernel");
            // The upper-only variant writes the same upper triangle and leaves the rest.
            let mut upper = Array2::from_elem((p, p), -7.0);
            map.apply_into_with(isa, c.view(), pairs, &mut upper, false)
                .expect("valid kernel");
            for ((a, b), v) in upper.indexed_iter() {
                let want = if a <= b { k[[a, b]] } else { -7.0 };
                assert_eq!(v.to_bits(), want.to_bits(), "{isa:?} upper-only ({a},{b})");
            }
            for a in 0..p {
                for b in 0..p {
                    let needed = match pairs {
                        PairSet::All => true,
                        PairSet::TrainAndCross(n) => a < n || b < n || a == b,
                    };
                    let got = k[[a, b]];
                    if !needed {
                        assert_eq!(got, 0.0, "{isa:?} {act:?} ({a},{b}) is not needed");
                        continue;
                    }
                    let (va, vb, cab) = (c[[a, a]], c[[b, b]], c[[a.min(b), a.max(b)]]);
                    let exact: f64 = pair_expectation(act, va, vb, cab).expect("closed form");
                    let want = scale * exact + offset;
                    let tol = tolerance(act, scale, offset, va, vb, cab);
                    assert!(
                        (got - want).abs() <= tol,
                        "{isa:?} {act:?} ({a},{b}) of {p}: {got} vs {want} (C = {va}, {vb}, {cab}; tolerance {tol:e})"
                    );
                    assert_eq!(got.to_bits(), k[[b, a]].to_bits(), "{isa:?} symmetric");
                }
            }
        }
    }

    /// C = V Vᵀ for rows of V: random, repeated (ρ = 1), negated (ρ = −1), nearly repeated
    /// (ρ → ±1) and zero (zero variance, where the activation allows it).
    fn kernel(rows: &[Vec<f64>], kinds: &[u8], zero_allowed: bool) -> Array2<f64> {
        let dim = rows[0].len();
        let mut v: Vec<Vec<f64>> = Vec::new();
        for (i, (row, kind)) in rows.iter().zip(kinds).enumerate() {
            let last = if i > 0 { v[i - 1].clone() } else { row.clone() };
            v.push(match kind % 6 {
                0 => last,
                1 => last.iter().map(|x| -x).collect(),
                2 => last.iter().zip(row).map(|(x, y)| x + 1e-7 * y).collect(),
                3 => last.iter().zip(row).map(|(x, y)| -x + 1e-4 * y).collect(),
                4 if zero_allowed => vec![0.0; dim],
                _ => row.clone(),
            });
        }
        Array2::from_shape_fn((v.len(), v.len()), |(a, b)| {
            v[a].iter().zip(&v[b]).map(|(x, y)| x * y).sum()
        })
    }

    #[test]
    fn fast_path_matches_the_closed_forms_to_1e13() {
        let c = array![[1.0, 0.6, -0.2], [0.6, 1.5, 0.3], [-0.2, 0.3, 0.8]];
        for act in &ACTIVATIONS {
            check(&c, act, 1.5, 0.1, PairSet::All);
        }
    }

    /// `n` rows of 4 numbers uniform in [−1, 1) from a seeded LCG.
    fn random_rows(mut seed: u64, n: usize) -> Vec<Vec<f64>> {
        let mut uniform = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        (0..n)
            .map(|_| (0..4).map(|_| uniform()).collect())
            .collect()
    }

    #[test]
    fn every_tile_and_band_edge_on_a_large_kernel() {
        // 600 patterns: ten bands and two column tiles, ragged at both ends.
        let rows = random_rows(12345, 600);
        let kinds: Vec<u8> = (0..600).map(|i| (i * 7 % 11) as u8).collect();
        for act in &ACTIVATIONS {
            let zero_allowed = !matches!(act, Activation::Sign | Activation::Step { .. });
            let c = kernel(&rows, &kinds, zero_allowed);
            check(&c, act, 0.7, -0.3, PairSet::All);
            check(&c, act, 2.0, 0.1, PairSet::TrainAndCross(37));
        }
    }

    /// The fused chain gives the values of the maps applied one by one, bit for bit (the
    /// same arithmetic per entry), over tile and band edges, for every ISA this CPU runs,
    /// mixed activations, both pair sets, with and without the lower triangle.
    #[test]
    fn a_fused_chain_equals_the_maps_one_by_one() {
        let rows = random_rows(777, 600);
        let kinds: Vec<u8> = (0..600).map(|i| (i * 5 % 13) as u8).collect();
        let c = kernel(&rows, &kinds, false);
        let map = |activation, scale, offset| PairKernelMap::new(activation, scale, offset);
        let chains = [
            vec![map(Activation::Erf { s: 0.886 }, 1.5, 0.1); 5],
            vec![map(Activation::Relu, 2.0, 0.05); 4],
            vec![
                map(Activation::Sign, 1.2, 0.2),
                map(Activation::Erf { s: 1.3 }, 0.9, 0.0),
                map(Activation::Linear, 1.1, 0.3),
                map(Activation::Relu, 1.7, 0.01),
                map(Activation::Step { theta: 0.0 }, 1.0, 0.4),
            ],
            vec![map(Activation::Erf { s: 0.5 }, 1.0, 0.0)],
        ];
        for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
            for maps in &chains {
                for pairs in [PairSet::All, PairSet::TrainAndCross(123)] {
                    for mirror in [true, false] {
                        let mut stepwise = c.clone();
                        for m in maps {
                            let mut next = Array2::from_elem(c.dim(), f64::NAN);
                            m.apply_into_with(isa, stepwise.view(), pairs, &mut next, true)
                                .unwrap();
                            stepwise = next;
                        }
                        let mut fused = Array2::from_elem(c.dim(), f64::NAN);
                        apply_chain_into_with(isa, maps, c.view(), pairs, &mut fused, mirror)
                            .unwrap();
                        let mut in_place = c.clone();
                        if isa == Isa::detect() {
                            apply_chain_in_place(maps, &mut in_place, pairs, mirror).unwrap();
                        }
                        for a in 0..600 {
                            for b in 0..600 {
                                if b >= a || mirror {
                                    assert_eq!(
                                        fused[[a, b]].to_bits(),
                                        stepwise[[a, b]].to_bits(),
                                        "{isa:?} {pairs:?} ({a}, {b}) of {maps:?}"
                                    );
                                    if isa == Isa::detect() {
                                        assert_eq!(
                                            in_place[[a, b]].to_bits(),
                                            stepwise[[a, b]].to_bits(),
                                            "in place {pairs:?} ({a}, {b}) of {maps:?}"
                                        );
                                    }
                                } else {
                                    assert!(fused[[a, b]].is_nan(), "lower triangle written");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// An invalid covariance in the middle of a chain is reported with that layer's values.
    #[test]
    fn a_chain_reports_an_invalid_intermediate_kernel() {
        let c = array![[1.0, 0.5], [0.5, 1.0]];
        let maps = [
            PairKernelMap::new(Activation::Linear, 1.0, 0.0),
            // a negative offset makes the second layer's variances negative
            PairKernelMap::new(Activation::Linear, 1.0, -2.0),
            PairKernelMap::new(Activation::Relu, 1.0, 0.0),
        ];
        let mut out = Array2::zeros((2, 2));
        let err = apply_chain_into(&maps, c.view(), PairSet::All, &mut out, true).unwrap_err();
        assert!(
            matches!(err, ProgramError::InvalidCovariance { var_u, .. } if var_u == -1.0),
            "{err:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn fast_path_matches_the_closed_forms_on_random_kernels(
            rows in prop::collection::vec(prop::collection::vec(-2.0f64..2.0, 3), 1..24),
            kinds in prop::collection::vec(0u8..12, 24),
            variance in prop::sample::select(vec![1e-2, 0.3, 1.0, 7.0, 100.0]),
            scale in -3.0f64..3.0,
            offset in -1.0f64..1.0,
            train in 0usize..24,
        ) {
            for act in &ACTIVATIONS {
                let zero_allowed = !matches!(act, Activation::Sign | Activation::Step { .. });
                let c = kernel(&rows, &kinds, zero_allowed) * variance;
                check(&c, act, scale, offset, PairSet::All);
                check(&c, act, scale, offset, PairSet::TrainAndCross(train));
            }
        }
    }

    #[test]
    fn mirror_copies_the_upper_triangle() {
        for p in [1, 5, 64, 65, 700] {
            let mut m = Array2::from_shape_fn((p, p), |(a, b)| {
                if a <= b {
                    (a * 1000 + b) as f64
                } else {
                    f64::NAN
                }
            });
            mirror_upper(&mut m);
            for ((a, b), v) in m.indexed_iter() {
                assert_eq!(*v, (a.min(b) * 1000 + a.max(b)) as f64, "P = {p} ({a},{b})");
            }
        }
    }

    #[test]
    fn invalid_covariances_are_errors() {
        let bad = [
            array![[1.0, 2.0], [2.0, 1.0]],
            array![[1.0, f64::NAN], [f64::NAN, 1.0]],
            array![[-1.0, 0.0], [0.0, 1.0]],
            array![[f64::INFINITY, 0.0], [0.0, 1.0]],
        ];
        for c in bad {
            for act in &ACTIVATIONS {
                let map = PairKernelMap::new(act.clone(), 1.0, 0.0);
                assert!(
                    matches!(
                        map.apply(c.view(), PairSet::All),
                        Err(ProgramError::InvalidCovariance { .. })
                    ),
                    "{act:?} on {c}"
                );
            }
        }
    }

    #[test]
    fn discontinuous_activations_at_zero_variance_are_errors() {
        let c = array![[1.0, 0.0], [0.0, 0.0]];
        for act in [Activation::Sign, Activation::Step { theta: 0.0 }] {
            let map = PairKernelMap::new(act, 1.0, 0.0);
            assert!(map.apply(c.view(), PairSet::All).is_err());
        }
    }
}
