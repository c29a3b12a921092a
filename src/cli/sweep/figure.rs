//! A sweep's directory read back: the metrics per point as curves with their errors
//! (`saddle plot` of a sweep).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::CliError;

/// One point of a sweep figure: the swept value, the metric, and its NNGP value if any.
pub(super) type SweepPoint = (f64, f64, Option<f64>);

/// Whether `path` is a directory holding a sweep.
pub fn is_sweep(path: &Path) -> bool {
    path.is_dir() && path.join("sweep.json").exists()
}

/// The quantities a sweep figure draws by default, the first one the rows have.
pub(super) const DEFAULT_METRICS: &[&str] =
    &["test_mse", "log_marginal_likelihood", "readout_diagonal"];

/// A metric's axis label.
pub(super) fn metric_label(metric: &str) -> String {
    match metric {
        "test_mse" => "test MSE".into(),
        "test_accuracy" => "test accuracy".into(),
        "log_marginal_likelihood" => "ln p(Y|X)".into(),
        "readout_diagonal" => "readout kernel, mean diagonal".into(),
        "readout_off_diagonal" => "readout kernel, mean off-diagonal".into(),
        "iterations" => "iterations".into(),
        "residual" => "residual".into(),
        other => other.replace('_', " "),
    }
}

/// The figure of a sweep: `metric` against the first swept parameter, one curve per value
/// of the others; beside a finite-width metric its NNGP value (`nngp_<metric>`) dashed in
/// the same colour.
pub fn figure(dir: &Path, metric: Option<&str>) -> Result<crate::plot::CurveFigure, CliError> {
    use crate::plot::{Curve, CurveFigure, Marker};
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| CliError::Io {
            action: "read",
            path,
            source,
        })
    };
    let meta: Value = serde_json::from_str(&read(dir.join("sweep.json"))?)
        .map_err(|e| CliError::Usage(format!("{}/sweep.json: {e}", dir.display())))?;
    let parameters = meta["parameters"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = parameters
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    let Some(x_name) = names.first() else {
        return Err(CliError::Usage(format!(
            "{}/sweep.json: no swept parameter",
            dir.display()
        )));
    };
    let rows: Vec<Value> = read(dir.join("sweep.jsonl"))?
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|row: &Value| row.get("error").is_none())
        .collect();
    let metric = match metric {
        Some(m) => m.to_string(),
        None => DEFAULT_METRICS
            .iter()
            .find(|m| rows.iter().any(|r| r[**m].is_number()))
            .map(|m| m.to_string())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "{}: no finished point has {} (choose one with --metric)",
                    dir.display(),
                    DEFAULT_METRICS.join(", ")
                ))
            })?,
    };
    if !rows.iter().any(|r| r[&metric].is_number()) {
        let have: std::collections::BTreeSet<&str> = rows
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|o| {
                o.iter()
                    .filter(|(_, v)| v.is_number())
                    .map(|(k, _)| k.as_str())
            })
            .filter(|k| *k != "index")
            .collect();
        return Err(CliError::Usage(format!(
            "--metric {metric}: the sweep's rows have {}",
            have.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    // one curve per combination of the other parameters, in the order of the rows
    let mut groups: Vec<(String, Vec<SweepPoint>)> = Vec::new();
    for row in &rows {
        let (Some(x), Some(y)) = (row["point"][x_name].as_f64(), row[&metric].as_f64()) else {
            continue;
        };
        let label = names[1..]
            .iter()
            .map(|n| {
                format!(
                    "{n} = {}",
                    crate::plot::curves::tick(row["point"][n].as_f64().unwrap_or(f64::NAN))
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let reference = row[format!("nngp_{metric}")].as_f64();
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push((x, y, reference)),
            None => groups.push((label, vec![(x, y, reference)])),
        }
    }
    let method = rows
        .first()
        .and_then(|r| r.get("result"))
        .and_then(Value::as_str)
        .and_then(|folder| read(dir.join(folder).join("result.json")).ok())
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|v| v["method"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut curves = Vec::new();
    for (colour, (label, mut points)) in groups.into_iter().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let shown = if !label.is_empty() {
            label.clone()
        } else {
            match method.as_str() {
                "map" => "MAP kernel, finite N".to_string(),
                "posterior" => "posterior-mean kernel (MAP + m/N), finite N".to_string(),
                "linear" => "linearised, finite N".to_string(),
                "nngp" | "" => metric_label(&metric),
                other => other.to_string(),
            }
        };
        let reference = if label.is_empty() {
            "NNGP (N = ∞)".to_string()
        } else {
            format!("{label}: NNGP (N = ∞)")
        };
        curves.push(Curve {
            label: shown.clone(),
            x: points.iter().map(|p| p.0).collect(),
            y: points.iter().map(|p| p.1).collect(),
            error: None,
            marker: Marker::LinePoints,
            colour: Some(colour),
        });
        if points.iter().all(|p| p.2.is_some()) {
            curves.push(Curve {
                label: reference,
                x: points.iter().map(|p| p.0).collect(),
                y: points.iter().map(|p| p.2.unwrap_or(f64::NAN)).collect(),
                error: None,
                marker: Marker::Dashed,
                colour: Some(colour),
            });
        }
    }
    let log_x = parameters
        .first()
        .is_some_and(|p| p["scale"].as_str() == Some("log"));
    Ok(CurveFigure {
        title: format!(
            "{}: {} against {x_name}",
            meta["theory"].as_str().unwrap_or("sweep"),
            metric_label(&metric)
        ),
        x_label: x_name.clone(),
        y_label: metric_label(&metric),
        log_x,
        curves,
    })
}
