//! Stage 3: symbolic algebra with e-graphs (egg).

pub mod lang;
