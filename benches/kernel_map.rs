//! Depth-10 erf NNGP kernel on P MNIST digits (default P = 4000, `SADDLE_BENCH_P` to change):
//! saddle (derived equations, fast path, rayon) against a plain single-threaded Rust loop over
//! pattern pairs calling the closed form directly, and against the X Xᵀ product alone.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array2, s};
use saddle::numeric::activation::Activation;
use saddle::numeric::matrix::matmul;
use saddle::numeric::pair::pair_expectation;
use saddle::solve::nngp::{Keep, NngpSettings, nngp_kernels};
use std::hint::black_box;

const DEPTH: usize = 10;

fn inputs() -> Array2<f64> {
    let p: usize = std::env::var("SADDLE_BENCH_P")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let mnist = saddle::data::mnist::Mnist::load_bundled().expect("bundled MNIST");
    let mut x = mnist.images.slice(s![..p, ..]).to_owned();
    saddle::data::preprocess::standardise_rows(&mut x, "x").expect("no constant image");
    x
}

fn theory() -> saddle::Theory {
    let source = include_str!("../examples/deep_erf.action");
    saddle::compile(source, "deep_erf.action").expect("example checks")
}

/// The reference: C⁰ = g0/d X Xᵀ + gb0, then ten layers C' = g K(C) + gb, one pair at a time.
fn plain_loop(x: &Array2<f64>) -> Array2<f64> {
    let (g, gb, g0, gb0, s) = (1.5, 0.1, 1.0, 0.1, std::f64::consts::PI.sqrt() / 2.0);
    let d = x.ncols() as f64;
    let mut c = matmul(x.view(), x.t()).expect("product") * (g0 / d) + gb0;
    // faer's AVX-512 product can leave this thread's upper vector state dirty; clear it so
    // the reference loop is not slowed down by it.
    saddle::numeric::kernel_map::clear_upper_vector_state();
    let act = Activation::Erf { s };
    let p = c.nrows();
    for _ in 0..DEPTH {
        let mut next = Array2::zeros((p, p));
        for a in 0..p {
            for b in a..p {
                let k: f64 =
                    pair_expectation(&act, c[[a, a]], c[[b, b]], c[[a, b]]).expect("closed form");
                next[[a, b]] = g * k + gb;
                next[[b, a]] = g * k + gb;
            }
        }
        c = next;
    }
    c
}

fn bench(c: &mut Criterion) {
    let x = inputs();
    let theory = theory();
    let settings = NngpSettings {
        overrides: vec![("L".into(), DEPTH as f64)],
        keep: Keep::Only(vec![(0, vec![DEPTH as i64])]),
        ..NngpSettings::default()
    };
    // Same numbers both ways, to the last digits.
    let ours = nngp_kernels(&theory, x.view(), None, &settings).expect("kernels");
    let reference = plain_loop(&x);
    let k = &ours.entries[&(0, vec![DEPTH as i64])];
    let worst = k
        .iter()
        .zip(reference.iter())
        .map(|(a, b)| ((a - b) / b.abs().max(1e-300)).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= 1e-13,
        "saddle and the plain loop differ by {worst:e} (relative)"
    );
    eprintln!(
        "P = {}: worst relative difference from the plain closed-form loop {worst:.2e}",
        x.nrows()
    );

    let mut group = c.benchmark_group(format!("erf NNGP depth {DEPTH}, P = {}", x.nrows()));
    group.sample_size(10);
    group.bench_function("saddle kernel (all cores)", |b| {
        b.iter(|| nngp_kernels(&theory, black_box(x.view()), None, &settings))
    });
    group.bench_function("plain loop, one core", |b| {
        b.iter(|| plain_loop(black_box(&x)))
    });
    group.bench_function("X X^T alone (faer)", |b| {
        b.iter(|| matmul(black_box(x.view()), x.t()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
