//! Langevin dynamics of the weights of the network an action describes — noisy gradient
//! descent with weight decay, the way the field trains Bayesian networks.
//!
//! **The network with weights.** Every population's covariance is read as a Gram matrix of
//! features: K = Σₜ cₜ ⟨fₜ(h)fₜ(h)ᵀ⟩_q + K₀ over the averages the fields it reads are made of
//! (cₜ ≥ 0) plus a constant K₀ ⪰ 0 (data definitions, biases). With the features as rows,
//! Fᵀ = [G₀; √(cₜ/n_q)·fₜ(H_q); …] (G₀ᵀG₀ = K₀), a population of n units is
//! H = W Fᵀ + 𝟏mᵀ with W (n×width) standard normal: the same law as the whitened draw, since
//! E[H Hᵀ]/n = F Fᵀ = K — in the weights' own coordinates, so that a hidden layer's
//! pre-activations move with the layers below (backpropagation). The readout is explicit,
//! f = F_R a with a ~ 𝒩(0, I), F_R the features of the readout kernel. Which averages a
//! covariance is made of is found numerically: each expression is probed for being affine in
//! the entries it reads (the coefficients recovered and checked on a second probe), so any
//! action whose covariances are non-negative combinations of kernels and constants is
//! trained — deep, residual, with biases; others are refused with the term named.
//!
//! **The dynamics.** The posterior of θ = (W's, a) given targets Y on the training rows is
//! exp(−U), U(θ) = ‖Y − f‖²/(2κ) + ½‖θ‖²: gradient descent on the squared loss ½‖Y − f‖² with
//! weight decay κ (prior variance 1) at temperature T = κ. The unadjusted Langevin algorithm
//! θ ← θ − ε∇U + √(2ε) ξ samples it up to a bias of order ε: on a direction of curvature λ the
//! stationary variance is 1/(λ(1 − ελ/2)) instead of 1/λ, so the prior-dominated weights are
//! inflated by 1/(1 − ε/2) and the stiffest direction by 1/(1 − ελ_max/2), where λ_max =
//! 1 + λ_max(J Jᵀ)/κ, J = ∂f_train/∂θ (the network's tangent kernel: the readout kernel plus a
//! term per hidden layer), found by power iteration at a prior draw; ε ≥ 2/λ_max diverges and
//! is refused. The default ε = 0.05/λ_max keeps the stiffest direction within 2.6 % there (the
//! curvature moves along the chain; a chain that runs away is stopped and reported). The readout integrated out (Rao–Blackwell), the recorded state is the
//! same as elliptical slice sampling's: every field of the network and the GP given its
//! readout kernel — so the two samplers line up key by key.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, Axis, s};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::StandardNormal;

use super::SimulateError;
use super::draw::{Draw, Simulator, factor_clipped};
use super::network::field_reads;
use super::posterior::{Observation, PosteriorChain, PosteriorSampler, Targets, WhitenedNetwork};
use crate::check::ir::Expr;
use crate::numeric::jet::{Regularity, jet, regularity};
use crate::numeric::matrix::Value;
use crate::numeric::price::{BodyForm, BodyTerm};
use crate::solve::nngp::EntryKey;
use crate::syntax::Span;

/// A covariance as a Gram matrix: Σ c·⟨f fᵀ⟩ over populations' averages plus a constant.
#[derive(Debug, Clone)]
struct Gram {
    /// (population, function, coefficient c ≥ 0).
    terms: Vec<(usize, Expr, f64)>,
    constant: Array2<f64>,
}

impl Gram {
    fn constant(value: Array2<f64>) -> Gram {
        Gram {
            terms: Vec::new(),
            constant: value,
        }
    }

