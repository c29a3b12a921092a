//! # NNGP kernels of any theory
//!
//! ## Equations
//! At the NNGP point C̃ = 0 every forward equation of the theory (∂S/∂C̃ = 0) gives one
//! field entry as an entry-wise map of earlier ones, e.g. for a deep network
//! $$C^{(l)}_{\alpha\beta} = g\,\langle\phi(u)\phi(v)\rangle_{(u,v)\sim\mathcal N(0,\,C^{(l-1)}_{\{\alpha,\beta\}})} + g_b,$$
//! for a recurrent one C(t, s) from C(t−1, s−1), for binary units with mean fields
//! m⁽ˡ⁾_α = ⟨step(h_α − θ)⟩ with h ∼ 𝒩(J m⁽ˡ⁻¹⁾, g Q⁽ˡ⁻¹⁾). Definitions (`C[0] = …`) are
//! evaluated as matrices; the forward equations are evaluated in dependency order, each over
//! the upper triangle of pattern pairs (rayon). A run of closed-form pair maps whose
//! intermediate kernels are neither returned nor read elsewhere (the hidden layers of a deep
//! network with `Keep::Only`) is applied as one fused chain
//! ([`crate::numeric::kernel_map::apply_chain_into`]); an error inside it names the entry
//! that ends the chain.
//!
//! ## Requirements
//! Inputs X (P×d) without NaN/inf, P ≥ 1; kernels stay positive semi-definite (an invalid
//! 2×2 covariance at some pair is reported with the field and the pair).

use std::collections::{BTreeMap, HashMap};

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::check::ir::{FieldId, FieldKind, Theory};
use crate::derive::entrywise::{Position, entry_formula};
use crate::derive::grad::Variable;

use crate::derive::{DeriveError, derive_forward};
use crate::generated::NativePairMap;
pub use crate::numeric::kernel_map::PairSet;
use crate::numeric::kernel_map::hermite::ExpansionReport;
use crate::numeric::kernel_map::{PairKernelMap, mirror_upper};
use crate::numeric::matrix::{MatrixContext, MatrixEvalError, Value};
use crate::numeric::program::{Program, ProgramError};

/// A concrete field entry: the field and its index values.
pub type EntryKey = (FieldId, Vec<i64>);

/// Why NNGP kernels could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum NngpError {
    /// A `--set` value that cannot be bound (unknown name, value out of range).
    #[error(transparent)]
    Bind(#[from] crate::check::BindError),
    /// Bad input data.
    #[error("{0}")]
    Data(String),
    /// The equations could not be derived.
    #[error("deriving the equations: {0}")]
    Derive(#[from] DeriveError),
    /// An entry formula could not be compiled or evaluated.
    #[error("computing {field}: {source}")]
    Program {
        /// The field entry.
        field: String,
        /// The problem.
        source: ProgramError,
    },
    /// A definition or readout could not be evaluated.
    #[error("evaluating {what}: {source}")]
    Matrix {
        /// What was evaluated.
        what: String,
        /// The problem.
        source: MatrixEvalError,
    },
    /// A value came out NaN or infinite.
    #[error(
        "{field} is not finite at patterns ({a}, {b}); check the parameters and the input scale"
    )]
    NotFinite {
        /// The field entry.
        field: String,
        /// First pattern.
        a: usize,
        /// Second pattern.
        b: usize,
    },
    /// A kernel that is not a covariance matrix.
    #[error(
        "{field} is not a covariance matrix at patterns ({a}, {b}): {reason}; check the signs \
         and sizes of the variance parameters"
    )]
    NotCovariance {
        /// The field entry.
        field: String,
        /// First pattern.
        a: usize,
        /// Second pattern.
        b: usize,
        /// What is wrong.
        reason: String,
    },
    /// Forward equations that depend on each other.
    #[error("the forward equations of {0} depend on entries that are never computed")]
    Stuck(String),
}

/// Parameter values after `--set` overrides, by parameter id.
pub fn parameter_values(
    theory: &Theory,
    overrides: &[(String, f64)],
) -> Result<Vec<f64>, NngpError> {
    Ok(theory.bind(overrides)?)
}

