//! Derived equations as text (Unicode), LaTeX and JSON — what `saddle derive` prints.
//!
//! One concept, one file: derived equations rendered as text, LaTeX and JSON.

use serde_json::{Value, json};

use crate::check::ir::Theory;
use crate::render::{Latex, NameRoles, Notation, Unicode, render_expr};
use crate::syntax::ast::{self, ExprKind};

use super::closed_form::{PairCache, PairEquation, pair_equation_cached};
use super::equations::{Equations, FieldEquation};
use super::grad::Variable;
use super::hessian::{SecondVariation, second_variation};
use super::linearised::{LinearisedSystem, Term, is_delta, linearised_system};
use super::show::{to_syntax, variable_syntax};
use crate::symbolic::lang::Math;
use crate::symbolic::print::{Style, formula};
use egg::RecExpr;

/// Everything `saddle derive` prints, computed once and rendered in any format.
pub struct Report<'a> {
    theory: &'a Theory,
    equations: &'a Equations,
    /// Pair equations (closed forms and G) of the forward equations, where they exist.
    pairs: Vec<Option<PairEquation>>,
    /// S⁽²⁾ at the NNGP point.
    second: SecondVariation,
    /// The linearised fluctuation system built from it.
    linearised: LinearisedSystem,
}

impl<'a> Report<'a> {
    /// Simplifies every forward equation's pair formula and its Jacobian.
    pub fn new(theory: &'a Theory, equations: &'a Equations) -> Self {
        let mut cache = PairCache::default();
        let pairs = equations
            .forward
            .iter()
            .map(|e| pair_equation_cached(theory, e, true, &mut cache))
            .collect();
        let second = second_variation(theory, equations);
        let linearised = linearised_system(equations, &second);
        Report {
            theory,
            equations,
            pairs,
            second,
            linearised,
        }
    }

    /// The linearised system as lines `unknown = terms` and, per source, `where` lines.
    fn linearised_lines(&self, n: &dyn Notation, latex: bool) -> Vec<(String, Vec<String>)> {
        let theory = &self.second.theory;
        let roles = NameRoles::of(theory);
        let name = |v: &Variable| render_expr(&variable_syntax(theory, v), n, &roles);
        let unknown = |v: &Variable| {
            let base = name(v);
            match (is_delta(v), latex) {
                (false, _) => base,
                (true, false) => format!("δ{base}"),
                (true, true) => format!(r"\delta {base}"),
            }
        };
        let source_label = |z: &Variable| {
            if latex {
                format!(
                    r"\left.\frac{{\partial S}}{{\partial {}}}\right|_{{\tilde C=0}}",
                    name(z)
                )
            } else {
                format!("∂S/∂{}|_(C̃=0)", name(z))
            }
        };
        let term = |t: &Term| {
            let (row, column) = (name(&t.row), name(&t.column));
            let block = if latex {
                format!(r"\frac{{\partial^2 S}}{{\partial {row}\,\partial {column}}}")
            } else {
                format!("∂²S/∂{row}∂{column}")
            };
            let block = match (t.transposed, latex) {
                (false, _) => block,
                (true, false) => format!("({block})ᵀ"),
                (true, true) => format!(r"\Big({block}\Big)^\top"),
            };
            format!("{block}[{}]", unknown(&t.applied_to))
        };
        self.linearised
            .lines
            .iter()
            .map(|line| {
                let mut parts: Vec<String> = Vec::new();
                let mut notes = Vec::new();
                if let Some(source) = &line.source {
                    parts.push(source_label(&line.stationary_in));
                    notes.push(format!(
                        "{} = {}",
                        source_label(&line.stationary_in),
                        render_expr(&to_syntax(theory, source), n, &roles)
                    ));
                }
                parts.extend(line.terms.iter().map(term));
                let rhs = if parts.is_empty() {
                    "0".to_string()
                } else {
                    parts.join(" + ")
                };
                let lhs = line
                    .solved_for
                    .as_ref()
                    .map_or_else(|| "0".to_string(), unknown);
                let eq = if latex { "&=" } else { "=" };
                (format!("{lhs} {eq} {rhs}"), notes)
            })
            .collect()
    }

