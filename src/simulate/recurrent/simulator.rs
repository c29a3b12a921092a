//! The recurrent network at given inputs ([`RecurrentSimulator`]): one weight matrix shared
//! over time, trajectories drawn from standard normals, the fields of a draw, the whitened
//! coordinates the posterior samplers move in.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2, s};
use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

use crate::check::ir::Expr;
use crate::numeric::matrix::{MatrixContext, Value};
use crate::simulate::draw::{Draw, FieldValues, covariance_factor};
use crate::simulate::posterior::WhitenedNetwork;
use crate::simulate::units::UnitEvaluator;
use crate::simulate::{PriorDraws, SimulateError};
use crate::solve::nngp::{EntryKey, Kernels};
use crate::solve::recurrent_one_loop::{RecurrentOneLoop, recurrent_prior_covariance};

use super::*;

/// The most units the factorisation check of [`RecurrentSimulator::new`] draws.
pub(super) const PROBE_UNITS: usize = 64;

/// The states h(0…T) and the unit outputs f(h(0…T−1)) of one network (n×P each).
pub(super) type Trajectory = (Vec<Array2<f64>>, Vec<Array2<f64>>);

/// A recurrent network on given inputs, ready to draw.
#[derive(Debug)]
pub struct RecurrentSimulator<'a> {
    /// The network.
    pub network: &'a RecurrentNetwork,
    /// Inputs, one pattern per row.
    pub x: ArrayView2<'a, f64>,
    /// The definitions (`C[0, s]`), evaluated once.
    pub fixed: BTreeMap<EntryKey, Array2<f64>>,
    /// g = n·Var(Wᵢⱼ).
    pub gain: f64,
    /// The drive's covariance factor L (LLᵀ = D over (time, pattern), time-major).
    pub(in crate::simulate) drive: Array2<f64>,
    /// D itself, ((T+1)P)² time-major: the definitions' blocks and the part of every
    /// block's equation that does not come from the units.
    pub drive_covariance: Array2<f64>,
}

impl<'a> RecurrentSimulator<'a> {
    /// Evaluates the definitions and reads g and the drive's covariance off the equations.
    pub fn new(
        network: &'a RecurrentNetwork,
        x: ArrayView2<'a, f64>,
    ) -> Result<Self, SimulateError> {
        if let Some(why) = crate::solve::nngp::input_problem(x) {
            return Err(SimulateError::Data(why));
        }
        let p = x.nrows();
        let times = network.last_time + 1;
        let mut sim = RecurrentSimulator {
            network,
            x,
            fixed: BTreeMap::new(),
            gain: 0.0,
            drive: Array2::zeros((0, 0)),
            drive_covariance: Array2::zeros((0, 0)),
        };
        for (key, body) in &network.definitions {
            let value = sim.matrix(&BTreeMap::new(), None, body, &network.name(key))?;
            sim.fixed.insert(key.clone(), value);
        }
        let mut d = Array2::<f64>::zeros((times * p, times * p));
        for ((f, idx), value) in &sim.fixed {
            if *f == network.family
                && let [t, s] = idx.as_slice()
            {
                let (t, s) = (*t as usize, *s as usize);
                d.slice_mut(s![t * p..(t + 1) * p, s * p..(s + 1) * p])
                    .assign(value);
            }
        }
        let generic =
            Array2::from_shape_fn((p, p), |(i, j)| 1.0 / (2.0 + i as f64 + 0.5 * j as f64));
        let mut gain: Option<f64> = None;
        for rule in &network.rules {
            let name = network.name(&rule.key);
            let zero = sim.matrix(
                &BTreeMap::new(),
                Some(Array2::zeros((p, p))),
                &rule.rhs,
                &name,
            )?;
            let unit = sim.matrix(&BTreeMap::new(), Some(Array2::eye(p)), &rule.rhs, &name)?;
            let at = sim.matrix(&BTreeMap::new(), Some(generic.clone()), &rule.rhs, &name)?;
            let g = unit[(0, 0)] - zero[(0, 0)];
            let predicted = &zero + &(&generic * g);
            let scale = zero
                .iter()
                .chain(unit.iter())
                .fold(1.0f64, |m, v| m.max(v.abs()));
            if (&at - &predicted).iter().any(|v| v.abs() > 1e-10 * scale) {
                return Err(SimulateError::NotSimulable {
                    reason: format!(
                        "the equation of {name} is not D + g·⟨f f ᵀ⟩ in the units' average: \
                         the recurrent simulator takes a weight matrix acting linearly"
                    ),
                    span: network.theory.action.body.span,
                });
            }
            match gain {
                None => gain = Some(g),
                Some(g0) if (g - g0).abs() <= 1e-12 * g0.abs().max(1.0) => {}
                Some(g0) => {
                    return Err(SimulateError::NotSimulable {
                        reason: format!(
                            "the equations give the recurrent weights variance {g0} in one \
                             block and {g} in {name}: one weight matrix shared over time has \
                             one variance"
                        ),
                        span: network.theory.action.body.span,
                    });
                }
            }
            if let [t, s] = rule.key.1.as_slice() {
                let (t, s) = (*t as usize, *s as usize);
                d.slice_mut(s![t * p..(t + 1) * p, s * p..(s + 1) * p])
                    .assign(&zero);
            }
        }
        let gain = gain.unwrap_or(0.0);
        if !(gain.is_finite() && gain >= 0.0) {
            return Err(SimulateError::Setting(format!(
                "the recurrent weights' variance g = {gain} is not a variance"
            )));
        }
        // symmetrise: C[t, s] and C[s, t]ᵀ are the same covariance
        let d = (&d + &d.t()) * 0.5;
        sim.drive = covariance_factor(&d, "the drive's covariance over time and patterns")?;
        sim.drive_covariance = d;
        sim.gain = gain;
        // the factorisation ⟨body⟩ = (1/n) F(t−1)ᵀ F(s−1), checked on a probe draw
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(0x5eed);
        // a probe of at most 64 units: the check is per unit, and a width of 10⁵ must not
        // cost an n² weight matrix before anything is asked of the network
        let probe = network.units.min(PROBE_UNITS);
        let (states, outputs) = sim.run_from(&sim.normals_of(&mut rng, probe))?;
        let n = probe as f64;
        for rule in &network.rules {
            let [t, s] = rule.key.1.as_slice() else {
                continue;
            };
            let average = sim.average(&states, &rule.body)?;
            let (a, b) = ((*t - 1) as usize, (*s - 1) as usize);
            let product = outputs[a].t().dot(&outputs[b]) / n;
            let scale = product.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            if (&average - &product).iter().any(|v| v.abs() > 1e-9 * scale) {
                return Err(SimulateError::NotSimulable {
                    reason: format!(
                        "the average in the equation of {} is not an outer product of one \
                         unit output f(h[t−1]) f(h[s−1])ᵀ",
                        network.name(&rule.key)
                    ),
                    span: network.theory.action.body.span,
                });
            }
        }
        Ok(sim)
    }

