//! The normal form itself: sums of terms `c · Π f^e`, built only through [`add`], [`scale`],
//! [`mul`] and [`power`], which keep every sum gathered, ordered and primitive (see the
//! parent module for the rules and why each one is an identity where the input is defined).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::exact::{is_even_integer, is_integer, q, q_abs, q_add, q_mul, q_powi, q_sqrt};
use super::{Base, Q, Sum, Term};

pub(super) fn constant(c: Q) -> Sum {
    if c == q(0, 1) {
        Vec::new()
    } else {
        vec![Term {
            coeff: c,
            factors: Vec::new(),
        }]
    }
}

pub(super) fn atom(base: Base) -> Sum {
    vec![Term {
        coeff: q(1, 1),
        factors: vec![(base, q(1, 1))],
    }]
}

pub(super) fn as_constant(s: &Sum) -> Option<Q> {
    match s.as_slice() {
        [] => Some(q(0, 1)),
        [t] if t.factors.is_empty() => Some(t.coeff),
        _ => None,
    }
}

/// Node count of the printed term, for ordering terms larger first.
fn size_sum(s: &Sum) -> usize {
    s.iter().map(size_term).sum::<usize>() + s.len().saturating_sub(1)
}

pub(super) fn size_term(t: &Term) -> usize {
    usize::from(q_abs(t.coeff) != q(1, 1)) + size_factors(t)
}

fn size_factors(t: &Term) -> usize {
    t.factors
        .iter()
        .map(|(b, e)| size_base(b) + usize::from(*e != q(1, 1)))
        .sum::<usize>()
}

fn size_base(b: &Base) -> usize {
    match b {
        Base::Pi | Base::Param(_) | Base::Entry(_) => 1,
        Base::Sum(s) => size_sum(s),
        Base::Call(_, args) => 1 + args.iter().map(size_sum).sum::<usize>(),
    }
}

/// Gathers like terms and orders them: numbers and powers of π first, then larger terms first.
fn normal_sum(terms: Sum) -> Option<Sum> {
    let mut gathered: BTreeMap<Vec<(Base, Q)>, Q> = BTreeMap::new();
    for t in terms {
        let c = gathered.entry(t.factors).or_insert(q(0, 1));
        *c = q_add(*c, t.coeff)?;
    }
    let mut out: Sum = gathered
        .into_iter()
        .filter(|(_, c)| *c != q(0, 1))
        .map(|(factors, coeff)| Term { coeff, factors })
        .collect();
    // The order does not depend on coefficients (see `primitive`).
    out.sort_by_cached_key(|t| {
        (
            !t.factors.iter().all(|(b, _)| *b == Base::Pi),
            Reverse(size_factors(t)),
            t.factors.clone(),
            q_abs(t.coeff),
        )
    });
    Some(out)
}

pub(super) fn add(a: Sum, b: Sum) -> Option<Sum> {
    normal_sum(a.into_iter().chain(b).collect())
}

pub(super) fn scale(s: Sum, c: Q) -> Option<Sum> {
    let terms = s
        .into_iter()
        .map(|t| {
            Some(Term {
                coeff: q_mul(t.coeff, c)?,
                factors: t.factors,
            })
        })
        .collect::<Option<Sum>>()?;
    normal_sum(terms)
}

/// `a · b`: single terms multiply, a sum of several terms becomes one factor.
pub(super) fn mul(a: Sum, b: Sum) -> Option<Sum> {
    if a.is_empty() || b.is_empty() {
        return Some(Vec::new());
    }
    let (ta, tb) = (as_term(a), as_term(b));
    let mut factors = ta.factors;
    factors.extend(tb.factors);
    finish(q_mul(ta.coeff, tb.coeff)?, factors)
}

/// A non-empty sum as one term (a sum of several terms becomes a factor of exponent 1).
fn as_term(mut s: Sum) -> Term {
    if s.len() == 1 {
        s.remove(0)
    } else {
        Term {
            coeff: q(1, 1),
            factors: vec![(Base::Sum(s), q(1, 1))],
        }
    }
}

