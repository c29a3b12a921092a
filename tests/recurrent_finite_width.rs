//! Finite width for recurrent theories ([`saddle::finite_width::recurrent`]) against
//! independent references.
//!
//! * linear units, T = 3, cross-time blocks and all: the sampled sweeps against the exact
//!   Gaussian fixed point iterated here from THEORY.md §4.3's closed forms over the T·P
//!   trajectory (tilted covariance K(I − 2QK)⁻¹, ∂ ln Z/∂K = (I − 2QK)⁻¹Q), within 4
//!   reported standard errors;
//! * T = 1 is one layer of a deep network: the same numbers as the layered sweeps on the same
//!   normals;
//! * the MAP and the linearised system differ by O(1/N) in N·(C − C*).

mod common;

use common::{path_str, saddle, temp_file};
use ndarray::{Array2, s};
use saddle::finite_width::recurrent::{RecurrentMethod, recurrent_kernels};
use saddle::finite_width::{MapSettings, map_kernels};

const LINEAR: &str = "theory recurrent_linear
param g     = 0.8
param gb    = 0.1
param gu    = 1.0
param kappa = 0.1
param N     = 50
param T: int = 3
data X, Y
kernel C[t, s]  for t in 0..=T, s in 0..=T
conj   Ct[t, s] of C[t, s] for t in 1..=T, s in 1..=T
C[0, 0] = gu / d * X X^T + gb
C[0, s] = gb * ones for s in 1..=T
C[t, 0] = gb * ones for t in 1..=T
action S = sum(t in 1..=T, s in 1..=T, - tr(Ct[t, s]^T C[t, s]) + gb * tr(Ct[t, s]^T ones))
         + N * ln E[ exp(g / N * sum(t in 1..=T, s in 1..=T, h[t-1]^T Ct[t, s] h[s-1]))
                     | h ~ N(0, C) ]
         - 1/2 * tr(Y^T inv(C[T, T] + kappa * I) Y)
         - D/2 * logdet(C[T, T] + kappa * I)
";

fn example(name: &str) -> saddle::Theory {
    let path = format!("{}/examples/{name}.action", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).expect("example");
    saddle::compile(&source, name).expect("checks")
}

