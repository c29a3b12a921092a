//! The recurrent theory read for the solver: drives, blocks, the covariance of the whole
//! trajectory, the tilt and its check against the action's own exponent, sample factors.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use crate::check::ir::Theory;
use crate::finite_width::FiniteWidthError;
use crate::finite_width::map::{CONJUGATE_BASE, conjugates_as_fields, rest_gradients};
use crate::finite_width::tilted::sampling_factor;
use crate::numeric::jet::has_jumps;
use crate::numeric::matrix::{MatrixContext, Value, inverse};
use crate::simulate::recurrent::{RecurrentNetwork, RecurrentSimulator};
use crate::simulate::units::UnitEvaluator;
use crate::solve::nngp::EntryKey;

use super::*;

impl<'a> Problem<'a> {
    pub(super) fn new(
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
    pub(super) fn with_context<T>(
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

    pub(super) fn matrix(
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
    pub(super) fn drive(&self, u: usize, v: usize) -> ArrayView2<'_, f64> {
        let p = self.patterns;
        self.sim
            .drive_covariance
            .slice(s![u * p..(u + 1) * p, v * p..(v + 1) * p])
    }

    /// (t, s) of a block key (validated in [`Problem::new`]: two indices in 1…T).
    pub(super) fn block(key: &EntryKey) -> (usize, usize) {
        let t = key.1.first().copied().unwrap_or(1).max(1) as usize;
        let s = key.1.get(1).copied().unwrap_or(1).max(1) as usize;
        (t, s)
    }

    /// K over the times 0…T−1 (T·P square): the drive where a time is 0, the symmetrised
    /// blocks of the fields elsewhere.
    pub(super) fn covariance(&self, fields: &Entries) -> Result<Array2<f64>, FiniteWidthError> {
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
    pub(super) fn tilt_matrix(&self, conjugates: &Entries) -> Array2<f64> {
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
    pub(super) fn outputs(&self, h: &Array2<f64>) -> Result<Array2<f64>, FiniteWidthError> {
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
    pub(super) fn check_tilt(&self) -> Result<(), FiniteWidthError> {
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
    pub(super) fn tilt_values(&self, f: &Array2<f64>, q: &Array2<f64>) -> Array1<f64> {
        let fq = f.dot(q);
        (f * &fq).sum_axis(Axis(1)) * (self.sim.gain / self.units)
    }

    /// L with LLᵀ = K (in the sampling order) whose leading block is the training rows' own
    /// factor: with test rows, L = [[L_tt, 0], [K_st L_tt⁻ᵀ, L_s]], L_s the factor of the
    /// Schur complement K_ss − K_st K_tt⁻¹ K_ts (clipped where it is zero: a test pattern
    /// equal to a training one), so that the training samples are the training problem's
    /// and the factor moves continuously with K.
    pub(super) fn factor(
        &self,
        k: &Array2<f64>,
        m: usize,
    ) -> Result<Array2<f64>, FiniteWidthError> {
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
}
