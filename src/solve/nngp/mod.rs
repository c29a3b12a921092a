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
//!
//! ## Modules
//! * here: settings, results, errors and the scheduler ([`nngp_kernels`]): equations in
//!   dependency order, chains fused, buffers recycled, kernels not kept dropped early.
//! * `plan`: per equation, where its slots read, fusion and the fast path or generated code.
//! * `evaluate`: one equation over all pattern pairs ([`evaluate_matrix`], pair formulas).
//! * `validate`: inputs, covariances and computed entries checked ([`validate_covariance`]).

use std::collections::{BTreeMap, HashMap};

use ndarray::{Array2, ArrayView2};

use crate::check::ir::{FieldId, FieldKind, Theory};
use crate::derive::entrywise::{Position, entry_formula};
use crate::derive::grad::Variable;
use crate::derive::{DeriveError, derive_forward};
use crate::generated::NativePairMap;
use crate::numeric::kernel_map::PairKernelMap;
pub use crate::numeric::kernel_map::PairSet;
use crate::numeric::kernel_map::hermite::ExpansionReport;
use crate::numeric::matrix::{MatrixEvalError, Value};
use crate::numeric::program::{Program, ProgramError};

mod evaluate;
mod plan;
mod validate;
use evaluate::*;
pub use evaluate::{evaluate_matrix, evaluate_value};
use plan::*;
pub(crate) use plan::{SlotSource, key_is_symmetric, slot_source};
use validate::*;
pub use validate::{input_problem, validate_covariance};

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
