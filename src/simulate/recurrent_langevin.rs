//! Langevin dynamics of the weights of a recurrent network: one weight matrix shared over
//! time, trained by backpropagation through time ([`super::langevin`] for the dynamics).
//!
//! **The network with weights.** In the coordinates [`RecurrentSimulator`] draws in,
//! θ = (Z_ξ, Z_W, a) are standard normal under the prior:
//!
//!   ξ = Z_ξ Lᵀ (LLᵀ = D, the drive over time and patterns),
//!   h(0) = ξ(0),   h(t) = √(g/n) Z_W f(h(t−1)) + ξ(t),
//!
//! and the readout f = F_R a is explicit. The readout kernel, an expression in the blocks,
//! is read off the action as K_R = K₀ + Σ c_{ts} C[t, s] (probed: affine in the blocks, the
//! coefficients recovered and checked); with the empirical blocks C[t, s] = D[t, s] +
//! (g/n) f(h(t−1))ᵀ f(h(s−1)) it is K_R = K_c + (g/n) Σ_{ts} c̄_{ts} F_{t−1}ᵀ F_{s−1}
//! (c̄ the symmetric part, K_c = K₀ + Σ c_{ts} D[t, s]). With c̄ = V Λ Vᵀ (Λ ⪰ 0, else refused)
//! the features are F_R = [G_c | √(gλ_j/n) Σ_t V_{tj} F_{t−1}ᵀ …], G_c G_cᵀ = K_c, and their
//! Gram matrix is checked against the readout kernel of a draw.
//!
//! **The gradient** of ⟨v, f⟩ by backpropagation through time: ∂/∂a = F_Rᵀ v; the readout
//! hands each F_{t−1} its share of a vᵀ; then, from t = T − 1 down to 0,
//! ∂h(t) = ∂f(h(t)) ⊙ f′(h(t)), ∂W += ∂h(t) f(h(t−1))ᵀ, ∂f(h(t−1)) += Wᵀ ∂h(t), ∂ξ(t) = ∂h(t);
//! finally ∂Z_W = √(g/n) ∂W and ∂Z_ξ = ∂ξ L.

use std::collections::BTreeMap;

use ndarray::{Array2, s};
use rand::RngExt;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

use super::SimulateError;
use super::draw::{Draw, factor_clipped};
use super::langevin::{WeightModel, Weights, affine_in, product};
use super::posterior::WhitenedNetwork;
use super::recurrent::RecurrentSimulator;
use crate::numeric::jet::{has_jumps, jet};
use crate::solve::nngp::EntryKey;

/// A recurrent network with explicit weights: see the module documentation.
pub struct RecurrentWeights<'a> {
    simulator: &'a RecurrentSimulator<'a>,
    /// The constant readout features G_c (P×r).
    fixed: Array2<f64>,
    /// Per readout feature block j: (√(gλ_j/n)·V_{tj} for t = 1…T).
    mixes: Vec<Vec<f64>>,
    noise: f64,
}

/// A forward pass: the units' states, outputs and slopes at every time, the readout.
pub struct RecurrentPass {
    /// f(h(t)), f′(h(t)) for t = 0…T−1 (n×P each).
    outputs: Vec<(Array2<f64>, Array2<f64>)>,
    /// Fᵀ_R (width×P).
    readout_features: Array2<f64>,
    /// f = F_R a (P×D).
    output: Array2<f64>,
}

