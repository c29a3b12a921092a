//! Each `tests/diagnostics/err_<kind>.action` holds one mistake; saddle must report exactly
//! that one, under the code `saddle::<kind>`, with file, line, column and a caret. The
//! rendered reports are insta snapshots (reviewed one by one).

use std::collections::BTreeSet;
use std::path::Path;

fn expected_code(path: &Path) -> String {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let kind = stem.strip_prefix("err_").unwrap_or(stem);
    let kind = if kind.starts_with("syntax_") {
        "syntax"
    } else {
        kind
    };
    format!("saddle::{kind}")
}

#[test]
fn every_bad_input_gets_its_own_diagnostic() {
    let mut wrong = Vec::new();
    insta::glob!("diagnostics/err_*.action", |path| {
        let source = std::fs::read_to_string(path).expect("readable test case");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let codes: Vec<String> = match saddle::compile(&source, &name) {
            Ok(_) => vec!["accepted".to_string()],
            Err(d) => d.items.iter().map(|d| d.code.to_string()).collect(),
        };
        if codes != vec![expected_code(path)] {
            wrong.push(format!("{name}: {codes:?}"));
        }
    });
    assert!(
        wrong.is_empty(),
        "cases with the wrong diagnostics:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_diagnostic_renders_with_file_line_and_caret() {
    insta::glob!("diagnostics/err_*.action", |path| {
        let source = std::fs::read_to_string(path).expect("readable test case");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let diagnostics = match saddle::compile(&source, name) {
            Ok(_) => panic!("{name}: accepted, but it holds a mistake"),
            Err(d) => d,
        };
        let rendered = diagnostics.render(false);
        assert!(
            rendered.contains(&format!("{name}:")),
            "{name}: the report must name the file and position"
        );
        insta::with_settings!({ description => source.as_str(), omit_expression => true }, {
            insta::assert_snapshot!(rendered);
        });
    });
}

#[test]
fn there_are_at_least_25_distinct_kinds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics");
    let codes: BTreeSet<String> = std::fs::read_dir(dir)
        .expect("tests/diagnostics exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "action"))
        .map(|p| expected_code(&p))
        .collect();
    assert!(codes.len() >= 25, "only {} kinds: {codes:?}", codes.len());
}
