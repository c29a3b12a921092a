//! The one result format of `kernel`, `solve` (every method) and `simulate`.
//!
//! Every command builds a [`RunResult`]: the common members of `schema/result.schema.json`
//! (`saddle_version`, `command`, `method`, `theory`, `params`, `kernels`, `means`,
//! `conjugates`, `nngp`, `standard_errors`, `prediction {mean, variance}`, `test_mse`,
//! `test_accuracy`, `log_marginal_likelihood`, `iterations`, `residual`) and what its method
//! adds. `--json` prints it with every matrix inline (nested row-major arrays); `--out DIR`
//! writes each matrix and vector as a `.npy` file and `DIR/result.json` with a reference
//! `{"file": "kernels/C_1.npy", "shape": [P, P]}` in its place, so a P = 4000 kernel is not
//! printed as text. [`inline_files`] turns such a directory back into the inline form.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use serde_json::{Map, Value, json};

use super::CliError;
use super::options::matrix_json;
use crate::data::atomic::{self, Staged};

/// The members every result may have, in the order they are written; anything a method adds
/// follows them.
const COMMON: &[&str] = &[
    "saddle_version",
    "command",
    "method",
    "theory",
    "params",
    "readout",
    "kernels",
    "means",
    "conjugates",
    "nngp",
    "standard_errors",
    "prediction",
    "test_mse",
    "test_accuracy",
    "log_marginal_likelihood",
    "iterations",
    "residual",
];

/// A matrix or a vector of a result.
#[derive(Debug, Clone)]
pub enum Values {
    /// Rows × columns.
    Matrix(Array2<f64>),
    /// One value per pattern (a mean field, a predictive variance).
    Vector(Array1<f64>),
}

impl Values {
    fn inline(&self) -> Value {
        match self {
            Values::Matrix(m) => matrix_json(m),
            Values::Vector(v) => Value::Array(v.iter().map(|x| json!(x)).collect()),
        }
    }

    fn shape(&self) -> Vec<usize> {
        match self {
            Values::Matrix(m) => vec![m.nrows(), m.ncols()],
            Values::Vector(v) => vec![v.len()],
        }
    }
}

/// Draws a command's figure from its JSON result into a path.
pub(crate) type DrawFigure = fn(&Value, &Path) -> Result<(), CliError>;

/// A command's result: scalars and small objects as JSON, arrays at their place in it.
#[derive(Debug, Clone)]
pub struct RunResult {
    members: Map<String, Value>,
    /// Each array with its path from the root (`["kernels", "C[1]"]`).
    arrays: Vec<(Vec<String>, Values)>,
}

impl RunResult {
    /// A result of `command` solved by `method` for `theory` at the parameter values `params`.
    pub fn new(command: &str, method: &str, theory: &str, params: Value) -> Self {
        let mut members = Map::new();
        members.insert("saddle_version".into(), json!(env!("CARGO_PKG_VERSION")));
        members.insert("command".into(), json!(command));
        members.insert("method".into(), json!(method));
        members.insert("theory".into(), json!(theory));
        members.insert("params".into(), params);
        RunResult {
            members,
            arrays: Vec::new(),
        }
    }

    /// Sets a top-level member; `None` leaves it out (absent rather than null: what was not
    /// computed is not there).
    pub fn set(&mut self, key: &str, value: impl Into<Option<Value>>) {
        match value.into() {
            Some(v) if !v.is_null() => {
                self.members.insert(key.to_string(), v);
            }
            _ => {}
        }
    }

    /// Puts a matrix at `path` (`&["kernels", "C[1]"]`).
    pub fn matrix(&mut self, path: &[&str], m: Array2<f64>) {
        self.put(path, Values::Matrix(m));
    }

    /// Puts a vector at `path` (`&["prediction", "variance"]`).
    pub fn vector(&mut self, path: &[&str], v: Array1<f64>) {
        self.put(path, Values::Vector(v));
    }

    fn put(&mut self, path: &[&str], values: Values) {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.arrays.retain(|(p, _)| *p != path);
        self.arrays.push((path, values));
    }

