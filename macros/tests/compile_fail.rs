//! Compile-fail suite of `theory!`: a theory with a mistake, a bad path or a malformed
//! invocation is a compile error with the checker's `file:line:col: reason` (and hint), at the
//! literal. The expected compiler output is in `tests/ui/*.stderr`.

#[test]
fn mistakes_are_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