/// The computed kernels and mean fields (means as P×1 matrices), keyed by entry.
#[derive(Debug, Clone, Default)]
pub struct Kernels {
    /// Every entry computed, in the order computed.
    pub entries: BTreeMap<EntryKey, Array2<f64>>,
    /// The order in which they were computed (definitions first).
    pub order: Vec<EntryKey>,
    /// Entries computed by the Mehler (Hermite) expansion (activations without a closed
    /// form), with its report: terms, worst error bound, pairs that fell back to quadrature.
    /// Kept for every such entry, returned or not (the hidden layers of a deep tanh network).
    pub expansions: BTreeMap<EntryKey, ExpansionReport>,
    /// Entries computed by code that `saddle_macros::theory!` generated for their pair
    /// formula ([`NngpSettings::native`]), returned or not.
    pub native: Vec<EntryKey>,
}

impl Kernels {
    /// The entry's name as written in the theory: `C[2]`, `C[1,3]`, `m[2]`.
    pub fn name(theory: &Theory, key: &EntryKey) -> String {
        let name = &theory.fields[key.0].name;
        if key.1.is_empty() {
            name.clone()
        } else {
            format!(
                "{name}[{}]",
                key.1
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
    }
}

/// Settings of an NNGP computation.
#[derive(Debug, Clone)]
pub struct NngpSettings {
    /// Parameter overrides.
    pub overrides: Vec<(String, f64)>,
    /// Gauss–Hermite order for expectations without closed form.
    pub quadrature_order: usize,
    /// Which pairs to compute.
    pub pairs: PairSet,
    /// The number of outputs D when no targets are passed (for formulas that use `D`).
    pub outputs: Option<usize>,
    /// Which entries to return; the others are dropped as soon as no later equation needs
    /// them, so that a deep network needs about two P×P matrices at a time.
    pub keep: Keep,
    /// Pair formulas compiled by `saddle_macros::theory!` for this theory (empty: interpret
    /// every formula).
    pub native: &'static [NativePairMap],
}

/// Which computed entries [`nngp_kernels`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Keep {
    /// Every entry.
    #[default]
    All,
    /// Only these (and whatever is still needed while computing).
    Only(Vec<EntryKey>),
}

impl Default for NngpSettings {
    fn default() -> Self {
        NngpSettings {
            overrides: Vec::new(),
            quadrature_order: 80,
            pairs: PairSet::All,
            outputs: None,
            keep: Keep::All,
            native: &[],
        }
    }
}

/// NNGP kernels of every field entry of `theory` on inputs `x` (and targets `y`, if the
/// definitions need them).
///
/// With generated pair formulas in [`NngpSettings::native`], an equation whose template is
/// there (and that the fused closed-form kernel maps do not cover) is evaluated by the
/// generated function instead of the interpreter.
pub fn nngp_kernels(
    theory: &Theory,
    x: ArrayView2<f64>,
    y: Option<ArrayView2<f64>>,
    settings: &NngpSettings,
) -> Result<Kernels, NngpError> {
    let native = settings.native;
    validate_inputs(x)?;
    let params = parameter_values(theory, &settings.overrides)?;
    let overrides: Vec<(String, f64)> = theory
        .params
        .iter()
        .zip(&params)
        .map(|(p, v)| (p.name.clone(), *v))
        .collect();
    let equations = derive_forward(theory, &overrides)?;
    let ints = theory.int_values(&params);
    let mut kernels = Kernels::default();

    // Definitions, in order; a definition may use entries computed before it.
    let pending = crate::derive::unroll::defined_entries(theory, &ints)?;
    let mut constants: HashMap<String, f64> = theory
        .params
        .iter()
        .zip(&params)
        .map(|(p, v)| (p.name.clone(), *v))
        .collect();
    constants.insert("P".into(), x.nrows() as f64);
    constants.insert("d".into(), x.ncols() as f64);
    let outputs = y.as_ref().map(|y| y.ncols()).or(settings.outputs);
    if let Some(d) = outputs {
        constants.insert("D".into(), d as f64);
    }
    let native_constants = crate::generated::constants(&params, x.nrows(), x.ncols(), outputs);

    // Forward equations, compiled.
    struct Compiled {
        key: EntryKey,
        kind: FieldKind,
        program: Program,
        /// Generated code for the formula, used instead of `program` by [`evaluate_forward`].
        native: Option<NativeFormula>,
        given: Vec<Array2<f64>>,
        /// The entries it reads ([`input_keys`], parsed once: the loops below ask for them
        /// once per other equation, L² times for a depth-L network).
        inputs: Vec<EntryKey>,
        /// Whether every slot names an entry or a given matrix.
        resolvable: bool,
    }
    let mut forward = Vec::new();
    for eq in &equations.forward {
        let Variable::Field(field, idx) = &eq.unknown else {
            continue;
        };
        let key = (*field, idx.clone());
        let name = Kernels::name(theory, &key);
        let nngp = eq.nngp.clone().map_err(NngpError::Derive)?;
        let kind = theory.fields[*field].kind;
        let position = if kind == FieldKind::Mean {
            Position::First
        } else {
            Position::Pair
        };
        let formula = entry_formula(theory, &nngp, position)?;
        let program = Program::compile(&formula.expr, &constants, settings.quadrature_order)
            .map_err(|source| NngpError::Program {
                field: name.clone(),
                source,
            })?;
        let mut given = Vec::new();
        for g in &formula.given {
            given.push(evaluate_matrix(theory, &params, x, y, &kernels, g, &name)?);
        }
        let native = native_formula(theory, &formula.expr, native, &native_constants)
            .filter(|n| !fused_pair_map(theory, &program, &key, n.closed_form));
        let inputs = input_keys(theory, &program);
        let resolvable = program
            .slots
            .iter()
            .chain(native.iter().flat_map(|n| n.slots.iter()))
            .all(|slot| slot_source(theory, slot).is_some());
        forward.push(Compiled {
            key,
            kind,
            program,
            native,
            given,
            inputs,
            resolvable,
        });
    }

    // Definitions first (they only use data and earlier entries), then the forward
    // equations as their inputs become available.
    let definitions = pending.len();
    for (i, (key, body)) in pending.into_iter().enumerate() {
        let name = Kernels::name(theory, &key);
        // The last definition (no later one reads it), not returned and read by the forward
        // equations only through pair maps (closed forms or the Mehler expansion; a deep
        // network's C[0]): its lower triangle is never read, so it is not mirrored.
        let upper_only = i + 1 == definitions
            && matches!(&settings.keep, Keep::Only(keep) if !keep.contains(&key))
            && forward
                .iter()
                .filter(|c| c.inputs.contains(&key))
                .all(|c| reads_upper_triangle_only(theory, &c.program, c.kind, &c.key, &key));
        let value = match evaluate_value_triangle(
            theory, &params, x, y, &kernels, &body, &name, upper_only,
        )? {
            Value::Matrix(m) => m,
            Value::Scalar(s) => Array2::from_elem((x.nrows(), x.nrows()), s),
        };
        kernels.order.push(key.clone());
        kernels.entries.insert(key, value);
    }
    // How many equations still read each entry (for dropping what is no longer needed).
    let mut uses: HashMap<EntryKey, usize> = HashMap::new();
    for c in &forward {
        for key in &c.inputs {
            *uses.entry(key.clone()).or_insert(0) += 1;
        }
    }
    let mut remaining: Vec<Compiled> = forward;
    let mut spare: Vec<Array2<f64>> = Vec::new();
    /// Closed-form pair maps waiting to be applied to `input` in one fused loop.
    struct Chain {
        input: Array2<f64>,
        maps: Vec<PairKernelMap>,
    }
    let mut chains: HashMap<EntryKey, Chain> = HashMap::new();
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|c| {
            c.resolvable && c.inputs.iter().all(|key| kernels.entries.contains_key(key))
        });
        let Some(i) = ready else {
            let names: Vec<String> = remaining
                .iter()
                .map(|c| Kernels::name(theory, &c.key))
                .collect();
            return Err(NngpError::Stuck(names.join(", ")));
        };
        let c = remaining.remove(i);
        let name = Kernels::name(theory, &c.key);
        // An entry that is not returned and only read by closed-form pair maps (the hidden
        // layers of a deep network) needs no lower triangle.
        let upper_only = matches!(&settings.keep, Keep::Only(keep) if !keep.contains(&c.key))
            && remaining
                .iter()
                .filter(|r| r.inputs.contains(&c.key))
                .all(|r| reads_upper_triangle_only(theory, &r.program, r.kind, &r.key, &c.key));
        // A closed-form pair map of one kernel that is dropped after this equation, or
        // that is itself a link of a chain, extends the chain; the chain is applied in one
        // fused loop when an entry is needed in full (see `kernel_map::apply_chain_into`).
        let link = chain_link(theory, &c.program, c.kind, &c.key).filter(|(_, input)| {
            chains.contains_key(input)
                || (uses.get(input) == Some(&1)
                    && !matches!(&settings.keep, Keep::Only(keep) if keep.contains(input))
                    && matches!(&settings.keep, Keep::Only(_))
                    && kernels
                        .entries
                        .get(input)
                        .is_some_and(|m| m.dim() == (x.nrows(), x.nrows())))
        });
        let value = if let Some((map, input)) = link {
            let mut chain = match chains.remove(&input) {
                Some(chain) => chain,
                None => Chain {
                    input: kernels
                        .entries
                        .remove(&input)
                        .ok_or_else(|| NngpError::Stuck(Kernels::name(theory, &input)))?,
                    maps: Vec::new(),
                },
            };
            kernels.entries.remove(&input);
            chain.maps.push(map);
            // the only reader is the next link: defer
            let readers: Vec<&Compiled> = remaining
                .iter()
                .filter(|r| r.inputs.contains(&c.key))
                .collect();
            let next_is_link = upper_only
                && readers.len() == 1
                && chain_link(
                    theory,
                    &readers[0].program,
                    readers[0].kind,
                    &readers[0].key,
                )
                .is_some_and(|(_, i)| i == c.key);
            if next_is_link {
                chains.insert(c.key.clone(), chain);
                // a placeholder: the entry exists (for readiness), its value is the chain's
                Array2::zeros((0, 0))
            } else {
                // the input is this chain's own: overwrite it
                let mut out = chain.input;
                crate::numeric::kernel_map::apply_chain_in_place(
                    &chain.maps,
                    &mut out,
                    settings.pairs,
                    !upper_only,
                )
                .map_err(|source| NngpError::Program {
                    field: name.clone(),
                    source,
                })?;
                out
            }
        } else {
            for key in &c.inputs {
                if chains.contains_key(key) {
                    return Err(NngpError::Stuck(format!(
                        "{name} reads {}, deferred in a chain of pair maps",
                        Kernels::name(theory, key)
                    )));
                }
            }
            if c.native.is_some() {
                kernels.native.push(c.key.clone());
            }
            let (value, expansion) = evaluate_forward(
                theory,
                &c.program,
                c.native.as_ref(),
                &c.given,
                c.kind,
                &kernels,
                x.nrows(),
                settings.pairs,
                &name,
                &mut spare,
                upper_only,
            )?;
            if let Some(report) = expansion {
                kernels.expansions.insert(c.key.clone(), report);
            }
            value
        };
        kernels.order.push(c.key.clone());
        kernels.entries.insert(c.key.clone(), value);
        if let Keep::Only(keep) = &settings.keep {
            for key in &c.inputs {
                let left = uses.get_mut(key).map(|n| {
                    *n -= 1;
                    *n
                });
                if left == Some(0)
                    && !keep.contains(key)
                    && let Some(buffer) = kernels.entries.remove(key)
                {
                    spare.push(buffer);
                }
            }
            if uses.get(&c.key).copied().unwrap_or(0) == 0 && !keep.contains(&c.key) {
                kernels.entries.remove(&c.key);
            }
        }
    }
    if let Keep::Only(keep) = &settings.keep {
        kernels.entries.retain(|k, _| keep.contains(k));
        kernels.order.retain(|k| keep.contains(k));
    }
    for (key, value) in &kernels.entries {
        validate_entry(theory, key, value)?;
    }
    Ok(kernels)
}

