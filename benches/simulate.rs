//! The finite-network sampler (`saddle simulate`): one draw of every field (a forward pass of
//! the network: Cholesky, N×P×P product, φ and the Gram of each layer) and 40 steps of
//! elliptical slice sampling (two chains × 20 recorded draws), on P = 50 standardised MNIST
//! digits, deep erf network, L = 2, N = 200 — the setting of the performance target.
//! `python3 benches/numpy_simulate.py` runs the same sampler in numpy for the ratio.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use saddle::simulate::posterior::{PosteriorSettings, Targets, sample_posterior};
use saddle::simulate::{Network, Simulator};

fn bench(c: &mut Criterion) {
    let p = 50;
    let mnist = saddle::data::mnist::Mnist::load_bundled().expect("bundled MNIST");
    let mut x = Array2::from_shape_fn((p, 784), |(i, k)| mnist.images[[i, k]]);
    saddle::data::preprocess::standardise_rows(&mut x, "x").expect("no constant image");
    let y = Array2::from_shape_fn((p, 1), |(i, _)| {
        if mnist.labels[i].is_multiple_of(2) {
            1.0
        } else {
            -1.0
        }
    });
    let source = std::fs::read_to_string("examples/deep_erf.action").expect("example");
    let theory = saddle::compile(&source, "deep_erf.action").expect("checks");
    let params = theory
        .bind(&[("L".into(), 2.0), ("N".into(), 200.0)])
        .expect("binds");
    let network = Network::new(&theory, &params).expect("network");
    let simulator = Simulator::new(&network, x.view()).expect("simulator");
    let z = simulator.standard_normals(&mut StdRng::seed_from_u64(1));
    c.bench_function("simulate: one draw, P = 50, N = 200, L = 2", |b| {
        b.iter(|| simulator.draw(&z).expect("draw"))
    });
    let settings = PosteriorSettings {
        chains: 2,
        samples: 20,
        burn_in: 0,
        thin: 1,
        seed: 3,
    };
    let run = || {
        sample_posterior(&simulator, Targets { y: y.view() }, settings, &|_| {}).expect("samples")
    };
    let once = run();
    eprintln!(
        "elliptical slice sampling: {:.2} likelihood evaluations per step",
        once.evaluations_per_step
    );
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.bench_function("ESS: 2 chains × 20 steps, P = 50, N = 200, L = 2", |b| {
        b.iter(run)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
