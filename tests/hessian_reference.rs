//! S⁽²⁾ at the NNGP point from the derivation (THEORY.md §4.4): the (C̃, C̃) block is
//! (g²/N) V with the connected four-point function of T8, the (C̃⁽ˡ⁾, C⁽ˡ⁾) block is −𝟙 on
//! symmetric directions, and the data block is H[E] = ½ Σ_d [AEA − AEA y yᵀ A − A y yᵀ AEA].
//! Every block of every example is also checked against the num-dual Hessian of the action: at
//! P = 1 (recurrent included) and at P = 2 along every symmetric unit direction (layered and
//! binary examples).

use ndarray::{Array2, array};
use saddle::derive::grad::Variable;
use saddle::derive::hessian::{HessianBlock, second_variation};
use saddle::numeric::action::ActionEvaluator;
use saddle::solve::nngp::{Kernels, evaluate_matrix};

fn theory() -> saddle::Theory {
    // one erf layer on a given input kernel C⁽⁰⁾ = X Xᵀ, with a readout
    let source = "theory t\nparam g = 1.5\nparam gb = 0.1\nparam N = 50\nparam kappa = 0.1\nparam L: int = 1\n\
                  phi(x) = erf(sqrt(pi) / 2 * x)\ndata X, Y\nkernel C[l] for l in 0..=L\nconj Ct[l] of C[l] for l in 1..=L\n\
                  C[0] = X X^T\n\
                  action S = sum(l in 1..=L, - tr(Ct[l]^T C[l]) + N * ln E[exp(g / N * phi(h)^T Ct[l] phi(h)) | h ~ N(0, C[l-1])] + gb * tr(Ct[l]^T ones))\n\
                  - 1/2 * tr(Y^T inv(C[L] + kappa * I) Y) - D/2 * logdet(C[L] + kappa * I)\n";
    saddle::compile(source, "t.action").unwrap_or_else(|d| panic!("{}", d.render(false)))
}

fn block<'a>(
    blocks: &'a [HessianBlock],
    row: &Variable,
    column: &Variable,
) -> &'a saddle::check::ir::Expr {
    let b = blocks
        .iter()
        .find(|b| &b.row == row && &b.column == column)
        .unwrap_or_else(|| panic!("no block ({row:?}, {column:?})"));
    b.map.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn four_point_block_matches_t8() {
    let t = theory();
    let equations = saddle::derive::derive(&t, &[]).expect("derivation");
    let sv = second_variation(&t, &equations);
    let vv = block(
        &sv.blocks,
        &Variable::Conjugate(0, vec![1]),
        &Variable::Conjugate(0, vec![1]),
    );
    let x = array![[1.0, 0.0], [0.6, (1.5f64 - 0.36).sqrt()]]; // X Xᵀ = C⁽⁰⁾ of T1
    let y = array![[1.0], [-1.0]];
    let params: Vec<f64> = sv.theory.params.iter().map(|p| p.default).collect();
    let evaluator =
        ActionEvaluator::new(&sv.theory, &params, x.view(), Some(y.view()), 64).expect("evaluator");
    // T8, V⁽¹⁾ on the basis (11, 12, 21, 22)
    let v = [
        [0.11147038, 0.06504878, 0.06504878, 0.01883835],
        [0.06504878, 0.18293591, 0.18293591, 0.06414086],
        [0.01883835, 0.06414086, 0.06414086, 0.12575151],
    ];
    let (g, n) = (1.5, 50.0);
    // symmetric directions: E = e₁₁, e₁₂ + e₂₁, e₂₂
    for (k, (i, j)) in [(0usize, 0usize), (0, 1), (1, 1)].into_iter().enumerate() {
        let mut e = Array2::<f64>::zeros((2, 2));
        e[[i, j]] = 1.0;
        e[[j, i]] = 1.0;
        let values: Vec<f64> = evaluator
            .variables()
            .as_slice()
            .iter()
            .map(|var| match var.name.as_str() {
                "E" => e[[var.row, var.col]],
                "C" if var.row == var.col => 1.0,
                _ => 0.0,
            })
            .collect();
        let m = evaluator.evaluate_expr(vv, &values).expect("evaluates");
        // (g²/N) Σ_(γδ) V_(αβ),(γδ) E_γδ for (αβ) = (11), (12), (22)
        let column = |row: [f64; 4]| {
            if i == j {
                row[2 * i + j]
            } else {
                row[1] + row[2]
            }
        };
        for (r, (a, b)) in [(0usize, 0usize), (0, 1), (1, 1)].into_iter().enumerate() {
            let want = g * g / n * column(v[r]);
            let got = m.get(a, b);
            assert!(
                (got - want).abs() < 1e-8,
                "direction {k}, entry ({a},{b}): {got} vs {want}"
            );
        }
    }
}

