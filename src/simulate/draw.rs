//! One draw of the network: standard normals in, every field entry out.
//!
//! Population k's pre-activations are Hₖ = Zₖ Lₖᵀ + 𝟏mₖᵀ with Zₖ an nₖ×P matrix of
//! independent standard normals and LₖLₖᵀ = Kₖ (Cholesky; an eigendecomposition where Kₖ
//! is only semi-definite, as an empirical kernel of fewer units than patterns is). Kₖ and
//! mₖ are evaluated from the fields drawn before, so a draw is a deterministic function of
//! Z = (Z₁, Z₂, …): the prior of Z is 𝒩(0, I) exactly, which is what the posterior sampler
//! works with (whitened coordinates).

use std::collections::BTreeMap;

use faer::Side;
use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use super::SimulateError;
use super::network::{Network, Step};
use super::units::{UnitEvaluator, UnitMemo};
use crate::check::ir::Expr;
use crate::numeric::matrix::{MatrixContext, Value};
use crate::solve::nngp::EntryKey;

/// The fields of one draw.
#[derive(Debug, Clone)]
pub struct Draw {
    /// Every entry computed from the units (definitions that read no field are in
    /// [`Simulator::fixed`]).
    pub entries: BTreeMap<EntryKey, Array2<f64>>,
}

/// Population k's pre-activations given the entries drawn before it.
type UnitsOf<'f> =
    dyn FnMut(usize, &BTreeMap<EntryKey, Array2<f64>>) -> Result<Array2<f64>, SimulateError> + 'f;

/// A draw and the pre-activations of every population.
pub type DrawnUnits = (Draw, Vec<Option<Array2<f64>>>);

/// A network on given inputs, ready to draw.
#[derive(Debug)]
pub struct Simulator<'a> {
    /// The network.
    pub network: &'a Network,
    /// Inputs, one pattern per row (training patterns first, then test patterns).
    pub x: ArrayView2<'a, f64>,
    /// Definitions that read no field, evaluated once.
    pub fixed: BTreeMap<EntryKey, Array2<f64>>,
}

impl<'a> Simulator<'a> {
    /// Evaluates the fixed definitions on `x`.
    pub fn new(network: &'a Network, x: ArrayView2<'a, f64>) -> Result<Self, SimulateError> {
        if let Some(why) = crate::solve::nngp::input_problem(x) {
            return Err(SimulateError::Data(why));
        }
        let mut simulator = Simulator {
            network,
            x,
            fixed: BTreeMap::new(),
        };
        for def in network.definitions.iter().filter(|d| d.reads.is_empty()) {
            let empty = BTreeMap::new();
            let value = simulator.matrix(&empty, &[], &def.body, &network.name(&def.key))?;
            simulator.fixed.insert(def.key.clone(), value);
        }
        Ok(simulator)
    }

    /// The number of patterns P (rows of every kernel).
    pub fn patterns(&self) -> usize {
        self.x.nrows()
    }

    /// Fresh standard normals for every population (nₖ×P each).
    pub fn standard_normals(&self, rng: &mut impl Rng) -> Vec<Array2<f64>> {
        let p = self.patterns();
        self.network
            .populations
            .iter()
            .map(|pop| {
                Array2::from_shape_simple_fn((pop.units, p), || {
                    rng.sample::<f64, _>(StandardNormal)
                })
            })
            .collect()
    }

    /// The fields at standard normals `z` (one nₖ×P matrix per population).
    pub fn draw(&self, z: &[Array2<f64>]) -> Result<Draw, SimulateError> {
        self.draw_with_units(z).map(|(draw, _)| draw)
    }

    /// The fields at standard normals `z` and the pre-activations of every population
    /// (nₖ×P; `None` for a population the schedule did not reach).
    pub fn draw_with_units(&self, z: &[Array2<f64>]) -> Result<DrawnUnits, SimulateError> {
        self.fields_with(&mut |k, entries| self.population_units(k, entries, &z[k]))
    }

    /// The fields of a network whose populations' pre-activations are given (nₖ×P each, in
    /// population order) — by weights, say, instead of whitened normals.
    pub fn fields_of_units(&self, units: &[Array2<f64>]) -> Result<Draw, SimulateError> {
        self.fields_with(&mut |k, _| Ok(units[k].clone()))
            .map(|(draw, _)| draw)
    }

