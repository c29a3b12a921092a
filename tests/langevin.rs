//! `saddle simulate --sampler langevin`: Langevin dynamics of the weights against the exact
//! sampler (elliptical slice sampling) and against the closed form of its own bias.
//!
//! * deep erf, L = 2, N = 20, two training patterns and a test pattern: every kernel entry and
//!   the test prediction agree with elliptical slice sampling within 4 standard errors, on a
//!   posterior whose data-driven shift is many standard errors from the NNGP;
//! * the step-size bias: in the prior-dominated regime (κ = 100) the unadjusted algorithm
//!   inflates every weight's variance by 1/(1 − ε/2), so a deep linear network's kernel by the
//!   same factor — measured at ε = 0.5 and ε = 0.05 against the exact sampler;
//! * recurrent erf, T = 2, N = 10: the weight matrix shared over time (backpropagation through
//!   time) against elliptical slice sampling of the same network, every block C[t, s] and the
//!   test prediction within 4 standard errors;
//! * the command line: the sampler named in the result, refusals with the reason.

mod common;

use common::{example, path_str, saddle, set, t1_inputs, temp_file};
use ndarray::{Array2, array, concatenate};
use saddle::simulate::langevin::{Langevin, WeightNetwork};
use saddle::simulate::posterior::{
    EllipticalSlice, PosteriorSample, PosteriorSampler, PosteriorSettings, Targets,
    sample_posterior_until,
};
use saddle::simulate::recurrent::{RecurrentNetwork, RecurrentSimulator};
use saddle::simulate::recurrent_langevin::RecurrentWeights;
use saddle::simulate::{Network, Simulator};
use saddle::solve::nngp::{NngpSettings, nngp_kernels};

fn theory(name: &str, overrides: &[(&str, f64)]) -> (saddle::Theory, Vec<f64>) {
    let theory = example(name);
    let params = theory.bind(&set(overrides)).expect("binds");
    (theory, params)
}

fn run(
    sampler: &dyn PosteriorSampler,
    y: &Array2<f64>,
    settings: PosteriorSettings,
) -> PosteriorSample {
    sample_posterior_until(sampler, Targets { y: y.view() }, settings, &|_| {}, &|| {
        false
    })
    .expect("samples")
}

fn entry<'a>(
    sample: &'a PosteriorSample,
    theory: &saddle::Theory,
    l: i64,
) -> &'a saddle::simulate::posterior::EntryPosterior {
    let c = theory.field("C").unwrap();
    &sample
        .entries
        .iter()
        .find(|(k, _)| *k == (c, vec![l]))
        .expect("the layer's kernel")
        .1
}

