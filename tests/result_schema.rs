//! One result format: every numeric command's `--json` and `--out DIR/result.json` validate
//! against `schema/result.schema.json`, and the `.npy` files of `--out DIR` hold exactly
//! the arrays `--json` prints: read back by ndarray-npy (header checked by hand against the
//! NPY format) and by numpy itself (`numpy.load`: shape, dtype, sum).

use std::path::Path;

use serde_json::Value;

mod common;
use common::{assert_valid, fresh_dir, path_str, saddle, schema_validator as validator, temp_file};

const X: &str = "1,1\n-1,-1\n1,-1\n-1,1\n";
const Y: &str = "-1\n-1\n1\n1\n";
const XT: &str = "0.8,1.2\n-0.7,0.9\n0.3,-0.2\n";
const YT: &str = "-1\n1\n1\n";

/// The NPY header of a file: (descr, fortran_order, shape), read by hand from the format
/// numpy documents (magic, version 1.0, little-endian header length, a Python dict literal).
fn npy_header(path: &Path) -> (String, bool, Vec<usize>) {
    let bytes = std::fs::read(path).expect("npy file");
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    assert_eq!((bytes[6], bytes[7]), (1, 0), "NPY version 1.0");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "the header pads the data to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + len]).expect("ASCII header");
    let field = |key: &str| -> String {
        let start = header.find(&format!("'{key}':")).expect(key) + key.len() + 3;
        let rest = header[start..].trim_start();
        let end = if rest.starts_with('(') {
            rest.find(')').expect("shape tuple") + 1
        } else {
            rest.find([',', '}']).expect("field end")
        };
        rest[..end].trim().to_string()
    };
    let shape: Vec<usize> = field("shape")
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("dimension"))
        .collect();
    let data = bytes.len() - 10 - len;
    assert_eq!(
        data,
        8 * shape.iter().product::<usize>(),
        "{}",
        path.display()
    );
    (
        field("descr").trim_matches('\'').to_string(),
        field("fortran_order") == "True",
        shape,
    )
}

/// Replaces each `{"file", "shape"}` reference by the array its file holds, checking the
/// header of every file on the way; returns the number of files.
fn inline(value: &mut Value, dir: &Path) -> usize {
    match value {
        Value::Object(map) if map.contains_key("file") && map.contains_key("shape") => {
            let path = dir.join(map["file"].as_str().expect("file name"));
            let shape: Vec<usize> = map["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dimension") as usize)
                .collect();
            let (descr, fortran, on_disk) = npy_header(&path);
            assert_eq!(descr, "<f8", "{}", path.display());
            assert!(!fortran, "C order");
            assert_eq!(on_disk, shape, "{}", path.display());
            *value = if shape.len() == 1 {
                let v: ndarray::Array1<f64> = ndarray_npy::read_npy(&path).expect("vector");
                Value::from(v.to_vec())
            } else {
                let m: ndarray::Array2<f64> = ndarray_npy::read_npy(&path).expect("matrix");
                Value::Array(
                    m.rows()
                        .into_iter()
                        .map(|r| Value::from(r.to_vec()))
                        .collect(),
                )
            };
            1
        }
        Value::Object(map) => map.values_mut().map(|v| inline(v, dir)).sum(),
        Value::Array(items) => items.iter_mut().map(|v| inline(v, dir)).sum(),
        _ => 0,
    }
}

/// Every `{"file", "shape"}` reference in `value`.
fn references(value: &Value, found: &mut Vec<(String, Vec<u64>)>) {
    match value {
        Value::Object(map) if map.contains_key("file") && map.contains_key("shape") => {
            let shape = map["shape"].as_array().expect("shape");
            found.push((
                map["file"].as_str().expect("file").to_string(),
                shape
                    .iter()
                    .map(|d| d.as_u64().expect("dimension"))
                    .collect(),
            ));
        }
        Value::Object(map) => map.values().for_each(|v| references(v, found)),
        Value::Array(items) => items.iter().for_each(|v| references(v, found)),
        _ => {}
    }
}

