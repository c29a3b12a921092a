//! The fast path of the commonest forward equation: C' = s·K_φ(C) + o, one closed-form pair
//! expectation of a known activation with zero means (THEORY.md §2), evaluated over all
//! pattern pairs with per-pattern factors hoisted out of the pair loop:
//! erf(σx): K = (2/π) asin(2σ² C_αβ r_α r_β) with r_α = (1 + 2σ² C_αα)^{-1/2}; with
//! ρ = C_αβ f_α f_β, f_α = C_αα^{-1/2}: sign (2/π) asin ρ, step(θ = 0) 1/4 + asin ρ/(2π),
//! ReLU √(C_αα C_ββ)/(2π)·[√((1−ρ)(1+ρ)) + (π − θ)ρ] with π − θ = acos(−ρ).
//!
//! The loop runs over tiles of the upper triangle: a rayon task owns a band of rows,
//! computes each row segment of a tile with the branch-free SIMD arcsine / arccosine of
//! [`super::vector_math`] (compiled for AVX-512, AVX2 or neither, chosen at run time) and
//! writes the tile's transpose into the lower triangle while it is in cache. No memory
//! beyond the output and three per-pattern vectors.
//!
//! A chain of such maps (the hidden layers of a deep network, none of them returned) runs
//! fused ([`apply_chain_into`]): entry (α, β) of layer l + 1 needs only entry (α, β) and the
//! diagonal of layer l, so the diagonals are carried through the layers first and then each
//! row segment goes through every layer in an L1 buffer. Same arithmetic per entry, so the
//! same bits as one layer at a time, with the memory traffic of a single layer.
//!
//! * `pair_set`: [`PairSet`], which pattern pairs are computed.
//! * `pair_map`: [`PairKernelMap`], the affine map of one pair expectation; `apply`: applying it.
//! * `chain`: the fused closed-form loop ([`apply_chain_into`]) over bands and tiles.
//! * `tiles`: the symmetric write ([`mirror_upper`]).
//! * [`hermite`]: tanh and smooth user functions by the Mehler expansion, with its report.

mod apply;
mod chain;
pub mod hermite;
mod pair_map;
mod pair_set;
mod tiles;

