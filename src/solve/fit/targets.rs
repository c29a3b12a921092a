//! The targets file (`saddle fit --targets`): stimuli, free parameters with bounds, the
//! recorded statistics and their covariance, the readout; statistics read off the kernels.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ndarray::Array2;
use serde::Deserialize;

use crate::check::ir::Theory;
use crate::solve::nngp::EntryKey;

/// The targets file (`saddle fit THEORY --targets T.json`), as JSON:
///
/// ```json
/// {
///   "stimuli": [[1.0, 0.0, 0.3], [0.9, 0.4, 0.3], [0.0, 1.0, -0.2]],
///   "classes": [0, 0, 1],
///   "fit": [
///     { "name": "g", "min": 0.2, "max": 5.0 },
///     { "name": "theta", "min": -1.0, "max": 1.5, "start": 0.3 }
///   ],
///   "targets": [
///     { "statistic": "activity", "field": "m[2]", "stimuli": [0], "value": 0.31, "error": 0.004 },
///     { "statistic": "distance", "field": "Q[2]", "stimuli": [0, 1], "value": 0.12, "error": 0.003 },
///     { "statistic": "angle", "field": "Q[2]", "stimuli": [0, 2], "value": 1.05, "error": 0.01 }
///   ],
///   "readout": { "fields": ["Q[1]", "Q[2]", "Q[3]"], "noise": 0.1 }
/// }
/// ```
///
/// * `stimuli`: the inputs, one row per stimulus (the theory's data `X`), or the path of a
///   `.npy` file relative to the targets file.
/// * `fit`: the parameters to fit, each with its box `[min, max]` and optionally a start (the
///   theory's value otherwise); every other parameter keeps its value (file or `--set`).
/// * `targets`: each a statistic of a field entry on one or two stimuli (0-based rows of
///   `stimuli`): `activity` (a mean field's entry: the fraction of active units for 0/1
///   units), `distance` R = K_αα + K_ββ − 2K_αβ, `angle` Θ = arccos(K_αβ/√(K_αα K_ββ)) in
///   radians, `kernel` K_αβ. `error` is the standard error of `value`.
/// * `covariance` (optional): the full covariance of the targets' values, in their order
///   (statistics measured on the same recordings are correlated); replaces the `error`s.
/// * `classes` (optional): a class per stimulus (two classes) — the separability of the
///   classes by a linear readout is then predicted at every step of `readout.fields` (default:
///   every equal-index entry of the kernel field the targets use), with readout noise
///   `readout.noise` (default: the theory's `kappa`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsFile {
    /// The stimuli (rows) or a `.npy` path relative to the file.
    pub stimuli: StimuliSpec,
    /// A class per stimulus.
    #[serde(default)]
    pub classes: Option<Vec<f64>>,
    /// The parameters to fit.
    pub fit: Vec<FreeSpec>,
    /// The statistics.
    pub targets: Vec<TargetSpec>,
    /// The targets' covariance (replaces their `error`s).
    #[serde(default)]
    pub covariance: Option<Vec<Vec<f64>>>,
    /// The readout whose separability is predicted.
    #[serde(default)]
    pub readout: Option<ReadoutSpec>,
}

/// The stimuli: a matrix or a `.npy` path.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StimuliSpec {
    /// One row per stimulus.
    Rows(Vec<Vec<f64>>),
    /// A `.npy` file (P×d), relative to the targets file.
    File(PathBuf),
}

/// A parameter to fit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeSpec {
    /// The parameter's name in the theory.
    pub name: String,
    /// Lower end of its box.
    pub min: f64,
    /// Upper end of its box.
    pub max: f64,
    /// Where the first start begins (default: the theory's value, clamped into the box).
    #[serde(default)]
    pub start: Option<f64>,
}

/// One statistic as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// `activity`, `distance`, `angle` or `kernel`.
    pub statistic: StatisticKind,
    /// The field entry: `m[2]`, `Q[3]`, `C[2,2]`.
    pub field: String,
    /// One stimulus (activity) or two (the others).
    pub stimuli: Vec<usize>,
    /// The measured value.
    pub value: f64,
    /// Its standard error (unless the file gives `covariance`).
    #[serde(default)]
    pub error: Option<f64>,
}

