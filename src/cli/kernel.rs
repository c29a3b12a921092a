//! `saddle kernel FILE --x X`: the NNGP kernels of a theory on inputs.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::{Map, Value, json};

use super::CliError;
use super::options::{load, params_json, parse_set, theory, write_npy};
use super::progress::Spinner;
use super::result::RunResult;
use super::sweep::SweepArgs;
use crate::check::ir::FieldKind;
use crate::numeric::hermite_expansion::Parity;
use crate::numeric::kernel_map::hermite::ExpansionReport;
use crate::solve::nngp::{Keep, Kernels, NngpSettings, parameter_values};
use crate::solve::predict::{readout_fields, readout_kernel};

/// Which kernels to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layers {
    /// Every kernel block and mean field of the theory (the input-defined ones too).
    All,
    /// The readout kernel only.
    Last,
}

/// Arguments of `saddle kernel`.
#[derive(Debug, Clone, Args)]
pub struct KernelArgs {
    /// The `.action` file.
    pub file: PathBuf,
    /// Inputs: P×d, `.npy` (f64/f32) or `.csv` (one pattern per row, no header).
    #[arg(long = "x", value_name = "X")]
    pub x: PathBuf,
    /// Override a parameter: `--set g=2 --set L=5`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// Which kernels to print.
    #[arg(long, value_enum, default_value = "last")]
    pub layers: Layers,
    /// Print one JSON object (params, kernels, means) instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// A directory: `result.json` and every kernel (`--layers`) as `.npy`. A path ending in
    /// `.npy`: the readout kernel alone, in that file.
    #[arg(long, value_name = "DIR|K.npy")]
    pub out: Option<PathBuf>,
    /// Draw the kernels printed (`--layers`) side by side into this `.svg` / `.png`.
    #[arg(long, value_name = "FIGURE")]
    pub plot: Option<PathBuf>,
    /// Targets (P×D, .csv or .npy) for `--plot`: patterns ordered by class.
    #[arg(long, value_name = "Y")]
    pub labels: Option<PathBuf>,
    /// Gauss–Hermite order for expectations without a closed form, per pattern pair. Tanh
    /// and smooth user functions go through the Mehler expansion instead; its per-pair
    /// fallback uses this order or 160, whichever is higher.
    #[arg(long, default_value_t = 80, value_parser = super::quadrature_order())]
    pub quadrature: usize,
    #[command(flatten)]
    pub sweep: SweepArgs,
}

/// Computes and prints the kernels (at every point of a `--sweep`).
pub fn run(args: &KernelArgs) -> Result<(), CliError> {
    super::sweep::run_or_sweep(
        "kernel",
        args,
        &args.file,
        &args.sweep,
        &args.set,
        args.out.as_deref(),
        |args, point| {
            let mut one = args.clone();
            one.set.extend(point);
            (one.out, one.plot, one.json) = (None, None, true);
            one
        },
        execute,
    )
}

