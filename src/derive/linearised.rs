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
            terms.push(Term {
                row: b.row.clone(),
                column: b.column.clone(),
                transposed,
                applied_to: x,
            });
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
}
