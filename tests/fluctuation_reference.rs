//! T9 of THEORY.md §4.8: the linearised fluctuation system (§4.4) and the full saddle point
//! (§4.3) of a two-layer erf network on two patterns, against the printed reference values,
//! against each other (difference ∝ 1/N) and against a Newton step of the AD Hessian.

use std::sync::OnceLock;

use nalgebra::{DMatrix, DVector};
use ndarray::{Array2, array};
use saddle::numeric::action::ActionEvaluator;
use saddle::solve::fluctuation::{FluctuationSettings, Fluctuations, Order, linear_response};
use saddle::solve::saddle_point::{SaddlePoint, SaddleSettings, saddle_point};

/// Unit-slope erf, L = 2, g = 1.5, gb = 0.1, κ = 0.1 on C⁽⁰⁾ = X Xᵀ of T1.
fn theory() -> saddle::Theory {
    let source = "theory t9\nparam g = 1.5\nparam gb = 0.1\nparam N = 100\nparam kappa = 0.1\nparam L: int = 2\n\
                  phi(x) = erf(sqrt(pi) / 2 * x)\ndata X, Y\nkernel C[l] for l in 0..=L\nconj Ct[l] of C[l] for l in 1..=L\n\
                  C[0] = X X^T\n\
                  action S = sum(l in 1..=L, - tr(Ct[l]^T C[l]) + N * ln E[exp(g / N * phi(h)^T Ct[l] phi(h)) | h ~ N(0, C[l-1])] + gb * tr(Ct[l]^T ones))\n\
                  - 1/2 * tr(Y^T inv(C[L] + kappa * I) Y) - D/2 * logdet(C[L] + kappa * I)\n";
    saddle::compile(source, "t9.action").unwrap_or_else(|d| panic!("{}", d.render(false)))
}

/// X with X Xᵀ = C⁽⁰⁾ = [[1, 0.6], [0.6, 1.5]] (T1), and y = (1, −1).
fn data() -> (Array2<f64>, Array2<f64>) {
    (
        array![[1.0, 0.0], [0.6, (1.5f64 - 0.36).sqrt()]],
        array![[1.0], [-1.0]],
    )
}

/// [11, 12, 22] of a symmetric 2×2 matrix.
fn entries(m: &Array2<f64>) -> [f64; 3] {
    [m[[0, 0]], m[[0, 1]], m[[1, 1]]]
}

fn assert_close(what: &str, got: [f64; 3], want: [f64; 3], tol: f64) {
    for k in 0..3 {
        assert!(
            (got[k] - want[k]).abs() <= tol,
            "{what}: got {got:?}, want {want:?} (entry {k}, tolerance {tol})"
        );
    }
}

fn linear(n: f64, order: Order) -> Fluctuations {
    let (x, y) = data();
    let settings = FluctuationSettings {
        overrides: vec![("N".into(), n)],
        order,
        ..FluctuationSettings::default()
    };
    linear_response(&theory(), x.view(), Some(y.view()), &settings).expect("linear system")
}

/// T9 "linear system" columns: (N, [N δC⁽¹⁾, N δC⁽²⁾, C̃⁽¹⁾, C̃⁽²⁾], printed decimals).
fn t9_linear() -> Vec<(f64, [[f64; 3]; 4], usize)> {
    vec![
        (
            10.0,
            [
                [-0.1004, -0.6960, -0.1001],
                [-0.1499, -1.0612, -0.1534],
                [0.7690, -1.0960, 0.6489],
                [1.1348, -1.5608, 1.0178],
            ],
            4,
        ),
        (
            100.0,
            [
                [-0.133803, -1.205423, -0.131527],
                [-0.140239, -1.773011, -0.137998],
                [1.542236, -1.968541, 1.312257],
                [2.455047, -2.803330, 2.262463],
            ],
            6,
        ),
        (
            1000.0,
            [
                [-0.14045393, -1.30518085, -0.13779166],
                [-0.13869881, -1.91259079, -0.13534331],
                [1.69304830, -2.13921506, 1.44163043],
                [2.71218825, -3.04638163, 2.50479618],
            ],
            8,
        ),
    ]
}