#[test]
fn conjugate_field_block_is_minus_the_direction_and_the_data_block_is_h() {
    let t = theory();
    let equations = saddle::derive::derive(&t, &[]).expect("derivation");
    let sv = second_variation(&t, &equations);
    let ct = Variable::Conjugate(0, vec![1]);
    let c1 = Variable::Field(0, vec![1]);
    let minus = block(&sv.blocks, &ct, &c1);
    assert_eq!(
        saddle::syntax::print::print_expr(&saddle::derive::show::to_syntax(&sv.theory, minus)),
        "-E"
    );
    // H[E] at C⁽¹⁾ = [[.8, .3], [.3, .9]], y = (1, −1), κ = 0.1, against the formula of §4.4
    let h = block(&sv.blocks, &c1, &c1);
    let c = array![[0.8, 0.3], [0.3, 0.9]];
    let y = array![[1.0], [-1.0]];
    let e = array![[0.2, -0.7], [-0.7, 0.4]];
    let mut kernels = Kernels::default();
    kernels.entries.insert((0, vec![1]), c.clone());
    kernels
        .entries
        .insert((sv.kernel_direction, vec![]), e.clone());
    let x = Array2::<f64>::eye(2);
    let params: Vec<f64> = sv.theory.params.iter().map(|p| p.default).collect();
    let got = evaluate_matrix(
        &sv.theory,
        &params,
        x.view(),
        Some(y.view()),
        &kernels,
        h,
        "H[E]",
    )
    .expect("evaluates");
    let a = inverse2(&(&c + &(Array2::<f64>::eye(2) * 0.1)));
    let yy = y.dot(&y.t());
    let aea = a.dot(&e).dot(&a);
    let want = (&aea - &aea.dot(&yy).dot(&a) - &a.dot(&yy).dot(&aea)) * 0.5;
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((g - w).abs() < 1e-12, "H[E] = {got}, expected {want}");
    }
}

fn inverse2(m: &Array2<f64>) -> Array2<f64> {
    let det = m[[0, 0]] * m[[1, 1]] - m[[0, 1]] * m[[1, 0]];
    array![
        [m[[1, 1]] / det, -m[[0, 1]] / det],
        [-m[[1, 0]] / det, m[[0, 0]] / det]
    ]
}

