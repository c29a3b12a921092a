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

fn derived(name: &str, depth: f64) -> (saddle::check::ir::Theory, saddle::derive::Equations) {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&path).expect("readable example");
    let theory = saddle::compile(&source, name).unwrap_or_else(|d| panic!("{}", d.render(false)));
    let overrides: Vec<(String, f64)> = theory
        .params
        .iter()
        .filter(|p| p.ty == saddle::check::ir::ParamType::Int)
        .map(|p| (p.name.clone(), depth))
        .collect();
    let equations = saddle::derive::derive(&theory, &overrides).expect("derivation");
    (theory, equations)
}

/// `C[2]_ab` → `C[*]_ab`: a formula with the layer (or time) indices of its entries erased.
fn without_layers(formula: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in formula.chars() {
        match c {
            '[' => {
                depth += 1;
                out.push_str("[*");
            }
            ']' => {
                depth -= 1;
                out.push(']');
            }
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// The pair equations and G of every layer have one shape: after the canonical form and with
/// the layer indices erased, layer 1 and layer 3 of a deep network print the same formula.
#[test]
fn every_layer_has_the_same_shape() {
    use saddle::derive::closed_form::pair_equation;
    for example in ["deep_erf.action", "deep_relu.action", "binary_sign.action"] {
        let (theory, equations) = derived(example, 3.0);
        let shapes: Vec<Vec<String>> = equations
            .forward
            .iter()
            .map(|eq| {
                let pair = pair_equation(&theory, eq, true).expect("pair equation");
                let mut shape = vec![without_layers(&pair.formula.to_string())];
                for (wrt, d) in &pair.jacobian {
                    let d = d.as_ref().map_or_else(|e| e.clone(), |d| d.to_string());
                    shape.push(format!("{}: {}", without_layers(wrt), without_layers(&d)));
                }
                shape
            })
            .collect();
        assert_eq!(shapes.len(), 3, "{example}");
        assert!(
            shapes.windows(2).all(|w| w[0] == w[1]),
            "{example}: {shapes:#?}"
        );
    }
}

/// The LaTeX report is well formed: balanced braces and `\left`/`\right`, matched
/// environments, no Unicode math left over. (No TeX installation is assumed.)
#[test]
fn latex_reports_are_well_formed() {
    for entry in std::fs::read_dir(format!("{}/examples", env!("CARGO_MANIFEST_DIR")))
        .expect("examples folder")
    {
        let path = entry.expect("directory entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".action") {
            continue;
        }
        let (theory, equations) = derived(name, 2.0);
        let latex = latex_report(&Report::new(&theory, &equations));
        for line in latex.lines().filter(|l| !l.starts_with('%')) {
            let mut depth = 0i64;
            for c in line.chars() {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                assert!(depth >= 0, "{name}: unbalanced braces in {line}");
            }
            assert_eq!(depth, 0, "{name}: unbalanced braces in {line}");
            assert_eq!(
                line.matches("\\left").count(),
                line.matches("\\right").count(),
                "{name}: \\left without \\right in {line}"
            );
            assert!(
                !line.contains(['·', '√', '−', 'π', '⁻']),
                "{name}: Unicode in LaTeX: {line}"
            );
        }
        assert_eq!(
            latex.matches("\\begin{align*}").count(),
            latex.matches("\\end{align*}").count(),
            "{name}"
        );
    }
}
