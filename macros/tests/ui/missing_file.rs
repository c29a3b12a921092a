// A path that does not exist: the error names it.
saddle_macros::theory!(Bad = "no/such/theory.action");

fn main() {}
