//! The layered network with weights: populations H = W Fᵀ + 𝟏mᵀ over the features of the
//! layers below, an explicit readout, its forward pass, Jᵀv by backpropagation and the fields
//! of a state.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, Axis, s};
use rand::rngs::StdRng;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

use crate::check::ir::Expr;
use crate::numeric::jet::{Regularity, jet, regularity};
use crate::numeric::matrix::Value;
use crate::simulate::SimulateError;
use crate::simulate::draw::{Draw, Simulator};
use crate::simulate::network::field_reads;
use crate::simulate::posterior::WhitenedNetwork;
use crate::solve::nngp::EntryKey;

use super::*;

/// One population as a layer of weights.
#[derive(Debug, Clone)]
pub(super) struct Layer {
    pub(super) units: usize,
    pub(super) features: Features,
    /// The units' mean (a constant P-vector).
    pub(super) mean: Array1<f64>,
}

/// The network an action describes, with weights: see the module documentation.
pub struct WeightNetwork<'a> {
    pub(super) simulator: &'a Simulator<'a>,
    /// By population index.
    pub(super) layers: Vec<Layer>,
    /// Populations in the order a forward pass computes them.
    pub(super) order: Vec<usize>,
    /// The distinct entry-wise functions whose values feed later layers, by population.
    pub(super) functions: Vec<Vec<Expr>>,
    pub(super) readout: Features,
    pub(super) noise: f64,
}

/// The weights θ: one n×width matrix per population, and the readout (width×D).
#[derive(Debug, Clone)]
pub struct Weights {
    /// By population index.
    pub layers: Vec<Array2<f64>>,
    /// The readout weights.
    pub readout: Array2<f64>,
}

impl Weights {
    /// ½‖θ‖²: the prior's part of U.
    pub(super) fn half_square_norm(&self) -> f64 {
        0.5 * (self
            .layers
            .iter()
            .map(|w| w.iter().map(|v| v * v).sum::<f64>())
            .sum::<f64>()
            + self.readout.iter().map(|v| v * v).sum::<f64>())
    }

    /// The number of weights.
    pub fn count(&self) -> usize {
        self.layers.iter().map(Array2::len).sum::<usize>() + self.readout.len()
    }
}

/// A forward pass: every population's pre-activations and its functions' values and slopes.
#[derive(Debug, Clone)]
pub struct Forward {
    /// H_k (n_k×P) by population.
    pub units: Vec<Array2<f64>>,
    /// The features Fᵀ_k (width×P) each population's weights multiplied.
    pub(super) features: Vec<Array2<f64>>,
    /// f(H_k), f′(H_k) per function of population k.
    pub(super) values: Vec<Vec<(Array2<f64>, Array2<f64>)>>,
    /// The readout features Fᵀ_R (width×P).
    pub(super) readout_features: Array2<f64>,
    /// The network output f = F_R a (P×D).
    pub output: Array2<f64>,
}

