//! Forward, backward and output equations of a theory at concrete integer parameters.
//!
//! * forward, ∂S/∂C̃⁽ⁱ⁾ = 0 solved for the field entry: C⁽ⁱ⁾ = R(C, C̃) (tilted form) and
//!   C⁽ⁱ⁾ = R(C, 0) at the NNGP point (THEORY.md §4.3 (F));
//! * backward / output, ∂S/∂C⁽ⁱ⁾ = 0 solved for the conjugate entry: C̃⁽ⁱ⁾ = …
//!   (§4.3 (B), (O)); where a derivative is not available symbolically the reason is kept.

use crate::check::ir::{Expr, ExprKind, ParamType, Theory, log_mgf};

use super::DeriveError;
use super::build::{add, div, expectation, is_zero, neg, number, substitute, symmetric_part, zero};
use super::grad::{DependenceIndex, Variable, gradient_indexed, is_kernel, raw_gradient_indexed};
use super::unroll::{IndexEnv, assignments, unroll};

/// One field entry determined by a stationarity condition.
#[derive(Debug, Clone)]
pub struct FieldEquation {
    /// The entry the equation is solved for (`C[2]` for a forward equation, `Ct[2]` for a
    /// backward one).
    pub unknown: Variable,
    /// The variable whose derivative vanishes (`Ct[2]` for a forward equation, `C[2]` for
    /// a backward one).
    pub stationary_in: Variable,
    /// The right-hand side: `unknown = rhs` (tilted form for forward equations).
    pub rhs: Result<Expr, DeriveError>,
    /// The right-hand side at the NNGP point C̃ = 0.
    pub nngp: Result<Expr, DeriveError>,
}

/// All saddle-point equations of a theory at given integer parameters.
#[derive(Debug, Clone)]
pub struct Equations {
    /// The `int` parameters with the values used.
    pub int_params: Vec<(String, i64)>,
    /// The action with every sum unrolled.
    pub action: Expr,
    /// ∂S/∂C̃ = 0, one per conjugate entry, in the order of the conjugates' ranges.
    pub forward: Vec<FieldEquation>,
    /// ∂S/∂C = 0, one per order-parameter entry.
    pub backward: Vec<FieldEquation>,
}

/// Derives the equations; `overrides` replaces parameter values (by name) before unrolling.
pub fn derive(theory: &Theory, overrides: &[(String, f64)]) -> Result<Equations, DeriveError> {
    derive_equations(theory, overrides, true)
}

/// Only the forward equations (`backward` is left empty): what an NNGP computation needs.
pub fn derive_forward(
    theory: &Theory,
    overrides: &[(String, f64)],
) -> Result<Equations, DeriveError> {
    derive_equations(theory, overrides, false)
}

fn derive_equations(
    theory: &Theory,
    overrides: &[(String, f64)],
    with_backward: bool,
) -> Result<Equations, DeriveError> {
    let values = theory.bind(overrides)?;
    let mut ints: Vec<i64> = Vec::new();
    let mut int_params = Vec::new();
    for (p, &value) in theory.params.iter().zip(&values) {
        if p.ty == ParamType::Int {
            int_params.push((p.name.clone(), value as i64));
        }
        ints.push(if p.ty == ParamType::Int {
            value as i64
        } else {
            0
        });
    }
    let unrolled = unroll(&theory.action.body, &IndexEnv::new(), &ints)?;
    let (forward, backward, action) = equations_of(theory, unrolled, &ints, with_backward)?;
    Ok(Equations {
        int_params,
        action,
        forward,
        backward,
    })
}

/// The forward equations of an action already unrolled at the `int` parameter values `ints`
/// (one per parameter, by id): what the simulator derives from an action whose random
/// variables it has renamed per population ([`crate::simulate`]).
pub fn forward_equations_of(
    theory: &Theory,
    unrolled: Expr,
    ints: &[i64],
) -> Result<Vec<FieldEquation>, DeriveError> {
    Ok(equations_of(theory, unrolled, ints, false)?.0)
}

/// The backward equations ∂S/∂C = 0, solved for the conjugates, of an action already
/// unrolled at the `int` parameter values `ints`: what the scalable finite-width solver
/// derives from the part of an action outside its cumulant-generating terms
/// ([`crate::finite_width`]).
pub fn backward_equations_of(
    theory: &Theory,
    unrolled: Expr,
    ints: &[i64],
) -> Result<Vec<FieldEquation>, DeriveError> {
    Ok(equations_of(theory, unrolled, ints, true)?.1)
}

type EquationSets = (Vec<FieldEquation>, Vec<FieldEquation>, Expr);