/// The readout of [`separability`](super::separability).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadoutSpec {
    /// The kernel entries of the steps, in order (`Q[1]`, `Q[2]`, …).
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// The readout's noise variance κ.
    #[serde(default)]
    pub noise: Option<f64>,
}

/// Which statistic of a field entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatisticKind {
    /// A mean field's entry m_α.
    Activity,
    /// R_αβ = K_αα + K_ββ − 2K_αβ.
    Distance,
    /// Θ_αβ = arccos(K_αβ / √(K_αα K_ββ)), radians.
    Angle,
    /// K_αβ.
    Kernel,
}

impl StatisticKind {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            StatisticKind::Activity => "activity",
            StatisticKind::Distance => "distance",
            StatisticKind::Angle => "angle",
            StatisticKind::Kernel => "kernel",
        }
    }
}

/// A statistic resolved against the theory.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistic {
    /// Which.
    pub kind: StatisticKind,
    /// The field entry.
    pub entry: EntryKey,
    /// Its name as written (`Q[3]`).
    pub entry_name: String,
    /// The stimuli (α, β); β = α for activity.
    pub stimuli: (usize, usize),
}

impl Statistic {
    /// `distance Q[3] (0, 1)`.
    pub fn label(&self) -> String {
        let (a, b) = self.stimuli;
        match self.kind {
            StatisticKind::Activity => format!("activity {} ({a})", self.entry_name),
            kind => format!("{} {} ({a}, {b})", kind.name(), self.entry_name),
        }
    }

    /// The statistic's value from computed or sampled entries.
    pub fn evaluate(&self, entries: &BTreeMap<EntryKey, Array2<f64>>) -> Result<f64, String> {
        let m = entries
            .get(&self.entry)
            .ok_or_else(|| format!("{} is not computed", self.entry_name))?;
        let (a, b) = self.stimuli;
        let value = match self.kind {
            StatisticKind::Activity => m[(a, 0)],
            StatisticKind::Kernel => m[(a, b)],
            StatisticKind::Distance => m[(a, a)] + m[(b, b)] - 2.0 * m[(a, b)],
            StatisticKind::Angle => {
                let norm = (m[(a, a)] * m[(b, b)]).sqrt();
                if norm.is_nan() || norm <= 0.0 {
                    return Err(format!(
                        "{}: the angle between responses ({a}, {b}) needs non-zero responses \
                         ({0}[{a},{a}] = {1:.3e}, {0}[{b},{b}] = {2:.3e})",
                        self.label(),
                        m[(a, a)],
                        m[(b, b)],
                    ));
                }
                (m[(a, b)] / norm).clamp(-1.0, 1.0).acos()
            }
        };
        if value.is_finite() {
            Ok(value)
        } else {
            Err(format!("{} is {value}", self.label()))
        }
    }
}

/// A parameter being fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeParameter {
    /// Its index in the theory's parameters.
    pub id: usize,
    /// Its name.
    pub name: String,
    /// Its box.
    pub lower: f64,
    /// Its box.
    pub upper: f64,
    /// The first start.
    pub start: f64,
}

/// Reads a field entry's name (`Q[3]`, `C[2, 2]`, `m`) against the theory.
pub fn parse_entry(theory: &Theory, text: &str) -> Result<EntryKey, String> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (name, indices) = match text.split_once('[') {
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("`{text}`: an entry is written `name[i]` or `name[i,j]`"))?;
            let indices = inner
                .split(',')
                .map(|i| {
                    i.parse::<i64>()
                        .map_err(|_| format!("`{text}`: `{i}` is not an integer index"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (name.to_string(), indices)
        }
        None => (text.clone(), Vec::new()),
    };
    let id = theory.field(&name).ok_or_else(|| {
        let names: Vec<&str> = theory.fields.iter().map(|f| f.name.as_str()).collect();
        format!(
            "`{text}`: {} has no field `{name}` (its fields: {})",
            theory.name,
            names.join(", ")
        )
    })?;
    Ok((id, indices))
}
