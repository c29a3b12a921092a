//! `saddle check FILE`: parse + check, diagnostics on error.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, display_name, read_source};

/// Arguments of `saddle check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The `.action` file to check.
    pub file: PathBuf,
}

/// Checks the file; prints a one-line summary of the theory on success.
pub fn run(args: &CheckArgs) -> Result<(), CliError> {
    let source = read_source(&args.file)?;
    let theory = crate::compile(&source, &display_name(&args.file))?;
    let conjugated: Vec<&str> = theory
        .conjugates
        .iter()
        .map(|c| theory.fields[c.of].name.as_str())
        .collect();
    outln!(
        "{}: theory `{}` is well-formed ({} parameter{}, {} field{}, order parameters: {})",
        display_name(&args.file),
        theory.name,
        theory.params.len(),
        if theory.params.len() == 1 { "" } else { "s" },
        theory.fields.len(),
        if theory.fields.len() == 1 { "" } else { "s" },
        conjugated.join(", ")
    );
    Ok(())
}
