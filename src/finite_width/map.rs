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

mod expansion;
mod newton_krylov;
mod tilt_pass;
mod unbounded;

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::FiniteWidthError;
use super::gaussian::GaussianForms;
use super::tilted::{Estimator, PopulationContext, TiltedMeasure};
use crate::check::ir::{Expr, ExprKind, FieldKind, Theory};
use crate::derive::build::{add, neg, node, number, substitute, zero};
use crate::derive::equations::backward_equations_of;
use crate::derive::grad::Variable;
use crate::derive::unroll::{IndexEnv, unroll};
use crate::numeric::jet::has_jumps;
use crate::numeric::matrix::{MatrixContext, Value};
use crate::numeric::price::{EvaluatedTilt, TiltForm};
use crate::simulate::network::{Network, Step, additive_terms};
use crate::simulate::stream_seed;
use crate::solve::fluctuation::Order;
use crate::solve::gp::{Prediction, TestMetrics};
use crate::solve::nngp::{EntryKey, Kernels, NngpSettings, nngp_kernels, parameter_values};
use expansion::Expansion;
use newton_krylov::newton_krylov;

/// A solution of the sweeps: the state, the sweeps taken, the last relative change and each
/// population's effective sample size there (None where exact).
type Solved = (State, usize, f64, Vec<Option<f64>>);

/// The fewest samples a replica gets (fewer when M itself is smaller).
pub(super) const MIN_REPLICA_SAMPLES: usize = 2_000;

/// Field (or conjugate) entries by the field's key.
type Entries = BTreeMap<EntryKey, Array2<f64>>;

/// Field ids at and above this stand for conjugates (id − base) in evaluation contexts.
pub(super) const CONJUGATE_BASE: usize = 1 << 24;

/// Settings of [`map_kernels`].
#[derive(Debug, Clone)]
pub struct MapSettings {
    /// Parameter overrides (`--set`).
    pub overrides: Vec<(String, f64)>,
    /// Monte Carlo samples M per population (where the tilt is not Gaussian).
    pub samples: usize,
    /// Seed of the standard normals.
    pub seed: u64,
    /// Converged when a sweep changes the fields and the conjugates by less than this,
    /// relative to their size (Frobenius norms over all entries).
    pub tolerance: f64,
    /// Sweeps allowed.
    pub max_sweeps: usize,
    /// The first damping d of the conjugates' update (0 < d ≤ 1).
    pub damping: f64,
    /// Independent replicas for the Monte Carlo standard errors (0: none).
    pub replicas: usize,
    /// Sample every population, even where the Gaussian closed form is exact (for checks).
    pub force_sampling: bool,
    /// Past iterates the Anderson acceleration keeps (0: plain damped sweeps; a linearised
    /// system keeps at least 20).
    pub anderson_memory: usize,
    /// How the saddle point is iterated to (the linearised systems always use Anderson's
    /// Krylov form).
    pub iteration: SaddleIteration,
    /// Generated pair formulas for the NNGP point ([`NngpSettings::native`]).
    pub native: &'static [crate::generated::NativePairMap],
    /// Solve the linearised system by central differences of the sampled maps even where
    /// the expansion at the NNGP point applies (a check of it; much slower).
    pub linear_by_differences: bool,
    /// Add the prior one-loop mean shift m/N to the MAP ([`super::posterior`]): the kernels
    /// a trained network averages to, rather than their mode.
    pub posterior_mean: bool,
}

impl Default for MapSettings {
    fn default() -> Self {
        MapSettings {
            overrides: Vec::new(),
            samples: 20_000,
            seed: 0,
            tolerance: 1e-10,
            max_sweeps: 1000,
            damping: 0.5,
            replicas: 16,
            force_sampling: false,
            anderson_memory: 6,
            iteration: SaddleIteration::Anderson,
            native: &[],
            linear_by_differences: false,
            posterior_mean: false,
        }
    }
}

/// How [`map_kernels`] (and the recurrent MAP) move towards the saddle point; each counts
/// an evaluation of the sweep map (a forward and a backward pass) as one sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaddleIteration {
    /// Damped sweeps with Anderson acceleration (`anderson_memory` past iterates; plain
    /// damped sweeps with none).
    #[default]
    Anderson,
    /// Newton's method on the sweep map's residual, its linear systems solved by GMRES with
    /// differenced products (one sweep each) and a backtracking line search
    /// ([`newton_krylov`]).
    NewtonKrylov,
}

/// One field entry at the MAP.
#[derive(Debug, Clone)]
pub struct MapLayer {
    /// The entry, e.g. `C[2]`.
    pub name: String,
    /// Its conjugate, e.g. `Ct[2]`.
    pub conjugate_name: String,
    /// At the NNGP point.
    pub nngp: Array2<f64>,
    /// At the MAP.
    pub kernel: Array2<f64>,
    /// Its conjugate at the MAP.
    pub conjugate: Array2<f64>,
    /// Monte Carlo standard error of each entry of `kernel` (None when exact).
    pub kernel_error: Option<Array2<f64>>,
    /// Monte Carlo standard error of each entry of `conjugate`.
    pub conjugate_error: Option<Array2<f64>>,
    /// With [`MapSettings::posterior_mean`]: `kernel` is the posterior mean, this the MAP.
    pub map_kernel: Option<Array2<f64>>,
    /// With [`MapSettings::posterior_mean`]: the prior one-loop shift m (`kernel` − MAP = m/N).
    pub n_shift: Option<Array2<f64>>,
}

/// How one population's expectations were computed.
#[derive(Debug, Clone)]
pub struct PopulationReport {
    /// The term of the action (1-based, in order of appearance).
    pub term: usize,
    /// Its number of units n.
    pub units: usize,
    /// The estimator.
    pub estimator: Estimator,
    /// Effective sample size of the importance weights at the MAP (sampled only).
    pub effective_samples: Option<f64>,
}

