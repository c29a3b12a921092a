//! Pattern separation and the optimal processing depth or time (THEORY.md §7.3).
//!
//! Two groups of pattern pairs are followed through the steps of a theory — the layers of a
//! deep network or the time steps of a recurrent one, i.e. the readout field's equal-step
//! entries `C[0], C[1], …` or `C[0,0], C[1,1], …`: pairs *within* a class (two noisy
//! versions of one pattern) and pairs *between* classes. At step l a pair's overlap is the
//! correlation coefficient across units, ρ_ab = (K_ab − μ_a μ_b)/√((K_aa − μ_a²)(K_bb − μ_b²))
//! with the step's mean field μ where the theory has one at the same indices (0/1 units:
//! `Q[l]` with `m[l]`), else μ = 0 (the kernel of zero-mean pre-activations, ±1 units); its
//! distance is d_ab = K_aa + K_bb − 2K_ab (for 0/1 units the Hamming distance per unit, for
//! ±1 units 2(1 − ρ); THEORY.md §7.2). The separation is
//!
//!   Δ(l) = ⟨ρ⟩_within(l) − ⟨ρ⟩_between(l).
//!
//! Both overlaps flow to the same fixed point, so Δ → 0 with depth; where small distances
//! expand faster than large ones (χ₁ > 1, infinite for binary units) Δ first grows, and the
//! optimal step is l* = argmax Δ. For sign units without bias ρ' = (2/π) arcsin ρ (T12).
//!
//! The kernels are the NNGP kernels of the theory on the patterns ([`nngp_kernels`]); the
//! same curve of a finite network is measured by `simulate::separation`.
//!
//! **Asynchronous (Glauber) dynamics** (THEORY.md §7.4): units updated at rate 1/τ, with
//! common update times for all patterns. Each order parameter s of the step map F
//! ([`StepMap`]) relaxes as τ ṡ = −s + F(s): a unit updated at time t takes the value the
//! synchronous step gives, the others keep theirs. This is exact at large N because every
//! order parameter is an affine function of averages over the units' outputs, and an updated
//! unit draws a fresh Gaussian field from the current state; it is *not* a closed equation for
//! the covariance of the units' last fields, which is a mixture of Gaussians of different
//! ages. Started from the first step the units produce from the inputs (`C[1]`, `Q[1]`, not
//! the inputs' own covariance `C[0]`), integrated by RK4; one Euler step of length τ is the
//! synchronous map, so t/τ is comparable to the step l. [`glauber_curve`] gives Δ(t); the
//! finite network run this way is `simulate::glauber`.
//!
//! One concept, one file: the separation curve over a theory's steps.

use ndarray::{Array2, ArrayView2};

use crate::check::ir::{FieldKind, Theory};
use crate::derive::unroll::defined_entries;

use super::nngp::{EntryKey, Kernels, NngpError, NngpSettings, nngp_kernels};
use super::step_map::{StepMap, StepMapError};

/// Why a separation curve cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum SeparationError {
    /// The NNGP kernels could not be computed.
    #[error(transparent)]
    Nngp(#[from] NngpError),
    /// The labels do not make pairs within and between classes.
    #[error("--labels: {0}")]
    Labels(String),
    /// An overlap outside [−1, 1].
    #[error("--overlaps: {what} overlap {value} is not in [-1, 1]")]
    Overlap {
        /// Which one (within, between).
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// The theory's readout has no chain of steps.
    #[error("{0}")]
    NoSteps(String),
    /// The step map (for Glauber dynamics) could not be built or evaluated.
    #[error(transparent)]
    StepMap(#[from] StepMapError),
    /// A time grid that does not make sense.
    #[error("{0}")]
    Times(String),
    /// A pattern whose units do not vary at some step (no activity left, or all active):
    /// its overlap is undefined.
    #[error(
        "{entry}: the units of pattern {pattern} do not vary there (variance {variance:e}: \
         activity died out or saturated), so its overlap is undefined"
    )]
    NoVariance {
        /// The step's entry.
        entry: String,
        /// The pattern (from 1).
        pattern: usize,
        /// Its variance across units K_aa − μ_a².
        variance: f64,
    },
}

