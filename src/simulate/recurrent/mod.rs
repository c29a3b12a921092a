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
//!
//! Here: [`RecurrentNetwork`], the network read off the action; `simulator`:
//! [`RecurrentSimulator`], that network at given inputs (draws, fields, whitened coordinates).

use super::SimulateError;
use super::network::{
    ConstantContext, additive_terms, population_coefficient, populations_in, rename_terms,
};
use crate::check::ir::{Covariance, Expr, ExprKind, FieldId, Shape, Theory};
use crate::derive::build::{mentions_random, node, substitute};
use crate::derive::equations::forward_equations_of;
use crate::derive::grad::Variable;
use crate::derive::unroll::{IndexEnv, defined_entries, unroll};
use crate::solve::nngp::{EntryKey, Kernels};

mod simulator;
pub use simulator::RecurrentSimulator;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::prior::sample_prior;
    use crate::solve::nngp::{NngpSettings, nngp_kernels};
    use ndarray::Array2;

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
