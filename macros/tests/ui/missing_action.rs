// A theory with a mistake (tests/diagnostics/err_missing_action.action) is a compile error at the literal.
saddle_macros::theory!(Bad = r#"
theory two_layer

param g = 1.5        // weight variance
param kappa = 0.1    // readout noise
param N = 100        // width
param L: int = 2     // hidden layers

phi(x) = erf(x)

data X, Y

kernel C[l] for l in 0..=L
conj Ct[l] of C[l] for l in 1..=L

C[0] = X X^T / d

"#);

fn main() {}
