//! Curves against a swept quantity: theory as lines, sampled estimates as points with error
//! bars (± one standard error, as given), one colour per series, a legend, labelled axes;
//! the x axis logarithmic on request (widths N = 50…1000).
//!
//! ```
//! use saddle::plot::{Curve, CurveFigure, Marker};
//! let figure = CurveFigure {
//!     title: "deep erf, MNIST 0 vs 3".into(),
//!     x_label: "depth L".into(),
//!     y_label: "test MSE".into(),
//!     log_x: false,
//!     curves: vec![Curve {
//!         label: "NNGP".into(),
//!         x: vec![1.0, 2.0, 4.0],
//!         y: vec![0.11, 0.10, 0.12],
//!         error: None,
//!         marker: Marker::Line,
//!         colour: None,
//!     }],
//! };
//! let path = std::env::temp_dir().join("saddle_doc_curve.svg");
//! figure.render(&path).unwrap();
//! let svg = std::fs::read_to_string(&path).unwrap();
//! assert!(saddle::plot::svg_text(&svg).contains(&"test MSE".to_string()));
//! ```

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use super::{FONT, Format, PlotError, backend_error, register_font};
use crate::data::atomic::Staged;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Marker {
    /// A line through the points (theory).
    Line,
    /// Points, with error bars where errors are given (simulation, Monte Carlo).
    Points,
    /// A line with a point at each value.
    LinePoints,
    /// A dashed line (a reference: the N = ∞ value beside finite-N curves).
    Dashed,
}

/// One series.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Curve {
    /// Legend entry.
    pub label: String,
    /// Abscissae.
    pub x: Vec<f64>,
    /// Ordinates.
    pub y: Vec<f64>,
    /// One standard error per point (drawn as ± bars), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Vec<f64>>,
    /// How it is drawn.
    pub marker: Marker,
    /// Colour index in the tab10 cycle (default: the series' position), to pair a theory
    /// line with its reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<usize>,
}

/// A tick label: at most four significant digits, trailing zeros dropped (0.094, 1000, 2.5).
///
/// ```
/// use saddle::plot::curves::tick;
/// assert_eq!(tick(0.09400), "0.094");
/// assert_eq!(tick(2.5), "2.5");
/// assert_eq!(tick(-2e-16), "0"); // an axis range's rounding residue
/// assert_eq!(tick(-0.0), "0");
/// ```
pub fn tick(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    // a rounding residue of an axis range (−2·10⁻¹⁶) is zero, not "-0"
    if text == "-0" { "0".into() } else { text }
}

/// Series colours: the colour-blind-safe "tab10" cycle (blue, orange, green, red, …).
pub(crate) fn colour(i: usize) -> RGBAColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = TAB10[i % TAB10.len()];
    RGBColor(r, g, b).to_rgba()
}

/// Key points 1, 2, 5 × 10ᵏ inside `lo..hi` (a log axis), with the ends when few fall inside.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = m * decade;
            if t >= lo && t <= hi {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    if ticks.len() < 3 {
        ticks.insert(0, lo);
        ticks.push(hi);
    }
    ticks
}

/// A figure of curves sharing axes (also its JSON form: `saddle plot FIGURE.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CurveFigure {
    /// Title above the plot.
    pub title: String,
    /// x axis label, with units or the symbol.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// Logarithmic x axis (needs x > 0).
    #[serde(default)]
    pub log_x: bool,
    /// The series.
    pub curves: Vec<Curve>,
}

const SIZE: (u32, u32) = (860, 560);

/// An axis' (low, high) ends.
type Span = (f64, f64);

