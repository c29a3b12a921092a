//! The linearised fluctuation system, stated in terms of the derived blocks of S⁽²⁾.
//!
//! Around the NNGP point $(C^*,\tilde C=0)$ the unknowns are $\delta C=C-C^*$ and $\tilde C$;
//! stationarity of $S^{(2)}+\langle\partial S,\delta\rangle$ in a variable $Z$ reads
//! $0=\sum_X\partial^2S/\partial X\partial Z\,[\delta X]+\partial S/\partial Z|_*$, where a block
//! derived only as $(Z,X)$ enters transposed. A term whose map is $-E$ (the $(\tilde C,C)$
//! pairing) is solved for, which for a deep network gives THEORY.md §4.4:
//! $\delta C^{(l)}=G^{(l)}\delta C^{(l-1)}+\tfrac{g^2}{N}V^{(l)}\tilde C^{(l)}$,
//! $\tilde C^{(l)}=G^{(l+1)\top}\tilde C^{(l+1)}$, $\tilde C^{(L)}=S_D^{(1)}+H\,\delta C^{(L)}$.
//! The leading order drops the $(C,C)$ blocks. [`crate::solve::fluctuation`] solves it.

use crate::check::ir::{Expr, ExprKind, FieldId};

use super::build::is_zero;
use super::equations::Equations;
use super::grad::Variable;
use super::hessian::SecondVariation;

/// One term of a line: a block of S⁽²⁾ applied to an unknown.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The block's first variable (as listed in [`SecondVariation::blocks`]).
    pub row: Variable,
    /// The block's second variable.
    pub column: Variable,
    /// Whether the block enters transposed (derived as (row, column), needed as (column, row)).
    pub transposed: bool,
    /// The unknown it is applied to: δ of a field, or a conjugate.
    pub applied_to: Variable,
}

/// One stationarity condition, solved for an unknown where possible.
#[derive(Debug, Clone)]
pub struct Line {
    /// The variable of the condition ∂S/∂Z = 0.
    pub stationary_in: Variable,
    /// The unknown it is solved for (`None`: stated as 0 = …).
    pub solved_for: Option<Variable>,
    /// The block terms on the right-hand side.
    pub terms: Vec<Term>,
    /// ∂S/∂Z at the NNGP point, when it does not vanish (the data gradient S_D⁽¹⁾).
    pub source: Option<Expr>,
}

/// The linearised system of a theory.
#[derive(Debug, Clone)]
pub struct LinearisedSystem {
    /// δC lines (stationarity in each conjugate), then C̃ lines (in each field).
    pub lines: Vec<Line>,
    /// A block the derivation could not produce (row, column, reason): then the lines are
    /// incomplete and not stated.
    pub missing: Option<(Variable, Variable, String)>,
}

/// Whether a term applied to `v` is a fluctuation δv (fields) or the conjugate itself.
pub fn is_delta(v: &Variable) -> bool {
    matches!(v, Variable::Field(..))
}

