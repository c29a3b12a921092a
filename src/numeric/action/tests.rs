//! Reference values of THEORY.md §4 (T5–T8) and the linear closed form, reproduced by
//! evaluating and differentiating the action.

use ndarray::{Array2, array};
use num_dual::HyperDual64;

use super::{ActionEvaluator, Owner};
use crate::check::Theory;

/// Unit-slope erf, one tilted layer over a free previous kernel `C[0]`: with `N = 1`,
/// `S = λ(Ct[1] | C[0])`. `C[1]` and `Ct[0]` exist only so that every entry is determined.
const TILT_ERF: &str = "theory tilt
param g = 1.5
param N = 1
phi(x) = erf(sqrt(pi) / 2 * x)
data X, Y
kernel C[l] for l in 0..=1
conj Ct[l] of C[l] for l in 0..=1
action S = N * ln E[ exp(g / N * phi(h)^T Ct[1] phi(h)) | h ~ N(0, C[0]) ]
";

/// The data term alone: `S = S_D + P D / 2 ln 2π`.
const OUTPUT: &str = "theory output
param kappa = 0.1
data X, Y
kernel C
conj Ct of C
action S = - 1/2 * tr(Y^T inv(C + kappa * I) Y) - D/2 * logdet(C + kappa * I)
";

pub(super) fn compile(source: &str) -> Theory {
    crate::compile(source, "test.action").unwrap_or_else(|e| panic!("{e:?}"))
}

/// Default parameters with `overrides` applied.
pub(super) fn params(theory: &Theory, overrides: &[(&str, f64)]) -> Vec<f64> {
    let mut values: Vec<f64> = theory.params.iter().map(|p| p.default).collect();
    for (name, value) in overrides {
        values[theory.param(name).expect("parameter exists")] = *value;
    }
    values
}

/// Writes `entries` (row-major) into the variables of `owner[indices]`.
pub(super) fn set(
    evaluator: &ActionEvaluator,
    values: &mut [f64],
    owner: Owner,
    indices: &[i64],
    entries: &[f64],
) {
    let block = evaluator
        .variables()
        .block(owner, indices)
        .expect("entry is a variable");
    values[block].copy_from_slice(entries);
}

/// The variable index of `owner[indices](row, col)`.
fn at(evaluator: &ActionEvaluator, owner: Owner, indices: &[i64], row: usize, col: usize) -> usize {
    evaluator
        .variables()
        .index_of(owner, indices, row, col)
        .expect("variable exists")
}

const C_T5: [f64; 4] = [1.0, 0.6, 0.6, 1.5];
const K_T5: [f64; 4] = [0.10, -0.05, -0.05, 0.08];

/// The T5/T6 set-up: `Ct[1] = k` (N = 1), `C[0] = C`, everything else zero.
fn tilt_point(evaluator: &ActionEvaluator, tilt: &[f64; 4]) -> Vec<f64> {
    let mut values = vec![0.0; evaluator.variables().len()];
    set(evaluator, &mut values, Owner::Field(0), &[0], &C_T5);
    set(evaluator, &mut values, Owner::Field(0), &[1], &C_T5);
    set(evaluator, &mut values, Owner::Conjugate(0), &[1], tilt);
    values
}

/// Asserts `got[(α, β)]` for the entries `[11, 12, 21, 22]` (12 and 21 both `want[1]`).
fn assert_kernel(got: impl Fn(usize, usize) -> f64, want: [f64; 3], tolerance: f64, what: &str) {
    for (row, col, want) in [
        (0, 0, want[0]),
        (0, 1, want[1]),
        (1, 0, want[1]),
        (1, 1, want[2]),
    ] {
        let error = (got(row, col) - want).abs();
        assert!(
            error < tolerance,
            "{what}({row}, {col}): {} vs {want}, error {error:e}",
            got(row, col)
        );
    }
}

fn tilt_evaluator(source: &str, order: usize) -> ActionEvaluator {
    let theory = compile(source);
    let x = Array2::<f64>::eye(2);
    let params = params(&theory, &[]);
    ActionEvaluator::new(&theory, &params, x.view(), None, order).expect("evaluator")
}

