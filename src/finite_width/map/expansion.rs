//! The linearised system's maps with every population's samples drawn once.
//!
//! At the NNGP point (C*, C̃ = 0) the tilt vanishes and each population's pre-activations
//! h* = L*z + m* are fixed, so the derivative of the sweep map needs no new evaluation of a
//! unit. For a population whose tilt A is linear in the conjugates and whose averages are
//! outer products f gᵀ and vectors f of twice differentiable entry-wise functions:
//! * forward (Price's theorem and the importance weights' derivative):
//!   $$\delta\langle f_\alpha g_\beta\rangle=\delta K_{\alpha\beta}\langle f'_\alpha g'_\beta\rangle
//!   +\tfrac12\delta K_{\alpha\alpha}\langle f''_\alpha g_\beta\rangle
//!   +\tfrac12\delta K_{\beta\beta}\langle f_\alpha g''_\beta\rangle
//!   +\delta m_\alpha\langle f'_\alpha g_\beta\rangle+\delta m_\beta\langle f_\alpha g'_\beta\rangle
//!   +\mathrm{cov}(f_\alpha g_\beta,A_{\tilde C})$$
//!   with cov(f gᵀ, A) = (1/M) Fᵀ diag(A − Ā) G;
//! * backward: ∂_K ln Z = ½⟨∇²A_C̃⟩ and ∂_m ln Z = ⟨∇A_C̃⟩ at h* (the ⟨∇A∇Aᵀ⟩ term is of
//!   second order in C̃).
//!
//! The P×P moments ⟨f′g′ᵀ⟩, ⟨f″gᵀ⟩, … come from one pass over the samples; a product then
//! costs one pass over the samples per population ([`super::tilt_pass`]: the tilt on every
//! sample and its covariance with the averages, about M·P² flops each) and no transcendental
//! function. The forward equations'
//! right-hand sides, and the rest of the action (the data term), are differenced centrally
//! in the fields: P×P evaluations, exact for the affine ones. The estimators are those of
//! the sampled maps' central differences ([`super::Problem::solve_linear`]) except for
//! ∂⟨q⟩/∂K, which Price's theorem gives from the same samples where the differences move
//! them: the two agree within their Monte Carlo errors.
//!
//! One concept, one file: the linearised maps at the NNGP point on samples drawn once.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip, s};

use super::tilt_pass::{QuadraticTilt, tilt_sums};
use super::{DIFFERENCE_STEP, Entries, Problem, State, column};
use crate::finite_width::FiniteWidthError;
use crate::finite_width::tilted::{Estimator, sampling_factor};
use crate::numeric::jet::jet;
use crate::numeric::matrix::Value;
use crate::numeric::price::{BodyForm, BodyTerm, EvaluatedTilt};
use crate::numeric::tall::{tall_gram, tall_times};
use crate::simulate::network::Step;
use crate::solve::fluctuation::Order;

/// One population's samples at the NNGP point and their moments.
struct PopulationExpansion {
    /// f(h*) of every function (M×P), tilt's and averages' alike.
    values: Vec<Array2<f64>>,
    /// The tilt's functions' indices in `values`.
    tilt_functions: Vec<usize>,
    /// ⟨f⁽ᵃ⁾ g⁽ᵇ⁾ᵀ⟩ by (a, f, b, g).
    moments: BTreeMap<(u8, usize, u8, usize), Array2<f64>>,
    /// ⟨f⁽ᵃ⁾⟩ by (a, f).
    means: BTreeMap<(u8, usize), Array1<f64>>,
    /// Per average of this population, by (rule, average of the rule): its form, its
    /// functions as indices in `values`, and its value at h*.
    averages: BTreeMap<(usize, usize), (BodyForm, Vec<usize>, Value)>,
    /// The distinct (f, g) of the averages' outer products and f of their vectors, as
    /// indices in `values`: what each product's tilt pass sums.
    summed_outer: Vec<(usize, usize)>,
    summed_vectors: Vec<usize>,
}

