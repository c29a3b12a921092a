//! # The step map of a theory, for a pair of patterns
//!
//! At the NNGP point the forward equations of a layered or recurrent theory carry the order
//! parameters of one step (layer l, or time t with the equal-time kernel C[t, t]) to the
//! next. For two patterns α, β the state of a step is, per order parameter,
//! (C_αα, C_ββ, C_αβ) for a kernel and (m_α, m_β) for a mean field, and
//! $$\big(C'_{\alpha\alpha}, C'_{\beta\beta}, C'_{\alpha\beta}\big) = F\big(C_{\alpha\alpha}, C_{\beta\beta}, C_{\alpha\beta}, m_\alpha, m_\beta\big)$$
//! is the theory's own equation for its readout entry (`C[L]`, `C[T, T]`, `Q[L]` with
//! `m[L]`), applied to arbitrary states: the analyses of signal propagation (fixed points,
//! χ₁, depth scales — [`super::criticality`]) and of pattern separation
//! ([`super::separation`]) iterate it.
//!
//! The map is found, not assumed: the equations of the last step's entries must read only
//! entries of one earlier step (the same index shift for all of them) and no data; the state
//! is closed under that (a `Q[L]` that reads `m[L−1]` brings in `m`'s equation). A theory
//! whose last step is driven by data (input at every time) has no autonomous map and is
//! refused, with the entry and what it reads.
//!
//! Every evaluation goes through [`Program::eval_dual`], so slopes of the map come from
//! num-dual, not from finite differences.

use std::collections::HashMap;

use num_dual::DualNum;

use crate::check::ir::{FieldId, FieldKind, Theory};
use crate::derive::entrywise::{Position, entry_formula};
use crate::derive::grad::Variable;
use crate::derive::{DeriveError, derive_forward};
use crate::numeric::program::{Program, ProgramError};

use super::nngp::{EntryKey, Kernels, NngpSettings, SlotSource, key_is_symmetric, slot_source};

