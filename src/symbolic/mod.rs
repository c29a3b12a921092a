//! Stage 3: symbolic algebra with e-graphs (egg).

pub mod analysis;
pub mod canonical;
pub mod cost;
pub mod diff;
#[cfg(feature = "runtime")]
pub mod eval;
pub mod lang;
pub mod print;
pub mod rules;
pub mod runner;
