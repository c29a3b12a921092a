//! [`ast::File`](crate::syntax::ast::File) → canonical `.action` text, the output of `saddle fmt`.
//!
//! Canonical means: one declaration per line, single blanks around binary operators,
//! parentheses exactly where precedence needs them, numbers in their shortest exact form,
//! comments kept, consecutive `param` lines aligned, and long expressions broken before
//! their top-level `+`/`-` (and inside `sum(…)`), the only places the grammar allows a
//! line break. `parse(print(file)) == file` for every file the parser accepts.

use super::ast::{
    BinaryOp, Binding, Expr, ExprKind, File, Item, ItemKind, NEG_PRECEDENCE, ParamType,
};

/// Lines longer than this are broken where the grammar allows.
const WIDTH: usize = 96;

/// Prints a whole file in canonical form.
pub fn print_file(file: &File) -> String {
    let mut out = String::new();
    let param_width = param_name_width(&file.items);
    for (i, item) in file.items.iter().enumerate() {
        if item.blank_line_before && i > 0 {
            out.push('\n');
        }
        for comment in &item.leading_comments {
            if comment.is_empty() {
                out.push('\n');
            } else {
                out.push_str(comment);
                out.push('\n');
            }
        }
        let text = print_item(item, param_width[i]);
        out.push_str(&text);
        if let Some(trailing) = &item.trailing_comment {
            let last_line = text.rsplit('\n').next().unwrap_or("").chars().count();
            let pad = if matches!(item.kind, ItemKind::Param(_)) {
                22usize.saturating_sub(last_line).max(1)
            } else {
                2
            };
            out.push_str(&" ".repeat(pad));
            out.push_str(&format!("//{trailing}"));
        }
        out.push('\n');
    }
    if !file.end_comments.is_empty() {
        out.push('\n');
        for comment in &file.end_comments {
            if comment.is_empty() {
                out.push('\n');
            } else {
                out.push_str(comment);
                out.push('\n');
            }
        }
    }
    out
}

/// For each item, the name width to pad `param` names to (their run's longest name).
fn param_name_width(items: &[Item]) -> Vec<usize> {
    let mut widths = vec![0; items.len()];
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        let mut width = 0;
        while j < items.len()
            && matches!(items[j].kind, ItemKind::Param(_))
            && (j == i || (!items[j].blank_line_before && items[j].leading_comments.is_empty()))
        {
            if let ItemKind::Param(p) = &items[j].kind {
                let typed = p.declared_type.map_or(0, |t| type_suffix(t).len());
                width = width.max(p.name.name.chars().count() + typed);
            }
            j += 1;
        }
        for w in widths.iter_mut().take(j.max(i + 1)).skip(i) {
            *w = width;
        }
        i = j.max(i + 1);
    }
    widths
}

fn type_suffix(t: ParamType) -> &'static str {
    match t {
        ParamType::Int => ": int",
        ParamType::Real => ": real",
    }
}

