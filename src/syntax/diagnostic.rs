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
        for item in &self.items {
            let report = Rendered {
                item,
                source: &source,
            };
            if handler.render_report(&mut out, &report).is_err() {
                out.push_str(&self.one_line(item));
            }
            out.push('\n');
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
