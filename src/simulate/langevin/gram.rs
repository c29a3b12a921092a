//! Covariances read as Gram matrices of features: each expression probed for being affine
//! in the entries it reads, K = Σₜ cₜ⟨fₜfₜᵀ⟩ + K₀ with cₜ ≥ 0, and the features of a population
//! (the constant factored, the averages as sources).

use std::collections::BTreeMap;

use ndarray::{Array2, Axis};

use crate::simulate::SimulateError;
use crate::simulate::draw::{Simulator, factor_clipped};

use crate::check::ir::Expr;
use crate::numeric::jet::Regularity;
use crate::numeric::matrix::Value;
use crate::numeric::price::{BodyForm, BodyTerm};
use crate::solve::nngp::EntryKey;
use crate::syntax::Span;

/// A covariance as a Gram matrix: Σ c·⟨f fᵀ⟩ over populations' averages plus a constant.
#[derive(Debug, Clone)]
pub(super) struct Gram {
    /// (population, function, coefficient c ≥ 0).
    pub(super) terms: Vec<(usize, Expr, f64)>,
    pub(super) constant: Array2<f64>,
}

impl Gram {
    pub(super) fn constant(value: Array2<f64>) -> Gram {
        Gram {
            terms: Vec::new(),
            constant: value,
        }
    }

    pub(super) fn add_scaled(&mut self, other: &Gram, c: f64) {
        self.constant.scaled_add(c, &other.constant);
        for (population, function, coefficient) in &other.terms {
            match self
                .terms
                .iter_mut()
                .find(|(p, f, _)| p == population && f == function)
            {
                Some(term) => term.2 += c * coefficient,
                None => self
                    .terms
                    .push((*population, function.clone(), c * coefficient)),
            }
        }
    }
}

/// A block of features from an earlier population: `scale · f(H_q)` (n_q rows).
#[derive(Debug, Clone)]
pub(super) struct Source {
    pub(super) population: usize,
    /// Index into the population's functions.
    pub(super) function: usize,
    pub(super) scale: f64,
}

/// The features of a covariance, as rows: a constant block, then the sources.
#[derive(Debug, Clone)]
pub(super) struct Features {
    /// r×P, G₀ᵀG₀ = K₀.
    pub(super) fixed: Array2<f64>,
    pub(super) sources: Vec<Source>,
    /// Rows in all.
    pub(super) width: usize,
}

pub(super) fn refuse(span: Span, reason: String) -> SimulateError {
    SimulateError::NotSimulable { reason, span }
}

/// An expression's P×P value at given values of the matrices it reads.
pub(in crate::simulate) type MatrixOf<'f> =
    dyn Fn(&[Array2<f64>]) -> Result<Array2<f64>, SimulateError> + 'f;

/// Symmetric probe matrices with signed entries in [−1.5, 1.5), different for every index
/// (signed, so that entry-wise |·|, relu or clipping are not mistaken for linear maps).
pub(super) fn probe(p: usize, index: usize) -> Array2<f64> {
    let mut state = crate::simulate::stream_seed(0x5eed_u64, index as u64);
    let mut next = || {
        state = crate::simulate::stream_seed(state, 1);
        3.0 * ((state >> 11) as f64 / (1u64 << 53) as f64) - 1.5
    };
    let mut m = Array2::zeros((p, p));
    for a in 0..p {
        for b in a..p {
            let v = next();
            m[[a, b]] = v;
            m[[b, a]] = v;
        }
    }
    m
}

/// The coefficients cⱼ and constant K₀ of an expression affine in `inputs` P×P matrices,
/// E(X₁, …) = Σ cⱼXⱼ + K₀, recovered by probing `eval` one input at a time and checked on
/// two joint probes of different scales (×1 and ×10: a clipped or saturating map fails one);
/// None when it is not of that form or cannot be evaluated at a probe.
pub(in crate::simulate) fn affine_in(
    inputs: usize,
    p: usize,
    eval: &MatrixOf<'_>,
) -> Option<(Vec<f64>, Array2<f64>)> {
    let zeros = vec![Array2::zeros((p, p)); inputs];
    let constant = eval(&zeros).ok()?;
    if constant.dim() != (p, p) || constant.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let norm = |m: &Array2<f64>| m.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut coefficients = Vec::with_capacity(inputs);
    for j in 0..inputs {
        let mut at = zeros.clone();
        at[j] = probe(p, j);
        let moved = eval(&at).ok()? - &constant;
        let c = (&moved * &at[j]).sum() / (&at[j] * &at[j]).sum();
        if !c.is_finite()
            || norm(&(&moved - &(&at[j] * c))) > 1e-9 * (norm(&moved) + norm(&constant) + 1.0)
        {
            return None;
        }
        coefficients.push(c);
    }
    for (scale, offset) in [(0.7, inputs), (10.0, 2 * inputs)] {
        let joint: Vec<Array2<f64>> = (0..inputs).map(|j| probe(p, offset + j) * scale).collect();
        let mut expected = constant.clone();
        for (c, x) in coefficients.iter().zip(&joint) {
            expected.scaled_add(*c, x);
        }
        let got = eval(&joint).ok()?;
        let miss = norm(&(&got - &expected));
        if miss.is_nan() || miss > 1e-9 * (norm(&expected) + 1.0) {
            return None;
        }
    }
    Some((coefficients, constant))
}

