//! Pattern separation in a layered network of binary threshold units with a solver generated
//! at compile time (`examples/binary_threshold.action`, compiled by `saddle_macros::theory!`;
//! the mean fields Φ and the pair moments Φ₂ come out of generated code): the squared
//! distance Δ(l) = Q_αα + Q_ββ − 2 Q_αβ between the population responses to two digits (a 0
//! and a 3) in layer l, and the mean activity m(l), for several firing thresholds θ.
//!
//! `cargo run --release --example pattern_separation [L]` (default 8).

use std::error::Error;

use ndarray::ArrayView2;

saddle_macros::theory!(BinaryThreshold = "examples/binary_threshold.action");

/// Δ(l) and the activity of the first pattern m(l), for l = 1…L.
pub fn separation(
    theory: BinaryThreshold,
    x: ArrayView2<f64>,
) -> Result<Vec<(f64, f64)>, Box<dyn Error>> {
    let kernels = theory.nngp(x)?;
    (1..=theory.L as i64)
        .map(|l| {
            let q = kernels.entries.get(&(1, vec![l])).ok_or("Q[l] computed")?;
            let m = kernels.entries.get(&(0, vec![l])).ok_or("m[l] computed")?;
            Ok((q[[0, 0]] + q[[1, 1]] - 2.0 * q[[0, 1]], m[[0, 0]]))
        })
        .collect()
}

/// The first 0 and the first 3 of the bundled digits, standardised.
pub fn two_digits() -> Result<ndarray::Array2<f64>, Box<dyn Error>> {
    let split = saddle::data::mnist::Mnist::load_bundled()?
        .two_class(0, 3, 2, 2)?
        .standardised()?;
    Ok(split.x_train)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let layers: usize = std::env::args().nth(1).map_or(Ok(8), |a| a.parse())?;
    let x = two_digits()?;
    let thresholds = [0.0, 0.5, 1.0, 1.5];
    let curves = thresholds
        .iter()
        .map(|&theta| {
            separation(
                BinaryThreshold::default().with_L(layers).with_theta(theta),
                x.view(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    println!("binary threshold units: Δ(l) between a 0 and a 3 (activity m in brackets)");
    print!("{:>3}", "l");
    for theta in thresholds {
        print!("{:>20}", format!("θ = {theta}"));
    }
    println!();
    for l in 0..layers {
        print!("{:>3}", l + 1);
        for curve in &curves {
            let (delta, m) = curve[l];
            print!("{:>20}", format!("{delta:.5} ({m:.3})"));
        }
        println!();
    }
    Ok(())
}
