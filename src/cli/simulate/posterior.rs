//! The posterior runs of `saddle simulate`: the sampler chosen and its settings, chains with
//! progress, and the report (kernels, prediction, diagnostics).

use ndarray::Array2;
use serde_json::{Map, Value, json};

use crate::cli::CliError;
use crate::cli::progress::progress_bar;
use crate::cli::result::RunResult;
use crate::simulate::langevin::{Langevin, WeightModel};
use crate::simulate::posterior::{
    PosteriorSampler, PosteriorSettings, Targets, sample_posterior_until,
};
use crate::solve::gp::accuracy;

use super::*;

/// The training targets a posterior needs.
pub(super) fn posterior_targets(y: Option<Array2<f64>>) -> Result<Array2<f64>, CliError> {
    y.ok_or_else(|| {
        CliError::Usage("--y is needed to sample the posterior (or pass --prior)".into())
    })
}

/// How the posterior was sampled, for the result and the table's heading.
pub(super) struct SamplerInfo {
    /// In words.
    pub(super) name: String,
    /// A line more, in words.
    pub(super) detail: Option<String>,
    /// Its settings beyond chains and draws.
    pub(super) settings: Map<String, Value>,
    /// Steps for the prior's directions to relax (1/ε of Langevin dynamics), which set the
    /// default burn-in (5 relaxations) and thinning (half of one); None: as many burn-in
    /// steps as draws, no thinning.
    pub(super) relaxation: Option<f64>,
    /// The result's key for the network evaluations per step.
    pub(super) evaluations: &'static str,
}

impl SamplerInfo {
    pub(super) fn elliptical_slice() -> Self {
        SamplerInfo {
            name: "elliptical slice sampling".into(),
            detail: None,
            settings: Map::new(),
            relaxation: None,
            evaluations: "likelihood_evaluations_per_step",
        }
    }

    pub(super) fn langevin<M: WeightModel>(sampler: &Langevin<M>, parameters: usize) -> Self {
        let eps = sampler.step_size;
        let stiffest = sampler.stiffest;
        let kappa = sampler.weights.noise();
        let (prior, stiff) = (
            sampler.variance_inflation(1.0),
            sampler.variance_inflation(stiffest),
        );
        let mut settings = Map::new();
        settings.insert("step_size".into(), json!(eps));
        settings.insert("temperature".into(), json!(kappa));
        settings.insert("weight_decay".into(), json!(kappa));
        settings.insert("weights".into(), json!(parameters));
        settings.insert("stiffest_curvature".into(), json!(stiffest));
        settings.insert(
            "variance_inflation".into(),
            json!({ "prior_directions": prior, "stiffest_direction": stiff }),
        );
        SamplerInfo {
            name: format!("unadjusted Langevin dynamics of {parameters} weights"),
            detail: Some(format!(
                "step ε = {eps:.3e} (λ_max = {stiffest:.4} at a prior draw): loss ½‖Y − f‖² \
                 with weight decay κ = {kappa} at temperature κ; the O(ε) bias: variances \
                 ×{prior:.4} along the prior, ×{stiff:.4} along the stiffest direction"
            )),
            settings,
            relaxation: Some(1.0 / eps),
            evaluations: "gradient_evaluations_per_step",
        }
    }
}

