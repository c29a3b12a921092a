//! Finite width for recurrent networks: the MAP kernels over time and the linearised system
//! around the NNGP point, for any number of patterns.
//!
//! ## Equations
//! A recurrent action has one population of N units whose pre-activations over the times
//! 0…T−1 that the tilt reads form one Gaussian vector h of dimension T·P, with covariance K
//! built from the blocks: K[u, v] = ½(C[u, v] + C[v, u]ᵀ) (a cross-time block enters
//! symmetrised), the definitions C[0, ·] where a time is 0. Read off the action
//! ([`crate::simulate::recurrent`]): C[t, s] = D[t, s] + g⟨f(h[t−1]) f(h[s−1])ᵀ⟩ and the tilt
//! A(h) = (g/N) Σ_{t,s} f(h[t−1])ᵀ C̃[t, s] f(h[s−1]) = (g/N) FᵀQF (checked on a probe
//! draw), Q the T·P matrix of the conjugate blocks. Stationarity gives (THEORY.md §4.3, with
//! one population shared over time)
//! * (F) C[t, s] = D[t, s] + g·⟨f(h[t−1]) f(h[s−1])ᵀ⟩_P under P(h) ∝ 𝒩(h; 0, K) e^{A(h)};
//! * (B) C̃[t, s] = N·(∂ ln Z/∂K)[t, s] + ∂R/∂C[t, s], the first term for t, s ≤ T − 1 (the
//!   blocks the units' covariance reads), R the rest of the action (the data term on the
//!   readout's blocks: one time or several), derived symbolically.
//!
//! Unlike a deep network's, the forward equations at fixed C̃ are not one causal pass: the
//! tilt couples every time. So the sweeps iterate the fields and the conjugates together,
//! x = (C, C̃) ← Φ(x), with Anderson acceleration; at C̃ = 0 the fields' part is causal
//! (block-triangular), so the NNGP kernels are reached in T passes.
//!
//! ## Linearised system
//! `Linear` solves S⁽²⁾u = −∇S at the NNGP point x* = (C*, 0) (THEORY.md §4.4): its blocks
//! are those of the same map, δx = (Φ(x*) − x*) + DΦ(x*)·δx, with DΦ·v the central difference
//! of Φ on the same normals (smooth in x, so the difference is the derivative to ~1e-8),
//! iterated to its fixed point. The MAP and the linear solution then differ by O(1/N²) in
//! the kernels, and by O(1/N) in N·(C − C*).
//!
//! ## Monte Carlo
//! Expectations are self-normalised importance sampling from 𝒩(0, K) with common random
//! numbers h = zLᵀ (LLᵀ = K, z drawn once), as in [`super::map`]: the fields are
//! C* + F_z(C, C̃) − F_z(C*, 0), ∂ ln Z/∂K the control-variate estimator
//! ½L⁻ᵀZᵀdiag(w − 1/M)ZL⁻¹ (exactly zero without tilt), standard errors from independent
//! replicas.
//!
//! ## Test patterns
//! Test rows join every block without conjugate entries. They are sampled after the
//! training rows through the block factor [[L_tt, 0], [K_st L_tt⁻ᵀ, L_s]] (L_s the Schur
//! complement's factor), so the training samples, and the training solution, are the
//! training problem's; the test rows follow from the forward equations at its conjugates.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use super::FiniteWidthError;
use super::map::{
    CONJUGATE_BASE, Iteration, LINEAR_TOLERANCE, MapLayer, MapPrediction, MapSettings, MapSolution,
    PopulationReport, Replicas, check_settings, conjugate_name, conjugates_as_fields, fixed_point,
    normals, relative_change, replicas_of, rest_gradients, standard_error,
};
use super::tilted::{Estimator, sampling_factor};
use crate::check::ir::Theory;
use crate::numeric::jet::has_jumps;
use crate::numeric::matrix::{MatrixContext, Value, inverse};
use crate::simulate::SimulateError;
use crate::simulate::draw::Draw;
use crate::simulate::posterior::WhitenedNetwork;
use crate::simulate::recurrent::{RecurrentNetwork, RecurrentSimulator};
use crate::simulate::stream_seed;
use crate::simulate::units::UnitEvaluator;
use crate::solve::nngp::{EntryKey, NngpSettings, nngp_kernels, parameter_values};

