//! Progress on stderr for the commands that can run for more than a few seconds: a spinner
//! with the elapsed time where no total is known in advance. Hidden when stderr is not a
//! terminal (a pipe, a log file, the tests) and where the caller asks (`--json`, a sweep's
//! point, which has the sweep's bar).

use std::borrow::Cow;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner `{spinner} {msg} {elapsed}`, cleared from the terminal when dropped (also on an
/// error's early return), so that the output that follows starts on a clean line.
#[derive(Debug)]
pub(crate) struct Spinner(ProgressBar);

impl Spinner {
    /// Starts a spinner saying `message` (hidden when `hidden` or stderr is no terminal).
    pub(crate) fn new(message: impl Into<Cow<'static, str>>, hidden: bool) -> Spinner {
        if hidden || !std::io::stderr().is_terminal() {
            return Spinner(ProgressBar::hidden());
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        Spinner(bar)
    }

    /// Says what is being done now.
    pub(crate) fn say(&self, message: impl Into<Cow<'static, str>>) {
        self.0.set_message(message);
    }

    /// Clears the spinner (the same as dropping it).
    pub(crate) fn done(self) {}
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// How long something took, in words: `0.4 s`, `12 s`, `1 min 46 s`, `1 h 2 min`.
pub(crate) fn duration(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 10.0 {
        return format!("{seconds:.1} s");
    }
    let whole = elapsed.as_secs() + u64::from(elapsed.subsec_millis() >= 500);
    match (whole / 3600, whole / 60 % 60, whole % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// A bar of `len` steps with rate and ETA (hidden with `json` or when stderr is no terminal).
pub(crate) fn progress_bar(len: u64, json: bool) -> ProgressBar {
    styled_bar(
        len,
        "{bar:40} {pos}/{len} steps  {per_sec}  {elapsed_precise} (eta {eta})",
        json,
    )
}

/// A bar of `len` steps drawn with the indicatif `template` (hidden when `hidden` or stderr
/// is no terminal).
pub(crate) fn styled_bar(len: u64, template: &str, hidden: bool) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_words() {
        let d = |s: f64| duration(Duration::from_secs_f64(s));
        assert_eq!(d(0.43), "0.4 s");
        assert_eq!(d(12.4), "12 s");
        assert_eq!(d(59.6), "1 min 0 s");
        assert_eq!(d(106.0), "1 min 46 s");
        assert_eq!(d(3725.0), "1 h 2 min");
    }
}
