//! `saddle report`: one self-contained HTML page, parsed (well-formed, every equation and
//! figure present) and rendered in headless Chromium (the equations typeset: every fraction
//! stacked; every figure decoded; a screenshot that is not blank).
//!
//! Chromium is looked up as `$SADDLE_CHROMIUM`, `chromium`, `chromium-browser` or
//! `google-chrome`; `.ci/run` installs Debian's package. Without one the browser half is
//! skipped with a note, except under CI (`CI` set), where it fails.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

mod common;
use common::{fresh_dir, path_str, saddle, temp_file};

/// How many display equations the report must hold: one per line of the action
/// (`fmt --to latex`) and one per group of derived equations (`derive --format latex`).
fn expected_equations(file: &str, set: &[&str]) -> usize {
    let (code, action, err) = saddle(&["fmt", file, "--to", "latex"]);
    assert_eq!(code, 0, "{err}");
    let lines = action
        .lines()
        .filter(|l| l.trim_start().starts_with('&'))
        .count();
    let mut args = vec!["derive", file, "--format", "latex"];
    args.extend(set);
    let (code, derived, err) = saddle(&args);
    assert_eq!(code, 0, "{err}");
    lines + derived.matches("\\begin{align*}").count()
}

struct Parsed {
    equations: usize,
    figures: Vec<(String, (u32, u32))>,
    tables: Vec<String>,
}

/// Parses the page as XML and decodes every embedded figure.
fn parse(page: &Path) -> Parsed {
    let html = std::fs::read_to_string(page).expect("report.html");
    let document = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("the report is well-formed XML");
    let named = |name: &str| {
        document
            .descendants()
            .filter(|n| n.tag_name().name() == name)
            .collect::<Vec<_>>()
    };
    assert!(named("merror").is_empty(), "an equation failed to convert");
    let equations = named("math")
        .iter()
        .filter(|m| m.attribute("display") == Some("block"))
        .count();
    let figures = named("img")
        .iter()
        .map(|img| {
            let src = img.attribute("src").expect("src");
            let data = src
                .strip_prefix("data:image/png;base64,")
                .expect("an embedded PNG");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .expect("base64");
            let image = image::load_from_memory(&bytes).expect("a PNG");
            (
                img.attribute("alt").unwrap_or("").to_string(),
                (image.width(), image.height()),
            )
        })
        .collect();
    let tables = named("h2")
        .iter()
        .map(|h| {
            h.descendants()
                .filter(|t| t.is_text())
                .filter_map(|t| t.text())
                .collect::<String>()
        })
        .collect();
    Parsed {
        equations,
        figures,
        tables,
    }
}

fn chromium() -> Option<String> {
    if let Ok(path) = std::env::var("SADDLE_CHROMIUM") {
        return Some(path);
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_string)
}

/// Renders the page in headless Chromium: the self-check it records once laid out, and a
/// screenshot. None (with a note) when there is no browser outside CI.
fn render(page: &Path) -> Option<(serde_json::Value, image::DynamicImage)> {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Chromium: .ci/run installs Debian's `chromium`, or set SADDLE_CHROMIUM"
        );
        eprintln!("note: no Chromium found; the browser half of the report test is skipped");
        return None;
    };
    let url = format!(
        "file://{}",
        page.canonicalize().expect("absolute").display()
    );
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
    ];
    let dom = Command::new(&browser)
        .args(common)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let check = dom
        .split("data-check=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page recorded its self-check (the script ran)")
        .replace("&quot;", "\"");
    let check: serde_json::Value = serde_json::from_str(&check).expect("check JSON");
    let shot = page.with_file_name("screenshot.png");
    let status = Command::new(&browser)
        .args(common)
        .arg("--window-size=1200,1800")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("chromium runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let image = image::open(&shot).expect("a screenshot");
    Some((check, image))
}

