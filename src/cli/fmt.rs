//! `saddle fmt FILE`: canonical text, or the theory as Unicode math or LaTeX.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{CliError, display_name, read_source};
use crate::render::{Latex, Unicode, latex_document, render_theory};
use crate::syntax::print::print_file;

/// Output notations of `saddle fmt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Notation {
    /// Canonical `.action` source.
    Action,
    /// Unicode math text (checks the theory first).
    Unicode,
    /// A LaTeX `align*` environment (checks the theory first).
    Latex,
}

/// Arguments of `saddle fmt`.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// The `.action` file to format.
    pub file: PathBuf,
    /// Output notation.
    #[arg(long = "to", value_enum, default_value = "action")]
    pub notation: Notation,
    /// Rewrite the file in canonical form instead of printing it.
    #[arg(long, conflicts_with = "check")]
    pub write: bool,
    /// Exit with 1 if the file is not in canonical form (prints nothing else).
    #[arg(long)]
    pub check: bool,
}

/// Formats the file.
pub fn run(args: &FmtArgs) -> Result<(), CliError> {
    let source = read_source(&args.file)?;
    let name = display_name(&args.file);
    let text = match args.notation {
        Notation::Action => {
            let file = crate::syntax::parse(&source, &name)?;
            print_file(&file)
        }
        Notation::Unicode => {
            render_theory(&crate::compile(&source, &name)?, &Unicode).join("\n") + "\n"
        }
        Notation::Latex => latex_document(&render_theory(&crate::compile(&source, &name)?, &Latex)),
    };
    if args.check {
        if args.notation != Notation::Action {
            return Err(CliError::Usage(
                "`--check` compares against canonical `.action` text; drop `--to`".into(),
            ));
        }
        return if text == source {
            Ok(())
        } else {
            Err(CliError::Usage(format!(
                "{name} is not in canonical form (run `saddle fmt --write {name}`)"
            )))
        };
    }
    if args.write {
        if args.notation != Notation::Action {
            return Err(CliError::Usage(
                "`--write` rewrites the `.action` file itself; drop `--to`".into(),
            ));
        }
        return write_in_place(&args.file, &text).map_err(|source| CliError::Io {
            action: "write",
            path: args.file.clone(),
            source,
        });
    }
    out!("{text}");
    Ok(())
}

/// Rewrites `file` atomically (a temporary sibling renamed over it, so an interrupted write
/// keeps the old text): through a symbolic link to the file it names, with its permissions.
fn write_in_place(file: &std::path::Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(file)?;
    let permissions = std::fs::metadata(&target)?.permissions();
    let staged = crate::data::atomic::Staged::new(&target);
    std::fs::write(staged.path(), text)?;
    std::fs::set_permissions(staged.path(), permissions)?;
    staged.commit()
}