    /// The top-level members that are not arrays.
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }

    /// The array at `path`, if there is one.
    pub fn array(&self, path: &[&str]) -> Option<&Values> {
        self.arrays
            .iter()
            .find(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied()))
            .map(|(_, v)| v)
    }

    /// What a command does with its result: writes `--out DIR`, draws `plot` (the figure's
    /// path and how to draw it from the JSON), then prints the JSON (`json`) or the table
    /// (`table`) followed by what was written.
    pub(crate) fn emit(
        &self,
        out: Option<&Path>,
        plot: Option<(&Path, DrawFigure)>,
        json: bool,
        table: impl FnOnce(),
    ) -> Result<(), CliError> {
        if let Some(dir) = out {
            self.write_dir(dir)?;
        }
        let value = self.to_json();
        if let Some((figure, draw)) = plot {
            draw(&value, figure)?;
        }
        if json {
            let text = serde_json::to_string_pretty(&value)
                .map_err(|e| CliError::Usage(format!("writing JSON: {e}")))?;
            outln!("{text}");
            return Ok(());
        }
        table();
        if let Some(dir) = out {
            outln!("wrote {}", dir.join("result.json").display());
        }
        if let Some((figure, _)) = plot {
            outln!("wrote {}", figure.display());
        }
        Ok(())
    }

    /// The result with every array inline.
    pub fn to_json(&self) -> Value {
        self.assemble(|_, values| Ok(values.inline()))
            .unwrap_or(Value::Null)
    }

    /// Writes `dir/result.json` and every array as `.npy` under `dir` (one folder per
    /// member: `kernels/C_1.npy`, `prediction/mean.npy`); returns the JSON written.
    ///
    /// A stale `result.json` is removed first and the new one written last, each file under a
    /// temporary name renamed when whole: a `result.json` present is complete, and so is
    /// every file it names, whenever the writing stops.
    pub fn write_dir(&self, dir: &Path) -> Result<Value, CliError> {
        let io = |path: &Path, source: std::io::Error| CliError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join("result.json");
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
        let mut taken: Vec<PathBuf> = Vec::new();
        let value = self.assemble(|path, values| {
            let relative = unique_file(path, &taken);
            taken.push(relative.clone());
            let file = dir.join(&relative);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            let staged = Staged::new(&file);
            let writer = std::fs::File::create(staged.path()).map_err(|e| io(&file, e))?;
            let mut writer = std::io::BufWriter::new(writer);
            match values {
                Values::Matrix(m) => m.write_npy(&mut writer),
                Values::Vector(v) => v.write_npy(&mut writer),
            }
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", file.display())))?;
            writer
                .flush()
                .and_then(|()| staged.commit())
                .map_err(|e| io(&file, e))?;
            let relative = relative
                .iter()
                .map(|c| c.to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            Ok(json!({ "file": relative, "shape": values.shape() }))
        })?;
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))?;
        atomic::write(&path, text + "\n").map_err(|e| io(&path, e))?;
        Ok(value)
    }

    /// The JSON object: the common members in schema order, then the rest; each array
    /// rendered by `render`.
    fn assemble(
        &self,
        mut render: impl FnMut(&[String], &Values) -> Result<Value, CliError>,
    ) -> Result<Value, CliError> {
        let mut root = self.members.clone();
        for (path, values) in &self.arrays {
            let rendered = render(path, values)?;
            insert_at(&mut root, path, rendered);
        }
        let mut ordered = Map::new();
        for key in COMMON {
            if let Some(v) = root.remove(*key) {
                ordered.insert((*key).to_string(), v);
            }
        }
        ordered.extend(root);
        Ok(Value::Object(ordered))
    }
}

/// Inserts `value` at `path`, creating objects on the way.
fn insert_at(root: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut object = root;
    for key in parents {
        let entry = object
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            return;
        };
        object = next;
    }
    object.insert(last.clone(), value);
}

