//! The free variables of a theory at given integer-parameter values.
//!
//! Every field entry (`C[2]`, `C[1, 3]`, `m[1]`) is either fixed by a definition (`C[0] = …`)
//! or an order parameter that the saddle point determines. The variables are, in this order:
//!
//! 1. every entry $(\alpha,\beta)$ of every *free* field entry, fields in declaration order,
//!    entries in lexicographic index order — $P^2$ per kernel (full-matrix convention of
//!    THEORY.md §1: $C_{\alpha\beta}$ and $C_{\beta\alpha}$ are separate variables), $P$ per mean;
//! 2. every entry of every conjugate field entry, in the same order ($\tilde C$ of a kernel is
//!    $P\times P$, $\tilde m$ of a mean a $P$-vector).
//!
//! Within one field entry the layout is row-major: variable `offset + row * P + col`.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use super::ActionError;
use crate::check::ir::{ConjId, FieldId, FieldKind, IndexBinding, IndexExpr, ParamType, Theory};

/// Largest number of entries enumerated per field, conjugate or definition.
const MAX_ENTRIES: usize = 100_000;

/// Values of bound index variables, innermost last.
pub(crate) type Scope = Vec<(String, i64)>;

/// What a variable belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A free entry of a kernel or mean field.
    Field(FieldId),
    /// An entry of a conjugate field.
    Conjugate(ConjId),
}

/// One scalar variable: entry `(row, col)` of the field entry `name[indices]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// The field or conjugate.
    pub owner: Owner,
    /// Its name, e.g. `Ct`.
    pub name: String,
    /// The concrete indices, e.g. `[1]` for `Ct[1]`.
    pub indices: Vec<i64>,
    /// Pattern row α.
    pub row: usize,
    /// Pattern column β (0 for a mean field).
    pub col: usize,
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", entry_name(&self.name, &self.indices))?;
        write!(f, "({}, {})", self.row, self.col)
    }
}

/// How the value of a field entry is obtained.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum EntrySource {
    /// Read from the variables, starting at `offset`.
    Free {
        /// Index of its `(0, 0)` variable.
        offset: usize,
    },
    /// Computed from definition `definition` with its `for` variables bound by `scope`.
    Defined {
        /// Index into [`Theory::definitions`].
        definition: usize,
        /// The definition's index variables.
        scope: Scope,
    },
}

/// The free variables of a theory and where every field entry comes from.
#[derive(Clone, Debug)]
pub struct Variables {
    list: Vec<Variable>,
    /// Variables of each field or conjugate entry, and its number of columns.
    blocks: HashMap<(Owner, Vec<i64>), (Range<usize>, usize)>,
    sources: HashMap<(FieldId, Vec<i64>), EntrySource>,
}

