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
//!
//! ## Modules
//! * here: [`recurrent_kernels`], the problem's types and the NNGP starting point.
//! * `problem`: the theory read for the solver (drives, blocks, covariance, tilt, factors).
//! * `sweep`: one step, the solve, the GP readout and the forward fixed point.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Axis, s};

use super::FiniteWidthError;
use super::map::{
    LINEAR_TOLERANCE, MapLayer, MapPrediction, MapSettings, MapSolution, PopulationReport,
    Replicas, check_settings, normals, replicas_of, standard_error,
};
use super::tilted::Estimator;
use crate::check::ir::Theory;
use crate::simulate::recurrent::{RecurrentNetwork, RecurrentSimulator};
use crate::simulate::stream_seed;
use crate::solve::nngp::{EntryKey, NngpSettings, nngp_kernels, parameter_values};

mod problem;
mod sweep;

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
    /// ∂R/∂C per key, conjugates as fields at [`super::map::CONJUGATE_BASE`].
    rest: Vec<Option<crate::check::ir::Expr>>,
    conjugate_of: Vec<Option<usize>>,
}

/// One evaluation of the map: the fields' and conjugates' new values and the weights' ESS.
struct Step {
    fields: Entries,
    conjugates: Entries,
    ess: f64,
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