#[test]
fn t5_tilted_forward_map_and_cgf_of_erf() {
    let evaluator = tilt_evaluator(TILT_ERF, 64);
    let point = tilt_point(&evaluator, &K_T5);
    let (lambda, gradient) = evaluator.gradient(&point).unwrap();
    // Converged values (order 80 = order 100): λ = 0.0930393364235, ∂S/∂Ct = 0.6417507734,
    // 0.2951956478, 0.7557029618; order 60 is within 2e-11 and 4e-10 of them, order 40 only
    // within 5e-10 and 5e-8 (the diagonal entries of the erf integrand converge slowest).
    // Measured at order 64 against THEORY.md: λ 2.9e-11, ∂S/∂Ct ≤ 3.5e-9, ∂S/∂C ≤ 4.8e-9,
    // i.e. the rounding of the printed digits.
    assert!((lambda - 0.093_039_336_4).abs() < 1e-10, "λ = {lambda}");
    let forward = |r, c| gradient[at(&evaluator, Owner::Conjugate(0), &[1], r, c)];
    assert_kernel(
        forward,
        [0.641_750_77, 0.295_195_65, 0.755_702_96],
        1e-8,
        "∂S/∂Ct",
    );
    // T6 for erf, the backward map ∂λ/∂C in the full-matrix convention.
    let backward = |r, c| gradient[at(&evaluator, Owner::Field(0), &[0], r, c)];
    assert_kernel(
        backward,
        [0.040_673_79, -0.028_999_12, 0.023_769_84],
        1e-8,
        "∂S/∂C",
    );
}

#[test]
fn log_mean_exp_survives_exponents_beyond_overflow() {
    // e^800 overflows f64; ln E[exp(a + 800)] = λ + 800 must not.
    let shifted = TILT_ERF.replace("phi(h)) |", "phi(h) + 800) |");
    let evaluator = tilt_evaluator(&shifted, 64);
    let point = tilt_point(&evaluator, &K_T5);
    let (value, gradient) = evaluator.gradient(&point).unwrap();
    assert!((value - 800.0 - 0.093_039_336_4).abs() < 1e-10, "{value}");
    let forward = |r, c| gradient[at(&evaluator, Owner::Conjugate(0), &[1], r, c)];
    assert!((forward(0, 1) - 0.295_195_65).abs() < 1e-8);
}

#[test]
fn t5_t6_linear_units_match_closed_forms() {
    let evaluator = tilt_evaluator(&TILT_ERF.replace("erf(sqrt(pi) / 2 * x)", "x"), 60);
    let point = tilt_point(&evaluator, &K_T5);
    let (lambda, gradient) = evaluator.gradient(&point).unwrap();
    // λ = -½ ln det(I - 2g k C), g (C⁻¹ - 2gk)⁻¹ and g k (I - 2g C k)⁻¹ (T5, T6). Measured at
    // order 60: λ 1.1e-11, ∂S/∂Ct ≤ 1.6e-9, ∂S/∂C ≤ 3.8e-9 (printed digits).
    assert!((lambda - 0.275_450_684_5).abs() < 1e-10, "λ = {lambda}");
    let forward = |r, c| gradient[at(&evaluator, Owner::Conjugate(0), &[1], r, c)];
    assert_kernel(
        forward,
        [1.890_255_54, 1.116_354_11, 3.013_375_43],
        1e-8,
        "∂S/∂Ct",
    );
    let backward = |r, c| gradient[at(&evaluator, Owner::Field(0), &[0], r, c)];
    assert_kernel(
        backward,
        [0.195_817_36, -0.104_349_18, 0.165_241_23],
        1e-8,
        "∂S/∂C",
    );
}

#[test]
fn t7_output_layer_value_and_full_matrix_gradient() {
    let theory = compile(OUTPUT);
    let x = array![[1.0], [2.0]];
    let y = array![[1.0], [-1.0]];
    let params = params(&theory, &[]);
    let evaluator = ActionEvaluator::new(&theory, &params, x.view(), Some(y.view()), 1).unwrap();
    let mut point = vec![0.0; evaluator.variables().len()];
    set(
        &evaluator,
        &mut point,
        Owner::Field(0),
        &[],
        &[0.8, 0.3, 0.3, 0.9],
    );
    let (value, gradient) = evaluator.gradient(&point).unwrap();
    // The example actions omit -P D / 2 ln 2π of S_D. No quadrature here; measured: S_D 2.9e-10,
    // gradient ≤ 4.4e-9 (printed digits); (1, 2) and (2, 1) each get the printed value.
    let s_d = value - 0.5 * 2.0 * 1.0 * (2.0 * std::f64::consts::PI).ln();
    assert!((s_d + 3.275_726_427).abs() < 1e-9, "S_D = {s_d}");
    let tilde = |r, c| gradient[at(&evaluator, Owner::Field(0), &[], r, c)];
    assert_kernel(
        tilde,
        [0.670_629_48, -1.003_657_98, 0.541_838_13],
        1e-8,
        "∂S_D/∂C",
    );
}