fn set(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

/// The first `p` training digits of MNIST 0 vs 3 (standardised per pattern), targets ±1.
fn digits(p: usize) -> (Array2<f64>, Array2<f64>) {
    let split = saddle::data::mnist::Mnist::load_bundled()
        .and_then(|m| m.two_class(0, 3, p, 2))
        .and_then(|s| s.standardised())
        .expect("bundled digits");
    (split.x_train, split.y_train)
}

fn inverse(m: &Array2<f64>) -> Array2<f64> {
    let p = m.nrows();
    let a = faer::Mat::from_fn(p, p, |i, j| m[[i, j]]);
    let inv = faer::linalg::solvers::DenseSolveCore::inverse(&a.partial_piv_lu());
    Array2::from_shape_fn((p, p), |(i, j)| inv[(i, j)])
}

fn sym(m: &Array2<f64>) -> Array2<f64> {
    (m + &m.t()) * 0.5
}

/// The exact MAP of the linear recurrent network: fields C[t, s] and conjugates C̃[t, s]
/// (t, s = 1…T, as (T·P)² block matrices), iterated to a fixed point.
fn linear_fixed_point(
    x: &Array2<f64>,
    y: &Array2<f64>,
    (g, gb, n, kappa, times): (f64, f64, f64, f64, usize),
) -> (Array2<f64>, Array2<f64>) {
    let p = x.nrows();
    let d = x.ncols() as f64;
    let c00 = x.dot(&x.t()) / d + gb;
    let tp = times * p;
    // C over times 1…T, C̃ over times 1…T
    let mut c = Array2::<f64>::from_elem((tp, tp), gb);
    let mut ct = Array2::<f64>::zeros((tp, tp));
    for sweep in 0..5000 {
        // the first T + 1 sweeps reach the NNGP point (C̃ = 0): causal in time
        let warm = sweep <= times;
        // K over times 0…T−1: time 0 from the inputs, times ≥ 1 from C
        let mut k = Array2::<f64>::from_elem((tp, tp), gb);
        k.slice_mut(s![..p, ..p]).assign(&c00);
        k.slice_mut(s![p.., p..])
            .assign(&c.slice(s![..tp - p, ..tp - p]));
        let q = &ct * (g / n);
        let v = inverse(&(Array2::eye(tp) - &(q.dot(&k) * 2.0)));
        let sigma = sym(&k.dot(&v));
        let new_c = &sigma * g + gb;
        let grad = sym(&v.dot(&q));
        let mut new_ct = Array2::<f64>::zeros((tp, tp));
        // N ∂ln Z/∂K[t, s] feeds C̃[t, s] for t, s ≤ T − 1 (K's blocks 1…T−1)
        new_ct
            .slice_mut(s![..tp - p, ..tp - p])
            .assign(&(&grad.slice(s![p.., p..]) * n));
        let last = c.slice(s![tp - p.., tp - p..]).to_owned();
        let a = inverse(&(&last + &(Array2::<f64>::eye(p) * kappa)));
        let data = (a.dot(y).dot(&y.t()).dot(&a) - &a * y.ncols() as f64) * 0.5;
        let mut block = new_ct.slice_mut(s![tp - p.., tp - p..]);
        block += &data;
        if warm {
            c = new_c;
            continue;
        }
        let change = (&new_c - &c).mapv(f64::abs).sum() + (&new_ct - &ct).mapv(f64::abs).sum();
        c = &c * 0.5 + &new_c * 0.5;
        ct = &ct * 0.5 + &new_ct * 0.5;
        if change < 1e-13 {
            break;
        }
    }
    (c, ct)
}

#[test]
fn linear_recurrent_map_matches_the_exact_gaussian_fixed_point() {
    let theory = saddle::compile(LINEAR, "recurrent_linear.action").expect("checks");
    let (x, y) = digits(4);
    let (g, gb, n, kappa, times) = (0.8, 0.1, 50.0, 0.1, 3);
    let (c, ct) = linear_fixed_point(&x, &y, (g, gb, n, kappa, times));
    let settings = MapSettings {
        samples: 40_000,
        ..MapSettings::default()
    };
    let map = recurrent_kernels(&theory, x.view(), y.view(), RecurrentMethod::Map, &settings)
        .expect("the MAP");
    let p = x.nrows();
    let mut worst: f64 = 0.0;
    for layer in &map.layers {
        // `C[t,s]`
        let idx: Vec<usize> = layer.name[2..layer.name.len() - 1]
            .split(',')
            .map(|v| v.parse().expect("index"))
            .collect();
        let (t, u) = (idx[0] - 1, idx[1] - 1);
        let want = c.slice(s![t * p..(t + 1) * p, u * p..(u + 1) * p]);
        let want_ct = ct.slice(s![t * p..(t + 1) * p, u * p..(u + 1) * p]);
        let se = layer.kernel_error.as_ref().expect("standard errors");
        let se_ct = layer.conjugate_error.as_ref().expect("standard errors");
        for ((i, j), &got) in layer.kernel.indexed_iter() {
            // in N·(C − C*): the shift is O(1), its error the reported one
            let z = (got - want[[i, j]]) / (se[[i, j]] + 1e-12);
            worst = worst.max(z.abs());
            assert!(
                z.abs() < 4.0,
                "{}[{i},{j}]: sampled {got} ± {}, exact {}",
                layer.name,
                se[[i, j]],
                want[[i, j]]
            );
            let got = layer.conjugate[[i, j]];
            let z = (got - want_ct[[i, j]]) / (se_ct[[i, j]] + 1e-12);
            assert!(
                z.abs() < 4.0 || (got - want_ct[[i, j]]).abs() < 1e-10,
                "{}[{i},{j}]: sampled {got} ± {}, exact {}",
                layer.conjugate_name,
                se_ct[[i, j]],
                want_ct[[i, j]]
            );
        }
        // the shift itself is resolved: many standard errors away from the NNGP
        if (t, u) == (times - 1, times - 1) {
            let shift = (&layer.kernel - &layer.nngp).mapv(f64::abs).sum();
            assert!(shift > 8.0 * se.sum(), "{}: shift {shift}", layer.name);
        }
    }
    assert!(worst > 0.0);
}

#[test]
fn one_step_is_one_layer_of_a_deep_network() {
    let (x, y) = digits(6);
    let settings = |pairs: &[(&str, f64)]| MapSettings {
        overrides: set(pairs),
        samples: 8000,
        replicas: 0,
        ..MapSettings::default()
    };
    let recurrent = example("recurrent_erf");
    let deep = example("deep_erf");
    let r = recurrent_kernels(
        &recurrent,
        x.view(),
        y.view(),
        RecurrentMethod::Map,
        &settings(&[("T", 1.0), ("N", 30.0), ("gb", 0.2)]),
    )
    .expect("recurrent");
    let d = map_kernels(
        &deep,
        x.view(),
        y.view(),
        None,
        &settings(&[("L", 1.0), ("N", 30.0), ("gb", 0.2), ("gb0", 0.2)]),
    )
    .expect("deep");
    let (rl, dl) = (&r.layers[0], &d.layers[0]);
    assert_eq!((rl.name.as_str(), dl.name.as_str()), ("C[1,1]", "C[1]"));
    let scale = dl.kernel.mapv(f64::abs).sum();
    let diff = (&rl.kernel - &dl.kernel).mapv(f64::abs).sum();
    assert!(diff < 1e-8 * scale, "{diff}");
    let diff = (&rl.conjugate - &dl.conjugate).mapv(f64::abs).sum();
    assert!(diff < 1e-7 * dl.conjugate.mapv(f64::abs).sum(), "{diff}");
    // and the shift is a real one
    assert!((&dl.kernel - &dl.nngp).mapv(f64::abs).sum() > 1e-3 * scale);
}

#[test]
fn map_and_linearised_system_differ_by_one_over_n() {
    let theory = example("recurrent_erf");
    let (x, y) = digits(4);
    let mut gaps = Vec::new();
    for n in [100.0, 200.0, 400.0, 800.0] {
        let settings = MapSettings {
            overrides: set(&[("N", n), ("T", 3.0)]),
            samples: 6000,
            replicas: 0,
            ..MapSettings::default()
        };
        let solve = |method| {
            recurrent_kernels(&theory, x.view(), y.view(), method, &settings).expect("solves")
        };
        let (map, linear) = (solve(RecurrentMethod::Map), solve(RecurrentMethod::Linear));
        let last = map.layers.len() - 1;
        let (a, b) = (&map.layers[last], &linear.layers[last]);
        assert_eq!(a.name, "C[3,3]");
        // N·(C − C*) of both, and their difference
        let shift = (&a.kernel - &a.nngp).mapv(f64::abs).sum() * n;
        let gap = (&a.kernel - &b.kernel).mapv(f64::abs).sum() * n;
        assert!(gap < 0.5 * shift, "N = {n}: gap {gap}, shift {shift}");
        gaps.push(gap);
    }
    // the same normals at every N: the gap halves with each doubling of N
    for w in gaps.windows(2) {
        let ratio = w[0] / w[1];
        assert!((1.6..2.5).contains(&ratio), "{gaps:?}");
    }
}

#[test]
fn cli_solves_recurrent_theories_and_refuses_what_it_cannot() {
    let (x, y) = digits(4);
    let csv = |m: &Array2<f64>| {
        m.rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let xf = temp_file("rfw_x.csv", &csv(&x));
    let yf = temp_file("rfw_y.csv", &csv(&y));
    let args = |method: &'static str| {
        vec![
            "solve",
            "examples/recurrent_erf.action",
            "--x",
            path_str(&xf),
            "--y",
            path_str(&yf),
            "--method",
            method,
            "--samples",
            "4000",
            "--json",
        ]
    };
    for method in ["map", "linear"] {
        let (code, out, err) = saddle(&args(method));
        assert_eq!(code, 0, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(json["method"].as_str(), Some(method));
        for name in ["C[1,2]", "C[3,3]"] {
            assert!(json["kernels"][name].is_array(), "{name}: {json}");
            assert!(json["standard_errors"][name].is_array(), "{name}");
        }
        assert_eq!(json["readout"].as_str(), Some("C[3,3]"));
        assert!(json["log_marginal_likelihood"].as_f64().is_some());
    }
    let mut quadrature = args("map");
    quadrature.extend(["--expectations", "quadrature"]);
    let (code, _, err) = saddle(&quadrature);
    assert_eq!(code, 1);
    assert!(err.contains("quadrature"), "{err}");
    let mut test = args("map");
    test.extend(["--x-test", path_str(&xf)]);
    let (code, _, err) = saddle(&test);
    assert_eq!(code, 1);
    assert!(err.contains("--x-test"), "{err}");
}
