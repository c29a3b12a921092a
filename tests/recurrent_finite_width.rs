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

use common::{csv, digits, example, path_str, saddle, set, temp_file};
use ndarray::{Array2, s};
use saddle::finite_width::recurrent::{RecurrentMethod, recurrent_kernels};
use saddle::finite_width::{MapSettings, SaddleIteration, map_kernels};

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
         - 1/2 * tr(Y^T inv(READOUT + kappa * I) Y)
         - D/2 * logdet(READOUT + kappa * I)
";

/// The linear recurrent theory read out at `readout` (a kernel expression).
fn linear_theory(readout: &str) -> saddle::Theory {
    let source = LINEAR.replace("READOUT", readout);
    saddle::compile(&source, "recurrent_linear.action").expect("checks")
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
/// (t, s = 1…T, as (T·P)² block matrices), iterated to a fixed point; the readout kernel is
/// the mean of the equal-time blocks at the times `readout`.
fn linear_fixed_point(
    x: &Array2<f64>,
    y: &Array2<f64>,
    (g, gb, n, kappa, times): (f64, f64, f64, f64, usize),
    readout: &[usize],
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
        // the data term reads the training rows (the first y.nrows()); test rows have no
        // conjugate entries
        let tr = y.nrows();
        let share = 1.0 / readout.len() as f64;
        let mut read = Array2::<f64>::eye(tr) * kappa;
        for &t in readout {
            let o = (t - 1) * p;
            read += &(&c.slice(s![o..o + tr, o..o + tr]) * share);
        }
        let a = inverse(&read);
        let data = (a.dot(y).dot(&y.t()).dot(&a) - &a * y.ncols() as f64) * (0.5 * share);
        for &t in readout {
            let o = (t - 1) * p;
            let mut block = new_ct.slice_mut(s![o..o + tr, o..o + tr]);
            block += &data;
        }
        for (i, j) in (0..tp).flat_map(|i| (0..tp).map(move |j| (i, j))) {
            if i % p >= tr || j % p >= tr {
                new_ct[[i, j]] = 0.0;
            }
        }
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
    linear_against_exact("C[T, T]", &[3]);
}

/// A readout combining two times: the data pull on both blocks.
#[test]
fn a_readout_of_two_times_matches_the_exact_fixed_point() {
    linear_against_exact("(C[T-1, T-1] + C[T, T]) / 2", &[2, 3]);
}

/// Test patterns join every block without conjugate entries: the exact joint fixed point.
#[test]
fn test_patterns_of_a_linear_recurrent_network_match_the_exact_fixed_point() {
    linear_against_exact_with("C[T, T]", &[3], 2, 100.0);
}

fn linear_against_exact(readout: &str, times_read: &[usize]) {
    linear_against_exact_with(readout, times_read, 0, 50.0);
}

fn linear_against_exact_with(readout: &str, times_read: &[usize], tests: usize, n: f64) {
    let theory = linear_theory(readout);
    let (x_all, y_all) = digits(4 + tests);
    let train = 4;
    let (x, y) = (
        x_all.slice(s![..train, ..]).to_owned(),
        y_all.slice(s![..train, ..]).to_owned(),
    );
    let x_test = x_all.slice(s![train.., ..]).to_owned();
    let (g, gb, kappa, times) = (0.8, 0.1, 0.1, 3);
    let (c, ct) = linear_fixed_point(&x_all, &y, (g, gb, n, kappa, times), times_read);
    let settings = MapSettings {
        overrides: set(&[("N", n)]),
        samples: 40_000,
        // with R replicas the standard errors are estimates: z is t-distributed with R − 1
        // degrees of freedom, whose tails at 15 put |z| > 4 within reach over many entries
        replicas: 32,
        ..MapSettings::default()
    };
    let test_view = (tests > 0).then(|| x_test.view());
    let map = recurrent_kernels(
        &theory,
        x.view(),
        y.view(),
        test_view,
        RecurrentMethod::Map,
        &settings,
    )
    .expect("the MAP");
    let x = x_all;
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
        if t == u && times_read.contains(&(t + 1)) {
            let shift = (&layer.kernel - &layer.nngp).mapv(f64::abs).sum();
            assert!(shift > 8.0 * se.sum(), "{}: shift {shift}", layer.name);
        }
    }
    assert!(worst.is_finite());
    if tests > 0 {
        // the prediction is the GP's with the adapted readout kernel
        let readout = map
            .layers
            .iter()
            .find(|l| l.name == "C[3,3]")
            .expect("C[3,3]");
        let k = &readout.kernel;
        let fit = inverse(&(&k.slice(s![..train, ..train]) + &(Array2::<f64>::eye(train) * kappa)));
        let mean = k.slice(s![train.., ..train]).dot(&fit).dot(&y);
        let prediction = map.prediction.as_ref().expect("a prediction");
        assert_eq!(prediction.mean.dim(), (tests, 1));
        let diff = (&prediction.mean - &mean).mapv(f64::abs).sum();
        assert!(diff < 1e-9, "{diff}");
        assert!(prediction.mean_error.is_some() && prediction.variance_error.is_some());
        assert!(
            prediction
                .variance
                .iter()
                .all(|v| v.is_finite() && *v > 0.0)
        );
    }
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
        None,
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
fn newton_krylov_and_anderson_reach_the_same_recurrent_map() {
    // the recurrent sweeps through `fixed_point`'s Newton–Krylov branch: the same
    // deterministic map (common random numbers), so the same fixed point far below the
    // Monte Carlo error
    let theory = example("recurrent_erf");
    let (x, y) = digits(4);
    let solve = |iteration| {
        let settings = MapSettings {
            overrides: set(&[("N", 50.0), ("T", 3.0)]),
            samples: 6000,
            replicas: 0,
            tolerance: 1e-11,
            iteration,
            ..MapSettings::default()
        };
        recurrent_kernels(
            &theory,
            x.view(),
            y.view(),
            None,
            RecurrentMethod::Map,
            &settings,
        )
        .expect("solves")
    };
    let (anderson, newton) = (
        solve(SaddleIteration::Anderson),
        solve(SaddleIteration::NewtonKrylov),
    );
    assert!(newton.residual <= 1e-11, "{}", newton.residual);
    for (a, b) in anderson.layers.iter().zip(&newton.layers) {
        let shift = (&a.kernel - &a.nngp).mapv(f64::abs).sum();
        let gap = (&a.kernel - &b.kernel).mapv(f64::abs).sum();
        assert!(
            gap <= 1e-7 * shift.max(1e-3),
            "{}: {gap:e} of {shift:e}",
            a.name
        );
    }
    let last = &anderson.layers[anderson.layers.len() - 1];
    assert!((&last.kernel - &last.nngp).mapv(f64::abs).sum() > 1e-3);
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
            recurrent_kernels(&theory, x.view(), y.view(), None, method, &settings).expect("solves")
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
fn leading_order_conjugate_of_the_readout_is_the_data_gradient() {
    // to leading order the readout block's conjugate is ∂S_D/∂C at the NNGP point,
    // ½(A Y Yᵀ A − D·A) with A = (C*[T,T] + κI)⁻¹ (THEORY.md §4.3 (O)), whatever the samples
    let theory = example("recurrent_erf");
    let (x, y) = digits(4);
    let settings = MapSettings {
        overrides: set(&[("N", 100.0), ("T", 3.0)]),
        samples: 4000,
        replicas: 0,
        ..MapSettings::default()
    };
    let solve = |method| {
        recurrent_kernels(&theory, x.view(), y.view(), None, method, &settings).expect("solves")
    };
    let (leading, full) = (
        solve(RecurrentMethod::LinearLeading),
        solve(RecurrentMethod::Linear),
    );
    let last = leading.layers.len() - 1;
    let readout = &leading.layers[last];
    assert_eq!(readout.name, "C[3,3]");
    let kappa = 0.1;
    let a = inverse(&(&readout.nngp + &(Array2::<f64>::eye(4) * kappa)));
    let ay = a.dot(&y);
    let gradient = (ay.dot(&ay.t()) - &a * y.ncols() as f64) * 0.5;
    let gap = (&readout.conjugate - &gradient).mapv(f64::abs).sum();
    assert!(gap < 1e-9 * gradient.mapv(f64::abs).sum(), "gap {gap}");
    // the full system adds H·δC: a different conjugate, by O(P/N)
    let full_gap = (&full.layers[last].conjugate - &gradient)
        .mapv(f64::abs)
        .sum();
    assert!(
        full_gap > 1e-4 * gradient.mapv(f64::abs).sum(),
        "{full_gap}"
    );
}

#[test]
fn cli_solves_recurrent_theories_and_refuses_what_it_cannot() {
    let (x, y) = digits(4);
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
    // test patterns: the MAP predicts with the adapted readout kernel
    let mut test = args("map");
    test.extend(["--x-test", path_str(&xf), "--y-test", path_str(&yf)]);
    let (code, out, err) = saddle(&test);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["prediction"]["mean"].as_array().map(Vec::len), Some(4));
    assert!(json["test_mse"].as_f64().is_some_and(f64::is_finite));
    assert_eq!(json["kernels"]["C[3,3]"].as_array().map(Vec::len), Some(8));
    // the linearised system reports the training kernels only
    let mut test = args("linear");
    test.extend(["--x-test", path_str(&xf)]);
    let (code, _, err) = saddle(&test);
    assert_eq!(code, 1);
    assert!(err.contains("--x-test"), "{err}");
    // units with jumps are refused, naming why
    let source = LINEAR
        .replace("READOUT", "C[T, T]")
        .replace("h[t-1]^T", "sign(h[t-1])^T")
        .replace("Ct[t, s] h[s-1]", "Ct[t, s] sign(h[s-1])");
    let signs = saddle::compile(&source, "recurrent_sign.action").expect("checks");
    let err = recurrent_kernels(
        &signs,
        x.view(),
        y.view(),
        None,
        RecurrentMethod::Map,
        &MapSettings::default(),
    )
    .expect_err("jumps");
    assert!(err.to_string().contains("jumps"), "{err}");

    // compare: the simulated posterior less prior mean beside the theories' shift
    let compare = |json: bool| {
        let mut args = vec![
            "compare",
            "examples/recurrent_erf.action",
            "--x",
            path_str(&xf),
            "--y",
            path_str(&yf),
            "--set",
            "N=40",
            "--samples",
            "100",
        ];
        if json {
            args.push("--json");
        }
        saddle(&args)
    };
    let (code, out, err) = compare(true);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    for key in [
        "kernels",
        "standard_errors",
        "prior",
        "prior_standard_errors",
        "nngp",
        "linear",
        "map",
    ] {
        assert!(json[key]["C[2,3]"].is_array(), "{key}: {json}");
    }
    assert_eq!(json["simulation"]["prior_draws"].as_u64(), Some(400));
    let (code, out, err) = compare(false);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("posterior mean − prior mean"), "{out}");
    assert!(out.contains("C[3,3]") && out.contains("MAP"), "{out}");
}

