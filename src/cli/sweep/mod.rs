//! `--sweep`: one command over a grid of parameter values, in parallel, resumable.
//!
//! `--sweep g=0.5:3:6` (six values, linear), `--sweep N=10..1000:5:log` (log-spaced),
//! `--sweep L=1,2,4,8` (a list); several `--sweep`s make a grid, the first varying slowest.
//! Every point is the command with `--set name=value` added. A sweep needs `--out DIR`, where
//! it writes
//! - `sweep.json`: what is swept (command, theory, parameters and their values, `--set`);
//! - `points/0007/`: point 7's full result (`result.json` and `.npy`, [`super::result`]);
//! - `sweep.jsonl`: one row per finished point, appended as points finish (the point, its
//!   scalar results — test MSE, accuracy, ln p(Y|X), iterations, …, the readout kernel's mean
//!   diagonal and off-diagonal — or the error that stopped it); a row is written after its
//!   point's folder, as one line, so the file is consistent whenever the run stops.
//!
//! `--resume` continues an interrupted sweep: points with a row are not run again, and a
//! line cut short by a kill is dropped. When a run ends (done, Ctrl-C, or `--max-points`),
//! `sweep.jsonl` is rewritten in point order, so an interrupted and resumed sweep ends with
//! the same file as an uninterrupted one. Ctrl-C stops starting points, lets the running ones
//! finish and exits with 130; a second Ctrl-C exits at once.
//!
//! Here: the arguments and the run over the points (parallel, resumable, interruptible);
//! `grid`: the grid parsed and its points; `figure`: a sweep's directory read back as curves.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Args;
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde_json::{Map, Value, json};

use super::CliError;
use super::progress::styled_bar;
use super::result::{RunResult, Values};
use crate::check::ir::Theory;

mod figure;
mod grid;
pub use figure::{figure, is_sweep};
pub use grid::parse_sweep;
pub(crate) use grid::{Grid, ScanPoint};

/// One swept parameter and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// The parameter.
    pub name: String,
    /// Its values, in order.
    pub values: Vec<f64>,
    /// Log-spaced (figures use a log axis).
    pub log: bool,
}

/// The sweep options every numeric command takes.
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Scan a parameter: `g=0.5:3:6` (6 values, linear), `N=10..1000:5:log` (log-spaced),
    /// `L=1,2,4,8` (a list). Several make a grid. Needs `--out DIR`.
    #[arg(long = "sweep", value_name = "NAME=RANGE", value_parser = parse_sweep)]
    pub sweep: Vec<Sweep>,
    /// Continue the sweep in `--out DIR` without redoing its finished points.
    #[arg(long, requires = "sweep")]
    pub resume: bool,
    /// Run at most this many points now (a batch job with a time limit; `--resume` goes on).
    #[arg(long = "max-points", value_name = "K", requires = "sweep")]
    pub max_points: Option<usize>,
    /// Points computed at once (default: one per core).
    #[arg(long, value_name = "J", requires = "sweep", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
}

/// Runs a command once (`execute(args, false)`: it prints and writes as usual), or, with
/// `--sweep`, at every point of the grid: `at_point` makes the command of one point (its
/// `--set`s plus the point's, nothing printed, plotted or written) and `execute(…, true)`
/// returns its result.
#[allow(clippy::too_many_arguments)]
pub fn run_or_sweep<A: Sync>(
    command: &str,
    args: &A,
    file: &Path,
    sweep: &SweepArgs,
    set: &[(String, f64)],
    out: Option<&Path>,
    at_point: impl Fn(&A, Vec<(String, f64)>) -> A + Sync,
    execute: impl Fn(&A, bool) -> Result<Option<RunResult>, CliError> + Sync,
) -> Result<(), CliError> {
    if sweep.sweep.is_empty() {
        return execute(args, false).map(drop);
    }
    let theory = super::options::theory(file)?;
    run(command, &theory, sweep, set, out, |point| {
        execute(&at_point(args, point), true)?
            .ok_or_else(|| CliError::Usage("the command returned no result".into()))
    })
}