/// ∂²S/∂x_i∂x_j from one hyper-dual pass with ε₁ along `i` and ε₂ along `j`.
pub(super) fn mixed_derivative(evaluator: &ActionEvaluator, at: &[f64], i: usize, j: usize) -> f64 {
    let unit = |k: usize, m: usize| f64::from(u8::from(k == m));
    let point: Vec<HyperDual64> = at
        .iter()
        .enumerate()
        .map(|(k, &x)| HyperDual64::new(x, unit(k, i), unit(k, j), 0.0))
        .collect();
    evaluator.action(&point).expect("action").eps1eps2
}

/// 2×2 helpers for the independent closed form.
fn det(m: [f64; 4]) -> f64 {
    m[0] * m[3] - m[1] * m[2]
}

fn product(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
    ]
}

#[test]
fn deep_linear_action_matches_the_gaussian_cgf() {
    let source = std::fs::read_to_string("examples/deep_linear.action").unwrap();
    let theory = compile(&source);
    let (g, n, kappa) = (1.3, 5.0, 0.1);
    let params = params(&theory, &[("L", 1.0), ("g", g), ("N", n), ("kappa", kappa)]);
    let x = array![[1.0, 0.4], [-0.3, 1.1]];
    let y = array![[1.0], [-0.5]];
    let c1 = [0.9, 0.25, 0.25, 1.1];
    let tilt = [0.3, -0.1, -0.2, 0.25]; // Ct[1], not symmetric: used as it is
    let mut errors = Vec::new();
    for order in [6, 10, 20, 40] {
        let evaluator =
            ActionEvaluator::new(&theory, &params, x.view(), Some(y.view()), order).unwrap();
        let mut point = vec![0.0; evaluator.variables().len()];
        set(&evaluator, &mut point, Owner::Field(0), &[1], &c1);
        set(&evaluator, &mut point, Owner::Conjugate(0), &[1], &tilt);
        let value = evaluator.action(&point).unwrap();

        // C[0] = g0/d X Xᵀ with g0 = 1, d = 2.
        let c0 = [
            (x[[0, 0]].powi(2) + x[[0, 1]].powi(2)) / 2.0,
            (x[[0, 0]] * x[[1, 0]] + x[[0, 1]] * x[[1, 1]]) / 2.0,
            (x[[0, 0]] * x[[1, 0]] + x[[0, 1]] * x[[1, 1]]) / 2.0,
            (x[[1, 0]].powi(2) + x[[1, 1]].powi(2)) / 2.0,
        ];
        // φᵀ Ct φ only sees sym(Ct).
        let sym = [
            tilt[0],
            0.5 * (tilt[1] + tilt[2]),
            0.5 * (tilt[1] + tilt[2]),
            tilt[3],
        ];
        let k_c0 = product(sym.map(|t| 2.0 * g * t / n), c0);
        let cgf = -0.5 * det([1.0 - k_c0[0], -k_c0[1], -k_c0[2], 1.0 - k_c0[3]]).ln();
        let shifted = [c1[0] + kappa, c1[1], c1[2], c1[3] + kappa];
        let (y0, y1) = (y[[0, 0]], y[[1, 0]]);
        let quadratic = (shifted[3] * y0 * y0 - 2.0 * shifted[1] * y0 * y1 + shifted[0] * y1 * y1)
            / det(shifted);
        let trace = tilt.iter().zip(&c1).map(|(t, c)| t * c).sum::<f64>();
        let want = -trace + n * cgf - 0.5 * quadratic - 0.5 * det(shifted).ln();
        errors.push((value - want).abs());
    }
    // Measured: 7e-8 (order 6), 2e-13 (10), 2e-15 (20), 7e-15 (40): the tilt 2g Ct/N C is
    // small, so exp(quadratic) is nearly a low-degree polynomial on the nodes that matter.
    assert!(errors[2] < 1e-12 && errors[3] < 1e-12, "errors {errors:?}");
}

