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
//!
//! ## Modules
//! * `gram`: covariances read as Gram matrices of features (affine probing, `affine_in`).
//! * `network`: the layered network with weights ([`WeightNetwork`]): forward pass, Jᵀv,
//!   fields.
//! * here: the [`WeightModel`] interface (U, ∇U and λ_max written once for layered and
//!   recurrent networks) and the sampler [`Langevin`] with its chains.

use ndarray::{Array2, s};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use super::SimulateError;
use super::draw::Draw;
use super::posterior::{Observation, PosteriorChain, PosteriorSampler, Targets, WhitenedNetwork};

mod gram;
mod network;
use gram::*;
pub(super) use gram::{affine_in, product};
pub use network::{Forward, WeightNetwork, Weights};

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
    use crate::simulate::draw::Simulator;
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
            include_str!("../../../examples/deep_erf.action"),
            include_str!("../../../examples/deep_relu.action"),
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
            include_str!("../../../examples/deep_erf.action"),
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
        let network = network(include_str!("../../../examples/binary_sign.action"), &[]);
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
