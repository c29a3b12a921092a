//! Evaluation of a compiled formula at one pair's slot values, on `f64` or dual numbers:
//! closed-form pair expectations, the bivariate normal CDF and Gauss–Hermite quadrature.

use num_dual::DualNum;

use super::error::ProgramError;
use super::ops::{Integrand, Op, Program, const_value, same_activation};
use crate::numeric::activation::Activation;
use crate::numeric::bvn::bvn_cdf;
use crate::numeric::pair::pair_expectation;
use crate::numeric::special::ErfDual;

impl Program {
    /// Evaluates with slot values `slots` (in the order of [`Program::slots`]); `same` says
    /// whether the pair is a diagonal one (α = β).
    pub fn eval(&self, slots: &[f64], same: bool) -> Result<f64, ProgramError> {
        self.eval_dual(slots, same)
    }

    /// [`Program::eval`] on dual numbers: derivatives with respect to the slots flow through
    /// the closed forms, the bivariate normal CDF and the quadratures (num-dual).
    pub fn eval_dual<D: DualNum<Primitive = f64> + Copy>(
        &self,
        slots: &[D],
        same: bool,
    ) -> Result<D, ProgramError> {
        self.eval_op(&self.root, slots, same, D::zero())
    }

    fn eval_op<D: DualNum<Primitive = f64> + Copy>(
        &self,
        op: &Op,
        s: &[D],
        same: bool,
        x: D,
    ) -> Result<D, ProgramError> {
        let e = |o: &Op| self.eval_op(o, s, same, x);
        Ok(match op {
            Op::Const(v) => D::from(*v),
            Op::Slot(i) => s.get(*i).copied().unwrap_or(D::from(f64::NAN)),
            Op::X => x,
            Op::Delta => D::from(f64::from(u8::from(same))),
            Op::Add(a, b) => e(a)? + e(b)?,
            Op::Sub(a, b) => e(a)? - e(b)?,
            Op::Mul(a, b) => e(a)? * e(b)?,
            Op::Div(a, b) => e(a)? / e(b)?,
            Op::Pow(a, b) => match const_value(b) {
                Some(n) => e(a)?.powf(n),
                None => e(a)?.powd(e(b)?),
            },
            Op::Neg(a) => -e(a)?,
            Op::Fun(f, a) => f.apply(e(a)?),
            Op::Bvn(args) => {
                let [h, k, r] = args.as_ref();
                bvn_cdf(e(h)?, e(k)?, e(r)?)
                    .map_err(|err| ProgramError::Unsupported(err.to_string()))?
            }
            Op::Pair(p) => {
                let [mu, mv, a, b, c] = &p.moments;
                self.pair(&p.f, &p.g, [e(mu)?, e(mv)?, e(a)?, e(b)?, e(c)?], s, same)?
            }
            Op::Single(p) => {
                let [m, v] = &p.moments;
                self.single(&p.f, e(m)?, e(v)?, s, same)?
            }
        })
    }

    fn pair<D: DualNum<Primitive = f64> + Copy>(
        &self,
        f: &Integrand,
        g: &Integrand,
        [mu, mv, a, b, c]: [D; 5],
        s: &[D],
        same: bool,
    ) -> Result<D, ProgramError> {
        let (ar, br, cr) = (a.re(), b.re(), c.re());
        let invalid = || ProgramError::InvalidCovariance {
            var_u: ar,
            var_v: br,
            cov: cr,
        };
        if !(ar >= 0.0 && br >= 0.0 && cr.is_finite()) || cr * cr > ar * br * (1.0 + 1e-9) + 1e-300
        {
            return Err(invalid());
        }
        // Closed forms: identical known activations with zero means, step with any means,
        // linear with any means.
        if let (Integrand::Known(fa), Integrand::Known(ga)) = (f, g) {
            match (fa, ga) {
                (Activation::Linear, Activation::Linear) => return Ok(c + mu * mv),
                (Activation::Step { theta: t1 }, Activation::Step { theta: t2 })
                    if ar > 0.0 && br > 0.0 =>
                {
                    let rho = c / (a * b).sqrt();
                    let rho = if rho.re().abs() > 1.0 {
                        D::from(rho.re().signum())
                    } else {
                        rho
                    };
                    return bvn_cdf((mu - *t1) / a.sqrt(), (mv - *t2) / b.sqrt(), rho)
                        .map_err(|err| ProgramError::Unsupported(err.to_string()));
                }
                _ if mu.re() == 0.0 && mv.re() == 0.0 && same_activation(fa, ga) => {
                    if let Ok(v) = pair_expectation(fa, a, b, c) {
                        return Ok(v);
                    }
                }
                _ => {}
            }
        }
        // Gauss–Hermite on the shifted 2×2 Gaussian.
        if ar <= 0.0 {
            let fv = self.integrand(f, mu, s, same)?;
            return self.single(g, mv, b, s, same).map(|gv| fv * gv);
        }
        let mut err = None;
        let value = self
            .quadrature
            .expect_2d(
                |u: D| {
                    self.integrand(f, u + mu, s, same).unwrap_or_else(|e| {
                        err = Some(e);
                        D::zero()
                    })
                },
                |v: D| {
                    self.integrand(g, v + mv, s, same)
                        .unwrap_or(D::from(f64::NAN))
                },
                a,
                b,
                c,
            )
            .map_err(|_| invalid())?;
        match err {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    fn single<D: DualNum<Primitive = f64> + Copy>(
        &self,
        f: &Integrand,
        m: D,
        v: D,
        s: &[D],
        same: bool,
    ) -> Result<D, ProgramError> {
        let vr = v.re();
        if vr.is_nan() || vr < 0.0 {
            return Err(ProgramError::InvalidCovariance {
                var_u: vr,
                var_v: vr,
                cov: vr,
            });
        }
        if let Integrand::Known(act) = f {
            let positive = vr > 0.0;
            match act {
                Activation::Linear => return Ok(m),
                Activation::Step { theta } if positive => {
                    return Ok(ErfDual::norm_cdf(&((m - *theta) / v.sqrt())));
                }
                Activation::Sign if positive => {
                    return Ok(ErfDual::norm_cdf(&(m / v.sqrt())) * 2.0 - 1.0);
                }
                Activation::Erf { s: k } => {
                    return Ok(ErfDual::erf(&(m * *k / (v * (2.0 * k * k) + 1.0).sqrt())));
                }
                Activation::Relu if positive => {
                    let sd = v.sqrt();
                    let z = m / sd;
                    return Ok(m * ErfDual::norm_cdf(&z) + sd * ErfDual::norm_pdf(&z));
                }
                _ => {}
            }
        }
        let mut err = None;
        let value = self
            .quadrature
            .expect_1d(
                |u: D| {
                    self.integrand(f, u + m, s, same).unwrap_or_else(|e| {
                        err = Some(e);
                        D::zero()
                    })
                },
                v,
            )
            .map_err(|e| ProgramError::Unsupported(e.to_string()))?;
        match err {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    fn integrand<D: DualNum<Primitive = f64> + Copy>(
        &self,
        f: &Integrand,
        x: D,
        s: &[D],
        same: bool,
    ) -> Result<D, ProgramError> {
        match f {
            // plain numbers: the activation's own f64 code (no derivative bookkeeping)
            Integrand::Known(act) if D::NDERIV == 0 => Ok(D::from(act.value(x.re()))),
            Integrand::Known(act) => act
                .eval_dual(&x, 0)
                .map_err(|e| ProgramError::Unsupported(e.to_string())),
            Integrand::Formula(op) => self.eval_op(op, s, same, x),
        }
    }
}
