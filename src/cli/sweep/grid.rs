//! The grid of a `--sweep`: its text (`name=a:b:n`, lists, log steps) parsed, the points in
//! order, and each point's overrides.

use serde_json::{Map, Value, json};

use crate::check::ir::{ParamType, Theory};
use crate::cli::CliError;

use super::*;

/// Parses `name=a:b:n`, `name=a..b:n[:log]`, `name=a:b:n:log` or `name=v1,v2,…`.
pub fn parse_sweep(text: &str) -> Result<Sweep, String> {
    let (name, range) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected name=a:b:n, name=a..b:n:log or name=1,2,4"))?;
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err(format!("`{text}`: the parameter name is empty"));
    }
    let number = |s: &str| -> Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{text}`: `{}` is not a number", s.trim()))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("`{text}`: `{}` is not finite", s.trim()))
        }
    };
    let range = range.trim();
    let is_range = range.contains(':');
    if !is_range {
        let values = range
            .split(',')
            .map(number)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Sweep {
            name,
            values,
            log: false,
        });
    }
    let mut parts: Vec<&str> = range.split(':').collect();
    let log = match parts.last() {
        Some(&"log") => {
            parts.pop();
            true
        }
        Some(&"lin") => {
            parts.pop();
            false
        }
        _ => false,
    };
    let (a, b, n) = match parts.as_slice() {
        [ab, n] if ab.contains("..") => {
            let (a, b) = ab.split_once("..").unwrap_or((ab, ab));
            (number(a)?, number(b)?, *n)
        }
        [a, b, n] => (number(a)?, number(b)?, *n),
        _ => {
            return Err(format!(
                "`{text}`: expected a:b:n or a..b:n, optionally followed by :log"
            ));
        }
    };
    let n: usize = n
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=100_000).contains(n))
        .ok_or_else(|| format!("`{text}`: the number of points `{n}` must be 1 to 100000"))?;
    if log && (a <= 0.0 || b <= 0.0) {
        return Err(format!(
            "`{text}`: a log-spaced sweep needs positive ends (got {a} and {b})"
        ));
    }
    let values = (0..n)
        .map(|i| {
            let t = if n == 1 {
                0.0
            } else {
                i as f64 / (n - 1) as f64
            };
            if log {
                (a.ln() + t * (b.ln() - a.ln())).exp()
            } else {
                a + t * (b - a)
            }
        })
        .collect();
    Ok(Sweep { name, values, log })
}

/// The grid a sweep (or a scan) runs: its parameters (integer ones rounded) and every
/// point, the first parameter varying slowest.
pub(crate) struct Grid {
    pub(crate) sweeps: Vec<Sweep>,
    pub(crate) points: Vec<Vec<f64>>,
}

impl Grid {
    /// The grid of `sweeps` given on the command line as `flag` (`--sweep`, `--scan`): each a
    /// parameter of `theory`, named once and not also in `set`; integer parameters take
    /// integers. Without sweeps, one point with no overrides.
    pub(crate) fn new(
        theory: &Theory,
        sweeps: &[Sweep],
        set: &[(String, f64)],
        flag: &str,
    ) -> Result<Self, CliError> {
        let mut checked: Vec<Sweep> = Vec::new();
        for sweep in sweeps {
            let Some(param) = theory.params.iter().find(|p| p.name == sweep.name) else {
                let names: Vec<&str> = theory.params.iter().map(|p| p.name.as_str()).collect();
                return Err(CliError::Usage(format!(
                    "{flag} {}: the theory has no parameter `{}` (it has {})",
                    sweep.name,
                    sweep.name,
                    names.join(", ")
                )));
            };
            if checked.iter().any(|s| s.name == sweep.name) {
                return Err(CliError::Usage(format!(
                    "{flag} {}: given twice (give one list or range)",
                    sweep.name
                )));
            }
            if set.iter().any(|(n, _)| *n == sweep.name) {
                return Err(CliError::Usage(format!(
                    "{flag} {0} and --set {0}: give the parameter one way",
                    sweep.name
                )));
            }
            let mut values = sweep.values.clone();
            if param.ty == ParamType::Int {
                if sweep.log {
                    // a log-spaced integer range: the nearest integers, each once
                    values.iter_mut().for_each(|v| *v = v.round());
                    values.dedup();
                } else if let Some(v) = values.iter().find(|v| v.fract() != 0.0) {
                    return Err(CliError::Usage(format!(
                        "{flag} {}: `{}` is an integer parameter, {v} is not an integer",
                        sweep.name, sweep.name
                    )));
                }
            }
            checked.push(Sweep {
                values,
                ..sweep.clone()
            });
        }
        let mut points: Vec<Vec<f64>> = vec![vec![]];
        for sweep in &checked {
            points = points
                .into_iter()
                .flat_map(|p| {
                    sweep.values.iter().map(move |&v| {
                        let mut q = p.clone();
                        q.push(v);
                        q
                    })
                })
                .collect();
        }
        if points.len() > 1_000_000 {
            return Err(CliError::Usage(format!(
                "{flag}: {} points is more than the 1000000 a grid may have",
                points.len()
            )));
        }
        Ok(Grid {
            sweeps: checked,
            points,
        })
    }

    /// The overrides of point `index`.
    pub(crate) fn overrides(&self, index: usize) -> Vec<(String, f64)> {
        self.sweeps
            .iter()
            .zip(&self.points[index])
            .map(|(s, &v)| (s.name.clone(), v))
            .collect()
    }

    pub(super) fn point_json(&self, index: usize) -> Value {
        scan_object(&self.overrides(index))
    }

    /// The scanned parameters and their values: `[{"name": …, "values": […]}, …]`.
    pub(crate) fn sweeps_json(&self) -> Value {
        json!(
            self.sweeps
                .iter()
                .map(|s| json!({ "name": s.name, "values": s.values }))
                .collect::<Vec<_>>()
        )
    }
}

/// Overrides as one JSON object: `{"g": 1.5, "L": 3}`.
pub(super) fn scan_object(overrides: &[(String, f64)]) -> Value {
    Value::Object(
        overrides
            .iter()
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect(),
    )
}

/// One point of a scan: its overrides and what was found there, or why nothing was.
pub(crate) struct ScanPoint<T> {
    /// The scanned parameters' values at this point.
    pub(crate) scan: Vec<(String, f64)>,
    /// The analysis, or the reason it failed here.
    pub(crate) outcome: Result<T, String>,
}

impl<T> ScanPoint<T> {
    /// `{"scan": {…}, "error": why}`, or `{"scan": {…}}` with what `found` adds.
    pub(crate) fn to_json(&self, found: impl FnOnce(&T, &mut Map<String, Value>)) -> Value {
        let mut out = Map::new();
        out.insert("scan".into(), scan_object(&self.scan));
        match &self.outcome {
            Ok(value) => found(value, &mut out),
            Err(why) => {
                out.insert("error".into(), json!(why));
            }
        }
        Value::Object(out)
    }
}
