//! Conditions of the conditional rewrites, read from the e-class [`Facts`](crate::symbolic::analysis::Facts).

use egg::{Id, Subst, Var};

use crate::symbolic::analysis::{Facts, MathGraph};

/// A rewrite condition over the symbolic e-graph.
pub(crate) type Cond = Box<dyn Fn(&mut MathGraph, Id, &Subst) -> bool + Send + Sync>;

fn var(name: &str) -> Var {
    // Rule tables are static text; a malformed variable is a bug caught by every test run.
    name.parse()
        .unwrap_or_else(|_| panic!("bad pattern variable {name}"))
}

fn facts_of(vars: &[&str], test: fn(&Facts) -> bool) -> Cond {
    let vars: Vec<Var> = vars.iter().map(|v| var(v)).collect();
    Box::new(move |egraph, _, subst| vars.iter().all(|v| test(&egraph[subst[*v]].data)))
}

/// All the variables are scalar-valued.
pub(crate) fn scalar(vars: &[&str]) -> Cond {
    facts_of(vars, |f| f.scalar)
}

/// At least one of the two variables is scalar-valued (so their product commutes).
pub(crate) fn either_scalar(a: &str, b: &str) -> Cond {
    let (a, b) = (var(a), var(b));
    Box::new(move |egraph, _, subst| egraph[subst[a]].data.scalar || egraph[subst[b]].data.scalar)
}

/// The variable is a matrix (not known to be scalar).
pub(crate) fn matrix(v: &str) -> Cond {
    facts_of(&[v], |f| !f.scalar)
}

/// All the variables are free of the body variable `x`.
pub(crate) fn x_free(vars: &[&str]) -> Cond {
    facts_of(vars, |f| f.x_free)
}

/// The variable is a scalar known to be non-zero.
pub(crate) fn nonzero(v: &str) -> Cond {
    facts_of(&[v], |f| f.scalar && f.nonzero())
}

/// All the variables are known to be strictly positive.
pub(crate) fn positive(vars: &[&str]) -> Cond {
    facts_of(vars, |f| f.positive)
}

/// All the variables are known to be non-negative.
pub(crate) fn nonneg(vars: &[&str]) -> Cond {
    facts_of(vars, |f| f.nonneg)
}

/// The variable is an integer constant.
pub(crate) fn integer(v: &str) -> Cond {
    facts_of(&[v], |f| f.constant.is_some_and(|c| c.0.is_integer()))
}

/// All the variables are rational constants.
pub(crate) fn constant(vars: &[&str]) -> Cond {
    facts_of(vars, |f| f.constant.is_some())
}

/// The first variable is a rational constant and the second is not (so constants move left once).
pub(crate) fn constant_not(c: &str, other: &str) -> Cond {
    let (c, other) = (var(c), var(other));
    Box::new(move |egraph, _, subst| {
        egraph[subst[c]].data.constant.is_some() && egraph[subst[other]].data.constant.is_none()
    })
}