/// Draws `figures` side by side into `path` (.svg or .png), each at the size of a single
/// figure: panels that share a swept abscissa but not a scale (χ₁ and ξ against g).
///
/// ```
/// use saddle::plot::{Curve, CurveFigure, Marker, render_row};
/// let panel = |y_label: &str, y: Vec<f64>| CurveFigure {
///     title: String::new(),
///     x_label: "g".into(),
///     y_label: y_label.into(),
///     log_x: false,
///     curves: vec![Curve {
///         label: "theory".into(),
///         x: vec![1.0, 2.0, 3.0],
///         y,
///         error: None,
///         marker: Marker::Line,
///         colour: None,
///     }],
/// };
/// let path = std::env::temp_dir().join("saddle_doc_row.svg");
/// render_row(&[panel("χ₁", vec![0.8, 1.1, 1.3]), panel("ξ", vec![4.0, 10.0, 3.0])], &path)
///     .unwrap();
/// let text = saddle::plot::svg_text(&std::fs::read_to_string(&path).unwrap());
/// assert!(text.contains(&"χ₁".to_string()) && text.contains(&"ξ".to_string()));
/// ```
pub fn render_row(figures: &[CurveFigure], path: &Path) -> Result<(), PlotError> {
    let ranges = figures
        .iter()
        .map(CurveFigure::ranges)
        .collect::<Result<Vec<_>, _>>()?;
    if figures.is_empty() {
        return Err(PlotError::Data("no panels to draw".into()));
    }
    // text is measured for the layout in either format
    register_font()?;
    let size = (SIZE.0 * figures.len() as u32, SIZE.1);
    let fail = |e: &dyn std::fmt::Display| backend_error(path, e);
    macro_rules! draw {
        ($root:expr) => {{
            let root = $root.into_drawing_area();
            let panels = root.split_evenly((1, figures.len()));
            for ((figure, (x, y)), area) in figures.iter().zip(ranges).zip(&panels) {
                figure.draw_on(area, x, y, path)?;
            }
            root.present().map_err(|e| fail(&e))
        }};
    }
    let format = Format::of(path)?;
    // drawn under a temporary name (the same extension), renamed when whole
    let staged = Staged::new(path);
    match format {
        Format::Svg => draw!(SVGBackend::new(staged.path(), size)),
        Format::Png => draw!(BitMapBackend::new(staged.path(), size)),
    }?;
    staged.commit().map_err(|e| fail(&e))
}

impl CurveFigure {
    /// Draws the figure into `path` (.svg or .png).
    pub fn render(&self, path: &Path) -> Result<(), PlotError> {
        render_row(std::slice::from_ref(self), path)
    }

    /// The ticks of a logarithmic x axis: the points' own x values when there are few (a
    /// width sweep N = 50, 100, 200, 400 labels each N), 1–2–5 per decade otherwise.
    fn log_key_points(&self, lo: f64, hi: f64) -> Vec<f64> {
        let mut xs: Vec<f64> = self
            .curves
            .iter()
            .flat_map(|s| s.x.iter().copied())
            .filter(|x| x.is_finite() && *x >= lo && *x <= hi)
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        if (2..=8).contains(&xs.len()) {
            xs
        } else {
            log_ticks(lo, hi)
        }
    }

