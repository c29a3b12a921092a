//! The e-class analysis of the symbolic stage: exact constant folding plus the facts the
//! conditional rewrites need.
//!
//! Every e-class carries [`Facts`]:
//! * `constant` — the exact rational value when the class is a number. `+ - * / neg`, integer
//!   powers `a^n`, `abs` and square roots of perfect squares fold with checked `i64`
//!   arithmetic: on overflow (or division by zero, `0^{-n}`) nothing is folded. A folded class
//!   keeps only its leaves, so `(+ 1 2)` and `3` are one class holding `3`.
//! * `scalar` — the class is scalar-valued, so `*` commutes with it.
//! * `x_free` — some member does not mention the body variable `x` (`E1`/`E2` bind it), so the
//!   class is a constant as far as a Gaussian body is concerned.
//! * `positive`, `nonneg` — known sign, from constants, `pi`, `exp`, `sqrt`, `abs`, `Phi`, even
//!   powers, and sums/products/quotients of known-sign scalars.
//!
//! Merging ORs the facts: a class is scalar (free of `x`, positive) as soon as one of its
//! members is known to be.
//!
//! # Which symbols are matrices
//! Symbols carry no shape, so the name decides (see [`symbol_is_scalar`]):
//! * `I` (identity) and `ones` (the all-ones vector) are matrices;
//! * a name that starts with an uppercase letter or contains `[` is a matrix or vector
//!   (`X`, `C[1]`, `Ct[2]`, `K`) — **unless** it contains `_` followed by a non-empty suffix
//!   without brackets: `C1_ab`, `C[1]_ab`, `K_12` are *entries* of a matrix, hence scalars;
//! * every other symbol (`g`, `a`, `x`, `kappa`, `s`) is a scalar.
//!
//! Shapes of compound nodes: `tr`, `logdet`, `E1`, `E2` are scalar; arithmetic, `^`, `T`, `inv`
//! and the element-wise functions are scalar when all their arguments are.

use egg::{Analysis, DidMerge, EGraph, Id, Language, Symbol};
use num_rational::Rational64;

use super::lang::{Constant, Math};

/// The e-graph of the symbolic stage.
pub type MathGraph = EGraph<Math, ConstantFold>;

/// Constant folding and shape/sign knowledge (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConstantFold;

/// What is known about the value of an e-class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The exact value, when the class is a rational number.
    pub constant: Option<Constant>,
    /// The class is scalar-valued (so `*` commutes with it).
    pub scalar: bool,
    /// Some member of the class does not depend on the body variable `x`.
    pub x_free: bool,
    /// The value is known to be strictly positive.
    pub positive: bool,
    /// The value is known to be non-negative.
    pub nonneg: bool,
}

impl Facts {
    /// The value is known to be different from zero.
    pub fn nonzero(&self) -> bool {
        self.positive
            || self
                .constant
                .is_some_and(|c| c.0 != Rational64::from_integer(0))
    }

    fn of_constant(c: Constant) -> Self {
        let zero = Rational64::from_integer(0);
        Facts {
            constant: Some(c),
            scalar: true,
            x_free: true,
            positive: c.0 > zero,
            nonneg: c.0 >= zero,
        }
    }
}

/// Whether a symbol names a scalar under the naming convention of the module docs.
pub fn symbol_is_scalar(name: &str) -> bool {
    if name == "I" || name == "ones" {
        return false;
    }
    let matrix_like = name.starts_with(|c: char| c.is_uppercase()) || name.contains('[');
    if !matrix_like {
        return true;
    }
    // `C1_ab`, `C[1]_ab`: an entry of a matrix.
    match name.rsplit_once('_') {
        Some((head, suffix)) => {
            !head.is_empty() && !suffix.is_empty() && !suffix.contains(['[', ']'])
        }
        None => false,
    }
}

impl Analysis<Math> for ConstantFold {
    type Data = Facts;

    fn make(egraph: &mut MathGraph, enode: &Math, _id: Id) -> Facts {
        let f = |id: &Id| &egraph[*id].data;
        if let Some(c) = fold_constant(enode, |id| egraph[id].data.constant) {
            return Facts::of_constant(c);
        }
        let all_scalar = enode.all(|id| f(&id).scalar);
        let all_x_free = enode.all(|id| f(&id).x_free);
        let (scalar, x_free) = match enode {
            Math::Num(_) | Math::Pi => (true, true),
            Math::Symbol(s) => (symbol_is_scalar(s.as_str()), *s != Symbol::from("x")),
            Math::Trace(_) | Math::LogDet(_) => (true, all_x_free),
            // The bodies bind `x`; the value depends on the parameters only.
            Math::Expect1([_, m, v]) => (true, f(m).x_free && f(v).x_free),
            Math::Expect2([_, _, rest @ ..]) => (true, rest.iter().all(|id| f(id).x_free)),
            _ => (all_scalar, all_x_free),
        };
        let (positive, nonneg) = if scalar {
            sign_of(enode, |id| egraph[id].data.clone())
        } else {
            (false, false)
        };
        Facts {
            constant: None,
            scalar,
            x_free,
            positive,
            nonneg: nonneg || positive,
        }
    }

