//! The covariances of a population's averages with its tilt, in one pass over the samples.
//!
//! The linearised system's forward map needs, per population and per application,
//! cov(f gᵀ, A) and cov(f, A) under the untilted samples h*, where the tilt
//! $$A(h)=\sum_t u_t(h)^\top M_t\,v_t(h)+\sum_s r_s^\top w_s(h)$$
//! changes with the conjugates every time. Written as whole-sample products this is an M×P
//! matrix for A's products and another for the weighted copy of f, both allocated and faulted
//! in afresh, then two M×P×P products. Here the samples are cut into a fixed number of groups
//! (so the sums do not depend on the number of threads), each swept in blocks of rows that
//! stay in cache: A on the block, then Σ a_i f_i g_iᵀ and Σ a_i f_i into the group's sums.
//! The covariances follow as (1/M)Σ a f gᵀ − Ā⟨f gᵀ⟩ from the moments at h*.
//!
//! A square term uᵀMu needs only M's symmetric part S; with a shift s that makes S + sI
//! positive definite (Gershgorin's bound) and its Cholesky factor L,
//! uᵀSu = ‖Lᵀu‖² − s‖u‖², a triangular product of half the flops of Mu.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par};
use ndarray::{Array1, Array2};
use rayon::prelude::*;

use crate::numeric::dense::cholesky_lower_in_place;
use crate::numeric::price::EvaluatedTilt;

/// Groups of samples summed separately (in parallel) and then in order.
const GROUPS: usize = 8;

/// Rows per block within a group: a block of each function (ROWS × P) stays in cache
/// between the tilt's product and the averages' products.
const ROWS: usize = 256;

/// One term of the tilt, prepared for products with blocks of rows.
enum Term {
    /// uᵀSu = ‖Lᵀu‖² − s‖u‖² (S + sI = LLᵀ).
    Square {
        function: usize,
        factor: Mat<f64>,
        shift: f64,
    },
    /// uᵀMv with v's block times Mᵀ.
    General {
        left: usize,
        right: usize,
        transposed: Mat<f64>,
    },
    /// rᵀw.
    Linear { function: usize, weights: Vec<f64> },
}

/// A tilt A(h) = Σ uᵀMv + Σ rᵀw of functions whose values on every sample are given.
pub(super) struct QuadraticTilt {
    terms: Vec<Term>,
}

impl QuadraticTilt {
    /// The tilt of `terms`, its functions mapped by `function` (a tilt function's index in
    /// the values the pass reads).
    pub(super) fn new(terms: &EvaluatedTilt, function: impl Fn(usize) -> usize) -> Self {
        let mut prepared = Vec::new();
        for (m, u, v) in &terms.bilinear {
            let p = m.nrows();
            let (u, v) = (function(*u), function(*v));
            let general = || Term::General {
                left: u,
                right: v,
                transposed: Mat::from_fn(p, p, |i, j| m[[j, i]]),
            };
            let largest = m.iter().fold(0.0f64, |a, x| a.max(x.abs()));
            // a NaN goes the full product's way, to the caller's finiteness check
            let finite = m.iter().all(|x| x.is_finite());
            if finite && largest == 0.0 {
                continue;
            }
            if u != v || !finite {
                prepared.push(general());
                continue;
            }
            let symmetric = Mat::from_fn(p, p, |i, j| 0.5 * (m[[i, j]] + m[[j, i]]));
            // Gershgorin: every eigenvalue of S + sI is at least the margin
            let bound = (0..p)
                .map(|i| {
                    let off: f64 = (0..p)
                        .filter(|&j| j != i)
                        .map(|j| symmetric[(i, j)].abs())
                        .sum();
                    off - symmetric[(i, i)]
                })
                .fold(0.0f64, f64::max);
            let shift = bound + 1e-6 * largest;
            let mut factor = symmetric.clone();
            for i in 0..p {
                factor[(i, i)] += shift;
            }
            match cholesky_lower_in_place(factor.as_mut()) {
                Ok(()) => {
                    for j in 1..p {
                        for i in 0..j {
                            factor[(i, j)] = 0.0;
                        }
                    }
                    prepared.push(Term::Square {
                        function: u,
                        factor,
                        shift,
                    });
                }
                // rounding beyond the margin: the full product is exact regardless
                Err(_) => prepared.push(general()),
            }
        }
        for (r, w) in &terms.linear {
            prepared.push(Term::Linear {
                function: function(*w),
                weights: r.to_vec(),
            });
        }
        QuadraticTilt { terms: prepared }
    }

