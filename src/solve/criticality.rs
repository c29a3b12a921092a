//! # Order and chaos: fixed points, χ₁ and depth scales of a theory's step map
//!
//! For the step map F of [`super::step_map`] (one layer, or one time step):
//! - the **length fixed point** q* = F(q*) of a single pattern (every order parameter of the
//!   step: C_αα, or m_α and Q_αα), found by iterating F and polished by Newton's method with
//!   the Jacobian from num-dual; `diagonal_slope` is the spectral radius of that Jacobian;
//! - the **correlation map** c ↦ c'(c) of two patterns at the fixed length, C_αα = C_ββ = q*,
//!   C_αβ = c, i.e. ρ ↦ ρ' with ρ = c/q*. ρ = 1 (identical patterns) is a fixed point;
//!   **χ₁ = dc'/dc at ρ → 1⁻** (for φφ-kernels χ₁ = g⟨φ'(h)²⟩ by Price's theorem), computed
//!   as the one-sided limit of the exact slope at ρ = 1 − ε, ε = 10⁻²·4⁻ᵏ, extrapolated by
//!   Aitken's Δ² (the slope approaches its limit like ε for smooth φ and like √ε for ReLU).
//!   For sign and step units the slope grows like ε^(−1/2): χ₁ is reported as infinite with
//!   that exponent and the law 1 − ρ' ≈ A (1 − ρ)^{1/2} it implies (A = 2√2/π for sign,
//!   THEORY.md §7.1), never as a NaN;
//! - the other fixed points ρ* of the correlation map (sign changes of c' − c on a grid,
//!   refined by bisection), each with its slope and stability;
//! - the **phase** (ordered χ₁ < 1, critical, chaotic χ₁ > 1) and the **depth scale**
//!   ξ = −1/ln χ at the stable correlation fixed point: χ₁ in the ordered phase, the slope at
//!   ρ* in the chaotic one (Schoenholz et al. 2017), ∞ at criticality.
//!
//! Checked against THEORY.md T3 (q*, χ₁ of the unit-slope erf to 1e-8) and §7.1 in the tests.
//!
//! One concept, one file: the fixed points, slopes and depth scales of one step map.

use num_dual::Dual64;

use crate::check::ir::FieldKind;

use super::step_map::{StepMap, StepMapError};

/// Fixed-point iterations before Newton's method takes over.
const MAX_ITERATIONS: usize = 20_000;
/// A length below this is treated as the fixed point q* = 0 (correlations undefined).
const TINY_LENGTH: f64 = 1e-12;

/// A slope of the correlation map at a fixed point, possibly infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slope {
    /// A finite slope.
    Finite(f64),
    /// The slope diverges like (1 − ρ)^(−`exponent`) towards the fixed point (ε^(−½) for
    /// sign and step units), so that 1 − ρ' ≈ `coefficient` · (1 − ρ)^(1 − `exponent`).
    Infinite {
        /// How fast the slope diverges.
        exponent: f64,
        /// The coefficient of the power law of 1 − ρ'.
        coefficient: f64,
    },
}

impl Slope {
    /// The slope as a number (∞ when infinite).
    pub fn value(&self) -> f64 {
        match self {
            Slope::Finite(v) => *v,
            Slope::Infinite { .. } => f64::INFINITY,
        }
    }
}

/// A fixed point of the correlation map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrelationFixedPoint {
    /// ρ* = c*/q*.
    pub rho: f64,
    /// dρ'/dρ there.
    pub slope: Slope,
    /// |slope| < 1.
    pub stable: bool,
}

/// Order, criticality or chaos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// χ₁ < 1: nearby patterns converge; ρ = 1 is stable.
    Ordered,
    /// χ₁ = 1 (to 1e-9).
    Critical,
    /// χ₁ > 1 (or infinite): nearby patterns separate.
    Chaotic,
}

