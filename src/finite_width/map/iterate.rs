//! The saddle-point iteration: the solve loop over sweeps (Anderson, damped or
//! Newton–Krylov), and the fixed-point machinery the recurrent solver shares.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::newton_krylov::{IterateMap, newton_krylov};
use super::*;
use crate::finite_width::FiniteWidthError;

impl Problem<'_> {
    /// Sweeps from `from` on normals `z` (fields corrected by the sampled map's error at the
    /// NNGP point `nngp`): the solution, the sweeps, the last relative change and each
    /// population's effective sample size there.
    pub(super) fn solve(
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
pub(in crate::finite_width) const LINEAR_TOLERANCE: f64 = 1e-8;

/// The central differences' step, relative to the size of the conjugates (at least 1): their
/// error is ~(step·C̃/N)² from the map's curvature (10⁻¹⁰ at N = 1) plus the map's rounding
/// over the step (~10⁻¹¹ for sums over 10⁵ samples).
pub(super) const DIFFERENCE_STEP: f64 = 1e-5;

/// What [`fixed_point`] iterates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::finite_width) enum Iteration {
    /// A nonlinear map (the saddle point): restarted where the extrapolation goes astray.
    Nonlinear,
    /// An affine map x ↦ b + Jx (a linearised system): Anderson with a long memory is, until
    /// iterates are dropped, GMRES on (I − J)x = b, which converges where J's spectral radius
    /// exceeds 1 as well.
    Linear,
}

/// Past iterates Anderson keeps for a linear map (the Krylov space's dimension; each costs
/// four vectors of every conjugate entry, and replicas run in parallel).
pub(super) const LINEAR_MEMORY: usize = 20;

/// The fixed point x = map(x) from `from` by Anderson-accelerated damped iteration (for a
/// linear map this is a Krylov method, equivalent to GMRES while no iterate is dropped):
/// the solution, the iterations,
/// the last relative change (`residual(x, map(x))`) and what the map reported there; a small
/// change bounds the residual of an affine map, not its error, which can be ‖(I − J)⁻¹‖ times
/// larger. A step
/// the map cannot take (a tilted measure that is not normalisable, collapsed importance
/// weights, an indefinite covariance) falls back to plain damped steps, shorter each time.
/// A nonlinear map goes to [`newton_krylov`] instead where the settings ask for it.
pub(in crate::finite_width) fn fixed_point<E>(
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
pub(in crate::finite_width) fn relative_change(
    x: ArrayView1<'_, f64>,
    next: ArrayView1<'_, f64>,
) -> f64 {
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
pub(in crate::finite_width) fn anderson(
    memory: &[(Array1<f64>, Array1<f64>)],
    beta: f64,
) -> Array1<f64> {
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