/// The pairs of patterns whose overlaps are compared: within a class and between classes.
#[derive(Debug, Clone, PartialEq)]
pub struct PairGroups {
    /// Pairs of patterns of one class.
    pub within: Vec<(usize, usize)>,
    /// Pairs of patterns of different classes.
    pub between: Vec<(usize, usize)>,
}

impl PairGroups {
    /// Every pair within a class and every pair between classes, the class of a pattern
    /// being its label.
    pub fn from_labels(labels: &[f64]) -> Result<Self, SeparationError> {
        if let Some((i, v)) = labels.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(SeparationError::Labels(format!(
                "label {} is {v}, not a class",
                i + 1
            )));
        }
        let mut within = Vec::new();
        let mut between = Vec::new();
        for a in 0..labels.len() {
            for b in a + 1..labels.len() {
                if labels[a] == labels[b] {
                    within.push((a, b));
                } else {
                    between.push((a, b));
                }
            }
        }
        if within.is_empty() || between.is_empty() {
            return Err(SeparationError::Labels(format!(
                "{} patterns give {} pairs within a class and {} between classes; pattern \
                 separation needs both (two classes, one with at least two patterns)",
                labels.len(),
                within.len(),
                between.len()
            )));
        }
        Ok(PairGroups { within, between })
    }
}

/// Four patterns in four dimensions with |x|²/d = 1: a pattern and a noisy version of it
/// with overlap `within`, and two patterns of different classes with overlap `between`
/// (the two pairs orthogonal to each other).
pub fn overlap_patterns(
    within: f64,
    between: f64,
) -> Result<(Array2<f64>, PairGroups), SeparationError> {
    for (what, value) in [("the within", within), ("the between", between)] {
        if !(-1.0..=1.0).contains(&value) {
            return Err(SeparationError::Overlap { what, value });
        }
    }
    // |x|² = d = 4
    let mut x = Array2::zeros((4, 4));
    x[(0, 0)] = 2.0;
    x[(1, 0)] = 2.0 * within;
    x[(1, 1)] = 2.0 * (1.0 - within * within).sqrt();
    x[(2, 2)] = 2.0;
    x[(3, 2)] = 2.0 * between;
    x[(3, 3)] = 2.0 * (1.0 - between * between).sqrt();
    Ok((
        x,
        PairGroups {
            within: vec![(0, 1)],
            between: vec![(2, 3)],
        },
    ))
}

/// Overlaps, separation and distances at every step.
#[derive(Debug, Clone, PartialEq)]
pub struct SeparationCurve {
    /// The entry of each step (`C[0]`, `C[1]`, … or `C[2,2]`).
    pub steps: Vec<String>,
    /// Mean overlap of the pairs within a class.
    pub within: Vec<f64>,
    /// Mean overlap of the pairs between classes.
    pub between: Vec<f64>,
    /// Δ = within − between.
    pub delta: Vec<f64>,
    /// Mean distance K_aa + K_bb − 2K_ab within a class.
    pub distance_within: Vec<f64>,
    /// Mean distance between classes.
    pub distance_between: Vec<f64>,
    /// Why the curve stops before the theory's last step (activity died out or saturated).
    pub ended: Option<String>,
}

impl SeparationCurve {
    /// The step where Δ is largest (the first, if several tie).
    pub fn optimal_step(&self) -> usize {
        optimal_step(&self.delta)
    }
}

/// The index of the largest value (the first of ties).
pub fn optimal_step(delta: &[f64]) -> usize {
    delta
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(best, max), (i, &v)| {
            if v > max { (i, v) } else { (best, max) }
        })
        .0
}