pub use crate::numeric::vector_math::clear_upper_vector_state;
pub use chain::{apply_chain_in_place, apply_chain_into, apply_chain_into_with};
pub use pair_map::PairKernelMap;
pub use pair_set::PairSet;
pub use tiles::mirror_upper;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::activation::Activation;
    use crate::numeric::pair::pair_expectation;
    use crate::numeric::program::ProgramError;
    use crate::numeric::vector_math::Isa;
    use ndarray::Array2;
    use ndarray::array;
    use proptest::prelude::*;

    const ACTIVATIONS: [Activation; 5] = [
        Activation::Erf { s: 0.886 },
        Activation::Linear,
        Activation::Relu,
        Activation::Sign,
        Activation::Step { theta: 0.0 },
    ];

    /// How far the fast path may be from `pair_expectation`: 1e-13 of the size of the
    /// entry, plus the rounding of the correlation ρ (a few ε) times the condition number of
    /// the closed form in ρ where that is large: 1/√(1−x²) for asin-based kernels near |x| = 1,
    /// and for ReLU the reference's own w = √(ab − c²), whose absolute error is ≈ ε·ab/w.
    fn tolerance(act: &Activation, scale: f64, offset: f64, a: f64, b: f64, c: f64) -> f64 {
        let eps = f64::EPSILON;
        let size = match act {
            Activation::Linear | Activation::Relu => (a * b).sqrt(),
            _ => 1.0,
        };
        let argument = match act {
            Activation::Erf { s } => {
                2.0 * s * s * c / ((1.0 + 2.0 * s * s * a) * (1.0 + 2.0 * s * s * b)).sqrt()
            }
            _ if a * b > 0.0 => c / (a * b).sqrt(),
            _ => 0.0,
        };
        let gap = (1.0 - argument * argument).max(0.0);
        let conditioning = match act {
            Activation::Erf { .. } | Activation::Sign | Activation::Step { .. } if gap > 0.0 => {
                8.0 * eps / gap.sqrt()
            }
            Activation::Relu if gap > 0.0 => 8.0 * eps * (a * b).sqrt() / gap.sqrt(),
            _ => 0.0,
        };
        1e-13 * (scale.abs() * size + offset.abs()) + scale.abs() * conditioning
    }

    /// Checks every entry of the fast path, on every instruction set of this CPU, against the
    /// scalar closed form; entries outside `pairs` must be 0 and the result symmetric.
    fn check(c: &Array2<f64>, act: &Activation, scale: f64, offset: f64, pairs: PairSet) {
        let map = PairKernelMap::new(act.clone(), scale, offset);
        let p = c.nrows();
        for isa in Isa::available() {
            let mut k = Array2::from_elem((p, p), f64::NAN);
            map.apply_into_with(isa, c.view(), pairs, &mut k, true)
                .expect("valid kernel");
            // The upper-only variant writes the same upper triangle and leaves the rest.
            let mut upper = Array2::from_elem((p, p), -7.0);
            map.apply_into_with(isa, c.view(), pairs, &mut upper, false)
                .expect("valid kernel");
            for ((a, b), v) in upper.indexed_iter() {
                let want = if a <= b { k[[a, b]] } else { -7.0 };
                assert_eq!(v.to_bits(), want.to_bits(), "{isa:?} upper-only ({a},{b})");
            }
            for a in 0..p {
                for b in 0..p {
                    let needed = match pairs {
                        PairSet::All => true,
                        PairSet::TrainAndCross(n) => a < n || b < n || a == b,
                    };
                    let got = k[[a, b]];
                    if !needed {
                        assert_eq!(got, 0.0, "{isa:?} {act:?} ({a},{b}) is not needed");
                        continue;
                    }
                    let (va, vb, cab) = (c[[a, a]], c[[b, b]], c[[a.min(b), a.max(b)]]);
                    let exact: f64 = pair_expectation(act, va, vb, cab).expect("closed form");
                    let want = scale * exact + offset;
                    let tol = tolerance(act, scale, offset, va, vb, cab);
                    assert!(
                        (got - want).abs() <= tol,
                        "{isa:?} {act:?} ({a},{b}) of {p}: {got} vs {want} (C = {va}, {vb}, {cab}; tolerance {tol:e})"
                    );
                    assert_eq!(got.to_bits(), k[[b, a]].to_bits(), "{isa:?} symmetric");
                }
            }
        }
    }

    /// C = V Vᵀ for rows of V: random, repeated (ρ = 1), negated (ρ = −1), nearly repeated
    /// (ρ → ±1) and zero (zero variance, where the activation allows it).
    fn kernel(rows: &[Vec<f64>], kinds: &[u8], zero_allowed: bool) -> Array2<f64> {
        let dim = rows[0].len();
        let mut v: Vec<Vec<f64>> = Vec::new();
        for (i, (row, kind)) in rows.iter().zip(kinds).enumerate() {
            let last = if i > 0 { v[i - 1].clone() } else { row.clone() };
            v.push(match kind % 6 {
                0 => last,
                1 => last.iter().map(|x| -x).collect(),
                2 => last.iter().zip(row).map(|(x, y)| x + 1e-7 * y).collect(),
                3 => last.iter().zip(row).map(|(x, y)| -x + 1e-4 * y).collect(),
                4 if zero_allowed => vec![0.0; dim],
                _ => row.clone(),
            });
        }
        Array2::from_shape_fn((v.len(), v.len()), |(a, b)| {
            v[a].iter().zip(&v[b]).map(|(x, y)| x * y).sum()
        })
    }

    #[test]
    fn fast_path_matches_the_closed_forms_to_1e13() {
        let c = array![[1.0, 0.6, -0.2], [0.6, 1.5, 0.3], [-0.2, 0.3, 0.8]];
        for act in &ACTIVATIONS {
            check(&c, act, 1.5, 0.1, PairSet::All);
        }
    }

    /// `n` rows of 4 numbers uniform in [−1, 1) from a seeded LCG.
    fn random_rows(mut seed: u64, n: usize) -> Vec<Vec<f64>> {
        let mut uniform = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        (0..n)
            .map(|_| (0..4).map(|_| uniform()).collect())
            .collect()
    }

    #[test]
    fn every_tile_and_band_edge_on_a_large_kernel() {
        // 600 patterns: ten bands and two column tiles, ragged at both ends.
        let rows = random_rows(12345, 600);
        let kinds: Vec<u8> = (0..600).map(|i| (i * 7 % 11) as u8).collect();
        for act in &ACTIVATIONS {
            let zero_allowed = !matches!(act, Activation::Sign | Activation::Step { .. });
            let c = kernel(&rows, &kinds, zero_allowed);
            check(&c, act, 0.7, -0.3, PairSet::All);
            check(&c, act, 2.0, 0.1, PairSet::TrainAndCross(37));
        }
    }

    /// The fused chain gives the values of the maps applied one by one, bit for bit (the
    /// same arithmetic per entry), over tile and band edges, for every ISA this CPU runs,
    /// mixed activations, both pair sets, with and without the lower triangle.
    #[test]
    fn a_fused_chain_equals_the_maps_one_by_one() {
        let rows = random_rows(777, 600);
        let kinds: Vec<u8> = (0..600).map(|i| (i * 5 % 13) as u8).collect();
        let c = kernel(&rows, &kinds, false);
        let map = |activation, scale, offset| PairKernelMap::new(activation, scale, offset);
        let chains = [
            vec![map(Activation::Erf { s: 0.886 }, 1.5, 0.1); 5],
            vec![map(Activation::Relu, 2.0, 0.05); 4],
            vec![
                map(Activation::Sign, 1.2, 0.2),
                map(Activation::Erf { s: 1.3 }, 0.9, 0.0),
                map(Activation::Linear, 1.1, 0.3),
                map(Activation::Relu, 1.7, 0.01),
                map(Activation::Step { theta: 0.0 }, 1.0, 0.4),
            ],
            vec![map(Activation::Erf { s: 0.5 }, 1.0, 0.0)],
        ];
        for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
            for maps in &chains {
                for pairs in [PairSet::All, PairSet::TrainAndCross(123)] {
                    for mirror in [true, false] {
                        let mut stepwise = c.clone();
                        for m in maps {
                            let mut next = Array2::from_elem(c.dim(), f64::NAN);
                            m.apply_into_with(isa, stepwise.view(), pairs, &mut next, true)
                                .unwrap();
                            stepwise = next;
                        }
                        let mut fused = Array2::from_elem(c.dim(), f64::NAN);
                        apply_chain_into_with(isa, maps, c.view(), pairs, &mut fused, mirror)
                            .unwrap();
                        let mut in_place = c.clone();
                        if isa == Isa::detect() {
                            apply_chain_in_place(maps, &mut in_place, pairs, mirror).unwrap();
                        }
                        for a in 0..600 {
                            for b in 0..600 {
                                if b >= a || mirror {
                                    assert_eq!(
                                        fused[[a, b]].to_bits(),
                                        stepwise[[a, b]].to_bits(),
                                        "{isa:?} {pairs:?} ({a}, {b}) of {maps:?}"
                                    );
                                    if isa == Isa::detect() {
                                        assert_eq!(
                                            in_place[[a, b]].to_bits(),
                                            stepwise[[a, b]].to_bits(),
                                            "in place {pairs:?} ({a}, {b}) of {maps:?}"
                                        );
                                    }
                                } else {
                                    assert!(fused[[a, b]].is_nan(), "lower triangle written");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// An invalid covariance in the middle of a chain is reported with that layer's values.
    #[test]
    fn a_chain_reports_an_invalid_intermediate_kernel() {
        let c = array![[1.0, 0.5], [0.5, 1.0]];
        let maps = [
            PairKernelMap::new(Activation::Linear, 1.0, 0.0),
            // a negative offset makes the second layer's variances negative
            PairKernelMap::new(Activation::Linear, 1.0, -2.0),
            PairKernelMap::new(Activation::Relu, 1.0, 0.0),
        ];
        let mut out = Array2::zeros((2, 2));
        let err = apply_chain_into(&maps, c.view(), PairSet::All, &mut out, true).unwrap_err();
        assert!(
            matches!(err, ProgramError::InvalidCovariance { var_u, .. } if var_u == -1.0),
            "{err:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn fast_path_matches_the_closed_forms_on_random_kernels(
            rows in prop::collection::vec(prop::collection::vec(-2.0f64..2.0, 3), 1..24),
            kinds in prop::collection::vec(0u8..12, 24),
            variance in prop::sample::select(vec![1e-2, 0.3, 1.0, 7.0, 100.0]),
            scale in -3.0f64..3.0,
            offset in -1.0f64..1.0,
            train in 0usize..24,
        ) {
            for act in &ACTIVATIONS {
                let zero_allowed = !matches!(act, Activation::Sign | Activation::Step { .. });
                let c = kernel(&rows, &kinds, zero_allowed) * variance;
                check(&c, act, scale, offset, PairSet::All);
                check(&c, act, scale, offset, PairSet::TrainAndCross(train));
            }
        }
    }

    #[test]
    fn mirror_copies_the_upper_triangle() {
        for p in [1, 5, 64, 65, 700] {
            let mut m = Array2::from_shape_fn((p, p), |(a, b)| {
                if a <= b {
                    (a * 1000 + b) as f64
                } else {
                    f64::NAN
                }
            });
            mirror_upper(&mut m);
            for ((a, b), v) in m.indexed_iter() {
                assert_eq!(*v, (a.min(b) * 1000 + a.max(b)) as f64, "P = {p} ({a},{b})");
            }
        }
    }

    #[test]
    fn invalid_covariances_are_errors() {
        let bad = [
            array![[1.0, 2.0], [2.0, 1.0]],
            array![[1.0, f64::NAN], [f64::NAN, 1.0]],
            array![[-1.0, 0.0], [0.0, 1.0]],
            array![[f64::INFINITY, 0.0], [0.0, 1.0]],
        ];
        for c in bad {
            for act in &ACTIVATIONS {
                let map = PairKernelMap::new(act.clone(), 1.0, 0.0);
                assert!(
                    matches!(
                        map.apply(c.view(), PairSet::All),
                        Err(ProgramError::InvalidCovariance { .. })
                    ),
                    "{act:?} on {c}"
                );
            }
        }
    }

    #[test]
    fn discontinuous_activations_at_zero_variance_are_errors() {
        let c = array![[1.0, 0.0], [0.0, 0.0]];
        for act in [Activation::Sign, Activation::Step { theta: 0.0 }] {
            let map = PairKernelMap::new(act, 1.0, 0.0);
            assert!(map.apply(c.view(), PairSet::All).is_err());
        }
    }
}
