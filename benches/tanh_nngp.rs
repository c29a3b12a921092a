//! Depth-3 tanh NNGP kernel (examples/deep_tanh.action) on P MNIST digits (default P = 1000,
//! `SADDLE_BENCH_P` to change): saddle's Hermite-expansion fast path against the per-pair
//! 2-D Gauss–Hermite loop (order 80, the previous path) on a small P, so that the ratio per
//! pair is meaningful. Before timing, the fast path at full P is checked against per-pair
//! quadrature of order 160 on the first `CHECKED` patterns (entry-wise layer maps: the
//! sub-block of the kernel depends on those patterns only).

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array2, s};
use rayon::prelude::*;
use saddle::numeric::activation::Activation;
use saddle::numeric::kernel_map::hermite::{HermiteSettings, apply_into};
use saddle::numeric::matrix::matmul;
use saddle::numeric::pair_quadrature::pair_expectation_or_quadrature;
use saddle::numeric::quad::GaussHermite;
use saddle::solve::nngp::{Keep, NngpSettings, nngp_kernels};
use std::hint::black_box;

const DEPTH: i64 = 3;
const CHECKED: usize = 100;
const SMALL: usize = 60;

fn inputs(p: usize) -> Array2<f64> {
    let mnist = saddle::data::mnist::Mnist::load_bundled().expect("bundled MNIST");
    let mut x = mnist.images.slice(s![..p, ..]).to_owned();
    saddle::data::preprocess::standardise_rows(&mut x, "x").expect("no constant image");
    x
}

/// C⁰ = X Xᵀ/d + 0.1, then three layers C' = 1.5 ⟨tanh tanh⟩ + 0.1 by per-pair 2-D
/// Gauss–Hermite of `order`, rows in parallel.
fn per_pair_quadrature(x: &Array2<f64>, order: usize) -> Array2<f64> {
    let rule = GaussHermite::new(order).expect("order");
    let p = x.nrows();
    let mut c = matmul(x.view(), x.t()).expect("product") / x.ncols() as f64 + 0.1;
    for _ in 0..DEPTH {
        let rows: Vec<Vec<f64>> = (0..p)
            .into_par_iter()
            .map(|a| {
                saddle::numeric::kernel_map::clear_upper_vector_state();
                (0..p)
                    .map(|b| {
                        let limit = (c[[a, a]] * c[[b, b]]).sqrt();
                        let k: f64 = pair_expectation_or_quadrature(
                            &Activation::Tanh,
                            c[[a, a]],
                            c[[b, b]],
                            c[[a, b]].clamp(-limit, limit),
                            &rule,
                        )
                        .expect("valid covariance");
                        1.5 * k + 0.1
                    })
                    .collect()
            })
            .collect();
        c = Array2::from_shape_fn((p, p), |(a, b)| rows[a][b]);
    }
    c
}

fn bench(c: &mut Criterion) {
    let p: usize = std::env::var("SADDLE_BENCH_P")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let x = inputs(p);
    let theory = saddle::compile(
        include_str!("../examples/deep_tanh.action"),
        "deep_tanh.action",
    )
    .expect("example checks");
    let settings = NngpSettings {
        keep: Keep::Only(vec![(0, vec![DEPTH])]),
        ..NngpSettings::default()
    };
    let ours = nngp_kernels(&theory, x.view(), None, &settings).expect("kernels");
    let k = &ours.entries[&(0, vec![DEPTH])];
    let checked = CHECKED.min(p);
    let reference = per_pair_quadrature(&inputs(checked), 160);
    let worst = k
        .slice(s![..checked, ..checked])
        .iter()
        .zip(reference.iter())
        .map(|(a, b)| ((a - b) / b.abs()).abs())
        .fold(0.0, f64::max);
    eprintln!(
        "P = {p}: worst relative difference from per-pair Gauss–Hermite 160 on the first {checked} patterns: {worst:.2e}"
    );
    assert!(worst <= 1e-9, "fast path differs by {worst:e}");

    let mut group = c.benchmark_group(format!("tanh NNGP depth {DEPTH}"));
    group.sample_size(10);
    group.bench_function(format!("saddle Hermite expansion, P = {p}"), |b| {
        b.iter(|| nngp_kernels(&theory, black_box(x.view()), None, &settings))
    });
    // The three layer maps alone, from a precomputed C⁰ (no X Xᵀ, no derivation).
    let c0 = matmul(x.view(), x.t()).expect("product") / x.ncols() as f64 + 0.1;
    group.bench_function(format!("three Hermite layer maps alone, P = {p}"), |b| {
        b.iter(|| {
            let mut c = c0.clone();
            let mut next = Array2::zeros(c.dim());
            for _ in 0..DEPTH {
                apply_into(
                    &Activation::Tanh,
                    (1.5, 0.1),
                    black_box(c.view()),
                    &|_, _| true,
                    &mut next,
                    &HermiteSettings::default(),
                )
                .expect("valid kernel");
                std::mem::swap(&mut c, &mut next);
            }
            c
        })
    });
    let small = inputs(SMALL);
    group.bench_function(format!("per-pair Gauss-Hermite 80, P = {SMALL}"), |b| {
        b.iter(|| per_pair_quadrature(black_box(&small), 80))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
