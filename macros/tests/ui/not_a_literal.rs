// The source must be a string literal.
const SOURCE: &str = "theory t";
saddle_macros::theory!(Bad = SOURCE);

fn main() {}
