//! The saddle point by Newton–Krylov, the alternative to Anderson-accelerated sweeps.
//!
//! The conjugates at the saddle point are a fixed point x = G(x) of a sweep G (the forward
//! pass, then the backward one). Newton on r(x) = G(x) − x solves (I − J)δ = r, J = ∂G/∂x,
//! by GMRES ([`crate::numeric::krylov`]) with the products
//! $$(I-J)v \approx v-\frac{G(x+hv)-G(x)}{h},\qquad h=\max(10^{-7},\sqrt{\tau})\,\max(\lVert x\rVert,1)/\lVert v\rVert,$$
//! one sweep each: with common random numbers G is a deterministic map, smooth or (units
//! with kinks) with jumps of O(1/M) that the tolerance τ = 4/M and the step √τ allow for. The linear
//! solves are inexact, to a relative residual η_k = 0.9 (‖r_k‖/‖r_{k−1}‖)² (Eisenstat and
//! Walker's second choice, safeguarded, within [10⁻⁶, 0.1], and no finer than the tolerance
//! needs): early steps cost few sweeps, later ones converge quadratically until the
//! products' differencing error. A backtracking
//! line search (λ halved until ‖r(x + λδ)‖ ≤ (1 − 10⁻⁴λ)‖r(x)‖, or where a tilted measure
//! cannot be normalised at x + λδ) keeps the steps safe far from the solution; where it
//! fails, a damped sweep x + βr is taken instead.
//!
//! Every evaluation of G — the products' and the line search's — counts as one sweep, so the
//! counts compare with those of the Anderson sweeps, where one sweep is one evaluation too.

use ndarray::Array1;

use super::MapSettings;
use crate::finite_width::FiniteWidthError;
use crate::numeric::krylov::gmres;

/// The largest Krylov space per Newton step (its products are sweeps).
const KRYLOV_DIMENSION: usize = 30;

/// The smallest differencing step of the products, relative to the size of the iterate: the
/// map's curvature makes the error ~h, its rounding ~10⁻¹⁴/h (sums over 10⁵ samples).
const DIFFERENCE_STEP: f64 = 1e-7;

/// The products' step for a map resolved to `tolerance`: √tolerance where that is larger
/// than [`DIFFERENCE_STEP`]. Units with kinks (relu) are resolved to 4/M, the size of the
/// jumps their sampled map makes where a sample crosses a kink; a step of √(4/M) keeps a
/// jump's share of a product at √(4/M) instead of (4/M)/10⁻⁷.
fn difference_step(tolerance: f64) -> f64 {
    tolerance.sqrt().max(DIFFERENCE_STEP)
}

/// Where a sweep cannot be evaluated at a trial point but a shorter step may do: a tilt that
/// is not normalisable there, importance weights that collapse, an indefinite covariance.
fn recoverable(e: &FiniteWidthError) -> bool {
    matches!(
        e,
        FiniteWidthError::Collapsed { .. }
            | FiniteWidthError::IndefiniteCovariance(_)
            | FiniteWidthError::NotNormalisable { .. }
    )
}

/// The bounds of the forcing term η (the linear solves' relative residual).
const FORCING: (f64, f64) = (1e-6, 0.1);

/// The shortest step the line search tries before falling back to a damped sweep.
const SHORTEST_STEP: f64 = 1.0 / 64.0;

/// A map of flattened iterates, with what it reports beside (an ESS).
pub(in crate::finite_width) type IterateMap<'m, E> =
    dyn Fn(&Array1<f64>) -> Result<(Array1<f64>, E), FiniteWidthError> + 'm;

/// A fixed point found by [`newton_krylov`].
pub(in crate::finite_width) struct NewtonSolution<E> {
    /// The fixed point x.
    pub x: Array1<f64>,
    /// G(x).
    pub mapped: Array1<f64>,
    /// Evaluations of G.
    pub sweeps: usize,
    /// The relative change `residual(x, G(x))`.
    pub change: f64,
    /// What G reported at x.
    pub report: E,
}

