//! Depth-10 erf and ReLU NNGP kernels on P MNIST digits (default P = 4000, `SADDLE_BENCH_P` to
//! change): saddle (derived equations, fast path, rayon) against a plain single-threaded Rust
//! loop over pattern pairs calling the scalar closed form, against the X Xᵀ product alone
//! (full and symmetric), one layer of the pair map alone, the ten hidden layers fused against
//! one at a time, and the throughput of the vector arcsine next to libm's (the physical limit
//! of the pair loop).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, s};
use saddle::numeric::activation::Activation;
use saddle::numeric::kernel_map::PairKernelMap;
use saddle::numeric::matrix::{gram, matmul};
use saddle::numeric::pair::pair_expectation;
use saddle::numeric::vector_math::{Isa, acos_slice, asin_slice};
use saddle::solve::nngp::{Keep, NngpSettings, PairSet, nngp_kernels};
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

/// (theory, activation, g, gb) of the example; g0 = 1, gb0 = 0.1 in both.
fn network(name: &str) -> (saddle::Theory, Activation, f64, f64) {
    match name {
        "erf" => (
            saddle::compile(
                include_str!("../examples/deep_erf.action"),
                "deep_erf.action",
            )
            .expect("example checks"),
            Activation::Erf {
                s: std::f64::consts::PI.sqrt() / 2.0,
            },
            1.5,
            0.1,
        ),
        _ => (
            saddle::compile(
                include_str!("../examples/deep_relu.action"),
                "deep_relu.action",
            )
            .expect("example checks"),
            Activation::Relu,
            2.0,
            0.1,
        ),
    }
}

/// The reference: C⁰ = g0/d X Xᵀ + gb0, then ten layers C' = g K(C) + gb, one pair at a time.
fn plain_loop(x: &Array2<f64>, act: &Activation, g: f64, gb: f64) -> Array2<f64> {
    let (g0, gb0) = (1.0, 0.1);
    let d = x.ncols() as f64;
    let mut c = matmul(x.view(), x.t()).expect("product") * (g0 / d) + gb0;
    // faer's AVX-512 product can leave this thread's upper vector state dirty; clear it so
    // the reference loop is not slowed down by it.
    saddle::numeric::kernel_map::clear_upper_vector_state();
    let p = c.nrows();
    for _ in 0..DEPTH {
        let mut next = Array2::zeros((p, p));
        for a in 0..p {
            for b in a..p {
                let k: f64 =
                    pair_expectation(act, c[[a, a]], c[[b, b]], c[[a, b]]).expect("closed form");
                next[[a, b]] = g * k + gb;
                next[[b, a]] = g * k + gb;
            }
        }
        c = next;
    }
    c
}

