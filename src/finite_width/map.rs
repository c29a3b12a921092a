//! The MAP kernels at finite width for any number of patterns, by forward–backward sweeps.
//!
//! ## Equations
//! For an action S = Σₖ nₖ ln Zₖ(Kₖ, mₖ; C̃) − Σ⟨C̃, C⟩ + R(C, C̃) with one population per
//! cumulant-generating term ([`crate::simulate::network`]), stationarity gives
//! (THEORY.md §4.3)
//! * (F) each field from the tilted averages of its population: C = F(⟨q(h)⟩_P);
//! * (B, O) each conjugate from the populations that read its field and the rest R of the
//!   action (the data term, a Wishart measure term):
//!   $$\tilde C_f=\partial_{C_f}R+\sum_k n_k\,a_{kf}\,\partial_{K_k}\ln Z_k\quad
//!   (K_k=a_{kf}C_f+\dots),$$
//!   the mean fields likewise through ∂_m ln Z. ∂R/∂C is derived symbolically from R
//!   ([`crate::derive::equations::backward_equations_of`]), and ∂ ln Z by
//!   [`super::tilted`]: exactly where the tilt is Gaussian, by importance sampling
//!   otherwise.
//!
//! A sweep is (B, O) from the last field to the first, a damped update of the conjugates
//! C̃ ← C̃ + d (C̃_new − C̃) (d halved where a tilted measure is not normalisable), then (F)
//! from the first field to the last. It starts at the NNGP point (C = C*, C̃ = 0) and stops
//! when both updates change less than `tolerance` relative to the size of the fields and
//! of the conjugates.
//!
//! ## Monte Carlo
//! With sampled expectations every sweep uses the same standard normals (common random
//! numbers), so the sweeps are a deterministic map and converge to a fixed point as the
//! exact ones do. The fields are C = C* + F_z(C, C̃) − F_z(C*, 0): the sampled map's error at
//! the NNGP point (known exactly) is subtracted, which leaves the noise in the shift
//! C − C* = O(1/N) rather than in C. Standard errors come from independent replicas (fresh
//! normals, m = M/R samples each, at least 2000): s.e. = sd over replicas · √(m/M).
//!
//! ## Modules
//! * `solution`: [`MapSettings`] and what the solvers return ([`MapSolution`], per layer and
//!   population, with the prediction).
//! * `problem`: the theory read for the sweeps — populations, links, tilts, contexts.
//! * `sweep`: one forward–backward sweep (tilted moments, forward and backward equations);
//!   `tilt_pass` and `expansion` its fused Monte Carlo pass and its 1/N expansion.
//! * `iterate`: the solve loop (Anderson, damped; `newton_krylov`), shared fixed-point helpers.
//! * `linear`: the linearised system at scale; `unbounded`: actions without a maximum.
//! * `support`: replicas and standard errors, settings checks, derived rest gradients.

mod expansion;
mod iterate;
mod linear;
mod newton_krylov;
mod problem;
mod solution;
mod support;
mod sweep;
mod tilt_pass;
mod unbounded;

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2};

use super::FiniteWidthError;
use super::tilted::Estimator;
use crate::check::ir::{Expr, Theory};
use crate::numeric::price::TiltForm;
use crate::simulate::network::Network;
use crate::simulate::stream_seed;
use crate::solve::fluctuation::Order;
use crate::solve::nngp::{EntryKey, NngpSettings, nngp_kernels, parameter_values};
pub(super) use iterate::*;
pub use solution::{
    MapLayer, MapPrediction, MapSettings, MapSolution, PopulationReport, SaddleIteration,
};
pub(super) use support::*;

/// A solution of the sweeps: the state, the sweeps taken, the last relative change and each
/// population's effective sample size there (None where exact).
type Solved = (State, usize, f64, Vec<Option<f64>>);

/// The fewest samples a replica gets (fewer when M itself is smaller).
pub(super) const MIN_REPLICA_SAMPLES: usize = 2_000;

/// Field (or conjugate) entries by the field's key.
type Entries = BTreeMap<EntryKey, Array2<f64>>;

/// Field ids at and above this stand for conjugates (id − base) in evaluation contexts.
pub(super) const CONJUGATE_BASE: usize = 1 << 24;

