//! The e-graph language of saddle's symbolic stage.
//!
//! One language for scalars and matrices (egg does not need shapes to rewrite; rules that
//! only hold for scalars — commutativity of `*` — are guarded by the shape analysis).
//! Constants are exact rationals; decimal literals of the `.action` file are rationals
//! exactly (`0.1` is `1/10`), irrational constants stay symbolic (`pi`, `sqrt 2`).
//!
//! Gaussian expectations appear in two forms:
//! * `(E1 f m v)` — ⟨f(u)⟩ for u ∼ 𝒩(m, v), with `f` a body in the free variable `x`;
//! * `(E2 f g mu mv a b c)` — ⟨f(u) g(v)⟩ for (u, v) ∼ 𝒩((mu, mv), [[a, c], [c, b]]), the
//!   pair reduction of every entry of ⟨φ(h) φ(h)ᵀ⟩; `f` and `g` are bodies in `x`.
//!
//! Closed-form rules rewrite them into elementary functions where a closed form exists;
//! what remains is evaluated by quadrature.
//!
//! `(delta u)` is the Dirac delta δ(u), the derivative of `step` (and half that of `sign`). It
//! only has a meaning inside an `E1`/`E2` body, where Price's theorem puts it when a Jacobian
//! of a kink or jump non-linearity is taken (`symbolic::diff`); closed-form rules remove it.

use std::fmt;
use std::str::FromStr;

use egg::{Id, Symbol, define_language};
use num_rational::Rational64;

/// An exact rational constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Constant(pub Rational64);

impl Constant {
    /// The integer `n`.
    pub fn int(n: i64) -> Self {
        Constant(Rational64::from_integer(n))
    }

    /// The closest `f64`.
    pub fn to_f64(self) -> f64 {
        *self.0.numer() as f64 / *self.0.denom() as f64
    }

    /// The exact rational value of a finite decimal `f64` literal, if it has one of modest size
    /// (`0.1` → 1/10: the value the user wrote, not its binary approximation).
    pub fn from_decimal(value: f64) -> Option<Self> {
        if !value.is_finite() {
            return None;
        }
        let text = format!("{value}");
        text.parse().ok()
    }
}

impl FromStr for Constant {
    type Err = String;

    /// Parses `3`, `-2`, `3/4`, `0.125`, `-1.5`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((n, d)) = s.split_once('/') {
            let n: i64 = n.parse().map_err(|_| format!("not a rational: {s}"))?;
            let d: i64 = d.parse().map_err(|_| format!("not a rational: {s}"))?;
            if d == 0 {
                return Err(format!("zero denominator: {s}"));
            }
            return Ok(Constant(Rational64::new(n, d)));
        }
        let (sign, digits) = match s.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, s),
        };
        if digits.is_empty()
            || !digits.chars().all(|c| c.is_ascii_digit() || c == '.')
            || digits.matches('.').count() > 1
        {
            return Err(format!("not a number: {s}"));
        }
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if frac.len() > 17 || whole.len() > 17 {
            return Err(format!("too many digits for an exact constant: {s}"));
        }
        let scale = 10i64.pow(frac.len() as u32);
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| format!("not a number: {s}"))?
        };
        let frac_value: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| format!("not a number: {s}"))?
        };
        let numer = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac_value))
            .ok_or_else(|| format!("too large: {s}"))?;
        Ok(Constant(Rational64::new(sign * numer, scale)))
    }
}

impl fmt::Display for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self.0.denom() == 1 {
            write!(f, "{}", self.0.numer())
        } else {
            write!(f, "{}/{}", self.0.numer(), self.0.denom())
        }
    }
}

define_language! {
    /// Expressions of the symbolic stage (s-expression syntax: `(+ a (* 2 b))`); the
    /// variants are the operators their strings name.
    #[allow(missing_docs)]
    pub enum Math {
        Num(Constant),
        "pi" = Pi,
        "+" = Add([Id; 2]),
        "-" = Sub([Id; 2]),
        "*" = Mul([Id; 2]),
        "/" = Div([Id; 2]),
        "^" = Pow([Id; 2]),
        "neg" = Neg(Id),
        "T" = Transpose(Id),
        "tr" = Trace(Id),
        "inv" = Inverse(Id),
        "logdet" = LogDet(Id),
        "exp" = Exp(Id),
        "ln" = Ln(Id),
        "sqrt" = Sqrt(Id),
        "erf" = Erf(Id),
        "tanh" = Tanh(Id),
        "asin" = Asin(Id),
        "acos" = Acos(Id),
        "atan" = Atan(Id),
        "abs" = Abs(Id),
        "sign" = Sign(Id),
        "step" = Step(Id),
        "relu" = Relu(Id),
        "delta" = Delta(Id),
        "Phi" = NormCdf(Id),
        "Phi2" = BvnCdf([Id; 3]),
        "E1" = Expect1([Id; 3]),
        "E2" = Expect2([Id; 7]),
        Symbol(Symbol),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egg::RecExpr;

    #[test]
    fn constants_are_exact() {
        assert_eq!(
            "0.1".parse::<Constant>(),
            Ok(Constant(Rational64::new(1, 10)))
        );
        assert_eq!(
            "-1.5".parse::<Constant>(),
            Ok(Constant(Rational64::new(-3, 2)))
        );
        assert_eq!(
            "3/4".parse::<Constant>().map(|c| c.to_string()),
            Ok("3/4".to_string())
        );
        assert_eq!(
            Constant::from_decimal(0.1),
            Some(Constant(Rational64::new(1, 10)))
        );
        assert!("x".parse::<Constant>().is_err());
    }

    #[test]
    fn expressions_parse_and_print() {
        let e: RecExpr<Math> = "(E2 (erf (* s x)) (erf (* s x)) 0 0 a b c)"
            .parse()
            .expect("parses");
        assert_eq!(e.to_string(), "(E2 (erf (* s x)) (erf (* s x)) 0 0 a b c)");
    }
}