/// a·b by faer (cache-blocked; the views may be transposed).
pub(in crate::simulate) fn product(
    a: ndarray::ArrayView2<'_, f64>,
    b: ndarray::ArrayView2<'_, f64>,
) -> Array2<f64> {
    crate::numeric::matrix::matmul(a, b).expect("the layers' shapes agree by construction")
}

/// Reads expressions as Gram matrices, memoising each entry's.
pub(super) struct GramReader<'a> {
    pub(super) simulator: &'a Simulator<'a>,
    pub(super) memo: BTreeMap<EntryKey, Gram>,
}

impl GramReader<'_> {
    /// The Gram form of `e` (affine in the entries `reads`).
    pub(super) fn expression(
        &mut self,
        e: &Expr,
        reads: &[EntryKey],
        span: Span,
        what: &str,
    ) -> Result<Gram, SimulateError> {
        let simulator = self.simulator;
        let p = simulator.patterns();
        let reads: Vec<EntryKey> = reads
            .iter()
            .filter(|k| !simulator.fixed.contains_key(*k))
            .cloned()
            .collect();
        let eval = |inputs: &[Array2<f64>]| {
            let entries: BTreeMap<EntryKey, Array2<f64>> =
                reads.iter().cloned().zip(inputs.iter().cloned()).collect();
            simulator.matrix(&entries, &[], e, what)
        };
        let (coefficients, constant) = affine_in(reads.len(), p, &eval).ok_or_else(|| {
            refuse(
                span,
                format!(
                    "Langevin dynamics: {what} is not a linear combination of kernels plus a \
                     constant, so it is not the Gram matrix of a layer's features — use \
                     --sampler ess"
                ),
            )
        })?;
        let mut parts = Vec::new();
        for (key, c) in reads.iter().zip(coefficients) {
            if c != 0.0 {
                parts.push((simulator.network.name(key), c, self.entry(key, span)?));
            }
        }
        combine(constant, parts, span, what)
    }

    /// The Gram form of one field entry.
    pub(super) fn entry(&mut self, key: &EntryKey, span: Span) -> Result<Gram, SimulateError> {
        if let Some(g) = self.memo.get(key) {
            return Ok(g.clone());
        }
        let simulator = self.simulator;
        let network = simulator.network;
        let name = network.name(key);
        let gram = if let Some(value) = simulator.fixed.get(key) {
            Gram::constant(value.clone())
        } else if let Some(def) = network.definitions.iter().find(|d| &d.key == key) {
            self.expression(&def.body, &def.reads, def.body.span, &name)?
        } else if let Some(rule) = network.rules.iter().find(|r| &r.key == key) {
            self.rule(rule, &name)?
        } else {
            return Err(refuse(
                span,
                format!("Langevin dynamics: {name} is not drawn by the network"),
            ));
        };
        self.memo.insert(key.clone(), gram.clone());
        Ok(gram)
    }

    /// A field's rule: affine in its averages (each Σ c⟨f fᵀ⟩ + constants) and the entries it
    /// reads.
    pub(super) fn rule(
        &mut self,
        rule: &crate::simulate::network::FieldRule,
        name: &str,
    ) -> Result<Gram, SimulateError> {
        let simulator = self.simulator;
        let network = simulator.network;
        let p = simulator.patterns();
        let span = rule.rhs.span;
        let mut slot_grams = Vec::with_capacity(rule.averages.len());
        for average in &rule.averages {
            let pop = &network.populations[average.population];
            let form = simulator.with_context(&BTreeMap::new(), &[], |ctx| {
                Ok(BodyForm::read_up_to(
                    &network.theory,
                    &pop.var,
                    &average.body,
                    ctx,
                    Regularity::Jumps,
                ))
            })?;
            let not_gram = || {
                refuse(
                    average.body.span,
                    format!(
                        "Langevin dynamics: the average in {name} is not of the form \
                         c·⟨f(h) f(h)ᵀ⟩ (+ constants), the Gram matrix of a layer's features — \
                         use --sampler ess"
                    ),
                )
            };
            let form = form.ok_or_else(not_gram)?;
            let mut gram = Gram::constant(Array2::zeros((p, p)));
            for term in &form.terms {
                match *term {
                    BodyTerm::Outer {
                        coefficient,
                        left,
                        right,
                    } if left == right && coefficient >= 0.0 => gram.terms.push((
                        average.population,
                        form.functions[left].clone(),
                        coefficient,
                    )),
                    _ => return Err(not_gram()),
                }
            }
            for (c, e) in &form.constants {
                let value = simulator.matrix(&BTreeMap::new(), &[], e, name)?;
                gram.constant.scaled_add(*c, &value);
            }
            slot_grams.push(gram);
        }
        let reads: Vec<EntryKey> = rule
            .reads
            .iter()
            .filter(|k| !simulator.fixed.contains_key(*k))
            .cloned()
            .collect();
        let slots = slot_grams.len();
        let eval = |inputs: &[Array2<f64>]| {
            let values: Vec<Value> = inputs[..slots].iter().cloned().map(Value::Matrix).collect();
            let entries: BTreeMap<EntryKey, Array2<f64>> = reads
                .iter()
                .cloned()
                .zip(inputs[slots..].iter().cloned())
                .collect();
            simulator.matrix(&entries, &values, &rule.rhs, name)
        };
        let (coefficients, constant) =
            affine_in(slots + reads.len(), p, &eval).ok_or_else(|| {
                refuse(
                    span,
                    format!(
                        "Langevin dynamics: {name} is not a linear combination of averages and \
                         kernels plus a constant — use --sampler ess"
                    ),
                )
            })?;
        let mut parts = Vec::new();
        for (j, c) in coefficients.into_iter().enumerate() {
            if c == 0.0 {
                continue;
            }
            parts.push(if j < slots {
                let population = rule.averages[j].population;
                let what = format!("an average over the units of term {}", population + 1);
                (what, c, slot_grams[j].clone())
            } else {
                let key = &reads[j - slots];
                (network.name(key), c, self.entry(key, span)?)
            });
        }
        combine(constant, parts, span, name)
    }
}

