//! MCMC convergence diagnostics: split-R-hat, effective sample size (ESS) and
//! Monte Carlo standard error, following Stan's implementation.
//!
//! Each chain of `n` draws is split into two halves, giving `M` sequences of
//! `N = floor(n/2)` draws (the middle draw of an odd chain is dropped). With
//! half-chain means `m_j`, sample variances `s_j²` (divisor `N-1`),
//! `W = mean_j s_j²` and `B/N = var_j(m_j)` (divisor `M-1`):
//!
//! * `var⁺ = (N-1)/N · W + B/N`, and split-R-hat `R̂ = sqrt(var⁺ / W)`.
//! * `ρ̂_t = 1 - (W - mean_j γ̂_{j,t}) / var⁺`, where `γ̂_{j,t}` is the biased
//!   (divisor `N`) autocovariance of half-chain `j` at lag `t`, by FFT.
//! * Geyer's initial monotone sequence: the pair sums `ρ̂_{2k} + ρ̂_{2k+1}` are
//!   kept up to the first negative pair and made non-increasing;
//!   `τ̂ = -1 + 2 Σ_{t<T} ρ̂_t + ρ̂_T` (Stan's antithetic correction), and
//!   `ESS = MN / max(τ̂, 1/log10(MN))`, so ESS is capped at `MN · log10(MN)`.
//!
//! These are the classic ("basic") split diagnostics, *not* rank-normalised:
//! `R̂` is Vehtari et al.'s split-R̂ before rank normalisation and the ESS is
//! the split-chain ESS of the raw draws (posterior's `rhat_basic` and
//! `ess_basic`). They assume a finite variance.
//!
//! No function returns NaN or infinity: a constant trace gives `ESS` = number
//! of draws and `R̂ = 1`; half-chains that are each constant but differ (where
//! `R̂` would be infinite) and overflowing values give
//! [`DiagnosticsError::Degenerate`].
//!
//! References: Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021),
//! "Rank-normalization, folding, and localization: an improved R-hat for
//! assessing convergence of MCMC", Bayesian Analysis 16(2); Geyer (1992),
//! "Practical Markov chain Monte Carlo", Statistical Science 7(4).

use std::f64::consts::PI;
use thiserror::Error;

/// Minimum number of draws per chain accepted by [`summarize`].
const MIN_DRAWS: usize = 4;

/// Summary of one scalar quantity sampled by several Markov chains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainSummary {
    /// Mean over all draws of all chains.
    pub mean: f64,
    /// Posterior standard deviation over all draws pooled (divisor `n-1`).
    pub std_dev: f64,
    /// Monte Carlo standard error of the mean, `std_dev / sqrt(ess)`.
    pub std_error: f64,
    /// Multi-chain split ESS (not rank-normalised), see the module docs.
    pub ess: f64,
    /// Classic split-R-hat (not rank-normalised).
    pub rhat: f64,
}

/// Why a diagnostic could not be computed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DiagnosticsError {
    /// No chains.
    #[error("no chains were given")]
    NoChains,
    /// Chains of different lengths.
    #[error(
        "chains have unequal lengths: chain 0 has {expected} draws but chain {chain} has {found}"
    )]
    UnequalLengths {
        /// The chain that differs.
        chain: usize,
        /// Draws of chain 0.
        expected: usize,
        /// Draws of that chain.
        found: usize,
    },
    /// Too short chains.
    #[error("too few draws per chain: {found}, need at least {required}")]
    TooFewDraws {
        /// Draws per chain.
        found: usize,
        /// The minimum.
        required: usize,
    },
    /// A NaN or infinite draw.
    #[error("non-finite value in chain {chain} at draw {draw}")]
    NonFinite {
        /// The chain.
        chain: usize,
        /// The draw.
        draw: usize,
    },
    /// An argument out of range, in words.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A trace whose diagnostics do not exist (infinite R-hat, overflow).
    #[error("degenerate trace: {0}")]
    Degenerate(&'static str),
}

const CONSTANT_HALVES: &str =
    "every half-chain is constant but their values differ, so split-R-hat is infinite";
const OVERFLOW: &str = "the values are too large: a variance overflowed";

fn invalid<T>(message: String) -> Result<T, DiagnosticsError> {
    Err(DiagnosticsError::InvalidArgument(message))
}