/// The linearised system's maps of a [`Problem`] at its NNGP point, on fixed normals.
pub(super) struct Expansion<'p, 'a> {
    problem: &'p Problem<'a>,
    nngp: &'p State,
    populations: Vec<PopulationExpansion>,
    samples: usize,
}

/// Which moments a population needs.
#[derive(Default)]
struct Needs {
    moments: Vec<(u8, usize, u8, usize)>,
    means: Vec<(u8, usize)>,
}

impl Needs {
    fn moment(&mut self, key: (u8, usize, u8, usize)) {
        if !self.moments.contains(&key) {
            self.moments.push(key);
        }
    }
    fn mean(&mut self, key: (u8, usize)) {
        if !self.means.contains(&key) {
            self.means.push(key);
        }
    }
}

impl<'p, 'a> Expansion<'p, 'a> {
    /// The expansion at `nngp` on the normals `z` (M×P), or None where a population is not
    /// of the form it takes (exact Gaussian populations, units with kinks, other integrands,
    /// a tilt that is not linear in the conjugates): the differences handle those.
    pub(super) fn new(
        problem: &'p Problem<'a>,
        nngp: &'p State,
        z: ArrayView2<'_, f64>,
    ) -> Result<Option<Expansion<'p, 'a>>, FiniteWidthError> {
        let p = problem.x.nrows();
        let samples = z.nrows();
        if samples < 2 || z.ncols() != p {
            return Ok(None);
        }
        let mut populations = Vec::new();
        for (k, pop) in problem.network.populations.iter().enumerate() {
            if problem.estimators[k] != Estimator::ImportanceSampling {
                return Ok(None);
            }
            let Some(tilt) = problem.price[k].as_ref().filter(|f| f.second_order()) else {
                return Ok(None);
            };
            if !problem.tilt_is_linear(nngp, k)? {
                return Ok(None);
            }
            let (cov, mean) = problem.moments(nngp, k)?;
            if cov.dim() != (p, p) || mean.len() != p {
                return Ok(None);
            }
            // the samples h* = L*z + m* of the untilted measure at C*
            let factor =
                sampling_factor(&cov, samples).map_err(|reason| FiniteWidthError::Evaluate {
                    what: format!("the covariance of term {}", k + 1),
                    reason,
                })?;
            let mut h = tall_times(z, factor.t());
            h += &mean.view().insert_axis(Axis(0));
            let mut keys = Vec::new();
            let mut forms = Vec::new();
            let mut constants = Vec::new();
            problem.with_context(&nngp.fields, &nngp.conjugates, &[], |ctx| {
                for (r, rule) in problem.network.rules.iter().enumerate() {
                    for (i, average) in rule.averages.iter().enumerate() {
                        if average.population != k {
                            continue;
                        }
                        let form = BodyForm::read(problem.theory, &pop.var, &average.body, ctx);
                        // the terms without h, for the average's value at h*
                        let mut constant: Option<Value> = None;
                        for (c, e) in form.iter().flat_map(|f| &f.constants) {
                            let v = ctx.eval(e).map_err(|err| FiniteWidthError::Evaluate {
                                what: format!("an average over the units of term {}", k + 1),
                                reason: err.to_string(),
                            })?;
                            let v = match v {
                                Value::Scalar(s) => Value::Scalar(c * s),
                                Value::Matrix(m) => Value::Matrix(m * *c),
                            };
                            constant = Some(match (constant, v) {
                                (None, v) => v,
                                (Some(Value::Scalar(a)), Value::Scalar(b)) => Value::Scalar(a + b),
                                (Some(Value::Matrix(a)), Value::Scalar(b))
                                | (Some(Value::Scalar(b)), Value::Matrix(a)) => {
                                    Value::Matrix(a + b)
                                }
                                (Some(Value::Matrix(a)), Value::Matrix(b)) => Value::Matrix(a + &b),
                            });
                        }
                        keys.push((r, i));
                        forms.push(form);
                        constants.push(constant);
                    }
                }
                Ok(())
            })?;
            let Some(forms) = forms.into_iter().collect::<Option<Vec<_>>>() else {
                return Ok(None);
            };
            // one table of functions: the tilt's, then the averages' new ones
            let mut functions: Vec<crate::check::ir::Expr> = tilt.functions().to_vec();
            let mut index_of = |e: &crate::check::ir::Expr| {
                functions.iter().position(|f| f == e).unwrap_or_else(|| {
                    functions.push(e.clone());
                    functions.len() - 1
                })
            };
            let averages_functions: Vec<Vec<usize>> = forms
                .iter()
                .map(|form| form.functions.iter().map(&mut index_of).collect())
                .collect();
            let tilt_functions: Vec<usize> = (0..tilt.functions().len()).collect();
            let mean_linked = problem.links[k].iter().any(|l| l.mean);
            let terms = problem.tilt_terms(nngp, &nngp.conjugates, k)?;
            let mut needs = Needs::default();
            for (_, u, v) in &terms.bilinear {
                needs.moment((1, *u, 1, *v));
                needs.moment((2, *u, 0, *v));
                needs.moment((2, *v, 0, *u));
                if mean_linked {
                    needs.moment((1, *u, 0, *v));
                    needs.moment((1, *v, 0, *u));
                }
            }
            for (_, w) in &terms.linear {
                needs.mean((2, *w));
                needs.mean((1, *w));
            }
            for (form, map) in forms.iter().zip(&averages_functions) {
                for term in &form.terms {
                    match *term {
                        BodyTerm::Outer { left, right, .. } => {
                            let (f, g) = (map[left], map[right]);
                            needs.moment((0, f, 0, g));
                            needs.moment((1, f, 1, g));
                            needs.moment((2, f, 0, g));
                            needs.moment((0, f, 2, g));
                            if mean_linked {
                                needs.moment((1, f, 0, g));
                                needs.moment((0, f, 1, g));
                            }
                        }
                        BodyTerm::Vector { function, .. } => {
                            needs.mean((0, map[function]));
                            needs.mean((2, map[function]));
                            needs.mean((1, map[function]));
                        }
                    }
                }
            }
            let jets = problem.with_context(&nngp.fields, &nngp.conjugates, &[], |ctx| {
                functions
                    .iter()
                    .map(|f| jet(problem.theory, &pop.var, f, h.view(), ctx).ok())
                    .collect::<Option<Vec<[Array2<f64>; 3]>>>()
                    .map_or(Ok(None), |j| Ok(Some(j)))
            })?;
            let Some(jets) = jets else {
                return Ok(None);
            };
            let m = samples as f64;
            // ⟨f⁽ᵃ⁾g⁽ᵇ⁾ᵀ⟩ = ⟨g⁽ᵇ⁾f⁽ᵃ⁾ᵀ⟩ᵀ: each product once
            let mut moments: BTreeMap<(u8, usize, u8, usize), Array2<f64>> = BTreeMap::new();
            for &(a, f, b, g) in &needs.moments {
                let value = match moments.get(&(b, g, a, f)) {
                    Some(t) => t.t().to_owned(),
                    None => tall_gram(jets[f][a as usize].view(), jets[g][b as usize].view()) / m,
                };
                moments.insert((a, f, b, g), value);
            }
            let means: BTreeMap<(u8, usize), Array1<f64>> = needs
                .means
                .iter()
                .map(|&(a, f)| {
                    (
                        (a, f),
                        jets[f][a as usize].mean_axis(Axis(0)).unwrap_or_default(),
                    )
                })
                .collect();
            // each average at h*: its terms' moments, and its constants
            let mut averages = BTreeMap::new();
            for (((key, form), map), constant) in keys
                .into_iter()
                .zip(forms)
                .zip(averages_functions)
                .zip(constants)
            {
                let mut value: Option<Array2<f64>> = None;
                for term in &form.terms {
                    let part = match *term {
                        BodyTerm::Outer {
                            coefficient,
                            left,
                            right,
                        } => &moments[&(0, map[left], 0, map[right])] * coefficient,
                        BodyTerm::Vector {
                            coefficient,
                            function,
                        } => (&means[&(0, map[function])] * coefficient).insert_axis(Axis(1)),
                    };
                    value = Some(match value {
                        None => part,
                        Some(v) if v.dim() == part.dim() => v + part,
                        Some(_) => return Ok(None), // a matrix plus a vector: not an average
                    });
                }
                let value = match (value, constant) {
                    (Some(v), None) => Value::Matrix(v),
                    (Some(v), Some(Value::Scalar(c))) => Value::Matrix(v + c),
                    (Some(v), Some(Value::Matrix(c))) if c.dim() == v.dim() => Value::Matrix(v + c),
                    (None, Some(c)) => c,
                    _ => return Ok(None),
                };
                averages.insert(key, (form, map, value));
            }
            let mut summed_outer = Vec::new();
            let mut summed_vectors = Vec::new();
            for (form, map, _) in averages.values() {
                for term in &form.terms {
                    match *term {
                        BodyTerm::Outer { left, right, .. } => {
                            let pair = (map[left], map[right]);
                            if !summed_outer.contains(&pair) {
                                summed_outer.push(pair);
                            }
                        }
                        BodyTerm::Vector { function, .. } => {
                            if !summed_vectors.contains(&map[function]) {
                                summed_vectors.push(map[function]);
                            }
                        }
                    }
                }
            }
            let values = jets.into_iter().map(|[v, _, _]| v).collect();
            populations.push(PopulationExpansion {
                values,
                tilt_functions,
                moments,
                means,
                averages,
                summed_outer,
                summed_vectors,
            });
        }
        Ok(Some(Expansion {
            problem,
            nngp,
            populations,
            samples,
        }))
    }

