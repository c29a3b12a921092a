//! What the scheduler decides per equation: which entries a formula's slots read and where,
//! whether it fuses into a chain of pair maps, whether generated code or the SIMD fast path
//! runs it, and recycled P×P buffers.

use ndarray::Array2;

use crate::check::ir::{FieldKind, Theory};
use crate::derive::entrywise::Position;

use crate::generated::NativePairMap;
use crate::numeric::kernel_map::PairKernelMap;
use crate::numeric::program::Program;

use super::*;

/// The closed-form pair map C' = s·K_φ(C) + o of the equation for `key` and the entry C it
/// reads (diagonal and pairs of one symmetric kernel), when it has one.
pub(super) fn chain_link(
    theory: &Theory,
    program: &Program,
    kind: FieldKind,
    key: &EntryKey,
) -> Option<(PairKernelMap, EntryKey)> {
    let (map, [_, _, pair]) = program.as_pair_kernel_map()?;
    let Some(SlotSource::Field(input, Position::Pair)) =
        program.slots.get(pair).and_then(|s| slot_source(theory, s))
    else {
        return None;
    };
    (map.has_closed_form()
        && key_is_symmetric(input.1.clone())
        && reads_upper_triangle_only(theory, program, kind, key, &input))
    .then_some((map, input))
}

/// Whether the equation for `key` reads `input` only through the closed-form pair map of
/// [`evaluate_forward`]'s fast path, which reads the diagonal and the upper triangle.
pub(super) fn reads_upper_triangle_only(
    theory: &Theory,
    program: &Program,
    kind: FieldKind,
    key: &EntryKey,
    input: &EntryKey,
) -> bool {
    let Some((_, slots)) = program.as_pair_kernel_map() else {
        return false;
    };
    let positions = [
        Position::FirstDiagonal,
        Position::SecondDiagonal,
        Position::Pair,
    ];
    kind != FieldKind::Mean
        && key_is_symmetric(key.1.clone())
        && slots.iter().zip(positions).all(|(&slot, want)| {
            matches!(
                program.slots.get(slot).and_then(|s| slot_source(theory, s)),
                Some(SlotSource::Field(k, pos)) if k == *input && pos == want
            )
        })
}

/// The distinct field entries a compiled formula reads.
pub(super) fn input_keys(theory: &Theory, program: &Program) -> Vec<EntryKey> {
    let mut keys: Vec<EntryKey> = program
        .slots
        .iter()
        .filter_map(|s| match slot_source(theory, s) {
            Some(SlotSource::Field(key, _)) => Some(key),
            _ => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The index values in an entry name `C[1,2]`.
pub(super) fn key_of(name: &str) -> Vec<i64> {
    name.split_once('[')
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .map(|inner| {
            inner
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Entries with all indices equal (C[l], C[t, t]) are symmetric matrices.
pub(crate) fn key_is_symmetric(indices: Vec<i64>) -> bool {
    indices.windows(2).all(|w| w[0] == w[1])
}

/// Where a slot's value comes from.
pub(crate) enum SlotSource {
    Field(EntryKey, Position),
    Given(usize, Position),
}

pub(crate) fn slot_source(theory: &Theory, slot: &str) -> Option<SlotSource> {
    let (head, suffix) = slot.rsplit_once('_')?;
    let position = match suffix {
        "ab" => Position::Pair,
        "aa" => Position::FirstDiagonal,
        "bb" => Position::SecondDiagonal,
        "a" => Position::First,
        "b" => Position::Second,
        _ => return None,
    };
    if let Some(i) = head.strip_prefix('G').and_then(|n| n.parse::<usize>().ok())
        && theory.field(head).is_none()
    {
        return Some(SlotSource::Given(i, position));
    }
    let (name, idx) = match head.split_once('[') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(']')?;
            let idx: Option<Vec<i64>> = inner.split(',').map(|s| s.trim().parse().ok()).collect();
            (name, idx?)
        }
        None => (head, Vec::new()),
    };
    Some(SlotSource::Field((theory.field(name)?, idx), position))
}

/// A P×P buffer: a recycled one (its pages already mapped — first-touch page faults do not
/// scale across threads) or a fresh one.
pub(super) fn take_buffer(spare: &mut Vec<Array2<f64>>, p: usize) -> Array2<f64> {
    match spare
        .iter()
        .position(|m| m.dim() == (p, p) && m.is_standard_layout())
    {
        Some(i) => spare.swap_remove(i),
        // Filled (not calloc'ed) here, on all cores: the pages are mapped before the pair
        // loop writes into them, and the first touch is shared out.
        None => crate::numeric::buffer::filled_matrix(p, p, f64::NAN),
    }
}

/// A generated pair formula bound to an equation: the function, its constants, and the
/// entries its slots read (real names).
pub(super) struct NativeFormula {
    pub(super) eval: fn(&[f64], &[f64], bool) -> f64,
    pub(super) closed_form: bool,
    pub(super) constants: Vec<f64>,
    pub(super) slots: Vec<String>,
}

/// Whether [`evaluate_forward`]'s fast path applies and beats generated code: C' =
/// s·K_φ(C) + o of one symmetric kernel C, read at (α, α), (β, β) and (α, β), into a symmetric
/// entry. With a closed form (erf, ReLU, sign, linear, step at θ = 0) its SIMD loop beats any
/// per-pair function; without one (tanh, a user activation) its Mehler expansion beats
/// generated quadrature but not a generated closed form (`native_closed`).
pub(super) fn fused_pair_map(
    theory: &Theory,
    program: &Program,
    key: &EntryKey,
    native_closed: bool,
) -> bool {
    let Some((map, slots)) = program.as_pair_kernel_map() else {
        return false;
    };
    if !map.has_closed_form() && native_closed {
        return false;
    }
    let sources: Vec<Option<SlotSource>> = slots
        .iter()
        .map(|&i| program.slots.get(i).and_then(|s| slot_source(theory, s)))
        .collect();
    let positions = [
        Position::FirstDiagonal,
        Position::SecondDiagonal,
        Position::Pair,
    ];
    let first = match sources.first() {
        Some(Some(SlotSource::Field(k, _))) => k.clone(),
        _ => return false,
    };
    key_is_symmetric(key.1.clone())
        && sources.iter().zip(positions).all(
            |(s, want)| matches!(s, Some(SlotSource::Field(k, pos)) if *k == first && *pos == want),
        )
}

/// The generated formula for an equation, if `native` has its template.
pub(super) fn native_formula(
    theory: &Theory,
    raw: &egg::RecExpr<crate::symbolic::lang::Math>,
    native: &[NativePairMap],
    constants: &[f64],
) -> Option<NativeFormula> {
    if native.is_empty() {
        return None;
    }
    let (key, names) = crate::derive::closed_form::template_key(theory, raw);
    let map = native.iter().find(|m| m.key == key)?;
    let slots = map
        .slots
        .iter()
        .map(|s| names.get(*s).cloned().unwrap_or_else(|| s.to_string()))
        .collect();
    Some(NativeFormula {
        eval: map.eval,
        closed_form: map.closed_form,
        constants: constants.to_vec(),
        slots,
    })
}
