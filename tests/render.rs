//! Unicode and LaTeX renderings of every example theory (insta snapshots, reviewed).

use saddle::render::{Latex, Unicode, latex_document, render_theory};

#[test]
fn examples_render_as_unicode_and_latex() {
    insta::glob!("../examples", "*.action", |path| {
        let source = std::fs::read_to_string(path).expect("readable example");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let theory =
            saddle::compile(&source, name).unwrap_or_else(|d| panic!("{}", d.render(false)));
        let unicode = render_theory(&theory, &Unicode).join("\n");
        let latex = latex_document(&render_theory(&theory, &Latex));
        insta::with_settings!({ omit_expression => true }, {
            insta::assert_snapshot!("unicode", unicode);
            insta::assert_snapshot!("latex", latex);
        });
    });
}