impl Variables {
    /// Enumerates the variables of `theory` at `params` (one value per parameter, by
    /// [`crate::check::ir::ParamId`]; the `int` ones fix the index ranges) for `patterns` = P.
    pub fn new(theory: &Theory, params: &[f64], patterns: usize) -> Result<Self, ActionError> {
        let int_params = integer_params(theory, params)?;
        let mut sources = HashMap::new();
        for (id, definition) in theory.definitions.iter().enumerate() {
            let name = &theory.fields[definition.field].name;
            for scope in assignments(&definition.bindings, &[], &int_params, name)? {
                let indices = eval_indices(&definition.indices, &scope, &int_params, name)?;
                sources
                    .entry((definition.field, indices))
                    .or_insert(EntrySource::Defined {
                        definition: id,
                        scope,
                    });
            }
        }
        let mut variables = Variables {
            list: Vec::new(),
            blocks: HashMap::new(),
            sources,
        };
        for (id, field) in theory.fields.iter().enumerate() {
            for indices in entries(&field.indices, &int_params, &field.name)? {
                if variables.sources.contains_key(&(id, indices.clone())) {
                    continue;
                }
                let offset = variables.list.len();
                variables
                    .sources
                    .insert((id, indices.clone()), EntrySource::Free { offset });
                variables.push_block(Owner::Field(id), &field.name, indices, field.kind, patterns);
            }
        }
        for (id, conj) in theory.conjugates.iter().enumerate() {
            let kind = theory.fields[conj.of].kind;
            for indices in entries(&conj.indices, &int_params, &conj.name)? {
                variables.push_block(Owner::Conjugate(id), &conj.name, indices, kind, patterns);
            }
        }
        Ok(variables)
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All variables in order.
    pub fn as_slice(&self) -> &[Variable] {
        &self.list
    }

    /// Variable number `i`.
    pub fn get(&self, i: usize) -> Option<&Variable> {
        self.list.get(i)
    }

    /// The variables of the field or conjugate entry `owner[indices]` (row-major).
    pub fn block(&self, owner: Owner, indices: &[i64]) -> Option<Range<usize>> {
        self.blocks
            .get(&(owner, indices.to_vec()))
            .map(|(range, _)| range.clone())
    }

    /// The index of entry `(row, col)` of `owner[indices]` (`col = 0` for a mean field).
    pub fn index_of(&self, owner: Owner, indices: &[i64], row: usize, col: usize) -> Option<usize> {
        let (block, cols) = self.blocks.get(&(owner, indices.to_vec()))?;
        let index = block.start + row * cols + col;
        (col < *cols && block.contains(&index)).then_some(index)
    }

    /// Where the value of field entry `field[indices]` comes from.
    pub(crate) fn source(&self, field: FieldId, indices: &[i64]) -> Option<&EntrySource> {
        self.sources.get(&(field, indices.to_vec()))
    }

    fn push_block(
        &mut self,
        owner: Owner,
        name: &str,
        indices: Vec<i64>,
        kind: FieldKind,
        patterns: usize,
    ) {
        let start = self.list.len();
        let cols = match kind {
            FieldKind::Kernel => patterns,
            FieldKind::Mean => 1,
        };
        for row in 0..patterns {
            for col in 0..cols {
                self.list.push(Variable {
                    owner,
                    name: name.to_string(),
                    indices: indices.clone(),
                    row,
                    col,
                });
            }
        }
        self.blocks
            .insert((owner, indices), (start..self.list.len(), cols));
    }
}

/// `name[i, j]`, or `name` without indices.
pub(crate) fn entry_name(name: &str, indices: &[i64]) -> String {
    if indices.is_empty() {
        return name.to_string();
    }
    let list: Vec<String> = indices.iter().map(i64::to_string).collect();
    format!("{name}[{}]", list.join(", "))
}

/// The values of the `int` parameters by id (0 for real ones); errors on a non-integer value.
pub(crate) fn integer_params(theory: &Theory, params: &[f64]) -> Result<Vec<i64>, ActionError> {
    if params.len() != theory.params.len() {
        return Err(ActionError::ParamCount {
            expected: theory.params.len(),
            got: params.len(),
        });
    }
    theory
        .params
        .iter()
        .zip(params)
        .map(|(param, &value)| match param.ty {
            ParamType::Real => Ok(0),
            ParamType::Int
                if crate::check::bind::value_problem(ParamType::Int, value).is_none() =>
            {
                Ok(value as i64)
            }
            ParamType::Int => Err(ActionError::NonIntegerParam {
                name: param.name.clone(),
                value,
            }),
        })
        .collect()
}

/// Evaluates an index expression in `scope`.
pub(crate) fn eval_index(
    index: &IndexExpr,
    scope: &[(String, i64)],
    int_params: &[i64],
    context: &str,
) -> Result<i64, ActionError> {
    let var = |name: &str| scope.iter().rev().find(|(v, _)| v == name).map(|(_, x)| *x);
    let param = |id: usize| int_params.get(id).copied().unwrap_or(0);
    index
        .eval(&var, &param)
        .ok_or_else(|| ActionError::UnknownEntry {
            entry: format!("an index of `{context}` uses an unbound variable"),
        })
}

fn eval_indices(
    indices: &[IndexExpr],
    scope: &[(String, i64)],
    int_params: &[i64],
    context: &str,
) -> Result<Vec<i64>, ActionError> {
    indices
        .iter()
        .map(|i| eval_index(i, scope, int_params, context))
        .collect()
}

/// Every extension of `outer` by the `bindings` (later ranges may use earlier variables).
pub(crate) fn assignments(
    bindings: &[IndexBinding],
    outer: &[(String, i64)],
    int_params: &[i64],
    context: &str,
) -> Result<Vec<Scope>, ActionError> {
    let mut scopes: Vec<Scope> = vec![outer.to_vec()];
    for binding in bindings {
        let mut next = Vec::new();
        for scope in &scopes {
            let lower = eval_index(&binding.range.lower, scope, int_params, context)?;
            let upper = eval_index(&binding.range.upper, scope, int_params, context)?;
            for value in lower..=upper {
                if next.len() >= MAX_ENTRIES {
                    return Err(ActionError::TooManyEntries {
                        name: context.to_string(),
                        limit: MAX_ENTRIES,
                    });
                }
                let mut extended = scope.clone();
                extended.push((binding.var.clone(), value));
                next.push(extended);
            }
        }
        scopes = next;
    }
    Ok(scopes)
}

/// The concrete index tuples of a field or conjugate declared `for` these bindings.
fn entries(
    bindings: &[IndexBinding],
    int_params: &[i64],
    context: &str,
) -> Result<Vec<Vec<i64>>, ActionError> {
    Ok(assignments(bindings, &[], int_params, context)?
        .into_iter()
        .map(|scope| scope.into_iter().map(|(_, value)| value).collect())
        .collect())
}