#[test]
fn langevin_dynamics_of_the_weights_agrees_with_the_exact_sampler() {
    let (theory, params) = theory("deep_erf", &[("L", 2.0), ("N", 20.0)]);
    let network = Network::new(&theory, &params).unwrap();
    let x = concatenate![ndarray::Axis(0), t1_inputs(), array![[-0.5, 1.0]]];
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let y = array![[1.0], [-1.0]];
    let exact = run(
        &EllipticalSlice {
            network: &simulator,
        },
        &y,
        PosteriorSettings {
            chains: 4,
            samples: 4000,
            burn_in: 2000,
            thin: 2,
            seed: 1,
        },
    );
    let weights = WeightNetwork::new(&simulator).unwrap();
    let langevin = Langevin::new(weights, Targets { y: y.view() }, None, 1).unwrap();
    // the default step: 0.05/λ_max, λ_max = 1 + λ_max(J Jᵀ)/κ at a prior draw — the
    // tangent kernel, above the readout kernel's 1 + λ_max(K_train)/κ
    assert!(
        (langevin.step_size * langevin.stiffest - 0.05).abs() < 1e-12,
        "{} {}",
        langevin.step_size,
        langevin.stiffest
    );
    // the NNGP readout kernel C[2] on the training patterns
    let settings = NngpSettings {
        overrides: vec![("L".into(), 2.0), ("N".into(), 20.0)],
        ..NngpSettings::default()
    };
    let kernels = nngp_kernels(&theory, t1_inputs().view(), None, &settings).unwrap();
    let c2 = &kernels.entries[&(theory.field("C").unwrap(), vec![2])];
    let (a, b, d) = (c2[[0, 0]], c2[[0, 1]], c2[[1, 1]]);
    let largest = 0.5 * (a + d) + (0.25 * (a - d) * (a - d) + b * b).sqrt();
    let readout_only = 1.0 + largest / 0.1;
    assert!(
        langevin.stiffest > readout_only,
        "{} vs {readout_only}",
        langevin.stiffest
    );
    let dynamics = run(
        &langevin,
        &y,
        PosteriorSettings {
            chains: 4,
            samples: 2000,
            burn_in: 20_000,
            thin: 40,
            seed: 1,
        },
    );
    let nngp_12 = b;
    let mut compared = 0;
    for l in 1..=2 {
        let (a, b) = (entry(&exact, &theory, l), entry(&dynamics, &theory, l));
        for ((i, j), m) in a.mean.indexed_iter() {
            let (se_a, mb, se_b) = (a.std_error[[i, j]], b.mean[[i, j]], b.std_error[[i, j]]);
            assert!(
                (m - mb).abs() < 4.0 * se_a.hypot(se_b),
                "C[{l}] {i}{j}: slice sampling {m} ± {se_a}, Langevin {mb} ± {se_b}"
            );
            assert!(b.rhat[[i, j]] < 1.05 && b.ess[[i, j]] > 100.0);
            compared += 1;
        }
        if l == 2 {
            // the comparison has teeth: the data move C[2]'s training entry 12 by ≫ 4 s.e.
            let shift = b.mean[[0, 1]] - nngp_12;
            assert!(
                shift < -10.0 * b.std_error[[0, 1]],
                "{shift} ± {}",
                b.std_error[[0, 1]]
            );
        }
    }
    assert_eq!(compared, 18);
    let (pa, pb) = (
        exact.prediction.as_ref().unwrap(),
        dynamics.prediction.as_ref().unwrap(),
    );
    let (m, se_a) = (pa.mean.mean[[0, 0]], pa.mean.std_error[[0, 0]]);
    let (mb, se_b) = (pb.mean.mean[[0, 0]], pb.mean.std_error[[0, 0]]);
    assert!(
        (m - mb).abs() < 4.0 * se_a.hypot(se_b),
        "{m} ± {se_a} vs {mb} ± {se_b}"
    );
    let (v, ve) = (pa.variance[0], pa.variance_std_error[0]);
    let (vb, vbe) = (pb.variance[0], pb.variance_std_error[0]);
    assert!(
        (v - vb).abs() < 4.0 * ve.hypot(vbe),
        "{v} ± {ve} vs {vb} ± {vbe}"
    );
}

