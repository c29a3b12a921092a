//! NNGP kernels computed from the derived equations reproduce THEORY.md's reference values
//! (T1: three layers on a 2×2 input kernel for every activation; T11: recurrent kernels).

use ndarray::{Array2, array};
use saddle::solve::nngp::{Kernels, NngpSettings, nngp_kernels};

/// Inputs whose Gram matrix is C⁽⁰⁾ = [[1, 0.6], [0.6, 1.5]] (its Cholesky factor).
fn inputs() -> Array2<f64> {
    array![[1.0, 0.0], [0.6, (1.5f64 - 0.36).sqrt()]]
}

fn deep_theory(phi: &str) -> saddle::Theory {
    let source = format!(
        "theory t\nparam g = 1.5\nparam gb = 0.1\nparam N = 100\nparam L: int = 3\nphi(x) = {phi}\ndata X\n\
         kernel C[l] for l in 0..=L\nconj Ct[l] of C[l] for l in 1..=L\nC[0] = X X^T\n\
         action S = sum(l in 1..=L, - tr(Ct[l]^T C[l]) + N * ln E[exp(g / N * phi(h)^T Ct[l] phi(h)) | h ~ N(0, C[l-1])] + gb * tr(Ct[l]^T ones))\n"
    );
    saddle::compile(&source, "t.action").unwrap_or_else(|d| panic!("{}", d.render(false)))
}

fn entries(k: &Kernels, layer: i64) -> [f64; 3] {
    let m = &k.entries[&(0, vec![layer])];
    [m[[0, 0]], m[[0, 1]], m[[1, 1]]]
}

fn check_t1(phi: &str, expected: [[f64; 3]; 3], tolerance: f64, order: usize) {
    let theory = deep_theory(phi);
    let settings = NngpSettings {
        quadrature_order: order,
        ..NngpSettings::default()
    };
    let kernels = nngp_kernels(&theory, inputs().view(), None, &settings)
        .unwrap_or_else(|e| panic!("{phi}: {e}"));
    for (layer, row) in expected.iter().enumerate() {
        let got = entries(&kernels, layer as i64 + 1);
        for (g, e) in got.iter().zip(row) {
            assert!(
                (g - e).abs() <= tolerance,
                "{phi}, layer {}: got {got:?}, expected {row:?}",
                layer + 1
            );
        }
    }
}

#[test]
fn t1_linear() {
    check_t1(
        "x",
        [[1.6, 1.0, 2.35], [2.5, 1.6, 3.625], [3.85, 2.5, 5.5375]],
        1e-12,
        20,
    );
}

#[test]
fn t1_unit_slope_erf() {
    check_t1(
        "erf(sqrt(pi) / 2 * x)",
        [
            [0.72771607, 0.41191432, 0.84318640],
            [0.63724070, 0.38086324, 0.67893239],
            [0.60026876, 0.38516726, 0.61782974],
        ],
        6e-9,
        20,
    );
}

#[test]
fn t1_plain_erf() {
    check_t1(
        "erf(x)",
        [
            [0.79683858, 0.43779835, 0.90983963],
            [0.73186249, 0.41485850, 0.76986504],
            [0.70748751, 0.42286236, 0.72198959],
        ],
        6e-9,
        20,
    );
}

#[test]
fn t1_relu() {
    check_t1(
        "relu(x)",
        [
            [0.85, 0.65323115, 1.225],
            [0.7375, 0.64044805, 1.01875],
            [0.653125, 0.60672452, 0.8640625],
        ],
        6e-9,
        20,
    );
}

#[test]
fn t1_sign() {
    check_t1(
        "sign(x)",
        [
            [1.6, 0.58889790, 1.6],
            [1.6, 0.45993492, 1.6],
            [1.6, 0.37843184, 1.6],
        ],
        6e-9,
        20,
    );
}

#[test]
fn t1_heaviside() {
    check_t1(
        "step(x)",
        [
            [0.85, 0.59722448, 0.85],
            [0.85, 0.66098895, 0.85],
            [0.85, 0.68768525, 0.85],
        ],
        6e-9,
        20,
    );
}

