//! Ctrl-C, the same for every command: one handler, installed when the command line starts.
//!
//! A command that can stop on its own at a consistent point (a sweep: the running points
//! finish, the rows are sorted; `simulate`: the draws made are reported, flagged
//! `"interrupted"`) holds a [`Graceful`] while it runs and asks [`stopped`] between steps; the first Ctrl-C then only raises the flag, a second one ends the process
//! at once. Every other command ends at the first Ctrl-C: the temporary files still being
//! written are removed (every result file is written under a temporary name and renamed
//! when whole, [`crate::data::atomic`]), one line says so on stderr, and the exit code is 130
//! (128 + SIGINT, as shells report it).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Whether a Ctrl-C asked a graceful command to stop.
static STOP: AtomicBool = AtomicBool::new(false);

/// How many [`Graceful`] scopes are running.
static GRACEFUL: AtomicUsize = AtomicUsize::new(0);

/// What the line on stderr says when a Ctrl-C ends a command (see [`on_interrupt`]).
static MESSAGE: Mutex<Option<String>> = Mutex::new(None);

/// Exit code of a command ended by Ctrl-C.
pub(crate) const EXIT_CODE: i32 = 130;

/// Installs the handler (once per process; a second call changes nothing).
pub(crate) fn install() {
    let _ = ctrlc::set_handler(interrupted);
}

/// Whether a Ctrl-C asked the running [`Graceful`] command to stop.
pub(crate) fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// What to say when a Ctrl-C ends this command: "interrupted: {message}" (by default
/// "nothing was written").
pub(crate) fn on_interrupt(message: impl Into<String>) {
    if let Ok(mut slot) = MESSAGE.lock() {
        *slot = Some(message.into());
    }
}

/// While one is alive, the first Ctrl-C raises the flag [`stopped`] reads instead of ending
/// the process.
#[derive(Debug)]
pub(crate) struct Graceful(());

impl Graceful {
    /// Starts a scope that stops on its own.
    pub(crate) fn new() -> Graceful {
        GRACEFUL.fetch_add(1, Ordering::SeqCst);
        Graceful(())
    }
}

impl Drop for Graceful {
    fn drop(&mut self) {
        GRACEFUL.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The handler (on its own thread, not in signal context).
fn interrupted() {
    let graceful = GRACEFUL.load(Ordering::SeqCst) > 0;
    if graceful && !STOP.swap(true, Ordering::SeqCst) {
        // the command stops at its next check and reports what it kept
        return;
    }
    crate::data::atomic::remove_pending();
    let message = if graceful {
        "interrupted again: stopped at once; every file written is whole".to_string()
    } else {
        let said = MESSAGE.lock().ok().and_then(|m| m.clone());
        format!(
            "interrupted: {}",
            said.as_deref().unwrap_or("nothing was written")
        )
    };
    // a progress bar may hold the line
    let start = if std::io::stderr().is_terminal() {
        "\n"
    } else {
        ""
    };
    super::emit_error(format_args!("{start}saddle: {message}\n"));
    std::process::exit(EXIT_CODE);
}
