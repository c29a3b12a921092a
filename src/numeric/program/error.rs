//! Why a formula cannot be compiled or evaluated.

/// Why a formula cannot be compiled or evaluated.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProgramError {
    /// A symbol that is neither a parameter, a size nor an entry.
    #[error("the formula uses `{0}`, which has no value here")]
    UnknownSymbol(String),
    /// A construct that cannot be evaluated numerically.
    #[error("cannot evaluate {0}")]
    Unsupported(String),
    /// A Gaussian expectation that does not exist: the function has a pole on the real line
    /// or is not finite on part of it.
    #[error("⟨{function}(h)²⟩ does not exist under a Gaussian: `{function}` {singularity}")]
    DivergentExpectation {
        /// The function's name.
        function: String,
        /// Where and how.
        singularity: crate::numeric::singularity::Singularity,
    },
    /// A Gaussian expectation with an invalid covariance at some pair.
    #[error(
        "a Gaussian expectation got an invalid covariance (variances {var_u}, {var_v}, covariance {cov}): the kernel is not positive semi-definite"
    )]
    InvalidCovariance {
        /// First variance.
        var_u: f64,
        /// Second variance.
        var_v: f64,
        /// Covariance.
        cov: f64,
    },
}