#[test]
fn nngp_point_and_data_gradient_match_t9() {
    let f = linear(100.0, Order::Full);
    assert_close(
        "C*(1)",
        entries(&f.layers[0].nngp),
        [0.7277160726, 0.4119143242, 0.8431864036],
        1e-10,
    );
    assert_close(
        "C*(2)",
        entries(&f.layers[1].nngp),
        [0.6372407036, 0.3808632351, 0.6789323865],
        1e-10,
    );
    assert_close(
        "S_D(1)",
        entries(&f.layers[1].source),
        [2.7435330529, -3.0760205037, 2.5343350032],
        1e-9,
    );
    assert_close("∂S/∂C(1)", entries(&f.layers[0].source), [0.0; 3], 0.0);
}

#[test]
fn linear_system_matches_t9() {
    for (n, want, decimals) in t9_linear() {
        let f = linear(n, Order::Full);
        let tol = 0.5 * 10f64.powi(-(decimals as i32)) + 1e-12;
        let got = [
            entries(&f.scaled_delta(0).expect("width")),
            entries(&f.scaled_delta(1).expect("width")),
            entries(&f.layers[0].conjugate),
            entries(&f.layers[1].conjugate),
        ];
        for (k, what) in ["N δC(1)", "N δC(2)", "C̃(1)", "C̃(2)"].iter().enumerate() {
            assert_close(&format!("N = {n}, {what}"), got[k], want[k], tol);
        }
    }
}

/// The full saddle points at N = 10, 100, 1000, computed once for all tests. N·δC at
/// N = 1000 needs C to ~1e-12, hence 64 nodes there; 48 suffice for the printed digits at
/// smaller N.
fn full(n: f64) -> &'static SaddlePoint {
    static SOLUTIONS: OnceLock<Vec<(f64, SaddlePoint)>> = OnceLock::new();
    let solutions = SOLUTIONS.get_or_init(|| {
        let (x, y) = data();
        [(10.0, 48), (100.0, 48), (1000.0, 64)]
            .into_iter()
            .map(|(n, order)| {
                let settings = SaddleSettings {
                    overrides: vec![("N".into(), n)],
                    quadrature_order: order,
                    ..SaddleSettings::default()
                };
                let s = saddle_point(&theory(), x.view(), Some(y.view()), &settings)
                    .expect("saddle point");
                (n, s)
            })
            .collect()
    });
    &solutions
        .iter()
        .find(|(m, _)| *m == n)
        .expect("a computed N")
        .1
}

/// T9 "full saddle" columns, as [`t9_linear`].
fn t9_full() -> Vec<(f64, [[f64; 3]; 4], usize)> {
    vec![
        (
            10.0,
            [
                [-0.0878, -0.8949, -0.0906],
                [-0.0441, -1.3877, -0.0486],
                [0.9318, -1.3226, 0.7802],
                [1.2346, -1.6765, 1.1165],
            ],
            4,
        ),
        (
            100.0,
            [
                [-0.131306, -1.247641, -0.129755],
                [-0.119831, -1.842964, -0.117951],
                [1.574260, -2.013422, 1.337609],
                [2.459159, -2.807723, 2.266485],
            ],
            6,
        ),
        (
            1000.0,
            [
                [-0.14017475, -1.30986369, -0.13759468],
                [-0.13645018, -1.92036184, -0.13313720],
                [1.69653809, -2.14412260, 1.44438125],
                [2.71223849, -3.04643487, 2.50484527],
            ],
            8,
        ),
    ]
}

