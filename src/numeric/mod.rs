//! Numerical kernels of the theory: Gaussian expectations $\langle\phi(u)\phi(v)\rangle$ and their
//! derivatives for $(u,v)\sim\mathcal N\big(0,\begin{psmallmatrix}a&c\\c&b\end{psmallmatrix}\big)$
//! (THEORY.md §2), written once and generic over `D: DualNum<f64> + Copy` so that num-dual gives
//! $\partial K/\partial C$ (the Jacobian $G$) and higher derivatives.
//!
//! * [`special`]: $\operatorname{erf}$, $\Phi$, $\varphi$ on dual numbers (exact to all orders).
//! * [`activation`]: $\phi$, $\phi'$, $\phi''$ of the activations; [`singularity`]: the poles
//!   and non-finite stretches of user functions that leave $\langle\phi^2\rangle$ undefined.
//! * [`pair`], [`pair_derivative`]: closed forms of $K_\phi$, $\langle\phi'\phi'\rangle$,
//!   $\langle\phi''\phi\rangle$ and the diagonal $\frac{d}{dq}\langle\phi^2\rangle$;
//!   [`pair_quadrature`]: $K_\phi$ for every activation (Gauss–Hermite where no closed form).
//! * [`kernel_map`]: one pair formula over all pattern pairs — the fused closed-form loop,
//!   the symmetric write, and ([`kernel_map::hermite`] with [`hermite_expansion`]) $K_\phi$ of tanh and smooth user functions
//!   over all pattern pairs by the Mehler expansion, with an error bound per pair; the
//!   pairs it cannot bound by nested Gauss–Hermite (`pair_fallback`).
//! * [`bvn`]: bivariate normal CDF $\Phi_2(h,k;\rho)$ (threshold units, THEORY.md §7).
//! * [`buffer`]: fresh P×P buffers, their pages mapped (huge where allowed) on all cores.
//! * [`dense`]: the Cholesky factor as parallel bands of sequential faer kernels (the GP
//!   step).
//! * [`gauss_rule`]: Gauss–Legendre and half-range Hermite rules for expectations split at
//!   the jumps and kinks of their integrand (`action`).
//! * [`quad`]: Gauss–Hermite $\langle f(u)\rangle$, $\langle f(u)g(v)\rangle$ for smooth $\phi$;
//!   [`tanh_sinh`]: adaptive 1-D quadrature on an interval.
//! * [`jet`]: entry-wise functions of pre-activations — their regularity and jets f, f′, f″
//!   over samples; [`price`]: the tilts and averages of a cumulant-generating term as forms of
//!   them, so that Price's theorem gives ∂ ln Z/∂K without an inverse kernel.
//! * [`matrix`]: matrix expressions that need no Gaussian integral (definitions, data-only
//!   matrices, the readout kernel); [`tall`]: products of tall M×P sample matrices.
//! * [`krylov`]: GMRES on an operator known only through its products (the Newton–Krylov
//!   saddle point of `finite_width`).
//! * [`monte_carlo`]: seeded Monte Carlo with standard errors, the independent check.
//! * [`term_eval`]: the `f64` value of a symbolic term; the symbolic stage's closed forms,
//!   derivatives and canonical forms are checked numerically with it here.
//! * [`vector_math`]: branch-free asin / acos for SIMD loops, and the run-time choice of
//!   instruction set, and the vector-state reset after foreign AVX-512 kernels; [`kernel_map`]
//!   uses them in the closed-form pair loop.
//! * [`program`]: entry formulas of the symbolic stage compiled to op trees and evaluated per
//!   pair.

pub mod action;
pub mod activation;
pub mod buffer;
pub mod bvn;
#[cfg(test)]
mod canonical_checks;
#[cfg(test)]
mod closed_form_checks;
pub mod dense;
#[cfg(test)]
mod diff_checks;
pub mod gauss_rule;
pub mod hermite_expansion;
pub mod jet;
pub mod kernel_map;
pub mod krylov;
pub mod matrix;
pub mod monte_carlo;
pub mod pair;
pub mod pair_derivative;
mod pair_fallback;
pub mod pair_quadrature;
pub mod price;
pub mod program;
pub mod quad;
#[cfg(test)]
pub(crate) mod reference_values;
pub mod singularity;
pub mod special;
pub mod tall;
pub mod tanh_sinh;
pub mod term_eval;
pub mod vector_math;