/// `Ok(value)` when `ok`, else the overflow error (NaN and inf never escape).
fn finite<T>(ok: bool, value: T) -> Result<T, DiagnosticsError> {
    ok.then_some(value)
        .ok_or(DiagnosticsError::Degenerate(OVERFLOW))
}

/// Mean, standard deviation, MCSE, split ESS and split-R-hat of `chains`.
///
/// `chains` holds one slice per chain, all of the same length `n >= 4`, with
/// finite values. A trace that is constant overall gives `ess` = total draws
/// and `rhat = 1`; one whose half-chains are each constant but not all equal
/// is [`DiagnosticsError::Degenerate`]. ESS from very short chains is crude.
pub fn summarize(chains: &[&[f64]]) -> Result<ChainSummary, DiagnosticsError> {
    let n = validate(chains)?;
    let total = (chains.len() * n) as f64;
    let all = || chains.iter().flat_map(|c| c.iter().copied());
    let first = chains[0][0];
    let (mean, std_dev, ess, rhat) = if all().all(|x| x == first) {
        (first, 0.0, total, 1.0)
    } else {
        let mean = all().sum::<f64>() / total;
        let ss = all().map(|x| (x - mean) * (x - mean)).sum::<f64>();
        let std_dev = (ss / (total - 1.0)).sqrt();
        finite(mean.is_finite() && std_dev.is_finite(), ())?;
        let half = n / 2;
        let split = chains.iter().flat_map(|&c| [&c[..half], &c[n - half..]]);
        let halves: Vec<&[f64]> = split.collect();
        let moments: Vec<(f64, f64)> = halves.iter().map(|h| moments(h)).collect();
        let rhat = rhat_from_moments(&moments, half)?;
        (mean, std_dev, split_ess(&halves, &moments)?, rhat)
    };
    let std_error = std_dev / ess.sqrt();
    Ok(ChainSummary {
        mean,
        std_dev,
        std_error,
        ess,
        rhat,
    })
}

/// ESS and standard error of the mean from batch means, for quantities whose
/// full traces are too large to keep.
///
/// `batch_means[c][b]` is the mean of batch `b` of chain `c`, every batch made
/// of `batch_size` draws (chains may hold different numbers of batches);
/// `within_var` is the pooled per-draw variance. With `K` batch means in all,
/// `N = K · batch_size` draws and `V` the sample variance (divisor `K-1`) of
/// all batch means about their grand mean (so that disagreeing chains lower
/// the ESS, as `var⁺` does in [`summarize`]):
/// `ess = N · within_var / (batch_size · V)`, clamped to
/// `[1, N · max(1, log10 N)]` (Stan's cap, which is also returned when `V = 0`
/// but `within_var > 0`; a constant trace gives `ess = N`), and
/// `std_error = sqrt(V / K)`. Batches should be much longer than the
/// autocorrelation time, otherwise the ESS is overestimated.
pub fn batch_means_summary(
    batch_means: &[&[f64]],
    batch_size: usize,
    within_var: f64,
) -> Result<(f64, f64), DiagnosticsError> {
    if batch_means.is_empty() {
        return Err(DiagnosticsError::NoChains);
    }
    if batch_size == 0 {
        return invalid("batch_size must be at least 1".into());
    }
    if !within_var.is_finite() || within_var < 0.0 {
        return invalid("within_var must be finite and non-negative".into());
    }
    for (c, chain) in batch_means.iter().enumerate() {
        if let Some(b) = chain.iter().position(|x| !x.is_finite()) {
            return invalid(format!("non-finite batch mean in chain {c}, batch {b}"));
        }
    }
    let values: Vec<f64> = batch_means.iter().flat_map(|c| c.iter().copied()).collect();
    if values.len() < 2 {
        return invalid(format!("need at least 2 batch means, got {}", values.len()));
    }
    let k = values.len() as f64;
    let total = k * batch_size as f64;
    let (_, var_bm) = moments(&values);
    let cap = total * total.log10().max(1.0);
    let ess = match (var_bm == 0.0, within_var == 0.0) {
        (true, true) => total,
        (true, false) => cap,
        (false, true) => return invalid("within_var is 0 but the batch means differ".into()),
        (false, false) => (total * within_var / (batch_size as f64 * var_bm)).clamp(1.0, cap),
    };
    let std_error = (var_bm / k).sqrt();
    finite(ess.is_finite() && std_error.is_finite(), (ess, std_error))
}

