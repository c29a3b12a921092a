//! Deterministic fuzzing of the `saddle` command line: mutated `.action` sources and bad or
//! extreme numeric inputs, run through the real binary.
//!
//! # The contract
//!
//! For every command the fuzzer runs:
//!
//! * the exit code is 0 (success) or 1 (a user error), never 101 (a panic) nor a signal;
//! * the process ends within [`TIME_LIMIT`] (it is killed there and the case fails);
//! * it stays within [`MEMORY_LIMIT`] of address space (`RLIMIT_AS` on the child; an
//!   allocation beyond it aborts the child, which the signal check catches);
//! * on exit 0 no non-finite number appears in the output: with `--json` no `null` where a
//!   number belongs (serde_json writes NaN and ±∞ as `null`), in text no `NaN`, `inf`, `-inf`;
//! * on exit 0 every kernel in `--json` output is a covariance matrix: square, symmetric,
//!   variances ≥ 0, correlations within ±1 (up to a relative 1e-9);
//! * on exit 1 stderr says why: a line starting with `saddle:`, a diagnostic (`error[`, `×`)
//!   or a command-line error from clap (`error:`);
//! * `saddle fmt` is idempotent and keeps the meaning checkable: whenever it formats a file,
//!   formatting its output again gives the same text, and `saddle check` gives the same exit
//!   code on the formatted text as on the original;
//! * `saddle kernel` refuses (exit 1) a theory whose activation has no Gaussian second
//!   moment (`1/x`, `step(x)/x`, `exp(exp(x))`) or is undefined on part of the real line
//!   (`ln(x)`, `sqrt(x)`, `asin(x)`).
//!
//! # The cases
//!
//! *Source cases* start from every `examples/*.action`, tokenise it roughly and apply one to
//! three grammar-aware mutations (delete, duplicate, swap or insert tokens, truncate, replace
//! numbers by extreme ones, nest an expression hundreds of levels deep, replace the
//! activation by a singular one), then run `check`, `fmt` (twice), and on an accepted theory
//! `derive`, `fmt --to unicode|latex` and `kernel` on a tiny input.
//!
//! *Numeric cases* run `kernel` and `solve` (GP, and a few `--method linear|map` on two
//! patterns) of five examples on edge-case data (NaN, ±∞, empty, ragged, header rows, huge
//! and tiny values, zero, duplicate and near-duplicate rows, one pattern, mismatched row
//! counts, `.npy` files of the wrong dtype or rank, lying headers) and bad `--set` values.
//!
//! *Fixed tables* (no randomness) run `kernel` of the same five examples with every bad
//! `--set` value at the default depth and at depths 0, 1 and 2, and with every singular
//! or extreme activation in place of `phi`.
//!
//! Everything random comes from one seeded PRNG (splitmix64), so a run is reproducible;
//! each case draws from its own stream (seed, case number), so it does not depend on the
//! others.
//!
//! # Running it
//!
//! ```sh
//! cargo test --test fuzz -- --nocapture     # 150 + 100 random cases and the tables, ≈ 20 s
//! SADDLE_FUZZ_CASES=5000 cargo test --release --test fuzz -- --nocapture
//! SADDLE_FUZZ_SEED=0x1234 cargo test --test fuzz -- --nocapture
//! ```
//!
//! `SADDLE_FUZZ_CASES` is the number of source cases (default 150); the numeric cases are
//! two thirds of it (default 100). `SADDLE_FUZZ_SEED` takes decimal or `0x` hex. A failing
//! case keeps its inputs in a directory under `std::env::temp_dir()`; the panic message
//! lists, for each broken case, that directory, the command line and the output.
//! `SADDLE_FUZZ_KEEP=1` keeps the directories of passing cases too.

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The default seed when `SADDLE_FUZZ_SEED` is not set.
const DEFAULT_SEED: u64 = 0x5ADD_1E00_F022;
/// Source cases when `SADDLE_FUZZ_CASES` is not set.
const DEFAULT_SOURCE_CASES: usize = 150;
/// Wall-clock limit of one `saddle` process.
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// Address-space limit of one `saddle` process (it reserves a 1 GiB stack up front).
const MEMORY_LIMIT: u64 = 4 << 30;
/// Most bytes of stdout or stderr kept from one process.
const OUTPUT_CAP: u64 = 16 << 20;
/// How many failures the final panic message prints in full.
const FAILURES_SHOWN: usize = 40;

// ------------------------------------------------------------------------------------------
// Randomness
// ------------------------------------------------------------------------------------------

/// splitmix64: tiny, fast and good enough to drive a fuzzer reproducibly.
struct Rng(u64);

