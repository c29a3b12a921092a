//! GP inference at P patterns (default 4000, `SADDLE_BENCH_P`): saddle's fit + predict +
//! log-likelihood against faer's bare Cholesky of the same matrix K + κI.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array1, Array2, s};
use saddle::solve::gp::regress;
use saddle::solve::nngp::NngpSettings;
use saddle::solve::predict::readout_kernel;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let p: usize = std::env::var("SADDLE_BENCH_P")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let n_test = 500;
    let mnist = saddle::data::mnist::Mnist::load_bundled().expect("bundled MNIST");
    let mut x = mnist.images.slice(s![..p + n_test, ..]).to_owned();
    saddle::data::preprocess::standardise_rows(&mut x, "x").expect("no constant image");
    let y = Array2::from_shape_fn((p, 1), |(i, _)| {
        if mnist.labels[i].is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    });
    let theory = saddle::compile(
        include_str!("../examples/deep_erf.action"),
        "deep_erf.action",
    )
    .expect("example");
    let (k_all, noise, _) =
        readout_kernel(&theory, x.view(), Some(1), &NngpSettings::default()).expect("kernel");
    let k = k_all.slice(s![..p, ..p]).to_owned();
    let cross = k_all.slice(s![..p, p..]).to_owned();
    let diag: Array1<f64> = k_all.slice(s![p.., p..]).diag().to_owned();
    drop(k_all);

    let mut group = c.benchmark_group(format!("GP inference, P = {p}"));
    group.sample_size(10);
    group.bench_function("saddle: factor + solve + mean + variance + ln p", |b| {
        b.iter(|| {
            regress(
                black_box(k.clone()),
                y.view(),
                cross.view(),
                diag.view(),
                noise,
                None,
            )
        })
    });
    group.bench_function("faer: bare Cholesky of K + κI", |b| {
        b.iter(|| {
            let m = faer::Mat::<f64>::from_fn(p, p, |i, j| {
                k[[i, j]] + if i == j { noise } else { 0.0 }
            });
            black_box(m.llt(faer::Side::Lower))
        })
    });
    group.bench_function("copy of K alone (the baseline's setup cost)", |b| {
        b.iter(|| black_box(faer::Mat::<f64>::from_fn(p, p, |i, j| k[[i, j]])))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