#[test]
fn a_report_has_the_action_the_equations_and_the_result_typeset() {
    let x = temp_file("x2.csv", "1,1\n-1,0.5\n");
    let y = temp_file("y2.csv", "1\n-1\n");
    let result = fresh_dir("linear-result");
    let (code, _, err) = saddle(&[
        "solve",
        "examples/deep_erf.action",
        "--x",
        path_str(&x),
        "--y",
        path_str(&y),
        "--method",
        "linear",
        "--set",
        "N=100",
        "--set",
        "L=2",
        "--out",
        path_str(&result),
    ]);
    assert_eq!(code, 0, "{err}");
    let out = fresh_dir("report");
    let (code, stdout, err) = saddle(&[
        "report",
        "examples/deep_erf.action",
        "--result",
        path_str(&result),
        "--labels",
        path_str(&y),
        "--out",
        path_str(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("report.html"), "{stdout}");
    let page = out.join("report.html");
    let parsed = parse(&page);
    // the equations at the result's L = 2, not the file's L = 3
    let expected = expected_equations("examples/deep_erf.action", &["--set", "L=2"]);
    assert_eq!(parsed.equations, expected);
    assert_eq!(parsed.figures.len(), 1, "the kernel figure");
    assert!(parsed.figures[0].1.0 > 400, "{:?}", parsed.figures);
    for section in [
        "The action",
        "Derived equations",
        "Parameters",
        "Result: solve linear",
        "Figures",
    ] {
        assert!(
            parsed.tables.iter().any(|t| t == section),
            "{section}: {:?}",
            parsed.tables
        );
    }
    let html = std::fs::read_to_string(&page).expect("page");
    // (a CSS namespace is a name, not a resource)
    let fetched = html.replace("@namespace m url('http://www.w3.org/1998/Math/MathML')", "");
    for remote in ["src=\"http", "href=\"http", "url(http", "url('http"] {
        assert!(!fetched.contains(remote), "a network resource: {remote}");
    }
    assert!(
        html.contains("<td>L</td><td>int</td><td>3</td><td>2</td>"),
        "L: file 3, used 2"
    );

    if let Some((check, screenshot)) = render(&page) {
        assert_eq!(
            check["equations"].as_u64(),
            Some(parsed.equations as u64),
            "{check}"
        );
        assert_eq!(check["errors"], 0, "{check}");
        let fractions = check["fractions"].as_u64().unwrap_or(0);
        assert!(fractions > 10, "{check}");
        assert_eq!(
            check["stacked"].as_u64(),
            Some(fractions),
            "every fraction typeset: {check}"
        );
        assert_eq!(check["drawn"].as_u64(), Some(1), "{check}");
        let rgb = screenshot.to_rgb8();
        let ink = rgb
            .pixels()
            .filter(|p| p.0.iter().any(|&c| c < 128))
            .count();
        let share = ink as f64 / (rgb.width() * rgb.height()) as f64;
        assert!(
            share > 0.005 && share < 0.5,
            "ink covers {share} of the screenshot"
        );
    }
}

#[test]
fn a_sweep_report_draws_its_curve_and_lists_its_points() {
    let x = temp_file("x.csv", "1,1\n-1,-1\n1,-1\n-1,1\n");
    let sweep = fresh_dir("report-sweep");
    let (code, _, err) = saddle(&[
        "kernel",
        "examples/deep_relu.action",
        "--x",
        path_str(&x),
        "--sweep",
        "L=1,2,3",
        "--out",
        path_str(&sweep),
    ]);
    assert_eq!(code, 0, "{err}");
    let out = fresh_dir("report-of-sweep");
    let (code, _, err) = saddle(&[
        "report",
        "examples/deep_relu.action",
        "--result",
        path_str(&sweep),
        "--out",
        path_str(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let parsed = parse(&out.join("report.html"));
    assert_eq!(parsed.figures.len(), 1);
    assert!(
        parsed.figures[0].0.contains("against L"),
        "{:?}",
        parsed.figures
    );
    assert!(
        parsed.tables.iter().any(|t| t == "Sweep: 3 points"),
        "{:?}",
        parsed.tables
    );
    assert_eq!(
        parsed.equations,
        expected_equations("examples/deep_relu.action", &[])
    );
}

#[test]
fn a_result_of_another_theory_is_refused() {
    let x = temp_file("x.csv", "1,1\n-1,-1\n");
    let result = temp_file("relu.json", "");
    let (code, json, err) = saddle(&[
        "kernel",
        "examples/deep_relu.action",
        "--x",
        path_str(&x),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&result, json).expect("write");
    let out = fresh_dir("report-mismatch");
    let (code, _, err) = saddle(&[
        "report",
        "examples/deep_erf.action",
        "--result",
        path_str(&result),
        "--out",
        path_str(&out),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("computed for theory `deep_relu`, not `deep_erf`"),
        "{err}"
    );
}
