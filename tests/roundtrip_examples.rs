//! Every example theory parses and survives the canonical printer unchanged.

use std::path::Path;

use saddle::syntax::{self, print::print_file};

fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "action") {
            let text = std::fs::read_to_string(&path).expect("readable example");
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                text,
            ));
        }
    }
    out.sort();
    assert!(
        out.len() >= 8,
        "expected the eight example theories, found {}",
        out.len()
    );
    out
}

#[test]
fn every_example_round_trips_through_the_canonical_printer() {
    for (name, text) in examples() {
        let ast =
            syntax::parse(&text, &name).unwrap_or_else(|d| panic!("{name}:\n{}", d.render(false)));
        let printed = print_file(&ast);
        let reparsed = syntax::parse(&printed, &name)
            .unwrap_or_else(|d| panic!("{name} (printed):\n{printed}\n{}", d.render(false)));
        assert_eq!(
            ast, reparsed,
            "{name}: canonical text parses to a different tree:\n{printed}"
        );
        // Canonical text is a fixed point of the printer.
        assert_eq!(
            print_file(&reparsed),
            printed,
            "{name}: printing is not idempotent"
        );
    }
}

#[test]
fn every_example_checks() {
    for (name, text) in examples() {
        let theory = saddle::compile(&text, &name)
            .unwrap_or_else(|d| panic!("{name}:\n{}", d.render(false)));
        assert!(!theory.fields.is_empty(), "{name}: no fields");
        assert!(!theory.conjugates.is_empty(), "{name}: no conjugates");
        assert!(theory.action.body.shape.is_scalar());
    }
}
