//! Outer derivatives of the element-wise functions and powers, for [`super::Differ`].

use egg::Id;

use super::{DiffError, Differ, Key, non_scalar};
use crate::symbolic::lang::Math;

/// Matrix powers up to this exponent are expanded by the product rule.
const MAX_MATRIX_POWER: i64 = 16;

impl Differ {
    /// $f'(a)$ for the unary element-wise functions `f`.
    pub(super) fn outer_derivative(&mut self, node: &Math, a: Id) -> Id {
        let one = self.num(1);
        let two = self.num(2);
        match node {
            Math::Exp(_) => self.add(Math::Exp(a)),
            Math::Ln(_) => self.div(one, a),
            Math::Sqrt(_) => {
                let root = self.add(Math::Sqrt(a));
                let den = self.mul(two, root);
                self.div(one, den)
            }
            Math::Erf(_) => {
                // 2/√π · exp(-a²)
                let pi = self.add(Math::Pi);
                let root_pi = self.add(Math::Sqrt(pi));
                let k = self.div(two, root_pi);
                let sq = self.square(a);
                let neg = self.add(Math::Neg(sq));
                let e = self.add(Math::Exp(neg));
                self.mul(k, e)
            }
            Math::Tanh(_) => {
                let t = self.add(Math::Tanh(a));
                let t2 = self.square(t);
                self.add(Math::Sub([one, t2]))
            }
            Math::Asin(_) | Math::Acos(_) => {
                let sq = self.square(a);
                let diff = self.add(Math::Sub([one, sq]));
                let root = self.add(Math::Sqrt(diff));
                let q = self.div(one, root);
                if matches!(node, Math::Acos(_)) {
                    self.add(Math::Neg(q))
                } else {
                    q
                }
            }
            Math::Atan(_) => {
                let sq = self.square(a);
                let den = self.add(Math::Add([one, sq]));
                self.div(one, den)
            }
            Math::Abs(_) => self.add(Math::Sign(a)),
            Math::Relu(_) => self.add(Math::Step(a)),
            Math::Step(_) => self.add(Math::Delta(a)),
            Math::Sign(_) => {
                let delta = self.add(Math::Delta(a));
                self.mul(two, delta)
            }
            Math::NormCdf(_) => self.normal_density(a),
            // Every other node is handled in `node_derivative`.
            _ => self.num(0),
        }
    }

    /// $\varphi(a)=e^{-a^2/2}/\sqrt{2\pi}$.
    pub(super) fn normal_density(&mut self, a: Id) -> Id {
        let two = self.num(2);
        let sq = self.square(a);
        let half = self.div(sq, two);
        let neg = self.add(Math::Neg(half));
        let e = self.add(Math::Exp(neg));
        let pi = self.add(Math::Pi);
        let two_pi = self.mul(two, pi);
        let root = self.add(Math::Sqrt(two_pi));
        self.div(e, root)
    }

    /// $d(a^n)$: $n a^{n-1} da$ for constant exponents, $a^n(dn \ln a + n\,da/a)$ otherwise.
    pub(super) fn power(&mut self, a: Id, n: Id, da: Id, dn: Id) -> Id {
        if self.is(dn, 0) {
            return self.chain(da, |s| {
                let one = s.num(1);
                let n1 = s.add(Math::Sub([n, one]));
                let p = s.add(Math::Pow([a, n1]));
                s.mul(n, p)
            });
        }
        let p = self.add(Math::Pow([a, n]));
        let ln = self.add(Math::Ln(a));
        let first = self.mul(dn, ln);
        let ratio = self.div(da, a);
        let second = self.mul(n, ratio);
        let sum = self.add(Math::Add([first, second]));
        self.mul(p, sum)
    }

    /// $d(A^k)=\sum_{i<k}A^i\,dA\,A^{k-1-i}$ for a matrix $A$ and a constant integer $1\le k\le16$.
    pub(super) fn matrix_power(
        &mut self,
        node: &Math,
        a: Id,
        n: Id,
        key: Key,
    ) -> Result<Id, DiffError> {
        let (da, dn) = (self.known(a, key), self.known(n, key));
        if self.is(da, 0) && self.is(dn, 0) {
            return Ok(da);
        }
        let k = match self.constant(n) {
            Some(k)
                if self.is(dn, 0)
                    && k.is_integer()
                    && (1..=MAX_MATRIX_POWER).contains(k.numer()) =>
            {
                *k.numer()
            }
            _ => return Err(non_scalar(node)),
        };
        let mut terms = Vec::new();
        for i in 0..k {
            let left = if i == 0 {
                da
            } else {
                let exponent = self.num(i);
                let p = self.add(Math::Pow([a, exponent]));
                self.mul(p, da)
            };
            let term = if i == k - 1 {
                left
            } else {
                let exponent = self.num(k - 1 - i);
                let p = self.add(Math::Pow([a, exponent]));
                self.mul(left, p)
            };
            terms.push(term);
        }
        Ok(self.sum(terms))
    }
}