/// A Python with numpy: `$SADDLE_PYTHON` (`.ci/run` makes one), else `python3` if it has
/// numpy. Under CI one is required.
fn numpy_python() -> Option<String> {
    let candidates = std::env::var("SADDLE_PYTHON")
        .map(|p| vec![p])
        .unwrap_or_else(|_| vec!["python3".to_string()]);
    let found = candidates.into_iter().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Python with numpy: .ci/run sets SADDLE_PYTHON to a venv with numpy"
        );
        eprintln!(
            "note: no Python with numpy; the .npy files were checked against the format by hand only"
        );
    }
    found
}

/// numpy.load reads every file of `dir` with the shape the result states and the sum of the
/// values the result holds.
fn numpy_reads(python: &str, dir: &Path, written: &Value, printed: &Value) {
    let mut files = Vec::new();
    references(written, &mut files);
    let script = "import json, sys, numpy as np\n\
                  d = sys.argv[1]\n\
                  print(json.dumps({f: [list(np.load(d + '/' + f).shape), float(np.load(d + '/' + f).sum()), np.load(d + '/' + f).dtype.str] for f in sys.argv[2:]}))";
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(dir)
        .args(files.iter().map(|(f, _)| f.as_str()))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("numpy's answer");
    let mut inlined = written.clone();
    inline(&mut inlined, dir);
    assert_eq!(&inlined, printed);
    for (file, shape) in &files {
        let entry = &read[file];
        assert_eq!(entry[0], serde_json::json!(shape), "{file}: shape");
        assert_eq!(entry[2], "<f8", "{file}: dtype");
        // the sum of the same values, read by ndarray-npy
        let sum: f64 = if shape.len() == 1 {
            let v: ndarray::Array1<f64> = ndarray_npy::read_npy(dir.join(file)).expect("vector");
            v.sum()
        } else {
            let m: ndarray::Array2<f64> = ndarray_npy::read_npy(dir.join(file)).expect("matrix");
            m.sum()
        };
        let numpy = entry[1].as_f64().expect("sum");
        assert!(
            (numpy - sum).abs() <= 1e-12 * sum.abs().max(1.0),
            "{file}: numpy sums {numpy}, ndarray {sum}"
        );
    }
}

/// Runs `args` with `--json --out DIR`; validates both results and checks that the files
/// read back into the printed JSON. Returns the printed result.
fn run_both(validator: &jsonschema::Validator, name: &str, args: &[&str]) -> Value {
    let dir = fresh_dir(&format!("out-{name}"));
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--json", "--out", path_str(&dir)]);
    let (code, out, err) = saddle(&full);
    assert_eq!(code, 0, "{name}: {err}");
    let printed: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_valid(validator, &printed, &format!("{name} --json"));
    let text = std::fs::read_to_string(dir.join("result.json")).expect("result.json");
    let mut written: Value = serde_json::from_str(&text).expect("result.json is JSON");
    assert_valid(
        validator,
        &written,
        &format!("{name} --out DIR/result.json"),
    );
    if let Some(python) = numpy_python() {
        numpy_reads(&python, &dir, &written, &printed);
    }
    let files = inline(&mut written, &dir);
    assert!(files > 0, "{name}: no .npy written");
    assert_eq!(written, printed, "{name}: the files and --json disagree");
    printed
}

