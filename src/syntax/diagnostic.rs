//! User-facing errors in `.action` files: data first, rendered once at the edge.
//!
//! Every stage of the front end collects [`Diagnostic`]s (a stable code, a one-line reason,
//! the span it is about, optional secondary spans and a hint) into [`Diagnostics`], which
//! owns the file name and source so it can render them like a compiler does:
//!
//! ```text
//! error[saddle::unknown_name]: unknown name `Cx`
//!    ╭─[deep_erf.action:12:7]
//! 12 │ C[0] = Cx + 1
//!    ·        ─┬
//!    ·         ╰── not declared
//!    ╰────
//!   help: did you mean `C`?
//! ```

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use super::span::Span;

/// At most this many diagnostics are rendered in full; the rest are counted.
pub const MAX_RENDERED: usize = 100;

/// Lines longer than this (in characters) are shown as a window around the span.
pub const MAX_LINE_CHARS: usize = 300;

/// Characters of context shown on either side of a span on a long line.
const WINDOW_CHARS: usize = 60;

/// One problem in a `.action` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// A stable identifier of the kind of problem, e.g. `saddle::unknown_name`.
    pub code: &'static str,
    /// One line saying what is wrong.
    pub message: String,
    /// Where it is.
    pub span: Span,
    /// A short label under the primary span.
    pub label: String,
    /// Other places that explain it (a previous declaration, the range it must fit…).
    pub related: Vec<(Span, String)>,
    /// How to fix it, where one can say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a code, a message, and a labelled primary span.
    pub fn new(
        code: &'static str,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span,
            label: label.into(),
            related: Vec::new(),
            help: None,
        }
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a secondary span.
    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }
}

/// All problems found in one file, with the file they refer to.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file name shown in the report.
    pub file_name: String,
    /// The source text the spans point into.
    pub source: String,
    /// The problems, in source order.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Wraps problems found in `source`; sorts them by position.
    pub fn new(file_name: &str, source: &str, mut items: Vec<Diagnostic>) -> Self {
        items.sort_by_key(|d| (d.span.start, d.span.end));
        items.dedup();
        Diagnostics {
            file_name: file_name.to_string(),
            source: source.to_string(),
            items,
        }
    }

    /// Renders every diagnostic with source excerpts and carets; `color` for terminals.
    ///
    /// What is printed stays bounded whatever the input: at most [`MAX_RENDERED`]
    /// diagnostics (then a count of the rest), and a line longer than [`MAX_LINE_CHARS`]
    /// is shown as a window around the span instead of whole (miette prints whole lines,
    /// and its padding arithmetic panics beyond column 65,535).
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        let source = NamedSource::new(&self.file_name, self.source.clone());
        let mut out = String::new();
        for item in self.items.iter().take(MAX_RENDERED) {
            if self.line_of(item.span).chars().count() > MAX_LINE_CHARS {
                out.push_str(&self.render_window(item));
                out.push('\n');
                continue;
            }
            let report = Rendered {
                item,
                source: &source,
            };
            if handler.render_report(&mut out, &report).is_err() {
                out.push_str(&self.one_line(item));
            }
            out.push('\n');
        }
        if self.items.len() > MAX_RENDERED {
            let rest = self.items.len() - MAX_RENDERED;
            out.push_str(&format!(
                "… and {rest} more problem{} (the first {MAX_RENDERED} are shown)\n",
                if rest == 1 { "" } else { "s" }
            ));
        }
        out
    }

    /// The whole source line the span starts on (without its line break).
    fn line_of(&self, span: Span) -> &str {
        let start = span.start.min(self.source.len());
        let line_start = self.source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.source[start..]
            .find('\n')
            .map_or(self.source.len(), |i| start + i);
        &self.source[line_start..line_end]
    }

    /// A diagnostic on a very long line: `file:line:col`, a window of the line around the
    /// span with `…` where it is cut, a caret line under the span, the label and the hint.
    fn render_window(&self, item: &Diagnostic) -> String {
        let (line, col) = item.span.line_col(&self.source);
        let text: Vec<char> = self.line_of(item.span).chars().collect();
        let first = col - 1;
        let width = self.source
            [item.span.start.min(self.source.len())..item.span.end.min(self.source.len())]
            .split('\n')
            .next()
            .map_or(1, |s| s.chars().count().clamp(1, WINDOW_CHARS));
        let from = first.saturating_sub(WINDOW_CHARS / 2);
        let to = (first + width + WINDOW_CHARS / 2).min(text.len());
        let mut excerpt: String = text[from..to].iter().collect();
        let mut pad = first - from;
        if from > 0 {
            excerpt.insert(0, '…');
            pad += 1;
        }
        if to < text.len() {
            excerpt.push('…');
        }
        let mut out = format!(
            "error[{}]: {}\n  --> {}:{line}:{col}\n   | {excerpt}\n   | {}{} {}\n",
            item.code,
            item.message,
            self.file_name,
            " ".repeat(pad),
            "^".repeat(width),
            item.label
        );
        if let Some(help) = &item.help {
            out.push_str(&format!("  help: {help}\n"));
        }
        out
    }

    /// `file:line:col: message` for one diagnostic (for compilers and log lines).
    pub fn one_line(&self, item: &Diagnostic) -> String {
        let (line, col) = item.span.line_col(&self.source);
        format!("{}:{line}:{col}: {}", self.file_name, item.message)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            writeln!(f, "{}", self.one_line(item))?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// One diagnostic bound to its source, in the shape miette renders.
struct Rendered<'a> {
    item: &'a Diagnostic,
    source: &'a NamedSource<String>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.item.fmt(f)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.item.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.item.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.item
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary =
            LabeledSpan::new_primary_with_span(Some(self.item.label.clone()), self.item.span);
        let related = self
            .item
            .related
            .iter()
            .map(|(span, label)| LabeledSpan::new_with_span(Some(label.clone()), *span));
        Some(Box::new(std::iter::once(primary).chain(related)))
    }
}
