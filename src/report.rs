//! One self-contained HTML page about a theory: its action and derived equations as
//! typeset mathematics, its parameters, results and figures.
//!
//! Mathematics is MathML Core, converted from the LaTeX that `saddle fmt --to latex` and
//! `saddle derive --format latex` print (pulldown-latex) and typeset by the browser itself
//! with the bundled Latin Modern Math font: no scripts, no network. Figures are PNG, embedded
//! as data URLs. The page is well-formed XML (polyglot XHTML), so it can be parsed as well as
//! viewed; a small script at its end records, once laid out, how many equations, stacked
//! fractions and drawn figures the browser produced (`data-check` on `<body>`), which the
//! tests read from headless Chromium.

use base64::Engine as _;
use pulldown_latex::config::{DisplayMode, RenderConfig};
use pulldown_latex::{Parser, Storage, push_mathml};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// An equation that did not convert to MathML (a bug in the LaTeX printers: report it).
    #[error("the equation `{latex}` does not typeset: {message}")]
    Latex {
        /// The LaTeX source.
        latex: String,
        /// What the converter said.
        message: String,
    },
}

/// A titled table of text cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Heading above the table.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

/// A figure: a PNG and its caption.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What it shows.
    pub caption: String,
    /// The PNG file's bytes.
    pub png: Vec<u8>,
}

/// A group of derived equations: its title and the LaTeX `align*` block.
#[derive(Debug, Clone)]
pub struct EquationGroup {
    /// "forward equations, tilted form", …
    pub title: String,
    /// `\begin{align*} … \end{align*}`.
    pub latex: String,
}

/// Everything on the page.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The theory's name.
    pub theory: String,
    /// The `.action` file it came from.
    pub source_name: String,
    /// The `.action` text.
    pub source: String,
    /// The action, one LaTeX line per declaration (`saddle fmt --to latex`).
    pub action: Vec<String>,
    /// The derived equations (`saddle derive --format latex`).
    pub equations: Vec<EquationGroup>,
    /// Parameters, results, sweep rows.
    pub tables: Vec<Table>,
    /// Figures.
    pub figures: Vec<Figure>,
}

/// The MathML stylesheet, with `LATIN_MODERN_MATH` where the font goes.
const STYLESHEET: &str = include_str!("../assets/report/mathml.css");
/// Latin Modern Math (GUST Font License; `assets/fonts/LICENSE-LatinModernMath.txt`).
const MATH_FONT: &[u8] = include_bytes!("../assets/fonts/latinmodern-math.woff2");

/// The page's own layout.
const PAGE_STYLE: &str = "
body { font-family: 'DejaVu Sans', 'Helvetica Neue', Arial, sans-serif; max-width: 62rem;
       margin: 2rem auto; padding: 0 1.5rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.3rem; border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2.2rem; }