/// The posterior of `simulator`'s network given the training targets, reported into `out`
/// beside the NNGP in `tables`.
#[allow(clippy::too_many_arguments)]
pub(super) fn report_posterior(
    args: &SimulateArgs,
    capture: bool,
    (sampler, info): (&dyn PosteriorSampler, SamplerInfo),
    mut tables: Tables<'_>,
    mut out: RunResult,
    left_out: &[String],
    (y, y_test): (Array2<f64>, Option<Array2<f64>>),
    train: usize,
) -> Result<Option<RunResult>, CliError> {
    let simulator = sampler.network();
    let tables_theory = tables.theory;
    let samples = args.samples.unwrap_or(200);
    let steps_of = |times: f64| info.relaxation.map(|r| (times * r).ceil() as usize);
    let settings = PosteriorSettings {
        chains: args.chains,
        samples,
        burn_in: args.burn_in.or(steps_of(5.0)).unwrap_or(samples),
        thin: args.thin.or(steps_of(0.5)).unwrap_or(1),
        seed: args.seed,
    };
    if let (Some(relaxation), Some(burn_in)) = (info.relaxation, args.burn_in)
        && (burn_in as f64) < 5.0 * relaxation
    {
        eprintln!(
            "note: --burn-in {burn_in} is {:.1} relaxation times of the weights (1/ε = {:.0} \
             steps each); the chains may still remember their prior draws — 5 or more \
             (the default) are safer",
            burn_in as f64 / relaxation,
            relaxation
        );
    }
    let steps = (settings.chains * (settings.burn_in + settings.samples * settings.thin)) as u64;
    let bar = progress_bar(steps, args.json);
    let tick = |n: u64| bar.inc(n);
    // Ctrl-C stops the chains and keeps the batches they completed (not inside a sweep,
    // whose points must be whole: there the sweep stops between points)
    let graceful = (!capture).then(crate::cli::interrupt::Graceful::new);
    let stop = || graceful.is_some() && crate::cli::interrupt::stopped();
    let posterior =
        sample_posterior_until(sampler, Targets { y: y.view() }, settings, &tick, &stop)
            .map_err(|e| simulate_error(&e, args))?;
    bar.finish_and_clear();
    if posterior.interrupted {
        out.set("interrupted", Some(json!(true)));
    }
    let mut described = json!({
        "name": info.name,
        "chains": posterior.settings.chains,
        "samples_per_chain": posterior.draws_per_chain,
        "burn_in": settings.burn_in,
        "thin": settings.thin,
        "failed_evaluations": posterior.failed_evaluations,
    });
    if let Value::Object(m) = &mut described {
        m.insert(
            info.evaluations.into(),
            json!(posterior.evaluations_per_step),
        );
        m.extend(info.settings.clone());
    }
    out.set("sampler", Some(described));
    let mut worst_rhat: f64 = 1.0;
    let mut least_ess = f64::INFINITY;
    for (key, stats) in &posterior.entries {
        let name = simulator.entry_name(key);
        out.matrix(&["ess", &name], stats.ess.clone());
        out.matrix(&["rhat", &name], stats.rhat.clone());
        worst_rhat = stats.rhat.iter().fold(worst_rhat, |a, &b| a.max(b));
        least_ess = stats.ess.iter().fold(least_ess, |a, &b| a.min(b));
        tables.add(key, &stats.mean, &stats.std_error, None);
    }
    let report = tables.finish(&mut out);
    out.set(
        "summaries",
        Some(Value::Array(
            posterior
                .summaries
                .iter()
                .map(|(name, s)| {
                    json!({"name": name, "mean": s.mean, "std_dev": s.std_dev,
                           "std_error": s.std_error, "ess": s.ess, "rhat": s.rhat})
                })
                .collect(),
        )),
    );
    let mut metrics = None;
    if let Some(prediction) = &posterior.prediction {
        out.matrix(&["prediction", "mean"], prediction.mean.mean.clone());
        out.vector(&["prediction", "variance"], prediction.variance.clone());
        out.matrix(
            &["prediction", "standard_errors", "mean"],
            prediction.mean.std_error.clone(),
        );
        out.vector(
            &["prediction", "standard_errors", "variance"],
            prediction.variance_std_error.clone(),
        );
        if let Some(y_test) = &y_test {
            let residual = y_test - &prediction.mean.mean;
            let mse = residual.iter().map(|r| r * r).sum::<f64>() / y_test.nrows() as f64;
            let acc = accuracy(prediction.mean.mean.view(), y_test.view())
                .map_err(|e| CliError::Usage(e.to_string()))?;
            out.set("test_mse", Some(json!(mse)));
            out.set("test_accuracy", Some(json!(acc)));
            metrics = Some((mse, acc));
        }
    }
    if capture {
        return Ok(Some(out));
    }
    write_out(args, &out)?;
    let done = || {
        stopped_early(
            posterior.interrupted,
            format!(
                "{} of {} draws per chain",
                posterior.draws_per_chain, settings.samples
            ),
        )
    };
    if args.json {
        outln!("{}", out.to_json());
        return done();
    }
    outln!(
        "theory {} — the finite network's posterior given {} training targets: {}, {} chains × \
         {} draws (burn-in {}, thin {}, seed {}), {:.2} network evaluations per step",
        tables_theory.name,
        train,
        info.name,
        posterior.settings.chains,
        posterior.draws_per_chain,
        settings.burn_in,
        settings.thin,
        settings.seed,
        posterior.evaluations_per_step
    );
    if let Some(detail) = &info.detail {
        outln!("{detail}");
    }
    print_posterior(&report);
    print_left_out(left_out);
    outln!();
    outln!(
        "{:<34} {:>12} {:>10} {:>8} {:>7}",
        "convergence",
        "mean",
        "MC s.e.",
        "ESS",
        "R-hat"
    );
    for (name, s) in &posterior.summaries {
        outln!(
            "{:<34} {:>12.6} {:>10.2e} {:>8.0} {:>7.3}",
            name,
            s.mean,
            s.std_error,
            s.ess,
            s.rhat
        );
    }
    outln!(
        "every kernel entry: smallest ESS {:.0}, largest split-R-hat {:.3}{}",
        least_ess,
        worst_rhat,
        if worst_rhat > 1.05 {
            " — above 1.05: run longer chains (--samples, --burn-in)"
        } else {
            ""
        }
    );
    if let Some((mse, acc)) = metrics {
        outln!(
            "test patterns: {} — MSE {:.6}, accuracy {:.2}%",
            simulator.patterns() - train,
            mse,
            100.0 * acc
        );
    }
    done()
}
