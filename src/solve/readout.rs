//! The readout of a theory: which kernel the data term sees, and with how much noise.
//!
//! The data term of an action is the Gaussian log-likelihood of the targets,
//! −½ tr(Yᵀ (K + κ I)⁻¹ Y) − D/2 ln det(K + κ I); the matrix inside `inv`/`logdet` is split
//! into its identity part κ I (readout noise) and the rest K (the readout kernel, e.g.
//! `C[L]` or `gw * Q[L]`).

use crate::check::ir::{Expr, ExprKind, MatrixFunction};
use crate::derive::build::{add, mul, neg, number};

/// The readout kernel and noise, as expressions in the fields and parameters.
#[derive(Debug, Clone)]
pub struct Readout {
    /// K: the kernel of the network output on the patterns.
    pub kernel: Expr,
    /// κ: the readout noise variance.
    pub noise: Expr,
}

/// Finds the readout in an unrolled action.
pub fn find_readout(action: &Expr) -> Option<Readout> {
    // the data term's inv(K + κI) first: a measure term logdet(C[l]) of a hidden layer may
    // come earlier in the action
    let matrix = find_argument(action, MatrixFunction::Inverse)
        .or_else(|| find_argument(action, MatrixFunction::LogDet))?;
    let mut terms = Vec::new();
    signed(matrix, 1.0, &mut terms);
    let mut kernel: Option<Expr> = None;
    let mut noise = number(0.0);
    for (sign, term) in terms {
        match identity_coefficient(&term) {
            Some(c) => noise = add(noise, if sign > 0.0 { c } else { neg(c) }),
            None => {
                let term = if sign > 0.0 { term } else { neg(term) };
                kernel = Some(match kernel {
                    None => term,
                    Some(k) => add(k, term),
                });
            }
        }
    }
    Some(Readout {
        kernel: kernel?,
        noise,
    })
}

fn mentions_field(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x.kind, ExprKind::Field { .. }))
}

fn find_argument(e: &Expr, function: MatrixFunction) -> Option<&Expr> {
    if let ExprKind::Matrix(f, a) = &e.kind
        && *f == function
        && mentions_field(a)
    {
        return Some(a);
    }
    let mut found = None;
    crate::check::for_each_child(e, |c| {
        if found.is_none() {
            found = find_argument(c, function);
        }
    });
    found
}

fn signed(e: &Expr, sign: f64, out: &mut Vec<(f64, Expr)>) {
    match &e.kind {
        ExprKind::Add(a, b) => {
            signed(a, sign, out);
            signed(b, sign, out);
        }
        ExprKind::Sub(a, b) => {
            signed(a, sign, out);
            signed(b, -sign, out);
        }
        ExprKind::Neg(a) => signed(a, -sign, out),
        _ => out.push((sign, e.clone())),
    }
}

/// `s` if the term is `s · I` (or `I`).
fn identity_coefficient(term: &Expr) -> Option<Expr> {
    match &term.kind {
        ExprKind::Identity => Some(number(1.0)),
        ExprKind::Mul(a, b) if matches!(b.kind, ExprKind::Identity) && a.shape.is_scalar() => {
            Some((**a).clone())
        }
        ExprKind::Mul(a, b) if matches!(a.kind, ExprKind::Identity) && b.shape.is_scalar() => {
            Some((**b).clone())
        }
        ExprKind::Mul(a, b) if a.shape.is_scalar() => {
            identity_coefficient(b).map(|c| mul((**a).clone(), c))
        }
        _ => None,
    }
}
