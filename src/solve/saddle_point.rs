//! # The full saddle point at finite width
//!
//! ## Equations
//! $\nabla S(C,\tilde C)=0$ in every order-parameter and conjugate entry (THEORY.md §4.3: the
//! forward, backward and output equations at once), with the action evaluated numerically
//! ([`ActionEvaluator`]: tilted expectations by Gauss–Hermite quadrature). Newton's method on
//! the gradient, in the vech coordinates of [`super::coordinates`]:
//! $$u\leftarrow u-t\,\big(\nabla^2_uS\big)^{-1}\nabla_uS,$$
//! gradient and Hessian by forward-mode AD along the basis directions
//! ($\partial_u S=\langle\nabla S,B\rangle$; one `HyperDual64` pass per pair of directions).
//! $\nabla^2S$ is indefinite — a saddle, maximal in $C$, minimal in $\tilde C$ — so the step is
//! not a descent direction of $S$; the step length $t$ is halved until $\|\nabla_uS\|$
//! decreases instead. The start is the NNGP point ($C=C^*$, $\tilde C=0$); the first full step
//! is the linearised system of [`super::fluctuation`].
//!
//! ## Requirements
//! Small P (expectations are P-dimensional quadrature sums). The tilted measures must be
//! normalisable (THEORY.md §4.3: always for bounded φ; for linear / ReLU φ only while
//! $(C^{(l-1)})^{-1}-\frac{2g}{N}\tilde C^{(l)}\succ0$). A trial point where the action is not
//! finite is rejected by step halving; at the solution the gradient is recomputed with a
//! second, coarser rule, and a disagreement — what a non-normalisable tilt does to a
//! quadrature sum — is an error rather than an answer.

use ndarray::{Array2, ArrayView2};
use num_dual::{Dual64, HyperDual64};
use rayon::prelude::*;

use crate::check::ir::Theory;
use crate::derive::derive_forward;
use crate::derive::grad::Variable;
use crate::numeric::action::{ActionError, ActionEvaluator, Owner};
use crate::solve::coordinates::Coordinates;
use crate::solve::fluctuation::{FluctuationError, solve_dense};
use crate::solve::nngp::{Kernels, NngpError, NngpSettings, nngp_kernels, parameter_values};

/// Settings of [`saddle_point`].
#[derive(Debug, Clone)]
pub struct SaddleSettings {
    /// Parameter overrides (`--set`).
    pub overrides: Vec<(String, f64)>,
    /// Gauss–Hermite nodes per dimension of the tilted expectations.
    pub quadrature_order: usize,
    /// Converged when every |∂S/∂u| is at most this.
    pub tolerance: f64,
    /// Newton iterations allowed.
    pub max_iterations: usize,
    /// Generated pair formulas for the NNGP starting point ([`NngpSettings::native`]).
    pub native: &'static [crate::generated::NativePairMap],
}

impl Default for SaddleSettings {
    fn default() -> Self {
        SaddleSettings {
            overrides: Vec::new(),
            quadrature_order: 64,
            tolerance: 1e-12,
            max_iterations: 50,
            native: &[],
        }
    }
}

/// One layer (forward equation) at the saddle point.
#[derive(Debug, Clone)]
pub struct SaddleLayer {
    /// The field entry, e.g. `C[2]`.
    pub name: String,
    /// Its conjugate, e.g. `Ct[2]`.
    pub conjugate_name: String,
    /// C* at the NNGP point (the start).
    pub nngp: Array2<f64>,
    /// C at the saddle point.
    pub kernel: Array2<f64>,
    /// C̃ at the saddle point.
    pub conjugate: Array2<f64>,
}

/// The saddle point and how it was reached.
#[derive(Debug, Clone)]
pub struct SaddlePoint {
    /// The width N (the parameter `N`), when the theory has one.
    pub width: Option<f64>,
    /// One per forward equation, in order.
    pub layers: Vec<SaddleLayer>,
    /// Newton iterations taken.
    pub iterations: usize,
    /// The largest |∂S/∂u| at the solution.
    pub residual: f64,
}