/// The fixed point x = map(x) by Newton–Krylov from `from`, until `residual(x, map(x))` is
/// at most `settings.tolerance`, within `settings.max_sweeps` evaluations of the map.
pub(in crate::finite_width) fn newton_krylov<E>(
    from: Array1<f64>,
    map: &IterateMap<'_, E>,
    residual: &dyn Fn(&Array1<f64>, &Array1<f64>) -> f64,
    settings: &MapSettings,
) -> Result<NewtonSolution<E>, FiniteWidthError> {
    let norm = |v: &Array1<f64>| v.dot(v).sqrt();
    let mut sweeps = 1;
    let mut x = from;
    let (mut g, mut report) = map(&x)?;
    let mut history = Vec::new();
    let mut forcing = FORCING.1;
    let mut previous: Option<f64> = None;
    loop {
        let r = &g - &x;
        let change = residual(&x, &g);
        history.push(change);
        if change <= settings.tolerance {
            return Ok(NewtonSolution {
                x,
                mapped: g,
                sweeps,
                change,
                report,
            });
        }
        if change.is_nan() || sweeps >= settings.max_sweeps {
            break;
        }
        let size = norm(&r);
        if let Some(previous) = previous {
            let choice = 0.9 * (size / previous).powi(2);
            // the safeguard: η may not fall much faster than it did, or the step that ends
            // a slow stretch would be solved far more finely than it needs
            let safeguard = 0.9 * forcing * forcing;
            forcing = if safeguard > 0.1 {
                choice.max(safeguard)
            } else {
                choice
            };
            forcing = forcing.clamp(FORCING.0, FORCING.1);
        }
        // no finer than the tolerance needs: the step leaves a change of about η times
        // this one
        let asked = forcing
            .max(0.5 * settings.tolerance / change)
            .min(FORCING.1);
        previous = Some(size);

        let scale = norm(&x).max(1.0) * difference_step(settings.tolerance);
        // one sweep kept for the step itself
        let budget = (settings.max_sweeps.saturating_sub(sweeps + 1)).min(KRYLOV_DIMENSION);
        let mut products = 0;
        let mut product = |v: &Array1<f64>| -> Result<Array1<f64>, FiniteWidthError> {
            let length = norm(v);
            if length == 0.0 {
                return Ok(v.clone());
            }
            let h = scale / length;
            let (moved, _) = map(&(&x + &(v * h)))?;
            products += 1;
            Ok(v - &((&moved - &g) / h))
        };
        let solved = gmres(&mut product, &r, asked, budget);
        sweeps += products;
        // a product the map could not take (a perturbation across the edge of what it
        // samples) or one that came out non-finite: no Newton step this time
        let step = match solved {
            Ok(step)
                if step.x.iter().all(|v| v.is_finite()) && step.x.iter().any(|v| *v != 0.0) =>
            {
                Some(step)
            }
            Ok(_) => None,
            Err(e) if recoverable(&e) => None,
            Err(e) => return Err(e),
        };

        let mut lambda = 1.0;
        let mut accepted = None;
        while let Some(step) = step.as_ref()
            && lambda >= SHORTEST_STEP
            && sweeps < settings.max_sweeps
        {
            let candidate = &x + &(&step.x * lambda);
            sweeps += 1;
            match map(&candidate) {
                Ok((next, next_report)) => {
                    if norm(&(&next - &candidate)) <= (1.0 - 1e-4 * lambda) * size {
                        accepted = Some((candidate, next, next_report));
                        break;
                    }
                }
                Err(e) if recoverable(&e) => {}
                Err(e) => return Err(e),
            }
            lambda *= 0.5;
        }
        let (next_x, next_g, next_report) = match accepted {
            Some(found) => found,
            None if sweeps >= settings.max_sweeps => break,
            None => damped_step(&x, &r, map, settings, &mut sweeps)?,
        };
        (x, g, report) = (next_x, next_g, next_report);
    }
    Err(FiniteWidthError::NotConverged {
        sweeps,
        residual: history.last().copied().unwrap_or(f64::NAN),
        tolerance: settings.tolerance,
        history: history.iter().rev().take(5).rev().copied().collect(),
    })
}

