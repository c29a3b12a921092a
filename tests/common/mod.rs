//! Helpers the integration tests share: running the `saddle` binary and writing inputs.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

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
