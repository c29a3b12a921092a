//! The theory read for the sweeps ([`Problem`]): populations, definitions, links from
//! fields to covariances and means, tilts and the rest of the action; evaluation contexts,
//! the NNGP starting point and the prediction.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2};

use super::*;
use crate::check::ir::{Expr, Theory};
use crate::finite_width::FiniteWidthError;
use crate::finite_width::tilted::Estimator;
use crate::numeric::jet::has_jumps;
use crate::numeric::matrix::{MatrixContext, Value};
use crate::numeric::price::TiltForm;
use crate::simulate::network::Network;
use crate::solve::nngp::{EntryKey, Kernels};

impl<'a> Problem<'a> {
    pub(super) fn new(
        theory: &'a Theory,
        params: &[f64],
        x: ArrayView2<'a, f64>,
        y: Option<ArrayView2<'a, f64>>,
        nngp: &Kernels,
        force_sampling: bool,
    ) -> Result<Problem<'a>, FiniteWidthError> {
        let network = Network::new(theory, params)?;
        let mut fixed = BTreeMap::new();
        for def in &network.definitions {
            if !def.reads.is_empty() {
                return Err(FiniteWidthError::Unsupported(format!(
                    "the definition of {} reads other fields; the sweeps handle definitions of \
                     the data only",
                    network.name(&def.key)
                )));
            }
            let value = nngp.entries.get(&def.key).ok_or_else(|| {
                FiniteWidthError::Unsupported(format!("no value of {}", network.name(&def.key)))
            })?;
            fixed.insert(def.key.clone(), value.clone());
        }
        let conjugate_of: Vec<Option<usize>> = (0..theory.fields.len())
            .map(|f| theory.conjugates.iter().position(|c| c.of == f))
            .collect();
        for rule in &network.rules {
            if conjugate_of[rule.key.0].is_none() {
                return Err(FiniteWidthError::Unsupported(format!(
                    "{} has a forward equation but no conjugate",
                    network.name(&rule.key)
                )));
            }
            if rule.key.1.windows(2).any(|w| w[0] != w[1]) {
                return Err(FiniteWidthError::Unsupported(format!(
                    "{}: cross blocks of a multi-index kernel are not symmetric matrices",
                    network.name(&rule.key)
                )));
            }
        }