    /// The blocks of S⁽²⁾ rendered as (label, map or reason).
    fn hessian_lines(
        &self,
        n: &dyn Notation,
        latex: bool,
    ) -> Vec<(String, Result<String, String>)> {
        let theory = &self.second.theory;
        let roles = NameRoles::of(theory);
        self.second
            .blocks
            .iter()
            .map(|b| {
                let row = render_expr(&variable_syntax(theory, &b.row), n, &roles);
                let column = render_expr(&variable_syntax(theory, &b.column), n, &roles);
                let label = if latex {
                    format!(r"\frac{{\partial^2 S}}{{\partial {row}\,\partial {column}}}[E]")
                } else {
                    format!("∂²S/∂{row}∂{column} [E]")
                };
                let map = b
                    .map
                    .as_ref()
                    .map(|m| render_expr(&to_syntax(theory, m), n, &roles))
                    .map_err(|e| e.to_string());
                (label, map)
            })
            .collect()
    }
}

/// One derived equation, rendered.
struct Rendered {
    unknown: String,
    rhs: Result<String, String>,
    nngp: Result<String, String>,
}

fn render_equation(
    theory: &Theory,
    eq: &FieldEquation,
    n: &dyn Notation,
    roles: &NameRoles,
) -> Rendered {
    let unknown = render_expr(&variable_syntax(theory, &eq.unknown), n, roles);
    let rhs = eq
        .rhs
        .as_ref()
        .map(|r| render_expr(&to_syntax(theory, r), n, roles))
        .map_err(|e| e.to_string());
    let nngp = eq
        .nngp
        .as_ref()
        .map(|r| render_expr(&to_syntax(theory, r), n, roles))
        .map_err(|e| e.to_string());
    Rendered { unknown, rhs, nngp }
}

/// "∂C⁽²⁾_αβ/∂C⁽¹⁾_αα" in a style.
fn derivative_label(unknown: &str, wrt: &str, style: Style) -> String {
    let sym = |s: &str| formula(&s.parse::<RecExpr<Math>>().unwrap_or_default(), style);
    match style {
        Style::Unicode => format!("∂{}/∂{}", sym(unknown), sym(wrt)),
        Style::Latex => format!(
            r"\frac{{\partial {}}}{{\partial {}}}",
            sym(unknown),
            sym(wrt)
        ),
    }
}

/// What the backward equations of a time family mean, when the theory has one.
fn family_legend(theory: &Theory) -> Option<String> {
    let family = theory.fields.iter().find(|f| f.is_time_family())?;
    let name = &family.name;
    Some(format!(
        "(time family {name}: ĥ = Σ⁻¹h is the field whitened by the joint covariance Σ, blocks {name}[t, s],\n\
         of the times the expectation reads — Stein's lemma over the family; a conjugate inside the\n\
         tilted measure makes an equation self-consistent; {name}[t, s] and {name}[s, t]ᵀ are one kernel)\n"
    ))
}

/// Header lines: theory name and the integer parameters used.
fn header(theory: &Theory, equations: &Equations) -> String {
    let ints: Vec<String> = equations
        .int_params
        .iter()
        .map(|(n, v)| format!("{n} = {v}"))
        .collect();
    if ints.is_empty() {
        format!("theory {}", theory.name)
    } else {
        format!("theory {} ({})", theory.name, ints.join(", "))
    }
}