impl Rng {
    /// The stream of case `case` under `seed`.
    fn for_case(seed: u64, case: usize) -> Rng {
        let mut rng = Rng(seed ^ (case as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `SADDLE_FUZZ_SEED` (decimal or `0x` hex), or [`DEFAULT_SEED`].
fn seed() -> u64 {
    let Ok(text) = std::env::var("SADDLE_FUZZ_SEED") else {
        return DEFAULT_SEED;
    };
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.expect("SADDLE_FUZZ_SEED must be a decimal or 0x-hex u64")
}

/// `SADDLE_FUZZ_CASES`, or [`DEFAULT_SOURCE_CASES`]: the number of source cases.
fn source_cases() -> usize {
    std::env::var("SADDLE_FUZZ_CASES").map_or(DEFAULT_SOURCE_CASES, |text| {
        text.trim()
            .parse()
            .expect("SADDLE_FUZZ_CASES must be a number of cases")
    })
}

// ------------------------------------------------------------------------------------------
// Running the binary
// ------------------------------------------------------------------------------------------

/// One finished (or killed) `saddle` process.
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The command line, shell-quoted, to paste into a terminal.
    fn command_line(&self) -> String {
        std::iter::once(env!("CARGO_BIN_EXE_saddle").to_string())
            .chain(self.args.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Runs `saddle ARGS` in the crate root under the time and memory limits.
fn run_saddle(args: &[String]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_saddle"));
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    limit_memory(&mut command);
    let start = Instant::now();
    let mut child = command.spawn().expect("spawn the saddle binary");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut timed_out = false;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the saddle process") {
            break status;
        }
        if start.elapsed() > TIME_LIMIT {
            timed_out = true;
            // it may have exited in between: both calls are then harmless
            let _ = child.kill();
            break child.wait().expect("reap the killed saddle process");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    Run {
        args: args.to_vec(),
        code: status.code(),
        signal: status.signal(),
        timed_out,
        elapsed: start.elapsed(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads a pipe to its end on a thread (so that neither pipe can fill up and block the
/// child), keeping the first [`OUTPUT_CAP`] bytes.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        // a read error ends the output early, which the contract checks will show
        let _ = (&mut pipe).take(OUTPUT_CAP).read_to_end(&mut kept);
        let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Caps the child's address space at [`MEMORY_LIMIT`].
fn limit_memory(command: &mut Command) {
    let limit = libc::rlimit {
        rlim_cur: MEMORY_LIMIT as libc::rlim_t,
        rlim_max: MEMORY_LIMIT as libc::rlim_t,
    };
    // SAFETY: the closure runs in the forked child before exec and calls only setrlimit,
    // which is async-signal-safe; it allocates nothing and touches no locks.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

// ------------------------------------------------------------------------------------------
// The contract
// ------------------------------------------------------------------------------------------

/// What stdout of a successful run is checked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    /// One JSON object: no `null` where a number belongs.
    Json,
    /// Text with numbers in it: no `NaN`, `inf`, `-inf` tokens.
    Text,
    /// Source text or text that may quote the source's own names: not checked.
    Opaque,
}

/// Checks one run against the contract; `Err` says what broke.
fn contract(run: &Run, output: Output) -> Result<(), String> {
    if run.timed_out {
        return Err(format!("still running after {TIME_LIMIT:?}: killed"));
    }
    if let Some(signal) = run.signal {
        return Err(format!(
            "killed by signal {signal} (6 = abort, e.g. out of memory under the {} GiB limit; 11 = segfault / stack overflow)",
            MEMORY_LIMIT >> 30
        ));
    }
    match run.code {
        Some(0) => match output {
            Output::Json => json_contract(&run.stdout, run.args.iter().any(|a| a == "--y-test")),
            Output::Text => nonfinite_text(&run.stdout),
            Output::Opaque => Ok(()),
        },
        Some(1) if says_why(&run.stderr) => Ok(()),
        Some(1) => Err("exit code 1 without a message on stderr".into()),
        Some(code) => Err(format!("exit code {code} (0 or 1 expected)")),
        None => Err("no exit code and no signal".into()),
    }
}

/// Whether stderr explains a failure: `saddle: …`, a diagnostic, or clap's `error: …`.
fn says_why(stderr: &str) -> bool {
    stderr.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("saddle:") || line.starts_with("error:")
    }) || stderr.contains("error[")
        || stderr.contains('×')
}

/// Object keys that are `null` by design when the value does not apply (no test targets,
/// no width).
const OPTIONAL_KEYS: &[&str] = &["width"];
/// Keys that are `null` by design only when no `--y-test` was given.
const TEST_METRIC_KEYS: &[&str] = &["test_mse", "test_accuracy", "generalisation_error"];

/// Fails on output that is not JSON, on `null` where a number belongs (any element of an
/// array, any object value except the optional keys), and on a kernel that is not a
/// covariance matrix.
fn json_contract(stdout: &str, with_test_targets: bool) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|e| format!("exit 0 but stdout is not one JSON object: {e}"))?;
    let mut nulls = Vec::new();
    find_nulls(&value, "", &mut nulls);
    nulls.retain(|path| {
        let key = path.rsplit('/').next().unwrap_or("");
        !(OPTIONAL_KEYS.contains(&key) || (!with_test_targets && TEST_METRIC_KEYS.contains(&key)))
    });
    if let [first, ..] = nulls.as_slice() {
        return Err(format!(
            "exit 0 but {} non-finite number(s) (JSON null) in the output, first at {first}",
            nulls.len()
        ));
    }
    let kernels = value.get("kernels").and_then(|k| k.as_object());
    for (name, kernel) in kernels.into_iter().flatten() {
        let checked = match cross_time_block(name) {
            Some((f, t, u)) => {
                let diagonal = |a: &str| kernels.and_then(|k| k.get(&format!("{f}[{a},{a}]")));
                cross_block_errors(kernel, diagonal(t), diagonal(u))
            }
            None => covariance_errors(kernel),
        };
        checked.map_err(|why| format!("exit 0 but kernel {name} {why}"))?;
    }
    Ok(())
}

/// `C[1,2]` → ("C", "1", "2"): a block between two different times, which is a
/// cross-covariance, not a covariance matrix.
fn cross_time_block(name: &str) -> Option<(&str, &str, &str)> {
    let (field, rest) = name.split_once('[')?;
    let (t, u) = rest.strip_suffix(']')?.split_once(',')?;
    (t != u).then_some((field, t, u))
}

/// A cross-covariance block C[t, s] must be square and obey Cauchy–Schwarz against the
/// equal-time blocks' variances: |C[t, s]_ab| ≤ √(C[t, t]_aa C[s, s]_bb).
fn cross_block_errors(
    kernel: &serde_json::Value,
    first: Option<&serde_json::Value>,
    second: Option<&serde_json::Value>,
) -> Result<(), String> {
    let rows = |v: &serde_json::Value| -> Result<Vec<Vec<f64>>, String> {
        v.as_array()
            .ok_or("is not an array of rows")?
            .iter()
            .map(|row| {
                row.as_array()
                    .ok_or_else(|| "has a row that is not an array".to_string())?
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .ok_or_else(|| "has an entry that is not a number".into())
                    })
                    .collect()
            })
            .collect()
    };
    let block = rows(kernel)?;
    let n = block.len();
    if block.iter().any(|row| row.len() != n) {
        return Err(format!("is not square ({n} rows)"));
    }
    let (Some(first), Some(second)) = (first, second) else {
        return Ok(());
    };
    let (a, b) = (rows(first)?, rows(second)?);
    for i in 0..n {
        for j in 0..n {
            let bound = a[i][i].max(0.0).sqrt() * b[j][j].max(0.0).sqrt();
            if block[i][j].abs() > bound * (1.0 + COVARIANCE_SLACK) + UNDERFLOW_SLACK {
                return Err(format!(
                    "breaks Cauchy–Schwarz: |[{i}][{j}]| = {:e} > {bound:e}",
                    block[i][j].abs()
                ));
            }
        }
    }
    Ok(())
}

/// Relative slack of the covariance checks: far above rounding, far below a real error.
const COVARIANCE_SLACK: f64 = 1e-9;
/// Absolute slack of the same check: products of inputs near 1e-300 underflow (a variance
/// of exactly 0 beside a covariance of 4e-304), as the library's own check allows.
const UNDERFLOW_SLACK: f64 = 1e-300;

/// A kernel must be a covariance matrix: square, symmetric, a non-negative diagonal, and
/// every correlation within [-1, 1] (Cauchy–Schwarz).
fn covariance_errors(kernel: &serde_json::Value) -> Result<(), String> {
    let rows: Vec<Vec<f64>> = kernel
        .as_array()
        .ok_or("is not an array of rows")?
        .iter()
        .map(|row| {
            let row = row.as_array().ok_or("has a row that is not an array")?;
            row.iter()
                .map(|v| v.as_f64().ok_or("has an entry that is not a number"))
                .collect::<Result<Vec<f64>, &str>>()
        })
        .collect::<Result<_, _>>()?;
    let n = rows.len();
    if rows.iter().any(|row| row.len() != n) {
        return Err(format!("is not square ({n} rows)"));
    }
    for i in 0..n {
        if rows[i][i] < 0.0 {
            return Err(format!(
                "has a negative variance [{i}][{i}] = {:e}",
                rows[i][i]
            ));
        }
        for j in 0..i {
            let (a, b) = (rows[i][j], rows[j][i]);
            // the product of the variances may underflow; the product of the roots does not
            let bound = rows[i][i].sqrt() * rows[j][j].sqrt();
            if (a - b).abs() > COVARIANCE_SLACK * bound.max(a.abs()) {
                return Err(format!(
                    "is not symmetric: [{i}][{j}] = {a:e}, [{j}][{i}] = {b:e}"
                ));
            }
            if a.abs() > bound * (1.0 + COVARIANCE_SLACK) + UNDERFLOW_SLACK {
                return Err(format!(
                    "has a correlation beyond ±1: [{i}][{j}] = {a:e}, variances {:e} and {:e} (correlation {})",
                    rows[i][i],
                    rows[j][j],
                    a / bound
                ));
            }
        }
    }
    Ok(())
}

/// JSON-pointer paths of every `null` in `value`.
fn find_nulls(value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Null => out.push(path.to_string()),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_nulls(item, &format!("{path}/{i}"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                find_nulls(item, &format!("{path}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// The spellings of non-finite numbers (Rust's `{}` of f64 and common others), lower case.
#[rustfmt::skip]
const NONFINITE_WORDS: &[&str] = &[
    "nan", "-nan", "+nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity",
];

/// The first non-finite number spelled in `text`, if any.
fn first_nonfinite_word(text: &str) -> Option<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || "+-._".contains(c)))
        .find(|word| NONFINITE_WORDS.contains(&word.to_ascii_lowercase().as_str()))
}

fn nonfinite_text(stdout: &str) -> Result<(), String> {
    match first_nonfinite_word(stdout) {
        None => Ok(()),
        Some(word) => Err(format!("exit 0 but the output contains `{word}`")),
    }
}

// ------------------------------------------------------------------------------------------
// Cases and failures
// ------------------------------------------------------------------------------------------

/// One case's scratch directory; kept when the case fails, removed otherwise.
struct Case {
    name: String,
    dir: PathBuf,
    failures: Vec<String>,
    /// `command → outcome` of every run, for the summary.
    outcomes: Vec<String>,
}

/// What a finished case hands back to its suite.
struct Finished {
    failures: Vec<String>,
    outcomes: Vec<String>,
}

impl Case {
    fn new(root: &Path, name: String) -> Case {
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).expect("create the case directory");
        Case {
            name,
            dir,
            failures: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// Writes an input file of the case and returns its path as a string.
    fn write(&self, file: &str, contents: &[u8]) -> String {
        let path = self.dir.join(file);
        std::fs::write(&path, contents).expect("write a case input");
        path.to_str().expect("temp paths are UTF-8").to_string()
    }

    /// Runs `saddle ARGS`, records a contract break, and returns the run.
    fn run(&mut self, args: &[String], output: Output) -> Run {
        let run = run_saddle(args);
        self.outcomes.push(outcome(&run));
        if let Err(why) = contract(&run, output) {
            self.fail(&run, &why);
        }
        run
    }

    /// Records a failure of `run`, with the command line and the ends of its output.
    fn fail(&mut self, run: &Run, why: &str) {
        self.failures.push(format!(
            "[{}] {why}\n  command: {}\n  exit: {:?}, signal: {:?}, {:.2} s\n  stdout: {}\n  stderr: {}\n  inputs kept in {}",
            self.name,
            run.command_line(),
            run.code,
            run.signal,
            run.elapsed.as_secs_f64(),
            excerpt(&run.stdout),
            excerpt(&run.stderr),
            self.dir.display()
        ));
    }

    /// Removes the directory of a passing case (unless `SADDLE_FUZZ_KEEP` is set).
    fn finish(self) -> Finished {
        if self.failures.is_empty() && std::env::var_os("SADDLE_FUZZ_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        Finished {
            failures: self.failures,
            outcomes: self.outcomes,
        }
    }
}

/// `subcommand [method|notation]: exit N` (or the signal, or the timeout) of a run.
fn outcome(run: &Run) -> String {
    let mut command = run.args.first().cloned().unwrap_or_default();
    let option = run.args.iter().position(|a| a == "--method" || a == "--to");
    if let Some(value) = option.and_then(|i| run.args.get(i + 1)) {
        command = format!("{command} {value}");
    }
    let how = match (run.timed_out, run.signal, run.code) {
        (true, _, _) => "timeout".to_string(),
        (_, Some(signal), _) => format!("signal {signal}"),
        (_, _, Some(code)) => format!("exit {code}"),
        _ => "unknown".to_string(),
    };
    format!("{command}: {how}")
}

/// The first and last few hundred characters of an output, indented under the failure.
fn excerpt(text: &str) -> String {
    const KEEP: usize = 600;
    let chars: Vec<char> = text.chars().collect();
    let shown: String = if chars.len() <= 2 * KEEP {
        text.to_string()
    } else {
        let head: String = chars[..KEEP].iter().collect();
        let tail: String = chars[chars.len() - KEEP..].iter().collect();
        format!("{head} […] {tail}")
    };
    shown.trim_end().replace('\n', "\n    ")
}

/// A fresh root directory for this run's cases.
fn scratch_root(suite: &str, seed: u64) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "saddle-fuzz-{suite}-{seed:#x}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&root).expect("create the fuzz scratch directory");
    root
}

/// Prints how the commands ended, then panics with every failure (the first
/// [`FAILURES_SHOWN`] in full) if there were any. The scratch root goes if no case kept
/// its directory.
fn report(suite: &str, seed: Option<u64>, root: &Path, started: Instant, finished: &[Finished]) {
    let _ = std::fs::remove_dir(root);
    let cases = finished.len();
    let elapsed = started.elapsed().as_secs_f64();
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    for outcome in finished.iter().flat_map(|f| &f.outcomes) {
        *outcomes.entry(outcome).or_default() += 1;
    }
    let runs: usize = outcomes.values().sum();
    let seed = seed.map_or("no seed".to_string(), |seed| format!("seed {seed:#x}"));
    println!("fuzz {suite}: {seed}, {cases} cases, {runs} runs, {elapsed:.1} s");
    for (outcome, count) in &outcomes {
        println!("  {outcome:<24} ×{count}");
    }
    let failures: Vec<&String> = finished.iter().flat_map(|f| &f.failures).collect();
    if failures.is_empty() {
        return;
    }
    let mut message = format!(
        "fuzz {suite}: {} contract break(s) in {cases} cases ({seed}):\n\n",
        failures.len()
    );
    for failure in failures.iter().take(FAILURES_SHOWN) {
        let _ = writeln!(message, "{failure}\n");
    }
    if failures.len() > FAILURES_SHOWN {
        let _ = writeln!(message, "… and {} more", failures.len() - FAILURES_SHOWN);
    }
    panic!("{message}");
}

// ------------------------------------------------------------------------------------------
// Source tokens
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Space,
    Newline,
    Comment,
    Number,
    Ident,
    Punct,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    text: String,
}

impl Token {
    fn new(kind: Kind, text: impl Into<String>) -> Token {
        Token {
            kind,
            text: text.into(),
        }
    }

    /// Not blank: a token a mutation may pick.
    fn is_solid(&self) -> bool {
        !matches!(self.kind, Kind::Space | Kind::Newline)
    }
}

/// Splits source text into rough tokens; concatenating them gives the text back.
fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if c == '\n' {
            i += 1;
            Kind::Newline
        } else if c.is_whitespace() {
            i = scan(&chars, i, |c| c.is_whitespace() && c != '\n');
            Kind::Space
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            i = scan(&chars, i, |c| c != '\n');
            Kind::Comment
        } else if c.is_ascii_digit() {
            i = scan_number(&chars, i);
            Kind::Number
        } else if c.is_alphabetic() || c == '_' {
            i = scan(&chars, i, |c| c.is_alphanumeric() || c == '_');
            Kind::Ident
        } else {
            i += if chars[i..].starts_with(&['.', '.', '=']) {
                3
            } else {
                1
            };
            Kind::Punct
        };
        tokens.push(Token::new(kind, chars[start..i].iter().collect::<String>()));
    }
    tokens
}

/// The end of the run of characters from `i` that satisfy `keep`.
fn scan(chars: &[char], mut i: usize, keep: impl Fn(char) -> bool) -> usize {
    while i < chars.len() && keep(chars[i]) {
        i += 1;
    }
    i
}

/// The end of a number starting at `i`: digits, a fraction, an exponent.
fn scan_number(chars: &[char], i: usize) -> usize {
    let digits = |i| scan(chars, i, |c| c.is_ascii_digit());
    let mut end = digits(i);
    if chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(char::is_ascii_digit) {
        end = digits(end + 1);
    }
    if matches!(chars.get(end), Some('e' | 'E')) {
        let sign = usize::from(matches!(chars.get(end + 1), Some('+' | '-')));
        if chars.get(end + 1 + sign).is_some_and(char::is_ascii_digit) {
            end = digits(end + 1 + sign);
        }
    }
    end
}

fn render(tokens: &[Token]) -> String {
    tokens.iter().map(|t| t.text.as_str()).collect()
}

// ------------------------------------------------------------------------------------------
// Source mutations
// ------------------------------------------------------------------------------------------

/// Tokens the insertion mutation draws from.
#[rustfmt::skip]
const VOCABULARY: &[&str] = &[
    "(", ")", "[", "]", "^", "^T", "*", "/", "+", "-", ",", "|", "~", "=", "E[", "sum(", "ln",
    "exp", "inv(", "logdet(", "tr(", "0", "1e308", "-1e308", "99999999999999999999", "1e-320",
    "NaN", "inf", "param", "kernel", "conj", "for", "in", "..=", "..", "int", "κ", "é", "🦀",
    "//", "\n", "X", "C[l]", "l", "T",
];

/// Numbers a number may be replaced by.
#[rustfmt::skip]
const EXTREME_NUMBERS: &[&str] = &[
    "0", "0.0", "1e308", "1e309", "1e999", "99999999999999999999", "1e-320", "1e-400",
    "4294967296", "10000", "10001", "2.5", "-1", "-0",
];

/// Activation bodies (`@` stands for the parameter) whose square has no Gaussian
/// expectation, or that are undefined on part of the real line: a kernel of a theory that
/// uses one must be refused (exit 1), never printed.
#[rustfmt::skip]
const NON_INTEGRABLE_ACTIVATIONS: &[&str] = &[
    "1/@", "1/(@ - @)", "@/0", "@^-1", "abs(@)^-2", "sign(@) / abs(@)", "step(@) / @",
    "exp(exp(@))", "ln(@)", "sqrt(@)", "@^0.5", "asin(@)", "acos(2 * @)",
];

/// Activation bodies that are integrable but extreme: a log singularity, growth that may or
/// may not be integrable at the variance at hand, overflow, zero.
#[rustfmt::skip]
const EXTREME_ACTIVATIONS: &[&str] = &[
    "ln(abs(@))", "exp(@^2)", "exp(1000 * @)", "1e308 * @", "0 * @", "0", "@^2 - 1e308",
];

#[derive(Clone, Copy, Debug)]
enum Mutation {
    Delete,
    Duplicate,
    Swap,
    Insert,
    Truncate,
    ExtremeNumber,
    Nest,
    SingularActivation,
}

/// The mutations, weighted: half of them tend to keep a theory well-formed, so that the
/// numeric commands see it too.
#[rustfmt::skip]
const MUTATIONS: &[Mutation] = &[
    Mutation::Delete, Mutation::Delete, Mutation::Duplicate, Mutation::Swap, Mutation::Insert,
    Mutation::Insert, Mutation::Truncate, Mutation::ExtremeNumber, Mutation::ExtremeNumber,
    Mutation::ExtremeNumber, Mutation::Nest, Mutation::Nest, Mutation::SingularActivation,
    Mutation::SingularActivation,
];

/// Applies 1–3 random mutations; returns the new text and what was done.
fn mutate(source: &str, rng: &mut Rng) -> (String, Vec<String>) {
    let mut tokens = tokenize(source);
    let mut log = Vec::new();
    for _ in 0..rng.range(1, 3) {
        let mutation = *rng.pick(MUTATIONS);
        if let Some(what) = apply(mutation, &mut tokens, rng) {
            log.push(what);
        }
    }
    (render(&tokens), log)
}

/// Applies one mutation; `None` when it found nothing to act on.
fn apply(mutation: Mutation, tokens: &mut Vec<Token>, rng: &mut Rng) -> Option<String> {
    match mutation {
        Mutation::Delete => {
            let i = pick_token(tokens, rng, Token::is_solid)?;
            let gone = tokens.remove(i);
            Some(format!("delete {:?}", gone.text))
        }
        Mutation::Duplicate => {
            let i = pick_token(tokens, rng, Token::is_solid)?;
            let copy = tokens[i].clone();
            if rng.chance(0.5) {
                tokens.insert(i + 1, Token::new(Kind::Space, " "));
            }
            let what = format!("duplicate {:?}", copy.text);
            tokens.insert(i + 1, copy);
            Some(what)
        }
        Mutation::Swap => {
            let i = pick_token(tokens, rng, Token::is_solid)?;
            let j = (i + 1..tokens.len()).find(|&j| tokens[j].is_solid())?;
            tokens.swap(i, j);
            Some(format!(
                "swap {:?} and {:?}",
                tokens[j].text, tokens[i].text
            ))
        }
        Mutation::Insert => {
            let at = rng.below(tokens.len() + 1);
            let text = *rng.pick(VOCABULARY);
            let spaced = rng.chance(0.5);
            let mut insertion = tokenize(text);
            if spaced {
                insertion.insert(0, Token::new(Kind::Space, " "));
                insertion.push(Token::new(Kind::Space, " "));
            }
            tokens.splice(at..at, insertion);
            Some(format!("insert {text:?} at token {at}"))
        }
        Mutation::Truncate => {
            let text = render(tokens);
            let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            let cut = *rng.pick(&boundaries);
            *tokens = tokenize(&text[..cut]);
            Some(format!("truncate at byte {cut}"))
        }
        Mutation::ExtremeNumber => {
            let i = pick_token(tokens, rng, |t| t.kind == Kind::Number)?;
            let old = std::mem::replace(&mut tokens[i].text, rng.pick(EXTREME_NUMBERS).to_string());
            Some(format!("replace number {old} by {}", tokens[i].text))
        }
        Mutation::Nest => {
            let i = pick_token(tokens, rng, |t| t.kind == Kind::Number)?;
            let function = activation_name(tokens).unwrap_or_else(|| "exp".to_string());
            let (nested, what) = nest(&tokens[i].text, &function, rng);
            tokens[i] = Token::new(Kind::Punct, nested);
            Some(what)
        }
        Mutation::SingularActivation => {
            let table = if rng.chance(0.6) {
                NON_INTEGRABLE_ACTIVATIONS
            } else {
                EXTREME_ACTIVATIONS
            };
            let template = *rng.pick(table);
            let body = replace_activation(tokens, template)?;
            Some(format!("activation body := {body}"))
        }
    }
}

/// A random index among the tokens that satisfy `filter`.
fn pick_token(tokens: &[Token], rng: &mut Rng, filter: impl Fn(&Token) -> bool) -> Option<usize> {
    let candidates: Vec<usize> = (0..tokens.len()).filter(|&i| filter(&tokens[i])).collect();
    (!candidates.is_empty()).then(|| *rng.pick(&candidates))
}

/// Wraps a number in 50–300 parentheses, a power tower 20–200 deep, or 20–200 calls of
/// the theory's activation.
fn nest(number: &str, function: &str, rng: &mut Rng) -> (String, String) {
    match rng.below(3) {
        0 => {
            let depth = rng.range(50, 300);
            let text = format!("{}{number}{}", "(".repeat(depth), ")".repeat(depth));
            (text, format!("wrap {number} in {depth} parentheses"))
        }
        1 => {
            let depth = rng.range(20, 200);
            let text = format!("({})", vec![number; depth].join("^"));
            (
                text,
                format!("power tower {number}^…^{number}, {depth} deep"),
            )
        }
        _ => {
            let depth = rng.range(20, 200);
            let text = format!(
                "{}{number}{}",
                format!("{function}(").repeat(depth),
                ")".repeat(depth)
            );
            (text, format!("{function}(…({number})…), {depth} deep"))
        }
    }
}

/// The first function definition `NAME(x) = BODY` at the start of a line: the token
/// indices of its name and its parameter, and the token range of its body (up to the end
/// of the line, a trailing comment excluded).
struct Definition {
    name: usize,
    parameter: usize,
    body: std::ops::Range<usize>,
}

fn activation(tokens: &[Token]) -> Option<Definition> {
    let solid: Vec<usize> = (0..tokens.len())
        .filter(|&i| tokens[i].is_solid())
        .collect();
    let at_line_start = |i: usize| {
        tokens[..i]
            .iter()
            .rev()
            .find(|t| t.kind != Kind::Space)
            .is_none_or(|t| matches!(t.kind, Kind::Newline | Kind::Comment))
    };
    let def = solid.windows(5).find(|w| {
        tokens[w[0]].kind == Kind::Ident
            && at_line_start(w[0])
            && tokens[w[1]].text == "("
            && tokens[w[2]].kind == Kind::Ident
            && tokens[w[3]].text == ")"
            && tokens[w[4]].text == "="
    })?;
    let start = def[4] + 1;
    let end = (start..tokens.len())
        .find(|&i| matches!(tokens[i].kind, Kind::Newline | Kind::Comment))
        .unwrap_or(tokens.len());
    Some(Definition {
        name: def[0],
        parameter: def[2],
        body: start..end,
    })
}

/// Replaces the body of the first function definition by `template` (`@` standing for
/// its parameter); returns the new body.
fn replace_activation(tokens: &mut Vec<Token>, template: &str) -> Option<String> {
    let def = activation(tokens)?;
    let body = template.replace('@', &tokens[def.parameter].text);
    tokens.splice(def.body, [Token::new(Kind::Punct, format!(" {body} "))]);
    Some(body)
}

/// The name of the first function definition (`phi` in every example).
fn activation_name(tokens: &[Token]) -> Option<String> {
    activation(tokens).map(|def| tokens[def.name].text.clone())
}

/// Names of the `param NAME: int` declarations.
fn int_params(source: &str) -> Vec<String> {
    let tokens: Vec<Token> = tokenize(source)
        .into_iter()
        .filter(Token::is_solid)
        .collect();
    tokens
        .windows(4)
        .filter(|w| {
            w[0].text == "param"
                && w[1].kind == Kind::Ident
                && w[2].text == ":"
                && w[3].text == "int"
        })
        .map(|w| w[1].text.clone())
        .collect()
}

/// Whether the source spells a non-finite word itself (then `derive` may echo it).
fn mentions_nonfinite(source: &str) -> bool {
    first_nonfinite_word(source).is_some()
}

// ------------------------------------------------------------------------------------------
// Source cases
// ------------------------------------------------------------------------------------------

/// The tiny input every accepted theory gets for `saddle kernel`.
const TINY_X: &str = "0.5,-1.0,2.0\n1.5,0.25,-0.75\n-1.0,1.0,0.0\n";

fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read examples/")
        .map(|entry| entry.expect("examples/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "action"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples/*.action to mutate");
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read an example");
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, text)
        })
        .collect()
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// One mutated source through check, fmt (twice), derive, the renderers and kernel.
fn source_case(root: &Path, seed: u64, index: usize, example: &(String, String)) -> Finished {
    let mut rng = Rng::for_case(seed, index);
    let (source, log) = mutate(&example.1, &mut rng);
    let mut case = Case::new(root, format!("source-{index:04}"));
    let file = case.write("mutated.action", source.as_bytes());
    case.write(
        "mutations.txt",
        format!("from examples/{}: {}\n", example.0, log.join("; ")).as_bytes(),
    );

    let check = case.run(&args(&["check", &file]), Output::Opaque);
    check_fmt(&mut case, &file, check.code);
    if check.code == Some(0) {
        run_accepted(&mut case, &file, &source, &mut rng);
    }
    case.finish()
}

/// `fmt` on the source; when it succeeds, fmt of the output must give the same text, and
/// `check` of the output the same exit code as `check` of the source.
fn check_fmt(case: &mut Case, file: &str, check_code: Option<i32>) {
    let first = case.run(&args(&["fmt", file]), Output::Opaque);
    if first.code != Some(0) {
        return;
    }
    let formatted = case.write("formatted.action", first.stdout.as_bytes());
    let second = case.run(&args(&["fmt", &formatted]), Output::Opaque);
    if second.code != Some(0) {
        case.fail(&second, "fmt rejects its own output");
    } else if second.stdout != first.stdout {
        let why = format!(
            "fmt is not idempotent: {}",
            first_difference(&first.stdout, &second.stdout)
        );
        case.fail(&second, &why);
    }
    let recheck = case.run(&args(&["check", &formatted]), Output::Opaque);
    if recheck.code != check_code {
        let why = format!(
            "check gives {:?} on the formatted text but {check_code:?} on the original",
            recheck.code
        );
        case.fail(&recheck, &why);
    }
}

/// The first line where two texts differ, both versions.
fn first_difference(a: &str, b: &str) -> String {
    let (mut a_lines, mut b_lines) = (a.lines(), b.lines());
    for line in 1.. {
        match (a_lines.next(), b_lines.next()) {
            (None, None) => break,
            (x, y) if x != y => {
                return format!("line {line}: first pass {x:?}, second pass {y:?}");
            }
            _ => {}
        }
    }
    "the texts differ in line endings".into()
}

/// The commands that need a well-formed theory: derive, the renderers, kernel.
fn run_accepted(case: &mut Case, file: &str, source: &str, rng: &mut Rng) {
    let ints = int_params(source);
    let derive_output = if mentions_nonfinite(source) {
        Output::Opaque
    } else {
        Output::Text
    };
    let mut derive = args(&["derive", file]);
    for name in &ints {
        derive.extend(["--set".to_string(), format!("{name}=1")]);
    }
    case.run(&derive, derive_output);
    let notation = *rng.pick(&["unicode", "latex"]);
    case.run(&args(&["fmt", file, "--to", notation]), Output::Opaque);

    let x = case.write("x.csv", TINY_X.as_bytes());
    let mut kernel = args(&["kernel", file, "--x", &x, "--json"]);
    for name in &ints {
        kernel.extend(["--set".to_string(), format!("{name}={}", rng.range(1, 2))]);
    }
    case.run(&kernel, Output::Json);
}

#[test]
fn mutated_sources_keep_the_contract() {
    let seed = seed();
    let cases = source_cases();
    let examples = examples();
    let root = scratch_root("source", seed);
    println!(
        "fuzz source: seed {seed:#x}, {cases} cases over {} examples, scratch {}",
        examples.len(),
        root.display()
    );
    let started = Instant::now();
    let finished: Vec<Finished> = (0..cases)
        .map(|i| source_case(&root, seed, i, &examples[i % examples.len()]))
        .collect();
    report("source", Some(seed), &root, started, &finished);
}

// ------------------------------------------------------------------------------------------
// Numeric data
// ------------------------------------------------------------------------------------------

/// A data file to write: its extension and bytes.
struct DataFile {
    extension: &'static str,
    bytes: Vec<u8>,
    what: String,
}

/// A `.npy` file (format 1.0) with any dtype, shape and body; the header is padded so that
/// the data starts at a multiple of 64 bytes, as numpy writes it.
fn npy(descr: &str, fortran_order: bool, shape: &[usize], body: &[u8]) -> Vec<u8> {
    let shape = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let order = if fortran_order { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend(
        u16::try_from(header.len())
            .expect("short header")
            .to_le_bytes(),
    );
    bytes.extend(header.as_bytes());
    bytes.extend(body);
    bytes
}

fn f64_body(rows: &[Vec<f64>]) -> Vec<u8> {
    rows.iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// The matrix as a well-formed `.npy` (`<f8`, or `<f4` now and then) or `.csv` file.
fn encode(rows: &[Vec<f64>], as_npy: bool, rng: &mut Rng) -> DataFile {
    let shape = [rows.len(), rows.first().map_or(0, Vec::len)];
    if as_npy {
        let (descr, body) = if rng.chance(0.15) {
            let body = rows
                .iter()
                .flatten()
                .flat_map(|&v| (v as f32).to_le_bytes());
            ("<f4", body.collect())
        } else {
            ("<f8", f64_body(rows))
        };
        DataFile {
            extension: "npy",
            bytes: npy(descr, false, &shape, &body),
            what: format!("npy {descr} {}×{}", shape[0], shape[1]),
        }
    } else {
        DataFile {
            extension: "csv",
            bytes: csv(rows).into_bytes(),
            what: format!("csv {}×{}", shape[0], shape[1]),
        }
    }
}

fn csv(rows: &[Vec<f64>]) -> String {
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().map(f64::to_string).collect();
            cells.join(",") + "\n"
        })
        .collect()
}

/// A clean P×d matrix with entries in [-2, 2].
fn matrix(rows: usize, columns: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    (0..rows)
        .map(|_| {
            (0..columns)
                .map(|_| ((rng.unit() * 4.0 - 2.0) * 1000.0).round() / 1000.0)
                .collect()
        })
        .collect()
}

/// ±1 targets, one column (or two one-hot columns).
fn targets(rows: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    let one_hot = rng.chance(0.2);
    (0..rows)
        .map(|_| {
            let class = rng.below(2);
            if one_hot {
                vec![(class == 0) as u8 as f64, (class == 1) as u8 as f64]
            } else {
                vec![if class == 0 { -1.0 } else { 1.0 }]
            }
        })
        .collect()
}

/// Ways a data file can be bad or extreme.
#[derive(Clone, Copy, Debug)]
enum Defect {
    NonFinite,
    Empty,
    Ragged,
    Header,
    Huge,
    Tiny,
    ZeroRow,
    AllZero,
    DuplicateRows,
    NearDuplicateRows,
    OnePattern,
    FewerRows,
    WrongDtype,
    ThreeD,
    OneD,
    LyingShape,
    OddCsv,
}

#[rustfmt::skip]
const DEFECTS: &[Defect] = &[
    Defect::NonFinite, Defect::Empty, Defect::Ragged, Defect::Header, Defect::Huge,
    Defect::Huge, Defect::Tiny, Defect::Tiny, Defect::ZeroRow, Defect::AllZero,
    Defect::DuplicateRows, Defect::NearDuplicateRows, Defect::NearDuplicateRows,
    Defect::NearDuplicateRows, Defect::OnePattern, Defect::FewerRows, Defect::WrongDtype,
    Defect::ThreeD, Defect::OneD, Defect::LyingShape, Defect::OddCsv,
];

/// The matrix with one defect applied, encoded (the defect may force the encoding).
fn defective(mut rows: Vec<Vec<f64>>, defect: Defect, rng: &mut Rng) -> DataFile {
    let as_npy = rng.chance(0.4);
    let columns = rows.first().map_or(1, Vec::len);
    let r = rng.below(rows.len());
    let c = rng.below(columns);
    match defect {
        Defect::NonFinite => {
            let (value, spelling) = *rng.pick(&[
                (f64::NAN, "NaN"),
                (f64::NAN, "nan"),
                (f64::INFINITY, "inf"),
                (f64::NEG_INFINITY, "-inf"),
                (f64::INFINITY, "1e999"),
            ]);
            rows[r][c] = value;
            if as_npy {
                tagged(
                    encode(&rows, true, rng),
                    format!("{spelling} at [{r}, {c}]"),
                )
            } else {
                let mut text = csv(&rows);
                text = text.replacen(&value.to_string(), spelling, 1);
                tagged(csv_file(text), format!("{spelling} at [{r}, {c}]"))
            }
        }
        Defect::Empty => {
            let bytes = if as_npy {
                npy("<f8", false, &[0, columns], &[])
            } else {
                rng.pick(&["", "\n", " \n\n"]).as_bytes().to_vec()
            };
            DataFile {
                extension: if as_npy { "npy" } else { "csv" },
                bytes,
                what: "empty".into(),
            }
        }
        Defect::Ragged => {
            let mut text = csv(&rows);
            text.push_str(if rng.chance(0.5) {
                "1\n"
            } else {
                "1,2,3,4,5,6\n"
            });
            tagged(csv_file(text), "ragged last row".into())
        }
        Defect::Header => {
            let header: Vec<String> = (0..columns).map(|j| format!("x{j}")).collect();
            tagged(
                csv_file(header.join(",") + "\n" + &csv(&rows)),
                "header row".into(),
            )
        }
        Defect::Huge | Defect::Tiny => {
            let scale = if matches!(defect, Defect::Huge) {
                1e200
            } else {
                1e-300
            };
            let everywhere = rng.chance(0.5);
            for (i, row) in rows.iter_mut().enumerate() {
                for v in row.iter_mut().filter(|_| everywhere || i == r) {
                    *v *= scale;
                }
            }
            let at = if everywhere {
                "all".into()
            } else {
                format!("row {r}")
            };
            tagged(encode(&rows, as_npy, rng), format!("×{scale:e} on {at}"))
        }
        Defect::ZeroRow => {
            rows[r].iter_mut().for_each(|v| *v = 0.0);
            tagged(encode(&rows, as_npy, rng), format!("row {r} zero"))
        }
        Defect::AllZero => {
            rows.iter_mut().flatten().for_each(|v| *v = 0.0);
            tagged(encode(&rows, as_npy, rng), "all zero".into())
        }
        Defect::DuplicateRows | Defect::NearDuplicateRows => {
            let near = matches!(defect, Defect::NearDuplicateRows);
            let mut copy = rows[r].clone();
            if near {
                copy[c] += 1e-7;
            }
            rows.push(copy);
            let what = if near {
                "near-duplicate (1e-7)"
            } else {
                "duplicate"
            };
            tagged(encode(&rows, as_npy, rng), format!("{what} of row {r}"))
        }
        Defect::OnePattern => {
            rows.truncate(1);
            tagged(encode(&rows, as_npy, rng), "one pattern".into())
        }
        Defect::FewerRows => {
            rows.pop();
            tagged(encode(&rows, as_npy, rng), "one row fewer".into())
        }
        Defect::WrongDtype => wrong_dtype(&rows, rng),
        Defect::ThreeD => {
            let body = f64_body(&rows);
            let n = body.len() / 8;
            DataFile {
                extension: "npy",
                bytes: npy("<f8", false, &[1, n, 1], &body),
                what: format!("npy <f8 shape (1, {n}, 1)"),
            }
        }
        Defect::OneD => {
            let body = f64_body(&rows);
            DataFile {
                extension: "npy",
                bytes: npy("<f8", rng.chance(0.5), &[body.len() / 8], &body),
                what: "npy 1-D".into(),
            }
        }
        Defect::LyingShape => lying_shape(&rows, rng),
        Defect::OddCsv => odd_csv(&rows, rng),
    }
}

/// The file with what was done to it appended to its description.
fn tagged(file: DataFile, what: String) -> DataFile {
    DataFile {
        what: format!("{} ({what})", file.what),
        ..file
    }
}

fn csv_file(text: String) -> DataFile {
    DataFile {
        extension: "csv",
        bytes: text.into_bytes(),
        what: "csv".into(),
    }
}

/// A `.npy` of the right shape in a dtype that is not f64/f32.
fn wrong_dtype(rows: &[Vec<f64>], rng: &mut Rng) -> DataFile {
    let shape = [rows.len(), rows[0].len()];
    let values = rows.iter().flatten();
    let (descr, body): (&str, Vec<u8>) = match rng.below(6) {
        0 => (
            "<i4",
            values.flat_map(|&v| (v as i32).to_le_bytes()).collect(),
        ),
        1 => ("|b1", values.map(|&v| u8::from(v > 0.0)).collect()),
        2 => (
            "<c16",
            values
                .flat_map(|&v| [v.to_le_bytes(), 0f64.to_le_bytes()].concat())
                .collect(),
        ),
        3 => (
            "<i8",
            values.flat_map(|&v| (v as i64).to_le_bytes()).collect(),
        ),
        4 => (">f8", values.flat_map(|&v| v.to_be_bytes()).collect()),
        _ => (
            "<U3",
            values.flat_map(|_| [b'1', 0, 0, 0].repeat(3)).collect(),
        ),
    };
    DataFile {
        extension: "npy",
        bytes: npy(descr, false, &shape, &body),
        what: format!("npy {descr} {}×{}", shape[0], shape[1]),
    }
}

/// A `.npy` whose header does not match its body: a truncated body, an absurd shape, a
/// Fortran-order flag, a bad magic or a cut header.
fn lying_shape(rows: &[Vec<f64>], rng: &mut Rng) -> DataFile {
    let body = f64_body(rows);
    let shape = [rows.len(), rows[0].len()];
    let (bytes, what) = match rng.below(5) {
        0 => (
            npy("<f8", false, &shape, &body[..body.len() - 8]),
            "body one value short",
        ),
        1 => (
            npy("<f8", false, &[1_000_000_000, 1_000_000_000], &body),
            "header claims 1e9×1e9",
        ),
        2 => (
            npy("<f8", false, &[usize::MAX / 8, 2], &body),
            "header claims usize::MAX/8 × 2",
        ),
        3 => (npy("<f8", true, &shape, &body), "fortran order"),
        _ => {
            let mut bytes = npy("<f8", false, &shape, &body);
            bytes.truncate(rng.range(1, 60));
            (bytes, "file cut inside the header")
        }
    };
    DataFile {
        extension: "npy",
        bytes,
        what: format!("npy: {what}"),
    }
}

/// A CSV with odd but arguably harmless formatting, or plain garbage.
fn odd_csv(rows: &[Vec<f64>], rng: &mut Rng) -> DataFile {
    let text = csv(rows);
    let (text, what) = match rng.below(7) {
        0 => (text.replace('\n', "\r\n"), "CRLF"),
        1 => (text.replace(',', " , "), "blanks around commas"),
        2 => (text.replace('\n', ",\n"), "trailing commas"),
        3 => (text.replace(',', ";"), "semicolons"),
        4 => (format!("\n\n{text}\n\n"), "blank lines"),
        5 => (text.replacen('1', "κ", 1), "a non-ASCII cell"),
        _ => (
            rows.iter()
                .map(|row| {
                    row.iter()
                        .map(|v| format!("{v:e}"))
                        .collect::<Vec<_>>()
                        .join(",")
                        + "\n"
                })
                .collect(),
            "exponent notation",
        ),
    };
    DataFile {
        what: format!("csv: {what}"),
        ..csv_file(text)
    }
}

// ------------------------------------------------------------------------------------------
// Numeric cases
// ------------------------------------------------------------------------------------------

/// The examples the numeric cases run, and their integer parameter.
const NUMERIC_EXAMPLES: &[(&str, &str)] = &[
    ("examples/deep_erf.action", "L"),
    ("examples/deep_tanh.action", "L"),
    ("examples/deep_relu.action", "L"),
    ("examples/binary_sign.action", "L"),
    ("examples/recurrent_erf.action", "T"),
];

/// Bad or extreme `--set` values; `{int}` stands for the theory's integer parameter.
#[rustfmt::skip]
const BAD_SETS: &[&str] = &[
    "{int}=-1", "{int}=1e9", "{int}=2.5", "{int}=0", "{int}=10001", "g=nan", "g=inf", "g=-inf",
    "g=0", "g=-1", "g=1e300", "g=1e-300", "kappa=-1", "kappa=0", "kappa=1e-300", "kappa=1e300",
    "N=0", "N=-5", "N=1e-300", "gb=-1", "gb=1e308", "g0=-1", "g0=1e300", "gb0=-1",
    "no_such_param=1", "=1", "g", "x=", "g=1=2", "κ=1",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Kernel,
    Nngp,
    Linear,
    Map,
    /// `solve --method map --expectations scalable` (forward–backward sweeps, sampled)
    MapScalable,
    /// `simulate --prior`
    Prior,
    /// `simulate` (posterior, elliptical slice sampling)
    Simulate,
}

/// Which input file carries the defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    X,
    Y,
    XTest,
    YTest,
}

