//! # Constraining a network model by recorded population statistics
//!
//! Given statistics s̄ of a population's responses to P stimuli — the mean activity m_α, the
//! distance R_αβ = K_αα + K_ββ − 2K_αβ between two responses, the angle
//! Θ_αβ = arccos(K_αβ / √(K_αα K_ββ)) between them (K the second moment (1/N) Σᵢ nᵢ_α nᵢ_β
//! of the states), or a kernel entry itself — with their covariance Σ, [`fit`] finds the
//! parameters θ of a theory whose mean-field (NNGP) statistics s(θ) minimise
//! $$\chi^2(\theta) = (s(\theta) - \bar s)^\top \Sigma^{-1} (s(\theta) - \bar s):$$
//! Levenberg–Marquardt on the whitened residuals r = L⁻¹(s − s̄) (Σ = LLᵀ) inside the box the
//! user gives, the Jacobian by central differences, from several starts (the given one and
//! seeded uniform draws in the box). The error of the estimate comes from the curvature at the
//! minimum, Cov θ̂ = (JᵀJ)⁻¹ — the inverse Fisher information of the Gaussian likelihood of
//! s̄ — and is trustworthy when χ²/dof ≈ 1 and no parameter sits on its bound.
//!
//! [`separability`] then predicts how well an optimally trained linear readout separates the
//! stimuli of two classes at every step (layer or time): the Bayesian linear readout of the
//! states at step l (kernel K_l + κI, targets y = ±1 by class), trained on all stimuli but α,
//! predicts y_α with mean μ_α = y_α − [A y]_α / A_αα and variance σ²_α = 1/A_αα
//! (A = (K_l + κI)⁻¹, the leave-one-out identities of GP regression); the separability is the
//! mean probability of the correct sign, (1/P) Σ_α Φ(y_α μ_α / σ_α), and its error follows
//! from Cov θ̂ by the delta method.
//!
//! The statistics are those of the named field entries (`m[3]`, `Q[3]`, `C[2,2]`), so any
//! theory — binary or rate, layered or recurrent — can be fitted to whatever of its fields was
//! recorded. The targets file's format is [`TargetsFile`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayView2};
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;

use crate::check::ir::{FieldKind, Theory};
use crate::solve::nngp::{EntryKey, Keep, NngpSettings, nngp_kernels};

/// Why a fit could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The targets file is malformed or names something the theory lacks.
    #[error("{0}")]
    Targets(String),
    /// The theory could not be evaluated at the starting point.
    #[error("the theory at the starting parameters ({at}): {reason}")]
    Start {
        /// The parameters, `name=value`.
        at: String,
        /// Why.
        reason: String,
    },
    /// No start reached a finite χ².
    #[error("no start converged: {0}")]
    NoConvergence(String),
    /// The statistics do not determine the parameters.
    #[error(
        "the statistics do not determine the parameters: the combination {combination} \
         leaves χ² flat (curvature {curvature:.3e}); fix one of them or add statistics"
    )]
    NotIdentifiable {
        /// The flat direction, as `a·name + b·name`.
        combination: String,
        /// Its curvature (smallest eigenvalue of JᵀJ).
        curvature: f64,
    },
    /// The separability readout failed.
    #[error("separability at {step}: {reason}")]
    Separability {
        /// The step's entry.
        step: String,
        /// Why.
        reason: String,
    },
}

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

/// The readout of [`separability`].
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

/// A fit, set up: the theory, the stimuli, what is free, what is matched.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    /// The theory.
    pub theory: &'a Theory,
    /// Every parameter's value (the free ones are overwritten at each evaluation).
    pub base: Vec<f64>,
    /// The stimuli, one row each.
    pub stimuli: Array2<f64>,
    /// A class per stimulus.
    pub classes: Option<Vec<f64>>,
    /// The free parameters.
    pub free: Vec<FreeParameter>,
    /// The statistics, in the targets' order.
    pub statistics: Vec<Statistic>,
    /// Their measured values.
    pub observed: Vec<f64>,
    /// Their covariance.
    pub covariance: Array2<f64>,
    /// L⁻¹ for Σ = LLᵀ (whitens the residuals).
    whitening: Array2<f64>,
    /// The readout's steps (kernel entries) and noise, when classes are given.
    pub readout: Option<(Vec<(EntryKey, String)>, f64)>,
    /// Gauss–Hermite order for expectations without a closed form.
    pub quadrature_order: usize,
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

