//! Cross-time kernels of a recurrent erf network with a solver generated at compile time
//! (`examples/recurrent_erf.action`, compiled by `saddle_macros::theory!`): for a pair of
//! MNIST digits (a 0 and a 3) the table of C(t, s) between the two patterns' states at times
//! t and s, and each pattern's variance C(t, t). The cross-time blocks (t ≠ s) have no fused
//! kernel map in the run time; the generated arcsine formula computes them.
//!
//! `cargo run --release --example recurrent_table [T]` (default 6).

use std::error::Error;

use ndarray::Array2;

saddle_macros::theory!(RecurrentErf = "examples/recurrent_erf.action");

/// C(t, s)_αβ for t, s = 0…T, and the variance C(t, t)_αα of the first pattern.
pub struct CrossTimeTable {
    /// Entry (t, s): the kernel between pattern α at time t and pattern β at time s.
    pub between: Array2<f64>,
    /// Entry (t, t): the variance of pattern α at time t.
    pub variance: Vec<f64>,
}

/// The table for patterns 0 and 1 of `x`.
pub fn cross_time_table(
    theory: RecurrentErf,
    x: ndarray::ArrayView2<f64>,
) -> Result<CrossTimeTable, Box<dyn Error>> {
    let kernels = theory.nngp(x)?;
    let t = theory.T;
    let entry = |a: usize, b: usize| -> Result<&Array2<f64>, Box<dyn Error>> {
        kernels
            .entries
            .get(&(0, vec![a as i64, b as i64]))
            .ok_or_else(|| format!("C[{a}, {b}] was not computed").into())
    };
    let mut between = Array2::zeros((t + 1, t + 1));
    let mut variance = Vec::with_capacity(t + 1);
    for a in 0..=t {
        for b in 0..=t {
            between[[a, b]] = entry(a, b)?[[0, 1]];
        }
        variance.push(entry(a, a)?[[0, 0]]);
    }
    Ok(CrossTimeTable { between, variance })
}

/// The first 0 and the first 3 of the bundled digits, standardised.
pub fn two_digits() -> Result<Array2<f64>, Box<dyn Error>> {
    let split = saddle::data::mnist::Mnist::load_bundled()?
        .two_class(0, 3, 2, 2)?
        .standardised()?;
    Ok(split.x_train)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let t: usize = std::env::args().nth(1).map_or(Ok(6), |a| a.parse())?;
    let x = two_digits()?;
    let table = cross_time_table(RecurrentErf::default().with_T(t), x.view())?;
    println!("recurrent erf, T = {t}: C(t, s) between a 0 (time t) and a 3 (time s)");
    print!("{:>6}", "t \\ s");
    for s in 0..=t {
        print!("{s:>9}");
    }
    println!("{:>12}", "C(t,t)_00");
    for a in 0..=t {
        print!("{a:>6}");
        for b in 0..=t {
            print!("{:>9.5}", table.between[[a, b]]);
        }
        println!("{:>12.5}", table.variance[a]);
    }
    Ok(())
}
