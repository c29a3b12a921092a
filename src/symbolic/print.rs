//! Formulas of the e-graph language as mathematics: infix Unicode text and LaTeX.
//!
//! Entry symbols print as indexed entries (`C[1]_ab` → C⁽¹⁾_αβ, `\,C^{(1)}_{\alpha\beta}`),
//! pair expectations as ⟨f(u) g(v)⟩ over the bivariate Gaussian they stand for.

use egg::{Id, RecExpr};

use super::lang::Math;

/// Which notation to print in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unicode text.
    Unicode,
    /// LaTeX.
    Latex,
}

/// Prints a formula.
pub fn formula(expr: &RecExpr<Math>, style: Style) -> String {
    if expr.as_ref().is_empty() {
        return String::new();
    }
    let root = Id::from(expr.as_ref().len() - 1);
    Printer { expr, style }.print(root).0
}

struct Printer<'a> {
    expr: &'a RecExpr<Math>,
    style: Style,
}

/// Precedence levels: 1 sums, 2 products, 3 unary minus, 4 powers, 5 atoms.
type Printed = (String, u8);

impl Printer<'_> {
    fn latex(&self) -> bool {
        self.style == Style::Latex
    }

    fn wrap(&self, (text, prec): Printed, min: u8) -> String {
        if prec < min {
            if self.latex() {
                format!("\\left({text}\\right)")
            } else {
                format!("({text})")
            }
        } else {
            text
        }
    }

    fn call(&self, name: &str, latex: &str, arg: Id) -> Printed {
        let inner = self.print(arg).0;
        if self.latex() {
            (format!("{latex}\\left({inner}\\right)"), 5)
        } else {
            (format!("{name}({inner})"), 5)
        }
    }

    fn print(&self, id: Id) -> Printed {
        let p = |i: Id| self.print(i);
        match &self.expr[id] {
            Math::Num(c) => {
                let text = c.to_string();
                match text.split_once('/') {
                    Some((n, d)) if self.latex() => (format!("\\frac{{{n}}}{{{d}}}"), 5),
                    Some(_) => (text, 2),
                    None if text.starts_with('-') => (text, 3),
                    None => (text, 5),
                }
            }
            Math::Pi => ((if self.latex() { "\\pi" } else { "π" }).to_string(), 5),
            Math::Symbol(s) => (self.symbol(s.as_str()), 5),
            Math::Add([a, b]) => (
                format!("{} + {}", self.wrap(p(*a), 1), self.wrap(p(*b), 2)),
                1,
            ),
            Math::Sub([a, b]) => {
                let minus = if self.latex() { "-" } else { "−" };
                (
                    format!("{} {minus} {}", self.wrap(p(*a), 1), self.wrap(p(*b), 2)),
                    1,
                )
            }
            Math::Mul([a, b]) => {
                let sep = if self.latex() { "\\," } else { "·" };
                (
                    format!("{}{sep}{}", self.wrap(p(*a), 2), self.wrap(p(*b), 3)),
                    2,
                )
            }
            Math::Div([a, b]) if self.latex() => {
                (format!("\\frac{{{}}}{{{}}}", p(*a).0, p(*b).0), 5)
            }
            Math::Div([a, b]) => (
                format!("{}/{}", self.wrap(p(*a), 2), self.wrap(p(*b), 3)),
                2,
            ),
            Math::Pow([a, b]) if self.latex() => {
                (format!("{{{}}}^{{{}}}", self.wrap(p(*a), 5), p(*b).0), 4)
            }
            Math::Pow([a, b]) => (
                format!("{}^{}", self.wrap(p(*a), 5), self.wrap(p(*b), 5)),
                4,
            ),
            Math::Neg(a) => (format!("-{}", self.wrap(p(*a), 3)), 3),
            Math::Transpose(a) => (
                format!(
                    "{}{}",
                    self.wrap(p(*a), 5),
                    if self.latex() { "^\\top" } else { "ᵀ" }
                ),
                5,
            ),
            Math::Trace(a) => self.call("tr", "\\operatorname{tr}", *a),
            Math::Inverse(a) => (
                format!(
                    "{}{}",
                    self.wrap(p(*a), 5),
                    if self.latex() { "^{-1}" } else { "⁻¹" }
                ),
                5,
            ),
            Math::LogDet(a) => self.call("ln det", "\\ln\\det", *a),
            Math::Exp(a) => self.call("exp", "\\exp", *a),
            Math::Ln(a) => self.call("ln", "\\ln", *a),
            Math::Sqrt(a) if self.latex() => (format!("\\sqrt{{{}}}", p(*a).0), 5),
            Math::Sqrt(a) => (format!("√{}", self.wrap(p(*a), 5)), 5),
            Math::Erf(a) => self.call("erf", "\\operatorname{erf}", *a),
            Math::Tanh(a) => self.call("tanh", "\\tanh", *a),
            Math::Asin(a) => self.call("asin", "\\arcsin", *a),
            Math::Acos(a) => self.call("acos", "\\arccos", *a),
            Math::Atan(a) => self.call("atan", "\\arctan", *a),
            Math::Abs(a) => self.call("abs", "\\operatorname{abs}", *a),
            Math::Sign(a) => self.call("sign", "\\operatorname{sign}", *a),
            Math::Step(a) => self.call("step", "\\Theta", *a),
            Math::Relu(a) => self.call("relu", "\\operatorname{relu}", *a),
            Math::Delta(a) => self.call("δ", "\\delta", *a),
            Math::NormCdf(a) => self.call("Φ", "\\Phi", *a),
            Math::BvnCdf([h, k, r]) => {
                let args = format!("{}, {}; {}", p(*h).0, p(*k).0, p(*r).0);
                if self.latex() {
                    (format!("\\Phi_2\\left({args}\\right)"), 5)
                } else {
                    (format!("Φ₂({args})"), 5)
                }
            }
            Math::Expect1([f, m, v]) => {
                let body = self.in_variable(*f, "u");
                if self.latex() {
                    (
                        format!(
                            "\\left\\langle {body} \\right\\rangle_{{u\\sim\\mathcal{{N}}({}, {})}}",
                            p(*m).0,
                            p(*v).0
                        ),
                        5,
                    )
                } else {
                    (format!("⟨{body}⟩_{{u∼𝒩({}, {})}}", p(*m).0, p(*v).0), 5)
                }
            }
            Math::Expect2([f, g, mu, mv, a, b, c]) => {
                let (f, g) = (self.in_variable(*f, "u"), self.in_variable(*g, "v"));
                let (mu, mv, a, b, c) = (p(*mu).0, p(*mv).0, p(*a).0, p(*b).0, p(*c).0);
                if self.latex() {
                    (
                        format!(
                            "\\left\\langle {f}\\,{g} \\right\\rangle_{{(u,v)\\sim\\mathcal{{N}}\\left(({mu}, {mv}),\\, \\left(\\begin{{smallmatrix}}{a} & {c}\\\\ {c} & {b}\\end{{smallmatrix}}\\right)\\right)}}"
                        ),
                        5,
                    )
                } else {
                    (
                        format!("⟨{f}·{g}⟩_{{(u,v)∼𝒩(({mu}, {mv}), [[{a}, {c}], [{c}, {b}]])}}"),
                        5,
                    )
                }
            }
        }
    }

    /// An integrand body (in `x`) printed with its variable renamed.
    fn in_variable(&self, body: Id, name: &str) -> String {
        let text = self.wrap(self.print(body), 2);
        rename_x(&text, name)
    }

    fn symbol(&self, name: &str) -> String {
        let Some((head, suffix)) = name.rsplit_once('_') else {
            return self.plain(name);
        };
        let sub = match (suffix, self.latex()) {
            ("ab", false) => "αβ",
            ("aa", false) => "αα",
            ("bb", false) => "ββ",
            ("a", false) => "α",
            ("b", false) => "β",
            ("ab", true) => "\\alpha\\beta",
            ("aa", true) => "\\alpha\\alpha",
            ("bb", true) => "\\beta\\beta",
            ("a", true) => "\\alpha",
            ("b", true) => "\\beta",
            _ => return self.plain(name),
        };
        let (base, index) = match head.split_once('[') {
            Some((b, rest)) => (b, rest.trim_end_matches(']')),
            None => (head, ""),
        };
        if self.latex() {
            let idx = if index.is_empty() {
                String::new()
            } else {
                format!("^{{({index})}}")
            };
            let base = format!("{}{idx}", self.plain(base));
            // a name with a subscript of its own (`G_{0}`) is grouped: a second subscript
            // directly after it is an error in LaTeX
            if base.contains('_') {
                format!("{{{base}}}_{{{sub}}}")
            } else {
                format!("{base}_{{{sub}}}")
            }
        } else {
            let idx = if index.is_empty() {
                String::new()
            } else {
                format!("⁽{}⁾", superscript(index))
            };
            format!("{}{idx}_{sub}", self.plain(base))
        }
    }

    fn plain(&self, name: &str) -> String {
        use crate::render::Notation;
        if self.latex() {
            crate::render::Latex.name(name)
        } else {
            crate::render::Unicode.name(name)
        }
    }
}

