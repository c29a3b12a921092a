//! Field and conjugate entries during one evaluation (THEORY.md §1, full-matrix convention).
//!
//! * A free entry is read from the variables (row-major block of [`super::Variables`]); a defined
//!   one is evaluated from its definition with the definition's `for` variables bound, once per
//!   concrete index (cached), with a guard against cycles.
//! * A kernel entry enters expressions symmetrised, $\mathrm{sym}(C)=\tfrac12(C+C^\top)$. For a
//!   two-time family `C[t, s]` (two indices over the same range) the symmetrisation is that of
//!   the whole $(PT)\times(PT)$ kernel: $\mathrm{sym}(C)[t,s]=\tfrac12(C[t,s]+C[s,t]^\top)$.
//!   On the diagonal this is $\mathrm{sym}(C[t,t])$; off it, $C_{\alpha\beta}(t,s)$ and
//!   $C_{\alpha\beta}(s,t)$ stay different (THEORY.md T11) and $S$ depends on $C[t,s]$ and
//!   $C[s,t]$ only through that combination, so $\partial S/\partial C[t,s]_{\alpha\beta}=
//!   \partial S/\partial C[s,t]_{\beta\alpha}$.
//! * Mean fields and conjugates are used as they are.

use num_dual::DualNum;

use super::ActionError;
use super::dense::Dense;
use super::eval::Evaluation;
use super::ops::context;
use super::variables::{EntrySource, Owner, entry_name};
use crate::check::ir::{ConjId, FieldId, FieldKind};

impl<D: DualNum<Primitive = f64>> Evaluation<'_, D> {
    /// A field entry as it enters expressions: kernels symmetrised, means as they are.
    pub(super) fn field_value(
        &mut self,
        field: FieldId,
        indices: Vec<i64>,
    ) -> Result<Dense<D>, ActionError> {
        let key = (field, indices);
        if let Some(value) = self.fields.get(&key) {
            return Ok(value.clone());
        }
        let evaluator = self.evaluator;
        let theory = &evaluator.theory;
        let declaration = &theory.fields[field];
        let raw = self.raw_value(field, &key.1)?;
        let value = match declaration.kind {
            FieldKind::Mean => raw,
            FieldKind::Kernel => {
                let swapped: Option<Vec<i64>> = match key.1.as_slice() {
                    [t, s] if t != s && declaration.is_time_family() => Some(vec![*s, *t]),
                    _ => None,
                };
                let partner = match swapped {
                    Some(swapped) if evaluator.variables().source(field, &swapped).is_some() => {
                        self.raw_value(field, &swapped)?
                    }
                    _ => raw.clone(),
                };
                let name = entry_name(&declaration.name, &key.1);
                raw.zip_map(&partner.transpose(), "symmetrise", |a, b| {
                    (a.clone() + b.clone()) * 0.5
                })
                .map_err(|source| ActionError::LinearAlgebra {
                    context: format!("symmetrising `{name}`").into(),
                    source,
                })?
            }
        };
        self.fields.insert(key, value.clone());
        Ok(value)
    }

    /// A field entry from the variables or from its definition, not symmetrised.
    fn raw_value(&mut self, field: FieldId, indices: &[i64]) -> Result<Dense<D>, ActionError> {
        let evaluator = self.evaluator;
        let declaration = &evaluator.theory.fields[field];
        let name = || entry_name(&declaration.name, indices);
        let patterns = evaluator.patterns();
        let cols = match declaration.kind {
            FieldKind::Kernel => patterns,
            FieldKind::Mean => 1,
        };
        match evaluator.variables().source(field, indices) {
            None => Err(ActionError::UnknownEntry { entry: name() }),
            Some(EntrySource::Free { offset }) => {
                let block = &self.values[*offset..*offset + patterns * cols];
                Dense::from_vec(patterns, cols, block.to_vec()).map_err(|source| {
                    ActionError::LinearAlgebra {
                        context: name().into(),
                        source,
                    }
                })
            }
            Some(EntrySource::Defined { definition, scope }) => {
                let key = (field, indices.to_vec());
                if let Some(value) = self.raw.get(&key) {
                    return Ok(value.clone());
                }
                if !self.in_progress.insert(key.clone()) {
                    return Err(ActionError::DefinitionCycle { entry: name() });
                }
                let body = &evaluator.theory.definitions[*definition].body;
                let value = self.eval(body, scope, &[])?;
                self.in_progress.remove(&key);
                let value = if value.shape() == (patterns, cols) {
                    value
                } else if let Some(s) = value.as_scalar() {
                    Dense::from_fn(patterns, cols, |_, _| s.clone())
                } else {
                    return Err(ActionError::Unsupported {
                        context: context(&format!("definition of `{}`", name()), body.span),
                        reason: format!(
                            "it is {}×{}, not {patterns}×{cols}",
                            value.rows(),
                            value.cols()
                        ),
                    });
                };
                self.raw.insert(key, value.clone());
                Ok(value)
            }
        }
    }

    pub(super) fn conjugate_value(
        &self,
        conj: ConjId,
        indices: &[i64],
    ) -> Result<Dense<D>, ActionError> {
        let evaluator = self.evaluator;
        let declaration = evaluator.theory.conjugates.get(conj);
        let name = declaration.map_or_else(
            || format!("conjugate {conj}"),
            |c| entry_name(&c.name, indices),
        );
        let block = evaluator
            .variables()
            .block(Owner::Conjugate(conj), indices)
            .ok_or(ActionError::UnknownEntry {
                entry: name.clone(),
            })?;
        let patterns = evaluator.patterns();
        let cols = block.len() / patterns;
        Dense::from_vec(patterns, cols, self.values[block].to_vec()).map_err(|source| {
            ActionError::LinearAlgebra {
                context: name.into(),
                source,
            }
        })
    }
}