#[test]
fn t1_tanh_by_quadrature() {
    check_t1(
        "tanh(x)",
        [
            [0.69144174, 0.39485741, 0.80243232],
            [0.59255771, 0.36032386, 0.63194194],
            [0.55276978, 0.36309976, 0.56921400],
        ],
        1e-7,
        120,
    );
}

#[test]
fn t1_user_function_without_closed_form_uses_quadrature() {
    // tanh written through exp: no closed form is recognised, quadrature must agree with tanh.
    check_t1(
        "(exp(2 * x) - 1) / (exp(2 * x) + 1)",
        [
            [0.69144174, 0.39485741, 0.80243232],
            [0.59255771, 0.36032386, 0.63194194],
            [0.55276978, 0.36309976, 0.56921400],
        ],
        1e-7,
        120,
    );
}

/// The input kernel is mirrored whenever it is returned: only a C[0] that is dropped after
/// the pair maps read its upper triangle may skip its lower one.
#[test]
fn a_returned_input_kernel_is_the_full_symmetric_product() {
    use saddle::solve::nngp::Keep;
    let x = Array2::from_shape_fn((300, 5), |(i, j)| {
        ((i * 13 + j * 7) % 17) as f64 / 8.0 - 1.0
    });
    let theory = deep_theory("erf(x)");
    for keep in [Keep::All, Keep::Only(vec![(0, vec![0]), (0, vec![3])])] {
        let settings = NngpSettings {
            keep: keep.clone(),
            ..NngpSettings::default()
        };
        let kernels = nngp_kernels(&theory, x.view(), None, &settings).unwrap();
        let c0 = &kernels.entries[&(0, vec![0])];
        for ((i, j), v) in c0.indexed_iter() {
            let naive: f64 = (0..5).map(|k| x[[i, k]] * x[[j, k]]).sum();
            assert!(
                (v - naive).abs() <= 1e-14 * 5.0,
                "{keep:?} ({i},{j}): {v} vs {naive}"
            );
            assert_eq!(v.to_bits(), c0[[j, i]].to_bits(), "{keep:?} symmetric");
        }
    }
}

/// Hidden layers that are neither returned nor read by anything but the next pair map (a
/// closed form, or the Mehler expansion for tanh) skip their lower triangle; the returned kernel must not notice: bitwise the same as
/// when every layer is kept, and exactly symmetric. The input kernel C[0] is then not
/// mirrored either (300 patterns: several tiles and bands of the pair loop, and two bands of
/// the X Xᵀ product, so that its lower triangle outside the diagonal blocks is never filled).
#[test]
fn keeping_only_the_last_layer_changes_no_bit() {
    use saddle::solve::nngp::{Keep, PairSet};
    let x = Array2::from_shape_fn((300, 5), |(i, j)| {
        ((i * 13 + j * 7) % 17) as f64 / 8.0 - 1.0
    });
    for phi in ["erf(x)", "relu(x)", "x", "tanh(x)"] {
        let theory = deep_theory(phi);
        for pairs in [PairSet::All, PairSet::TrainAndCross(30)] {
            let all = NngpSettings {
                pairs,
                ..NngpSettings::default()
            };
            let last = NngpSettings {
                keep: Keep::Only(vec![(0, vec![3])]),
                ..all.clone()
            };
            let a = nngp_kernels(&theory, x.view(), None, &all).unwrap();
            let b = nngp_kernels(&theory, x.view(), None, &last).unwrap();
            let (ka, kb) = (&a.entries[&(0, vec![3])], &b.entries[&(0, vec![3])]);
            assert_eq!(b.entries.len(), 1);
            for ((i, j), v) in kb.indexed_iter() {
                assert_eq!(
                    v.to_bits(),
                    ka[[i, j]].to_bits(),
                    "{phi} {pairs:?} ({i},{j})"
                );
                assert_eq!(
                    v.to_bits(),
                    kb[[j, i]].to_bits(),
                    "{phi} {pairs:?} symmetric"
                );
            }
        }
    }
}
