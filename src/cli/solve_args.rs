//! The arguments of `saddle solve` ([`SolveArgs`]): method, expectations, iteration and
//! order of the finite-width solvers, shared by the NNGP path ([`super::solve`]) and the
//! finite-width path ([`super::finite_width`]).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::options::parse_set;
use super::sweep::SweepArgs;

/// Solution methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Infinite width: the NNGP kernel and exact GP inference.
    Nngp,
    /// Finite width N: the full saddle point of the action (MAP kernels of every layer):
    /// Newton's method with P-dimensional quadrature for P ≤ 3, forward–backward sweeps
    /// with Gaussian closed forms or importance sampling for any P (`--expectations`).
    Map,
    /// Finite width N: the posterior-mean kernels, the MAP plus the prior one-loop shift m/N
    /// (THEORY.md §4.5) — what a trained network's kernels average to; the MAP beside them.
    /// The shift is integrated pattern pair by pair (seconds a pair: tens of patterns).
    Posterior,
    /// Finite width N: the linearised fluctuation system around the NNGP point (one Newton
    /// step): P-dimensional quadrature for P ≤ 3, matrix-free with the expectations of
    /// `map` (closed forms or importance sampling) for any P (`--expectations`).
    Linear,
}

/// How the tilted expectations of the finite-width methods are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Expectations {
    /// P-dimensional quadrature for P ≤ 3, `scalable` beyond.
    Auto,
    /// P-dimensional Gauss–Hermite quadrature (exact, P ≤ 3).
    Quadrature,
    /// Gaussian closed forms where the tilt is quadratic (linear units), importance
    /// sampling elsewhere; any P.
    Scalable,
    /// Importance sampling everywhere (a check of the closed forms).
    MonteCarlo,
}

/// Which terms of the linearised system (THEORY.md §4.4) enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LinearOrder {
    /// Every block, H δC⁽ᴸ⁾ included (one Newton step of the full action).
    Full,
    /// Without the (C, C) blocks: C̃ is the back-propagated data gradient.
    Leading,
}

impl From<LinearOrder> for crate::solve::fluctuation::Order {
    fn from(order: LinearOrder) -> Self {
        match order {
            LinearOrder::Full => Self::Full,
            LinearOrder::Leading => Self::Leading,
        }
    }
}

/// How `map` and `posterior` iterate to the saddle point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Iterate {
    /// Damped sweeps with Anderson acceleration.
    Anderson,
    /// Plain damped sweeps (no acceleration).
    Damped,
    /// Newton's method, its linear systems by GMRES on differenced sweeps.
    NewtonKrylov,
}

/// Arguments of `saddle solve`.
#[derive(Debug, Clone, Args)]
pub struct SolveArgs {
    /// The `.action` file.
    pub file: PathBuf,
    /// Training inputs (P×d, `.npy` or `.csv`).
    #[arg(long = "x", value_name = "X")]
    pub x: PathBuf,
    /// Training targets (P×D; ±1 for two classes, one-hot for several).
    #[arg(long = "y", value_name = "Y")]
    pub y: PathBuf,
    /// Test inputs (needed by `--method nngp`; `map` and `linear` adapt their kernel rows too
    /// and predict with the finite-width kernel).
    #[arg(long = "x-test", value_name = "XT")]
    pub x_test: Option<PathBuf>,
    /// Test targets (for MSE and accuracy).
    #[arg(long = "y-test", value_name = "YT")]
    pub y_test: Option<PathBuf>,
    /// Override a parameter: `--set kappa=0.01`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, f64)>,
    /// How to solve.
    #[arg(long, value_enum, default_value = "nngp")]
    pub method: Method,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Write `result.json` and every matrix as `.npy` into this directory (the training
    /// kernel, the predictive mean and variance; every layer's kernels for `map`/`linear`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Draw the training kernel into this `.svg` / `.png`, patterns sorted by class: the
    /// NNGP readout kernel, or (map, linear) the last layer's NNGP beside its finite-width
    /// kernel.
    #[arg(long, value_name = "FIGURE")]
    pub plot: Option<PathBuf>,
    /// Gauss–Hermite order: per pair for activations without a closed form (`nngp`, default
    /// 80; tanh and smooth user functions go through the Mehler expansion, whose per-pair
    /// fallback uses this order or 160, whichever is higher), per dimension of the
    /// P-dimensional tilted expectations (`map`, `linear`, default 64).
    #[arg(long, value_parser = super::quadrature_order())]
    pub quadrature: Option<usize>,
    /// How `map` and `linear` compute the tilted expectations.
    #[arg(long, value_enum, default_value = "auto")]
    pub expectations: Expectations,
    /// Monte Carlo samples per population (`map`, `linear` with sampled expectations).
    #[arg(long, default_value_t = 20_000)]
    pub samples: usize,
    /// Seed of the Monte Carlo samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Which terms of the linearised system enter (`--method linear`; default full).
    #[arg(long, value_enum)]
    pub order: Option<LinearOrder>,
    /// How `map` and `posterior` iterate to the saddle point (default anderson); every
    /// evaluation of the sweep map counts as one sweep.
    #[arg(long, value_enum)]
    pub iterate: Option<Iterate>,
    #[command(flatten)]
    pub sweep: SweepArgs,
}
