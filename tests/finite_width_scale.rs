//! The MAP at finite width for any P ([`saddle::finite_width`]) against independent references.
//!
//! * deep linear networks at P = 100 real digits (C⁽⁰⁾ of standardised MNIST, condition number
//!   ~10⁴): the sweeps' Gaussian closed forms against the forward–backward fixed point of
//!   THEORY.md §4.3's linear closed forms iterated here, with and without the Wishart measure
//!   term (normwise, 1e-9); L = 1 against the closed form of §5.4 (m_y, m_⊥) as κ → 0;
//! * importance sampling against the P-dimensional quadrature Newton solver at P = 2 (T9:
//!   erf, and relu, tanh, a user φ) within 4 reported standard errors, and those errors
//!   falling like 1/√M;
//! * the sampled path on a linear network (forced) against the exact Gaussian one;
//! * the matrix-free linearised system (`linear_kernels`) against the quadrature linear
//!   system (`linear_response`) at P = 2, full and leading order: exactly for linear units,
//!   within 4 reported standard errors for sampled erf units; and the MAP minus the
//!   linearised system shrinking like 1/N at P = 50 real digits (deep linear, exact);
//! * bad settings and theories outside the sweeps are named errors.

mod common;

use common::{csv, digits, example, path_str, saddle, set, t1_inputs, temp_file};
use ndarray::{Array2, array};
use saddle::finite_width::tilted::Estimator;
use saddle::finite_width::{
    FiniteWidthError, MapSettings, SaddleIteration, linear_kernels, map_kernels,
};
use saddle::solve::fluctuation::{FluctuationSettings, Order, linear_response};
use saddle::solve::saddle_point::{SaddleSettings, saddle_point};

fn inverse(m: &Array2<f64>) -> Array2<f64> {
    let p = m.nrows();
    let a = faer::Mat::from_fn(p, p, |i, j| m[[i, j]]);
    let inv = faer::linalg::solvers::DenseSolveCore::inverse(&a.partial_piv_lu());
    Array2::from_shape_fn((p, p), |(i, j)| inv[(i, j)])
}