impl<'a> Problem<'a> {
    /// Sets up a fit from a targets file (`base_dir`: where relative paths start) with the
    /// other parameters at `params`.
    pub fn new(
        theory: &'a Theory,
        params: &[f64],
        file: &TargetsFile,
        base_dir: &Path,
        quadrature_order: usize,
    ) -> Result<Self, FitError> {
        let bad = |m: String| FitError::Targets(m);
        let stimuli = match &file.stimuli {
            StimuliSpec::Rows(rows) => {
                let d = rows.first().map_or(0, Vec::len);
                if rows.is_empty() || d == 0 || rows.iter().any(|r| r.len() != d) {
                    return Err(bad(
                        "stimuli: give one row of equal length per stimulus (at least one)".into(),
                    ));
                }
                Array2::from_shape_fn((rows.len(), d), |(i, j)| rows[i][j])
            }
            StimuliSpec::File(path) => {
                let path = base_dir.join(path);
                ndarray_npy::read_npy::<_, Array2<f64>>(&path)
                    .map_err(|e| bad(format!("stimuli: reading {}: {e}", path.display())))?
            }
        };
        if let Some(why) = crate::solve::nngp::input_problem(stimuli.view()) {
            return Err(bad(format!("stimuli: {why}")));
        }
        let p = stimuli.nrows();
        if file.fit.is_empty() {
            return Err(bad("fit: name at least one parameter to fit".into()));
        }
        let mut free: Vec<FreeParameter> = Vec::new();
        for (i, spec) in file.fit.iter().enumerate() {
            let id = theory.param(&spec.name).ok_or_else(|| {
                let names: Vec<&str> = theory.params.iter().map(|p| p.name.as_str()).collect();
                bad(format!(
                    "fit[{i}]: {} has no parameter `{}` (its parameters: {})",
                    theory.name,
                    spec.name,
                    names.join(", ")
                ))
            })?;
            if matches!(theory.params[id].ty, crate::check::ir::ParamType::Int) {
                return Err(bad(format!(
                    "fit[{i}]: `{}` is an integer parameter; only real parameters can be fitted",
                    spec.name
                )));
            }
            if free.iter().any(|f| f.id == id) {
                return Err(bad(format!("fit[{i}]: `{}` is named twice", spec.name)));
            }
            if !(spec.min.is_finite() && spec.max.is_finite() && spec.min < spec.max) {
                return Err(bad(format!(
                    "fit[{i}]: `{}` needs a box min < max (finite), not [{}, {}]",
                    spec.name, spec.min, spec.max
                )));
            }
            let start = spec.start.unwrap_or(params[id]);
            if !start.is_finite() {
                return Err(bad(format!("fit[{i}]: start = {start}")));
            }
            free.push(FreeParameter {
                id,
                name: spec.name.clone(),
                lower: spec.min,
                upper: spec.max,
                start: start.clamp(spec.min, spec.max),
            });
        }
        if file.targets.is_empty() {
            return Err(bad("targets: give at least one statistic".into()));
        }
        let mut statistics = Vec::new();
        let mut observed = Vec::new();
        for (i, t) in file.targets.iter().enumerate() {
            let entry =
                parse_entry(theory, &t.field).map_err(|e| bad(format!("targets[{i}]: {e}")))?;
            let field = &theory.fields[entry.0];
            let is_mean = matches!(field.kind, FieldKind::Mean);
            let stimuli = match (t.statistic, t.stimuli.as_slice()) {
                (StatisticKind::Activity, &[a]) => (a, a),
                (StatisticKind::Activity, _) => {
                    return Err(bad(format!(
                        "targets[{i}]: activity is of one stimulus, not {:?}",
                        t.stimuli
                    )));
                }
                (_, &[a, b]) => (a, b),
                (kind, _) => {
                    return Err(bad(format!(
                        "targets[{i}]: {} is of two stimuli, not {:?}",
                        kind.name(),
                        t.stimuli
                    )));
                }
            };
            if stimuli.0 >= p || stimuli.1 >= p {
                return Err(bad(format!(
                    "targets[{i}]: stimuli {:?} out of range (there are {p} stimuli, 0-based)",
                    t.stimuli
                )));
            }
            match (t.statistic, is_mean) {
                (StatisticKind::Activity, false) => {
                    return Err(bad(format!(
                        "targets[{i}]: activity needs a mean field; `{}` is a kernel",
                        t.field
                    )));
                }
                (kind, true) if kind != StatisticKind::Activity => {
                    return Err(bad(format!(
                        "targets[{i}]: {} needs a kernel; `{}` is a mean field",
                        kind.name(),
                        t.field
                    )));
                }
                _ => {}
            }
            if !t.value.is_finite() {
                return Err(bad(format!("targets[{i}]: value = {}", t.value)));
            }
            statistics.push(Statistic {
                kind: t.statistic,
                entry_name: t.field.chars().filter(|c| !c.is_whitespace()).collect(),
                entry,
                stimuli,
            });
            observed.push(t.value);
        }
        let n = statistics.len();
        let covariance = match &file.covariance {
            Some(rows) => {
                if rows.len() != n || rows.iter().any(|r| r.len() != n) {
                    return Err(bad(format!(
                        "covariance: a {n}×{n} matrix is needed (one row and column per target)"
                    )));
                }
                Array2::from_shape_fn((n, n), |(i, j)| rows[i][j])
            }
            None => {
                let mut c = Array2::zeros((n, n));
                for (i, t) in file.targets.iter().enumerate() {
                    match t.error {
                        Some(e) if e.is_finite() && e > 0.0 => c[(i, i)] = e * e,
                        Some(e) => {
                            return Err(bad(format!(
                                "targets[{i}]: error = {e}; a standard error is positive"
                            )));
                        }
                        None => {
                            return Err(bad(format!(
                                "targets[{i}]: no `error` (and no `covariance` for the file)"
                            )));
                        }
                    }
                }
                c
            }
        };
        let whitening =
            inverse_cholesky(&covariance).map_err(|e| bad(format!("covariance: {e}")))?;
        if n < free.len() {
            return Err(bad(format!(
                "{} parameters cannot be fitted to {n} statistics",
                free.len()
            )));
        }
        let classes = file.classes.clone();
        if let Some(c) = &classes
            && c.len() != p
        {
            return Err(bad(format!("classes: {} given for {p} stimuli", c.len())));
        }
        let mut problem = Problem {
            theory,
            base: params.to_vec(),
            stimuli,
            classes,
            free,
            statistics,
            observed,
            covariance,
            whitening,
            readout: None,
            quadrature_order,
        };
        // the start must evaluate; it also tells which entries exist
        let start: Vec<f64> = problem.free.iter().map(|f| f.start).collect();
        let kernels = problem
            .kernels(&start, Keep::All)
            .map_err(|reason| FitError::Start {
                at: problem.describe(&start),
                reason,
            })?;
        for s in &problem.statistics {
            if !kernels.contains_key(&s.entry) {
                return Err(bad(format!(
                    "`{}` is not an entry of {} (its entries: {})",
                    s.entry_name,
                    theory.name,
                    entry_names(theory, &kernels)
                )));
            }
        }
        if problem.classes.is_some() {
            problem.readout = Some(problem.readout_steps(file.readout.as_ref(), &kernels)?);
        } else if file.readout.is_some() {
            return Err(bad(
                "readout: the separability needs `classes` (a class per stimulus)".into(),
            ));
        }
        Ok(problem)
    }

