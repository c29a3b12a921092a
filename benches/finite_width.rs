//! The MAP at finite width for many patterns (`solve --method map`, `saddle::finite_width`),
//! on standardised MNIST 0 vs 3 digits, L = 2:
//! * deep linear (Gaussian closed forms, exact) at P = 100 and 200, N = 100;
//! * deep erf (importance sampling, M = 4000 samples, no replicas) at P = 24, 50, 100,
//!   N = 100 — the scaling in P — with Anderson-accelerated sweeps, and at P = 50 also with
//!   plain damped sweeps and Newton–Krylov (the ratios are the acceleration; the sweep
//!   counts are printed).
//!
//! * recurrent erf (`saddle::finite_width::recurrent`, T = 3: one tilted measure over the
//!   3·P trajectory) at P = 12 and 24, N = 100, M = 4000, MAP and linearised system, beside
//!   deep erf at L = 3 on the same digits (three P-dimensional populations);
//! * the layered linearised system at scale (`linear_kernels`, deep erf, L = 3, M = 4000) at
//!   P = 24 and 50, full and leading order, beside the MAP at P = 50 and, at P = 50, the
//!   same system by central differences of the sampled maps (the expansion's speed-up).
//!
//! `cargo run --release --example linear_scaling -- 100000 100 200` times the linearised
//! system at M = 10⁵ against P and fits the scaling exponent.
//!
//! `python3 benches/numpy_feature_learning.py` times one importance-sampled sweep written
//! in vectorised numpy for the ratio.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use saddle::finite_width::recurrent::{RecurrentMethod, recurrent_kernels};
use saddle::finite_width::{MapSettings, SaddleIteration, linear_kernels, map_kernels};
use saddle::solve::fluctuation::Order;

fn digits(p: usize) -> (Array2<f64>, Array2<f64>) {
    let split = saddle::data::mnist::Mnist::load_bundled()
        .and_then(|m| m.two_class(0, 3, p, 2))
        .and_then(|s| s.standardised())
        .expect("bundled digits");
    (split.x_train, split.y_train)
}

fn theory(name: &str) -> saddle::Theory {
    let source = std::fs::read_to_string(format!("examples/{name}.action")).expect("example");
    saddle::compile(&source, name).expect("checks")
}

fn settings(pairs: &[(&str, f64)], samples: usize, anderson_memory: usize) -> MapSettings {
    MapSettings {
        overrides: pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        samples,
        replicas: 0,
        anderson_memory,
        ..MapSettings::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("finite_width");
    group.sample_size(10);
    let linear = theory("deep_linear");
    for p in [100, 200] {
        let (x, y) = digits(p);
        let s = settings(&[("N", 100.0), ("L", 2.0)], 2, 6);
        let once = map_kernels(&linear, x.view(), y.view(), None, &s).expect("solves");
        eprintln!("deep linear P = {p}: {} sweeps", once.sweeps);
        group.bench_function(format!("MAP deep linear (exact), P = {p}"), |b| {
            b.iter(|| map_kernels(&linear, x.view(), y.view(), None, &s).expect("solves"))
        });
    }
    let erf = theory("deep_erf");
    for p in [24, 50, 100] {
        let (x, y) = digits(p);
        for (memory, iteration, name) in [
            (6, SaddleIteration::Anderson, "Anderson"),
            (0, SaddleIteration::Anderson, "damped"),
            (6, SaddleIteration::NewtonKrylov, "Newton–Krylov"),
        ] {
            if name != "Anderson" && p != 50 {
                continue;
            }
            let s = MapSettings {
                iteration,
                ..settings(&[("N", 100.0), ("L", 2.0)], 4000, memory)
            };
            let once = map_kernels(&erf, x.view(), y.view(), None, &s).expect("solves");
            eprintln!("deep erf P = {p}, {name}: {} sweeps", once.sweeps);
            group.bench_function(
                format!("MAP deep erf (M = 4000), P = {p}, {name} sweeps"),
                |b| b.iter(|| map_kernels(&erf, x.view(), y.view(), None, &s).expect("solves")),
            );
        }
    }
    let recurrent = theory("recurrent_erf");
    for p in [12, 24] {
        let (x, y) = digits(p);
        let s = settings(&[("N", 100.0), ("T", 3.0)], 4000, 6);
        for (method, name) in [
            (RecurrentMethod::Map, "MAP"),
            (RecurrentMethod::Linear, "linear"),
        ] {
            let once = recurrent_kernels(&recurrent, x.view(), y.view(), None, method, &s)
                .expect("solves");
            eprintln!("recurrent erf P = {p}, {name}: {} iterations", once.sweeps);
            group.bench_function(
                format!("{name} recurrent erf T = 3 (M = 4000), P = {p}"),
                |b| {
                    b.iter(|| {
                        recurrent_kernels(&recurrent, x.view(), y.view(), None, method, &s)
                            .expect("solves")
                    })
                },
            );
        }
        let s = settings(&[("N", 100.0), ("L", 3.0)], 4000, 6);
        group.bench_function(format!("MAP deep erf L = 3 (M = 4000), P = {p}"), |b| {
            b.iter(|| map_kernels(&erf, x.view(), y.view(), None, &s).expect("solves"))
        });
    }
    // the layered linearised system at scale (the expansion at the NNGP point), full and
    // leading order, beside the MAP on the same problem
    for p in [24, 50] {
        let (x, y) = digits(p);
        let s = settings(&[("N", 100.0), ("L", 3.0)], 4000, 6);
        for order in [Order::Full, Order::Leading] {
            let once = linear_kernels(&erf, x.view(), y.view(), None, order, &s).expect("solves");
            eprintln!(
                "linear deep erf L = 3 P = {p}, {order:?}: {} iterations",
                once.sweeps
            );
            group.bench_function(
                format!("linear ({order:?}) deep erf L = 3 (M = 4000), P = {p}"),
                |b| {
                    b.iter(|| {
                        linear_kernels(&erf, x.view(), y.view(), None, order, &s).expect("solves")
                    })
                },
            );
        }
        if p == 50 {
            group.bench_function("MAP deep erf L = 3 (M = 4000), P = 50", |b| {
                b.iter(|| map_kernels(&erf, x.view(), y.view(), None, &s).expect("solves"))
            });
            // the same linearised system by central differences of the sampled maps (every
            // product re-evaluates the units), against the expansion at the NNGP point
            let differences = MapSettings {
                linear_by_differences: true,
                ..s.clone()
            };
            group.bench_function(
                "linear (Full) by differences deep erf L = 3 (M = 4000), P = 50",
                |b| {
                    b.iter(|| {
                        linear_kernels(&erf, x.view(), y.view(), None, Order::Full, &differences)
                            .expect("solves")
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
