//! The action $S(C,\tilde C)$ of a checked theory as a number, with its gradient and Hessian by
//! automatic differentiation: the numeric cross-check of the symbolic derivation (DESIGN.md
//! "Two independent derivative paths must agree").
//!
//! * [`variables`]: the free variables — every entry of every field entry not fixed by a
//!   definition and of every conjugate entry, in the full-matrix convention of THEORY.md §1
//!   ($P^2$ independent entries per kernel).
//! * [`ActionEvaluator::action`]: $S$ at given variable values, generic over any num-dual scalar.
//!   Kernels enter every expression as $\mathrm{sym}(C)=\tfrac12(C+C^\top)$, conjugates as they
//!   are, so that $\partial S/\partial C_{\alpha\beta}$ is the full-matrix derivative (equal
//!   halves on $C_{\alpha\beta}$ and $C_{\beta\alpha}$). Gaussian expectations
//!   $\mathbb E[f(h)\mid h\sim\mathcal N(\mu,\Sigma)]$ are tensor-product Gauss–Hermite sums over
//!   $h=\mu+\sqrt2Lz$, $\Sigma=LL^\top$, so derivatives flow through the Cholesky factor and the
//!   integrand; `ln E[exp(a)]` is a stable log-mean-exp. Integrands with jumps or kinks
//!   (`sign`, `step`, `relu`, `abs`) are integrated line by line, each line cut where they
//!   break, so that their expectations and the derivatives of those converge exponentially.
//! * [`ActionEvaluator::gradient`], [`ActionEvaluator::hessian`]: forward-mode derivatives in
//!   `f64`.
//! * [`ActionEvaluator::evaluate_expr`]: any closed (unrolled) checked expression of the theory,
//!   scalar or matrix, with the same conventions and quadrature — the symbolic gradients and
//!   derived equations as numbers (`tests/symbolic_vs_ad.rs` compares them with the AD gradient).
//! * [`dense`]: the small dense matrix the evaluator computes with; `factor` its Cholesky and
//!   inverse with derivatives flowing through; `ops` the language's operations on it.
//! * `eval`: the tree-walking evaluator; `fields`: field and conjugate entries during one
//!   evaluation; `error`: what can go wrong.
//! * `expectation`: Gaussian expectations by tensor-product Gauss–Hermite; `integrand`: an
//!   integrand staged once; `breakpoints`: where it jumps or kinks; `quadrature`: the 1-D
//!   rules of a line cut there.
//! * [`derivatives`]: gradient and Hessian by forward-mode AD.
//!
//! Note the conventions of the example theories: the data term
//! $-\tfrac12\operatorname{tr}Y^\top(C+\kappa I)^{-1}Y-\tfrac D2\ln\det(C+\kappa I)$ omits the
//! constant $-\tfrac{PD}2\ln2\pi$ of $S_D=\sum_d\ln\mathcal N(y_d;0,C+\kappa I)$ (THEORY.md §4.2).
//!
//! ```
//! use ndarray::array;
//! use saddle::numeric::action::ActionEvaluator;
//!
//! let source = std::fs::read_to_string("examples/deep_erf.action").unwrap();
//! let theory = saddle::compile(&source, "deep_erf.action").unwrap();
//! let mut params: Vec<f64> = theory.params.iter().map(|p| p.default).collect();
//! params[theory.param("L").unwrap()] = 1.0;
//! let x = array![[1.0, 0.5], [-0.3, 1.2]];
//! let y = array![[1.0], [-1.0]];
//! let evaluator = ActionEvaluator::new(&theory, &params, x.view(), Some(y.view()), 12).unwrap();
//! // C[1] (4 entries) and Ct[1] (4 entries).
//! assert_eq!(evaluator.variables().len(), 8);
//! let at = [0.8, 0.3, 0.3, 0.9, 0.0, 0.0, 0.0, 0.0];
//! let (value, gradient) = evaluator.gradient(&at).unwrap();
//! assert!(value.is_finite() && gradient.len() == 8);
//! ```

mod breakpoints;
pub mod dense;
pub mod derivatives;
mod error;
mod eval;
#[cfg(test)]
mod example_tests;
mod expectation;
mod factor;
mod fields;
mod integrand;
pub(crate) mod ops;
mod quadrature;
#[cfg(test)]
mod split_tests;
#[cfg(test)]
mod tests;
pub mod variables;

pub use dense::{Dense, DenseError};
pub use derivatives::ValueGradientHessian;
pub use error::{ActionError, Context};
pub use eval::ActionEvaluator;
pub use expectation::MAX_NODES;
pub use variables::{Owner, Variable, Variables};
