//! saddle-macros
