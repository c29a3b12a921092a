//! Recurrent networks: one population of n units whose weights are shared over time, read
//! off an action with an expectation over a time family `h ~ N(0, C)`.
//!
//! The forward equation of each block at the NNGP point has the form
//! C[t, s] = D[t, s] + g·⟨f(h[t−1]) f(h[s−1])ᵀ⟩, where g is the same for every block (the
//! variance n·Var(Wᵢⱼ) of one recurrent weight matrix) and D collects what does not come
//! from the units (a bias shared over time, inputs; the definitions `C[0, s]`). Its network
//! is
//!
//!   h(0) = ξ(0),   h(t) = W f(h(t−1)) + ξ(t),   Wᵢⱼ ~ 𝒩(0, g/n) for all t,
//!
//! with the drive ξᵢ a Gaussian process over (time, pattern) of covariance D, independent
//! across units: given the units, the covariance of h(t) and h(s) over W and ξ is exactly
//! D[t, s] + (g/n) Σⱼ f(hⱼ(t−1)) f(hⱼ(s−1))ᵀ, the empirical form of the equation. A draw
//! reports every block as that empirical form, as the layered simulator does; the readout
//! kernel C[T, T] of a recurrent network then fluctuates with the one W it shares over time
//! (THEORY.md §6 (iii), T13).
//!
//! g and D are read off the equations by evaluating them at three values of the average
//! (0, I and a generic matrix; a form that is not affine is refused), and f off the average's
//! integrand; the factorisation is checked on a probe draw.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2, s};
use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

use super::draw::{Draw, FieldValues, covariance_factor};
use super::network::{
    ConstantContext, additive_terms, population_coefficient, populations_in, rename_terms,
};
use super::posterior::WhitenedNetwork;
use super::units::UnitEvaluator;
use super::{PriorDraws, SimulateError};
use crate::check::ir::{Covariance, Expr, ExprKind, FieldId, Shape, Theory};
use crate::derive::build::{mentions_random, node, substitute};
use crate::derive::equations::forward_equations_of;
use crate::derive::grad::Variable;
use crate::derive::unroll::{IndexEnv, defined_entries, unroll};
use crate::numeric::matrix::{MatrixContext, Value};
use crate::solve::nngp::{EntryKey, Kernels};
use crate::solve::recurrent_one_loop::{RecurrentOneLoop, recurrent_prior_covariance};

/// Whether `theory` describes a recurrent network: its action has an expectation over a time
/// family.
pub fn is_recurrent(theory: &Theory) -> bool {
    theory.action.body.any(&mut |e| {
        matches!(
            e.kind,
            ExprKind::Expectation {
                cov: Covariance::Family(_),
                ..
            }
        )
    })
}

/// One block's equation: C[t, s] = rhs(average), the average ⟨body⟩ in slot 0.
#[derive(Debug, Clone)]
struct BlockRule {
    key: EntryKey,
    rhs: Expr,
    body: Expr,
}

/// The recurrent network of a theory at bound parameter values.
#[derive(Debug, Clone)]
pub struct RecurrentNetwork {
    /// The theory.
    pub theory: Theory,
    /// Parameter values by id.
    pub params: Vec<f64>,
    /// The number of units n.
    pub units: usize,
    /// The family field (`C`).
    pub family: FieldId,
    /// The last time T (times 0…T).
    pub last_time: usize,
    pub(super) var: String,
    /// The exponent of the cumulant-generating term (the random variable is `var`).
    tilt: Expr,
    /// The data term's readout kernel and noise, when the action has one.
    pub(super) readout: Option<crate::solve::readout::Readout>,
    rules: Vec<BlockRule>,
    definitions: Vec<(EntryKey, Expr)>,
    /// The unit output f(h[u]) with u = `output_time`.
    pub(super) output: Expr,
    output_time: i64,
}