/// Split-R-hat from per-half-chain moments, for streamed quantities:
/// `halves[i] = (mean, variance with divisor n-1, draws)` of half-chain `i`
/// (two per chain). All halves must have the same number of draws (`>= 2`);
/// chain indices in [`DiagnosticsError::UnequalLengths`] count halves here.
/// Same value as [`summarize`]'s `rhat` for the same halves.
pub fn split_rhat_from_moments(halves: &[(f64, f64, usize)]) -> Result<f64, DiagnosticsError> {
    let &(_, _, n) = halves.first().ok_or(DiagnosticsError::NoChains)?;
    if halves.len() < 2 {
        return invalid("need at least 2 half-chains, got 1".into());
    }
    for (chain, &(mean, var, found)) in halves.iter().enumerate() {
        if found != n {
            return Err(DiagnosticsError::UnequalLengths {
                chain,
                expected: n,
                found,
            });
        }
        if !mean.is_finite() || !var.is_finite() || var < 0.0 {
            return invalid(format!(
                "half-chain {chain}: mean and variance must be finite, variance >= 0"
            ));
        }
    }
    if n < 2 {
        return Err(DiagnosticsError::TooFewDraws {
            found: n,
            required: 2,
        });
    }
    let moments: Vec<(f64, f64)> = halves.iter().map(|&(m, v, _)| (m, v)).collect();
    rhat_from_moments(&moments, n)
}

/// Checks the chains and returns their common length.
fn validate(chains: &[&[f64]]) -> Result<usize, DiagnosticsError> {
    use DiagnosticsError as E;
    let expected = chains.first().ok_or(E::NoChains)?.len();
    for (chain, c) in chains.iter().enumerate() {
        let found = c.len();
        if found != expected {
            return Err(E::UnequalLengths {
                chain,
                expected,
                found,
            });
        }
    }
    if expected < MIN_DRAWS {
        return Err(E::TooFewDraws {
            found: expected,
            required: MIN_DRAWS,
        });
    }
    for (chain, c) in chains.iter().enumerate() {
        if let Some(draw) = c.iter().position(|x| !x.is_finite()) {
            return Err(E::NonFinite { chain, draw });
        }
    }
    Ok(expected)
}

/// Mean and sample variance (divisor `len-1`, `len >= 2`); exactly `(x0, 0)`
/// for a constant slice, so that constancy is detected without rounding noise.
fn moments(x: &[f64]) -> (f64, f64) {
    if x.iter().all(|&v| v == x[0]) {
        return (x[0], 0.0);
    }
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    let ss: f64 = x.iter().map(|&v| (v - mean) * (v - mean)).sum();
    (mean, ss / (x.len() - 1) as f64)
}

/// Mean of the variances `W` and variance of the means (divisor `M-1`).
fn within_between(moments: &[(f64, f64)]) -> (f64, f64) {
    let m = moments.len() as f64;
    let w = moments.iter().map(|p| p.1).sum::<f64>() / m;
    let grand = moments.iter().map(|p| p.0).sum::<f64>() / m;
    let sq = |p: &(f64, f64)| (p.0 - grand) * (p.0 - grand);
    (w, moments.iter().map(sq).sum::<f64>() / (m - 1.0))
}

/// Classic split-R-hat from half-chain (mean, variance) pairs of `n` draws.
fn rhat_from_moments(moments: &[(f64, f64)], n: usize) -> Result<f64, DiagnosticsError> {
    let (w, b_over_n) = within_between(moments);
    match (w == 0.0, b_over_n == 0.0) {
        (true, true) => return Ok(1.0),
        (true, false) => return Err(DiagnosticsError::Degenerate(CONSTANT_HALVES)),
        _ => {}
    }
    let nf = n as f64;
    let rhat = (((nf - 1.0) / nf * w + b_over_n) / w).sqrt();
    finite(rhat.is_finite(), rhat)
}