    /// The data ranges (errors included), padded by 5 %, checked.
    fn ranges(&self) -> Result<(Span, Span), PlotError> {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for c in &self.curves {
            if c.x.len() != c.y.len() || c.error.as_ref().is_some_and(|e| e.len() != c.y.len()) {
                return Err(PlotError::Data(format!(
                    "series `{}`: {} x values, {} y values{}",
                    c.label,
                    c.x.len(),
                    c.y.len(),
                    c.error
                        .as_ref()
                        .map_or(String::new(), |e| format!(", {} errors", e.len()))
                )));
            }
            for (i, (&x, &y)) in c.x.iter().zip(&c.y).enumerate() {
                let e = c.error.as_ref().map_or(0.0, |e| e[i]);
                if !(x.is_finite() && y.is_finite() && e.is_finite()) {
                    return Err(PlotError::Data(format!(
                        "series `{}`, point {i}: ({x}, {y} ± {e}) is not finite",
                        c.label
                    )));
                }
                if self.log_x && x <= 0.0 {
                    return Err(PlotError::Data(format!(
                        "series `{}`, point {i}: x = {x} on a logarithmic axis",
                        c.label
                    )));
                }
                xs.push(x);
                ys.push(y - e.abs());
                ys.push(y + e.abs());
            }
        }
        if xs.is_empty() {
            return Err(PlotError::Data("no points to draw".into()));
        }
        let span = |v: &[f64], log: bool| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if log {
                let (l, h) = (lo.ln(), hi.ln());
                let pad = ((h - l) * 0.05).max(0.05);
                ((l - pad).exp(), (h + pad).exp())
            } else {
                let pad = ((hi - lo) * 0.05).max(1e-9 * hi.abs().max(1.0));
                (lo - pad, hi + pad)
            }
        };
        Ok((span(&xs, self.log_x), span(&ys, false)))
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x0, x1): (f64, f64),
        (y0, y1): (f64, f64),
        path: &Path,
    ) -> Result<(), PlotError> {
        let fail = |e: &dyn std::fmt::Display| backend_error(path, e);
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        // a long title shrinks to the panel's width (≈ 0.55 em a character) rather than
        // running off both edges
        let width = root.dim_in_pixel().0 as f64;
        let chars = self.title.chars().count().max(1) as f64;
        let caption = (24.0f64).min((width - 24.0) / (0.55 * chars)).max(12.0);
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(&self.title, (FONT, caption))
            .margin(16)
            .x_label_area_size(56)
            .y_label_area_size(84);
        if self.log_x {
            let mut chart = builder
                .build_cartesian_2d(
                    (x0..x1)
                        .log_scale()
                        .with_key_points(self.log_key_points(x0, x1)),
                    y0..y1,
                )
                .map_err(|e| fail(&e))?;
            self.mesh_and_series(&mut chart, path, (x0, x1), (y0, y1))
        } else {
            let mut chart = builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| fail(&e))?;
            self.mesh_and_series(&mut chart, path, (x0, x1), (y0, y1))
        }
    }

    /// The corner of the plot with the fewest points, for the legend (x measured on the
    /// axis' own scale).
    fn legend_corner(&self, (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> SeriesLabelPosition {
        let scale = |x: f64| {
            if self.log_x {
                (x.ln() - x0.ln()) / (x1.ln() - x0.ln())
            } else {
                (x - x0) / (x1 - x0)
            }
        };
        let mut counts = [0usize; 4];
        for c in &self.curves {
            for (&x, &y) in c.x.iter().zip(&c.y) {
                let (u, v) = (scale(x), (y - y0) / (y1 - y0));
                // the legend box covers about 40 % × 30 % of a corner
                if u > 0.55 && v > 0.65 {
                    counts[0] += 1;
                }
                if u < 0.45 && v > 0.65 {
                    counts[1] += 1;
                }
                if u > 0.55 && v < 0.35 {
                    counts[2] += 1;
                }
                if u < 0.45 && v < 0.35 {
                    counts[3] += 1;
                }
            }
        }
        let best = (0..4).min_by_key(|&i| counts[i]).unwrap_or(0);
        [
            SeriesLabelPosition::UpperRight,
            SeriesLabelPosition::UpperLeft,
            SeriesLabelPosition::LowerRight,
            SeriesLabelPosition::LowerLeft,
        ][best]
            .clone()
    }

    fn mesh_and_series<'a, DB, X>(
        &self,
        chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
        path: &Path,
        x_range: (f64, f64),
        y_range: (f64, f64),
    ) -> Result<(), PlotError>
    where
        DB: DrawingBackend + 'a,
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let fail = |e: &dyn std::fmt::Display| backend_error(path, e);
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .y_desc(&self.y_label)
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 19))
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.08))
            .draw()
            .map_err(|e| fail(&e))?;
        for (i, c) in self.curves.iter().enumerate() {
            let colour = colour(c.colour.unwrap_or(i));
            let points: Vec<(f64, f64)> = c.x.iter().copied().zip(c.y.iter().copied()).collect();
            let label = c.label.clone();
            match c.marker {
                Marker::Line | Marker::LinePoints => {
                    chart
                        .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                        .map_err(|e| fail(&e))?
                        .label(label)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
                        });
                }
                Marker::Dashed => {
                    chart
                        .draw_series(DashedLineSeries::new(
                            points.clone(),
                            10,
                            6,
                            colour.stroke_width(2),
                        ))
                        .map_err(|e| fail(&e))?
                        .label(label)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 8, y)], colour.stroke_width(3))
                        });
                }
                Marker::Points => {
                    chart
                        .draw_series(
                            points
                                .iter()
                                .map(|&(x, y)| Circle::new((x, y), 4, colour.filled())),
                        )
                        .map_err(|e| fail(&e))?
                        .label(label)
                        .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
                }
            }
            if c.marker == Marker::LinePoints {
                chart
                    .draw_series(
                        points
                            .iter()
                            .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
                    )
                    .map_err(|e| fail(&e))?;
            }
            if let Some(errors) = &c.error {
                chart
                    .draw_series(points.iter().zip(errors).map(|(&(x, y), &e)| {
                        ErrorBar::new_vertical(
                            x,
                            y - e.abs(),
                            y,
                            y + e.abs(),
                            colour.stroke_width(2),
                            8,
                        )
                    }))
                    .map_err(|e| fail(&e))?;
            }
        }
        chart
            .configure_series_labels()
            .position(self.legend_corner(x_range, y_range))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 16))
            .draw()
            .map_err(|e| fail(&e))?;
        Ok(())
    }
}
