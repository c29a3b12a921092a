// A theory with a mistake (tests/diagnostics/err_int_param_not_integer.action) is a compile error at the literal.
saddle_macros::theory!(Bad = r#"
theory two_layer

param g = 1.5        // weight variance
param kappa = 0.1    // readout noise
param N = 100        // width
param L: int = 2.5    // hidden layers

phi(x) = erf(x)

data X, Y

kernel C[l] for l in 0..=L
conj Ct[l] of C[l] for l in 1..=L

C[0] = X X^T / d

action S = sum(l in 1..=L,
               - tr(Ct[l]^T C[l])
               + N * ln E[ exp(g / N * phi(h)^T Ct[l] phi(h)) | h ~ N(0, C[l-1]) ])
         - 1/2 * tr(Y^T inv(C[L] + kappa * I) Y)
"#);

fn main() {}