/// The MAP and how it was reached.
#[derive(Debug, Clone)]
pub struct MapSolution {
    /// The width (the parameter `N`), when the theory has one.
    pub width: Option<f64>,
    /// One per field entry with a forward equation, in the order computed.
    pub layers: Vec<MapLayer>,
    /// Sweeps taken (the MAP), or iterations of the linearised system.
    pub sweeps: usize,
    /// The last sweep's relative change.
    pub residual: f64,
    /// The tolerance the sweeps reached: the one asked for, or the Monte Carlo resolution
    /// 4/M for units with kinks (MAP); for a linearised system at least 1e-8, and 1e-3/√M
    /// where sampled.
    pub tolerance: f64,
    /// Per population.
    pub populations: Vec<PopulationReport>,
    /// Samples M per sampled population (0 when every population is exact).
    pub samples: usize,
    /// Replicas behind the standard errors.
    pub replicas: usize,
    /// Samples per replica (M / replicas, at least 2000 or M).
    pub replica_samples: usize,
    /// The number of training patterns (the first rows of every kernel; test rows follow).
    pub training: usize,
    /// The GP prediction with the adapted readout kernel (and the NNGP one beside it).
    pub prediction: Option<MapPrediction>,
}

/// GP regression with the readout kernel at the MAP, beside the NNGP kernel's.
#[derive(Debug, Clone)]
pub struct MapPrediction {
    /// Posterior mean on the test patterns (P*×D; empty without test patterns).
    pub mean: Array2<f64>,
    /// Its Monte Carlo standard error.
    pub mean_error: Option<Array2<f64>>,
    /// Latent posterior variance per test pattern.
    pub variance: Array1<f64>,
    /// Its Monte Carlo standard error.
    pub variance_error: Option<Array1<f64>>,
    /// ln p(Y | X) of the training targets under the adapted kernel.
    pub log_marginal_likelihood: f64,
    /// The same three with the NNGP kernel.
    pub nngp_mean: Array2<f64>,
    /// NNGP latent variance.
    pub nngp_variance: Array1<f64>,
    /// NNGP ln p(Y | X).
    pub nngp_log_marginal_likelihood: f64,
}

impl MapSolution {
    /// N·(C − C*) of layer `i`, when the theory has a width `N`.
    pub fn scaled_delta(&self, i: usize) -> Option<Array2<f64>> {
        let layer = self.layers.get(i)?;
        Some((&layer.kernel - &layer.nngp) * self.width?)
    }
}

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

impl MapPrediction {
    /// Test MSE, generalisation error and accuracy of the MAP and of the NNGP prediction
    /// against test targets (the same scores as `solve --method nngp`).
    pub fn metrics(
        &self,
        test_targets: ArrayView2<'_, f64>,
    ) -> Result<(TestMetrics, TestMetrics), crate::solve::gp::GpError> {
        let score = |mean: &Array2<f64>, variance: &Array1<f64>| {
            Prediction {
                mean: mean.clone(),
                latent_variance: variance.clone(),
            }
            .metrics(test_targets)
        };
        Ok((
            score(&self.mean, &self.variance)?,
            score(&self.nngp_mean, &self.nngp_variance)?,
        ))
    }
}

/// Independent replicas of a solution, for its Monte Carlo standard errors.
pub(super) struct Replicas<S> {
    /// The replicas' solutions, in replica order.
    pub states: Vec<S>,
    /// √(R·m/M): sd/√R is the error of an estimate from R·m samples, the solution has M.
    pub rescale: f64,
    /// Samples m per replica (0 without replicas).
    pub samples: usize,
}

/// `replicas` independent solves `solve(r, m)` (replica r on fresh normals of m samples):
/// m = M/R, but at least 2000 (or M), so that each replica's importance weights stand on
/// their own. Solved in parallel and collected in replica order, so the errors do not
/// depend on the thread count.
pub(super) fn replicas_of<S: Send>(
    samples: usize,
    replicas: usize,
    solve: impl Fn(usize, usize) -> Result<S, FiniteWidthError> + Sync,
) -> Result<Replicas<S>, FiniteWidthError> {
    let Some(per) = samples.checked_div(replicas) else {
        return Ok(Replicas {
            states: Vec::new(),
            rescale: 1.0,
            samples: 0,
        });
    };
    let per = per.max(samples.min(MIN_REPLICA_SAMPLES));
    let states = (0..replicas)
        .into_par_iter()
        .map(|r| solve(r, per))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Replicas {
        states,
        rescale: ((per * replicas) as f64 / samples as f64).sqrt(),
        samples: per,
    })
}

/// sd over replicas / √R, entry by entry (None with fewer than two).
pub(super) fn standard_error(values: &[Array2<f64>]) -> Option<Array2<f64>> {
    let r = values.len() as f64;
    let first = values.first()?;
    if values.len() < 2 {
        return None;
    }
    let mut mean = Array2::<f64>::zeros(first.dim());
    for v in values {
        mean += v;
    }
    mean /= r;
    let mut var = Array2::<f64>::zeros(first.dim());
    for v in values {
        let d = v - &mean;
        var += &(&d * &d);
    }
    Some((var / (r - 1.0)).mapv(f64::sqrt) / r.sqrt())
}

pub(super) fn check_settings(settings: &MapSettings) -> Result<(), FiniteWidthError> {
    let bad = |name: &'static str, value: f64, reason: &'static str| {
        Err(FiniteWidthError::BadSetting {
            name,
            value,
            reason,
        })
    };
    if settings.samples < 2 {
        return bad(
            "samples",
            settings.samples as f64,
            "at least 2 Monte Carlo samples are needed",
        );
    }
    if !(settings.tolerance > 0.0 && settings.tolerance.is_finite()) {
        return bad(
            "tolerance",
            settings.tolerance,
            "a positive number is needed",
        );
    }
    if !(settings.damping > 0.0 && settings.damping <= 1.0) {
        return bad("damping", settings.damping, "it must lie in (0, 1]");
    }
    if settings.replicas == 1 {
        return bad(
            "replicas",
            1.0,
            "a standard error needs at least 2 replicas (0 switches them off)",
        );
    }
    Ok(())
}

pub(super) fn normals(m: usize, p: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((m, p), || StandardNormal.sample(&mut rng))
}

