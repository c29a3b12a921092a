//! Which pattern pairs a kernel map computes.

/// Which pattern pairs to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairSet {
    /// All pairs.
    All,
    /// Pairs with at least one of the first `n` patterns, and the diagonal (train kernel,
    /// train–test cross kernel and test variances; test–test covariances are skipped).
    TrainAndCross(usize),
}

impl PairSet {
    /// Whether the pair (α, β) is computed.
    #[inline]
    pub fn includes(self, a: usize, b: usize) -> bool {
        match self {
            PairSet::All => true,
            PairSet::TrainAndCross(n) => a < n || b < n || a == b,
        }
    }
}

/// The end of the pair columns computed on row `a` (from `a`; the rest of the row is 0).
pub(super) fn needed_end(pairs: PairSet, a: usize, p: usize) -> usize {
    match pairs {
        PairSet::All => p,
        PairSet::TrainAndCross(n) if a < n => p,
        PairSet::TrainAndCross(_) => a + 1,
    }
}