/// Runs `execute` (the command with extra `--set`s, its result returned rather than printed)
/// at every point of the sweep in `args`, writing into `out`.
fn run(
    command: &str,
    theory: &Theory,
    args: &SweepArgs,
    set: &[(String, f64)],
    out: Option<&Path>,
    execute: impl Fn(Vec<(String, f64)>) -> Result<RunResult, CliError> + Sync,
) -> Result<(), CliError> {
    let dir = out.ok_or_else(|| {
        CliError::Usage(
            "--sweep writes its rows and results into a directory: add --out DIR".into(),
        )
    })?;
    if dir
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return Err(CliError::Usage(format!(
            "--sweep --out {}: a sweep writes a directory, not one .npy file",
            dir.display()
        )));
    }
    let grid = Grid::new(theory, &args.sweep, set, "--sweep")?;
    let total = grid.points.len();
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| CliError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("write", dir))?;
    let meta = json!({
        "saddle_version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "theory": theory.name,
        "parameters": grid.sweeps.iter().map(|s| json!({
            "name": s.name,
            "values": s.values,
            "scale": if s.log { "log" } else { "linear" },
        })).collect::<Vec<_>>(),
        "set": set.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<Map<_, _>>(),
        "points": total,
    });
    let meta_path = dir.join("sweep.json");
    let rows_path = dir.join("sweep.jsonl");
    let mut done: Vec<(usize, String)> = Vec::new();
    if args.resume {
        let before = std::fs::read_to_string(&meta_path).map_err(io("read", &meta_path))?;
        let before: Value = serde_json::from_str(&before)
            .map_err(|e| CliError::Usage(format!("--resume: {}: {e}", meta_path.display())))?;
        let same = ["command", "theory", "parameters", "set", "points"]
            .iter()
            .all(|k| before.get(*k) == meta.get(*k));
        if !same {
            return Err(CliError::Usage(format!(
                "--resume: {} holds another sweep ({} of {} over {}); run the same command \
                 and --sweep/--set to resume it, or choose another --out",
                dir.display(),
                before["command"],
                before["theory"],
                before["parameters"]
            )));
        }
        done = read_rows(&rows_path, total)?;
    } else if rows_path.exists() || meta_path.exists() {
        return Err(CliError::Usage(format!(
            "--out {}: it already holds a sweep; add --resume to continue it, or choose \
             another directory",
            dir.display()
        )));
    } else {
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default() + "\n";
        crate::data::atomic::write(&meta_path, text).map_err(io("write", &meta_path))?;
    }
    // the rows of earlier runs, without a line a kill cut short
    write_sorted(&rows_path, &done)?;
    let finished: std::collections::BTreeSet<usize> = done.iter().map(|(i, _)| *i).collect();
    let mut pending: Vec<usize> = (0..total).filter(|i| !finished.contains(i)).collect();
    if let Some(k) = args.max_points {
        pending.truncate(k);
    }
    let rows_file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&rows_path)
        .map_err(io("write", &rows_path))?;
    let rows = Mutex::new((rows_file, done));
    let bar = progress_bar(total as u64, finished.len() as u64);
    // The first Ctrl-C stops starting points; a second ends the process at once. The rows
    // written so far stay consistent either way.
    let graceful = super::interrupt::Graceful::new();
    let failed = AtomicUsize::new(0);
    let width = total.saturating_sub(1).to_string().len().max(4);
    let job = |index: usize| -> Result<(), CliError> {
        if super::interrupt::stopped() {
            return Ok(());
        }
        let mut row = Map::new();
        row.insert("index".into(), json!(index));
        row.insert("point".into(), grid.point_json(index));
        match execute(grid.overrides(index)) {
            Ok(result) => {
                let folder = format!("points/{index:0width$}");
                result.write_dir(&dir.join(&folder))?;
                row.insert("result".into(), json!(folder));
                row.extend(scalars(&result));
            }
            Err(error) => {
                failed.fetch_add(1, Ordering::SeqCst);
                let message = match &error {
                    CliError::Diagnostics(d) => d.render(false),
                    other => other.to_string(),
                };
                row.insert("error".into(), json!(message.trim_end()));
            }
        }
        let line = Value::Object(row).to_string();
        let mut guard = rows
            .lock()
            .map_err(|_| CliError::Usage("a sweep point failed while writing its row".into()))?;
        let (file, written) = &mut *guard;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.flush())
            .map_err(io("write", &rows_path))?;
        written.push((index, line));
        bar.inc(1);
        Ok(())
    };
    let jobs = args
        .jobs
        .map_or(rayon::current_num_threads(), |j| j as usize);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| CliError::Usage(format!("--jobs {jobs}: {e}")))?;
    let outcome: Result<(), CliError> =
        pool.install(|| pending.par_iter().try_for_each(|&i| job(i)));
    bar.finish_and_clear();
    let (_, written) = rows
        .into_inner()
        .map_err(|_| CliError::Usage("a sweep point failed while writing its row".into()))?;
    write_sorted(&rows_path, &written)?;
    outcome?;
    summarise(&grid, &written, dir);
    let remaining = total - written.len();
    let failed = failed.load(Ordering::SeqCst);
    drop(graceful);
    if super::interrupt::stopped() {
        return Err(CliError::Interrupted(format!(
            "interrupted: {} of {total} points done, {remaining} to go — `--resume` continues",
            written.len()
        )));
    }
    if remaining > 0 {
        outln!(
            "{remaining} of {total} points to go (--max-points): run the same command with \
             --resume to continue"
        );
    }
    if failed > 0 {
        return Err(CliError::Usage(format!(
            "{failed} point(s) of the sweep failed; their rows in {} say why",
            rows_path.display()
        )));
    }
    Ok(())
}