/// Stan's multi-chain ESS with Geyer's initial monotone sequence, applied to
/// the half-chains (all of equal length `>= 2`, not all constant).
fn split_ess(halves: &[&[f64]], moments: &[(f64, f64)]) -> Result<f64, DiagnosticsError> {
    let n = halves[0].len();
    let (mean_var, between) = within_between(moments);
    let var_plus = mean_var * (n - 1) as f64 / n as f64 + between;
    let total = (halves.len() * n) as f64;
    if var_plus == 0.0 {
        return Ok(total); // equal constant halves; an odd chain's middle draw differs
    }
    let acov: Vec<Vec<f64>> = halves
        .iter()
        .zip(moments)
        .map(|(h, m)| autocovariance(h, m.0))
        .collect();
    let m = halves.len() as f64;
    let rho_at =
        |t: usize| 1.0 - (mean_var - acov.iter().map(|a| a[t]).sum::<f64>() / m) / var_plus;

    let mut rho = vec![0.0; n];
    let (mut even, mut odd) = (1.0, rho_at(1));
    rho[0] = even;
    rho[1] = odd;
    let mut t = 0;
    // Geyer's initial positive sequence; the last pairs stay out as a bias term.
    while t + 5 < n && even + odd > 0.0 {
        t += 2;
        even = rho_at(t);
        odd = rho_at(t + 1);
        if even + odd >= 0.0 {
            rho[t] = even;
            rho[t + 1] = odd;
        }
    }
    let max_t = t;
    if even > 0.0 {
        rho[max_t] = even; // Stan's improved estimate for antithetic chains.
    }
    // Initial monotone sequence: pair sums must not increase.
    let mut t = 0;
    while t + 4 <= max_t {
        t += 2;
        let prev = rho[t - 2] + rho[t - 1];
        if rho[t] + rho[t + 1] > prev {
            rho[t] = prev / 2.0;
            rho[t + 1] = prev / 2.0;
        }
    }
    let tau = -1.0 + 2.0 * rho[..max_t].iter().sum::<f64>() + rho[max_t];
    let ess = total / tau.max(1.0 / total.log10());
    finite(ess.is_finite(), ess)
}

/// Biased autocovariance `γ_t = (1/n) Σ_i (x_i - mean)(x_{i+t} - mean)` for
/// `t = 0..n`, by FFT on a zero-padded copy (no circular wrap-around).
fn autocovariance(x: &[f64], mean: f64) -> Vec<f64> {
    let n = x.len();
    let size = (2 * n).next_power_of_two();
    let mut re = vec![0.0; size];
    let mut im = vec![0.0; size];
    for (r, &v) in re.iter_mut().zip(x) {
        *r = v - mean;
    }
    fft(&mut re, &mut im);
    for (r, i) in re.iter_mut().zip(im.iter_mut()) {
        *r = *r * *r + *i * *i;
        *i = 0.0;
    }
    // The power spectrum is real and even, so a forward FFT is `size` times
    // the inverse one.
    fft(&mut re, &mut im);
    let scale = 1.0 / (size as f64 * n as f64);
    re.truncate(n);
    re.iter_mut().for_each(|v| *v *= scale);
    re
}

