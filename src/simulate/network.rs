//! The finite network an action describes, read off its cumulant-generating terms.
//!
//! A term `n · ln E[exp(A) | h ~ N(m, K)]` of the action is the large-deviation functional
//! of empirical averages over a *population* of n units whose pre-activations hᵢ are i.i.d.
//! 𝒩(m, K) given the fields m and K are built from (THEORY.md §1: conditional on the
//! previous layer, a layer's units are exactly i.i.d. Gaussian). The forward equation at
//! the NNGP point, derived from the action as usual, says which average each field is:
//! C⁽ˡ⁾ = g⟨φ(h)φ(h)ᵀ⟩ + g_b 𝟏𝟏ᵀ becomes C⁽ˡ⁾ = (g/n) Σᵢ φ(hᵢ)φ(hᵢ)ᵀ + g_b 𝟏𝟏ᵀ. To know
//! which population an expectation of the derived equations averages over, each term's
//! random variable is renamed (`h#1`, `h#2`, …) before the derivation.
//!
//! Terms without a conjugate are the data term (the readout's Gaussian likelihood, read by
//! [`find_readout`]) or corrections of the large-deviation rate to finite P/N (the Wishart
//! measure term of a deep linear network): the network itself has no such term, so they are
//! listed in [`Network::left_out`] and not simulated.
//!
//! One concept, one file: the network read off the action's cumulant-generating terms.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use ndarray::Array2;

use super::SimulateError;
use crate::check::ir::{Covariance, DataRole, Expr, ExprKind, Theory, log_mgf};
use crate::derive::build::{expectation, node, substitute};
use crate::derive::equations::forward_equations_of;
use crate::derive::grad::Variable;
use crate::derive::unroll::{IndexEnv, defined_entries, unroll};
use crate::numeric::matrix::{MatrixContext, Value};
use crate::solve::nngp::{EntryKey, Kernels};
use crate::solve::readout::{Readout, find_readout};
use crate::syntax::Span;

/// One population of units: a cumulant-generating term of the action.
#[derive(Debug, Clone)]
pub struct Population {
    /// The number of units n (the term's coefficient).
    pub units: usize,
    /// The term's random variable, renamed to be unique (`h#2`).
    pub var: String,
    /// The mean of the units' pre-activations (a scalar or a P-vector).
    pub mean: Expr,
    /// Their covariance (P×P).
    pub cov: Expr,
    /// The term's tilt A, the exponent in `ln E[exp(A)]` (it reads the conjugates).
    pub tilt: Expr,
    /// Where the term was written.
    pub span: Span,
    /// The field entries the mean and covariance read.
    pub reads: Vec<EntryKey>,
}

/// An average over a population that a field's equation needs.
#[derive(Debug, Clone)]
pub struct Average {
    /// Which population.
    pub population: usize,
    /// The integrand.
    pub body: Expr,
}

/// A field entry as an empirical average: its forward equation at the NNGP point with every
/// expectation replaced by a slot holding the population average.
#[derive(Debug, Clone)]
pub struct FieldRule {
    /// The entry.
    pub key: EntryKey,
    /// The right-hand side; slot j is the field id `fields + j` (a matrix average) or the
    /// parameter id `params + j` (a scalar one).
    pub rhs: Expr,
    /// The averages, by slot.
    pub averages: Vec<Average>,
    /// The field entries the right-hand side reads.
    pub reads: Vec<EntryKey>,
}

/// A definition `C[0] = …` at concrete indices.
#[derive(Debug, Clone)]
pub struct DefinitionRule {
    /// The entry.
    pub key: EntryKey,
    /// Its value as an expression.
    pub body: Expr,
    /// The field entries it reads (none: computed once for all draws).
    pub reads: Vec<EntryKey>,
}

/// One step of a draw, in dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Evaluate a definition that reads simulated fields.
    Definition(usize),
    /// Draw a population's pre-activations.
    Population(usize),
    /// Evaluate a field entry's rule.
    Field(usize),
}

