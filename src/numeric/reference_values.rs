//! THEORY.md reference values (T1, T2 tanh column, T3, the Jacobian $G^{(1)}$ of §2 and the
//! 4-point tensor $V^{(1)}$ of §4.5) checked through the public API of the numeric module.
//! Test-only.

use crate::numeric::activation::Activation;
use crate::numeric::pair::{PairError, diagonal_expectation, pair_expectation};
use crate::numeric::pair_derivative::{
    diagonal_derivative_expectation, pair_derivative_expectation,
    pair_second_derivative_expectation,
};
use crate::numeric::pair_quadrature::{
    diagonal_expectation_or_quadrature, pair_expectation_or_quadrature,
};
use crate::numeric::quad::GaussHermite;
use nalgebra::{SMatrix, SVector};
use num_dual::{DualNum, first_derivative, jacobian};

/// $C^{(0)}$ of T1 as $[C_{11},C_{12},C_{22}]$.
const C0: [f64; 3] = [1.0, 0.6, 1.5];

/// One NNGP layer $C'=gK_\phi(C)+g_b$ on a $2\times2$ kernel $[C_{11},C_{12},C_{22}]$.
fn layer(
    act: &Activation,
    [c11, c12, c22]: [f64; 3],
    g: f64,
    gb: f64,
    gh: &GaussHermite,
) -> [f64; 3] {
    let diag = |q| diagonal_expectation_or_quadrature(act, q, gh).unwrap();
    let off = pair_expectation_or_quadrature(act, c11, c22, c12, gh).unwrap();
    [g * diag(c11) + gb, g * off + gb, g * diag(c22) + gb]
}

#[test]
fn t1_three_layers() {
    let table: [(Activation, [[f64; 3]; 3], f64); 7] = [
        (
            Activation::Linear,
            [[1.6, 1.0, 2.35], [2.5, 1.6, 3.625], [3.85, 2.5, 5.5375]],
            1e-12,
        ),
        (
            Activation::unit_slope_erf(),
            [
                [0.72771607, 0.41191432, 0.84318640],
                [0.63724070, 0.38086324, 0.67893239],
                [0.60026876, 0.38516726, 0.61782974],
            ],
            1e-8,
        ),
        (
            Activation::Erf { s: 1.0 },
            [
                [0.79683858, 0.43779835, 0.90983963],
                [0.73186249, 0.41485850, 0.76986504],
                [0.70748751, 0.42286236, 0.72198959],
            ],
            1e-8,
        ),
        (
            Activation::Relu,
            [
                [0.85, 0.65323115, 1.225],
                [0.7375, 0.64044805, 1.01875],
                [0.653125, 0.60672452, 0.8640625],
            ],
            1e-8,
        ),
        (
            Activation::Sign,
            [
                [1.6, 0.58889790, 1.6],
                [1.6, 0.45993492, 1.6],
                [1.6, 0.37843184, 1.6],
            ],
            1e-8,
        ),
        (
            Activation::heaviside(),
            [
                [0.85, 0.59722448, 0.85],
                [0.85, 0.66098895, 0.85],
                [0.85, 0.68768525, 0.85],
            ],
            1e-8,
        ),
        (
            Activation::Tanh,
            [
                [0.69144174, 0.39485741, 0.80243232],
                [0.59255771, 0.36032386, 0.63194194],
                [0.55276978, 0.36309976, 0.56921400],
            ],
            1e-7,
        ),
    ];
    let gh = GaussHermite::new(120).unwrap();
    for (act, layers, tolerance) in &table {
        let mut kernel = C0;
        let mut worst = 0.0f64;
        for (l, want) in layers.iter().enumerate() {
            kernel = layer(act, kernel, 1.5, 0.1, &gh);
            for (got, want) in kernel.iter().zip(want) {
                worst = worst.max((got - want).abs());
                assert!(
                    (got - want).abs() < *tolerance,
                    "{} layer {}: {kernel:?} vs {want:?}",
                    act.name(),
                    l + 1
                );
            }
        }
        eprintln!("T1 {}: max abs deviation {worst:e}", act.name());
    }
}

#[test]
fn t2_tanh_column_by_gauss_hermite() {
    let gh = GaussHermite::new(100).unwrap();
    let column = [
        (-0.5, -0.1863244132),
        (0.0, 0.0),
        (0.3, 0.1106683855),
        (0.9, 0.3492033506),
        (0.99, 0.3896653013),
    ];
    for (rho, want) in column {
        let got: f64 =
            pair_expectation_or_quadrature(&Activation::Tanh, 1.0, 1.0, rho, &gh).unwrap();
        eprintln!("T2 tanh rho={rho}: abs deviation {:e}", (got - want).abs());
        assert!((got - want).abs() < 1e-9, "rho={rho}: {got} vs {want}");
    }
}