/// The theory against the networks it describes: recurrent erf networks of 500 units on four
/// digits, their posterior sampled (elliptical slice sampling of the drive and the one weight
/// matrix). What the data do is the posterior mean less the prior mean (the prior mean of a
/// recurrent kernel is itself shifted by O(1/N)); to O(1/N) relative it is the MAP's shift
/// from the NNGP. Checked on the readout kernel's target-weighted off-diagonal entry and on
/// every entry, within 4 combined standard errors; the shift itself is resolved (the NNGP is
/// rejected), and the linearised system's shift falls short of it by O(1/N).
#[test]
fn recurrent_map_matches_simulated_networks_at_n_500() {
    use rand::SeedableRng;
    use saddle::simulate::posterior::{
        PosteriorSettings, Targets, sample_posterior, target_weighted_off_diagonal,
    };
    use saddle::simulate::{RecurrentNetwork, RecurrentSimulator};

    let theory = example("recurrent_erf");
    let (x, y) = digits(4);
    let products = y.dot(&y.t());
    let n = 500.0;
    let set = set(&[("N", n)]);
    let params = theory.bind(&set).expect("params");
    let network = RecurrentNetwork::new(&theory, &params).expect("a recurrent network");
    let sim = RecurrentSimulator::new(&network, x.view()).expect("a simulator");
    let key = (network.family, vec![3, 3]);

    // the prior: independent networks
    let draws = 2000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut prior_sum = Array2::<f64>::zeros((4, 4));
    let mut prior_squares = Array2::<f64>::zeros((4, 4));
    let mut aligned = Vec::with_capacity(draws);
    for _ in 0..draws {
        let k = sim.draw_with(&mut rng).expect("a draw").entries[&key].clone();
        aligned.push(target_weighted_off_diagonal(k.view(), products.view()));
        prior_squares += &k.mapv(|v| v * v);
        prior_sum += &k;
    }
    let m = draws as f64;
    let prior_mean = &prior_sum / m;
    let prior_error =
        ((&prior_squares / m - &prior_mean * &prior_mean) * (m / (m - 1.0)) / m).mapv(f64::sqrt);
    let aligned_mean = aligned.iter().sum::<f64>() / m;
    let aligned_error = (aligned
        .iter()
        .map(|v| (v - aligned_mean).powi(2))
        .sum::<f64>()
        / (m - 1.0)
        / m)
        .sqrt();

    // the posterior
    let settings = PosteriorSettings {
        chains: 4,
        samples: 600,
        burn_in: 300,
        thin: 1,
        seed: 5,
    };
    let posterior =
        sample_posterior(&sim, Targets { y: y.view() }, settings, &|_| {}).expect("samples");
    let (_, post) = posterior
        .entries
        .iter()
        .find(|(k, _)| *k == key)
        .expect("C[3,3]");
    let (_, post_aligned) = posterior
        .summaries
        .iter()
        .find(|(name, _)| name == "C[3,3] target-weighted off-diagonal")
        .expect("summary");
    for (_, s) in &posterior.summaries {
        assert!(s.rhat < 1.1, "R-hat {}", s.rhat);
    }

    // the theory
    let solve = |method| {
        let settings = MapSettings {
            overrides: set.clone(),
            ..MapSettings::default()
        };
        recurrent_kernels(&theory, x.view(), y.view(), None, method, &settings).expect("solves")
    };
    let (map, linear) = (solve(RecurrentMethod::Map), solve(RecurrentMethod::Linear));
    let last = |s: &saddle::finite_width::MapSolution| s.layers.last().cloned().expect("C[3,3]");
    let (map, linear) = (last(&map), last(&linear));
    assert_eq!(map.name, "C[3,3]");
    let map_error = map.kernel_error.clone().expect("standard errors");

    // every entry
    for ((i, j), &mean) in post.mean.indexed_iter() {
        let shift = mean - prior_mean[[i, j]];
        let theory_shift = map.kernel[[i, j]] - map.nngp[[i, j]];
        let error = (post.std_error[[i, j]].powi(2)
            + prior_error[[i, j]].powi(2)
            + map_error[[i, j]].powi(2))
        .sqrt();
        let z = (shift - theory_shift) / error;
        assert!(
            z.abs() < 4.0,
            "C[3,3][{i},{j}]: N·shift simulated {} ± {}, MAP {}",
            n * shift,
            n * error,
            n * theory_shift
        );
    }
    // the alignment with the task
    let summary = |k: &Array2<f64>| target_weighted_off_diagonal(k.view(), products.view());
    let shift = post_aligned.mean - aligned_mean;
    let error = (post_aligned.std_error.powi(2) + aligned_error.powi(2)).sqrt();
    let theory_shift = summary(&map.kernel) - summary(&map.nngp);
    let linear_shift = summary(&linear.kernel) - summary(&map.nngp);
    let z = (shift - theory_shift) / error;
    assert!(
        z.abs() < 4.0,
        "N·shift of the alignment: simulated {} ± {}, MAP {}",
        n * shift,
        n * error,
        n * theory_shift
    );
    assert!(
        shift > 4.0 * error,
        "the data's pull is resolved: {shift} ± {error}"
    );
    // the linearised system: the same sign, short of the MAP by O(1/N) (≈ 3 % at N = 500)
    let short = 1.0 - linear_shift / theory_shift;
    assert!(
        (0.0..0.1).contains(&short),
        "{linear_shift} vs {theory_shift}"
    );
}