/// How a population's covariance or mean reads a field: K = a·C_f + (the rest).
#[derive(Debug, Clone)]
struct Link {
    field: EntryKey,
    coefficient: f64,
    /// Through the mean (a mean field) rather than the covariance.
    mean: bool,
}

/// The theory read for the sweeps, at bound parameters on fixed inputs.
struct Problem<'a> {
    theory: &'a Theory,
    network: Network,
    /// Training patterns, then test patterns (rows of every kernel).
    x: ArrayView2<'a, f64>,
    /// Targets of the training patterns.
    y: Option<ArrayView2<'a, f64>>,
    /// The number of training patterns: the data term and the rest of the action read the
    /// training block of the kernels only; test rows have no conjugate entries.
    training: usize,
    /// Definitions (computed once).
    fixed: BTreeMap<EntryKey, Array2<f64>>,
    /// Conjugate id of each field (None when it has none).
    conjugate_of: Vec<Option<usize>>,
    /// Each population's tilt, conjugates as fields at [`CONJUGATE_BASE`].
    tilts: Vec<Expr>,
    /// ∂R/∂C per rule, conjugates as fields.
    rest: Vec<Option<Expr>>,
    /// Per population.
    links: Vec<Vec<Link>>,
    estimators: Vec<Estimator>,
    /// Per population: the tilt as a form of smooth entry-wise functions (Price's theorem
    /// for the backward equations), when it is one.
    price: Vec<Option<TiltForm>>,
}

/// Fields and conjugates (by the field's key).
#[derive(Debug, Clone)]
struct State {
    fields: BTreeMap<EntryKey, Array2<f64>>,
    conjugates: BTreeMap<EntryKey, Array2<f64>>,
}

/// The MAP kernels of `theory` on inputs `x` and targets `y`; with test inputs `x_test` the
/// test patterns join every kernel as rows without a data term (their conjugate entries are
/// zero), so the train–test and test–test blocks adapt too, and the GP prediction with the
/// adapted readout kernel is returned.
pub fn map_kernels(
    theory: &Theory,
    x: ArrayView2<f64>,
    y: ArrayView2<f64>,
    x_test: Option<ArrayView2<f64>>,
    settings: &MapSettings,
) -> Result<MapSolution, FiniteWidthError> {
    layered_kernels(theory, x, y, x_test, None, settings)
}

/// The linearised system around the NNGP point (THEORY.md §4.4) of `theory` for any number
/// of patterns, to `order`: the conjugates solve C̃ = g(0) + Dg(0)·C̃ for the sweep map
/// g(C̃) = B(F(C̃), C̃) (the backward equations at the fields the forward pass gives), the
/// kernels are C* + DF(0)·C̃. DF·v and Dg·v are central differences of the same maps the MAP
/// iterates, on the same normals, so they carry the backward sweep of Gᵀ, the forward sweep
/// of G and (g²/N)V and the readout's H without forming any of them; to leading order the
/// rest of the action (the data term's H, a measure term) is read at C*. The returned
/// [`MapSolution`] holds C* + δC as `kernel` and C̃ as `conjugate`, with test patterns as for
/// [`map_kernels`]; the effective sample sizes are absent (the measure is untilted).
pub fn linear_kernels(
    theory: &Theory,
    x: ArrayView2<f64>,
    y: ArrayView2<f64>,
    x_test: Option<ArrayView2<f64>>,
    order: Order,
    settings: &MapSettings,
) -> Result<MapSolution, FiniteWidthError> {
    layered_kernels(theory, x, y, x_test, Some(order), settings)
}

