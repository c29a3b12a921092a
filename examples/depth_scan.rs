//! A depth scan with a solver generated at compile time: GP prediction of deep erf networks
//! (`examples/deep_erf.action`, compiled by `saddle_macros::theory!`) on MNIST 0 vs 3 for
//! depths L = 1…20 at two weight variances, one in the ordered phase (g = 1.5) and one in
//! the chaotic phase (g = 4), printing test MSE, accuracy and ln p(Y|X) per depth.
//!
//! `cargo run --release --example depth_scan [P_TRAIN] [P_TEST]` (default 200 and 400).

use std::error::Error;

use saddle::data::mnist::{Mnist, Split};

saddle_macros::theory!(DeepErf = "examples/deep_erf.action");

/// One depth of the scan.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthRow {
    /// Hidden layers L.
    pub depth: usize,
    /// Test mean squared error per pattern.
    pub test_mse: f64,
    /// Test accuracy (sign of the predicted mean).
    pub test_accuracy: f64,
    /// ln p(Y|X) of the training targets.
    pub log_marginal_likelihood: f64,
}

/// GP predictions of `theory` at each depth.
pub fn depth_scan(
    theory: DeepErf,
    split: &Split,
    depths: &[usize],
) -> Result<Vec<DepthRow>, Box<dyn Error>> {
    depths
        .iter()
        .map(|&depth| {
            let prediction = theory.with_L(depth).predict(
                split.x_train.view(),
                split.y_train.view(),
                split.x_test.view(),
                Some(split.y_test.view()),
            )?;
            let metrics = prediction
                .gp
                .metrics
                .ok_or("test targets were given, so metrics exist")?;
            Ok(DepthRow {
                depth,
                test_mse: metrics.mse,
                test_accuracy: metrics.accuracy,
                log_marginal_likelihood: prediction.gp.log_marginal_likelihood,
            })
        })
        .collect()
}

/// MNIST 0 vs 3, standardised per pattern.
pub fn digits(train: usize, test: usize) -> Result<Split, Box<dyn Error>> {
    Ok(Mnist::load_bundled()?
        .two_class(0, 3, train, test)?
        .standardised()?)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let split = digits(
        args.first().copied().unwrap_or(200),
        args.get(1).copied().unwrap_or(400),
    )?;
    let depths: Vec<usize> = (1..=20).collect();
    for g in [1.5, 4.0] {
        println!("deep erf, g = {g}: GP on MNIST 0 vs 3");
        println!(
            "{:>3} {:>10} {:>9} {:>12}",
            "L", "test MSE", "accuracy", "ln p(Y|X)"
        );
        for row in depth_scan(DeepErf::default().with_g(g), &split, &depths)? {
            println!(
                "{:>3} {:>10.6} {:>9.4} {:>12.3}",
                row.depth, row.test_mse, row.test_accuracy, row.log_marginal_likelihood
            );
        }
    }
    Ok(())
}