/// Mean-field blocks (binary_threshold, one layer): the (m̃, m̃) block applied to a direction
/// equals the num-dual Hessian of the numerically evaluated action contracted with it.
#[test]
fn mean_field_block_matches_the_ad_hessian() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/binary_threshold.action"
    );
    let t =
        saddle::compile(&std::fs::read_to_string(path).expect("example"), path).expect("checks");
    let equations = saddle::derive::derive(&t, &[("L".into(), 1.0)]).expect("derivation");
    let sv = second_variation(&t, &equations);
    let mt = Variable::Conjugate(0, vec![1]);
    let map = block(&sv.blocks, &mt, &mt);
    let (x, y) = (array![[1.0, 0.0], [0.6, 0.8]], array![[1.0], [-1.0]]);
    let params: Vec<f64> = sv.theory.params.iter().map(|p| p.default).collect();
    let evaluator =
        ActionEvaluator::new(&sv.theory, &params, x.view(), Some(y.view()), 20).expect("evaluator");
    let vars = evaluator.variables().as_slice().to_vec();
    let at: Vec<f64> = vars
        .iter()
        .map(|v| match v.name.as_str() {
            "Q" if v.row == v.col => 0.5,
            "Q" => 0.1,
            "m" => 0.3,
            _ => 0.0,
        })
        .collect();
    let (_, _, hessian) = evaluator.hessian(&at).expect("AD Hessian");
    let mt_index: Vec<usize> = vars
        .iter()
        .enumerate()
        .filter(|(_, v)| v.name == "mt")
        .map(|(i, _)| i)
        .collect();
    for direction in 0..2 {
        let mut values = at.clone();
        for (i, v) in vars.iter().enumerate() {
            if v.name == "e" {
                values[i] = if v.row == direction { 1.0 } else { 0.0 };
            }
        }
        let got = evaluator.evaluate_expr(map, &values).expect("evaluates");
        for a in 0..2 {
            let want = hessian[mt_index[a]][mt_index[direction]];
            assert!(
                (got.get(a, 0) - want).abs() <= 1e-12 * want.abs().max(1e-3),
                "({a}, {direction}): {} vs {want}",
                got.get(a, 0)
            );
        }
    }
}

/// S⁽²⁾ of `example` with `overrides`, and the evaluator of its action (with the direction
/// fields) on inputs `x`, targets `y` at quadrature order `order`.
fn second_variation_and_evaluator(
    example: &str,
    overrides: &[(&str, f64)],
    x: &Array2<f64>,
    y: &Array2<f64>,
    order: usize,
) -> (saddle::derive::hessian::SecondVariation, ActionEvaluator) {
    let path = format!("{}/examples/{example}.action", env!("CARGO_MANIFEST_DIR"));
    let t =
        saddle::compile(&std::fs::read_to_string(&path).expect("example"), &path).expect("checks");
    let owned: Vec<(String, f64)> = overrides.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let equations = saddle::derive::derive(&t, &owned).expect("derivation");
    let sv = second_variation(&t, &equations);
    let mut params: Vec<f64> = sv.theory.params.iter().map(|p| p.default).collect();
    for (name, value) in overrides {
        params[sv.theory.param(name).expect("parameter")] = *value;
    }
    let evaluator = ActionEvaluator::new(&sv.theory, &params, x.view(), Some(y.view()), order)
        .expect("evaluator");
    (sv, evaluator)
}

/// The evaluator's variables of the field or conjugate entry `v`.
fn variable_range(evaluator: &ActionEvaluator, v: &Variable) -> std::ops::Range<usize> {
    use saddle::numeric::action::Owner;
    let (owner, indices) = match v {
        Variable::Field(f, i) => (Owner::Field(*f), i),
        Variable::Conjugate(c, i) => (Owner::Conjugate(*c), i),
    };
    evaluator
        .variables()
        .block(owner, indices)
        .expect("a variable")
}