        let keys: Vec<EntryKey> = network.rules.iter().map(|r| r.key.clone()).collect();
        let rest_of = rest_gradients(theory, params, &keys, &conjugate_of)?;
        let tilts: Vec<Expr> = network
            .populations
            .iter()
            .map(|p| conjugates_as_fields(&p.tilt))
            .collect();
        let price = network
            .populations
            .iter()
            .zip(&tilts)
            .map(|(p, tilt)| TiltForm::read(theory, &p.var, tilt))
            .collect();
        let mut problem = Problem {
            theory,
            network,
            x,
            y,
            training: y.map_or(x.nrows(), |y| y.nrows()),
            fixed,
            conjugate_of,
            tilts,
            rest: rest_of,
            links: Vec::new(),
            estimators: Vec::new(),
            price,
        };
        let state = problem.nngp_state(nngp)?;
        problem.links = problem.find_links(&state)?;
        problem.estimators = problem.choose_estimators(&state, force_sampling);
        for (k, pop) in problem.network.populations.iter().enumerate() {
            let bodies = problem
                .network
                .rules
                .iter()
                .flat_map(|r| &r.averages)
                .filter(|a| a.population == k)
                .map(|a| &a.body);
            if problem.estimators[k] == Estimator::ImportanceSampling
                && std::iter::once(&pop.tilt)
                    .chain(bodies)
                    .any(|e| has_jumps(theory, e))
            {
                return Err(FiniteWidthError::Unsupported(format!(
                    "term {} has units with jumps (step, sign): their sampled averages are \
                     piecewise constant in the kernels, so the sweeps cannot converge to a \
                     fixed point; binary networks are solved with `--expectations \
                     quadrature` (P ≤ 3) for now",
                    k + 1
                )));
            }
        }
        Ok(problem)
    }

    pub(super) fn nngp_state(&self, nngp: &Kernels) -> Result<State, FiniteWidthError> {
        let mut fields = BTreeMap::new();
        let mut conjugates = BTreeMap::new();
        for rule in &self.network.rules {
            let value = nngp.entries.get(&rule.key).ok_or_else(|| {
                FiniteWidthError::Unsupported(format!(
                    "no NNGP value of {}",
                    self.network.name(&rule.key)
                ))
            })?;
            fields.insert(rule.key.clone(), value.clone());
            conjugates.insert(rule.key.clone(), Array2::zeros(value.dim()));
        }
        Ok(State { fields, conjugates })
    }

    pub(super) fn conjugate_name(&self, key: &EntryKey) -> String {
        conjugate_name(self.theory, &self.conjugate_of, key)
    }

    /// Runs `f` with a context that reads `fields`, `conjugates` and slot values.
    pub(super) fn with_context<T>(
        &self,
        fields: &Entries,
        conjugates: &Entries,
        slots: &[Value],
        f: impl FnOnce(&MatrixContext<'_>) -> Result<T, FiniteWidthError>,
    ) -> Result<T, FiniteWidthError> {
        self.context(fields, conjugates, &self.fixed, self.x, slots, f)
    }

    /// [`Self::with_context`] with given definitions and inputs (a block of the patterns).
    pub(super) fn context<T>(
        &self,
        fields: &Entries,
        conjugates: &Entries,
        fixed: &Entries,
        x: ArrayView2<'_, f64>,
        slots: &[Value],
        f: impl FnOnce(&MatrixContext<'_>) -> Result<T, FiniteWidthError>,
    ) -> Result<T, FiniteWidthError> {
        let nfields = self.theory.fields.len();
        let mut params = self.network.params.clone();
        params.extend(slots.iter().map(|s| match s {
            Value::Scalar(v) => *v,
            Value::Matrix(_) => f64::NAN,
        }));
        let by_conjugate: BTreeMap<(usize, Vec<i64>), &Array2<f64>> = conjugates
            .iter()
            .filter_map(|(key, v)| Some(((self.conjugate_of[key.0]?, key.1.clone()), v)))
            .collect();
        let lookup = |f: usize, idx: &[i64]| -> Option<&Array2<f64>> {
            if f >= CONJUGATE_BASE {
                return by_conjugate
                    .get(&(f - CONJUGATE_BASE, idx.to_vec()))
                    .copied();
            }
            if f >= nfields {
                return match slots.get(f - nfields) {
                    Some(Value::Matrix(m)) => Some(m),
                    _ => None,
                };
            }
            let key = (f, idx.to_vec());
            fields.get(&key).or_else(|| fixed.get(&key))
        };
        let theory = self.theory;
        let name = |f: usize| {
            if f >= CONJUGATE_BASE {
                return theory
                    .conjugates
                    .get(f - CONJUGATE_BASE)
                    .map_or_else(String::new, |c| c.name.clone());
            }
            theory
                .fields
                .get(f)
                .map_or_else(|| "an average".to_string(), |f| f.name.clone())
        };
        let ctx = MatrixContext {
            params: &params,
            inputs: Some(x),
            targets: self.y,
            field: &lookup,
            field_name: &name,
        };
        f(&ctx)
    }

    pub(super) fn eval(
        &self,
        state: &State,
        slots: &[Value],
        e: &Expr,
        what: impl Fn() -> String,
    ) -> Result<Value, FiniteWidthError> {
        self.with_context(&state.fields, &state.conjugates, slots, |ctx| {
            ctx.eval(e).map_err(|err| FiniteWidthError::Evaluate {
                what: what(),
                reason: err.to_string(),
            })
        })
    }

    /// Evaluates `e` on the training patterns alone: every field and conjugate restricted to
    /// its training block (the data term and the measure terms are about those).
    pub(super) fn eval_training(
        &self,
        state: &State,
        e: &Expr,
        what: impl Fn() -> String,
    ) -> Result<Value, FiniteWidthError> {
        let t = self.training;
        if t == self.x.nrows() {
            return self.eval(state, &[], e, what);
        }
        let block = |m: &Array2<f64>| {
            let cols = if m.ncols() == 1 { 1 } else { t };
            m.slice(ndarray::s![..t, ..cols]).to_owned()
        };
        let restrict = |entries: &Entries| -> Entries {
            entries.iter().map(|(k, v)| (k.clone(), block(v))).collect()
        };
        let fields = restrict(&state.fields);
        let conjugates = restrict(&state.conjugates);
        let fixed = restrict(&self.fixed);
        let x = self.x.slice(ndarray::s![..t, ..]);
        self.context(&fields, &conjugates, &fixed, x, &[], |ctx| {
            ctx.eval(e).map_err(|err| FiniteWidthError::Evaluate {
                what: what(),
                reason: err.to_string(),
            })
        })
    }

    /// The GP prediction with the readout kernel of `state` (and of the NNGP point `nngp`):
    /// None for a theory without a readout.
    pub(super) fn predict(
        &self,
        state: &State,
        nngp: &State,
    ) -> Result<Option<MapPrediction>, FiniteWidthError> {
        let (Some(readout), Some(y)) = (&self.network.readout, self.y) else {
            return Ok(None);
        };
        let gp = |s: &State| -> Result<(Array2<f64>, Array1<f64>, f64), FiniteWidthError> {
            let p = self.x.nrows();
            let kernel = match self.eval(s, &[], &readout.kernel, || "the readout kernel".into())? {
                Value::Matrix(m) => m,
                Value::Scalar(v) => Array2::from_elem((p, p), v),
            };
            let noise = match self.eval(s, &[], &readout.noise, || "the readout noise".into())? {
                Value::Scalar(v) => v,
                Value::Matrix(_) => {
                    return Err(FiniteWidthError::Unsupported(
                        "the readout noise is a matrix, not a number κ".into(),
                    ));
                }
            };
            let t = self.training;
            let train = kernel.slice(ndarray::s![..t, ..t]).to_owned();
            let fit = crate::solve::gp::GpPosterior::fit(train, y, noise)
                .map_err(|e| FiniteWidthError::Unsupported(e.to_string()))?;
            let lml = fit.log_marginal_likelihood();
            if t == p {
                return Ok((Array2::zeros((0, y.ncols())), Array1::zeros(0), lml));
            }
            let cross = kernel.slice(ndarray::s![..t, t..]);
            let diagonal = kernel.diag().slice(ndarray::s![t..]).to_owned();
            let prediction = fit
                .predict(cross, diagonal.view())
                .map_err(|e| FiniteWidthError::Unsupported(e.to_string()))?;
            Ok((prediction.mean, prediction.latent_variance, lml))
        };
        let (mean, variance, log_marginal_likelihood) = gp(state)?;
        let (nngp_mean, nngp_variance, nngp_log_marginal_likelihood) = gp(nngp)?;
        Ok(Some(MapPrediction {
            mean,
            mean_error: None,
            variance,
            variance_error: None,
            log_marginal_likelihood,
            nngp_mean,
            nngp_variance,
            nngp_log_marginal_likelihood,
        }))
    }

    /// K and m of population k.
    pub(super) fn moments(
        &self,
        state: &State,
        k: usize,
    ) -> Result<(Array2<f64>, Array1<f64>), FiniteWidthError> {
        let pop = &self.network.populations[k];
        let p = self.x.nrows();
        let cov = match self.eval(state, &[], &pop.cov, || {
            format!("the covariance of term {}", k + 1)
        })? {
            Value::Matrix(m) => m,
            Value::Scalar(s) => Array2::from_elem((p, p), s),
        };
        let mean = self.eval(state, &[], &pop.mean, || {
            format!("the mean of term {}", k + 1)
        })?;
        Ok((cov, column(&mean, p)))
    }
}
