//! `--sweep`: grids of parameter values, rows written as points finish, `--resume` after a
//! stop (a batch limit, a kill, Ctrl-C) ending with the same files as an uninterrupted run,
//! and figures drawn from the sweep directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{assert_valid, fresh_dir, path_str, saddle, schema_validator, temp_file};

const X: &str = "1,1\n-1,-1\n1,-1\n-1,1\n";
const Y: &str = "-1\n-1\n1\n1\n";
const XT: &str = "0.8,1.2\n-0.7,0.9\n0.3,-0.2\n";
const YT: &str = "-1\n1\n1\n";

/// Every file under `dir`, by relative path, with its contents.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("inside").to_path_buf();
                files.push((relative, std::fs::read(&path).expect("file")));
            }
        }
    }
    files.sort();
    files
}

/// The prior simulation sweep the interruption tests share: 8 points, each a few tens of
/// milliseconds.
fn simulate_args(x: &str, out: &Path) -> Vec<String> {
    [
        "simulate",
        "examples/deep_erf.action",
        "--x",
        x,
        "--prior",
        "--samples",
        "3000",
        "--sweep",
        "N=10:80:8",
        "--jobs",
        "1",
        "--out",
        path_str(out),
    ]
    .map(String::from)
    .to_vec()
}

fn run(args: &[String]) -> (i32, String, String) {
    saddle(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn a_grid_writes_one_row_per_point_and_plots() {
    let (x, y, xt, yt) = (
        temp_file("x.csv", X),
        temp_file("y.csv", Y),
        temp_file("xt.csv", XT),
        temp_file("yt.csv", YT),
    );
    let out = fresh_dir("grid");
    let validator = schema_validator();
    let (code, stdout, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--x-test",
        path_str(&xt),
        "--y-test",
        path_str(&yt),
        "--sweep",
        "g=0.5:2:4",
        "--sweep",
        "L=1,3",
        "--out",
        path_str(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("8 points in"), "{stdout}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(out.join("sweep.jsonl"))
        .expect("rows")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert_eq!(rows.len(), 8);
    // the grid: the first parameter varies slowest; each row is the command at its point
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["point"]["g"].as_f64().unwrap(),
                r["point"]["L"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(points[..3], [(0.5, 1.0), (0.5, 3.0), (1.0, 1.0)]);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["index"], i);
        let folder = out.join(row["result"].as_str().expect("result folder"));
        let result: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(result["params"]["g"], row["point"]["g"]);
        assert_eq!(result["test_mse"], row["test_mse"]);
        // every point's result is the one result format
        assert_valid(&validator, &result, &format!("point {i}'s result.json"));
    }
    // a row is the command's own number: point 5 (g = 1.5, L = 3) by hand
    let (code, single, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--x-test",
        path_str(&xt),
        "--y-test",
        path_str(&yt),
        "--set",
        "g=1.5",
        "--set",
        "L=3",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let single: serde_json::Value = serde_json::from_str(&single).unwrap();
    assert_eq!(rows[5]["test_mse"], single["test_mse"]);
    assert_eq!(
        rows[5]["log_marginal_likelihood"],
        single["log_marginal_likelihood"]
    );
    let c = &single["kernels"]["C[3]"];
    let diagonal = (0..4).map(|i| c[i][i].as_f64().unwrap()).sum::<f64>() / 4.0;
    assert!((rows[5]["readout_diagonal"].as_f64().unwrap() - diagonal).abs() < 1e-15);

    let figure = out.join("mse.svg");
    let (code, _, err) = saddle(&["plot", path_str(&out), "--out", path_str(&figure)]);
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(&figure).expect("svg");
    for text in ["deep_erf: test MSE against g", "L = 1", "L = 3", "test MSE"] {
        assert!(svg.contains(text), "{text} in the figure");
    }
    insta::assert_debug_snapshot!("sweep_svg_text", saddle::plot::svg_text(&svg));
    let (code, _, err) = saddle(&[
        "plot",
        path_str(&out),
        "--metric",
        "nothing",
        "--out",
        path_str(&figure),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--metric nothing: the sweep's rows have") && err.contains("test_mse"),
        "{err}"
    );
}

#[test]
fn max_points_then_resume_gives_the_uninterrupted_files() {
    let x = temp_file("x.csv", X);
    let full = fresh_dir("full");
    let (code, _, err) = run(&simulate_args(path_str(&x), &full));
    assert_eq!(code, 0, "{err}");

    let parts = fresh_dir("parts");
    let mut args = simulate_args(path_str(&x), &parts);
    args.extend(["--max-points".into(), "3".into()]);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("5 of 8 points to go"), "{out}");
    assert_eq!(
        std::fs::read_to_string(parts.join("sweep.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    // without --resume an existing sweep is not overwritten
    let (code, _, err) = run(&simulate_args(path_str(&x), &parts));
    assert_eq!(code, 1);
    assert!(err.contains("already holds a sweep; add --resume"), "{err}");
    let mut args = simulate_args(path_str(&x), &parts);
    args.push("--resume".into());
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        tree(&full),
        tree(&parts),
        "resumed sweep differs from the uninterrupted one"
    );
    // a different sweep does not resume into it
    let mut other = simulate_args(path_str(&x), &parts);
    other[8] = "N=10:80:4".into();
    other.push("--resume".into());
    let (code, _, err) = run(&other);
    assert_eq!(code, 1);
    assert!(err.contains("holds another sweep"), "{err}");
}

/// Starts the sweep, waits for its first row, stops it with `signal`, and returns its exit
/// code.
fn interrupt(args: &[String], rows: &Path, signal: &str) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_saddle"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let start = Instant::now();
    while std::fs::read_to_string(rows).map_or(0, |t| t.lines().count()) == 0 {
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args([signal, &pid]).status();
    child.wait().expect("ends").code()
}

#[test]
fn a_killed_or_interrupted_sweep_resumes_to_the_same_files() {
    let x = temp_file("x.csv", X);
    let full = fresh_dir("full-for-kill");
    let (code, _, err) = run(&simulate_args(path_str(&x), &full));
    assert_eq!(code, 0, "{err}");
    for (name, signal) in [("killed", "-KILL"), ("interrupted", "-INT")] {
        let dir = fresh_dir(name);
        let code = interrupt(
            &simulate_args(path_str(&x), &dir),
            &dir.join("sweep.jsonl"),
            signal,
        );
        // Ctrl-C: the running point finishes, the rows are sorted, exit code 130 (0 when the
        // sweep was done before the signal arrived)
        if signal == "-INT" {
            assert!(matches!(code, Some(130) | Some(0)), "{name}: exit {code:?}");
        }
        let text = std::fs::read_to_string(dir.join("sweep.jsonl")).expect("rows");
        if signal == "-KILL" {
            // a write cut short by the kill: the resume drops it
            std::fs::write(dir.join("sweep.jsonl"), format!("{text}{{\"index\":7,\"po")).unwrap();
        } else {
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("whole rows");
            }
        }
        let mut args = simulate_args(path_str(&x), &dir);
        args.push("--resume".into());
        let (code, _, err) = run(&args);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(tree(&full), tree(&dir), "{name}: resumed sweep differs");
    }
}

#[test]
fn bad_sweeps_are_refused_with_the_reason() {
    let x = temp_file("x.csv", X);
    let out = fresh_dir("bad");
    let base = ["kernel", "examples/deep_erf.action", "--x", path_str(&x)];
    for (extra, says) in [
        (vec!["--sweep", "g=1:2:3"], "add --out DIR"),
        (
            vec!["--sweep", "h=1:2:3", "--out", path_str(&out)],
            "no parameter `h` (it has g, gb",
        ),
        (
            vec!["--sweep", "g=1,2", "--set", "g=3", "--out", path_str(&out)],
            "give the parameter one way",
        ),
        (
            vec!["--sweep", "L=1:2:3", "--out", path_str(&out)],
            "`L` is an integer parameter, 1.5",
        ),
        (vec!["--sweep", "g=1:2", "--out", path_str(&out)], "a:b:n"),
        (vec!["--resume", "--out", path_str(&out)], "--sweep"),
        (
            vec!["--sweep", "g=1,2", "--out", "K.npy"],
            "a directory, not one .npy file",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra.iter().copied());
        let (code, _, err) = saddle(&args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // a point that fails is a row with its reason; the others run; exit code 1
    let (x2, y2) = (
        temp_file("x2.csv", "1,1\n-1,0.5\n"),
        temp_file("y2.csv", "1\n-1\n"),
    );
    let (code, _, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        path_str(&x2),
        "--y",
        path_str(&y2),
        "--method",
        "linear",
        "--set",
        "L=2",
        "--sweep",
        "N=-1,100",
        "--out",
        path_str(&out),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("1 point(s) of the sweep failed"), "{err}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(out.join("sweep.jsonl"))
        .expect("rows")
        .lines()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("parameter `N` = -1"),
        "{rows:?}"
    );
    assert!(rows[1]["readout_diagonal"].is_number() && rows[1].get("error").is_none());
}