/// Computes the kernels; with `capture`, returns the result instead of printing it.
fn execute(args: &KernelArgs, capture: bool) -> Result<Option<RunResult>, CliError> {
    let theory = theory(&args.file)?;
    let x = load("--x", &args.x)?;
    let mut settings = NngpSettings {
        overrides: args.set.clone(),
        quadrature_order: args.quadrature,
        ..NngpSettings::default()
    };
    if args.layers == Layers::Last {
        // only the readout is reported: drop every other kernel as soon as it is used
        let keep =
            readout_fields(&theory, &settings).map_err(|e| CliError::Usage(e.to_string()))?;
        settings.keep = Keep::Only(keep);
    }
    let params =
        parameter_values(&theory, &args.set).map_err(|e| CliError::Usage(e.to_string()))?;
    let spinner = Spinner::new(
        format!("computing the NNGP kernels of {} patterns…", x.nrows()),
        args.json || capture,
    );
    let (readout, noise, kernels) = readout_kernel(&theory, x.view(), None, &settings)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    spinner.done();
    let readout_field = readout_name(&theory, &kernels, &readout);
    let mut result = RunResult::new(
        "kernel",
        "nngp",
        &theory.name,
        params_json(&theory, &params),
    );
    result.set("readout", Some(json!(readout_field)));
    match args.layers {
        Layers::All => {
            for key in &kernels.order {
                let name = Kernels::name(&theory, key);
                let m = &kernels.entries[key];
                if theory.fields[key.0].kind == FieldKind::Mean {
                    result.vector(&["means", &name], m.column(0).to_owned());
                } else {
                    result.matrix(&["kernels", &name], m.clone());
                }
            }
        }
        Layers::Last => result.matrix(&["kernels", &readout_field], readout.clone()),
    }
    result.set("readout_noise", Some(json!(noise)));
    let expansions: Map<String, Value> = kernels
        .expansions
        .iter()
        .map(|(key, report)| (Kernels::name(&theory, key), json!(report)))
        .collect();
    if !expansions.is_empty() {
        result.set("expansions", Some(Value::Object(expansions)));
    }
    if capture {
        return Ok(Some(result));
    }
    let legacy_npy = args
        .out
        .as_ref()
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")));
    match (&args.out, legacy_npy) {
        (Some(path), Some(_)) => write_npy(path, &readout)?,
        (Some(dir), None) => {
            result.write_dir(dir)?;
        }
        (None, _) => {}
    }
    if args.json || args.plot.is_some() {
        let out = result.to_json();
        if let Some(figure) = &args.plot {
            let labels = args
                .labels
                .as_ref()
                .map(|p| load("--labels", p))
                .transpose()?;
            super::plot::draw_kernels(&out, &[], labels.as_ref(), None, figure, &args.x)?;
        }
        if args.json {
            outln!("{out}");
            return Ok(None);
        }
    }
    outln!(
        "theory `{}` on {} patterns × {} features",
        theory.name,
        x.nrows(),
        x.ncols()
    );
    let list: Vec<String> = match args.layers {
        Layers::All => kernels
            .order
            .iter()
            .map(|k| Kernels::name(&theory, k))
            .collect(),
        Layers::Last => vec![readout_name(&theory, &kernels, &readout)],
    };
    for name in list {
        let m = kernels
            .entries
            .iter()
            .find(|(k, _)| Kernels::name(&theory, k) == name)
            .map_or(&readout, |(_, m)| m);
        let diag_mean = if m.ncols() == m.nrows() {
            overflow_free_mean(m.diag().iter())
        } else {
            overflow_free_mean(m.iter())
        };
        outln!(
            "  {name:<10} mean diagonal {}   entry [0,0] {}",
            readable(diag_mean),
            readable(m[[0, 0]])
        );
    }
    for (key, report) in &kernels.expansions {
        outln!(
            "  {}",
            expansion_summary(&Kernels::name(&theory, key), report)
        );
    }
    match (&args.out, legacy_npy) {
        (Some(path), Some(_)) => outln!("readout kernel written to {}", path.display()),
        (Some(dir), None) => outln!(
            "result.json and the kernels (.npy) written to {}",
            dir.display()
        ),
        (None, _) => {}
    }
    Ok(None)
}

/// One line on how an entry without a closed form was computed and how accurate it is.
pub fn expansion_summary(name: &str, report: &ExpansionReport) -> String {
    let orders = match report.parity {
        Parity::All => "orders",
        Parity::Odd => "odd orders",
        Parity::Even => "even orders",
    };
    let fallback = report.fallback_pairs + report.fallback_diagonal;
    let quadrature = if fallback == 0 {
        "no pair needed quadrature".to_string()
    } else {
        format!(
            "{} pairs and {} diagonal entries by Gauss–Hermite quadrature of order {}",
            report.fallback_pairs, report.fallback_diagonal, report.fallback_order
        )
    };
    format!(
        "{name} (no closed form): Mehler expansion, {orders} ≤ {}, error bound {:.1e} \
         relative to √(⟨φ²⟩_α ⟨φ²⟩_β); {quadrature}",
        report.terms, report.worst_bound
    )
}

/// The readout's name: the field entry it equals, or `readout`.
fn readout_name(
    theory: &crate::check::ir::Theory,
    kernels: &Kernels,
    readout: &ndarray::Array2<f64>,
) -> String {
    kernels
        .order
        .iter()
        .rev()
        .find(|k| kernels.entries[*k] == *readout)
        .map_or_else(|| "readout".to_string(), |k| Kernels::name(theory, k))
}

/// The mean as Σ xᵢ/n: entries near the largest float (finite, as every returned kernel
/// is) would overflow a plain sum.
fn overflow_free_mean<'a>(values: impl ExactSizeIterator<Item = &'a f64>) -> f64 {
    let n = values.len().max(1) as f64;
    values.map(|v| v / n).sum()
}

/// Six decimals for ordinary magnitudes, scientific notation for huge or tiny ones (a
/// kernel entry of 1e300 printed with `{:.6}` is three hundred digits).
fn readable(x: f64) -> String {
    if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
        format!("{x:.6e}")
    } else {
        format!("{x:.6}")
    }
}