/// The network of a theory at bound parameter values.
#[derive(Debug, Clone)]
pub struct Network {
    /// The theory.
    pub theory: Theory,
    /// Parameter values by id.
    pub params: Vec<f64>,
    /// Populations of units, one per cumulant-generating term.
    pub populations: Vec<Population>,
    /// Definitions.
    pub definitions: Vec<DefinitionRule>,
    /// Field entries determined by populations.
    pub rules: Vec<FieldRule>,
    /// The order of one draw.
    pub schedule: Vec<Step>,
    /// The readout kernel and noise.
    pub readout: Option<Readout>,
    /// Terms of the action that are not part of the network (finite-P/N corrections of the
    /// rate function), with their spans.
    pub left_out: Vec<Span>,
}

impl Network {
    /// Reads the network off `theory` at parameter values `params` (bound: see
    /// [`Theory::bind`]).
    pub fn new(theory: &Theory, params: &[f64]) -> Result<Network, SimulateError> {
        let ints = theory.int_values(params);
        let action = unroll(&theory.action.body, &IndexEnv::new(), &ints)?;
        let mut problems = Vec::new();
        let (renamed, terms) = rename_terms(&action);
        let found: Vec<(String, Expr, Expr, Expr, Span)> = terms
            .into_iter()
            .filter_map(|t| match t.cov {
                Covariance::Matrix(cov) => Some((t.var, t.mean, *cov, t.tilt, t.span)),
                Covariance::Family(_) => None,
            })
            .collect();
        // Recurrent theories: an expectation over a time family.
        action.any(&mut |e| {
            if let ExprKind::Expectation {
                cov: Covariance::Family(_),
                ..
            } = &e.kind
            {
                problems.push(SimulateError::NotSimulable {
                    reason: "an expectation over a time family `h ~ N(0, C)` describes a \
                             recurrent network, whose weights are shared over time; the \
                             simulator samples layered theories (one Gaussian population \
                             per term)"
                        .into(),
                    span: e.span,
                });
            }
            false
        });
        if let Some(problem) = problems.into_iter().next() {
            return Err(problem);
        }
        if found.is_empty() {
            return Err(SimulateError::NotSimulable {
                reason: "the action has no cumulant-generating term `N * ln E[exp(…) | h ~ \
                         N(m, K)]`: there is no population of units to simulate"
                    .into(),
                span: theory.action.body.span,
            });
        }

        // Each population's term: its coefficient is the number of units.
        let constants = ConstantContext::new(theory, params);
        let mut units: HashMap<String, usize> = HashMap::new();
        let mut left_out = Vec::new();
        source_terms_left_out(&theory.action.body, &mut left_out);
        for (sign, term) in additive_terms(&renamed, 1.0) {
            let vars = populations_in(&term);
            if vars.is_empty() {
                continue;
            }
            let (coefficient, var) = population_coefficient(&term, &constants)?;
            let count = sign * coefficient;
            if !(count.is_finite() && count >= 1.0 && (count - count.round()).abs() < 1e-9) {
                return Err(SimulateError::NotSimulable {
                    reason: format!(
                        "a cumulant-generating term `n * ln E[exp(…)]` describes n units; here \
                         n = {count}, not a whole number ≥ 1 (set the width, e.g. \
                         `--set N=100`)"
                    ),
                    span: term.span,
                });
            }
            units.insert(var, count.round() as usize);
        }

        let mut populations = Vec::new();
        for (var, mean, cov, tilt, span) in &found {
            let Some(&n) = units.get(var) else {
                return Err(SimulateError::NotSimulable {
                    reason: "this cumulant-generating term is not a term of the action times \
                             a number of units; the simulator cannot tell which units it \
                             describes"
                        .into(),
                    span: *span,
                });
            };
            let mut reads = BTreeSet::new();
            field_reads(mean, &mut reads);
            field_reads(cov, &mut reads);
            populations.push(Population {
                units: n,
                var: var.clone(),
                mean: mean.clone(),
                cov: cov.clone(),
                tilt: tilt.clone(),
                span: *span,
                reads: reads.into_iter().collect(),
            });
        }

        let nfields = theory.fields.len();
        let nparams = params.len();
        let mut rules = Vec::new();
        for eq in forward_equations_of(theory, renamed, &ints)? {
            let Variable::Field(field, idx) = &eq.unknown else {
                continue;
            };
            let key = (*field, idx.clone());
            let nngp = eq.nngp.map_err(SimulateError::Derive)?;
            let mut reads = BTreeSet::new();
            field_reads(&nngp, &mut reads);
            let averages = RefCell::new(Vec::<Average>::new());
            let unknown = RefCell::new(None::<Span>);
            let rhs = substitute(&nngp, &|e| {
                let ExprKind::Expectation { var, body, .. } = &e.kind else {
                    return None;
                };
                let Some(population) = populations.iter().position(|p| &p.var == var) else {
                    unknown.borrow_mut().get_or_insert(e.span);
                    return None;
                };
                let mut averages = averages.borrow_mut();
                let slot = averages.len();
                averages.push(Average {
                    population,
                    body: (**body).clone(),
                });
                Some(if e.shape.is_scalar() {
                    node(ExprKind::Param(nparams + slot), e.shape)
                } else {
                    node(
                        ExprKind::Field {
                            field: nfields + slot,
                            indices: Vec::new(),
                        },
                        e.shape,
                    )
                })
            });
            if let Some(span) = unknown.into_inner() {
                return Err(SimulateError::NotSimulable {
                    reason: format!(
                        "the equation of {} has an expectation that is not a population's \
                         average (only `n * ln E[exp(…)]` terms describe units)",
                        Kernels::name(theory, &key)
                    ),
                    span,
                });
            }
            rules.push(FieldRule {
                key,
                rhs,
                averages: averages.into_inner(),
                reads: reads.into_iter().collect(),
            });
        }

        let definitions: Vec<DefinitionRule> = defined_entries(theory, &ints)?
            .into_iter()
            .map(|(key, body)| {
                let mut reads = BTreeSet::new();
                field_reads(&body, &mut reads);
                DefinitionRule {
                    key,
                    body,
                    reads: reads.into_iter().collect(),
                }
            })
            .collect();

        let schedule = schedule(theory, &definitions, &populations, &rules)?;
        Ok(Network {
            theory: theory.clone(),
            params: params.to_vec(),
            populations,
            definitions,
            rules,
            schedule,
            readout: find_readout(&action),
            left_out,
        })
    }

