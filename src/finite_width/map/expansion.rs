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
//! costs two M×P×P matrix products per population (the tilt on every sample, and its
//! covariance with the averages) and no transcendental function. The forward equations'
//! right-hand sides, and the rest of the action (the data term), are differenced centrally
//! in the fields: P×P evaluations, exact for the affine ones. The estimators are those of
//! the sampled maps' central differences ([`super::Problem::solve_linear`]) except for
//! ∂⟨q⟩/∂K, which Price's theorem gives from the same samples where the differences move
//! them: the two agree within their Monte Carlo errors.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip, s};
use rayon::prelude::*;

use super::{DIFFERENCE_STEP, Entries, Problem, State, column};
use crate::finite_width::FiniteWidthError;
use crate::finite_width::price::{BodyForm, BodyTerm, EvaluatedTilt, jet};
use crate::finite_width::tilted::{Estimator, PopulationContext, TiltedMeasure};
use crate::numeric::matrix::Value;
use crate::simulate::network::Step;
use crate::solve::fluctuation::Order;

/// Rows per block of the sample products (a block's P-wide scratch stays in cache-sized
/// pieces, and blocks run on all threads).
const BLOCK: usize = 1024;

/// Blocks summed in one partial sum of [`weighted_gram`].
const GROUP: usize = 8;

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
            // the untilted measure at C* (its weights are uniform), for h* and ⟨q⟩ at h*
            let (h, values_at_start, forms) =
                problem.with_context(&nngp.fields, &nngp.conjugates, &[], |ctx| {
                    let pc = PopulationContext {
                        theory: problem.theory,
                        var: &pop.var,
                        constants: ctx,
                        term: k + 1,
                    };
                    let measure = TiltedMeasure::sampled(
                        &pc,
                        &problem.tilts[k],
                        &cov,
                        &mean,
                        z,
                        None,
                        false,
                    )?;
                    let h = measure.samples().map(|h| h.to_owned());
                    let mut values = Vec::new();
                    let mut forms = Vec::new();
                    for (r, rule) in problem.network.rules.iter().enumerate() {
                        for (i, average) in rule.averages.iter().enumerate() {
                            if average.population != k {
                                continue;
                            }
                            values.push(((r, i), measure.average(&pc, &average.body)?));
                            let form = BodyForm::read(problem.theory, &pop.var, &average.body, ctx);
                            forms.push(form);
                        }
                    }
                    Ok((h, values, forms))
                })?;
            let (Some(h), Some(forms)) = (h, forms.into_iter().collect::<Option<Vec<_>>>()) else {
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
                            needs.moment((1, f, 1, g));
                            needs.moment((2, f, 0, g));
                            needs.moment((0, f, 2, g));
                            if mean_linked {
                                needs.moment((1, f, 0, g));
                                needs.moment((0, f, 1, g));
                            }
                        }
                        BodyTerm::Vector { function, .. } => {
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
            let moments = needs
                .moments
                .iter()
                .map(|&(a, f, b, g)| {
                    let gram =
                        weighted_gram(jets[f][a as usize].view(), jets[g][b as usize].view(), None);
                    ((a, f, b, g), gram / m)
                })
                .collect();
            let means = needs
                .means
                .iter()
                .map(|&(a, f)| {
                    (
                        (a, f),
                        jets[f][a as usize].mean_axis(Axis(0)).unwrap_or_default(),
                    )
                })
                .collect();
            let values = jets.into_iter().map(|[v, _, _]| v).collect();
            let averages = forms
                .into_iter()
                .zip(averages_functions)
                .zip(values_at_start)
                .map(|((form, map), (key, value))| (key, (form, map, value)))
                .collect();
            populations.push(PopulationExpansion {
                values,
                tilt_functions,
                moments,
                means,
                averages,
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
                    let terms = problem.tilt_terms(self.nngp, conjugates, k)?;
                    // the importance weights' derivative: A − Ā
                    let mut tilt = self.tilt_values(pop, &terms);
                    let tilt_mean = tilt.mean().unwrap_or(0.0);
                    tilt.mapv_inplace(|a| a - tilt_mean);
                    let m = self.samples as f64;
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
                                    // cov(f gᵀ, A)
                                    d += &(weighted_gram(
                                        pop.values[f].view(),
                                        pop.values[g].view(),
                                        Some(tilt.view()),
                                    ) / m);
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
                                    d += &(pop.values[f].t().dot(&tilt) / m);
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

    /// Dg(0)·C̃ for the sweep map g: the conjugates' backward equations at the fields
    /// C* + `shift` (`shift` = DF(0)·C̃), linear in (`shift`, `conjugates`); to leading
    /// order the rest of the action is read at C*.
    pub(super) fn conjugate_shift(
        &self,
        shift: &Entries,
        conjugates: &Entries,
        order: Order,
    ) -> Result<Entries, FiniteWidthError> {
        let problem = self.problem;
        let p = problem.x.nrows();
        // ½⟨∇²A⟩ and ⟨∇A⟩ per population
        let gradients = (0..self.populations.len())
            .map(|k| {
                let terms = problem.tilt_terms(self.nngp, conjugates, k)?;
                Ok(self.tilt_gradients(&self.populations[k], &terms, p))
            })
            .collect::<Result<Vec<_>, FiniteWidthError>>()?;
        let size = shift
            .values()
            .chain(conjugates.values())
            .flat_map(|d| d.iter())
            .fold(0.0f64, |acc, v| acc.max(v.abs()));
        let mut out = Entries::new();
        for (r, rule) in problem.network.rules.iter().enumerate() {
            let key = &rule.key;
            let shape = self.nngp.fields[key].dim();
            let mut value = Array2::<f64>::zeros(shape);
            if let (Some(rest), true) = (&problem.rest[r], size > 0.0) {
                let what = || format!("the backward equation of {}", problem.network.name(key));
                let at = |t: f64| -> Result<Array2<f64>, FiniteWidthError> {
                    let fields = match order {
                        Order::Full => moved(&self.nngp.fields, shift, t),
                        Order::Leading => self.nngp.fields.clone(),
                    };
                    let state = State {
                        fields,
                        conjugates: moved(&self.nngp.conjugates, conjugates, t),
                    };
                    Ok(match problem.eval_training(&state, rest, what)? {
                        Value::Matrix(m) => m,
                        Value::Scalar(s) => {
                            let t = problem.training;
                            Array2::from_elem((t, if shape.1 == 1 { 1 } else { t }), s)
                        }
                    })
                };
                let eps = DIFFERENCE_STEP / size;
                let rest = (at(eps)? - at(-eps)?) / (2.0 * eps);
                let (rows, cols) = rest.dim();
                value.slice_mut(s![..rows, ..cols]).assign(&rest);
            }
            for (k, links) in problem.links.iter().enumerate() {
                for link in links.iter().filter(|l| &l.field == key) {
                    let n = problem.network.populations[k].units as f64;
                    let (second, first) = &gradients[k];
                    if link.mean {
                        for (i, v) in first.iter().enumerate() {
                            value[[i, 0]] += n * link.coefficient * v;
                        }
                    } else {
                        value.scaled_add(n * link.coefficient, second);
                    }
                }
            }
            out.insert(key.clone(), value);
        }
        Ok(out)
    }

    /// A(h*) on every sample: Σ uᵀMv + Σ rᵀw.
    fn tilt_values(&self, pop: &PopulationExpansion, terms: &EvaluatedTilt) -> Array1<f64> {
        let mut a = Array1::<f64>::zeros(self.samples);
        for (mm, u, v) in &terms.bilinear {
            a += &bilinear_rows(
                pop.values[pop.tilt_functions[*u]].view(),
                mm,
                pop.values[pop.tilt_functions[*v]].view(),
            );
        }
        for (r, w) in &terms.linear {
            a += &pop.values[pop.tilt_functions[*w]].dot(r);
        }
        a
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

/// aᵀ diag(w) b (aᵀb without weights) over the rows: blocks of rows on every thread, summed
/// in a fixed order (the result does not depend on the number of threads).
pub(super) fn weighted_gram(
    a: ArrayView2<'_, f64>,
    b: ArrayView2<'_, f64>,
    w: Option<ArrayView1<'_, f64>>,
) -> Array2<f64> {
    let (p, q) = (a.ncols(), b.ncols());
    let rows = a.nrows();
    let groups = rows.div_ceil(GROUP * BLOCK).max(1);
    let partial: Vec<Array2<f64>> = (0..groups)
        .into_par_iter()
        .map(|group| {
            let mut acc = Array2::<f64>::zeros((p, q));
            let end = ((group + 1) * GROUP * BLOCK).min(rows);
            let mut start = group * GROUP * BLOCK;
            while start < end {
                let stop = (start + BLOCK).min(end);
                let (a, b) = (a.slice(s![start..stop, ..]), b.slice(s![start..stop, ..]));
                match w {
                    Some(w) => {
                        let weighted = &a * &w.slice(s![start..stop]).insert_axis(Axis(1));
                        ndarray::linalg::general_mat_mul(1.0, &weighted.t(), &b, 1.0, &mut acc);
                    }
                    None => ndarray::linalg::general_mat_mul(1.0, &a.t(), &b, 1.0, &mut acc),
                }
                start = stop;
            }
            acc
        })
        .collect();
    partial
        .into_iter()
        .fold(Array2::zeros((p, q)), |total, part| total + part)
}

/// uᵢᵀ M vᵢ for every row i of `u` and `v`, in blocks of rows on every thread.
fn bilinear_rows(u: ArrayView2<'_, f64>, m: &Array2<f64>, v: ArrayView2<'_, f64>) -> Array1<f64> {
    let rows = u.nrows();
    let mt = m.t();
    let parts: Vec<Array1<f64>> = (0..rows.div_ceil(BLOCK))
        .into_par_iter()
        .map(|i| {
            let range = s![i * BLOCK..((i + 1) * BLOCK).min(rows), ..];
            let (u, v) = (u.slice(range), v.slice(range));
            let mv = v.dot(&mt);
            Zip::from(u.rows())
                .and(mv.rows())
                .map_collect(|u, mv| u.dot(&mv))
        })
        .collect();
    parts.into_iter().flatten().collect()
}