/// `s^k` for a rational `k`.
pub(super) fn power(s: Sum, k: Q) -> Option<Sum> {
    if k == q(0, 1) {
        return Some(constant(q(1, 1)));
    }
    if k == q(1, 1) {
        return Some(s);
    }
    if s.is_empty() {
        // 0 to a negative power: the formula is undefined and keeps its own form
        return (k > q(0, 1)).then(Vec::new);
    }
    if s.len() > 1 {
        return finish(q(1, 1), vec![(Base::Sum(s), k)]);
    }
    let t = as_term(s);
    if is_integer(k) {
        let coeff = q_powi(t.coeff, k.to_integer())?;
        let factors = t
            .factors
            .into_iter()
            .map(|(b, e)| Some((b, q_mul(e, k)?)))
            .collect::<Option<Vec<_>>>()?;
        return finish(coeff, factors);
    }
    // A fractional power: π and exact roots of positive numbers leave the root; what is left
    // is one factor (whose power is a power of its base unless an even power hides a sign)
    // or stays whole.
    let mut coeff = q(1, 1);
    let mut rest_coeff = t.coeff;
    if k.denom() == &2
        && let Some(root) = q_sqrt(t.coeff)
    {
        coeff = q_powi(root, *k.numer())?;
        rest_coeff = q(1, 1);
    }
    let mut out = Vec::new();
    let mut rest = Vec::new();
    for (b, e) in t.factors {
        if b == Base::Pi {
            out.push((b, q_mul(e, k)?));
        } else {
            rest.push((b, e));
        }
    }
    match rest.as_slice() {
        [] if rest_coeff == q(1, 1) => {}
        [(_, e)] if rest_coeff == q(1, 1) && !is_even_integer(*e) => {
            let (b, e) = rest.remove(0);
            out.push((b, q_mul(e, k)?));
        }
        _ => out.push((Base::Sum(finish(rest_coeff, rest)?), k)),
    }
    finish(coeff, out)
}

/// The normal form of `coeff · Π base^exponent` as a sum (one term, or a distributed sum).
fn finish(coeff: Q, factors: Vec<(Base, Q)>) -> Option<Sum> {
    if coeff == q(0, 1) {
        return Some(Vec::new());
    }
    let mut gathered: BTreeMap<Base, Q> = BTreeMap::new();
    for (b, e) in factors {
        let x = gathered.entry(b).or_insert(q(0, 1));
        *x = q_add(*x, e)?;
    }
    gathered.retain(|_, e| *e != q(0, 1));
    // A power of a whole single term or of zero that became an integer power multiplies out.
    let whole = gathered.iter().find_map(|(b, e)| match b {
        Base::Sum(s) if s.len() <= 1 && is_integer(*e) => Some(b.clone()),
        _ => None,
    });
    if let Some(b) = whole {
        let e = gathered.remove(&b)?;
        let Base::Sum(s) = b else { return None };
        let rest = finish(coeff, gathered.into_iter().collect())?;
        return mul(rest, power(s, e)?);
    }
    // √x·√y = √(xy), and 1/(√x·√y) = 1/√(xy): one root instead of several.
    for half in [q(1, 2), q(-1, 2)] {
        let roots: Vec<Base> = gathered
            .iter()
            .filter(|(b, e)| **e == half && **b != Base::Pi)
            .map(|(b, _)| b.clone())
            .collect();
        if roots.len() >= 2 {
            let mut product = constant(q(1, 1));
            for b in &roots {
                gathered.remove(b);
                product = mul(product, base_sum(b.clone()))?;
            }
            let rest = finish(coeff, gathered.into_iter().collect())?;
            return mul(rest, power(product, half)?);
        }
    }
    let mut scaled = false;
    let mut coeff = coeff;
    let mut factors = Vec::with_capacity(gathered.len());
    for (b, e) in gathered {
        match primitive(&b, e)? {
            Some((b, content)) => {
                coeff = q_mul(coeff, q_powi(content, e.to_integer())?)?;
                factors.push((b, e));
                scaled = true;
            }
            None => factors.push((b, e)),
        }
    }
    if scaled {
        // a rescaled base may now equal another one; gather again
        return finish(coeff, factors);
    }
    factors.sort();
    if let [(Base::Sum(s), e)] = factors.as_slice()
        && s.len() > 1
        && *e == q(1, 1)
    {
        return scale(s.clone(), coeff);
    }
    Some(vec![Term { coeff, factors }])
}

/// A sum under an integer power leaves its content in the coefficient, `(2 + 2a)^k =
/// 2^k (1 + a)^k`, `(θ − J m) = −(J m − θ)`, so that its first term has coefficient 1
/// (the rescaled base and the content, or `None` when it is primitive already). Term order
/// ignores coefficients, so a rescaled sum keeps its order.
fn primitive(b: &Base, e: Q) -> Option<Option<(Base, Q)>> {
    match b {
        Base::Sum(s) if s.len() > 1 && is_integer(e) && s[0].coeff != q(1, 1) => {
            let content = s[0].coeff;
            Some(Some((
                Base::Sum(scale(s.clone(), q(1, 1) / content)?),
                content,
            )))
        }
        _ => Some(None),
    }
}

/// A base as a formula (`x`, or the sum it stands for).
fn base_sum(b: Base) -> Sum {
    match b {
        Base::Sum(s) => s,
        b => atom(b),
    }
}
