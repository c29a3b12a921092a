//! Derivatives of `E1`, `E2` (Price's theorem) and `Phi2` nodes, for [`super::Differ`].

use egg::{Id, Symbol};

use super::{DiffError, Differ, Key};
use crate::symbolic::lang::{Constant, Math};

impl Differ {
    /// $d/dx$ of an expectation body.
    fn body(&mut self, f: Id) -> Result<Id, DiffError> {
        self.derivative(f, Key::new("x", true))
    }

    /// `½ · e · dp`.
    fn half(&mut self, e: Id, dp: Id) -> Id {
        let half = self.raw(Math::Num(Constant(num_rational::Rational64::new(1, 2))));
        let h = self.mul(half, e);
        self.mul(h, dp)
    }

    pub(super) fn sum(&mut self, terms: Vec<Id>) -> Id {
        let zero = self.num(0);
        terms
            .into_iter()
            .fold(zero, |acc, t| self.add(Math::Add([acc, t])))
    }

    /// The derivative of an `E1` or `E2` node under `key` (module docs of [`super`]).
    pub(super) fn expectation(&mut self, node: &Math, key: Key) -> Result<Id, DiffError> {
        let x = Symbol::from("x");
        let mut terms = Vec::new();
        match *node {
            Math::Expect1([f, m, v]) => {
                let (dm, dv) = (self.known(m, key), self.known(v, key));
                if !self.is(dm, 0) {
                    let f1 = self.body(f)?;
                    let e = self.add(Math::Expect1([f1, m, v]));
                    terms.push(self.mul(e, dm));
                }
                if !self.is(dv, 0) {
                    let f1 = self.body(f)?;
                    let f2 = self.body(f1)?;
                    let e = self.add(Math::Expect1([f2, m, v]));
                    terms.push(self.half(e, dv));
                }
                if key.var != x {
                    let df = self.derivative(
                        f,
                        Key {
                            in_body: true,
                            ..key
                        },
                    )?;
                    terms.push(self.add(Math::Expect1([df, m, v])));
                }
            }
            Math::Expect2([f, g, mu, mv, a, b, c]) => {
                let e2 = |s: &mut Self, f: Id, g: Id| s.add(Math::Expect2([f, g, mu, mv, a, b, c]));
                let d: Vec<Id> = [mu, mv, a, b, c]
                    .iter()
                    .map(|p| self.known(*p, key))
                    .collect();
                let [dmu, dmv, da, db, dc] = [d[0], d[1], d[2], d[3], d[4]];
                if !self.is(dmu, 0) {
                    let f1 = self.body(f)?;
                    let e = e2(self, f1, g);
                    terms.push(self.mul(e, dmu));
                }
                if !self.is(dmv, 0) {
                    let g1 = self.body(g)?;
                    let e = e2(self, f, g1);
                    terms.push(self.mul(e, dmv));
                }
                if !self.is(da, 0) {
                    let f1 = self.body(f)?;
                    let f2 = self.body(f1)?;
                    let e = e2(self, f2, g);
                    terms.push(self.half(e, da));
                }
                if !self.is(db, 0) {
                    let g1 = self.body(g)?;
                    let g2 = self.body(g1)?;
                    let e = e2(self, f, g2);
                    terms.push(self.half(e, db));
                }
                if !self.is(dc, 0) {
                    let (f1, g1) = (self.body(f)?, self.body(g)?);
                    let e = e2(self, f1, g1);
                    terms.push(self.mul(e, dc));
                }
                if key.var != x {
                    let inner = Key {
                        in_body: true,
                        ..key
                    };
                    let (df, dg) = (self.derivative(f, inner)?, self.derivative(g, inner)?);
                    terms.push(e2(self, df, g));
                    terms.push(e2(self, f, dg));
                }
            }
            _ => {}
        }
        Ok(self.sum(terms))
    }

    /// $d\Phi_2(h,k;r)$: $\varphi(h)\Phi\big(\frac{k-rh}{\sqrt{1-r^2}}\big)dh$ + the same with
    /// $h\leftrightarrow k$ + $\varphi_2(h,k;r)\,dr$ (Plackett).
    pub(super) fn bvn(&mut self, h: Id, k: Id, r: Id, key: Key) -> Id {
        let (dh, dk, dr) = (self.known(h, key), self.known(k, key), self.known(r, key));
        let one = self.num(1);
        let r2 = self.square(r);
        let one_minus = self.add(Math::Sub([one, r2]));
        let root = self.add(Math::Sqrt(one_minus));
        let mut terms = Vec::new();
        for (p, q, dp) in [(h, k, dh), (k, h, dk)] {
            let t = self.chain(dp, |s| {
                let rp = s.mul(r, p);
                let num = s.add(Math::Sub([q, rp]));
                let arg = s.div(num, root);
                let cdf = s.add(Math::NormCdf(arg));
                let pdf = s.normal_density(p);
                s.mul(pdf, cdf)
            });
            terms.push(t);
        }
        let t = self.chain(dr, |s| {
            let (h2, k2) = (s.square(h), s.square(k));
            let hk = s.mul(h, k);
            let two = s.num(2);
            let rhk = s.mul(r, hk);
            let cross = s.mul(two, rhk);
            let sq = s.add(Math::Add([h2, k2]));
            let quad = s.add(Math::Sub([sq, cross]));
            let den = s.mul(two, one_minus);
            let ratio = s.div(quad, den);
            let neg = s.add(Math::Neg(ratio));
            let e = s.add(Math::Exp(neg));
            let pi = s.add(Math::Pi);
            let two_pi = s.mul(two, pi);
            let norm = s.mul(two_pi, root);
            s.div(e, norm)
        });
        terms.push(t);
        self.sum(terms)
    }
}
