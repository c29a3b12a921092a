//! Every command of the README runs as written: each ```sh block, in order, as one bash
//! script (`set -euo pipefail`) in a scratch folder with `examples/` beside it and `saddle`
//! on the PATH (this build's binary; `cargo run --release --` is the same binary).
//!
//! Lines that start the test suite itself, the full-size demo or the long fuzz runs are not
//! run here; they are listed in `NOT_RUN_HERE`, and a new one fails this test until it is
//! listed (with where it is exercised) or made runnable. The README's Rust blocks are
//! doctests (`saddle::ReadmeDoctests`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Commands this test does not run, by prefix, and where they are covered.
const NOT_RUN_HERE: &[(&str, &str)] = &[
    (
        "cargo run --release -- demo",
        "tests/cli.rs the_demo_tour_writes_every_figure_and_a_report (smaller digits)",
    ),
    ("cargo test --workspace", "the test suite itself (.ci/run)"),
    ("cargo test --test fuzz", "tests/fuzz.rs"),
    ("SADDLE_FUZZ_CASES=", "tests/fuzz.rs with more cases"),
    ("SADDLE_FUZZ_SEED=", "tests/fuzz.rs with another seed"),
];

/// The README's ```sh blocks, each as its logical lines (`\` continuations joined).
fn shell_blocks(readme: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut pending = String::new();
    for line in readme.lines() {
        match current.as_mut() {
            None if line.trim_start() == "```sh" => current = Some(Vec::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                if let Some(block) = current.take() {
                    blocks.push(block);
                }
            }
            Some(block) => {
                if let Some(head) = line.strip_suffix('\\') {
                    pending.push_str(head);
                    pending.push(' ');
                } else {
                    pending.push_str(line);
                    block.push(std::mem::take(&mut pending));
                }
            }
        }
    }
    blocks
}

/// A scratch folder with `examples/` (a link to the crate's) and a `saddle` on the PATH.
fn scratch() -> (PathBuf, String) {
    let root = std::env::temp_dir().join(format!("saddle-readme-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    let bin = root.join("bin");
    let work = root.join("work");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::create_dir_all(&work).expect("work");
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::os::unix::fs::symlink(crate_dir.join("examples"), work.join("examples"))
        .expect("examples link");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_saddle"), bin.join("saddle"))
        .expect("saddle link");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (work, path)
}

#[test]
fn every_readme_command_runs() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let blocks = shell_blocks(&readme);
    assert!(
        blocks.len() >= 8,
        "the README's shell blocks: {}",
        blocks.len()
    );
    let (work, path) = scratch();
    let mut skipped: Vec<&str> = Vec::new();
    let mut ran = 0;
    for (i, block) in blocks.iter().enumerate() {
        let mut script = String::from("set -euo pipefail\n");
        // `cargo run --release -- X` is the binary under test
        script.push_str("cargo() { if [ \"$1 $2 $3\" = \"run --release --\" ]; then shift 3; saddle \"$@\"; else echo \"cargo $* is not run by tests/readme.rs\" >&2; return 1; fi; }\n");
        for line in block {
            let command = line.trim_start();
            if let Some((prefix, _)) = NOT_RUN_HERE.iter().find(|(p, _)| command.starts_with(p)) {
                skipped.push(prefix);
                continue;
            }
            if !command.is_empty() && !command.starts_with('#') {
                ran += 1;
            }
            script.push_str(line);
            script.push('\n');
        }
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(&work)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "README shell block {} failed (exit {:?}):\n{}\n--- stdout\n{}\n--- stderr\n{}",
            i + 1,
            out.status.code(),
            block.join("\n"),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(ran >= 30, "only {ran} commands ran");
    // every exemption is still in the README, once
    for (prefix, covered) in NOT_RUN_HERE {
        assert_eq!(
            skipped.iter().filter(|p| *p == prefix).count(),
            1,
            "`{prefix}` ({covered}): not found once in the README's shell blocks"
        );
    }
    // what the tour promises exists
    for file in [
        "mine.action",
        "equations.tex",
        "digits/x.npy",
        "map/result.json",
        "sim/result.json",
        "sweep-g/sweep.jsonl",
        "mse.png",
        "map.png",
        "report/report.html",
        "width.png",
        "report-sweep/report.html",
        "kernels.png",
    ] {
        assert!(
            work.join(file).exists(),
            "{file} written by the README's commands"
        );
    }
}

/// The README's synopsis (the ```text block of `cargo run --release -- …` lines, written with
/// `[optional]` parts and `a|b` alternatives, so not run as it stands) matches the command
/// line: every subcommand exists, every `--flag` it names is in that subcommand's `--help`,
/// and every alternative of a `--flag a|b|c` is one of its possible values.
#[test]
fn the_readme_synopsis_matches_the_command_line() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    // the synopsis lines, `\` continuations joined, comments (`# …`) dropped
    let mut lines: Vec<String> = Vec::new();
    let mut in_text = false;
    let mut pending = String::new();
    for line in readme.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_text = trimmed == "```text";
            continue;
        }
        if !in_text {
            continue;
        }
        let code = trimmed.split(" # ").next().unwrap_or("");
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(head) = code.trim_end().strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
        } else if !pending.is_empty() || code.starts_with("cargo run --release -- ") {
            pending.push_str(code);
            lines.push(std::mem::take(&mut pending));
        }
    }
    let lines: Vec<String> = lines
        .into_iter()
        .filter(|l| l.starts_with("cargo run --release -- "))
        .collect();
    assert!(lines.len() >= 15, "the synopsis: {lines:#?}");
    let help = |sub: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_saddle"))
            .args([sub, "--help"])
            .env("NO_COLOR", "1")
            .output()
            .expect("saddle runs");
        assert!(out.status.success(), "`saddle {sub}` is not a command");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && s.chars().all(|c| c.is_ascii_lowercase() || c == '-')
    };
    let mut checked = 0;
    for line in &lines {
        let rest = &line["cargo run --release -- ".len()..];
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        let Some(&sub) = tokens.first() else { continue };
        if sub.starts_with('-') {
            continue; // `--help`
        }
        let text = help(sub);
        for (i, token) in tokens.iter().enumerate() {
            let flag = token.trim_start_matches('[').trim_end_matches([']', ',']);
            let Some(name) = flag.strip_prefix("--") else {
                continue;
            };
            let name = name.split('=').next().unwrap_or(name);
            if !word(name) {
                continue;
            }
            assert!(
                text.contains(&format!("--{name}")),
                "README synopsis `{line}`: `saddle {sub}` has no --{name}"
            );
            checked += 1;
            let Some(value) = tokens.get(i + 1) else {
                continue;
            };
            let value = value.trim_end_matches(']');
            let alternatives: Vec<&str> = value.split('|').collect();
            if alternatives.len() > 1 && alternatives.iter().all(|a| word(a)) {
                for a in alternatives {
                    assert!(
                        text.contains(a),
                        "README synopsis `{line}`: `{a}` is not a value of `saddle {sub} --{name}`"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 60, "only {checked} flags and values checked");
}
