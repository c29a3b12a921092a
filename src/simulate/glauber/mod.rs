//! Asynchronous (Glauber) dynamics of the finite network: the continuous-time version of a
//! theory's step (THEORY.md §7.4), simulated on N units whose couplings are shared over time.
//!
//! The theory's step map F carries the order parameters s of one step (layer) to the next.
//! Under Glauber dynamics every unit is updated at Poisson rate 1/τ, at the same times for all
//! patterns, and at large N the state follows τ ṡ = −s + F(s)
//! ([`crate::solve::separation::glauber_curve`]). The network that does this: the units of
//! the first step, drawn as the synchronous simulator draws them, and then one coupling
//! matrix and one drive for all time,
//!
//!   hᵢ ← Σⱼ Wᵢⱼ f(hⱼ) + ξᵢ   for one unit i at a time (every pattern at once),
//!   Wᵢⱼ ~ 𝒩(J/N, g/N),   ξᵢ ~ 𝒩(μ₀, D),
//!
//! where each unit keeps its last pre-activation hᵢ and shows its output f(hᵢ). Given the
//! outputs, an updated hᵢ has mean μ₀ + J⟨f⟩ and covariance D + g⟨f fᵀ⟩, which is the step
//! population's mean and covariance written in the action once the previous step's order
//! parameters are the units' averages. J, g, μ₀ and D are read off the action by evaluating
//! the step population's mean and covariance at three values of those averages (a form that
//! is not affine in them is refused), and f off the averages' integrands (the factorisation
//! ⟨body⟩ = (1/N) Σᵢ f fᵀ is checked on a probe draw). The state at time t is the step's own
//! rules evaluated on the units' last pre-activations, exactly as a synchronous draw measures
//! a layer, so t = 0 is the first layer of the synchronous network.
//!
//! A recurrent theory already is one population with one W ([`RecurrentGlauber`]): h(0) comes
//! from the inputs and every later update adds the drive of the last time step (a bias shared
//! over time). Both kinds run through [`run_glauber`] ([`AsynchronousUnits`]).
//!
//! Here: the layered network's asynchronous units ([`GlauberSimulator`]) and the
//! [`AsynchronousUnits`] interface; `recurrent`: [`RecurrentGlauber`]; `separation`: the
//! runs over time and the pattern-separation curve.
//!
//! One concept, one file: the asynchronous units of a layered binary network and the interface
//! every Glauber network implements.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use super::draw::covariance_factor;
use super::network::FieldRule;
use super::units::UnitEvaluator;
use super::{SimulateError, Simulator};
use crate::check::ir::{Expr, ExprKind, FieldId, Shape};
use crate::derive::build::mentions_random;
use crate::numeric::matrix::Value;
use crate::solve::step_map::StepMap;

mod recurrent;
mod separation;
pub use recurrent::RecurrentGlauber;
pub use separation::{run_glauber, simulate_glauber_separation};

/// A layered network run under Glauber dynamics, ready to draw.
#[derive(Debug)]
pub struct GlauberSimulator<'a> {
    /// The synchronous simulator: the first step's units and every expression's values.
    pub simulator: &'a Simulator<'a>,
    /// g = N·Var(Wᵢⱼ).
    pub gain: f64,
    /// J = N·E[Wᵢⱼ].
    pub coupling_mean: f64,
    /// The number of units N.
    pub units: usize,
    /// The state fields' rules at the last step (indices into the network's rules), in the
    /// order of the step map's fields.
    state_rules: Vec<usize>,
    /// The population the state rules average over (its random variable names the units).
    step_population: usize,
    /// The population of the first step's units.
    first_population: usize,
    /// The unit output f(h), in the step population's variable.
    output: Expr,
    /// The drive's mean μ₀ (a P-vector).
    drive_mean: Array1<f64>,
    /// The drive's covariance factor L (L Lᵀ = D, P×P).
    drive_factor: Array2<f64>,
    /// The map's kernel field and its mean field (indices into `state_rules`).
    kernel: usize,
    mean: Option<usize>,
}