    /// DF(0)·C̃: the fields' shift at the conjugates `conjugates`, in schedule order.
    pub(super) fn field_shift(&self, conjugates: &Entries) -> Result<Entries, FiniteWidthError> {
        let problem = self.problem;
        let p = problem.x.nrows();
        let mut shift: Entries = self
            .nngp
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Array2::zeros(v.dim())))
            .collect();
        let mut slot_shifts: BTreeMap<(usize, usize), Array2<f64>> = BTreeMap::new();
        for step in &problem.network.schedule {
            match *step {
                Step::Definition(_) => {}
                Step::Population(k) => {
                    let pop = &self.populations[k];
                    // δK and δm from the fields the population reads
                    let mut dk = Array2::<f64>::zeros((p, p));
                    let mut dm = Array1::<f64>::zeros(p);
                    for link in &problem.links[k] {
                        let d = &shift[&link.field];
                        if link.mean {
                            dm.scaled_add(link.coefficient, &column(&Value::Matrix(d.clone()), p));
                        } else {
                            dk.scaled_add(link.coefficient, d);
                        }
                    }
                    // a covariance moves symmetrically (a field f gᵀ with f ≠ g need not)
                    let dk = (&dk + &dk.t()) * 0.5;
                    let terms = problem.tilt_terms(self.nngp, conjugates, k)?;
                    // the importance weights' derivative: cov(·, A) = ⟨· A⟩ − ⟨·⟩Ā
                    let tilt = QuadraticTilt::new(&terms, |i| pop.tilt_functions[i]);
                    let (outer, vector) = (&pop.summed_outer, &pop.summed_vectors);
                    let sums = tilt_sums(&pop.values, &tilt, outer, vector);
                    let m = self.samples as f64;
                    let tilt_mean = sums.total / m;
                    let covariance_outer = |f: usize, g: usize| -> Array2<f64> {
                        let i = outer
                            .iter()
                            .position(|&q| q == (f, g))
                            .expect("every outer pair of the averages is summed");
                        &sums.outer[i] / m - &(&pop.moments[&(0, f, 0, g)] * tilt_mean)
                    };
                    let covariance_vector = |f: usize| -> Array1<f64> {
                        let i = vector
                            .iter()
                            .position(|&q| q == f)
                            .expect("every vector of the averages is summed");
                        &sums.vector[i] / m - &(&pop.means[&(0, f)] * tilt_mean)
                    };
                    for (key, (form, map, _)) in &pop.averages {
                        let mut delta = Array2::<f64>::zeros((p, p));
                        let mut vector = Array1::<f64>::zeros(p);
                        let mut is_vector = false;
                        for term in &form.terms {
                            match *term {
                                BodyTerm::Outer {
                                    coefficient,
                                    left,
                                    right,
                                } => {
                                    let (f, g) = (map[left], map[right]);
                                    let mut d = &dk * &pop.moments[&(1, f, 1, g)];
                                    let f2g = &pop.moments[&(2, f, 0, g)];
                                    let fg2 = &pop.moments[&(0, f, 2, g)];
                                    let diag = dk.diag();
                                    Zip::indexed(&mut d).for_each(|(a, b), v| {
                                        *v += 0.5 * (diag[a] * f2g[[a, b]] + diag[b] * fg2[[a, b]]);
                                    });
                                    if let (Some(f1g), Some(fg1)) = (
                                        pop.moments.get(&(1, f, 0, g)),
                                        pop.moments.get(&(0, f, 1, g)),
                                    ) {
                                        Zip::indexed(&mut d).for_each(|(a, b), v| {
                                            *v += dm[a] * f1g[[a, b]] + dm[b] * fg1[[a, b]];
                                        });
                                    }
                                    d += &covariance_outer(f, g);
                                    delta.scaled_add(coefficient, &d);
                                }
                                BodyTerm::Vector {
                                    coefficient,
                                    function,
                                } => {
                                    is_vector = true;
                                    let f = map[function];
                                    let mut d = &dk.diag() * &pop.means[&(2, f)] * 0.5
                                        + &dm * &pop.means[&(1, f)];
                                    d += &covariance_vector(f);
                                    vector.scaled_add(coefficient, &d);
                                }
                            }
                        }
                        let shift = if is_vector {
                            vector.insert_axis(Axis(1))
                        } else {
                            delta
                        };
                        slot_shifts.insert(*key, shift);
                    }
                }
                Step::Field(r) => {
                    let rule = &problem.network.rules[r];
                    let mut base = Vec::with_capacity(rule.averages.len());
                    let mut delta = Vec::with_capacity(rule.averages.len());
                    for (i, average) in rule.averages.iter().enumerate() {
                        let k = average.population;
                        let (Some((_, _, value)), Some(shift)) = (
                            self.populations[k].averages.get(&(r, i)),
                            slot_shifts.get(&(r, i)),
                        ) else {
                            return Err(FiniteWidthError::Unsupported(format!(
                                "{} is computed before its population",
                                problem.network.name(&rule.key)
                            )));
                        };
                        base.push(value.clone());
                        delta.push(shift.clone());
                    }
                    let name = problem.network.name(&rule.key);
                    let at = |t: f64| -> Result<Array2<f64>, FiniteWidthError> {
                        let state = State {
                            fields: moved(&self.nngp.fields, &shift, t),
                            conjugates: moved(&self.nngp.conjugates, conjugates, t),
                        };
                        let slots: Vec<Value> = base
                            .iter()
                            .zip(&delta)
                            .map(|(b, d)| match b {
                                Value::Matrix(m) if m.dim() == d.dim() => {
                                    Value::Matrix(m + &(d * t))
                                }
                                Value::Matrix(m) => Value::Matrix(m.clone()),
                                Value::Scalar(s) => Value::Scalar(*s),
                            })
                            .collect();
                        match problem.eval(&state, &slots, &rule.rhs, || name.clone())? {
                            Value::Matrix(m) => Ok(m),
                            Value::Scalar(s) => {
                                Ok(Array2::from_elem(self.nngp.fields[&rule.key].dim(), s))
                            }
                        }
                    };
                    let size = delta
                        .iter()
                        .flat_map(|d| d.iter())
                        .chain(shift.values().flat_map(|d| d.iter()))
                        .chain(conjugates.values().flat_map(|d| d.iter()))
                        .fold(0.0f64, |acc, v| acc.max(v.abs()));
                    let value = if size == 0.0 {
                        Array2::zeros(self.nngp.fields[&rule.key].dim())
                    } else {
                        let eps = DIFFERENCE_STEP / size;
                        (at(eps)? - at(-eps)?) / (2.0 * eps)
                    };
                    shift.insert(rule.key.clone(), value);
                }
            }
        }
        Ok(shift)
    }

    /// The next conjugates of the linearised system, g(0) + Dg(0)·C̃, from the fields
    /// C* + `shift` (`shift` = DF(0)·C̃ at the conjugates `conjugates`) and `g0` = g(0); to
    /// leading order the rest of the action is read at C*.
    ///
    /// The backward equations run from the last entry to the first, each reading the
    /// conjugates already updated (Gauss–Seidel): a layer's C̃ is then Gᵀ applied to the new
    /// C̃ of the layer above, so the back-propagation is exact within one pass (the leading
    /// order converges in two) and the iteration has only the data's coupling H left to
    /// resolve. The fixed point is the same as with every conjugate from the last pass.
    pub(super) fn next_conjugates(
        &self,
        shift: &Entries,
        conjugates: &Entries,
        g0: &Entries,
        order: Order,
    ) -> Result<Entries, FiniteWidthError> {
        let problem = self.problem;
        let p = problem.x.nrows();
        let mut current = conjugates.clone();
        // ½⟨∇²A⟩ and ⟨∇A⟩ per population, at the conjugates when first needed
        let mut gradients: Vec<Option<(Array2<f64>, Array1<f64>)>> =
            vec![None; self.populations.len()];
        for (r, rule) in problem.network.rules.iter().enumerate().rev() {
            let key = &rule.key;
            let shape = self.nngp.fields[key].dim();
            let mut value = g0[key].clone();
            let largest = |e: &Entries| {
                e.values()
                    .flat_map(|d| d.iter())
                    .fold(0.0f64, |acc, v| acc.max(v.abs()))
            };
            if let Some(rest) = &problem.rest[r] {
                let what = || format!("the backward equation of {}", problem.network.name(key));
                // the rest's derivative in the fields (full order) and in the conjugates, each
                // differenced on its own scale (the fields' shift is ~1/N of the conjugates)
                let at = |fields_by: f64, conjugates_by: f64| {
                    let fields = match order {
                        Order::Full => moved(&self.nngp.fields, shift, fields_by),
                        Order::Leading => self.nngp.fields.clone(),
                    };
                    let state = State {
                        fields,
                        conjugates: moved(&self.nngp.conjugates, &current, conjugates_by),
                    };
                    match problem.eval_training(&state, rest, what) {
                        Ok(Value::Matrix(m)) => Ok(m),
                        Ok(Value::Scalar(s)) => {
                            let t = problem.training;
                            Ok(Array2::from_elem((t, if shape.1 == 1 { 1 } else { t }), s))
                        }
                        Err(e) => Err(e),
                    }
                };
                let mut add = |part: Array2<f64>| {
                    let (rows, cols) = part.dim();
                    value
                        .slice_mut(s![..rows, ..cols])
                        .zip_mut_with(&part, |v, r| *v += r);
                };
                let fields_size = largest(shift);
                if order == Order::Full && fields_size > 0.0 {
                    let scale = largest(&self.nngp.fields).max(1.0);
                    let eps = DIFFERENCE_STEP * scale / fields_size;
                    add((at(eps, 0.0)? - at(-eps, 0.0)?) / (2.0 * eps));
                }
                let conjugates_size = largest(&current);
                if conjugates_size > 0.0 {
                    let eps = DIFFERENCE_STEP / conjugates_size;
                    add((at(0.0, eps)? - at(0.0, -eps)?) / (2.0 * eps));
                }
            }
            for (k, links) in problem.links.iter().enumerate() {
                for link in links.iter().filter(|l| &l.field == key) {
                    if gradients[k].is_none() {
                        let terms = problem.tilt_terms(self.nngp, &current, k)?;
                        gradients[k] = Some(self.tilt_gradients(&self.populations[k], &terms, p));
                    }
                    let Some((second, first)) = &gradients[k] else {
                        continue;
                    };
                    let n = problem.network.populations[k].units as f64;
                    if link.mean {
                        for (i, v) in first.iter().enumerate() {
                            value[[i, 0]] += n * link.coefficient * v;
                        }
                    } else {
                        value.scaled_add(n * link.coefficient, second);
                    }
                }
            }
            if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
                return Err(FiniteWidthError::Evaluate {
                    what: format!("the conjugate of {}", problem.network.name(key)),
                    reason: format!("an entry came out {bad}"),
                });
            }
            current.insert(key.clone(), value);
        }
        Ok(current)
    }

    /// g(0): the backward equations at the NNGP point, where the tilts vanish and with them
    /// every ∂ ln Z: the rest of the action alone.
    pub(super) fn sweep_at_nngp(&self) -> Result<Entries, FiniteWidthError> {
        let problem = self.problem;
        let mut out = Entries::new();
        for (r, rule) in problem.network.rules.iter().enumerate() {
            let key = &rule.key;
            let shape = self.nngp.fields[key].dim();
            let mut value = Array2::<f64>::zeros(shape);
            if let Some(rest) = &problem.rest[r] {
                let what = || format!("the backward equation of {}", problem.network.name(key));
                let rest = match problem.eval_training(self.nngp, rest, what)? {
                    Value::Matrix(m) => m,
                    Value::Scalar(s) => {
                        let t = problem.training;
                        Array2::from_elem((t, if shape.1 == 1 { 1 } else { t }), s)
                    }
                };
                let (rows, cols) = rest.dim();
                value.slice_mut(s![..rows, ..cols]).assign(&rest);
            }
            if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
                return Err(FiniteWidthError::Evaluate {
                    what: format!("the conjugate of {}", problem.network.name(key)),
                    reason: format!("an entry came out {bad}"),
                });
            }
            out.insert(key.clone(), value);
        }
        Ok(out)
    }

    /// ½⟨∇²A⟩ (symmetrised) and ⟨∇A⟩ at h*, from the moments.
    fn tilt_gradients(
        &self,
        pop: &PopulationExpansion,
        terms: &EvaluatedTilt,
        p: usize,
    ) -> (Array2<f64>, Array1<f64>) {
        let f = |i: usize| pop.tilt_functions[i];
        let mut second = Array2::<f64>::zeros((p, p));
        let mut diagonal = Array1::<f64>::zeros(p);
        let mut first = Array1::<f64>::zeros(p);
        let row_sums = |a: &Array2<f64>| a.sum_axis(Axis(1));
        for (mm, u, v) in &terms.bilinear {
            let (u, v) = (f(*u), f(*v));
            let cross = &pop.moments[&(1, u, 1, v)];
            second += &(mm * cross);
            second += &(&mm.t() * &cross.t());
            diagonal += &row_sums(&(mm * &pop.moments[&(2, u, 0, v)]));
            diagonal += &row_sums(&(&mm.t() * &pop.moments[&(2, v, 0, u)]));
            if let (Some(u1v), Some(v1u)) = (
                pop.moments.get(&(1, u, 0, v)),
                pop.moments.get(&(1, v, 0, u)),
            ) {
                first += &row_sums(&(mm * u1v));
                first += &row_sums(&(&mm.t() * v1u));
            }
        }
        for (r, w) in &terms.linear {
            let w = f(*w);
            diagonal += &(r * &pop.means[&(2, w)]);
            first += &(r * &pop.means[&(1, w)]);
        }
        second.diag_mut().zip_mut_with(&diagonal, |a, b| *a += b);
        ((&second + &second.t()) * 0.25, first)
    }
}

