//! LaTeX (amsmath): `C^{(l)} = g\left\langle \phi(h)\phi(h)^\top \right\rangle_{h\sim\mathcal{N}(0, C^{(l-1)})} + g_{b}`.

use super::Notation;
use super::names::{greek, split_digits};

/// LaTeX math for papers and notebooks (needs `amsmath`, `amssymb`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Latex;

/// Built-ins with an operator name of their own.
fn operator(func: &str) -> Option<&'static str> {
    Some(match func {
        "exp" => "\\exp",
        "ln" => "\\ln",
        "tanh" => "\\tanh",
        "tr" => "\\operatorname{tr}",
        "erf" => "\\operatorname{erf}",
        "asin" => "\\arcsin",
        "acos" => "\\arccos",
        "atan" => "\\arctan",
        "relu" => "\\operatorname{relu}",
        "step" => "\\Theta",
        "sign" => "\\operatorname{sign}",
        "logdet" => "\\ln\\det",
        _ => return None,
    })
}

impl Notation for Latex {
    fn name(&self, name: &str) -> String {
        // a whitened random variable (`derive::show` marks it with a combining circumflex)
        if let Some(base) = name.strip_suffix('\u{302}') {
            return format!("\\hat{{{}}}", self.name(base));
        }
        match name {
            "I" => return "\\mathbb{1}".to_string(),
            "ones" => return "\\mathbf{1}\\mathbf{1}^\\top".to_string(),
            _ => {}
        }
        let (letters, digits) = split_digits(name);
        let letters = letters.replace('_', "\\_");
        let head = match greek(&letters) {
            Some((_, l)) => l.to_string(),
            None if letters.chars().count() == 1 => letters,
            // `gb` → g_{b}: a one-letter symbol with a subscript, as in the papers
            None if letters.chars().count() <= 3
                && letters.chars().all(|c| c.is_ascii_alphabetic()) =>
            {
                let mut chars = letters.chars();
                let first = chars.next().unwrap_or('x');
                return if digits.is_empty() {
                    format!("{first}_{{{}}}", chars.as_str())
                } else {
                    format!("{first}_{{{}{digits}}}", chars.as_str())
                };
            }
            None => format!("\\mathit{{{letters}}}"),
        };
        if digits.is_empty() {
            head
        } else {
            format!("{head}_{{{digits}}}")
        }
    }

    fn field(&self, base: &str, tilde: bool, indices: &[String]) -> String {
        let head = if tilde {
            format!("\\tilde{{{}}}", self.name(base))
        } else {
            self.name(base)
        };
        if indices.is_empty() {
            head
        } else {
            format!("{head}^{{({})}}", indices.join(","))
        }
    }

    fn parens(&self, inner: &str) -> String {
        format!("\\left({inner}\\right)")
    }

    fn neg(&self, inner: &str) -> String {
        format!("-{inner}")
    }

    fn additive(&self, lhs: &str, op: char, rhs: &str) -> String {
        format!("{lhs} {op} {rhs}")
    }

    fn product(&self, lhs: &str, rhs: &str, explicit: bool) -> String {
        let digit_pair = lhs.ends_with(|c: char| c.is_ascii_digit())
            && rhs.starts_with(|c: char| c.is_ascii_digit());
        if explicit && digit_pair {
            format!("{lhs} \\cdot {rhs}")
        } else {
            format!("{lhs}\\, {rhs}")
        }
    }

    fn fraction(&self, numerator: &str, denominator: &str, _: bool, _: bool) -> String {
        format!("\\frac{{{numerator}}}{{{denominator}}}")
    }

    fn power(&self, base: &str, exponent: &str) -> String {
        format!("{{{base}}}^{{{exponent}}}")
    }

    fn transpose(&self, inner: &str) -> String {
        format!("{}^\\top", braced(inner))
    }

    fn inverse(&self, inner: &str) -> String {
        format!("{}^{{-1}}", braced(inner))
    }

    fn call(&self, func: &str, args: &[String]) -> String {
        match (func, args) {
            ("sqrt", [a]) => format!("\\sqrt{{{a}}}"),
            ("abs", [a]) => format!("\\left|{a}\\right|"),
            _ => {
                let head = operator(func).map_or_else(|| self.name(func), str::to_string);
                format!("{head}\\left({}\\right)", args.join(", "))
            }
        }
    }

    fn sum(&self, bindings: &[(String, String, String)], body: &str, many_terms: bool) -> String {
        let mut out = String::new();
        for (v, lo, hi) in bindings {
            out.push_str(&format!("\\sum_{{{v}={lo}}}^{{{hi}}} "));
        }
        if many_terms {
            out.push_str(&format!("\\left[{body}\\right]"));
        } else {
            out.push_str(body);
        }
        out
    }

    fn expectation(&self, body: &str, var: &str, mean: &str, cov: &str) -> String {
        format!(
            "\\left\\langle {body} \\right\\rangle_{{{var}\\sim\\mathcal{{N}}\\left({mean},\\, {cov}\\right)}}"
        )
    }

    fn equation(&self, lhs: &str, rhs: &str) -> String {
        format!("{lhs} = {rhs}")
    }

    fn range_clause(&self, var: &str, lower: &str, upper: &str) -> String {
        format!(",\\quad {var} = {lower},\\dots,{upper}")
    }

    fn text(&self, text: &str) -> String {
        let escaped = text
            .replace('\\', "\\textbackslash{}")
            .replace('_', "\\_")
            .replace('×', "$\\times$");
        format!("\\text{{{escaped}}}")
    }
}

/// `inner`, in braces when it already carries a superscript (LaTeX forbids `a^b^c`).
fn braced(inner: &str) -> String {
    if inner.contains('^') {
        format!("{{{inner}}}")
    } else {
        inner.to_string()
    }
}

/// A whole theory as a LaTeX `align*` environment, one declaration per line.
pub fn latex_document(lines: &[String]) -> String {
    let mut out = String::from("\\begin{align*}\n");
    for (i, line) in lines.iter().enumerate() {
        out.push_str("  &");
        out.push_str(line);
        if i + 1 < lines.len() {
            out.push_str(" \\\\");
        }
        out.push('\n');
    }
    out.push_str("\\end{align*}\n");
    out
}