/// What every returned entry must be: finite, and a kernel entry (`C[l]`, `C[t, t]`) a
/// covariance matrix — non-negative variances and |C_αβ| ≤ √(C_αα C_ββ). Hidden layers
/// meet this through the Gaussian expectations that read them; the returned ones (the last
/// layer, or the input kernel at L = 0) were not checked, and negative variance parameters
/// or overflowing inputs came out as a "kernel" with exit 0.
fn validate_entry(theory: &Theory, key: &EntryKey, value: &Array2<f64>) -> Result<(), NngpError> {
    let covariance = theory.fields[key.0].kind == FieldKind::Kernel
        && key_is_symmetric(key.1.clone())
        && value.is_square();
    validate_matrix(&|| Kernels::name(theory, key), value, covariance)
}

/// A readout kernel (`C[L]`, or an expression such as `gw * Q[L]`) must be a covariance
/// matrix too: see [`nngp_kernels`]' check of the returned entries.
pub fn validate_covariance(name: &str, value: &Array2<f64>) -> Result<(), NngpError> {
    validate_matrix(&|| name.to_string(), value, value.is_square())
}

/// Finite entries and, with `covariance`, non-negative variances and correlations within
/// ±1, in one pass over the upper triangle.
fn validate_matrix(
    name: &(dyn Fn() -> String + Sync),
    value: &Array2<f64>,
    covariance: bool,
) -> Result<(), NngpError> {
    let n = value.ncols();
    // √C_ββ once per pattern; then one multiply and compare per entry of the upper
    // triangle (the pass costs a few ms at P = 4000, a sqrt per entry cost 50)
    let roots: Vec<f64> = if covariance {
        value.diag().iter().map(|v| v.max(0.0).sqrt()).collect()
    } else {
        Vec::new()
    };
    let check_row = |a: usize, row: &[f64]| -> Option<NngpError> {
        if !covariance {
            let b = row.iter().position(|v| !v.is_finite())?;
            return Some(NngpError::NotFinite {
                field: name(),
                a,
                b,
            });
        }
        let variance = row[a];
        if !variance.is_finite() {
            return Some(NngpError::NotFinite {
                field: name(),
                a,
                b: a,
            });
        }
        if variance < 0.0 {
            return Some(NngpError::NotCovariance {
                field: name(),
                a,
                b: a,
                reason: format!("its variance is {variance} < 0"),
            });
        }
        let scale = roots[a] * (1.0 + 1e-9);
        // NaN compares as neither: `within` is false for it, as for ±∞
        let within = |b: usize| row[b].abs() <= scale * roots[b] + 1e-300;
        let b = (a..n).find(|&b| !within(b))?;
        let v = row[b];
        Some(if v.is_finite() {
            NngpError::NotCovariance {
                field: name(),
                a,
                b,
                reason: format!("|{v}| exceeds √(C_αα C_ββ) = {}", roots[a] * roots[b]),
            }
        } else {
            NngpError::NotFinite {
                field: name(),
                a,
                b,
            }
        })
    };
    let problem = match value.as_slice() {
        Some(flat) if n > 0 => flat
            .par_chunks(n)
            .enumerate()
            .find_map_first(|(a, row)| check_row(a, row)),
        _ => (0..value.nrows()).find_map(|a| check_row(a, &value.row(a).to_vec())),
    };
    problem.map_or(Ok(()), Err)
}

