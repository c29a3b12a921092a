//! The layer map $C'=s\,K_\phi(C)+o$ over all pattern pairs for an activation without a
//! closed form, by the Mehler expansion of [`crate::numeric::hermite_expansion`]:
//! $$K_\phi(C)_{\alpha\beta}=\sum_{k\le K}\rho_{\alpha\beta}^k\,\hat a_k(C_{\alpha\alpha})\,
//! \hat a_k(C_{\beta\beta}),\qquad \rho_{\alpha\beta}=C_{\alpha\beta}/\sqrt{C_{\alpha\alpha}C_{\beta\beta}},$$
//! a Horner sum per pair, vectorised over $\beta$ with the coefficients laid out order-major.
//! Diagonal entries are $\langle\phi^2\rangle$ by 1-D quadrature. $K$ is chosen at the largest
//! $|\rho|$ of the kernel so that the bound of the expansion is below the tolerance for every
//! pair; where no order achieves it (a non-smooth user function, $|\rho|\to1$) exactly the
//! pairs whose own bound fails are computed by 2-D Gauss–Hermite quadrature instead, and
//! counted in the [`ExpansionReport`]. Memory: the output plus $O(K\,P)$ coefficients.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::numeric::activation::Activation;
use crate::numeric::hermite_expansion::{DEFAULT_TOLERANCE, Expansion, ExpansionError, Parity};
use crate::numeric::pair_fallback::{FallbackRules, MAX_FALLBACK_OUTER};
use crate::numeric::program::error::ProgramError;

/// Pairs per block of the vectorised Horner loop (the block's coefficients stay in cache).
const BLOCK: usize = 64;

/// Accuracy settings of [`apply_into`].
#[derive(Clone, Debug, PartialEq)]
pub struct HermiteSettings {
    /// Bound on the error of $K_\phi$ relative to $\sqrt{\langle\phi^2\rangle_\alpha\langle\phi^2\rangle_\beta}$.
    pub tolerance: f64,
    /// Gauss–Hermite order of the per-pair fallback quadrature.
    pub fallback_order: usize,
}

impl Default for HermiteSettings {
    fn default() -> Self {
        Self {
            tolerance: DEFAULT_TOLERANCE,
            fallback_order: 160,
        }
    }
}

/// What [`apply_into`] did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ExpansionReport {
    /// Truncation order $K$.
    pub terms: usize,
    /// Which orders were summed.
    pub parity: Parity,
    /// Gauss–Hermite order of the coefficients.
    pub nodes: usize,
    /// Largest relative error bound over the pairs computed by the expansion.
    pub worst_bound: f64,
    /// Off-diagonal pairs computed by the fallback quadrature.
    pub fallback_pairs: usize,
    /// Diagonal entries computed by the fallback quadrature.
    pub fallback_diagonal: usize,
    /// Gauss–Hermite order of the fallback quadrature.
    pub fallback_order: usize,
}

