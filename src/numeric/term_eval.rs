//! A small `f64` evaluator of [`Math`] terms, for checking closed forms numerically.
//!
//! Symbols are looked up in an environment; `E1`, `E2`, `delta` and matrix nodes (`T`, `tr`,
//! `inv`, `logdet`) have no scalar value here and give `None`, as does any non-finite
//! intermediate (division by zero, `sqrt` of a negative, `ln` of a non-positive, a non-integer
//! power of a negative). `step(0) = 1/2`, `sign(0) = 0`. $\operatorname{erf}$ comes from `libm`,
//! $\Phi_2$ from [`bvn_cdf`]. It lives in `numeric`, not `symbolic`, because it evaluates with
//! numeric's special functions: the symbolic stage's numeric cross-checks live here too
//! (`closed_form_checks`, `diff_checks`, `canonical_checks`).

use std::collections::HashMap;
use std::f64::consts::{FRAC_1_SQRT_2, PI};

use egg::RecExpr;

use super::bvn::bvn_cdf;
use crate::symbolic::lang::Math;

/// The value of `expr` with its symbols taken from `env` (see the module docs for `None`).
pub fn eval(expr: &RecExpr<Math>, env: &HashMap<&str, f64>) -> Option<f64> {
    let mut values: Vec<f64> = Vec::with_capacity(expr.as_ref().len());
    for node in expr.as_ref() {
        let v = |id: &egg::Id| values.get(usize::from(*id)).copied();
        let value = match node {
            Math::Num(c) => c.to_f64(),
            Math::Pi => PI,
            Math::Symbol(s) => *env.get(s.as_str())?,
            Math::Add([a, b]) => v(a)? + v(b)?,
            Math::Sub([a, b]) => v(a)? - v(b)?,
            Math::Mul([a, b]) => v(a)? * v(b)?,
            Math::Div([a, b]) => v(a)? / v(b)?,
            Math::Pow([a, b]) => power(v(a)?, v(b)?)?,
            Math::Neg(a) => -v(a)?,
            Math::Exp(a) => v(a)?.exp(),
            Math::Ln(a) => positive(v(a)?)?.ln(),
            Math::Sqrt(a) => nonneg(v(a)?)?.sqrt(),
            Math::Erf(a) => libm::erf(v(a)?),
            Math::Tanh(a) => v(a)?.tanh(),
            Math::Asin(a) => unit(v(a)?)?.asin(),
            Math::Acos(a) => unit(v(a)?)?.acos(),
            Math::Atan(a) => v(a)?.atan(),
            Math::Abs(a) => v(a)?.abs(),
            Math::Sign(a) => signum(v(a)?),
            Math::Step(a) => 0.5 * (1.0 + signum(v(a)?)),
            Math::Relu(a) => v(a)?.max(0.0),
            Math::NormCdf(a) => 0.5 * libm::erfc(-v(a)? * FRAC_1_SQRT_2),
            Math::BvnCdf([h, k, r]) => bvn_cdf(v(h)?, v(k)?, v(r)?).ok()?,
            Math::Transpose(_)
            | Math::Trace(_)
            | Math::Inverse(_)
            | Math::LogDet(_)
            | Math::Delta(_)
            | Math::Expect1(_)
            | Math::Expect2(_) => return None,
        };
        if !value.is_finite() {
            return None;
        }
        values.push(value);
    }
    values.last().copied()
}

fn signum(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

fn positive(x: f64) -> Option<f64> {
    (x > 0.0).then_some(x)
}

fn nonneg(x: f64) -> Option<f64> {
    (x >= 0.0).then_some(x)
}

fn unit(x: f64) -> Option<f64> {
    (-1.0..=1.0).contains(&x).then_some(x)
}

fn power(base: f64, exponent: f64) -> Option<f64> {
    if exponent.fract() == 0.0 && exponent.abs() < f64::from(i32::MAX) {
        // Integer exponents are exact for negative bases too.
        Some(base.powi(exponent as i32))
    } else if base >= 0.0 {
        Some(base.powf(exponent))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(expr: &str, env: &[(&str, f64)]) -> Option<f64> {
        let expr: RecExpr<Math> = expr.parse().expect("test expression parses");
        eval(&expr, &env.iter().copied().collect())
    }

    #[test]
    fn evaluates_elementary_terms() {
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-15);
        assert!(close(value("(+ 1/2 (* 2 x))", &[("x", 0.25)]), 1.0));
        assert!(close(value("(^ -2 3)", &[]), -8.0));
        assert!(close(value("(* 2 (asin 1))", &[]), PI));
        assert!(close(value("(Phi 0)", &[]), 0.5));
        assert!(close(value("(Phi2 0 0 0)", &[]), 0.25));
        assert!(close(value("(erf 0)", &[]), 0.0));
    }

    #[test]
    fn undefined_values_are_none() {
        assert_eq!(value("(/ 1 0)", &[]), None);
        assert_eq!(value("(sqrt -1)", &[]), None);
        assert_eq!(value("(^ -2 1/2)", &[]), None);
        assert_eq!(value("(asin 2)", &[]), None);
        assert_eq!(value("(E1 x m v)", &[("m", 0.0), ("v", 1.0)]), None);
        assert_eq!(value("y", &[]), None);
        assert_eq!(value("(tr X)", &[("X", 1.0)]), None);
    }
}