#[test]
fn every_command_writes_the_one_schema() {
    let validator = validator();
    let (x, y, xt, yt) = (
        temp_file("x.csv", X),
        temp_file("y.csv", Y),
        temp_file("xt.csv", XT),
        temp_file("yt.csv", YT),
    );
    let (x, y, xt, yt) = (path_str(&x), path_str(&y), path_str(&xt), path_str(&yt));
    let x2 = temp_file("x2.csv", "1,1\n-1,0.5\n");
    let y2 = temp_file("y2.csv", "1\n-1\n");
    let (x2, y2) = (path_str(&x2), path_str(&y2));

    let v = run_both(
        &validator,
        "kernel-all",
        &[
            "kernel",
            "examples/deep_erf.action",
            "--x",
            x,
            "--layers",
            "all",
        ],
    );
    assert_eq!(
        (v["command"].as_str(), v["method"].as_str()),
        (Some("kernel"), Some("nngp"))
    );
    assert!(
        v["kernels"]["C[0]"].is_array() && v["kernels"][v["readout"].as_str().unwrap()].is_array()
    );
    let v = run_both(
        &validator,
        "kernel-means",
        &[
            "kernel",
            "examples/binary_threshold.action",
            "--x",
            x,
            "--layers",
            "all",
        ],
    );
    assert!(!v["means"].as_object().expect("means").is_empty());

    let v = run_both(
        &validator,
        "solve-nngp",
        &[
            "solve",
            "examples/deep_erf.action",
            "--x",
            x,
            "--y",
            y,
            "--x-test",
            xt,
            "--y-test",
            yt,
        ],
    );
    assert!(v["test_mse"].is_number() && v["prediction"]["variance"].is_array());

    let v = run_both(
        &validator,
        "solve-linear",
        &[
            "solve",
            "examples/deep_erf.action",
            "--x",
            x2,
            "--y",
            y2,
            "--method",
            "linear",
            "--set",
            "N=100",
            "--set",
            "L=2",
        ],
    );
    assert_eq!(v["readout"], "C[2]");
    assert!(v["conjugates"].as_object().is_some_and(|c| c.len() == 2));
    // a result directory plots directly: the readout's NNGP beside its linearised kernel
    let dir = temp_file("anchor", "").with_file_name("out-solve-linear");
    let figure = dir.join("kernels.svg");
    let (code, _, err) = saddle(&["plot", path_str(&dir), "--out", path_str(&figure)]);
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(&figure).expect("figure");
    assert!(svg.contains("C[2], NNGP (N = ∞)") && svg.contains("C[2], linear, N = 100"));

    let v = run_both(
        &validator,
        "solve-map-sampled",
        &[
            "solve",
            "examples/deep_erf.action",
            "--x",
            x,
            "--y",
            y,
            "--x-test",
            xt,
            "--y-test",
            yt,
            "--method",
            "map",
            "--set",
            "N=50",
            "--set",
            "L=2",
            "--samples",
            "2000",
        ],
    );
    assert!(v["standard_errors"]["C[2]"].is_array() && v["iterations"].is_u64());
    assert!(v["prediction"]["standard_errors"]["mean"].is_array());

    // the posterior mean: the MAP beside it, the shift m on training and test rows
    let v = run_both(
        &validator,
        "solve-posterior",
        &[
            "solve",
            "examples/deep_erf.action",
            "--x",
            x,
            "--y",
            y,
            "--x-test",
            xt,
            "--y-test",
            yt,
            "--method",
            "posterior",
            "--set",
            "N=50",
            "--set",
            "L=2",
            "--samples",
            "2000",
        ],
    );
    let rows = v["kernels"]["C[2]"].as_array().map(Vec::len);
    assert!(rows.is_some() && v["one_loop_shift"]["C[2]"].as_array().map(Vec::len) == rows);
    assert!(v["map"]["C[2]"].is_array() && v["prediction"]["mean"].is_array());

    // the linearised system at P = 4 (matrix-free, sampled)
    let v = run_both(
        &validator,
        "solve-linear-scalable",
        &[
            "solve",
            "examples/deep_erf.action",
            "--x",
            x,
            "--y",
            y,
            "--x-test",
            xt,
            "--y-test",
            yt,
            "--method",
            "linear",
            "--order",
            "leading",
            "--set",
            "N=50",
            "--set",
            "L=2",
            "--samples",
            "2000",
        ],
    );
    assert_eq!(v["order"].as_str(), Some("leading"));
    assert!(v["standard_errors"]["C[2]"].is_array());
    assert!(v["test_mse"].is_number() && v["prediction"]["variance"].is_array());

    let v = run_both(
        &validator,
        "simulate-prior",
        &[
            "simulate",
            "examples/deep_erf.action",
            "--x",
            x,
            "--prior",
            "--one-loop",
            "--set",
            "N=20",
            "--samples",
            "200",
        ],
    );
    assert!(v["variance"].is_object());
    assert!(v["one_loop_variance"]["C[2]"].is_array());
    assert!(v["one_loop_shift"]["C[2]"].is_array());
    let v = run_both(
        &validator,
        "simulate-posterior",
        &[
            "simulate",
            "examples/deep_erf.action",
            "--x",
            x,
            "--y",
            y,
            "--x-test",
            xt,
            "--y-test",
            yt,
            "--set",
            "N=20",
            "--chains",
            "2",
            "--samples",
            "20",
        ],
    );
    assert!(v["rhat"].is_object() && v["test_accuracy"].is_number());

    // compare prints (no --out): the simulated kernels beside every theory
    let (code, out, err) = saddle(&[
        "compare",
        "examples/deep_erf.action",
        "--x",
        x2,
        "--y",
        y2,
        "--set",
        "L=1",
        "--set",
        "N=50",
        "--samples",
        "100",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_valid(&validator, &v, "compare --json");
    assert!(v["map"]["C[1]"].is_array() && v["linear"]["C[1]"].is_array());
    // beyond three patterns: per kernel statistic
    let (code, out, err) = saddle(&[
        "compare",
        "examples/deep_erf.action",
        "--x",
        x,
        "--y",
        y,
        "--set",
        "L=1",
        "--set",
        "N=50",
        "--samples",
        "100",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_valid(&validator, &v, "compare --json (grouped)");
    assert!(v["groups"].as_array().is_some_and(|g| g.len() == 3));
    assert!(v["map_standard_errors"]["C[1]"].is_array());
}

#[test]
fn recurrent_theories_and_the_default_paths_write_the_one_schema() {
    let validator = validator();
    let (x, y) = (temp_file("rx.csv", X), temp_file("ry.csv", Y));
    let (x, y) = (path_str(&x), path_str(&y));
    let x2 = temp_file("rx2.csv", "1,1\n-1,0.5\n");
    let y2 = temp_file("ry2.csv", "1\n-1\n");
    let (x2, y2) = (path_str(&x2), path_str(&y2));

    // a recurrent theory: the MAP and the linearised system over time, and its network
    for method in ["map", "linear"] {
        let v = run_both(
            &validator,
            &format!("recurrent-{method}"),
            &[
                "solve",
                "examples/recurrent_erf.action",
                "--x",
                x,
                "--y",
                y,
                "--method",
                method,
                "--set",
                "N=50",
                "--samples",
                "2000",
            ],
        );
        assert_eq!(v["method"].as_str(), Some(method));
        assert_eq!(v["readout"].as_str(), Some("C[3,3]"));
        assert!(v["kernels"]["C[3,3]"].is_array() && v["nngp"]["C[3,3]"].is_array());
    }
    let v = run_both(
        &validator,
        "recurrent-simulate",
        &[
            "simulate",
            "examples/recurrent_erf.action",
            "--x",
            x,
            "--y",
            y,
            "--set",
            "N=30",
            "--samples",
            "40",
        ],
    );
    assert_eq!(v["method"].as_str(), Some("simulate-ess"));
    assert!(v["rhat"].is_object() && v["kernels"]["C[3,3]"].is_array());

    // `kernel` with the default `--layers last`: the readout kernel alone
    let v = run_both(
        &validator,
        "kernel-last",
        &["kernel", "examples/deep_erf.action", "--x", x],
    );
    let kernels = v["kernels"].as_object().expect("kernels");
    assert_eq!(kernels.len(), 1, "{kernels:?}");
    assert!(kernels.contains_key(v["readout"].as_str().expect("readout")));

    // the MAP at P ≤ 3: the exact quadrature path, no sampling
    let v = run_both(
        &validator,
        "solve-map-quadrature",
        &[
            "solve",
            "examples/deep_erf.action",
            "--x",
            x2,
            "--y",
            y2,
            "--method",
            "map",
            "--set",
            "N=50",
            "--set",
            "L=2",
        ],
    );
    assert_eq!(v["method"].as_str(), Some("map"));
    assert!(v["kernels"]["C[2]"].is_array() && v["iterations"].is_u64());
}

#[test]
fn the_schema_rejects_what_it_should() {
    let validator = validator();
    let good = serde_json::json!({
        "saddle_version": "0.1.0", "command": "kernel", "method": "nngp", "theory": "t",
        "params": {"g": 1.0}, "readout": "C[1]", "kernels": {"C[1]": [[1.0]]},
    });
    assert_valid(&validator, &good, "minimal kernel result");
    let mut bad = good.clone();
    bad["kernels"]["C[1]"] = serde_json::json!([[null]]);
    assert!(!validator.is_valid(&bad), "null in a matrix");
    let mut bad = good.clone();
    bad["method"] = "map".into();
    assert!(!validator.is_valid(&bad), "kernel computes the NNGP only");
    let mut bad = good.clone();
    bad["kernels"]["C[1]"] = serde_json::json!({"file": "../C.npy", "shape": [1, 1]});
    assert!(!validator.is_valid(&bad), "a file outside the directory");
    let mut bad = good;
    bad["test_accuracy"] = 1.5.into();
    assert!(!validator.is_valid(&bad), "accuracy above 1");
}

#[test]
fn criticality_writes_the_one_schema() {
    let validator = validator();
    let dir = fresh_dir("out-criticality");
    let (code, out, err) = saddle(&[
        "criticality",
        "examples/binary_threshold.action",
        "--scan",
        "g=0.5,2",
        "--json",
        "--out",
        path_str(&dir),
    ]);
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_valid(&validator, &printed, "criticality --json");
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("result.json")).expect("result.json"),
    )
    .expect("JSON");
    assert_eq!(written, printed);
    // a point without an analysis is valid too (ReLU above g = 2 has no finite length)
    let (code, out, err) = saddle(&[
        "criticality",
        "examples/deep_relu.action",
        "--scan",
        "g=1,3",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_valid(&validator, &v, "criticality --json with an error point");
    let mut bad = v.clone();
    bad["points"][0]["chi1"] = "large".into();
    assert!(!validator.is_valid(&bad), "χ₁ is a number or \"infinite\"");
}

#[test]
fn separation_writes_the_one_schema() {
    let validator = validator();
    let dir = fresh_dir("out-separation");
    let (code, out, err) = saddle(&[
        "separation",
        "examples/binary_threshold.action",
        "--overlaps",
        "0.999,0.9",
        "--set",
        "L=10",
        "--scan",
        "theta=0,1",
        "--simulate",
        "--samples",
        "20",
        "--json",
        "--out",
        path_str(&dir),
    ]);
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_valid(&validator, &printed, "separation --json");
    // θ = 1: the activity dies out, and the curve says where it stops
    assert!(printed["points"][1]["ended"].is_string(), "{printed}");
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("result.json")).expect("result.json"),
    )
    .expect("JSON");
    assert_eq!(written, printed);
    let (code, out, err) = saddle(&[
        "separation",
        "examples/binary_sign.action",
        "--dynamics",
        "glauber",
        "--simulate",
        "--samples",
        "10",
        "--time",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_valid(
        &validator,
        &v,
        "separation --dynamics glauber --simulate --json",
    );
    assert_eq!(v["method"], "glauber+simulate-glauber");
    let mut bad = v.clone();
    bad["points"][0]["optimal_step"] = (-1).into();
    assert!(!validator.is_valid(&bad), "a negative step");
}

#[test]
fn compare_kernels_writes_the_one_schema() {
    let validator = validator();
    let x = temp_file("ck_schema_x.csv", "1,0\n0.5,1\n");
    let (code, out, err) = saddle(&[
        "compare-kernels",
        "examples/deep_erf.action",
        "examples/recurrent_erf.action",
        "--x",
        path_str(&x),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_valid(&validator, &v, "compare-kernels --json");
}

#[test]
fn fit_writes_the_one_schema() {
    let validator = validator();
    let (code, out, err) = saddle(&[
        "fit",
        "examples/binary_threshold.action",
        "--targets",
        "examples/binary_targets.json",
        "--set",
        "N=1000",
        "--starts",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_valid(&validator, &v, "fit --json");
    let mut bad = v.clone();
    bad["separability"]["steps"][0]["accuracy"] = 1.5.into();
    assert!(!validator.is_valid(&bad), "a probability above one");
}