/// `scale · K_φ(c) + offset` into `out` for the pairs selected by `needed` (others are set to
/// 0); the result is symmetric.
pub fn apply_into(
    activation: &Activation,
    (scale, offset): (f64, f64),
    c: ArrayView2<f64>,
    needed: &(dyn Fn(usize, usize) -> bool + Sync),
    out: &mut Array2<f64>,
    settings: &HermiteSettings,
) -> Result<ExpansionReport, ProgramError> {
    let p = c.nrows();
    if c.dim() != (p, p) || out.dim() != (p, p) {
        return Err(ProgramError::Unsupported(format!(
            "a kernel of shape {:?} into a buffer of shape {:?}",
            c.dim(),
            out.dim()
        )));
    }
    let diag: Vec<f64> = (0..p).map(|a| c[[a, a]]).collect();
    if let Some(&bad) = diag.iter().find(|d| !(d.is_finite() && **d >= 0.0)) {
        return Err(ProgramError::InvalidCovariance {
            var_u: bad,
            var_v: bad,
            cov: bad,
        });
    }
    let largest = diag.iter().copied().fold(0.0, f64::max);
    if let Some(singularity) = activation.square_integrable_pole(largest.sqrt()) {
        return Err(ProgramError::DivergentExpectation {
            function: activation.name(),
            singularity,
        });
    }
    let inverse_root: Vec<f64> = diag
        .iter()
        .map(|d| if *d > 0.0 { 1.0 / d.sqrt() } else { 0.0 })
        .collect();
    let rho_max = largest_correlation(c, &diag, &inverse_root, needed)?;
    let expansion =
        Expansion::new(activation, &diag, rho_max, settings.tolerance).map_err(expansion_error)?;
    let global = expansion.meets_tolerance();
    // Order-major coefficients per pattern: row t, column β.
    let kept = expansion.kept();
    let mut by_order = vec![0.0; kept * p];
    for b in 0..p {
        for (t, v) in expansion.coefficients(b).iter().enumerate() {
            by_order[t * p + b] = *v;
        }
    }
    let slice = out
        .as_slice_mut()
        .ok_or_else(|| ProgramError::Unsupported("a non-contiguous kernel".into()))?;
    let rows: Vec<(Vec<(usize, usize)>, f64)> = slice
        .par_chunks_mut(p)
        .enumerate()
        .map(|(a, row)| {
            crate::numeric::vector_math::clear_upper_vector_state();
            let mut fallback = Vec::new();
            let mut worst: f64 = 0.0;
            row[a] = if needed(a, a) {
                if expansion.mean_square_error(a) > settings.tolerance {
                    fallback.push((a, a));
                }
                scale * expansion.mean_square(a) + offset
            } else {
                0.0
            };
            let own = expansion.coefficients(a);
            let mut rho = [0.0; BLOCK];
            let mut acc = [0.0; BLOCK];
            for start in (a + 1..p).step_by(BLOCK) {
                let end = (start + BLOCK).min(p);
                let width = end - start;
                for (r, b) in rho.iter_mut().zip(start..end) {
                    *r = (c[[a, b]] * inverse_root[a] * inverse_root[b]).clamp(-1.0, 1.0);
                }
                let mut x = [0.0; BLOCK];
                for (xi, r) in x.iter_mut().zip(&rho).take(width) {
                    *xi = expansion.horner_variable(*r);
                }
                acc[..width].fill(0.0);
                for t in (0..kept).rev() {
                    let coefficient = own[t];
                    let others = &by_order[t * p + start..t * p + end];
                    for ((s, xi), o) in acc.iter_mut().zip(&x).zip(others) {
                        *s = *s * xi + coefficient * o;
                    }
                }
                for (i, b) in (start..end).enumerate() {
                    if !needed(a, b) {
                        row[b] = 0.0;
                        continue;
                    }
                    if !global {
                        let bound = expansion.relative_bound(a, b, rho[i]);
                        if bound > settings.tolerance {
                            fallback.push((a, b));
                            continue;
                        }
                        worst = worst.max(bound);
                    }
                    row[b] = scale * acc[i] * expansion.horner_factor(rho[i]) + offset;
                }
            }
            (fallback, worst)
        })
        .collect();
    let fallback: Vec<(usize, usize)> = rows.iter().flat_map(|(f, _)| f.iter().copied()).collect();
    let worst_bound = if global {
        expansion.worst_relative_bound()
    } else {
        rows.iter().map(|(_, w)| *w).fold(0.0, f64::max)
    };
    let fallback_diagonal = fallback.iter().filter(|(a, b)| a == b).count();
    let mut worst_bound = worst_bound;
    if !fallback.is_empty() {
        let first = settings
            .fallback_order
            .max(MAX_FALLBACK_OUTER.min(expansion.nodes()));
        let finest = first.max(expansion.nodes());
        let rules = FallbackRules::new(first, finest, settings.fallback_order, settings.tolerance)?;
        let values: Vec<(f64, f64)> = fallback
            .par_iter()
            .map(|&(a, b)| rules.pair(activation, diag[a], diag[b], c[[a, b]]))
            .collect::<Result<_, _>>()?;
        for (&(a, b), (k, error)) in fallback.iter().zip(values) {
            out[[a, b]] = scale * k + offset;
            worst_bound = worst_bound.max(error);
        }
    }
    super::tiles::mirror_upper(out);
    Ok(ExpansionReport {
        terms: expansion.terms(),
        parity: expansion.parity(),
        nodes: expansion.nodes(),
        worst_bound,
        fallback_pairs: fallback.len() - fallback_diagonal,
        fallback_diagonal,
        fallback_order: settings.fallback_order,
    })
}