impl Phase {
    /// "ordered", "critical", "chaotic".
    pub fn name(self) -> &'static str {
        match self {
            Phase::Ordered => "ordered",
            Phase::Critical => "critical",
            Phase::Chaotic => "chaotic",
        }
    }
}

/// Everything [`criticality`] finds.
#[derive(Debug, Clone, PartialEq)]
pub struct Criticality {
    /// The length fixed point, one value per state field of the map (C_αα, or m_α, Q_αα).
    pub fixed_point: Vec<f64>,
    /// Spectral radius of the Jacobian of the single-pattern map at the fixed point.
    pub diagonal_slope: f64,
    /// The slope of the correlation map at ρ → 1⁻.
    pub chi1: Slope,
    /// The fixed points of the correlation map, ρ increasing (empty when q* = 0).
    pub correlation_fixed_points: Vec<CorrelationFixedPoint>,
    /// The phase by χ₁.
    pub phase: Phase,
    /// ξ = −1/ln χ at the stable correlation fixed point (∞ at criticality); `None` when no
    /// stable one was found.
    pub depth_scale: Option<f64>,
    /// Fixed-point iterations used (before Newton's polish).
    pub iterations: usize,
    /// |F(q*) − q*| at the end.
    pub residual: f64,
}

impl Criticality {
    /// The stable correlation fixed point with the largest ρ.
    pub fn stable_correlation(&self) -> Option<f64> {
        self.correlation_fixed_points
            .iter()
            .filter(|p| p.stable)
            .map(|p| p.rho)
            .fold(None, |best, r| Some(best.map_or(r, |b: f64| b.max(r))))
    }
}

/// Why the analysis stopped.
#[derive(Debug, thiserror::Error)]
pub enum CriticalityError {
    /// The step map could not be built or evaluated.
    #[error(transparent)]
    Map(#[from] StepMapError),
    /// The length grows without bound (no finite fixed point).
    #[error("{entry} grows without bound ({value:.3e} after {steps} steps): no finite fixed point")]
    Unbounded {
        /// The entry that grows.
        entry: String,
        /// Its value.
        value: f64,
        /// After how many steps.
        steps: usize,
    },
    /// The iteration produced a NaN or an infinity.
    #[error("{entry} became {value} after {steps} steps")]
    NotFinite {
        /// The entry.
        entry: String,
        /// Its value.
        value: f64,
        /// After how many steps.
        steps: usize,
    },
    /// Neither iteration nor Newton's method settled (a cycle, or a marginal map).
    #[error("no fixed point found: |F(q) − q| = {residual:.3e} at q = {at:?}")]
    NotConverged {
        /// The residual left.
        residual: f64,
        /// Where.
        at: Vec<f64>,
    },
    /// The state has no kernel, or several, so there is no single correlation map.
    #[error(
        "the step {0} carries {1} kernels; the correlation map needs exactly one kernel order \
         parameter"
    )]
    Kernels(String, usize),
    /// The eigenvalues of the step's Jacobian did not converge.
    #[error("the eigenvalues of the step's Jacobian {0} did not converge")]
    NoSpectrum(String),
    /// The slope of the correlation map is not finite even away from the end.
    #[error("the slope of the correlation map at ρ = {rho} is {value}")]
    SlopeNotFinite {
        /// Where (the correlation).
        rho: f64,
        /// The slope there.
        value: f64,
    },
}

