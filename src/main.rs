//! The `saddle` command line; everything lives in [`saddle::cli`].

fn main() -> std::process::ExitCode {
    saddle::cli::run()
}
