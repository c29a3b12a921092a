//! Gradient and Hessian of the action by forward-mode automatic differentiation.
//!
//! Directional passes, as num-dual's own `Gradients for Dyn` does for dynamically sized inputs:
//! the gradient takes $n$ passes with `Dual64` ($x+\varepsilon e_i$ gives
//! $\partial_iS$), the Hessian $n(n+1)/2$ passes with `HyperDual64`
//! ($x+\varepsilon_1e_i+\varepsilon_2e_j$ gives $\partial_i\partial_jS$ in the
//! $\varepsilon_1\varepsilon_2$ part), the lower triangle mirrored. The scalar types are `Copy`
//! and stack-allocated, and no `nalgebra` types are needed in the library. The evaluator is
//! generic, so the single-pass heap-backed types (`DualDVec64`, `HyperDualDVec64`) work as well
//! (the tests cross-check both).

use num_dual::{Dual64, DualNum, HyperDual64};

use super::{ActionError, ActionEvaluator};

/// $(S,\ \nabla S,\ \nabla^2S)$, the Hessian as rows.
pub type ValueGradientHessian = (f64, Vec<f64>, Vec<Vec<f64>>);

impl ActionEvaluator {
    /// $S$ and $\partial S/\partial x_i$ at `at` (one value per variable).
    pub fn gradient(&self, at: &[f64]) -> Result<(f64, Vec<f64>), ActionError> {
        self.check_point(at)?;
        let mut value = self.action(at)?;
        let mut gradient = Vec::with_capacity(at.len());
        for i in 0..at.len() {
            let point: Vec<Dual64> = at
                .iter()
                .enumerate()
                .map(|(k, &x)| Dual64::new(x, if k == i { 1.0 } else { 0.0 }))
                .collect();
            let result = self.action(&point)?;
            value = result.re;
            gradient.push(finite(result.eps, || self.derivative_name(&[i]))?);
        }
        Ok((value, gradient))
    }

    /// $S$, its gradient and its Hessian $\partial^2S/\partial x_i\partial x_j$ at `at`.
    pub fn hessian(&self, at: &[f64]) -> Result<ValueGradientHessian, ActionError> {
        self.check_point(at)?;
        let n = at.len();
        let mut value = self.action(at)?;
        let mut gradient = vec![0.0; n];
        let mut hessian = vec![vec![0.0; n]; n];
        let upper_triangle = (0..n).flat_map(|i| (i..n).map(move |j| (i, j)));
        for (i, j) in upper_triangle {
            let point: Vec<HyperDual64> = at
                .iter()
                .enumerate()
                .map(|(k, &x)| {
                    let unit = |m: usize| if k == m { 1.0 } else { 0.0 };
                    HyperDual64::new(x, unit(i), unit(j), 0.0)
                })
                .collect();
            let result = self.action(&point)?;
            value = result.re;
            gradient[j] = finite(result.eps2, || self.derivative_name(&[j]))?;
            let second = finite(result.eps1eps2, || self.derivative_name(&[i, j]))?;
            hessian[i][j] = second;
            hessian[j][i] = second;
        }
        Ok((value, gradient, hessian))
    }

    fn check_point<D: DualNum<Primitive = f64>>(&self, at: &[D]) -> Result<(), ActionError> {
        if at.len() == self.variables().len() {
            Ok(())
        } else {
            Err(ActionError::ValueCount {
                expected: self.variables().len(),
                got: at.len(),
            })
        }
    }

    /// `∂S/∂Ct[1](0, 1)`-style name of a derivative.
    fn derivative_name(&self, indices: &[usize]) -> String {
        let parts: Vec<String> = indices
            .iter()
            .map(|&i| {
                self.variables()
                    .get(i)
                    .map_or_else(|| format!("x{i}"), |v| v.to_string())
            })
            .collect();
        format!("∂^{}S/∂{}", indices.len(), parts.join(" ∂"))
    }
}

fn finite(value: f64, name: impl FnOnce() -> String) -> Result<f64, ActionError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ActionError::NotFinite {
            what: name().into(),
            value,
        })
    }
}