/// One step's kernel (P×P) and, where the theory has one, its mean field (P×1).
#[derive(Debug, Clone)]
pub struct StepValues<'a> {
    /// The step's entry (`C[2]`).
    pub name: String,
    /// Its kernel.
    pub kernel: ArrayView2<'a, f64>,
    /// Its mean field, if any.
    pub mean: Option<ArrayView2<'a, f64>>,
}

/// Below this variance across units a pattern's activity has died out (or saturated): its
/// overlap is no longer defined to working precision.
const NO_VARIANCE: f64 = 1e-10;

/// The curve of the kernels `steps` for the pairs `groups`. It stops at the first step where
/// some pattern's units no longer vary (saying so in [`SeparationCurve::ended`]); fewer than
/// two steps left is an error.
pub fn curve_of(
    steps: &[StepValues<'_>],
    groups: &PairGroups,
) -> Result<SeparationCurve, SeparationError> {
    let mut curve = SeparationCurve {
        steps: Vec::with_capacity(steps.len()),
        within: Vec::with_capacity(steps.len()),
        between: Vec::with_capacity(steps.len()),
        delta: Vec::with_capacity(steps.len()),
        distance_within: Vec::with_capacity(steps.len()),
        distance_between: Vec::with_capacity(steps.len()),
        ended: None,
    };
    for step in steps {
        let k = &step.kernel;
        let mu = |p: usize| step.mean.map_or(0.0, |m| m[(p, 0)]);
        let mean_over = |pairs: &[(usize, usize)]| -> Result<(f64, f64), SeparationError> {
            let (mut overlap, mut distance) = (0.0, 0.0);
            for &(a, b) in pairs {
                for p in [a, b] {
                    let variance = k[(p, p)] - mu(p) * mu(p);
                    if variance.is_nan() || variance <= NO_VARIANCE {
                        return Err(SeparationError::NoVariance {
                            entry: step.name.clone(),
                            pattern: p + 1,
                            variance,
                        });
                    }
                }
                overlap += (k[(a, b)] - mu(a) * mu(b))
                    / ((k[(a, a)] - mu(a) * mu(a)) * (k[(b, b)] - mu(b) * mu(b))).sqrt();
                distance += k[(a, a)] + k[(b, b)] - 2.0 * k[(a, b)];
            }
            let n = pairs.len() as f64;
            Ok((overlap / n, distance / n))
        };
        let (within, between) = match (mean_over(&groups.within), mean_over(&groups.between)) {
            (Ok(within), Ok(between)) => (within, between),
            (Err(e), _) | (_, Err(e)) => {
                if curve.steps.len() < 2 {
                    return Err(e);
                }
                curve.ended = Some(e.to_string());
                break;
            }
        };
        let ((within, distance_within), (between, distance_between)) = (within, between);
        curve.steps.push(step.name.clone());
        curve.within.push(within);
        curve.between.push(between);
        curve.delta.push(within - between);
        curve.distance_within.push(distance_within);
        curve.distance_between.push(distance_between);
    }
    Ok(curve)
}

/// One step: the inputs, or a kernel entry with the mean field at the same indices where the
/// theory has one.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The inputs' Gram matrix XXᵀ/d: step 0 of a theory whose first field entry already
    /// reads the data through a nonlinearity (`Q[1]` of binary units).
    Inputs,
    /// A field entry.
    Entry {
        /// The kernel (`Q[2]`).
        kernel: EntryKey,
        /// The mean field (`m[2]`).
        mean: Option<EntryKey>,
    },
}

/// The name of the inputs' step.
pub const INPUTS: &str = "inputs";

/// The inputs' Gram matrix XXᵀ/d (P×P).
pub fn input_gram(x: ArrayView2<f64>) -> Array2<f64> {
    x.dot(&x.t()) / x.ncols() as f64
}