impl RecurrentNetwork {
    /// Reads the recurrent network off `theory` at parameter values `params`.
    pub fn new(theory: &Theory, params: &[f64]) -> Result<Self, SimulateError> {
        let ints = theory.int_values(params);
        let action = unroll(&theory.action.body, &IndexEnv::new(), &ints)?;
        let mut layered = None;
        action.any(&mut |e| {
            if let ExprKind::Expectation {
                cov: Covariance::Matrix(_),
                ..
            } = &e.kind
            {
                layered.get_or_insert(e.span);
            }
            false
        });
        let (renamed, terms) = rename_terms(&action);
        let found: Vec<(String, FieldId, Expr, Expr)> = terms
            .into_iter()
            .filter_map(|t| match t.cov {
                Covariance::Family(field) => Some((t.var, field, t.mean, t.tilt)),
                Covariance::Matrix(_) => None,
            })
            .collect();
        let not_simulable = |reason: &str, span| SimulateError::NotSimulable {
            reason: reason.into(),
            span,
        };
        let [(var, family, mean, tilt)] = found.as_slice() else {
            return Err(not_simulable(
                "a recurrent network is one expectation over a time family `h ~ N(0, C)`; \
                 this action has none or several",
                theory.action.body.span,
            ));
        };
        if let Some(span) = layered {
            return Err(not_simulable(
                "this action mixes a time family with layered populations; the recurrent \
                 simulator takes one population shared over time",
                span,
            ));
        }
        let constants = ConstantContext::new(theory, params);
        if constants.scalar(mean) != Some(0.0) {
            return Err(not_simulable(
                "the recurrent simulator takes a zero-mean time family (mean fields of \
                 recurrent units are not simulated yet)",
                mean.span,
            ));
        }
        let mut units = None;
        for (sign, term) in additive_terms(&renamed, 1.0) {
            if populations_in(&term).is_empty() {
                continue;
            }
            let (coefficient, _) = population_coefficient(&term, &constants)?;
            let count = sign * coefficient;
            if !(count.is_finite() && count >= 1.0 && (count - count.round()).abs() < 1e-9) {
                return Err(not_simulable(
                    &format!(
                        "a cumulant-generating term `n * ln E[exp(…)]` describes n units; here \
                         n = {count}, not a whole number ≥ 1"
                    ),
                    term.span,
                ));
            }
            units = Some(count.round() as usize);
        }
        let units = units.ok_or_else(|| {
            not_simulable(
                "the time family's term is not a number of units times `ln E[exp(…)]`",
                theory.action.body.span,
            )
        })?;

        let nfields = theory.fields.len();
        let mut rules = Vec::new();
        for eq in forward_equations_of(theory, renamed, &ints)? {
            let Variable::Field(field, idx) = &eq.unknown else {
                continue;
            };
            let key = (*field, idx.clone());
            let nngp = eq.nngp.map_err(SimulateError::Derive)?;
            let bodies = std::cell::RefCell::new(Vec::new());
            let rhs = substitute(&nngp, &|e| {
                let ExprKind::Expectation { var: v, body, .. } = &e.kind else {
                    return None;
                };
                if v != var {
                    return None;
                }
                let mut bodies = bodies.borrow_mut();
                bodies.push((**body).clone());
                Some(node(
                    ExprKind::Field {
                        field: nfields,
                        indices: Vec::new(),
                    },
                    e.shape,
                ))
            });
            let bodies = bodies.into_inner();
            let [body] = bodies.as_slice() else {
                return Err(not_simulable(
                    &format!(
                        "the equation of {} has {} averages over the units; the recurrent \
                         simulator takes one, ⟨f(h[t−1]) f(h[s−1])ᵀ⟩",
                        Kernels::name(theory, &key),
                        bodies.len()
                    ),
                    theory.action.body.span,
                ));
            };
            rules.push(BlockRule {
                key,
                rhs,
                body: body.clone(),
            });
        }
        let definitions = defined_entries(theory, &ints)?;
        let last_time = rules
            .iter()
            .filter(|r| r.key.0 == *family)
            .flat_map(|r| r.key.1.iter().copied())
            .chain(
                definitions
                    .iter()
                    .filter(|(k, _)| k.0 == *family)
                    .flat_map(|(k, _)| k.1.iter().copied()),
            )
            .max()
            .unwrap_or(0);
        // f: the vector factor of a block between two different times
        // (a network of one step has only the equal-time block)
        let mut output = None;
        let cross_first = rules
            .iter()
            .filter(|r| matches!(r.key.1.as_slice(), [t, s] if t != s))
            .chain(rules.iter());
        for rule in cross_first {
            if let [t, _] = rule.key.1.as_slice()
                && let Some((f, u)) = unit_output(&rule.body, var)
            {
                if u != t - 1 {
                    return Err(not_simulable(
                        &format!(
                            "{} reads the units at time {u}; the recurrent simulator takes \
                             C[t, s] from the times t − 1 and s − 1",
                            Kernels::name(theory, &rule.key)
                        ),
                        theory.action.body.span,
                    ));
                }
                output = Some((f, u));
                break;
            }
        }
        let (output, output_time) = output.ok_or_else(|| {
            not_simulable(
                "no block reads one unit output f(h[t−1]): the recurrent \
                 simulator needs the cross-time equations C[t, s] = … ⟨f(h[t−1]) f(h[s−1])ᵀ⟩",
                theory.action.body.span,
            )
        })?;
        if last_time < 1 {
            return Err(not_simulable(
                "the time family has no step after t = 0",
                theory.action.body.span,
            ));
        }
        Ok(RecurrentNetwork {
            theory: theory.clone(),
            params: params.to_vec(),
            units,
            family: *family,
            last_time: last_time as usize,
            var: var.clone(),
            tilt: tilt.clone(),
            readout: crate::solve::readout::find_readout(&action),
            rules,
            definitions,
            output,
            output_time,
        })
    }