    /// The standard normals of one network: the drive's (n × (T+1)P) and the weights' (n × n).
    pub(super) fn normals(&self, rng: &mut StdRng) -> Vec<Array2<f64>> {
        self.normals_of(rng, self.network.units)
    }

    /// [`Self::normals`] of `n` units.
    pub(super) fn normals_of(&self, rng: &mut StdRng, n: usize) -> Vec<Array2<f64>> {
        let p = self.x.nrows();
        let times = self.network.last_time + 1;
        let z =
            Array2::from_shape_simple_fn((n, times * p), || rng.sample::<f64, _>(StandardNormal));
        let w = Array2::from_shape_simple_fn((n, n), || rng.sample::<f64, _>(StandardNormal));
        vec![z, w]
    }

    /// The states h(0…T) (n×P each) and the unit outputs f(h(0…T−1)) of the network the
    /// normals make (the drive's, then the weights'; n = their rows).
    pub(super) fn run_from(&self, normals: &[Array2<f64>]) -> Result<Trajectory, SimulateError> {
        let network = self.network;
        let n = normals.first().map_or(network.units, |z| z.nrows());
        let p = self.x.nrows();
        let times = network.last_time + 1;
        let [z, w] = normals else {
            return Err(SimulateError::Setting(format!(
                "a recurrent network is made of 2 blocks of normals, not {}",
                normals.len()
            )));
        };
        if z.dim() != (n, times * p) || w.dim() != (n, n) {
            return Err(SimulateError::Setting(format!(
                "the normals are {:?} and {:?}, the network needs {:?} and {:?}",
                z.dim(),
                w.dim(),
                (n, times * p),
                (n, n)
            )));
        }
        let xi = z.dot(&self.drive.t());
        let w = w * (self.gain / n as f64).sqrt();
        let mut states: Vec<Array2<f64>> = vec![xi.slice(s![.., 0..p]).to_owned()];
        let mut outputs: Vec<Array2<f64>> = Vec::with_capacity(times);
        for t in 1..times {
            let f = self.output_at(&states, t as i64 - 1)?;
            let h = w.dot(&f) + xi.slice(s![.., t * p..(t + 1) * p]);
            if let Some(bad) = h.iter().find(|v| !v.is_finite()) {
                return Err(SimulateError::Evaluate {
                    what: format!("the units at time {t}"),
                    reason: format!("a pre-activation came out {bad}"),
                });
            }
            outputs.push(f);
            states.push(h);
        }
        Ok((states, outputs))
    }

