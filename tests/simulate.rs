//! `saddle simulate`: the sampled finite networks against exact results.
//!
//! * prior, deep erf: N·Var and the 1/N mean shift of every layer's kernel against the
//!   one-loop theory of THEORY.md T8, within 4 standard errors;
//! * prior, binary units: layer 1's mean activity is unbiased and N·Var(m) = p(1 − p);
//! * posterior, deep linear L = 1 (THEORY.md §5.2): the predictive mean k*ᵀK⁻¹y and variance
//!   E[u|y](k** − k*ᵀK⁻¹k*) of the Gamma scale mixture (u | y ~ GIG), within 4 s.e.;
//! * seeds reproduce bit for bit on any number of threads; bad settings are named errors.

mod common;

use common::{csv, path_str, saddle, t1_inputs, temp_file};
use ndarray::{Array2, array};
use saddle::simulate::posterior::{PosteriorSettings, Targets, sample_posterior};
use saddle::simulate::prior::sample_prior;
use saddle::simulate::{Network, Simulator};

fn theory(name: &str, overrides: &[(&str, f64)]) -> (saddle::Theory, Vec<f64>) {
    let path = format!("{}/examples/{name}.action", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).expect("example");
    let theory = saddle::compile(&source, name).expect("checks");
    let overrides: Vec<(String, f64)> =
        overrides.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    let params = theory.bind(&overrides).expect("binds");
    (theory, params)
}

fn no_progress(_: u64) {}

#[test]
fn deep_erf_prior_fluctuations_and_shift_match_t8() {
    let n = 50.0;
    let (theory, params) = theory("deep_erf", &[("L", 3.0), ("N", n), ("gb0", 0.0)]);
    let network = Network::new(&theory, &params).unwrap();
    let x = t1_inputs();
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let prior = sample_prior(&simulator, 40_000, 8, &no_progress).unwrap();
    // T8: N·Var and N·shift of C⁽ˡ⁾ at entries 11, 12, 22 (one-loop theory).
    let variance = [
        [0.250808, 0.411606, 0.282941],
        [0.253581, 0.447838, 0.265335],
        [0.247590, 0.453751, 0.252500],
    ];
    let shift = [
        [0.0, 0.0, 0.0],
        [-0.058633, -0.015150, -0.052869],
        [-0.097137, -0.020334, -0.090317],
    ];
    // NNGP C⁽ˡ⁾ of T1 (erf(√π x/2)).
    let nngp = [
        [0.72771607, 0.41191432, 0.84318640],
        [0.63724070, 0.38086324, 0.67893239],
        [0.60026876, 0.38516726, 0.61782974],
    ];
    let c = theory.field("C").unwrap();
    for l in 1..=3 {
        let (_, stats) = prior
            .entries
            .iter()
            .find(|(k, _)| *k == (c, vec![l as i64]))
            .expect("layer");
        for (e, &(i, j)) in [(0, 0), (0, 1), (1, 1)].iter().enumerate() {
            let nvar = n * stats.variance[[i, j]];
            let nvar_se = n * stats.variance_std_error[[i, j]];
            assert!(
                (nvar - variance[l - 1][e]).abs() < 4.0 * nvar_se,
                "C[{l}] {i}{j}: N·Var {nvar} ± {nvar_se} vs {}",
                variance[l - 1][e]
            );
            let nshift = n * (stats.mean[[i, j]] - nngp[l - 1][e]);
            let nshift_se = n * stats.std_error[[i, j]];
            assert!(
                (nshift - shift[l - 1][e]).abs() < 4.0 * nshift_se,
                "C[{l}] {i}{j}: N·shift {nshift} ± {nshift_se} vs {}",
                shift[l - 1][e]
            );
            // the error estimates mean something: 40 000 draws of a variance of ≈ 0.3/N
            assert!(nshift_se < 0.03 && nvar_se < 0.01, "{nshift_se} {nvar_se}");
        }
    }
}

