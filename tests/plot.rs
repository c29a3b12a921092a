//! Figures: every kind drawn as SVG (its text — title, axis labels, legend — snapshot-tested)
//! and as PNG (decoded back: the right size, and not blank).

use std::path::PathBuf;

use ndarray::Array2;
use saddle::plot::{Curve, CurveFigure, Heatmap, Marker, Panel, PlotError, svg_text};

fn out(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("saddle_plot_tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// Width, height and the number of distinct colours of a PNG.
fn png_summary(path: &PathBuf) -> (u32, u32, usize) {
    let bytes = std::fs::read(path).expect("the PNG was written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    // the compressed stream differs with what is drawn; a blank image compresses to almost
    // nothing
    (width, height, bytes.len())
}

fn width_figure() -> CurveFigure {
    let widths = vec![50.0, 100.0, 200.0, 500.0, 1000.0];
    CurveFigure {
        title: "deep erf, MNIST 0 vs 3: test error against width".into(),
        x_label: "width N".into(),
        y_label: "test MSE".into(),
        log_x: true,
        curves: vec![
            Curve {
                label: "MAP (theory)".into(),
                x: widths.clone(),
                y: vec![0.0888, 0.0905, 0.0917, 0.0928, 0.0933],
                error: None,
                marker: Marker::LinePoints,
                colour: None,
            },
            Curve {
                label: "NNGP (N = ∞)".into(),
                x: vec![50.0, 1000.0],
                y: vec![0.0940, 0.0940],
                error: None,
                marker: Marker::Dashed,
                colour: Some(0),
            },
            Curve {
                label: "simulation ± s.e.".into(),
                x: widths,
                y: vec![0.0891, 0.0903, 0.0921, 0.0925, 0.0936],
                error: Some(vec![0.0008, 0.0007, 0.0006, 0.0005, 0.0004]),
                marker: Marker::Points,
                colour: None,
            },
        ],
    }
}

fn kernel_figure() -> Heatmap {
    let p = 40;
    let label = |a: usize| a % 2;
    let nngp = Array2::from_shape_fn((p, p), |(a, b)| {
        if a == b {
            1.0
        } else if label(a) == label(b) {
            0.5
        } else {
            0.3
        }
    });
    let map = &nngp
        + &Array2::from_shape_fn(
            (p, p),
            |(a, b)| {
                if label(a) == label(b) { 0.1 } else { -0.1 }
            },
        );
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by_key(|&a| label(a));
    Heatmap {
        title: "C⁽²⁾ on 40 digits, sorted by label".into(),
        panels: vec![
            Panel {
                title: "NNGP".into(),
                matrix: nngp,
            },
            Panel {
                title: "MAP, N = 50".into(),
                matrix: map,
            },
        ],
        order: Some(order),
    }
}

#[test]
fn curves_say_what_they_show() {
    let figure = width_figure();
    let svg = out("curves.svg");
    figure.render(&svg).expect("renders");
    let text = svg_text(&std::fs::read_to_string(&svg).expect("written"));
    for needed in [
        "deep erf, MNIST 0 vs 3: test error against width",
        "width N",
        "test MSE",
        "MAP (theory)",
        "NNGP (N = ∞)",
        "simulation ± s.e.",
    ] {
        assert!(
            text.iter().any(|t| t == needed),
            "missing `{needed}` in {text:?}"
        );
    }
    insta::assert_debug_snapshot!("curves_svg_text", text);
    let png = out("curves.png");
    figure.render(&png).expect("renders");
    let (w, h, size) = png_summary(&png);
    assert_eq!((w, h), (860, 560));
    assert!(
        size > 10_000,
        "a drawn figure, not a blank one: {size} bytes"
    );
}

#[test]
fn heatmaps_say_what_they_show() {
    let figure = kernel_figure();
    let svg = out("kernels.svg");
    figure.render(&svg).expect("renders");
    let text = svg_text(&std::fs::read_to_string(&svg).expect("written"));
    for needed in [
        "C⁽²⁾ on 40 digits, sorted by label",
        "NNGP",
        "MAP, N = 50",
        "pattern α",
        "pattern β",
    ] {
        assert!(
            text.iter().any(|t| t == needed),
            "missing `{needed}` in {text:?}"
        );
    }
    insta::assert_debug_snapshot!("heatmap_svg_text", text);
    let png = out("kernels.png");
    figure.render(&png).expect("renders");
    let (w, h, size) = png_summary(&png);
    assert_eq!((w, h), (2 * 380 + 120, 470));
    assert!(size > 10_000, "{size} bytes");
}

#[test]
fn bad_figures_are_named_errors() {
    let mut figure = width_figure();
    assert!(matches!(
        figure.render(&out("curves.pdf")),
        Err(PlotError::Format(_))
    ));
    figure.curves[0].y[2] = f64::NAN;
    let e = figure.render(&out("bad.svg")).expect_err("NaN");
    assert!(e.to_string().contains("MAP (theory)"), "{e}");
    figure.curves[0].y[2] = 0.09;
    figure.curves[0].x[0] = 0.0;
    let e = figure.render(&out("bad.svg")).expect_err("log of 0");
    assert!(e.to_string().contains("logarithmic"), "{e}");
    let mut heatmap = kernel_figure();
    heatmap.order = Some(vec![0; 40]);
    let e = heatmap
        .render(&out("bad.svg"))
        .expect_err("not a permutation");
    assert!(e.to_string().contains("permutation"), "{e}");
    heatmap.order = None;
    heatmap.panels[1].matrix = Array2::zeros((3, 3));
    assert!(heatmap.render(&out("bad.svg")).is_err());
}
