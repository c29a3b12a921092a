//! The linearised fluctuation system at scale: the tilt's linear terms, the linear fields
//! and the Krylov solve around the NNGP point.

use ndarray::{Array1, ArrayView2};

use super::expansion::Expansion;
use super::*;
use crate::finite_width::FiniteWidthError;
use crate::finite_width::tilted::Estimator;
use crate::solve::fluctuation::Order;

impl Problem<'_> {
    /// The relative change the linearised system is iterated to on `samples` normals: the
    /// one asked for, but no finer than the differences resolve ([`LINEAR_TOLERANCE`]) nor
    /// than a thousandth of the Monte Carlo error ~1/√M where a population is sampled (the
    /// iterations beyond it would move the solution by less than 10⁻³ standard errors).
    pub(super) fn linear_tolerance(&self, settings: &MapSettings, samples: usize) -> f64 {
        let tolerance = settings.tolerance.max(LINEAR_TOLERANCE);
        if self.estimators.contains(&Estimator::ImportanceSampling) && samples > 0 {
            tolerance.max(1e-3 / (samples as f64).sqrt())
        } else {
            tolerance
        }
    }

    /// C* + DF(0)·C̃: the fields of the linearised system at the conjugates `conjugates`, DF
    /// the forward pass's derivative in the conjugates at the NNGP point `nngp`: from the
    /// expansion at the NNGP point where it applies, otherwise by a central difference on
    /// normals `z` (the sampled map's error at C* cancels in it).
    pub(super) fn linear_fields(
        &self,
        nngp: &State,
        conjugates: &Entries,
        z: ArrayView2<'_, f64>,
        by_differences: bool,
    ) -> Result<Entries, FiniteWidthError> {
        if !by_differences && let Some(expansion) = Expansion::new(self, nngp, z)? {
            let shift = expansion.field_shift(conjugates)?;
            return Ok(nngp
                .fields
                .iter()
                .map(|(k, c)| (k.clone(), c + &shift[k]))
                .collect());
        }
        let size = conjugates
            .values()
            .flat_map(|c| c.iter())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        if size == 0.0 {
            return Ok(nngp.fields.clone());
        }
        let eps = DIFFERENCE_STEP * size.max(1.0) / size;
        let scaled = |f: f64| State {
            fields: nngp.fields.clone(),
            conjugates: conjugates.iter().map(|(k, v)| (k.clone(), v * f)).collect(),
        };
        let (plus, minus) = rayon::join(
            || self.forward(&scaled(eps), z).map(|f| f.0),
            || self.forward(&scaled(-eps), z).map(|f| f.0),
        );
        let (plus, minus) = (plus?, minus?);
        Ok(nngp
            .fields
            .iter()
            .map(|(k, c)| (k.clone(), c + &((&plus[k] - &minus[k]) / (2.0 * eps))))
            .collect())
    }

    /// The linearised system (THEORY.md §4.4) on normals `z`, from the conjugates of
    /// `from`: C̃ = g(0) + Dg(0)·C̃ for the sweep map g(C̃) = B(F(C̃), C̃) at the NNGP point
    /// `nngp`, Dg·v a central difference on the same normals, iterated to its fixed point
    /// (Anderson: a Krylov method for this linear map); then the fields C* + DF(0)·C̃.
    pub(super) fn solve_linear(
        &self,
        nngp: &State,
        from: &State,
        z: ArrayView2<'_, f64>,
        settings: &MapSettings,
        order: Order,
    ) -> Result<Solved, FiniteWidthError> {
        // to leading order the rest of the action (its (C, C) blocks: the data term's H, a
        // measure term) is read at C*
        let rest_at = match order {
            Order::Full => None,
            Order::Leading => Some(nngp),
        };
        let floor = MapSettings {
            tolerance: self.linear_tolerance(settings, z.nrows()),
            ..settings.clone()
        };
        let expansion = match settings.linear_by_differences {
            true => None,
            false => Expansion::new(self, nngp, z)?,
        };
        if let Some(expansion) = expansion {
            let g0 = expansion.sweep_at_nngp()?;
            let linear = |v: &Array1<f64>| -> Result<(Array1<f64>, ()), FiniteWidthError> {
                let conjugates = self.unflatten(v, &nngp.conjugates);
                let shift = expansion.field_shift(&conjugates)?;
                let next = expansion.next_conjugates(&shift, &conjugates, &g0, order)?;
                Ok((self.flatten(&next), ()))
            };
            let (x, sweeps, residual, ()) = fixed_point(
                self.flatten(&from.conjugates),
                &linear,
                &|a, b| relative_change(a.view(), b.view()),
                &floor,
                Iteration::Linear,
            )?;
            let conjugates = self.unflatten(&x, &nngp.conjugates);
            let shift = expansion.field_shift(&conjugates)?;
            let fields = nngp
                .fields
                .iter()
                .map(|(k, c)| (k.clone(), c + &shift[k]))
                .collect();
            return Ok((
                State { fields, conjugates },
                sweeps,
                residual,
                vec![None; self.network.populations.len()],
            ));
        }
        // g(0): the backward equations at the NNGP point itself (the forward pass at C̃ = 0
        // returns C*, so it need not run)
        let g0 = self.flatten(&self.backward(nngp, rest_at, z)?);
        let correction = self.correction(nngp, z)?;
        let sweep = |x: &Array1<f64>| -> Result<Array1<f64>, FiniteWidthError> {
            let at = State {
                fields: nngp.fields.clone(),
                conjugates: self.unflatten(x, &nngp.conjugates),
            };
            let (fields, _) = self.corrected_forward(&at, z, &correction)?;
            let state = State {
                fields,
                conjugates: at.conjugates,
            };
            Ok(self.flatten(&self.backward(&state, rest_at, z)?))
        };
        let scale = g0.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let linear = |v: &Array1<f64>| -> Result<(Array1<f64>, ()), FiniteWidthError> {
            let size = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
            if size == 0.0 {
                return Ok((g0.clone(), ()));
            }
            let eps = DIFFERENCE_STEP * scale / size;
            let (plus, minus) = rayon::join(|| sweep(&(v * eps)), || sweep(&(v * -eps)));
            Ok((&g0 + &((&plus? - &minus?) / (2.0 * eps)), ()))
        };
        let (x, sweeps, residual, ()) = fixed_point(
            self.flatten(&from.conjugates),
            &linear,
            &|a, b| relative_change(a.view(), b.view()),
            &floor,
            Iteration::Linear,
        )?;
        let conjugates = self.unflatten(&x, &nngp.conjugates);
        let fields = self.linear_fields(nngp, &conjugates, z, true)?;
        Ok((
            State { fields, conjugates },
            sweeps,
            residual,
            vec![None; self.network.populations.len()],
        ))
    }
}