/// Plain-text (Unicode) report.
pub fn text_report(report: &Report<'_>) -> String {
    let (theory, equations) = (report.theory, report.equations);
    let roles = NameRoles::of(theory);
    let mut out = format!("{}\n\n", header(theory, equations));
    out.push_str("Forward equations ∂S/∂C̃ = 0, tilted form:\n");
    let forward: Vec<Rendered> = equations
        .forward
        .iter()
        .map(|e| render_equation(theory, e, &Unicode, &roles))
        .collect();
    for r in &forward {
        match &r.rhs {
            Ok(rhs) => out.push_str(&format!("  {} = {rhs}\n", r.unknown)),
            Err(why) => out.push_str(&format!("  {}: not derived ({why})\n", r.unknown)),
        }
    }
    out.push_str("\nNNGP limit (C̃ = 0):\n");
    for (r, pair) in forward.iter().zip(&report.pairs) {
        if let Ok(nngp) = &r.nngp {
            out.push_str(&format!("  {} = {nngp}\n", r.unknown));
        }
        if let Some(pair) = pair {
            let unknown = formula(
                &pair.unknown.parse::<RecExpr<Math>>().unwrap_or_default(),
                Style::Unicode,
            );
            let kind = if pair.is_closed() {
                "closed form"
            } else {
                "no closed form: quadrature"
            };
            out.push_str(&format!(
                "    per pattern pair ({kind}): {unknown} = {}\n",
                formula(&pair.formula, Style::Unicode)
            ));
            for (wrt, d) in &pair.jacobian {
                let label = derivative_label(&pair.unknown, wrt, Style::Unicode);
                match d {
                    Ok(d) => out.push_str(&format!(
                        "      G: {label} = {}\n",
                        formula(d, Style::Unicode)
                    )),
                    Err(why) => out.push_str(&format!("      G: {label}: {why}\n")),
                }
            }
        }
    }
    out.push_str("\nBackward and output equations ∂S/∂C = 0:\n");
    if let Some(legend) = family_legend(theory) {
        out.push_str(&legend);
    }
    for eq in &equations.backward {
        let r = render_equation(theory, eq, &Unicode, &roles);
        match &r.rhs {
            Ok(rhs) => out.push_str(&format!("  {} = {rhs}\n", r.unknown)),
            Err(why) => out.push_str(&format!("  {}: not derived ({why})\n", r.unknown)),
        }
    }
    out.push_str("\nSecond variation S⁽²⁾ at the NNGP point, applied to a symmetric direction E\n");
    out.push_str(
        "(blocks not listed vanish; (C, C̃) blocks are the transposes of the (C̃, C) ones):\n",
    );
    for (label, map) in report.hessian_lines(&Unicode, false) {
        match map {
            Ok(m) => out.push_str(&format!("  {label} = {m}\n")),
            Err(why) => out.push_str(&format!("  {label}: not derived ({why})\n")),
        }
    }
    let linearised = report.linearised_lines(&Unicode, false);
    if let Some((row, column, why)) = &report.linearised.missing {
        let name = |v| render_expr(&variable_syntax(&report.second.theory, v), &Unicode, &roles);
        out.push_str(&format!(
            "\nLinearised fluctuation system: not stated (∂²S/∂{}∂{} is not derived: {why})\n",
            name(row),
            name(column)
        ));
    } else if !linearised.is_empty() {
        out.push_str(
            "\nLinearised fluctuation system around the NNGP point: stationarity of S⁽²⁾ + ⟨∂S, δ⟩\n\
             in δC = C − C* and C̃ (blocks as above on the unknown in brackets; ᵀ: transposed in the\n\
             full-matrix pairing; leading order drops the (C, C) blocks):\n",
        );
        for (line, notes) in &linearised {
            out.push_str(&format!("  {line}\n"));
            for note in notes {
                out.push_str(&format!("    where {note}\n"));
            }
        }
    }
    out
}