    /// The entry's name as written: `C[2,3]`.
    pub fn name(&self, key: &EntryKey) -> String {
        Kernels::name(&self.theory, key)
    }

    /// The blocks with a forward equation (`C[t, s]`, t, s ≥ 1), in the equations' order.
    pub fn block_keys(&self) -> Vec<EntryKey> {
        self.rules.iter().map(|r| r.key.clone()).collect()
    }

    /// The units' random variable and the exponent of their cumulant-generating term.
    pub(crate) fn tilt(&self) -> (&str, &Expr) {
        (&self.var, &self.tilt)
    }
}

/// The outermost P-vector factor of `body` that reads the family at one time, and that time.
fn unit_output(body: &Expr, var: &str) -> Option<(Expr, i64)> {
    let mut times = Vec::new();
    body.any(&mut |x| {
        if let ExprKind::RandomVar {
            name,
            time: Some(t),
        } = &x.kind
            && name == var
            && !times.contains(&t.constant)
        {
            times.push(t.constant);
        }
        false
    });
    if body.shape == Shape::VECTOR && times.len() == 1 && mentions_random(body, Some(var)) {
        return Some((body.clone(), times[0]));
    }
    body.children().find_map(|c| unit_output(c, var))
}

/// `e` with every family member of `var` moved to time `to` (from `from`).
fn at_time(e: &Expr, var: &str, from: i64, to: i64) -> Expr {
    substitute(e, &|x| match &x.kind {
        ExprKind::RandomVar {
            name,
            time: Some(t),
        } if name == var && t.constant == from && t.terms.is_empty() => {
            let mut t = t.clone();
            t.constant = to;
            Some(node(
                ExprKind::RandomVar {
                    name: name.clone(),
                    time: Some(t),
                },
                x.shape,
            ))
        }
        _ => None,
    })
}

/// The most units the factorisation check of [`RecurrentSimulator::new`] draws.
const PROBE_UNITS: usize = 64;