fn validate_inputs(x: ArrayView2<f64>) -> Result<(), NngpError> {
    input_problem(x).map_or(Ok(()), |why| Err(NngpError::Data(why)))
}

/// What is wrong with inputs X, if anything: no patterns or features, or a NaN/infinite entry
/// (named by pattern and feature).
pub fn input_problem(x: ArrayView2<f64>) -> Option<String> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Some(format!(
            "the inputs are empty ({} patterns × {} features)",
            x.nrows(),
            x.ncols()
        ));
    }
    x.indexed_iter()
        .find(|(_, v)| !v.is_finite())
        .map(|((i, j), v)| format!("the inputs hold {v} at pattern {i}, feature {j}"))
}

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
fn evaluate_value_triangle(
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

/// The closed-form pair map C' = s·K_φ(C) + o of the equation for `key` and the entry C it
/// reads (diagonal and pairs of one symmetric kernel), when it has one.
fn chain_link(
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
fn reads_upper_triangle_only(
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
fn input_keys(theory: &Theory, program: &Program) -> Vec<EntryKey> {
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
fn key_of(name: &str) -> Vec<i64> {
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
fn take_buffer(spare: &mut Vec<Array2<f64>>, p: usize) -> Array2<f64> {
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
struct NativeFormula {
    eval: fn(&[f64], &[f64], bool) -> f64,
    closed_form: bool,
    constants: Vec<f64>,
    slots: Vec<String>,
}

/// Whether [`evaluate_forward`]'s fast path applies and beats generated code: C' =
/// s·K_φ(C) + o of one symmetric kernel C, read at (α, α), (β, β) and (α, β), into a symmetric
/// entry. With a closed form (erf, ReLU, sign, linear, step at θ = 0) its SIMD loop beats any
/// per-pair function; without one (tanh, a user activation) its Mehler expansion beats
/// generated quadrature but not a generated closed form (`native_closed`).
fn fused_pair_map(theory: &Theory, program: &Program, key: &EntryKey, native_closed: bool) -> bool {
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
fn native_formula(
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

#[allow(clippy::too_many_arguments)]
fn evaluate_forward(
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
    let needed = move |a: usize, b: usize| match pairs {
        PairSet::All => true,
        PairSet::TrainAndCross(n) => a < n || b < n || a == b,
    };
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
