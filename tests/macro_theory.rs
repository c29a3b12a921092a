//! The proc-macro runs the same front end at compile time.

saddle_macros::theory!("examples/deep_erf.action");
saddle_macros::theory!("examples/recurrent_erf.action");

#[test]
fn the_macro_exposes_the_checked_theory() {
    assert_eq!(deep_erf::NAME, "deep_erf");
    assert!(deep_erf::PARAMS.contains(&("g", 1.5)));
    assert!(deep_erf::PARAMS.contains(&("L", 3.0)));
    assert_eq!(recurrent_erf::NAME, "recurrent_erf");
    // The embedded source is the file itself, and it compiles at run time too.
    let theory = saddle::compile(deep_erf::SOURCE, "deep_erf.action")
        .expect("the same front end accepts it");
    assert_eq!(theory.params.len(), deep_erf::PARAMS.len());
}
