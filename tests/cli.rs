//! The `saddle` binary end to end: exit codes, JSON keys, and clear errors for bad input.

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{csv, digits, path_str, saddle, temp_file};

const X: &str = "1,1\n-1,-1\n1,-1\n-1,1\n";
const Y: &str = "-1\n-1\n1\n1\n";
const XT: &str = "0.8,1.2\n-0.7,0.9\n0.3,-0.2\n";
const YT: &str = "-1\n1\n1\n";

#[test]
fn check_accepts_examples_and_rejects_mistakes_with_positions() {
    let (code, out, _) = saddle(&["check", "examples/deep_erf.action"]);
    assert_eq!(code, 0);
    assert!(out.contains("well-formed"));
    let (code, _, err) = saddle(&["check", "tests/diagnostics/err_unknown_name.action"]);
    assert_eq!(code, 1);
    assert!(err.contains("err_unknown_name.action:15:20"), "{err}");
    assert!(err.contains("did you mean `kappa`?"), "{err}");
    let (code, _, err) = saddle(&["check", "no/such/file.action"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn fmt_output_is_canonical() {
    let (code, canonical, _) = saddle(&["fmt", "examples/binary_threshold.action"]);
    assert_eq!(code, 0);
    let path = temp_file("canonical.action", &canonical);
    let (code, _, err) = saddle(&["fmt", "--check", path.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn fmt_write_rewrites_the_file_in_place_through_a_rename() {
    let (_, canonical, _) = saddle(&["fmt", "examples/binary_threshold.action"]);
    let source = std::fs::read_to_string("examples/binary_threshold.action").expect("example");
    // the same theory with its layout spoiled: trailing spaces
    let messy: String = source.lines().map(|l| format!("{l}   \n")).collect();
    let file = temp_file("fmt_write.action", &messy);
    let (code, _, err) = saddle(&["fmt", "--write", path_str(&file)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("rewritten"),
        canonical
    );
    let dir = file.parent().expect("a folder");
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.contains("fmt_write.saddle-tmp"))
        .collect();
    assert!(left.is_empty(), "a temporary file left beside it: {left:?}");
}

#[test]
fn kernel_out_npy_writes_the_readout_kernel() {
    let x = temp_file("k_npy_x.csv", X);
    // a stale file of the same name is replaced whole
    let npy = temp_file("k_readout.npy", "not a kernel");
    let base = ["kernel", "examples/deep_erf.action", "--x", path_str(&x)];
    let (code, out, err) = saddle(&[&base[..], &["--out", path_str(&npy)]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("readout kernel written to"), "{out}");
    let (code, out, err) = saddle(&[&base[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let readout = v["kernels"][v["readout"].as_str().expect("readout")]
        .as_array()
        .expect("the readout kernel");
    let written: ndarray::Array2<f64> = ndarray_npy::read_npy(&npy).expect("a float64 .npy");
    assert_eq!(written.dim(), (4, 4));
    for (i, row) in readout.iter().enumerate() {
        for (j, value) in row.as_array().expect("row").iter().enumerate() {
            let value = value.as_f64().expect("number");
            let file = written[[i, j]];
            assert!(
                (file - value).abs() <= 1e-15 * value.abs().max(1.0),
                "({i}, {j}): file {file}, JSON {value}"
            );
        }
    }
    let dir = npy.parent().expect("a folder");
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.contains("k_readout.saddle-tmp"))
        .collect();
    assert!(left.is_empty(), "a temporary file left beside it: {left:?}");
}

#[test]
fn kernel_json_has_params_kernels_and_means() {
    let x = temp_file("x.csv", X);
    let (code, out, err) = saddle(&[
        "kernel",
        "examples/deep_erf.action",
        "--x",
        x.to_str().expect("path"),
        "--layers",
        "all",
        "--json",
        "--set",
        "L=2",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["params"]["L"], 2.0);
    for key in ["C[0]", "C[1]", "C[2]"] {
        assert_eq!(v["kernels"][key].as_array().map(Vec::len), Some(4), "{key}");
    }
    // C[0] = g0/d X Xᵀ + gb0 at the corners: diagonal 1 + 0.1
    assert!((v["kernels"]["C[0]"][0][0].as_f64().unwrap_or(0.0) - 1.1).abs() < 1e-12);
    let (code, out, _) = saddle(&[
        "kernel",
        "examples/binary_threshold.action",
        "--x",
        x.to_str().expect("path"),
        "--layers",
        "all",
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        v["means"]["m[3]"].is_array() && v["kernels"]["Q[3]"].is_array(),
        "{v}"
    );
}

#[test]
fn kernels_without_closed_form_report_their_expansion() {
    let x = temp_file("xt.csv", X);
    let x = x.to_str().expect("path");
    let (code, out, err) = saddle(&["kernel", "examples/deep_tanh.action", "--x", x, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    // every hidden layer, though only the readout kernel is returned
    let layers = v["params"]["L"].as_f64().expect("L") as usize;
    let expansions = v["expansions"].as_object().expect("expansions");
    assert_eq!(expansions.len(), layers, "{v}");
    for (name, report) in expansions {
        let bound = report["worst_bound"].as_f64().expect("bound");
        assert!((0.0..=1e-12).contains(&bound), "{name}: {report}");
        assert_eq!(report["parity"], "odd", "{name}: tanh is odd");
        assert_eq!(report["fallback_pairs"], 0, "{name}: {report}");
    }
    // JSON objects keep the computation's order: C[2] before C[10] (serde_json's
    // `preserve_order`; a sorted map would put C[10] first)
    let (code, out, err) = saddle(&[
        "kernel",
        "examples/deep_tanh.action",
        "--x",
        x,
        "--set",
        "L=11",
        "--layers",
        "all",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let names = |object: &str| -> Vec<String> {
        v[object]
            .as_object()
            .expect(object)
            .keys()
            .cloned()
            .collect()
    };
    let layer_names = |from| (from..=11).map(|l| format!("C[{l}]")).collect::<Vec<_>>();
    assert_eq!(names("expansions"), layer_names(1));
    assert_eq!(names("kernels"), layer_names(0));
    // the per-pair fallback: Gauss–Hermite of order 160, or `--quadrature` if higher
    for (order, fallback) in [("80", 160), ("400", 400)] {
        let (code, out, err) = saddle(&[
            "kernel",
            "examples/deep_tanh.action",
            "--x",
            x,
            "--quadrature",
            order,
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
        assert_eq!(v["expansions"]["C[1]"]["fallback_order"], fallback, "{v}");
    }
    let (code, out, err) = saddle(&["kernel", "examples/deep_tanh.action", "--x", x]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("C[1] (no closed form): Mehler expansion, odd orders"),
        "{out}"
    );
    // GP prediction reports the same layers (on train ∪ test patterns)
    let (y, xt) = (temp_file("yt.csv", Y), temp_file("xtt.csv", XT));
    let (y, xt) = (y.to_str().expect("path"), xt.to_str().expect("path"));
    let solve = [
        "solve",
        "examples/deep_tanh.action",
        "--x",
        x,
        "--y",
        y,
        "--x-test",
        xt,
    ];
    let (code, out, err) = saddle(&[&solve[..], &["--json"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let expansions = v["expansions"].as_object().expect("expansions");
    assert_eq!(expansions.len(), layers, "{v}");
    assert!(
        expansions
            .values()
            .all(|r| r["worst_bound"].as_f64().is_some_and(|b| b <= 1e-12)),
        "{v}"
    );
    let (code, out, err) = saddle(&solve);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("C[3] (no closed form): Mehler expansion"),
        "{out}"
    );
    // closed forms report none
    let (code, out, _) = saddle(&["kernel", "examples/deep_erf.action", "--x", x, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(v.get("expansions").is_none(), "{v}");
}

#[test]
fn solve_json_reports_prediction_and_metrics() {
    let (x, y, xt, yt) = (
        temp_file("sx.csv", X),
        temp_file("sy.csv", Y),
        temp_file("sxt.csv", XT),
        temp_file("syt.csv", YT),
    );
    let out_dir = std::env::temp_dir().join(format!("saddle-cli-{}-solve", std::process::id()));
    let p = |p: &PathBuf| p.to_str().expect("path").to_string();
    let (code, out, err) = saddle(&[
        "solve",
        "examples/deep_relu.action",
        "--x",
        &p(&x),
        "--y",
        &p(&y),
        "--x-test",
        &p(&xt),
        "--y-test",
        &p(&yt),
        "--set",
        "L=2",
        "--json",
        "--out",
        &p(&out_dir),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    // the train kernel is kept before it becomes the Cholesky factor: kernels/C_2.npy equals
    // the JSON copy, and both are the ReLU readout kernel C[2] of `saddle kernel`
    assert_eq!(v["readout"], "C[2]");
    let written: ndarray::Array2<f64> =
        ndarray_npy::read_npy(out_dir.join("kernels/C_2.npy")).expect("kernels/C_2.npy");
    let (code, kernel_out, err) = saddle(&[
        "kernel",
        "examples/deep_relu.action",
        "--x",
        &p(&x),
        "--set",
        "L=2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let k: serde_json::Value = serde_json::from_str(&kernel_out).expect("JSON");
    assert_eq!(written.dim(), (4, 4));
    for i in 0..4 {
        for j in 0..4 {
            let json = v["kernels"]["C[2]"][i][j].as_f64().expect("entry");
            let nngp = k["kernels"]["C[2]"][i][j].as_f64().expect("C[2] entry");
            assert_eq!(written[[i, j]], json, "({i}, {j})");
            assert!(
                (json - nngp).abs() <= 1e-15 * nngp.abs().max(1.0),
                "({i}, {j})"
            );
        }
    }
    let mean: ndarray::Array2<f64> =
        ndarray_npy::read_npy(out_dir.join("prediction/mean.npy")).expect("prediction/mean.npy");
    let variance: ndarray::Array1<f64> =
        ndarray_npy::read_npy(out_dir.join("prediction/variance.npy")).expect("variance.npy");
    assert_eq!(
        mean[[0, 0]],
        v["prediction"]["mean"][0][0].as_f64().unwrap_or(f64::NAN)
    );
    assert_eq!(
        variance.len(),
        v["prediction"]["variance"].as_array().map_or(0, Vec::len)
    );
    let written_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("result.json")).expect("result.json"),
    )
    .expect("result.json is JSON");
    assert_eq!(written_json["kernels"]["C[2]"]["file"], "kernels/C_2.npy");
    assert_eq!(written_json["test_mse"], v["test_mse"]);
    // THEORY.md T4, ReLU row
    assert!(
        (v["prediction"]["mean"][0][0].as_f64().unwrap_or(0.0) + 0.70934181).abs() < 1e-7,
        "{v}"
    );
    assert!((v["log_marginal_likelihood"].as_f64().unwrap_or(0.0) + 8.53350245).abs() < 1e-7);
    for key in ["test_mse", "test_accuracy", "jitter", "params", "kernels"] {
        assert!(!v[key].is_null(), "missing {key}");
    }
}

#[test]
fn bad_numeric_input_is_a_clear_error() {
    let good = temp_file("good.csv", X);
    let nan = temp_file("nan.csv", "1,1\nNaN,2\n");
    let empty = temp_file("empty.csv", "");
    let ragged = temp_file("ragged.csv", "1,2\n3\n");
    let y_short = temp_file("yshort.csv", "1\n");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "kernel".into(),
                "examples/deep_erf.action".into(),
                "--x".into(),
                nan.display().to_string(),
            ],
            "NaN",
        ),
        (
            vec![
                "kernel".into(),
                "examples/deep_erf.action".into(),
                "--x".into(),
                empty.display().to_string(),
            ],
            "empty",
        ),
        (
            vec![
                "kernel".into(),
                "examples/deep_erf.action".into(),
                "--x".into(),
                ragged.display().to_string(),
            ],
            "ragged.csv:2",
        ),
        (
            vec![
                "kernel".into(),
                "examples/deep_erf.action".into(),
                "--x".into(),
                good.display().to_string(),
                "--set".into(),
                "kapa=1".into(),
            ],
            "did you mean `kappa`",
        ),
        (
            vec![
                "kernel".into(),
                "examples/deep_erf.action".into(),
                "--x".into(),
                good.display().to_string(),
                "--set".into(),
                "L=2.5".into(),
            ],
            "`L`",
        ),
        (
            vec![
                "kernel".into(),
                "examples/deep_erf.action".into(),
                "--x".into(),
                good.display().to_string(),
                "--set".into(),
                "g0=-1".into(),
            ],
            "not positive semi-definite",
        ),
        (
            vec![
                "solve".into(),
                "examples/deep_erf.action".into(),
                "--x".into(),
                good.display().to_string(),
                "--y".into(),
                y_short.display().to_string(),
                "--x-test".into(),
                good.display().to_string(),
            ],
            "--y has 1 rows",
        ),
    ];
    for (args, needle) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = saddle(&refs);
        assert_eq!(code, 1, "{args:?} should fail; stdout {out}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr does not mention {needle:?}:\n{err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    }
    // A single pattern is a valid (if small) data set.
    let one = temp_file("one.csv", "0.5,2\n");
    let (code, _, err) = saddle(&[
        "kernel",
        "examples/deep_erf.action",
        "--x",
        one.to_str().expect("path"),
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn derive_prints_json_with_expression_trees() {
    let (code, out, err) = saddle(&[
        "derive",
        "examples/deep_erf.action",
        "--format",
        "json",
        "--set",
        "L=2",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["forward"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["forward"][0]["unknown"], "C[1]");
    assert!(v["forward"][0]["nngp"]["tree"].is_object());
}

/// `solve --method linear` on T9 (THEORY.md §4.8): deep_erf with C⁽⁰⁾ = X Xᵀ of T1.
#[test]
fn solve_linear_reports_the_finite_width_shift_of_t9() {
    let (x, y) = (
        temp_file("t9x.csv", "1,0\n0.6,1.0677078252031311\n"),
        temp_file("t9y.csv", "1\n-1\n"),
    );
    let p = |p: &PathBuf| p.to_str().expect("path").to_string();
    let (code, out, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        &p(&x),
        "--y",
        &p(&y),
        "--method",
        "linear",
        "--set",
        "L=2",
        "--set",
        "N=1000",
        "--set",
        "g0=2",
        "--set",
        "gb0=0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    // N·(C − C*) of the readout layer
    let shift = |i: usize, j: usize| {
        let at = |m: &str| v[m]["C[2]"][i][j].as_f64().unwrap_or(f64::NAN);
        1000.0 * (at("kernels") - at("nngp"))
    };
    let got = [shift(0, 0), shift(0, 1), shift(1, 1)];
    for (g, w) in got.iter().zip([-0.13869881, -1.91259079, -0.13534331]) {
        assert!((g - w).abs() < 5e-8, "{got:?}");
    }
    // to leading order the readout's conjugate is the data gradient S_D⁽¹⁾(C*) of T9
    let (code, out, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        &p(&x),
        "--y",
        &p(&y),
        "--method",
        "linear",
        "--order",
        "leading",
        "--set",
        "L=2",
        "--set",
        "N=1000",
        "--set",
        "g0=2",
        "--set",
        "gb0=0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let ct = |i: usize, j: usize| v["conjugates"]["Ct[2]"][i][j].as_f64().unwrap_or(f64::NAN);
    let got = [ct(0, 0), ct(0, 1), ct(1, 1)];
    for (g, w) in got.iter().zip([2.7435330529, -3.0760205037, 2.5343350032]) {
        assert!((g - w).abs() < 1e-9, "{got:?}");
    }
    let (code, _, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        &p(&x),
        "--y",
        &p(&y),
        "--method",
        "map",
        "--order",
        "leading",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--method linear"), "{err}");
    // prediction: NNGP and the scalable MAP and linear system; not the quadrature path at
    // P ≤ 3
    let (code, _, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        &p(&x),
        "--y",
        &p(&y),
        "--method",
        "linear",
        "--x-test",
        &p(&x),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--expectations scalable"), "{err}");
    let (code, _, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        &p(&x),
        "--y",
        &p(&y),
        "--method",
        "map",
        "--x-test",
        &p(&x),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--expectations scalable"), "{err}");
}

/// `saddle … | head`: when the reader goes away the command stops quietly, with 0 and
/// without a panic message (Rust ignores SIGPIPE, so a plain `println!` would panic).
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_saddle"))
        .args([
            "derive",
            "examples/deep_linear.action",
            "--set",
            "L=20",
            "--format",
            "json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let mut first = [0_u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("some output");
    // the read end is dropped here; the report (≈ 150 kB) does not fit a pipe buffer
    let out = child.wait_with_output().expect("finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Usage errors are user errors (exit code 1, as DESIGN.md's contract says), a quadrature
/// order out of range is refused at the command line with its range, and help succeeds.
#[test]
fn usage_errors_exit_with_one() {
    let x = temp_file("xu.csv", X);
    let x = x.to_str().expect("path");
    let (code, _, err) = saddle(&["kernel", "examples/deep_erf.action", "--bogus"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--bogus"), "{err}");
    for order in ["0", "5001"] {
        let (code, _, err) = saddle(&[
            "kernel",
            "examples/deep_tanh.action",
            "--x",
            x,
            "--quadrature",
            order,
        ]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("--quadrature") && err.contains("1..=5000"),
            "{err}"
        );
    }
    let (code, out, err) = saddle(&["--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kernel"), "{out}");
}

/// A failure inside an expression of the action at finite width is shown where the
/// expression is written: file:line:col with a caret, as the checker's diagnostics are.
/// (`N = 0` itself is refused before solving, naming the parameter; a scale `s` that only
/// the data term divides by reaches the evaluation.)
#[test]
fn finite_width_evaluation_errors_point_into_the_action() {
    let (x, y) = (
        temp_file("xn.csv", "1,1\n-1,0.5\n"),
        temp_file("yn.csv", "1\n-1\n"),
    );
    let (x, y) = (x.to_str().expect("path"), y.to_str().expect("path"));
    let source = include_str!("../examples/deep_erf.action")
        .replace("param N     = 100", "param N     = 100\nparam s     = 1")
        .replace("- 1/2 * tr(Y^T", "- 1/(2 * s) * tr(Y^T");
    let action = temp_file("scaled.action", &source);
    let action = action.to_str().expect("path");
    let (code, _, err) = saddle(&[
        "solve", action, "--x", x, "--y", y, "--method", "map", "--set", "s=0",
    ]);
    assert_eq!(code, 1, "{err}");
    let line = source
        .lines()
        .position(|l| l.contains("1/(2 * s)"))
        .expect("the line with 1/(2 * s)")
        + 1;
    assert!(err.contains(&format!("scaled.action:{line}:")), "{err}");
    assert!(err.contains("division by zero"), "{err}");
    assert!(!err.contains("source bytes"), "{err}");
    let (code, _, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        x,
        "--y",
        y,
        "--method",
        "map",
        "--set",
        "N=0",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("parameter `N` = 0"), "{err}");
}

#[test]
fn plot_draws_kernels_and_curves_from_results() {
    let (x, y, xt) = (
        temp_file("px.csv", X),
        temp_file("py.csv", Y),
        temp_file("pxt.csv", XT),
    );
    let (code, json, err) = saddle(&[
        "kernel",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--json",
        "--layers",
        "all",
    ]);
    assert_eq!(code, 0, "{err}");
    let result = temp_file("kernels.json", &json);
    let figure = temp_file("kernels.svg", "");
    let (code, out, err) = saddle(&[
        "plot",
        path_str(&result),
        "--labels",
        path_str(&y),
        "--out",
        path_str(&figure),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote"), "{out}");
    let text = saddle::plot::svg_text(&std::fs::read_to_string(&figure).expect("written"));
    for panel in [
        "C[0]",
        "C[1]",
        "C[2]",
        "C[3]",
        "nngp kernels, patterns sorted by class",
    ] {
        assert!(text.iter().any(|t| t == panel), "{panel} in {text:?}");
    }
    // a figure spec (what `demo` writes next to its curves)
    let spec = temp_file(
        "spec.json",
        r#"{"title": "t", "x_label": "depth L", "y_label": "test MSE",
            "curves": [{"label": "erf", "x": [1, 2, 4], "y": [0.1, 0.09, 0.095],
                        "marker": "line_points"}]}"#,
    );
    let png = temp_file("curves.png", "");
    let (code, _, err) = saddle(&["plot", path_str(&spec), "--out", path_str(&png)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(&std::fs::read(&png).expect("written")[..4], b"\x89PNG");
    // bad input: named errors, exit 1
    for (args, says) in [
        (
            vec!["plot", path_str(&result), "--out", "figure.pdf"],
            "as .svg or .png",
        ),
        (
            vec![
                "plot",
                path_str(&result),
                "--entries",
                "C[9]",
                "--out",
                path_str(&figure),
            ],
            "--entries C[9]",
        ),
        (
            vec!["plot", path_str(&x), "--out", path_str(&figure)],
            "not a JSON result",
        ),
        (
            vec![
                "plot",
                path_str(&result),
                "--labels",
                path_str(&xt),
                "--out",
                path_str(&figure),
            ],
            "--labels has 3 rows",
        ),
    ] {
        let (code, _, err) = saddle(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn demo_writes_its_figures() {
    let dir = std::env::temp_dir().join(format!("saddle-demo-test-{}", std::process::id()));
    let (code, out, err) = saddle(&[
        "demo",
        "mnist",
        "--train",
        "40",
        "--test",
        "40",
        "--out",
        path_str(&dir),
    ]);
    assert_eq!(code, 0, "{err}");
    for stem in [
        "nngp_accuracy_vs_depth",
        "nngp_mse_vs_depth",
        "nngp_lnp_vs_depth",
        "nngp_kernels_erf",
    ] {
        assert!(out.contains(stem), "{stem} listed in {out}");
        for ext in ["svg", "png"] {
            let path = dir.join(format!("{stem}.{ext}"));
            assert!(path.exists(), "{} written", path.display());
        }
    }
    let spec = std::fs::read_to_string(dir.join("nngp_mse_vs_depth.json")).expect("spec");
    let spec: serde_json::Value = serde_json::from_str(&spec).expect("JSON");
    assert_eq!(spec["curves"].as_array().map(Vec::len), Some(2));
    assert_eq!(spec["x_label"], "depth L (hidden layers)");
}

#[test]
fn the_demo_tour_writes_every_figure_and_a_report() {
    let dir = std::env::temp_dir().join(format!("saddle-tour-test-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let (code, out, err) = saddle(&[
        "demo",
        "--train",
        "12",
        "--test",
        "12",
        "--out",
        path_str(&dir),
    ]);
    assert_eq!(code, 0, "{err}");
    for part in [
        "1/3: NNGP against depth",
        "2/3: feature learning",
        "3/3: theory against the simulated networks",
    ] {
        assert!(out.contains(part), "{part} in {out}");
    }
    for stem in [
        "nngp_accuracy_vs_depth",
        "nngp_kernels_erf",
        "map_mse_vs_width",
        "map_kernels_erf",
        "network_vs_theory",
    ] {
        assert!(dir.join(format!("{stem}.png")).exists(), "{stem}.png");
    }
    // the simulation figure: the network's points carry standard errors
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("network_vs_theory.json")).expect("spec"),
    )
    .expect("JSON");
    let errors = spec["curves"][0]["error"].as_array().expect("error bars");
    assert!(
        errors.iter().all(|e| e.as_f64().is_some_and(|e| e > 0.0)),
        "{spec}"
    );
    assert!(out.contains("apart"), "{out}");
    // the report embeds every figure of the folder
    let report = std::fs::read_to_string(dir.join("report.html")).expect("report.html");
    let figures = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert_eq!(
        report.matches("<img src=\"data:image/png;base64,").count(),
        figures
    );
    assert!(
        out.contains(&format!("report: {}", dir.join("report.html").display())),
        "{out}"
    );
}

#[test]
fn plot_option_draws_what_the_command_computed() {
    let (x, y) = (temp_file("qx.csv", X), temp_file("qy.csv", Y));
    let figure = temp_file("kernel_plot.svg", "");
    let (code, _, err) = saddle(&[
        "kernel",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--layers",
        "all",
        "--plot",
        path_str(&figure),
        "--labels",
        path_str(&y),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = saddle::plot::svg_text(&std::fs::read_to_string(&figure).expect("written"));
    assert!(text.iter().any(|t| t == "C[3]"), "{text:?}");
    let figure = temp_file("map_plot.svg", "");
    let (code, _, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--method",
        "map",
        "--expectations",
        "scalable",
        "--set",
        "L=1",
        "--plot",
        path_str(&figure),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = saddle::plot::svg_text(&std::fs::read_to_string(&figure).expect("written"));
    for t in [
        "NNGP (N = ∞)",
        "map, N = 100",
        "deep_erf: C[1], patterns sorted by class",
    ] {
        assert!(text.iter().any(|s| s == t), "{t} in {text:?}");
    }
    let figure = temp_file("simulate_plot.svg", "");
    let (code, _, err) = saddle(&[
        "simulate",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--prior",
        "--samples",
        "200",
        "--set",
        "N=10",
        "--set",
        "L=2",
        "--plot",
        path_str(&figure),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = saddle::plot::svg_text(&std::fs::read_to_string(&figure).expect("written"));
    for t in ["C[2], NNGP (N = ∞)", "C[2], simulated prior mean"] {
        assert!(text.iter().any(|s| s == t), "{t} in {text:?}");
    }
}

#[test]
fn data_writes_a_balanced_subset_of_the_bundled_digits() {
    let dir = std::env::temp_dir().join(format!("saddle-data-test-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let (code, out, err) = saddle(&[
        "data",
        "mnist",
        "--train",
        "10",
        "--test",
        "6",
        "--format",
        "csv",
        "--out",
        path_str(&dir),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("10 training and 6 test patterns, d = 784"),
        "{out}"
    );
    let y = std::fs::read_to_string(dir.join("y.csv")).expect("y.csv");
    let labels: Vec<f64> = y.lines().map(|l| l.parse().expect("a number")).collect();
    assert_eq!(labels.len(), 10);
    assert_eq!(
        labels.iter().filter(|&&v| v == 1.0).count(),
        5,
        "balanced ±1"
    );
    let x = std::fs::read_to_string(dir.join("xt.csv")).expect("xt.csv");
    let first: Vec<f64> = x
        .lines()
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(first.len(), 784);
    // standardised: mean 0, ‖x‖²/d = 1
    let mean = first.iter().sum::<f64>() / 784.0;
    let power = first.iter().map(|v| v * v).sum::<f64>() / 784.0;
    assert!(
        mean.abs() < 1e-12 && (power - 1.0).abs() < 1e-12,
        "{mean} {power}"
    );
    for (digits, says) in [
        ("0,0", "two different digits"),
        ("3", "two digits"),
        ("a,b", "two digits"),
    ] {
        let (code, _, err) =
            saddle(&["data", "mnist", "--digits", digits, "--out", path_str(&dir)]);
        assert_eq!(code, 1, "{digits}");
        assert!(err.contains(says), "{digits}: {err}");
    }
}

#[test]
fn criticality_scans_the_phase_diagram_of_a_theory() {
    // erf with g_b = 0.1 (THEORY.md T3): χ₁ crosses 1 between g = 1.5 and g = 2
    let (code, out, err) = saddle(&[
        "criticality",
        "examples/deep_erf.action",
        "--set",
        "gb=0.1",
        "--scan",
        "g=0.5,1.5,2,3",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["step"], "C[3] ← C[2]");
    let points = v["points"].as_array().expect("points");
    assert_eq!(points.len(), 4);
    let t3 = [
        (0.5, 0.1664602252, 0.4051605484, "ordered"),
        (1.5, 0.5696772779, 0.8980757687, "ordered"),
        (2.0, 0.8943028437, 1.0246935388, "chaotic"),
        (3.0, 1.6341877207, 1.2112981760, "chaotic"),
    ];
    for (p, (g, q, chi, phase)) in points.iter().zip(t3) {
        assert_eq!(p["scan"]["g"], g);
        let got_q = p["fixed_point"]["C"].as_f64().expect("q*");
        let got_chi = p["chi1"].as_f64().expect("χ₁");
        assert!((got_q - q).abs() < 1e-9, "q* at g = {g}: {got_q}");
        assert!((got_chi - chi).abs() < 1e-9, "χ₁ at g = {g}: {got_chi}");
        assert_eq!(p["phase"], phase);
        // ordered: ξ = −1/ln χ₁ and ρ* = 1; chaotic: a stable ρ* < 1
        let xi = p["depth_scale"].as_f64().expect("ξ");
        let rho = p["stable_correlation"].as_f64().expect("ρ*");
        if phase == "ordered" {
            assert!((xi + 1.0 / chi.ln()).abs() < 1e-6, "ξ at g = {g}: {xi}");
            assert_eq!(rho, 1.0);
        } else {
            assert!(rho > 0.0 && rho < 1.0, "ρ* at g = {g}: {rho}");
        }
    }

    // the table says the same
    let (code, out, err) = saddle(&[
        "criticality",
        "examples/deep_erf.action",
        "--set",
        "gb=0.1",
        "--scan",
        "g=2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("step map C[3] ← C[2]"), "{out}");
    assert!(
        out.contains("1.02469354") && out.contains("chaotic"),
        "{out}"
    );
}

#[test]
fn criticality_reports_infinite_slopes_and_unbounded_lengths_without_nan() {
    // sign units: χ₁ = ∞ with the square-root law 1 − ρ' ≈ (2√2/π)·√(1 − ρ) at g_b = 0
    let (code, out, err) = saddle(&[
        "criticality",
        "examples/binary_sign.action",
        "--set",
        "gb=0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("NaN") && !out.contains("null"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let p = &v["points"][0];
    assert_eq!(p["chi1"], "infinite");
    assert_eq!(p["phase"], "chaotic");
    let law = &p["chi1_divergence"]["law"];
    assert!(
        (law["exponent"].as_f64().expect("exponent") - 0.5).abs() < 1e-3,
        "{law}"
    );
    let a = 2.0 * std::f64::consts::SQRT_2 / std::f64::consts::PI;
    assert!(
        (law["coefficient"].as_f64().expect("A") - a).abs() < 1e-4,
        "{law}"
    );
    let (code, out, err) = saddle(&["criticality", "examples/binary_sign.action"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains('∞') && out.contains("1 − ρ' ≈"), "{out}");

    // ReLU above g = 2 has no finite length: said at that point, the others still reported
    let (code, out, err) = saddle(&[
        "criticality",
        "examples/deep_relu.action",
        "--set",
        "gb=0",
        "--scan",
        "g=1,3",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!((v["points"][0]["chi1"].as_f64().expect("χ₁") - 0.5).abs() < 1e-7);
    let why = v["points"][1]["error"].as_str().expect("an error at g = 3");
    assert!(why.contains("grows without bound"), "{why}");
}

#[test]
fn criticality_refuses_what_has_no_step_map() {
    let (code, _, err) = saddle(&["criticality", "examples/recurrent_erf_driven.action"]);
    assert_eq!(code, 1);
    assert!(err.contains("driven by the data"), "{err}");
    let (code, _, err) = saddle(&["criticality", "examples/deep_erf.action", "--set", "L=0"]);
    assert_eq!(code, 1);
    assert!(err.contains("defined from the data"), "{err}");
    let (code, _, err) = saddle(&[
        "criticality",
        "examples/deep_erf.action",
        "--scan",
        "gamma=1:2:3",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--scan gamma") && err.contains("no parameter"),
        "{err}"
    );
    let (code, _, err) = saddle(&[
        "criticality",
        "examples/deep_erf.action",
        "--scan",
        "L=1.5,2",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("integer parameter"), "{err}");
}

#[test]
fn criticality_draws_chi1_and_the_depth_scale() {
    let figure = temp_file("criticality.svg", "");
    let dir = std::env::temp_dir().join(format!("saddle-criticality-{}", std::process::id()));
    let (code, _, err) = saddle(&[
        "criticality",
        "examples/deep_tanh.action",
        "--scan",
        "g=0.5:3:11",
        "--out",
        path_str(&dir),
        "--plot",
        path_str(&figure),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = saddle::plot::svg_text(&std::fs::read_to_string(&figure).expect("written"));
    for t in [
        "deep_tanh: order and chaos",
        "deep_tanh: depth scale",
        "χ₁ (slope at ρ = 1)",
        "χ₁ = 1 (edge of chaos)",
        "ξ = −1/ln χ (layers)",
    ] {
        assert!(text.iter().any(|s| s == t), "{t} in {text:?}");
    }
    insta::assert_debug_snapshot!("criticality_svg_text", text);
    // `saddle plot DIR` draws the same figure from the result
    let again = temp_file("criticality_again.svg", "");
    let (code, _, err) = saddle(&["plot", path_str(&dir), "--out", path_str(&again)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&figure).expect("first"),
        std::fs::read_to_string(&again).expect("second")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn separation_reproduces_t12_and_finds_the_optimal_depth() {
    let (code, out, err) = saddle(&[
        "separation",
        "examples/binary_sign.action",
        "--set",
        "L=8",
        "--set",
        "gb=0",
        "--overlaps",
        "0.99,0.8",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let p = &v["points"][0];
    let t12 = [
        0.190000, 0.319559, 0.325665, 0.255421, 0.177568, 0.117220, 0.075738, 0.048508, 0.030956,
    ];
    let delta = p["theory"]["delta"].as_array().expect("Δ");
    assert_eq!(delta.len(), t12.len());
    for (got, want) in delta.iter().zip(t12) {
        assert!(
            (got.as_f64().expect("a number") - want).abs() < 1e-6,
            "{delta:?}"
        );
    }
    assert_eq!(p["optimal_step"], 2);
    assert_eq!(p["optimum"], "C[2]");
    assert_eq!(v["method"], "nngp");
    assert_eq!(v["dynamics"], "synchronous");
}

#[test]
fn separation_simulates_threshold_networks_beside_the_theory() {
    let args = [
        "separation",
        "examples/binary_threshold.action",
        "--overlaps",
        "0.999,0.9",
        "--set",
        "L=4",
        "--set",
        "N=1000",
        "--scan",
        "theta=0,0.5",
        "--simulate",
        "--samples",
        "100",
        "--seed",
        "5",
        "--json",
    ];
    let (code, out, err) = saddle(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["method"], "nngp+simulate-prior");
    // a denser network separates best after one step, a sparser one after two
    for (p, l) in v["points"].as_array().expect("points").iter().zip([1, 2]) {
        assert_eq!(p["optimal_step"], l, "{p}");
        assert_eq!(p["simulation"]["optimal_step"], l, "{p}");
        for z in p["simulation"]["delta_z"].as_array().expect("z") {
            assert!(z.as_f64().expect("z").abs() < 4.0, "{p}");
        }
    }
    // the seed fixes every number
    let (_, again, _) = saddle(&args);
    assert_eq!(out, again);
    // the table says the same
    let table: Vec<&str> = args.iter().copied().filter(|a| *a != "--json").collect();
    let (code, out, err) = saddle(&table);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("l* sim") && out.contains("Δ(l*) sim ± s.e."),
        "{out}"
    );
}

#[test]
fn separation_under_glauber_dynamics_and_from_labelled_patterns() {
    let (code, out, err) = saddle(&[
        "separation",
        "examples/binary_sign.action",
        "--set",
        "gb=0",
        "--dynamics",
        "glauber",
        "--time",
        "3",
        "--interval",
        "0.25",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let p = &v["points"][0];
    assert_eq!(p["steps"].as_array().expect("times").len(), 13);
    assert_eq!(p["steps"][4], "t = 1");
    assert_eq!(v["method"], "glauber");
    // started from the first layer of units (Δ = 0.3196), asynchronous updates mix old and
    // new states: Δ peaks within the first quarter update per unit, below the synchronous
    // Δ(l* = 2) = 0.3257, and then decays
    let delta: Vec<f64> = p["theory"]["delta"]
        .as_array()
        .expect("Δ")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    assert!((delta[0] - 0.319559).abs() < 1e-6, "{p}");
    assert!(delta.iter().all(|d| *d < 0.3257), "{p}");
    assert!(delta.windows(2).skip(1).all(|w| w[1] < w[0]), "{p}");
    // the finite network run asynchronously (1000 units, couplings shared over time)
    let glauber = [
        "separation",
        "examples/binary_sign.action",
        "--set",
        "gb=0",
        "--dynamics",
        "glauber",
        "--time",
        "2",
        "--interval",
        "0.5",
        "--simulate",
        "--samples",
        "40",
        "--seed",
        "3",
        "--json",
    ];
    let (code, out, err) = saddle(&glauber);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["method"], "glauber+simulate-glauber");
    let p = &v["points"][0];
    let sim = &p["simulation"];
    assert_eq!(sim["samples"], 40);
    assert_eq!(sim["mean"]["delta"].as_array().expect("Δ").len(), 5);
    for z in sim["delta_z"].as_array().expect("z") {
        assert!(z.as_f64().expect("z").abs() < 4.0, "{p}");
    }
    let within = sim["optimal_steps_within_2se"].as_array().expect("steps");
    assert!(within.contains(&sim["optimal_step"]), "{p}");
    let table: Vec<&str> = glauber.iter().copied().filter(|a| *a != "--json").collect();
    let (code, out, err) = saddle(&table);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("t*: theory t = "), "{out}");

    // the recurrent network runs asynchronously too (its one W, h(0) from the inputs)
    let (code, out, err) = saddle(&[
        "separation",
        "examples/recurrent_erf.action",
        "--dynamics",
        "glauber",
        "--time",
        "1",
        "--interval",
        "0.5",
        "--set",
        "N=1000",
        "--simulate",
        "--samples",
        "20",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["method"], "glauber+simulate-glauber");
    for z in v["points"][0]["simulation"]["delta_z"]
        .as_array()
        .expect("z")
    {
        assert!(z.as_f64().expect("z").abs() < 4.0, "{v}");
    }

    // two classes of patterns from files
    let x = temp_file(
        "sep_x.csv",
        "1,0,0.1\n0.9,0.1,0.2\n1,0.2,0\n0,1,0.1\n0.1,0.9,0\n0.2,1,0.1\n",
    );
    let labels = temp_file("sep_labels.csv", "1\n1\n1\n-1\n-1\n-1\n");
    let (code, out, err) = saddle(&[
        "separation",
        "examples/binary_sign.action",
        "--x",
        path_str(&x),
        "--labels",
        path_str(&labels),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["input"]["pairs_within"], 6);
    assert_eq!(v["input"]["pairs_between"], 9);
}

#[test]
fn separation_refuses_bad_input_with_the_reason() {
    for (args, says) in [
        (vec!["--overlaps", "1.5,0.2"], "not an overlap in [-1, 1]"),
        (
            vec!["--dynamics", "glauber", "--interval", "0"],
            "0 < interval",
        ),
        (vec!["--simulate", "--samples", "1"], "at least 2 draws"),
        (vec!["--scan", "nope=1,2"], "--scan nope"),
    ] {
        let mut full = vec!["separation", "examples/binary_sign.action"];
        full.extend(args.iter().copied());
        let (code, _, err) = saddle(&full);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let x = temp_file("sep_x1.csv", "1,0\n0,1\n");
    let labels = temp_file("sep_l1.csv", "1\n-1\n");
    let (code, _, err) = saddle(&[
        "separation",
        "examples/binary_sign.action",
        "--x",
        path_str(&x),
        "--labels",
        path_str(&labels),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("pairs within a class"), "{err}");
    let (code, _, err) = saddle(&["separation", "examples/deep_erf.action", "--set", "L=0"]);
    assert_eq!(code, 1);
    assert!(err.contains("only step"), "{err}");
}

#[test]
fn separation_draws_delta_and_the_optimum_against_the_threshold() {
    let figure = temp_file("separation.svg", "");
    let dir = std::env::temp_dir().join(format!("saddle-separation-{}", std::process::id()));
    let (code, _, err) = saddle(&[
        "separation",
        "examples/binary_threshold.action",
        "--overlaps",
        "0.999,0.9",
        "--set",
        "L=4",
        "--scan",
        "theta=0,0.5,1",
        "--simulate",
        "--samples",
        "20",
        "--out",
        path_str(&dir),
        "--plot",
        path_str(&figure),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = saddle::plot::svg_text(&std::fs::read_to_string(&figure).expect("written"));
    for t in [
        "binary_threshold: pattern separation",
        "binary_threshold: optimal processing step",
        "theta = 0.5, theory",
        "theta = 0.5, simulation ± s.e.",
        "l* theory",
        "l* simulation",
    ] {
        assert!(text.iter().any(|s| s == t), "{t} in {text:?}");
    }
    insta::assert_debug_snapshot!("separation_svg_text", text);
    let again = temp_file("separation_again.svg", "");
    let (code, _, err) = saddle(&["plot", path_str(&dir), "--out", path_str(&again)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&figure).expect("first"),
        std::fs::read_to_string(&again).expect("second")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn simulate_samples_recurrent_networks_with_weights_shared_over_time() {
    // THEORY.md T13's setting: h(0) ~ N(0, Q), Q = [[1, 0.6], [0.6, 1.5]], g = 1.5, g_b = 0,
    // N = 100; C[5,5] = g K_4
    let x = temp_file("t13_x.csv", "1.4142135624,0\n0.8485281374,1.5099668871\n");
    let (code, out, err) = saddle(&[
        "simulate",
        "examples/recurrent_erf.action",
        "--x",
        path_str(&x),
        "--prior",
        "--set",
        "N=100",
        "--set",
        "T=5",
        "--set",
        "gb=0",
        "--samples",
        "3000",
        "--seed",
        "4",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["recurrent"]["units"], 100);
    assert_eq!(v["readout"], "C[5,5]");
    let at = |section: &str, entry: &str, i: usize, j: usize| {
        v[section][entry][i][j].as_f64().expect("a number")
    };
    // N·Var of K_4 against T13's recurrent networks (4000 of them, s.e. ≈ 2 %)
    for ((i, j), want) in [((0, 0), 0.1074), ((0, 1), 0.2425), ((1, 1), 0.1033)] {
        let n_var = at("variance", "C[5,5]", i, j) * 100.0 / 2.25;
        let se = at("variance_standard_errors", "C[5,5]", i, j) * 100.0 / 2.25;
        let z = (n_var - want) / (se * se + (0.02 * want).powi(2)).sqrt();
        assert!(
            z.abs() < 4.0,
            "N·Var K_4[{i},{j}] = {n_var} ± {se} vs {want}"
        );
    }
    // W → −W flips h at odd times: blocks between an odd and an even time average to zero,
    // while the shared weights correlate the times two steps apart at order 1/N
    let odd = at("kernels", "C[5,4]", 0, 0);
    let odd_se = at("standard_errors", "C[5,4]", 0, 0);
    assert!(odd.abs() < 4.0 * odd_se, "C[5,4] = {odd} ± {odd_se}");
    let even = at("kernels", "C[5,3]", 0, 0);
    let even_se = at("standard_errors", "C[5,3]", 0, 0);
    assert!(even > 3.0 * even_se, "C[5,3] = {even} ± {even_se}");
    assert_eq!(at("nngp", "C[5,3]", 0, 0), 0.0);

    // the posterior takes one target row per pattern (tests/simulate.rs samples it)
    let y = temp_file("t13_y.csv", "1\n-1\n1\n");
    let (code, _, err) = saddle(&[
        "simulate",
        "examples/recurrent_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--y") && err.contains('3'), "{err}");
}

#[test]
fn separation_simulates_recurrent_networks_too() {
    // equal-time kernels of the recurrent network are the deep network's (THEORY.md §6 (i)):
    // the same curve as T12's erf comparison, and the shared-weight network follows it
    let (code, out, err) = saddle(&[
        "separation",
        "examples/recurrent_erf.action",
        "--set",
        "T=8",
        "--set",
        "gb=0",
        "--set",
        "N=1000",
        "--simulate",
        "--samples",
        "100",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let p = &v["points"][0];
    assert_eq!(p["steps"][8], "C[8,8]");
    let last = p["theory"]["delta"][8].as_f64().expect("Δ(8)");
    assert!((last - 0.274839).abs() < 1e-6, "{last}");
    for z in p["simulation"]["delta_z"].as_array().expect("z") {
        assert!(z.as_f64().expect("z").abs() < 4.0, "{p}");
    }
}

#[test]
fn simulate_shows_the_one_loop_variance_beside_the_sampled_one() {
    // THEORY.md T13, deep network: one-loop N·Var of K_4 = C[5]/g
    let x = temp_file(
        "t13_deep_x.csv",
        "1.4142135624,0\n0.8485281374,1.5099668871\n",
    );
    let (code, out, err) = saddle(&[
        "simulate",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--prior",
        "--one-loop",
        "--set",
        "N=100",
        "--set",
        "L=5",
        "--set",
        "gb=0",
        "--set",
        "gb0=0",
        "--samples",
        "4000",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    for ((i, j), want) in [((0, 0), 0.101652), ((0, 1), 0.242930), ((1, 1), 0.102222)] {
        let theory = v["one_loop_variance"]["C[5]"][i][j]
            .as_f64()
            .expect("one loop")
            / 2.25;
        assert!(
            (theory - want).abs() < 1e-5,
            "one-loop K_4[{i},{j}] = {theory}"
        );
        let sampled = v["variance"]["C[5]"][i][j].as_f64().expect("N·Var") * 100.0 / 2.25;
        let se = v["variance_standard_errors"]["C[5]"][i][j]
            .as_f64()
            .expect("s.e.")
            * 100.0
            / 2.25;
        // the sampled network at N = 100 agrees with the O(1/N) theory to O(1/N²)
        assert!(
            (sampled - want).abs() < 4.0 * se + 0.01 * want,
            "{sampled} ± {se} vs {want}"
        );
    }
}

#[test]
fn simulate_one_loop_at_four_patterns_pair_by_pair_matches_the_sampled_network() {
    // P = 4 real digits: N·Var and the mean shift m = N·(E[C] − C*) at one loop (pattern
    // pair by pair) against 20 000 prior draws of the network at N = 50, every entry of both
    // layers within 4 standard errors (plus an O(1/N) allowance for the next order)
    let (x, _) = digits(4);
    let x = temp_file("one_loop_p4_x.csv", &csv(&x));
    let (code, out, err) = saddle(&[
        "simulate",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--prior",
        "--one-loop",
        "--set",
        "N=50",
        "--set",
        "L=2",
        "--samples",
        "20000",
        "--seed",
        "3",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let at = |section: &str, name: &str, i: usize, j: usize| {
        v[section][name][i][j]
            .as_f64()
            .unwrap_or_else(|| panic!("{section} {name}"))
    };
    let n = 50.0;
    let mut largest_shift = 0.0f64;
    for name in ["C[1]", "C[2]"] {
        for i in 0..4 {
            for j in i..4 {
                let (theory, sampled, se) = (
                    at("one_loop_variance", name, i, j),
                    at("variance", name, i, j) * n,
                    at("variance_standard_errors", name, i, j) * n,
                );
                assert!(
                    (sampled - theory).abs() < 4.0 * se + 0.02 * theory.abs(),
                    "{name} {i}{j}: N·Var {sampled} ± {se} vs {theory}"
                );
                let (theory, sampled, se) = (
                    at("one_loop_shift", name, i, j),
                    n * (at("kernels", name, i, j) - at("nngp", name, i, j)),
                    n * at("standard_errors", name, i, j),
                );
                assert!(
                    (sampled - theory).abs() < 4.0 * se + 0.02 * theory.abs(),
                    "{name} {i}{j}: N·shift {sampled} ± {se} vs {theory}"
                );
                assert!(se < 0.05, "{name} {i}{j}: s.e. {se}");
                if name == "C[2]" {
                    largest_shift = largest_shift.max(theory.abs());
                }
            }
        }
    }
    // the second layer's shift is resolved: larger than the sampling error
    assert!(largest_shift > 0.05, "{largest_shift}");
}

#[test]
fn recurrent_one_loop_variance_shows_the_shared_weights() {
    let x = temp_file(
        "t13_recurrent_x.csv",
        "1.4142135624,0\n0.8485281374,1.5099668871\n",
    );
    let run = |file: &str, set: &[&str], samples: &str| -> serde_json::Value {
        let mut args = vec![
            "simulate",
            file,
            "--x",
            path_str(&x),
            "--prior",
            "--one-loop",
            "--samples",
            samples,
            "--json",
        ];
        for s in set {
            args.extend(["--set", s]);
        }
        let (code, out, err) = saddle(&args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).expect("JSON")
    };
    let entry = |v: &serde_json::Value, what: &str, name: &str, i: usize, j: usize| {
        v[what][name][i][j].as_f64().expect("a number")
    };
    // T13 (g_b = 0, input at t = 0 only): the cross-time kernels vanish, so at one loop the
    // equal-time blocks fluctuate exactly as the deep network's layers
    let v = run(
        "examples/recurrent_erf.action",
        &["N=100", "T=5", "gb=0", "gu=1"],
        "2",
    );
    for ((i, j), want) in [((0, 0), 0.101652), ((0, 1), 0.242930), ((1, 1), 0.102222)] {
        let theory = entry(&v, "one_loop_variance", "C[5,5]", i, j) / 2.25;
        assert!((theory - want).abs() < 1e-5, "K_4[{i},{j}] = {theory}");
    }
    // the error estimate compares with two thirds of the order: conservative
    assert!(v["one_loop"]["quadrature_error"].as_f64().expect("error") < 1e-3);
    // a bias shared over time correlates the times: the recurrent readout kernel fluctuates
    // more than the deep one, and 3000 networks of 500 units agree with the theory
    let recurrent = run(
        "examples/recurrent_erf.action",
        &["N=500", "T=3", "gb=0.3", "gu=1"],
        "3000",
    );
    let deep = run(
        "examples/deep_erf.action",
        &["N=500", "L=3", "gb=0.3", "gb0=0.3", "g0=1"],
        "2",
    );
    for (i, j) in [(0, 0), (0, 1), (1, 1)] {
        let theory = entry(&recurrent, "one_loop_variance", "C[3,3]", i, j);
        let layered = entry(&deep, "one_loop_variance", "C[3]", i, j);
        assert!(
            theory > 1.05 * layered,
            "C[3,3]: {theory} vs deep {layered}"
        );
        for name in ["C[3,3]", "C[3,2]", "C[2,2]"] {
            let theory = entry(&recurrent, "one_loop_variance", name, i, j);
            let sampled = entry(&recurrent, "variance", name, i, j) * 500.0;
            let se = entry(&recurrent, "variance_standard_errors", name, i, j) * 500.0;
            // O(1/N) corrections of N·Var are a few per cent at N = 500
            assert!(
                (sampled - theory).abs() < 4.0 * se + 0.02 * theory,
                "{name}[{i},{j}]: {sampled} ± {se} vs {theory}"
            );
        }
    }
}

#[test]
fn compare_kernels_checks_the_deep_recurrent_identity() {
    // THEORY.md §6 (i), T11: with input only at t = 0 the equal-time recurrent kernels are
    // the deep kernels (deep_erf's gb0 plays the recurrent bias at t = 0)
    let x = temp_file("ck_x.csv", "1,0.2,0\n0.3,1,0.5\n-0.4,0.1,1\n");
    let (code, out, err) = saddle(&[
        "compare-kernels",
        "examples/deep_erf.action",
        "examples/recurrent_erf.action",
        "--x",
        path_str(&x),
        "--set",
        "g=1.5",
        "--set",
        "gb=0.1",
        "--set-first",
        "L=4",
        "--set-first",
        "gb0=0.1",
        "--set-second",
        "T=4",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["identical"], true, "{v}");
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 5);
    assert_eq!(
        (steps[4]["first"].as_str(), steps[4]["second"].as_str()),
        (Some("C[4]"), Some("C[4,4]"))
    );
    for s in steps {
        assert!(s["max_abs_difference"].as_f64().expect("Δ") < 1e-12, "{s}");
    }
    // input at every step: the driven recurrent network is a different theory
    let (code, out, err) = saddle(&[
        "compare-kernels",
        "examples/deep_erf.action",
        "examples/recurrent_erf_driven.action",
        "--x",
        path_str(&x),
        "--set-first",
        "L=3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("different"), "{out}");
    let (code, _, err) = saddle(&[
        "compare-kernels",
        "examples/deep_erf.action",
        "examples/recurrent_erf.action",
        "--x",
        path_str(&x),
        "--set",
        "nope=1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("neither theory"), "{err}");
}

/// Waits (at most 60 s) until process `pid` catches SIGINT (bit 2 of `SigCgt` in
/// /proc/PID/status), so the signal reaches the command's handler, not the default action;
/// where there is no /proc, one second.
fn wait_for_sigint_handler(pid: u32) {
    let start = std::time::Instant::now();
    let status = format!("/proc/{pid}/status");
    while start.elapsed() < std::time::Duration::from_secs(60) {
        let Ok(text) = std::fs::read_to_string(&status) else {
            std::thread::sleep(std::time::Duration::from_secs(1));
            return;
        };
        let caught = text
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
        if caught.is_some_and(|mask| mask & (1 << 1) != 0) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Every file under `dir` (none when it does not exist), relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                found.push(rel.display().to_string());
            }
        }
    }
    found
}

/// Starts `saddle ARGS` in the crate folder, waits until its Ctrl-C handler is installed and
/// `after` more, sends SIGINT and returns (exit code, stdout, stderr).
#[cfg(unix)]
fn interrupted(args: &[&str], after: std::time::Duration) -> (Option<i32>, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_saddle"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    wait_for_sigint_handler(child.id());
    std::thread::sleep(after);
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let output = child.wait_with_output().expect("ends");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[cfg(unix)]
#[test]
fn ctrl_c_ends_a_long_command_with_130_and_no_partial_files() {
    let (x, y) = common::digits(20);
    let x = temp_file("ctrl_c_x.csv", &common::csv(&x));
    let y = temp_file("ctrl_c_y.csv", &common::csv(&y));
    let out = common::fresh_dir("ctrl-c-out");
    // the MAP of 20 digits with a million importance samples: minutes, interrupted early
    let (code, stdout, err) = interrupted(
        &[
            "solve",
            "examples/deep_erf.action",
            "--x",
            path_str(&x),
            "--y",
            path_str(&y),
            "--method",
            "map",
            "--set",
            "N=50",
            "--samples",
            "1000000",
            "--out",
            path_str(&out),
        ],
        std::time::Duration::from_millis(200),
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("saddle: interrupted: nothing was written"),
        "{err}"
    );
    assert!(stdout.is_empty(), "no table printed");
    let left = files_under(&out);
    assert!(left.is_empty(), "--out holds {left:?} after Ctrl-C");
}

/// Ctrl-C stops a simulation at a consistent point: the prior draws made so far are written
/// with `"interrupted": true` (exit code 130).
#[cfg(unix)]
#[test]
fn ctrl_c_keeps_the_draws_a_simulation_made() {
    let (x, _) = common::digits(6);
    let x = temp_file("ctrl_c_sim_x.csv", &common::csv(&x));
    let validator = common::schema_validator();
    // the posterior's partial result (the batches every chain completed) is tested in
    // tests/simulate.rs with a deterministic stop: its batches are a tenth of the draws asked
    let asked = 10_000_000u64;
    let out = common::fresh_dir("ctrl-c-sim-prior");
    let (code, _, err) = interrupted(
        &[
            "simulate",
            "examples/deep_erf.action",
            "--x",
            path_str(&x),
            "--set",
            "N=20",
            "--prior",
            "--samples",
            "10000000",
            "--out",
            path_str(&out),
        ],
        std::time::Duration::from_millis(3000),
    );
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("interrupted: the result holds"), "{err}");
    let text = std::fs::read_to_string(out.join("result.json")).expect("result.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    common::assert_valid(&validator, &json, "simulate interrupted");
    assert_eq!(json["interrupted"], true);
    let made = json["samples"].as_u64().expect("the draws made");
    assert!(made >= 2 && made < asked, "{made} draws");
    let means = json["kernels"]["C[1]"]["file"]
        .as_str()
        .expect("a .npy file");
    assert!(out.join(means).exists(), "{means}");
}
