//! # Constraining a network model by recorded population statistics
//!
//! Given statistics s̄ of a population's responses to P stimuli — the mean activity m_α, the
//! distance R_αβ = K_αα + K_ββ − 2K_αβ between two responses, the angle
//! Θ_αβ = arccos(K_αβ / √(K_αα K_ββ)) between them (K the second moment (1/N) Σᵢ nᵢ_α nᵢ_β
//! of the states), or a kernel entry itself — with their covariance Σ, [`fit`] finds the
//! parameters θ of a theory whose mean-field (NNGP) statistics s(θ) minimise
//! $$\chi^2(\theta) = (s(\theta) - \bar s)^\top \Sigma^{-1} (s(\theta) - \bar s):$$
//! Levenberg–Marquardt on the whitened residuals r = L⁻¹(s − s̄) (Σ = LLᵀ) inside the box the
//! user gives, the Jacobian by central differences, from several starts (the given one and
//! seeded uniform draws in the box). The error of the estimate comes from the curvature at the
//! minimum, Cov θ̂ = (JᵀJ)⁻¹ — the inverse Fisher information of the Gaussian likelihood of
//! s̄ — and is trustworthy when χ²/dof ≈ 1 and no parameter sits on its bound.
//!
//! [`separability`] then predicts how well an optimally trained linear readout separates the
//! stimuli of two classes at every step (layer or time): the Bayesian linear readout of the
//! states at step l (kernel K_l + κI, targets y = ±1 by class), trained on all stimuli but α,
//! predicts y_α with mean μ_α = y_α − [A y]_α / A_αα and variance σ²_α = 1/A_αα
//! (A = (K_l + κI)⁻¹, the leave-one-out identities of GP regression); the separability is the
//! mean probability of the correct sign, (1/P) Σ_α Φ(y_α μ_α / σ_α), and its error follows
//! from Cov θ̂ by the delta method.
//!
//! The statistics are those of the named field entries (`m[3]`, `Q[3]`, `C[2,2]`), so any
//! theory — binary or rate, layered or recurrent — can be fitted to whatever of its fields was
//! recorded. The targets file's format is [`TargetsFile`].
//!
//! ## Modules
//! * `targets`: the targets file and the statistics it names.
//! * `problem`: a fit set up ([`Problem`]): predicted statistics, whitened residuals, derivatives.
//! * `descent`: the descents and the parameters' covariance ([`fit`]).
//! * `separability`: leave-one-out accuracy at fitted parameters ([`separability`]).

mod descent;
mod problem;
mod separability;
mod targets;
pub use descent::{Descent, Fit, FitSettings, fit};
pub use problem::Problem;
use problem::inverse_cholesky;
pub use separability::{Separability, separability};
pub use targets::{
    FreeParameter, FreeSpec, ReadoutSpec, Statistic, StatisticKind, StimuliSpec, TargetSpec,
    TargetsFile, parse_entry,
};

