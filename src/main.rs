//! The `saddle` command line; everything lives in [`saddle::cli`].

/// Stack of the thread the command runs on. Derivations recurse along expression trees, and
/// an unrolled `sum(l in 1..=L, …)` is a chain L deep (L up to 10000 by the language's
/// bound): the 8 MiB of the main thread overflowed at L = 10000. The pages are only mapped
/// as they are touched.
const STACK_BYTES: usize = 1 << 30;

/// The commands that sweep or sample, allocating and freeing M×P sample matrices every
/// sweep or step: their freed memory is kept for reuse
/// ([`saddle::numeric::buffer::retain_freed_memory`]), set before any thread allocates.
const SAMPLING_COMMANDS: [&str; 3] = ["solve", "simulate", "compare"];

fn main() -> std::process::ExitCode {
    if std::env::args()
        .nth(1)
        .is_some_and(|c| SAMPLING_COMMANDS.contains(&c.as_str()))
    {
        saddle::numeric::buffer::retain_freed_memory();
    }
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