/// States the linearised system from the derived blocks.
pub fn linearised_system(equations: &Equations, sv: &SecondVariation) -> LinearisedSystem {
    let mut order: Vec<Variable> = equations
        .forward
        .iter()
        .map(|e| e.stationary_in.clone())
        .collect();
    order.extend(equations.forward.iter().map(|e| e.unknown.clone()));
    let listed = |row: &Variable, column: &Variable| {
        sv.blocks
            .iter()
            .any(|b| &b.row == row && &b.column == column)
    };
    let directions = [sv.kernel_direction, sv.vector_direction];
    let missing = sv.blocks.iter().find_map(|b| {
        b.map
            .as_ref()
            .err()
            .map(|e| (b.row.clone(), b.column.clone(), e.to_string()))
    });
    let mut lines = Vec::new();
    for z in &order {
        let mut terms = Vec::new();
        let mut halves = Vec::new();
        let mut solved_for = None;
        for b in &sv.blocks {
            let (x, transposed) = if &b.column == z {
                (b.row.clone(), false)
            } else if &b.row == z && !listed(&b.column, &b.row) {
                (b.column.clone(), true)
            } else {
                continue;
            };
            let minus_one = matches!(&b.map, Ok(m) if is_minus_direction(m, &directions));
            if minus_one && solved_for.is_none() {
                solved_for = Some(x);
                continue;
            }
            let term = Term {
                row: b.row.clone(),
                column: b.column.clone(),
                transposed,
                applied_to: x,
            };
            let minus_half = matches!(&b.map, Ok(m) if is_minus_half_direction(m, &directions));
            if minus_half && solved_for.is_none() && is_family_pair(&term.applied_to, z) {
                halves.push(term);
                continue;
            }
            terms.push(term);
        }
        // A cross-time block X[t, s] of a time family enters as ½ (X[t, s] + X[s, t]ᵀ): the
        // two halves −½ X[t, s] − ½ X[s, t]ᵀ are −X[t, s], as X[s, t] = X[t, s]ᵀ.
        match halves.iter().position(|h| same_indices(&h.applied_to, z)) {
            Some(own) if halves.len() == 2 && solved_for.is_none() => {
                solved_for = Some(halves[own].applied_to.clone());
            }
            _ => terms.append(&mut halves),
        }
        let source = equations
            .backward
            .iter()
            .find(|e| &e.stationary_in == z)
            .and_then(|e| e.nngp.as_ref().ok())
            .filter(|e| !is_zero(e))
            .cloned();
        lines.push(Line {
            stationary_in: z.clone(),
            solved_for,
            terms,
            source,
        });
    }
    // δC lines first, as in THEORY.md §4.4
    lines.sort_by_key(|l| !l.solved_for.as_ref().is_some_and(is_delta));
    LinearisedSystem { lines, missing }
}

/// `−E` (or `−1·E`): the pairing block ∂²S/∂C̃∂C on a symmetric direction.
fn is_minus_direction(e: &Expr, directions: &[FieldId]) -> bool {
    let is_direction =
        |x: &Expr| matches!(&x.kind, ExprKind::Field { field, .. } if directions.contains(field));
    match &e.kind {
        ExprKind::Neg(a) => is_direction(a),
        ExprKind::Mul(a, b) => {
            matches!(a.kind, ExprKind::Number(v) if v == -1.0) && is_direction(b)
        }
        _ => false,
    }
}

/// `−½E` (or `−(½·E)`, `(−½)·E`): the pairing block of a cross-time block of a family.
fn is_minus_half_direction(e: &Expr, directions: &[FieldId]) -> bool {
    let is_direction =
        |x: &Expr| matches!(&x.kind, ExprKind::Field { field, .. } if directions.contains(field));
    let half = |x: &Expr, value: f64| match &x.kind {
        ExprKind::Mul(a, b) => {
            matches!(a.kind, ExprKind::Number(v) if v == value) && is_direction(b)
        }
        ExprKind::Div(a, b) => {
            value == 0.5 && is_direction(a) && matches!(b.kind, ExprKind::Number(v) if v == 2.0)
        }
        _ => false,
    };
    match &e.kind {
        ExprKind::Neg(a) => half(a, 0.5),
        _ => half(e, -0.5),
    }
}

/// The indices of a variable.
fn indices(v: &Variable) -> &[i64] {
    match v {
        Variable::Field(_, i) | Variable::Conjugate(_, i) => i,
    }
}

/// Whether `x` is `[t, s]` or `[s, t]` of the two-index line variable `z` (`t ≠ s`).
fn is_family_pair(x: &Variable, z: &Variable) -> bool {
    match (indices(x), indices(z)) {
        ([a, b], [t, s]) => t != s && ((a, b) == (t, s) || (a, b) == (s, t)),
        _ => false,
    }
}