    /// Population `k`'s pre-activations Z Lᵀ + 𝟏mᵀ at standard normals `z`, given the
    /// entries drawn before.
    fn population_units(
        &self,
        k: usize,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        z: &Array2<f64>,
    ) -> Result<Array2<f64>, SimulateError> {
        let pop = &self.network.populations[k];
        let what = format!("the covariance of the units of term {}", k + 1);
        let cov = self.matrix(entries, &[], &pop.cov, &what)?;
        let factor = covariance_factor(&cov, &what)?;
        let mut h = z.dot(&factor.t());
        match self.value(entries, &[], &pop.mean, "the mean of the units")? {
            Value::Scalar(m) => h += m,
            Value::Matrix(m) if m.len() == h.ncols() => {
                h += &m.column(0).insert_axis(Axis(0));
            }
            Value::Matrix(m) => {
                return Err(SimulateError::Evaluate {
                    what: "the mean of the units".into(),
                    reason: format!("a {}×{} matrix, not a P-vector", m.nrows(), m.ncols()),
                });
            }
        }
        if let Some(bad) = h.iter().find(|v| !v.is_finite()) {
            return Err(SimulateError::Evaluate {
                what,
                reason: format!("a pre-activation came out {bad}"),
            });
        }
        Ok(h)
    }

    /// Runs the network's schedule, population k's units given by `units_of(k, entries)`.
    fn fields_with(&self, units_of: &mut UnitsOf<'_>) -> Result<DrawnUnits, SimulateError> {
        let network = self.network;
        let mut entries: BTreeMap<EntryKey, Array2<f64>> = BTreeMap::new();
        let mut units: Vec<Option<Array2<f64>>> = vec![None; network.populations.len()];
        // φ(h) once per population and draw, however many averages read it (⟨φφᵀ⟩ reads it
        // twice)
        let memos: Vec<UnitMemo> = network
            .populations
            .iter()
            .map(|_| UnitMemo::default())
            .collect();
        for step in &network.schedule {
            match *step {
                Step::Definition(i) => {
                    let def = &network.definitions[i];
                    let value = self.matrix(&entries, &[], &def.body, &network.name(&def.key))?;
                    entries.insert(def.key.clone(), value);
                }
                Step::Population(k) => {
                    units[k] = Some(units_of(k, &entries)?);
                }
                Step::Field(r) => {
                    let rule = &network.rules[r];
                    let name = network.name(&rule.key);
                    let mut slots = Vec::with_capacity(rule.averages.len());
                    for average in &rule.averages {
                        let pop = &network.populations[average.population];
                        let h = units[average.population].as_ref().ok_or_else(|| {
                            SimulateError::Evaluate {
                                what: name.clone(),
                                reason: "its population has not been drawn".into(),
                            }
                        })?;
                        let value = self.with_context(&entries, &[], |ctx| {
                            UnitEvaluator {
                                theory: &network.theory,
                                var: &pop.var,
                                h: h.view(),
                                constants: ctx,
                                memo: Some(&memos[average.population]),
                                times: &[],
                            }
                            .average(&average.body)
                            .map_err(|e| SimulateError::NotSimulable {
                                reason: e.reason,
                                span: e.span,
                            })
                        })?;
                        slots.push(value);
                    }
                    let value = self.matrix(&entries, &slots, &rule.rhs, &name)?;
                    if let Some(bad) = value.iter().find(|v| !v.is_finite()) {
                        return Err(SimulateError::Evaluate {
                            what: name,
                            reason: format!("an entry came out {bad}"),
                        });
                    }
                    entries.insert(rule.key.clone(), value);
                }
            }
        }
        Ok((Draw { entries }, units))
    }

    /// The readout kernel K and noise κ of a draw.
    pub fn readout(&self, draw: &Draw) -> Result<(Array2<f64>, f64), SimulateError> {
        let readout = self
            .network
            .readout
            .as_ref()
            .ok_or(SimulateError::NoReadout)?;
        let kernel = self.matrix(&draw.entries, &[], &readout.kernel, "the readout kernel")?;
        let noise = match self.value(&draw.entries, &[], &readout.noise, "the readout noise")? {
            Value::Scalar(s) => s,
            Value::Matrix(_) => {
                return Err(SimulateError::Evaluate {
                    what: "the readout noise".into(),
                    reason: "a matrix, not a scalar κ".into(),
                });
            }
        };
        Ok((kernel, noise))
    }

