//! Exact rational arithmetic for the canonical form: checked (`None` on `i64` overflow),
//! and never producing `i64::MIN`, so that `|c|` always exists.

use super::Q;

pub(super) fn q(n: i64, d: i64) -> Q {
    Q::new(n, d)
}

pub(super) fn fits(n: i128, d: i128) -> Option<Q> {
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
pub(super) fn q_abs(c: Q) -> Q {
    if c < q(0, 1) { -c } else { c }
}

pub(super) fn q_add(a: Q, b: Q) -> Option<Q> {
    let (an, ad, bn, bd) = (
        i128::from(*a.numer()),
        i128::from(*a.denom()),
        i128::from(*b.numer()),
        i128::from(*b.denom()),
    );
    fits(an * bd + bn * ad, ad * bd)
}

pub(super) fn q_mul(a: Q, b: Q) -> Option<Q> {
    fits(
        i128::from(*a.numer()) * i128::from(*b.numer()),
        i128::from(*a.denom()) * i128::from(*b.denom()),
    )
}

/// `c^k` for an integer `k` (`None` for 0 to a negative power or on overflow).
pub(super) fn q_powi(c: Q, k: i64) -> Option<Q> {
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
pub(super) fn q_sqrt(c: Q) -> Option<Q> {
    let root = |n: i64| -> Option<i64> {
        let r = (n as f64).sqrt().round() as i64;
        (r.checked_mul(r)? == n).then_some(r)
    };
    if c <= q(0, 1) {
        return None;
    }
    Some(q(root(*c.numer())?, root(*c.denom())?))
}

pub(super) fn is_integer(k: Q) -> bool {
    k.is_integer()
}

pub(super) fn is_even_integer(k: Q) -> bool {
    k.is_integer() && k.to_integer() % 2 == 0
}