/// Which finite-width solution of a recurrent theory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecurrentMethod {
    /// The full saddle point (MAP kernels of every block).
    Map,
    /// The linearised system around the NNGP point (one Newton step of the action).
    Linear,
    /// The linearised system to leading order: without its (C, C) blocks (the rest of the
    /// action read at the NNGP point).
    LinearLeading,
}

type Entries = BTreeMap<EntryKey, Array2<f64>>;

/// A GP prediction: mean and latent variance on the test rows, ln p(Y | X).
type Regression = (Array2<f64>, Array1<f64>, f64);

/// A solution: the state, the iterations, the last relative change, the ESS there.
type Solved = (State, usize, f64, f64);

/// Fields and conjugates by the block's key.
#[derive(Debug, Clone)]
struct State {
    fields: Entries,
    conjugates: Entries,
}

/// The recurrent theory read for the sweeps, at bound parameters on the training inputs.
struct Problem<'a> {
    theory: &'a Theory,
    sim: RecurrentSimulator<'a>,
    params: Vec<f64>,
    x: ArrayView2<'a, f64>,
    y: ArrayView2<'a, f64>,
    units: f64,
    patterns: usize,
    /// T: the tilt reads h[0…T−1].
    times: usize,
    /// The first `training` patterns carry targets; the rest are test rows (no conjugate
    /// entries: they adapt through the tilted measure only).
    training: usize,
    /// The sampling order of the trajectory's T·P coordinates: every time's training rows,
    /// then every time's test rows — so the Cholesky factor's leading block, and with it
    /// every training sample, is the training-only problem's.
    order: Vec<usize>,
    keys: Vec<EntryKey>,
    /// ∂R/∂C per key, conjugates as fields at [`CONJUGATE_BASE`].
    rest: Vec<Option<crate::check::ir::Expr>>,
    conjugate_of: Vec<Option<usize>>,
}

/// One evaluation of the map: the fields' and conjugates' new values and the weights' ESS.
struct Step {
    fields: Entries,
    conjugates: Entries,
    ess: f64,
}