#[test]
fn binary_layer_one_activity_is_unbiased_with_bernoulli_variance() {
    let n = 200.0;
    let (theory, params) = theory("binary_threshold", &[("L", 2.0), ("N", n)]);
    let network = Network::new(&theory, &params).unwrap();
    let x = t1_inputs();
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let prior = sample_prior(&simulator, 20_000, 3, &no_progress).unwrap();
    let m = theory.field("m").unwrap();
    let (_, stats) = prior
        .entries
        .iter()
        .find(|(k, _)| *k == (m, vec![1]))
        .unwrap();
    // h ~ N(0, g0/d X Xᵀ): P(h_α > θ) = Φ(−θ/√C⁽⁰⁾_αα)
    let theta = params[theory.param("theta").unwrap()];
    for (a, c0) in [(0, 1.0f64), (1, 1.5)] {
        let p = 0.5 * libm_erfc(theta / (2.0 * c0).sqrt());
        let se = stats.std_error[[a, 0]];
        assert!((stats.mean[[a, 0]] - p).abs() < 4.0 * se, "m[1]_{a}");
        let nvar = n * stats.variance[[a, 0]];
        let nvar_se = n * stats.variance_std_error[[a, 0]];
        assert!(
            (nvar - p * (1.0 - p)).abs() < 4.0 * nvar_se,
            "N·Var m[1]_{a}: {nvar} ± {nvar_se} vs {}",
            p * (1.0 - p)
        );
    }
}

/// erfc by its continued fraction-free series (|x| small here) — independent of the library.
fn libm_erfc(x: f64) -> f64 {
    // erf(x) = 2/√π Σ (−1)^k x^{2k+1} / (k! (2k+1))
    let mut sum = 0.0;
    let mut term = x;
    for k in 0..60 {
        sum += term / (2 * k + 1) as f64;
        term *= -x * x / (k + 1) as f64;
    }
    1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum
}

/// ∫ u^{p−1} e^{−(a u + b/u)/2} du ratios by the trapezoid rule in ln u (exponentially
/// accurate for this smooth, doubly decaying integrand): E[u | y] of THEORY.md §5.2.
fn gig_mean(p: f64, a: f64, b: f64) -> f64 {
    let (mut zeroth, mut first) = (0.0, 0.0);
    let steps = 40_000;
    for i in 0..=steps {
        let t = -30.0 + 60.0 * i as f64 / steps as f64;
        let u = t.exp();
        // density in t = ln u: u^p e^{…}; scaled to avoid overflow
        let w = (p * t - 0.5 * (a * u + b / u)).exp();
        zeroth += w;
        first += w * u;
    }
    first / zeroth
}