    fn add_scaled(&mut self, other: &Gram, c: f64) {
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
struct Source {
    population: usize,
    /// Index into the population's functions.
    function: usize,
    scale: f64,
}

/// The features of a covariance, as rows: a constant block, then the sources.
#[derive(Debug, Clone)]
struct Features {
    /// r×P, G₀ᵀG₀ = K₀.
    fixed: Array2<f64>,
    sources: Vec<Source>,
    /// Rows in all.
    width: usize,
}

/// One population as a layer of weights.
#[derive(Debug, Clone)]
struct Layer {
    units: usize,
    features: Features,
    /// The units' mean (a constant P-vector).
    mean: Array1<f64>,
}

/// The network an action describes, with weights: see the module documentation.
pub struct WeightNetwork<'a> {
    simulator: &'a Simulator<'a>,
    /// By population index.
    layers: Vec<Layer>,
    /// Populations in the order a forward pass computes them.
    order: Vec<usize>,
    /// The distinct entry-wise functions whose values feed later layers, by population.
    functions: Vec<Vec<Expr>>,
    readout: Features,
    noise: f64,
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
    fn half_square_norm(&self) -> f64 {
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
    features: Vec<Array2<f64>>,
    /// f(H_k), f′(H_k) per function of population k.
    values: Vec<Vec<(Array2<f64>, Array2<f64>)>>,
    /// The readout features Fᵀ_R (width×P).
    readout_features: Array2<f64>,
    /// The network output f = F_R a (P×D).
    pub output: Array2<f64>,
}

fn refuse(span: Span, reason: String) -> SimulateError {
    SimulateError::NotSimulable { reason, span }
}

/// An expression's P×P value at given values of the matrices it reads.
pub(super) type MatrixOf<'f> = dyn Fn(&[Array2<f64>]) -> Result<Array2<f64>, SimulateError> + 'f;

/// Symmetric probe matrices with signed entries in [−1.5, 1.5), different for every index
/// (signed, so that entry-wise |·|, relu or clipping are not mistaken for linear maps).
fn probe(p: usize, index: usize) -> Array2<f64> {
    let mut state = super::stream_seed(0x5eed_u64, index as u64);
    let mut next = || {
        state = super::stream_seed(state, 1);
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
pub(super) fn affine_in(
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
                super::network::Step::Population(k) => Some(*k),
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

    fn features(
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
    fn distribute(
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

/// A network with explicit weights θ whose posterior exp(−U), U(θ) = ‖Y − f(θ)‖²/(2κ) +
/// ½‖θ‖², [`Langevin`] samples: the layered networks ([`WeightNetwork`]) and the recurrent
/// ones, whose weight matrix is shared over time
/// ([`super::recurrent_langevin::RecurrentWeights`]). A model supplies its forward pass and
/// Jᵀv by backpropagation; U, ∇U and the stiffest curvature follow from them.
pub trait WeightModel: Sync {
    /// What a forward pass keeps for backpropagation.
    type Pass;
    /// The network whose fields a state reports (and the posterior's key names).
    fn network(&self) -> &dyn WhitenedNetwork;
    /// The readout noise κ: the temperature.
    fn noise(&self) -> f64;
    /// The number of weights with `outputs` readout columns.
    fn weight_count(&self, outputs: usize) -> usize;
    /// Weights drawn from the prior (standard normal), for `outputs` readout columns.
    fn prior_draw(&self, outputs: usize, rng: &mut StdRng) -> Weights;
    /// The forward pass at `weights`.
    fn forward(&self, weights: &Weights) -> Result<Self::Pass, SimulateError>;
    /// The network output f (P×D) of a pass.
    fn output<'p>(&self, pass: &'p Self::Pass) -> &'p Array2<f64>;
    /// Jᵀv: the derivative of ⟨v, f(θ)⟩ in every weight, `v` P×D.
    ///
    /// # Panics
    /// If `weights` or `v` do not have the shapes of this model's (as
    /// [`Self::prior_draw`] makes them, and the pass's output).
    fn backpropagate(&self, weights: &Weights, pass: &Self::Pass, v: &Array2<f64>) -> Weights;
    /// Every field of the network at `weights` (made by `pass`).
    fn fields(&self, weights: &Weights, pass: &Self::Pass) -> Result<Draw, SimulateError>;

    /// U(θ) = ‖Y − f‖²/(2κ) + ½‖θ‖² over the training rows (the first `y.nrows()`).
    fn potential(&self, weights: &Weights, forward: &Self::Pass, y: &Array2<f64>) -> f64 {
        let train = y.nrows();
        let residual = &self.output(forward).slice(s![..train, ..]) - y;
        residual.iter().map(|r| r * r).sum::<f64>() / (2.0 * self.noise())
            + weights.half_square_norm()
    }

    /// ∇U at `weights` by backpropagation through `forward` (made at `weights`).
    fn gradient(&self, weights: &Weights, forward: &Self::Pass, y: &Array2<f64>) -> Weights {
        let train = y.nrows();
        let output = self.output(forward);
        let mut d_output = Array2::zeros(output.dim());
        d_output
            .slice_mut(s![..train, ..])
            .assign(&((&output.slice(s![..train, ..]) - y) / self.noise()));
        let mut grad = self.backpropagate(weights, forward, &d_output);
        for (g, w) in grad.layers.iter_mut().zip(&weights.layers) {
            *g += w;
        }
        grad.readout += &weights.readout;
        grad
    }

    /// The stiffest curvature of U at `weights`: 1 + λ_max(J Jᵀ)/κ, J = ∂f_train/∂θ (the
    /// network's tangent kernel on the training rows: the readout kernel plus one term per
    /// hidden layer), by power iteration — Jᵀv by backpropagation, J u by a central
    /// difference of the forward pass along u.
    fn stiffness(&self, weights: &Weights, y: &Array2<f64>) -> Result<f64, SimulateError> {
        let train = y.nrows();
        let forward = self.forward(weights)?;
        let mut v = Array2::<f64>::zeros(self.output(&forward).dim());
        v.slice_mut(s![..train, ..]).fill(1.0);
        let norm = |m: &Array2<f64>| m.iter().map(|x| x * x).sum::<f64>().sqrt();
        v /= norm(&v);
        let scale = (2.0 * weights.half_square_norm() / weights.count() as f64)
            .sqrt()
            .max(1.0);
        let mut lambda = 0.0;
        for _ in 0..100 {
            let u = self.backpropagate(weights, &forward, &v);
            let size = (2.0 * u.half_square_norm()).sqrt();
            if size == 0.0 {
                break;
            }
            let h = 1e-5 * scale / size;
            let shifted = |sign: f64| {
                let mut w = weights.clone();
                for (a, b) in w.layers.iter_mut().zip(&u.layers) {
                    a.scaled_add(sign * h, b);
                }
                w.readout.scaled_add(sign * h, &u.readout);
                self.forward(&w).map(|f| self.output(&f).clone())
            };
            let mut ju = (shifted(1.0)? - shifted(-1.0)?) / (2.0 * h);
            ju.slice_mut(s![train.., ..]).fill(0.0);
            let next = (&ju * &v).sum();
            let length = norm(&ju);
            if !next.is_finite() || length == 0.0 {
                break;
            }
            v = ju / length;
            let converged = (next - lambda).abs() <= 1e-4 * next.abs();
            lambda = next;
            if converged {
                break;
            }
        }
        if !lambda.is_finite() {
            return Err(SimulateError::Evaluate {
                what: "the curvature of the Langevin potential".into(),
                reason: format!("it came out {lambda}"),
            });
        }
        Ok(1.0 + lambda.max(0.0) / self.noise())
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

/// a·b by faer (cache-blocked; the views may be transposed).
pub(super) fn product(
    a: ndarray::ArrayView2<'_, f64>,
    b: ndarray::ArrayView2<'_, f64>,
) -> Array2<f64> {
    crate::numeric::matrix::matmul(a, b).expect("the layers' shapes agree by construction")
}

/// Reads expressions as Gram matrices, memoising each entry's.
struct GramReader<'a> {
    simulator: &'a Simulator<'a>,
    memo: BTreeMap<EntryKey, Gram>,
}

impl GramReader<'_> {
    /// The Gram form of `e` (affine in the entries `reads`).
    fn expression(
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
    fn entry(&mut self, key: &EntryKey, span: Span) -> Result<Gram, SimulateError> {
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
    fn rule(
        &mut self,
        rule: &super::network::FieldRule,
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
fn combine(
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
fn features_of(
    gram: &Gram,
    functions: &mut [Vec<Expr>],
    network: &super::Network,
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

/// Unadjusted Langevin dynamics of the weights: a [`PosteriorSampler`].
pub struct Langevin<M> {
    /// The network with weights.
    pub weights: M,
    /// The step size ε.
    pub step_size: f64,
    /// Whether ε was given (or is the default 0.05/λ_max).
    pub given: bool,
    /// λ_max = 1 + λ_max(J Jᵀ)/κ at a prior draw: the stiffest curvature of U.
    pub stiffest: f64,
}

impl<M: WeightModel> Langevin<M> {
    /// The sampler with step size `step_size`, or (None) 0.05/λ_max with λ_max the stiffest
    /// curvature of U at a prior draw seeded with `seed` ([`WeightNetwork::stiffness`]); a
    /// step of 2/λ_max or more, where the dynamics diverge, is refused.
    pub fn new(
        weights: M,
        targets: Targets<'_>,
        step_size: Option<f64>,
        seed: u64,
    ) -> Result<Self, SimulateError> {
        if let Some(e) = step_size.filter(|e| !(*e > 0.0 && e.is_finite())) {
            return Err(SimulateError::Setting(format!(
                "--step-size {e}: the Langevin step size must be positive"
            )));
        }
        let mut rng = StdRng::seed_from_u64(super::stream_seed(seed, u64::MAX));
        let theta = weights.prior_draw(targets.y.ncols(), &mut rng);
        let stiffest = weights.stiffness(&theta, &targets.y.to_owned())?;
        if let Some(e) = step_size.filter(|e| e * stiffest >= 2.0) {
            return Err(SimulateError::Setting(format!(
                "--step-size {e}: at or past 2/λ_max = {:.4e}, where the dynamics diverge \
                 (λ_max = {stiffest:.4} is the stiffest curvature of the potential at a prior \
                 draw, 1 + λ_max(J Jᵀ)/κ); leave --step-size out for 0.05/λ_max",
                2.0 / stiffest
            )));
        }
        Ok(Langevin {
            weights,
            step_size: step_size.unwrap_or(0.05 / stiffest),
            given: step_size.is_some(),
            stiffest,
        })
    }

    /// The stationary variance of ULA on a direction of curvature λ, relative to the exact
    /// 1/λ: 1/(1 − ελ/2) (the recursion x ← (1 − ελ)x + √(2ε)ξ).
    pub fn variance_inflation(&self, lambda: f64) -> f64 {
        1.0 / (1.0 - self.step_size * lambda / 2.0)
    }
}

impl<M: WeightModel> PosteriorSampler for Langevin<M> {
    fn network(&self) -> &dyn WhitenedNetwork {
        self.weights.network()
    }

    fn start<'s>(
        &'s self,
        targets: Targets<'_>,
        rng: &mut StdRng,
    ) -> Result<Box<dyn PosteriorChain + 's>, SimulateError> {
        let theta = self.weights.prior_draw(targets.y.ncols(), rng);
        let forward = self.weights.forward(&theta)?;
        Ok(Box::new(LangevinChain {
            sampler: self,
            y: targets.y.to_owned(),
            theta,
            forward,
            observation: None,
            steps: 0,
        }))
    }
}

struct LangevinChain<'s, M: WeightModel> {
    sampler: &'s Langevin<M>,
    y: Array2<f64>,
    theta: Weights,
    /// The forward pass at `theta`.
    forward: M::Pass,
    observation: Option<Observation>,
    steps: usize,
}

impl<M: WeightModel> PosteriorChain for LangevinChain<'_, M> {
    fn advance(&mut self, rng: &mut StdRng) -> Result<(), SimulateError> {
        let network = &self.sampler.weights;
        let eps = self.sampler.step_size;
        let grad = network.gradient(&self.theta, &self.forward, &self.y);
        let noise = (2.0 * eps).sqrt();
        let mut step = |w: &mut Array2<f64>, g: &Array2<f64>| {
            ndarray::Zip::from(w).and(g).for_each(|w, &g| {
                *w += -eps * g + noise * rng.sample::<f64, _>(StandardNormal);
            });
        };
        for (w, g) in self.theta.layers.iter_mut().zip(&grad.layers) {
            step(w, g);
        }
        step(&mut self.theta.readout, &grad.readout);
        self.steps += 1;
        self.observation = None;
        self.forward = network.forward(&self.theta).map_err(|_| self.diverged())?;
        if !network
            .potential(&self.theta, &self.forward, &self.y)
            .is_finite()
        {
            return Err(self.diverged());
        }
        Ok(())
    }

    fn observe(&mut self) -> Result<&Observation, SimulateError> {
        if self.observation.is_none() {
            let weights = &self.sampler.weights;
            let draw = weights.fields(&self.theta, &self.forward)?;
            self.observation = Some(Observation::of(
                weights.network(),
                Targets { y: self.y.view() },
                draw,
            )?);
        }
        Ok(self.observation.as_ref().expect("just made"))
    }

    fn evaluations(&self) -> usize {
        self.steps
    }

    fn failures(&self) -> usize {
        0
    }
}

impl<M: WeightModel> LangevinChain<'_, M> {
    fn diverged(&self) -> SimulateError {
        let sampler = self.sampler;
        let step = if sampler.given {
            format!("--step-size {}", sampler.step_size)
        } else {
            format!(
                "the default step size {:.4e} (0.05/λ_max)",
                sampler.step_size
            )
        };
        SimulateError::Setting(format!(
            "Langevin dynamics diverged at step {} with {step}: ‖θ‖² ran past a hundred times \
             the number of weights; the curvature along the chain exceeds λ_max = {:.4} of the \
             prior draw — give a smaller --step-size",
            self.steps, sampler.stiffest
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::Network;
    use ndarray::array;

    fn network(source: &str, overrides: &[(&str, f64)]) -> Network {
        let theory = crate::compile(source, "test").expect("checks");
        let overrides: Vec<(String, f64)> =
            overrides.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let params = theory.bind(&overrides).expect("binds");
        Network::new(&theory, &params).expect("a network")
    }

    fn inputs() -> Array2<f64> {
        array![[1.0, 0.3, -0.2], [0.4, -1.1, 0.5], [-0.7, 0.2, 0.9]]
    }

    /// Every covariance's Gram matrix of features, computed from the same units, against
    /// the network's own fields: each population's covariance and the readout kernel.
    fn assert_features_make_the_fields(network: &Network, x: &Array2<f64>) -> Weights {
        let simulator = Simulator::new(network, x.view()).unwrap();
        let weights = WeightNetwork::new(&simulator).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let theta = weights.prior_draw(1, &mut rng);
        let forward = weights.forward(&theta).unwrap();
        let draw = simulator.fields_of_units(&forward.units).unwrap();
        let close = |a: &Array2<f64>, b: &Array2<f64>, what: &str| {
            let error = (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(error < 1e-12, "{what}: {error}\n{a}\n{b}");
        };
        for (k, pop) in network.populations.iter().enumerate() {
            let cov = simulator
                .matrix(&draw.entries, &[], &pop.cov, "cov")
                .unwrap();
            let f = &forward.features[k];
            close(&f.t().dot(f), &cov, &format!("population {k}"));
        }
        let (kernel, _) = simulator.readout(&draw).unwrap();
        let f = &forward.readout_features;
        close(&f.t().dot(f), &kernel, "readout");
        theta
    }

    /// The weights' features make the network's own fields, for erf and ReLU units; the
    /// first layer's weights multiply a factor of C⁽⁰⁾ (rank P = 3, not d = 4).
    #[test]
    fn the_features_of_the_weights_are_the_networks_kernels() {
        let x = array![
            [1.0, 0.3, -0.2, 0.5],
            [0.4, -1.1, 0.5, 0.1],
            [-0.7, 0.2, 0.9, -0.3]
        ];
        for source in [
            include_str!("../../examples/deep_erf.action"),
            include_str!("../../examples/deep_relu.action"),
        ] {
            let network = network(source, &[("L", 2.0), ("N", 7.0)]);
            let theta = assert_features_make_the_fields(&network, &x);
            // 7 units on 3 fixed features, then 7 units and the readout on 7 + 1 (a bias)
            assert_eq!(theta.count(), 7 * 3 + 7 * 8 + 8);
        }
    }

    const RESIDUAL: &str = "theory residual
param g = 1.2
param a = 0.5
param kappa = 0.1
param N = 6
param L: int = 2
phi(x) = erf(x)
data X, Y
kernel C[l] for l in 0..=L
conj Ct[l] of C[l] for l in 1..=L
C[0] = X X^T / d
action S = sum(l in 1..=L,
               - tr(Ct[l]^T C[l])
               + N * ln E[ exp(g / N * phi(h)^T Ct[l] phi(h)) | h ~ N(0, C[l-1]) ]
               + a * tr(Ct[l]^T C[l-1]))
         - 1/2 * tr(Y^T inv(C[L] + kappa * I) Y)
         - D/2 * logdet(C[L] + kappa * I)
";

    /// A residual network, C⁽ˡ⁾ = g⟨φφᵀ⟩ + a·C⁽ˡ⁻¹⁾: every layer below is a feature of the
    /// readout (coefficients a·g and a²), found by probing the rules.
    #[test]
    fn a_residual_network_reads_every_layer_below_as_features() {
        let x = inputs();
        let network = network(RESIDUAL, &[]);
        let theta = assert_features_make_the_fields(&network, &x);
        // layer 1: 6 × 3 (C⁽⁰⁾); layer 2: 6 × (6 + 3); the readout: 6 + 6 + 3
        assert_eq!(theta.count(), 6 * 3 + 6 * 9 + 15);
    }

    /// Covariances that are not Gram matrices of features are refused with the reason.
    #[test]
    fn covariances_that_are_not_gram_matrices_are_refused() {
        let x = inputs();
        for (cov, why) in [
            ("2 * C[0] - 0.5 * C[l-1]", "subtracts"),
            ("C[l-1] C[l-1] / 2", "not a linear combination"),
        ] {
            let source = RESIDUAL
                .replace("N(0, C[l-1])", &format!("N(0, {cov})"))
                .replace("+ a * tr(Ct[l]^T C[l-1])", "");
            let network = network(&source, &[]);
            let simulator = Simulator::new(&network, x.view()).unwrap();
            match WeightNetwork::new(&simulator) {
                Err(SimulateError::NotSimulable { reason, .. }) => {
                    assert!(reason.contains(why), "{cov}: {reason}")
                }
                Err(other) => panic!("{cov}: {other}"),
                Ok(_) => panic!("{cov}: accepted"),
            }
        }
    }

    /// ∇U by backpropagation equals central differences of U, weight by weight.
    #[test]
    fn the_gradient_is_the_derivative_of_the_potential() {
        let network = network(
            include_str!("../../examples/deep_erf.action"),
            &[("L", 2.0), ("N", 4.0)],
        );
        let x = inputs();
        let simulator = Simulator::new(&network, x.view()).unwrap();
        let weights = WeightNetwork::new(&simulator).unwrap();
        // two training rows: the third pattern is a test row, outside the loss
        let y = array![[1.0, 0.5], [-1.0, 0.2]];
        let mut rng = StdRng::seed_from_u64(11);
        let theta = weights.prior_draw(2, &mut rng);
        let forward = weights.forward(&theta).unwrap();
        let grad = weights.gradient(&theta, &forward, &y);
        let u = |t: &Weights| weights.potential(t, &weights.forward(t).unwrap(), &y);
        let h = 1e-6;
        let mut checked = 0;
        let mut check = |get: &dyn Fn(&mut Weights) -> &mut f64, analytic: f64| {
            let (mut up, mut down) = (theta.clone(), theta.clone());
            *get(&mut up) += h;
            *get(&mut down) -= h;
            let numeric = (u(&up) - u(&down)) / (2.0 * h);
            assert!(
                (numeric - analytic).abs() < 1e-6 * (1.0 + analytic.abs()),
                "{numeric} vs {analytic}"
            );
            checked += 1;
        };
        for k in 0..theta.layers.len() {
            let (rows, cols) = theta.layers[k].dim();
            for (i, j) in [(0, 0), (rows - 1, cols - 1), (rows / 2, cols / 2)] {
                check(
                    &|t: &mut Weights| &mut t.layers[k][[i, j]],
                    grad.layers[k][[i, j]],
                );
            }
        }
        for (i, j) in [(0, 0), (4, 1), (2, 1)] {
            check(
                &|t: &mut Weights| &mut t.readout[[i, j]],
                grad.readout[[i, j]],
            );
        }
        assert_eq!(checked, 9);
    }

    /// Units that jump have no gradient: refused with the function named.
    #[test]
    fn units_that_jump_are_refused() {
        let network = network(include_str!("../../examples/binary_sign.action"), &[]);
        let x = inputs();
        let simulator = Simulator::new(&network, x.view()).unwrap();
        match WeightNetwork::new(&simulator) {
            Err(SimulateError::NotSimulable { reason, .. }) => {
                assert!(reason.contains("jumps"), "{reason}")
            }
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("accepted"),
        }
    }
}
