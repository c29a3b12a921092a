//! Options shared by the numeric subcommands: `--set name=value`, data files, JSON output.

use std::path::Path;

use ndarray::Array2;
use serde_json::{Map, Value, json};

use super::CliError;
use crate::check::ir::Theory;

/// Parses `name=value` for `--set`.
pub fn parse_set(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected name=value, e.g. `g=1.5`"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{text}`: the parameter name is empty"));
    }
    let number: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: `{}` is not a number", value.trim()))?;
    if !number.is_finite() {
        return Err(format!("`{text}`: the value must be finite"));
    }
    Ok((name.to_string(), number))
}

/// Loads a data matrix (`.npy` or `.csv`), naming the option in errors.
pub fn load(option: &str, path: &Path) -> Result<Array2<f64>, CliError> {
    crate::data::load::load_matrix(path)
        .map_err(|e| CliError::Usage(format!("{option} {}: {e}", path.display())))
}

/// Reads and checks a theory file.
pub fn theory(path: &Path) -> Result<Theory, CliError> {
    let source = super::read_source(path)?;
    Ok(crate::compile(&source, &super::display_name(path))?)
}

/// A matrix as nested row-major arrays.
pub fn matrix_json(m: &Array2<f64>) -> Value {
    Value::Array(
        m.rows()
            .into_iter()
            .map(|r| Value::Array(r.iter().map(|v| json!(v)).collect()))
            .collect(),
    )
}

/// The parameter values actually used, by name.
pub fn params_json(theory: &Theory, values: &[f64]) -> Value {
    let mut map = Map::new();
    for (p, v) in theory.params.iter().zip(values) {
        map.insert(p.name.clone(), json!(v));
    }
    Value::Object(map)
}

/// Writes a `.npy` file.
pub fn write_npy(path: &Path, m: &Array2<f64>) -> Result<(), CliError> {
    crate::data::npy::write_npy_matrix(path, m)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}