    pub(crate) fn with_context<T>(
        &self,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        slots: &[Value],
        f: impl FnOnce(&MatrixContext<'_>) -> Result<T, SimulateError>,
    ) -> Result<T, SimulateError> {
        let network = self.network;
        let fields = FieldValues {
            theory: &network.theory,
            params: &network.params,
            x: self.x,
            fixed: &self.fixed,
        };
        fields.with_context(entries, slots, f)
    }

    pub(crate) fn value(
        &self,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        slots: &[Value],
        e: &Expr,
        what: &str,
    ) -> Result<Value, SimulateError> {
        self.with_context(entries, slots, |ctx| {
            ctx.eval(e).map_err(|err| SimulateError::Evaluate {
                what: what.to_string(),
                reason: err.to_string(),
            })
        })
    }

    pub(crate) fn matrix(
        &self,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        slots: &[Value],
        e: &Expr,
        what: &str,
    ) -> Result<Array2<f64>, SimulateError> {
        let p = self.patterns();
        match self.value(entries, slots, e, what)? {
            Value::Matrix(m) => Ok(m),
            Value::Scalar(s) => Ok(Array2::from_elem((p, p), s)),
        }
    }
}

/// What an expression of a draw can read: parameters, the inputs, the fields every draw
/// shares (`fixed`), the draw's own entries and the units' averages (slots, numbered after
/// the theory's fields and parameters).
pub(crate) struct FieldValues<'a> {
    pub(crate) theory: &'a crate::check::ir::Theory,
    pub(crate) params: &'a [f64],
    pub(crate) x: ArrayView2<'a, f64>,
    pub(crate) fixed: &'a BTreeMap<EntryKey, Array2<f64>>,
}

impl FieldValues<'_> {
    /// Runs `f` with the context that evaluates expressions of `entries` and `slots`.
    pub(crate) fn with_context<T>(
        &self,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        slots: &[Value],
        f: impl FnOnce(&MatrixContext<'_>) -> Result<T, SimulateError>,
    ) -> Result<T, SimulateError> {
        let nfields = self.theory.fields.len();
        let mut params = self.params.to_vec();
        params.extend(slots.iter().map(|s| match s {
            Value::Scalar(v) => *v,
            Value::Matrix(_) => f64::NAN,
        }));
        let lookup = |f: usize, idx: &[i64]| -> Option<&Array2<f64>> {
            if f >= nfields {
                return match slots.get(f - nfields) {
                    Some(Value::Matrix(m)) => Some(m),
                    _ => None,
                };
            }
            let key = (f, idx.to_vec());
            entries.get(&key).or_else(|| self.fixed.get(&key))
        };
        let name = |f: usize| {
            self.theory
                .fields
                .get(f)
                .map_or_else(|| "an average".to_string(), |f| f.name.clone())
        };
        let ctx = MatrixContext {
            params: &params,
            inputs: Some(self.x),
            targets: None,
            field: &lookup,
            field_name: &name,
        };
        f(&ctx)
    }

    /// The P×P value of `e` (a scalar broadcast), `what` naming it in an error.
    pub(crate) fn matrix(
        &self,
        entries: &BTreeMap<EntryKey, Array2<f64>>,
        slots: &[Value],
        e: &Expr,
        what: &str,
    ) -> Result<Array2<f64>, SimulateError> {
        let p = self.x.nrows();
        let value = self.with_context(entries, slots, |ctx| {
            ctx.eval(e).map_err(|err| SimulateError::Evaluate {
                what: what.to_string(),
                reason: err.to_string(),
            })
        })?;
        Ok(match value {
            Value::Matrix(m) => m,
            Value::Scalar(s) => Array2::from_elem((p, p), s),
        })
    }
}

/// L with L Lᵀ = K: Cholesky, or U √Λ where K is only positive semi-definite.
pub fn covariance_factor(k: &Array2<f64>, what: &str) -> Result<Array2<f64>, SimulateError> {
    factor_clipped(k, 1e-9).map_err(|reason| SimulateError::NotCovariance {
        what: what.to_string(),
        reason,
    })
}

