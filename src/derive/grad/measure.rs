//! Gradients of the measure terms: ln det and the Wishart measure of a kernel, alone and for
//! a family of kernels read together.

use crate::check::ir::{Covariance, Expr, ExprKind, FieldId, Shape};

use crate::derive::DeriveError;
use crate::derive::build::{add, expectation, inverse, mul, node, number, sub, transpose, zero};

use super::*;

impl Gradient<'_> {
    /// The part of ∇E[f(h)] that comes from the Gaussian measure 𝒩(m, K) (Stein's lemma):
    /// ∂E/∂K = ½ K⁻¹ E[f (h − m)(h − m)ᵀ] K⁻¹ − ½ K⁻¹ E[f], ∂E/∂m = K⁻¹ E[f (h − m)],
    /// chained through K(X) and m(X).
    pub(super) fn measure_gradient(
        &self,
        var: &str,
        f: &Expr,
        mean: &Expr,
        cov: &Covariance,
    ) -> Result<Expr, DeriveError> {
        let k = match cov {
            Covariance::Matrix(k) => (**k).clone(),
            Covariance::Family(field) => return self.family_measure_gradient(var, f, mean, *field),
        };
        let (k_depends, m_depends) = (self.depends(&k), self.depends(mean));
        if !k_depends && !m_depends {
            return Ok(zero(self.shape));
        }
        let h = node(
            ExprKind::RandomVar {
                name: var.to_string(),
                time: None,
            },
            Shape::VECTOR,
        );
        let centred = sub(h, mean.clone());
        let k_inv = inverse(k.clone());
        let e = |body: Expr| expectation(var, body, mean.clone(), cov.clone());
        let mut total = zero(self.shape);
        if k_depends {
            let second = e(mul(
                f.clone(),
                mul(centred.clone(), transpose(centred.clone())),
            ));
            let g = mul(
                number(0.5),
                sub(
                    mul(k_inv.clone(), mul(second, k_inv.clone())),
                    mul(e(f.clone()), k_inv.clone()),
                ),
            );
            total = add(total, self.grad_trace(Some(g), &k)?);
        }
        if m_depends {
            let gm = mul(k_inv, e(mul(f.clone(), centred)));
            total = add(total, self.grad_trace(Some(transpose(gm)), mean)?);
        }
        Ok(total)
    }

    /// The part of ∇E[f(h)] from the measure of a time family `h ~ N(m, C)` (Stein's lemma
    /// over the joint covariance Σ of the times U that f reads): with ĥ = Σ⁻¹(h − m),
    /// ∂E[f]/∂Σ = ½ (E[f ĥ ĥᵀ] − E[f] Σ⁻¹) and Σ⁻¹ = E[ĥ ĥᵀ], so the block `C[a, b]` gets
    /// ½ (E[f ĥ[a] ĥ[b]ᵀ] − E[f] E[ĥ[a] ĥ[b]ᵀ]), zero unless a, b ∈ U. This is symmetric over
    /// the family (the (b, a) block is its transpose), which [`gradient`] relies on.
    pub(super) fn family_measure_gradient(
        &self,
        var: &str,
        f: &Expr,
        mean: &Expr,
        family: FieldId,
    ) -> Result<Expr, DeriveError> {
        if self.depends(mean) {
            return Err(DeriveError::Unsupported(
                "the mean of an expectation over a time family depends on the variable".into(),
            ));
        }
        let (a, b) = match self.var {
            Variable::Field(v, idx) if *v == family && self.family != FamilyMeasure::Exclude => {
                match idx.as_slice() {
                    [a, b] => (*a, *b),
                    _ => return Ok(zero(self.shape)),
                }
            }
            _ => return Ok(zero(self.shape)),
        };
        if mentions_whitened(f) {
            return Err(DeriveError::Unsupported(
                "second derivatives of an expectation over a time family with respect to its kernel blocks are not derived symbolically".into(),
            ));
        }
        let mut times = std::collections::BTreeSet::new();
        random_times(f, var, &mut times)?;
        if !times.contains(&a) || !times.contains(&b) {
            return Ok(zero(self.shape));
        }
        let over: Vec<i64> = times.into_iter().collect();
        let whitened = |time: i64| {
            node(
                ExprKind::Whitened {
                    name: var.to_string(),
                    time,
                    over: over.clone(),
                },
                Shape::VECTOR,
            )
        };
        let outer = mul(whitened(a), transpose(whitened(b)));
        let e = |body: Expr| expectation(var, body, mean.clone(), Covariance::Family(family));
        Ok(mul(
            number(0.5),
            sub(
                e(mul(f.clone(), outer.clone())),
                mul(e(f.clone()), e(outer)),
            ),
        ))
    }
}
