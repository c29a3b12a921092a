//! Finite-width solvers on T9 (THEORY.md §4.8: unit-slope erf, L = 2, P = 2): the linearised
//! fluctuation system (derived blocks evaluated by 2-dimensional quadrature, dense solve) and
//! the full saddle point (Newton with the AD Hessian of the numerically evaluated action).

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::array;
use saddle::solve::fluctuation::{FluctuationSettings, linear_response};
use saddle::solve::saddle_point::{SaddleSettings, saddle_point};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let theory = saddle::compile(
        include_str!("../examples/deep_erf.action"),
        "deep_erf.action",
    )
    .expect("example");
    // C⁽⁰⁾ = g0/d X Xᵀ = [[1, 0.6], [0.6, 1.5]] (T1)
    let x = array![[1.0, 0.0], [0.6, (1.5f64 - 0.36).sqrt()]];
    let y = array![[1.0], [-1.0]];
    let overrides = |n: f64| -> Vec<(String, f64)> {
        vec![
            ("L".into(), 2.0),
            ("N".into(), n),
            ("g0".into(), 2.0),
            ("gb0".into(), 0.0),
        ]
    };
    let mut group = c.benchmark_group("finite width, T9 (P = 2, L = 2, 64 nodes per dimension)");
    group.sample_size(10);
    group.bench_function("linear system, N = 100", |b| {
        let settings = FluctuationSettings {
            overrides: overrides(100.0),
            ..FluctuationSettings::default()
        };
        b.iter(|| linear_response(&theory, x.view(), Some(y.view()), black_box(&settings)))
    });
    for n in [10.0, 1000.0] {
        group.bench_function(format!("full saddle point, N = {n}"), |b| {
            let settings = SaddleSettings {
                overrides: overrides(n),
                ..SaddleSettings::default()
            };
            b.iter(|| saddle_point(&theory, x.view(), Some(y.view()), black_box(&settings)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
