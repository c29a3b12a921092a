// The struct needs a name: `theory!(Name = "…")`.
saddle_macros::theory!("examples/deep_erf.action");

fn main() {}
