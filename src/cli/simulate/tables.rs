//! The printed tables of `saddle simulate`: every shown kernel entry's mean, standard error
//! and N·(mean − NNGP), prior and posterior.

use ndarray::Array2;

use crate::check::ir::FieldKind;
use crate::cli::result::RunResult;
use crate::solve::nngp::{EntryKey, Kernels};
use crate::solve::one_loop::EntryVariance;

/// One field entry's table row.
pub(super) struct Row {
    pub(super) name: String,
    pub(super) mean: Array2<f64>,
    pub(super) std_error: Array2<f64>,
    pub(super) nngp: Option<Array2<f64>>,
    /// N·Var and its standard error (prior draws only).
    pub(super) n_variance: Option<(Array2<f64>, Array2<f64>)>,
    /// N·Var at one loop (THEORY.md §4.5), where computed.
    pub(super) one_loop: Option<Array2<f64>>,
    /// The one-loop mean shift N·(E[C] − C*), where computed.
    pub(super) one_loop_shift: Option<Array2<f64>>,
    pub(super) units: f64,
    /// A mean field (a vector in the result).
    pub(super) is_mean: bool,
}

/// What every mode writes per field entry: the `kernels`/`means`, `standard_errors` and
/// `nngp` members of the result, and the rows of the table.
pub(super) struct Tables<'a> {
    pub(super) theory: &'a crate::Theory,
    pub(super) one_loop: Vec<EntryVariance>,
    pub(super) one_loop_shift: Vec<(EntryKey, Array2<f64>)>,
    pub(super) units_of: &'a dyn Fn(&EntryKey) -> Option<usize>,
    pub(super) nngp: &'a Kernels,
    pub(super) rows: Vec<Row>,
}

impl<'a> Tables<'a> {
    pub(super) fn new(
        theory: &'a crate::Theory,
        units_of: &'a dyn Fn(&EntryKey) -> Option<usize>,
        nngp: &'a Kernels,
    ) -> Self {
        Tables {
            theory,
            one_loop: Vec::new(),
            one_loop_shift: Vec::new(),
            units_of,
            nngp,
            rows: Vec::new(),
        }
    }

    pub(super) fn add(
        &mut self,
        key: &EntryKey,
        mean: &Array2<f64>,
        std_error: &Array2<f64>,
        n_variance: Option<(Array2<f64>, Array2<f64>)>,
    ) {
        self.rows.push(Row {
            name: Kernels::name(self.theory, key),
            mean: mean.clone(),
            std_error: std_error.clone(),
            nngp: self.nngp.entries.get(key).cloned(),
            n_variance,
            units: (self.units_of)(key).unwrap_or(1) as f64,
            one_loop: self
                .one_loop
                .iter()
                .find(|v| &v.key == key)
                .map(|v| v.n_variance.clone()),
            one_loop_shift: self
                .one_loop_shift
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone()),
            is_mean: self.theory.fields[key.0].kind == FieldKind::Mean,
        });
    }

    /// Writes the arrays into `out` (a mean field as a vector); returns the rows.
    pub(super) fn finish(self, out: &mut RunResult) -> Vec<Row> {
        for row in &self.rows {
            let name = row.name.as_str();
            let put = |out: &mut RunResult, section: &str, m: &Array2<f64>| {
                if row.is_mean {
                    out.vector(&[section, name], m.column(0).to_owned());
                } else {
                    out.matrix(&[section, name], m.clone());
                }
            };
            put(
                out,
                if row.is_mean { "means" } else { "kernels" },
                &row.mean,
            );
            put(out, "standard_errors", &row.std_error);
            if let Some(v) = &row.one_loop {
                put(out, "one_loop_variance", v);
            }
            if let Some(v) = &row.one_loop_shift {
                put(out, "one_loop_shift", v);
            }
            if let Some(r) = &row.nngp {
                put(out, "nngp", r);
            }
        }
        self.rows
    }
}