    fn readout_steps(
        &self,
        spec: Option<&ReadoutSpec>,
        kernels: &BTreeMap<EntryKey, Array2<f64>>,
    ) -> Result<(Vec<(EntryKey, String)>, f64), FitError> {
        let bad = |m: String| FitError::Targets(m);
        let theory = self.theory;
        let steps: Vec<(EntryKey, String)> = match spec.and_then(|r| r.fields.as_ref()) {
            Some(fields) => fields
                .iter()
                .map(|f| {
                    let key = parse_entry(theory, f).map_err(|e| bad(format!("readout: {e}")))?;
                    match kernels.get(&key) {
                        Some(m) if m.ncols() == m.nrows() => {
                            Ok((key, f.chars().filter(|c| !c.is_whitespace()).collect()))
                        }
                        Some(_) => {
                            Err(bad(format!("readout: `{f}` is a mean field, not a kernel")))
                        }
                        None => Err(bad(format!(
                            "readout: `{f}` is not an entry of {} (its entries: {})",
                            theory.name,
                            entry_names(theory, kernels)
                        ))),
                    }
                })
                .collect::<Result<_, _>>()?,
            None => {
                let field = self
                    .statistics
                    .iter()
                    .find(|s| s.kind != StatisticKind::Activity)
                    .map(|s| s.entry.0)
                    .ok_or_else(|| {
                        bad("readout: name its `fields` (no target names a kernel)".into())
                    })?;
                kernels
                    .iter()
                    .filter(|(k, m)| {
                        k.0 == field
                            && m.nrows() == m.ncols()
                            && k.1.windows(2).all(|w| w[0] == w[1])
                    })
                    .map(|(k, _)| (k.clone(), crate::solve::nngp::Kernels::name(theory, k)))
                    .collect()
            }
        };
        if steps.is_empty() {
            return Err(bad("readout: no steps".into()));
        }
        let noise = match spec.and_then(|r| r.noise) {
            Some(k) => k,
            None => theory
                .param("kappa")
                .map(|id| self.base[id])
                .ok_or_else(|| {
                    bad(format!(
                        "readout: give its `noise` ({} has no parameter `kappa`)",
                        theory.name
                    ))
                })?,
        };
        if !(noise.is_finite() && noise > 0.0) {
            return Err(bad(format!(
                "readout: noise = {noise}; it must be positive"
            )));
        }
        let labels = self.classes.as_deref().unwrap_or(&[]);
        let mut distinct: Vec<f64> = labels.to_vec();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        if distinct.len() != 2 || distinct.iter().any(|c| !c.is_finite()) {
            return Err(bad(format!(
                "classes: the separability needs exactly two classes, not {labels:?}"
            )));
        }
        Ok((steps, noise))
    }