fn numeric_case(root: &Path, seed: u64, index: usize) -> Finished {
    let mut rng = Rng::for_case(seed ^ 0x4E55_4D45_5249_4300, index);
    let mut case = Case::new(root, format!("numeric-{index:04}"));
    let (file, int_param) = *rng.pick(NUMERIC_EXAMPLES);
    let method = *rng.pick(&[
        Method::Kernel,
        Method::Kernel,
        Method::Kernel,
        Method::Kernel,
        Method::Kernel,
        Method::Nngp,
        Method::Nngp,
        Method::Nngp,
        Method::Nngp,
        Method::Linear,
        Method::MapScalable,
        Method::Prior,
        Method::Simulate,
    ]);
    // the finite-width solvers are slow: two patterns, and map only now and then
    let method = if method == Method::Linear && rng.chance(0.3) {
        Method::Map
    } else {
        method
    };
    let finite_width = matches!(method, Method::Linear | Method::Map);
    let patterns = if finite_width { 2 } else { rng.range(2, 6) };
    let columns = rng.range(1, 4);

    let defect = (!rng.chance(0.1)).then(|| *rng.pick(DEFECTS));
    let target = match method {
        Method::Kernel | Method::Prior => Target::X,
        Method::Simulate => *rng.pick(&[Target::X, Target::Y, Target::XTest]),
        _ => *rng.pick(&[
            Target::X,
            Target::X,
            Target::X,
            Target::Y,
            Target::XTest,
            Target::YTest,
        ]),
    };
    let mut files = Vec::new();
    let mut input = |case: &Case, name: &str, rows: Vec<Vec<f64>>, which: Target, rng: &mut Rng| {
        let data = match defect {
            Some(defect) if which == target => defective(rows, defect, rng),
            _ => encode(&rows, rng.chance(0.4), rng),
        };
        files.push(format!("{name}: {}", data.what));
        case.write(&format!("{name}.{}", data.extension), &data.bytes)
    };

    let x = input(
        &case,
        "x",
        matrix(patterns, columns, &mut rng),
        Target::X,
        &mut rng,
    );
    let mut command = match method {
        Method::Kernel => args(&["kernel", file, "--x", &x]),
        Method::Prior => args(&["simulate", file, "--x", &x, "--prior"]),
        Method::Simulate => {
            let y = input(&case, "y", targets(patterns, &mut rng), Target::Y, &mut rng);
            args(&["simulate", file, "--x", &x, "--y", &y])
        }
        _ => {
            let y = input(&case, "y", targets(patterns, &mut rng), Target::Y, &mut rng);
            args(&["solve", file, "--x", &x, "--y", &y])
        }
    };
    match method {
        Method::Nngp => {
            let tests = rng.range(1, 3);
            let xt = input(
                &case,
                "xt",
                matrix(tests, columns, &mut rng),
                Target::XTest,
                &mut rng,
            );
            command.extend(args(&["--x-test", &xt]));
            if target == Target::YTest || rng.chance(0.7) {
                let yt = input(
                    &case,
                    "yt",
                    targets(tests, &mut rng),
                    Target::YTest,
                    &mut rng,
                );
                command.extend(args(&["--y-test", &yt]));
            }
        }
        Method::Linear | Method::Map => {
            let name = if method == Method::Map {
                "map"
            } else {
                "linear"
            };
            let width = rng.pick(&["10", "100", "1000"]);
            command.extend(args(&["--method", name, "--set", &format!("N={width}")]));
            if method == Method::Map {
                command.extend(args(&["--set", &format!("{int_param}=1")]));
            }
        }
        Method::MapScalable => {
            let width = *rng.pick(&["1", "10", "100", "2.5", "0", "-3"]);
            let samples = *rng.pick(&["500", "1", "0"]);
            // the MAP's sweeps, or the linearised system through the same sampled map
            let solver = *rng.pick(&["map", "linear"]);
            command.extend(args(&[
                "--method",
                solver,
                "--expectations",
                "scalable",
                "--samples",
                samples,
                "--set",
                &format!("N={width}"),
                "--set",
                &format!("{int_param}=1"),
            ]));
            if rng.chance(0.5) {
                let tests = rng.range(1, 3);
                let xt = input(
                    &case,
                    "xt",
                    matrix(tests, columns, &mut rng),
                    Target::XTest,
                    &mut rng,
                );
                command.extend(args(&["--x-test", &xt]));
                if rng.chance(0.5) {
                    let yt = input(
                        &case,
                        "yt",
                        targets(tests, &mut rng),
                        Target::YTest,
                        &mut rng,
                    );
                    command.extend(args(&["--y-test", &yt]));
                }
            }
        }
        Method::Prior | Method::Simulate => {
            let width = rng.pick(&["1", "3", "20", "2.5", "0"]);
            let samples = if method == Method::Prior { "50" } else { "20" };
            command.extend(args(&[
                "--set",
                &format!("N={width}"),
                "--samples",
                samples,
                "--chains",
                "2",
                "--burn-in",
                "5",
            ]));
            if method == Method::Simulate && rng.chance(0.5) {
                let tests = rng.range(1, 3);
                let xt = input(
                    &case,
                    "xt",
                    matrix(tests, columns, &mut rng),
                    Target::XTest,
                    &mut rng,
                );
                command.extend(args(&["--x-test", &xt]));
            }
        }
        Method::Kernel => {}
    }
    if rng.chance(0.35) {
        let set = rng.pick(BAD_SETS).replace("{int}", int_param);
        command.extend(["--set".to_string(), set]);
    } else if !matches!(method, Method::Map | Method::MapScalable) && rng.chance(0.3) {
        command.extend(args(&[
            "--set",
            &format!("{int_param}={}", rng.range(0, 6)),
        ]));
    }
    // mostly JSON; now and then the text summary
    let output = if rng.chance(0.8) {
        command.push("--json".to_string());
        Output::Json
    } else {
        Output::Text
    };
    case.write("inputs.txt", (files.join("\n") + "\n").as_bytes());
    case.run(&command, output);
    case.finish()
}