impl<'a> WeightNetwork<'a> {
    /// Reads the weights of `simulator`'s network; refuses (naming the term) a network whose
    /// covariances are not non-negative combinations of kernels, whose units' means move with
    /// the fields, or whose functions jump (their gradient is zero almost everywhere).
    pub fn new(simulator: &'a Simulator<'a>) -> Result<Self, SimulateError> {
        let network = simulator.network;
        let readout = network.readout.as_ref().ok_or(SimulateError::NoReadout)?;
        let order: Vec<usize> = network
            .schedule
            .iter()
            .filter_map(|step| match step {
                crate::simulate::network::Step::Population(k) => Some(*k),
                _ => None,
            })
            .collect();
        let mut reader = GramReader {
            simulator,
            memo: BTreeMap::new(),
        };
        let mut functions: Vec<Vec<Expr>> = vec![Vec::new(); network.populations.len()];
        let mut layers = Vec::with_capacity(network.populations.len());
        for (k, pop) in network.populations.iter().enumerate() {
            let mut mean_reads = Default::default();
            field_reads(&pop.mean, &mut mean_reads);
            if mean_reads
                .iter()
                .any(|key| !simulator.fixed.contains_key(key))
            {
                return Err(refuse(
                    pop.span,
                    format!(
                        "Langevin dynamics: the mean of the units of term {} moves with the \
                         fields (a mean field); weights cannot represent it — use --sampler ess",
                        k + 1
                    ),
                ));
            }
            let p = simulator.patterns();
            let mean = match simulator.value(&BTreeMap::new(), &[], &pop.mean, "the mean")? {
                Value::Scalar(m) => Array1::from_elem(p, m),
                Value::Matrix(m) if m.len() == p => Array1::from_iter(m.iter().copied()),
                Value::Matrix(m) => {
                    return Err(SimulateError::Evaluate {
                        what: format!("the mean of the units of term {}", k + 1),
                        reason: format!("a {}×{} matrix, not a P-vector", m.nrows(), m.ncols()),
                    });
                }
            };
            let what = format!("the covariance of the units of term {}", k + 1);
            let gram = reader.expression(&pop.cov, &pop.reads, pop.span, &what)?;
            let features = features_of(&gram, &mut functions, network, pop.span, &what)?;
            layers.push(Layer {
                units: pop.units,
                features,
                mean,
            });
        }
        let mut reads = Default::default();
        field_reads(&readout.kernel, &mut reads);
        let reads: Vec<EntryKey> = reads.into_iter().collect();
        let span = readout.kernel.span;
        let gram = reader.expression(&readout.kernel, &reads, span, "the readout kernel")?;
        let readout_features = features_of(&gram, &mut functions, network, span, "the readout")?;
        let mut noise_reads = Default::default();
        field_reads(&readout.noise, &mut noise_reads);
        let noise = match simulator.value(&BTreeMap::new(), &[], &readout.noise, "κ") {
            Ok(Value::Scalar(k)) if noise_reads.is_empty() && k > 0.0 && k.is_finite() => k,
            other => {
                let value = match other {
                    _ if !noise_reads.is_empty() => "it reads the fields".to_string(),
                    Ok(Value::Scalar(k)) => format!("it is {k}"),
                    Ok(Value::Matrix(_)) => "it is a matrix".to_string(),
                    Err(e) => e.to_string(),
                };
                return Err(refuse(
                    readout.noise.span,
                    format!(
                        "Langevin dynamics: the readout noise κ must be a positive constant (it \
                         sets the temperature); {value}"
                    ),
                ));
            }
        };
        for (k, fs) in functions.iter().enumerate() {
            let var = &network.populations[k].var;
            for f in fs {
                if regularity(&network.theory, var, f, false).is_none_or(|r| r > Regularity::Kinked)
                {
                    return Err(refuse(
                        f.span,
                        "Langevin dynamics: this function jumps (its gradient is zero almost \
                         everywhere, so noisy gradient descent cannot train it) — use \
                         --sampler ess"
                            .into(),
                    ));
                }
            }
        }
        Ok(WeightNetwork {
            simulator,
            layers,
            order,
            functions,
            readout: readout_features,
            noise,
        })
    }

    /// The number of weights with `outputs` readout columns.
    pub fn weight_count(&self, outputs: usize) -> usize {
        self.layers
            .iter()
            .map(|l| l.units * l.features.width)
            .sum::<usize>()
            + self.readout.width * outputs
    }

    /// Weights drawn from the prior, for `outputs` readout columns.
    pub fn prior_draw(&self, outputs: usize, rng: &mut impl Rng) -> Weights {
        let mut normal = |rows: usize, cols: usize| {
            Array2::from_shape_simple_fn((rows, cols), || rng.sample::<f64, _>(StandardNormal))
        };
        Weights {
            layers: self
                .layers
                .iter()
                .map(|l| normal(l.units, l.features.width))
                .collect(),
            readout: normal(self.readout.width, outputs),
        }
    }

    pub(super) fn features(
        &self,
        features: &Features,
        values: &[Vec<(Array2<f64>, Array2<f64>)>],
    ) -> Array2<f64> {
        let p = self.simulator.patterns();
        let mut out = Array2::zeros((features.width, p));
        let r = features.fixed.nrows();
        out.slice_mut(s![..r, ..]).assign(&features.fixed);
        let mut row = r;
        for source in &features.sources {
            let f = &values[source.population][source.function].0;
            out.slice_mut(s![row..row + f.nrows(), ..])
                .assign(&(f * source.scale));
            row += f.nrows();
        }
        out
    }

