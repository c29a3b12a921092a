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

use ndarray::{Array2, ArrayView2};

use crate::check::ir::{FieldKind, Theory};
use crate::derive::derive_forward;
use crate::derive::grad::Variable;
use crate::numeric::action::{ActionError, ActionEvaluator, Owner};

use super::nngp::{EntryKey, Kernels, NngpError, NngpSettings, nngp_kernels};

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

/// N·Var of every entry a forward equation determines, in order, at width `width` (the
/// theory's `N`, which only scales: the result is N·Var).
pub fn prior_variances(
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
    quadrature_order: usize,
) -> Result<Vec<EntryVariance>, OneLoopError> {
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
    let kernels = nngp_kernels(theory, x, None, settings)?;
    let equations = derive_forward(theory, &bound)?;
    let p = x.nrows();
    let y = Array2::zeros((p, 1));
    let evaluator = ActionEvaluator::new(theory, &params, x, Some(y.view()), quadrature_order)?;
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
    for eq in &equations.forward {
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
    // zero between different populations (independent units), the units' covariance within
    // one (a kernel and a mean of the same layer)
    let noise = faer::Mat::from_fn(n, n, |a, b| {
        hessian[coordinates[a].conjugate][coordinates[b].conjugate]
    });
    use faer::linalg::solvers::Solve;
    let lu = m.partial_piv_lu();
    let left = lu.solve(&noise); // M⁻¹ Q
    let covariance = lu.solve(left.transpose().to_owned()); // M⁻¹ (M⁻¹ Q)ᵀ = M⁻¹ Q M⁻ᵀ
    if (0..n).any(|a| !covariance[(a, a)].is_finite()) {
        return Err(OneLoopError::Unsupported(
            "the propagation I − G is singular".into(),
        ));
    }
    let mut out: Vec<EntryVariance> = entries
        .iter()
        .map(|key| EntryVariance {
            key: key.clone(),
            name: Kernels::name(theory, key),
            n_variance: Array2::zeros(if theory.fields[key.0].kind == FieldKind::Kernel {
                (p, p)
            } else {
                (p, 1)
            }),
        })
        .collect();
    for (a, c) in coordinates.iter().enumerate() {
        let entry = &mut out[c.entry];
        let kernel = theory.fields[entry.key.0].kind == FieldKind::Kernel;
        let (r, col) = c.at;
        let v = covariance[(a, a)] * width;
        entry.n_variance[(r, col)] = v;
        if kernel {
            entry.n_variance[(col, r)] = v;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

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
