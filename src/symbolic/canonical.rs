//! A canonical form of scalar formulas: what a theorist would write by hand.
//!
//! egg extracts *a* cheapest term, and terms of equal cost come out in arbitrary arrangements
//! (`N·(g/N)`, `C·(1/2)·π`, `1 − C·π·(−1/2)`, `√π·π/√(X·π)`). [`canonical`] rewrites a term
//! into one normal form, so equal formulas of different layers print alike:
//!
//! * a formula is a sum of terms $c\,\prod_i f_i^{e_i}$ with one exact rational $c$ in front
//!   and rational exponents $e_i$; sums and products are flattened, like terms and equal
//!   bases are gathered ($x^a x^b = x^{a+b}$, so $N\cdot g/N = g$);
//! * a number times a sum is distributed; other products of sums stay factored;
//! * π and positive perfect-square numbers leave a square root ($\sqrt{\pi X} = \sqrt\pi\sqrt X$),
//!   square roots of several factors merge ($\sqrt x\sqrt y = \sqrt{xy}$), $\sqrt{1/X} = 1/\sqrt X$;
//! * a pair expectation `E2` takes the order of its two variables that sorts first;
//! * factors are ordered numbers, π, parameters, entries (by name and index), sums, functions;
//!   terms numbers (and powers of π) first, then larger before smaller; a sum under an integer power
//!   leads with coefficient 1 (`2·(1 + a)`, `−(J m − θ)`); printing leads with a positive term
//!   and writes $a + (-\tfrac14)x$ as $a - \tfrac14 x$.
//!
//! Every step is an identity wherever the input is defined (an input that divides by `N`
//! presumes `N ≠ 0`; one that takes $\sqrt x$ presumes $x \ge 0$). Steps that are not —
//! $\sqrt{x^2} = x$, $\sqrt{xy} = \sqrt x\sqrt y$ for factors of unknown sign — are not taken.
//! Terms with matrix operators (`T`, `tr`, `inv`, `logdet`) are returned unchanged (their
//! products do not commute), as is any term whose exact constants would overflow `i64`.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use egg::{Id, Language, RecExpr};
use num_rational::Rational64;

use super::lang::{Constant, Math};

type Q = Rational64;

/// The canonical form of `expr` (see the module docs); `expr` itself when it has none.
pub fn canonical(expr: &RecExpr<Math>) -> RecExpr<Math> {
    if expr.as_ref().is_empty() || !expr.is_dag() {
        return expr.clone();
    }
    let root = Id::from(expr.as_ref().len() - 1);
    match read(expr, root) {
        Some(sum) => {
            let mut out = RecExpr::default();
            write_sum(&sum, &mut out);
            out
        }
        None => expr.clone(),
    }
}

/// What a factor is a power of. The variant order is the factor order in a product.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Base {
    Pi,
    /// A parameter, or the integration variable `x` of an expectation body.
    Param(String),
    /// An entry of a field, `C[1]_ab`.
    Entry(String),
    /// A sum of at least two terms; or one term kept whole under a fractional power.
    Sum(Vec<Term>),
    /// A function or expectation node (children zeroed) with its canonical arguments.
    Call(Math, Vec<Vec<Term>>),
}

/// `coeff · Π base^exponent`, bases distinct and sorted, exponents non-zero.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Term {
    coeff: Q,
    factors: Vec<(Base, Q)>,
}

type Sum = Vec<Term>;

fn q(n: i64, d: i64) -> Q {
    Q::new(n, d)
}

