//! The per-pair fallback of the Mehler path ([`super::kernel_map::hermite`]): pairs whose
//! expansion bound fails (|ρ| → 1, non-smooth user functions) by nested Gauss–Hermite,
//! $$\langle\phi(u)\phi(v)\rangle=\tfrac1\pi\sum_i w_i\,\phi(\sqrt{2a}\,x_i)\sum_j w_j\,
//! \phi\big(\tfrac ca\sqrt{2a}\,x_i+\sqrt{2\sigma^2}\,z_j\big),\qquad \sigma^2=b-c^2/a,$$
//! the outer order that of the expansion's diagonal, the inner one proportional to the
//! conditional variance, and the error estimated against coarser rules.

use super::activation::Activation;
use super::program::ProgramError;
use super::quad::GaussHermite;

/// Nodes of the fallback quadrature's first try along the first coordinate: enough for
/// tanh at pre-activation variances up to about 5 (Gauss–Hermite converges like
/// $e^{-2d\sqrt{2n}}$ for a pole at distance $d$ from the real axis). Pairs whose error
/// estimate is still above the tolerance are summed again with the expansion's own nodes.
pub(crate) const MAX_FALLBACK_OUTER: usize = 640;

/// The nested Gauss–Hermite rules of the per-pair fallback, each with a coarser twin that
/// estimates its error.
///
/// $\langle\phi(u)\phi(v)\rangle$ is summed as $u=\sqrt{a}\,x$ outside and
/// $v\mid u=(c/a)\,u+\sigma z$, $\sigma^2=b-c^2/a$, inside. The inner integrand has variance
/// $\sigma^2=b(1-\rho^2)$, so near-duplicate patterns ($\rho\to1$) need few inner nodes,
/// while the outer rule needs as many as the diagonal $\langle\phi^2\rangle$ does: a low
/// outer order let the off-diagonal entry of two near-identical patterns exceed both
/// diagonals (correlation above 1).
pub(crate) struct FallbackRules {
    /// Outer rules, coarsest first: each is tried with the one before as its error twin.
    outer: Vec<std::sync::Arc<GaussHermite>>,
    inner_order: usize,
    tolerance: f64,
}

fn shared_rule(n: usize) -> Result<std::sync::Arc<GaussHermite>, ProgramError> {
    GaussHermite::shared(n)
        .map_err(|e| ProgramError::Unsupported(format!("fallback quadrature: {e}")))
}

impl FallbackRules {
    pub(crate) fn new(
        first: usize,
        finest: usize,
        inner_order: usize,
        tolerance: f64,
    ) -> Result<Self, ProgramError> {
        let mut orders = vec![(first * 3 / 4).max(8), first];
        if finest > first {
            orders.push(finest);
        }
        Ok(Self {
            outer: orders
                .into_iter()
                .map(shared_rule)
                .collect::<Result<_, _>>()?,
            inner_order: inner_order.max(8),
            tolerance,
        })
    }

    /// $\langle\phi(u)\phi(v)\rangle$ and its estimated error relative to
    /// $\sqrt{\langle\phi(u)^2\rangle\langle\phi(v)^2\rangle}$ (each rule against the one before).
    pub(crate) fn pair(
        &self,
        activation: &Activation,
        a: f64,
        b: f64,
        c: f64,
    ) -> Result<(f64, f64), ProgramError> {
        if !(a.is_finite() && b.is_finite() && c.is_finite()) || a < 0.0 || b < 0.0 {
            return Err(ProgramError::InvalidCovariance {
                var_u: a,
                var_v: b,
                cov: c,
            });
        }
        let rho2 = if a > 0.0 && b > 0.0 {
            (c * c / (a * b)).min(1.0)
        } else {
            1.0
        };
        // Inner nodes in proportion to the conditional variance b(1 − ρ²), at least 8.
        let inner =
            ((self.inner_order as f64 * (1.0 - rho2)).ceil() as usize).clamp(8, self.inner_order);
        let inner_rules = [shared_rule((inner * 3 / 4).max(6))?, shared_rule(inner)?];
        let mut previous = nested_pair(activation, a, b, c, &self.outer[0], &inner_rules[0]);
        let mut result = (previous, f64::INFINITY);
        for outer in &self.outer[1..] {
            let value = nested_pair(activation, a, b, c, outer, &inner_rules[1]);
            let norm = (nested_pair(activation, a, a, a, outer, &inner_rules[1])
                * nested_pair(activation, b, b, b, outer, &inner_rules[1]))
            .sqrt();
            if !(value.is_finite() && previous.is_finite()) {
                return Err(ProgramError::Unsupported(format!(
                    "a Gaussian expectation of `{}` is not finite at variances ({a}, {b}), \
                     covariance {c}",
                    activation.name()
                )));
            }
            let error = (value - previous).abs() / if norm > 0.0 { norm } else { 1.0 };
            result = (value, error);
            if error <= self.tolerance {
                break;
            }
            previous = value;
        }
        Ok(result)
    }
}

/// $\langle\phi(u)\phi(v)\rangle$ by `outer` along $u$ and `inner` along $v\mid u$.
fn nested_pair(
    activation: &Activation,
    a: f64,
    b: f64,
    c: f64,
    outer: &GaussHermite,
    inner: &GaussHermite,
) -> f64 {
    let root2 = std::f64::consts::SQRT_2;
    let l11 = a.sqrt();
    let l21 = if a > 0.0 { c / l11 } else { 0.0 };
    let l22 = (b - l21 * l21).max(0.0).sqrt();
    let mut sum = 0.0;
    for (&x, &w) in outer.nodes().iter().zip(outer.weights()) {
        let u = l11 * root2 * x;
        let mean_v = l21 * root2 * x;
        let conditional = if l22 == 0.0 {
            activation.value(mean_v) * std::f64::consts::PI.sqrt()
        } else {
            inner.integrate(|z| activation.value(mean_v + l22 * root2 * z))
        };
        sum += w * activation.value(u) * conditional;
    }
    sum / std::f64::consts::PI
}
