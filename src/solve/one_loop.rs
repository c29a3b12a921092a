//! Prior fluctuations at one loop (THEORY.md §4.5): the O(1/N) covariance of every field
//! entry of a layered theory at the NNGP point, before any data.
//!
//! Given the earlier fields, a layer's empirical kernel C⁽ˡ⁾ = F(C⁽ˡ⁻¹⁾) + ξ⁽ˡ⁾ fluctuates
//! with the covariance of its units' average, Cov(ξ) = ∂²S/∂C̃⁽ˡ⁾∂C̃⁽ˡ⁾ at C̃ = 0 (= g²V/N),
//! and carries the earlier fluctuations through G = ∂F/∂C⁽ˡ⁻¹⁾ = ∂²S/∂C̃⁽ˡ⁾∂C⁽ˡ⁻¹⁾. In the
//! free coordinates u of all entries (a kernel's upper triangle, a mean's P values),
//! u = G u + ξ, so
//!
//!   Cov(u) = (I − G)⁻¹ Cov(ξ) (I − G)⁻ᵀ,
//!
//! i.e. Σ⁽ˡ⁾ = g²V⁽ˡ⁾/N + G Σ⁽ˡ⁻¹⁾ Gᵀ for a chain. Both blocks come from the exact Hessian of
//! the action ([`ActionEvaluator`], P-dimensional Gauss–Hermite: small P). A recurrent
//! theory's one expectation over a whole trajectory is not integrated this way; its
//! one-loop covariance, with the correlations across time its shared weights carry, is
//! [`super::recurrent_one_loop`].

use faer::linalg::solvers::Solve;
use ndarray::{Array2, ArrayView2};
use num_dual::HyperHyperDual64;
use rayon::prelude::*;

use crate::check::ir::{FieldKind, Theory};
use crate::derive::derive_forward;
use crate::derive::grad::Variable;
use crate::numeric::action::{ActionError, ActionEvaluator, Owner};

use super::nngp::{EntryKey, Kernels, NngpError, NngpSettings, nngp_kernels};

/// How closely two pairs must agree on a pattern's own values. Each pair's 2-D grid differs
/// (its nodes follow the pair's kernel), so they agree to the grid's accuracy (about 1e-6
/// relative); fluctuations that mix patterns differ at order one.
const DIAGONAL_AGREEMENT: f64 = 1e-4;

