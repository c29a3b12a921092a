//! The `saddle` command line: one file per subcommand, all reporting through [`CliError`].
//!
//! Exit codes: 0 on success, 1 on any user error (a diagnostic, a bad file, a bad value),
//! never a panic. Output goes through `outln!`/`out!`: when the reader has gone
//! (`saddle derive … | head`) the command stops quietly with 0, as Unix tools do.

/// `println!` that stops the process quietly when stdout is a closed pipe.
macro_rules! outln {
    () => {
        $crate::cli::emit(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that stops the process quietly when stdout is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::emit(format_args!($($arg)*))
    };
}

mod check;
mod compare;
mod compare_kernels;
mod criticality;
mod data;
mod demo;
mod derive;
mod finite_width;
mod fit;
mod fmt;
mod interrupt;
mod kernel;
mod options;
mod plot;
mod progress;
mod report;
mod result;
mod separation;
mod simulate;
mod solve;
mod solve_args;
mod sweep;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::Diagnostics;

/// saddle — the statistical field theory of neural networks.
///
/// Write the action S(C, C̃) of a network in a `.action` file; saddle checks it, derives
/// its saddle-point equations and solves them on data.
#[derive(Debug, Parser)]
#[command(name = "saddle", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check a theory; print every problem with its file, line and column.
    ///
    /// Exit code 0 when the theory is well-formed, 1 otherwise.
    Check(check::CheckArgs),
    /// Print a theory in canonical form (or as Unicode math / LaTeX).
    ///
    /// Canonical form keeps every comment, aligns parameters, and breaks long actions
    /// before `+`/`-`. Use `--write` to rewrite the file in place, `--check` in CI.
    Fmt(fmt::FmtArgs),
    /// The saddle-point equations: forward (tilted and NNGP limit), backward and output.
    Derive(derive::DeriveArgs),
    /// The NNGP kernels of a theory on inputs X (closed forms or quadrature, per pattern pair).
    Kernel(kernel::KernelArgs),
    /// GP prediction with the theory's NNGP kernel: test MSE, accuracy, log marginal likelihood.
    Solve(solve_args::SolveArgs),
    /// Sample the finite network the action describes: prior draws (`--prior`) or the
    /// posterior given training targets (elliptical slice sampling, several chains), with
    /// standard errors, ESS and R-hat, beside the NNGP kernels.
    Simulate(simulate::SimulateArgs),
    /// Theory against the network: the simulated posterior mean of every kernel entry beside
    /// the NNGP, the linearised system and the MAP (small P), in standard errors.
    Compare(compare::CompareArgs),
    /// Two theories' infinite-width kernels step by step (`C[l]` against `C[t,t]`): the
    /// equal-time identity of deep and recurrent networks, checked for any pair of actions.
    CompareKernels(compare_kernels::CompareKernelsArgs),
    /// Order and chaos of a theory's step map (any activation): the fixed point q*, χ₁, the
    /// correlation map's fixed points, the phase and the depth scale ξ, over `--scan`.
    Criticality(criticality::CriticalityArgs),
    /// Pattern separation and the optimal processing depth or time: Δ(l) = ρ within −
    /// ρ between over the steps of a theory, l* = argmax Δ, the distances; with
    /// `--simulate`, the finite network beside it; over `--scan`, l* against a parameter.
    Separation(separation::SeparationArgs),
    /// Fit a network model's parameters to recorded population statistics (activity,
    /// distances and angles between responses; `--targets T.json`), each with its error
    /// from the curvature, and predict the separability of the stimuli by a linear readout
    /// at every step.
    Fit(fit::FitArgs),
    /// Run the bundled real-data tour (no arguments needed): MNIST 0 vs 3 — NNGP against
    /// depth, feature learning against width, the simulated networks against the theory —
    /// with figures and an HTML report.
    Demo(demo::DemoArgs),
    /// Write a balanced subset of the bundled MNIST digits as input/target files (x, y, xt,
    /// yt; .npy or .csv) for the other commands.
    Data(data::DataArgs),
    /// Draw a figure (SVG or PNG) from a result: kernel heatmaps from `kernel`/`solve`/
    /// `simulate --json`, or curves from a figure spec that `demo` writes.
    Plot(plot::PlotArgs),
    /// Write one self-contained HTML page: the action and its derived equations typeset
    /// (MathML), the parameters, and a result's numbers and figures.
    Report(report::ReportArgs),
}

/// Everything that ends a command with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Problems in a `.action` file (rendered with source excerpts).
    #[error("{0}")]
    Diagnostics(Box<Diagnostics>),
    /// A file that cannot be read or written.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else the user can fix, said in one line.
    #[error("{0}")]
    Usage(String),
    /// Ctrl-C stopped a sweep or a simulation; what was written is consistent (exit code 130; any other
    /// command a Ctrl-C ends at once, with the same code: [`interrupt`]).
    #[error("{0}")]
    Interrupted(String),
}

impl From<Diagnostics> for CliError {
    fn from(d: Diagnostics) -> Self {
        CliError::Diagnostics(Box::new(d))
    }
}

/// Runs the command line and returns the process exit code.
pub fn run() -> ExitCode {
    // A usage error (unknown flag, a value out of range) is a user error: exit code 1, not
    // clap's 2; `--help` and `--version` print and succeed.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.exit_code() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    // Ctrl-C: a sweep stops at a consistent point, any other command at once (exit 130)
    interrupt::install();
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Fmt(args) => fmt::run(&args),
        Command::Derive(args) => derive::run(&args),
        Command::Kernel(args) => kernel::run(&args),
        Command::Solve(args) => solve::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Criticality(args) => criticality::run(&args),
        Command::CompareKernels(args) => compare_kernels::run(&args),
        Command::Separation(args) => separation::run(&args),
        Command::Fit(args) => fit::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Data(args) => data::run(&args),
        Command::Plot(args) => plot::run(&args),
        Command::Report(args) => report::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            if matches!(error, CliError::Interrupted(_)) {
                ExitCode::from(interrupt::EXIT_CODE as u8)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Prints an error to stderr (diagnostics with colour on a terminal).
fn report(error: &CliError) {
    match error {
        CliError::Diagnostics(d) => {
            let color = std::io::stderr().is_terminal();
            let n = d.items.len();
            emit_error(format_args!(
                "{}saddle: {n} problem{} in {}\n",
                d.render(color),
                if n == 1 { "" } else { "s" },
                d.file_name
            ));
        }
        other => emit_error(format_args!("saddle: {other}\n")),
    }
}

/// Reads a `.action` file.
fn read_source(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// The name a file is shown under in diagnostics.
fn display_name(path: &Path) -> String {
    path.display().to_string()
}

/// Writes to stdout; a closed pipe ends the process with 0 (the reader took what it wanted),
/// any other write error with 1.
pub(crate) fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        emit_error(format_args!("saddle: writing the output: {e}\n"));
        std::process::exit(1);
    }
}

/// Writes to stderr, ignoring failures: a reader that closed the pipe
/// (`saddle check bad.action 2>&1 | head -1`) has taken what it wanted, and the exit code
/// already says what happened (`eprintln!` would panic there).
pub(crate) fn emit_error(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(args).and_then(|()| stderr.flush());
}

/// `--quadrature`: a Gauss–Hermite order the rules can be built for, refused with the range
/// at the command line rather than deep inside a computation.
fn quadrature_order() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new()
        .range(1..=crate::numeric::quad::MAX_ORDER as u64)
}
