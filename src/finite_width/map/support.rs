//! What the layered and recurrent solvers share: independent replicas and their standard
//! errors, settings checks, seeded normals, the derived gradients of the rest of the action
//! (conjugates as fields), norms.

use ndarray::{Array1, Array2};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::*;
use crate::check::ir::{Expr, ExprKind, Theory};
use crate::derive::build::{add, neg, node, number, substitute, zero};
use crate::derive::equations::backward_equations_of;
use crate::derive::grad::Variable;
use crate::derive::unroll::{IndexEnv, unroll};
use crate::finite_width::FiniteWidthError;
use crate::numeric::matrix::Value;
use crate::simulate::network::additive_terms;
use crate::solve::nngp::EntryKey;

/// Independent replicas of a solution, for its Monte Carlo standard errors.
pub(in crate::finite_width) struct Replicas<S> {
    /// The replicas' solutions, in replica order.
    pub states: Vec<S>,
    /// √(R·m/M): sd/√R is the error of an estimate from R·m samples, the solution has M.
    pub rescale: f64,
    /// Samples m per replica (0 without replicas).
    pub samples: usize,
}

/// `replicas` independent solves `solve(r, m)` (replica r on fresh normals of m samples):
/// m = M/R, but at least 2000 (or M), so that each replica's importance weights stand on
/// their own. Solved in parallel and collected in replica order, so the errors do not
/// depend on the thread count.
pub(in crate::finite_width) fn replicas_of<S: Send>(
    samples: usize,
    replicas: usize,
    solve: impl Fn(usize, usize) -> Result<S, FiniteWidthError> + Sync,
) -> Result<Replicas<S>, FiniteWidthError> {
    let Some(per) = samples.checked_div(replicas) else {
        return Ok(Replicas {
            states: Vec::new(),
            rescale: 1.0,
            samples: 0,
        });
    };
    let per = per.max(samples.min(MIN_REPLICA_SAMPLES));
    let states = (0..replicas)
        .into_par_iter()
        .map(|r| solve(r, per))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Replicas {
        states,
        rescale: ((per * replicas) as f64 / samples as f64).sqrt(),
        samples: per,
    })
}

/// sd over replicas / √R, entry by entry (None with fewer than two).
pub(in crate::finite_width) fn standard_error(values: &[Array2<f64>]) -> Option<Array2<f64>> {
    let r = values.len() as f64;
    let first = values.first()?;
    if values.len() < 2 {
        return None;
    }
    let mut mean = Array2::<f64>::zeros(first.dim());
    for v in values {
        mean += v;
    }
    mean /= r;
    let mut var = Array2::<f64>::zeros(first.dim());
    for v in values {
        let d = v - &mean;
        var += &(&d * &d);
    }
    Some((var / (r - 1.0)).mapv(f64::sqrt) / r.sqrt())
}

pub(in crate::finite_width) fn check_settings(
    settings: &MapSettings,
) -> Result<(), FiniteWidthError> {
    let bad = |name: &'static str, value: f64, reason: &'static str| {
        Err(FiniteWidthError::BadSetting {
            name,
            value,
            reason,
        })
    };
    if settings.samples < 2 {
        return bad(
            "samples",
            settings.samples as f64,
            "at least 2 Monte Carlo samples are needed",
        );
    }
    if !(settings.tolerance > 0.0 && settings.tolerance.is_finite()) {
        return bad(
            "tolerance",
            settings.tolerance,
            "a positive number is needed",
        );
    }
    if !(settings.damping > 0.0 && settings.damping <= 1.0) {
        return bad("damping", settings.damping, "it must lie in (0, 1]");
    }
    if settings.replicas == 1 {
        return bad(
            "replicas",
            1.0,
            "a standard error needs at least 2 replicas (0 switches them off)",
        );
    }
    Ok(())
}

pub(in crate::finite_width) fn normals(m: usize, p: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((m, p), || StandardNormal.sample(&mut rng))
}

/// ∂R/∂C for each field entry of `keys`, R the action without its cumulant-generating terms
/// (the data term, measure terms), derived symbolically; conjugates as fields at
/// [`CONJUGATE_BASE`]. None where R does not read the entry.
pub(in crate::finite_width) fn rest_gradients(
    theory: &Theory,
    params: &[f64],
    keys: &[EntryKey],
    conjugate_of: &[Option<usize>],
) -> Result<Vec<Option<Expr>>, FiniteWidthError> {
    let ints = theory.int_values(params);
    let action = unroll(&theory.action.body, &IndexEnv::new(), &ints)?;
    let mut rest = zero(action.shape);
    for (sign, term) in additive_terms(&action, 1.0) {
        if term.any(&mut |e| matches!(e.kind, ExprKind::Expectation { .. })) {
            continue;
        }
        rest = add(rest, if sign < 0.0 { neg(term) } else { term });
    }
    let backward = backward_equations_of(theory, rest, &ints)?;
    let mut rest_of = Vec::new();
    for key in keys {
        let conj = conjugate_of[key.0];
        let eq = backward.iter().find(|eq| {
            matches!(&eq.stationary_in, Variable::Field(f, i) if *f == key.0 && *i == key.1)
                && matches!(&eq.unknown, Variable::Conjugate(c, _) if Some(*c) == conj)
        });
        rest_of.push(match eq.map(|eq| &eq.rhs) {
            Some(Ok(rhs)) => Some(with_parameter_values(&conjugates_as_fields(rhs), params)),
            Some(Err(e)) => return Err(FiniteWidthError::Derive(e.clone())),
            None => None,
        });
    }
    Ok(rest_of)
}

/// `e` with every parameter replaced by its bound value, folded: a term switched off by a
/// parameter (`wishart = 0` in `wishart · inv(C)`) disappears instead of being evaluated
/// (the inverse of a rank-deficient kernel where P exceeds the input dimension).
pub(super) fn with_parameter_values(e: &Expr, params: &[f64]) -> Expr {
    substitute(e, &|x| match &x.kind {
        ExprKind::Param(id) => params.get(*id).map(|v| number(*v)),
        _ => None,
    })
}

/// The conjugate of a field entry as written: `Ct[2]`, `Ct[1,3]`.
pub(in crate::finite_width) fn conjugate_name(
    theory: &Theory,
    conjugate_of: &[Option<usize>],
    key: &EntryKey,
) -> String {
    let name = conjugate_of[key.0].map_or_else(String::new, |c| theory.conjugates[c].name.clone());
    if key.1.is_empty() {
        name
    } else {
        let idx: Vec<String> = key.1.iter().map(i64::to_string).collect();
        format!("{name}[{}]", idx.join(","))
    }
}

/// Replaces conjugate entries by fields at [`CONJUGATE_BASE`] + id.
pub(in crate::finite_width) fn conjugates_as_fields(e: &Expr) -> Expr {
    substitute(e, &|x| match &x.kind {
        ExprKind::Conjugate { conj, indices } => Some(node(
            ExprKind::Field {
                field: CONJUGATE_BASE + conj,
                indices: indices.clone(),
            },
            x.shape,
        )),
        _ => None,
    })
}

pub(in crate::finite_width) fn norm(m: &Array2<f64>) -> f64 {
    m.iter().map(|v| v * v).sum::<f64>().sqrt()
}

pub(super) fn column(v: &Value, p: usize) -> Array1<f64> {
    match v {
        Value::Scalar(s) => Array1::from_elem(p, *s),
        Value::Matrix(m) => m.iter().copied().collect(),
    }
}
