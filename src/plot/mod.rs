//! Figures: what theorists look at, as SVG or PNG (chosen by the file's extension).
//!
//! - [`curves`]: lines (theory) and points with error bars (simulation, Monte Carlo) against a
//!   swept quantity — test error against depth or width N, ln p(Y|X), χ₁ against g.
//! - [`heatmap`]: kernel matrices side by side on one colour scale (NNGP, finite width,
//!   simulated), patterns sorted by label so that the class blocks show.
//!
//! Text is measured and drawn with DejaVu Sans, bundled in the binary (`assets/fonts`,
//! Bitstream Vera licence), so no system fonts are needed; SVGs name the family.

pub mod curves;
pub mod heatmap;

use std::path::Path;
use std::sync::OnceLock;

pub use curves::{Curve, CurveFigure, Marker, render_row};
pub use heatmap::{Heatmap, Panel};

/// Why a figure could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output path's extension names no format.
    #[error("`{0}`: a figure is written as .svg or .png")]
    Format(String),
    /// Nothing to draw, or values that cannot be drawn.
    #[error("{0}")]
    Data(String),
    /// The drawing backend failed (writing the file, most often).
    #[error("drawing {path}: {message}")]
    Backend {
        /// The output file.
        path: String,
        /// What the backend said.
        message: String,
    },
}

/// Output format of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics.
    Svg,
    /// Portable network graphics (text rasterised with the bundled font).
    Png,
}

impl Format {
    /// The format a path's extension names.
    pub fn of(path: &Path) -> Result<Format, PlotError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(PlotError::Format(path.display().to_string())),
        }
    }
}

/// The font family every figure uses.
pub(crate) const FONT: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the bundled font with plotters (once): both backends measure text with it.
pub(crate) fn register_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, plotters::style::FontStyle::Normal, DEJAVU_SANS)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Data("the bundled font could not be read".into()))
    }
}

/// A backend error, with the file it was writing.
pub(crate) fn backend_error(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError::Backend {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The SVG's text elements (titles, axis labels, tick labels, legend entries), in order:
/// what the figure says, for tests and for checking a figure without looking at it.
pub fn svg_text(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        let after = &rest[start..];
        let Some(open_end) = after.find('>') else {
            break;
        };
        let Some(close) = after.find("</text>") else {
            break;
        };
        if close > open_end {
            let text = &after[open_end + 1..close];
            out.push(
                text.trim()
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'"),
            );
        }
        rest = &after[close + "</text>".len()..];
    }
    out
}
