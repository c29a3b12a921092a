//! Actions without a maximum: kernels that can shrink while S grows without bound.
//!
//! Scale a set T of fields by t — a field and every field computed from it — and let t → 0
//! (THEORY.md §5.4). With C̃ at its stationary point each population contributes −n·I(C|K):
//! for units linear at the origin (a Gaussian closed form, averages homogeneous of degree 2
//! in h, zero mean), whose field shrinks while its covariance K tends to a non-singular
//! limit, n·I contains −(n/2)·ln det C, so S gains (n·P/2)·ln t; a population whose K shrinks
//! with its field (K ∝ C_f) keeps its ratio and contributes nothing. The rest R of the
//! action (a data term with κ > 0 stays bounded; a measure term −c·ln det C gives −c·P·ln t)
//! contributes dR/d ln t = Σ_{f∈T} ⟨∂R/∂C_f, C_f⟩ at the scaled fields, evaluated from the
//! derived ∂R/∂C. When the total slope is negative, S → +∞ as t → 0: there is no maximum,
//! and the sweeps would only chase a degenerate kernel. For the deep linear network with the
//! Wishart term, T = every layer gives P(N − L(P+1))/2.
//!
//! The analysis claims nothing where its assumptions fail (sampled populations, a mean
//! field, a singular limit of K, a rule that is not homogeneous, a rest whose slope is not
//! asymptotically constant): those actions are left to the sweeps.

use std::collections::BTreeSet;

use ndarray::{Array1, Array2};

use super::{Problem, State};
use crate::finite_width::FiniteWidthError;
use crate::finite_width::gaussian::GaussianForms;
use crate::finite_width::tilted::Estimator;
use crate::numeric::matrix::Value;
use crate::solve::nngp::EntryKey;

/// The scales at which the rest's slope is read. A logarithm's slope is constant and a
/// bounded term's vanishes like t (like t/κ² for a data term): the limit is extrapolated
/// linearly from each neighbouring pair, and the two extrapolations must agree.
const SCALES: [f64; 3] = [1e-8, 1e-10, 1e-12];

/// dS/d ln t of one set of fields as t → 0.
struct Slope {
    fields: Vec<EntryKey>,
    populations: f64,
    rest: f64,
    /// The units of the populations that contribute.
    units: Vec<usize>,
}