/// The complete rows of a sweep file (a line a kill cut short is dropped), by index.
fn read_rows(path: &Path, total: usize) -> Result<Vec<(usize, String)>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => {
            return Err(CliError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut rows: Vec<(usize, String)> = Vec::new();
    for line in text.lines() {
        let index = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("index").and_then(Value::as_u64))
            .map(|i| i as usize)
            .filter(|i| *i < total);
        if let Some(i) = index
            && !rows.iter().any(|(j, _)| *j == i)
        {
            rows.push((i, line.to_string()));
        }
    }
    Ok(rows)
}

/// Writes the rows in point order, through a temporary file and a rename, so the file is
/// whole at every moment.
fn write_sorted(path: &Path, rows: &[(usize, String)]) -> Result<(), CliError> {
    let mut sorted: Vec<&(usize, String)> = rows.iter().collect();
    sorted.sort_by_key(|(i, _)| *i);
    let text: String = sorted.iter().map(|(_, line)| format!("{line}\n")).collect();
    crate::data::atomic::write(path, text).map_err(|source| CliError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// The numbers of a result worth a column: every top-level number, the NNGP's scores beside
/// a finite-width prediction, and the readout kernel's mean diagonal and off-diagonal.
fn scalars(result: &RunResult) -> Map<String, Value> {
    let mut row = Map::new();
    let members = result.members();
    for (key, value) in members {
        if value.is_number() {
            row.insert(key.clone(), value.clone());
        }
    }
    if let Some(nngp) = members.get("nngp_prediction").and_then(Value::as_object) {
        for (key, value) in nngp {
            row.insert(format!("nngp_{key}"), value.clone());
        }
    }
    let Some(readout) = members.get("readout").and_then(Value::as_str) else {
        return row;
    };
    for (section, prefix) in [("kernels", ""), ("nngp", "nngp_")] {
        if let Some(Values::Matrix(m)) = result.array(&[section, readout])
            && m.nrows() == m.ncols()
            && m.nrows() > 0
        {
            let (diagonal, off) =
                crate::simulate::posterior::diagonal_and_off_diagonal_means(m.view());
            row.insert(format!("{prefix}readout_diagonal"), json!(diagonal));
            row.insert(format!("{prefix}readout_off_diagonal"), json!(off));
        }
    }
    row
}

fn progress_bar(len: u64, done: u64) -> ProgressBar {
    let bar = styled_bar(
        len,
        "sweep {bar:40} {pos}/{len} points  {per_sec}  {elapsed_precise} (eta {eta})",
        false,
    );
    bar.set_position(done);
    bar.reset_eta();
    bar
}

/// One line per point (at most 40): the point and its main numbers.
fn summarise(grid: &Grid, rows: &[(usize, String)], dir: &Path) {
    const SHOWN: &[&str] = &[
        "test_mse",
        "test_accuracy",
        "log_marginal_likelihood",
        "readout_diagonal",
        "readout_off_diagonal",
    ];
    let mut sorted: Vec<Value> = rows
        .iter()
        .filter_map(|(_, line)| serde_json::from_str(line).ok())
        .collect();
    sorted.sort_by_key(|v: &Value| v["index"].as_u64());
    let columns: Vec<&str> = SHOWN
        .iter()
        .copied()
        .filter(|c| sorted.iter().any(|r| r.get(*c).is_some()))
        .collect();
    let mut header: Vec<String> = grid
        .sweeps
        .iter()
        .map(|s| format!("{:>12}", s.name))
        .collect();
    header.extend(columns.iter().map(|c| format!("{c:>24}")));
    outln!("{}", header.join(" "));
    for row in sorted.iter().take(40) {
        let mut cells: Vec<String> = grid
            .sweeps
            .iter()
            .map(|s| format!("{:>12}", compact(row["point"][&s.name].as_f64())))
            .collect();
        if let Some(error) = row.get("error").and_then(Value::as_str) {
            cells.push(format!("error: {}", error.lines().next().unwrap_or("")));
        } else {
            cells.extend(
                columns
                    .iter()
                    .map(|c| format!("{:>24}", compact(row[*c].as_f64()))),
            );
        }
        outln!("{}", cells.join(" "));
    }
    if sorted.len() > 40 {
        outln!("… {} more rows", sorted.len() - 40);
    }
    outln!(
        "{} points in {} (rows: sweep.jsonl; each point's result: points/; `saddle plot {}` draws them)",
        sorted.len(),
        dir.display(),
        dir.display()
    );
}

fn compact(v: Option<f64>) -> String {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e6 => format!("{x:.0}"),
        Some(x) if x != 0.0 && !(1e-3..1e6).contains(&x.abs()) => format!("{x:.6e}"),
        Some(x) => format!("{x:.6}"),
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_lists_and_log_spacing() {
        let s = parse_sweep("g=0.5:3:6").expect("linear");
        assert_eq!(s.values, vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
        assert!(!s.log);
        let s = parse_sweep("N=10..1000:3:log").expect("log");
        assert!(s.log);
        assert!((s.values[1] - 100.0).abs() < 1e-12 && (s.values[2] - 1000.0).abs() < 1e-9);
        assert_eq!(
            parse_sweep("L=1,2,4,8").expect("list").values,
            vec![1.0, 2.0, 4.0, 8.0]
        );
        assert_eq!(parse_sweep("g=2:2:1").expect("one").values, vec![2.0]);
        for (bad, says) in [
            ("g", "expected name="),
            ("=1,2", "name is empty"),
            ("g=1:2", "a:b:n"),
            ("g=1:2:0", "1 to 100000"),
            ("g=0..1:3:log", "positive ends"),
            ("g=1,x", "`x` is not a number"),
            ("g=1:inf:3", "not finite"),
        ] {
            let e = parse_sweep(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn rows_cut_short_are_dropped() {
        let path = std::env::temp_dir().join(format!("saddle-rows-{}.jsonl", std::process::id()));
        std::fs::write(
            &path,
            "{\"index\":1,\"a\":2}\n{\"index\":0}\n{\"index\":7}\n{\"ind",
        )
        .ok();
        let rows = read_rows(&path, 5).expect("rows");
        assert_eq!(rows.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 0]);
        write_sorted(&path, &rows).expect("sorted");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "{\"index\":0}\n{\"index\":1,\"a\":2}\n");
        std::fs::remove_file(&path).ok();
    }
}