    fn merge(&mut self, a: &mut Facts, b: Facts) -> DidMerge {
        let before = a.clone();
        let constant = a.constant.or(b.constant);
        let merged = Facts {
            constant,
            scalar: a.scalar || b.scalar,
            x_free: a.x_free || b.x_free,
            positive: a.positive || b.positive,
            nonneg: a.nonneg || b.nonneg,
        };
        let b_changed = merged != b;
        *a = merged;
        DidMerge(*a != before, b_changed)
    }

    fn modify(egraph: &mut MathGraph, id: Id) {
        if let Some(c) = egraph[id].data.constant {
            let added = egraph.add(Math::Num(c));
            egraph.union(id, added);
            // A number is the best representative; drop the rest to keep the graph small.
            egraph[id].nodes.retain(|n| n.is_leaf());
        }
    }
}

/// Known sign `(positive, nonneg)` of a scalar node from its children's facts.
fn sign_of(enode: &Math, facts: impl Fn(Id) -> Facts) -> (bool, bool) {
    let pos = |id: &Id| facts(*id).positive;
    let nn = |id: &Id| {
        let f = facts(*id);
        f.positive || f.nonneg
    };
    let even = |id: &Id| {
        facts(*id)
            .constant
            .is_some_and(|c| c.0.is_integer() && c.0.numer() % 2 == 0)
    };
    match enode {
        Math::Pi | Math::Exp(_) | Math::NormCdf(_) => (true, true),
        Math::Add([a, b]) => ((pos(a) && nn(b)) || (nn(a) && pos(b)), nn(a) && nn(b)),
        Math::Mul([a, b]) | Math::Div([a, b]) => (pos(a) && pos(b), nn(a) && nn(b)),
        Math::Pow([a, n]) => (pos(a), nn(a) || even(n)),
        Math::Sqrt(a) => (pos(a), true),
        Math::Abs(_) | Math::Step(_) | Math::Relu(_) | Math::BvnCdf(_) | Math::Acos(_) => {
            (false, true)
        }
        Math::Erf(a) | Math::Tanh(a) | Math::Asin(a) | Math::Atan(a) | Math::Transpose(a) => {
            (pos(a), nn(a))
        }
        _ => (false, false),
    }
}

/// The exact value of `enode` when its children are constants (`None` when it does not fold:
/// not arithmetic, not exact, or out of `i64` range).
pub(crate) fn fold_constant(enode: &Math, c: impl Fn(Id) -> Option<Constant>) -> Option<Constant> {
    let r = |id: &Id| c(*id).map(|k| k.0);
    let value = match enode {
        Math::Num(k) => k.0,
        Math::Add([a, b]) => checked(r(a)?, r(b)?, Op::Add)?,
        Math::Sub([a, b]) => checked(r(a)?, negate(r(b)?)?, Op::Add)?,
        Math::Mul([a, b]) => checked(r(a)?, r(b)?, Op::Mul)?,
        Math::Div([a, b]) => checked(r(a)?, recip(r(b)?)?, Op::Mul)?,
        Math::Neg(a) => negate(r(a)?)?,
        Math::Abs(a) => {
            let v = r(a)?;
            if v < Rational64::from_integer(0) {
                negate(v)?
            } else {
                v
            }
        }
        Math::Pow([a, n]) => power(r(a)?, r(n)?)?,
        Math::Sqrt(a) => exact_sqrt(r(a)?)?,
        _ => return None,
    };
    Some(Constant(value))
}

enum Op {
    Add,
    Mul,
}