/// L with L Lᵀ = K: Cholesky, or U √Λ with negative eigenvalues down to −`clip`·λ_max set to
/// zero (rounding, or a sampled kernel's Monte Carlo error); the reason otherwise.
pub fn factor_clipped(k: &Array2<f64>, clip: f64) -> Result<Array2<f64>, String> {
    let p = k.nrows();
    if k.ncols() != p {
        return Err(format!("it is {}×{}, not square", p, k.ncols()));
    }
    if let Some(v) = k.iter().find(|v| !v.is_finite()) {
        return Err(format!("it holds {v}"));
    }
    let m = faer::Mat::from_fn(p, p, |i, j| 0.5 * (k[[i, j]] + k[[j, i]]));
    if let Ok(llt) = m.llt(Side::Lower) {
        let l = llt.L();
        return Ok(Array2::from_shape_fn((p, p), |(i, j)| {
            if j <= i { l[(i, j)] } else { 0.0 }
        }));
    }
    let eigen = m
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| format!("its eigendecomposition failed ({e:?})"))?;
    let s = eigen.S().column_vector();
    let u = eigen.U();
    let largest = (0..p).map(|i| s[i].abs()).fold(0.0, f64::max);
    let smallest = (0..p).map(|i| s[i]).fold(f64::INFINITY, f64::min);
    if smallest < -clip * largest.max(f64::MIN_POSITIVE) {
        return Err(format!(
            "it has the negative eigenvalue {smallest:e} (largest {largest:e})"
        ));
    }
    Ok(Array2::from_shape_fn((p, p), |(i, j)| {
        u[(i, j)] * s[j].max(0.0).sqrt()
    }))
}

#[cfg(test)]
mod tests {
    use ndarray::array;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    /// One draw of a one-layer erf network is g/N Σᵢ φ(hᵢ)φ(hᵢ)ᵀ + g_b with hᵢ = L zᵢ,
    /// written out by hand.
    #[test]
    fn a_draw_is_the_empirical_kernel_of_its_units() {
        let source = std::fs::read_to_string("examples/deep_erf.action").unwrap();
        let theory = crate::compile(&source, "deep_erf.action").unwrap();
        let params = theory
            .bind(&[("L".into(), 1.0), ("N".into(), 7.0)])
            .unwrap();
        let network = Network::new(&theory, &params).unwrap();
        assert_eq!(network.populations.len(), 1);
        assert_eq!(network.populations[0].units, 7);
        let x = array![[1.0, 0.5, -0.2], [-0.3, 1.2, 0.4], [0.6, -0.1, 0.9]];
        let simulator = Simulator::new(&network, x.view()).unwrap();
        let z = simulator.standard_normals(&mut StdRng::seed_from_u64(5));
        let draw = simulator.draw(&z).unwrap();
        let value = |name: &str| params[theory.param(name).unwrap()];
        let (g, gb, g0, gb0) = (value("g"), value("gb"), value("g0"), value("gb0"));
        let c0 = x.dot(&x.t()) * (g0 / 3.0) + gb0;
        let l = covariance_factor(&c0, "C[0]").unwrap();
        let phi = |v: f64| {
            crate::numeric::special::ErfDual::erf(&(std::f64::consts::PI.sqrt() / 2.0 * v))
        };
        let mut want = Array2::from_elem((3, 3), gb);
        for i in 0..7 {
            let h = l.dot(&z[0].row(i));
            for a in 0..3 {
                for b in 0..3 {
                    want[[a, b]] += g / 7.0 * phi(h[a]) * phi(h[b]);
                }
            }
        }
        let c1 = &draw.entries[&(theory.field("C").unwrap(), vec![1])];
        for (got, want) in c1.iter().zip(&want) {
            assert!((got - want).abs() < 1e-13, "{got} vs {want}");
        }
        // L Lᵀ = C[0]
        let back = l.dot(&l.t());
        for (a, b) in back.iter().zip(&c0) {
            assert!((a - b).abs() < 1e-13);
        }
    }

    /// A semi-definite covariance (rank 1) is factored by its eigendecomposition; an
    /// indefinite one is refused.
    #[test]
    fn semi_definite_covariances_factor_and_indefinite_ones_are_refused() {
        let k = array![[1.0, 2.0], [2.0, 4.0]];
        let l = covariance_factor(&k, "K").unwrap();
        let back = l.dot(&l.t());
        for (a, b) in back.iter().zip(&k) {
            assert!((a - b).abs() < 1e-12);
        }
        let bad = array![[1.0, 2.0], [2.0, 1.0]];
        let err = covariance_factor(&bad, "K").unwrap_err().to_string();
        assert!(err.contains("negative eigenvalue"), "{err}");
    }
}