impl Problem<'_> {
    /// An error naming the fields along which S grows without bound as they shrink, if the
    /// action at the NNGP point `at` (conjugates zero) has such a direction.
    pub(super) fn check_bounded(&self, at: &State) -> Result<(), FiniteWidthError> {
        let mut worst: Option<Slope> = None;
        for start in 0..self.network.rules.len() {
            // a failed evaluation is no claim: this is a check before the sweeps, which say
            // for themselves what fails
            let Some(slope) = self.slope(at, start).ok().flatten() else {
                continue;
            };
            let total = slope.populations + slope.rest;
            let scale = slope.populations.abs() + slope.rest.abs();
            // the rest's slope is read to ~1e-6 of its size: at the edge (a slope of zero)
            // nothing is claimed
            if total < -1e-6 * (1.0 + scale)
                && worst
                    .as_ref()
                    .is_none_or(|w| total < w.populations + w.rest)
            {
                worst = Some(slope);
            }
        }
        let Some(worst) = worst else {
            return Ok(());
        };
        let p = self.training as f64;
        // the smallest common width n with (#populations)·n·P/2 + rest > 0
        let remedy = if worst.units.is_empty() {
            "drop the term (no population's width enters the slope)".to_string()
        } else {
            let count = worst.units.len() as f64;
            let needed = round(-worst.rest / (count * p / 2.0)).floor() as usize + 1;
            format!("widen the network (every width n ≥ {needed} here) or drop the term")
        };
        Err(FiniteWidthError::NoMaximum {
            fields: worst
                .fields
                .iter()
                .map(|k| self.network.name(k))
                .collect::<Vec<_>>()
                .join(", "),
            slope: round(worst.populations + worst.rest),
            populations: round(worst.populations),
            rest: round(worst.rest),
            remedy,
        })
    }

    /// The slope of S when the rule `start`'s field and every field computed from it scale
    /// together, or None where the analysis does not apply.
    fn slope(&self, at: &State, start: usize) -> Result<Option<Slope>, FiniteWidthError> {
        let rules = &self.network.rules;
        let mut scaled: BTreeSet<EntryKey> = BTreeSet::from([rules[start].key.clone()]);
        loop {
            let before = scaled.len();
            for rule in rules {
                let reads_scaled = rule.reads.iter().any(|k| scaled.contains(k))
                    || rule.averages.iter().any(|a| {
                        self.links[a.population]
                            .iter()
                            .any(|l| scaled.contains(&l.field))
                    });
                if reads_scaled {
                    scaled.insert(rule.key.clone());
                }
            }
            if scaled.len() == before {
                break;
            }
        }
        let shrunk = |t: f64| State {
            fields: at
                .fields
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if scaled.contains(k) { v * t } else { v.clone() },
                    )
                })
                .collect(),
            conjugates: at.conjugates.clone(),
        };
        let p = self.training;
        let origin = shrunk(0.0);
        let mut populations = 0.0;
        let mut units = Vec::new();
        let mut seen = BTreeSet::new();
        for rule in rules.iter().filter(|r| scaled.contains(&r.key)) {
            if at.fields[&rule.key].ncols() == 1 {
                return Ok(None); // a mean field
            }
            let mut slots = Vec::new();
            for average in &rule.averages {
                let k = average.population;
                if self.estimators[k] != Estimator::Gaussian || self.links[k].iter().any(|l| l.mean)
                {
                    return Ok(None);
                }
                let (cov, mean) = self.moments(at, k)?;
                if mean.iter().any(|m| *m != 0.0) {
                    return Ok(None);
                }
                // E[body] at Σ = 0 must vanish and at Σ = K be the slot's value
                let moment = |sigma: &Array2<f64>| {
                    self.with_context(&at.fields, &at.conjugates, &[], |ctx| {
                        let forms = GaussianForms {
                            theory: self.theory,
                            var: &self.network.populations[k].var,
                            patterns: self.x.nrows(),
                            constants: ctx,
                        };
                        Ok(forms.moment(&average.body, &Array1::zeros(mean.len()), sigma))
                    })
                };
                let (Some(Value::Matrix(zero)), Some(value)) =
                    (moment(&Array2::zeros(cov.dim()))?, moment(&cov)?)
                else {
                    return Ok(None);
                };
                if zero.iter().any(|v| *v != 0.0) {
                    return Ok(None);
                }
                slots.push(value);
                if !seen.insert(k) {
                    continue;
                }
                // a population whose other averages stay put cannot shrink one of them alone
                if rules.iter().any(|r| {
                    !scaled.contains(&r.key) && r.averages.iter().any(|a| a.population == k)
                }) {
                    return Ok(None);
                }
                let (limit, _) = self.moments(&origin, k)?;
                let largest = cov.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                if limit.iter().all(|v| v.abs() <= 1e-12 * largest) {
                    continue; // K shrinks with the field: the ratio stays
                }
                if smallest_relative_eigenvalue(&limit) <= 1e-9 {
                    return Ok(None); // a singular limit: another exponent
                }
                let n = self.network.populations[k].units;
                populations += n as f64 * p as f64 / 2.0;
                units.push(n);
            }
            // the rule must be homogeneous: doubling its averages and scaled fields doubles it
            let name = || self.network.name(&rule.key);
            let one = self.eval(at, &slots, &rule.rhs, name)?;
            let doubled: Vec<Value> = slots.iter().map(|s| times(s, 2.0)).collect();
            let two = self.eval(&shrunk(2.0), &doubled, &rule.rhs, name)?;
            let (Value::Matrix(one), Value::Matrix(two)) = (one, two) else {
                return Ok(None);
            };
            let size = one.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if (&two - &(&one * 2.0))
                .iter()
                .any(|d| d.abs() > 1e-10 * size.max(f64::MIN_POSITIVE))
            {
                return Ok(None);
            }
        }
        // the rest: Σ ⟨∂R/∂C_f, C_f⟩ at three small scales
        let mut rest_slopes = Vec::new();
        for t in SCALES {
            let state = shrunk(t);
            let mut slope = 0.0;
            for (r, rule) in rules.iter().enumerate() {
                let (Some(rest), true) = (&self.rest[r], scaled.contains(&rule.key)) else {
                    continue;
                };
                let what = || format!("the backward equation of {}", self.network.name(&rule.key));
                let gradient = match self.eval_training(&state, rest, what) {
                    Ok(Value::Matrix(m)) => m,
                    Ok(Value::Scalar(s)) => Array2::from_elem((p, p), s),
                    // a rest singular at small kernels (κ = 0): no claim
                    Err(_) => return Ok(None),
                };
                let field = &state.fields[&rule.key];
                if gradient.dim() != (p, p) || field.nrows() < p || field.ncols() < p {
                    return Ok(None);
                }
                let field = field.slice(ndarray::s![..p, ..p]);
                slope += (&gradient * &field).sum();
            }
            if !slope.is_finite() {
                return Ok(None);
            }
            rest_slopes.push(slope);
        }
        let limit = |a: usize, b: usize| {
            let (ta, tb) = (SCALES[a], SCALES[b]);
            rest_slopes[b] + (rest_slopes[b] - rest_slopes[a]) * tb / (ta - tb)
        };
        let (coarse, rest) = (limit(0, 1), limit(1, 2));
        if (coarse - rest).abs() > 1e-6 * (rest.abs() + 1.0) {
            return Ok(None);
        }
        Ok(Some(Slope {
            fields: rules
                .iter()
                .map(|r| r.key.clone())
                .filter(|k| scaled.contains(k))
                .collect(),
            populations,
            rest,
            units,
        }))
    }
}

fn times(v: &Value, t: f64) -> Value {
    match v {
        Value::Scalar(s) => Value::Scalar(s * t),
        Value::Matrix(m) => Value::Matrix(m * t),
    }
}

/// A slope to the precision it is read with (the rest's is a difference of logarithms).
fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// λ_min/λ_max of a symmetric matrix (0 for the zero matrix).
fn smallest_relative_eigenvalue(m: &Array2<f64>) -> f64 {
    let n = m.nrows();
    let a = faer::Mat::from_fn(n, n, |i, j| 0.5 * (m[[i, j]] + m[[j, i]]));
    match a.self_adjoint_eigenvalues(faer::Side::Lower) {
        Ok(values) => {
            let largest = values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let smallest = values.iter().copied().fold(f64::INFINITY, f64::min);
            if largest > 0.0 {
                smallest / largest
            } else {
                0.0
            }
        }
        Err(_) => 0.0,
    }
}
