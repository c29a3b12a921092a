//! Derived equations as text (Unicode), LaTeX and JSON — what `saddle derive` prints.

use serde_json::{Value, json};

use crate::check::ir::{Dim, Theory};
use crate::render::{Latex, NameRoles, Notation, Unicode, render_expr};
use crate::syntax::ast::{self, ExprKind};

use super::entrywise::{Position, entry_formula};
use super::equations::{Equations, FieldEquation};
use super::show::{to_syntax, variable_syntax};

/// One derived equation, rendered.
struct Rendered {
    unknown: String,
    rhs: Result<String, String>,
    nngp: Result<String, String>,
    pair_map: Option<String>,
}

fn render_equation(
    theory: &Theory,
    eq: &FieldEquation,
    n: &dyn Notation,
    roles: &NameRoles,
    with_pair_map: bool,
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
    let pair_map = if with_pair_map {
        pair_map(theory, eq)
    } else {
        None
    };
    Rendered {
        unknown,
        rhs,
        nngp,
        pair_map,
    }
}

/// The entry-wise NNGP map as an s-expression, when it exists.
fn pair_map(theory: &Theory, eq: &FieldEquation) -> Option<String> {
    let nngp = eq.nngp.as_ref().ok()?;
    let position = if nngp.shape.cols == Dim::One {
        Position::First
    } else {
        Position::Pair
    };
    entry_formula(theory, nngp, position)
        .ok()
        .map(|f| f.expr.to_string())
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
pub fn text_report(theory: &Theory, equations: &Equations) -> String {
    let roles = NameRoles::of(theory);
    let mut out = format!("{}\n\n", header(theory, equations));
    out.push_str("Forward equations ∂S/∂C̃ = 0, tilted form:\n");
    let forward: Vec<Rendered> = equations
        .forward
        .iter()
        .map(|e| render_equation(theory, e, &Unicode, &roles, true))
        .collect();
    for r in &forward {
        match &r.rhs {
            Ok(rhs) => out.push_str(&format!("  {} = {rhs}\n", r.unknown)),
            Err(why) => out.push_str(&format!("  {}: not derived ({why})\n", r.unknown)),
        }
    }
    out.push_str("\nNNGP limit (C̃ = 0):\n");
    for r in &forward {
        if let Ok(nngp) = &r.nngp {
            out.push_str(&format!("  {} = {nngp}\n", r.unknown));
            if let Some(map) = &r.pair_map {
                out.push_str(&format!("    per pattern pair: {map}\n"));
            }
        }
    }
    out.push_str("\nBackward and output equations ∂S/∂C = 0:\n");
    for eq in &equations.backward {
        let r = render_equation(theory, eq, &Unicode, &roles, false);
        match &r.rhs {
            Ok(rhs) => out.push_str(&format!("  {} = {rhs}\n", r.unknown)),
            Err(why) => out.push_str(&format!("  {}: not derived ({why})\n", r.unknown)),
        }
    }
    out
}

/// LaTeX report: an `align*` block per group of equations.
pub fn latex_report(theory: &Theory, equations: &Equations) -> String {
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
        .map(|e| render_equation(theory, e, &Latex, &roles, false))
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
    let backward: Vec<Rendered> = equations
        .backward
        .iter()
        .map(|e| render_equation(theory, e, &Latex, &roles, false))
        .collect();
    block(
        "backward and output equations",
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
    out
}

/// JSON report with expression trees.
pub fn json_report(theory: &Theory, equations: &Equations) -> Value {
    let equation = |eq: &FieldEquation, with_map: bool| {
        let unknown = crate::syntax::print::print_expr(&variable_syntax(theory, &eq.unknown));
        let tree = |r: &Result<crate::check::ir::Expr, super::DeriveError>| match r {
            Ok(e) => {
                json!({ "tree": expr_json(&to_syntax(theory, e)), "text": crate::syntax::print::print_expr(&to_syntax(theory, e)) })
            }
            Err(why) => json!({ "error": why.to_string() }),
        };
        let mut value = json!({ "unknown": unknown, "rhs": tree(&eq.rhs), "nngp": tree(&eq.nngp) });
        if with_map && let Some(map) = pair_map(theory, eq) {
            value["pair_map"] = json!(map);
        }
        value
    };
    json!({
        "theory": theory.name,
        "int_params": equations.int_params.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "forward": equations.forward.iter().map(|e| equation(e, true)).collect::<Vec<_>>(),
        "backward": equations.backward.iter().map(|e| equation(e, false)).collect::<Vec<_>>(),
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
