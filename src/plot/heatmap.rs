//! Kernel matrices side by side on one colour scale (viridis), with a colour bar: the NNGP
//! beside the finite-width (MAP) or simulated kernel of the same layer, or every layer of a
//! network. Patterns are reordered by `order` (by label, so that same-class blocks show);
//! a matrix larger than 160 × 160 is drawn as block averages (the SVG stays small).
//!
//! ```
//! use ndarray::array;
//! use saddle::plot::{Heatmap, Panel};
//! let figure = Heatmap {
//!     title: "C⁽¹⁾".into(),
//!     panels: vec![Panel { title: "NNGP".into(), matrix: array![[1.0, 0.2], [0.2, 1.0]] }],
//!     order: None,
//! };
//! let path = std::env::temp_dir().join("saddle_doc_heatmap.svg");
//! figure.render(&path).unwrap();
//! ```

use std::path::Path;

use ndarray::Array2;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT, Format, PlotError, backend_error, register_font};
use crate::data::atomic::Staged;

/// One matrix with its title.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title above the matrix ("NNGP", "MAP, N = 50").
    pub title: String,
    /// A square matrix.
    pub matrix: Array2<f64>,
}

/// Matrices on one colour scale.
#[derive(Debug, Clone)]
pub struct Heatmap {
    /// Title of the figure.
    pub title: String,
    /// The matrices, left to right (all the same size).
    pub panels: Vec<Panel>,
    /// Pattern order (a permutation of 0..P), e.g. sorted by label.
    pub order: Option<Vec<usize>>,
}

/// Largest number of cells per side drawn; bigger matrices are block-averaged.
const MAX_CELLS: usize = 160;
const PANEL: u32 = 380;
const BAR: u32 = 120;
const HEIGHT: u32 = 470;

impl Heatmap {
    /// Draws the figure into `path` (.svg or .png).
    pub fn render(&self, path: &Path) -> Result<(), PlotError> {
        let prepared = self.prepare()?;
        let size = (PANEL * self.panels.len() as u32 + BAR, HEIGHT);
        // text is measured for the layout in either format
        register_font()?;
        let format = Format::of(path)?;
        // drawn under a temporary name (the same extension), renamed when whole
        let staged = Staged::new(path);
        match format {
            Format::Svg => {
                let root = SVGBackend::new(staged.path(), size).into_drawing_area();
                self.draw_on(&root, &prepared, path)?;
            }
            Format::Png => {
                let root = BitMapBackend::new(staged.path(), size).into_drawing_area();
                self.draw_on(&root, &prepared, path)?;
            }
        }
        staged.commit().map_err(|e| backend_error(path, e))
    }

    /// The reordered, block-averaged matrices and the shared colour range.
    fn prepare(&self) -> Result<(Vec<Array2<f64>>, f64, f64), PlotError> {
        let first = self
            .panels
            .first()
            .ok_or_else(|| PlotError::Data("no matrix to draw".into()))?;
        let p = first.matrix.nrows();
        if p == 0 {
            return Err(PlotError::Data("an empty matrix".into()));
        }
        for panel in &self.panels {
            if panel.matrix.dim() != (p, p) {
                return Err(PlotError::Data(format!(
                    "panel `{}` is {}×{}; the first is {p}×{p}",
                    panel.title,
                    panel.matrix.nrows(),
                    panel.matrix.ncols()
                )));
            }
            if let Some(((a, b), v)) = panel.matrix.indexed_iter().find(|(_, v)| !v.is_finite()) {
                return Err(PlotError::Data(format!(
                    "panel `{}` holds {v} at ({a}, {b})",
                    panel.title
                )));
            }
        }
        let order: Vec<usize> = match &self.order {
            Some(order) => {
                let mut sorted = order.clone();
                sorted.sort_unstable();
                if sorted != (0..p).collect::<Vec<_>>() {
                    return Err(PlotError::Data(format!(
                        "the pattern order is not a permutation of 0..{p}"
                    )));
                }
                order.clone()
            }
            None => (0..p).collect(),
        };
        let cells = p.min(MAX_CELLS);
        let block = |i: usize| (i * p / cells, ((i + 1) * p / cells).max(i * p / cells + 1));
        let matrices: Vec<Array2<f64>> = self
            .panels
            .iter()
            .map(|panel| {
                Array2::from_shape_fn((cells, cells), |(i, j)| {
                    let (r0, r1) = block(i);
                    let (c0, c1) = block(j);
                    let mut sum = 0.0;
                    for &a in &order[r0..r1] {
                        for &b in &order[c0..c1] {
                            sum += panel.matrix[[a, b]];
                        }
                    }
                    sum / ((r1 - r0) * (c1 - c0)) as f64
                })
            })
            .collect();
        let lo = matrices
            .iter()
            .flat_map(|m| m.iter().copied())
            .fold(f64::INFINITY, f64::min);
        let hi = matrices
            .iter()
            .flat_map(|m| m.iter().copied())
            .fold(f64::NEG_INFINITY, f64::max);
        let hi = if hi > lo { hi } else { lo + 1.0 };
        Ok((matrices, lo, hi))
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (matrices, lo, hi): &(Vec<Array2<f64>>, f64, f64),
        path: &Path,
    ) -> Result<(), PlotError> {
        let fail = |e: &dyn std::fmt::Display| backend_error(path, e);
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let root = root.titled(&self.title, (FONT, 24)).map_err(|e| fail(&e))?;
        let width = root.dim_in_pixel().0;
        let (panels, bar) = root.split_horizontally(width.saturating_sub(BAR));
        let areas = panels.split_evenly((1, self.panels.len()));
        let colour = |v: f64| ViridisRGB::get_color_normalized(v, *lo, *hi);
        let p = self.patterns();
        for ((area, panel), m) in areas.iter().zip(&self.panels).zip(matrices) {
            let n = m.nrows();
            // cells in pattern units: block i covers patterns [i·p/n, (i+1)·p/n)
            let edge = |i: usize| (i * p) as f64 / n as f64;
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 18))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(44)
                .build_cartesian_2d(0.0..p as f64, p as f64..0.0)
                .map_err(|e| fail(&e))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("pattern β")
                .y_desc("pattern α")
                .x_labels(5)
                .y_labels(5)
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| format!("{v:.0}"))
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 14))
                .draw()
                .map_err(|e| fail(&e))?;
            chart
                .draw_series(m.indexed_iter().map(|((i, j), &v)| {
                    Rectangle::new(
                        [(edge(j), edge(i)), (edge(j + 1), edge(i + 1))],
                        colour(v).filled(),
                    )
                }))
                .map_err(|e| fail(&e))?;
        }
        // the colour bar
        let mut chart = ChartBuilder::on(&bar)
            .caption("value", (FONT, 14))
            .margin_top(12)
            .margin_bottom(44)
            .margin_left(8)
            .right_y_label_area_size(70)
            .build_cartesian_2d(0.0..1.0, *lo..*hi)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(6)
            .y_label_formatter(&|v| super::curves::tick(*v))
            .label_style((FONT, 13))
            .draw()
            .map_err(|e| fail(&e))?;
        let steps = 100;
        chart
            .draw_series((0..steps).map(|k| {
                let v0 = lo + (hi - lo) * k as f64 / steps as f64;
                let v1 = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
                Rectangle::new([(0.0, v0), (1.0, v1)], colour(0.5 * (v0 + v1)).filled())
            }))
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))
    }

    fn patterns(&self) -> usize {
        self.panels.first().map_or(0, |p| p.matrix.nrows())
    }
}
