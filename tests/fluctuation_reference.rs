//! T9 of THEORY.md §4.8: the linearised fluctuation system (§4.4) and the full saddle point
//! (§4.3) of a two-layer erf network on two patterns, against the printed reference values,
//! against each other (difference ∝ 1/N) and against a Newton step of the AD Hessian.

use ndarray::{Array2, array};
use saddle::solve::fluctuation::{FluctuationSettings, Fluctuations, Order, linear_response};

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
