//! `saddle derive FILE [--format text|latex|json]`: the saddle-point equations of a theory.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::CliError;
use super::options::{parse_set, theory};
use super::progress::Spinner;
use crate::derive::report::{Report, json_report, latex_report, text_report};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Unicode math text.
    Text,
    /// LaTeX `align*` blocks.
    Latex,
    /// One JSON object with expression trees.
    Json,
}

/// Arguments of `saddle derive`.
#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// The `.action` file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Override a parameter (the integer ones fix how many equations there are): `--set L=2`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
}

/// Derives and prints.
pub fn run(args: &DeriveArgs) -> Result<(), CliError> {
    let theory = theory(&args.file)?;
    crate::solve::nngp::parameter_values(&theory, &args.set)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let spinner = Spinner::new(format!("deriving the equations of {}…", theory.name), false);
    let equations =
        crate::derive::derive(&theory, &args.set).map_err(|e| CliError::Usage(e.to_string()))?;
    let report = Report::new(&theory, &equations);
    spinner.done();
    match args.format {
        Format::Text => out!("{}", text_report(&report)),
        Format::Latex => out!("{}", latex_report(&report)),
        Format::Json => outln!("{}", json_report(&report)),
    }
    Ok(())
}
