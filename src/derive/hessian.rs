//! The second variation S⁽²⁾ at the NNGP point, block by block (THEORY.md §4.4).
//!
//! A block ∂²S/∂X∂Y is a 4-tensor; it is derived as the linear map it applies to a
//! direction E (a symmetric P×P matrix, or a P-vector for mean fields):
//! E ↦ ∇_Y tr(Eᵀ ∇_X S), evaluated at C̃ = 0. For a deep network this gives the table of
//! §4.4: (C̃⁽ˡ⁾, C̃⁽ˡ⁾) ↦ (g²/N) V⁽ˡ⁾\[E\] (the connected four-point function of φ, as
//! expectations), (C̃⁽ˡ⁾, C⁽ˡ⁾) ↦ −E, (C̃⁽ˡ⁾, C⁽ˡ⁻¹⁾) ↦ G⁽ˡ⁾ᵀ\[E\] (through Stein's lemma),
//! (C⁽ᴸ⁾, C⁽ᴸ⁾) ↦ H\[E\], the data Hessian. Blocks that vanish at the NNGP point are left out,
//! and (C, C̃) blocks are the transposes of the (C̃, C) ones listed.

use crate::check::ir::{Expr, ExprKind, Field, FieldId, FieldKind, Shape, Theory};

use super::DeriveError;
use super::build::{is_zero, mul, trace, transpose};
use super::equations::{Equations, at_nngp_point};
use super::grad::{Variable, gradient};

/// One block of S⁽²⁾ as a map on a direction.
#[derive(Debug, Clone)]
pub struct HessianBlock {
    /// The first variable (the direction E has its shape).
    pub row: Variable,
    /// The second variable (the map's value has its shape).
    pub column: Variable,
    /// E ↦ ∂²S/∂row∂column \[E\] at the NNGP point, in terms of the direction field.
    pub map: Result<Expr, DeriveError>,
}

/// The blocks of S⁽²⁾ with the theory extended by the direction fields they refer to.
#[derive(Debug, Clone)]
pub struct SecondVariation {
    /// The theory plus two fields without indices: `E` (P×P direction) and `e` (P-vector).
    pub theory: Theory,
    /// The kernel-shaped direction.
    pub kernel_direction: FieldId,
    /// The vector-shaped direction.
    pub vector_direction: FieldId,
    /// The non-vanishing blocks, in the order of the variables.
    pub blocks: Vec<HessianBlock>,
}

/// Derives every non-vanishing block of S⁽²⁾ at the NNGP point.
pub fn second_variation(theory: &Theory, equations: &Equations) -> SecondVariation {
    let mut extended = theory.clone();
    let kernel_direction = extended.fields.len();
    extended.fields.push(Field {
        name: "E".into(),
        kind: FieldKind::Kernel,
        indices: Vec::new(),
        span: Default::default(),
    });
    let vector_direction = extended.fields.len();
    extended.fields.push(Field {
        name: "e".into(),
        kind: FieldKind::Mean,
        indices: Vec::new(),
        span: Default::default(),
    });
    let mut variables: Vec<Variable> = Vec::new();
    for eq in &equations.forward {
        variables.push(eq.stationary_in.clone());
    }
    for eq in &equations.forward {
        variables.push(eq.unknown.clone());
    }
    // With no conjugate involved, setting C̃ = 0 first is exact (differentiation in C commutes
    // with it) and removes the cumulant-generating terms, which vanish identically there.
    let nngp_action = at_nngp_point(&equations.action);
    let is_conjugate = |v: &Variable| matches!(v, Variable::Conjugate(..));
    let mut blocks = Vec::new();
    for row in &variables {
        let direction = direction_for(&extended, row, kernel_direction, vector_direction);
        let source = if is_conjugate(row) {
            &equations.action
        } else {
            &nngp_action
        };
        let first = match gradient(&extended, source, row) {
            Ok(g) => g,
            Err(e) => {
                blocks.push(HessianBlock {
                    row: row.clone(),
                    column: row.clone(),
                    map: Err(e),
                });
                continue;
            }
        };
        let contracted = trace(mul(transpose(direction), first));
        // ∂/∂C commutes with setting C̃ = 0, and doing that first keeps the expectations to
        // the times they read at the NNGP point (a recurrent network's tilt reads them all).
        let contracted_at_nngp = at_nngp_point(&contracted);
        for column in &variables {
            if !is_conjugate(row) && is_conjugate(column) {
                continue; // the transpose of the (C̃, C) block, listed there
            }
            let source = if is_conjugate(column) {
                &contracted
            } else {
                &contracted_at_nngp
            };
            let map = gradient(&extended, source, column).map(|g| at_nngp_point(&g));
            let vanishes = matches!(&map, Ok(m) if is_zero(m));
            if !vanishes {
                blocks.push(HessianBlock {
                    row: row.clone(),
                    column: column.clone(),
                    map,
                });
            }
        }
    }
    SecondVariation {
        theory: extended,
        kernel_direction,
        vector_direction,
        blocks,
    }
}

/// The direction field with the shape of `var`.
fn direction_for(theory: &Theory, var: &Variable, kernel: FieldId, vector: FieldId) -> Expr {
    let shape = var.expr(theory).shape;
    let (field, shape) = if shape == Shape::VECTOR {
        (vector, Shape::VECTOR)
    } else {
        (kernel, Shape::KERNEL)
    };
    Expr {
        kind: ExprKind::Field {
            field,
            indices: Vec::new(),
        },
        shape,
        span: Default::default(),
    }
}