/// Why a fit could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The targets file is malformed or names something the theory lacks.
    #[error("{0}")]
    Targets(String),
    /// The theory could not be evaluated at the starting point.
    #[error("the theory at the starting parameters ({at}): {reason}")]
    Start {
        /// The parameters, `name=value`.
        at: String,
        /// Why.
        reason: String,
    },
    /// No start reached a finite χ².
    #[error("no start converged: {0}")]
    NoConvergence(String),
    /// The statistics do not determine the parameters.
    #[error(
        "the statistics do not determine the parameters: the combination {combination} \
         leaves χ² flat (curvature {curvature:.3e}); fix one of them or add statistics"
    )]
    NotIdentifiable {
        /// The flat direction, as `a·name + b·name`.
        combination: String,
        /// Its curvature (smallest eigenvalue of JᵀJ).
        curvature: f64,
    },
    /// The separability readout failed.
    #[error("separability at {step}: {reason}")]
    Separability {
        /// The step's entry.
        step: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::separability::loo_accuracy;
    use super::*;
    use ndarray::{Array1, Array2};
    use std::path::Path;

    const THRESHOLD: &str = include_str!("../../../examples/binary_threshold.action");

    /// Two classes of two stimuli each: prototypes at overlap 0.3, versions at 0.8.
    fn stimuli() -> Vec<Vec<f64>> {
        vec![
            vec![1.0, 0.0, 0.0, 0.0],
            vec![0.8, 0.6, 0.0, 0.0],
            vec![0.3, 0.0, 0.953_939_2, 0.0],
            vec![0.3, 0.0, 0.715_454_4, 0.630_951_7],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(|v| v * 2.0).collect())
        .collect()
    }

    fn target(statistic: StatisticKind, field: &str, stimuli: &[usize]) -> TargetSpec {
        TargetSpec {
            statistic,
            field: field.into(),
            stimuli: stimuli.to_vec(),
            value: 0.0,
            error: Some(1e-3),
        }
    }

    fn file(fit: &[(&str, f64, f64, Option<f64>)], targets: Vec<TargetSpec>) -> TargetsFile {
        TargetsFile {
            stimuli: StimuliSpec::Rows(stimuli()),
            classes: Some(vec![0.0, 0.0, 1.0, 1.0]),
            fit: fit
                .iter()
                .map(|&(name, min, max, start)| FreeSpec {
                    name: name.into(),
                    min,
                    max,
                    start,
                })
                .collect(),
            targets,
            covariance: None,
            readout: None,
        }
    }

    fn all_layers() -> Vec<TargetSpec> {
        use StatisticKind::*;
        let mut t = Vec::new();
        for l in 1..=3 {
            for a in 0..4 {
                t.push(target(Activity, &format!("m[{l}]"), &[a]));
            }
            t.push(target(Distance, &format!("Q[{l}]"), &[0, 1]));
            t.push(target(Distance, &format!("Q[{l}]"), &[0, 2]));
            t.push(target(Angle, &format!("Q[{l}]"), &[2, 3]));
        }
        t
    }

    /// Targets made by the theory itself at hidden parameters are found again from another
    /// start, to the precision of the descent, with χ² ≈ 0.
    #[test]
    fn recovers_parameters_from_its_own_statistics() {
        let theory = crate::compile(THRESHOLD, "t.action").unwrap();
        let hidden = theory
            .bind(&[("g".into(), 2.0), ("J".into(), -0.5), ("theta".into(), 0.4)])
            .unwrap();
        let spec = file(
            &[
                ("g", 0.2, 5.0, Some(1.0)),
                ("J", -3.0, 3.0, Some(0.0)),
                ("theta", -1.0, 1.5, Some(0.1)),
            ],
            all_layers(),
        );
        let mut problem = Problem::new(&theory, &hidden, &spec, Path::new("."), 80).unwrap();
        problem.observed = problem.model(&[2.0, -0.5, 0.4]).unwrap();
        let found = fit(
            &problem,
            &FitSettings {
                starts: 3,
                ..FitSettings::default()
            },
        )
        .unwrap();
        for (v, want) in found.values.iter().zip([2.0, -0.5, 0.4]) {
            assert!((v - want).abs() < 1e-6, "{:?}", found.values);
        }
        assert!(found.chi2 < 1e-10, "χ² = {}", found.chi2);
        assert_eq!(found.dof, 21 - 3);
        assert!(found.agreeing_starts >= 1);
        // errors: from (JᵀJ)⁻¹, finite and positive, and the separability at every layer
        assert!(found.std_errors.iter().all(|e| *e > 0.0 && e.is_finite()));
        let sep = separability(&problem, &found.values, &found.covariance).unwrap();
        assert_eq!(sep.steps, vec!["Q[1]", "Q[2]", "Q[3]"]);
        assert_eq!(sep.noise, 0.1);
        // leaving one of two stimuli of a class out can make the held-out one look like the
        // other class, so a probability below ½ is possible with four stimuli
        for (a, e) in sep.accuracy.iter().zip(&sep.std_error) {
            assert!(
                (0.0..=1.0).contains(a) && *e >= 0.0 && e.is_finite(),
                "{a} ± {e}"
            );
        }
    }

    /// Layer 1 sees θ only through θ/√g0: fitting both is refused, naming the flat
    /// direction.
    #[test]
    fn a_flat_direction_is_reported() {
        use StatisticKind::*;
        let theory = crate::compile(THRESHOLD, "t.action").unwrap();
        let params = theory.bind(&[]).unwrap();
        let targets = (0..4)
            .map(|a| target(Activity, "m[1]", &[a]))
            .chain([
                target(Distance, "Q[1]", &[0, 1]),
                target(Angle, "Q[1]", &[0, 2]),
            ])
            .collect();
        let spec = file(
            &[("g0", 0.2, 5.0, Some(0.8)), ("theta", -1.0, 1.5, Some(0.1))],
            targets,
        );
        let mut problem = Problem::new(&theory, &params, &spec, Path::new("."), 80).unwrap();
        problem.observed = problem.model(&[1.5, 0.3]).unwrap();
        match fit(&problem, &FitSettings::default()) {
            Err(FitError::NotIdentifiable { combination, .. }) => {
                assert!(combination.contains("g0") && combination.contains("theta"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The leave-one-out identities against refitting the GP without each stimulus.
    #[test]
    fn leave_one_out_matches_refitting() {
        let k = ndarray::arr2(&[
            [1.0, 0.7, 0.2, 0.1],
            [0.7, 1.1, 0.3, 0.2],
            [0.2, 0.3, 0.9, 0.6],
            [0.1, 0.2, 0.6, 1.0],
        ]);
        let labels = [3.0, 3.0, 5.0, 5.0];
        let noise = 0.2;
        let y = [1.0, 1.0, -1.0, -1.0];
        let mut want = 0.0;
        for held in 0..4 {
            let rest: Vec<usize> = (0..4).filter(|&i| i != held).collect();
            let mut a = Array2::from_shape_fn((3, 3), |(i, j)| k[(rest[i], rest[j])]);
            for i in 0..3 {
                a[(i, i)] += noise;
            }
            let a_inv = {
                let l = inverse_cholesky(&a).unwrap();
                l.t().dot(&l)
            };
            let ks = Array1::from_iter(rest.iter().map(|&j| k[(held, j)]));
            let yr = Array1::from_iter(rest.iter().map(|&j| y[j]));
            let mean = ks.dot(&a_inv.dot(&yr));
            let var = k[(held, held)] + noise - ks.dot(&a_inv.dot(&ks));
            want += 0.5 * libm::erfc(-y[held] * mean / (var.sqrt() * std::f64::consts::SQRT_2));
        }
        want /= 4.0;
        let got = loo_accuracy(k.view(), &labels, noise).unwrap();
        assert!((got - want).abs() < 1e-13, "{got} vs {want}");
    }

    #[test]
    fn inverse_cholesky_whitens() {
        let s = ndarray::arr2(&[[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]]);
        let w = inverse_cholesky(&s).unwrap();
        let i = w.dot(&s).dot(&w.t());
        for ((r, c), v) in i.indexed_iter() {
            let want = if r == c { 1.0 } else { 0.0 };
            assert!((v - want).abs() < 1e-14);
        }
        assert!(inverse_cholesky(&ndarray::arr2(&[[1.0, 2.0], [2.0, 1.0]])).is_err());
    }

    #[test]
    fn bad_targets_are_named() {
        use StatisticKind::*;
        let theory = crate::compile(THRESHOLD, "t.action").unwrap();
        let params = theory.bind(&[]).unwrap();
        let cases: Vec<(TargetsFile, &str)> = vec![
            (
                file(
                    &[("g", 0.2, 5.0, None)],
                    vec![target(Activity, "Z[1]", &[0])],
                ),
                "has no field `Z`",
            ),
            (
                file(
                    &[("g", 0.2, 5.0, None)],
                    vec![target(Activity, "Q[1]", &[0])],
                ),
                "activity needs a mean field",
            ),
            (
                file(
                    &[("g", 0.2, 5.0, None)],
                    vec![target(Distance, "Q[9]", &[0, 1])],
                ),
                "`Q[9]` is not an entry",
            ),
            (
                file(
                    &[("g", 0.2, 5.0, None)],
                    vec![target(Distance, "Q[1]", &[0, 7])],
                ),
                "out of range",
            ),
            (
                file(
                    &[("L", 1.0, 5.0, None)],
                    vec![target(Activity, "m[1]", &[0])],
                ),
                "integer parameter",
            ),
            (
                file(
                    &[("g", 5.0, 0.2, None)],
                    vec![target(Activity, "m[1]", &[0])],
                ),
                "box min < max",
            ),
            (
                file(
                    &[("g", 0.2, 5.0, None), ("J", -1.0, 1.0, None)],
                    vec![target(Activity, "m[1]", &[0])],
                ),
                "2 parameters cannot be fitted to 1 statistics",
            ),
        ];
        for (spec, want) in cases {
            let err = Problem::new(&theory, &params, &spec, Path::new("."), 80)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want), "`{err}` lacks `{want}`");
        }
    }

    #[test]
    fn the_targets_file_parses() {
        let text = r#"{
            "stimuli": [[1.0, 0.0], [0.6, 0.8]],
            "classes": [0, 1],
            "fit": [{ "name": "theta", "min": -1, "max": 1 }],
            "targets": [
                { "statistic": "activity", "field": "m[2]", "stimuli": [0], "value": 0.3, "error": 0.01 },
                { "statistic": "angle", "field": "Q[2]", "stimuli": [0, 1], "value": 1.0, "error": 0.02 }
            ],
            "readout": { "noise": 0.05 }
        }"#;
        let spec: TargetsFile = serde_json::from_str(text).unwrap();
        assert_eq!(spec.targets[1].statistic, StatisticKind::Angle);
        let bad = text.replace("\"angle\"", "\"angel\"");
        assert!(serde_json::from_str::<TargetsFile>(&bad).is_err());
    }
}