#[test]
fn numeric_edge_cases_keep_the_contract() {
    let seed = seed();
    let cases = source_cases() * 2 / 3;
    let root = scratch_root("numeric", seed);
    println!(
        "fuzz numeric: seed {seed:#x}, {cases} cases, scratch {}",
        root.display()
    );
    let started = Instant::now();
    let finished: Vec<Finished> = (0..cases).map(|i| numeric_case(&root, seed, i)).collect();
    report("numeric", Some(seed), &root, started, &finished);
}

// ------------------------------------------------------------------------------------------
// Bad parameter values
// ------------------------------------------------------------------------------------------

/// Every numeric example with every bad `--set` value on clean data (no randomness), at
/// the default depth and at depths 0, 1 and 2: there the readout is the input kernel or
/// the first layers, so no later layer's expectation stands between a bad value and the
/// output.
#[test]
fn bad_parameter_values_keep_the_contract() {
    let root = scratch_root("set", 0);
    let started = Instant::now();
    let mut finished = Vec::new();
    for (file, int_param) in NUMERIC_EXAMPLES {
        let stem = Path::new(file)
            .file_stem()
            .expect("a file name")
            .to_string_lossy();
        for (k, set) in BAD_SETS.iter().enumerate() {
            let mut case = Case::new(&root, format!("{stem}-{k:02}"));
            let x = case.write("x.csv", TINY_X.as_bytes());
            let set = set.replace("{int}", int_param);
            for depth in [None, Some(0), Some(1), Some(2)] {
                let mut command = args(&["kernel", file, "--x", &x, "--json"]);
                if let Some(depth) = depth {
                    command.extend(["--set".to_string(), format!("{int_param}={depth}")]);
                }
                // last, so that it overrides the depth when it sets the depth itself
                command.extend(["--set".to_string(), set.clone()]);
                case.run(&command, Output::Json);
            }
            finished.push(case.finish());
        }
    }
    report("bad --set values", None, &root, started, &finished);
}

