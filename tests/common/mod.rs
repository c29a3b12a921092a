//! Helpers the integration tests share: running the `saddle` binary and writing inputs.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array2, array};

/// Runs the `saddle` binary in the crate root; returns (exit code, stdout, stderr).
pub fn saddle(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_saddle"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `contents` to `name` in a temporary folder of this test process.
pub fn temp_file(name: &str, contents: &str) -> PathBuf {
    let crate_name = env!("CARGO_CRATE_NAME");
    let dir = std::env::temp_dir().join(format!("saddle-{crate_name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

/// A temporary path as the `&str` a command line takes.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// An empty folder `name` in the temporary folder of this test process (removed first if a
/// previous run left it).
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = temp_file("anchor", "").with_file_name(name);
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// An example theory of `examples/`, compiled (diagnostics rendered on failure).
pub fn example(name: &str) -> saddle::Theory {
    let path = format!("{}/examples/{name}.action", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).expect("example exists");
    saddle::compile(&source, &path).unwrap_or_else(|d| panic!("{}", d.render(false)))
}

/// Parameter overrides as `--set` gives them.
pub fn set(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

/// X with g0/d · X Xᵀ = C⁽⁰⁾ = [[1, 0.6], [0.6, 1.5]] (THEORY.md T1) for g0 = 1, d = 2.
pub fn t1_inputs() -> Array2<f64> {
    let s = 2f64.sqrt();
    array![[s, 0.0], [1.2 / s, (3.0f64 - 0.72).sqrt()]]
}

/// The first `p` training digits of MNIST 0 vs 3 (standardised per pattern), targets ±1.
pub fn digits(p: usize) -> (Array2<f64>, Array2<f64>) {
    let split = saddle::data::mnist::Mnist::load_bundled()
        .and_then(|m| m.two_class(0, 3, p, 2))
        .and_then(|s| s.standardised())
        .expect("bundled digits");
    (split.x_train, split.y_train)
}

/// A matrix as CSV text, one row per line.
pub fn csv(m: &Array2<f64>) -> String {
    m.rows()
        .into_iter()
        .map(|r| r.iter().map(f64::to_string).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The validator of `schema/result.schema.json`, the one result format.
pub fn schema_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/result.schema.json"),
    )
    .expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// Fails with every violation of the schema, each at its place in the instance.
pub fn assert_valid(validator: &jsonschema::Validator, instance: &serde_json::Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}:\n{}", errors.join("\n"));
}
