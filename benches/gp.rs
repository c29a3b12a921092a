//! GP inference at P patterns (default 4000, `SADDLE_BENCH_P`) with 500 test points: saddle's
//! fit + predict + log-likelihood against faer's bare Cholesky of the same matrix K + κI (the
//! copies of K each side starts from are made outside the timing), and the two Cholesky
//! factorisations alone: saddle's blocked one (`numeric::dense`) against faer's `llt`. The
//! patterns are the bundled digits, then the same digits shifted right by one pixel
//! (P + 500 > 10,000).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ndarray::{Array1, Array2, s};
use saddle::solve::gp::regress;
use saddle::solve::nngp::NngpSettings;
use saddle::solve::predict::readout_kernel;

fn bench(c: &mut Criterion) {
    let p: usize = std::env::var("SADDLE_BENCH_P")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let n_test = 500;
    let mnist = saddle::data::mnist::Mnist::load_bundled().expect("bundled MNIST");
    // Beyond the bundled 10,000 digits, the same digits shifted right by one pixel (new
    // patterns of the same distribution).
    let m = mnist.len();
    let mut x = Array2::from_shape_fn((p + n_test, 784), |(i, k)| {
        let (image, shift) = (i % m, i / m);
        let column = k % 28;
        if column < shift {
            0.0
        } else {
            mnist.images[[image, k - shift]]
        }
    });
    saddle::data::preprocess::standardise_rows(&mut x, "x").expect("no constant image");
    let y = Array2::from_shape_fn((p, 1), |(i, _)| {
        if mnist.labels[i % m].is_multiple_of(2) {
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
    // setups (copies of K) are not timed on either side
    group.bench_function("saddle: factor + solve + mean + variance + ln p", |b| {
        b.iter_batched(
            || k.clone(),
            |kernel| regress(kernel, y.view(), cross.view(), diag.view(), noise, None),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("faer: bare Cholesky of K + κI", |b| {
        b.iter_batched(
            || faer::Mat::<f64>::from_fn(p, p, |i, j| k[[i, j]] + if i == j { noise } else { 0.0 }),
            |m| m.llt(faer::Side::Lower),
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group(format!("Cholesky of K + κI, P = {p}"));
    group.sample_size(10);
    let regularised =
        || faer::Mat::<f64>::from_fn(p, p, |i, j| k[[i, j]] + if i == j { noise } else { 0.0 });
    group.bench_function("saddle: blocked, parallel bands", |b| {
        b.iter_batched(
            regularised,
            |mut m| saddle::numeric::dense::cholesky_lower_in_place(m.as_mut()).map(|()| m),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("faer: llt", |b| {
        b.iter_batched(
            regularised,
            |m| m.llt(faer::Side::Lower),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