fn networks(c: &mut Criterion) {
    let x = inputs();
    let p = x.nrows();
    let settings = NngpSettings {
        overrides: vec![("L".into(), DEPTH as f64)],
        keep: Keep::Only(vec![(0, vec![DEPTH as i64])]),
        ..NngpSettings::default()
    };
    for name in ["erf", "relu"] {
        let (theory, act, g, gb) = network(name);
        // Same numbers both ways, to the last digits.
        let ours = nngp_kernels(&theory, x.view(), None, &settings).expect("kernels");
        let reference = plain_loop(&x, &act, g, gb);
        let k = &ours.entries[&(0, vec![DEPTH as i64])];
        let worst = k
            .iter()
            .zip(reference.iter())
            .map(|(a, b)| ((a - b) / b.abs().max(1e-300)).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-13,
            "{name}: saddle and the plain loop differ by {worst:e} (relative)"
        );
        eprintln!(
            "{name} P = {p}: worst relative difference from the plain closed-form loop {worst:.2e}"
        );

        let mut group = c.benchmark_group(format!("{name} NNGP depth {DEPTH}, P = {p}"));
        group.sample_size(10);
        group.bench_function("saddle kernel (all cores)", |b| {
            b.iter(|| nngp_kernels(&theory, black_box(x.view()), None, &settings))
        });
        group.bench_function("plain loop, one core", |b| {
            b.iter(|| plain_loop(black_box(&x), &act, g, gb))
        });
        // One layer of the pair map on the layer-9 kernel (all cores).
        let before = nngp_kernels(
            &theory,
            x.view(),
            None,
            &NngpSettings {
                keep: Keep::Only(vec![(0, vec![DEPTH as i64 - 1])]),
                ..settings.clone()
            },
        )
        .expect("kernels");
        let c9 = &before.entries[&(0, vec![DEPTH as i64 - 1])];
        let map = PairKernelMap::new(act.clone(), g, gb);
        let mut out = Array2::zeros((p, p));
        group.throughput(Throughput::Elements((p * (p + 1) / 2) as u64));
        group.bench_function("one layer of the pair map (pairs/s, all cores)", |b| {
            b.iter(|| map.apply_into(black_box(c9.view()), PairSet::All, &mut out))
        });
        // The ten hidden maps on C⁰: fused (one pass, what nngp_kernels runs) against one
        // layer at a time (ten passes over P×P, upper triangles, the last one mirrored).
        let c0 = &nngp_kernels(
            &theory,
            x.view(),
            None,
            &NngpSettings {
                keep: Keep::Only(vec![(0, vec![0])]),
                ..settings.clone()
            },
        )
        .expect("kernels")
        .entries[&(0, vec![0])];
        let maps = vec![map.clone(); DEPTH];
        let mut spare = Array2::zeros((p, p));
        group.throughput(Throughput::Elements((DEPTH * p * (p + 1) / 2) as u64));
        group.bench_function("ten layers fused (pair-layers/s, all cores)", |b| {
            b.iter(|| {
                saddle::numeric::kernel_map::apply_chain_into(
                    &maps,
                    black_box(c0.view()),
                    PairSet::All,
                    &mut out,
                    true,
                )
            })
        });
        group.bench_function("ten layers one by one (pair-layers/s, all cores)", |b| {
            b.iter(|| {
                map.apply_upper_into(black_box(c0.view()), PairSet::All, &mut out)?;
                for layer in 1..DEPTH {
                    let (from, to) = if layer % 2 == 1 {
                        (&out, &mut spare)
                    } else {
                        (&spare, &mut out)
                    };
                    if layer + 1 == DEPTH {
                        map.apply_into(from.view(), PairSet::All, to)?;
                    } else {
                        map.apply_upper_into(from.view(), PairSet::All, to)?;
                    }
                }
                Ok::<(), saddle::numeric::program::ProgramError>(())
            })
        });
        group.finish();
    }
    let mut group = c.benchmark_group(format!("X X^T, P = {p}, d = {}", x.ncols()));
    group.sample_size(10);
    // Useful flops: those of the full product.
    group.throughput(Throughput::Elements((2 * p * p * x.ncols()) as u64));
    group.bench_function("full product (flop/s)", |b| {
        b.iter(|| matmul(black_box(x.view()), x.t()))
    });
    group.bench_function("symmetric product (useful flop/s)", |b| {
        b.iter(|| gram(black_box(x.view())))
    });
    group.finish();
}

/// asin / acos throughput on one core over values spread on [-1, 1] (L1-resident).
fn transcendentals(c: &mut Criterion) {
    let n = 4096;
    let x: Vec<f64> = (0..n)
        .map(|i| -1.0 + 2.0 * (i as f64 + 0.5) / n as f64)
        .collect();
    let mut out = vec![0.0; n];
    let mut group = c.benchmark_group("asin / acos, one core");
    group.throughput(Throughput::Elements(n as u64));
    for isa in Isa::available() {
        group.bench_function(format!("asin {isa:?}"), |b| {
            b.iter(|| asin_slice(isa, black_box(&x), &mut out))
        });
        group.bench_function(format!("acos {isa:?}"), |b| {
            b.iter(|| acos_slice(isa, black_box(&x), &mut out))
        });
    }
    group.bench_function("asin libm (f64::asin)", |b| {
        b.iter(|| {
            for (o, v) in out.iter_mut().zip(black_box(&x)) {
                *o = v.asin();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, transcendentals, networks);
criterion_main!(benches);
