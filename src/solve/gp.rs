//! Gaussian-process regression with a given kernel (THEORY.md §3): posterior mean, latent
//! variance, log marginal likelihood, test error and accuracy — all from one Cholesky factor.
//!
//! With training kernel $K$ ($P\times P$), targets $Y$ ($P\times D$), cross-kernel $K_*$
//! ($P\times P_*$), test diagonal $k_{**}$ ($P_*$) and readout noise $\kappa$:
//! $$\mu_*=K_*^\top(K+\kappa I)^{-1}Y,\qquad
//!   \sigma_*^2=k_{**}-\operatorname{diag}\big(K_*^\top(K+\kappa I)^{-1}K_*\big),$$
//! $$\ln p(Y\mid X)=-\tfrac12\textstyle\sum_d y_d^\top(K+\kappa I)^{-1}y_d
//!   -\tfrac D2\ln\det(K+\kappa I)-\tfrac{PD}2\ln2\pi,$$
//! evaluated through $K+\kappa I+\epsilon I=LL^\top$ and triangular solves (faer); the inverse
//! is never formed. $\epsilon$ is the jitter (0 unless needed; relative to the mean diagonal of
//! $K$; policy in [`CholeskyFactor`]) and is reported in [`JitterInfo`]; every output,
//! $\ln p$ included, is that of $K+(\kappa+\epsilon)I$.
//!
//! | file | job |
//! |---|---|
//! | `factor` | [`CholeskyFactor`]: in-place Cholesky with the jitter policy |
//! | `posterior` | [`GpPosterior`]: fit, predict, solve |
//! | `regress` | [`regress`]: fit + predict + score in one call, [`GpResult`]; THEORY T4 test |
//! | `metrics` | [`TestMetrics`]: MSE, $\varepsilon_g$, accuracy |
//! | `error` | [`GpError`] |
//!
//! ```text
//! let result = regress(k, y.view(), k_star.view(), k_star_star.view(), kappa, Some(y_test.view()))?;
//! result.prediction.mean; result.log_marginal_likelihood; result.jitter; result.metrics;
//! ```

mod error;
mod factor;
mod metrics;
mod posterior;
mod regress;

pub use error::GpError;
pub use factor::{CholeskyFactor, JitterInfo, RELATIVE_JITTERS, SYMMETRY_TOLERANCE};
pub use metrics::{TestMetrics, accuracy};
pub use posterior::{GpPosterior, PREDICT_BLOCK, Prediction};
pub use regress::{GpResult, regress};