impl<'a> RecurrentWeights<'a> {
    /// Reads the readout's features off the network; refuses a readout that is not a Gram
    /// form of the units' outputs, a readout noise that is not a positive constant, and units
    /// that jump (no gradient).
    pub fn new(simulator: &'a RecurrentSimulator<'a>) -> Result<Self, SimulateError> {
        let network = simulator.network;
        let span = network.theory.action.body.span;
        let refuse = |reason: String| SimulateError::NotSimulable { reason, span };
        let readout = network.readout.as_ref().ok_or(SimulateError::NoReadout)?;
        let p = simulator.patterns();
        let keys = network.block_keys();
        let kernel_at = |blocks: &[Array2<f64>]| {
            let entries: BTreeMap<EntryKey, Array2<f64>> =
                keys.iter().cloned().zip(blocks.iter().cloned()).collect();
            simulator.matrix(&entries, None, &readout.kernel, "the readout kernel")
        };
        let (coefficients, k0) = affine_in(keys.len(), p, &kernel_at).ok_or_else(|| {
            refuse(
                "the readout kernel is not a fixed linear combination of the blocks C[t, s] \
                 plus a constant: Langevin dynamics needs its readout as features of the units"
                    .into(),
            )
        })?;
        let times = network.last_time;
        let drive = &simulator.drive_covariance;
        let mut constant = k0;
        let mut mix = Array2::<f64>::zeros((times, times));
        for (key, c) in keys.iter().zip(&coefficients) {
            let [t, u] = key.1.as_slice() else {
                continue;
            };
            let (t, u) = (*t as usize, *u as usize);
            constant.scaled_add(*c, &drive.slice(s![t * p..(t + 1) * p, u * p..(u + 1) * p]));
            if t >= 1 && u >= 1 {
                mix[[t - 1, u - 1]] += 0.5 * c;
                mix[[u - 1, t - 1]] += 0.5 * c;
            }
        }
        let factor = factor_clipped(&constant, 1e-10).map_err(|why| {
            refuse(format!(
                "the readout kernel's constant part is not a covariance ({why})"
            ))
        })?;
        // a constant of lower rank (a shared bias: gb·𝟏𝟏ᵀ) needs as many features as its rank
        let size = |j: usize| factor.column(j).dot(&factor.column(j)).sqrt();
        let largest = (0..factor.ncols()).map(size).fold(0.0f64, f64::max);
        let kept: Vec<usize> = (0..factor.ncols())
            .filter(|&j| size(j) > 1e-8 * largest)
            .collect();
        let fixed = factor.select(ndarray::Axis(1), &kept);
        let (values, vectors) = symmetric_eigen(&mix).ok_or_else(|| {
            refuse(format!(
                "the readout kernel's weights of the units' outputs over time ({mix}) have no \
                 eigendecomposition"
            ))
        })?;
        let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if let Some(bad) = values.iter().find(|v| **v < -1e-10 * largest.max(1e-300)) {
            return Err(refuse(format!(
                "the readout kernel weighs the units' outputs over time by a matrix with the \
                 negative eigenvalue {bad}: it is not a Gram matrix of the units' outputs"
            )));
        }
        let n = network.units as f64;
        let mixes = values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 1e-12 * largest)
            .map(|(j, v)| {
                (0..times)
                    .map(|t| (simulator.gain * v / n).sqrt() * vectors[[t, j]])
                    .collect()
            })
            .collect();
        // the readout noise κ: a positive constant (the same at every state)
        let noise_at = |blocks: &[Array2<f64>]| -> Result<f64, SimulateError> {
            let draw = Draw {
                entries: keys.iter().cloned().zip(blocks.iter().cloned()).collect(),
            };
            simulator.readout(&draw).map(|(_, kappa)| kappa)
        };
        let zeros = vec![Array2::zeros((p, p)); keys.len()];
        let ones = vec![Array2::ones((p, p)); keys.len()];
        let noise = noise_at(&zeros)?;
        if !(noise > 0.0 && noise.is_finite()) || noise_at(&ones)? != noise {
            return Err(refuse(format!(
                "the readout noise κ = {noise} is not a positive constant: it is the \
                 temperature of the Langevin dynamics"
            )));
        }
        let weights = RecurrentWeights {
            simulator,
            fixed,
            mixes,
            noise,
        };
        weights.check_units_have_slopes()?;
        weights.check_features_make_the_readout()?;
        Ok(weights)
    }

    /// Units that jump (sign, step) have no gradient.
    fn check_units_have_slopes(&self) -> Result<(), SimulateError> {
        let network = self.simulator.network;
        let jumps = has_jumps(&network.theory, &network.output);
        if jumps {
            return Err(SimulateError::NotSimulable {
                reason: "the units jump (sign, step): their outputs have no gradient for \
                         Langevin dynamics; use --sampler ess"
                    .into(),
                span: network.output.span,
            });
        }
        Ok(())
    }

    /// The features' Gram matrix is the readout kernel of the same network (a prior draw).
    fn check_features_make_the_readout(&self) -> Result<(), SimulateError> {
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(0x5eed);
        let theta = self.prior_draw(1, &mut rng);
        let pass = self.forward(&theta)?;
        let draw = self.fields(&theta, &pass)?;
        let (kernel, _) = self.simulator.readout(&draw)?;
        let f = &pass.readout_features;
        let gram = f.t().dot(f);
        let scale = kernel.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let miss = (&gram - &kernel).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if miss.is_nan() || miss > 1e-8 * scale {
            return Err(SimulateError::NotSimulable {
                reason: format!(
                    "the readout kernel is not the Gram matrix of the units' outputs over time \
                     (they differ by {miss:e} on a prior draw): its blocks are not weighed \
                     symmetrically"
                ),
                span: self.simulator.network.theory.action.body.span,
            });
        }
        Ok(())
    }

    /// The readout's width: constant features, then n per feature block.
    fn readout_width(&self) -> usize {
        self.fixed.ncols() + self.mixes.len() * self.simulator.network.units
    }

    fn recurrent_scale(&self) -> f64 {
        (self.simulator.gain / self.simulator.network.units as f64).sqrt()
    }
}

