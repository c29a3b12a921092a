//! Pattern separation in finite networks: the curve of [`crate::solve::separation`] measured
//! on independent draws of the network an action describes (synchronous, layer by layer).
//!
//! Each draw gives the empirical kernels of every step on the same patterns, hence its own
//! overlaps ρ_ab = K_ab/√(K_aa K_bb), distances and Δ(l); the estimate is their mean over
//! draws with its standard error (the draws are independent). A ratio of empirical averages
//! is biased by O(1/N), far below the standard error at the widths this is run at.

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;

use super::{PriorDraws, SimulateError, stream_seed};
use crate::solve::nngp::EntryKey;
use crate::solve::separation::{
    INPUTS, PairGroups, SeparationCurve, Step, StepValues, curve_of, input_gram, optimal_step,
};

/// A separation curve averaged over draws, with the standard error of every value.
#[derive(Debug, Clone)]
pub struct SimulatedSeparation {
    /// The draws made.
    pub samples: usize,
    /// The mean over draws.
    pub mean: SeparationCurve,
    /// The standard error of each mean.
    pub std_error: SeparationCurve,
    /// The steps whose Δ the draws cannot tell from the largest: the paired difference
    /// Δ(l*) − Δ(l), averaged over the same draws, within two of its standard errors
    /// (l* itself included) — the uncertainty of the optimal step.
    pub optimal_steps: Vec<usize>,
}

impl SimulatedSeparation {
    /// The step where the mean Δ is largest.
    pub fn optimal_step(&self) -> usize {
        optimal_step(&self.mean.delta)
    }
}

