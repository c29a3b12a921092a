//! Stage 3: symbolic algebra with e-graphs (egg).
//!
//! * [`lang`]: the e-graph language `Math` (scalars, pair expectations `E1`/`E2`, Φ₂).
//! * [`rules`]: the rewrite rules (algebra, trigonometry, Gaussian closed forms, Price).
//! * [`runner`]: runs the rules and extracts the cheapest form ([`cost`] prices the nodes).
//! * [`analysis`]: constant folding and sign/range facts the conditional rules read.
//! * [`diff`]: symbolic derivatives (Price's theorem inside expectations).
//! * [`canonical`]: one printed shape per formula (exact coefficient, sorted factors).
//! * [`mod@print`]: Unicode and LaTeX of `Math` terms (their `f64` values:
//!   `numeric::term_eval`).

pub mod analysis;
pub mod canonical;
pub mod cost;
pub mod diff;
pub mod lang;
pub mod print;
pub mod rules;
pub mod runner;