/// x + βr with β the damping, halved where the map cannot be evaluated there (while sweeps
/// are left).
fn damped_step<E>(
    x: &Array1<f64>,
    r: &Array1<f64>,
    map: &IterateMap<'_, E>,
    settings: &MapSettings,
    sweeps: &mut usize,
) -> Result<(Array1<f64>, Array1<f64>, E), FiniteWidthError> {
    let mut beta = settings.damping;
    loop {
        let candidate = x + &(r * beta);
        *sweeps += 1;
        match map(&candidate) {
            Ok((next, report)) => return Ok((candidate, next, report)),
            Err(e) if recoverable(&e) && beta > 1e-6 && *sweeps < settings.max_sweeps => {
                beta *= 0.5
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finite_width::map::relative_change;

    fn change(x: &Array1<f64>, g: &Array1<f64>) -> f64 {
        relative_change(x.view(), g.view())
    }

    #[test]
    fn converges_quadratically_where_the_sweeps_crawl() {
        // G(x) = x − 0.01·(x³ + x − c) componentwise: a fixed point map whose plain
        // iteration contracts by ~0.98 per sweep; Newton needs a handful of products
        let c = Array1::from_vec(vec![1.0, 2.0, -3.0, 0.5]);
        let map = |x: &Array1<f64>| -> Result<(Array1<f64>, usize), FiniteWidthError> {
            let f = x.mapv(|v| v * v * v + v) - &c;
            Ok((x - &(f * 0.01), x.len()))
        };
        let settings = MapSettings {
            tolerance: 1e-12,
            max_sweeps: 200,
            ..MapSettings::default()
        };
        let s = newton_krylov(Array1::zeros(4), &map, &change, &settings).unwrap();
        for (x, c) in s.x.iter().zip(&c) {
            assert!((x * x * x + x - c).abs() < 1e-9, "{x}");
        }
        assert!(s.change <= 1e-12);
        assert!(s.sweeps < 80, "{} sweeps", s.sweeps);
        assert_eq!(s.report, 4);
    }

    #[test]
    fn a_step_into_a_forbidden_region_is_shortened() {
        // G is undefined for x ≥ 1 (a tilt that cannot be normalised there); the solution
        // x = 0.9 lies close to the edge and a full Newton step from 0 overshoots it
        let map = |x: &Array1<f64>| -> Result<(Array1<f64>, ()), FiniteWidthError> {
            if x[0] >= 1.0 {
                return Err(FiniteWidthError::NotNormalisable {
                    term: 1,
                    smallest: 1.0 - x[0],
                });
            }
            // root of f(x) = ln(1 − x) + ln 10 at x = 0.9; G = x + f/10
            Ok((x.mapv(|v| v + ((1.0 - v).ln() + 10f64.ln()) * 0.1), ()))
        };
        let settings = MapSettings {
            tolerance: 1e-12,
            ..MapSettings::default()
        };
        let s = newton_krylov(Array1::from_vec(vec![0.0]), &map, &change, &settings).unwrap();
        assert!((s.x[0] - 0.9).abs() < 1e-10, "{}", s.x[0]);
    }

    #[test]
    fn running_out_of_sweeps_is_reported_with_the_history() {
        let map = |x: &Array1<f64>| -> Result<(Array1<f64>, ()), FiniteWidthError> {
            Ok((x.mapv(|v| v + 1.0), ()))
        };
        let settings = MapSettings {
            max_sweeps: 12,
            ..MapSettings::default()
        };
        match newton_krylov(Array1::zeros(3), &map, &change, &settings) {
            Err(FiniteWidthError::NotConverged {
                sweeps, history, ..
            }) => {
                assert!(sweeps <= 12, "{sweeps}");
                assert!(!history.is_empty());
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("x + 1 has no fixed point"),
        }
    }
}