fn fits(n: i128, d: i128) -> Option<Q> {
    let g = gcd(n.unsigned_abs(), d.unsigned_abs()).max(1) as i128;
    let (mut n, mut d) = (n / g, d / g);
    if d < 0 {
        (n, d) = (-n, -d);
    }
    if n == i128::from(i64::MIN) {
        return None; // keeps every |c| representable
    }
    Some(Q::new_raw(i64::try_from(n).ok()?, i64::try_from(d).ok()?))
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `|c|` (constants never hold `i64::MIN`, see [`fits`] and [`read`]).
fn q_abs(c: Q) -> Q {
    if c < q(0, 1) { -c } else { c }
}

fn q_add(a: Q, b: Q) -> Option<Q> {
    let (an, ad, bn, bd) = (
        i128::from(*a.numer()),
        i128::from(*a.denom()),
        i128::from(*b.numer()),
        i128::from(*b.denom()),
    );
    fits(an * bd + bn * ad, ad * bd)
}

fn q_mul(a: Q, b: Q) -> Option<Q> {
    fits(
        i128::from(*a.numer()) * i128::from(*b.numer()),
        i128::from(*a.denom()) * i128::from(*b.denom()),
    )
}

/// `c^k` for an integer `k` (`None` for 0 to a negative power or on overflow).
fn q_powi(c: Q, k: i64) -> Option<Q> {
    if c == q(0, 1) && k < 0 {
        return None;
    }
    let base = if k < 0 { q(1, 1) / c } else { c };
    let mut acc = q(1, 1);
    for _ in 0..k.unsigned_abs().min(64) {
        acc = q_mul(acc, base)?;
    }
    (k.unsigned_abs() <= 64).then_some(acc)
}

/// The exact square root of a positive rational, if it is one.
fn q_sqrt(c: Q) -> Option<Q> {
    let root = |n: i64| -> Option<i64> {
        let r = (n as f64).sqrt().round() as i64;
        (r.checked_mul(r)? == n).then_some(r)
    };
    if c <= q(0, 1) {
        return None;
    }
    Some(q(root(*c.numer())?, root(*c.denom())?))
}

fn is_integer(k: Q) -> bool {
    k.is_integer()
}

fn is_even_integer(k: Q) -> bool {
    k.is_integer() && k.to_integer() % 2 == 0
}

fn constant(c: Q) -> Sum {
    if c == q(0, 1) {
        Vec::new()
    } else {
        vec![Term {
            coeff: c,
            factors: Vec::new(),
        }]
    }
}

fn atom(base: Base) -> Sum {
    vec![Term {
        coeff: q(1, 1),
        factors: vec![(base, q(1, 1))],
    }]
}

fn as_constant(s: &Sum) -> Option<Q> {
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

fn size_term(t: &Term) -> usize {
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

fn add(a: Sum, b: Sum) -> Option<Sum> {
    normal_sum(a.into_iter().chain(b).collect())
}

fn scale(s: Sum, c: Q) -> Option<Sum> {
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
fn mul(a: Sum, b: Sum) -> Option<Sum> {
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
fn power(s: Sum, k: Q) -> Option<Sum> {
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

fn is_entry(name: &str) -> bool {
    name.rsplit_once('_')
        .is_some_and(|(_, s)| ["ab", "aa", "bb", "a", "b"].contains(&s))
}

fn read(expr: &RecExpr<Math>, id: Id) -> Option<Sum> {
    let r = |i: &Id| read(expr, *i);
    match &expr[id] {
        Math::Num(c) if *c.0.numer() == i64::MIN => None,
        Math::Num(c) => Some(constant(c.0)),
        Math::Pi => Some(atom(Base::Pi)),
        Math::Symbol(s) if is_entry(s.as_str()) => Some(atom(Base::Entry(s.to_string()))),
        Math::Symbol(s) => Some(atom(Base::Param(s.to_string()))),
        Math::Add([a, b]) => add(r(a)?, r(b)?),
        Math::Sub([a, b]) => add(r(a)?, scale(r(b)?, q(-1, 1))?),
        Math::Neg(a) => scale(r(a)?, q(-1, 1)),
        Math::Mul([a, b]) => mul(r(a)?, r(b)?),
        Math::Div([a, b]) => mul(r(a)?, power(r(b)?, q(-1, 1))?),
        Math::Sqrt(a) => power(r(a)?, q(1, 2)),
        Math::Pow([a, b]) => {
            let exponent = r(b)?;
            match as_constant(&exponent) {
                Some(k) => power(r(a)?, k),
                None => call(&expr[id], vec![r(a)?, exponent]),
            }
        }
        Math::Transpose(_) | Math::Trace(_) | Math::Inverse(_) | Math::LogDet(_) => None,
        Math::Expect2(ids) => {
            // ⟨f(u) g(v)⟩ over 𝒩((μ, ν), [[a, c], [c, b]]) = ⟨g(u) f(v)⟩ over 𝒩((ν, μ), [[b, c], [c, a]])
            let args = ids.iter().map(r).collect::<Option<Vec<_>>>()?;
            let swapped = [1, 0, 3, 2, 5, 4, 6].map(|i| args[i].clone()).to_vec();
            call(&expr[id], args.min(swapped))
        }
        node => {
            let args = node.children().iter().map(r).collect::<Option<Vec<_>>>()?;
            call(node, args)
        }
    }
}

fn call(node: &Math, args: Vec<Sum>) -> Option<Sum> {
    let template = node.clone().map_children(|_| Id::from(0));
    Some(atom(Base::Call(template, args)))
}

fn num(out: &mut RecExpr<Math>, c: Q) -> Id {
    out.add(Math::Num(Constant(c)))
}

/// Writes a sum, leading with its first positive term.
fn write_sum(s: &Sum, out: &mut RecExpr<Math>) -> Id {
    if s.is_empty() {
        return num(out, q(0, 1));
    }
    let lead = s.iter().position(|t| t.coeff > q(0, 1)).unwrap_or(0);
    let mut acc = write_term(&s[lead], s[lead].coeff < q(0, 1), out);
    for (i, t) in s.iter().enumerate() {
        if i == lead {
            continue;
        }
        let x = write_term(t, false, out);
        acc = out.add(if t.coeff < q(0, 1) {
            Math::Sub([acc, x])
        } else {
            Math::Add([acc, x])
        });
    }
    acc
}

fn product(out: &mut RecExpr<Math>, ids: &[Id]) -> Option<Id> {
    let (&first, rest) = ids.split_first()?;
    Some(
        rest.iter()
            .fold(first, |acc, &x| out.add(Math::Mul([acc, x]))),
    )
}

/// Writes `±|coeff| · Π factors` as `prefix · numerator / denominator`, the prefix being the
/// number and the power of π (`π/2·x`, `2/π·x`, `3/4·x`); a prefix without a numerator of its
/// own joins the denominator instead (`x/(2·√y)`, not `1/2·x/√y`). A minus sign (`negate`)
/// goes on the first factor: `-π/4·x`, `-g·x/y`, `-1/(2·y)`.
fn write_term(t: &Term, negate: bool, out: &mut RecExpr<Math>) -> Id {
    let c = q_abs(t.coeff);
    if t.factors.is_empty() {
        return num(out, if negate { -c } else { c });
    }
    let (n, d) = (*c.numer(), *c.denom());
    let pi = t
        .factors
        .iter()
        .find(|(b, _)| *b == Base::Pi)
        .map(|(_, e)| *e);
    let mut sign = negate;
    // the prefix: ±n·π^p over d·π^-p (at most one of the two powers of π)
    let mut top = Vec::new();
    let mut bottom = Vec::new();
    let has_upper = t
        .factors
        .iter()
        .any(|(b, e)| *b != Base::Pi && *e > q(0, 1));
    let lone_number = pi.is_none() && n != 1 && d != 1 && has_upper;
    if lone_number {
        top.push(num(out, if negate { -c } else { c }));
        sign = false;
    } else {
        if n != 1 || (negate && !has_upper && pi.is_none_or(|p| p <= q(0, 1))) {
            top.push(num(out, q(if negate { -n } else { n }, 1)));
            sign = false;
        }
        if d != 1 {
            bottom.push(num(out, q(d, 1)));
        }
    }
    if let Some(p) = pi {
        let x = write_factor(&Base::Pi, q_abs(p), out);
        if p > q(0, 1) {
            let x = signed(x, &mut sign, out);
            top.push(x);
        } else {
            bottom.push(x);
        }
    }
    let mut upper = Vec::new();
    let mut lower = Vec::new();
    for (b, e) in t.factors.iter().filter(|(b, _)| *b != Base::Pi) {
        if *e > q(0, 1) {
            let x = write_factor(b, *e, out);
            let x = signed(x, &mut sign, out);
            upper.push(x);
        } else {
            lower.push(write_factor(b, q_abs(*e), out));
        }
    }
    if top.is_empty() || (pi.is_none() && !lone_number) || !has_upper {
        // no prefix of its own: numbers join numerator and denominator
        top.extend(upper);
        upper = top;
        bottom.extend(lower);
        lower = bottom;
    } else {
        let numerator = product(out, &top).unwrap_or_else(|| num(out, q(1, 1)));
        let prefix = match product(out, &bottom) {
            Some(b) => out.add(Math::Div([numerator, b])),
            None => numerator,
        };
        upper.insert(0, prefix);
    }
    let upper = product(out, &upper).unwrap_or_else(|| num(out, q(if sign { -1 } else { 1 }, 1)));
    match product(out, &lower) {
        Some(lower) => out.add(Math::Div([upper, lower])),
        None => upper,
    }
}

/// `-x` if the sign is still to be written (it is then written), else `x`.
fn signed(x: Id, sign: &mut bool, out: &mut RecExpr<Math>) -> Id {
    if std::mem::take(sign) {
        out.add(Math::Neg(x))
    } else {
        x
    }
}

fn write_factor(b: &Base, e: Q, out: &mut RecExpr<Math>) -> Id {
    let x = write_base(b, out);
    if e == q(1, 1) {
        x
    } else if e == q(1, 2) {
        out.add(Math::Sqrt(x))
    } else {
        let k = num(out, e);
        out.add(Math::Pow([x, k]))
    }
}

fn write_base(b: &Base, out: &mut RecExpr<Math>) -> Id {
    match b {
        Base::Pi => out.add(Math::Pi),
        Base::Param(s) | Base::Entry(s) => out.add(Math::Symbol(s.as_str().into())),
        Base::Sum(s) => write_sum(s, out),
        Base::Call(node, args) => {
            let ids: Vec<Id> = args.iter().map(|a| write_sum(a, out)).collect();
            let mut k = 0;
            let node = node.clone().map_children(|_| {
                k += 1;
                ids[k - 1]
            });
            out.add(node)
        }
    }
}

#[cfg(test)]
#[path = "canonical_tests.rs"]
mod tests;