/// The steps of `theory`: the entries of its readout kernel's field with equal indices
/// (`C[0], …, C[L]`; `C[0,0], …, C[T,T]`), in order, up to the readout entry, each with the
/// theory's one mean field at the same indices where it has one. Where that field has no
/// definition from the data (its first entry is already a nonlinearity's output), step 0 is
/// the inputs themselves.
pub fn steps_of(
    theory: &Theory,
    settings: &NngpSettings,
    kernels: &Kernels,
) -> Result<Vec<Step>, SeparationError> {
    let readout = super::predict::readout_fields(theory, settings)
        .map_err(|e| SeparationError::NoSteps(e.to_string()))?;
    let Some(last) = readout
        .into_iter()
        .find(|key| theory.fields[key.0].kind == FieldKind::Kernel)
    else {
        return Err(SeparationError::NoSteps(
            "the readout reads no kernel field, so there are no steps to follow".into(),
        ));
    };
    let equal = |idx: &[i64]| idx.windows(2).all(|w| w[0] == w[1]);
    if !equal(&last.1) {
        return Err(SeparationError::NoSteps(format!(
            "the readout reads {}, a block between different steps",
            Kernels::name(theory, &last)
        )));
    }
    let steps: Vec<EntryKey> = kernels
        .entries
        .keys()
        .filter(|key| key.0 == last.0 && equal(&key.1) && key.1 <= last.1)
        .cloned()
        .collect();
    let mean_fields: Vec<usize> = (0..theory.fields.len())
        .filter(|&f| theory.fields[f].kind == FieldKind::Mean)
        .collect();
    let steps: Vec<Step> = steps
        .into_iter()
        .map(|kernel| {
            let mut means = mean_fields
                .iter()
                .map(|&f| (f, kernel.1.clone()))
                .filter(|key| kernels.entries.contains_key(key));
            let mean = match (means.next(), means.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            };
            Step::Entry { kernel, mean }
        })
        .collect();
    let defined = theory.definitions.iter().any(|d| d.field == last.0);
    let steps: Vec<Step> = if defined {
        steps
    } else {
        std::iter::once(Step::Inputs).chain(steps).collect()
    };
    if steps.len() < 2 {
        return Err(SeparationError::NoSteps(format!(
            "{} is the only step of the readout's field: raise the depth or the number of \
             time steps",
            Kernels::name(theory, &last)
        )));
    }
    Ok(steps)
}

/// The NNGP separation curve of `theory` on patterns `x` (parameters and quadrature in
/// `settings`), with the steps it follows.
pub fn theory_curve(
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
    groups: &PairGroups,
) -> Result<(Vec<Step>, SeparationCurve), SeparationError> {
    let kernels = nngp_kernels(theory, x, None, settings)?;
    let steps = steps_of(theory, settings, &kernels)?;
    let gram = input_gram(x);
    let values: Vec<StepValues> = steps
        .iter()
        .map(|step| match step {
            Step::Inputs => StepValues {
                name: INPUTS.into(),
                kernel: gram.view(),
                mean: None,
            },
            Step::Entry { kernel, mean } => StepValues {
                name: Kernels::name(theory, kernel),
                kernel: kernels.entries[kernel].view(),
                mean: mean.as_ref().map(|m| kernels.entries[m].view()),
            },
        })
        .collect();
    let curve = curve_of(&values, groups)?;
    Ok((steps, curve))
}

/// The entries the theory's definitions give (`C[0]`), at the bound parameters.
fn defined_keys(
    theory: &Theory,
    settings: &NngpSettings,
) -> Result<Vec<EntryKey>, SeparationError> {
    let params = theory
        .bind(&settings.overrides)
        .map_err(|e| SeparationError::NoSteps(e.to_string()))?;
    let defined = defined_entries(theory, &theory.int_values(&params))
        .map_err(|e| SeparationError::NoSteps(e.to_string()))?;
    Ok(defined.into_iter().map(|(key, _)| key).collect())
}