/// `p + q` or `p · q` computed in `i128` and reduced; `None` if the result leaves `i64`.
fn checked(p: Rational64, q: Rational64, op: Op) -> Option<Rational64> {
    let (pn, pd) = (i128::from(*p.numer()), i128::from(*p.denom()));
    let (qn, qd) = (i128::from(*q.numer()), i128::from(*q.denom()));
    let (n, d) = match op {
        Op::Add => (
            pn.checked_mul(qd)?.checked_add(qn.checked_mul(pd)?)?,
            pd.checked_mul(qd)?,
        ),
        Op::Mul => (pn.checked_mul(qn)?, pd.checked_mul(qd)?),
    };
    let g = gcd(n.unsigned_abs(), d.unsigned_abs()).max(1);
    let g = i128::try_from(g).ok()?;
    let (n, d) = (i64::try_from(n / g).ok()?, i64::try_from(d / g).ok()?);
    Some(Rational64::new(n, d))
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn negate(p: Rational64) -> Option<Rational64> {
    (*p.numer() != i64::MIN).then(|| -p)
}

fn recip(p: Rational64) -> Option<Rational64> {
    if *p.numer() == 0 || *p.numer() == i64::MIN {
        None
    } else {
        Some(p.recip())
    }
}

/// `base^exponent` for an integer exponent of modest size (by squaring, checked).
fn power(base: Rational64, exponent: Rational64) -> Option<Rational64> {
    if !exponent.is_integer() || exponent.numer().unsigned_abs() > 256 {
        return None;
    }
    let n = *exponent.numer();
    let mut result = Rational64::from_integer(1);
    let mut square = base;
    let mut k = n.unsigned_abs();
    while k > 0 {
        if k & 1 == 1 {
            result = checked(result, square, Op::Mul)?;
        }
        k >>= 1;
        if k > 0 {
            square = checked(square, square, Op::Mul)?;
        }
    }
    if n < 0 { recip(result) } else { Some(result) }
}

/// `√p` when numerator and denominator are perfect squares.
fn exact_sqrt(p: Rational64) -> Option<Rational64> {
    let root = |v: i64| -> Option<i64> {
        let v = u64::try_from(v).ok()?;
        let r = v.isqrt();
        (r * r == v).then(|| i64::try_from(r).ok()).flatten()
    };
    Some(Rational64::new(root(*p.numer())?, root(*p.denom())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use egg::RecExpr;

    fn facts(expr: &str) -> Facts {
        let expr: RecExpr<Math> = expr.parse().expect("test expression parses");
        let mut egraph = MathGraph::default();
        let id = egraph.add_expr(&expr);
        egraph.rebuild();
        egraph[id].data.clone()
    }

    fn value(expr: &str) -> Option<String> {
        facts(expr).constant.map(|c| c.to_string())
    }

    #[test]
    fn folds_exact_rationals() {
        assert_eq!(value("(+ 1/3 (* 2 1/6))").as_deref(), Some("2/3"));
        assert_eq!(value("(/ (neg 3) (- 1 5))").as_deref(), Some("3/4"));
        assert_eq!(value("(^ 2/3 -3)").as_deref(), Some("27/8"));
        assert_eq!(value("(sqrt 9/4)").as_deref(), Some("3/2"));
        assert_eq!(value("(abs -7/2)").as_deref(), Some("7/2"));
        assert_eq!(value("(^ 0 0)").as_deref(), Some("1"));
    }

    #[test]
    fn refuses_what_is_not_exact_or_overflows() {
        assert_eq!(value("(/ 1 0)"), None);
        assert_eq!(value("(^ 0 -1)"), None);
        assert_eq!(value("(sqrt 2)"), None);
        assert_eq!(value("(^ 2 1/2)"), None);
        assert_eq!(value("(* 9223372036854775807 2)"), None);
        assert_eq!(value("(^ 10 40)"), None);
        assert_eq!(value("(+ 9223372036854775807 1)"), None);
    }

    #[test]
    fn naming_convention_decides_shapes() {
        for scalar in ["g", "a", "x", "kappa", "C1_ab", "C[1]_ab", "K_12", "s"] {
            assert!(symbol_is_scalar(scalar), "{scalar}");
        }
        for matrix in ["C[1]", "X", "Ct[2]", "I", "ones", "K", "C_", "A[1]_[2]"] {
            assert!(!symbol_is_scalar(matrix), "{matrix}");
        }
        assert!(facts("(tr (* X (T X)))").scalar);
        assert!(!facts("(* g X)").scalar);
        assert!(facts("(E2 (erf x) (erf x) 0 0 C_aa C_bb C_ab)").scalar);
    }

    #[test]
    fn tracks_x_and_signs() {
        assert!(!facts("(* s x)").x_free);
        assert!(facts("(E1 (erf x) m v)").x_free);
        assert!(facts("(* 2 (exp s))").positive);
        assert!(facts("(+ (^ s 2) 1)").positive);
        assert!(facts("(sqrt a)").nonneg && !facts("(sqrt a)").positive);
        assert!(!facts("(- 1 (^ s 2))").nonneg);
        assert!(facts("pi").nonzero() && !facts("a").nonzero());
    }
}