#[test]
fn full_saddle_point_matches_t9() {
    for (n, want, decimals) in t9_full() {
        let s = full(n);
        assert!(s.residual <= 1e-12, "N = {n}: residual {}", s.residual);
        let tol = 0.5 * 10f64.powi(-(decimals as i32)) + 1e-12;
        let got = [
            entries(&s.scaled_delta(0).expect("width")),
            entries(&s.scaled_delta(1).expect("width")),
            entries(&s.layers[0].conjugate),
            entries(&s.layers[1].conjugate),
        ];
        for (k, what) in ["N δC(1)", "N δC(2)", "C̃(1)", "C̃(2)"].iter().enumerate() {
            assert_close(&format!("N = {n}, {what}"), got[k], want[k], tol);
        }
        if n == 100.0 {
            // the full kernels printed under T9
            assert_close(
                "C(1)",
                entries(&s.layers[0].kernel),
                [0.72640301, 0.39943792, 0.84188885],
                5e-9,
            );
            assert_close(
                "C(2)",
                entries(&s.layers[1].kernel),
                [0.63604239, 0.36243359, 0.67775288],
                5e-9,
            );
        }
    }
}

/// max |a − b| / max |b| over the entries.
fn relative_difference(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    let diff = (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    diff / b.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// THEORY.md §10 item 10: at N = 1000 full and linear N·δC agree to 0.5 % (largest entry
/// difference over largest entry, per layer), and the difference falls like 1/N.
#[test]
fn full_and_linear_agree_to_order_one_over_n() {
    let mut differences = Vec::new();
    for n in [100.0, 1000.0] {
        let (f, l) = (full(n), linear(n, Order::Full));
        let mut worst = 0.0f64;
        for i in 0..2 {
            let d = relative_difference(
                &f.scaled_delta(i).expect("width"),
                &l.scaled_delta(i).expect("width"),
            );
            worst = worst.max(d);
        }
        differences.push(worst);
    }
    assert!(
        differences[1] < 0.005,
        "N = 1000: {:.4} %",
        100.0 * differences[1]
    );
    // ∝ 1/N: a tenfold N gives a tenfold smaller difference (the next order, 1/N², shifts
    // the ratio by O(10 %) at N = 100)
    let ratio = differences[0] / differences[1];
    assert!(
        (8.0..12.5).contains(&ratio),
        "difference ratio N=100 : N=1000 = {ratio}"
    );
}

/// The leading-order system (H δC dropped) gives C̃⁽ᴸ⁾ = S_D⁽¹⁾ and C̃⁽ˡ⁾ = G⁽ˡ⁺¹⁾ᵀ C̃⁽ˡ⁺¹⁾
/// exactly, whatever N; its N·δC tends to the full system's as N grows.
#[test]
fn leading_order_back_propagates_the_data_gradient() {
    let lead = linear(1000.0, Order::Leading);
    let source = entries(&lead.layers[1].source);
    assert_close(
        "C̃(2) = S_D(1)",
        entries(&lead.layers[1].conjugate),
        source,
        1e-12,
    );
    let lead10 = linear(10.0, Order::Leading);
    for i in 0..2 {
        assert_close(
            "C̃ does not depend on N at leading order",
            entries(&lead10.layers[i].conjugate),
            entries(&lead.layers[i].conjugate),
            1e-12,
        );
    }
    // G⁽²⁾ᵀ S_D⁽¹⁾ by finite differences of the closed-form NNGP map (THEORY.md §2):
    // C̃⁽¹⁾_γδ = Σ_αβ S_αβ ∂C⁽²⁾_αβ/∂C⁽¹⁾_γδ, full-matrix convention.
    let c1 = lead.layers[0].nngp.clone();
    let s = lead.layers[1].source.clone();
    let h = 1e-6;
    let mut want = Array2::<f64>::zeros((2, 2));
    for (g, d) in [(0, 0), (0, 1), (1, 1)] {
        let shifted = |sign: f64| {
            let mut c = c1.clone();
            // the symmetric pair moves together: half the derivative per entry
            c[[g, d]] += sign * h;
            if g != d {
                c[[d, g]] += sign * h;
            }
            erf_layer(&c)
        };
        let derivative = (shifted(1.0) - shifted(-1.0)) / (2.0 * h);
        let pair = (&s * &derivative).sum();
        let value = if g == d { pair } else { 0.5 * pair };
        want[[g, d]] = value;
        want[[d, g]] = value;
    }
    assert_close(
        "C̃(1) = G(2)ᵀ S_D(1)",
        entries(&lead.layers[0].conjugate),
        entries(&want),
        1e-8,
    );
    // and the full system's N·δC approaches the leading order's like 1/N
    let full_system = linear(1000.0, Order::Full);
    let d = relative_difference(
        &lead.scaled_delta(1).expect("width"),
        &full_system.scaled_delta(1).expect("width"),
    );
    assert!(d < 0.05, "leading vs full at N = 1000: {d}");
}

/// g K_φ(C) + g_b for unit-slope erf, g = 1.5, g_b = 0.1 (THEORY.md §2).
fn erf_layer(c: &Array2<f64>) -> Array2<f64> {
    let s2 = std::f64::consts::PI / 4.0;
    Array2::from_shape_fn((2, 2), |(a, b)| {
        let arg = 2.0 * s2 * c[[a, b]]
            / ((1.0 + 2.0 * s2 * c[[a, a]]) * (1.0 + 2.0 * s2 * c[[b, b]])).sqrt();
        1.5 * 2.0 / std::f64::consts::PI * arg.asin() + 0.1
    })
}

/// Independent second method: one Newton step of the full action from the NNGP point, with
/// the num-dual gradient and Hessian of the numerically evaluated action in the full-matrix
/// variables (reduced to symmetric directions here, solved with nalgebra), is the linear
/// system — at N = 1000 to the quadrature's accuracy.
#[test]
fn linear_system_is_a_newton_step_of_the_ad_action() {
    let (x, y) = data();
    let n = 1000.0;
    let t = theory();
    let mut params: Vec<f64> = t.params.iter().map(|p| p.default).collect();
    params[t.param("N").expect("N")] = n;
    let evaluator =
        ActionEvaluator::new(&t, &params, x.view(), Some(y.view()), 48).expect("evaluator");
    let vars = evaluator.variables().as_slice().to_vec();
    let lin = linear(n, Order::Full);
    let at: Vec<f64> = vars
        .iter()
        .map(|v| match v.name.as_str() {
            "C" => lin.layers[(v.indices[0] - 1) as usize].nngp[[v.row, v.col]],
            _ => 0.0,
        })
        .collect();
    let (_, gradient, hessian) = evaluator.hessian(&at).expect("AD Hessian");
    // symmetric directions: B = e_ab + e_ba for each entry block, a ≤ b
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let mut label = Vec::new();
    for (start, v) in vars.iter().enumerate() {
        if v.row <= v.col {
            let mut b = vec![0.0; vars.len()];
            b[start] = 1.0;
            let mirror = vars
                .iter()
                .position(|w| {
                    w.name == v.name && w.indices == v.indices && w.row == v.col && w.col == v.row
                })
                .expect("mirror entry");
            b[mirror] = 1.0;
            basis.push(b);
            label.push(v.clone());
        }
    }
    let m = basis.len();
    let hr = DMatrix::from_fn(m, m, |i, j| {
        let mut s = 0.0;
        for (p, bp) in basis[i].iter().enumerate() {
            for (q, bq) in basis[j].iter().enumerate() {
                s += bp * hessian[p][q] * bq;
            }
        }
        s
    });
    let gr = DVector::from_fn(m, |i, _| {
        basis[i].iter().zip(&gradient).map(|(b, g)| b * g).sum()
    });
    let step = hr.lu().solve(&(-gr)).expect("non-singular");
    for (k, v) in label.iter().enumerate() {
        let layer = &lin.layers[(v.indices[0] - 1) as usize];
        let want = match v.name.as_str() {
            "C" => layer.delta[[v.row, v.col]],
            _ => layer.conjugate[[v.row, v.col]],
        };
        let scale = if v.name == "C" { 1.0 / n } else { 1.0 };
        assert!(
            (step[k] - want).abs() <= 1e-6 * scale,
            "{v}: Newton step {} vs linear system {want}",
            step[k]
        );
    }
}

fn deep_linear(n: f64) -> (saddle::Theory, Vec<(String, f64)>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/deep_linear.action");
    let source = std::fs::read_to_string(path).expect("example");
    let theory = saddle::compile(&source, path).expect("checks");
    let overrides = vec![("L".into(), 1.0), ("N".into(), n), ("kappa".into(), 1e-12)];
    (theory, overrides)
}

/// T10 / THEORY.md §5.4: for a linear network (L = 1, g = 1, κ → 0, C⁽⁰⁾ = I,
/// y = (1.5, −0.5), N = 10) the saddle point is the closed-form KL-MAP
/// C = K^½ M K^½, M = m_y ê êᵀ + m_⊥ (I − ê êᵀ).
#[test]
fn linear_network_saddle_is_the_kl_map_of_t10() {
    let (theory, overrides) = deep_linear(10.0);
    // C⁽⁰⁾ = g0/d X Xᵀ = I with d = 2
    let x = array![[2f64.sqrt(), 0.0], [0.0, 2f64.sqrt()]];
    let y = array![[1.5], [-0.5]];
    let settings = SaddleSettings {
        overrides,
        quadrature_order: 40,
        ..SaddleSettings::default()
    };
    let s = saddle_point(&theory, x.view(), Some(y.view()), &settings).expect("saddle");
    // closed form with K = I: m_y = [(N−1) + √((N−1)² + 4N yᵀy)]/(2N), m_⊥ = (N−1)/N
    let n = 10.0;
    let r = 1.5f64 * 1.5 + 0.5 * 0.5;
    let m_y = ((n - 1.0) + ((n - 1.0) * (n - 1.0) + 4.0 * n * r).sqrt()) / (2.0 * n);
    let m_perp = (n - 1.0) / n;
    let e = [1.5 / r.sqrt(), -0.5 / r.sqrt()];
    let closed = Array2::from_shape_fn((2, 2), |(a, b)| {
        let delta = if a == b { 1.0 } else { 0.0 };
        m_y * e[a] * e[b] + m_perp * (delta - e[a] * e[b])
    });
    assert_close(
        "closed form = T10",
        entries(&closed),
        [1.10041308, -0.06680436, 0.92226812],
        5e-9,
    );
    // κ = 1e-12 instead of 0 moves C by O(κ)
    assert_close(
        "saddle = KL-MAP",
        entries(&s.layers[0].kernel),
        entries(&closed),
        1e-9,
    );
}

/// Non-convergence is an error that names the iterations and the residual, never a NaN.
#[test]
fn non_convergence_is_reported() {
    let (theory, overrides) = deep_linear(10.0);
    let x = array![[2f64.sqrt(), 0.0], [0.0, 2f64.sqrt()]];
    let y = array![[1.5], [-0.5]];
    let settings = SaddleSettings {
        overrides,
        quadrature_order: 16,
        max_iterations: 1,
        ..SaddleSettings::default()
    };
    let err = saddle_point(&theory, x.view(), Some(y.view()), &settings).expect_err("one step");
    let message = err.to_string();
    assert!(
        message.contains("after 1 Newton iterations") && message.contains("|∂S/∂u|"),
        "{message}"
    );
    let bad = SaddleSettings {
        tolerance: f64::NAN,
        ..settings
    };
    let err = saddle_point(&theory, x.view(), Some(y.view()), &bad).expect_err("NaN tolerance");
    assert!(err.to_string().contains("tolerance = NaN"), "{err}");
}
