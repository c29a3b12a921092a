//! The normal form written back as a term of the e-graph language, the way it is read:
//! a positive term first, the sign on the first factor, `prefix · numerator / denominator`.

use egg::{Id, Language, RecExpr};

use super::exact::{q, q_abs};
use super::{Base, Q, Sum, Term};
use crate::symbolic::lang::{Constant, Math};

fn num(out: &mut RecExpr<Math>, c: Q) -> Id {
    out.add(Math::Num(Constant(c)))
}

/// Writes a sum, leading with its first positive term.
pub(super) fn write_sum(s: &Sum, out: &mut RecExpr<Math>) -> Id {
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