fn frobenius(m: &Array2<f64>) -> f64 {
    m.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// THEORY.md §4.3 with linear units, iterated to a fixed point: (F) C⁽ˡ⁾ = g(I −
/// (2g/N)C⁽ˡ⁻¹⁾C̃⁽ˡ⁾)⁻¹C⁽ˡ⁻¹⁾, (B) C̃⁽ˡ⁾ = gC̃⁽ˡ⁺¹⁾(I − (2g/N)C⁽ˡ⁾C̃⁽ˡ⁺¹⁾)⁻¹, (O) C̃⁽ᴸ⁾ =
/// ½(AyyᵀA − A), A = (C⁽ᴸ⁾ + κI)⁻¹, each C̃ less w(P+1)/2 (C⁽ˡ⁾)⁻¹ with the measure term.
/// With more rows in C⁽⁰⁾ than in y, the extra rows are test patterns: (O) and the measure
/// term act on the training block only, the test rows' C̃ entries stay zero.
fn linear_fixed_point(
    c0: &Array2<f64>,
    y: &Array2<f64>,
    layers: usize,
    n: f64,
    kappa: f64,
    wishart: f64,
) -> Vec<Array2<f64>> {
    let p = c0.nrows();
    let t = y.nrows();
    let eye = Array2::<f64>::eye(p);
    let eye_t = Array2::<f64>::eye(t);
    let g = 1.0;
    let measure = wishart * (t as f64 + 1.0) / 2.0;
    let train = |m: &Array2<f64>| m.slice(ndarray::s![..t, ..t]).to_owned();
    let pad = |m: Array2<f64>| {
        let mut out = Array2::zeros((p, p));
        out.slice_mut(ndarray::s![..t, ..t]).assign(&m);
        out
    };
    let mut c: Vec<Array2<f64>> = (0..=layers).map(|_| c0.clone()).collect();
    let mut ct: Vec<Array2<f64>> = (0..=layers).map(|_| Array2::zeros((p, p))).collect();
    for _ in 0..20_000 {
        let mut new = ct.clone();
        let a = inverse(&(&train(&c[layers]) + &(&eye_t * kappa)));
        let ay = a.dot(y);
        // the measure term's inverse only where it is switched on (C may be rank-deficient)
        let term = |c: &Array2<f64>| {
            if measure == 0.0 {
                Array2::zeros((t, t))
            } else {
                inverse(&train(c)) * measure
            }
        };
        new[layers] = pad((ay.dot(&ay.t()) - &a) * 0.5 - term(&c[layers]));
        for l in (1..layers).rev() {
            let m = &eye - &(c[l].dot(&ct[l + 1]) * (2.0 * g / n));
            new[l] = ct[l + 1].dot(&inverse(&m)) * g - pad(term(&c[l]));
        }
        let mut change = 0.0;
        for l in 1..=layers {
            let step = (&new[l] - &ct[l]) * 0.5;
            change += frobenius(&step) / frobenius(&new[l]).max(1e-300);
            ct[l] = &ct[l] + &step;
        }
        for l in 1..=layers {
            let m = &eye - &(c[l - 1].dot(&ct[l]) * (2.0 * g / n));
            c[l] = inverse(&m).dot(&c[l - 1]) * g;
            c[l] = (&c[l] + &c[l].t()) * 0.5;
        }
        if change < 1e-12 {
            return c;
        }
    }
    panic!("the reference iteration did not converge");
}

#[test]
fn deep_linear_map_at_p100_equals_the_linear_closed_form_fixed_point() {
    let theory = example("deep_linear");
    let (x, y) = digits(100);
    let d = x.ncols() as f64;
    let c0 = x.dot(&x.t()) / d;
    let cases = [0.0, 1.0].into_iter().flat_map(|wishart| {
        [SaddleIteration::Anderson, SaddleIteration::NewtonKrylov].map(|it| (wishart, it))
    });
    for (wishart, iteration) in cases {
        // with the measure term the kernels shrink by 1 − (P+1)/N: N = 400 keeps them away
        // from the edge N = L(P+1) where the action has no maximum
        let n = if wishart == 0.0 { 100.0 } else { 400.0 };
        let settings = MapSettings {
            overrides: set(&[("N", n), ("L", 2.0), ("kappa", 0.01), ("wishart", wishart)]),
            tolerance: 1e-13,
            iteration,
            ..MapSettings::default()
        };
        let solution = map_kernels(&theory, x.view(), y.view(), None, &settings).unwrap();
        assert!(
            solution
                .populations
                .iter()
                .all(|p| p.estimator == Estimator::Gaussian && p.effective_samples.is_none())
        );
        assert_eq!(solution.replicas, 0);
        let reference = linear_fixed_point(&c0, &y, 2, n, 0.01, wishart);
        for (l, layer) in solution.layers.iter().enumerate() {
            let error = frobenius(&(&layer.kernel - &reference[l + 1]));
            let shift = frobenius(&(&reference[l + 1] - &layer.nngp));
            assert!(
                error <= 1e-9 * frobenius(&reference[l + 1]),
                "wishart = {wishart}, {iteration:?}, layer {}: ‖C − C_ref‖ = {error:e}",
                l + 1
            );
            // the kernels did adapt (the comparison is not NNGP against NNGP)
            assert!(
                shift > 1e-3 * frobenius(&layer.nngp),
                "no adaptation: {shift:e}"
            );
        }
    }
}

#[test]
fn deep_linear_with_more_patterns_than_input_dimensions() {
    // XOR's corners: P = 4 patterns in d = 2 dimensions, so every kernel has rank 2. The
    // measure term's inv(C) is switched off by `wishart = 0` and must not be evaluated.
    let theory = example("deep_linear");
    let x = array![[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]];
    let y = array![[-1.0], [-1.0], [1.0], [1.0]];
    let c0 = x.dot(&x.t()) / 2.0;
    let settings = MapSettings {
        overrides: set(&[("N", 20.0), ("L", 2.0), ("kappa", 0.1)]),
        tolerance: 1e-13,
        ..MapSettings::default()
    };
    let solution = map_kernels(&theory, x.view(), y.view(), None, &settings).unwrap();
    let reference = linear_fixed_point(&c0, &y, 2, 20.0, 0.1, 0.0);
    for (l, layer) in solution.layers.iter().enumerate() {
        let error = frobenius(&(&layer.kernel - &reference[l + 1]));
        assert!(
            error <= 1e-9 * frobenius(&reference[l + 1]),
            "layer {}: {error:e}",
            l + 1
        );
    }
    let linear = linear_kernels(&theory, x.view(), y.view(), None, Order::Full, &settings);
    assert!(linear.is_ok(), "{:?}", linear.err());
    // with the measure term on, its inv(C) is needed and does not exist: said in words
    let measure = MapSettings {
        overrides: set(&[("N", 20.0), ("L", 2.0), ("kappa", 0.1), ("wishart", 1.0)]),
        ..MapSettings::default()
    };
    let err = map_kernels(&theory, x.view(), y.view(), None, &measure).unwrap_err();
    assert!(
        err.to_string()
            .contains("more patterns than input dimensions"),
        "{err}"
    );
}

#[test]
fn test_patterns_adapt_with_the_kernels_and_leave_the_training_block_alone() {
    let theory = example("deep_linear");
    let split = saddle::data::mnist::Mnist::load_bundled()
        .and_then(|m| m.two_class(0, 3, 30, 20))
        .and_then(|s| s.standardised())
        .expect("bundled digits");
    let (x, y, xt, yt) = (&split.x_train, &split.y_train, &split.x_test, &split.y_test);
    let settings = MapSettings {
        overrides: set(&[("N", 40.0), ("L", 2.0), ("kappa", 0.05)]),
        tolerance: 1e-13,
        ..MapSettings::default()
    };
    let alone = map_kernels(&theory, x.view(), y.view(), None, &settings).unwrap();
    let joint = map_kernels(&theory, x.view(), y.view(), Some(xt.view()), &settings).unwrap();
    let all = ndarray::concatenate(ndarray::Axis(0), &[x.view(), xt.view()]).unwrap();
    let c0 = all.dot(&all.t()) / x.ncols() as f64;
    let reference = linear_fixed_point(&c0, y, 2, 40.0, 0.05, 0.0);
    for (l, layer) in joint.layers.iter().enumerate() {
        let t = x.nrows();
        let train = layer.kernel.slice(ndarray::s![..t, ..t]).to_owned();
        let error = frobenius(&(&train - &alone.layers[l].kernel));
        assert!(
            error <= 1e-10 * frobenius(&train),
            "training block moved: {error:e}"
        );
        let error = frobenius(&(&layer.kernel - &reference[l + 1]));
        assert!(
            error <= 1e-9 * frobenius(&reference[l + 1]),
            "joint: {error:e}"
        );
        // the test block adapted
        let test = layer.kernel.slice(ndarray::s![t.., t..]).to_owned();
        let nngp = layer.nngp.slice(ndarray::s![t.., t..]).to_owned();
        assert!(frobenius(&(&test - &nngp)) > 1e-3 * frobenius(&nngp));
    }
    // the GP prediction with the adapted readout kernel, against a direct solve
    let prediction = joint.prediction.as_ref().unwrap();
    let k = &joint.layers[1].kernel;
    let t = x.nrows();
    let ktt = k.slice(ndarray::s![..t, ..t]).to_owned() + Array2::<f64>::eye(t) * 0.05;
    let kst = k.slice(ndarray::s![t.., ..t]).to_owned();
    let mean = kst.dot(&inverse(&ktt).dot(y));
    let error = frobenius(&(&prediction.mean - &mean));
    assert!(error <= 1e-9 * frobenius(&mean), "{error:e}");
    assert_eq!(prediction.mean.dim(), yt.dim());
    assert!(prediction.log_marginal_likelihood > prediction.nngp_log_marginal_likelihood);
}

#[test]
fn deep_linear_single_layer_matches_the_kl_closed_form_as_kappa_vanishes() {
    // THEORY.md §5.4: C = m_⊥ K + (m_y − m_⊥) y yᵀ / (yᵀK⁻¹y) with
    // m_y = [(N−1) + √((N−1)² + 4N yᵀK⁻¹y)]/(2N), m_⊥ = (N−1)/N; with the measure term
    // N − 1 → N − P − 2.
    let theory = example("deep_linear");
    let (x, y) = digits(20);
    let d = x.ncols() as f64;
    let k = x.dot(&x.t()) / d;
    let r = y.t().dot(&inverse(&k)).dot(&y)[[0, 0]];
    let p = x.nrows() as f64;
    for (wishart, n) in [(0.0, 10.0), (1.0, 60.0)] {
        let settings = MapSettings {
            overrides: set(&[("N", n), ("L", 1.0), ("kappa", 1e-9), ("wishart", wishart)]),
            tolerance: 1e-13,
            ..MapSettings::default()
        };
        let solution = map_kernels(&theory, x.view(), y.view(), None, &settings).unwrap();
        let a = if wishart == 0.0 { n - 1.0 } else { n - p - 2.0 };
        let m_y = (a + (a * a + 4.0 * n * r).sqrt()) / (2.0 * n);
        let m_perp = a / n;
        let expected = &k * m_perp + &(y.dot(&y.t()) * ((m_y - m_perp) / r));
        let error = frobenius(&(&solution.layers[0].kernel - &expected));
        assert!(
            error <= 1e-6 * frobenius(&expected),
            "wishart = {wishart}: ‖C − C_§5.4‖ = {error:e} (m_y = {m_y}, m_⊥ = {m_perp})"
        );
    }
}

/// The sampled MAP and the quadrature Newton solver at P = 2, L = 2, N = 100 (T9's setting),
/// entry by entry in N·(C − C*) and in C̃, within 4 standard errors.
fn sampled_against_quadrature(theory: &saddle::Theory, extra: &[(&str, f64)], samples: usize) {
    let x = t1_inputs();
    let y = array![[1.0], [-1.0]];
    let mut pairs = vec![("L", 2.0), ("N", 100.0), ("gb0", 0.0)];
    pairs.extend_from_slice(extra);
    let overrides = set(&pairs);
    let exact = saddle_point(
        theory,
        x.view(),
        Some(y.view()),
        &SaddleSettings {
            overrides: overrides.clone(),
            quadrature_order: 64,
            ..SaddleSettings::default()
        },
    )
    .unwrap();
    let settings = MapSettings {
        overrides,
        samples,
        seed: 7,
        force_sampling: true,
        ..MapSettings::default()
    };
    let sampled = map_kernels(theory, x.view(), y.view(), None, &settings).unwrap();
    assert!(sampled.populations.iter().all(|p| {
        p.estimator == Estimator::ImportanceSampling
            && p.effective_samples
                .is_some_and(|e| e > 0.9 * samples as f64)
    }));
    for (s, e) in sampled.layers.iter().zip(&exact.layers) {
        let kernel_error = s.kernel_error.as_ref().expect("standard errors");
        let conjugate_error = s.conjugate_error.as_ref().expect("standard errors");
        for (i, j) in [(0, 0), (0, 1), (1, 1)] {
            let z = (s.kernel[[i, j]] - e.kernel[[i, j]]) / kernel_error[[i, j]];
            assert!(
                z.abs() < 4.0,
                "{} {}: C{i}{j} {} vs {} ± {}",
                theory.name,
                s.name,
                s.kernel[[i, j]],
                e.kernel[[i, j]],
                kernel_error[[i, j]]
            );
            // the shift is resolved: its error is well below the layer's shift
            let shift = (&e.kernel - &e.nngp)
                .iter()
                .fold(0.0f64, |a, v| a.max(v.abs()));
            assert!(
                kernel_error[[i, j]] < 0.25 * shift,
                "{} {}: s.e. {} against a shift of {shift}",
                theory.name,
                s.name,
                kernel_error[[i, j]]
            );
            let z = (s.conjugate[[i, j]] - e.conjugate[[i, j]]) / conjugate_error[[i, j]];
            assert!(
                z.abs() < 4.0,
                "{} {}: C̃{i}{j} {} vs {} ± {}",
                theory.name,
                s.conjugate_name,
                s.conjugate[[i, j]],
                e.conjugate[[i, j]],
                conjugate_error[[i, j]]
            );
        }
    }
}

#[test]
fn importance_sampling_agrees_with_quadrature_for_erf_units() {
    sampled_against_quadrature(&example("deep_erf"), &[], 40_000);
}

#[test]
fn importance_sampling_agrees_with_quadrature_for_relu_tanh_and_a_user_function() {
    sampled_against_quadrature(&example("deep_relu"), &[], 40_000);
    sampled_against_quadrature(&example("deep_tanh"), &[], 40_000);
    let source = std::fs::read_to_string(format!(
        "{}/examples/deep_erf.action",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace(
        "phi(x) = erf(sqrt(pi) / 2 * x)",
        "phi(x) = x * exp(-x^2 / 4)",
    );
    let theory = saddle::compile(&source, "user_phi.action").unwrap();
    sampled_against_quadrature(&theory, &[], 40_000);
}

#[test]
fn standard_errors_fall_like_one_over_root_m() {
    let theory = example("deep_erf");
    let x = t1_inputs();
    let y = array![[1.0], [-1.0]];
    let errors = |samples: usize| {
        let settings = MapSettings {
            overrides: set(&[("L", 2.0), ("N", 100.0), ("gb0", 0.0)]),
            samples,
            replicas: 32,
            ..MapSettings::default()
        };
        let s = map_kernels(&theory, x.view(), y.view(), None, &settings).unwrap();
        s.layers
            .iter()
            .map(|l| frobenius(l.kernel_error.as_ref().unwrap()))
            .sum::<f64>()
    };
    let ratio = errors(8_000) / errors(32_000);
    // √4 = 2; the errors are themselves estimated from 32 replicas (≈ 13 % each)
    assert!((1.5..2.7).contains(&ratio), "s.e.(M) / s.e.(4M) = {ratio}");
}

#[test]
fn forced_sampling_of_a_linear_network_matches_its_closed_form() {
    let theory = example("deep_linear");
    let (x, y) = digits(6);
    let base = MapSettings {
        overrides: set(&[("N", 200.0), ("L", 2.0), ("kappa", 0.1)]),
        ..MapSettings::default()
    };
    let exact = map_kernels(&theory, x.view(), y.view(), None, &base).unwrap();
    let sampled = map_kernels(
        &theory,
        x.view(),
        y.view(),
        None,
        &MapSettings {
            force_sampling: true,
            samples: 40_000,
            ..base.clone()
        },
    )
    .unwrap();
    let mut worst: f64 = 0.0;
    for (s, e) in sampled.layers.iter().zip(&exact.layers) {
        let se = s.kernel_error.as_ref().unwrap();
        for ((a, b), err) in s.kernel.iter().zip(&e.kernel).zip(se) {
            worst = worst.max((a - b).abs() / err);
        }
    }
    // 2 layers × 21 distinct entries: the largest of ~42 |z| stays below 4.5
    assert!(worst < 4.5, "largest |z| = {worst}");
}

/// The matrix-free linearised system against the quadrature one (THEORY.md §4.4) at P = 2,
/// on T1's inputs: entry by entry within `tolerance` (exact expectations) or within 4
/// reported standard errors (sampled); the kernels' shift and the conjugates alike.
fn linear_against_quadrature(
    theory: &saddle::Theory,
    order: Order,
    settings: MapSettings,
    tolerance: Option<f64>,
) {
    let x = t1_inputs();
    let y = array![[1.0], [-1.0]];
    let reference = linear_response(
        theory,
        x.view(),
        Some(y.view()),
        &FluctuationSettings {
            overrides: settings.overrides.clone(),
            quadrature_order: 64,
            order,
            native: &[],
        },
    )
    .unwrap();
    let scalable = linear_kernels(theory, x.view(), y.view(), None, order, &settings).unwrap();
    assert_eq!(scalable.layers.len(), reference.layers.len());
    for (s, e) in scalable.layers.iter().zip(&reference.layers) {
        let shift = &s.kernel - &s.nngp;
        // the shift is O(1/N) and the conjugates O(1): each compared on its own scale
        for (what, got, want, error) in [
            ("δC", &shift, &e.delta, s.kernel_error.as_ref()),
            ("C̃", &s.conjugate, &e.conjugate, s.conjugate_error.as_ref()),
        ] {
            let size = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (i, j) in [(0, 0), (0, 1), (1, 1)] {
                let (a, b) = (got[[i, j]], want[[i, j]]);
                match (tolerance, error) {
                    (Some(tol), _) => assert!(
                        (a - b).abs() <= tol * size,
                        "{} {order:?} {}: {what}{i}{j} {a} vs {b}",
                        theory.name,
                        s.name
                    ),
                    // exact where nothing sampled enters (the readout's C̃ to leading order)
                    (None, Some(err)) if err[[i, j]] <= 1e-12 * size => assert!(
                        (a - b).abs() <= 1e-9 * size,
                        "{} {order:?} {}: {what}{i}{j} {a} vs {b}",
                        theory.name,
                        s.name
                    ),
                    (None, Some(err)) => {
                        let z = (a - b) / err[[i, j]];
                        assert!(
                            z.abs() < 4.0,
                            "{} {order:?} {}: {what}{i}{j} {a} vs {b} ± {}",
                            theory.name,
                            s.name,
                            err[[i, j]]
                        );
                        // resolved: the error is well below the entries' scale
                        assert!(err[[i, j]] < 0.1 * size, "{what}{i}{j} ± {}", err[[i, j]]);
                    }
                    (None, None) => panic!("sampled without standard errors"),
                }
            }
        }
    }
}

#[test]
fn linearised_system_at_scale_is_the_quadrature_linear_system_for_linear_units() {
    let theory = example("deep_linear");
    let settings = MapSettings {
        overrides: set(&[("L", 3.0), ("N", 20.0), ("kappa", 0.1)]),
        ..MapSettings::default()
    };
    for order in [Order::Full, Order::Leading] {
        linear_against_quadrature(&theory, order, settings.clone(), Some(1e-7));
    }
    // one unit per layer and little readout noise, where the data pull hardest:
    // Anderson with a long memory solves (I − J)x = b as GMRES does
    let small = MapSettings {
        overrides: set(&[("L", 3.0), ("N", 1.0), ("kappa", 0.001)]),
        ..MapSettings::default()
    };
    linear_against_quadrature(&theory, Order::Full, small, Some(1e-7));
}

#[test]
fn linearised_system_at_scale_agrees_with_quadrature_for_sampled_erf_units() {
    let theory = example("deep_erf");
    let settings = MapSettings {
        overrides: set(&[("L", 2.0), ("N", 100.0), ("gb0", 0.0)]),
        samples: 40_000,
        seed: 3,
        force_sampling: true,
        ..MapSettings::default()
    };
    for order in [Order::Full, Order::Leading] {
        linear_against_quadrature(&theory, order, settings.clone(), None);
    }
}

/// The expansion at the NNGP point (the default path of a sampled linearised system)
/// against the sampled maps' central differences on the same normals.
/// * One hidden layer: its units read the data's kernel only (no δK), so both use the same
///   estimators (the importance weights' derivative, Price's ½⟨∇²A⟩) and agree to the
///   differences' resolution.
/// * Two hidden layers: ∂⟨φφᵀ⟩/∂K is Price's ½⟨∇²(φφᵀ)⟩ in the expansion and the pathwise
///   derivative in the differences, two estimators from the same samples: within the
///   reported Monte Carlo errors.
/// * Test rows: every block of a joint run, as the differences give them.
#[test]
fn expansion_at_the_nngp_point_agrees_with_the_central_differences() {
    let theory = example("deep_erf");
    let (x, y) = digits(6);
    let run = |layers: f64, differences: bool, replicas: usize| {
        let settings = MapSettings {
            overrides: set(&[("L", layers), ("N", 50.0)]),
            samples: 20_000,
            seed: 5,
            replicas,
            linear_by_differences: differences,
            ..MapSettings::default()
        };
        linear_kernels(&theory, x.view(), y.view(), None, Order::Full, &settings).unwrap()
    };
    let (fast, slow) = (run(1.0, false, 0), run(1.0, true, 0));
    for (f, d) in fast.layers.iter().zip(&slow.layers) {
        for (what, a, b) in [
            ("δC", &f.kernel - &f.nngp, &d.kernel - &d.nngp),
            ("C̃", f.conjugate.clone(), d.conjugate.clone()),
        ] {
            let gap = frobenius(&(&a - &b));
            assert!(
                gap <= 1e-7 * frobenius(&b),
                "{} {what}: {gap} of {}",
                f.name,
                frobenius(&b)
            );
        }
    }

    let (fast, slow) = (run(2.0, false, 16), run(2.0, true, 0));
    let mut worst = 0.0f64;
    for (f, d) in fast.layers.iter().zip(&slow.layers) {
        for (what, a, b, err) in [
            (
                "δC",
                &f.kernel - &f.nngp,
                &d.kernel - &d.nngp,
                f.kernel_error.as_ref(),
            ),
            (
                "C̃",
                f.conjugate.clone(),
                d.conjugate.clone(),
                f.conjugate_error.as_ref(),
            ),
        ] {
            let err = err.expect("replicas give standard errors");
            for ((a, b), e) in a.iter().zip(b.iter()).zip(err.iter()) {
                let z = (a - b) / e;
                assert!(z.abs() < 4.0, "{} {what}: {a} vs {b} ± {e}", f.name);
                worst = worst.max(z.abs());
            }
        }
    }
    // not the same numbers: the two estimators of ∂⟨φφᵀ⟩/∂K differ by sampling noise
    assert!(worst > 1e-3, "largest |z| = {worst}");

    // test rows (one layer: the same estimators), every block to the differences' resolution
    let (x_test, _) = digits(10);
    let x_test = x_test.slice(ndarray::s![6.., ..]).to_owned();
    let joint = |differences: bool| {
        let settings = MapSettings {
            overrides: set(&[("L", 1.0), ("N", 50.0)]),
            samples: 20_000,
            seed: 5,
            replicas: 0,
            linear_by_differences: differences,
            ..MapSettings::default()
        };
        linear_kernels(
            &theory,
            x.view(),
            y.view(),
            Some(x_test.view()),
            Order::Full,
            &settings,
        )
        .unwrap()
    };
    let (fast, slow) = (joint(false), joint(true));
    for (f, d) in fast.layers.iter().zip(&slow.layers) {
        assert_eq!(f.kernel.dim(), (10, 10));
        let (a, b) = (&f.kernel - &f.nngp, &d.kernel - &d.nngp);
        let gap = frobenius(&(&a - &b));
        assert!(
            gap <= 1e-7 * frobenius(&b),
            "{}: {gap} of {}",
            f.name,
            frobenius(&b)
        );
        // the test rows moved too
        let test = b.slice(ndarray::s![6.., ..]).to_owned();
        assert!(frobenius(&test) > 0.1 * frobenius(&b), "{}", f.name);
    }
}

#[test]
fn test_rows_of_the_linearised_system_leave_its_training_block_alone() {
    // the test rows join the kernels without conjugate entries: the training block is the
    // training-only solution, and test rows at the training patterns repeat it (deep linear,
    // exact, so both to rounding)
    let theory = example("deep_linear");
    let (x, y) = digits(6);
    let settings = MapSettings {
        overrides: set(&[("L", 2.0), ("N", 20.0), ("kappa", 0.1)]),
        ..MapSettings::default()
    };
    let alone = linear_kernels(&theory, x.view(), y.view(), None, Order::Full, &settings).unwrap();
    let joint = linear_kernels(
        &theory,
        x.view(),
        y.view(),
        Some(x.view()),
        Order::Full,
        &settings,
    )
    .unwrap();
    for (a, j) in alone.layers.iter().zip(&joint.layers) {
        let shift = frobenius(&(&a.kernel - &a.nngp));
        let train = j.kernel.slice(ndarray::s![..6, ..6]).to_owned();
        let test = j.kernel.slice(ndarray::s![6.., 6..]).to_owned();
        let cross = j.kernel.slice(ndarray::s![..6, 6..]).to_owned();
        for (what, block) in [("training", &train), ("test", &test), ("cross", &cross)] {
            let gap = frobenius(&(block - &a.kernel));
            assert!(gap < 1e-6 * shift, "{} {what}: {gap} of {shift}", a.name);
        }
    }
    // the GP at the training patterns with the adapted kernel
    let prediction = joint.prediction.expect("a readout");
    assert_eq!(prediction.mean.nrows(), 6);
    assert!(prediction.mean.iter().all(|v| v.is_finite()));
}

#[test]
fn map_minus_linearised_shrinks_like_one_over_n_at_p50() {
    // deep linear on 50 real digits: both exact (Gaussian closed forms), so the difference
    // N·(C_MAP − C_linear) is the O(1/N) remainder of the linearisation alone
    let theory = example("deep_linear");
    let (x, y) = digits(50);
    let remainder = |n: f64| {
        let settings = MapSettings {
            overrides: set(&[("L", 2.0), ("N", n), ("kappa", 0.1)]),
            ..MapSettings::default()
        };
        let map = map_kernels(&theory, x.view(), y.view(), None, &settings).unwrap();
        let linear =
            linear_kernels(&theory, x.view(), y.view(), None, Order::Full, &settings).unwrap();
        let (a, b) = (map.layers.last().unwrap(), linear.layers.last().unwrap());
        let shift = frobenius(&(&a.kernel - &a.nngp)) * n;
        (frobenius(&(&a.kernel - &b.kernel)) * n, shift)
    };
    let (r100, shift100) = remainder(100.0);
    let (r1000, shift1000) = remainder(1000.0);
    let (r10000, shift10000) = remainder(10000.0);
    // N·δC converges (to 91.1 normwise); the linearisation misses it by tens of percent where
    // P/N = 0.5 — the proportional regime, higher orders in P/N (measured 29 %) — and its
    // remainder N·‖C_MAP − C_lin‖ falls like 1/N once P ≪ N (22.2, 3.96, 0.426)
    assert!(
        (shift10000 / shift1000 - 1.0).abs() < 0.05,
        "{shift1000} {shift10000}"
    );
    assert!(
        (0.1..0.6).contains(&(r100 / shift100)),
        "{r100} of {shift100}"
    );
    assert!(r1000 < r100 / 3.0, "{r100} → {r1000}");
    let ratio = r1000 / r10000;
    assert!(
        (8.0..12.0).contains(&ratio),
        "N·‖C_MAP − C_lin‖: {r1000} → {r10000}, ratio {ratio}"
    );
}

#[test]
fn newton_krylov_reaches_the_sweeps_fixed_point_on_sampled_units() {
    // deep erf on 12 digits, importance-sampled: both iterations solve the same
    // deterministic map (common random numbers), so they agree far below the Monte Carlo
    // error; and where the sweeps crawl (small N, strong tilt) Newton takes fewer of them
    // than plain damped sweeps
    let theory = example("deep_erf");
    let (x, y) = digits(12);
    let solve = |n: f64, iteration, anderson_memory| {
        let settings = MapSettings {
            overrides: set(&[("N", n), ("L", 2.0)]),
            samples: 4000,
            replicas: 0,
            tolerance: 1e-11,
            iteration,
            anderson_memory,
            ..MapSettings::default()
        };
        map_kernels(&theory, x.view(), y.view(), None, &settings).unwrap()
    };
    for n in [100.0, 30.0] {
        let anderson = solve(n, SaddleIteration::Anderson, 6);
        let newton = solve(n, SaddleIteration::NewtonKrylov, 6);
        let damped = solve(n, SaddleIteration::Anderson, 0);
        assert!(newton.residual <= 1e-11, "{}", newton.residual);
        for ((a, b), c) in anderson
            .layers
            .iter()
            .zip(&newton.layers)
            .zip(&damped.layers)
        {
            let shift = frobenius(&(&a.kernel - &a.nngp));
            assert!(
                shift > 1e-3 * frobenius(&a.nngp),
                "no adaptation at N = {n}"
            );
            for other in [b, c] {
                let gap = frobenius(&(&a.kernel - &other.kernel));
                assert!(
                    gap <= 1e-8 * shift,
                    "N = {n}, {}: {gap:e} of {shift:e}",
                    a.name
                );
                let gap = frobenius(&(&a.conjugate - &other.conjugate));
                assert!(
                    gap <= 1e-8 * frobenius(&a.conjugate),
                    "{}: {gap:e}",
                    a.conjugate_name
                );
            }
        }
        assert!(
            newton.sweeps < damped.sweeps,
            "N = {n}: Newton–Krylov {} sweeps, damped {}",
            newton.sweeps,
            damped.sweeps
        );
    }
    // relu: the sampled map jumps by O(1/M) where a sample crosses the kink, so both stop
    // at a relative change of 4/M, and Newton's products difference over √(4/M)
    let relu = example("deep_relu");
    let solve = |iteration| {
        let settings = MapSettings {
            overrides: set(&[("N", 100.0), ("L", 2.0)]),
            samples: 4000,
            replicas: 0,
            iteration,
            ..MapSettings::default()
        };
        map_kernels(&relu, x.view(), y.view(), None, &settings).unwrap()
    };
    let (anderson, newton) = (
        solve(SaddleIteration::Anderson),
        solve(SaddleIteration::NewtonKrylov),
    );
    assert!(newton.residual <= 4.0 / 4000.0, "{}", newton.residual);
    for (a, b) in anderson.layers.iter().zip(&newton.layers) {
        let shift = frobenius(&(&a.kernel - &a.nngp));
        let gap = frobenius(&(&a.kernel - &b.kernel));
        assert!(shift > 1e-3 * frobenius(&a.nngp), "no adaptation");
        assert!(gap <= 0.02 * shift, "relu {}: {gap:e} of {shift:e}", a.name);
    }
}

#[test]
fn bad_settings_and_unsupported_theories_are_named_errors() {
    let theory = example("deep_erf");
    let x = t1_inputs();
    let y = array![[1.0], [-1.0]];
    let run = |settings: MapSettings| map_kernels(&theory, x.view(), y.view(), None, &settings);
    let zero = run(MapSettings {
        samples: 0,
        ..MapSettings::default()
    });
    assert!(matches!(
        zero,
        Err(FiniteWidthError::BadSetting {
            name: "samples",
            ..
        })
    ));
    let damping = run(MapSettings {
        damping: 1.5,
        ..MapSettings::default()
    });
    assert!(matches!(
        damping,
        Err(FiniteWidthError::BadSetting {
            name: "damping",
            ..
        })
    ));
    let replicas = run(MapSettings {
        replicas: 1,
        ..MapSettings::default()
    });
    assert!(matches!(
        replicas,
        Err(FiniteWidthError::BadSetting {
            name: "replicas",
            ..
        })
    ));

    // binary units: the sampled map is piecewise constant
    let binary = example("binary_sign");
    let err = map_kernels(&binary, x.view(), y.view(), None, &MapSettings::default()).unwrap_err();
    assert!(err.to_string().contains("jumps"), "{err}");

    // a tilt that is not normalisable at any damping: linear units, N = 1, strong data
    let linear = example("deep_linear");
    let (xd, yd) = digits(20);
    let err = map_kernels(
        &linear,
        xd.view(),
        yd.view(),
        None,
        &MapSettings {
            overrides: set(&[("N", 1.0), ("kappa", 1e-4)]),
            max_sweeps: 200,
            ..MapSettings::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            FiniteWidthError::NotNormalisable { .. } | FiniteWidthError::NotConverged { .. }
        ),
        "{err}"
    );
}

/// THEORY.md §5.4: with the Wishart term, scaling every layer's kernel by t changes S by
/// P(N − L(P+1))/2 · ln t, so for N < L(P+1) the action has no maximum; the MAP names the
/// fields and the slope instead of sweeping into a degenerate kernel, and solves just above
/// the edge. Without the measure term, and for the linearised system, nothing is refused.
#[test]
fn an_action_without_a_maximum_is_named_not_iterated() {
    let theory = example("deep_linear");
    let (x, y) = digits(20);
    let p = 20.0;
    for (layers, n) in [(2.0, 41.0), (2.0, 30.0), (3.0, 50.0)] {
        let settings = MapSettings {
            overrides: set(&[("N", n), ("L", layers), ("wishart", 1.0)]),
            ..MapSettings::default()
        };
        match map_kernels(&theory, x.view(), y.view(), None, &settings) {
            Err(FiniteWidthError::NoMaximum {
                fields,
                slope,
                rest,
                remedy,
                ..
            }) => {
                let expected = p * (n - layers * (p + 1.0)) / 2.0;
                assert!((slope - expected).abs() < 1e-6, "{slope} vs {expected}");
                assert!((rest + layers * (p + 1.0) * p / 2.0).abs() < 1e-6, "{rest}");
                let needed = layers * (p + 1.0) + 1.0;
                assert!(remedy.contains(&format!("n ≥ {needed}")), "{remedy}");
                let names: Vec<String> = (1..=layers as usize).map(|l| format!("C[{l}]")).collect();
                assert_eq!(fields, names.join(", "));
            }
            other => panic!("L = {layers}, N = {n}: {:?}", other.map(|s| s.sweeps)),
        }
    }
    // just above the edge the maximum exists and the sweeps reach it; without the measure
    // term any width is fine; the linearised system needs no maximum
    for (n, wishart) in [(43.0, 1.0), (5.0, 0.0)] {
        let settings = MapSettings {
            overrides: set(&[("N", n), ("L", 2.0), ("wishart", wishart)]),
            ..MapSettings::default()
        };
        let solution = map_kernels(&theory, x.view(), y.view(), None, &settings)
            .unwrap_or_else(|e| panic!("N = {n}, wishart = {wishart}: {e}"));
        assert!(
            solution
                .layers
                .iter()
                .all(|l| l.kernel.iter().all(|v| v.is_finite()))
        );
    }
    let settings = MapSettings {
        overrides: set(&[("N", 41.0), ("L", 2.0), ("wishart", 1.0)]),
        ..MapSettings::default()
    };
    linear_kernels(&theory, x.view(), y.view(), None, Order::Full, &settings).unwrap();

    // on the command line: exit 1, the fields, the slope and the width needed
    let xf = temp_file("fw_nomax_x.csv", &csv(&x));
    let yf = temp_file("fw_nomax_y.csv", &csv(&y));
    let action = format!("{}/examples/deep_linear.action", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = saddle(&[
        "solve",
        &action,
        "--x",
        path_str(&xf),
        "--y",
        path_str(&yf),
        "--method",
        "map",
        "--set",
        "N=41",
        "--set",
        "wishart=1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("no maximum"), "{err}");
    assert!(
        err.contains("C[1], C[2]") && err.contains("-10·ln t"),
        "{err}"
    );
    assert!(err.contains("n ≥ 43"), "{err}");
    assert!(!err.contains("NaN"), "{err}");
}

#[test]
fn cli_solves_the_map_for_many_patterns_and_reports_its_estimators() {
    let (x, y) = digits(8);
    let xf = temp_file("fw_x8.csv", &csv(&x));
    let yf = temp_file("fw_y8.csv", &csv(&y));
    let action = format!("{}/examples/deep_erf.action", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = saddle(&[
        "solve",
        &action,
        "--x",
        path_str(&xf),
        "--y",
        path_str(&yf),
        "--method",
        "map",
        "--set",
        "N=200",
        "--set",
        "L=2",
        "--samples",
        "4000",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["method"], "map");
    assert_eq!(v["samples"], 4000);
    assert_eq!(v["populations"][0]["estimator"], "importance sampling");
    assert!(v["standard_errors"]["C[2]"][0][0].as_f64().unwrap() > 0.0);

    // the same MAP by Newton–Krylov: the same kernels (the same normals), another count
    let linear = format!("{}/examples/deep_linear.action", env!("CARGO_MANIFEST_DIR"));
    let args = |iterate: &'static str, method: &'static str| {
        [
            "solve",
            linear.as_str(),
            "--x",
            path_str(&xf),
            "--y",
            path_str(&yf),
            "--method",
            method,
            "--iterate",
            iterate,
            "--json",
        ]
        .map(str::to_string)
    };
    let run = |a: [String; 11]| saddle(&a.each_ref().map(String::as_str));
    let (code, anderson, err) = run(args("anderson", "map"));
    assert_eq!(code, 0, "{err}");
    let (code, newton, err) = run(args("newton-krylov", "map"));
    assert_eq!(code, 0, "{err}");
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&anderson).unwrap(),
        serde_json::from_str(&newton).unwrap(),
    );
    let readout = |v: &serde_json::Value| -> Vec<f64> {
        v["kernels"]["C[2]"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|e| e.as_f64().unwrap()))
            .collect()
    };
    for (x, y) in readout(&a).iter().zip(readout(&b)) {
        assert!((x - y).abs() < 1e-9, "{x} vs {y}");
    }
    assert_ne!(a["iterations"], b["iterations"]);
    let (code, _, err) = run(args("damped", "linear"));
    assert_eq!(code, 1);
    assert!(err.contains("--iterate"), "{err}");

    let (code, out, err) = saddle(&[
        "solve",
        &linear,
        "--x",
        path_str(&xf),
        "--y",
        path_str(&yf),
        "--method",
        "map",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Gaussian closed form (exact)"), "{out}");

    let (code, out, err) = saddle(&[
        "solve",
        &linear,
        "--x",
        path_str(&xf),
        "--y",
        path_str(&yf),
        "--x-test",
        path_str(&xf),
        "--y-test",
        path_str(&yf),
        "--method",
        "map",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["test_mse"].as_f64().unwrap() >= 0.0);
    assert!(v["nngp_prediction"]["test_accuracy"].as_f64().unwrap() > 0.5);
    assert_eq!(v["prediction"]["mean"].as_array().unwrap().len(), 8);

    // the linearised system at P = 8, predicting on test patterns (here the training ones)
    let (code, out, err) = saddle(&[
        "solve",
        &action,
        "--x",
        path_str(&xf),
        "--y",
        path_str(&yf),
        "--x-test",
        path_str(&xf),
        "--y-test",
        path_str(&yf),
        "--method",
        "linear",
        "--set",
        "N=200",
        "--set",
        "L=2",
        "--samples",
        "4000",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["method"], "linear");
    assert_eq!(v["replicas"], 16);
    assert_eq!(v["replica_samples"], 2000);
    assert!(v["standard_errors"]["C[2]"][0][0].as_f64().unwrap() > 0.0);
    assert_eq!(v["prediction"]["mean"].as_array().unwrap().len(), 8);
    assert!(v["test_mse"].as_f64().unwrap() >= 0.0);
    // the linear system's measure is untilted: no effective sample size to report
    assert!(v["populations"][0].get("effective_samples").is_none());

    let (code, _, err) = saddle(&[
        "solve",
        &action,
        "--x",
        path_str(&xf),
        "--y",
        path_str(&yf),
        "--method",
        "map",
        "--samples",
        "0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("samples = 0"), "{err}");
}
