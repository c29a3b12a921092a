//! Singularities of user activations that leave $\langle\phi(h)^2\rangle$ without a value
//! under every Gaussian: a pole $|\phi(x)|\sim|x-x_0|^{-p}$ with $p\ge\tfrac12$ (its square is
//! not integrable), or a stretch where φ is not finite. Quadrature sees neither unless a node
//! lands on it (`phi(x) = 1/x` gave a finite kernel with a tiny error bound), so the kernel
//! paths scan φ before integrating ([`Activation::square_integrable_pole`]).

use super::activation::Activation;

/// Where a user function has no finite Gaussian expectation of its square.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Singularity {
    /// $|\phi(x)|\sim|x-\text{at}|^{-\text{exponent}}$ with exponent ≥ ½.
    Pole {
        /// The location (to about 1e-16 of the grid step).
        at: f64,
        /// The growth exponent (∞ where φ is finite only on one side and jumps there).
        exponent: f64,
    },
    /// φ is not finite at `at` nor next to it (undefined there, or overflowing).
    NotFinite {
        /// A point of the stretch.
        at: f64,
        /// φ there (NaN or ±∞).
        value: f64,
    },
}

impl std::fmt::Display for Singularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Singularity::Pole { at, exponent } => write!(
                f,
                "has a pole at h ≈ {at:.6} (|φ| grows like |h − {at:.6}|^−{exponent:.2}; \
                 exponents ≥ 1/2 make its square non-integrable)"
            ),
            Singularity::NotFinite { at, value } => {
                write!(
                    f,
                    "is not finite at h ≈ {at:.6} and around it (φ = {value})"
                )
            }
        }
    }
}

/// The point of largest `f` in `[lo, hi]`, by golden-section search (100 steps shrink the
/// bracket by 1e-21).
fn golden_section_peak(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - ratio * (hi - lo);
    let mut b = lo + ratio * (hi - lo);
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..100 {
        if fa.is_infinite() {
            return a;
        }
        if fb.is_infinite() {
            return b;
        }
        if fa >= fb || fb.is_nan() {
            hi = b;
            b = a;
            fb = fa;
            a = hi - ratio * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + ratio * (hi - lo);
            fb = f(b);
        }
        if hi - lo <= f64::EPSILON * hi.abs().max(lo.abs()).max(f64::MIN_POSITIVE) {
            break;
        }
    }
    if fa >= fb { a } else { b }
}

