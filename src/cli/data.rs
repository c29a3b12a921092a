//! `saddle data mnist --out DIR`: a balanced subset of the bundled MNIST digits as the input
//! and target files every other command reads (`x`, `y`, `xt`, `yt`, `.npy` or `.csv`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::CliError;
use crate::data::mnist::Mnist;

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// numpy `.npy` (f64).
    Npy,
    /// `.csv`, one pattern per row, no header.
    Csv,
}

/// Arguments of `saddle data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// The data set (the bundled one: 10,000 MNIST digits).
    #[arg(value_parser = ["mnist"])]
    pub set: String,
    /// Two digits `a,b` (targets +1 for `a`, −1 for `b`), or `all` for ten classes
    /// (centred one-hot targets 0.9 / −0.1).
    #[arg(long, default_value = "0,3")]
    pub digits: String,
    /// Training patterns (balanced over the classes).
    #[arg(long, default_value_t = 100)]
    pub train: usize,
    /// Test patterns (balanced).
    #[arg(long, default_value_t = 100)]
    pub test: usize,
    /// Keep raw pixels in 0…1 (default: each pattern standardised to mean 0 and
    /// ‖x‖²/d = 1, as the demos use).
    #[arg(long)]
    pub raw: bool,
    /// File format.
    #[arg(long, value_enum, default_value = "npy")]
    pub format: FileFormat,
    /// The directory to write `x`, `y` (training) and `xt`, `yt` (test) into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes the subset.
pub fn run(args: &DataArgs) -> Result<(), CliError> {
    let mnist = Mnist::load_bundled()
        .map_err(|e| CliError::Usage(format!("the bundled MNIST data: {e}")))?;
    let split = if args.digits.trim() == "all" {
        mnist.ten_class(args.train, args.test)
    } else {
        let digits: Vec<u8> = args
            .digits
            .split(',')
            .map(|d| d.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                CliError::Usage(format!(
                    "--digits {}: two digits `a,b` (e.g. 0,3) or `all`",
                    args.digits
                ))
            })?;
        let [a, b] = digits[..] else {
            return Err(CliError::Usage(format!(
                "--digits {}: two digits `a,b` (e.g. 0,3) or `all`",
                args.digits
            )));
        };
        mnist.two_class(a, b, args.train, args.test)
    };
    let split = split.map_err(|e| CliError::Usage(e.to_string()))?;
    let split = if args.raw {
        split
    } else {
        split
            .standardised()
            .map_err(|e| CliError::Usage(e.to_string()))?
    };
    std::fs::create_dir_all(&args.out).map_err(|source| CliError::Io {
        action: "write",
        path: args.out.clone(),
        source,
    })?;
    let extension = match args.format {
        FileFormat::Npy => "npy",
        FileFormat::Csv => "csv",
    };
    for (stem, matrix) in [
        ("x", &split.x_train),
        ("y", &split.y_train),
        ("xt", &split.x_test),
        ("yt", &split.y_test),
    ] {
        let path = args.out.join(format!("{stem}.{extension}"));
        let written = match args.format {
            FileFormat::Npy => crate::data::npy::write_npy_matrix(&path, matrix),
            FileFormat::Csv => crate::data::csv::write_csv_matrix(&path, matrix),
        };
        written.map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
    }
    outln!(
        "MNIST digits {}: {} training and {} test patterns, d = {}{} → {}/{{x,y,xt,yt}}.{extension}",
        args.digits,
        split.x_train.nrows(),
        split.x_test.nrows(),
        split.x_train.ncols(),
        if args.raw {
            ", raw pixels"
        } else {
            ", standardised"
        },
        args.out.display()
    );
    Ok(())
}