/// Every block of S⁽²⁾ of an example at P = 1 (where a direction is the number 1 and a block
/// is one second derivative) against the num-dual Hessian of the numerically evaluated action
/// at C̃ = 0, with the kernel entries in `at`. The (C̃, C) blocks of kernels that parametrise a
/// Gaussian measure come from Stein's lemma, AD moves the quadrature nodes: the two agree to
/// the quadrature error (order 96). Every AD entry outside the listed blocks must vanish.
fn blocks_match_the_ad_hessian(
    example: &str,
    overrides: &[(&str, f64)],
    at: impl Fn(&str, &[i64]) -> f64,
) -> (usize, f64) {
    let (x, y) = (array![[0.8, -0.3]], array![[1.0]]);
    let (sv, evaluator) = second_variation_and_evaluator(example, overrides, &x, &y, 96);
    let vars = evaluator.variables().as_slice().to_vec();
    let point: Vec<f64> = vars
        .iter()
        .map(|v| match v.name.as_str() {
            // the directions of kernel and mean columns: at P = 1 a block is then one entry
            "E" | "e" => 1.0,
            name if sv.theory.conjugate(name).is_some() => 0.0,
            name => at(name, &v.indices),
        })
        .collect();
    let (_, _, hessian) = evaluator.hessian(&point).expect("AD Hessian");
    let index = |v: &Variable| variable_range(&evaluator, v).start;
    let mut worst: f64 = 0.0;
    for b in &sv.blocks {
        let map = b.map.as_ref().unwrap_or_else(|e| panic!("{e}"));
        let got = evaluator.evaluate_expr(map, &point).expect("evaluates");
        let want = hessian[index(&b.row)][index(&b.column)];
        let error = (got.get(0, 0) - want).abs() / want.abs().max(1.0);
        worst = worst.max(error);
        assert!(
            error <= 1e-9,
            "{example}: ∂²S/∂{:?}∂{:?}: derived {} vs AD {want}",
            b.row,
            b.column,
            got.get(0, 0)
        );
    }
    for (i, r) in vars.iter().enumerate() {
        for (j, c) in vars.iter().enumerate() {
            let listed = sv.blocks.iter().any(|b| {
                let (bi, bj) = (index(&b.row), index(&b.column));
                (bi, bj) == (i, j) || (bj, bi) == (i, j)
            });
            let direction =
                ["E", "e"].contains(&r.name.as_str()) || ["E", "e"].contains(&c.name.as_str());
            if !listed && !direction {
                assert!(
                    hessian[i][j].abs() <= 1e-9,
                    "{example}: ({r}, {c}) = {} is not listed",
                    hessian[i][j]
                );
            }
        }
    }
    (sv.blocks.len(), worst)
}

/// The recurrent network at T = 2; a cross-time block pairs with its conjugate as −½ on each
/// of C[t, s] and C[s, t].
#[test]
fn recurrent_blocks_match_the_ad_hessian() {
    // C[0, 0] = gu/d x xᵀ + gb = 0.465
    let (blocks, worst) =
        blocks_match_the_ad_hessian("recurrent_erf", &[("T", 2.0)], |_, i| match i {
            [1, 1] => 0.9,
            [2, 2] => 1.3,
            _ => 0.4,
        });
    eprintln!("recurrent S⁽²⁾: {blocks} blocks, worst error {worst:.1e}");
}

/// Deep and binary networks at L = 2: the (C̃⁽²⁾, C⁽¹⁾) block is G⁽²⁾ᵀ through Stein's lemma,
/// next to V, −1 and the data block H; for threshold units also the mean blocks (m̃, m̃),
/// (m̃, Q̃) and G through the mean. The steps of the binary units are cut by the quadrature,
/// so AD sees their measure through the moving cut.
#[test]
fn deep_blocks_match_the_ad_hessian() {
    for example in [
        "deep_erf",
        "deep_tanh",
        "deep_linear",
        "deep_relu",
        "binary_sign",
        "binary_threshold",
    ] {
        let (blocks, worst) =
            blocks_match_the_ad_hessian(
                example,
                &[("L", 2.0)],
                |_, i| {
                    if i == [1] { 0.7 } else { 1.1 }
                },
            );
        eprintln!("{example} S⁽²⁾: {blocks} blocks, worst error {worst:.1e}");
    }
}