/// The states h(0…T) and the unit outputs f(h(0…T−1)) of one network (n×P each).
type Trajectory = (Vec<Array2<f64>>, Vec<Array2<f64>>);

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
    pub(super) drive: Array2<f64>,
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
    fn normals(&self, rng: &mut StdRng) -> Vec<Array2<f64>> {
        self.normals_of(rng, self.network.units)
    }

    /// [`Self::normals`] of `n` units.
    fn normals_of(&self, rng: &mut StdRng, n: usize) -> Vec<Array2<f64>> {
        let p = self.x.nrows();
        let times = self.network.last_time + 1;
        let z =
            Array2::from_shape_simple_fn((n, times * p), || rng.sample::<f64, _>(StandardNormal));
        let w = Array2::from_shape_simple_fn((n, n), || rng.sample::<f64, _>(StandardNormal));
        vec![z, w]
    }

    /// The states h(0…T) (n×P each) and the unit outputs f(h(0…T−1)) of the network the
    /// normals make (the drive's, then the weights'; n = their rows).
    fn run_from(&self, normals: &[Array2<f64>]) -> Result<Trajectory, SimulateError> {
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
    fn output_at(&self, states: &[Array2<f64>], u: i64) -> Result<Array2<f64>, SimulateError> {
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

    fn average(&self, states: &[Array2<f64>], body: &Expr) -> Result<Array2<f64>, SimulateError> {
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
    fn values(&self) -> FieldValues<'_> {
        FieldValues {
            theory: &self.network.theory,
            params: &self.network.params,
            x: self.x,
            fixed: &self.fixed,
        }
    }

    pub(super) fn with_context<T>(
        &self,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        slot: Option<&Array2<f64>>,
        f: impl FnOnce(&MatrixContext<'_>) -> Result<T, SimulateError>,
    ) -> Result<T, SimulateError> {
        let slots: Vec<Value> = slot.map(|m| Value::Matrix(m.clone())).into_iter().collect();
        self.values().with_context(entries, &slots, f)
    }

    pub(super) fn matrix(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::prior::sample_prior;
    use crate::solve::nngp::{NngpSettings, nngp_kernels};

    /// T13's patterns: XXᵀ/d = Q = [[1, 0.6], [0.6, 1.5]].
    fn t13_inputs() -> Array2<f64> {
        let l21 = 0.6;
        let l22 = (1.5f64 - 0.36).sqrt();
        Array2::from_shape_vec((2, 2), vec![1.0, 0.0, l21, l22]).expect("2×2") * 2f64.sqrt()
    }

    fn recurrent(set: &[(&str, f64)]) -> (Theory, Vec<f64>) {
        let source = std::fs::read_to_string("examples/recurrent_erf.action").expect("example");
        let theory = crate::compile(&source, "recurrent_erf.action").expect("checks");
        let set: Vec<(String, f64)> = set.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let params = theory.bind(&set).expect("params");
        (theory, params)
    }

    #[test]
    fn t13_the_recurrent_readout_kernel_fluctuates_as_measured() {
        // T13: K_T = φ(h(T))ᵀφ(h(T))/N with h(0) ~ N(0, Q), T = 4, g = 1.5, g_b = 0, N = 100;
        // here C[5,5] = g K_4
        let set = [
            ("g", 1.5),
            ("gb", 0.0),
            ("gu", 1.0),
            ("T", 5.0),
            ("N", 100.0),
        ];
        let (theory, params) = recurrent(&set);
        let x = t13_inputs();
        let network = RecurrentNetwork::new(&theory, &params).expect("a recurrent network");
        assert_eq!((network.units, network.last_time), (100, 5));
        let sim = RecurrentSimulator::new(&network, x.view()).expect("a simulator");
        assert!((sim.gain - 1.5).abs() < 1e-12);
        let settings = NngpSettings {
            overrides: set.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            ..NngpSettings::default()
        };
        let nngp = nngp_kernels(&theory, x.view(), None, &settings).expect("nngp");
        let key = (network.family, vec![5, 5]);
        let mean_field = &nngp.entries[&key] / 1.5;
        for (got, want) in [(0, 0), (0, 1), (1, 1)]
            .iter()
            .map(|&i| mean_field[i])
            .zip([0.25135685, 0.10316336, 0.25689680])
        {
            assert!((got - want).abs() < 1e-7, "mean field {got} vs {want}");
        }
        let prior = sample_prior(&sim, 4000, 13, &|_| {}).expect("draws");
        let (_, stats) = prior
            .entries
            .iter()
            .find(|(k, _)| *k == key)
            .expect("C[5,5]");
        for (i, (mean, n_var)) in [(0, 0), (0, 1), (1, 1)].into_iter().zip([
            (0.25049, 0.1074),
            (0.10181, 0.2425),
            (0.25512, 0.1033),
        ]) {
            // T13's RNN: 4000 networks, s.e. of N·Var ≈ 2 %
            let m = stats.mean[i] / 1.5;
            let se = stats.std_error[i] / 1.5;
            let t13_se = (n_var / 100.0 / 4000.0f64).sqrt();
            let z = (m - mean) / (se * se + t13_se * t13_se).sqrt();
            assert!(z.abs() < 4.0, "mean {i:?}: {m} ± {se} vs {mean}");
            let v = stats.variance[i] * 100.0 / 2.25;
            let v_se = stats.variance_std_error[i] * 100.0 / 2.25;
            let z = (v - n_var) / (v_se * v_se + (0.02 * n_var).powi(2)).sqrt();
            assert!(z.abs() < 4.0, "N·Var {i:?}: {v} ± {v_se} vs {n_var}");
        }
    }

    #[test]
    fn driven_recurrent_networks_and_refusals() {
        // input at every step: the drive carries gu/d XXᵀ + gb at every time
        let source =
            std::fs::read_to_string("examples/recurrent_erf_driven.action").expect("example");
        let theory = crate::compile(&source, "recurrent_erf_driven.action").expect("checks");
        let params = theory.bind(&[("N".into(), 400.0)]).expect("params");
        let network = RecurrentNetwork::new(&theory, &params).expect("a recurrent network");
        let x = t13_inputs();
        let sim = RecurrentSimulator::new(&network, x.view()).expect("a simulator");
        let nngp = nngp_kernels(&theory, x.view(), None, &NngpSettings::default()).expect("nngp");
        let prior = sample_prior(&sim, 2000, 5, &|_| {}).expect("draws");
        for (key, stats) in &prior.entries {
            let want = &nngp.entries[key];
            for (i, &m) in stats.mean.indexed_iter() {
                // the 1/N shift of the mean is far below 4 s.e. at N = 400 with 2000 draws
                let z = (m - want[i]) / stats.std_error[i].max(1e-12);
                assert!(z.abs() < 4.5, "{}: {m} vs {}", network.name(key), want[i]);
            }
        }
        // a layered theory is not a recurrent network
        let deep = std::fs::read_to_string("examples/deep_erf.action").expect("example");
        let deep = crate::compile(&deep, "deep_erf.action").expect("checks");
        let params = deep.bind(&[]).expect("params");
        let err = RecurrentNetwork::new(&deep, &params).expect_err("layered");
        assert!(err.to_string().contains("time family"), "{err}");
    }
}
