//! `saddle simulate` on recurrent theories: one network with a weight matrix shared over time.

use ndarray::Array2;
use serde_json::json;

use crate::cli::CliError;
use crate::cli::options::params_json;
use crate::cli::result::RunResult;
use crate::simulate::langevin::{Langevin, WeightModel};
use crate::simulate::posterior::{EllipticalSlice, PosteriorSampler, Targets};
use crate::simulate::recurrent_langevin::RecurrentWeights;
use crate::simulate::{RecurrentNetwork, RecurrentSimulator};
use crate::solve::nngp::{EntryKey, Kernels};
use crate::solve::one_loop::EntryVariance;

use super::*;

/// `saddle simulate` of a recurrent theory: one network with its weights shared over time
/// ([`RecurrentNetwork`]), from its prior or its posterior given the training targets.
pub(super) fn execute_recurrent(
    args: &SimulateArgs,
    capture: bool,
    theory: &crate::Theory,
    params: &[f64],
    x: &Array2<f64>,
    (y, y_test): (Option<Array2<f64>>, Option<Array2<f64>>),
    train: usize,
) -> Result<Option<RunResult>, CliError> {
    let network = RecurrentNetwork::new(theory, params).map_err(|e| simulate_error(&e, args))?;
    let simulator =
        RecurrentSimulator::new(&network, x.view()).map_err(|e| simulate_error(&e, args))?;
    let nngp = compared_nngp(theory, x, args, y.as_ref().map(|y| y.ncols()))?;
    let one_loop = if args.one_loop && args.prior {
        Some(recurrent_one_loop(&network, &simulator, &nngp)?)
    } else {
        None
    };
    let method = match (args.prior, args.sampler) {
        (true, _) => "simulate-prior",
        (false, Sampler::Ess) => "simulate-ess",
        (false, Sampler::Langevin) => "simulate-langevin",
    };
    let mut out = RunResult::new(
        "simulate",
        method,
        &theory.name,
        params_json(theory, params),
    );
    out.set("seed", Some(json!(args.seed)));
    out.set(
        "recurrent",
        Some(
            json!({ "units": network.units, "last_time": network.last_time,
                     "weight_variance": simulator.gain }),
        ),
    );
    if let Some(key) = readout_entry(theory, args) {
        out.set("readout", Some(json!(network.name(&key))));
    }
    let units = network.units;
    let family = network.family;
    let units_of = move |key: &EntryKey| (key.0 == family).then_some(units);
    let mut tables = Tables::new(theory, &units_of, &nngp);
    if let Some((variances, quadrature_error)) = one_loop {
        tables.one_loop = variances;
        out.set(
            "one_loop",
            Some(json!({ "theory": "recurrent (shared weights)",
                         "quadrature_error": quadrature_error })),
        );
    }
    if args.prior {
        return report_prior(args, capture, &simulator, tables, out, &[]);
    }
    let y = posterior_targets(y)?;
    let ess = EllipticalSlice {
        network: &simulator,
    };
    let langevin;
    let sampler: (&dyn PosteriorSampler, SamplerInfo) = match args.sampler {
        Sampler::Ess => (&ess, SamplerInfo::elliptical_slice()),
        Sampler::Langevin => {
            let weights =
                RecurrentWeights::new(&simulator).map_err(|e| simulate_error(&e, args))?;
            let parameters = weights.weight_count(y.ncols());
            langevin = Langevin::new(weights, Targets { y: y.view() }, args.step_size, args.seed)
                .map_err(|e| simulate_error(&e, args))?;
            let info = SamplerInfo::langevin(&langevin, parameters);
            (&langevin, info)
        }
    };
    report_posterior(args, capture, sampler, tables, out, &[], (y, y_test), train)
}

/// The one-loop N·Var of every block C[t, s] (t, s ≥ 1) of a recurrent network
/// ([`RecurrentSimulator::one_loop`]) and the quadrature's error estimate.
pub(super) fn recurrent_one_loop(
    network: &RecurrentNetwork,
    simulator: &RecurrentSimulator,
    nngp: &Kernels,
) -> Result<(Vec<EntryVariance>, f64), CliError> {
    let one = simulator
        .one_loop(nngp, 20)
        .map_err(|e| CliError::Usage(format!("--one-loop: {e}")))?;
    let mut variances = Vec::new();
    for t in 1..=network.last_time {
        for s in 1..=network.last_time {
            let key = (network.family, vec![t as i64, s as i64]);
            if let Some(n_variance) = one.block_variance(t, s) {
                variances.push(EntryVariance {
                    name: network.name(&key),
                    key,
                    n_variance,
                });
            }
        }
    }
    Ok((variances, one.quadrature_error))
}