/// The MAP (`linear` None) or the linearised system to an order.
fn layered_kernels(
    theory: &Theory,
    x: ArrayView2<f64>,
    y: ArrayView2<f64>,
    x_test: Option<ArrayView2<f64>>,
    linear: Option<Order>,
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
    let params = parameter_values(theory, &settings.overrides)?;
    let nngp_settings = NngpSettings {
        overrides: settings.overrides.clone(),
        outputs: Some(y.ncols()),
        native: settings.native,
        ..NngpSettings::default()
    };
    // The sweeps run on the training patterns: test rows carry no conjugate entries, so
    // the training block does not depend on them (the tilted measure's training marginal
    // is the untilted one's, tilted). The test rows join afterwards in one forward pass
    // over the joint kernels, with normals whose first P columns are the sweeps' (a
    // Cholesky factor's leading block is the factor of the leading block).
    let nngp = nngp_kernels(theory, x, Some(y), &nngp_settings)?;
    let problem = Problem::new(theory, &params, x, Some(y), &nngp, settings.force_sampling)?;
    let start = problem.nngp_state(&nngp)?;
    if linear.is_none() {
        // the MAP is a maximum: refuse an action that has none before sweeping towards it
        problem.check_bounded(&start)?;
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
            ndarray::concatenate(ndarray::Axis(0), &[x, t])
                .map_err(|e| FiniteWidthError::Unsupported(e.to_string()))?,
        ),
        None => None,
    };
    let joint = match &joined {
        Some(all) => {
            let nngp_all = nngp_kernels(theory, all.view(), None, &nngp_settings)?;
            let joint = Problem::new(
                theory,
                &params,
                all.view(),
                Some(y),
                &nngp_all,
                settings.force_sampling,
            )?;
            let start_all = joint.nngp_state(&nngp_all)?;
            Some((joint, start_all))
        }
        None => None,
    };
    let sampled = problem.estimators.contains(&Estimator::ImportanceSampling);
    let p_train = x.nrows();
    let p_all = joined.as_ref().map_or(p_train, |a| a.nrows());
    let draw = |m: usize, stream: u64| {
        if sampled {
            normals(m, p_all, stream_seed(settings.seed, stream))
        } else {
            Array2::zeros((0, p_all))
        }
    };
    // Units with kinks (relu): the sampled backward map jumps by O(1/M) where a sample's
    // pre-activation crosses the kink, so the sweeps resolve the fixed point to ~1/M (far
    // below the Monte Carlo error ~1/√M), not further.
    let kinked = problem
        .price
        .iter()
        .zip(&problem.estimators)
        .any(|(form, e)| {
            *e == Estimator::ImportanceSampling && form.as_ref().is_some_and(|f| !f.second_order())
        });
    let resolution = |m: usize| if kinked { 4.0 / m as f64 } else { 0.0 };
    // the solution on the training patterns, and on all patterns when there are test ones
    let solve =
        |from: State, z: &Array2<f64>, m: usize| -> Result<(Solved, State), FiniteWidthError> {
            // the linear system's differences move no sample across a kink (the jumps scale
            // with the step), so only the MAP needs the kinks' resolution
            let run = MapSettings {
                tolerance: if linear.is_some() {
                    settings.tolerance
                } else {
                    settings.tolerance.max(resolution(m))
                },
                ..settings.clone()
            };
            let z_train = z.slice(ndarray::s![.., ..p_train]);
            let (state, sweeps, residual, ess) = match linear {
                None => problem.solve(&start, from, z_train, &run)?,
                Some(order) => problem.solve_linear(&start, &from, z_train, &run, order)?,
            };
            let full = match &joint {
                Some((joint, start_all)) => {
                    let mut conjugates = start_all.conjugates.clone();
                    for (key, value) in conjugates.iter_mut() {
                        let train = &state.conjugates[key];
                        let (r, c) = train.dim();
                        value.slice_mut(ndarray::s![..r, ..c]).assign(train);
                    }
                    let fields = match linear {
                        None => joint.corrected_fields(start_all, &conjugates, z.view())?,
                        Some(_) => joint.linear_fields(
                            start_all,
                            &conjugates,
                            z.view(),
                            settings.linear_by_differences,
                        )?,
                    };
                    State { fields, conjugates }
                }
                None => state.clone(),
            };
            Ok(((state, sweeps, residual, ess), full))
        };
    let z = draw(settings.samples, 0);
    let ((state, sweeps, residual, ess), mut full) = solve(start.clone(), &z, settings.samples)?;
    let populations = problem
        .network
        .populations
        .iter()
        .enumerate()
        .map(|(k, pop)| PopulationReport {
            term: k + 1,
            units: pop.units,
            estimator: problem.estimators[k],
            effective_samples: ess[k],
        })
        .collect();

    // replicas: fresh normals, warm start from the solution
    let replicas = if sampled { settings.replicas } else { 0 };
    let Replicas {
        states: mut replica_states,
        rescale,
        samples: replica_samples,
    } = replicas_of(settings.samples, replicas, |r, per| {
        let z = draw(per, r as u64 + 1);
        solve(state.clone(), &z, per).map(|(_, s)| s)
    })?;
    // the posterior mean: the MAP (and every replica's) plus the deterministic m/N, so the
    // prediction is made with it and the standard errors are the MAP's
    let shifts = match (settings.posterior_mean, linear) {
        (false, _) => None,
        (true, Some(_)) => {
            return Err(FiniteWidthError::Unsupported(
                "the posterior-mean shift m/N is added to the MAP, not to the linearised system"
                    .into(),
            ));
        }
        (true, None) => {
            let all = joined.as_ref().map_or(x, |a| a.view());
            Some(super::posterior::one_loop_shifts(
                theory,
                all,
                &settings.overrides,
            )?)
        }
    };
    let map_fields = shifts.as_ref().map(|_| full.fields.clone());
    if let Some(shifts) = &shifts {
        super::posterior::add_shifts(&mut full.fields, shifts);
        for replica in &mut replica_states {
            super::posterior::add_shifts(&mut replica.fields, shifts);
        }
    }
    let error = |pick: &dyn Fn(&State) -> &Array2<f64>| -> Option<Array2<f64>> {
        let values: Vec<Array2<f64>> = replica_states.iter().map(|s| pick(s).clone()).collect();
        standard_error(&values).map(|e| e * rescale)
    };
    let (reporter, report_start) = match &joint {
        Some((joint, start_all)) => (joint, start_all),
        None => (&problem, &start),
    };
    // C* + δC of the linearised system need not be positive definite (the linearisation
    // fails where the shift is not small): say so rather than pass on the GP's complaint
    let linearised = |e: FiniteWidthError| match (linear, e) {
        (Some(_), FiniteWidthError::Unsupported(reason)) => FiniteWidthError::Unsupported(format!(
            "the linearised readout kernel C* + δC cannot be used for GP regression ({reason}): \
             the linearisation does not hold at this width; `--method map` solves the full \
             saddle point"
        )),
        (_, e) => e,
    };
    let prediction = reporter.predict(&full, report_start).map_err(linearised)?;
    let prediction = match prediction {
        Some(mut prediction) if replica_states.len() >= 2 => {
            let replicas = replica_states
                .iter()
                .map(|s| reporter.predict(s, report_start))
                .collect::<Result<Vec<_>, _>>()
                .map_err(linearised)?;
            let means: Vec<Array2<f64>> =
                replicas.iter().flatten().map(|r| r.mean.clone()).collect();
            let variances: Vec<Array2<f64>> = replicas
                .iter()
                .flatten()
                .map(|r| r.variance.clone().insert_axis(ndarray::Axis(1)))
                .collect();
            prediction.mean_error = standard_error(&means).map(|e| e * rescale);
            prediction.variance_error =
                standard_error(&variances).map(|v| v.column(0).to_owned() * rescale);
            Some(prediction)
        }
        other => other,
    };

    let layers = problem
        .network
        .rules
        .iter()
        .map(|rule| {
            let key = &rule.key;
            let conjugate_name = problem.conjugate_name(key);
            MapLayer {
                name: problem.network.name(key),
                conjugate_name,
                nngp: report_start.fields[key].clone(),
                kernel: full.fields[key].clone(),
                conjugate: full.conjugates[key].clone(),
                kernel_error: error(&|s: &State| &s.fields[key]),
                conjugate_error: error(&|s: &State| &s.conjugates[key]),
                map_kernel: map_fields.as_ref().map(|f| f[key].clone()),
                n_shift: shifts
                    .as_ref()
                    .and_then(|s| s.get(key))
                    .filter(|s| s.fits(&full.fields[key]))
                    .map(|s| s.n_shift.clone()),
            }
        })
        .collect();
    let main_tolerance = if linear.is_some() {
        problem.linear_tolerance(settings, settings.samples)
    } else {
        settings.tolerance.max(resolution(settings.samples))
    };
    Ok(MapSolution {
        width: theory.param("N").map(|id| params[id]),
        layers,
        sweeps,
        residual,
        tolerance: main_tolerance,
        populations,
        samples: if sampled { settings.samples } else { 0 },
        replicas,
        replica_samples,
        training: x.nrows(),
        prediction,
    })
}