impl SaddlePoint {
    /// N·(C − C*) of layer `i`, when the theory has a width `N`.
    pub fn scaled_delta(&self, i: usize) -> Option<Array2<f64>> {
        let layer = self.layers.get(i)?;
        Some((&layer.kernel - &layer.nngp) * self.width?)
    }
}

/// Why no saddle point was found.
#[derive(Debug, thiserror::Error)]
pub enum SaddleError {
    /// The NNGP start could not be computed.
    #[error(transparent)]
    Kernels(#[from] NngpError),
    /// The action could not be evaluated at the start.
    #[error("evaluating the action at the NNGP point: {0}")]
    Action(#[from] ActionError),
    /// A theory outside what the solver handles.
    #[error("{0}")]
    Unsupported(String),
    /// Newton's method did not reach the tolerance.
    #[error(
        "the saddle point did not converge: after {iterations} Newton iterations the largest |∂S/∂u| is {residual:e} (tolerance {tolerance:e}); {why}"
    )]
    NotConverged {
        /// Iterations taken.
        iterations: usize,
        /// The largest |∂S/∂u| reached.
        residual: f64,
        /// The tolerance asked for.
        tolerance: f64,
        /// What stopped it.
        why: String,
    },
    /// The Newton system was singular.
    #[error("the Newton step at iteration {iteration}: {source}")]
    Step {
        /// The iteration.
        iteration: usize,
        /// The problem.
        source: FluctuationError,
    },
    /// The quadrature does not resolve the tilted measures.
    #[error(
        "the tilted expectations are not resolved by the quadrature (the gradient at the solution is {residual:e} with {order} nodes per dimension instead of ≤ {tolerance:e}); the tilted measure may not be normalisable (THEORY.md §4.3) — try a larger N or a larger quadrature order"
    )]
    Quadrature {
        /// The coarser order.
        order: usize,
        /// The gradient with it.
        residual: f64,
        /// What was accepted.
        tolerance: f64,
    },
    /// A setting that makes no sense.
    #[error("{name} = {value}: {reason}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// Why it is rejected.
        reason: &'static str,
    },
}

/// The saddle point of `theory`'s action on inputs `x` and targets `y`, by Newton's method
/// from the NNGP point.
pub fn saddle_point(
    theory: &Theory,
    x: ArrayView2<f64>,
    y: Option<ArrayView2<f64>>,
    settings: &SaddleSettings,
) -> Result<SaddlePoint, SaddleError> {
    if settings.tolerance.is_nan() || settings.tolerance <= 0.0 || settings.tolerance.is_infinite()
    {
        return Err(SaddleError::BadSetting {
            name: "tolerance",
            value: settings.tolerance,
            reason: "a positive number is needed",
        });
    }
    if settings.quadrature_order < crate::solve::fluctuation::MIN_QUADRATURE_ORDER {
        return Err(SaddleError::BadSetting {
            name: "quadrature order",
            value: settings.quadrature_order as f64,
            reason: "at least 4 nodes per dimension are needed",
        });
    }
    let params = parameter_values(theory, &settings.overrides)?;
    let named: Vec<(String, f64)> = theory
        .params
        .iter()
        .zip(&params)
        .map(|(p, v)| (p.name.clone(), *v))
        .collect();
    let kernels = nngp_kernels(
        theory,
        x,
        y,
        &NngpSettings {
            overrides: settings.overrides.clone(),
            native: settings.native,
            ..NngpSettings::default()
        },
    )?;
    let equations = derive_forward(theory, &named).map_err(NngpError::from)?;
    let mut unknowns: Vec<Variable> = equations
        .forward
        .iter()
        .map(|e| e.unknown.clone())
        .collect();
    unknowns.extend(equations.forward.iter().map(|e| e.stationary_in.clone()));
    if let Some(Variable::Field(f, idx)) = unknowns
        .iter()
        .find(|v| matches!(v, Variable::Field(_, idx) if idx.windows(2).any(|w| w[0] != w[1])))
    {
        return Err(SaddleError::Unsupported(format!(
            "{}: cross blocks of a multi-index kernel are not symmetric matrices; the saddle-point solver handles one kernel per layer",
            Kernels::name(theory, &(*f, idx.clone()))
        )));
    }
    let coords = Coordinates::new(theory, &unknowns, x.nrows());
    let evaluator = ActionEvaluator::new(theory, &params, x, y, settings.quadrature_order)?;
    let problem = Problem::new(&coords, evaluator)?;

    let mut u = vec![0.0; coords.len()];
    for (i, eq) in equations.forward.iter().enumerate() {
        let Variable::Field(f, idx) = &eq.unknown else {
            continue;
        };
        let start = kernels.entries.get(&(*f, idx.clone())).ok_or_else(|| {
            SaddleError::Unsupported(format!(
                "no NNGP value of {}",
                Kernels::name(theory, &(*f, idx.clone()))
            ))
        })?;
        coords.set_matrix(i, start, &mut u);
    }
    let nngp: Vec<Array2<f64>> = (0..equations.forward.len())
        .map(|i| coords.matrix(i, &u))
        .collect();

    let (u, iterations, residual) = newton(&problem, u, settings)?;

    // The same gradient with a coarser rule: a converged quadrature agrees.
    let coarse_order = (settings.quadrature_order * 3 / 4).max(3);
    let coarse = ActionEvaluator::new(theory, &params, x, y, coarse_order)?;
    let coarse = Problem::new(&coords, coarse)?;
    let coarse_residual = coarse
        .gradient(&u)
        .map(|g| max_abs(&g))
        .unwrap_or(f64::INFINITY);
    let accepted = 1e-6_f64.max(1e3 * settings.tolerance);
    // NaN counts as a disagreement
    if coarse_residual.is_nan() || coarse_residual > accepted {
        return Err(SaddleError::Quadrature {
            order: coarse_order,
            residual: coarse_residual,
            tolerance: accepted,
        });
    }

    let layers = equations.forward.len();
    let layers = (0..layers)
        .map(|i| SaddleLayer {
            name: coords.blocks[i].name.clone(),
            conjugate_name: coords.blocks[layers + i].name.clone(),
            nngp: nngp[i].clone(),
            kernel: coords.matrix(i, &u),
            conjugate: coords.matrix(layers + i, &u),
        })
        .collect();
    Ok(SaddlePoint {
        width: theory.param("N").map(|id| params[id]),
        layers,
        iterations,
        residual,
    })
}

