//! Recurrent finite-width theory against the networks it describes (THEORY.md §4.3, §6): the
//! MAP and the linearised system of `recurrent_erf` (T = 3) on four MNIST digits beside the
//! posterior of simulated recurrent networks (elliptical slice sampling of the drive and the
//! one weight matrix shared over time), N = 50…800.
//!
//! What is compared is the shift the data cause, in units of 1/N: N·(posterior mean − prior
//! mean) of the simulated networks against N·(C_MAP − C*) of the theory. The prior mean of a
//! recurrent kernel is itself shifted by O(1/N) (fluctuations of the shared weights), and the
//! posterior mean by the same amount plus the data's pull; the difference is the data's
//! pull, which the saddle point gives to O(1/N) relative. Two summaries of the readout
//! kernel C[3,3]: its mean diagonal entry and its target-weighted off-diagonal entry
//! (same-class minus cross-class, the kernel's alignment with the task), each with its
//! standard error (independent prior draws; multi-chain ESS for the posterior; replicas
//! for the theory's importance sampling), and z = the number of combined standard errors
//! between theory and simulation.
//!
//! `cargo run --release --example recurrent_posterior [DRAWS] [WIDTHS…]`
//! (defaults 2000 posterior draws per chain and N = 50 100 200 400 800).

use std::error::Error;

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use saddle::finite_width::MapSettings;
use saddle::finite_width::recurrent::{RecurrentMethod, recurrent_kernels};
use saddle::simulate::posterior::{
    PosteriorSettings, Targets, diagonal_and_off_diagonal_means, sample_posterior,
    target_weighted_off_diagonal,
};
use saddle::simulate::{RecurrentNetwork, RecurrentSimulator};

/// The two summaries of a P×P kernel: mean diagonal, target-weighted off-diagonal.
fn summaries(k: &Array2<f64>, targets: &Array2<f64>) -> [f64; 2] {
    let (diagonal, _) = diagonal_and_off_diagonal_means(k.view());
    [
        diagonal,
        target_weighted_off_diagonal(k.view(), targets.view()),
    ]
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let draws: usize = args.first().map_or(Ok(2000), |a| a.parse())?;
    let widths: Vec<f64> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![50.0, 100.0, 200.0, 400.0, 800.0]
    };
    let source = std::fs::read_to_string("examples/recurrent_erf.action")?;
    let theory = saddle::compile(&source, "recurrent_erf.action")?;
    let split = saddle::data::mnist::Mnist::load_bundled()?
        .two_class(0, 3, 4, 2)?
        .standardised()?;
    let (x, y) = (split.x_train, split.y_train);
    let products = y.dot(&y.t());
    let names = ["mean diagonal", "target-weighted off-diagonal"];
    println!(
        "recurrent_erf, T = 3, g = 1.5, g_b = 0.1, κ = 0.1, 4 MNIST digits (0 vs 3): the \
         readout kernel C[3,3]"
    );
    println!(
        "{:>5}  {:<30} {:>16} {:>16} {:>10} {:>6}",
        "N", "summary", "N·(post − prior)", "N·(MAP − C*)", "linear", "z"
    );
    for &n in &widths {
        let set = vec![("N".to_string(), n)];
        let params = theory.bind(&set)?;
        let network = RecurrentNetwork::new(&theory, &params)?;
        let sim = RecurrentSimulator::new(&network, x.view())?;
        let key = (network.family, vec![3, 3]);
        // the prior: independent networks
        let prior_draws = 4 * draws;
        let mut rng = StdRng::seed_from_u64(7);
        let mut prior = Vec::with_capacity(prior_draws);
        for _ in 0..prior_draws {
            let draw = sim.draw_with(&mut rng)?;
            prior.push(summaries(&draw.entries[&key], &products));
        }
        // the posterior
        let settings = PosteriorSettings {
            chains: 4,
            samples: draws,
            burn_in: draws / 2,
            thin: 1,
            seed: 11,
        };
        let posterior = sample_posterior(&sim, Targets { y: y.view() }, settings, &|_| {})?;
        let post: Vec<(f64, f64)> = names
            .iter()
            .map(|name| {
                posterior
                    .summaries
                    .iter()
                    .find(|(s, _)| *s == format!("C[3,3] {name}"))
                    .map_or((f64::NAN, f64::NAN), |(_, c)| (c.mean, c.std_error))
            })
            .collect();
        // the theory
        let solve = |method| {
            recurrent_kernels(
                &theory,
                x.view(),
                y.view(),
                None,
                method,
                &MapSettings {
                    overrides: set.clone(),
                    samples: 40_000,
                    ..MapSettings::default()
                },
            )
        };
        let (map, linear) = (
            solve(RecurrentMethod::Map)?,
            solve(RecurrentMethod::Linear)?,
        );
        let layer = |m: &saddle::finite_width::MapSolution| {
            m.layers
                .iter()
                .find(|l| l.name == "C[3,3]")
                .cloned()
                .ok_or("no C[3,3]")
        };
        let (map_layer, linear_layer) = (layer(&map)?, layer(&linear)?);
        let nngp = summaries(&map_layer.nngp, &products);
        let at_map = summaries(&map_layer.kernel, &products);
        let at_linear = summaries(&linear_layer.kernel, &products);
        // the theory's error: each summary is linear in the entries; their errors added as
        // if fully correlated (an upper bound)
        let errors = map_layer
            .kernel_error
            .clone()
            .unwrap_or_else(|| Array2::zeros((4, 4)));
        let map_error = summaries(&errors, &products.mapv(f64::abs));
        for (i, name) in names.iter().enumerate() {
            let values: Vec<f64> = prior.iter().map(|v| v[i]).collect();
            let m = values.len() as f64;
            let mean = values.iter().sum::<f64>() / m;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0);
            let prior_error = (var / m).sqrt();
            let (post_mean, post_error) = post[i];
            let shift = n * (post_mean - mean);
            let shift_error = n * (post_error.powi(2) + prior_error.powi(2)).sqrt();
            let theory_shift = n * (at_map[i] - nngp[i]);
            let theory_error = n * map_error[i].abs();
            let z = (shift - theory_shift) / (shift_error.powi(2) + theory_error.powi(2)).sqrt();
            println!(
                "{:>5}  {:<30} {:>9.4} ± {:<5.3} {:>9.4} ± {:<5.3} {:>10.4} {:>6.2}",
                n,
                name,
                shift,
                shift_error,
                theory_shift,
                theory_error,
                n * (at_linear[i] - nngp[i]),
                z
            );
        }
    }
    Ok(())
}