/// Eigenvalues and eigenvectors (columns) of a small symmetric matrix; None where the
/// decomposition fails (a non-finite entry).
fn symmetric_eigen(m: &Array2<f64>) -> Option<(Vec<f64>, Array2<f64>)> {
    let n = m.nrows();
    if m.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let a = faer::Mat::from_fn(n, n, |i, j| m[[i, j]]);
    let eigen = a.self_adjoint_eigen(faer::Side::Lower).ok()?;
    let values = (0..n).map(|i| eigen.S()[i]).collect();
    let vectors = Array2::from_shape_fn((n, n), |(i, j)| eigen.U()[(i, j)]);
    Some((values, vectors))
}

impl WeightModel for RecurrentWeights<'_> {
    type Pass = RecurrentPass;

    fn network(&self) -> &dyn WhitenedNetwork {
        self.simulator
    }

    fn noise(&self) -> f64 {
        self.noise
    }

    fn weight_count(&self, outputs: usize) -> usize {
        let n = self.simulator.network.units;
        let drive = self.simulator.drive.ncols();
        n * drive + n * n + self.readout_width() * outputs
    }

    fn prior_draw(&self, outputs: usize, rng: &mut StdRng) -> Weights {
        let n = self.simulator.network.units;
        let mut normal = |rows: usize, cols: usize| {
            Array2::from_shape_simple_fn((rows, cols), || rng.sample::<f64, _>(StandardNormal))
        };
        let drive = normal(n, self.simulator.drive.ncols());
        let recurrent = normal(n, n);
        Weights {
            layers: vec![drive, recurrent],
            readout: normal(self.readout_width(), outputs),
        }
    }

    fn forward(&self, weights: &Weights) -> Result<RecurrentPass, SimulateError> {
        let sim = self.simulator;
        let network = sim.network;
        let p = sim.patterns();
        let [z_drive, z_recurrent] = weights.layers.as_slice() else {
            return Err(SimulateError::Setting(
                "a recurrent network's weights are the drive's and the recurrent matrix".into(),
            ));
        };
        let xi = product(z_drive.view(), sim.drive.t());
        let w = z_recurrent * self.recurrent_scale();
        let mut h = xi.slice(s![.., 0..p]).to_owned();
        let mut outputs = Vec::with_capacity(network.last_time);
        for t in 0..network.last_time {
            let (f, slope) = sim.with_context(&BTreeMap::new(), None, |ctx| {
                jet(
                    &network.theory,
                    &network.var,
                    &network.output,
                    h.view(),
                    ctx,
                )
                .map(|[v, d, _]| (v, d))
                .map_err(|reason| SimulateError::Evaluate {
                    what: format!("the units' outputs at time {t}"),
                    reason,
                })
            })?;
            // h(T) feeds no output the readout reads
            if t + 1 < network.last_time {
                h = product(w.view(), f.view()) + xi.slice(s![.., (t + 1) * p..(t + 2) * p]);
                if let Some(bad) = h.iter().find(|v| !v.is_finite()) {
                    return Err(SimulateError::Evaluate {
                        what: format!("the units at time {}", t + 1),
                        reason: format!("a pre-activation came out {bad}"),
                    });
                }
            }
            outputs.push((f, slope));
        }
        let n = network.units;
        let mut readout_features = Array2::zeros((self.readout_width(), p));
        let r = self.fixed.ncols();
        readout_features
            .slice_mut(s![..r, ..])
            .assign(&self.fixed.t());
        for (j, mix) in self.mixes.iter().enumerate() {
            let mut block = readout_features.slice_mut(s![r + j * n..r + (j + 1) * n, ..]);
            for ((f, _), c) in outputs.iter().zip(mix) {
                block.scaled_add(*c, f);
            }
        }
        let output = product(readout_features.t(), weights.readout.view());
        Ok(RecurrentPass {
            outputs,
            readout_features,
            output,
        })
    }

    fn output<'p>(&self, pass: &'p RecurrentPass) -> &'p Array2<f64> {
        &pass.output
    }

    fn backpropagate(&self, weights: &Weights, pass: &RecurrentPass, v: &Array2<f64>) -> Weights {
        let sim = self.simulator;
        let p = sim.patterns();
        let n = sim.network.units;
        let times = pass.outputs.len();
        let readout = product(pass.readout_features.view(), v.view());
        let d_features = product(weights.readout.view(), v.t());
        let r = self.fixed.ncols();
        let mut d_outputs: Vec<Array2<f64>> = vec![Array2::zeros((n, p)); times];
        for (j, mix) in self.mixes.iter().enumerate() {
            let block = d_features.slice(s![r + j * n..r + (j + 1) * n, ..]);
            for (d, c) in d_outputs.iter_mut().zip(mix) {
                d.scaled_add(*c, &block);
            }
        }
        let w = &weights.layers[1] * self.recurrent_scale();
        let mut d_w = Array2::<f64>::zeros((n, n));
        let mut d_xi = Array2::<f64>::zeros((n, sim.drive.ncols()));
        for t in (0..times).rev() {
            let d_h = &d_outputs[t] * &pass.outputs[t].1;
            if t >= 1 {
                d_w += &product(d_h.view(), pass.outputs[t - 1].0.t());
                let back = product(w.t(), d_h.view());
                d_outputs[t - 1] += &back;
            }
            d_xi.slice_mut(s![.., t * p..(t + 1) * p]).assign(&d_h);
        }
        Weights {
            layers: vec![
                product(d_xi.view(), sim.drive.view()),
                d_w * self.recurrent_scale(),
            ],
            readout,
        }
    }

    fn fields(&self, weights: &Weights, _: &RecurrentPass) -> Result<Draw, SimulateError> {
        self.simulator.draw_from(&weights.layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::recurrent::RecurrentNetwork;
    use ndarray::array;
    use rand::SeedableRng;

    fn network(source: &str, overrides: &[(&str, f64)]) -> RecurrentNetwork {
        let theory = crate::compile(source, "test").expect("checks");
        let overrides: Vec<(String, f64)> =
            overrides.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let params = theory.bind(&overrides).expect("binds");
        RecurrentNetwork::new(&theory, &params).expect("a recurrent network")
    }

    fn inputs() -> Array2<f64> {
        array![[1.0, 0.3, -0.2], [0.4, -1.1, 0.5], [-0.7, 0.2, 0.9]]
    }

    #[test]
    fn the_readout_features_and_the_gradient_of_a_shared_weight_matrix() {
        let network = network(
            include_str!("../../examples/recurrent_erf.action"),
            &[("T", 3.0), ("N", 5.0)],
        );
        let x = inputs();
        let simulator = RecurrentSimulator::new(&network, x.view()).unwrap();
        // `new` checks the readout features' Gram matrix against the readout kernel
        let weights = RecurrentWeights::new(&simulator).unwrap();
        let y = array![[1.0, 0.5], [-1.0, 0.2]];
        let mut rng = StdRng::seed_from_u64(4);
        let theta = weights.prior_draw(2, &mut rng);
        assert_eq!(theta.count(), weights.weight_count(2));
        let pass = weights.forward(&theta).unwrap();
        let grad = weights.gradient(&theta, &pass, &y);
        let u = |t: &Weights| weights.potential(t, &weights.forward(t).unwrap(), &y);
        let h = 1e-6;
        let check = |get: &dyn Fn(&mut Weights) -> &mut f64, analytic: f64| {
            let (mut up, mut down) = (theta.clone(), theta.clone());
            *get(&mut up) += h;
            *get(&mut down) -= h;
            let numeric = (u(&up) - u(&down)) / (2.0 * h);
            assert!(
                (numeric - analytic).abs() < 1e-6 * (1.0 + analytic.abs()),
                "{numeric} vs {analytic}"
            );
        };
        for k in 0..2 {
            let (rows, cols) = theta.layers[k].dim();
            for (i, j) in [
                (0, 0),
                (rows - 1, cols - 1),
                (rows / 2, cols / 2),
                (1, cols - 2),
            ] {
                check(
                    &|t: &mut Weights| &mut t.layers[k][[i, j]],
                    grad.layers[k][[i, j]],
                );
            }
        }
        let rows = theta.readout.nrows();
        for (i, j) in [(0, 0), (rows - 1, 1), (rows / 2, 0)] {
            check(
                &|t: &mut Weights| &mut t.readout[[i, j]],
                grad.readout[[i, j]],
            );
        }
        // the fields reported are the simulator's for the same normals
        let draw = weights.fields(&theta, &pass).unwrap();
        let again = simulator.draw_from(&theta.layers).unwrap();
        assert_eq!(draw.entries, again.entries);
    }
}