    /// f(h(u)) on every unit (n×P).
    pub(super) fn output_at(
        &self,
        states: &[Array2<f64>],
        u: i64,
    ) -> Result<Array2<f64>, SimulateError> {
        let network = self.network;
        let body = at_time(&network.output, &network.var, network.output_time, u);
        self.with_context(&BTreeMap::new(), None, |ctx| {
            UnitEvaluator {
                theory: &network.theory,
                var: &network.var,
                h: states[0].view(),
                constants: ctx,
                memo: None,
                times: states,
            }
            .columns(&body)
            .map_err(|e| SimulateError::NotSimulable {
                reason: e.reason,
                span: e.span,
            })
        })
    }

    pub(super) fn average(
        &self,
        states: &[Array2<f64>],
        body: &Expr,
    ) -> Result<Array2<f64>, SimulateError> {
        let network = self.network;
        let value = self.with_context(&BTreeMap::new(), None, |ctx| {
            UnitEvaluator {
                theory: &network.theory,
                var: &network.var,
                h: states[0].view(),
                constants: ctx,
                memo: None,
                times: states,
            }
            .average(body)
            .map_err(|e| SimulateError::NotSimulable {
                reason: e.reason,
                span: e.span,
            })
        })?;
        match value {
            Value::Matrix(m) => Ok(m),
            Value::Scalar(v) => Ok(Array2::from_elem((self.x.nrows(), self.x.nrows()), v)),
        }
    }

    /// The unit output f on every value of `values` (f is applied entry-wise: checked by
    /// evaluating it on the values in every pattern's column).
    pub fn unit_output_values(&self, values: &[f64]) -> Result<Vec<f64>, SimulateError> {
        let p = self.x.nrows();
        let h = Array2::from_shape_fn((values.len(), p), |(i, _)| values[i]);
        // f(h[0]) reads the family at time 0 only
        let f = self.output_at(std::slice::from_ref(&h), 0)?;
        for a in 1..p {
            if f.column(a) != f.column(0) {
                return Err(SimulateError::NotSimulable {
                    reason: "the unit output f(h) mixes patterns; the one-loop theory takes \
                             an entry-wise f"
                        .into(),
                    span: self.network.output.span,
                });
            }
        }
        Ok(f.column(0).to_vec())
    }

    /// The one-loop N·Cov of every block C[t, s] (t, s ≥ 1) around the NNGP kernels `nngp`
    /// of the same theory and parameters ([`recurrent_prior_covariance`]), Gauss–Hermite of
    /// order `order` per dimension.
    pub fn one_loop(
        &self,
        nngp: &Kernels,
        order: usize,
    ) -> Result<RecurrentOneLoop, SimulateError> {
        let network = self.network;
        let p = self.x.nrows();
        let times = network.last_time + 1;
        let mut kernel = Array2::<f64>::zeros((times * p, times * p));
        for t in 0..times {
            for s in 0..times {
                let key = (network.family, vec![t as i64, s as i64]);
                let block = nngp
                    .entries
                    .get(&key)
                    .ok_or_else(|| SimulateError::Evaluate {
                        what: network.name(&key),
                        reason: "the NNGP solver did not compute it".into(),
                    })?;
                kernel
                    .slice_mut(s![t * p..(t + 1) * p, s * p..(s + 1) * p])
                    .assign(block);
            }
        }
        let output = |values: &[f64]| self.unit_output_values(values).map_err(|e| e.to_string());
        recurrent_prior_covariance(kernel.view(), p, self.gain, &output, order).map_err(|e| {
            SimulateError::Evaluate {
                what: "the one-loop covariance".into(),
                reason: e.to_string(),
            }
        })
    }

    /// For asynchronous updates: the units at time 0 (h(0) = ξ(0), N×P) and the drive every
    /// later update adds (ξ(T), jointly drawn with ξ(0): a bias shared over time is the same
    /// bias in both).
    pub(crate) fn glauber_start(
        &self,
        rng: &mut StdRng,
    ) -> Result<(Array2<f64>, Array2<f64>), SimulateError> {
        let (n, p) = (self.network.units, self.x.nrows());
        let times = self.network.last_time + 1;
        let z =
            Array2::from_shape_simple_fn((n, times * p), || rng.sample::<f64, _>(StandardNormal));
        let xi = z.dot(&self.drive.t());
        let last = self.network.last_time;
        Ok((
            xi.slice(s![.., 0..p]).to_owned(),
            xi.slice(s![.., last * p..(last + 1) * p]).to_owned(),
        ))
    }

    /// f(h) on every row of `h` (N×P).
    pub(crate) fn unit_outputs(&self, h: &Array2<f64>) -> Result<Array2<f64>, SimulateError> {
        self.output_at(std::slice::from_ref(h), 0)
    }