#[test]
fn deep_linear_posterior_predictions_match_the_exact_scale_mixture() {
    let n = 10.0;
    let (theory, params) = theory(
        "deep_linear",
        &[
            ("L", 1.0),
            ("N", n),
            ("kappa", 1e-8),
            ("g", 1.0),
            ("g0", 1.0),
        ],
    );
    let network = Network::new(&theory, &params).unwrap();
    // 3 training and 2 test patterns in d = 6 (K invertible)
    let x = Array2::from_shape_fn((5, 6), |(i, j)| {
        ((i * 7 + j * 3) % 11) as f64 / 5.0 - 1.0 + if i == j { 1.0 } else { 0.0 }
    });
    let y = array![[1.0], [-0.5], [0.8]];
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let settings = PosteriorSettings {
        chains: 4,
        samples: 3000,
        burn_in: 500,
        thin: 1,
        seed: 11,
    };
    let posterior =
        sample_posterior(&simulator, Targets { y: y.view() }, settings, &no_progress).unwrap();
    // exact: K = g g0 X Xᵀ/d, μ* = k*ᵀ K⁻¹ y, Var = E[u|y] (k** − k*ᵀ K⁻¹ k*)
    let k = x.dot(&x.t()) / 6.0;
    let kt = k.slice(ndarray::s![..3, ..3]).to_owned();
    let inverse = invert3(&kt);
    let alpha = inverse.dot(&y);
    let b = y.t().dot(&alpha)[[0, 0]];
    let u = gig_mean((n - 3.0) / 2.0, n, b);
    let prediction = posterior.prediction.as_ref().expect("test patterns");
    for t in 0..2 {
        let ks = k.slice(ndarray::s![..3, 3 + t]).to_owned();
        let mean: f64 = ks.iter().zip(alpha.column(0)).map(|(a, b)| a * b).sum();
        let variance = u * (k[[3 + t, 3 + t]] - ks.dot(&inverse.dot(&ks)));
        let (got, se) = (
            prediction.mean.mean[[t, 0]],
            prediction.mean.std_error[[t, 0]],
        );
        assert!(
            (got - mean).abs() < 4.0 * se,
            "mean {t}: {got} ± {se} vs {mean}"
        );
        let (got, se) = (prediction.variance[t], prediction.variance_std_error[t]);
        assert!(
            (got - variance).abs() < 4.0 * se,
            "variance {t}: {got} ± {se} vs {variance}"
        );
        assert!(
            se < 0.15 * variance,
            "the estimate is informative: {se} vs {variance}"
        );
    }
    for (name, s) in &posterior.summaries {
        assert!(s.rhat < 1.05, "{name}: R-hat {}", s.rhat);
        assert!(s.ess > 500.0, "{name}: ESS {}", s.ess);
    }
}

fn invert3(m: &Array2<f64>) -> Array2<f64> {
    let c = |i: usize, j: usize| {
        let (r0, r1) = ((i + 1) % 3, (i + 2) % 3);
        let (c0, c1) = ((j + 1) % 3, (j + 2) % 3);
        m[[r0, c0]] * m[[r1, c1]] - m[[r0, c1]] * m[[r1, c0]]
    };
    let det: f64 = (0..3).map(|j| m[[0, j]] * c(0, j)).sum();
    Array2::from_shape_fn((3, 3), |(i, j)| c(j, i) / det)
}

#[test]
fn a_seed_gives_the_same_numbers_on_any_number_of_threads() {
    let (theory, params) = theory("deep_erf", &[("L", 2.0), ("N", 20.0)]);
    let network = Network::new(&theory, &params).unwrap();
    let x = t1_inputs();
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| sample_prior(&simulator, 500, 42, &no_progress).unwrap());
    let many = sample_prior(&simulator, 500, 42, &no_progress).unwrap();
    let other = sample_prior(&simulator, 500, 43, &no_progress).unwrap();
    for ((a, b), c) in one.entries.iter().zip(&many.entries).zip(&other.entries) {
        assert_eq!(a.1.mean, b.1.mean);
        assert_eq!(a.1.variance, b.1.variance);
        assert_ne!(a.1.mean, c.1.mean);
    }
}