#[test]
fn langevin_dynamics_of_a_shared_recurrent_matrix_agrees_with_the_exact_sampler() {
    // recurrent erf, T = 2, N = 10: one weight matrix shared over both steps, trained by
    // backpropagation through time; every block C[t, s] and the test prediction against
    // elliptical slice sampling of the same network
    let (theory, params) = theory("recurrent_erf", &[("T", 2.0), ("N", 10.0)]);
    let network = RecurrentNetwork::new(&theory, &params).unwrap();
    let x = concatenate![ndarray::Axis(0), t1_inputs(), array![[-0.5, 1.0]]];
    let simulator = RecurrentSimulator::new(&network, x.view()).unwrap();
    let y = array![[1.0], [-1.0]];
    let exact = run(
        &EllipticalSlice {
            network: &simulator,
        },
        &y,
        PosteriorSettings {
            chains: 4,
            samples: 4000,
            burn_in: 2000,
            thin: 2,
            seed: 2,
        },
    );
    let weights = RecurrentWeights::new(&simulator).unwrap();
    let langevin = Langevin::new(weights, Targets { y: y.view() }, None, 2).unwrap();
    let dynamics = run(
        &langevin,
        &y,
        PosteriorSettings {
            chains: 4,
            samples: 2000,
            burn_in: 20_000,
            thin: 40,
            seed: 2,
        },
    );
    let mut compared = 0;
    let mut largest_shift: f64 = 0.0;
    for ((key, a), (other, b)) in exact.entries.iter().zip(&dynamics.entries) {
        assert_eq!(key, other);
        for ((i, j), m) in a.mean.indexed_iter() {
            let (se_a, mb, se_b) = (a.std_error[[i, j]], b.mean[[i, j]], b.std_error[[i, j]]);
            assert!(
                (m - mb).abs() < 4.0 * se_a.hypot(se_b),
                "{key:?} {i}{j}: slice sampling {m} ± {se_a}, Langevin {mb} ± {se_b}"
            );
            assert!(b.rhat[[i, j]] < 1.05 && b.ess[[i, j]] > 100.0);
            compared += 1;
        }
        // the data move the readout block's training cross entry (against the prior mean)
        if key.1 == vec![2, 2] {
            let prior = run_prior_mean(&simulator, key);
            largest_shift = (b.mean[[0, 1]] - prior).abs() / b.std_error[[0, 1]];
        }
    }
    eprintln!(
        "readout block C[2,2]: slice sampling {:.4} ± {:.4}, Langevin {:.4} ± {:.4} (ε = {:.3e}); \
         the data moved its entry 12 by {largest_shift:.1} s.e.",
        exact.entries.last().unwrap().1.mean[[0, 1]],
        exact.entries.last().unwrap().1.std_error[[0, 1]],
        dynamics.entries.last().unwrap().1.mean[[0, 1]],
        dynamics.entries.last().unwrap().1.std_error[[0, 1]],
        langevin.step_size
    );
    assert_eq!(
        compared,
        4 * 9,
        "C[1,1], C[1,2], C[2,1], C[2,2] on three patterns"
    );
    assert!(
        largest_shift > 10.0,
        "the posterior moved C[2,2]₁₂ by {largest_shift} s.e."
    );
    let (pa, pb) = (
        exact.prediction.as_ref().unwrap(),
        dynamics.prediction.as_ref().unwrap(),
    );
    let (m, se_a) = (pa.mean.mean[[0, 0]], pa.mean.std_error[[0, 0]]);
    let (mb, se_b) = (pb.mean.mean[[0, 0]], pb.mean.std_error[[0, 0]]);
    assert!(
        (m - mb).abs() < 4.0 * se_a.hypot(se_b),
        "{m} ± {se_a} vs {mb} ± {se_b}"
    );
}

/// The prior mean of an entry's training cross term (0, 1), from independent draws.
fn run_prior_mean(simulator: &RecurrentSimulator<'_>, key: &saddle::solve::nngp::EntryKey) -> f64 {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let draws = 4000;
    (0..draws)
        .map(|_| simulator.draw_with(&mut rng).unwrap().entries[key][[0, 1]])
        .sum::<f64>()
        / draws as f64
}

/// ULA on a potential ½‖w‖² has the stationary variance 1/(1 − ε/2) (the recursion
/// w ← (1 − ε)w + √(2ε)ξ), so in the prior-dominated regime the kernel of a deep linear
/// network, (g/N)Σ hhᵀ with h linear in the weights, is inflated by that factor.
#[test]
fn the_step_size_bias_is_the_closed_form_of_the_unadjusted_algorithm() {
    let (theory, params) = theory("deep_linear", &[("L", 1.0), ("N", 20.0), ("kappa", 100.0)]);
    let network = Network::new(&theory, &params).unwrap();
    let x = t1_inputs();
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let y = array![[1.0], [-1.0]];
    let exact = run(
        &EllipticalSlice {
            network: &simulator,
        },
        &y,
        PosteriorSettings {
            chains: 4,
            samples: 10_000,
            burn_in: 500,
            thin: 1,
            seed: 4,
        },
    );
    let reference = entry(&exact, &theory, 1);
    let mut ratios = Vec::new();
    for eps in [0.5, 0.05] {
        let weights = WeightNetwork::new(&simulator).unwrap();
        let langevin = Langevin::new(weights, Targets { y: y.view() }, Some(eps), 4).unwrap();
        let dynamics = run(
            &langevin,
            &y,
            PosteriorSettings {
                chains: 4,
                samples: 10_000,
                burn_in: 2000,
                thin: (0.25 / eps).ceil() as usize,
                seed: 4,
            },
        );
        let inflation = 1.0 / (1.0 - eps / 2.0);
        let sampled = entry(&dynamics, &theory, 1);
        for (i, j) in [(0, 0), (0, 1), (1, 1)] {
            let (m, se) = (reference.mean[[i, j]], reference.std_error[[i, j]]);
            let (mb, seb) = (sampled.mean[[i, j]], sampled.std_error[[i, j]]);
            let expected = inflation * m;
            assert!(
                (mb - expected).abs() < 4.0 * (inflation * se).hypot(seb),
                "ε = {eps}, C[1] {i}{j}: Langevin {mb} ± {seb}, expected {expected} (exact {m} ± {se})"
            );
        }
        ratios.push(sampled.mean[[0, 0]] / reference.mean[[0, 0]]);
    }
    // the bias is visible at ε = 0.5 (a third) and small at ε = 0.05
    assert!(ratios[0] > 1.25 && ratios[1] < 1.06, "{ratios:?}");
}

