//! Unicode math text: `C⁽ˡ⁾ = g·⟨φ(h)φ(h)ᵀ⟩_{h∼𝒩(0, C⁽ˡ⁻¹⁾)} + g_b`.

use super::Notation;
use super::names::{greek, split_digits, subscript_digits, superscript};

/// Unicode math text for terminals and plain-text reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unicode;

impl Notation for Unicode {
    fn name(&self, name: &str) -> String {
        match name {
            "I" => return "𝟙".to_string(),
            "ones" => return "𝟏𝟏ᵀ".to_string(),
            _ => {}
        }
        let (letters, digits) = split_digits(name);
        let letters = greek(letters).map_or(letters.to_string(), |(u, _)| u.to_string());
        format!("{letters}{}", subscript_digits(digits))
    }

    fn field(&self, base: &str, tilde: bool, indices: &[String]) -> String {
        let mut head = self.name(base);
        if tilde {
            // combining tilde on the first character
            let mut chars = head.chars();
            if let Some(first) = chars.next() {
                head = format!("{first}\u{303}{}", chars.as_str());
            }
        }
        if indices.is_empty() {
            return head;
        }
        let joined = indices.join(",");
        match superscript(&format!("({joined})")) {
            Some(sup) => format!("{head}{sup}"),
            None => format!("{head}[{}]", indices.join(", ")),
        }
    }

    fn parens(&self, inner: &str) -> String {
        format!("({inner})")
    }

    fn neg(&self, inner: &str) -> String {
        format!("−{inner}")
    }

    fn additive(&self, lhs: &str, op: char, rhs: &str) -> String {
        let op = if op == '-' { '−' } else { op };
        format!("{lhs} {op} {rhs}")
    }

    fn product(&self, lhs: &str, rhs: &str, explicit: bool) -> String {
        if explicit {
            format!("{lhs}·{rhs}")
        } else {
            format!("{lhs} {rhs}")
        }
    }

    fn fraction(
        &self,
        numerator: &str,
        denominator: &str,
        num_atomic: bool,
        den_atomic: bool,
    ) -> String {
        let n = if num_atomic {
            numerator.to_string()
        } else {
            format!("({numerator})")
        };
        let d = if den_atomic {
            denominator.to_string()
        } else {
            format!("({denominator})")
        };
        format!("{n}/{d}")
    }

    fn power(&self, base: &str, exponent: &str) -> String {
        match superscript(exponent) {
            Some(sup) => format!("{base}{sup}"),
            None => format!("{base}^({exponent})"),
        }
    }

    fn transpose(&self, inner: &str) -> String {
        format!("{inner}ᵀ")
    }

    fn inverse(&self, inner: &str) -> String {
        format!("{inner}⁻¹")
    }

    fn call(&self, func: &str, args: &[String]) -> String {
        match (func, args) {
            ("sqrt", [a]) if a.chars().all(char::is_alphanumeric) => format!("√{a}"),
            ("sqrt", [a]) => format!("√({a})"),
            ("logdet", [a]) => format!("ln det({a})"),
            ("abs", [a]) => format!("|{a}|"),
            _ => format!("{}({})", self.name(func), args.join(", ")),
        }
    }

    fn sum(&self, bindings: &[(String, String, String)], body: &str, many_terms: bool) -> String {
        let ranges: Vec<String> = bindings
            .iter()
            .map(|(v, lo, hi)| format!("{v}={lo}…{hi}"))
            .collect();
        let body = if many_terms {
            format!("[{body}]")
        } else {
            body.to_string()
        };
        format!("Σ_{{{}}} {body}", ranges.join(", "))
    }

    fn expectation(&self, body: &str, var: &str, mean: &str, cov: &str) -> String {
        format!("⟨{body}⟩_{{{var}∼𝒩({mean}, {cov})}}")
    }

    fn equation(&self, lhs: &str, rhs: &str) -> String {
        format!("{lhs} = {rhs}")
    }

    fn range_clause(&self, var: &str, lower: &str, upper: &str) -> String {
        format!(", {var} = {lower}…{upper}")
    }

    fn text(&self, text: &str) -> String {
        text.to_string()
    }
}