fn superscript(text: &str) -> String {
    crate::render::names::superscript(text).unwrap_or_else(|| text.to_string())
}

/// Replaces the integration variable `x` (as a whole word) by `name`.
fn rename_x(text: &str, name: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|ch| ch.is_alphanumeric() || *ch == '_')
        };
        if c == 'x' && !word(i.checked_sub(1)) && !word(Some(i + 1)) {
            out.push_str(name);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_expectations_print_as_mathematics() {
        let e: RecExpr<Math> = "(+ (* g (E2 (tanh x) (tanh x) 0 0 C[1]_aa C[1]_bb C[1]_ab)) gb)"
            .parse()
            .expect("parses");
        assert_eq!(
            formula(&e, Style::Unicode),
            "g·⟨tanh(u)·tanh(v)⟩_{(u,v)∼𝒩((0, 0), [[C⁽¹⁾_αα, C⁽¹⁾_αβ], [C⁽¹⁾_αβ, C⁽¹⁾_ββ]])} + gb"
        );
        let e: RecExpr<Math> = "(/ (asin (* 2 C_ab)) pi)".parse().expect("parses");
        assert_eq!(
            formula(&e, Style::Latex),
            "\\frac{\\arcsin\\left(2\\,C_{\\alpha\\beta}\\right)}{\\pi}"
        );
    }
}