    /// The forward pass at `weights`.
    pub fn forward(&self, weights: &Weights) -> Result<Forward, SimulateError> {
        let network = self.simulator.network;
        let p = self.simulator.patterns();
        let mut units = vec![Array2::zeros((0, p)); self.layers.len()];
        let mut features = vec![Array2::zeros((0, p)); self.layers.len()];
        let mut values: Vec<Vec<(Array2<f64>, Array2<f64>)>> = vec![Vec::new(); self.layers.len()];
        for &k in &self.order {
            let layer = &self.layers[k];
            let rows = self.features(&layer.features, &values);
            let mut h = product(weights.layers[k].view(), rows.view());
            h += &layer.mean.view().insert_axis(Axis(0));
            if let Some(bad) = h.iter().find(|v| !v.is_finite()) {
                return Err(SimulateError::Evaluate {
                    what: format!("the pre-activations of term {}", k + 1),
                    reason: format!("a value came out {bad}"),
                });
            }
            let var = &network.populations[k].var;
            values[k] = self.functions[k]
                .iter()
                .map(|f| {
                    self.simulator.with_context(&BTreeMap::new(), &[], |ctx| {
                        jet(&network.theory, var, f, h.view(), ctx)
                            .map(|[v, d, _]| (v, d))
                            .map_err(|reason| SimulateError::Evaluate {
                                what: format!("a function of the units of term {}", k + 1),
                                reason,
                            })
                    })
                })
                .collect::<Result<_, _>>()?;
            units[k] = h;
            features[k] = rows;
        }
        let readout_features = self.features(&self.readout, &values);
        let output = product(readout_features.t(), weights.readout.view());
        Ok(Forward {
            units,
            features,
            values,
            readout_features,
            output,
        })
    }

    /// Jᵀv: the derivative of ⟨v, f(θ)⟩ in every weight, `v` P×D (the network's output
    /// cotangent), by backpropagation through `forward`.
    pub fn backpropagate(
        &self,
        weights: &Weights,
        forward: &Forward,
        d_output: &Array2<f64>,
    ) -> Weights {
        let mut d_units: Vec<Array2<f64>> = forward
            .units
            .iter()
            .map(|h| Array2::zeros(h.dim()))
            .collect();
        let readout = product(forward.readout_features.view(), d_output.view());
        let d_features = product(weights.readout.view(), d_output.t());
        self.distribute(&self.readout, &d_features, forward, &mut d_units);
        let mut layers: Vec<Array2<f64>> = vec![Array2::zeros((0, 0)); weights.layers.len()];
        for &k in self.order.iter().rev() {
            let layer = &self.layers[k];
            let d_h = std::mem::take(&mut d_units[k]);
            layers[k] = product(d_h.view(), forward.features[k].t());
            if layer.features.sources.is_empty() {
                continue; // fixed features only: nothing below to reach
            }
            let d_features = product(weights.layers[k].t(), d_h.view());
            self.distribute(&layer.features, &d_features, forward, &mut d_units);
        }
        Weights { layers, readout }
    }

    /// Adds ∂U/∂H_q of every source block of `features` given ∂U/∂Fᵀ.
    pub(super) fn distribute(
        &self,
        features: &Features,
        d_features: &Array2<f64>,
        forward: &Forward,
        d_units: &mut [Array2<f64>],
    ) {
        let mut row = features.fixed.nrows();
        for source in &features.sources {
            let slope = &forward.values[source.population][source.function].1;
            let n = slope.nrows();
            let block = d_features.slice(s![row..row + n, ..]);
            ndarray::Zip::from(&mut d_units[source.population])
                .and(&block)
                .and(slope)
                .for_each(|d, &g, &s| *d += source.scale * s * g);
            row += n;
        }
    }
}

impl WeightModel for WeightNetwork<'_> {
    type Pass = Forward;

    fn network(&self) -> &dyn WhitenedNetwork {
        self.simulator
    }

    fn noise(&self) -> f64 {
        self.noise
    }

    fn weight_count(&self, outputs: usize) -> usize {
        WeightNetwork::weight_count(self, outputs)
    }

    fn prior_draw(&self, outputs: usize, rng: &mut StdRng) -> Weights {
        WeightNetwork::prior_draw(self, outputs, rng)
    }

    fn forward(&self, weights: &Weights) -> Result<Forward, SimulateError> {
        WeightNetwork::forward(self, weights)
    }

    fn output<'p>(&self, pass: &'p Forward) -> &'p Array2<f64> {
        &pass.output
    }

    fn backpropagate(&self, weights: &Weights, pass: &Forward, v: &Array2<f64>) -> Weights {
        WeightNetwork::backpropagate(self, weights, pass, v)
    }

    fn fields(&self, _: &Weights, pass: &Forward) -> Result<Draw, SimulateError> {
        self.simulator.fields_of_units(&pass.units)
    }
}