/// The upper-triangle entries (or vector entries) shown for a P×P (or P×1) matrix.
pub(super) fn shown_entries(m: &Array2<f64>) -> Vec<(usize, usize)> {
    if m.ncols() == 1 {
        (0..m.nrows()).map(|i| (i, 0)).collect()
    } else {
        (0..m.nrows())
            .flat_map(|i| (i..m.ncols()).map(move |j| (i, j)))
            .collect()
    }
}

pub(super) fn print_prior(rows: &[Row]) {
    print_rows(rows, "mean", "s.e.", "N·(mean − NNGP)", true);
    outln!("N: the number of units of the population each field averages over.");
}

pub(super) fn print_posterior(rows: &[Row]) {
    print_rows(rows, "posterior", "MC s.e.", "N·(post − NNGP)", false);
}

/// One line per shown entry: value, its error, the NNGP value, N·(value − NNGP) and, for the
/// prior, N·Var.
pub(super) fn print_rows(rows: &[Row], value: &str, error: &str, shift: &str, with_variance: bool) {
    let variance_header = if with_variance { "N·Var" } else { "" };
    let one_loop = rows.iter().any(|r| r.one_loop.is_some());
    let one_loop_shift = rows.iter().any(|r| r.one_loop_shift.is_some());
    let header = format!(
        "{:<8} {:<8} {:>12} {:>10} {:>12} {:>16} {:>16} {:>9} {:>18}",
        "field",
        "entry",
        value,
        error,
        "NNGP",
        shift,
        variance_header,
        if one_loop { "one-loop" } else { "" },
        if one_loop_shift {
            "one-loop N·shift"
        } else {
            ""
        }
    );
    outln!("{}", header.trim_end());
    for row in rows {
        let entries = shown_entries(&row.mean);
        for (count, &(i, j)) in entries.iter().enumerate() {
            if entries.len() > 10 && count == 10 {
                outln!(
                    "{:<8} … {} more entries (--json or --out for all)",
                    "",
                    entries.len() - 10
                );
                break;
            }
            let label = if row.mean.ncols() == 1 {
                format!("{}", i + 1)
            } else {
                format!("{},{}", i + 1, j + 1)
            };
            let (nngp, shift) = match &row.nngp {
                Some(r) => (
                    format!("{:.6}", r[[i, j]]),
                    format!(
                        "{:+.4} ± {:.4}",
                        row.units * (row.mean[[i, j]] - r[[i, j]]),
                        row.units * row.std_error[[i, j]]
                    ),
                ),
                None => ("—".into(), "—".into()),
            };
            let variance = row.n_variance.as_ref().map_or(String::new(), |(v, e)| {
                format!("{:.4} ± {:.4}", v[[i, j]], e[[i, j]])
            });
            let theory = row
                .one_loop
                .as_ref()
                .map_or(String::new(), |v| format!("{:.4}", v[[i, j]]));
            // the theory's shift, and how many standard errors the sampled one lies from it
            let theory_shift = match (&row.one_loop_shift, &row.nngp) {
                (Some(m), Some(r)) => {
                    let sampled = row.units * (row.mean[[i, j]] - r[[i, j]]);
                    let error = row.units * row.std_error[[i, j]];
                    let distance = if error > 0.0 {
                        format!(" ({:+.1}σ)", (sampled - m[[i, j]]) / error)
                    } else {
                        String::new()
                    };
                    format!("{:+.4}{distance}", m[[i, j]])
                }
                (Some(m), None) => format!("{:+.4}", m[[i, j]]),
                _ => String::new(),
            };
            let line = format!(
                "{:<8} {:<8} {:>12.6} {:>10.2e} {:>12} {:>16} {:>16} {:>9} {:>18}",
                row.name,
                label,
                row.mean[[i, j]],
                row.std_error[[i, j]],
                nngp,
                shift,
                variance,
                theory,
                theory_shift
            );
            outln!("{}", line.trim_end());
        }
    }
}