/// A probe of the averages: every matrix average set to `matrix`, every vector average to
/// `vector` (P×1).
struct Probe {
    matrix: Array2<f64>,
    vector: Array2<f64>,
}

impl<'a> GlauberSimulator<'a> {
    /// Reads the asynchronous network off the simulator's layered network and the theory's
    /// step map (built at the same parameters).
    pub fn new(simulator: &'a Simulator<'a>, map: &StepMap) -> Result<Self, SimulateError> {
        let network = simulator.network;
        let theory = &network.theory;
        let not_simulable = |reason: String| SimulateError::NotSimulable {
            reason,
            span: theory.action.body.span,
        };
        let kernel = map.kernel_field().ok_or_else(|| {
            not_simulable(format!(
                "the step {} has no single kernel to measure overlaps on",
                map.describe()
            ))
        })?;
        let fields: Vec<FieldId> = map.fields.iter().map(|f| f.field).collect();
        // the last step: the largest index every state field has a rule at
        let indices_of = |field: FieldId| -> Vec<Vec<i64>> {
            network
                .rules
                .iter()
                .filter(|r| r.key.0 == field && !r.averages.is_empty())
                .map(|r| r.key.1.clone())
                .collect()
        };
        let mut common = indices_of(fields[0]);
        for &f in &fields[1..] {
            let other = indices_of(f);
            common.retain(|i| other.contains(i));
        }
        common.sort();
        let (Some(first), Some(last)) = (common.first().cloned(), common.last().cloned()) else {
            return Err(not_simulable(format!(
                "the state of the step {} is not made of population averages at one step",
                map.describe()
            )));
        };
        if first == last {
            return Err(not_simulable(format!(
                "the step {} has no earlier step of units to start the dynamics from",
                map.describe()
            )));
        }
        let previous: Vec<i64> = last.iter().zip(&map.shift).map(|(i, s)| i - s).collect();
        let rules_at = |idx: &[i64]| -> Result<Vec<usize>, SimulateError> {
            fields
                .iter()
                .map(|&f| {
                    network
                        .rules
                        .iter()
                        .position(|r| r.key.0 == f && r.key.1 == idx)
                        .ok_or_else(|| {
                            not_simulable(format!(
                                "{} is not an average over units",
                                network.name(&(f, idx.to_vec()))
                            ))
                        })
                })
                .collect()
        };
        let population_of = |rules: &[usize]| -> Result<usize, SimulateError> {
            let mut populations: Vec<usize> = rules
                .iter()
                .flat_map(|&r| network.rules[r].averages.iter().map(|a| a.population))
                .collect();
            populations.dedup();
            match populations.as_slice() {
                [p] => Ok(*p),
                _ => Err(not_simulable(format!(
                    "the entries {} average over {} populations; a Glauber network is one \
                     population",
                    rules
                        .iter()
                        .map(|&r| network.name(&network.rules[r].key))
                        .collect::<Vec<_>>()
                        .join(", "),
                    populations.len()
                ))),
            }
        };
        let state_rules = rules_at(&last)?;
        let previous_rules = rules_at(&previous)?;
        let first_rules = rules_at(&first)?;
        let step_population = population_of(&state_rules)?;
        let previous_population = population_of(&previous_rules)?;
        let first_population = population_of(&first_rules)?;
        let units = network.populations[step_population].units;
        for (k, what) in [
            (first_population, "first"),
            (previous_population, "previous"),
        ] {
            if network.populations[k].units != units {
                return Err(not_simulable(format!(
                    "the {what} step has {} units and the last {units}: one population of \
                     units runs the dynamics",
                    network.populations[k].units
                )));
            }
        }
        let var = network.populations[step_population].var.clone();
        let output = state_rules
            .iter()
            .flat_map(|&r| &network.rules[r].averages)
            .find_map(|a| unit_output(&a.body, &var))
            .ok_or_else(|| {
                not_simulable(format!(
                    "no average of {} reads one unit output f(h) (a P-vector of the units)",
                    map.describe()
                ))
            })?;

        let p = simulator.patterns();
        let mut glauber = GlauberSimulator {
            simulator,
            gain: 0.0,
            coupling_mean: 0.0,
            units,
            state_rules,
            step_population,
            first_population,
            output,
            drive_mean: Array1::zeros(p),
            drive_factor: Array2::zeros((p, p)),
            kernel,
            mean: map.mean_field(),
        };

        // the step population's mean and covariance as functions of the averages
        let step = &network.populations[step_population];
        let evaluate = |probe: &Probe| -> Result<(Array2<f64>, Array1<f64>), SimulateError> {
            let mut entries = BTreeMap::new();
            for &r in &previous_rules {
                let rule = &network.rules[r];
                let slots = rule
                    .averages
                    .iter()
                    .map(|a| match shape_of(&a.body) {
                        Some(AverageShape::Matrix) => Ok(Value::Matrix(probe.matrix.clone())),
                        Some(AverageShape::Vector) => Ok(Value::Matrix(probe.vector.clone())),
                        None => Err(not_simulable(format!(
                            "an average in the equation of {} is neither a P-vector nor a \
                             P×P matrix of the units",
                            network.name(&rule.key)
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let value =
                    simulator.matrix(&entries, &slots, &rule.rhs, &network.name(&rule.key))?;
                entries.insert(rule.key.clone(), value);
            }
            let cov = simulator.matrix(&entries, &[], &step.cov, "the units' covariance")?;
            let mean = match simulator.value(&entries, &[], &step.mean, "the units' mean")? {
                Value::Scalar(m) => Array1::from_elem(p, m),
                Value::Matrix(m) if m.len() == p => m.iter().copied().collect(),
                Value::Matrix(m) => {
                    return Err(SimulateError::Evaluate {
                        what: "the units' mean".into(),
                        reason: format!("a {}×{} matrix, not a P-vector", m.nrows(), m.ncols()),
                    });
                }
            };
            Ok((cov, mean))
        };
        let zero = Array2::<f64>::zeros((p, p));
        let generic =
            Array2::from_shape_fn((p, p), |(i, j)| 1.0 / (2.0 + i as f64 + 0.5 * j as f64));
        let generic_vector = Array2::from_shape_fn((p, 1), |(i, _)| 0.3 + 0.17 * i as f64);
        let probe = |matrix: &Array2<f64>, vector: &Array2<f64>| Probe {
            matrix: matrix.clone(),
            vector: vector.clone(),
        };
        let zero_vector = Array2::<f64>::zeros((p, 1));
        let (d, mu0) = evaluate(&probe(&zero, &zero_vector))?;
        let (at_identity, _) = evaluate(&probe(&Array2::eye(p), &zero_vector))?;
        let (at_generic, mean_at_generic) = evaluate(&probe(&generic, &zero_vector))?;
        let (cov_at_ones, mean_at_ones) = evaluate(&probe(&zero, &Array2::from_elem((p, 1), 1.0)))?;
        let (cov_at_vector, mean_at_vector) = evaluate(&probe(&zero, &generic_vector))?;
        let g = at_identity[(0, 0)] - d[(0, 0)];
        let j = mean_at_ones[0] - mu0[0];
        let scale = d
            .iter()
            .chain(at_identity.iter())
            .chain(mu0.iter())
            .chain(mean_at_ones.iter())
            .fold(1.0f64, |m, v| m.max(v.abs()));
        let close = |a: &Array2<f64>, b: &Array2<f64>| {
            a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-10 * scale)
        };
        let close1 = |a: &Array1<f64>, b: &Array1<f64>| {
            a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-10 * scale)
        };
        let affine_cov = close(&at_generic, &(&d + &(&generic * g)))
            && close(&cov_at_ones, &d)
            && close(&cov_at_vector, &d);
        let affine_mean = close1(&mean_at_generic, &mu0)
            && close1(
                &mean_at_vector,
                &(&mu0 + &(generic_vector.column(0).to_owned() * j)),
            );
        if !(affine_cov && affine_mean) {
            return Err(SimulateError::NotSimulable {
                reason: format!(
                    "the units' {} is not {} in the previous step's averages: Glauber \
                     dynamics takes couplings acting linearly, h = W f(h) + ξ",
                    if affine_cov { "mean" } else { "covariance" },
                    if affine_cov {
                        "μ₀ + J⟨f⟩"
                    } else {
                        "D + g⟨f fᵀ⟩"
                    }
                ),
                span: step.span,
            });
        }
        if !(g.is_finite() && g >= 0.0 && j.is_finite()) {
            return Err(SimulateError::Setting(format!(
                "the couplings' variance g = {g} and mean J = {j} are not those of a weight \
                 matrix"
            )));
        }
        glauber.gain = g;
        glauber.coupling_mean = j;
        glauber.drive_mean = mu0;
        glauber.drive_factor = covariance_factor(&d, "the drive's covariance over patterns")?;

        // ⟨body⟩ = (1/N) Σᵢ f fᵀ (or Σᵢ f) for the averages of both steps, on a probe draw
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let h = glauber.first_units(&mut rng)?;
        let outputs = glauber.outputs(h.view())?;
        let n = units as f64;
        let product = outputs.t().dot(&outputs) / n;
        let activity = outputs.sum_axis(Axis(0)).insert_axis(Axis(1)) / n;
        let previous_var = &network.populations[previous_population].var;
        for (rules, var) in [
            (&glauber.state_rules, &var),
            (&previous_rules, previous_var),
        ] {
            for &r in rules {
                let rule: &FieldRule = &network.rules[r];
                for average in &rule.averages {
                    let value = glauber.average_on(h.view(), var, &average.body)?;
                    let expected = match shape_of(&average.body) {
                        Some(AverageShape::Matrix) => &product,
                        _ => &activity,
                    };
                    let size = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    let agrees = matches!(&value, Value::Matrix(v) if v.dim() == expected.dim()
                        && v.iter().zip(expected).all(|(a, b)| (a - b).abs() <= 1e-9 * size));
                    if !agrees {
                        return Err(not_simulable(format!(
                            "the average in the equation of {} is not (1/N) Σᵢ f(hᵢ) f(hᵢ)ᵀ \
                             or (1/N) Σᵢ f(hᵢ) of one unit output f",
                            network.name(&rule.key)
                        )));
                    }
                }
            }
        }
        Ok(glauber)
    }

    /// The first step's pre-activations (N×P), drawn as the synchronous network draws them.
    fn first_units(&self, rng: &mut StdRng) -> Result<Array2<f64>, SimulateError> {
        let z = self.simulator.standard_normals(rng);
        let (_, mut units) = self.simulator.draw_with_units(&z)?;
        units
            .get_mut(self.first_population)
            .and_then(Option::take)
            .ok_or_else(|| SimulateError::Evaluate {
                what: "the first step's units".into(),
                reason: "the network did not draw them".into(),
            })
    }

    /// f(h) on every row of `h`.
    fn outputs(&self, h: ArrayView2<f64>) -> Result<Array2<f64>, SimulateError> {
        let network = self.simulator.network;
        let var = &network.populations[self.step_population].var;
        self.simulator.with_context(&BTreeMap::new(), &[], |ctx| {
            UnitEvaluator {
                theory: &network.theory,
                var,
                h,
                constants: ctx,
                memo: None,
                times: &[],
            }
            .columns(&self.output)
            .map_err(|e| SimulateError::NotSimulable {
                reason: e.reason,
                span: e.span,
            })
        })
    }

    fn average_on(
        &self,
        h: ArrayView2<f64>,
        var: &str,
        body: &Expr,
    ) -> Result<Value, SimulateError> {
        let network = self.simulator.network;
        self.simulator.with_context(&BTreeMap::new(), &[], |ctx| {
            UnitEvaluator {
                theory: &network.theory,
                var,
                h,
                constants: ctx,
                memo: None,
                times: &[],
            }
            .average(body)
            .map_err(|e| SimulateError::NotSimulable {
                reason: e.reason,
                span: e.span,
            })
        })
    }

    /// The state (every state field's entry) of units with last pre-activations `h`.
    pub fn state(&self, h: ArrayView2<f64>) -> Result<Vec<Array2<f64>>, SimulateError> {
        let network = self.simulator.network;
        let var = &network.populations[self.step_population].var;
        let mut entries = BTreeMap::new();
        let mut out = Vec::with_capacity(self.state_rules.len());
        for &r in &self.state_rules {
            let rule = &network.rules[r];
            let slots = rule
                .averages
                .iter()
                .map(|a| self.average_on(h, var, &a.body))
                .collect::<Result<Vec<_>, _>>()?;
            let name = network.name(&rule.key);
            let value = self.simulator.matrix(&entries, &slots, &rule.rhs, &name)?;
            if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
                return Err(SimulateError::Evaluate {
                    what: name,
                    reason: format!("an entry came out {bad}"),
                });
            }
            entries.insert(rule.key.clone(), value.clone());
            out.push(value);
        }
        Ok(out)
    }

    /// The state fields' names at the last step (`Q[3]`, `m[3]`).
    pub fn state_names(&self) -> Vec<String> {
        let network = self.simulator.network;
        self.state_rules
            .iter()
            .map(|&r| network.name(&network.rules[r].key))
            .collect()
    }
}

/// What asynchronous updates need of a network: its units at t = 0 and the drive they keep,
/// the couplings' law, the unit output and the state a set of units is in.
pub trait AsynchronousUnits: Sync {
    /// The number of units N.
    fn units(&self) -> usize;
    /// The number of patterns P.
    fn patterns(&self) -> usize;
    /// (g, J): Wᵢⱼ ~ 𝒩(J/N, g/N).
    fn couplings(&self) -> (f64, f64);
    /// The units' pre-activations at t = 0 and the drive each unit keeps (N×P each).
    fn start(&self, rng: &mut StdRng) -> Result<(Array2<f64>, Array2<f64>), SimulateError>;
    /// f(h) on every row of `h`.
    fn outputs(&self, h: &Array2<f64>) -> Result<Array2<f64>, SimulateError>;
    /// The state (the step map's fields, in its order) of units with last pre-activations `h`.
    fn state(&self, h: &Array2<f64>) -> Result<Vec<Array2<f64>>, SimulateError>;
    /// The positions of the kernel field and of the mean field in the state.
    fn measured(&self) -> (usize, Option<usize>);
}

impl AsynchronousUnits for GlauberSimulator<'_> {
    fn units(&self) -> usize {
        self.units
    }

    fn patterns(&self) -> usize {
        self.simulator.patterns()
    }

    fn couplings(&self) -> (f64, f64) {
        (self.gain, self.coupling_mean)
    }

    fn start(&self, rng: &mut StdRng) -> Result<(Array2<f64>, Array2<f64>), SimulateError> {
        let h = self.first_units(rng)?;
        let (n, p) = (self.units, self.simulator.patterns());
        let z = Array2::from_shape_simple_fn((n, p), || rng.sample::<f64, _>(StandardNormal));
        let xi = z.dot(&self.drive_factor.t()) + self.drive_mean.view().insert_axis(Axis(0));
        Ok((h, xi))
    }

    fn outputs(&self, h: &Array2<f64>) -> Result<Array2<f64>, SimulateError> {
        GlauberSimulator::outputs(self, h.view())
    }

    fn state(&self, h: &Array2<f64>) -> Result<Vec<Array2<f64>>, SimulateError> {
        GlauberSimulator::state(self, h.view())
    }

    fn measured(&self) -> (usize, Option<usize>) {
        (self.kernel, self.mean)
    }
}

/// How an average's integrand is shaped per unit.
enum AverageShape {
    /// f fᵀ: a P×P matrix.
    Matrix,
    /// f: a P-vector.
    Vector,
}

fn shape_of(body: &Expr) -> Option<AverageShape> {
    if body.shape == Shape::VECTOR {
        Some(AverageShape::Vector)
    } else if body.shape.is_scalar() {
        None
    } else {
        Some(AverageShape::Matrix)
    }
}

/// The outermost P-vector factor of `body` that reads the units.
fn unit_output(body: &Expr, var: &str) -> Option<Expr> {
    if body.shape == Shape::VECTOR && mentions_random(body, Some(var)) {
        return Some(body.clone());
    }
    if let ExprKind::RandomVar { .. } = body.kind {
        return None;
    }
    body.children().find_map(|c| unit_output(c, var))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::Network;
    use crate::simulate::RecurrentSimulator;
    use crate::simulate::separation::SimulatedSeparation;
    use crate::solve::nngp::NngpSettings;
    use crate::solve::separation::{GlauberTimes, SeparationCurve};
    use crate::solve::separation::{glauber_curve, overlap_patterns};

    /// The mean-field Glauber curve and `samples` simulated networks of width 1000 on the
    /// overlap patterns; Δ(t), ρ within and ρ between at every reported time within 4 s.e. of
    /// the theory. Returns (theory, simulation).
    fn compare(
        file: &str,
        set: &[(&str, f64)],
        overlaps: (f64, f64),
        samples: usize,
        seed: u64,
    ) -> (SeparationCurve, SimulatedSeparation) {
        let source = std::fs::read_to_string(file).expect("example");
        let theory = crate::compile(&source, file).expect("checks");
        let mut set: Vec<(String, f64)> = set.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        set.push(("N".into(), 1000.0));
        let (x, groups) = overlap_patterns(overlaps.0, overlaps.1).expect("overlaps");
        let settings = NngpSettings {
            overrides: set.clone(),
            ..NngpSettings::default()
        };
        let times = GlauberTimes {
            end: 3.0,
            interval: 0.5,
            substeps: 50,
        };
        let map = StepMap::from_theory(&theory, &set, 80).expect("step map");
        let curve =
            glauber_curve(&theory, x.view(), &settings, &map, &groups, times).expect("theory");
        let params = theory.bind(&set).expect("params");
        let network = Network::new(&theory, &params).expect("network");
        let simulator = Simulator::new(&network, x.view()).expect("simulator");
        let glauber = GlauberSimulator::new(&simulator, &map).expect("glauber network");
        let sim = simulate_glauber_separation(&glauber, &groups, times, samples, seed, &|_| {})
            .expect("simulation");
        assert_eq!(sim.mean.steps, curve.steps);
        for l in 0..curve.steps.len() {
            for (what, m, se, t) in [
                ("Δ", &sim.mean.delta, &sim.std_error.delta, &curve.delta),
                (
                    "ρ within",
                    &sim.mean.within,
                    &sim.std_error.within,
                    &curve.within,
                ),
                (
                    "ρ between",
                    &sim.mean.between,
                    &sim.std_error.between,
                    &curve.between,
                ),
            ] {
                assert!(
                    (m[l] - t[l]).abs() <= 4.0 * se[l] + 1e-12,
                    "{file}: {what}({}) = {} ± {} vs {}",
                    curve.steps[l],
                    m[l],
                    se[l],
                    t[l]
                );
            }
        }
        (curve, sim)
    }

    #[test]
    fn threshold_network_under_glauber_dynamics_follows_the_mean_field() {
        let file = "examples/binary_threshold.action";
        let (curve, sim) = compare(file, &[("theta", 0.5)], (0.999, 0.9), 100, 5);
        // Δ(t) is nearly flat here: the theory's optimum is among the steps the networks
        // cannot tell from theirs
        assert!(sim.optimal_steps.contains(&curve.optimal_step()));
        assert!(sim.optimal_steps.contains(&sim.optimal_step()));
    }

    #[test]
    fn rate_units_with_a_bias_follow_the_mean_field_and_a_seed_repeats() {
        // erf units, couplings of variance g and a bias shared over time (the drive D = g_b)
        let set = [("g", 1.5), ("gb", 0.1), ("L", 3.0)];
        let (_, a) = compare("examples/deep_erf.action", &set, (0.99, 0.8), 40, 9);
        let (_, b) = compare("examples/deep_erf.action", &set, (0.99, 0.8), 40, 9);
        assert_eq!(a.mean, b.mean);
        assert_eq!(a.std_error, b.std_error);
    }

    #[test]
    fn recurrent_network_under_glauber_dynamics_follows_the_mean_field() {
        // recurrent erf with a bias shared over time: h(0) from the input, then one W
        let file = "examples/recurrent_erf.action";
        let source = std::fs::read_to_string(file).expect("example");
        let theory = crate::compile(&source, file).expect("checks");
        let set: Vec<(String, f64)> = [("N", 1000.0), ("T", 3.0), ("gb", 0.1)]
            .iter()
            .map(|(n, v)| (n.to_string(), *v))
            .collect();
        let (x, groups) = overlap_patterns(0.99, 0.8).expect("overlaps");
        let settings = NngpSettings {
            overrides: set.clone(),
            ..NngpSettings::default()
        };
        let times = GlauberTimes {
            end: 2.0,
            interval: 0.5,
            substeps: 50,
        };
        let map = StepMap::from_theory(&theory, &set, 80).expect("step map");
        let curve =
            glauber_curve(&theory, x.view(), &settings, &map, &groups, times).expect("theory");
        let params = theory.bind(&set).expect("params");
        let network = crate::simulate::RecurrentNetwork::new(&theory, &params).expect("network");
        let simulator = RecurrentSimulator::new(&network, x.view()).expect("simulator");
        let glauber = RecurrentGlauber::new(&simulator, &map).expect("glauber network");
        let sim = simulate_glauber_separation(&glauber, &groups, times, 40, 2, &|_| {})
            .expect("simulation");
        assert_eq!(sim.mean.steps, curve.steps);
        for l in 0..curve.steps.len() {
            let (m, se, t) = (sim.mean.delta[l], sim.std_error.delta[l], curve.delta[l]);
            assert!(
                (m - t).abs() <= 4.0 * se,
                "Δ({}) = {m} ± {se} vs {t}",
                curve.steps[l]
            );
        }
    }

    #[test]
    fn couplings_that_do_not_act_linearly_are_refused() {
        let source = std::fs::read_to_string("examples/binary_threshold.action")
            .expect("example")
            .replace(
                "h ~ N(J * m[l-1], g * Q[l-1])",
                "h ~ N(J * m[l-1] + exp(m[l-1]), g * Q[l-1])",
            );
        let theory = crate::compile(&source, "nonlinear_mean.action").expect("checks");
        let params = theory.bind(&[]).expect("params");
        let network = Network::new(&theory, &params).expect("network");
        let (x, _) = overlap_patterns(0.99, 0.8).expect("overlaps");
        let simulator = Simulator::new(&network, x.view()).expect("simulator");
        let map = StepMap::from_theory(&theory, &[], 40).expect("step map");
        let err = GlauberSimulator::new(&simulator, &map).expect_err("refused");
        assert!(err.to_string().contains("mean is not μ₀ + J⟨f⟩"), "{err}");
    }
}