    /// The entry's name as written: `C[2]`.
    pub fn name(&self, key: &EntryKey) -> String {
        Kernels::name(&self.theory, key)
    }

    /// The number of units of the population whose averages give `key` (None for a
    /// definition or a rule without averages).
    pub fn units_of(&self, key: &EntryKey) -> Option<usize> {
        let rule = self.rules.iter().find(|r| &r.key == key)?;
        let first = rule.averages.first()?;
        Some(self.populations[first.population].units)
    }
}

/// `MatrixContext` pieces for evaluating coefficients (parameters and sizes only).
pub(super) struct ConstantContext<'a> {
    theory: &'a Theory,
    params: &'a [f64],
}

impl<'a> ConstantContext<'a> {
    pub(super) fn new(theory: &'a Theory, params: &'a [f64]) -> Self {
        ConstantContext { theory, params }
    }

    pub(super) fn scalar(&self, e: &Expr) -> Option<f64> {
        // Coefficients never read data: a 1×1 stand-in for X keeps sizes out of reach.
        let x = Array2::<f64>::zeros((1, 1));
        let lookup = |_: usize, _: &[i64]| None;
        let name = |f: usize| {
            self.theory
                .fields
                .get(f)
                .map_or(String::new(), |f| f.name.clone())
        };
        let ctx = MatrixContext {
            params: self.params,
            inputs: Some(x.view()),
            targets: None,
            field: &lookup,
            field_name: &name,
        };
        let mentions_size = e.any(&mut |x| matches!(x.kind, ExprKind::Size(_)));
        if mentions_size {
            return None;
        }
        match ctx.eval(e) {
            Ok(Value::Scalar(v)) => Some(v),
            _ => None,
        }
    }
}

