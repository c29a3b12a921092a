//! Deep tanh NNGP kernels through the Hermite-expansion fast path against the per-pair
//! Gauss–Hermite path (order 128) on bundled MNIST digits (examples/deep_tanh.action).

use ndarray::{Array2, s};
use rayon::prelude::*;
use saddle::numeric::activation::Activation;
use saddle::numeric::matrix::matmul;
use saddle::numeric::pair_quadrature::pair_expectation_or_quadrature;
use saddle::numeric::quad::GaussHermite;
use saddle::solve::nngp::{NngpSettings, nngp_kernels};

const P: usize = 60;
const DEPTH: i64 = 3;

fn digits() -> Array2<f64> {
    let mnist = saddle::data::mnist::Mnist::load_bundled().unwrap();
    let mut x = mnist.images.slice(s![..P, ..]).to_owned();
    saddle::data::preprocess::standardise_rows(&mut x, "x").unwrap();
    x
}

/// C⁰ = X Xᵀ/d + 0.1, then C' = 1.5 ⟨tanh tanh⟩ + 0.1 per pair by 2-D Gauss–Hermite.
fn per_pair_quadrature(x: &Array2<f64>, order: usize) -> Vec<Array2<f64>> {
    let rule = GaussHermite::new(order).unwrap();
    let mut c = matmul(x.view(), x.t()).unwrap() / x.ncols() as f64 + 0.1;
    let mut layers = Vec::new();
    for _ in 0..DEPTH {
        let rows: Vec<Vec<f64>> = (0..P)
            .into_par_iter()
            .map(|a| {
                (0..P)
                    .map(|b| {
                        let limit = (c[[a, a]] * c[[b, b]]).sqrt();
                        let cab = c[[a, b]].clamp(-limit, limit);
                        let k: f64 = pair_expectation_or_quadrature(
                            &Activation::Tanh,
                            c[[a, a]],
                            c[[b, b]],
                            cab,
                            &rule,
                        )
                        .unwrap();
                        1.5 * k + 0.1
                    })
                    .collect()
            })
            .collect();
        c = Array2::from_shape_fn((P, P), |(a, b)| rows[a][b]);
        layers.push(c.clone());
    }
    layers
}

#[test]
fn deep_tanh_on_mnist_matches_per_pair_quadrature_to_1e9() {
    let x = digits();
    let theory = saddle::compile(
        include_str!("../examples/deep_tanh.action"),
        "deep_tanh.action",
    )
    .unwrap_or_else(|d| panic!("{}", d.render(false)));
    let kernels = nngp_kernels(&theory, x.view(), None, &NngpSettings::default()).unwrap();
    let reference = per_pair_quadrature(&x, 128);
    for (layer, want) in (1..=DEPTH).zip(&reference) {
        let got = &kernels.entries[&(0, vec![layer])];
        let worst = got
            .iter()
            .zip(want)
            .map(|(g, w)| ((g - w) / w.abs()).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-11,
            "layer {layer}: worst relative difference {worst:e}"
        );
        eprintln!("layer {layer}: worst relative difference {worst:.2e}");
    }
}

/// A user function without a closed form in the rule sets, φ(x) = x e^{−x²/2}, takes the same
/// Hermite fast path (it used to go pair by pair through 2-D quadrature: 5 min 50 s at
/// P = 1000, depth 3, against 0.09 s now; that the fast path is taken is tested in
/// `numeric::program`). Its kernel has a closed form all the same, the
/// independent check: for (u, v) ~ 𝒩(0, [[a, c], [c, b]]),
/// ⟨u e^{−u²/2} v e^{−v²/2}⟩ = c / ((1 + a)(1 + b) − c²)^{3/2}.
#[test]
fn user_function_takes_the_fast_path_and_meets_its_closed_form() {
    let x = digits();
    let source = include_str!("../examples/deep_tanh.action")
        .replace("phi(x) = tanh(x)", "phi(x) = x * exp(-x^2 / 2)");
    assert!(
        source.contains("x * exp"),
        "the example defines phi(x) = tanh(x)"
    );
    let theory = saddle::compile(&source, "gaussian_derivative.action")
        .unwrap_or_else(|d| panic!("{}", d.render(false)));
    let kernels = nngp_kernels(&theory, x.view(), None, &NngpSettings::default()).unwrap();
    let mut c = matmul(x.view(), x.t()).unwrap() / x.ncols() as f64 + 0.1;
    for layer in 1..=DEPTH {
        let previous = c.clone();
        c = Array2::from_shape_fn((P, P), |(i, j)| {
            let (a, b, cij) = (previous[[i, i]], previous[[j, j]], previous[[i, j]]);
            1.5 * cij / ((1.0 + a) * (1.0 + b) - cij * cij).powf(1.5) + 0.1
        });
        let got = &kernels.entries[&(0, vec![layer])];
        let worst = got
            .iter()
            .zip(&c)
            .map(|(g, w)| ((g - w) / w.abs()).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-11,
            "layer {layer}: worst relative difference {worst:e}"
        );
        eprintln!("user function, layer {layer}: worst relative difference {worst:.2e}");
    }
}