/// THEORY.md T8: V⁽¹⁾ at C⁽⁰⁾ on the ordered basis (11, 12, 21, 22).
const V1: [[f64; 4]; 4] = [
    [0.111_470_38, 0.065_048_78, 0.065_048_78, 0.018_838_35],
    [0.065_048_78, 0.182_935_91, 0.182_935_91, 0.064_140_86],
    [0.065_048_78, 0.182_935_91, 0.182_935_91, 0.064_140_86],
    [0.018_838_35, 0.064_140_86, 0.064_140_86, 0.125_751_51],
];

/// THEORY.md §2: G⁽¹⁾ = g ∂K/∂C (unit-slope erf, g = 1.5, at C⁽⁰⁾), rows (αβ), columns (γδ).
const G1: [[f64; 4]; 4] = [
    [0.286_708_06, 0.0, 0.0, 0.0],
    [-0.098_832_34, 0.269_584_93, 0.269_584_93, -0.075_704_14],
    [-0.098_832_34, 0.269_584_93, 0.269_584_93, -0.075_704_14],
    [0.0, 0.0, 0.0, 0.186_997_26],
];

#[test]
fn t8_hessian_blocks_at_the_nngp_point() {
    let source = std::fs::read_to_string("examples/deep_erf.action").unwrap();
    let theory = compile(&source);
    let (g, gb, n) = (1.5, 0.1, 100.0);
    let params = params(
        &theory,
        &[("L", 1.0), ("g", g), ("gb", gb), ("gb0", 0.1), ("N", n)],
    );
    // g0/d X Xᵀ + gb0 = C⁽⁰⁾ with d = 2: X Xᵀ = 2 (C⁽⁰⁾ - 0.1).
    let x11 = 1.8_f64.sqrt();
    let x = array![[x11, 0.0], [1.0 / x11, (2.8 - 1.0 / 1.8_f64).sqrt()]];
    let y = array![[1.0], [-1.0]];
    let evaluator = ActionEvaluator::new(&theory, &params, x.view(), Some(y.view()), 64).unwrap();
    let mut point = vec![0.0; evaluator.variables().len()];
    let c1 = [0.7, 0.35, 0.35, 0.8];
    set(&evaluator, &mut point, Owner::Field(0), &[1], &c1);
    let (_, gradient, hessian) = evaluator.hessian(&point).unwrap();
    let pairs = [(0, 0), (0, 1), (1, 0), (1, 1)];
    let ct = |(r, c): (usize, usize)| at(&evaluator, Owner::Conjugate(0), &[1], r, c);
    let c = |(r, c): (usize, usize)| at(&evaluator, Owner::Field(0), &[1], r, c);
    let mut worst_v: f64 = 0.0;
    for (a, &p) in pairs.iter().enumerate() {
        for (b, &q) in pairs.iter().enumerate() {
            worst_v = worst_v.max((hessian[ct(p)][ct(q)] * n / (g * g) - V1[a][b]).abs());
            // -tr(Ctᵀ sym C): the projector -(δ_ac δ_bd + δ_ad δ_bc)/2, i.e. -1 on symmetric C.
            let same = f64::from(u8::from(p == q));
            let swapped = f64::from(u8::from(p == (q.1, q.0)));
            let want = -0.5 * (same + swapped);
            assert!(
                (hessian[ct(p)][c(q)] - want).abs() < 1e-14,
                "∂²S/∂Ct{p:?}∂C{q:?}"
            );
        }
    }
    // Measured: 4.4e-9 at order 64 (V printed to 8 digits); order 40 gives 3e-7 on V(11, 11).
    assert!(worst_v < 1e-7, "V error {worst_v:e}");
    // ∂S/∂Ct at Ct = 0 is -C[1] + g K(C[0]) + gb, K of the unit-slope erf in closed form.
    let c0 = C_T5;
    let kernel = |i: usize, j: usize| {
        let scale = |k: usize| 1.0 + std::f64::consts::FRAC_PI_2 * c0[3 * k];
        let rho = std::f64::consts::FRAC_PI_2 * c0[2 * i + j] / (scale(i) * scale(j)).sqrt();
        std::f64::consts::FRAC_2_PI * rho.asin()
    };
    for &(i, j) in &pairs {
        let want = -c1[2 * i + j] + g * kernel(i, j) + gb;
        assert!(
            (gradient[ct((i, j))] - want).abs() < 1e-12,
            "∂S/∂Ct({i}, {j})"
        );
    }
}