fn equations_of(
    theory: &Theory,
    unrolled: Expr,
    ints: &[i64],
    with_backward: bool,
) -> Result<EquationSets, DeriveError> {
    // Only the NNGP point wanted: the tilts may be linearised first (see `linearise_tilts`),
    // which keeps a recurrent theory's T² equations from each copying its T²-term tilt.
    let action = if with_backward {
        unrolled
    } else {
        linearise_tilts(&unrolled)
    };
    let index = DependenceIndex::new(&action);
    let mut forward = Vec::new();
    let mut backward = Vec::new();
    for (id, conj) in theory.conjugates.iter().enumerate() {
        for env in assignments(&conj.indices, &IndexEnv::new(), ints)? {
            let idx: Vec<i64> = conj
                .indices
                .iter()
                .map(|b| env.get(&b.var).copied().unwrap_or(0))
                .collect();
            let conj_var = Variable::Conjugate(id, idx.clone());
            let field_var = Variable::Field(conj.of, idx);
            let rhs = gradient_indexed(theory, &action, &conj_var, Some(&index))
                .and_then(|g| solve_for(theory, g, &field_var));
            let nngp = rhs.clone().map(|r| at_nngp_point(&r));
            forward.push(FieldEquation {
                unknown: field_var.clone(),
                stationary_in: conj_var.clone(),
                rhs,
                nngp,
            });
            if !with_backward {
                continue;
            }
            // ∇S̃ = −C̃ + R: with C̃ symmetric, sym(∇S̃) = 0 gives C̃ = sym(R). A cross-time
            // block of a family is not symmetric: there C̃[t, s] = R[t, s] (whose transpose
            // is R[s, t]) solves the condition symmetrised over the family.
            let cross_time = theory.fields[conj.of].is_time_family()
                && matches!(&field_var, Variable::Field(_, i) if i.len() == 2 && i[0] != i[1]);
            let rhs = raw_gradient_indexed(theory, &action, &field_var, Some(&index))
                .and_then(|g| solve_for(theory, g, &conj_var))
                .map(|r| {
                    if is_kernel(theory, &field_var) && !cross_time {
                        symmetric_part(r)
                    } else {
                        r
                    }
                });
            let nngp = rhs.clone().map(|r| at_nngp_point(&r));
            backward.push(FieldEquation {
                unknown: conj_var,
                stationary_in: field_var,
                rhs,
                nngp,
            });
        }
    }
    Ok((forward, backward, action))
}

/// Replaces every cumulant-generating term `ln E[exp(A)]` whose tilt A vanishes at the NNGP
/// point (C̃ = 0) by `E[A]`. Both have the same value (0) and the same first derivatives
/// there, ∂/∂C̃ ln E[exp(A)] = E[∂A/∂C̃ exp(A)] / E[exp(A)] = E[∂A/∂C̃] at C̃ = 0, so the
/// forward equations at the NNGP point are unchanged; the tilted forms are not (they are
/// derived from the full action by [`derive`]). A recurrent theory's single expectation
/// holds a tilt of T² terms, and the chain rule through `ln` and `exp` copied it into each
/// of its T² equations: T⁴ in time and memory (T = 30: 9 s and 1.6 GB).
fn linearise_tilts(e: &Expr) -> Expr {
    substitute(e, &|x| {
        let ExprKind::Apply { callee, args } = &x.kind else {
            return None;
        };
        let term = log_mgf(*callee, args)?;
        is_zero(&at_nngp_point(term.tilt)).then(|| {
            expectation(
                term.var,
                linearise_tilts(term.tilt),
                term.mean.clone(),
                term.cov.clone(),
            )
        })
    })
}

/// Sets every conjugate to zero and simplifies.
pub fn at_nngp_point(e: &Expr) -> Expr {
    substitute(e, &|x| match x.kind {
        ExprKind::Conjugate { .. } => Some(zero(x.shape)),
        _ => None,
    })
}

/// Solves `g = 0` for `unknown`, where `g` is affine in it with a constant coefficient:
/// g = k·X + R ⇒ X = −R/k.
fn solve_for(theory: &Theory, g: Expr, unknown: &Variable) -> Result<Expr, DeriveError> {
    let target = unknown.expr(theory);
    let mut terms = Vec::new();
    signed_terms(g, 1.0, &mut terms);
    let mut coefficient = 0.0;
    let mut rest = zero(target.shape);
    for (sign, term) in terms {
        if term == target {
            coefficient += sign;
        } else if mentions_outside_expectations(&term, &target) {
            return Err(DeriveError::Unsupported(format!(
                "the stationarity condition is not affine in {}; it cannot be solved in closed form",
                unknown.name(theory)
            )));
        } else if sign > 0.0 {
            rest = add(rest, term);
        } else {
            rest = add(rest, neg(term));
        }
    }
    if coefficient == 0.0 {
        return Err(DeriveError::Unsupported(format!(
            "the stationarity condition does not contain {}: the action needs a term that \
             pairs each field entry with its conjugate, such as `- tr(Ct[l]^T C[l])`",
            unknown.name(theory)
        )));
    }
    Ok(if coefficient == -1.0 {
        rest
    } else {
        div(neg(rest), number(coefficient))
    })
}

/// Flattens sums and differences into signed terms.
fn signed_terms(e: Expr, sign: f64, out: &mut Vec<(f64, Expr)>) {
    match e.kind {
        ExprKind::Add(a, b) => {
            signed_terms(*a, sign, out);
            signed_terms(*b, sign, out);
        }
        ExprKind::Sub(a, b) => {
            signed_terms(*a, sign, out);
            signed_terms(*b, -sign, out);
        }
        ExprKind::Neg(a) => signed_terms(*a, -sign, out),
        _ if is_zero(&e) => {}
        _ => out.push((sign, e)),
    }
}

/// Whether `target` occurs in `e` other than inside a Gaussian expectation. Occurrences
/// inside one (a conjugate in the tilt of a recurrent network's single expectation over all
/// times) leave the equation in self-consistent form, unknown = R(unknown), as the tilted
/// forward equations are.
fn mentions_outside_expectations(e: &Expr, target: &Expr) -> bool {
    if e == target {
        return true;
    }
    if matches!(e.kind, ExprKind::Expectation { .. }) {
        return false;
    }
    e.children()
        .any(|c| mentions_outside_expectations(c, target))
}
