//! The `saddle` command line; everything lives in [`saddle::cli`].

/// Stack of the thread the command runs on. Derivations recurse along expression trees, and
/// an unrolled `sum(l in 1..=L, …)` is a chain L deep (L up to 10000 by the language's
/// bound): the 8 MiB of the main thread overflowed at L = 10000. The pages are only mapped
/// as they are touched.
const STACK_BYTES: usize = 1 << 30;

fn main() -> std::process::ExitCode {
    let command = std::thread::Builder::new()
        .name("saddle".into())
        .stack_size(STACK_BYTES)
        .spawn(saddle::cli::run);
    match command.map(std::thread::JoinHandle::join) {
        Ok(Ok(code)) => code,
        // a panic has already printed its message
        Ok(Err(_)) => std::process::ExitCode::from(101),
        Err(error) => {
            eprintln!("saddle: cannot start the command thread: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