/// ∂R/∂C for each field entry of `keys`, R the action without its cumulant-generating terms
/// (the data term, measure terms), derived symbolically; conjugates as fields at
/// [`CONJUGATE_BASE`]. None where R does not read the entry.
pub(super) fn rest_gradients(
    theory: &Theory,
    params: &[f64],
    keys: &[EntryKey],
    conjugate_of: &[Option<usize>],
) -> Result<Vec<Option<Expr>>, FiniteWidthError> {
    let ints = theory.int_values(params);
    let action = unroll(&theory.action.body, &IndexEnv::new(), &ints)?;
    let mut rest = zero(action.shape);
    for (sign, term) in additive_terms(&action, 1.0) {
        if term.any(&mut |e| matches!(e.kind, ExprKind::Expectation { .. })) {
            continue;
        }
        rest = add(rest, if sign < 0.0 { neg(term) } else { term });
    }
    let backward = backward_equations_of(theory, rest, &ints)?;
    let mut rest_of = Vec::new();
    for key in keys {
        let conj = conjugate_of[key.0];
        let eq = backward.iter().find(|eq| {
            matches!(&eq.stationary_in, Variable::Field(f, i) if *f == key.0 && *i == key.1)
                && matches!(&eq.unknown, Variable::Conjugate(c, _) if Some(*c) == conj)
        });
        rest_of.push(match eq.map(|eq| &eq.rhs) {
            Some(Ok(rhs)) => Some(with_parameter_values(&conjugates_as_fields(rhs), params)),
            Some(Err(e)) => return Err(FiniteWidthError::Derive(e.clone())),
            None => None,
        });
    }
    Ok(rest_of)
}

/// `e` with every parameter replaced by its bound value, folded: a term switched off by a
/// parameter (`wishart = 0` in `wishart · inv(C)`) disappears instead of being evaluated
/// (the inverse of a rank-deficient kernel where P exceeds the input dimension).
fn with_parameter_values(e: &Expr, params: &[f64]) -> Expr {
    substitute(e, &|x| match &x.kind {
        ExprKind::Param(id) => params.get(*id).map(|v| number(*v)),
        _ => None,
    })
}

/// The conjugate of a field entry as written: `Ct[2]`, `Ct[1,3]`.
pub(super) fn conjugate_name(
    theory: &Theory,
    conjugate_of: &[Option<usize>],
    key: &EntryKey,
) -> String {
    let name = conjugate_of[key.0].map_or_else(String::new, |c| theory.conjugates[c].name.clone());
    if key.1.is_empty() {
        name
    } else {
        let idx: Vec<String> = key.1.iter().map(i64::to_string).collect();
        format!("{name}[{}]", idx.join(","))
    }
}

/// Replaces conjugate entries by fields at [`CONJUGATE_BASE`] + id.
pub(super) fn conjugates_as_fields(e: &Expr) -> Expr {
    substitute(e, &|x| match &x.kind {
        ExprKind::Conjugate { conj, indices } => Some(node(
            ExprKind::Field {
                field: CONJUGATE_BASE + conj,
                indices: indices.clone(),
            },
            x.shape,
        )),
        _ => None,
    })
}