/// LaTeX report: an `align*` block per group of equations.
pub fn latex_report(report: &Report<'_>) -> String {
    let (theory, equations) = (report.theory, report.equations);
    let roles = NameRoles::of(theory);
    let mut out = format!("% {}\n", header(theory, equations));
    let mut block = |title: &str, lines: Vec<String>| {
        if lines.is_empty() {
            return;
        }
        out.push_str(&format!("% {title}\n\\begin{{align*}}\n"));
        let n = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            out.push_str("  ");
            out.push_str(&line);
            out.push_str(if i + 1 < n { " \\\\\n" } else { "\n" });
        }
        out.push_str("\\end{align*}\n");
    };
    let forward: Vec<Rendered> = equations
        .forward
        .iter()
        .map(|e| render_equation(theory, e, &Latex, &roles))
        .collect();
    block(
        "forward equations, tilted form",
        forward
            .iter()
            .filter_map(|r| {
                r.rhs
                    .as_ref()
                    .ok()
                    .map(|rhs| format!("{} &= {rhs}", r.unknown))
            })
            .collect(),
    );
    block(
        "NNGP limit",
        forward
            .iter()
            .filter_map(|r| {
                r.nngp
                    .as_ref()
                    .ok()
                    .map(|rhs| format!("{} &= {rhs}", r.unknown))
            })
            .collect(),
    );
    let mut pair_lines = Vec::new();
    for pair in report.pairs.iter().flatten() {
        let unknown = formula(
            &pair.unknown.parse::<RecExpr<Math>>().unwrap_or_default(),
            Style::Latex,
        );
        pair_lines.push(format!(
            "{unknown} &= {}",
            formula(&pair.formula, Style::Latex)
        ));
        for (wrt, d) in &pair.jacobian {
            if let Ok(d) = d {
                pair_lines.push(format!(
                    "{} &= {}",
                    derivative_label(&pair.unknown, wrt, Style::Latex),
                    formula(d, Style::Latex)
                ));
            }
        }
    }
    block("per pattern pair, with the Jacobian G", pair_lines);
    let backward: Vec<Rendered> = equations
        .backward
        .iter()
        .map(|e| render_equation(theory, e, &Latex, &roles))
        .collect();
    let mut title = String::from("backward and output equations");
    if let Some(legend) = family_legend(theory) {
        for line in legend.lines() {
            title.push_str(&format!("\n% {}", line.trim_start()));
        }
    }
    block(
        &title,
        backward
            .iter()
            .filter_map(|r| {
                r.rhs
                    .as_ref()
                    .ok()
                    .map(|rhs| format!("{} &= {rhs}", r.unknown))
            })
            .collect(),
    );
    let hessian: Vec<String> = report
        .hessian_lines(&Latex, true)
        .into_iter()
        .filter_map(|(label, map)| map.ok().map(|m| format!("{label} &= {m}")))
        .collect();
    block(
        "second variation at the NNGP point, on a symmetric direction E",
        hessian,
    );
    let mut linearised = Vec::new();
    let complete = report.linearised.missing.is_none();
    for (line, notes) in report
        .linearised_lines(&Latex, true)
        .into_iter()
        .filter(|_| complete)
    {
        linearised.push(line);
        linearised.extend(notes.into_iter().map(|n| n.replacen(" = ", " &= ", 1)));
    }
    block(
        "linearised fluctuation system around the NNGP point (leading order: without the (C, C) blocks)",
        linearised,
    );
    out
}