/// K₀ + Σ cⱼ·partⱼ (each part named), refusing a negative weight on a part that holds
/// averages: a difference of kernels is not a Gram matrix of features.
pub(super) fn combine(
    constant: Array2<f64>,
    parts: Vec<(String, f64, Gram)>,
    span: Span,
    what: &str,
) -> Result<Gram, SimulateError> {
    let mut gram = Gram::constant(constant);
    for (name, c, part) in parts {
        if c < 0.0 && !part.terms.is_empty() {
            return Err(refuse(
                span,
                format!(
                    "Langevin dynamics: {what} subtracts {name} (coefficient {c}): a difference \
                     of kernels is not the Gram matrix of features — use --sampler ess"
                ),
            ));
        }
        gram.add_scaled(&part, c);
    }
    Ok(gram)
}

/// The features of `gram`: its constant factored, its terms as sources.
pub(super) fn features_of(
    gram: &Gram,
    functions: &mut [Vec<Expr>],
    network: &crate::simulate::Network,
    span: Span,
    what: &str,
) -> Result<Features, SimulateError> {
    let factor = factor_clipped(&gram.constant, 1e-9).map_err(|reason| {
        refuse(
            span,
            format!(
                "Langevin dynamics: the constant part of {what} is not a covariance ({reason})"
            ),
        )
    })?;
    // rows of G₀ = columns of the factor above rounding (a rank-one bias 𝟏𝟏ᵀ's
    // eigendecomposition leaves columns of order 1e-9 that would be weights of nothing)
    let square = |j: usize| factor.column(j).iter().map(|v| v * v).sum::<f64>();
    let largest = (0..factor.ncols()).map(square).fold(0.0, f64::max);
    let keep: Vec<usize> = (0..factor.ncols())
        .filter(|&j| square(j) > 1e-13 * largest)
        .collect();
    let fixed = factor.select(Axis(1), &keep).reversed_axes();
    let mut width = fixed.nrows();
    let mut sources = Vec::with_capacity(gram.terms.len());
    for (population, function, coefficient) in &gram.terms {
        if *coefficient == 0.0 {
            continue;
        }
        let list = &mut functions[*population];
        let index = match list.iter().position(|f| f == function) {
            Some(i) => i,
            None => {
                list.push(function.clone());
                list.len() - 1
            }
        };
        let units = network.populations[*population].units;
        sources.push(Source {
            population: *population,
            function: index,
            scale: (coefficient / units as f64).sqrt(),
        });
        width += units;
    }
    Ok(Features {
        fixed,
        sources,
        width,
    })
}