    /// A on the rows `first..first + out.len()` of `values` (row-major M×P each) into `out`.
    fn on_rows(
        &self,
        values: &[&[f64]],
        p: usize,
        first: usize,
        out: &mut [f64],
        scratch: &mut [f64],
    ) {
        let rows = out.len();
        out.fill(0.0);
        let block = |f: usize| &values[f][first * p..(first + rows) * p];
        for term in &self.terms {
            match term {
                Term::Square {
                    function,
                    factor,
                    shift,
                } => {
                    let u = block(*function);
                    let product = &mut scratch[..rows * p];
                    triangular::matmul(
                        faer::MatMut::from_row_major_slice_mut(product, rows, p),
                        BlockStructure::Rectangular,
                        Accum::Replace,
                        MatRef::from_row_major_slice(u, rows, p),
                        BlockStructure::Rectangular,
                        factor.as_ref(),
                        BlockStructure::TriangularLower,
                        1.0,
                        Par::Seq,
                    );
                    for (i, a) in out.iter_mut().enumerate() {
                        let row = &product[i * p..(i + 1) * p];
                        let u = &u[i * p..(i + 1) * p];
                        *a += row.iter().map(|x| x * x).sum::<f64>()
                            - shift * u.iter().map(|x| x * x).sum::<f64>();
                    }
                }
                Term::General {
                    left,
                    right,
                    transposed,
                } => {
                    let (u, v) = (block(*left), block(*right));
                    let product = &mut scratch[..rows * p];
                    matmul(
                        faer::MatMut::from_row_major_slice_mut(product, rows, p),
                        Accum::Replace,
                        MatRef::from_row_major_slice(v, rows, p),
                        transposed.as_ref(),
                        1.0,
                        Par::Seq,
                    );
                    for (i, a) in out.iter_mut().enumerate() {
                        let row = &product[i * p..(i + 1) * p];
                        *a += u[i * p..(i + 1) * p]
                            .iter()
                            .zip(row)
                            .map(|(x, y)| x * y)
                            .sum::<f64>();
                    }
                }
                Term::Linear { function, weights } => {
                    let w = block(*function);
                    for (i, a) in out.iter_mut().enumerate() {
                        *a += w[i * p..(i + 1) * p]
                            .iter()
                            .zip(weights)
                            .map(|(x, y)| x * y)
                            .sum::<f64>();
                    }
                }
            }
        }
    }
}

/// Σᵢ aᵢ fᵢ gᵢᵀ for each pair (f, g) of `outer`, Σᵢ aᵢ fᵢ for each f of `vector`, and Σᵢ aᵢ,
/// over the samples.
pub(super) struct TiltSums {
    pub(super) outer: Vec<Array2<f64>>,
    pub(super) vector: Vec<Array1<f64>>,
    pub(super) total: f64,
}

/// One group's sums: the outer products (a square pair's lower triangle only), the
/// vectors, Σ a.
type GroupSums = (Vec<Mat<f64>>, Vec<Array1<f64>>, f64);