/// JSON report with expression trees.
pub fn json_report(report: &Report<'_>) -> Value {
    let (theory, equations) = (report.theory, report.equations);
    let equation = |eq: &FieldEquation, pair: Option<&PairEquation>| {
        let unknown = crate::syntax::print::print_expr(&variable_syntax(theory, &eq.unknown));
        let tree = |r: &Result<crate::check::ir::Expr, super::DeriveError>| match r {
            Ok(e) => {
                json!({ "tree": expr_json(&to_syntax(theory, e)), "text": crate::syntax::print::print_expr(&to_syntax(theory, e)) })
            }
            Err(why) => json!({ "error": why.to_string() }),
        };
        let mut value = json!({ "unknown": unknown, "rhs": tree(&eq.rhs), "nngp": tree(&eq.nngp) });
        if let Some(pair) = pair {
            let jacobian: serde_json::Map<String, Value> = pair
                .jacobian
                .iter()
                .map(|(wrt, d)| {
                    (
                        wrt.clone(),
                        match d {
                            Ok(d) => json!(d.to_string()),
                            Err(why) => json!({ "error": why }),
                        },
                    )
                })
                .collect();
            value["pair"] = json!({
                "unknown": pair.unknown,
                "formula": pair.formula.to_string(),
                "closed_form": pair.is_closed(),
                "jacobian": jacobian,
            });
        }
        value
    };
    json!({
        "theory": theory.name,
        "int_params": equations.int_params.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "forward": equations.forward.iter().zip(&report.pairs).map(|(e, p)| equation(e, p.as_ref())).collect::<Vec<_>>(),
        "backward": equations.backward.iter().map(|e| equation(e, None)).collect::<Vec<_>>(),
        "hessian": report.second.blocks.iter().map(|b| {
            let name = |v| crate::syntax::print::print_expr(&variable_syntax(&report.second.theory, v));
            let map = match &b.map {
                Ok(m) => {
                    let syntax = to_syntax(&report.second.theory, m);
                    json!({ "tree": expr_json(&syntax), "text": crate::syntax::print::print_expr(&syntax) })
                }
                Err(why) => json!({ "error": why.to_string() }),
            };
            json!({ "row": name(&b.row), "column": name(&b.column), "direction": "E", "map": map })
        }).collect::<Vec<_>>(),
        "linearised": if let Some((row, column, why)) = &report.linearised.missing {
            let name = |v: &Variable| crate::syntax::print::print_expr(&variable_syntax(&report.second.theory, v));
            json!({ "error": format!("the block ({}, {}) is not derived: {why}", name(row), name(column)) })
        } else { json!(report.linearised.lines.iter().map(|line| {
            let name = |v: &Variable| crate::syntax::print::print_expr(&variable_syntax(&report.second.theory, v));
            let unknown = |v: &Variable| json!({ "variable": name(v), "delta": is_delta(v) });
            json!({
                "stationary_in": name(&line.stationary_in),
                "solved_for": line.solved_for.as_ref().map(unknown),
                // the tree is that of the backward equation's NNGP form
                "source": line.source.as_ref().map(|e| {
                    crate::syntax::print::print_expr(&to_syntax(&report.second.theory, e))
                }),
                "terms": line.terms.iter().map(|t| json!({
                    "row": name(&t.row),
                    "column": name(&t.column),
                    "transposed": t.transposed,
                    "applied_to": unknown(&t.applied_to),
                    "leading_order": !(is_delta(&t.row) && is_delta(&t.column)),
                })).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>()) },
    })
}

/// A syntax tree as JSON: `{"op": "+", "args": […]}`, `{"name": "g"}`, `{"number": 1.5}`,
/// `{"index": "C", "indices": […]}`, `{"call": "tr", "args": […]}`, `{"expectation": …}`.
pub fn expr_json(e: &ast::Expr) -> Value {
    match &e.kind {
        ExprKind::Number(v) => json!({ "number": v }),
        ExprKind::Name(n) => json!({ "name": n.name }),
        ExprKind::Index { base, indices } => {
            json!({ "index": base.name, "indices": indices.iter().map(expr_json).collect::<Vec<_>>() })
        }
        ExprKind::Call { func, args } => {
            json!({ "call": func.name, "args": args.iter().map(expr_json).collect::<Vec<_>>() })
        }
        ExprKind::Prefix { func, arg } => json!({ "call": func.name, "args": [expr_json(arg)] }),
        ExprKind::Neg(a) => json!({ "op": "neg", "args": [expr_json(a)] }),
        ExprKind::Transpose(a) => json!({ "op": "transpose", "args": [expr_json(a)] }),
        ExprKind::Binary { op, lhs, rhs } => {
            let symbol = match op {
                ast::BinaryOp::Juxtapose => "*",
                other => other.symbol(),
            };
            json!({ "op": symbol, "args": [expr_json(lhs), expr_json(rhs)] })
        }
        ExprKind::Sum { bindings, body } => json!({
            "sum": bindings.iter().map(|b| json!({ "var": b.var.name, "from": expr_json(&b.lower), "to": expr_json(&b.upper) })).collect::<Vec<_>>(),
            "body": expr_json(body),
        }),
        ExprKind::Expectation {
            body,
            var,
            mean,
            cov,
        } => json!({
            "expectation": expr_json(body),
            "var": var.name,
            "mean": expr_json(mean),
            "cov": expr_json(cov),
        }),
    }
}