/// The terms of a sum with their signs.
pub(crate) fn additive_terms(e: &Expr, sign: f64) -> Vec<(f64, Expr)> {
    match &e.kind {
        ExprKind::Add(a, b) => {
            let mut out = additive_terms(a, sign);
            out.extend(additive_terms(b, sign));
            out
        }
        ExprKind::Sub(a, b) => {
            let mut out = additive_terms(a, sign);
            out.extend(additive_terms(b, -sign));
            out
        }
        ExprKind::Neg(a) => additive_terms(a, -sign),
        _ => vec![(sign, e.clone())],
    }
}

/// The renamed random variables of the cumulant-generating terms inside `e`.
pub(super) fn populations_in(e: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    e.any(&mut |x| {
        if let ExprKind::Expectation { var, .. } = &x.kind
            && var.contains('#')
            && !out.contains(var)
        {
            out.push(var.clone());
        }
        false
    });
    out
}

/// `c · ln E[…]` (factors in any order, divided by constants) → (c, the term's variable).
pub(super) fn population_coefficient(
    term: &Expr,
    constants: &ConstantContext<'_>,
) -> Result<(f64, String), SimulateError> {
    let not_a_product = || SimulateError::NotSimulable {
        reason: "a cumulant-generating term must enter the action as `n * ln E[exp(…) | …]` \
                 with a constant number of units n; here it sits inside another expression"
            .into(),
        span: term.span,
    };
    match &term.kind {
        ExprKind::Apply { callee, args } => {
            let Some(mgf) = log_mgf(*callee, args) else {
                return Err(not_a_product());
            };
            Ok((1.0, mgf.var.to_string()))
        }
        ExprKind::Mul(a, b) => {
            let (inner, factor) = if populations_in(a).is_empty() {
                (b, a)
            } else if populations_in(b).is_empty() {
                (a, b)
            } else {
                return Err(not_a_product());
            };
            let c = constants.scalar(factor).ok_or_else(not_a_product)?;
            let (rest, var) = population_coefficient(inner, constants)?;
            Ok((c * rest, var))
        }
        ExprKind::Div(a, b) if populations_in(b).is_empty() => {
            let c = constants.scalar(b).ok_or_else(not_a_product)?;
            let (rest, var) = population_coefficient(a, constants)?;
            Ok((rest / c, var))
        }
        ExprKind::Neg(a) => {
            let (rest, var) = population_coefficient(a, constants)?;
            Ok((-rest, var))
        }
        _ => Err(not_a_product()),
    }
}

/// A cumulant-generating term `ln E[exp(tilt) | var ~ N(mean, cov)]` of the action, its random
/// variable renamed to be unique (`h#2`).
pub(super) struct RenamedTerm {
    pub(super) var: String,
    pub(super) mean: Expr,
    pub(super) cov: Covariance,
    pub(super) tilt: Expr,
    pub(super) span: Span,
}

/// `action` with the random variable of every cumulant-generating term renamed `name#k`
/// (k = 1, 2, … in order), so that the derived equations say which population each
/// expectation averages over; and the terms.
pub(super) fn rename_terms(action: &Expr) -> (Expr, Vec<RenamedTerm>) {
    let found = RefCell::new(Vec::<RenamedTerm>::new());
    let renamed = substitute(action, &|e| {
        let ExprKind::Apply { callee, args } = &e.kind else {
            return None;
        };
        let term = log_mgf(*callee, args)?;
        let mut found = found.borrow_mut();
        let var = format!("{}#{}", term.var, found.len() + 1);
        let tilt = rename(term.tilt, term.var, &var);
        found.push(RenamedTerm {
            var: var.clone(),
            mean: term.mean.clone(),
            cov: term.cov.clone(),
            tilt: tilt.clone(),
            span: e.span,
        });
        let body = crate::derive::build::apply(crate::check::ir::Builtin::Exp, tilt);
        let inner = expectation(&var, body, term.mean.clone(), term.cov.clone());
        Some(crate::derive::build::apply(
            crate::check::ir::Builtin::Ln,
            inner,
        ))
    });
    (renamed, found.into_inner())
}