/// In-place iterative radix-2 forward FFT; the length must be a power of two.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let half = len / 2;
        for k in 0..half {
            let (s, c) = (-2.0 * PI * k as f64 / len as f64).sin_cos();
            for a in (k..n).step_by(len) {
                let b = a + half;
                let (tr, ti) = (re[b] * c - im[b] * s, re[b] * s + im[b] * c);
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};
    use rand_distr::{Distribution, StandardNormal};

    fn normals(rng: &mut StdRng, n: usize) -> Vec<f64> {
        (0..n).map(|_| StandardNormal.sample(rng)).collect()
    }

    /// Stationary AR(1) chains `x_t = rho x_{t-1} + sqrt(1-rho²) e_t`, unit variance.
    fn ar1(rho: f64, chains: usize, n: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let s = (1.0 - rho * rho).sqrt();
        let mut chain = |_: usize| -> Vec<f64> {
            let e = normals(&mut rng, n + 1);
            let step = |x: &mut f64, e: &f64| Some(std::mem::replace(x, rho * *x + s * e));
            e[1..].iter().scan(e[0], step).collect()
        };
        (0..chains).map(&mut chain).collect()
    }

    fn refs(v: &[Vec<f64>]) -> Vec<&[f64]> {
        v.iter().map(Vec::as_slice).collect()
    }

    fn message<T: std::fmt::Debug>(r: Result<T, DiagnosticsError>) -> String {
        r.expect_err("invalid input must be rejected").to_string()
    }

    #[test]
    fn fft_autocovariance_matches_direct_sum() {
        let x = normals(&mut StdRng::seed_from_u64(7), 37);
        let mean = x.iter().sum::<f64>() / 37.0;
        for (t, g) in autocovariance(&x, mean).iter().enumerate() {
            let lagged = (0..37 - t).map(|i| (x[i] - mean) * (x[i + t] - mean));
            let direct = lagged.sum::<f64>() / 37.0;
            assert!((g - direct).abs() < 1e-12, "lag {t}: {g} vs {direct}");
        }
    }

    #[test]
    fn ar1_ess_std_error_and_rhat() {
        let (rho, n) = (0.9, 20_000);
        let chains = ar1(rho, 4, n, 1);
        let s = summarize(&refs(&chains)).expect("valid chains");
        let exact_ess = 4.0 * n as f64 * (1.0 - rho) / (1.0 + rho); // ≈ 4210.5
        // Over 300 seeds this estimator had bias -0.6 % and sd 4.5 % relative
        // to the exact ESS, so 15 % is > 3 sd (this seed: -10.8 %).
        let ess_err = s.ess / exact_ess - 1.0;
        assert!(ess_err.abs() < 0.15, "ess {} vs {exact_ess}", s.ess);
        // The stationary sd is exactly 1; the SE errs by about half the ESS
        // error plus the sample-sd error (sd 2.7 % over 300 seeds).
        let exact_se = (1.0 / exact_ess).sqrt();
        let se_err = s.std_error / exact_se - 1.0;
        assert!(se_err.abs() < 0.15, "se {} vs {exact_se}", s.std_error);
        // R̂ - 1 ≈ var(half means)/(2W) ≈ 1/(2·526) ≈ 0.001 (8 halves of ESS ≈ 526);
        // the largest of 300 seeds was 1.003.
        assert!(s.rhat < 1.01, "rhat {}", s.rhat);
    }

    #[test]
    fn independent_normals() {
        let mut rng = StdRng::seed_from_u64(2);
        let chains: Vec<Vec<f64>> = (0..4).map(|_| normals(&mut rng, 10_000)).collect();
        let s = summarize(&refs(&chains)).expect("valid chains");
        // τ̂ sums only a few noisy lags: relative sd ≈ 2 %, worst of 40 seeds 4.7 %.
        assert!((s.ess / 40_000.0 - 1.0).abs() < 0.10, "ess {}", s.ess);
        // R̂ - 1 ≈ (chi²_7/7 - 1)/(2·5000) ~ 1e-4; 5e-3 is far outside the noise.
        assert!((s.rhat - 1.0).abs() < 5e-3, "rhat {}", s.rhat);
        // sd of the sample sd ≈ 1/sqrt(2·40000) ≈ 0.0035.
        assert!((s.std_dev - 1.0).abs() < 0.02, "sd {}", s.std_dev);
    }

    #[test]
    fn shifted_chain_gives_large_rhat() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut chains: Vec<Vec<f64>> = (0..4).map(|_| normals(&mut rng, 1000)).collect();
        chains[0].iter_mut().for_each(|x| *x += 3.0);
        let s = summarize(&refs(&chains)).expect("valid chains");
        // 2 of 8 half means at 3, 6 at 0: var(means) = 13.5/7 ≈ 1.93 and W ≈ 1,
        // so R̂ ≈ sqrt(2.93) ≈ 1.71, with noise ~0.01.
        assert!(s.rhat > 1.5, "rhat {}", s.rhat);
    }

    #[test]
    fn batch_means_and_streamed_rhat_agree() {
        let (rho, n, b) = (0.9, 20_000, 500);
        let chains = ar1(rho, 4, n, 1);
        let exact_ess = 4.0 * n as f64 * (1.0 - rho) / (1.0 + rho);
        let batch = |c: &Vec<f64>| {
            c.chunks(b)
                .map(|k| k.iter().sum::<f64>() / b as f64)
                .collect()
        };
        let batches: Vec<Vec<f64>> = chains.iter().map(batch).collect();
        let within = chains.iter().map(|c| moments(c).1).sum::<f64>() / 4.0;
        let (ess, se) = batch_means_summary(&refs(&batches), b, within).expect("valid batches");
        // 160 batch means: the variance estimate has relative sd sqrt(2/159) ≈ 11 %
        // (11.3 % over 300 seeds), and batches of 500 ≫ τ = 19 bias it by only
        // ≈ -2 %, so 25 % is ≈ 2.2 sd (this seed: -1.4 %).
        assert!(
            (ess / exact_ess - 1.0).abs() < 0.25,
            "batch ess {ess} vs {exact_ess}"
        );
        assert!((se / (within / ess).sqrt() - 1.0).abs() < 1e-12);

        let half = |h: &[f64]| (moments(h).0, moments(h).1, h.len());
        let halves: Vec<_> = chains
            .iter()
            .flat_map(|c| [half(&c[..n / 2]), half(&c[n / 2..])])
            .collect();
        let streamed = split_rhat_from_moments(&halves).expect("valid halves");
        let s = summarize(&refs(&chains)).expect("valid chains");
        // Same arithmetic on the same moments: only rounding can differ.
        assert!(
            (streamed - s.rhat).abs() < 1e-12,
            "{streamed} vs {}",
            s.rhat
        );
    }

    #[test]
    fn antithetic_ess_exceeds_draws_but_is_capped() {
        // AR(1) with rho = -0.5: exact ESS = 3N, below the cap N log10 N ≈ 3.9 N.
        let s = summarize(&refs(&ar1(-0.5, 2, 4000, 4))).expect("valid chains");
        assert!(
            s.ess > 8000.0 && s.ess <= 8000.0 * 8000f64.log10(),
            "ess {}",
            s.ess
        );
    }

    #[test]
    fn errors() {
        let (a, b, nan) = ([1.0, 2.0, 3.0, 4.0], [1.0; 5], [1.0, 2.0, f64::NAN, 4.0]);
        let moments = split_rhat_from_moments;
        #[rustfmt::skip]
        let cases = [
            (message(summarize(&[])), "no chains were given"),
            (message(summarize(&[&a, &b])), "unequal lengths: chain 0 has 4 draws but chain 1 has 5"),
            (message(summarize(&[&a[..3]])), "too few draws per chain: 3, need at least 4"),
            (message(summarize(&[&a, &nan])), "non-finite value in chain 1 at draw 2"),
            (message(summarize(&[&[1.0, 1.0, 2.0, 2.0]])), "half-chain is constant"),
            (message(summarize(&[&[1e300, -1e300, 1e300, 2.0]])), "overflowed"),
            (message(batch_means_summary(&[], 10, 1.0)), "no chains were given"),
            (message(batch_means_summary(&[&a], 0, 1.0)), "batch_size must be at least 1"),
            (message(batch_means_summary(&[&a], 5, -1.0)), "within_var must be finite"),
            (message(batch_means_summary(&[&nan], 5, 1.0)), "in chain 0, batch 2"),
            (message(batch_means_summary(&[&a[..1]], 5, 1.0)), "at least 2 batch means"),
            (message(batch_means_summary(&[&a], 5, 0.0)), "within_var is 0"),
            (message(moments(&[])), "no chains were given"),
            (message(moments(&[(0.0, 1.0, 5), (0.0, 1.0, 6)])), "5 draws but chain 1 has 6"),
            (message(moments(&[(0.0, 1.0, 1), (0.0, 1.0, 1)])), "too few draws per chain: 1"),
            (message(moments(&[(0.0, f64::NAN, 5), (0.0, 1.0, 5)])), "half-chain 0"),
            (message(moments(&[(0.0, 0.0, 5), (1.0, 0.0, 5)])), "split-R-hat is infinite"),
        ];
        for (got, want) in cases {
            assert!(got.contains(want), "{got:?} should contain {want:?}");
        }
    }

    #[test]
    fn constant_trace() {
        let c = [0.1; 10];
        let s = summarize(&[&c, &c, &c]).expect("a constant trace is valid");
        assert_eq!((s.mean, s.std_dev, s.std_error), (0.1, 0.0, 0.0));
        assert_eq!((s.ess, s.rhat), (30.0, 1.0));
        // Odd chains drop their middle draw from the halves, which are then constant.
        let s = summarize(&[&[1.0, 1.0, 5.0, 1.0, 1.0]]).expect("finite draws");
        assert_eq!((s.ess, s.rhat), (4.0, 1.0));
        assert_eq!(
            split_rhat_from_moments(&[(0.1, 0.0, 5), (0.1, 0.0, 5)]),
            Ok(1.0)
        );
        assert_eq!(batch_means_summary(&[&[0.1; 4]], 5, 0.0), Ok((20.0, 0.0)));
    }
}