/// `base + t·shift` entry by entry (entries `shift` lacks stay).
fn moved(base: &Entries, shift: &Entries, t: f64) -> Entries {
    base.iter()
        .map(|(k, v)| match shift.get(k) {
            Some(d) if d.dim() == v.dim() => (k.clone(), v + &(d * t)),
            _ => (k.clone(), v.clone()),
        })
        .collect()
}

/// The tilt's terms at given conjugates, and whether they are linear in them: what the
/// linearised maps (here and in `linear`) read off a population's tilt.
impl Problem<'_> {
    /// The tilt of population `k` with its terms evaluated at the conjugates `conjugates`
    /// (the fields at `at`).
    pub(super) fn tilt_terms(
        &self,
        at: &State,
        conjugates: &Entries,
        k: usize,
    ) -> Result<EvaluatedTilt, FiniteWidthError> {
        let what = || format!("the tilt of term {}", k + 1);
        let form = self.price[k]
            .as_ref()
            .ok_or_else(|| FiniteWidthError::Unsupported(format!("{} is not a form", what())))?;
        let p = self.x.nrows();
        self.with_context(&at.fields, conjugates, &[], |ctx| {
            form.terms(ctx, p)
                .map_err(|reason| FiniteWidthError::Evaluate {
                    what: what(),
                    reason,
                })
        })
    }

    /// Whether the tilt of population `k` is linear in the conjugates (the expansion at the
    /// NNGP point assumes it): zero at zero, additive and homogeneous on probe directions.
    pub(super) fn tilt_is_linear(&self, at: &State, k: usize) -> Result<bool, FiniteWidthError> {
        let probe = |seed: f64, t: f64| -> Entries {
            at.conjugates
                .iter()
                .map(|(key, v)| {
                    let direction = Array2::from_shape_fn(v.dim(), |(i, j)| {
                        let (a, b) = (i.min(j) as f64, i.max(j) as f64);
                        t * (((a + seed) * 12.9898 + (b + 2.0 * seed) * 78.233).sin() * 43_758.547)
                            .fract()
                    });
                    (key.clone(), direction)
                })
                .collect()
        };
        let flat = |t: &EvaluatedTilt| -> Vec<f64> {
            t.bilinear
                .iter()
                .flat_map(|(m, _, _)| m.iter().copied())
                .chain(t.linear.iter().flat_map(|(r, _)| r.iter().copied()))
                .collect()
        };
        let zero = flat(&self.tilt_terms(at, &probe(0.0, 0.0), k)?);
        let one = flat(&self.tilt_terms(at, &probe(1.0, 1.0), k)?);
        let two = flat(&self.tilt_terms(at, &probe(2.0, 1.0), k)?);
        let both = {
            let (a, b) = (probe(1.0, 1.0), probe(2.0, 1.0));
            let sum: Entries = a
                .iter()
                .map(|(key, v)| (key.clone(), v + &b[key]))
                .collect();
            flat(&self.tilt_terms(at, &sum, k)?)
        };
        let doubled = flat(&self.tilt_terms(at, &probe(1.0, 2.0), k)?);
        let scale = one.iter().chain(&two).fold(0.0f64, |m, v| m.max(v.abs()));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * scale.max(f64::MIN_POSITIVE);
        Ok(zero.iter().all(|v| *v == 0.0)
            && one
                .iter()
                .zip(&two)
                .zip(&both)
                .all(|((a, b), c)| close(a + b, *c))
            && one.iter().zip(&doubled).all(|(a, d)| close(2.0 * a, *d)))
    }
}
