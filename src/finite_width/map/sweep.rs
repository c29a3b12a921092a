//! One forward–backward sweep: tilted moments per population (exact where Gaussian,
//! importance-sampled otherwise), the forward equations, the backward equations by Price's
//! theorem or Stein, and the O(1/N) correction of the fields.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2};

use super::*;
use crate::check::ir::FieldKind;
use crate::finite_width::FiniteWidthError;
use crate::finite_width::gaussian::GaussianForms;
use crate::finite_width::tilted::{Estimator, PopulationContext, TiltedMeasure};
use crate::numeric::matrix::Value;
use crate::simulate::network::Step;
use crate::solve::nngp::EntryKey;

impl Problem<'_> {
    /// K = a·C_f + … (or m = a·m_f + …) for every field a population reads.
    pub(super) fn find_links(&self, state: &State) -> Result<Vec<Vec<Link>>, FiniteWidthError> {
        let p = self.x.nrows();
        let mut out = Vec::new();
        for (k, pop) in self.network.populations.iter().enumerate() {
            let (k0, m0) = self.moments(state, k)?;
            let mut links = Vec::new();
            for key in &pop.reads {
                if !state.fields.contains_key(key) {
                    continue; // a definition: fixed
                }
                let mean_field = self.theory.fields[key.0].kind == FieldKind::Mean;
                let value = &state.fields[key];
                // a fixed, generic direction
                let direction = Array2::from_shape_fn(value.dim(), |(i, j)| {
                    let (a, b) = (i.min(j) as f64, i.max(j) as f64);
                    0.5 + ((a * 12.9898 + b * 78.233).sin() * 43_758.547)
                        .fract()
                        .abs()
                });
                let probe = |t: f64| -> Result<(Array2<f64>, Array1<f64>), FiniteWidthError> {
                    let mut s = state.clone();
                    s.fields.insert(key.clone(), value + &(&direction * t));
                    self.moments(&s, k)
                };
                let (k1, m1) = probe(1.0)?;
                let (k2, m2) = probe(2.0)?;
                let dk = &k1 - &k0;
                let dm = &m1 - &m0;
                let scale = norm(&k0).max(1.0);
                let linear = norm(&(&k2 - &k0 - &dk * 2.0)) <= 1e-9 * scale
                    && (&m2 - &m0 - &dm * 2.0)
                        .iter()
                        .all(|v| v.abs() <= 1e-9 * scale);
                let (delta, other_changes): (Array2<f64>, bool) = if mean_field {
                    (
                        dm.clone()
                            .into_shape_with_order((p, 1))
                            .map_err(|e| FiniteWidthError::Unsupported(e.to_string()))?,
                        norm(&dk) > 1e-9 * scale,
                    )
                } else {
                    (dk.clone(), dm.iter().any(|v| v.abs() > 1e-9 * scale))
                };
                let a = (&delta * &direction).sum() / (&direction * &direction).sum();
                let multiple =
                    norm(&(&delta - &(&direction * a))) <= 1e-9 * scale.max(norm(&delta));
                if !(linear && multiple) || other_changes {
                    return Err(FiniteWidthError::Unsupported(format!(
                        "the {} of term {} depends on {} other than as a constant multiple \
                         (K = a·C + …, m = a·m' + …); the sweeps need that form",
                        if mean_field { "mean" } else { "covariance" },
                        k + 1,
                        self.network.name(key)
                    )));
                }
                if a != 0.0 {
                    links.push(Link {
                        field: key.clone(),
                        coefficient: a,
                        mean: mean_field,
                    });
                }
            }
            out.push(links);
        }
        Ok(out)
    }

    pub(super) fn choose_estimators(&self, state: &State, force_sampling: bool) -> Vec<Estimator> {
        let p = self.x.nrows();
        (0..self.network.populations.len())
            .map(|k| {
                if force_sampling {
                    return Estimator::ImportanceSampling;
                }
                let pop = &self.network.populations[k];
                let gaussian = self
                    .with_context(&state.fields, &state.conjugates, &[], |ctx| {
                        let forms = GaussianForms {
                            theory: self.theory,
                            var: &pop.var,
                            patterns: p,
                            constants: ctx,
                        };
                        let averages = self
                            .network
                            .rules
                            .iter()
                            .flat_map(|r| &r.averages)
                            .filter(|a| a.population == k)
                            .all(|a| forms.is_quadratic(&a.body));
                        Ok(averages && forms.tilt(&self.tilts[k]).is_some())
                    })
                    .unwrap_or(false);
                if gaussian {
                    Estimator::Gaussian
                } else {
                    Estimator::ImportanceSampling
                }
            })
            .collect()
    }

    pub(super) fn measure(
        &self,
        state: &State,
        k: usize,
        z: ArrayView2<'_, f64>,
        with_gradients: bool,
    ) -> Result<TiltedMeasure, FiniteWidthError> {
        let (cov, mean) = self.moments(state, k)?;
        let pop = &self.network.populations[k];
        self.with_context(&state.fields, &state.conjugates, &[], |ctx| {
            let pc = PopulationContext {
                theory: self.theory,
                var: &pop.var,
                constants: ctx,
                term: k + 1,
            };
            match self.estimators[k] {
                Estimator::Gaussian => TiltedMeasure::gaussian(&pc, &self.tilts[k], &cov, &mean),
                Estimator::ImportanceSampling => {
                    let measure = TiltedMeasure::sampled(
                        &pc,
                        &self.tilts[k],
                        &cov,
                        &mean,
                        z,
                        self.price[k].as_ref(),
                        with_gradients,
                    )?;
                    let ess = measure.effective_samples().unwrap_or(f64::INFINITY);
                    let needed = (z.nrows() as f64 * 1e-3)
                        .max(20.0)
                        .min(z.nrows() as f64 / 2.0);
                    if ess < needed {
                        return Err(FiniteWidthError::Collapsed {
                            term: k + 1,
                            ess,
                            samples: z.nrows(),
                        });
                    }
                    Ok(measure)
                }
            }
        })
    }

    /// (F): every field from its population's tilted averages, in schedule order; the
    /// measures used, per population.
    pub(super) fn forward(
        &self,
        state: &State,
        z: ArrayView2<'_, f64>,
    ) -> Result<(Entries, Vec<Option<TiltedMeasure>>), FiniteWidthError> {
        let mut current = state.clone();
        let mut measures: Vec<Option<TiltedMeasure>> =
            (0..self.network.populations.len()).map(|_| None).collect();
        for step in &self.network.schedule {
            match *step {
                Step::Definition(_) => {}
                Step::Population(k) => measures[k] = Some(self.measure(&current, k, z, false)?),
                Step::Field(r) => {
                    let rule = &self.network.rules[r];
                    let name = self.network.name(&rule.key);
                    let mut slots = Vec::with_capacity(rule.averages.len());
                    for average in &rule.averages {
                        let k = average.population;
                        let pop = &self.network.populations[k];
                        let measure = measures[k].as_ref().ok_or_else(|| {
                            FiniteWidthError::Unsupported(format!(
                                "{name} is computed before its population"
                            ))
                        })?;
                        let value =
                            self.with_context(&current.fields, &current.conjugates, &[], |ctx| {
                                let pc = PopulationContext {
                                    theory: self.theory,
                                    var: &pop.var,
                                    constants: ctx,
                                    term: k + 1,
                                };
                                measure.average(&pc, &average.body)
                            })?;
                        slots.push(value);
                    }
                    let p = self.x.nrows();
                    let value = match self.eval(&current, &slots, &rule.rhs, || name.clone())? {
                        Value::Matrix(m) => m,
                        Value::Scalar(s) => Array2::from_elem(current.fields[&rule.key].dim(), s),
                    };
                    if value.nrows() != p {
                        return Err(FiniteWidthError::Evaluate {
                            what: name,
                            reason: format!("a {}×{} value", value.nrows(), value.ncols()),
                        });
                    }
                    current.fields.insert(rule.key.clone(), value);
                }
            }
        }
        Ok((current.fields, measures))
    }

    /// (B, O): every conjugate, from the last field to the first.
    /// The rest of the action (∂R/∂C) is read at `rest_at`'s fields where given (the
    /// linearised system's leading order), at `state`'s otherwise.
    pub(super) fn backward(
        &self,
        state: &State,
        rest_at: Option<&State>,
        z: ArrayView2<'_, f64>,
    ) -> Result<BTreeMap<EntryKey, Array2<f64>>, FiniteWidthError> {
        let rest_state = rest_at.map(|at| State {
            fields: at.fields.clone(),
            conjugates: state.conjugates.clone(),
        });
        let rest_state = rest_state.as_ref().unwrap_or(state);
        let mut conjugates = Entries::new();
        let mut measures: Vec<Option<TiltedMeasure>> =
            (0..self.network.populations.len()).map(|_| None).collect();
        for (r, rule) in self.network.rules.iter().enumerate().rev() {
            let key = &rule.key;
            let shape = state.fields[key].dim();
            let mut value = Array2::zeros(shape);
            if let Some(rest) = &self.rest[r] {
                let what = || format!("the backward equation of {}", self.network.name(key));
                let rest = match self.eval_training(rest_state, rest, what)? {
                    Value::Matrix(m) => m,
                    Value::Scalar(s) => {
                        let t = self.training;
                        Array2::from_elem((t, if shape.1 == 1 { 1 } else { t }), s)
                    }
                };
                let (rows, cols) = rest.dim();
                value.slice_mut(ndarray::s![..rows, ..cols]).assign(&rest);
            }
            for (k, links) in self.links.iter().enumerate() {
                for link in links.iter().filter(|l| &l.field == key) {
                    // Jacobi: every conjugate from the previous sweep's state, so that the
                    // measures are those the forward pass has checked
                    if measures[k].is_none() {
                        measures[k] = Some(self.measure(state, k, z, true)?);
                    }
                    let Some(measure) = measures[k].as_ref() else {
                        continue;
                    };
                    let n = self.network.populations[k].units as f64;
                    if link.mean {
                        let g = measure.mean_gradient();
                        for (i, v) in g.iter().enumerate() {
                            value[[i, 0]] += n * link.coefficient * v;
                        }
                    } else {
                        value.scaled_add(n * link.coefficient, measure.covariance_gradient());
                    }
                }
            }
            if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
                return Err(FiniteWidthError::Evaluate {
                    what: format!("the conjugate of {}", self.network.name(key)),
                    reason: format!("an entry came out {bad}"),
                });
            }
            conjugates.insert(key.clone(), value);
        }
        Ok(conjugates)
    }

    /// C* − F_z(C*, 0): the sampled map's error at the NNGP point `nngp`.
    pub(super) fn correction(
        &self,
        nngp: &State,
        z: ArrayView2<'_, f64>,
    ) -> Result<Entries, FiniteWidthError> {
        let (at_start, _) = self.forward(nngp, z)?;
        Ok(at_start
            .iter()
            .map(|(key, v)| (key.clone(), &nngp.fields[key] - v))
            .collect())
    }

    /// (F) with the sampled map's error at the NNGP point subtracted: C* + F_z(C, C̃) −
    /// F_z(C*, 0), given that `correction`; and each population's effective sample size.
    pub(super) fn corrected_forward(
        &self,
        state: &State,
        z: ArrayView2<'_, f64>,
        correction: &Entries,
    ) -> Result<(Entries, Vec<Option<f64>>), FiniteWidthError> {
        let (mut fields, measures) = self.forward(state, z)?;
        for (key, v) in fields.iter_mut() {
            *v += &correction[key];
        }
        let ess = measures
            .iter()
            .map(|m| m.as_ref().and_then(TiltedMeasure::effective_samples))
            .collect();
        Ok((fields, ess))
    }

    /// The corrected fields at the conjugates `conjugates` (one pass, no sweeps).
    pub(super) fn corrected_fields(
        &self,
        nngp: &State,
        conjugates: &Entries,
        z: ArrayView2<'_, f64>,
    ) -> Result<Entries, FiniteWidthError> {
        let correction = self.correction(nngp, z)?;
        let state = State {
            fields: nngp.fields.clone(),
            conjugates: conjugates.clone(),
        };
        Ok(self.corrected_forward(&state, z, &correction)?.0)
    }

    /// Conjugates in the order of the rules, flattened.
    pub(super) fn flatten(&self, entries: &Entries) -> Array1<f64> {
        self.network
            .rules
            .iter()
            .flat_map(|r| entries[&r.key].iter().copied())
            .collect()
    }

    /// The inverse of [`Self::flatten`], with the shapes of `like`.
    pub(super) fn unflatten(&self, v: &Array1<f64>, like: &Entries) -> Entries {
        let mut out = BTreeMap::new();
        let mut at = 0;
        for rule in &self.network.rules {
            let dim = like[&rule.key].dim();
            let n = dim.0 * dim.1;
            let block = Array2::from_shape_vec(dim, v.slice(ndarray::s![at..at + n]).to_vec())
                .unwrap_or_else(|_| Array2::zeros(dim));
            out.insert(rule.key.clone(), block);
            at += n;
        }
        out
    }
}