/// Why a theory has no step map, or a state could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum StepMapError {
    /// A `--set` value that cannot be bound.
    #[error(transparent)]
    Bind(#[from] crate::check::BindError),
    /// The equations could not be derived.
    #[error("deriving the equations: {0}")]
    Derive(#[from] DeriveError),
    /// The theory's readout is not made of field entries computed by forward equations.
    #[error("{0}")]
    NoMap(String),
    /// An entry formula could not be compiled or evaluated.
    #[error("{field}: {source}")]
    Program {
        /// The entry.
        field: String,
        /// The problem.
        source: ProgramError,
    },
}

/// One order parameter of the state.
#[derive(Debug, Clone)]
pub struct StateField {
    /// The field.
    pub field: FieldId,
    /// Kernel or mean.
    pub kind: FieldKind,
    /// The field's name (`C`, `m`).
    pub name: String,
    /// The entry the map produces (`C[3]`).
    pub entry: String,
    /// The entry it reads that entry from (`C[2]`).
    pub previous: String,
}

/// The equation of one state field: its compiled formula and, per slot, the state field and
/// the position it reads.
#[derive(Debug, Clone)]
struct StepEquation {
    program: Program,
    slots: Vec<(usize, Position)>,
}

/// The values of a state for two patterns a (0) and b (1): per state field, `[aa, bb, ab]`
/// for a kernel and `[a, b, _]` for a mean (the third value unused).
pub type PairState<D> = Vec<[D; 3]>;

/// The map from one step's order parameters to the next's, for a pair of patterns.
#[derive(Debug, Clone)]
pub struct StepMap {
    /// The order parameters, in the order of [`PairState`].
    pub fields: Vec<StateField>,
    /// The index shift of one step (`[1]` for `C[l] ← C[l−1]`, `[1, 1]` for `C[t, t]`).
    pub shift: Vec<i64>,
    equations: Vec<StepEquation>,
}

impl StepMap {
    /// The step map of `theory` at parameters `overrides` (Gauss–Hermite order
    /// `quadrature_order` for expectations without a closed form).
    pub fn from_theory(
        theory: &Theory,
        overrides: &[(String, f64)],
        quadrature_order: usize,
    ) -> Result<Self, StepMapError> {
        let params = theory.bind(overrides)?;
        let bound: Vec<(String, f64)> = theory
            .params
            .iter()
            .zip(&params)
            .map(|(p, v)| (p.name.clone(), *v))
            .collect();
        let constants: HashMap<String, f64> = bound.iter().cloned().collect();
        let settings = NngpSettings {
            overrides: bound.clone(),
            ..NngpSettings::default()
        };
        let readout = super::predict::readout_fields(theory, &settings)
            .map_err(|e| StepMapError::NoMap(e.to_string()))?;
        let equations = derive_forward(theory, &bound)?;
        let equation_of = |key: &(FieldId, Vec<i64>)| {
            equations.forward.iter().find(
                |eq| matches!(&eq.unknown, Variable::Field(f, idx) if *f == key.0 && *idx == key.1),
            )
        };
        let name = |key: &(FieldId, Vec<i64>)| Kernels::name(theory, key);

        let mut keys: Vec<(FieldId, Vec<i64>)> = Vec::new();
        for key in readout {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(StepMapError::NoMap(
                "the readout reads no field entry, so there is no step to iterate".into(),
            ));
        }
        let mut shift: Option<Vec<i64>> = None;
        // each equation's program, with the entries its slots read (and where)
        let mut compiled: Vec<(Program, Vec<(EntryKey, Position)>)> = Vec::new();
        let mut i = 0;
        while i < keys.len() {
            let key = keys[i].clone();
            let entry = name(&key);
            let kind = theory.fields[key.0].kind;
            if kind == FieldKind::Kernel && !key_is_symmetric(key.1.clone()) {
                return Err(StepMapError::NoMap(format!(
                    "{entry} is a block between different steps; the step map carries \
                     equal-step kernels only"
                )));
            }
            let equation = equation_of(&key).ok_or_else(|| {
                StepMapError::NoMap(format!(
                    "{entry} is defined from the data, not by a forward equation: there is no \
                     step map to iterate (raise the depth or the number of time steps, e.g. \
                     `--set L=3`)"
                ))
            })?;
            let nngp = equation.nngp.clone()?;
            let position = if kind == FieldKind::Mean {
                Position::First
            } else {
                Position::Pair
            };
            let formula = entry_formula(theory, &nngp, position)?;
            let data = |what: &str| {
                StepMapError::NoMap(format!(
                    "the equation of {entry} reads {what}: the step is driven by the data, so \
                     it has no autonomous map (criticality and pattern separation need a step \
                     that reads only the previous one; raise the depth if the first step is \
                     the one that reads the inputs)"
                ))
            };
            if !formula.given.is_empty() {
                return Err(data("the inputs"));
            }
            // Every parameter is bound here, so a symbol without a value is a size of the
            // data (d, D, P): the step reads the data.
            let program = Program::compile(&formula.expr, &constants, quadrature_order).map_err(
                |source| match source {
                    ProgramError::UnknownSymbol(symbol) => {
                        data(&format!("`{symbol}`, a size of the data"))
                    }
                    source => StepMapError::Program {
                        field: entry.clone(),
                        source,
                    },
                },
            )?;
            let mut reads = Vec::new();
            for slot in &program.slots {
                match slot_source(theory, slot) {
                    Some(SlotSource::Field(input, pos)) => {
                        if input.1.len() != key.1.len() {
                            return Err(StepMapError::NoMap(format!(
                                "{entry} reads {}, whose indices do not match",
                                name(&input)
                            )));
                        }
                        let step: Vec<i64> =
                            key.1.iter().zip(&input.1).map(|(o, i)| o - i).collect();
                        match &shift {
                            None => shift = Some(step.clone()),
                            Some(s) if *s == step => {}
                            Some(_) => {
                                return Err(StepMapError::NoMap(format!(
                                    "{entry} reads {}: not one step back like the other \
                                     entries, so the steps do not form one map",
                                    name(&input)
                                )));
                            }
                        }
                        if step.iter().all(|s| *s == 0) {
                            return Err(StepMapError::NoMap(format!(
                                "{entry} reads itself: not a map from one step to the next"
                            )));
                        }
                        let output = (input.0, key.1.clone());
                        if !keys.contains(&output) {
                            keys.push(output);
                        }
                        reads.push((input, pos));
                    }
                    Some(SlotSource::Given(..)) => return Err(data("the inputs")),
                    None => return Err(data(&format!("`{slot}`"))),
                }
            }
            compiled.push((program, reads));
            i += 1;
        }
        let shift = shift.ok_or_else(|| {
            StepMapError::NoMap(format!(
                "{} reads no earlier entry: there is no step to iterate",
                name(&keys[0])
            ))
        })?;
        let fields: Vec<StateField> = keys
            .iter()
            .map(|key| {
                let previous: Vec<i64> = key.1.iter().zip(&shift).map(|(k, s)| k - s).collect();
                StateField {
                    field: key.0,
                    kind: theory.fields[key.0].kind,
                    name: theory.fields[key.0].name.clone(),
                    entry: name(key),
                    previous: name(&(key.0, previous)),
                }
            })
            .collect();
        let equations = compiled
            .into_iter()
            .map(|(program, reads)| {
                let slots = reads
                    .into_iter()
                    .map(|(input, pos)| {
                        let i = fields
                            .iter()
                            .position(|f| f.field == input.0)
                            .unwrap_or_default();
                        (i, pos)
                    })
                    .collect();
                StepEquation { program, slots }
            })
            .collect();
        Ok(StepMap {
            fields,
            shift,
            equations,
        })
    }

    /// The one kernel field of the state (the one whose pair entry is a correlation), if
    /// there is exactly one.
    pub fn kernel_field(&self) -> Option<usize> {
        let mut kernels = self
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == FieldKind::Kernel);
        match (kernels.next(), kernels.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// The one mean field of the state (the activity that distances of 0/1 units read), if
    /// there is exactly one.
    pub fn mean_field(&self) -> Option<usize> {
        let mut means = self
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == FieldKind::Mean);
        match (means.next(), means.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// `"C[3] ← C[2]"` (every state field).
    pub fn describe(&self) -> String {
        let out: Vec<&str> = self.fields.iter().map(|f| f.entry.as_str()).collect();
        let input: Vec<&str> = self.fields.iter().map(|f| f.previous.as_str()).collect();
        format!("{} ← {}", out.join(", "), input.join(", "))
    }

    /// One step for the pair (a, b).
    pub fn apply<D: DualNum<Primitive = f64> + Copy>(
        &self,
        state: &[[D; 3]],
    ) -> Result<PairState<D>, StepMapError> {
        self.fields
            .iter()
            .zip(&self.equations)
            .map(|(field, eq)| {
                let at = |p: usize, q: usize| self.evaluate(field, eq, state, p, q);
                Ok(match field.kind {
                    FieldKind::Kernel => [at(0, 0)?, at(1, 1)?, at(0, 1)?],
                    FieldKind::Mean => [at(0, 0)?, at(1, 1)?, D::zero()],
                })
            })
            .collect()
    }

    /// One step for a single pattern: the diagonal state (C_αα per kernel, m_α per mean).
    pub fn apply_single<D: DualNum<Primitive = f64> + Copy>(
        &self,
        x: &[D],
    ) -> Result<Vec<D>, StepMapError> {
        let state: Vec<[D; 3]> = x.iter().map(|&v| [v, v, v]).collect();
        self.fields
            .iter()
            .zip(&self.equations)
            .map(|(field, eq)| self.evaluate(field, eq, &state, 0, 0))
            .collect()
    }

    /// The entry (p, q) of `field`'s next value (p = q: a diagonal entry, or the mean of p).
    fn evaluate<D: DualNum<Primitive = f64> + Copy>(
        &self,
        field: &StateField,
        eq: &StepEquation,
        state: &[[D; 3]],
        p: usize,
        q: usize,
    ) -> Result<D, StepMapError> {
        let slots: Vec<D> = eq
            .slots
            .iter()
            .map(|&(i, pos)| {
                let s = &state[i];
                let diagonal = |r: usize| s[r];
                match pos {
                    Position::Pair if p == q => diagonal(p),
                    Position::Pair => s[2],
                    Position::FirstDiagonal | Position::First => diagonal(p),
                    Position::SecondDiagonal | Position::Second => diagonal(q),
                }
            })
            .collect();
        eq.program
            .eval_dual(&slots, p == q)
            .map_err(|source| StepMapError::Program {
                field: field.entry.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theory(source: &str) -> Theory {
        crate::compile(source, "t.action").expect("example theory checks")
    }

    #[test]
    fn deep_erf_step_is_the_t1_layer_map() {
        let t = theory(include_str!("../../examples/deep_erf.action"));
        let map = StepMap::from_theory(&t, &[("gb".into(), 0.1), ("g".into(), 1.5)], 80)
            .expect("a step map");
        assert_eq!(map.shift, vec![1]);
        assert_eq!(map.fields.len(), 1);
        // T1: C⁽¹⁾ from C⁽⁰⁾ = [[1, .6], [.6, 1.5]], unit-slope erf, g = 1.5, g_b = 0.1
        let next = map.apply::<f64>(&[[1.0, 1.5, 0.6]]).expect("a step");
        let want = [0.72771607, 0.84318640, 0.41191432];
        for (got, want) in next[0].iter().zip(want) {
            assert!((got - want).abs() < 1e-8, "{got} vs {want}");
        }
    }

    #[test]
    fn recurrent_step_is_equal_time_and_binary_threshold_brings_in_its_mean() {
        let t = theory(include_str!("../../examples/recurrent_erf.action"));
        let map = StepMap::from_theory(&t, &[], 80).expect("a step map");
        assert_eq!(map.shift, vec![1, 1]);
        assert_eq!(map.describe(), "C[3,3] ← C[2,2]");

        let t = theory(include_str!("../../examples/binary_threshold.action"));
        let map = StepMap::from_theory(&t, &[], 80).expect("a step map");
        let names: Vec<&str> = map.fields.iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&"m") && names.contains(&"Q"), "{names:?}");
    }

    #[test]
    fn data_driven_steps_and_single_layer_theories_are_refused() {
        let t = theory(include_str!("../../examples/recurrent_erf_driven.action"));
        let err = StepMap::from_theory(&t, &[], 80).expect_err("driven by the data");
        assert!(err.to_string().contains("driven by the data"), "{err}");

        let t = theory(include_str!("../../examples/binary_threshold.action"));
        let err = StepMap::from_theory(&t, &[("L".into(), 1.0)], 80).expect_err("one layer");
        assert!(err.to_string().contains("driven by the data"), "{err}");
    }
}