/// The largest $|\rho|$ over the needed off-diagonal pairs; an invalid covariance is an error.
fn largest_correlation(
    c: ArrayView2<f64>,
    diag: &[f64],
    inverse_root: &[f64],
    needed: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<f64, ProgramError> {
    let p = diag.len();
    (0..p)
        .into_par_iter()
        .map(|a| {
            let mut worst: f64 = 0.0;
            for b in a + 1..p {
                if !needed(a, b) {
                    continue;
                }
                let cab = c[[a, b]];
                let limit = (diag[a] * diag[b]).sqrt();
                if cab.is_nan() || cab.abs() > limit * (1.0 + 1e-9) + 1e-300 {
                    return Err(ProgramError::InvalidCovariance {
                        var_u: diag[a],
                        var_v: diag[b],
                        cov: cab,
                    });
                }
                worst = worst.max((cab * inverse_root[a] * inverse_root[b]).abs().min(1.0));
            }
            Ok(worst)
        })
        .try_reduce(|| 0.0, |x, y| Ok(x.max(y)))
}

fn expansion_error(e: ExpansionError) -> ProgramError {
    match e {
        ExpansionError::InvalidVariance { variance, .. } => ProgramError::InvalidCovariance {
            var_u: variance,
            var_v: variance,
            cov: variance,
        },
        other => ProgramError::Unsupported(format!("the Hermite expansion: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::activation::CustomActivation;
    use crate::numeric::pair::pair_expectation;
    use crate::numeric::pair_quadrature::pair_expectation_or_quadrature;
    use crate::numeric::quad::GaussHermite;
    use ndarray::array;

    /// A kernel with very different diagonals, a duplicate pattern (ρ = 1), a negated one
    /// (ρ = −1) and a near-duplicate.
    fn kernel() -> Array2<f64> {
        let x = array![
            [1.0, 0.2, -0.4],
            [1.0, 0.2, -0.4],
            [-1.0, -0.2, 0.4],
            [0.1, 0.9, 0.3],
            [0.1, 0.9, 0.30001],
            [0.05, -0.1, 0.15],
            [0.8, -0.7, 0.6],
        ];
        x.dot(&x.t()) + 0.05 * Array2::<f64>::eye(7)
    }

    fn run(act: &Activation, c: &Array2<f64>) -> (Array2<f64>, ExpansionReport) {
        let mut out = Array2::zeros(c.dim());
        let report = apply_into(
            act,
            (1.5, 0.1),
            c.view(),
            &|_, _| true,
            &mut out,
            &Default::default(),
        )
        .unwrap();
        (out, report)
    }

    #[test]
    fn tanh_layer_matches_high_order_pair_quadrature() {
        let c = kernel();
        let (out, report) = run(&Activation::Tanh, &c);
        assert_eq!((report.fallback_pairs, report.fallback_diagonal), (0, 0));
        assert!(report.worst_bound <= 1e-12);
        let rule = GaussHermite::new(240).unwrap();
        for a in 0..7 {
            for b in 0..7 {
                let k: f64 = pair_expectation_or_quadrature(
                    &Activation::Tanh,
                    c[[a, a]],
                    c[[b, b]],
                    c[[a, b]].clamp(
                        -(c[[a, a]] * c[[b, b]]).sqrt(),
                        (c[[a, a]] * c[[b, b]]).sqrt(),
                    ),
                    &rule,
                )
                .unwrap();
                let want = 1.5 * k + 0.1;
                assert!(
                    (out[[a, b]] - want).abs() <= 1e-12,
                    "({a},{b}): {} vs {want}",
                    out[[a, b]]
                );
            }
        }
    }

    /// Two near-identical patterns at a large variance: the expansion cannot reach ρ → 1,
    /// the pair falls back to quadrature, and its value must stay between the diagonals'
    /// geometric mean (it exceeded both at order 160) with an error bound that says how well
    /// it is known (it said 0).
    #[test]
    fn near_duplicates_stay_a_valid_kernel_with_an_honest_bound() {
        let x = array![[1.0, 2.0, 3.0], [1.0, 2.0, 3.000_000_1]];
        let c = x.dot(&x.t()) / 3.0 + 0.1;
        let (out, report) = run(&Activation::Tanh, &c);
        assert!(report.fallback_pairs >= 1, "{report:?}");
        let limit = (out[[0, 0]] * out[[1, 1]]).sqrt();
        assert!(out[[0, 1]] <= limit + 1e-15, "{} > {limit}", out[[0, 1]]);
        assert!(
            report.worst_bound > 0.0 && report.worst_bound < 1e-10,
            "{report:?}"
        );
        // against the closed form of the degenerate limit: both patterns at the mean point
        let rule = GaussHermite::new(1200).unwrap();
        let (a, b, cab) = (c[[0, 0]], c[[1, 1]], c[[0, 1]]);
        let k: f64 = crate::numeric::pair_quadrature::diagonal_expectation_or_quadrature(
            &Activation::Tanh,
            (a + b) / 2.0,
            &rule,
        )
        .unwrap();
        assert!((out[[0, 1]] - (1.5 * k + 0.1)).abs() < 1e-8 * (1.0 + cab.abs()));
    }

    #[test]
    fn a_pole_is_an_error_not_a_kernel() {
        let recip = Activation::Custom(CustomActivation::new("recip", |x: f64| {
            [1.0 / x, -1.0 / (x * x), 2.0 / (x * x * x)]
        }));
        let c = array![[1.0, 0.5], [0.5, 2.0]];
        let mut out = Array2::zeros((2, 2));
        let error = apply_into(
            &recip,
            (1.0, 0.0),
            c.view(),
            &|_, _| true,
            &mut out,
            &Default::default(),
        );
        assert!(
            matches!(
                error,
                Err(ProgramError::DivergentExpectation {
                    singularity: crate::numeric::singularity::Singularity::Pole { at, .. },
                    ..
                }) if at.abs() < 1e-9
            ),
            "{error:?}"
        );
    }

    #[test]
    fn theory_reference_t1_first_tanh_layer() {
        // THEORY.md T1, tanh row (Gauss–Hermite n = 120, printed to 8 digits).
        let c = array![[1.0, 0.6], [0.6, 1.5]];
        let (out, _) = run(&Activation::Tanh, &c);
        for (got, want) in [
            (out[[0, 0]], 0.69144174),
            (out[[0, 1]], 0.39485741),
            (out[[1, 1]], 0.80243232),
        ] {
            assert!((got - want).abs() <= 5e-9, "{got} vs {want}");
        }
    }

    #[test]
    fn a_kinked_custom_function_falls_back_to_quadrature_for_every_pair() {
        let relu = Activation::Custom(CustomActivation::new("relu", |x: f64| {
            [x.max(0.0), f64::from(u8::from(x > 0.0)), 0.0]
        }));
        let c = kernel().slice(ndarray::s![3.., 3..]).to_owned();
        let (out, report) = run(&relu, &c);
        assert_eq!(report.fallback_pairs, 6, "{report:?}");
        for a in 0..4 {
            for b in 0..4 {
                let exact: f64 =
                    pair_expectation(&Activation::Relu, c[[a, a]], c[[b, b]], c[[a, b]]).unwrap();
                // Gauss–Hermite converges only algebraically across the kink.
                let want = 1.5 * exact + 0.1;
                assert!(
                    (out[[a, b]] - want).abs() < 1e-3,
                    "({a},{b}) {} vs {want} {report:?}",
                    out[[a, b]]
                );
            }
        }
    }

    #[test]
    fn unneeded_pairs_are_zero_and_bad_kernels_are_errors() {
        let c = kernel();
        let mut out = Array2::from_elem(c.dim(), 7.0);
        apply_into(
            &Activation::Tanh,
            (1.0, 0.0),
            c.view(),
            &|a, b| a == b,
            &mut out,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(out[[0, 1]], 0.0);
        assert!(out[[1, 1]] > 0.0);
        let bad = array![[1.0, 1.5], [1.5, 1.0]];
        let mut out = Array2::zeros((2, 2));
        let settings = HermiteSettings::default();
        let result = apply_into(
            &Activation::Tanh,
            (1.0, 0.0),
            bad.view(),
            &|_, _| true,
            &mut out,
            &settings,
        );
        assert!(matches!(
            result,
            Err(ProgramError::InvalidCovariance { cov: 1.5, .. })
        ));
        let negative = array![[-1.0, 0.0], [0.0, 1.0]];
        let result = apply_into(
            &Activation::Tanh,
            (1.0, 0.0),
            negative.view(),
            &|_, _| true,
            &mut out,
            &settings,
        );
        assert!(matches!(
            result,
            Err(ProgramError::InvalidCovariance { .. })
        ));
    }
}