/// Every block of S⁽²⁾ at P = 2 against the num-dual Hessian: each block is a linear map of a
/// direction (`E` for kernel columns, `e` for mean columns), so it is applied to every unit
/// direction and compared with the matching column of the AD Hessian. `at(name, indices, row,
/// col)` gives the field entries (a symmetric positive definite point for kernels).
fn blocks_match_the_ad_hessian_at_two_patterns(
    example: &str,
    overrides: &[(&str, f64)],
    order: usize,
    at: impl Fn(&str, &[i64], usize, usize) -> f64,
) -> (usize, f64) {
    let (x, y) = (array![[0.8, -0.3], [0.3, 0.7]], array![[1.0], [-0.6]]);
    let (sv, evaluator) = second_variation_and_evaluator(example, overrides, &x, &y, order);
    let vars = evaluator.variables().as_slice().to_vec();
    let is_direction = |name: &str| ["E", "e"].contains(&name);
    let point: Vec<f64> = vars
        .iter()
        .map(|v| match v.name.as_str() {
            name if is_direction(name) => 0.0,
            name if sv.theory.conjugate(name).is_some() => 0.0,
            name => at(name, &v.indices, v.row, v.col),
        })
        .collect();
    let (_, _, hessian) = evaluator.hessian(&point).expect("AD Hessian");
    let range = |v: &Variable| variable_range(&evaluator, v);
    let mut worst: f64 = 0.0;
    for b in &sv.blocks {
        let map = b.map.as_ref().unwrap_or_else(|e| panic!("{e}"));
        // The direction lives in the row variable's space, the result in the column's.
        let (directions, outputs) = (range(&b.row), range(&b.column));
        let direction = if directions.len() == 4 { "E" } else { "e" };
        for k in directions.clone() {
            let (r, c) = (vars[k].row, vars[k].col);
            if r > c {
                continue;
            }
            // A symmetric unit direction: entries (r, c) and (c, r).
            let set: Vec<usize> = directions
                .clone()
                .filter(|&j| {
                    (vars[j].row, vars[j].col) == (r, c) || (vars[j].row, vars[j].col) == (c, r)
                })
                .collect();
            let values: Vec<f64> = point
                .iter()
                .zip(&vars)
                .map(|(&p, v)| {
                    if v.name == direction {
                        let on = (v.row, v.col) == (r, c) || (v.row, v.col) == (c, r);
                        f64::from(u8::from(on))
                    } else {
                        p
                    }
                })
                .collect();
            let got = evaluator.evaluate_expr(map, &values).expect("evaluates");
            assert_eq!(got.entries().len(), outputs.len(), "{example}: block shape");
            for (i, g) in outputs.clone().zip(got.entries()) {
                let want: f64 = set.iter().map(|&j| hessian[i][j]).sum();
                let error = (g - want).abs() / want.abs().max(1.0);
                worst = worst.max(error);
                assert!(
                    error <= 1e-9,
                    "{example}: ∂²S/∂{}∂{} along ({r}, {c}): derived {g} vs AD {want}",
                    vars[i],
                    vars[k]
                );
            }
        }
    }
    (sv.blocks.len(), worst)
}

/// Deep and binary networks at L = 2, P = 2: every block of S⁽²⁾ along every symmetric unit
/// direction against the AD Hessian. erf and tanh are evaluated at half and a third of the
/// kernel scale, where Gauss–Hermite converges at a debug-affordable order; the binary and
/// ReLU units through the cut quadrature. Measured worst errors: erf 2.7e-14, tanh 6.0e-11,
/// linear 8.9e-16, ReLU 3.0e-15, sign 2.4e-15, threshold 5.6e-16 (17 blocks, means included).
#[test]
fn blocks_match_the_ad_hessian_at_two_patterns_for_every_layered_example() {
    for (example, order, scale) in [
        ("deep_erf", 32, 0.5),
        ("deep_tanh", 32, 0.3),
        ("deep_linear", 12, 1.0),
        ("deep_relu", 24, 1.0),
        ("binary_sign", 24, 1.0),
        ("binary_threshold", 24, 1.0),
    ] {
        let (blocks, worst) = blocks_match_the_ad_hessian_at_two_patterns(
            example,
            &[("L", 2.0)],
            order,
            |_, i, r, c| {
                let diagonal = if i == [1] { 0.7 } else { 1.1 };
                scale
                    * if r == c {
                        diagonal + 0.2 * r as f64
                    } else {
                        0.25
                    }
            },
        );
        eprintln!("{example} S⁽²⁾ at P = 2: {blocks} blocks, worst error {worst:.1e}");
    }
}