/// The times a Glauber curve is reported at, in units of τ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlauberTimes {
    /// The last time.
    pub end: f64,
    /// The interval between reported times.
    pub interval: f64,
    /// RK4 steps per interval.
    pub substeps: usize,
}

/// The separation under Glauber dynamics at times `0, interval, …, end` (in units of τ),
/// from the first field entry the units produce (its NNGP kernels on `x`), with the step map `map` of
/// the same theory and parameters. The steps of the curve are named `t = 0.5`.
pub fn glauber_curve(
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
    map: &StepMap,
    groups: &PairGroups,
    times: GlauberTimes,
) -> Result<SeparationCurve, SeparationError> {
    let GlauberTimes {
        end: t_max,
        interval: dt_out,
        substeps,
    } = times;
    if !(t_max.is_finite() && dt_out.is_finite() && dt_out > 0.0 && t_max >= dt_out) {
        return Err(SeparationError::Times(format!(
            "Glauber times: t_max = {t_max} and the output interval {dt_out} must be finite, \
             positive and t_max ≥ the interval"
        )));
    }
    if substeps == 0 {
        return Err(SeparationError::Times(
            "Glauber RK4 needs at least one substep".into(),
        ));
    }
    let kernels = nngp_kernels(theory, x, None, settings)?;
    let steps = steps_of(theory, settings, &kernels)?;
    // the first step the units produce: a definition from the data (`C[0] = X Xᵀ/d`) is
    // the inputs' covariance, not a state of the units the dynamics starts from
    let defined = defined_keys(theory, settings)?;
    let Some(Step::Entry { kernel: first, .. }) = steps
        .iter()
        .find(|s| matches!(s, Step::Entry { kernel, .. } if !defined.contains(kernel)))
    else {
        return Err(SeparationError::NoSteps(
            "no field entry computed from the units to start from".into(),
        ));
    };
    // the map's state fields at the first step's indices
    let start: Vec<&Array2<f64>> = map
        .fields
        .iter()
        .map(|f| {
            let key = (f.field, first.1.clone());
            kernels.entries.get(&key).ok_or_else(|| {
                SeparationError::NoSteps(format!(
                    "the step map reads {}, which the theory does not compute at {}",
                    f.name,
                    Kernels::name(theory, first)
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let kernel_field = map.kernel_field().ok_or_else(|| {
        SeparationError::NoSteps(format!(
            "the step {} has no single kernel to measure overlaps on",
            map.describe()
        ))
    })?;
    let mean_field = map.mean_field();
    let p = x.nrows();
    let pairs: Vec<(usize, usize)> = groups
        .within
        .iter()
        .chain(&groups.between)
        .copied()
        .collect();
    let pair_state = |a: usize, b: usize| -> Vec<[f64; 3]> {
        map.fields
            .iter()
            .zip(&start)
            .map(|(f, m)| match f.kind {
                FieldKind::Kernel => [m[(a, a)], m[(b, b)], m[(a, b)]],
                FieldKind::Mean => [m[(a, 0)], m[(b, 0)], 0.0],
            })
            .collect()
    };
    let mut states: Vec<Vec<[f64; 3]>> = pairs.iter().map(|&(a, b)| pair_state(a, b)).collect();
    let velocity = |s: &[[f64; 3]]| -> Result<Vec<[f64; 3]>, SeparationError> {
        let f = map.apply(s)?;
        Ok(f.iter()
            .zip(s)
            .map(|(f, s)| std::array::from_fn(|k| f[k] - s[k]))
            .collect())
    };
    let axpy = |s: &[[f64; 3]], k: &[[f64; 3]], h: f64| -> Vec<[f64; 3]> {
        s.iter()
            .zip(k)
            .map(|(s, k)| std::array::from_fn(|i| s[i] + h * k[i]))
            .collect()
    };
    let outputs = (t_max / dt_out + 1e-9).floor() as usize;
    let h = dt_out / substeps as f64;
    let mut values: Vec<(String, Array2<f64>, Option<Array2<f64>>)> = Vec::new();
    for n in 0..=outputs {
        if n > 0 {
            for state in &mut states {
                for _ in 0..substeps {
                    let k1 = velocity(state)?;
                    let k2 = velocity(&axpy(state, &k1, h / 2.0))?;
                    let k3 = velocity(&axpy(state, &k2, h / 2.0))?;
                    let k4 = velocity(&axpy(state, &k3, h))?;
                    for (i, s) in state.iter_mut().enumerate() {
                        for j in 0..3 {
                            s[j] +=
                                h / 6.0 * (k1[i][j] + 2.0 * k2[i][j] + 2.0 * k3[i][j] + k4[i][j]);
                        }
                    }
                }
            }
        }
        let mut kernel = Array2::zeros((p, p));
        let mut mean = mean_field.map(|_| Array2::zeros((p, 1)));
        for (&(a, b), state) in pairs.iter().zip(&states) {
            let [aa, bb, ab] = state[kernel_field];
            kernel[(a, a)] = aa;
            kernel[(b, b)] = bb;
            kernel[(a, b)] = ab;
            kernel[(b, a)] = ab;
            if let (Some(m), Some(i)) = (mean.as_mut(), mean_field) {
                m[(a, 0)] = state[i][0];
                m[(b, 0)] = state[i][1];
            }
        }
        values.push((
            format!("t = {}", crate::plot::curves::tick(n as f64 * dt_out)),
            kernel,
            mean,
        ));
    }
    let views: Vec<StepValues> = values
        .iter()
        .map(|(name, k, m)| StepValues {
            name: name.clone(),
            kernel: k.view(),
            mean: m.as_ref().map(|m| m.view()),
        })
        .collect();
    curve_of(&views, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theory(file: &str) -> Theory {
        let source = std::fs::read_to_string(file).expect("example exists");
        crate::compile(&source, file).expect("example checks")
    }

    fn curve(file: &str, set: &[(&str, f64)], within: f64, between: f64) -> SeparationCurve {
        let (x, groups) = overlap_patterns(within, between).expect("valid overlaps");
        let settings = NngpSettings {
            overrides: set.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            ..NngpSettings::default()
        };
        theory_curve(&theory(file), x.view(), &settings, &groups)
            .expect("a curve")
            .1
    }

    #[test]
    fn sign_units_match_t12() {
        // THEORY.md T12: ρ' = (2/π) arcsin ρ, Δ over 9 steps
        let set = [("L", 8.0), ("gb", 0.0)];
        let c = curve("examples/binary_sign.action", &set, 0.99, 0.8);
        let want = [
            0.190000, 0.319559, 0.325665, 0.255421, 0.177568, 0.117220, 0.075738, 0.048508,
            0.030956,
        ];
        assert_eq!(c.steps.len(), 9);
        assert_eq!(c.steps[0], "C[0]");
        for (got, want) in c.delta.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{:?}", c.delta);
        }
        assert_eq!(c.optimal_step(), 2);
        let c = curve("examples/binary_sign.action", &set, 0.999, 0.9);
        for (got, want) in c
            .delta
            .iter()
            .zip([0.099, 0.258660, 0.342511, 0.306881, 0.226555])
        {
            assert!((got - want).abs() < 1e-6, "{:?}", c.delta);
        }
        assert_eq!(c.optimal_step(), 2);
        let c = curve("examples/binary_sign.action", &set, 0.95, 0.5);
        for (got, want) in c.delta.iter().zip([0.45, 0.464501, 0.371696]) {
            assert!((got - want).abs() < 1e-6, "{:?}", c.delta);
        }
        assert_eq!(c.optimal_step(), 1);
        // ±1 units: d = 2g(1 − ρ) with the length g
        for (d, rho) in c.distance_within.iter().zip(&c.within).skip(1) {
            assert!((d - 2.0 * (1.0 - rho)).abs() < 1e-12);
        }
    }

    #[test]
    fn sign_units_follow_the_arcsine_recursion_exactly() {
        // ρ_{l+1} = (2/π) arcsin ρ_l, computed here independently, to rounding
        let set = [("L", 12.0), ("gb", 0.0), ("g", 2.3)];
        let c = curve("examples/binary_sign.action", &set, 0.97, 0.3);
        let (mut w, mut b) = (0.97f64, 0.3f64);
        for l in 0..=12 {
            assert!(
                (c.within[l] - w).abs() < 1e-12,
                "step {l}: {} vs {w}",
                c.within[l]
            );
            assert!(
                (c.between[l] - b).abs() < 1e-12,
                "step {l}: {} vs {b}",
                c.between[l]
            );
            w = std::f64::consts::FRAC_2_PI * w.asin();
            b = std::f64::consts::FRAC_2_PI * b.asin();
        }
    }

    #[test]
    fn threshold_units_start_from_the_inputs_and_separate_later_when_sparse() {
        // 0/1 units with mean fields: step 0 is the inputs (Q[1] is already a threshold's
        // output), overlaps are correlation coefficients centred by m[l]
        let file = "examples/binary_threshold.action";
        let dense = curve(file, &[("L", 6.0), ("theta", 0.0)], 0.999, 0.9);
        assert_eq!(dense.steps[..3], ["inputs", "Q[1]", "Q[2]"]);
        assert!((dense.delta[0] - 0.099).abs() < 1e-12);
        // at θ = 0 the first step is the sign map on the centred overlap: (2/π) arcsin ρ
        let sign = |r: f64| std::f64::consts::FRAC_2_PI * r.asin();
        assert!((dense.delta[1] - (sign(0.999) - sign(0.9))).abs() < 1e-9);
        assert_eq!(dense.optimal_step(), 1);
        // sparser activity (higher threshold): a later optimum and a larger separation
        let sparse = curve(file, &[("L", 6.0), ("theta", 1.0)], 0.999, 0.9);
        assert_eq!(sparse.optimal_step(), 2);
        assert!(sparse.delta[2] > dense.delta[1]);
        // the activity dies out under inhibition: the curve says where it stops
        assert!(sparse.steps.len() < 7);
        assert!(
            sparse
                .ended
                .as_deref()
                .is_some_and(|e| e.contains("do not vary"))
        );
    }

    #[test]
    fn a_smooth_near_critical_network_separates_slowly_without_an_early_optimum() {
        // T12's comparison: unit-slope erf, g = 1.5, g_b = 0, unit-diagonal inputs
        let set = [("L", 8.0), ("gb", 0.0), ("gb0", 0.0), ("g", 1.5)];
        let c = curve("examples/deep_erf.action", &set, 0.99, 0.8);
        assert!((c.delta[0] - 0.19).abs() < 1e-12);
        assert!((c.delta[8] - 0.274839).abs() < 1e-6, "{:?}", c.delta);
        assert!(c.delta.windows(2).all(|w| w[1] > w[0]), "{:?}", c.delta);
        assert_eq!(c.optimal_step(), 8);
    }

    #[test]
    fn recurrent_steps_are_the_equal_time_kernels() {
        let set = [("T", 4.0)];
        let c = curve("examples/recurrent_erf.action", &set, 0.99, 0.8);
        assert_eq!(c.steps, ["C[0,0]", "C[1,1]", "C[2,2]", "C[3,3]", "C[4,4]"]);
    }

    fn glauber(
        file: &str,
        set: &[(&str, f64)],
        overlaps: (f64, f64),
        (t_max, interval): (f64, f64),
    ) -> SeparationCurve {
        let theory = theory(file);
        let (x, groups) = overlap_patterns(overlaps.0, overlaps.1).expect("valid overlaps");
        let overrides: Vec<(String, f64)> = set.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let settings = NngpSettings {
            overrides: overrides.clone(),
            ..NngpSettings::default()
        };
        let map = StepMap::from_theory(&theory, &overrides, 80).expect("a step map");
        let times = GlauberTimes {
            end: t_max,
            interval,
            substeps: 50,
        };
        glauber_curve(&theory, x.view(), &settings, &map, &groups, times).expect("a curve")
    }

    #[test]
    fn glauber_sign_units_follow_the_relaxation_ode() {
        // g = g0 = 1: C_aa = 1 stays, ρ obeys dρ/dt = −ρ + (2/π) arcsin ρ: integrated here by the
        // midpoint rule with a much smaller step
        let c = glauber(
            "examples/binary_sign.action",
            &[("gb", 0.0), ("g", 1.0), ("L", 3.0)],
            (0.99, 0.8),
            (6.0, 0.5),
        );
        assert_eq!(c.steps.len(), 13);
        assert_eq!(c.steps[2], "t = 1");
        let f = |r: f64| -r + std::f64::consts::FRAC_2_PI * r.asin();
        // from the first layer of units, ρ₁ = (2/π) arcsin ρ₀ (C[0] is the inputs' covariance)
        for (rho0, got) in [(0.99f64, &c.within), (0.8f64, &c.between)] {
            let mut r: f64 = std::f64::consts::FRAC_2_PI * rho0.asin();
            let h = 1e-5;
            for (n, g) in got.iter().enumerate() {
                assert!((g - r).abs() < 1e-9, "t = {}: {g} vs {r}", n as f64 * 0.5);
                for _ in 0..50_000 {
                    r += h * f(r + 0.5 * h * f(r));
                }
            }
        }
        // Δ first grows, at the rate dΔ/dt = Δ(2) − Δ(1) > 0 the synchronous steps give, and
        // peaks within the first half update per unit
        let fine = glauber(
            "examples/binary_sign.action",
            &[("gb", 0.0), ("g", 1.0), ("L", 3.0)],
            (0.99, 0.8),
            (1.0, 0.02),
        );
        let sync = curve("examples/binary_sign.action", &[("gb", 0.0)], 0.99, 0.8);
        let slope = (fine.delta[1] - fine.delta[0]) / 0.02;
        assert!(
            (slope - (sync.delta[2] - sync.delta[1])).abs() < 2e-3,
            "{slope}"
        );
        let t_star = fine.optimal_step() as f64 * 0.02;
        assert!(
            t_star > 0.0 && t_star < 0.5 && c.optimal_step() == 0,
            "t* = {t_star}: {:?}",
            fine.delta
        );
    }

    #[test]
    fn glauber_threshold_units_relax_to_the_synchronous_fixed_point() {
        let set = [("L", 60.0), ("theta", 0.0)];
        let file = "examples/binary_threshold.action";
        let slow = glauber(file, &set, (0.999, 0.9), (30.0, 0.5));
        let fast = curve(file, &set, 0.999, 0.9);
        let (a, b) = (
            slow.within.last().expect("t = 30"),
            fast.within.last().expect("l = 60"),
        );
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        // and starts from the first driven step
        assert!((slow.within[0] - fast.within[1]).abs() < 1e-12);
    }

    #[test]
    fn labels_make_pairs_and_bad_input_is_refused() {
        let g = PairGroups::from_labels(&[1.0, 1.0, -1.0]).expect("groups");
        assert_eq!(g.within, [(0, 1)]);
        assert_eq!(g.between, [(0, 2), (1, 2)]);
        assert!(PairGroups::from_labels(&[1.0, -1.0]).is_err());
        assert!(PairGroups::from_labels(&[1.0, 1.0]).is_err());
        assert!(PairGroups::from_labels(&[1.0, f64::NAN, 1.0]).is_err());
        assert!(overlap_patterns(1.2, 0.5).is_err());
        assert!(overlap_patterns(0.5, f64::NAN).is_err());
    }
}