impl<'a> Problem<'a> {
    fn new(
        theory: &'a Theory,
        network: &'a RecurrentNetwork,
        params: Vec<f64>,
        x: ArrayView2<'a, f64>,
        y: ArrayView2<'a, f64>,
    ) -> Result<Problem<'a>, FiniteWidthError> {
        let training = y.nrows();
        let sim = RecurrentSimulator::new(network, x)?;
        // f must be entry-wise for F = f(h) to be the units' outputs at every time
        sim.unit_output_values(&[-1.3, 0.2, 0.7])?;
        let keys = network.block_keys();
        let (var, tilt) = network.tilt();
        if has_jumps(theory, tilt) {
            return Err(FiniteWidthError::Unsupported(format!(
                "the recurrent units `{var}` have jumps (step, sign): their sampled averages are \
                 piecewise constant in the kernels, so neither the sweeps nor the linearised \
                 system's differences are defined"
            )));
        }
        for key in &keys {
            if !matches!(key.1.as_slice(), [t, s] if (1..=network.last_time as i64).contains(t)
                && (1..=network.last_time as i64).contains(s))
            {
                return Err(FiniteWidthError::Unsupported(format!(
                    "{}: the sweeps take the blocks C[t, s] with 1 ≤ t, s ≤ T",
                    network.name(key)
                )));
            }
        }
        let conjugate_of: Vec<Option<usize>> = (0..theory.fields.len())
            .map(|f| theory.conjugates.iter().position(|c| c.of == f))
            .collect();
        for key in &keys {
            if conjugate_of[key.0].is_none() {
                return Err(FiniteWidthError::Unsupported(format!(
                    "{} has a forward equation but no conjugate",
                    network.name(key)
                )));
            }
        }
        let rest_of = rest_gradients(theory, &params, &keys, &conjugate_of)?;
        let times = network.last_time;
        let p = x.nrows();
        let order = (0..times)
            .flat_map(|u| (0..training).map(move |a| u * p + a))
            .chain((0..times).flat_map(|u| (training..p).map(move |a| u * p + a)))
            .collect();
        let problem = Problem {
            theory,
            sim,
            params,
            x,
            y,
            units: network.units as f64,
            patterns: x.nrows(),
            times,
            training,
            order,
            keys,
            rest: rest_of,
            conjugate_of,
        };
        problem.check_tilt()?;
        Ok(problem)
    }

    /// Runs `f` with a context that reads fields, conjugates, definitions and the data.
    fn with_context<T>(
        &self,
        fields: &Entries,
        conjugates: &Entries,
        f: impl FnOnce(&MatrixContext<'_>) -> Result<T, FiniteWidthError>,
    ) -> Result<T, FiniteWidthError> {
        let theory = self.theory;
        let lookup = |field: usize, idx: &[i64]| -> Option<&Array2<f64>> {
            if field >= CONJUGATE_BASE {
                let of = theory.conjugates.get(field - CONJUGATE_BASE)?.of;
                return conjugates.get(&(of, idx.to_vec()));
            }
            let key = (field, idx.to_vec());
            fields.get(&key).or_else(|| self.sim.fixed.get(&key))
        };
        let name = |field: usize| {
            if field >= CONJUGATE_BASE {
                return theory
                    .conjugates
                    .get(field - CONJUGATE_BASE)
                    .map_or_else(String::new, |c| c.name.clone());
            }
            theory
                .fields
                .get(field)
                .map_or_else(|| "an average".to_string(), |f| f.name.clone())
        };
        let ctx = MatrixContext {
            params: &self.params,
            inputs: Some(self.x),
            targets: Some(self.y),
            field: &lookup,
            field_name: &name,
        };
        f(&ctx)
    }

    fn matrix(
        &self,
        state: &State,
        e: &crate::check::ir::Expr,
        what: &str,
    ) -> Result<Array2<f64>, FiniteWidthError> {
        let p = self.patterns;
        let value = self.with_context(&state.fields, &state.conjugates, |ctx| {
            ctx.eval(e).map_err(|err| FiniteWidthError::Evaluate {
                what: what.to_string(),
                reason: err.to_string(),
            })
        })?;
        Ok(match value {
            Value::Matrix(m) => m,
            Value::Scalar(v) => Array2::from_elem((p, p), v),
        })
    }

    /// Block (u, v) of the drive D (P×P).
    fn drive(&self, u: usize, v: usize) -> ArrayView2<'_, f64> {
        let p = self.patterns;
        self.sim
            .drive_covariance
            .slice(s![u * p..(u + 1) * p, v * p..(v + 1) * p])
    }

    /// (t, s) of a block key (validated in [`Problem::new`]: two indices in 1…T).
    fn block(key: &EntryKey) -> (usize, usize) {
        let t = key.1.first().copied().unwrap_or(1).max(1) as usize;
        let s = key.1.get(1).copied().unwrap_or(1).max(1) as usize;
        (t, s)
    }

    /// K over the times 0…T−1 (T·P square): the drive where a time is 0, the symmetrised
    /// blocks of the fields elsewhere.
    fn covariance(&self, fields: &Entries) -> Result<Array2<f64>, FiniteWidthError> {
        let (p, times) = (self.patterns, self.times);
        let family = self.sim.network.family;
        let mut k = Array2::<f64>::zeros((times * p, times * p));
        for u in 0..times {
            for v in 0..times {
                let block = if u == 0 || v == 0 {
                    self.drive(u, v).to_owned()
                } else {
                    let entry = |a: usize, b: usize| {
                        fields
                            .get(&(family, vec![a as i64, b as i64]))
                            .ok_or_else(|| {
                                FiniteWidthError::Unsupported(format!(
                                    "the units' covariance needs the block {} between the times \
                                 {a} and {b}, which has no forward equation",
                                    self.sim.network.name(&(family, vec![a as i64, b as i64]))
                                ))
                            })
                    };
                    (entry(u, v)? + &entry(v, u)?.t()) * 0.5
                };
                k.slice_mut(s![u * p..(u + 1) * p, v * p..(v + 1) * p])
                    .assign(&block);
            }
        }
        Ok((&k + &k.t()) * 0.5)
    }

    /// Q: block (t−1, s−1) = C̃[t, s] for t, s ≤ T.
    fn tilt_matrix(&self, conjugates: &Entries) -> Array2<f64> {
        let (p, times) = (self.patterns, self.times);
        let mut q = Array2::<f64>::zeros((times * p, times * p));
        for (key, value) in conjugates {
            let (t, s) = Self::block(key);
            if (1..=times).contains(&t) && (1..=times).contains(&s) {
                q.slice_mut(s![(t - 1) * p..t * p, (s - 1) * p..s * p])
                    .assign(value);
            }
        }
        q
    }

    /// f(h) at every time (the rows of `h` are samples, T·P columns time-major).
    fn outputs(&self, h: &Array2<f64>) -> Result<Array2<f64>, FiniteWidthError> {
        let p = self.patterns;
        let mut f = Array2::<f64>::zeros(h.dim());
        for u in 0..self.times {
            let block = h.slice(s![.., u * p..(u + 1) * p]).to_owned();
            f.slice_mut(s![.., u * p..(u + 1) * p])
                .assign(&self.sim.unit_outputs(&block)?);
        }
        Ok(f)
    }

    /// The tilt read as (g/N) FᵀQF: checked against the action's exponent on a probe draw
    /// with generic conjugates.
    fn check_tilt(&self) -> Result<(), FiniteWidthError> {
        let (p, times) = (self.patterns, self.times);
        let probe = 7;
        let h = Array2::from_shape_fn((probe, times * p), |(i, j)| {
            ((i as f64 * 1.7 + j as f64 * 0.61).sin() * 1.3) + 0.1 * j as f64 / (times * p) as f64
        });
        let mut conjugates = Entries::new();
        for key in &self.keys {
            let (t, s) = Self::block(key);
            let value = Array2::from_shape_fn((p, p), |(a, b)| {
                (0.3 + 0.1 * t as f64 - 0.05 * s as f64) * (1.0 + (a as f64 - 2.0 * b as f64).cos())
                    + 0.1 * a as f64
            });
            conjugates.insert(key.clone(), value);
        }
        let mine = self.tilt_values(&self.outputs(&h)?, &self.tilt_matrix(&conjugates));
        let (var, tilt) = self.sim.network.tilt();
        let tilt = conjugates_as_fields(tilt);
        let states: Vec<Array2<f64>> = (0..times)
            .map(|u| h.slice(s![.., u * p..(u + 1) * p]).to_owned())
            .collect();
        let fields = Entries::new();
        let theirs = self.with_context(&fields, &conjugates, |ctx| {
            UnitEvaluator {
                theory: self.theory,
                var,
                h: states[0].view(),
                constants: ctx,
                memo: None,
                times: &states,
            }
            .per_unit(&tilt)
            .map_err(|e| FiniteWidthError::Evaluate {
                what: "the tilt of the recurrent units".into(),
                reason: e.reason,
            })
        })?;
        let scale = theirs.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        let worst = (&mine - &theirs).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        if worst > 1e-9 * scale {
            return Err(FiniteWidthError::Unsupported(format!(
                "the exponent of the recurrent units' term is not (g/N) Σ_(t,s) f(h[t−1])ᵀ \
                 C̃[t, s] f(h[s−1]) with g = {} and N = {} read off the forward equations (on a \
                 probe it differs by {worst:.3e} of {scale:.3e}): the sweeps take the \
                 cumulant-generating function of the units' empirical kernels",
                self.sim.gain, self.units
            )));
        }
        Ok(())
    }

    /// (g/N) F_iᵀ Q F_i for every sample i.
    fn tilt_values(&self, f: &Array2<f64>, q: &Array2<f64>) -> Array1<f64> {
        let fq = f.dot(q);
        (f * &fq).sum_axis(Axis(1)) * (self.sim.gain / self.units)
    }

    /// L with LLᵀ = K (in the sampling order) whose leading block is the training rows' own
    /// factor: with test rows, L = [[L_tt, 0], [K_st L_tt⁻ᵀ, L_s]], L_s the factor of the
    /// Schur complement K_ss − K_st K_tt⁻¹ K_ts (clipped where it is zero: a test pattern
    /// equal to a training one), so that the training samples are the training problem's
    /// and the factor moves continuously with K.
    fn factor(&self, k: &Array2<f64>, m: usize) -> Result<Array2<f64>, FiniteWidthError> {
        let indefinite = FiniteWidthError::IndefiniteCovariance;
        let nt = self.times * self.training;
        if nt == k.nrows() {
            return sampling_factor(k, m).map_err(indefinite);
        }
        let ktt = k.slice(s![..nt, ..nt]).to_owned();
        let lower = sampling_factor(&ktt, m).map_err(indefinite)?;
        let inv = inverse(&lower).map_err(|_| {
            FiniteWidthError::IndefiniteCovariance(
                "the training patterns' covariance over time is singular".into(),
            )
        })?;
        let cross = k.slice(s![nt.., ..nt]).dot(&inv.t());
        let schur = &k.slice(s![nt.., nt..]) - &cross.dot(&cross.t());
        // test rows that repeat training rows leave nothing (rounding) to sample
        let scale = k.diag().fold(0.0f64, |a, v| a.max(v.abs()));
        let rest = if schur.iter().all(|v| v.abs() <= 1e-12 * scale) {
            Array2::zeros(schur.dim())
        } else {
            sampling_factor(&((&schur + &schur.t()) * 0.5), m).map_err(indefinite)?
        };
        let mut factor = Array2::<f64>::zeros(k.dim());
        factor.slice_mut(s![..nt, ..nt]).assign(&lower);
        factor.slice_mut(s![nt.., ..nt]).assign(&cross);
        factor.slice_mut(s![nt.., nt..]).assign(&rest);
        Ok(factor)
    }

    /// Φ(C, C̃) on the normals z: (F) every block from the tilted averages (uncorrected),
    /// and with `gradients` (B) every conjugate, the rest of the action read at the fields
    /// `rest_at` where given (the linearised system's leading order), at `state`'s otherwise.
    fn step(
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

    fn flatten(&self, state: &State) -> Array1<f64> {
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

    fn unflatten(&self, v: &Array1<f64>) -> State {
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
    fn corrected(
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
    fn correction(
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
    fn residual(&self, x: &Array1<f64>, next: &Array1<f64>) -> f64 {
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
    fn solve(
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
    fn gp(&self, state: &State) -> Result<Option<Regression>, FiniteWidthError> {
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
    fn forward_fixed_point(
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

    fn conjugate_name(&self, key: &EntryKey) -> String {
        conjugate_name(self.theory, &self.conjugate_of, key)
    }
}

/// The NNGP point of `problem` (fields at the NNGP kernels, conjugates zero).
fn nngp_state(
    problem: &Problem<'_>,
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
) -> Result<State, FiniteWidthError> {
    let nngp = nngp_kernels(theory, x, None, settings)?;
    let mut start = State {
        fields: Entries::new(),
        conjugates: Entries::new(),
    };
    for key in &problem.keys {
        let value = nngp.entries.get(key).ok_or_else(|| {
            FiniteWidthError::Unsupported(format!(
                "no NNGP value of {}",
                problem.sim.network.name(key)
            ))
        })?;
        start.fields.insert(key.clone(), value.clone());
        start
            .conjugates
            .insert(key.clone(), Array2::zeros(value.dim()));
    }
    Ok(start)
}

/// The finite-width kernels of every block C[t, s] of the recurrent `theory` on inputs `x`
/// and targets `y` (training patterns): the MAP or the linearised system, by sampled
/// expectations over the units' trajectories (`settings.samples` per estimate, seeded), with
/// standard errors from `settings.replicas` independent replicas. With test inputs
/// `x_test` (MAP only) the test patterns join every block as rows without conjugate entries:
/// the training solution is unchanged (its samples are the same), the test rows follow from
/// the forward equations at its conjugates, and the GP prediction with the adapted readout
/// kernel is returned.
pub fn recurrent_kernels(
    theory: &Theory,
    x: ArrayView2<f64>,
    y: ArrayView2<f64>,
    x_test: Option<ArrayView2<f64>>,
    method: RecurrentMethod,
    settings: &MapSettings,
) -> Result<MapSolution, FiniteWidthError> {
    check_settings(settings)?;
    if y.nrows() != x.nrows() {
        return Err(FiniteWidthError::Unsupported(format!(
            "the targets have {} rows for {} training patterns",
            y.nrows(),
            x.nrows()
        )));
    }
    if settings.posterior_mean {
        return Err(FiniteWidthError::Unsupported(
            "the posterior-mean kernels (MAP + m/N) are built for layered theories: a recurrent \
             theory's prior one-loop shift is over time, not pattern pair by pattern pair; \
             `saddle simulate` samples its posterior mean"
                .into(),
        ));
    }
    if x_test.is_some() && method != RecurrentMethod::Map {
        return Err(FiniteWidthError::Unsupported(
            "test patterns: the linearised system reports the kernels on the training \
             patterns; the MAP predicts"
                .into(),
        ));
    }
    let joined = match x_test {
        Some(t) if t.ncols() != x.ncols() => {
            return Err(FiniteWidthError::Unsupported(format!(
                "the test inputs have {} features, the training inputs {}",
                t.ncols(),
                x.ncols()
            )));
        }
        Some(t) => Some(
            ndarray::concatenate(Axis(0), &[x, t])
                .map_err(|e| FiniteWidthError::Unsupported(e.to_string()))?,
        ),
        None => None,
    };
    let params = parameter_values(theory, &settings.overrides)?;
    let network = RecurrentNetwork::new(theory, &params)?;
    let nngp_settings = NngpSettings {
        overrides: settings.overrides.clone(),
        outputs: Some(y.ncols()),
        native: settings.native,
        ..NngpSettings::default()
    };
    let problem = Problem::new(theory, &network, params.clone(), x, y)?;
    let start = nngp_state(&problem, theory, x, &nngp_settings)?;
    let joint = match &joined {
        Some(all) => {
            let joint = Problem::new(theory, &network, params.clone(), all.view(), y)?;
            let start_all = nngp_state(&joint, theory, all.view(), &nngp_settings)?;
            Some((joint, start_all))
        }
        None => None,
    };
    // the training coordinates come first in the sampling order: the joint normals' first
    // T·P_train columns are the training problem's
    let dim = problem.times * problem.patterns;
    let dim_all = problem.times * joined.as_ref().map_or(x.nrows(), |a| a.nrows());
    let draw = |m: usize, stream: u64| normals(m, dim_all, stream_seed(settings.seed, stream));
    let solve = |from: &State, z: &Array2<f64>| -> Result<(Solved, State), FiniteWidthError> {
        let z_train = z.slice(s![.., ..dim]);
        let solved = problem.solve(method, &start, from, z_train, settings)?;
        let full = match &joint {
            Some((joint, start_all)) => {
                let mut conjugates = start_all.conjugates.clone();
                for (key, value) in conjugates.iter_mut() {
                    let train = &solved.0.conjugates[key];
                    let (r, c) = train.dim();
                    value.slice_mut(s![..r, ..c]).assign(train);
                }
                joint.forward_fixed_point(start_all, &conjugates, z.view(), settings)?
            }
            None => solved.0.clone(),
        };
        Ok((solved, full))
    };
    let z = draw(settings.samples, 0);
    let ((state, sweeps, residual, ess), full) = solve(&start, &z)?;
    let replicas = settings.replicas;
    let Replicas {
        states: replica_states,
        rescale,
        samples: replica_samples,
    } = replicas_of(settings.samples, replicas, |r, per| {
        let z = draw(per, r as u64 + 1);
        solve(&state, &z).map(|(_, s)| s)
    })?;
    let error = |values: Vec<Array2<f64>>| standard_error(&values).map(|e| e * rescale);
    let (reporter, report_start) = match &joint {
        Some((joint, start_all)) => (joint, start_all),
        None => (&problem, &start),
    };
    let layers = problem
        .keys
        .iter()
        .map(|key| {
            let pick =
                |f: &dyn Fn(&State) -> Array2<f64>| error(replica_states.iter().map(f).collect());
            MapLayer {
                name: network.name(key),
                conjugate_name: problem.conjugate_name(key),
                nngp: report_start.fields[key].clone(),
                kernel: full.fields[key].clone(),
                conjugate: full.conjugates[key].clone(),
                kernel_error: pick(&|s: &State| s.fields[key].clone()),
                conjugate_error: pick(&|s: &State| s.conjugates[key].clone()),
                map_kernel: None,
                n_shift: None,
            }
        })
        .collect();
    let prediction = match (reporter.gp(&full)?, reporter.gp(report_start)?) {
        (Some((mean, variance, lml)), Some((nngp_mean, nngp_variance, nngp_lml))) => {
            let replicas = replica_states
                .iter()
                .map(|s| reporter.gp(s))
                .collect::<Result<Vec<_>, _>>()?;
            let means = replicas.iter().flatten().map(|r| r.0.clone()).collect();
            let variances = replicas
                .iter()
                .flatten()
                .map(|r| r.1.clone().insert_axis(Axis(1)))
                .collect();
            let with_test = mean.nrows() > 0;
            Some(MapPrediction {
                mean_error: error(means).filter(|_| with_test),
                variance_error: error(variances)
                    .filter(|_| with_test)
                    .map(|v| v.column(0).to_owned()),
                mean,
                variance,
                log_marginal_likelihood: lml,
                nngp_mean,
                nngp_variance,
                nngp_log_marginal_likelihood: nngp_lml,
            })
        }
        _ => None,
    };
    Ok(MapSolution {
        width: Some(problem.units),
        layers,
        sweeps,
        residual,
        tolerance: match method {
            RecurrentMethod::Map => settings.tolerance,
            RecurrentMethod::Linear | RecurrentMethod::LinearLeading => {
                settings.tolerance.max(LINEAR_TOLERANCE)
            }
        },
        populations: vec![PopulationReport {
            term: 1,
            units: network.units,
            estimator: Estimator::ImportanceSampling,
            // the linear system's measure is the untilted one (ESS = M): nothing to report
            effective_samples: (method == RecurrentMethod::Map).then_some(ess),
        }],
        samples: settings.samples,
        replicas,
        replica_samples,
        training: x.nrows(),
        prediction,
    })
}