h3 { font-size: 1.05rem; color: #444; margin-top: 1.4rem; }
.meta { color: #555; font-size: 0.9rem; }
.equation { overflow-x: auto; padding: 0.2rem 0; }
math[display=block] { font-size: 1.1rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.4rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9rem; margin-top: 0.3rem; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
";

/// Records what the browser laid out: equations, fractions whose numerator sits above the
/// denominator (typeset MathML; an unsupporting browser lays them out inline), figures
/// decoded, and conversion errors.
const SELF_CHECK: &str = "//<![CDATA[
window.addEventListener('load', function () {
  var ns = 'http://www.w3.org/1998/Math/MathML';
  var maths = document.getElementsByTagNameNS(ns, 'math');
  var fractions = document.getElementsByTagNameNS(ns, 'mfrac');
  var stacked = 0;
  for (var i = 0; i < fractions.length; i++) {
    var parts = fractions[i].children;
    if (parts.length === 2) {
      var top = parts[0].getBoundingClientRect(), bottom = parts[1].getBoundingClientRect();
      if (top.height > 0 && bottom.height > 0 && top.bottom <= bottom.top + 1) { stacked++; }
    }
  }
  var images = document.images, drawn = 0;
  for (var j = 0; j < images.length; j++) {
    if (images[j].complete && images[j].naturalWidth > 0) { drawn++; }
  }
  document.body.setAttribute('data-check', JSON.stringify({
    equations: maths.length, fractions: fractions.length, stacked: stacked,
    figures: images.length, drawn: drawn,
    errors: document.getElementsByTagNameNS(ns, 'merror').length
  }));
});
//]]>";

/// The text-mode escapes of [`crate::render::Latex`] that the MathML converter reads
/// literally inside `\text{…}` (`\_`, `$\times$`, `\textbackslash{}`), as the characters
/// they stand for.
fn plain_text_mode(latex: &str) -> String {
    let mut out = String::with_capacity(latex.len());
    let mut rest = latex;
    while let Some(start) = rest.find("\\text{") {
        let (before, after) = rest.split_at(start + "\\text{".len());
        out.push_str(before);
        let end = after.find('}').unwrap_or(after.len());
        let mut end = end;
        // `\textbackslash{}` holds a brace pair of its own
        while after[..end].ends_with("\\textbackslash{") {
            end += 1 + after[end + 1..].find('}').unwrap_or(after.len() - end - 1);
        }
        let text = &after[..end];
        out.push_str(
            &text
                .replace("\\textbackslash{}", "\\")
                .replace("\\_", "_")
                .replace("$\\times$", "×"),
        );
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// LaTeX → one `<math>` element (display style when `block`).
pub fn to_mathml(latex: &str, block: bool) -> Result<String, ReportError> {
    let latex = plain_text_mode(latex);
    let latex = latex.as_str();
    let storage = Storage::new();
    let parser = Parser::new(latex, &storage);
    let config = RenderConfig {
        display_mode: if block {
            DisplayMode::Block
        } else {
            DisplayMode::Inline
        },
        xml: true,
        ..RenderConfig::default()
    };
    let mut out = String::new();
    push_mathml(&mut out, parser, config).map_err(|e| ReportError::Latex {
        latex: latex.to_string(),
        message: e.to_string(),
    })?;
    // XML knows five named entities; the converter writes HTML's `&nbsp;` for some spaces,
    // and sometimes no space between two attributes, which HTML forgives and XML does not
    let out = separate_attributes(&out.replace("&nbsp;", "&#160;"));
    if let Some(start) = out.find("<merror") {
        let message = out[start..]
            .split('>')
            .nth(2)
            .and_then(|s| s.split('<').next())
            .unwrap_or("an error")
            .to_string();
        return Err(ReportError::Latex {
            latex: latex.to_string(),
            message,
        });
    }
    Ok(out)
}

/// Puts a space between an attribute's closing quote and the next attribute name
/// (`stretchy="true"minsize="1"` → `stretchy="true" minsize="1"`).
fn separate_attributes(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len() + 16);
    let (mut in_tag, mut in_value, mut closed_value) = (false, false, false);
    for c in markup.chars() {
        if closed_value && c.is_ascii_alphabetic() {
            out.push(' ');
        }
        closed_value = false;
        match c {
            '<' if !in_value => in_tag = true,
            '>' if !in_value => in_tag = false,
            '"' if in_tag => {
                closed_value = in_value;
                in_value = !in_value;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Text as HTML (and XML) character data.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

impl Report {
    /// The page.
    pub fn html(&self) -> Result<String, ReportError> {
        let font = base64::engine::general_purpose::STANDARD.encode(MATH_FONT);
        let stylesheet = STYLESHEET.replace(
            "LATIN_MODERN_MATH",
            &format!("data:font/woff2;base64,{font}"),
        );
        let mut page = String::new();
        let mut push = |s: &str| page.push_str(s);
        push(
            "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n",
        );
        push("<meta charset=\"utf-8\"/>\n");
        push(&format!(
            "<title>saddle report: {}</title>\n",
            escape(&self.theory)
        ));
        push(&format!(
            "<style>{stylesheet}{PAGE_STYLE}</style>\n</head>\n<body>\n"
        ));
        push(&format!(
            "<h1>theory {}</h1>\n<p class=\"meta\">from <code>{}</code> · saddle {}</p>\n",
            escape(&self.theory),
            escape(&self.source_name),
            env!("CARGO_PKG_VERSION")
        ));
        push("<section id=\"action\">\n<h2>The action</h2>\n");
        for line in &self.action {
            push(&format!(
                "<div class=\"equation\">{}</div>\n",
                to_mathml(line, true)?
            ));
        }
        push("</section>\n");
        if !self.equations.is_empty() {
            push("<section id=\"equations\">\n<h2>Derived equations</h2>\n");
            for group in &self.equations {
                push(&format!(
                    "<h3>{}</h3>\n<div class=\"equation\">{}</div>\n",
                    escape(&group.title),
                    to_mathml(&group.latex, true)?
                ));
            }
            push("</section>\n");
        }
        for (i, table) in self.tables.iter().enumerate() {
            push(&format!(
                "<section id=\"table-{}\">\n<h2>{}</h2>\n<table>\n<tr>",
                i + 1,
                escape(&table.title)
            ));
            for h in &table.header {
                push(&format!("<th>{}</th>", escape(h)));
            }
            push("</tr>\n");
            for row in &table.rows {
                push("<tr>");
                for cell in row {
                    push(&format!("<td>{}</td>", escape(cell)));
                }
                push("</tr>\n");
            }
            push("</table>\n</section>\n");
        }
        if !self.figures.is_empty() {
            push("<section id=\"figures\">\n<h2>Figures</h2>\n");
            for figure in &self.figures {
                let data = base64::engine::general_purpose::STANDARD.encode(&figure.png);
                push(&format!(
                    "<figure><img src=\"data:image/png;base64,{data}\" alt=\"{0}\"/>\
                     <figcaption>{0}</figcaption></figure>\n",
                    escape(&figure.caption)
                ));
            }
            push("</section>\n");
        }
        push(&format!(
            "<section id=\"source\">\n<h2>Source: <code>{}</code></h2>\n<pre>{}</pre>\n</section>\n",
            escape(&self.source_name),
            escape(&self.source)
        ));
        push(&format!(
            "<script>{SELF_CHECK}</script>\n</body>\n</html>\n"
        ));
        Ok(page)
    }
}

/// The groups of `saddle derive --format latex`: each `% title` line and the `align*` block
/// after it.
pub fn equation_groups(latex_report: &str) -> Vec<EquationGroup> {
    let mut groups = Vec::new();
    let mut title = String::new();
    let mut block: Option<String> = None;
    for line in latex_report.lines() {
        if let Some(comment) = line.strip_prefix("% ") {
            title = comment.to_string();
        } else if line.starts_with("\\begin{align*}") {
            block = Some(String::from(line));
        } else if let Some(b) = block.as_mut() {
            b.push('\n');
            b.push_str(line);
            if line.starts_with("\\end{align*}") {
                groups.push(EquationGroup {
                    title: title.clone(),
                    latex: block.take().unwrap_or_default(),
                });
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_and_alignments_become_mathml() {
        let m = to_mathml("\\frac{a}{b} + \\tilde{C}^{(1)}", true).expect("converts");
        assert!(m.starts_with("<math") && m.contains("<mfrac>") && m.contains("display=\"block\""));
        let groups = equation_groups(
            "% theory t\n% forward\n\\begin{align*}\n  a &= b \\\\\n  c &= d\n\\end{align*}\n",
        );
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].title, "forward");
        assert!(
            to_mathml(&groups[0].latex, true)
                .expect("align")
                .contains("<mtable")
        );
        assert!(matches!(
            to_mathml("\\frac{a}", true),
            Err(ReportError::Latex { .. })
        ));
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(
            separate_attributes("<mo a=\"1\"b=\"2\">x\"y</mo>"),
            "<mo a=\"1\" b=\"2\">x\"y</mo>"
        );
        assert_eq!(
            plain_text_mode("x_{1} \\text{deep\\_erf, P$\\times$P} y\\_z"),
            "x_{1} \\text{deep_erf, P×P} y\\_z"
        );
    }
}
