//! One step of the recurrent saddle point (tilted moments over trajectories, forward and
//! backward blocks, the O(1/N) correction), the Anderson-accelerated solve, the GP readout and
//! the forward fixed point at given conjugates.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use crate::finite_width::FiniteWidthError;
use crate::finite_width::map::{
    Iteration, LINEAR_TOLERANCE, MapSettings, conjugate_name, fixed_point, relative_change,
};
use crate::numeric::matrix::inverse;
use crate::simulate::SimulateError;
use crate::simulate::draw::Draw;
use crate::simulate::posterior::WhitenedNetwork;
use crate::solve::nngp::EntryKey;

use super::*;

impl Problem<'_> {
    /// Φ(C, C̃) on the normals z: (F) every block from the tilted averages (uncorrected),
    /// and with `gradients` (B) every conjugate, the rest of the action read at the fields
    /// `rest_at` where given (the linearised system's leading order), at `state`'s otherwise.
    pub(super) fn step(
        &self,
        state: &State,
        z: ArrayView2<'_, f64>,
        gradients: bool,
        rest_at: Option<&Entries>,
    ) -> Result<Step, FiniteWidthError> {
        let (p, m) = (self.patterns, z.nrows());
        let k = self.covariance(&state.fields)?;
        let order = &self.order;
        let permuted = Array2::from_shape_fn(k.dim(), |(i, j)| k[[order[i], order[j]]]);
        let factor = self.factor(&permuted, m)?;
        let sampled = z.dot(&factor.t());
        let mut h = Array2::<f64>::zeros(sampled.dim());
        for (i, &to) in order.iter().enumerate() {
            h.column_mut(to).assign(&sampled.column(i));
        }
        let f = self.outputs(&h)?;
        let a = self.tilt_values(&f, &self.tilt_matrix(&state.conjugates));
        if let Some(bad) = a.iter().find(|v| !v.is_finite()) {
            return Err(FiniteWidthError::Evaluate {
                what: "the tilt of the recurrent units".into(),
                reason: format!("it came out {bad} on a sample"),
            });
        }
        let top = a.fold(f64::NEG_INFINITY, |acc, &v| acc.max(v));
        let mut w = a.mapv(|v| (v - top).exp());
        w /= w.sum();
        let ess = 1.0 / w.dot(&w);
        let needed = (m as f64 * 1e-3).max(20.0).min(m as f64 / 2.0);
        if ess < needed {
            return Err(FiniteWidthError::Collapsed {
                term: 1,
                ess,
                samples: m,
            });
        }
        let averages = f.t().dot(&(&f * &w.view().insert_axis(Axis(1))));
        let gain = self.sim.gain;
        let mut fields = Entries::new();
        for key in &self.keys {
            let (t, s) = Self::block(key);
            let block = averages.slice(s![(t - 1) * p..t * p, (s - 1) * p..s * p]);
            fields.insert(key.clone(), &self.drive(t, s) + &(&block * gain));
        }
        let mut conjugates = Entries::new();
        if gradients {
            let excess = w.mapv(|v| v - 1.0 / m as f64);
            let inv = inverse(&factor).map_err(|_| FiniteWidthError::Evaluate {
                what: "the covariance of the recurrent units over time".into(),
                reason: "it is singular: the backward equation needs its inverse".into(),
            })?;
            let second = z.t().dot(&(&z * &excess.view().insert_axis(Axis(1))));
            let whitened = inv.t().dot(&second).dot(&inv);
            let mut grad = Array2::<f64>::zeros(whitened.dim());
            for (i, &a) in order.iter().enumerate() {
                for (j, &b) in order.iter().enumerate() {
                    grad[[a, b]] = 0.25 * (whitened[[i, j]] + whitened[[j, i]]);
                }
            }
            let rest_state = rest_at.map(|fields| State {
                fields: fields.clone(),
                conjugates: state.conjugates.clone(),
            });
            let rest_state = rest_state.as_ref().unwrap_or(state);
            for (r, key) in self.keys.iter().enumerate() {
                let (t, s) = Self::block(key);
                let mut value = Array2::<f64>::zeros((p, p));
                if t < self.times && s < self.times {
                    value.scaled_add(
                        self.units,
                        &grad.slice(s![t * p..(t + 1) * p, s * p..(s + 1) * p]),
                    );
                }
                if let Some(rest) = &self.rest[r] {
                    let what = format!("the backward equation of {}", self.sim.network.name(key));
                    value += &self.matrix(rest_state, rest, &what)?;
                }
                if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
                    return Err(FiniteWidthError::Evaluate {
                        what: format!("the conjugate of {}", self.sim.network.name(key)),
                        reason: format!("an entry came out {bad}"),
                    });
                }
                conjugates.insert(key.clone(), value);
            }
        }
        Ok(Step {
            fields,
            conjugates,
            ess,
        })
    }

    pub(super) fn flatten(&self, state: &State) -> Array1<f64> {
        self.keys
            .iter()
            .flat_map(|k| state.fields[k].iter().copied())
            .chain(
                self.keys
                    .iter()
                    .flat_map(|k| state.conjugates[k].iter().copied()),
            )
            .collect()
    }

    pub(super) fn unflatten(&self, v: &Array1<f64>) -> State {
        let p = self.patterns;
        let n = p * p;
        let half = self.keys.len() * n;
        let take = |at: usize| {
            Array2::from_shape_vec((p, p), v.slice(s![at..at + n]).to_vec())
                .unwrap_or_else(|_| Array2::zeros((p, p)))
        };
        let mut state = State {
            fields: Entries::new(),
            conjugates: Entries::new(),
        };
        for (i, key) in self.keys.iter().enumerate() {
            state.fields.insert(key.clone(), take(i * n));
            state.conjugates.insert(key.clone(), take(half + i * n));
        }
        state
    }

    /// Φ with the sampled map's error at the NNGP point subtracted from the fields.
    pub(super) fn corrected(
        &self,
        state: &State,
        z: ArrayView2<'_, f64>,
        correction: &Entries,
        rest_at: Option<&Entries>,
    ) -> Result<(State, f64), FiniteWidthError> {
        let step = self.step(state, z, true, rest_at)?;
        let mut fields = step.fields;
        for (key, v) in fields.iter_mut() {
            *v += &correction[key];
        }
        Ok((
            State {
                fields,
                conjugates: step.conjugates,
            },
            step.ess,
        ))
    }

    /// C* − F_z(C*, 0).
    pub(super) fn correction(
        &self,
        nngp: &State,
        z: ArrayView2<'_, f64>,
    ) -> Result<Entries, FiniteWidthError> {
        let at_start = self.step(nngp, z, false, None)?;
        Ok(at_start
            .fields
            .iter()
            .map(|(key, v)| (key.clone(), &nngp.fields[key] - v))
            .collect())
    }

    /// The relative change of a step: the larger of the fields' and the conjugates'.
    pub(super) fn residual(&self, x: &Array1<f64>, next: &Array1<f64>) -> f64 {
        let half = x.len() / 2;
        let fields = relative_change(x.slice(s![..half]), next.slice(s![..half]));
        let conjugates = relative_change(x.slice(s![half..]), next.slice(s![half..]));
        if fields.is_nan() || conjugates.is_nan() {
            f64::NAN
        } else {
            fields.max(conjugates)
        }
    }

    /// The solution on normals `z` from `from`: the state, the sweeps, the last relative
    /// change and the ESS at the solution.
    pub(super) fn solve(
        &self,
        method: RecurrentMethod,
        nngp: &State,
        from: &State,
        z: ArrayView2<'_, f64>,
        settings: &MapSettings,
    ) -> Result<(State, usize, f64, f64), FiniteWidthError> {
        let correction = self.correction(nngp, z)?;
        // to leading order the rest of the action (the data term's H) is read at C*
        let rest_at = (method == RecurrentMethod::LinearLeading).then_some(&nngp.fields);
        let map = |x: &Array1<f64>| -> Result<(Array1<f64>, f64), FiniteWidthError> {
            let (next, ess) = self.corrected(&self.unflatten(x), z, &correction, rest_at)?;
            Ok((self.flatten(&next), ess))
        };
        let start = self.flatten(nngp);
        match method {
            RecurrentMethod::Map => {
                let (x, sweeps, residual, ess) = fixed_point(
                    self.flatten(from),
                    &map,
                    &|a, b| self.residual(a, b),
                    settings,
                    Iteration::Nonlinear,
                )?;
                Ok((self.unflatten(&x), sweeps, residual, ess))
            }
            RecurrentMethod::Linear | RecurrentMethod::LinearLeading => {
                // δx = r₀ + DΦ(x*)·δx, DΦ·v by central differences on the same normals
                let (at_start, ess) = map(&start)?;
                let r0 = &at_start - &start;
                let scale = start.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                let linear = |v: &Array1<f64>| -> Result<(Array1<f64>, f64), FiniteWidthError> {
                    let size = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
                    if size == 0.0 {
                        return Ok((r0.clone(), ess));
                    }
                    let eps = 1e-4 * scale / size;
                    let (plus, minus) = rayon::join(
                        || map(&(&start + &(v * eps))),
                        || map(&(&start - &(v * eps))),
                    );
                    Ok((&r0 + &((&plus?.0 - &minus?.0) / (2.0 * eps)), ess))
                };
                let from = &self.flatten(from) - &start;
                // the differences' rounding (~1e-16 of Φ over a step of 1e-4) limits the
                // relative resolution of δx to ~1e-10 at large N
                let floor = MapSettings {
                    tolerance: settings.tolerance.max(LINEAR_TOLERANCE),
                    ..settings.clone()
                };
                let (delta, sweeps, residual, ess) = fixed_point(
                    from,
                    &linear,
                    &|a, b| self.residual(a, b),
                    &floor,
                    Iteration::Linear,
                )?;
                Ok((self.unflatten(&(&start + &delta)), sweeps, residual, ess))
            }
        }
    }

    /// GP regression with the readout kernel of `state`: the predictive mean and latent
    /// variance on the test rows and ln p(Y | X) of the training targets (None without a
    /// readout).
    pub(super) fn gp(&self, state: &State) -> Result<Option<Regression>, FiniteWidthError> {
        // the readout the network read off the data term, on the state's blocks
        let draw = Draw {
            entries: state.fields.clone(),
        };
        let (kernel, noise) = match self.sim.readout(&draw) {
            Ok(readout) => readout,
            Err(SimulateError::NoReadout) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let t = self.training;
        let train = kernel.slice(s![..t, ..t]).to_owned();
        let fit = crate::solve::gp::GpPosterior::fit(train, self.y, noise)
            .map_err(|e| FiniteWidthError::Unsupported(e.to_string()))?;
        let lml = fit.log_marginal_likelihood();
        if t == self.patterns {
            return Ok(Some((
                Array2::zeros((0, self.y.ncols())),
                Array1::zeros(0),
                lml,
            )));
        }
        let cross = kernel.slice(s![..t, t..]);
        let diagonal = kernel.diag().slice(s![t..]).to_owned();
        let prediction = fit
            .predict(cross, diagonal.view())
            .map_err(|e| FiniteWidthError::Unsupported(e.to_string()))?;
        Ok(Some((prediction.mean, prediction.latent_variance, lml)))
    }

    /// Every pattern's fields at fixed conjugates `conjugates` (the training ones; test rows
    /// zero): the forward equations iterated to their fixed point from the NNGP point.
    pub(super) fn forward_fixed_point(
        &self,
        nngp: &State,
        conjugates: &Entries,
        z: ArrayView2<'_, f64>,
        settings: &MapSettings,
    ) -> Result<State, FiniteWidthError> {
        let correction = self.correction(nngp, z)?;
        let map = |x: &Array1<f64>| -> Result<(Array1<f64>, f64), FiniteWidthError> {
            let state = State {
                fields: self.unflatten(x).fields,
                conjugates: conjugates.clone(),
            };
            let step = self.step(&state, z, false, None)?;
            let mut fields = step.fields;
            for (key, v) in fields.iter_mut() {
                *v += &correction[key];
            }
            let next = State {
                fields,
                conjugates: conjugates.clone(),
            };
            Ok((self.flatten(&next), step.ess))
        };
        let from = State {
            fields: nngp.fields.clone(),
            conjugates: conjugates.clone(),
        };
        let (x, ..) = fixed_point(
            self.flatten(&from),
            &map,
            &|a, b| self.residual(a, b),
            settings,
            Iteration::Nonlinear,
        )?;
        Ok(self.unflatten(&x))
    }

    pub(super) fn conjugate_name(&self, key: &EntryKey) -> String {
        conjugate_name(self.theory, &self.conjugate_of, key)
    }
}
