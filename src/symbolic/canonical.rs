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

use egg::{Id, Language, RecExpr};
use num_rational::Rational64;

use super::lang::Math;

mod exact;
mod normal;
mod write;

use exact::q;
use normal::{add, as_constant, atom, constant, mul, power, scale};
use write::write_sum;

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

#[cfg(test)]
mod tests;
