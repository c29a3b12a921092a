//! The linearised system at scale (`solve --method linear`, [`saddle::finite_width::linear_kernels`])
//! against the number of patterns: deep erf, L = 3, N = 100 on standardised MNIST 0 vs 3,
//! M Monte Carlo samples, no replicas. Prints the wall time and the iterations per P, the
//! scaling exponent fitted to log time against log P, and — as a check that the solves are
//! the same problem — the alignment of the readout kernel's shift with YYᵀ.
//!
//! ```sh
//! cargo run --release --example linear_scaling -- [SAMPLES] [P …]   # default 100000, 100 200 500
//! ```

use std::time::Instant;

use ndarray::Array2;
use saddle::finite_width::{MapSettings, linear_kernels};
use saddle::solve::fluctuation::Order;

fn digits(p: usize) -> (Array2<f64>, Array2<f64>) {
    let split = saddle::data::mnist::Mnist::load_bundled()
        .and_then(|m| m.two_class(0, 3, p, 2))
        .and_then(|s| s.standardised())
        .expect("bundled digits");
    (split.x_train, split.y_train)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let samples: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut sizes: Vec<usize> = args.filter_map(|s| s.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![100, 200, 500];
    }
    let source = std::fs::read_to_string(format!(
        "{}/examples/deep_erf.action",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("examples/deep_erf.action");
    let theory = saddle::compile(&source, "deep_erf").expect("checks");
    let settings = MapSettings {
        overrides: vec![("L".into(), 3.0), ("N".into(), 100.0)],
        samples,
        replicas: 0,
        ..MapSettings::default()
    };
    println!("deep erf, L = 3, N = 100, M = {samples}, no replicas");
    println!(
        "{:>6} {:>10} {:>11} {:>22}",
        "P", "time/s", "iterations", "N·⟨δC⁽³⁾, yyᵀ⟩/P²"
    );
    let mut points = Vec::new();
    for &p in &sizes {
        let (x, y) = digits(p);
        let start = Instant::now();
        let solution =
            match linear_kernels(&theory, x.view(), y.view(), None, Order::Full, &settings) {
                Ok(s) => s,
                Err(e) => {
                    println!("{p:>6} failed: {e}");
                    continue;
                }
            };
        let seconds = start.elapsed().as_secs_f64();
        let readout = solution.layers.last().expect("a readout layer");
        let target = y.dot(&y.t());
        let shift = (&readout.kernel - &readout.nngp) * 100.0;
        let aligned = (&shift * &target).sum() / (p * p) as f64;
        println!(
            "{p:>6} {seconds:>10.2} {:>11} {aligned:>22.5}",
            solution.sweeps
        );
        points.push(((p as f64).ln(), seconds.ln()));
    }
    if points.len() >= 2 {
        let n = points.len() as f64;
        let (mx, my) = (
            points.iter().map(|p| p.0).sum::<f64>() / n,
            points.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let slope = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
            / points.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
        println!("time ∝ P^{slope:.2} (least squares on log–log)");
    }
}