    /// The block C[t, t] of units whose state at time t − 1 is `h` (N×P): its equation with
    /// the average taken over these units.
    pub(crate) fn equal_time_block(
        &self,
        h: &Array2<f64>,
        t: usize,
    ) -> Result<Array2<f64>, SimulateError> {
        let network = self.network;
        let key = (network.family, vec![t as i64, t as i64]);
        let rule =
            network
                .rules
                .iter()
                .find(|r| r.key == key)
                .ok_or_else(|| SimulateError::Evaluate {
                    what: network.name(&key),
                    reason: "the theory has no equation for it".into(),
                })?;
        let states = vec![h.clone(); t];
        let average = self.average(&states, &rule.body)?;
        self.matrix(
            &BTreeMap::new(),
            Some(average),
            &rule.rhs,
            &network.name(&key),
        )
    }

    /// One network: every block C[t, s] (t, s ≥ 1) in its empirical form.
    pub fn draw_with(&self, rng: &mut StdRng) -> Result<Draw, SimulateError> {
        let normals = self.normals(rng);
        self.draw_from(&normals)
    }

    /// [`Self::draw_with`] on given normals (the drive's, then the weights').
    pub fn draw_from(&self, normals: &[Array2<f64>]) -> Result<Draw, SimulateError> {
        let network = self.network;
        let (states, _) = self.run_from(normals)?;
        let mut entries = BTreeMap::new();
        for rule in &network.rules {
            let average = self.average(&states, &rule.body)?;
            let name = network.name(&rule.key);
            let value = self.matrix(&entries, Some(average), &rule.rhs, &name)?;
            if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
                return Err(SimulateError::Evaluate {
                    what: name,
                    reason: format!("an entry came out {bad}"),
                });
            }
            entries.insert(rule.key.clone(), value);
        }
        Ok(Draw { entries })
    }

    /// What the equations read: parameters, inputs, the definitions.
    pub(super) fn values(&self) -> FieldValues<'_> {
        FieldValues {
            theory: &self.network.theory,
            params: &self.network.params,
            x: self.x,
            fixed: &self.fixed,
        }
    }

    pub(in crate::simulate) fn with_context<T>(
        &self,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        slot: Option<&Array2<f64>>,
        f: impl FnOnce(&MatrixContext<'_>) -> Result<T, SimulateError>,
    ) -> Result<T, SimulateError> {
        let slots: Vec<Value> = slot.map(|m| Value::Matrix(m.clone())).into_iter().collect();
        self.values().with_context(entries, &slots, f)
    }

    pub(in crate::simulate) fn matrix(
        &self,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        slot: Option<Array2<f64>>,
        e: &Expr,
        what: &str,
    ) -> Result<Array2<f64>, SimulateError> {
        let slots: Vec<Value> = slot.map(Value::Matrix).into_iter().collect();
        self.values().matrix(entries, &slots, e, what)
    }
}

impl WhitenedNetwork for RecurrentSimulator<'_> {
    fn patterns(&self) -> usize {
        self.x.nrows()
    }

    fn standard_normals(&self, rng: &mut StdRng) -> Vec<Array2<f64>> {
        self.normals(rng)
    }

    fn draw(&self, z: &[Array2<f64>]) -> Result<Draw, SimulateError> {
        self.draw_from(z)
    }

    fn readout(&self, draw: &Draw) -> Result<(Array2<f64>, f64), SimulateError> {
        let readout = self
            .network
            .readout
            .as_ref()
            .ok_or(SimulateError::NoReadout)?;
        let kernel = self.matrix(&draw.entries, None, &readout.kernel, "the readout kernel")?;
        let noise = self.with_context(&draw.entries, None, |ctx| {
            ctx.eval(&readout.noise)
                .map_err(|e| SimulateError::Evaluate {
                    what: "the readout noise".into(),
                    reason: e.to_string(),
                })
        })?;
        match noise {
            Value::Scalar(s) => Ok((kernel, s)),
            Value::Matrix(_) => Err(SimulateError::Evaluate {
                what: "the readout noise".into(),
                reason: "a matrix, not a scalar κ".into(),
            }),
        }
    }

    fn entry_name(&self, key: &EntryKey) -> String {
        self.network.name(key)
    }
}

impl PriorDraws for RecurrentSimulator<'_> {
    fn draw_seeded(&self, rng: &mut StdRng) -> Result<Draw, SimulateError> {
        self.draw_with(rng)
    }

    fn fixed_entry(&self, key: &EntryKey) -> Option<&Array2<f64>> {
        self.fixed.get(key)
    }

    fn entry_name(&self, key: &EntryKey) -> String {
        self.network.name(key)
    }

    fn inputs(&self) -> ArrayView2<'_, f64> {
        self.x
    }
}
