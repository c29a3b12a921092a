//! `saddle derive` for every example theory, in all three formats (insta snapshots, reviewed):
//! forward equations in tilted form and at the NNGP point, per-pair closed forms with the
//! Jacobian G, backward and output equations. Integer parameters are set to 2 to keep the
//! snapshots short; the structure is the same at any depth.

use saddle::derive::report::{Report, json_report, latex_report, text_report};

#[test]
fn derived_equations_of_every_example() {
    insta::glob!("../examples", "*.action", |path| {
        let source = std::fs::read_to_string(path).expect("readable example");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let theory =
            saddle::compile(&source, name).unwrap_or_else(|d| panic!("{}", d.render(false)));
        let overrides: Vec<(String, f64)> = theory
            .params
            .iter()
            .filter(|p| p.ty == saddle::check::ir::ParamType::Int)
            .map(|p| (p.name.clone(), 2.0))
            .collect();
        let equations = saddle::derive::derive(&theory, &overrides).expect("derivation");
        assert!(
            equations.forward.iter().all(|e| e.nngp.is_ok()),
            "{name}: every forward equation has an NNGP limit"
        );
        let report = Report::new(&theory, &equations);
        let json = serde_json::to_string_pretty(&json_report(&report)).expect("serialisable");
        insta::with_settings!({ omit_expression => true }, {
            insta::assert_snapshot!("text", text_report(&report));
            insta::assert_snapshot!("latex", latex_report(&report));
            insta::assert_snapshot!("json", json);
        });
    });
}
