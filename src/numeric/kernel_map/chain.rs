//! The fused chain of closed-form pair maps over the upper triangle: per-pattern factors
//! hoisted out of the pair loop, bands of rows in parallel, each row segment carried through
//! every layer in L1, the branch-free SIMD arcsine / arccosine compiled per instruction set.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use std::f64::consts::{FRAC_2_PI, TAU};

use super::pair_map::PairKernelMap;
use super::pair_set::{PairSet, needed_end};
use super::tiles::{BAND_ROWS, SharedOut, TILE_COLUMNS, transpose_tile};
use crate::numeric::activation::Activation;
use crate::numeric::program::error::ProgramError;
use crate::numeric::vector_math::{
    Isa, acos, asin, clear_upper_vector_state, dispatch_by_isa, madd,
};

/// Relative slack in |C_αβ| ≤ √(C_αα C_ββ) for rounding of kernels built from data.
const PSD_SLACK: f64 = 1e-9;

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