#[test]
fn the_command_line_reproduces_and_refuses_bad_settings() {
    let x = temp_file(
        "x.csv",
        "1.4142135623730951,0\n0.848528137423857,1.50996688705415\n",
    );
    let y = temp_file("y.csv", "1\n-1\n");
    let (x, y) = (path_str(&x), path_str(&y));
    let run = |extra: &[&str]| {
        let mut args = vec!["simulate", "examples/deep_erf.action", "--x", x];
        args.extend_from_slice(extra);
        saddle(&args)
    };
    let posterior = ["--y", y, "--set", "L=1", "--samples", "40", "--json"];
    let (code, first, err) = run(&posterior);
    assert_eq!(code, 0, "{err}");
    let (_, second, _) = run(&posterior);
    assert_eq!(first, second, "same seed, same output");
    let json: serde_json::Value = serde_json::from_str(&first).unwrap();
    for key in [
        "kernels",
        "standard_errors",
        "ess",
        "rhat",
        "nngp",
        "params",
        "summaries",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert!(!first.contains("NaN") && !first.contains("null"));

    for (args, needle) in [
        (vec!["--prior", "--set", "N=0"], "n = 0"),
        (vec!["--prior", "--set", "N=2.5"], "n = 2.5"),
        (vec!["--prior", "--samples", "1"], "--samples 1"),
        (vec!["--y", y, "--chains", "1"], "--chains 1"),
        (vec!["--y", y, "--samples", "5"], "--samples 5"),
        (vec!["--y", y, "--thin", "0"], "--thin 0"),
        (vec![], "--y is needed"),
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // a recurrent network's posterior: the same sampler on the drive's and the shared
    // weights' normals, reproducible by its seed
    let recurrent = [
        "simulate",
        "examples/recurrent_erf.action",
        "--x",
        x,
        "--y",
        y,
        "--set",
        "N=30",
        "--samples",
        "40",
        "--json",
    ];
    let (code, first, err) = saddle(&recurrent);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first, saddle(&recurrent).1, "same seed, same output");
    let json: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(json["method"].as_str(), Some("simulate-ess"));
    assert!(json["kernels"]["C[3,3]"].is_array(), "{json}");
    assert!(json["rhat"]["C[2,3]"].is_array(), "{json}");
    assert_eq!(
        json["sampler"]["name"].as_str(),
        Some("elliptical slice sampling")
    );
}

/// The Wishart measure term of the deep linear network is not part of the network; the data
/// terms (which read Y or D) and the populations are.
#[test]
fn only_rate_function_corrections_are_left_out() {
    for (name, left_out) in [("deep_linear", 1), ("deep_erf", 0), ("binary_threshold", 0)] {
        let (theory, params) = theory(name, &[]);
        let network = Network::new(&theory, &params).unwrap();
        assert_eq!(network.left_out.len(), left_out, "{name}");
        assert!(!network.populations.is_empty());
    }
}

/// `saddle compare`: every method on one table; JSON with each method's kernels.
#[test]
fn compare_puts_theory_and_simulation_side_by_side() {
    let x = temp_file(
        "cx.csv",
        "1.4142135623730951,0\n0.848528137423857,1.50996688705415\n",
    );
    let y = temp_file("cy.csv", "1\n-1\n");
    let (code, out, err) = saddle(&[
        "compare",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--set",
        "L=1",
        "--set",
        "N=50",
        "--samples",
        "200",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (json["command"].as_str(), json["method"].as_str()),
        (Some("compare"), Some("compare"))
    );
    for key in ["kernels", "standard_errors", "nngp", "linear", "map"] {
        assert!(json[key]["C[1]"].is_array(), "{key}: {json}");
    }
    let entry = |key: &str, i: usize, j: usize| json[key]["C[1]"][i][j].as_f64().unwrap();
    // the MAP and the simulation agree to leading order at L = 1 (no prior shift there):
    // N·|MAP − simulation| within 5 standard errors plus an O(1/N) remainder of 0.2
    let n = 50.0;
    for (i, j) in [(0, 0), (0, 1), (1, 1)] {
        let (sim, se, map) = (
            entry("kernels", i, j),
            entry("standard_errors", i, j),
            entry("map", i, j),
        );
        assert!(
            n * (map - sim).abs() < n * 5.0 * se + 0.2,
            "{i}{j}: MAP {map}, simulation {sim} ± {se}"
        );
    }
    // the comparison drawn: NNGP, linearised, MAP and the networks side by side
    let result = temp_file("compare.json", &out);
    let figure = temp_file("compare.svg", "");
    let (code, _, err) = saddle(&["plot", path_str(&result), "--out", path_str(&figure)]);
    assert_eq!(code, 0, "{err}");
    let text = saddle::plot::svg_text(&std::fs::read_to_string(&figure).expect("written"));
    for panel in [
        "C[1], NNGP (N = ∞)",
        "C[1], linearised",
        "C[1], MAP",
        "C[1], simulated posterior mean",
    ] {
        assert!(text.iter().any(|t| t == panel), "{panel} in {text:?}");
    }
}

/// `saddle compare` beyond three patterns: the scalable MAP and linearised system against the
/// network per kernel statistic, with the sampler's ESS and R-hat; on 8 real digits at
/// N = 50 the network's same − cross statistic is many standard errors above the NNGP (it
/// learns features), and the MAP is nearer to it than the NNGP.
#[test]
fn compare_beyond_three_patterns_groups_entries_by_statistic() {
    let (x, y) = common::digits(8);
    let x = temp_file("compare8x.csv", &csv(&x));
    let y = temp_file("compare8y.csv", &csv(&y));
    let (code, out, err) = saddle(&[
        "compare",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--set",
        "L=2",
        "--set",
        "N=50",
        "--chains",
        "2",
        "--samples",
        "1000",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let groups = json["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 6, "{json}");
    for g in groups {
        for method in ["linear", "map"] {
            let value = g[method]["value"].as_f64().expect("a value");
            let bound = g[method]["error_bound"].as_f64().expect("an error bound");
            assert!(value.is_finite() && bound > 0.0, "{g}");
        }
        assert!(g["ess"].as_f64().unwrap() > 10.0 && g["rhat"].as_f64().unwrap() < 1.2);
    }
    for key in ["map_standard_errors", "linear_standard_errors"] {
        assert!(json[key]["C[2]"].is_array(), "{key}");
    }
    let readout = groups
        .iter()
        .find(|g| g["kernel"] == "C[2]" && g["statistic"] == "target-weighted off-diagonal")
        .expect("the readout's same − cross statistic");
    let (sim, se) = (
        readout["simulation"].as_f64().unwrap(),
        readout["standard_error"].as_f64().unwrap(),
    );
    let nngp = readout["nngp"].as_f64().unwrap();
    let map = readout["map"]["value"].as_f64().unwrap();
    assert!(
        (sim - nngp) / se > 6.0,
        "simulation {sim} ± {se}, NNGP {nngp}"
    );
    assert!(
        (map - sim).abs() < (nngp - sim).abs() / 2.0,
        "MAP {map}, simulation {sim}"
    );
}

#[test]
fn the_readout_is_the_data_terms_kernel_not_a_measure_terms() {
    // deep_linear writes the Wishart term `logdet(C[l])` before the data term
    // `inv(C[L] + kappa * I)`: the readout is C[L] with noise κ, not C[1] with none
    let (theory, params) = theory("deep_linear", &[("L", 3.0), ("kappa", 0.02)]);
    let network = Network::new(&theory, &params).unwrap();
    let readout = network.readout.as_ref().unwrap();
    let mut layers = Vec::new();
    readout.kernel.any(&mut |e| {
        if let saddle::check::ir::ExprKind::Field { indices, .. } = &e.kind {
            layers.push(indices[0].constant);
        }
        false
    });
    assert_eq!(layers, vec![3]);
    let x = t1_inputs();
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let draw = simulator
        .draw(
            &simulator
                .standard_normals(&mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1)),
        )
        .unwrap();
    let (_, noise) = simulator.readout(&draw).unwrap();
    assert_eq!(noise, 0.02);
}

/// The posterior-mean kernels MAP + m/N against the network's posterior mean (P = 2 digits'
/// worth of inputs, erf, L = 2, N = 50, 4 × 80 000 draws): on the readout layer's diagonals
/// the MAP alone misses the network by the prior one-loop shift m/N (THEORY.md §4.5; ≈ −0.055
/// in N·C, 6σ), which the posterior mean adds; and `solve --method posterior` gives the same
/// kernels, with the MAP and m beside them.
#[test]
fn the_posterior_mean_is_the_map_plus_the_one_loop_shift() {
    let x = temp_file(
        "px.csv",
        "1.4142135623730951,0\n0.848528137423857,1.50996688705415\n",
    );
    let y = temp_file("py.csv", "1\n-1\n");
    let common = [
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--set",
        "L=2",
        "--set",
        "N=50",
        "--json",
    ];
    let mut args = vec!["compare"];
    args.extend(common);
    args.extend(["--chains", "4", "--samples", "80000", "--seed", "0"]);
    let (code, out, err) = saddle(&args);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let n = 50.0;
    let at = |key: &str, layer: &str, i: usize, j: usize| {
        json[key][layer][i][j]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} {layer}: {json}"))
    };
    // the first layer has no prior shift (its units read the data directly): m = 0 exactly
    for (i, j) in [(0, 0), (0, 1), (1, 1)] {
        assert_eq!(at("posterior", "C[1]", i, j), at("map", "C[1]", i, j));
        assert_eq!(at("one_loop_shift", "C[1]", i, j), 0.0);
        let (post, map) = (at("posterior", "C[2]", i, j), at("map", "C[2]", i, j));
        let m = at("one_loop_shift", "C[2]", i, j);
        assert!(
            (n * (post - map) - m).abs() < 1e-12,
            "{i}{j}: {post} − {map} ≠ {m}/N"
        );
    }
    // the readout layer's mean diagonal: its standard error bounded by the entries' mean
    let diagonal = |key: &str| (at(key, "C[2]", 0, 0) + at(key, "C[2]", 1, 1)) / 2.0;
    let (sim, se) = (diagonal("kernels"), diagonal("standard_errors"));
    let (map, post) = (diagonal("map"), diagonal("posterior"));
    assert!(
        diagonal("one_loop_shift") < -0.04,
        "m = {}",
        diagonal("one_loop_shift")
    );
    assert!(
        (map - sim).abs() > 4.0 * se,
        "the MAP alone is {:.1}σ from the network",
        (map - sim) / se
    );
    assert!(
        (post - sim).abs() < 3.0 * se,
        "MAP + m/N: N·(C − simulation) = {:.4} ± {:.4}",
        n * (post - sim),
        n * se
    );

    // solve --method posterior: the same kernels (both by quadrature at P = 2)
    let mut args = vec!["solve", "--method", "posterior"];
    args.extend(common);
    let (code, out, err) = saddle(&args);
    assert_eq!(code, 0, "{err}");
    let solved: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(solved["method"], "posterior");
    for (i, j) in [(0, 0), (0, 1), (1, 1)] {
        let kernel = solved["kernels"]["C[2]"][i][j].as_f64().unwrap();
        let map = solved["map"]["C[2]"][i][j].as_f64().unwrap();
        let m = solved["one_loop_shift"]["C[2]"][i][j].as_f64().unwrap();
        assert!((kernel - at("posterior", "C[2]", i, j)).abs() < 1e-12);
        assert!((map - at("map", "C[2]", i, j)).abs() < 1e-12);
        assert!((n * (kernel - map) - m).abs() < 1e-12);
    }

    // a recurrent theory's shift is over time: refused, with the reason
    let (code, _, err) = saddle(&[
        "solve",
        "examples/recurrent_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--method",
        "posterior",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("layered theories"), "{err}");
}

/// Stopped early (Ctrl-C in `simulate`), the posterior sampler reports the batches every chain
/// completed — an even number, so split-R-hat still compares half-chains — flagged as
/// interrupted, and its means agree with the whole run's (whose prefix they are).
#[test]
fn a_stopped_posterior_keeps_the_batches_every_chain_completed() {
    use saddle::simulate::posterior::{BATCHES, EllipticalSlice, sample_posterior_until};
    use std::sync::atomic::{AtomicU64, Ordering};
    let (theory, params) = theory("deep_erf", &[("L", 2.0), ("N", 20.0)]);
    let network = Network::new(&theory, &params).unwrap();
    let x = t1_inputs();
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let y = array![[1.0], [-1.0]];
    let settings = PosteriorSettings {
        chains: 2,
        samples: 4000,
        burn_in: 200,
        thin: 1,
        seed: 5,
    };
    let whole = sample_posterior(&simulator, Targets { y: y.view() }, settings, &no_progress)
        .expect("the whole run");
    assert!(!whole.interrupted && whole.draws_per_chain == 4000);
    // stop once both chains together made burn-in and about 65 % of their draws
    let steps = AtomicU64::new(0);
    let tick = |n: u64| {
        steps.fetch_add(n, Ordering::SeqCst);
    };
    let threshold = 2 * (200 + 2600);
    let stop = || steps.load(Ordering::SeqCst) >= threshold;
    let part = sample_posterior_until(
        &EllipticalSlice {
            network: &simulator,
        },
        Targets { y: y.view() },
        settings,
        &tick,
        &stop,
    )
    .expect("a partial result");
    assert!(part.interrupted);
    let batch = 4000 / BATCHES;
    assert!(
        part.draws_per_chain.is_multiple_of(2 * batch)
            && part.draws_per_chain >= 2 * batch
            && part.draws_per_chain < 4000,
        "{} draws per chain",
        part.draws_per_chain
    );
    for ((key, a), (_, b)) in whole.entries.iter().zip(&part.entries) {
        for ((m, s), (pm, ps)) in a
            .mean
            .iter()
            .zip(&a.std_error)
            .zip(b.mean.iter().zip(&b.std_error))
        {
            assert!(pm.is_finite() && *ps > 0.0, "{key:?}");
            assert!(
                (m - pm).abs() < 4.0 * s.hypot(*ps),
                "{key:?}: {m} ± {s} vs {pm} ± {ps}"
            );
        }
    }
    for (_, s) in &part.summaries {
        assert!(s.rhat.is_finite() && s.ess > 1.0);
    }
}

/// With more chains than threads the later chains start only when the first end: stopped in
/// between, the result keeps the chains that completed two batches or more (here on one
/// thread: chain 1 whole, chain 2 at 60 %, chains 3 and 4 never started), and a split
/// sample count (45: batches of 4, five draws left out) still gives equal half-chains.
#[test]
fn a_stopped_posterior_keeps_the_chains_that_ran() {
    use saddle::simulate::posterior::{EllipticalSlice, sample_posterior_until};
    use std::sync::atomic::{AtomicU64, Ordering};
    let (theory, params) = theory("deep_erf", &[("L", 2.0), ("N", 20.0)]);
    let network = Network::new(&theory, &params).unwrap();
    let x = t1_inputs();
    let simulator = Simulator::new(&network, x.view()).unwrap();
    let y = array![[1.0], [-1.0]];
    let settings = PosteriorSettings {
        chains: 4,
        samples: 45,
        burn_in: 10,
        thin: 1,
        seed: 7,
    };
    let whole = sample_posterior(&simulator, Targets { y: y.view() }, settings, &no_progress)
        .expect("45 draws: batches of 4");
    assert_eq!((whole.draws_per_chain, whole.interrupted), (40, false));
    let steps = AtomicU64::new(0);
    let tick = |n: u64| {
        steps.fetch_add(n, Ordering::SeqCst);
    };
    // chain 1: 55 steps; chain 2: 10 burn-in + 27 draws (6 batches of 4), then stop
    let stop = || steps.load(Ordering::SeqCst) >= 55 + 37;
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let part = one_thread
        .install(|| {
            sample_posterior_until(
                &EllipticalSlice {
                    network: &simulator,
                },
                Targets { y: y.view() },
                settings,
                &tick,
                &stop,
            )
        })
        .expect("two chains ran");
    assert!(part.interrupted);
    assert_eq!((part.settings.chains, part.draws_per_chain), (2, 24));
    // stopped before any chain completed two batches: a Stopped error, not a result
    let none = one_thread.install(|| {
        sample_posterior_until(
            &EllipticalSlice {
                network: &simulator,
            },
            Targets { y: y.view() },
            settings,
            &no_progress,
            &|| true,
        )
    });
    assert!(
        matches!(none, Err(saddle::simulate::SimulateError::Stopped(_))),
        "{none:?}"
    );
}