/// The fixed points, χ₁, the phase and the depth scale of `map`.
pub fn criticality(map: &StepMap) -> Result<Criticality, CriticalityError> {
    let kernels = map
        .fields
        .iter()
        .filter(|f| f.kind == FieldKind::Kernel)
        .count();
    let k = map
        .kernel_field()
        .ok_or_else(|| CriticalityError::Kernels(map.describe(), kernels))?;
    let (fixed_point, iterations, residual) = length_fixed_point(map)?;
    let jacobian = diagonal_jacobian(map, &fixed_point)?;
    let diagonal_slope = spectral_radius(&jacobian).ok_or_else(|| {
        CriticalityError::NoSpectrum(format!("{jacobian:?} at the fixed point {fixed_point:?}"))
    })?;
    let q = fixed_point[k];
    let length = q.max(TINY_LENGTH);
    let correlation = CorrelationMap {
        map,
        kernel: k,
        base: fixed_point
            .iter()
            .zip(&map.fields)
            .map(|(&v, f)| match f.kind {
                FieldKind::Kernel => [v, v, v],
                FieldKind::Mean => [v, v, 0.0],
            })
            .collect(),
        length,
    };
    let chi1 = correlation.limit_slope(1.0)?;
    let mut points = Vec::new();
    if q >= TINY_LENGTH {
        points = correlation.fixed_points(chi1)?;
    }
    let phase = match chi1 {
        Slope::Finite(v) if (v - 1.0).abs() <= 1e-9 => Phase::Critical,
        Slope::Finite(v) if v < 1.0 => Phase::Ordered,
        _ => Phase::Chaotic,
    };
    let depth_scale = match phase {
        Phase::Critical => Some(f64::INFINITY),
        Phase::Ordered => Some(depth(chi1.value())),
        Phase::Chaotic => points
            .iter()
            .filter(|p| p.stable)
            .max_by(|a, b| a.rho.total_cmp(&b.rho))
            .map(|p| depth(p.slope.value())),
    };
    Ok(Criticality {
        fixed_point,
        diagonal_slope,
        chi1,
        correlation_fixed_points: points,
        phase,
        depth_scale,
        iterations,
        residual,
    })
}

/// ξ = −1/ln|χ| (0 for χ = 0, ∞ for |χ| = 1).
fn depth(chi: f64) -> f64 {
    let chi = chi.abs();
    if chi == 0.0 {
        0.0
    } else if (chi - 1.0).abs() <= 1e-15 {
        f64::INFINITY
    } else {
        -1.0 / chi.ln()
    }
}

/// Iterates the single-pattern map from unit kernels and half-active means, then polishes
/// the fixed point with Newton's method.
fn length_fixed_point(map: &StepMap) -> Result<(Vec<f64>, usize, f64), CriticalityError> {
    let mut x: Vec<f64> = map
        .fields
        .iter()
        .map(|f| match f.kind {
            FieldKind::Kernel => 1.0,
            FieldKind::Mean => 0.5,
        })
        .collect();
    let check = |next: &[f64], steps: usize| -> Result<(), CriticalityError> {
        for (v, f) in next.iter().zip(&map.fields) {
            if !v.is_finite() {
                return Err(CriticalityError::NotFinite {
                    entry: f.entry.clone(),
                    value: *v,
                    steps,
                });
            }
            if v.abs() > 1e12 {
                return Err(CriticalityError::Unbounded {
                    entry: f.entry.clone(),
                    value: *v,
                    steps,
                });
            }
        }
        Ok(())
    };
    let mut iterations = 0;
    for step in 1..=MAX_ITERATIONS {
        let next = map.apply_single(&x)?;
        check(&next, step)?;
        let change = next
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0, f64::max);
        x = next;
        iterations = step;
        if change < 1e-15 {
            break;
        }
    }
    let residual_at = |x: &[f64]| -> Result<f64, CriticalityError> {
        Ok(map
            .apply_single(x)?
            .iter()
            .zip(x)
            .map(|(f, v)| (f - v).abs())
            .fold(0.0, f64::max))
    };
    let mut residual = residual_at(&x)?;
    for _ in 0..200 {
        if residual == 0.0 {
            break;
        }
        let f = map.apply_single(&x)?;
        let mut a = diagonal_jacobian(map, &x)?;
        for (i, row) in a.iter_mut().enumerate() {
            row[i] -= 1.0;
        }
        let r: Vec<f64> = f.iter().zip(&x).map(|(f, v)| v - f).collect();
        let Some(delta) = solve_newton(&a, &r) else {
            break;
        };
        // damped: accept the longest of 1, ½, ¼, … that lowers the residual
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            let trial: Vec<f64> = x.iter().zip(&delta).map(|(v, d)| v + step * d).collect();
            if let Ok(t) = residual_at(&trial)
                && t.is_finite()
                && t < residual
            {
                x = trial;
                residual = t;
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    let scale = x.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    if residual.is_nan() || residual > 1e-12 * scale {
        return Err(CriticalityError::NotConverged { residual, at: x });
    }
    Ok((x, iterations, residual))
}

/// ∂F_i/∂x_j of the single-pattern map (num-dual, one direction per column).
fn diagonal_jacobian(map: &StepMap, x: &[f64]) -> Result<Vec<Vec<f64>>, CriticalityError> {
    let n = x.len();
    let mut jac = vec![vec![0.0; n]; n];
    for j in 0..n {
        let dual: Vec<Dual64> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| Dual64::new(v, if i == j { 1.0 } else { 0.0 }))
            .collect();
        for (row, f) in jac.iter_mut().zip(map.apply_single(&dual)?) {
            row[j] = f.eps;
        }
    }
    Ok(jac)
}

