//! `saddle compare-kernels A.action B.action --x X`: the infinite-width kernels of two
//! theories step by step — checked, not assumed. The steps of each are its readout field's
//! equal-step entries (`C[0] … C[L]`, `C[0,0] … C[T,T]`), matched in order; THEORY.md §6 (i):
//! the equal-time kernels of a recurrent network are those of the deep network with the same
//! input schedule.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::CliError;
use super::options::{load, params_json, parse_set, theory};
use super::progress::Spinner;
use super::result::RunResult;
use crate::check::ir::Theory;
use crate::solve::nngp::{Kernels, NngpSettings, nngp_kernels};
use crate::solve::separation::{Step, steps_of};

/// Arguments of `saddle compare-kernels`.
#[derive(Debug, Clone, Args)]
pub struct CompareKernelsArgs {
    /// The first `.action` file.
    pub first: PathBuf,
    /// The second `.action` file.
    pub second: PathBuf,
    /// Inputs: P×d, `.npy` or `.csv`.
    #[arg(long = "x", value_name = "X")]
    pub x: PathBuf,
    /// Override a parameter of both theories (where it exists): `--set g=1.5`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// Override a parameter of the first theory only.
    #[arg(long = "set-first", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set_first: Vec<(String, f64)>,
    /// Override a parameter of the second theory only.
    #[arg(long = "set-second", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set_second: Vec<(String, f64)>,
    /// Largest |difference| / max |K| still called identical.
    #[arg(long, default_value_t = 1e-10)]
    pub tolerance: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One theory's steps: names and kernels.
struct Chain {
    theory: Theory,
    params: Vec<f64>,
    steps: Vec<(String, ndarray::Array2<f64>)>,
}

fn chain(
    path: &Path,
    theory: Theory,
    shared: &[(String, f64)],
    own: &[(String, f64)],
    x: &ndarray::Array2<f64>,
) -> Result<Chain, CliError> {
    // a shared override applies where the theory has the parameter
    let mut overrides: Vec<(String, f64)> = shared
        .iter()
        .filter(|(n, _)| theory.param(n).is_some())
        .cloned()
        .collect();
    overrides.extend(own.iter().cloned());
    let params = theory
        .bind(&overrides)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let settings = NngpSettings {
        overrides,
        ..NngpSettings::default()
    };
    let kernels = nngp_kernels(&theory, x.view(), None, &settings)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let steps = steps_of(&theory, &settings, &kernels)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
        .into_iter()
        .filter_map(|step| match step {
            Step::Entry { kernel, .. } => Some((
                Kernels::name(&theory, &kernel),
                kernels.entries[&kernel].clone(),
            )),
            Step::Inputs => None,
        })
        .collect();
    Ok(Chain {
        theory,
        params,
        steps,
    })
}

/// Computes both chains and reports them side by side.
pub fn run(args: &CompareKernelsArgs) -> Result<(), CliError> {
    if !(args.tolerance.is_finite() && args.tolerance > 0.0) {
        return Err(CliError::Usage(format!(
            "--tolerance {}: give a positive number",
            args.tolerance
        )));
    }
    let (first, second) = (theory(&args.first)?, theory(&args.second)?);
    for (name, _) in &args.set {
        if first.param(name).is_none() && second.param(name).is_none() {
            return Err(CliError::Usage(format!(
                "--set {name}: neither theory has a parameter `{name}`"
            )));
        }
    }
    let x = load("--x", &args.x)?;
    let spinner = Spinner::new(
        format!(
            "computing both theories' kernels on {} patterns…",
            x.nrows()
        ),
        args.json,
    );
    let a = chain(&args.first, first, &args.set, &args.set_first, &x)?;
    let b = chain(&args.second, second, &args.set, &args.set_second, &x)?;
    spinner.done();
    let pairs: Vec<(usize, f64, f64)> = a
        .steps
        .iter()
        .zip(&b.steps)
        .enumerate()
        .map(|(i, ((_, ka), (_, kb)))| {
            let diff = ka
                .iter()
                .zip(kb.iter())
                .fold(0.0f64, |m, (u, v)| m.max((u - v).abs()));
            let scale = ka
                .iter()
                .chain(kb.iter())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            (i, diff, scale)
        })
        .collect();
    let identical = a.steps.len() == b.steps.len()
        && pairs
            .iter()
            .all(|&(_, d, s)| d <= args.tolerance * s.max(f64::MIN_POSITIVE));
    let mut result = RunResult::new(
        "compare-kernels",
        "nngp",
        &a.theory.name,
        params_json(&a.theory, &a.params),
    );
    result.set(
        "second",
        json!({ "theory": b.theory.name, "params": params_json(&b.theory, &b.params) }),
    );
    result.set(
        "steps",
        json!(
            pairs
                .iter()
                .map(|&(i, d, s)| json!({
                    "first": a.steps[i].0,
                    "second": b.steps[i].0,
                    "max_abs_difference": d,
                    "max_abs": s,
                }))
                .collect::<Vec<_>>()
        ),
    );
    result.set(
        "unmatched",
        json!({ "first": a.steps.len().saturating_sub(b.steps.len()),
                "second": b.steps.len().saturating_sub(a.steps.len()) }),
    );
    result.set("identical", json!(identical));
    result.set("tolerance", json!(args.tolerance));
    if args.json {
        outln!("{}", result.to_json());
        return Ok(());
    }
    outln!(
        "{} against {}, step by step on {} patterns",
        a.theory.name,
        b.theory.name,
        x.nrows()
    );
    outln!(
        "{:>10} {:>10} {:>16} {:>12}",
        "first",
        "second",
        "max |Δ|",
        "max |K|"
    );
    for &(i, d, s) in &pairs {
        outln!(
            "{:>10} {:>10} {:>16.3e} {:>12.6}",
            a.steps[i].0,
            b.steps[i].0,
            d,
            s
        );
    }
    if a.steps.len() != b.steps.len() {
        outln!(
            "{} has {} steps, {} has {}: the extra ones are not compared",
            a.theory.name,
            a.steps.len(),
            b.theory.name,
            b.steps.len()
        );
    }
    outln!(
        "{}",
        if identical {
            format!(
                "identical: every step agrees to {:e} of its largest entry",
                args.tolerance
            )
        } else {
            "different".to_string()
        }
    );
    Ok(())
}
