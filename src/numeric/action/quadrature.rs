//! The one-dimensional rules of an expectation: what it computes ([`Mode`]), and the nodes of
//! a line cut at the breakpoints of its integrand — half-range Hermite tails and
//! Gauss–Legendre pieces between the cuts, each of [`piece_order`] nodes.

use std::f64::consts::PI;

use num_dual::DualNum;

use crate::numeric::gauss_rule::GaussRule;

/// Nodes per piece of a line cut at breakpoints, for quadrature order `order`.
pub(super) fn piece_order(order: usize) -> usize {
    order.div_ceil(2)
}

/// What an expectation computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// $\mathbb E[f]$.
    Mean,
    /// $\ln\mathbb E[e^{a}]$ of a scalar exponent $a$.
    LogMeanExp,
}

/// The rules the pieces of a split line use, of the evaluator's order.
#[derive(Clone, Debug)]
pub(super) struct PieceRules {
    /// Gauss–Legendre on $[-1,1]$, for the pieces between breakpoints.
    pub(super) legendre: GaussRule,
    /// Half-range Hermite for $e^{-t^2/2}$ on $[0,\infty)$, for the two tails.
    pub(super) half_range: GaussRule,
}

/// Nodes and weights for $\int\varphi(z)f(z)\,dz$ with $f$ smooth between the `cuts`
/// (ascending, distinct):
/// the tails $(-\infty,p_0]$ and $[p_m,\infty)$ by the half-range rule, $z=p\mp t$,
/// $\varphi(p\mp t)=\varphi(p)e^{\pm pt}e^{-t^2/2}$, and every piece in between by
/// Gauss–Legendre. 0 joins the cut points when they all lie on one side of it, so that each
/// tail starts on its own side ($e^{\pm pt}$ decays) and no rule has to follow a shifted bump.
pub(super) fn pieces<D: DualNum<Primitive = f64>>(
    mut cuts: Vec<D>,
    rules: &PieceRules,
) -> Vec<(D, D)> {
    match (cuts.first(), cuts.last()) {
        (Some(first), _) if first.re() > 0.0 => cuts.insert(0, D::zero()),
        (_, Some(last)) if last.re() < 0.0 => cuts.push(D::zero()),
        _ => {}
    }
    let density = |z: &D| (-(z.clone() * z.clone()) * 0.5).exp() * (0.5 / PI).sqrt();
    let mut out = Vec::with_capacity(
        rules.half_range.nodes.len() * 2 + rules.legendre.nodes.len() * cuts.len(),
    );
    let (Some(first), Some(last)) = (cuts.first().cloned(), cuts.last().cloned()) else {
        return out;
    };
    let tails = [(first, -1.0), (last, 1.0)];
    for (i, (start, direction)) in tails.into_iter().enumerate() {
        let at_start = density(&start);
        for (&t, &w) in rules.half_range.nodes.iter().zip(&rules.half_range.weights) {
            let node = start.clone() + t * direction;
            let weight = at_start.clone() * (-(start.clone() * (t * direction))).exp() * w;
            out.push((node, weight));
        }
        if i == 0 {
            for pair in cuts.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                let middle = (a.clone() + b.clone()) * 0.5;
                let half = (b.clone() - a.clone()) * 0.5;
                for (&x, &v) in rules.legendre.nodes.iter().zip(&rules.legendre.weights) {
                    let node = middle.clone() + half.clone() * x;
                    let weight = half.clone() * v * density(&node);
                    out.push((node, weight));
                }
            }
        }
    }
    out
}
