//! Asynchronous binary units of a recurrent theory ([`RecurrentGlauber`]): the shared coupling
//! matrix updated one unit at a time.

use ndarray::Array2;
use rand::rngs::StdRng;

use crate::check::ir::FieldId;
use crate::simulate::{RecurrentSimulator, SimulateError};
use crate::solve::step_map::StepMap;

use super::*;

/// A recurrent theory run asynchronously: its own network (weights already shared over
/// time), h(0) = ξ(0) from the inputs, then hᵢ ← Σⱼ Wᵢⱼ f(hⱼ) + ξᵢ with the drive of the
/// last time step (a bias shared over time); the state is the equal-time block C[T, T]'s
/// equation with the average over the units' last pre-activations.
#[derive(Debug)]
pub struct RecurrentGlauber<'a> {
    /// The synchronous recurrent simulator (drive, couplings, unit output, equations).
    pub simulator: &'a RecurrentSimulator<'a>,
}

impl<'a> RecurrentGlauber<'a> {
    /// Checks that the step map's state is the one equal-time kernel the network measures.
    pub fn new(
        simulator: &'a RecurrentSimulator<'a>,
        map: &StepMap,
    ) -> Result<Self, SimulateError> {
        let network = simulator.network;
        let state: Vec<FieldId> = map.fields.iter().map(|f| f.field).collect();
        if state != [network.family] {
            return Err(SimulateError::NotSimulable {
                reason: format!(
                    "the step {} is not the equal-time kernel of the time family alone",
                    map.describe()
                ),
                span: network.theory.action.body.span,
            });
        }
        Ok(RecurrentGlauber { simulator })
    }
}

impl AsynchronousUnits for RecurrentGlauber<'_> {
    fn units(&self) -> usize {
        self.simulator.network.units
    }

    fn patterns(&self) -> usize {
        self.simulator.x.nrows()
    }

    fn couplings(&self) -> (f64, f64) {
        (self.simulator.gain, 0.0)
    }

    fn start(&self, rng: &mut StdRng) -> Result<(Array2<f64>, Array2<f64>), SimulateError> {
        self.simulator.glauber_start(rng)
    }

    fn outputs(&self, h: &Array2<f64>) -> Result<Array2<f64>, SimulateError> {
        self.simulator.unit_outputs(h)
    }

    fn state(&self, h: &Array2<f64>) -> Result<Vec<Array2<f64>>, SimulateError> {
        let block = self
            .simulator
            .equal_time_block(h, self.simulator.network.last_time)?;
        Ok(vec![block])
    }

    fn measured(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}
