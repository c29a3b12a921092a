// One theory per invocation.
saddle_macros::theory!(Bad = "examples/deep_erf.action", Other = "examples/deep_relu.action");

fn main() {}