    /// `g=1.5, theta=0.3`.
    pub fn describe(&self, theta: &[f64]) -> String {
        self.free
            .iter()
            .zip(theta)
            .map(|(f, v)| format!("{}={v}", f.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every parameter's value with the free ones at `theta`.
    pub fn parameters(&self, theta: &[f64]) -> Vec<f64> {
        let mut params = self.base.clone();
        for (f, &v) in self.free.iter().zip(theta) {
            params[f.id] = v;
        }
        params
    }

    fn kernels(
        &self,
        theta: &[f64],
        keep: Keep,
    ) -> Result<BTreeMap<EntryKey, Array2<f64>>, String> {
        let params = self.parameters(theta);
        let settings = NngpSettings {
            overrides: self
                .theory
                .params
                .iter()
                .zip(&params)
                .map(|(p, v)| (p.name.clone(), *v))
                .collect(),
            quadrature_order: self.quadrature_order,
            outputs: Some(1),
            keep,
            ..NngpSettings::default()
        };
        nngp_kernels(self.theory, self.stimuli.view(), None, &settings)
            .map(|k| k.entries)
            .map_err(|e| e.to_string())
    }

    fn needed(&self) -> Keep {
        let mut keys: Vec<EntryKey> = self.statistics.iter().map(|s| s.entry.clone()).collect();
        if let Some((steps, _)) = &self.readout {
            keys.extend(steps.iter().map(|(k, _)| k.clone()));
        }
        keys.sort();
        keys.dedup();
        Keep::Only(keys)
    }

    /// The statistics of the theory at `theta` (the free parameters' values).
    pub fn model(&self, theta: &[f64]) -> Result<Vec<f64>, String> {
        let kernels = self.kernels(theta, self.needed())?;
        self.statistics
            .iter()
            .map(|s| s.evaluate(&kernels))
            .collect()
    }

    fn residuals(&self, theta: &[f64]) -> Result<Array1<f64>, String> {
        let model = self.model(theta)?;
        let diff = Array1::from_iter(model.iter().zip(&self.observed).map(|(m, o)| m - o));
        Ok(self.whitening.dot(&diff))
    }

    /// Finite-difference step of parameter `i` at `v`, inside its box.
    fn step(&self, i: usize, v: f64) -> (f64, f64) {
        let f = &self.free[i];
        let h = 1e-5 * (1.0 + v.abs()).max((f.upper - f.lower) * 1e-3).min(1.0);
        let up = (v + h).min(f.upper);
        let down = (v - h).max(f.lower);
        (down, up)
    }

    /// ∂r/∂θ (whitened residuals) by central differences (one-sided at the box).
    fn jacobian(&self, theta: &[f64]) -> Result<Array2<f64>, String> {
        let n = self.statistics.len();
        let mut j = Array2::zeros((n, theta.len()));
        for i in 0..theta.len() {
            let (down, up) = self.step(i, theta[i]);
            let mut t = theta.to_vec();
            t[i] = up;
            let r_up = self.residuals(&t)?;
            t[i] = down;
            let r_down = self.residuals(&t)?;
            j.column_mut(i).assign(&((r_up - r_down) / (up - down)));
        }
        Ok(j)
    }

    /// The derivative of a scalar function of the parameters by central differences.
    fn gradient(
        &self,
        theta: &[f64],
        f: impl Fn(&[f64]) -> Result<Vec<f64>, FitError>,
    ) -> Result<Array2<f64>, FitError> {
        let mut columns = Vec::new();
        for i in 0..theta.len() {
            let (down, up) = self.step(i, theta[i]);
            let mut t = theta.to_vec();
            t[i] = up;
            let a = f(&t)?;
            t[i] = down;
            let b = f(&t)?;
            columns.push(
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y) / (up - down))
                    .collect::<Vec<_>>(),
            );
        }
        let rows = columns.first().map_or(0, Vec::len);
        Ok(Array2::from_shape_fn((rows, theta.len()), |(r, c)| {
            columns[c][r]
        }))
    }
}

fn entry_names(theory: &Theory, kernels: &BTreeMap<EntryKey, Array2<f64>>) -> String {
    kernels
        .keys()
        .map(|k| crate::solve::nngp::Kernels::name(theory, k))
        .collect::<Vec<_>>()
        .join(", ")
}

/// L⁻¹ for a symmetric positive definite Σ = LLᵀ (faer's Cholesky, then L⁻¹ = L \\ I).
fn inverse_cholesky(sigma: &Array2<f64>) -> Result<Array2<f64>, String> {
    let n = sigma.nrows();
    for i in 0..n {
        if (0..n).any(|j| {
            (sigma[(i, j)] - sigma[(j, i)]).abs() > 1e-12 * sigma[(i, i)].abs().max(1e-300)
        }) {
            return Err(format!("not symmetric (row {i})"));
        }
    }
    if let Some(bad) = sigma.iter().find(|v| !v.is_finite()) {
        return Err(format!("not positive definite (an entry is {bad})"));
    }
    let mut l = faer::Mat::from_fn(n, n, |i, j| sigma[(i, j)]);
    crate::numeric::dense::cholesky_lower_in_place(l.as_mut()).map_err(|e| {
        format!(
            "not positive definite (pivot {} is not positive); check the variances",
            e.index
        )
    })?;
    let l = faer::Mat::from_fn(n, n, |i, j| if i >= j { l[(i, j)] } else { 0.0 });
    let mut inverse = faer::Mat::<f64>::identity(n, n);
    faer::linalg::triangular_solve::solve_lower_triangular_in_place(
        l.as_ref(),
        inverse.as_mut(),
        faer::Par::Seq,
    );
    Ok(Array2::from_shape_fn((n, n), |(i, j)| inverse[(i, j)]))
}

/// Settings of [`fit`].
#[derive(Debug, Clone)]
pub struct FitSettings {
    /// Starts: the given one, then uniform draws in the box.
    pub starts: usize,
    /// Seed of the extra starts.
    pub seed: u64,
    /// Levenberg–Marquardt iterations per start.
    pub max_iterations: usize,
}

impl Default for FitSettings {
    fn default() -> Self {
        FitSettings {
            starts: 8,
            seed: 1,
            max_iterations: 200,
        }
    }
}

/// One start's descent.
#[derive(Debug, Clone)]
pub struct Descent {
    /// Where it began.
    pub start: Vec<f64>,
    /// Where it ended.
    pub end: Vec<f64>,
    /// χ² there (`None` when it failed).
    pub chi2: Option<f64>,
    /// Iterations taken.
    pub iterations: usize,
    /// Why it stopped.
    pub stop: String,
}

/// The fitted parameters and what they imply.
#[derive(Debug, Clone)]
pub struct Fit {
    /// The free parameters' values.
    pub values: Vec<f64>,
    /// Their standard errors (√ of Cov's diagonal).
    pub std_errors: Vec<f64>,
    /// Cov θ̂ = (JᵀJ)⁻¹.
    pub covariance: Array2<f64>,
    /// Whether each sits on its box (its error then does not hold).
    pub at_bound: Vec<bool>,
    /// χ² at the minimum.
    pub chi2: f64,
    /// Statistics minus free parameters.
    pub dof: usize,
    /// The theory's statistics at the minimum.
    pub fitted: Vec<f64>,
    /// (fitted − observed) / error, per statistic.
    pub pulls: Vec<f64>,
    /// Every start's descent.
    pub descents: Vec<Descent>,
    /// How many starts ended within Δχ² < 10⁻⁶ (relative) of the best.
    pub agreeing_starts: usize,
}

/// Levenberg–Marquardt from one start.
fn descend(problem: &Problem, start: Vec<f64>, max_iterations: usize) -> Descent {
    let clamp = |t: &mut Vec<f64>| {
        for (v, f) in t.iter_mut().zip(&problem.free) {
            *v = v.clamp(f.lower, f.upper);
        }
    };
    let mut theta = start.clone();
    let failed = |theta: Vec<f64>, iterations, stop: String| Descent {
        start: start.clone(),
        end: theta,
        chi2: None,
        iterations,
        stop,
    };
    let mut r = match problem.residuals(&theta) {
        Ok(r) => r,
        Err(e) => return failed(theta, 0, e),
    };
    let mut chi2 = r.dot(&r);
    let mut lambda = 1e-3;
    let k = theta.len();
    for iteration in 1..=max_iterations {
        let j = match problem.jacobian(&theta) {
            Ok(j) => j,
            Err(e) => return failed(theta, iteration, e),
        };
        let a = j.t().dot(&j);
        let g = j.t().dot(&r);
        let mut improved = false;
        while lambda < 1e12 {
            let mut damped = a.clone();
            for i in 0..k {
                damped[(i, i)] += lambda * a[(i, i)].max(1e-12);
            }
            let Some(delta) = solve_small(&damped, &(-&g)) else {
                lambda *= 10.0;
                continue;
            };
            let mut trial: Vec<f64> = theta.iter().zip(&delta).map(|(t, d)| t + d).collect();
            clamp(&mut trial);
            match problem.residuals(&trial) {
                Ok(r_trial) => {
                    let c = r_trial.dot(&r_trial);
                    if c.is_finite() && c <= chi2 {
                        let moved = trial
                            .iter()
                            .zip(&theta)
                            .zip(&problem.free)
                            .map(|((a, b), f)| (a - b).abs() / (f.upper - f.lower))
                            .fold(0.0, f64::max);
                        let drop = chi2 - c;
                        theta = trial;
                        r = r_trial;
                        chi2 = c;
                        lambda = (lambda / 10.0).max(1e-12);
                        improved = true;
                        if drop <= 1e-12 * (1.0 + chi2) && moved < 1e-9 {
                            return Descent {
                                start,
                                end: theta,
                                chi2: Some(chi2),
                                iterations: iteration,
                                stop: "converged".into(),
                            };
                        }
                        break;
                    }
                    lambda *= 10.0;
                }
                Err(_) => lambda *= 10.0,
            }
        }
        if !improved {
            // no step of any damping lowers χ²: a minimum to the precision of the model
            return Descent {
                start,
                end: theta,
                chi2: Some(chi2),
                iterations: iteration,
                stop: "converged".into(),
            };
        }
    }
    Descent {
        start,
        end: theta,
        chi2: Some(chi2),
        iterations: max_iterations,
        stop: format!("{max_iterations} iterations"),
    }
}

/// Solves a small symmetric positive definite system (Cholesky); `None` if not positive.
fn solve_small(a: &Array2<f64>, b: &Array1<f64>) -> Option<Vec<f64>> {
    let l_inv = inverse_cholesky(a).ok()?;
    let y = l_inv.dot(b);
    let x = l_inv.t().dot(&y);
    x.iter().all(|v| v.is_finite()).then(|| x.to_vec())
}

/// Fits the free parameters of `problem` to its statistics.
pub fn fit(problem: &Problem, settings: &FitSettings) -> Result<Fit, FitError> {
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let mut starts = vec![problem.free.iter().map(|f| f.start).collect::<Vec<_>>()];
    for _ in 1..settings.starts.max(1) {
        starts.push(
            problem
                .free
                .iter()
                .map(|f| {
                    f.lower
                        + (f.upper - f.lower) * rng.sample::<f64, _>(rand::distr::StandardUniform)
                })
                .collect(),
        );
    }
    let descents: Vec<Descent> = {
        use rayon::prelude::*;
        starts
            .into_par_iter()
            .map(|s| descend(problem, s, settings.max_iterations))
            .collect()
    };
    let best = descents
        .iter()
        .filter_map(|d| d.chi2.map(|c| (c, d)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, d)| d.clone())
        .ok_or_else(|| {
            FitError::NoConvergence(
                descents
                    .iter()
                    .map(|d| format!("from {}: {}", problem.describe(&d.start), d.stop))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    let chi2 = best.chi2.unwrap_or(f64::NAN);
    let agreeing_starts = descents
        .iter()
        .filter(|d| d.chi2.is_some_and(|c| c - chi2 <= 1e-6 * (1.0 + chi2)))
        .count();
    let theta = best.end.clone();
    let j = problem.jacobian(&theta).map_err(FitError::NoConvergence)?;
    let information = j.t().dot(&j);
    let covariance = invert_information(problem, &information)?;
    let fitted = problem.model(&theta).map_err(FitError::NoConvergence)?;
    let pulls = fitted
        .iter()
        .zip(&problem.observed)
        .enumerate()
        .map(|(i, (f, o))| (f - o) / problem.covariance[(i, i)].sqrt())
        .collect();
    let at_bound = theta
        .iter()
        .zip(&problem.free)
        .map(|(v, f)| {
            let tol = 1e-9 * (f.upper - f.lower);
            (v - f.lower).abs() <= tol || (f.upper - v).abs() <= tol
        })
        .collect();
    Ok(Fit {
        std_errors: (0..theta.len())
            .map(|i| covariance[(i, i)].sqrt())
            .collect(),
        values: theta,
        covariance,
        at_bound,
        chi2,
        dof: problem.statistics.len() - problem.free.len(),
        fitted,
        pulls,
        descents,
        agreeing_starts,
    })
}

/// (JᵀJ)⁻¹, or the flat direction when JᵀJ is (numerically) singular.
fn invert_information(
    problem: &Problem,
    information: &Array2<f64>,
) -> Result<Array2<f64>, FitError> {
    let k = information.nrows();
    let m = faer::Mat::from_fn(k, k, |i, j| information[(i, j)]);
    let eig = m
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| FitError::NoConvergence(format!("eigenvalues of JᵀJ: {e:?}")))?;
    let s = eig.S().column_vector();
    let values: Vec<f64> = (0..k).map(|i| s[i]).collect();
    let largest = values.iter().copied().fold(0.0, f64::max);
    let (smallest_at, smallest) = values
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    if smallest.is_nan() || largest.is_nan() || smallest <= 1e-10 * largest || largest <= 0.0 {
        let u = eig.U();
        let combination = problem
            .free
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{:+.3}·{}", u[(i, smallest_at)], f.name))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(FitError::NotIdentifiable {
            combination,
            curvature: smallest,
        });
    }
    let u = eig.U();
    Ok(Array2::from_shape_fn((k, k), |(i, j)| {
        (0..k).map(|e| u[(i, e)] * u[(j, e)] / values[e]).sum()
    }))
}

/// The predicted separability of the two classes at every readout step.
#[derive(Debug, Clone)]
pub struct Separability {
    /// The steps' kernel entries.
    pub steps: Vec<String>,
    /// Mean probability of the correct sign for a held-out stimulus, per step.
    pub accuracy: Vec<f64>,
    /// Its standard error from the parameters' covariance (delta method).
    pub std_error: Vec<f64>,
    /// The readout noise κ.
    pub noise: f64,
    /// The step where it is largest (0-based).
    pub best_step: usize,
}

/// Leave-one-out probability of the correct sign, averaged over the stimuli.
fn loo_accuracy(k: ArrayView2<f64>, labels: &[f64], noise: f64) -> Result<f64, String> {
    let p = k.nrows();
    let mut a = k.to_owned();
    for i in 0..p {
        a[(i, i)] += noise;
    }
    let l_inv = inverse_cholesky(&a)?;
    let inverse = l_inv.t().dot(&l_inv);
    let first = labels[0];
    let y = Array1::from_iter(labels.iter().map(|&c| if c == first { 1.0 } else { -1.0 }));
    let ay = inverse.dot(&y);
    let mut total = 0.0;
    for i in 0..p {
        let sigma2 = 1.0 / inverse[(i, i)];
        let mean = y[i] - ay[i] * sigma2;
        total += 0.5 * libm::erfc(-y[i] * mean / (sigma2.sqrt() * std::f64::consts::SQRT_2));
    }
    Ok(total / p as f64)
}

/// The separability at `theta` (without errors).
fn separability_values(problem: &Problem, theta: &[f64]) -> Result<Vec<f64>, FitError> {
    let Some((steps, noise)) = &problem.readout else {
        return Err(FitError::Targets(
            "the separability needs `classes` in the targets file".into(),
        ));
    };
    let labels = problem.classes.as_deref().unwrap_or(&[]);
    let kernels =
        problem
            .kernels(theta, problem.needed())
            .map_err(|reason| FitError::Separability {
                step: "all steps".into(),
                reason,
            })?;
    steps
        .iter()
        .map(|(key, name)| {
            loo_accuracy(kernels[key].view(), labels, *noise).map_err(|reason| {
                FitError::Separability {
                    step: name.clone(),
                    reason,
                }
            })
        })
        .collect()
}

/// The predicted separability of the classes at every readout step, at `theta`, with errors
/// from `covariance` (the fit's Cov θ̂).
pub fn separability(
    problem: &Problem,
    theta: &[f64],
    covariance: &Array2<f64>,
) -> Result<Separability, FitError> {
    let accuracy = separability_values(problem, theta)?;
    let gradient = problem.gradient(theta, |t| separability_values(problem, t))?;
    let std_error = (0..accuracy.len())
        .map(|s| {
            let g = gradient.row(s);
            g.dot(&covariance.dot(&g)).max(0.0).sqrt()
        })
        .collect();
    let (steps, noise) = problem.readout.clone().unwrap_or_default();
    let best_step = accuracy
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Ok(Separability {
        steps: steps.into_iter().map(|(_, n)| n).collect(),
        accuracy,
        std_error,
        noise,
        best_step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const THRESHOLD: &str = include_str!("../../examples/binary_threshold.action");

    /// Two classes of two stimuli each: prototypes at overlap 0.3, versions at 0.8.
    fn stimuli() -> Vec<Vec<f64>> {
        vec![
            vec![1.0, 0.0, 0.0, 0.0],
            vec![0.8, 0.6, 0.0, 0.0],
            vec![0.3, 0.0, 0.953_939_2, 0.0],
            vec![0.3, 0.0, 0.715_454_4, 0.630_951_7],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(|v| v * 2.0).collect())
        .collect()
    }

    fn target(statistic: StatisticKind, field: &str, stimuli: &[usize]) -> TargetSpec {
        TargetSpec {
            statistic,
            field: field.into(),
            stimuli: stimuli.to_vec(),
            value: 0.0,
            error: Some(1e-3),
        }
    }

    fn file(fit: &[(&str, f64, f64, Option<f64>)], targets: Vec<TargetSpec>) -> TargetsFile {
        TargetsFile {
            stimuli: StimuliSpec::Rows(stimuli()),
            classes: Some(vec![0.0, 0.0, 1.0, 1.0]),
            fit: fit
                .iter()
                .map(|&(name, min, max, start)| FreeSpec {
                    name: name.into(),
                    min,
                    max,
                    start,
                })
                .collect(),
            targets,
            covariance: None,
            readout: None,
        }
    }

    fn all_layers() -> Vec<TargetSpec> {
        use StatisticKind::*;
        let mut t = Vec::new();
        for l in 1..=3 {
            for a in 0..4 {
                t.push(target(Activity, &format!("m[{l}]"), &[a]));
            }
            t.push(target(Distance, &format!("Q[{l}]"), &[0, 1]));
            t.push(target(Distance, &format!("Q[{l}]"), &[0, 2]));
            t.push(target(Angle, &format!("Q[{l}]"), &[2, 3]));
        }
        t
    }

    /// Targets made by the theory itself at hidden parameters are found again from another
    /// start, to the precision of the descent, with χ² ≈ 0.
    #[test]
    fn recovers_parameters_from_its_own_statistics() {
        let theory = crate::compile(THRESHOLD, "t.action").unwrap();
        let hidden = theory
            .bind(&[("g".into(), 2.0), ("J".into(), -0.5), ("theta".into(), 0.4)])
            .unwrap();
        let spec = file(
            &[
                ("g", 0.2, 5.0, Some(1.0)),
                ("J", -3.0, 3.0, Some(0.0)),
                ("theta", -1.0, 1.5, Some(0.1)),
            ],
            all_layers(),
        );
        let mut problem = Problem::new(&theory, &hidden, &spec, Path::new("."), 80).unwrap();
        problem.observed = problem.model(&[2.0, -0.5, 0.4]).unwrap();
        let found = fit(
            &problem,
            &FitSettings {
                starts: 3,
                ..FitSettings::default()
            },
        )
        .unwrap();
        for (v, want) in found.values.iter().zip([2.0, -0.5, 0.4]) {
            assert!((v - want).abs() < 1e-6, "{:?}", found.values);
        }
        assert!(found.chi2 < 1e-10, "χ² = {}", found.chi2);
        assert_eq!(found.dof, 21 - 3);
        assert!(found.agreeing_starts >= 1);
        // errors: from (JᵀJ)⁻¹, finite and positive, and the separability at every layer
        assert!(found.std_errors.iter().all(|e| *e > 0.0 && e.is_finite()));
        let sep = separability(&problem, &found.values, &found.covariance).unwrap();
        assert_eq!(sep.steps, vec!["Q[1]", "Q[2]", "Q[3]"]);
        assert_eq!(sep.noise, 0.1);
        // leaving one of two stimuli of a class out can make the held-out one look like the
        // other class, so a probability below ½ is possible with four stimuli
        for (a, e) in sep.accuracy.iter().zip(&sep.std_error) {
            assert!(
                (0.0..=1.0).contains(a) && *e >= 0.0 && e.is_finite(),
                "{a} ± {e}"
            );
        }
    }

    /// Layer 1 sees θ only through θ/√g0: fitting both is refused, naming the flat
    /// direction.
    #[test]
    fn a_flat_direction_is_reported() {
        use StatisticKind::*;
        let theory = crate::compile(THRESHOLD, "t.action").unwrap();
        let params = theory.bind(&[]).unwrap();
        let targets = (0..4)
            .map(|a| target(Activity, "m[1]", &[a]))
            .chain([
                target(Distance, "Q[1]", &[0, 1]),
                target(Angle, "Q[1]", &[0, 2]),
            ])
            .collect();
        let spec = file(
            &[("g0", 0.2, 5.0, Some(0.8)), ("theta", -1.0, 1.5, Some(0.1))],
            targets,
        );
        let mut problem = Problem::new(&theory, &params, &spec, Path::new("."), 80).unwrap();
        problem.observed = problem.model(&[1.5, 0.3]).unwrap();
        match fit(&problem, &FitSettings::default()) {
            Err(FitError::NotIdentifiable { combination, .. }) => {
                assert!(combination.contains("g0") && combination.contains("theta"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The leave-one-out identities against refitting the GP without each stimulus.
    #[test]
    fn leave_one_out_matches_refitting() {
        let k = ndarray::arr2(&[
            [1.0, 0.7, 0.2, 0.1],
            [0.7, 1.1, 0.3, 0.2],
            [0.2, 0.3, 0.9, 0.6],
            [0.1, 0.2, 0.6, 1.0],
        ]);
        let labels = [3.0, 3.0, 5.0, 5.0];
        let noise = 0.2;
        let y = [1.0, 1.0, -1.0, -1.0];
        let mut want = 0.0;
        for held in 0..4 {
            let rest: Vec<usize> = (0..4).filter(|&i| i != held).collect();
            let mut a = Array2::from_shape_fn((3, 3), |(i, j)| k[(rest[i], rest[j])]);
            for i in 0..3 {
                a[(i, i)] += noise;
            }
            let a_inv = {
                let l = inverse_cholesky(&a).unwrap();
                l.t().dot(&l)
            };
            let ks = Array1::from_iter(rest.iter().map(|&j| k[(held, j)]));
            let yr = Array1::from_iter(rest.iter().map(|&j| y[j]));
            let mean = ks.dot(&a_inv.dot(&yr));
            let var = k[(held, held)] + noise - ks.dot(&a_inv.dot(&ks));
            want += 0.5 * libm::erfc(-y[held] * mean / (var.sqrt() * std::f64::consts::SQRT_2));
        }
        want /= 4.0;
        let got = loo_accuracy(k.view(), &labels, noise).unwrap();
        assert!((got - want).abs() < 1e-13, "{got} vs {want}");
    }

    #[test]
    fn inverse_cholesky_whitens() {
        let s = ndarray::arr2(&[[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]]);
        let w = inverse_cholesky(&s).unwrap();
        let i = w.dot(&s).dot(&w.t());
        for ((r, c), v) in i.indexed_iter() {
            let want = if r == c { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-14);
        }
        assert!(inverse_cholesky(&ndarray::arr2(&[[1.0, 2.0], [2.0, 1.0]])).is_err());
    }

    #[test]
    fn bad_targets_are_named() {
        use StatisticKind::*;
        let theory = crate::compile(THRESHOLD, "t.action").unwrap();
        let params = theory.bind(&[]).unwrap();
        let cases: Vec<(TargetsFile, &str)> = vec![
            (
                file(
                    &[("g", 0.2, 5.0, None)],
                    vec![target(Activity, "Z[1]", &[0])],
                ),
                "has no field `Z`",
            ),
            (
                file(
                    &[("g", 0.2, 5.0, None)],
                    vec![target(Activity, "Q[1]", &[0])],
                ),
                "activity needs a mean field",
            ),
            (
                file(
                    &[("g", 0.2, 5.0, None)],
                    vec![target(Distance, "Q[9]", &[0, 1])],
                ),
                "`Q[9]` is not an entry",
            ),
            (
                file(
                    &[("g", 0.2, 5.0, None)],
                    vec![target(Distance, "Q[1]", &[0, 7])],
                ),
                "out of range",
            ),
            (
                file(
                    &[("L", 1.0, 5.0, None)],
                    vec![target(Activity, "m[1]", &[0])],
                ),
                "integer parameter",
            ),
            (
                file(
                    &[("g", 5.0, 0.2, None)],
                    vec![target(Activity, "m[1]", &[0])],
                ),
                "box min < max",
            ),
            (
                file(
                    &[("g", 0.2, 5.0, None), ("J", -1.0, 1.0, None)],
                    vec![target(Activity, "m[1]", &[0])],
                ),
                "2 parameters cannot be fitted to 1 statistics",
            ),
        ];
        for (spec, want) in cases {
            let err = Problem::new(&theory, &params, &spec, Path::new("."), 80)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "`{err}` lacks `{want}`");
        }
    }

    #[test]
    fn the_targets_file_parses() {
        let text = r#"{
            "stimuli": [[1.0, 0.0], [0.6, 0.8]],
            "classes": [0, 1],
            "fit": [{ "name": "theta", "min": -1, "max": 1 }],
            "targets": [
                { "statistic": "activity", "field": "m[2]", "stimuli": [0], "value": 0.3, "error": 0.01 },
                { "statistic": "angle", "field": "Q[2]", "stimuli": [0, 1], "value": 1.0, "error": 0.02 }
            ],
            "readout": { "noise": 0.05 }
        }"#;
        let spec: TargetsFile = serde_json::from_str(text).unwrap();
        assert_eq!(spec.targets[1].statistic, StatisticKind::Angle);
        let bad = text.replace("\"angle\"", "\"angel\"");
        assert!(serde_json::from_str::<TargetsFile>(&bad).is_err());
    }
}