/// Why the one-loop covariance could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum OneLoopError {
    /// The NNGP point.
    #[error(transparent)]
    Nngp(#[from] NngpError),
    /// The equations.
    #[error("deriving the equations: {0}")]
    Derive(#[from] crate::derive::DeriveError),
    /// The action's Hessian.
    #[error("the action's Hessian: {0}")]
    Action(#[from] ActionError),
    /// A theory outside what this handles.
    #[error("{0}")]
    Unsupported(String),
}

/// N·Cov of one field entry's values with themselves, entry by entry.
#[derive(Debug, Clone)]
pub struct EntryVariance {
    /// The entry.
    pub key: EntryKey,
    /// Its name (`C[2]`).
    pub name: String,
    /// N·Var of each value (P×P for a kernel, P×1 for a mean).
    pub n_variance: Array2<f64>,
}

/// The prior one-loop corrections of one field entry, value by value.
#[derive(Debug, Clone)]
pub struct EntryOneLoop {
    /// The entry.
    pub key: EntryKey,
    /// Its name (`C[2]`).
    pub name: String,
    /// N·Var of each value (P×P for a kernel, P×1 for a mean).
    pub n_variance: Array2<f64>,
    /// The mean shift m of each value: E[C] = C* + m/N + O(1/N²).
    pub n_shift: Array2<f64>,
}

/// N·Var of every entry a forward equation determines, in order, at width `width` (the
/// theory's `N`, which only scales: the result is N·Var). See [`prior_one_loop`].
pub fn prior_variances(
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
    quadrature_order: usize,
) -> Result<Vec<EntryVariance>, OneLoopError> {
    Ok(
        one_loop(theory, x, settings, quadrature_order, false, &|_| {})?
            .into_iter()
            .map(|e| EntryVariance {
                key: e.key,
                name: e.name,
                n_variance: e.n_variance,
            })
            .collect(),
    )
}

/// N·Var and the mean shift m of every entry a forward equation determines, in order
/// (THEORY.md §4.5), for any number of patterns.
///
/// The values of the entries on patterns α, β (C_αα, C_αβ, C_ββ in every layer, the means'
/// α and β values) are a network on those two inputs alone: the units of a population are
/// independent given the earlier fields, and each reads the earlier fields on the same
/// patterns. So each pair is a P = 2 problem, integrated on a 2-dimensional grid of
/// `quadrature_order`² nodes; P(P − 1)/2 of them run in parallel. This holds where every
/// definition of the data is pairwise (C⁽⁰⁾ = g₀XXᵀ/d + g_b₀ is): each pair's NNGP point is
/// checked against the one on all patterns, and a theory whose definitions mix patterns is
/// refused.
pub fn prior_one_loop(
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
    quadrature_order: usize,
) -> Result<Vec<EntryOneLoop>, OneLoopError> {
    prior_one_loop_with_progress(theory, x, settings, quadrature_order, &|_| {})
}

/// [`prior_one_loop`], calling `progress(k)` as the k-th pattern pair is done (of
/// P(P − 1)/2; not called for P ≤ 2). A pair costs seconds (the action's second and third
/// derivatives on the 2-D grid): P = 20 patterns of a 3-layer network take minutes.
pub fn prior_one_loop_with_progress(
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
    quadrature_order: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<EntryOneLoop>, OneLoopError> {
    one_loop(theory, x, settings, quadrature_order, true, progress)
}

/// [`prior_one_loop_with_progress`]; without `with_shift` the mean shift is left at zero
/// (the variances alone cost a Hessian per pair, the shift n² more action evaluations).
fn one_loop(
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
    quadrature_order: usize,
    with_shift: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<EntryOneLoop>, OneLoopError> {
    let params = theory
        .bind(&settings.overrides)
        .map_err(|e| OneLoopError::Unsupported(e.to_string()))?;
    let width = theory
        .param("N")
        .map(|id| params[id])
        .ok_or_else(|| OneLoopError::Unsupported("the theory has no width `N`".into()))?;
    let bound: Vec<(String, f64)> = theory
        .params
        .iter()
        .zip(&params)
        .map(|(p, v)| (p.name.clone(), *v))
        .collect();
    let equations = derive_forward(theory, &bound)?;
    let problem = Prepared {
        theory,
        params: &params,
        width,
        equations: &equations,
        settings,
        quadrature_order,
        with_shift,
    };
    let p = x.nrows();
    if p <= 2 {
        return Ok(problem.block(x)?.0);
    }
    let all = nngp_kernels(theory, x, None, settings)?;
    let pairs: Vec<(usize, usize)> = (0..p)
        .flat_map(|a| (a + 1..p).map(move |b| (a, b)))
        .collect();
    let done = std::sync::atomic::AtomicU64::new(0);
    let blocks = pairs
        .par_iter()
        .map(|&(a, b)| {
            let rows = ndarray::stack(ndarray::Axis(0), &[x.row(a), x.row(b)])
                .map_err(|e| OneLoopError::Unsupported(e.to_string()))?;
            let (entries, kernels) = problem.block(rows.view())?;
            // the pair's NNGP point is the restriction of the one on all patterns
            for (key, value) in &kernels.entries {
                let Some(full) = all.entries.get(key) else {
                    continue;
                };
                // pattern kernels (P×P) and vectors (P×1); anything else is not per pattern
                let square = value.dim() == (2, 2) && full.dim() == (p, p);
                let vector = value.dim() == (2, 1) && full.dim() == (p, 1);
                if !(square || vector) {
                    continue;
                }
                let at = |i: usize, j: usize| {
                    let pick = |k: usize| if k == 0 { a } else { b };
                    if full.ncols() == 1 {
                        full[[pick(i), 0]]
                    } else {
                        full[[pick(i), pick(j)]]
                    }
                };
                let scale = value.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for ((i, j), v) in value.indexed_iter() {
                    if (v - at(i, j)).abs() > 1e-9 * scale {
                        return Err(OneLoopError::Unsupported(format!(
                            "{} on patterns {} and {} alone differs from its value on all \
                             patterns: the theory's definitions mix patterns, so the one-loop \
                             corrections are not computed pair by pair",
                            Kernels::name(theory, key),
                            a + 1,
                            b + 1
                        )));
                    }
                }
            }
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            Ok(entries)
        })
        .collect::<Result<Vec<_>, OneLoopError>>()?;
    let mut out: Vec<EntryOneLoop> = blocks[0]
        .iter()
        .map(|e| {
            let shape = if e.n_variance.ncols() == 1 {
                (p, 1)
            } else {
                (p, p)
            };
            EntryOneLoop {
                key: e.key.clone(),
                name: e.name.clone(),
                n_variance: Array2::zeros(shape),
                n_shift: Array2::zeros(shape),
            }
        })
        .collect();
    // a pattern's own values (diagonal, mean) come from every pair that holds it: they agree
    // unless the fluctuations mix patterns
    let mut seen: Vec<Array2<bool>> = out
        .iter()
        .map(|e| Array2::from_elem(e.n_variance.dim(), false))
        .collect();
    for (&(a, b), block) in pairs.iter().zip(&blocks) {
        for ((entry, pair), seen) in out.iter_mut().zip(block).zip(seen.iter_mut()) {
            let pick = |k: usize| if k == 0 { a } else { b };
            for ((i, j), v) in pair.n_variance.indexed_iter() {
                let (r, c) = if entry.n_variance.ncols() == 1 {
                    (pick(i), 0)
                } else {
                    (pick(i), pick(j))
                };
                let shift = pair.n_shift[[i, j]];
                if seen[[r, c]] {
                    let (v0, m0) = (entry.n_variance[[r, c]], entry.n_shift[[r, c]]);
                    let scale = v0.abs().max(m0.abs()).max(1e-12);
                    if (v - v0).abs() > DIAGONAL_AGREEMENT * scale
                        || (shift - m0).abs() > DIAGONAL_AGREEMENT * scale
                    {
                        return Err(OneLoopError::Unsupported(format!(
                            "{} at pattern {}: the pairs disagree (N·Var {v0} and {v}) — the \
                             fluctuations mix patterns, so they are not computed pair by pair",
                            entry.name,
                            r + 1
                        )));
                    }
                }
                seen[[r, c]] = true;
                entry.n_variance[[r, c]] = *v;
                entry.n_shift[[r, c]] = shift;
            }
        }
    }
    Ok(out)
}

/// What every block of patterns shares.
struct Prepared<'a> {
    theory: &'a Theory,
    params: &'a [f64],
    width: f64,
    equations: &'a crate::derive::equations::Equations,
    settings: &'a NngpSettings,
    quadrature_order: usize,
    with_shift: bool,
}

impl Prepared<'_> {
    /// The one-loop corrections on the patterns `x` (few: the action is integrated on a
    /// P-dimensional grid), and the NNGP point there.
    ///
    /// In the free coordinates u of all entries, u = F(u) + ξ with E[ξ | earlier entries] = 0
    /// (a layer's units are independent given the earlier ones) and F(u) = u + ∂S/∂C̃ at
    /// C̃ = 0; with G = ∂F/∂u and Cov(ξ) = ∂²S/∂C̃∂C̃:
    /// N·Cov(u) = N (I − G)⁻¹ Cov(ξ) (I − G)⁻ᵀ, and E[u] = E[F(u)] gives at one loop
    /// (I − G) m = ½ ∂²F : N·Cov(u), the contraction summed over the eigenvectors vₖ of
    /// N·Cov(u) with third derivatives ∂³S/∂C̃∂vₖ∂vₖ of the action (hyper-hyper-dual numbers).
    fn block(&self, x: ArrayView2<f64>) -> Result<(Vec<EntryOneLoop>, Kernels), OneLoopError> {
        let theory = self.theory;
        let kernels = nngp_kernels(theory, x, None, self.settings)?;
        let p = x.nrows();
        let y = Array2::zeros((p, 1));
        let evaluator = ActionEvaluator::new(
            theory,
            self.params,
            x,
            Some(y.view()),
            self.quadrature_order,
        )?;
        let variables = evaluator.variables();
        let mut point = vec![0.0; variables.len()];
        for (key, value) in &kernels.entries {
            if let Some(block) = variables.block(Owner::Field(key.0), &key.1) {
                for (slot, v) in point[block].iter_mut().zip(value.iter()) {
                    *slot = *v;
                }
            }
        }
        let (_, _, hessian) = evaluator.hessian(&point)?;

        // free coordinates: (entry, row, col) with row ≤ col for kernels
        struct Coordinate {
            entry: usize,
            at: (usize, usize),
            field: [usize; 2],
            conjugate: usize,
        }
        let mut entries: Vec<EntryKey> = Vec::new();
        let mut coordinates: Vec<Coordinate> = Vec::new();
        for eq in &self.equations.forward {
            let Variable::Field(f, idx) = &eq.unknown else {
                continue;
            };
            let kind = theory.fields[*f].kind;
            let conj = theory
                .conjugates
                .iter()
                .position(|c| c.of == *f)
                .ok_or_else(|| {
                    OneLoopError::Unsupported(format!(
                        "{} has no conjugate",
                        Kernels::name(theory, &(*f, idx.clone()))
                    ))
                })?;
            let entry = entries.len();
            entries.push((*f, idx.clone()));
            let cols = if kind == FieldKind::Kernel { p } else { 1 };
            for r in 0..p {
                for c in 0..cols {
                    if kind == FieldKind::Kernel && c < r {
                        continue;
                    }
                    let var = |owner: Owner, r: usize, c: usize| {
                        variables.index_of(owner, idx, r, c).ok_or_else(|| {
                            OneLoopError::Unsupported(format!(
                                "{} is not a free variable of the action",
                                Kernels::name(theory, &(*f, idx.clone()))
                            ))
                        })
                    };
                    let mirrored = if kind == FieldKind::Kernel {
                        (c, r)
                    } else {
                        (r, c)
                    };
                    coordinates.push(Coordinate {
                        entry,
                        at: (r, c),
                        field: [
                            var(Owner::Field(*f), r, c)?,
                            var(Owner::Field(*f), mirrored.0, mirrored.1)?,
                        ],
                        conjugate: var(Owner::Conjugate(conj), r, c)?,
                    });
                }
            }
        }
        let n = coordinates.len();
        // the conjugate pairing −tr(C̃ᵀC) (∂²S/∂C̃∂C = −1 on an entry's own coordinate): what
        // F(u) = u + ∂S/∂C̃ assumes
        for c in &coordinates {
            let own = if c.field[0] == c.field[1] {
                hessian[c.conjugate][c.field[0]]
            } else {
                hessian[c.conjugate][c.field[0]] + hessian[c.conjugate][c.field[1]]
            };
            if (own + 1.0).abs() > 1e-9 {
                return Err(OneLoopError::Unsupported(format!(
                    "{}: ∂²S/∂C̃∂C on its own entry is {own}, not −1 — the one-loop corrections \
                     assume the conjugate term −tr(C̃ᵀC)",
                    Kernels::name(theory, &entries[c.entry])
                )));
            }
        }
        // M = I − G and the noise covariance, in the free coordinates
        let m = faer::Mat::from_fn(n, n, |a, b| {
            let (ca, cb) = (&coordinates[a], &coordinates[b]);
            if a == b {
                return 1.0;
            }
            if ca.entry == cb.entry {
                return 0.0;
            }
            let row = &hessian[ca.conjugate];
            let g = if cb.field[0] == cb.field[1] {
                row[cb.field[0]]
            } else {
                row[cb.field[0]] + row[cb.field[1]]
            };
            -g
        });
        // zero between different populations (independent units), the units' covariance
        // within one (a kernel and a mean of the same layer)
        let noise = faer::Mat::from_fn(n, n, |a, b| {
            hessian[coordinates[a].conjugate][coordinates[b].conjugate]
        });
        let lu = m.partial_piv_lu();
        let left = lu.solve(&noise); // M⁻¹ Q
        let covariance = lu.solve(left.transpose().to_owned()) * self.width; // N M⁻¹ Q M⁻ᵀ
        if (0..n).any(|a| !covariance[(a, a)].is_finite()) {
            return Err(OneLoopError::Unsupported(
                "the propagation I − G is singular".into(),
            ));
        }

        // ½ ∂²F : N·Cov(u) = ½ Σₖ λₖ ∂³S/∂C̃∂vₖ∂vₖ over the eigenpairs of N·Cov(u)
        let symmetric =
            faer::Mat::from_fn(n, n, |a, b| 0.5 * (covariance[(a, b)] + covariance[(b, a)]));
        let eigen = symmetric
            .self_adjoint_eigen(faer::Side::Lower)
            .map_err(|e| OneLoopError::Unsupported(format!("N·Cov: {e:?}")))?;
        let (values, vectors) = (eigen.S().column_vector(), eigen.U());
        let largest = (0..n).map(|k| values[k].abs()).fold(0.0, f64::max);
        let mut curvature = faer::Mat::<f64>::zeros(n, 1);
        for k in (0..n).filter(|_| self.with_shift) {
            let lambda = values[k];
            if lambda.abs() <= 1e-14 * largest {
                continue;
            }
            let mut direction = vec![0.0; point.len()];
            for (b, c) in coordinates.iter().enumerate() {
                direction[c.field[0]] = vectors[(b, k)];
                direction[c.field[1]] = vectors[(b, k)];
            }
            for (a, c) in coordinates.iter().enumerate() {
                let at: Vec<HyperHyperDual64> = point
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let e = if i == c.conjugate { 1.0 } else { 0.0 };
                        HyperHyperDual64::new(v, e, direction[i], direction[i], 0.0, 0.0, 0.0, 0.0)
                    })
                    .collect();
                let third = evaluator.action(&at)?.eps1eps2eps3;
                curvature[(a, 0)] += 0.5 * lambda * third;
            }
        }
        let shift = lu.solve(&curvature);
        if (0..n).any(|a| !shift[(a, 0)].is_finite()) {
            return Err(OneLoopError::Unsupported(
                "the one-loop mean shift came out not finite".into(),
            ));
        }

        let mut out: Vec<EntryOneLoop> = entries
            .iter()
            .map(|key| {
                let shape = if theory.fields[key.0].kind == FieldKind::Kernel {
                    (p, p)
                } else {
                    (p, 1)
                };
                EntryOneLoop {
                    key: key.clone(),
                    name: Kernels::name(theory, key),
                    n_variance: Array2::zeros(shape),
                    n_shift: Array2::zeros(shape),
                }
            })
            .collect();
        for (a, c) in coordinates.iter().enumerate() {
            let entry = &mut out[c.entry];
            let kernel = theory.fields[entry.key.0].kind == FieldKind::Kernel;
            let (r, col) = c.at;
            for (target, v) in [
                (&mut entry.n_variance, covariance[(a, a)]),
                (&mut entry.n_shift, shift[(a, 0)]),
            ] {
                target[(r, col)] = v;
                if kernel {
                    target[(col, r)] = v;
                }
            }
        }
        Ok((out, kernels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn deep_erf(overrides: &[(&str, f64)]) -> (Theory, NngpSettings) {
        let source = std::fs::read_to_string("examples/deep_erf.action").expect("example");
        let theory = crate::compile(&source, "deep_erf.action").expect("checks");
        let settings = NngpSettings {
            overrides: overrides.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            ..NngpSettings::default()
        };
        (theory, settings)
    }

    fn t1_inputs() -> Array2<f64> {
        let s = 2f64.sqrt();
        array![[s, 0.0], [1.2 / s, (3.0f64 - 0.72).sqrt()]]
    }

    #[test]
    fn t8_variance_and_mean_shift() {
        // THEORY.md T8: unit-slope erf, g = 1.5, g_b = 0.1, C⁽⁰⁾ of T1; entries 11, 12, 22
        let (theory, settings) = deep_erf(&[("L", 3.0), ("N", 50.0), ("gb0", 0.0)]);
        let got = prior_one_loop(&theory, t1_inputs().view(), &settings, 48).expect("one loop");
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
        for (l, entry) in got.iter().enumerate() {
            assert_eq!(entry.name, format!("C[{}]", l + 1));
            for (e, (i, j)) in [(0, 0), (0, 1), (1, 1)].into_iter().enumerate() {
                let (v, m) = (entry.n_variance[(i, j)], entry.n_shift[(i, j)]);
                assert!(
                    (v - variance[l][e]).abs() < 1.5e-6,
                    "C[{}] {i}{j}: {v}",
                    l + 1
                );
                assert!((m - shift[l][e]).abs() < 1.5e-6, "C[{}] {i}{j}: {m}", l + 1);
                assert_eq!(entry.n_variance[(j, i)], v);
            }
        }
    }

    #[test]
    fn pairs_are_the_three_pattern_integral() {
        // three patterns: pair by pair on a 2-D grid, against one 3-D integral; a polynomial
        // φ, whose integrands Gauss–Hermite integrates exactly on either grid
        let source = std::fs::read_to_string("examples/deep_erf.action")
            .expect("example")
            .replace("phi(x) = erf(sqrt(pi) / 2 * x)", "phi(x) = x + 0.3 * x * x");
        let theory = crate::compile(&source, "quadratic.action").expect("checks");
        let settings = NngpSettings {
            overrides: vec![("L".into(), 2.0), ("N".into(), 50.0)],
            ..NngpSettings::default()
        };
        let mut x = Array2::zeros((3, 2));
        x.slice_mut(ndarray::s![..2, ..]).assign(&t1_inputs());
        x.row_mut(2).assign(&array![-0.4, 1.1]);
        let pairs = prior_one_loop(&theory, x.view(), &settings, 8).expect("pairs");
        let params = theory.bind(&settings.overrides).expect("binds");
        let bound: Vec<(String, f64)> = theory
            .params
            .iter()
            .zip(&params)
            .map(|(p, v)| (p.name.clone(), *v))
            .collect();
        let equations = derive_forward(&theory, &bound).expect("derives");
        let direct = Prepared {
            theory: &theory,
            params: &params,
            width: 50.0,
            equations: &equations,
            settings: &settings,
            quadrature_order: 8,
            with_shift: true,
        }
        .block(x.view())
        .expect("3-D")
        .0;
        for (a, b) in pairs.iter().zip(&direct) {
            for (what, p, d) in [
                ("N·Var", &a.n_variance, &b.n_variance),
                ("N·shift", &a.n_shift, &b.n_shift),
            ] {
                for ((i, j), v) in d.indexed_iter() {
                    assert!(
                        (p[(i, j)] - v).abs() < 1e-6,
                        "{} {what} {i}{j}: {} vs {v}",
                        a.name,
                        p[(i, j)]
                    );
                }
            }
        }
        // the shift is not zero beyond the first layer
        assert!(pairs[1].n_shift.iter().all(|v| v.abs() > 1e-3));
    }

    #[test]
    fn definitions_that_mix_patterns_are_refused() {
        let source = std::fs::read_to_string("examples/deep_erf.action")
            .expect("example")
            .replace(
                "C[0] = g0 / d * X X^T + gb0",
                "C[0] = g0 / d * X X^T + gb0 * P",
            );
        let theory = crate::compile(&source, "mixing.action").expect("checks");
        let settings = NngpSettings::default();
        let mut x = Array2::zeros((3, 2));
        x.slice_mut(ndarray::s![..2, ..]).assign(&t1_inputs());
        x.row_mut(2).assign(&array![-0.4, 1.1]);
        let err = prior_one_loop(&theory, x.view(), &settings, 24).unwrap_err();
        assert!(err.to_string().contains("mix patterns"), "{err}");
    }

    #[test]
    fn t13_deep_readout_kernel_variance() {
        // THEORY.md T13: one-loop N·Var of K_4 = C[5]/g for the deep network, h(0) ~ N(0, Q)
        let source = std::fs::read_to_string("examples/deep_erf.action").expect("example");
        let theory = crate::compile(&source, "deep_erf.action").expect("checks");
        let l22 = (1.5f64 - 0.36).sqrt();
        let x = array![[1.0, 0.0], [0.6, l22]] * 2f64.sqrt();
        let settings = NngpSettings {
            overrides: [
                ("L", 5.0),
                ("g", 1.5),
                ("gb", 0.0),
                ("gb0", 0.0),
                ("g0", 1.0),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), *v))
            .collect(),
            ..NngpSettings::default()
        };
        let variances = prior_variances(&theory, x.view(), &settings, 48).expect("one loop");
        let last = variances.last().expect("C[5]");
        assert_eq!(last.name, "C[5]");
        let k = &last.n_variance / 2.25;
        for (got, want) in [k[(0, 0)], k[(0, 1)], k[(1, 1)]]
            .into_iter()
            .zip([0.101652, 0.242930, 0.102222])
        {
            assert!((got - want).abs() < 2e-6, "{k:?}");
        }
    }
}
