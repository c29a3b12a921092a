//! Evaluation of one equation over all pattern pairs: matrix expressions, pair formulas
//! (compiled, generated or the fused kernel-map fast path) by upper triangle and mirror, means
//! per pattern.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::check::ir::{FieldKind, Theory};
use crate::derive::entrywise::Position;

use crate::numeric::kernel_map::PairSet;
use crate::numeric::kernel_map::hermite::ExpansionReport;
use crate::numeric::kernel_map::mirror_upper;
use crate::numeric::matrix::{MatrixContext, Value};
use crate::numeric::program::{Program, ProgramError};

use super::*;

/// Evaluates a matrix expression (definition, data-only matrix, readout kernel); a scalar
/// value is broadcast to a P×P matrix.
pub fn evaluate_matrix(
    theory: &Theory,
    params: &[f64],
    x: ArrayView2<f64>,
    y: Option<ArrayView2<f64>>,
    kernels: &Kernels,
    e: &crate::check::ir::Expr,
    what: &str,
) -> Result<Array2<f64>, NngpError> {
    match evaluate_value(theory, params, x, y, kernels, e, what)? {
        Value::Matrix(m) => Ok(m),
        Value::Scalar(s) => Ok(Array2::from_elem((x.nrows(), x.nrows()), s)),
    }
}

/// Evaluates an expression to a scalar or a matrix, without broadcasting scalars.
pub fn evaluate_value(
    theory: &Theory,
    params: &[f64],
    x: ArrayView2<f64>,
    y: Option<ArrayView2<f64>>,
    kernels: &Kernels,
    e: &crate::check::ir::Expr,
    what: &str,
) -> Result<Value, NngpError> {
    evaluate_value_triangle(theory, params, x, y, kernels, e, what, false)
}

/// [`evaluate_value`]; with `upper_triangle` a symmetric result need only be right on and
/// above the diagonal ([`MatrixContext::eval_upper_triangle`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_value_triangle(
    theory: &Theory,
    params: &[f64],
    x: ArrayView2<f64>,
    y: Option<ArrayView2<f64>>,
    kernels: &Kernels,
    e: &crate::check::ir::Expr,
    what: &str,
    upper_triangle: bool,
) -> Result<Value, NngpError> {
    let lookup = |f: usize, idx: &[i64]| kernels.entries.get(&(f, idx.to_vec()));
    let field_name = |f: usize| theory.fields[f].name.clone();
    let ctx = MatrixContext {
        params,
        inputs: Some(x),
        targets: y,
        field: &lookup,
        field_name: &field_name,
    };
    let value = if upper_triangle {
        ctx.eval_upper_triangle(e)
    } else {
        ctx.eval(e)
    };
    value.map_err(|source| NngpError::Matrix {
        what: what.to_string(),
        source,
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate_forward(
    theory: &Theory,
    program: &Program,
    native: Option<&NativeFormula>,
    given: &[Array2<f64>],
    kind: FieldKind,
    kernels: &Kernels,
    p: usize,
    pairs: PairSet,
    name: &str,
    spare: &mut Vec<Array2<f64>>,
    upper_only: bool,
) -> Result<(Array2<f64>, Option<ExpansionReport>), NngpError> {
    let slot_names = native.map_or(&program.slots, |n| &n.slots);
    let evaluate = |slots: &[f64], same: bool| -> Result<f64, ProgramError> {
        match native {
            Some(n) => Ok((n.eval)(&n.constants, slots, same)),
            None => program.eval(slots, same),
        }
    };
    let sources: Vec<(&Array2<f64>, Position)> = slot_names
        .iter()
        .map(|s| match slot_source(theory, s) {
            Some(SlotSource::Field(key, pos)) => kernels.entries.get(&key).map(|m| (m, pos)),
            Some(SlotSource::Given(i, pos)) => given.get(i).map(|m| (m, pos)),
            None => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(|| NngpError::Stuck(name.to_string()))?;
    let read = |m: &Array2<f64>, pos: Position, a: usize, b: usize| -> f64 {
        let column = m.ncols() == 1;
        match pos {
            Position::Pair => m[[a, b]],
            Position::FirstDiagonal | Position::First => {
                if column {
                    m[[a, 0]]
                } else {
                    m[[a, a]]
                }
            }
            Position::SecondDiagonal | Position::Second => {
                if column {
                    m[[b, 0]]
                } else {
                    m[[b, b]]
                }
            }
        }
    };
    let fail = |source| NngpError::Program {
        field: name.to_string(),
        source,
    };
    let needed = move |a: usize, b: usize| pairs.includes(a, b);
    if kind == FieldKind::Mean {
        let values: Vec<f64> = (0..p)
            .into_par_iter()
            .map(|a| {
                crate::numeric::kernel_map::clear_upper_vector_state();
                let slots: Vec<f64> = sources.iter().map(|(m, pos)| read(m, *pos, a, a)).collect();
                evaluate(&slots, true)
            })
            .collect::<Result<_, _>>()
            .map_err(fail)?;
        if let Some(a) = values.iter().position(|v| !v.is_finite()) {
            return Err(NngpError::NotFinite {
                field: name.to_string(),
                a,
                b: a,
            });
        }
        return Array2::from_shape_vec((p, 1), values)
            .map(|mean| (mean, None))
            .map_err(|e| NngpError::Data(e.to_string()));
    }
    // A block C[t, s] with t ≠ s is not symmetric: compute every pair, not the upper triangle.
    let symmetric = key_is_symmetric(key_of(name));
    let mut out = take_buffer(spare, p);
    // Fast path: C' = s·K_φ(C) + o on one symmetric kernel.
    if let Some((map, [ia, ib, ic])) = program.as_pair_kernel_map().filter(|_| native.is_none()) {
        let (ma, pa) = sources[ia];
        let (mb, pb) = sources[ib];
        let (mc, pc) = sources[ic];
        let same = std::ptr::eq(ma, mb) && std::ptr::eq(mb, mc) && ma.dim() == (p, p);
        if same
            && symmetric
            && (pa, pb, pc)
                == (
                    Position::FirstDiagonal,
                    Position::SecondDiagonal,
                    Position::Pair,
                )
        {
            let report = if upper_only {
                map.apply_upper_into(ma.view(), pairs, &mut out)
            } else {
                map.apply_into(ma.view(), pairs, &mut out)
            }
            .map_err(fail)?;
            return Ok((out, report));
        }
    }
    let slice = out
        .as_slice_mut()
        .ok_or_else(|| NngpError::Data("a kernel buffer that is not contiguous".into()))?;
    slice
        .par_chunks_mut(p)
        .enumerate()
        .try_for_each(|(a, row)| -> Result<(), NngpError> {
            crate::numeric::kernel_map::clear_upper_vector_state();
            let mut slots = vec![0.0; sources.len()];
            let start = if symmetric { a } else { 0 };
            for (b, entry) in row.iter_mut().enumerate().skip(start) {
                if !needed(a, b) {
                    *entry = 0.0;
                    continue;
                }
                for (slot, (m, pos)) in slots.iter_mut().zip(&sources) {
                    *slot = read(m, *pos, a, b);
                }
                let v = evaluate(&slots, a == b).map_err(fail)?;
                if !v.is_finite() {
                    return Err(NngpError::NotFinite {
                        field: name.to_string(),
                        a,
                        b,
                    });
                }
                *entry = v;
            }
            Ok(())
        })?;
    if symmetric {
        mirror_upper(&mut out);
    }
    Ok((out, None))
}
