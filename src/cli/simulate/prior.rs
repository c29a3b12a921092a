//! The prior runs of `saddle simulate`: independent draws until the standard errors are met,
//! with the one-loop N·Var beside them.

use serde_json::json;

use crate::cli::CliError;
use crate::cli::progress::progress_bar;
use crate::cli::result::RunResult;
use crate::simulate::PriorDraws;
use crate::simulate::prior::sample_prior_until;

use super::*;

/// The source text of the action's terms that are not part of the network.
/// Independent prior draws of `simulator`, reported into `out` beside the NNGP in `tables`.
pub(super) fn report_prior(
    args: &SimulateArgs,
    capture: bool,
    simulator: &dyn PriorDraws,
    mut tables: Tables<'_>,
    mut out: RunResult,
    left_out: &[String],
) -> Result<Option<RunResult>, CliError> {
    let samples = args.samples.unwrap_or(4000);
    let bar = progress_bar(samples as u64, args.json);
    let tick = |n: u64| bar.inc(n);
    // Ctrl-C skips the draws not yet started and reports the ones made (not inside a sweep)
    let graceful = (!capture).then(crate::cli::interrupt::Graceful::new);
    let stop = || graceful.is_some() && crate::cli::interrupt::stopped();
    let prior = sample_prior_until(simulator, samples, args.seed, &tick, &stop)
        .map_err(|e| simulate_error(&e, args))?;
    bar.finish_and_clear();
    out.set("samples", Some(json!(prior.samples)));
    if prior.interrupted {
        out.set("interrupted", Some(json!(true)));
    }
    for (key, stats) in &prior.entries {
        let name = simulator.entry_name(key);
        out.matrix(&["variance", &name], stats.variance.clone());
        out.matrix(
            &["variance_standard_errors", &name],
            stats.variance_std_error.clone(),
        );
        let n = (tables.units_of)(key).unwrap_or(1) as f64;
        let n_variance = (&stats.variance * n, &stats.variance_std_error * n);
        tables.add(key, &stats.mean, &stats.std_error, Some(n_variance));
    }
    let theory = tables.theory;
    let report = tables.finish(&mut out);
    if capture {
        return Ok(Some(out));
    }
    write_out(args, &out)?;
    let done = || {
        stopped_early(
            prior.interrupted,
            format!("{} of {samples} draws", prior.samples),
        )
    };
    if args.json {
        outln!("{}", out.to_json());
        return done();
    }
    outln!(
        "theory {} — the finite network, {} independent prior draws (seed {}), {} patterns",
        theory.name,
        prior.samples,
        args.seed,
        simulator.inputs().nrows()
    );
    print_prior(&report);
    print_left_out(left_out);
    done()
}