#[test]
fn jacobian_g_is_the_mixed_hessian_of_the_tilt_theory() {
    let evaluator = tilt_evaluator(TILT_ERF, 40);
    let point = tilt_point(&evaluator, &[0.0; 4]);
    let pairs = [(0, 0), (0, 1), (1, 0), (1, 1)];
    for (a, &(r, c)) in pairs.iter().enumerate() {
        for (b, &(s, t)) in pairs.iter().enumerate() {
            let i = at(&evaluator, Owner::Conjugate(0), &[1], r, c);
            let j = at(&evaluator, Owner::Field(0), &[0], s, t);
            // N = 1: ∂²S/∂Ct∂C⁽⁰⁾ = G⁽¹⁾ (only this block: 16 passes, not the whole Hessian).
            let second = mixed_derivative(&evaluator, &point, i, j);
            assert!((second - G1[a][b]).abs() < 1e-8, "G[{a}][{b}] = {second}");
        }
    }
}

#[test]
fn evaluate_expr_matches_the_action_and_averages_matrix_integrands() {
    use crate::check::ir::{Covariance, Expr, ExprKind, Shape};
    use crate::derive::build::{mul, node, number, transpose};
    use crate::derive::grad::Variable;
    use num_dual::Dual64;

    use super::ActionError;

    let evaluator = tilt_evaluator(TILT_ERF, 20);
    // C[0] not symmetric: every use must see sym(C[0]).
    let mut point = tilt_point(&evaluator, &K_T5);
    set(
        &evaluator,
        &mut point,
        Owner::Field(0),
        &[0],
        &[1.0, 0.8, 0.4, 1.5],
    );
    let theory = evaluator.theory();
    let body = &theory.action.body;
    let value = evaluator.evaluate_expr(body, &point).unwrap();
    assert_eq!(value.shape(), (1, 1));
    assert_eq!(value.entries()[0], evaluator.action(&point).unwrap());

    // E[h hᵀ | h ~ N(0, C[0])] = sym(C[0]) entry-wise (exact for a quadratic integrand), and
    // the field itself evaluates to sym(C[0]) as it does inside the action.
    let c0 = Variable::Field(0, vec![0]).expr(theory);
    let h = node(
        ExprKind::RandomVar {
            name: "h".into(),
            time: None,
        },
        Shape::VECTOR,
    );
    let second_moment: Expr = node(
        ExprKind::Expectation {
            var: "h".into(),
            body: Box::new(mul(h.clone(), transpose(h))),
            mean: Box::new(number(0.0)),
            cov: Covariance::Matrix(Box::new(c0.clone())),
        },
        Shape::KERNEL,
    );
    let want = [1.0, 0.6, 0.6, 1.5];
    for expr in [&second_moment, &c0] {
        let value = evaluator.evaluate_expr(expr, &point).unwrap();
        assert_eq!(value.shape(), (2, 2));
        for (got, want) in value.entries().iter().zip(want) {
            assert!((got - want).abs() < 1e-13, "{got} vs {want}");
        }
    }
    // Derivatives flow: d/dC[0](0, 1) of E[h hᵀ](1, 0) is ½ (full-matrix convention).
    let i = at(&evaluator, Owner::Field(0), &[0], 0, 1);
    let dual: Vec<Dual64> = point
        .iter()
        .enumerate()
        .map(|(k, &x)| Dual64::new(x, f64::from(u8::from(k == i))))
        .collect();
    let value = evaluator.evaluate_expr(&second_moment, &dual).unwrap();
    assert!((value.get(1, 0).eps - 0.5).abs() < 1e-13);
    // A zero folded to a kernel-shaped number is broadcast to P×P.
    let zero = node(ExprKind::Number(0.0), Shape::KERNEL);
    let value = evaluator.evaluate_expr(&zero, &point).unwrap();
    assert_eq!(value.entries(), &[0.0; 4]);
    // Failures are errors.
    assert!(matches!(
        evaluator.evaluate_expr(body, &point[1..]),
        Err(ActionError::ValueCount { .. })
    ));
    assert!(matches!(
        evaluator.evaluate_expr(
            &Expr {
                shape: Shape::VECTOR,
                ..c0
            },
            &point
        ),
        Err(ActionError::Unsupported { .. })
    ));
}