/// Prints one declaration (without its comments).
pub fn print_item(item: &Item, param_width: usize) -> String {
    match &item.kind {
        ItemKind::Theory(name) => format!("theory {}", name.name),
        ItemKind::Param(p) => {
            let head = format!("{}{}", p.name.name, p.declared_type.map_or("", type_suffix));
            let pad = param_width.saturating_sub(head.chars().count());
            format!(
                "param {head}{} = {}",
                " ".repeat(pad),
                format_number(p.default.value)
            )
        }
        ItemKind::Data(names) => {
            format!(
                "data {}",
                names
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        ItemKind::Field(f) => {
            let kind = match f.kind {
                super::ast::FieldKind::Kernel => "kernel",
                super::ast::FieldKind::Mean => "mean",
            };
            format!(
                "{kind} {}{}{}",
                f.name.name,
                name_list(&f.indices),
                for_clause(&f.ranges)
            )
        }
        ItemKind::Conj(c) => format!(
            "conj {}{} of {}{}{}",
            c.name.name,
            name_list(&c.indices),
            c.of.name,
            name_list(&c.of_indices),
            for_clause(&c.ranges)
        ),
        ItemKind::Function(f) => {
            let params: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
            let head = format!("{}({}) = ", f.name.name, params.join(", "));
            let indent = head.chars().count();
            format!("{head}{}", layout(&f.body, indent))
        }
        ItemKind::Definition(d) => {
            let indices = if d.indices.is_empty() {
                String::new()
            } else {
                format!(
                    "[{}]",
                    d.indices
                        .iter()
                        .map(print_expr)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let head = format!("{}{indices} = ", d.target.name);
            let indent = head.chars().count();
            format!("{head}{}{}", layout(&d.body, indent), for_clause(&d.ranges))
        }
        ItemKind::Action(a) => {
            let head = format!("action {} = ", a.name.name);
            let indent = head.chars().count();
            format!("{head}{}", layout(&a.body, indent))
        }
    }
}

fn name_list(names: &[super::ast::Ident]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(
            "[{}]",
            names
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

fn for_clause(bindings: &[Binding]) -> String {
    if bindings.is_empty() {
        String::new()
    } else {
        format!(" for {}", bindings_text(bindings))
    }
}

fn bindings_text(bindings: &[Binding]) -> String {
    bindings
        .iter()
        .map(|b| {
            format!(
                "{} in {}..={}",
                b.var.name,
                print_expr(&b.lower),
                print_expr(&b.upper)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shortest text that parses back to exactly `value` (no sign: literals are non-negative).
pub fn format_number(value: f64) -> String {
    if value == value.trunc() && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else if (1e-4..1e15).contains(&value.abs()) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

/// Binding strength of an expression's outermost operator (atoms bind tightest).
fn precedence(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::Binary { op, .. } => op.precedence(),
        ExprKind::Neg(_) | ExprKind::Prefix { .. } => NEG_PRECEDENCE,
        ExprKind::Transpose(_) => 5,
        _ => 6,
    }
}

/// One-line canonical text of an expression.
pub fn print_expr(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Number(v) => format_number(*v),
        ExprKind::Name(n) => n.name.clone(),
        ExprKind::Index { base, indices } => {
            format!(
                "{}[{}]",
                base.name,
                indices
                    .iter()
                    .map(print_expr)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        ExprKind::Call { func, args } => {
            format!(
                "{}({})",
                func.name,
                args.iter().map(print_expr).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::Prefix { func, arg } => format!(
            "{} {}",
            func.name,
            wrap(arg, precedence(arg) <= NEG_PRECEDENCE)
        ),
        ExprKind::Neg(inner) => format!("-{}", wrap(inner, precedence(inner) <= NEG_PRECEDENCE)),
        ExprKind::Transpose(inner) => format!("{}^T", wrap(inner, precedence(inner) < 5)),
        ExprKind::Binary { op, lhs, rhs } => {
            let (lp, rp) = operand_parens(*op, lhs, rhs);
            let (l, r) = (wrap(lhs, lp), wrap(rhs, rp));
            match op {
                BinaryOp::Juxtapose => format!("{l} {r}"),
                // `^T` not followed by a name character is the transpose: an exponent that
                // prints as `T`, `T(…)` or `T[…]` needs parentheses to stay a power
                BinaryOp::Pow if reads_as_transpose(&r) => format!("{l}^({r})"),
                BinaryOp::Pow => format!("{l}^{r}"),
                _ => format!("{l} {} {r}", op.symbol()),
            }
        }
        ExprKind::Sum { bindings, body } => {
            format!("sum({}, {})", bindings_text(bindings), print_expr(body))
        }
        ExprKind::Expectation {
            body,
            var,
            mean,
            cov,
        } => format!(
            "E[{} | {} ~ N({}, {})]",
            print_expr(body),
            var.name,
            print_expr(mean),
            print_expr(cov)
        ),
    }
}

/// Whether the left and right operands of `op` need parentheses.
fn operand_parens(op: BinaryOp, lhs: &Expr, rhs: &Expr) -> (bool, bool) {
    let p = op.precedence();
    match op {
        BinaryOp::Pow => (precedence(lhs) <= p, precedence(rhs) < NEG_PRECEDENCE),
        // A juxtaposed factor cannot start with a minus: `a -b` is a difference.
        BinaryOp::Juxtapose => (precedence(lhs) < p, precedence(rhs) <= NEG_PRECEDENCE),
        _ => (precedence(lhs) < p, precedence(rhs) <= p),
    }
}

/// Whether `^` followed by `text` would lex as the transpose `^T`.
fn reads_as_transpose(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next() == Some('T')
        && !chars
            .next()
            .is_some_and(|c| c == '_' || c.is_alphanumeric())
}

fn wrap(expr: &Expr, parens: bool) -> String {
    if parens {
        format!("({})", print_expr(expr))
    } else {
        print_expr(expr)
    }
}

/// Multi-line layout: the one-line form if it fits, else line breaks before top-level
/// `+`/`-` and inside `sum(…)`, indented under the column where the expression starts.
fn layout(expr: &Expr, indent: usize) -> String {
    let flat = print_expr(expr);
    if indent + flat.chars().count() <= WIDTH {
        return flat;
    }
    let mut terms = Vec::new();
    additive_terms(expr, '+', &mut terms);
    if terms.len() == 1 {
        return match &expr.kind {
            ExprKind::Sum { bindings, body } => {
                let inner_indent = indent + 4;
                let body_text = layout_terms(body, inner_indent);
                format!(
                    "sum({},\n{}{})",
                    bindings_text(bindings),
                    " ".repeat(inner_indent),
                    body_text
                )
            }
            _ => flat,
        };
    }
    layout_terms(expr, indent)
}

/// Each top-level term on its own line; continuation lines start with their operator.
fn layout_terms(expr: &Expr, indent: usize) -> String {
    let mut terms = Vec::new();
    additive_terms(expr, '+', &mut terms);
    let mut out = String::new();
    for (i, (sign, term)) in terms.iter().enumerate() {
        if i == 0 {
            let text = layout(term, indent);
            out.push_str(&text);
        } else {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            out.push(*sign);
            out.push(' ');
            let needs_parens = precedence(term) <= BinaryOp::Add.precedence();
            if needs_parens {
                out.push_str(&format!("({})", print_expr(term)));
            } else {
                out.push_str(&layout(term, indent + 2));
            }
        }
    }
    out
}

/// Flattens a left-nested chain of `+`/`-` into signed terms (the first has sign `+`).
fn additive_terms<'a>(expr: &'a Expr, sign: char, out: &mut Vec<(char, &'a Expr)>) {
    if let ExprKind::Binary {
        op: op @ (BinaryOp::Add | BinaryOp::Sub),
        lhs,
        rhs,
    } = &expr.kind
    {
        additive_terms(lhs, sign, out);
        out.push((if *op == BinaryOp::Add { '+' } else { '-' }, rhs));
    } else {
        out.push((sign, expr));
    }
}

#[cfg(test)]
mod tests {
    use super::reads_as_transpose;

    #[test]
    fn an_exponent_that_would_read_as_the_transpose_is_recognised() {
        for text in ["T", "T(0)", "T[1]", "T ^ 2"] {
            assert!(reads_as_transpose(text), "{text}");
        }
        for text in ["Tx", "T_1", "T2", "Θ", "t", "(T)"] {
            assert!(!reads_as_transpose(text), "{text}");
        }
    }
}