/// `samples` independent draws of the network on the simulator's patterns (seeded with
/// `seed`, one stream per draw), each reduced to its separation curve over `steps`.
pub fn simulate_separation(
    simulator: &(impl PriorDraws + ?Sized),
    steps: &[Step],
    groups: &PairGroups,
    samples: usize,
    seed: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SimulatedSeparation, SimulateError> {
    if samples < 2 {
        return Err(SimulateError::Setting(format!(
            "--samples {samples}: at least 2 draws are needed for a standard error"
        )));
    }
    let gram = input_gram(simulator.inputs());
    let curves: Vec<SeparationCurve> = (0..samples)
        .into_par_iter()
        .map(|s| {
            let mut rng = StdRng::seed_from_u64(stream_seed(seed, s as u64));
            let draw = simulator.draw_seeded(&mut rng)?;
            let entry = |key: &EntryKey| -> Result<ArrayView2<f64>, SimulateError> {
                draw.entries
                    .get(key)
                    .or_else(|| simulator.fixed_entry(key))
                    .map(|m| m.view())
                    .ok_or_else(|| SimulateError::Evaluate {
                        what: simulator.entry_name(key),
                        reason: "the network does not compute this entry".into(),
                    })
            };
            let mut named: Vec<StepValues> = Vec::with_capacity(steps.len());
            for step in steps {
                named.push(match step {
                    Step::Inputs => StepValues {
                        name: INPUTS.into(),
                        kernel: gram.view(),
                        mean: None,
                    },
                    Step::Entry { kernel, mean } => StepValues {
                        name: simulator.entry_name(kernel),
                        kernel: entry(kernel)?,
                        mean: mean.as_ref().map(entry).transpose()?,
                    },
                });
            }
            let what = || format!("the overlaps of draw {}", s + 1);
            let curve = curve_of(&named, groups).map_err(|e| SimulateError::Evaluate {
                what: what(),
                reason: e.to_string(),
            })?;

            progress(1);
            Ok(curve)
        })
        .collect::<Result<_, SimulateError>>()?;
    Ok(summarise(&curves, steps.len()))
}

/// The mean of per-network curves of up to `steps` steps, with standard errors (the networks
/// are independent).
pub(crate) fn summarise(curves: &[SeparationCurve], steps: usize) -> SimulatedSeparation {
    let samples = curves.len();
    // a finite network can lose its activity where the theory keeps a little: the estimate
    // covers the steps every draw reached
    let shortest = curves
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| c.steps.len())
        .map(|(s, c)| (s, c.steps.len(), c.ended.clone()));
    let (len, ended) = match shortest {
        Some((s, len, ended)) if len < steps => (
            len,
            Some(format!(
                "in draw {} (of {samples}): {}",
                s + 1,
                ended.unwrap_or_default()
            )),
        ),
        _ => (steps, None),
    };
    let n = samples as f64;
    let statistics = |get: fn(&SeparationCurve) -> &Vec<f64>| -> (Vec<f64>, Vec<f64>) {
        (0..len)
            .map(|l| {
                let mean = curves.iter().map(|c| get(c)[l]).sum::<f64>() / n;
                let variance = curves
                    .iter()
                    .map(|c| (get(c)[l] - mean).powi(2))
                    .sum::<f64>()
                    / (n - 1.0);
                // a step every draw shares (the inputs' kernel) varies by rounding only
                let exact = variance.sqrt() <= 1e-12 * mean.abs().max(1.0);
                (mean, if exact { 0.0 } else { (variance / n).sqrt() })
            })
            .unzip()
    };
    let (within, within_se) = statistics(|c| &c.within);
    let (between, between_se) = statistics(|c| &c.between);
    let (delta, delta_se) = statistics(|c| &c.delta);
    let (distance_within, distance_within_se) = statistics(|c| &c.distance_within);
    let (distance_between, distance_between_se) = statistics(|c| &c.distance_between);
    let names = curves[0].steps[..len].to_vec();
    let best = optimal_step(&delta);
    let optimal_steps = (0..len)
        .filter(|&l| {
            let differences: Vec<f64> = curves.iter().map(|c| c.delta[best] - c.delta[l]).collect();
            let mean = differences.iter().sum::<f64>() / n;
            let variance = differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
            mean <= 2.0 * (variance / n).sqrt()
        })
        .collect();
    SimulatedSeparation {
        optimal_steps,
        samples,
        mean: SeparationCurve {
            steps: names.clone(),
            within,
            between,
            delta,
            distance_within,
            distance_between,
            ended,
        },
        std_error: SeparationCurve {
            steps: names,
            within: within_se,
            between: between_se,
            delta: delta_se,
            distance_within: distance_within_se,
            distance_between: distance_between_se,
            ended: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::{Network, Simulator};
    use crate::solve::nngp::NngpSettings;
    use crate::solve::separation::{overlap_patterns, theory_curve};

    /// Theory and 200 simulated networks of width 1000 on the overlap patterns; every Δ(l),
    /// ρ within and ρ between within 4 s.e. of the theory. Returns (theory, simulation).
    fn compare(
        file: &str,
        set: &[(&str, f64)],
        overlaps: (f64, f64),
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
        let (steps, curve) = theory_curve(&theory, x.view(), &settings, &groups).expect("theory");
        let params = theory.bind(&set).expect("params");
        let network = Network::new(&theory, &params).expect("network");
        let simulator = Simulator::new(&network, x.view()).expect("simulator");
        let steps = &steps[..curve.steps.len()];
        let sim = simulate_separation(&simulator, steps, &groups, 200, seed, &|_| {})
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
                    "{file}: {what}({l}) = {} ± {} vs {}",
                    m[l],
                    se[l],
                    t[l]
                );
            }
        }
        (curve, sim)
    }

    #[test]
    fn sign_network_separates_as_the_theory_says() {
        // T12's first setting on 1000 sign units per layer
        let (curve, sim) = compare(
            "examples/binary_sign.action",
            &[("L", 6.0), ("gb", 0.0)],
            (0.99, 0.8),
            7,
        );
        assert_eq!((curve.optimal_step(), sim.optimal_step()), (2, 2));
        // the inputs' step is shared by every draw: no error, exactly the theory
        assert_eq!(sim.std_error.delta[0], 0.0);
        assert!((sim.mean.delta[0] - curve.delta[0]).abs() < 1e-14);
    }

    #[test]
    fn threshold_network_separates_as_the_theory_says_dense_and_sparse() {
        let file = "examples/binary_threshold.action";
        let (curve, sim) = compare(file, &[("L", 4.0), ("theta", 0.0)], (0.999, 0.9), 3);
        assert_eq!((curve.optimal_step(), sim.optimal_step()), (1, 1));
        let (curve, sim) = compare(file, &[("L", 4.0), ("theta", 0.5)], (0.999, 0.9), 4);
        assert_eq!((curve.optimal_step(), sim.optimal_step()), (2, 2));
    }

    #[test]
    fn a_seed_gives_the_same_numbers() {
        let set = [("L", 3.0), ("theta", 0.0)];
        let file = "examples/binary_threshold.action";
        let (_, a) = compare(file, &set, (0.99, 0.8), 11);
        let (_, b) = compare(file, &set, (0.99, 0.8), 11);
        assert_eq!(a.mean, b.mean);
        assert_eq!(a.std_error, b.std_error);
    }
}