impl Activation {
    /// Where a user function makes $\langle\phi(h)^2\rangle$ diverge (or undefined) under
    /// every Gaussian, looked for on $[-40s, 40s]$ for pre-activations of standard deviation
    /// `scale` = $s$: a pole with $|\phi(x)|\sim|x-x_0|^{-p}$, $p\ge\tfrac12$, or a stretch
    /// where φ is not finite (`ln` of a negative, an overflowing `exp(x^2)`, `x/0`).
    ///
    /// Quadrature never sees a pole unless a node lands on it: `phi(x) = 1/x` gave a finite
    /// kernel with a tiny error bound. The scan evaluates φ on a grid of 2001 points, zooms
    /// (golden section) into every local maximum of $|\phi|$ and, where it is not bounded,
    /// measures the growth exponent $p$ from $|\phi|$ at distances $10^{-8}h$ and $10^{-4}h$
    /// from the peak ($h$ the grid step), on each side. An isolated non-finite point with a
    /// bounded neighbourhood (`sin(x)/x`-like 0/0) is not a singularity. Built-in activations
    /// have none.
    pub fn square_integrable_pole(&self, scale: f64) -> Option<Singularity> {
        let Activation::Custom(_) = self else {
            return None;
        };
        let phi = |x: f64| self.value(x).abs();
        const POINTS: usize = 2001;
        let reach = 40.0
            * if scale.is_finite() && scale > 0.0 {
                scale
            } else {
                1.0
            };
        let step = 2.0 * reach / (POINTS - 1) as f64;
        let grid: Vec<f64> = (0..POINTS).map(|i| -reach + step * i as f64).collect();
        let values: Vec<f64> = grid.iter().map(|&x| phi(x)).collect();
        // Growth exponent on each side of `at`: None where φ is not finite next to it.
        let growth = |at: f64| {
            let exponent = |side: f64| {
                let near = phi(at + side * 1e-8 * step);
                let far = phi(at + side * 1e-4 * step);
                (near.is_finite() && far.is_finite()).then(|| {
                    if far > 0.0 {
                        (near / far).ln() / 1e4_f64.ln()
                    } else if near > 0.0 {
                        f64::INFINITY
                    } else {
                        0.0
                    }
                })
            };
            match (exponent(-1.0), exponent(1.0)) {
                (Some(l), Some(r)) => Some(l.max(r)),
                (one, other) => one.or(other),
            }
        };
        // comparisons with a non-finite neighbour count it as lower
        let level = |i: usize| values.get(i).copied().filter(|v| v.is_finite());
        for i in 0..POINTS {
            let (at, value) = if values[i].is_finite() {
                let interior = i > 0 && i + 1 < POINTS;
                let v = values[i];
                let peak = interior
                    && level(i - 1).is_none_or(|l| v >= l)
                    && level(i + 1).is_none_or(|u| v >= u);
                if !peak {
                    continue;
                }
                (golden_section_peak(phi, grid[i - 1], grid[i + 1]), None)
            } else {
                (grid[i], Some(self.value(grid[i])))
            };
            match growth(at) {
                Some(p) if p >= 0.5 - 1e-3 => {
                    return Some(Singularity::Pole { at, exponent: p });
                }
                None if value.is_some() => {
                    let value = value.unwrap_or(f64::NAN);
                    return Some(Singularity::NotFinite { at, value });
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::activation::CustomActivation;

    fn user(f: fn(f64) -> f64) -> Activation {
        Activation::Custom(CustomActivation::new("φ", move |x: f64| [f(x), 0.0, 0.0]))
    }

    /// `1/x` gave a finite kernel with a tiny error bound: poles whose square is not
    /// integrable are found and located; integrable singularities and sharp but finite
    /// peaks are not poles.
    #[test]
    fn poles_with_a_non_integrable_square_are_found() {
        type Case = (fn(f64) -> f64, Option<(f64, f64)>);
        let cases: [Case; 7] = [
            (|x| 1.0 / x, Some((0.0, 1.0))),
            (|x| 1.0 / (x - 0.3), Some((0.3, 1.0))),
            (|x| 1.0 / (x + 2.0).powi(2), Some((-2.0, 2.0))),
            (|x| 1.0 / x.abs().sqrt(), Some((0.0, 0.5))),
            (|x| x.abs().powf(-0.25), None),
            (|x| x.tanh() * x.exp(), None),
            (|x| 1.0 / (x * x + 1e-6), None),
        ];
        for (i, (f, want)) in cases.into_iter().enumerate() {
            let found = user(f).square_integrable_pole(1.0);
            match (found, want) {
                (Some(Singularity::Pole { at: x, exponent: p }), Some((at, exponent))) => {
                    assert!((x - at).abs() < 1e-9, "case {i}: {found:?}");
                    assert!((p - exponent).abs() < 0.01, "case {i}: {found:?}");
                }
                (None, None) => {}
                other => panic!("case {i}: {other:?}"),
            }
        }
        assert_eq!(Activation::Tanh.square_integrable_pole(1.0), None);
        // a one-sided pole next to an undefined point, undefined stretches, and a removable
        // 0/0 that is no singularity
        let step_over_x = user(|x| if x > 0.0 { 1.0 / x } else { 0.0 / x });
        assert!(matches!(
            step_over_x.square_integrable_pole(1.0),
            Some(Singularity::Pole { at, .. }) if at.abs() < 1e-9
        ));
        assert!(matches!(
            user(f64::ln).square_integrable_pole(1.0),
            Some(Singularity::NotFinite { at, .. }) if at < 0.0
        ));
        assert!(matches!(
            user(|x| (x * x).exp()).square_integrable_pole(1.0),
            Some(Singularity::NotFinite { .. })
        ));
        assert_eq!(user(|x| x.sin() / x).square_integrable_pole(1.0), None);
    }
}
