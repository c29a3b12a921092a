//! The finite-network sampler (`saddle simulate`): one draw of every field (a forward pass of
//! the network: Cholesky, N×P×P product, φ and the Gram of each layer) and 40 steps of
//! elliptical slice sampling (two chains × 20 recorded draws), on P = 50 standardised MNIST
//! digits, deep erf network, L = 2, N = 200 — the setting of the performance target.
//! `python3 benches/numpy_simulate.py` runs the same sampler in numpy for the ratio.
//!
//! Langevin dynamics of the weights (`--sampler langevin`): one step (forward pass, gradient
//! by backpropagation, the noisy update) at P = 200 digits, d = 784, N = 500, L = 2 — the
//! issue's setting; `python3 benches/numpy_langevin.py` is the same update in numpy.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use saddle::simulate::langevin::{Langevin, WeightNetwork};
use saddle::simulate::posterior::{PosteriorSampler, PosteriorSettings, Targets, sample_posterior};
use saddle::simulate::{Network, Simulator};

/// P standardised MNIST digits and ±1 targets (even / odd).
fn digits(p: usize) -> (Array2<f64>, Array2<f64>) {
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
    (x, y)
}

fn bench(c: &mut Criterion) {
    let (x, y) = digits(50);
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

fn langevin(c: &mut Criterion) {
    let (x, y) = digits(200);
    let source = std::fs::read_to_string("examples/deep_erf.action").expect("example");
    let theory = saddle::compile(&source, "deep_erf.action").expect("checks");
    let params = theory
        .bind(&[("L".into(), 2.0), ("N".into(), 500.0)])
        .expect("binds");
    let network = Network::new(&theory, &params).expect("network");
    let simulator = Simulator::new(&network, x.view()).expect("simulator");
    let weights = WeightNetwork::new(&simulator).expect("weights");
    let targets = Targets { y: y.view() };
    let sampler = Langevin::new(weights, targets, None, 0).expect("sampler");
    let mut rng = StdRng::seed_from_u64(2);
    let mut chain = sampler.start(targets, &mut rng).expect("a chain");
    let mut group = c.benchmark_group("langevin");
    group.sample_size(20);
    group.bench_function(
        "one step (forward + gradient + update), P = 200, N = 500, L = 2",
        |b| b.iter(|| chain.advance(&mut rng).expect("a step")),
    );
    group.finish();
}

criterion_group!(benches, bench, langevin);
criterion_main!(benches);