/// THEORY.md T3, unit-slope erf: (g_b, g, q*, χ₁).
pub(crate) const T3: [(f64, f64, f64, f64); 8] = [
    (0.0, 0.5, 0.0, 0.5),
    (0.0, 1.5, 0.3386199657, 1.0441354093),
    (0.0, 2.0, 0.7038587338, 1.1160760462),
    (0.0, 3.0, 1.4781243287, 1.2628176968),
    (0.1, 0.5, 0.1664602252, 0.4051605484),
    (0.1, 1.5, 0.5696772779, 0.8980757687),
    (0.1, 2.0, 0.8943028437, 1.0246935388),
    (0.1, 3.0, 1.6341877207, 1.2112981760),
];

#[test]
fn t3_fixed_point_and_chi1() {
    let erf = Activation::unit_slope_erf();
    for (gb, g, q_want, chi_want) in T3 {
        // Newton on F(q) = g K(q, q, q) + gb - q with F' from num-dual; halve steps into q < 0.
        let residual = |q| diagonal_expectation(&erf, q).map(|k| k * g + gb - q);
        let mut q = 1.0;
        for _ in 0..100 {
            let (f, df): (f64, f64) = first_derivative(residual, q).unwrap();
            let mut next = q - f / df;
            if next < 0.0 {
                next = 0.5 * q;
            }
            let done = (next - q).abs() < 1e-15;
            q = next;
            if done {
                break;
            }
        }
        let chi = g * pair_derivative_expectation(&erf, q, q, q).unwrap();
        eprintln!(
            "T3 g={g} gb={gb}: |dq*| {:e}, |dchi1| {:e}",
            (q - q_want).abs(),
            (chi - chi_want).abs()
        );
        assert!(
            (q - q_want).abs() < 1e-8,
            "g={g} gb={gb}: q*={q} vs {q_want}"
        );
        assert!(
            (chi - chi_want).abs() < 1e-8,
            "g={g} gb={gb}: chi={chi} vs {chi_want}"
        );
        assert!((chi - g / (1.0 + std::f64::consts::PI * q).sqrt()).abs() < 1e-14);
    }
}

/// $K(\mathrm{sym}(C))$ on the ordered basis $(11,12,21,22)$, entries of $C$ independent.
fn kernel_full_matrix<D: DualNum<Primitive = f64> + Copy>(
    act: &Activation,
    c: &SVector<D, 4>,
) -> Result<SVector<D, 4>, PairError> {
    let sym = (c[1] + c[2]) * 0.5;
    let off = pair_expectation(act, c[0], c[3], sym)?;
    Ok(SVector::from([
        pair_expectation(act, c[0], c[0], c[0])?,
        off,
        off,
        pair_expectation(act, c[3], c[3], c[3])?,
    ]))
}

#[test]
fn g_matrix_by_autodiff_of_the_closed_form() {
    let (g, act) = (1.5, Activation::unit_slope_erf());
    let c0 = SVector::from([C0[0], C0[1], C0[1], C0[2]]);
    let (_, jac) = jacobian(|c| kernel_full_matrix(&act, &c), &c0).unwrap();
    let gmat: SMatrix<f64, 4, 4> = jac * g;
    let printed = [
        [0.28670806, 0.0, 0.0, 0.0],
        [-0.09883234, 0.26958493, 0.26958493, -0.07570414],
        [-0.09883234, 0.26958493, 0.26958493, -0.07570414],
        [0.0, 0.0, 0.0, 0.18699726],
    ];
    let worst = (0..16).map(|n| (gmat[(n / 4, n % 4)] - printed[n / 4][n % 4]).abs());
    eprintln!("G: max abs deviation {:e}", worst.fold(0.0, f64::max));
    for (i, row) in printed.iter().enumerate() {
        for (j, want) in row.iter().enumerate() {
            assert!(
                (gmat[(i, j)] - want).abs() < 1e-7,
                "G[{i}][{j}] = {} vs {want}",
                gmat[(i, j)]
            );
        }
    }
    // Full-matrix Price: off-diagonal entries are halves of the closed-form expectations.
    let (a, b, c) = (C0[0], C0[2], C0[1]);
    let half_slope = 0.5 * g * pair_derivative_expectation(&act, a, b, c).unwrap();
    let half_curv = 0.5 * g * pair_second_derivative_expectation(&act, a, b, c).unwrap();
    let half_curv_b = 0.5 * g * pair_second_derivative_expectation(&act, b, a, c).unwrap();
    let diag = g * diagonal_derivative_expectation(&act, a).unwrap();
    for (got, want) in [
        (gmat[(1, 1)], half_slope),
        (gmat[(1, 0)], half_curv),
        (gmat[(1, 3)], half_curv_b),
        (gmat[(0, 0)], diag),
    ] {
        assert!((got - want).abs() < 1e-14);
    }
}