/// The sums of [`TiltSums`] for the tilt `tilt` on the samples' function values `values`
/// (each M×P, row-major).
///
/// # Panics
/// If a value matrix is not M×P in standard layout (the expansion builds them so).
pub(super) fn tilt_sums(
    values: &[Array2<f64>],
    tilt: &QuadraticTilt,
    outer: &[(usize, usize)],
    vector: &[usize],
) -> TiltSums {
    let (samples, p) = values.first().map_or((0, 0), |v| v.dim());
    let slices: Vec<&[f64]> = values
        .iter()
        .map(|v| v.as_slice().expect("sample values in standard layout"))
        .collect();
    let per_group = samples.div_ceil(GROUPS).max(1);
    let groups: Vec<GroupSums> = (0..GROUPS)
        .into_par_iter()
        .map(|g| {
            let start = (g * per_group).min(samples);
            let stop = ((g + 1) * per_group).min(samples);
            let mut outer_sums: Vec<Mat<f64>> = outer.iter().map(|_| Mat::zeros(p, p)).collect();
            let mut vector_sums = vec![Array1::<f64>::zeros(p); vector.len()];
            let mut total = 0.0;
            let mut a = vec![0.0; ROWS];
            let mut scratch = vec![0.0; ROWS * p];
            let mut first = start;
            while first < stop {
                let rows = ROWS.min(stop - first);
                let a = &mut a[..rows];
                tilt.on_rows(&slices, p, first, a, &mut scratch);
                total += a.iter().sum::<f64>();
                let block = |f: usize| &slices[f][first * p..(first + rows) * p];
                for (sum, &(f, g)) in outer_sums.iter_mut().zip(outer) {
                    let weighted = &mut scratch[..rows * p];
                    for (i, (w, x)) in weighted
                        .chunks_exact_mut(p)
                        .zip(block(f).chunks_exact(p))
                        .enumerate()
                    {
                        for (w, x) in w.iter_mut().zip(x) {
                            *w = a[i] * x;
                        }
                    }
                    triangular::matmul(
                        sum.as_mut(),
                        if f == g {
                            BlockStructure::TriangularLower
                        } else {
                            BlockStructure::Rectangular
                        },
                        Accum::Add,
                        MatRef::from_row_major_slice(weighted, rows, p).transpose(),
                        BlockStructure::Rectangular,
                        MatRef::from_row_major_slice(block(g), rows, p),
                        BlockStructure::Rectangular,
                        1.0,
                        Par::Seq,
                    );
                }
                for (sum, &f) in vector_sums.iter_mut().zip(vector) {
                    for (i, x) in block(f).chunks_exact(p).enumerate() {
                        for (s, x) in sum.iter_mut().zip(x) {
                            *s += a[i] * x;
                        }
                    }
                }
                first += rows;
            }
            (outer_sums, vector_sums, total)
        })
        .collect();
    let mut sums = TiltSums {
        outer: outer.iter().map(|_| Array2::zeros((p, p))).collect(),
        vector: vec![Array1::zeros(p); vector.len()],
        total: 0.0,
    };
    for (outer_sums, vector_sums, total) in groups {
        for ((s, g), &(f, h)) in sums.outer.iter_mut().zip(&outer_sums).zip(outer) {
            // a square pair's lower triangle, mirrored
            s.indexed_iter_mut().for_each(|((i, j), v)| {
                *v += if f == h && j > i {
                    g[(j, i)]
                } else {
                    g[(i, j)]
                };
            });
        }
        for (s, g) in sums.vector.iter_mut().zip(&vector_sums) {
            *s += g;
        }
        sums.total += total;
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    fn random(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f64> {
        Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
    }

    /// The pass equals the whole-sample products it replaces, for square, general and
    /// linear terms, on a sample count that leaves ragged groups and blocks.
    #[test]
    fn sums_equal_the_whole_sample_products() {
        let mut rng = StdRng::seed_from_u64(7);
        let (m, p) = (2 * GROUPS * ROWS + 37, 5);
        let values = vec![random(m, p, &mut rng), random(m, p, &mut rng)];
        // an indefinite square term, a general one and a linear one
        let square = random(p, p, &mut rng);
        let general = random(p, p, &mut rng);
        let r = Array1::from_shape_fn(p, |_| rng.random_range(-1.0..1.0));
        let terms = EvaluatedTilt {
            bilinear: vec![(square.clone(), 0, 0), (general.clone(), 1, 0)],
            linear: vec![(r.clone(), 1)],
        };
        let tilt = QuadraticTilt::new(&terms, |i| i);
        let sums = tilt_sums(&values, &tilt, &[(0, 0), (0, 1)], &[1]);
        let (f, g) = (&values[0], &values[1]);
        let a: Array1<f64> = (0..m)
            .map(|i| {
                let (u, v) = (f.row(i), g.row(i));
                u.dot(&square.dot(&u)) + v.dot(&general.dot(&u)) + r.dot(&v)
            })
            .collect();
        let weighted = f * &a.view().insert_axis(ndarray::Axis(1));
        let expected = [weighted.t().dot(f), weighted.t().dot(g)];
        for (got, want) in sums.outer.iter().zip(&expected) {
            let scale = want.iter().fold(0.0f64, |s, x| s.max(x.abs()));
            let error = (got - want).iter().fold(0.0f64, |s, x| s.max(x.abs()));
            assert!(error < 1e-12 * scale, "{error} vs {scale}");
        }
        let vector = g.t().dot(&a);
        let error = (&sums.vector[0] - &vector)
            .iter()
            .fold(0.0f64, |s, x| s.max(x.abs()));
        assert!(error < 1e-12 * vector.iter().fold(0.0f64, |s, x| s.max(x.abs())));
        assert!((sums.total - a.sum()).abs() < 1e-12 * a.iter().map(|x| x.abs()).sum::<f64>());
    }

    /// A zero tilt contributes nothing (the first application, at C̃ = 0).
    #[test]
    fn zero_tilt_gives_zero_sums() {
        let mut rng = StdRng::seed_from_u64(8);
        let values = vec![random(100, 3, &mut rng)];
        let terms = EvaluatedTilt {
            bilinear: vec![(Array2::zeros((3, 3)), 0, 0)],
            linear: vec![],
        };
        let sums = tilt_sums(&values, &QuadraticTilt::new(&terms, |i| i), &[(0, 0)], &[0]);
        assert!(sums.outer[0].iter().all(|x| *x == 0.0));
        assert!(sums.vector[0].iter().all(|x| *x == 0.0));
        assert_eq!(sums.total, 0.0);
    }

    /// A tilt matrix with a NaN is not dropped: the sums come out NaN for the caller's
    /// finiteness check.
    #[test]
    fn a_non_finite_tilt_propagates() {
        let mut rng = StdRng::seed_from_u64(9);
        let values = vec![random(50, 3, &mut rng)];
        let terms = EvaluatedTilt {
            bilinear: vec![(Array2::from_elem((3, 3), f64::NAN), 0, 0)],
            linear: vec![],
        };
        let sums = tilt_sums(&values, &QuadraticTilt::new(&terms, |i| i), &[(0, 0)], &[]);
        assert!(sums.total.is_nan());
        assert!(sums.outer[0].iter().all(|x| x.is_nan()));
    }
}