fn same_indices(x: &Variable, z: &Variable) -> bool {
    indices(x) == indices(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::hessian::second_variation;

    /// deep_erf at L = 2 gives the three lines of THEORY.md §4.4.
    #[test]
    fn deep_network_gives_the_three_lines_of_section_4_4() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/deep_erf.action");
        let source = std::fs::read_to_string(path).expect("example");
        let theory = crate::compile(&source, path).expect("checks");
        let equations = crate::derive::derive(&theory, &[("L".into(), 2.0)]).expect("derives");
        let sv = second_variation(&theory, &equations);
        let system = linearised_system(&equations, &sv);
        assert!(system.missing.is_none());
        let (c, ct) = (
            |l| Variable::Field(0, vec![l]),
            |l| Variable::Conjugate(0, vec![l]),
        );
        let term = |row: Variable, column: Variable, transposed, applied_to: Variable| Term {
            row,
            column,
            transposed,
            applied_to,
        };
        let shape: Vec<(Option<Variable>, Vec<Term>, bool)> = system
            .lines
            .iter()
            .map(|l| (l.solved_for.clone(), l.terms.clone(), l.source.is_some()))
            .collect();
        let want = vec![
            // δC⁽¹⁾ = (g²/N) V⁽¹⁾ C̃⁽¹⁾   (C⁽⁰⁾ is data: no G⁽¹⁾ term)
            (Some(c(1)), vec![term(ct(1), ct(1), false, ct(1))], false),
            // δC⁽²⁾ = (g²/N) V⁽²⁾ C̃⁽²⁾ + G⁽²⁾ δC⁽¹⁾
            (
                Some(c(2)),
                vec![
                    term(ct(2), ct(2), false, ct(2)),
                    term(ct(2), c(1), true, c(1)),
                ],
                false,
            ),
            // C̃⁽¹⁾ = G⁽²⁾ᵀ C̃⁽²⁾
            (Some(ct(1)), vec![term(ct(2), c(1), false, ct(2))], false),
            // C̃⁽²⁾ = S_D⁽¹⁾ + H δC⁽²⁾
            (Some(ct(2)), vec![term(c(2), c(2), false, c(2))], true),
        ];
        assert_eq!(shape, want);
    }

    /// recurrent_erf at T = 2: every line is solved, the cross-time ones by combining the two
    /// −½E halves; C̃[1, 2] couples to nothing (no expectation reads time 2), and the cross
    /// blocks carry the G of C[1, 1].
    #[test]
    fn recurrent_network_solves_every_line_with_cross_time_halves() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/recurrent_erf.action");
        let source = std::fs::read_to_string(path).expect("example");
        let theory = crate::compile(&source, path).expect("checks");
        let equations = crate::derive::derive(&theory, &[("T".into(), 2.0)]).expect("derives");
        let sv = second_variation(&theory, &equations);
        let system = linearised_system(&equations, &sv);
        assert!(system.missing.is_none(), "{:?}", system.missing);
        let (c, ct) = (
            |t, s| Variable::Field(0, vec![t, s]),
            |t, s| Variable::Conjugate(0, vec![t, s]),
        );
        let solved: Vec<Option<Variable>> =
            system.lines.iter().map(|l| l.solved_for.clone()).collect();
        let want = vec![
            Some(c(1, 1)),
            Some(c(1, 2)),
            Some(c(2, 1)),
            Some(c(2, 2)),
            Some(ct(1, 1)),
            Some(ct(1, 2)),
            Some(ct(2, 1)),
            Some(ct(2, 2)),
        ];
        assert_eq!(solved, want);
        let line = |v: Variable| {
            system
                .lines
                .iter()
                .find(|l| l.solved_for == Some(v.clone()))
                .expect("a line")
        };
        assert!(line(ct(1, 2)).terms.is_empty() && line(ct(1, 2)).source.is_none());
        assert!(
            line(c(1, 2))
                .terms
                .iter()
                .any(|t| t.applied_to == c(1, 1) && t.transposed)
        );
        assert!(line(ct(2, 2)).source.is_some());
    }
}
