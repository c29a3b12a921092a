//! Regressions for contract breaks found by fuzzing (exit 0 or 1, never a panic; no silent
//! wrong number; bounded resources; errors that say where and why), each with its failing
//! input minimised. `tests/fuzz.rs` keeps looking for new ones.

use std::process::{Command, Stdio};

mod common;
use common::{path_str, saddle, temp_file};

const ERF: &str = "examples/deep_erf.action";

/// Item 1: a diagnostic beyond column 65,535 made miette's renderer panic (exit 101).
/// Item 10: a long line is shown as a window around the span, not whole, per diagnostic.
#[test]
fn diagnostics_on_very_long_lines_render_a_window() {
    let source = format!("param x = 1{}@\n", " ".repeat(65_530));
    let file = temp_file("long_line.action", &source);
    let (code, _, err) = saddle(&["check", path_str(&file)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("long_line.action:1:65542"), "{err}");
    assert!(err.len() < 2_000, "{} bytes of stderr", err.len());
    let (code, _, err) = saddle(&["fmt", path_str(&file)]);
    assert_eq!(code, 1, "{err}");

    // 8,000 errors on one 32 KB line: bounded output, a count of the rest.
    let terms: Vec<String> = (0..8_000).map(|i| format!("q{i}")).collect();
    let many = format!("theory t\naction S = {}\n", terms.join(" + "));
    let file = temp_file("many.action", &many);
    let (code, _, err) = saddle(&["check", path_str(&file)]);
    assert_eq!(code, 1);
    assert!(err.len() < 100_000, "{} bytes of stderr", err.len());
    assert!(err.contains("and 7900 more problems"), "{err}");
}

/// Item 2: `saddle check bad.action 2>&1 | head -1` exited 101 when stderr was closed.
#[test]
fn a_closed_stderr_pipe_is_not_a_panic() {
    for _ in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_saddle"))
            .args(["check", "tests/diagnostics/err_unknown_name.action"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        drop(child.stderr.take()); // the reader goes away before anything is written
        let status = child.wait().expect("waits");
        assert_eq!(status.code(), Some(1), "{status:?}");
    }
}

/// Item 3: a bare `//` line was printed as a blank line, so `fmt` was not idempotent.
#[test]
fn fmt_keeps_bare_comment_lines_and_is_idempotent() {
    let file = temp_file("bare.action", "theory t\n//\n//\nparam a = 1\n");
    let (code, once, err) = saddle(&["fmt", path_str(&file)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(once, "theory t\n//\n//\nparam a = 1\n");
    let again = temp_file("bare_again.action", &once);
    let (_, twice, _) = saddle(&["fmt", path_str(&again)]);
    assert_eq!(twice, once);
    let (code, _, err) = saddle(&["fmt", "--check", "examples/deep_linear.action"]);
    let (_, canonical, _) = saddle(&["fmt", "examples/deep_linear.action"]);
    let canonical_file = temp_file("deep_linear.action", &canonical);
    let (code2, _, err2) = saddle(&["fmt", "--check", path_str(&canonical_file)]);
    assert!(code <= 1, "{err}");
    assert_eq!(code2, 0, "{err2}");
    assert!(
        canonical.contains("//\n"),
        "the bare `//` line of deep_linear is kept"
    );
}

/// Item 4: huge integer parameters grew memory until the allocator aborted (exit 134).
#[test]
fn huge_integer_parameters_are_refused_at_once() {
    let x = temp_file("x.csv", "1,2,3\n4,5,6\n");
    for value in ["1e9", "99999999999999999999", "10001", "-1", "2.5"] {
        let set = format!("L={value}");
        let (code, _, err) = saddle(&["kernel", ERF, "--x", path_str(&x), "--set", &set]);
        assert_eq!(code, 1, "L = {value}: {err}");
        assert!(err.contains("parameter `L`"), "{err}");
    }
    let (code, _, err) = saddle(&[
        "kernel",
        "examples/recurrent_erf.action",
        "--x",
        path_str(&x),
        "--set",
        "T=10001",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("0..=10000"), "{err}");
    let file = temp_file(
        "big.action",
        "theory t\nparam L: int = 99999999999999999999\n",
    );
    let (code, _, err) = saddle(&["check", path_str(&file)]);
    assert_eq!(code, 1);
    assert!(err.contains("saddle::int_param_out_of_range"), "{err}");
}

/// Item 7: targets of ±1e200 printed `-inf` / `inf` with exit 0.
#[test]
fn overflowing_scores_are_an_error_not_infinity() {
    let x = temp_file("x7.csv", "1,1\n-1,-1\n1,-1\n-1,1\n");
    let y = temp_file("y7.csv", "-1e200\n-1e200\n1e200\n1e200\n");
    let xt = temp_file("xt7.csv", "0.8,1.2\n-0.7,0.9\n");
    let yt = temp_file("yt7.csv", "-1e200\n1e200\n");
    let args = [
        "solve",
        ERF,
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--x-test",
        path_str(&xt),
        "--y-test",
        path_str(&yt),
    ];
    let (code, out, err) = saddle(&args);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("rescale the targets"), "{err}");
    assert!(!out.contains("inf"), "{out}");
}

fn finite_width(method: &str, x: &str, extra: &[&str]) -> (i32, String, String) {
    let x = temp_file(&format!("x_{method}.csv"), x);
    let y = temp_file(&format!("y_{method}.csv"), "1\n-1\n");
    let mut args = vec![
        "solve",
        ERF,
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--method",
        method,
        "--set",
        "L=1",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = saddle(&args);
    (code, out, err.to_string())
}

/// Items 8 and 9: `linear --quadrature 1` returned all-zero corrections; negative κ and N
/// ran; `N = 0` and a singular kernel were reported at line 1, column 1 (a comment).
#[test]
fn finite_width_settings_are_validated_with_names_and_values() {
    let x = "1,2,3\n4,5,6\n";
    let (code, _, err) = finite_width("linear", x, &["--quadrature", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("quadrature order 1"), "{err}");
    for method in ["map", "linear"] {
        let (code, _, err) = finite_width(method, x, &["--set", "kappa=-1"]);
        assert_eq!(code, 1, "{method}");
        assert!(err.contains("κ = -1"), "{method}: {err}");
        for n in ["-1", "0"] {
            let set = format!("N={n}");
            let (code, _, err) = finite_width(method, x, &["--set", &set]);
            assert_eq!(code, 1, "{method} N = {n}");
            assert!(err.contains(&format!("parameter `N` = {n}")), "{err}");
        }
    }
    // Two identical patterns with κ = 0: K + κI is singular; said in words, not at 1:1.
    let (code, _, err) = finite_width("linear", "1,2,3\n1,2,3\n", &["--set", "kappa=0"]);
    assert_eq!(code, 1);
    assert!(err.contains("κ = 0"), "{err}");
    assert!(!err.contains(":1:1]"), "{err}");
}

fn check_message(name: &str, source: &str) -> String {
    let file = temp_file(name, source);
    let (code, _, err) = saddle(&["check", path_str(&file)]);
    assert_eq!(code, 1, "{err}");
    err
}

/// Item 11: common mistakes get messages that say what to do.
#[test]
fn common_mistakes_get_helpful_messages() {
    let erf = std::fs::read_to_string(ERF).expect("example");
    let no_conj: String = erf
        .lines()
        .filter(|l| !l.starts_with("conj"))
        .collect::<Vec<_>>()
        .join("\n");
    let err = check_message("no_conj.action", &no_conj);
    assert!(err.contains("looks like a conjugate kernel"), "{err}");
    assert!(err.contains("conj Ct[l] of C[l]"), "{err}");

    let err = check_message("log.action", &erf.replace("ln E[", "log E["));
    assert!(err.contains("unknown name `log`"), "{err}");
    assert!(err.contains("`ln`"), "{err}");
    let err = check_message("det.action", &erf.replace("logdet(", "det("));
    assert!(err.contains("`logdet`"), "{err}");
    let err = check_message("trace.action", &erf.replace("tr(Y^T", "trace(Y^T"));
    assert!(err.contains("`tr`"), "{err}");

    let err = check_message(
        "phi_x.action",
        &erf.replace("phi(h)^T Ct[l] phi(h)", "phi(x)^T Ct[l] phi(x)"),
    );
    assert!(err.contains("argument of `phi(x)`"), "{err}");
    assert!(err.contains("write `phi(h)`"), "{err}");
}

/// Item 5: two nearly identical inputs under deep_tanh gave a correlation above 1 (and a
/// bound of 0); at L = 3 the next layer failed as "not positive semi-definite".
#[test]
fn near_duplicate_inputs_give_a_valid_kernel() {
    for (name, second) in [("near", "1,2,3.0000001"), ("exact", "1,2,3")] {
        let x = temp_file(&format!("dup_{name}.csv"), &format!("1,2,3\n{second}\n"));
        for depth in ["L=1", "L=3"] {
            let (code, out, err) = saddle(&[
                "kernel",
                "examples/deep_tanh.action",
                "--x",
                path_str(&x),
                "--set",
                depth,
                "--json",
            ]);
            assert_eq!(code, 0, "{name} {depth}: {err}");
            let json: serde_json::Value = serde_json::from_str(&out).expect("json");
            let k = &json["kernels"];
            let k = k
                .as_object()
                .and_then(|m| m.values().next_back())
                .expect("a kernel");
            let entry = |i: usize, j: usize| k[i][j].as_f64().expect("number");
            let limit = (entry(0, 0) * entry(1, 1)).sqrt();
            assert!(entry(0, 1) <= limit * (1.0 + 1e-14), "{name} {depth}: {k}");
            for report in json["expansions"].as_object().expect("reports").values() {
                let bound = report["worst_bound"].as_f64().expect("bound");
                assert!(bound < 1e-9, "{name} {depth}: {report}");
            }
        }
    }
}

/// Item 6: `phi(x) = 1/x` gave a finite kernel with "error bound 3.4e-15".
#[test]
fn a_divergent_expectation_is_an_error() {
    let erf = std::fs::read_to_string(ERF).expect("example");
    let x = temp_file("x6.csv", "1,2,3\n4,5,6\n");
    for (name, phi) in [
        ("recip", "1 / x"),
        ("shifted", "1 / (x - 0.3)"),
        ("root", "1 / sqrt(abs(x))"),
    ] {
        let source = erf.replace("phi(x) = erf(sqrt(pi) / 2 * x)", &format!("phi(x) = {phi}"));
        let file = temp_file(&format!("{name}.action"), &source);
        let (code, out, err) = saddle(&["kernel", path_str(&file), "--x", path_str(&x)]);
        assert_eq!(code, 1, "{phi}: {out}");
        assert!(err.contains("does not exist"), "{phi}: {err}");
    }
}

/// Runs `saddle` with its address space capped (RLIMIT_AS), so a blow-up fails the test
/// instead of the machine.
fn saddle_capped(args: &[&str], bytes: u64) -> (i32, String, String) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_saddle"));
    command.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = command.output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Item 10: `recurrent_erf` at T = 30 took 1.6 GB (T⁴ copies of the tilt), T = 40 over 3 GB.
/// The NNGP path now holds O(T²) blocks: T = 40 runs in 3 GiB of address space (threads'
/// stacks and the 1 GiB command stack are reserved, not touched).
#[test]
fn recurrent_kernels_at_tens_of_steps_fit_in_bounded_memory() {
    let x = temp_file("x10.csv", "1,2,3\n4,5,6\n-1,0,2\n");
    let (code, out, err) = saddle_capped(
        &[
            "kernel",
            "examples/recurrent_erf.action",
            "--x",
            path_str(&x),
            "--set",
            "T=40",
            "--json",
        ],
        3 << 30,
    );
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let k = &json["kernels"]["C[40,40]"];
    assert!(k[0][0].as_f64().is_some_and(f64::is_finite), "{out}");
}

const TINY: &str = "0.5,-1.0,2.0\n1.5,0.25,-0.75\n-1.0,1.0,0.0\n";

/// Found by `tests/fuzz.rs`: negative variance parameters acting on the returned layer, and
/// overflow there, came out as a "kernel" (negative variances, `null`, `inf`) with exit 0.
#[test]
fn returned_kernels_are_finite_covariances() {
    let x = temp_file("tiny.csv", TINY);
    for set in [
        ["L=1", "g=-1"],
        ["L=1", "gb=-1"],
        ["L=0", "g0=-1"],
        ["L=0", "gb0=-1"],
        ["L=2", "g=1e300"],
        ["L=2", "gb=1e308"],
    ] {
        let (code, out, err) = saddle(&[
            "kernel",
            "examples/deep_relu.action",
            "--x",
            path_str(&x),
            "--json",
            "--set",
            set[0],
            "--set",
            set[1],
        ]);
        assert_eq!(code, 1, "{set:?}: {out}");
        assert!(
            err.contains("not a covariance matrix") || err.contains("not finite"),
            "{set:?}: {err}"
        );
    }
    // a readout that is an expression (`gw * Q[L]`), not a field entry
    let (code, out, err) = saddle(&[
        "kernel",
        "examples/binary_threshold.action",
        "--x",
        path_str(&x),
        "--set",
        "gw=-1",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("the readout kernel is not a covariance"),
        "{err}"
    );
    let huge = temp_file("huge.csv", "1e200\n");
    let (code, out, _) = saddle(&[
        "kernel",
        "examples/deep_erf.action",
        "--x",
        path_str(&huge),
        "--set",
        "L=0",
    ]);
    assert_eq!(code, 1, "{out}");
}

/// Found by `tests/fuzz.rs`: `step(x) / x` (a pole next to an undefined point) gave a
/// kernel with correlation 2.27; `exp(x^2)` overflows; the message says which.
#[test]
fn singular_and_overflowing_activations_are_named() {
    let erf = std::fs::read_to_string(ERF).expect("example");
    let x = temp_file("tiny_s.csv", TINY);
    for (name, phi, says) in [
        ("step_over_x", "step(x) / x", "has a pole at h ≈ 0.000000"),
        ("exp_square", "exp(x^2)", "is not finite at h ≈"),
        ("log", "ln(x)", "is not finite at h ≈"),
    ] {
        let source = erf.replace("phi(x) = erf(sqrt(pi) / 2 * x)", &format!("phi(x) = {phi}"));
        let file = temp_file(&format!("{name}.action"), &source);
        let (code, out, err) = saddle(&["kernel", path_str(&file), "--x", path_str(&x)]);
        assert_eq!(code, 1, "{phi}: {out}");
        assert!(err.contains(says), "{phi}: {err}");
    }
}

/// Found by `tests/fuzz.rs`: a 128-byte `.npy` whose header claims 10⁹ × 10⁹ floats made
/// the loader allocate 8·10¹⁸ bytes and abort.
#[test]
fn a_lying_npy_header_is_an_error() {
    let mut header =
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000000), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    let path = temp_file("lies.npy", "");
    std::fs::write(&path, &bytes).expect("write");
    let (code, _, err) = saddle(&["kernel", ERF, "--x", path_str(&path)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("declares shape"), "{err}");
}
