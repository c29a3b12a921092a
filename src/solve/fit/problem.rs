//! A fit set up ([`Problem`]): the theory at trial parameters, its predicted statistics and
//! their whitened residuals, and the derivatives the descent needs.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{Array1, Array2};

use crate::check::ir::{FieldKind, Theory};
use crate::solve::nngp::{EntryKey, Keep, NngpSettings, nngp_kernels};

use super::*;

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

    pub(super) fn readout_steps(
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

    pub(super) fn kernels(
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

    pub(super) fn needed(&self) -> Keep {
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

    pub(super) fn residuals(&self, theta: &[f64]) -> Result<Array1<f64>, String> {
        let model = self.model(theta)?;
        let diff = Array1::from_iter(model.iter().zip(&self.observed).map(|(m, o)| m - o));
        Ok(self.whitening.dot(&diff))
    }

    /// Finite-difference step of parameter `i` at `v`, inside its box.
    pub(super) fn step(&self, i: usize, v: f64) -> (f64, f64) {
        let f = &self.free[i];
        let h = 1e-5 * (1.0 + v.abs()).max((f.upper - f.lower) * 1e-3).min(1.0);
        let up = (v + h).min(f.upper);
        let down = (v - h).max(f.lower);
        (down, up)
    }

    /// ∂r/∂θ (whitened residuals) by central differences (one-sided at the box).
    pub(super) fn jacobian(&self, theta: &[f64]) -> Result<Array2<f64>, String> {
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
    pub(super) fn gradient(
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

pub(super) fn entry_names(theory: &Theory, kernels: &BTreeMap<EntryKey, Array2<f64>>) -> String {
    kernels
        .keys()
        .map(|k| crate::solve::nngp::Kernels::name(theory, k))
        .collect::<Vec<_>>()
        .join(", ")
}

/// L⁻¹ for a symmetric positive definite Σ = LLᵀ (faer's Cholesky, then L⁻¹ = L \\ I).
pub(super) fn inverse_cholesky(sigma: &Array2<f64>) -> Result<Array2<f64>, String> {
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
