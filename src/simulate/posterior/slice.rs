//! Elliptical slice sampling of the whitened coordinates ([`EllipticalSlice`]): the exact
//! sampler, the readout integrated out.

use std::f64::consts::TAU;

use ndarray::Array2;
use rand::RngExt;
use rand::rngs::StdRng;

use crate::simulate::SimulateError;

use super::*;

/// Elliptical slice sampling in the whitened coordinates Z of a [`WhitenedNetwork`].
pub struct EllipticalSlice<'a> {
    /// The network.
    pub network: &'a dyn WhitenedNetwork,
}

impl PosteriorSampler for EllipticalSlice<'_> {
    fn network(&self) -> &dyn WhitenedNetwork {
        self.network
    }

    fn start<'s>(
        &'s self,
        targets: Targets<'_>,
        rng: &mut StdRng,
    ) -> Result<Box<dyn PosteriorChain + 's>, SimulateError> {
        let z = self.network.standard_normals(rng);
        let draw = self.network.draw(&z)?;
        let observation = Observation::of(self.network, targets, draw)?;
        Ok(Box::new(SliceChain {
            network: self.network,
            y: targets.y.to_owned(),
            z,
            observation,
            evaluations: 0,
            failures: 0,
        }))
    }
}

pub(super) struct SliceChain<'a> {
    pub(super) network: &'a dyn WhitenedNetwork,
    pub(super) y: Array2<f64>,
    pub(super) z: Vec<Array2<f64>>,
    pub(super) observation: Observation,
    pub(super) evaluations: usize,
    pub(super) failures: usize,
}

impl PosteriorChain for SliceChain<'_> {
    fn advance(&mut self, rng: &mut StdRng) -> Result<(), SimulateError> {
        let nu = self.network.standard_normals(rng);
        let level = self.observation.log_likelihood + rng.random::<f64>().ln();
        let mut theta = rng.random::<f64>() * TAU;
        let (mut low, mut high) = (theta - TAU, theta);
        loop {
            let (c, sn) = (theta.cos(), theta.sin());
            let proposal: Vec<Array2<f64>> = self
                .z
                .iter()
                .zip(&nu)
                .map(|(z, n)| z * c + n * sn)
                .collect();
            self.evaluations += 1;
            let evaluated = self
                .network
                .draw(&proposal)
                .and_then(|draw| Observation::of(self.network, Targets { y: self.y.view() }, draw));
            match evaluated {
                Ok(next) if next.log_likelihood > level => {
                    self.z = proposal;
                    self.observation = next;
                    return Ok(());
                }
                Ok(_) => {}
                Err(_) => self.failures += 1,
            }
            if theta < 0.0 {
                low = theta;
            } else {
                high = theta;
            }
            if high - low < 1e-12 {
                return Ok(());
            }
            theta = low + rng.random::<f64>() * (high - low);
        }
    }

    fn observe(&mut self) -> Result<&Observation, SimulateError> {
        Ok(&self.observation)
    }

    fn evaluations(&self) -> usize {
        self.evaluations
    }

    fn failures(&self) -> usize {
        self.failures
    }
}