/// `e` with the random variable `from` renamed `to`.
pub(super) fn rename(e: &Expr, from: &str, to: &str) -> Expr {
    substitute(e, &|x| match &x.kind {
        ExprKind::RandomVar { name, time } if name == from => Some(node(
            ExprKind::RandomVar {
                name: to.to_string(),
                time: time.clone(),
            },
            x.shape,
        )),
        _ => None,
    })
}

/// Adds the field entries `e` reads (concrete indices).
pub(super) fn field_reads(e: &Expr, out: &mut BTreeSet<EntryKey>) {
    e.any(&mut |x| {
        if let ExprKind::Field { field, indices } = &x.kind {
            out.insert((*field, indices.iter().map(|i| i.constant).collect()));
        }
        false
    });
}

/// Orders definitions, populations and rules so that each runs after what it reads.
fn schedule(
    theory: &Theory,
    definitions: &[DefinitionRule],
    populations: &[Population],
    rules: &[FieldRule],
) -> Result<Vec<Step>, SimulateError> {
    let mut known: BTreeSet<EntryKey> = definitions
        .iter()
        .filter(|d| d.reads.is_empty())
        .map(|d| d.key.clone())
        .collect();
    let mut sampled = vec![false; populations.len()];
    let mut pending: Vec<Step> = definitions
        .iter()
        .enumerate()
        .filter(|(_, d)| !d.reads.is_empty())
        .map(|(i, _)| Step::Definition(i))
        .chain((0..populations.len()).map(Step::Population))
        .chain((0..rules.len()).map(Step::Field))
        .collect();
    let mut order = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|step| match *step {
            Step::Definition(i) => definitions[i].reads.iter().all(|k| known.contains(k)),
            Step::Population(i) => populations[i].reads.iter().all(|k| known.contains(k)),
            Step::Field(i) => {
                rules[i].reads.iter().all(|k| known.contains(k))
                    && rules[i].averages.iter().all(|a| sampled[a.population])
            }
        });
        let Some(i) = ready else {
            let names: Vec<String> = pending
                .iter()
                .filter_map(|s| match s {
                    Step::Field(i) => Some(Kernels::name(theory, &rules[*i].key)),
                    Step::Definition(i) => Some(Kernels::name(theory, &definitions[*i].key)),
                    Step::Population(_) => None,
                })
                .collect();
            return Err(SimulateError::NotSimulable {
                reason: format!(
                    "the fields {} depend on each other in a cycle: a layered network computes \
                     each field from earlier ones",
                    names.join(", ")
                ),
                span: theory.action.body.span,
            });
        };
        let step = pending.remove(i);
        match step {
            Step::Definition(i) => {
                known.insert(definitions[i].key.clone());
            }
            Step::Population(i) => sampled[i] = true,
            Step::Field(i) => {
                known.insert(rules[i].key.clone());
            }
        }
        order.push(step);
    }
    Ok(order)
}

/// Terms of the action as written (inside sums too) that read fields but neither a conjugate
/// nor the targets (Y or their number D): not part of the network.
fn source_terms_left_out(e: &Expr, out: &mut Vec<Span>) {
    for (_, term) in additive_terms(e, 1.0) {
        if let ExprKind::Sum { body, .. } = &term.kind {
            source_terms_left_out(body, out);
            continue;
        }
        let conjugate = term.any(&mut |x| {
            matches!(
                x.kind,
                ExprKind::Conjugate { .. } | ExprKind::Expectation { .. }
            )
        });
        let fields = term.any(&mut |x| matches!(x.kind, ExprKind::Field { .. }));
        // the data term reads the targets or their number of columns D
        let targets = term.any(&mut |x| {
            matches!(
                x.kind,
                ExprKind::Data(DataRole::Targets) | ExprKind::Size(crate::check::ir::Size::Outputs)
            )
        });
        if !conjugate && fields && !targets && !out.contains(&term.span) {
            out.push(term.span);
        }
    }
}