/// Newton's method on ∇_u S with step halving on ‖∇_u S‖. The Hessian is kept while it
/// contracts the residual at least tenfold per step (near the NNGP point at large N the
/// first one serves throughout) and recomputed otherwise.
fn newton(
    problem: &Problem,
    mut u: Vec<f64>,
    settings: &SaddleSettings,
) -> Result<(Vec<f64>, usize, f64), SaddleError> {
    let mut gradient = problem.gradient(&u)?;
    let mut residual = max_abs(&gradient);
    let not_converged = |iterations, residual, why: String| SaddleError::NotConverged {
        iterations,
        residual,
        tolerance: settings.tolerance,
        why,
    };
    let n = u.len();
    // the Hessian and whether it was computed at the current point
    let mut hessian: Option<(faer::Mat<f64>, bool)> = None;
    for iteration in 0..settings.max_iterations {
        if residual <= settings.tolerance {
            return Ok((u, iteration, residual));
        }
        let (matrix, fresh) = match hessian.take() {
            Some(h) => h,
            None => {
                let h = problem.hessian(&u).map_err(|e| {
                    not_converged(iteration, residual, format!("the Hessian failed: {e}"))
                })?;
                (faer::Mat::from_fn(n, n, |i, j| h[i][j]), true)
            }
        };
        let rhs = faer::Mat::from_fn(n, 1, |i, _| -gradient[i]);
        let step =
            solve_dense(&matrix, &rhs).map_err(|source| SaddleError::Step { iteration, source })?;
        // An old Hessian gets one full step; a fresh one a step-halving search.
        let tries = if fresh { 40 } else { 1 };
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..tries {
            let trial: Vec<f64> = u.iter().zip(&step).map(|(a, s)| a + t * s).collect();
            // a trial point where the action is not finite (or not defined) is rejected
            if let Ok(g) = problem.gradient(&trial) {
                let r = max_abs(&g);
                if r < residual || r <= settings.tolerance {
                    accepted = Some((trial, g, r, t));
                    break;
                }
            }
            t *= 0.5;
        }
        match accepted {
            Some((trial, g, r, t)) => {
                if t == 1.0 && r <= 0.1 * residual {
                    hessian = Some((matrix, false));
                }
                (u, gradient, residual) = (trial, g, r);
            }
            None if fresh => {
                return Err(not_converged(
                    iteration,
                    residual,
                    "no step along the Newton direction decreases the gradient".into(),
                ));
            }
            None => {} // recompute the Hessian here
        }
    }
    if residual <= settings.tolerance {
        return Ok((u, settings.max_iterations, residual));
    }
    Err(not_converged(
        settings.max_iterations,
        residual,
        "the iteration limit was reached".into(),
    ))
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(
        0.0,
        |m, x| if x.is_nan() { f64::NAN } else { m.max(x.abs()) },
    )
}