/// Spectral radius of a small matrix (faer's eigenvalues; `None` if they did not converge).
fn spectral_radius(a: &[Vec<f64>]) -> Option<f64> {
    let n = a.len();
    let m = faer::Mat::from_fn(n, n, |i, j| a[i][j]);
    let eigenvalues = m.eigenvalues().ok()?;
    Some(eigenvalues.iter().map(|z| z.norm()).fold(0.0, f64::max))
}

/// Solves the Newton system `a δ = b`; `None` when it is singular.
fn solve_newton(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let m = faer::Mat::from_fn(n, n, |i, j| a[i][j]);
    let rhs = faer::Mat::from_fn(n, 1, |i, _| b[i]);
    super::fluctuation::solve_dense(&m, &rhs).ok()
}

/// c ↦ c'(c): the pair entry of the kernel, every length at its fixed point.
struct CorrelationMap<'a> {
    map: &'a StepMap,
    kernel: usize,
    base: Vec<[f64; 3]>,
    /// q* (or [`TINY_LENGTH`] when q* = 0).
    length: f64,
}

impl CorrelationMap<'_> {
    fn image(&self, c: f64) -> Result<f64, CriticalityError> {
        let mut state = self.base.clone();
        for s in &mut state {
            s[0] = s[0].max(TINY_LENGTH);
            s[1] = s[1].max(TINY_LENGTH);
        }
        state[self.kernel] = [self.length, self.length, c];
        Ok(self.map.apply(&state)?[self.kernel][2])
    }

    fn slope(&self, c: f64) -> Result<f64, CriticalityError> {
        let state: Vec<[Dual64; 3]> = self
            .base
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == self.kernel {
                    [
                        Dual64::from(self.length),
                        Dual64::from(self.length),
                        Dual64::new(c, 1.0),
                    ]
                } else {
                    s.map(|v| Dual64::from(v.max(TINY_LENGTH)))
                }
            })
            .collect();
        Ok(self.map.apply(&state)?[self.kernel][2].eps)
    }

    /// The slope as ρ → `end` (±1) from inside: Aitken's Δ² on slopes at
    /// ρ = end·(1 − ε), ε = 10⁻²·4⁻ᵏ. A finite limit shows as differences shrinking
    /// geometrically (ratio 4ᵖ for s = χ + A εᵖ), and the extrapolation stops where they reach
    /// the quadrature's rounding; a slope that keeps growing is infinite.
    fn limit_slope(&self, end: f64) -> Result<Slope, CriticalityError> {
        let q = self.length;
        let mut eps = Vec::new();
        let mut s: Vec<f64> = Vec::new();
        let mut extrapolated: Option<f64> = None;
        for k in 0..16 {
            let e = 1e-2 * 0.25f64.powi(k);
            let v = self.slope(end * q * (1.0 - e))?;
            if !v.is_finite() {
                break;
            }
            eps.push(e);
            s.push(v);
            let n = s.len();
            if n < 2 {
                continue;
            }
            let noise = 1e-11 * s[n - 1].abs().max(1.0);
            let d2 = s[n - 1] - s[n - 2];
            if d2.abs() <= noise {
                return Ok(Slope::Finite(extrapolated.unwrap_or(s[n - 1])));
            }
            if n >= 3 {
                let ratio = (s[n - 2] - s[n - 3]) / d2;
                if ratio > 1.05 {
                    let estimate = s[n - 1] + d2 / (ratio - 1.0);
                    if extrapolated.is_some_and(|p| (p - estimate).abs() <= noise) {
                        return Ok(Slope::Finite(estimate));
                    }
                    extrapolated = Some(estimate);
                } else {
                    extrapolated = None;
                }
            }
        }
        let n = s.len();
        if n < 3 {
            let rho = end * (1.0 - 1e-2 * 0.25f64.powi(n as i32));
            return Err(CriticalityError::SlopeNotFinite {
                rho,
                value: self.slope(rho * q)?,
            });
        }
        if let Some(estimate) = extrapolated {
            return Ok(Slope::Finite(estimate));
        }
        let (d1, d2) = (s[n - 2] - s[n - 3], s[n - 1] - s[n - 2]);
        let ratio = d1 / d2;
        // growing like ε^(−exponent)
        let exponent = if ratio > 0.0 { -ratio.log(4.0) } else { 0.0 };
        // 1 − ρ' ≈ A (1 − ρ)^(1 − exponent), ρ' = c'/q
        let image_end = self.image(end * q)?;
        let coefficients: Vec<f64> = eps[n - 3..]
            .iter()
            .map(|&e| -> Result<f64, CriticalityError> {
                let c = self.image(end * q * (1.0 - e))?;
                Ok(((image_end - c) / q).abs() / e.powf(1.0 - exponent))
            })
            .collect::<Result<_, _>>()?;
        let (a1, a2) = (
            coefficients[1] - coefficients[0],
            coefficients[2] - coefficients[1],
        );
        let r = a1 / a2;
        let coefficient = if a2 != 0.0 && r > 1.05 {
            coefficients[2] + a2 / (r - 1.0)
        } else {
            coefficients[2]
        };
        Ok(Slope::Infinite {
            exponent,
            coefficient,
        })
    }

    /// Fixed points of ρ ↦ ρ' on [−1, 1]: the ends where c' = c there, and the sign changes
    /// of c' − c inside (Chebyshev-spaced grid, denser towards ρ = 1), refined by bisection.
    fn fixed_points(&self, chi1: Slope) -> Result<Vec<CorrelationFixedPoint>, CriticalityError> {
        let q = self.length;
        let gap = |c: f64| -> Result<f64, CriticalityError> { Ok(self.image(c)? - c) };
        let mut rhos: Vec<f64> = (1..256)
            .map(|i| -(std::f64::consts::PI * i as f64 / 256.0).cos())
            .collect();
        rhos.extend((5..=10).map(|j| 1.0 - 10f64.powi(-j)));
        rhos.sort_by(f64::total_cmp);
        let mut points = Vec::new();
        let end_tolerance = 1e-10 * q;
        if gap(-q)?.abs() <= end_tolerance {
            let slope = self.limit_slope(-1.0)?;
            points.push(CorrelationFixedPoint {
                rho: -1.0,
                slope,
                stable: slope.value().abs() < 1.0,
            });
        }
        let values: Vec<f64> = rhos.iter().map(|&r| gap(r * q)).collect::<Result<_, _>>()?;
        for i in 0..rhos.len() {
            let root = if values[i] == 0.0 {
                Some(rhos[i])
            } else if i + 1 < rhos.len() && values[i] * values[i + 1] < 0.0 {
                let (mut lo, mut hi, mut glo) = (rhos[i], rhos[i + 1], values[i]);
                for _ in 0..200 {
                    let mid = 0.5 * (lo + hi);
                    if mid <= lo || mid >= hi {
                        break;
                    }
                    let g = gap(mid * q)?;
                    if g == 0.0 {
                        (lo, hi) = (mid, mid);
                        break;
                    }
                    if (g < 0.0) == (glo < 0.0) {
                        (lo, glo) = (mid, g);
                    } else {
                        hi = mid;
                    }
                }
                Some(0.5 * (lo + hi))
            } else {
                None
            };
            if let Some(rho) = root {
                let slope = Slope::Finite(self.slope(rho * q)?);
                points.push(CorrelationFixedPoint {
                    rho,
                    slope,
                    stable: slope.value().abs() < 1.0,
                });
            }
        }
        if gap(q)?.abs() <= end_tolerance {
            points.push(CorrelationFixedPoint {
                rho: 1.0,
                slope: chi1,
                stable: chi1.value().abs() < 1.0,
            });
        }
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theory(file: &str) -> crate::Theory {
        let source = std::fs::read_to_string(file).expect("example exists");
        crate::compile(&source, file).expect("example checks")
    }

    fn analyse(file: &str, set: &[(&str, f64)]) -> Criticality {
        let set: Vec<(String, f64)> = set.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let map = StepMap::from_theory(&theory(file), &set, 200).expect("a step map");
        criticality(&map).expect("an analysis")
    }

    #[test]
    fn unit_slope_erf_matches_t3() {
        for (gb, g, q, chi) in crate::numeric::reference_values::T3 {
            let c = analyse("examples/deep_erf.action", &[("g", g), ("gb", gb)]);
            assert!(
                (c.fixed_point[0] - q).abs() < 1e-8,
                "q* at g = {g}, gb = {gb}: {c:?}"
            );
            assert!(
                (c.chi1.value() - chi).abs() < 1e-10,
                "χ₁ at g = {g}, gb = {gb}: {:?}",
                c.chi1
            );
            // closed form χ₁ = g/√(1 + π q*) (THEORY.md §2)
            let closed = g / (1.0 + std::f64::consts::PI * c.fixed_point[0]).sqrt();
            assert!((c.chi1.value() - closed).abs() < 1e-9);
            let phase = if chi < 1.0 {
                Phase::Ordered
            } else {
                Phase::Chaotic
            };
            assert_eq!(c.phase, phase);
        }
    }

    #[test]
    fn chaotic_erf_has_a_stable_correlation_below_one_and_its_depth_scale() {
        let c = analyse("examples/deep_erf.action", &[("g", 3.0), ("gb", 0.1)]);
        let rho = c.stable_correlation().expect("a stable ρ*");
        assert!(rho > 0.0 && rho < 1.0, "{c:?}");
        let slope = c
            .correlation_fixed_points
            .iter()
            .find(|p| p.rho == rho)
            .map(|p| p.slope.value())
            .expect("its slope");
        assert!((c.depth_scale.expect("ξ") + 1.0 / slope.ln()).abs() < 1e-12);
        // ρ* is a fixed point of the arcsine map at q*: ρ = (g K(q, q, ρq) + gb)/q
        let q = c.fixed_point[0];
        let s2 = std::f64::consts::PI / 4.0;
        let k = std::f64::consts::FRAC_2_PI * (2.0 * s2 * rho * q / (1.0 + 2.0 * s2 * q)).asin();
        assert!(((3.0 * k + 0.1) / q - rho).abs() < 1e-10);
    }

    #[test]
    fn ordered_erf_depth_scale_is_minus_one_over_log_chi1() {
        let c = analyse("examples/deep_erf.action", &[("g", 1.5), ("gb", 0.1)]);
        assert_eq!(c.phase, Phase::Ordered);
        let chi = c.chi1.value();
        assert!((c.depth_scale.expect("ξ") + 1.0 / chi.ln()).abs() < 1e-9);
        assert_eq!(c.stable_correlation(), Some(1.0));
    }

    #[test]
    fn sign_units_have_an_infinite_slope_with_the_square_root_law() {
        let c = analyse("examples/binary_sign.action", &[("g", 1.0), ("gb", 0.0)]);
        match c.chi1 {
            Slope::Infinite {
                exponent,
                coefficient,
            } => {
                assert!((exponent - 0.5).abs() < 1e-3, "{exponent}");
                // 1 − ρ' ≈ (2√2/π) √(1 − ρ) (THEORY.md §7.1)
                let want = 2.0 * std::f64::consts::SQRT_2 / std::f64::consts::PI;
                assert!((coefficient - want).abs() < 1e-4, "{coefficient} vs {want}");
            }
            other => panic!("χ₁ should be infinite: {other:?}"),
        }
        assert_eq!(c.phase, Phase::Chaotic);
        // ρ* = 0 with slope 2/π: ξ = −1/ln(2/π)
        let rho = c.stable_correlation().expect("ρ*");
        assert!(rho.abs() < 1e-12, "{rho}");
        let xi = -1.0 / std::f64::consts::FRAC_2_PI.ln();
        assert!((c.depth_scale.expect("ξ") - xi).abs() < 1e-9);
        // ρ = −1 is a fixed point too (odd map), unstable
        assert!(
            c.correlation_fixed_points
                .iter()
                .any(|p| p.rho == -1.0 && !p.stable)
        );
    }

    #[test]
    fn relu_chi1_is_half_its_gain() {
        // ReLU, g_b = 0: χ₁ = g ⟨step(h)²⟩ = g/2 (slope approaches it like √ε)
        let c = analyse("examples/deep_relu.action", &[("g", 1.6), ("gb", 0.0)]);
        assert!((c.chi1.value() - 0.8).abs() < 1e-7, "{:?}", c.chi1);
    }

    #[test]
    fn threshold_units_with_mean_fields_are_chaotic() {
        let c = analyse("examples/binary_threshold.action", &[]);
        assert!(matches!(c.chi1, Slope::Infinite { .. }), "{:?}", c.chi1);
        assert!(c.residual < 1e-12);
    }

    /// ⟨f(√q z)⟩ over z ~ N(0, 1) by the trapezoid rule on [−12, 12] (spectrally accurate
    /// for smooth f): an independent check of the step map's quadrature.
    fn gaussian_mean(q: f64, f: impl Fn(f64) -> f64) -> f64 {
        let h = 1e-3;
        let n = (12.0 / h) as i64;
        let norm = (2.0 * std::f64::consts::PI).sqrt();
        (-n..=n)
            .map(|i| {
                let z = i as f64 * h;
                f(q.sqrt() * z) * (-0.5 * z * z).exp() / norm * h
            })
            .sum()
    }

    #[test]
    fn tanh_chi1_is_the_mean_of_sech_to_the_fourth() {
        // χ₁ = g ⟨φ'(h)²⟩ = g ⟨sech⁴(h)⟩ at h ~ N(0, q*), q* = g ⟨tanh²⟩ + g_b
        for g in [0.5, 1.0, 1.75, 3.0] {
            let c = analyse("examples/deep_tanh.action", &[("g", g), ("gb", 0.1)]);
            let q = c.fixed_point[0];
            let length = g * gaussian_mean(q, |h| h.tanh().powi(2)) + 0.1;
            assert!((q - length).abs() < 1e-10, "q* at g = {g}: {q} vs {length}");
            let chi = g * gaussian_mean(q, |h| 1.0 / h.cosh().powi(4));
            assert!(
                (c.chi1.value() - chi).abs() < 1e-10,
                "χ₁ at g = {g}: {:?} vs {chi}",
                c.chi1
            );
        }
    }
}