/// $V_{(\alpha\beta),(\gamma\delta)}=\langle\phi_\alpha\phi_\beta\phi_\gamma\phi_\delta\rangle-K_{\alpha\beta}K_{\gamma\delta}$
/// on the basis $(11,12,21,22)$ by Gauss–Hermite.
fn v_tensor(act: &Activation, [c11, c12, c22]: [f64; 3], gh: &GaussHermite) -> [[f64; 4]; 4] {
    let basis = [(0, 0), (0, 1), (1, 0), (1, 1)];
    let phi_power = |x: f64, n: i32| act.value(x).powi(n);
    let moment = |n_first: i32| {
        gh.expect_2d(
            |u| phi_power(u, n_first),
            |v| phi_power(v, 4 - n_first),
            c11,
            c22,
            c12,
        )
        .unwrap()
    };
    let kernel = |i: usize, j: usize| moment_pair(act, [c11, c12, c22], i + j, gh);
    let mut v = [[0.0; 4]; 4];
    for (row, &(p, q)) in basis.iter().enumerate() {
        for (col, &(r, s)) in basis.iter().enumerate() {
            let firsts = [p, q, r, s].iter().filter(|&&i| i == 0).count() as i32;
            v[row][col] = moment(firsts) - kernel(p, q) * kernel(r, s);
        }
    }
    v
}

/// $K_{11}$, $K_{12}$ or $K_{22}$ for `index_sum` 0, 1, 2.
fn moment_pair(
    act: &Activation,
    [c11, c12, c22]: [f64; 3],
    index_sum: usize,
    gh: &GaussHermite,
) -> f64 {
    let (a, b, c) = [(c11, c11, c11), (c11, c22, c12), (c22, c22, c22)][index_sum];
    pair_expectation_or_quadrature(act, a, b, c, gh).unwrap()
}

#[test]
fn v_tensor_by_gauss_hermite() {
    let gh = GaussHermite::new(64).unwrap();
    // Unit-slope erf at C0 (THEORY.md §4.5, V^(1)).
    let printed = [
        [0.11147038, 0.06504878, 0.06504878, 0.01883835],
        [0.06504878, 0.18293591, 0.18293591, 0.06414086],
        [0.06504878, 0.18293591, 0.18293591, 0.06414086],
        [0.01883835, 0.06414086, 0.06414086, 0.12575151],
    ];
    let v = v_tensor(&Activation::unit_slope_erf(), C0, &gh);
    let worst = (0..16).map(|n| (v[n / 4][n % 4] - printed[n / 4][n % 4]).abs());
    eprintln!("V: max abs deviation {:e}", worst.fold(0.0, f64::max));
    for (row, want_row) in printed.iter().enumerate() {
        for (col, want) in want_row.iter().enumerate() {
            assert!(
                (v[row][col] - want).abs() < 1e-7,
                "V[{row}][{col}] = {}",
                v[row][col]
            );
        }
    }
    // Linear phi: Wick, V = C_ac C_bd + C_ad C_bc (THEORY.md §4.4).
    let c = [[C0[0], C0[1]], [C0[1], C0[2]]];
    let basis = [(0, 0), (0, 1), (1, 0), (1, 1)];
    let v = v_tensor(&Activation::Linear, C0, &gh);
    for (row, &(p, q)) in basis.iter().enumerate() {
        for (col, &(r, s)) in basis.iter().enumerate() {
            let wick = c[p][r] * c[q][s] + c[p][s] * c[q][r];
            assert!((v[row][col] - wick).abs() < 1e-13);
        }
    }
}

#[test]
fn t2c_erf_slope_kernel() {
    // <phi' phi'> for the unit-slope erf at a = 1, b = 1.5, c = 0.6 (THEORY.md §2).
    let got: f64 =
        pair_derivative_expectation(&Activation::unit_slope_erf(), 1.0, 1.5, 0.6).unwrap();
    eprintln!(
        "T2c erf <phi' phi'>: abs deviation {:e}",
        (got - 0.3594465696).abs()
    );
    assert!((got - 0.3594465696).abs() < 1e-10, "{got}");
}