/// The action as a function of the vech coordinates.
struct Problem {
    evaluator: ActionEvaluator,
    /// Evaluator variables set by each coordinate.
    indices: Vec<Vec<usize>>,
}

impl Problem {
    fn new(coords: &Coordinates, evaluator: ActionEvaluator) -> Result<Self, SaddleError> {
        let indices = coords
            .evaluator_indices(evaluator.variables())
            .ok_or_else(|| SaddleError::Unsupported("an unknown is not a free variable".into()))?;
        let covered: usize = indices.iter().map(Vec::len).sum();
        if covered != evaluator.variables().len() {
            let loose = evaluator
                .variables()
                .as_slice()
                .iter()
                .find(|v| {
                    !indices
                        .iter()
                        .flatten()
                        .any(|&i| evaluator.variables().get(i) == Some(v))
                })
                .map(|v| v.to_string())
                .unwrap_or_default();
            return Err(SaddleError::Unsupported(format!(
                "the action has free variables that no forward equation determines ({loose})"
            )));
        }
        debug_assert!(
            evaluator
                .variables()
                .as_slice()
                .iter()
                .all(|v| matches!(v.owner, Owner::Field(_) | Owner::Conjugate(_)))
        );
        Ok(Problem { evaluator, indices })
    }

    /// The evaluator's variable values at `u`, with `dual(k)` added along coordinate k.
    fn point<D: Copy>(&self, u: &[f64], lift: impl Fn(usize, f64) -> D, zero: D) -> Vec<D> {
        let mut values = vec![zero; self.evaluator.variables().len()];
        for (k, ids) in self.indices.iter().enumerate() {
            for &i in ids {
                values[i] = lift(k, u[k]);
            }
        }
        values
    }

    /// ∂S/∂u_k for every coordinate.
    fn gradient(&self, u: &[f64]) -> Result<Vec<f64>, ActionError> {
        (0..u.len())
            .into_par_iter()
            .map(|k| {
                let point = self.point(
                    u,
                    |m, x| Dual64::new(x, if m == k { 1.0 } else { 0.0 }),
                    Dual64::from(0.0),
                );
                let s = self.evaluator.action(&point)?;
                finite(s.eps, "∂S/∂u")
            })
            .collect()
    }

    /// ∂²S/∂u_k∂u_m, rows.
    fn hessian(&self, u: &[f64]) -> Result<Vec<Vec<f64>>, ActionError> {
        let n = u.len();
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i..n).map(move |j| (i, j))).collect();
        let values: Vec<f64> = pairs
            .par_iter()
            .map(|&(i, j)| {
                let point = self.point(
                    u,
                    |m, x| {
                        let unit = |k: usize| if m == k { 1.0 } else { 0.0 };
                        HyperDual64::new(x, unit(i), unit(j), 0.0)
                    },
                    HyperDual64::from(0.0),
                );
                let s = self.evaluator.action(&point)?;
                finite(s.eps1eps2, "∂²S/∂u∂u")
            })
            .collect::<Result<_, _>>()?;
        let mut h = vec![vec![0.0; n]; n];
        for (&(i, j), v) in pairs.iter().zip(values) {
            h[i][j] = v;
            h[j][i] = v;
        }
        Ok(h)
    }
}

fn finite(value: f64, what: &str) -> Result<f64, ActionError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ActionError::NotFinite {
            what: what.into(),
            value,
        })
    }
}