/// A file name for a field entry: ASCII letters, digits and `_` (`C[1,2]` → `C_1_2`,
/// `C̃[1]` → `Ct_1`), so that shells and every file system take it.
pub fn file_stem(name: &str) -> String {
    let mut stem = String::new();
    for c in name.chars() {
        match c {
            c if c.is_ascii_alphanumeric() => stem.push(c),
            // the combining tilde of a conjugate field
            '\u{303}' => stem.push('t'),
            _ => {
                if !stem.ends_with('_') {
                    stem.push('_');
                }
            }
        }
    }
    let stem = stem.trim_matches('_').to_string();
    if stem.is_empty() {
        "value".into()
    } else {
        stem
    }
}

/// `kernels/C_1.npy` for `["kernels", "C[1]"]`, with `_2`, `_3`… when two names map to one
/// file.
fn unique_file(path: &[String], taken: &[PathBuf]) -> PathBuf {
    let mut base = PathBuf::new();
    let (last, folders) = path
        .split_last()
        .map_or(("value", &[][..]), |(l, f)| (l.as_str(), f));
    for folder in folders {
        base.push(file_stem(folder));
    }
    let stem = file_stem(last);
    let mut candidate = base.join(format!("{stem}.npy"));
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = base.join(format!("{stem}_{n}.npy"));
        n += 1;
    }
    candidate
}

/// Reads a result: a `result.json` (or a directory holding one) with its `.npy` references
/// replaced by the arrays, or the JSON a command printed.
pub fn read_result(path: &Path) -> Result<Value, CliError> {
    let file = if path.is_dir() {
        path.join("result.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| CliError::Io {
        action: "read",
        path: file.clone(),
        source,
    })?;
    let mut value: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{}: not a JSON result: {e}", file.display())))?;
    let base = file.parent().unwrap_or(Path::new("."));
    inline_files(&mut value, base)?;
    Ok(value)
}

/// Replaces every `{"file": …, "shape": […]}` in `value` by the array that file holds.
pub fn inline_files(value: &mut Value, base: &Path) -> Result<(), CliError> {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(file)), Some(Value::Array(shape))) =
                (map.get("file"), map.get("shape"))
                && map.len() == 2
            {
                let path = base.join(file);
                let read_error =
                    |e: &dyn std::fmt::Display| CliError::Usage(format!("{}: {e}", path.display()));
                let reader = std::fs::File::open(&path).map_err(|e| read_error(&e))?;
                let reader = std::io::BufReader::new(reader);
                *value = if shape.len() == 1 {
                    let v = Array1::<f64>::read_npy(reader).map_err(|e| read_error(&e))?;
                    Values::Vector(v).inline()
                } else {
                    let m = Array2::<f64>::read_npy(reader).map_err(|e| read_error(&e))?;
                    Values::Matrix(m).inline()
                };
                return Ok(());
            }
            for v in map.values_mut() {
                inline_files(v, base)?;
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| inline_files(v, base)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn file_stems_are_plain_ascii() {
        assert_eq!(file_stem("C[1]"), "C_1");
        assert_eq!(file_stem("C[1,2]"), "C_1_2");
        assert_eq!(file_stem("C\u{303}[3]"), "Ct_3");
        assert_eq!(file_stem("m[0]"), "m_0");
        assert_eq!(file_stem("[]"), "value");
    }

    #[test]
    fn a_directory_reads_back_as_the_inline_result() {
        let dir = std::env::temp_dir().join(format!("saddle-result-{}", std::process::id()));
        let mut r = RunResult::new("kernel", "nngp", "t", json!({"g": 1.5}));
        r.matrix(&["kernels", "C[1]"], array![[1.0, 0.25], [0.25, 2.0]]);
        r.vector(&["means", "m[1]"], array![0.5, -0.125]);
        r.matrix(&["prediction", "standard_errors", "mean"], array![[0.1]]);
        r.set("test_mse", Some(json!(0.5)));
        r.set("residual", None);
        let written = r.write_dir(&dir).expect("written");
        assert_eq!(written["kernels"]["C[1]"]["file"], "kernels/C_1.npy");
        assert_eq!(written["means"]["m[1]"]["shape"], json!([2]));
        let back = read_result(&dir).expect("read back");
        assert_eq!(back, r.to_json());
        assert!(back.get("residual").is_none());
        let keys: Vec<&String> = back
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(
            keys[..5],
            ["saddle_version", "command", "method", "theory", "params"]
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