pub(super) fn norm(m: &Array2<f64>) -> f64 {
    m.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn column(v: &Value, p: usize) -> Array1<f64> {
    match v {
        Value::Scalar(s) => Array1::from_elem(p, *s),
        Value::Matrix(m) => m.iter().copied().collect(),
    }
}

impl<'a> Problem<'a> {
    fn new(
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

    fn nngp_state(&self, nngp: &Kernels) -> Result<State, FiniteWidthError> {
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

    fn conjugate_name(&self, key: &EntryKey) -> String {
        conjugate_name(self.theory, &self.conjugate_of, key)
    }

    /// Runs `f` with a context that reads `fields`, `conjugates` and slot values.
    fn with_context<T>(
        &self,
        fields: &Entries,
        conjugates: &Entries,
        slots: &[Value],
        f: impl FnOnce(&MatrixContext<'_>) -> Result<T, FiniteWidthError>,
    ) -> Result<T, FiniteWidthError> {
        self.context(fields, conjugates, &self.fixed, self.x, slots, f)
    }

    /// [`Self::with_context`] with given definitions and inputs (a block of the patterns).
    fn context<T>(
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

    fn eval(
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
    fn eval_training(
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
    fn predict(
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
    fn moments(
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

    /// K = a·C_f + … (or m = a·m_f + …) for every field a population reads.
    fn find_links(&self, state: &State) -> Result<Vec<Vec<Link>>, FiniteWidthError> {
        let p = self.x.nrows();
        let mut out = Vec::new();
        for (k, pop) in self.network.populations.iter().enumerate() {
            let (k0, m0) = self.moments(state, k)?;
            let mut links = Vec::new();
            for key in &pop.reads {
                if !state.fields.contains_key(key) {
                    continue; // a definition: fixed
                }
                let mean_field = self.theory.fields[key.0].kind == FieldKind::Mean;
                let value = &state.fields[key];
                // a fixed, generic direction
                let direction = Array2::from_shape_fn(value.dim(), |(i, j)| {
                    let (a, b) = (i.min(j) as f64, i.max(j) as f64);
                    0.5 + ((a * 12.9898 + b * 78.233).sin() * 43_758.547)
                        .fract()
                        .abs()
                });
                let probe = |t: f64| -> Result<(Array2<f64>, Array1<f64>), FiniteWidthError> {
                    let mut s = state.clone();
                    s.fields.insert(key.clone(), value + &(&direction * t));
                    self.moments(&s, k)
                };
                let (k1, m1) = probe(1.0)?;
                let (k2, m2) = probe(2.0)?;
                let dk = &k1 - &k0;
                let dm = &m1 - &m0;
                let scale = norm(&k0).max(1.0);
                let linear = norm(&(&k2 - &k0 - &dk * 2.0)) <= 1e-9 * scale
                    && (&m2 - &m0 - &dm * 2.0)
                        .iter()
                        .all(|v| v.abs() <= 1e-9 * scale);
                let (delta, other_changes): (Array2<f64>, bool) = if mean_field {
                    (
                        dm.clone()
                            .into_shape_with_order((p, 1))
                            .map_err(|e| FiniteWidthError::Unsupported(e.to_string()))?,
                        norm(&dk) > 1e-9 * scale,
                    )
                } else {
                    (dk.clone(), dm.iter().any(|v| v.abs() > 1e-9 * scale))
                };
                let a = (&delta * &direction).sum() / (&direction * &direction).sum();
                let multiple =
                    norm(&(&delta - &(&direction * a))) <= 1e-9 * scale.max(norm(&delta));
                if !(linear && multiple) || other_changes {
                    return Err(FiniteWidthError::Unsupported(format!(
                        "the {} of term {} depends on {} other than as a constant multiple \
                         (K = a·C + …, m = a·m' + …); the sweeps need that form",
                        if mean_field { "mean" } else { "covariance" },
                        k + 1,
                        self.network.name(key)
                    )));
                }
                if a != 0.0 {
                    links.push(Link {
                        field: key.clone(),
                        coefficient: a,
                        mean: mean_field,
                    });
                }
            }
            out.push(links);
        }
        Ok(out)
    }

    fn choose_estimators(&self, state: &State, force_sampling: bool) -> Vec<Estimator> {
        let p = self.x.nrows();
        (0..self.network.populations.len())
            .map(|k| {
                if force_sampling {
                    return Estimator::ImportanceSampling;
                }
                let pop = &self.network.populations[k];
                let gaussian = self
                    .with_context(&state.fields, &state.conjugates, &[], |ctx| {
                        let forms = GaussianForms {
                            theory: self.theory,
                            var: &pop.var,
                            patterns: p,
                            constants: ctx,
                        };
                        let averages = self
                            .network
                            .rules
                            .iter()
                            .flat_map(|r| &r.averages)
                            .filter(|a| a.population == k)
                            .all(|a| forms.is_quadratic(&a.body));
                        Ok(averages && forms.tilt(&self.tilts[k]).is_some())
                    })
                    .unwrap_or(false);
                if gaussian {
                    Estimator::Gaussian
                } else {
                    Estimator::ImportanceSampling
                }
            })
            .collect()
    }

    fn measure(
        &self,
        state: &State,
        k: usize,
        z: ArrayView2<'_, f64>,
        with_gradients: bool,
    ) -> Result<TiltedMeasure, FiniteWidthError> {
        let (cov, mean) = self.moments(state, k)?;
        let pop = &self.network.populations[k];
        self.with_context(&state.fields, &state.conjugates, &[], |ctx| {
            let pc = PopulationContext {
                theory: self.theory,
                var: &pop.var,
                constants: ctx,
                term: k + 1,
            };
            match self.estimators[k] {
                Estimator::Gaussian => TiltedMeasure::gaussian(&pc, &self.tilts[k], &cov, &mean),
                Estimator::ImportanceSampling => {
                    let measure = TiltedMeasure::sampled(
                        &pc,
                        &self.tilts[k],
                        &cov,
                        &mean,
                        z,
                        self.price[k].as_ref(),
                        with_gradients,
                    )?;
                    let ess = measure.effective_samples().unwrap_or(f64::INFINITY);
                    let needed = (z.nrows() as f64 * 1e-3)
                        .max(20.0)
                        .min(z.nrows() as f64 / 2.0);
                    if ess < needed {
                        return Err(FiniteWidthError::Collapsed {
                            term: k + 1,
                            ess,
                            samples: z.nrows(),
                        });
                    }
                    Ok(measure)
                }
            }
        })
    }

    /// (F): every field from its population's tilted averages, in schedule order; the
    /// measures used, per population.
    fn forward(
        &self,
        state: &State,
        z: ArrayView2<'_, f64>,
    ) -> Result<(Entries, Vec<Option<TiltedMeasure>>), FiniteWidthError> {
        let mut current = state.clone();
        let mut measures: Vec<Option<TiltedMeasure>> =
            (0..self.network.populations.len()).map(|_| None).collect();
        for step in &self.network.schedule {
            match *step {
                Step::Definition(_) => {}
                Step::Population(k) => measures[k] = Some(self.measure(&current, k, z, false)?),
                Step::Field(r) => {
                    let rule = &self.network.rules[r];
                    let name = self.network.name(&rule.key);
                    let mut slots = Vec::with_capacity(rule.averages.len());
                    for average in &rule.averages {
                        let k = average.population;
                        let pop = &self.network.populations[k];
                        let measure = measures[k].as_ref().ok_or_else(|| {
                            FiniteWidthError::Unsupported(format!(
                                "{name} is computed before its population"
                            ))
                        })?;
                        let value =
                            self.with_context(&current.fields, &current.conjugates, &[], |ctx| {
                                let pc = PopulationContext {
                                    theory: self.theory,
                                    var: &pop.var,
                                    constants: ctx,
                                    term: k + 1,
                                };
                                measure.average(&pc, &average.body)
                            })?;
                        slots.push(value);
                    }
                    let p = self.x.nrows();
                    let value = match self.eval(&current, &slots, &rule.rhs, || name.clone())? {
                        Value::Matrix(m) => m,
                        Value::Scalar(s) => Array2::from_elem(current.fields[&rule.key].dim(), s),
                    };
                    if value.nrows() != p {
                        return Err(FiniteWidthError::Evaluate {
                            what: name,
                            reason: format!("a {}×{} value", value.nrows(), value.ncols()),
                        });
                    }
                    current.fields.insert(rule.key.clone(), value);
                }
            }
        }
        Ok((current.fields, measures))
    }

    /// (B, O): every conjugate, from the last field to the first.
    /// The rest of the action (∂R/∂C) is read at `rest_at`'s fields where given (the
    /// linearised system's leading order), at `state`'s otherwise.
    fn backward(
        &self,
        state: &State,
        rest_at: Option<&State>,
        z: ArrayView2<'_, f64>,
    ) -> Result<BTreeMap<EntryKey, Array2<f64>>, FiniteWidthError> {
        let rest_state = rest_at.map(|at| State {
            fields: at.fields.clone(),
            conjugates: state.conjugates.clone(),
        });
        let rest_state = rest_state.as_ref().unwrap_or(state);
        let mut conjugates = Entries::new();
        let mut measures: Vec<Option<TiltedMeasure>> =
            (0..self.network.populations.len()).map(|_| None).collect();
        for (r, rule) in self.network.rules.iter().enumerate().rev() {
            let key = &rule.key;
            let shape = state.fields[key].dim();
            let mut value = Array2::zeros(shape);
            if let Some(rest) = &self.rest[r] {
                let what = || format!("the backward equation of {}", self.network.name(key));
                let rest = match self.eval_training(rest_state, rest, what)? {
                    Value::Matrix(m) => m,
                    Value::Scalar(s) => {
                        let t = self.training;
                        Array2::from_elem((t, if shape.1 == 1 { 1 } else { t }), s)
                    }
                };
                let (rows, cols) = rest.dim();
                value.slice_mut(ndarray::s![..rows, ..cols]).assign(&rest);
            }
            for (k, links) in self.links.iter().enumerate() {
                for link in links.iter().filter(|l| &l.field == key) {
                    // Jacobi: every conjugate from the previous sweep's state, so that the
                    // measures are those the forward pass has checked
                    if measures[k].is_none() {
                        measures[k] = Some(self.measure(state, k, z, true)?);
                    }
                    let Some(measure) = measures[k].as_ref() else {
                        continue;
                    };
                    let n = self.network.populations[k].units as f64;
                    if link.mean {
                        let g = measure.mean_gradient();
                        for (i, v) in g.iter().enumerate() {
                            value[[i, 0]] += n * link.coefficient * v;
                        }
                    } else {
                        value.scaled_add(n * link.coefficient, measure.covariance_gradient());
                    }
                }
            }
            if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
                return Err(FiniteWidthError::Evaluate {
                    what: format!("the conjugate of {}", self.network.name(key)),
                    reason: format!("an entry came out {bad}"),
                });
            }
            conjugates.insert(key.clone(), value);
        }
        Ok(conjugates)
    }

    /// C* − F_z(C*, 0): the sampled map's error at the NNGP point `nngp`.
    fn correction(
        &self,
        nngp: &State,
        z: ArrayView2<'_, f64>,
    ) -> Result<Entries, FiniteWidthError> {
        let (at_start, _) = self.forward(nngp, z)?;
        Ok(at_start
            .iter()
            .map(|(key, v)| (key.clone(), &nngp.fields[key] - v))
            .collect())
    }

    /// (F) with the sampled map's error at the NNGP point subtracted: C* + F_z(C, C̃) −
    /// F_z(C*, 0), given that `correction`; and each population's effective sample size.
    fn corrected_forward(
        &self,
        state: &State,
        z: ArrayView2<'_, f64>,
        correction: &Entries,
    ) -> Result<(Entries, Vec<Option<f64>>), FiniteWidthError> {
        let (mut fields, measures) = self.forward(state, z)?;
        for (key, v) in fields.iter_mut() {
            *v += &correction[key];
        }
        let ess = measures
            .iter()
            .map(|m| m.as_ref().and_then(TiltedMeasure::effective_samples))
            .collect();
        Ok((fields, ess))
    }

    /// The corrected fields at the conjugates `conjugates` (one pass, no sweeps).
    fn corrected_fields(
        &self,
        nngp: &State,
        conjugates: &Entries,
        z: ArrayView2<'_, f64>,
    ) -> Result<Entries, FiniteWidthError> {
        let correction = self.correction(nngp, z)?;
        let state = State {
            fields: nngp.fields.clone(),
            conjugates: conjugates.clone(),
        };
        Ok(self.corrected_forward(&state, z, &correction)?.0)
    }

    /// Conjugates in the order of the rules, flattened.
    fn flatten(&self, entries: &Entries) -> Array1<f64> {
        self.network
            .rules
            .iter()
            .flat_map(|r| entries[&r.key].iter().copied())
            .collect()
    }

    /// The inverse of [`Self::flatten`], with the shapes of `like`.
    fn unflatten(&self, v: &Array1<f64>, like: &Entries) -> Entries {
        let mut out = BTreeMap::new();
        let mut at = 0;
        for rule in &self.network.rules {
            let dim = like[&rule.key].dim();
            let n = dim.0 * dim.1;
            let block = Array2::from_shape_vec(dim, v.slice(ndarray::s![at..at + n]).to_vec())
                .unwrap_or_else(|_| Array2::zeros(dim));
            out.insert(rule.key.clone(), block);
            at += n;
        }
        out
    }

    /// The relative change the linearised system is iterated to on `samples` normals: the
    /// one asked for, but no finer than the differences resolve ([`LINEAR_TOLERANCE`]) nor
    /// than a thousandth of the Monte Carlo error ~1/√M where a population is sampled (the
    /// iterations beyond it would move the solution by less than 10⁻³ standard errors).
    fn linear_tolerance(&self, settings: &MapSettings, samples: usize) -> f64 {
        let tolerance = settings.tolerance.max(LINEAR_TOLERANCE);
        if self.estimators.contains(&Estimator::ImportanceSampling) && samples > 0 {
            tolerance.max(1e-3 / (samples as f64).sqrt())
        } else {
            tolerance
        }
    }

    /// C* + DF(0)·C̃: the fields of the linearised system at the conjugates `conjugates`, DF
    /// the forward pass's derivative in the conjugates at the NNGP point `nngp`: from the
    /// expansion at the NNGP point where it applies, otherwise by a central difference on
    /// normals `z` (the sampled map's error at C* cancels in it).
    fn linear_fields(
        &self,
        nngp: &State,
        conjugates: &Entries,
        z: ArrayView2<'_, f64>,
        by_differences: bool,
    ) -> Result<Entries, FiniteWidthError> {
        if !by_differences && let Some(expansion) = Expansion::new(self, nngp, z)? {
            let shift = expansion.field_shift(conjugates)?;
            return Ok(nngp
                .fields
                .iter()
                .map(|(k, c)| (k.clone(), c + &shift[k]))
                .collect());
        }
        let size = conjugates
            .values()
            .flat_map(|c| c.iter())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        if size == 0.0 {
            return Ok(nngp.fields.clone());
        }
        let eps = DIFFERENCE_STEP * size.max(1.0) / size;
        let scaled = |f: f64| State {
            fields: nngp.fields.clone(),
            conjugates: conjugates.iter().map(|(k, v)| (k.clone(), v * f)).collect(),
        };
        let (plus, minus) = rayon::join(
            || self.forward(&scaled(eps), z).map(|f| f.0),
            || self.forward(&scaled(-eps), z).map(|f| f.0),
        );
        let (plus, minus) = (plus?, minus?);
        Ok(nngp
            .fields
            .iter()
            .map(|(k, c)| (k.clone(), c + &((&plus[k] - &minus[k]) / (2.0 * eps))))
            .collect())
    }

    /// The tilt of population `k` with its terms evaluated at the conjugates `conjugates`
    /// (the fields at `at`).
    fn tilt_terms(
        &self,
        at: &State,
        conjugates: &Entries,
        k: usize,
    ) -> Result<EvaluatedTilt, FiniteWidthError> {
        let what = || format!("the tilt of term {}", k + 1);
        let form = self.price[k]
            .as_ref()
            .ok_or_else(|| FiniteWidthError::Unsupported(format!("{} is not a form", what())))?;
        let p = self.x.nrows();
        self.with_context(&at.fields, conjugates, &[], |ctx| {
            form.terms(ctx, p)
                .map_err(|reason| FiniteWidthError::Evaluate {
                    what: what(),
                    reason,
                })
        })
    }

    /// Whether the tilt of population `k` is linear in the conjugates (the expansion at the
    /// NNGP point assumes it): zero at zero, additive and homogeneous on probe directions.
    fn tilt_is_linear(&self, at: &State, k: usize) -> Result<bool, FiniteWidthError> {
        let probe = |seed: f64, t: f64| -> Entries {
            at.conjugates
                .iter()
                .map(|(key, v)| {
                    let direction = Array2::from_shape_fn(v.dim(), |(i, j)| {
                        let (a, b) = (i.min(j) as f64, i.max(j) as f64);
                        t * (((a + seed) * 12.9898 + (b + 2.0 * seed) * 78.233).sin() * 43_758.547)
                            .fract()
                    });
                    (key.clone(), direction)
                })
                .collect()
        };
        let flat = |t: &EvaluatedTilt| -> Vec<f64> {
            t.bilinear
                .iter()
                .flat_map(|(m, _, _)| m.iter().copied())
                .chain(t.linear.iter().flat_map(|(r, _)| r.iter().copied()))
                .collect()
        };
        let zero = flat(&self.tilt_terms(at, &probe(0.0, 0.0), k)?);
        let one = flat(&self.tilt_terms(at, &probe(1.0, 1.0), k)?);
        let two = flat(&self.tilt_terms(at, &probe(2.0, 1.0), k)?);
        let both = {
            let (a, b) = (probe(1.0, 1.0), probe(2.0, 1.0));
            let sum: Entries = a
                .iter()
                .map(|(key, v)| (key.clone(), v + &b[key]))
                .collect();
            flat(&self.tilt_terms(at, &sum, k)?)
        };
        let doubled = flat(&self.tilt_terms(at, &probe(1.0, 2.0), k)?);
        let scale = one.iter().chain(&two).fold(0.0f64, |m, v| m.max(v.abs()));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * scale.max(f64::MIN_POSITIVE);
        Ok(zero.iter().all(|v| *v == 0.0)
            && one
                .iter()
                .zip(&two)
                .zip(&both)
                .all(|((a, b), c)| close(a + b, *c))
            && one.iter().zip(&doubled).all(|(a, d)| close(2.0 * a, *d)))
    }

    /// The linearised system (THEORY.md §4.4) on normals `z`, from the conjugates of
    /// `from`: C̃ = g(0) + Dg(0)·C̃ for the sweep map g(C̃) = B(F(C̃), C̃) at the NNGP point
    /// `nngp`, Dg·v a central difference on the same normals, iterated to its fixed point
    /// (Anderson: a Krylov method for this linear map); then the fields C* + DF(0)·C̃.
    fn solve_linear(
        &self,
        nngp: &State,
        from: &State,
        z: ArrayView2<'_, f64>,
        settings: &MapSettings,
        order: Order,
    ) -> Result<Solved, FiniteWidthError> {
        // to leading order the rest of the action (its (C, C) blocks: the data term's H, a
        // measure term) is read at C*
        let rest_at = match order {
            Order::Full => None,
            Order::Leading => Some(nngp),
        };
        let floor = MapSettings {
            tolerance: self.linear_tolerance(settings, z.nrows()),
            ..settings.clone()
        };
        let expansion = match settings.linear_by_differences {
            true => None,
            false => Expansion::new(self, nngp, z)?,
        };
        if let Some(expansion) = expansion {
            let g0 = expansion.sweep_at_nngp()?;
            let linear = |v: &Array1<f64>| -> Result<(Array1<f64>, ()), FiniteWidthError> {
                let conjugates = self.unflatten(v, &nngp.conjugates);
                let shift = expansion.field_shift(&conjugates)?;
                let next = expansion.next_conjugates(&shift, &conjugates, &g0, order)?;
                Ok((self.flatten(&next), ()))
            };
            let (x, sweeps, residual, ()) = fixed_point(
                self.flatten(&from.conjugates),
                &linear,
                &|a, b| relative_change(a.view(), b.view()),
                &floor,
                Iteration::Linear,
            )?;
            let conjugates = self.unflatten(&x, &nngp.conjugates);
            let shift = expansion.field_shift(&conjugates)?;
            let fields = nngp
                .fields
                .iter()
                .map(|(k, c)| (k.clone(), c + &shift[k]))
                .collect();
            return Ok((
                State { fields, conjugates },
                sweeps,
                residual,
                vec![None; self.network.populations.len()],
            ));
        }
        // g(0): the backward equations at the NNGP point itself (the forward pass at C̃ = 0
        // returns C*, so it need not run)
        let g0 = self.flatten(&self.backward(nngp, rest_at, z)?);
        let correction = self.correction(nngp, z)?;
        let sweep = |x: &Array1<f64>| -> Result<Array1<f64>, FiniteWidthError> {
            let at = State {
                fields: nngp.fields.clone(),
                conjugates: self.unflatten(x, &nngp.conjugates),
            };
            let (fields, _) = self.corrected_forward(&at, z, &correction)?;
            let state = State {
                fields,
                conjugates: at.conjugates,
            };
            Ok(self.flatten(&self.backward(&state, rest_at, z)?))
        };
        let scale = g0.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let linear = |v: &Array1<f64>| -> Result<(Array1<f64>, ()), FiniteWidthError> {
            let size = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
            if size == 0.0 {
                return Ok((g0.clone(), ()));
            }
            let eps = DIFFERENCE_STEP * scale / size;
            let (plus, minus) = rayon::join(|| sweep(&(v * eps)), || sweep(&(v * -eps)));
            Ok((&g0 + &((&plus? - &minus?) / (2.0 * eps)), ()))
        };
        let (x, sweeps, residual, ()) = fixed_point(
            self.flatten(&from.conjugates),
            &linear,
            &|a, b| relative_change(a.view(), b.view()),
            &floor,
            Iteration::Linear,
        )?;
        let conjugates = self.unflatten(&x, &nngp.conjugates);
        let fields = self.linear_fields(nngp, &conjugates, z, true)?;
        Ok((
            State { fields, conjugates },
            sweeps,
            residual,
            vec![None; self.network.populations.len()],
        ))
    }

    /// Sweeps from `from` on normals `z` (fields corrected by the sampled map's error at the
    /// NNGP point `nngp`): the solution, the sweeps, the last relative change and each
    /// population's effective sample size there.
    fn solve(
        &self,
        nngp: &State,
        from: State,
        z: ArrayView2<'_, f64>,
        settings: &MapSettings,
    ) -> Result<Solved, FiniteWidthError> {
        let correction = self.correction(nngp, z)?;
        let forward = |s: &State| self.corrected_forward(s, z, &correction);
        let flatten = |c: &Entries| self.flatten(c);
        let unflatten = |v: &Array1<f64>| self.unflatten(v, &from.conjugates);
        if settings.iteration == SaddleIteration::NewtonKrylov {
            // one sweep: the fields at the conjugates x, then the conjugates they imply
            let sweep = |x: &Array1<f64>| {
                let state = State {
                    fields: from.fields.clone(),
                    conjugates: unflatten(x),
                };
                let (fields, ess) = forward(&state)?;
                let state = State {
                    fields,
                    conjugates: state.conjugates,
                };
                let next = flatten(&self.backward(&state, None, z)?);
                Ok((next, (state.fields, ess)))
            };
            let change = |x: &Array1<f64>, g: &Array1<f64>| relative_change(x.view(), g.view());
            let found = newton_krylov(flatten(&from.conjugates), &sweep, &change, settings)?;
            let (fields, ess) = found.report;
            let state = State {
                fields,
                conjugates: unflatten(&found.x),
            };
            return Ok((state, found.sweeps, found.change, ess));
        }
        let (fields, mut ess) = forward(&from)?;
        let mut state = State {
            fields,
            conjugates: from.conjugates.clone(),
        };
        // Anderson acceleration of the fixed point x = B(F(x), x) of the conjugates, with
        // mixing β = damping; a step whose tilted measure fails falls back to a damped step.
        let beta = settings.damping;
        let mut memory: Vec<(Array1<f64>, Array1<f64>)> = Vec::new();
        let mut history = Vec::new();
        for sweep in 1..=settings.max_sweeps {
            let x = flatten(&state.conjugates);
            let g = flatten(&self.backward(&state, None, z)?);
            let f = &g - &x;
            let residual = (f.dot(&f) / g.dot(&g).max(f64::MIN_POSITIVE)).sqrt();
            history.push(residual);
            if residual.is_nan() {
                break;
            }
            if residual <= settings.tolerance {
                return Ok((state, sweep, residual, ess));
            }
            // a residual far above the best so far: the extrapolation went astray, restart
            // it from here
            let best = history.iter().copied().fold(f64::INFINITY, f64::min);
            if residual > 4.0 * best {
                memory.clear();
            }
            memory.push((x.clone(), f.clone()));
            if memory.len() > settings.anderson_memory + 1 {
                memory.remove(0);
            }
            let mut candidate = anderson(&memory, beta);
            let mut step = beta;
            let fields = loop {
                let trial = State {
                    fields: state.fields.clone(),
                    conjugates: unflatten(&candidate),
                };
                match forward(&trial) {
                    Ok((fields, trial_ess)) => {
                        ess = trial_ess;
                        break fields;
                    }
                    Err(
                        FiniteWidthError::NotNormalisable { .. }
                        | FiniteWidthError::Collapsed { .. },
                    ) if step > 1e-6 => {
                        // back to plain damped steps, shorter each time
                        memory.clear();
                        memory.push((x.clone(), f.clone()));
                        step *= 0.5;
                        candidate = &x + &(&f * step);
                    }
                    Err(e) => return Err(e),
                }
            };
            state = State {
                fields,
                conjugates: unflatten(&candidate),
            };
        }
        Err(FiniteWidthError::NotConverged {
            sweeps: history.len(),
            residual: history.last().copied().unwrap_or(f64::NAN),
            tolerance: settings.tolerance,
            history: history.iter().rev().take(5).rev().copied().collect(),
        })
    }
}

/// The smallest relative change a linearised system is iterated to: its Jacobian–vector
/// products are central differences of sampled maps, whose rounding over the step
/// ([`DIFFERENCE_STEP`] here, 1e-4 in the recurrent solver) limits the relative resolution
/// to ~1e-10 at large N.
pub(super) const LINEAR_TOLERANCE: f64 = 1e-8;

/// The central differences' step, relative to the size of the conjugates (at least 1): their
/// error is ~(step·C̃/N)² from the map's curvature (10⁻¹⁰ at N = 1) plus the map's rounding
/// over the step (~10⁻¹¹ for sums over 10⁵ samples).
const DIFFERENCE_STEP: f64 = 1e-5;

/// What [`fixed_point`] iterates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Iteration {
    /// A nonlinear map (the saddle point): restarted where the extrapolation goes astray.
    Nonlinear,
    /// An affine map x ↦ b + Jx (a linearised system): Anderson with a long memory is, until
    /// iterates are dropped, GMRES on (I − J)x = b, which converges where J's spectral radius
    /// exceeds 1 as well.
    Linear,
}

/// Past iterates Anderson keeps for a linear map (the Krylov space's dimension; each costs
/// four vectors of every conjugate entry, and replicas run in parallel).
const LINEAR_MEMORY: usize = 20;

/// A map of flattened iterates, with what it reports beside (an ESS).
pub(super) type IterateMap<'m, E> =
    dyn Fn(&Array1<f64>) -> Result<(Array1<f64>, E), FiniteWidthError> + 'm;

/// The fixed point x = map(x) from `from` by Anderson-accelerated damped iteration (for a
/// linear map this is a Krylov method, equivalent to GMRES while no iterate is dropped):
/// the solution, the iterations,
/// the last relative change (`residual(x, map(x))`) and what the map reported there; a small
/// change bounds the residual of an affine map, not its error, which can be ‖(I − J)⁻¹‖ times
/// larger. A step
/// the map cannot take (a tilted measure that is not normalisable, collapsed importance
/// weights, an indefinite covariance) falls back to plain damped steps, shorter each time.
/// A nonlinear map goes to [`newton_krylov`] instead where the settings ask for it.
pub(super) fn fixed_point<E>(
    from: Array1<f64>,
    map: &IterateMap<'_, E>,
    residual: &dyn Fn(&Array1<f64>, &Array1<f64>) -> f64,
    settings: &MapSettings,
    kind: Iteration,
) -> Result<(Array1<f64>, usize, f64, E), FiniteWidthError> {
    let linear = kind == Iteration::Linear;
    if !linear && settings.iteration == SaddleIteration::NewtonKrylov {
        let found = newton_krylov(from, map, residual, settings)?;
        return Ok((found.mapped, found.sweeps, found.change, found.report));
    }
    let memory_size = if linear {
        settings.anderson_memory.max(LINEAR_MEMORY)
    } else {
        settings.anderson_memory
    };
    let beta = settings.damping;
    let mut x = from;
    let (mut g, mut report) = map(&x)?;
    let mut memory: Vec<(Array1<f64>, Array1<f64>)> = Vec::new();
    let mut history = Vec::new();
    for sweep in 1..=settings.max_sweeps {
        let f = &g - &x;
        let change = residual(&x, &g);
        history.push(change);
        if change.is_nan() {
            break;
        }
        if change <= settings.tolerance {
            return Ok((g, sweep, change, report));
        }
        // a change far above the best so far: the extrapolation of a nonlinear map went
        // astray, restart it (a linear map's residuals may grow on the way: GMRES's do not
        // fall monotonically in the iterates Anderson takes)
        let best = history.iter().copied().fold(f64::INFINITY, f64::min);
        if !linear && change > 4.0 * best {
            memory.clear();
        }
        memory.push((x.clone(), f.clone()));
        if memory.len() > memory_size + 1 {
            memory.remove(0);
        }
        let mut candidate = anderson(&memory, beta);
        let mut step = beta;
        loop {
            match map(&candidate) {
                Ok((next, next_report)) => {
                    (g, report) = (next, next_report);
                    x = candidate;
                    break;
                }
                Err(
                    FiniteWidthError::Collapsed { .. }
                    | FiniteWidthError::IndefiniteCovariance(_)
                    | FiniteWidthError::NotNormalisable { .. },
                ) if step > 1e-6 => {
                    memory.clear();
                    memory.push((x.clone(), f.clone()));
                    step *= 0.5;
                    candidate = &x + &(&f * step);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(FiniteWidthError::NotConverged {
        sweeps: history.len(),
        residual: history.last().copied().unwrap_or(f64::NAN),
        tolerance: settings.tolerance,
        history: history.iter().rev().take(5).rev().copied().collect(),
    })
}

/// The relative change ‖next − x‖/‖next‖ (0 when both vanish, ∞ when only `next` does,
/// NaN when either has a NaN).
pub(super) fn relative_change(x: ArrayView1<'_, f64>, next: ArrayView1<'_, f64>) -> f64 {
    let d = &next - &x;
    let size = next.dot(&next).sqrt();
    if size.is_nan() || d.iter().any(|v| v.is_nan()) {
        f64::NAN
    } else if size > 0.0 {
        d.dot(&d).sqrt() / size
    } else if d.iter().all(|v| *v == 0.0) {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The next iterate of Anderson mixing from past iterates xᵢ and residuals fᵢ = G(xᵢ) − xᵢ
/// (the last one current): x + βf − (ΔX + βΔF)γ with γ = argmin ‖f − ΔF γ‖; a plain damped
/// step x + βf with one iterate, or where the least-squares problem is degenerate.
pub(super) fn anderson(memory: &[(Array1<f64>, Array1<f64>)], beta: f64) -> Array1<f64> {
    let Some((x, f)) = memory.last() else {
        return Array1::zeros(0);
    };
    let plain = x + &(f * beta);
    let m = memory.len() - 1;
    if m == 0 {
        return plain;
    }
    let dx: Vec<Array1<f64>> = memory.windows(2).map(|w| &w[1].0 - &w[0].0).collect();
    let df: Vec<Array1<f64>> = memory.windows(2).map(|w| &w[1].1 - &w[0].1).collect();
    let mut normal = Array2::<f64>::zeros((m, m));
    let mut rhs = Array1::<f64>::zeros(m);
    for i in 0..m {
        rhs[i] = df[i].dot(f);
        for j in 0..m {
            normal[[i, j]] = df[i].dot(&df[j]);
        }
    }
    let scale = normal.diag().sum().max(f64::MIN_POSITIVE);
    normal.diag_mut().mapv_inplace(|v| v + 1e-12 * scale);
    let Ok(inverse) = crate::numeric::matrix::inverse(&normal) else {
        return plain;
    };
    let gamma = inverse.dot(&rhs);
    let mut next = plain;
    for i in 0..m {
        next.scaled_add(-gamma[i], &dx[i]);
        next.scaled_add(-gamma[i] * beta, &df[i]);
    }
    if next.iter().all(|v| v.is_finite()) {
        next
    } else {
        x + &(f * beta)
    }
}