// ------------------------------------------------------------------------------------------
// Singular activations
// ------------------------------------------------------------------------------------------

/// Every numeric example with every singular or extreme activation (no randomness): the
/// contract, and for the non-integrable ones exit 1.
#[test]
fn singular_activations_are_refused() {
    let root = scratch_root("activation", 0);
    let started = Instant::now();
    let mut finished = Vec::new();
    for (file, int_param) in NUMERIC_EXAMPLES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let source = std::fs::read_to_string(&path).expect("read a numeric example");
        let stem = path.file_stem().expect("a file name").to_string_lossy();
        let bodies = NON_INTEGRABLE_ACTIVATIONS
            .iter()
            .map(|body| (body, true))
            .chain(EXTREME_ACTIVATIONS.iter().map(|body| (body, false)));
        for (k, (template, must_refuse)) in bodies.enumerate() {
            let mut case = Case::new(&root, format!("{stem}-{k:02}"));
            let mut tokens = tokenize(&source);
            let body =
                replace_activation(&mut tokens, template).expect("phi(x) = … in the example");
            let theory = case.write("theory.action", render(&tokens).as_bytes());
            let x = case.write("x.csv", TINY_X.as_bytes());
            let set = format!("{int_param}=2");
            let run = case.run(
                &args(&["kernel", &theory, "--x", &x, "--json", "--set", &set]),
                Output::Json,
            );
            if must_refuse && run.code == Some(0) {
                let why = format!(
                    "exit 0 for phi(x) = {body}: ⟨φ(h)²⟩ diverges or φ is undefined on part of the line, so there is no kernel to print"
                );
                case.fail(&run, &why);
            }
            finished.push(case.finish());
        }
    }
    report("activations", None, &root, started, &finished);
}

// ------------------------------------------------------------------------------------------
// The harness itself
// ------------------------------------------------------------------------------------------

#[test]
fn tokens_give_the_source_back_and_npy_headers_are_aligned() {
    for (name, text) in examples() {
        assert_eq!(render(&tokenize(&text)), text, "{name}");
    }
    let tokens = tokenize("phi(x) = erf(sqrt(pi) / 2 * x) // c\nl in 0..=L, 1e-3");
    let def = activation(&tokens).expect("a definition");
    assert_eq!(tokens[def.name].text, "phi");
    assert_eq!(render(&tokens[def.body]), " erf(sqrt(pi) / 2 * x) ");
    assert!(
        tokens
            .iter()
            .any(|t| t.kind == Kind::Number && t.text == "1e-3")
    );
    assert!(tokens.iter().any(|t| t.text == "..="));
    assert_eq!(int_params("param L: int = 3\nparam g = 1"), ["L"]);
    assert_eq!(npy("<f8", false, &[2, 3], &[]).len() % 64, 0);
    assert_eq!(first_nonfinite_word("a -inf b"), Some("-inf"));
    assert_eq!(first_nonfinite_word("info infer 1e5 nano"), None);
}
