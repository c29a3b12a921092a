//! Glauber dynamics over time: runs of the asynchronous units with the overlap of two
//! patterns' states reported at chosen times, and the pattern-separation curve.

use ndarray::{Array2, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Exp1, StandardNormal};
use rayon::prelude::*;

use crate::simulate::separation::{SimulatedSeparation, summarise};
use crate::simulate::{SimulateError, stream_seed};
use crate::solve::separation::{GlauberTimes, PairGroups, SeparationCurve, StepValues, curve_of};

use super::*;

/// One network run from t = 0 to `times.end` (in units of τ): its state at
/// 0, interval, 2·interval, …
pub fn run_glauber(
    network: &(impl AsynchronousUnits + ?Sized),
    times: GlauberTimes,
    rng: &mut StdRng,
) -> Result<Vec<Vec<Array2<f64>>>, SimulateError> {
    check_times(times)?;
    let n = network.units();
    let (h0, xi) = network.start(rng)?;
    let mut h = h0;
    let mut f = network.outputs(&h)?;
    let (gain, coupling_mean) = network.couplings();
    let scale = (gain / n as f64).sqrt();
    let offset = coupling_mean / n as f64;
    let w = Array2::from_shape_simple_fn((n, n), || {
        offset + scale * rng.sample::<f64, _>(StandardNormal)
    });
    let reports = report_count(times);
    let mut states = Vec::with_capacity(reports + 1);
    states.push(network.state(&h)?);
    // the Poisson clock of all units together: rate N per τ
    let mut t = rng.sample::<f64, _>(Exp1) / n as f64;
    for k in 1..=reports {
        let until = k as f64 * times.interval;
        while t < until {
            let i = rng.random_range(0..n);
            let field = w.row(i).dot(&f) + xi.row(i);
            if let Some(bad) = field.iter().find(|v| !v.is_finite()) {
                return Err(SimulateError::Evaluate {
                    what: format!("unit {} at t = {t}", i + 1),
                    reason: format!("a pre-activation came out {bad}"),
                });
            }
            let updated = field.insert_axis(Axis(0));
            let out = network.outputs(&updated)?;
            h.row_mut(i).assign(&updated.row(0));
            f.row_mut(i).assign(&out.row(0));
            t += rng.sample::<f64, _>(Exp1) / n as f64;
        }
        states.push(network.state(&h)?);
    }
    Ok(states)
}

/// The separation curve of one state trajectory.
pub(super) fn curve_of_states(
    network: &(impl AsynchronousUnits + ?Sized),
    states: &[Vec<Array2<f64>>],
    times: GlauberTimes,
    groups: &PairGroups,
) -> Result<SeparationCurve, crate::solve::separation::SeparationError> {
    let (kernel, mean) = network.measured();
    let values: Vec<StepValues> = states
        .iter()
        .enumerate()
        .map(|(k, state)| StepValues {
            name: time_name(k, times),
            kernel: state[kernel].view(),
            mean: mean.map(|m| state[m].view()),
        })
        .collect();
    curve_of(&values, groups)
}

/// The name of report `k` (`t = 0.5`), as the theory's curve names it.
pub(super) fn time_name(k: usize, times: GlauberTimes) -> String {
    format!(
        "t = {}",
        crate::plot::curves::tick(k as f64 * times.interval)
    )
}

pub(super) fn report_count(times: GlauberTimes) -> usize {
    (times.end / times.interval + 1e-9).floor() as usize
}

pub(super) fn check_times(times: GlauberTimes) -> Result<(), SimulateError> {
    let GlauberTimes { end, interval, .. } = times;
    if !(end.is_finite() && interval.is_finite() && interval > 0.0 && end >= interval) {
        return Err(SimulateError::Setting(format!(
            "Glauber times: the end {end} and the interval {interval} must be finite, \
             positive and end ≥ interval"
        )));
    }
    Ok(())
}

/// Pattern separation under Glauber dynamics, measured on `samples` independent networks
/// (seeded with `seed`, one stream per network): the mean curve over networks and its
/// standard errors, at the times of `times`.
pub fn simulate_glauber_separation(
    glauber: &(impl AsynchronousUnits + ?Sized),
    groups: &PairGroups,
    times: GlauberTimes,
    samples: usize,
    seed: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SimulatedSeparation, SimulateError> {
    if samples < 2 {
        return Err(SimulateError::Setting(format!(
            "--samples {samples}: at least 2 networks are needed for a standard error"
        )));
    }
    check_times(times)?;
    let curves: Vec<SeparationCurve> = (0..samples)
        .into_par_iter()
        .map(|s| {
            let mut rng = StdRng::seed_from_u64(stream_seed(seed, s as u64));
            let states = run_glauber(glauber, times, &mut rng)?;
            let curve = curve_of_states(glauber, &states, times, groups).map_err(|e| {
                SimulateError::Evaluate {
                    what: format!("the overlaps of network {}", s + 1),
                    reason: e.to_string(),
                }
            })?;
            progress(1);
            Ok(curve)
        })
        .collect::<Result<_, SimulateError>>()?;
    Ok(summarise(&curves, report_count(times) + 1))
}