#[test]
fn the_command_line_names_the_sampler_and_refuses_what_it_cannot_train() {
    let x = temp_file(
        "lx.csv",
        "1.4142135623730951,0\n0.848528137423857,1.50996688705415\n",
    );
    let y = temp_file("ly.csv", "1\n-1\n");
    let base = [
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--set",
        "N=10",
        "--set",
        "L=1",
        "--sampler",
        "langevin",
        "--samples",
        "40",
        "--json",
    ];
    let mut args = vec!["simulate", "examples/deep_tanh.action"];
    args.extend(base);
    let (code, out, err) = saddle(&args);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["method"], "simulate-langevin");
    let sampler = &json["sampler"];
    assert!(
        sampler["name"]
            .as_str()
            .unwrap()
            .starts_with("unadjusted Langevin dynamics of"),
        "{sampler}"
    );
    let eps = sampler["step_size"].as_f64().unwrap();
    let lambda = sampler["stiffest_curvature"].as_f64().unwrap();
    assert!((eps * lambda - 0.05).abs() < 1e-12, "{eps} {lambda}");
    assert!(json["ess"].is_object() && json["rhat"].is_object());
    common::assert_valid(&common::schema_validator(), &json, "simulate-langevin");

    // a recurrent theory: its shared weight matrix under the same dynamics
    let (code, out, err) = saddle(&[
        "simulate",
        "examples/recurrent_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--set",
        "N=10",
        "--set",
        "T=2",
        "--sampler",
        "langevin",
        "--samples",
        "40",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["method"], "simulate-langevin");
    // weights: the drive's 10 × 3·2, the shared 10 × 10, the readout's 1 (the bias gb·𝟏𝟏ᵀ
    // has rank one) + 10
    assert_eq!(
        json["sampler"]["weights"],
        10 * 6 + 100 + 11,
        "{}",
        json["sampler"]
    );
    assert!(json["recurrent"].is_object() && json["ess"].is_object());
    common::assert_valid(&common::schema_validator(), &json, "simulate-langevin");

    // units that jump have no gradient: named, exit 1
    let mut args = vec!["simulate", "examples/binary_sign.action"];
    args.extend(base);
    let (code, _, err) = saddle(&args);
    assert_eq!(code, 1);
    assert!(
        err.contains("jumps") && err.contains("--sampler ess"),
        "{err}"
    );
    // a step size that is not one
    let mut args = vec!["simulate", "examples/deep_erf.action"];
    args.extend(base);
    args.extend(["--step-size", "0"]);
    let (code, _, err) = saddle(&args);
    assert_eq!(code, 1);
    assert!(err.contains("--step-size 0:"), "{err}");
    // a step past 2/λ_max diverges: said, with the step
    let mut args = vec!["simulate", "examples/deep_erf.action"];
    args.extend(base);
    args.extend(["--step-size", "5"]);
    let (code, _, err) = saddle(&args);
    assert_eq!(code, 1);
    assert!(err.contains("--step-size 5: at or past 2/λ_max"), "{err}");
    // a step size without the sampler that takes one, Langevin without a posterior
    let (code, _, err) = saddle(&[
        "simulate",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--step-size",
        "0.01",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("only --sampler langevin takes a step size"),
        "{err}"
    );
    let (code, _, err) = saddle(&[
        "simulate",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--prior",
        "--sampler",
        "langevin",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--sampler langevin samples the posterior"),
        "{err}"
    );
}
