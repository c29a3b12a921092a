//! # GP prediction with the NNGP kernel of a theory
//!
//! ## Equations
//! The readout kernel K (THEORY.md §3) on train ∪ test patterns gives K(X, X), k* and k**;
//! the posterior mean is k*ᵀ (K + κI)⁻¹ Y and the latent variance k** − k*ᵀ (K + κI)⁻¹ k*
//! ([`crate::solve::gp`]). Test–test covariances are never computed: every NNGP map is
//! entry-wise, so the train–train, train–test and test-diagonal entries close on themselves.

use ndarray::{Array1, Array2, ArrayView2, Axis, concatenate, s};

use crate::check::ir::{ExprKind, Theory};
use crate::derive::unroll::{IndexEnv, unroll};
use crate::numeric::kernel_map::hermite::ExpansionReport;
use crate::numeric::matrix::Value;
use crate::solve::gp::{GpResult, regress};
use crate::solve::nngp::{
    Keep, Kernels, NngpError, NngpSettings, PairSet, evaluate_matrix, evaluate_value, nngp_kernels,
    parameter_values,
};
use crate::solve::readout::{Readout, find_readout};

/// Everything an NNGP prediction produced.
#[derive(Debug)]
pub struct NngpPrediction {
    /// The readout noise κ used.
    pub noise: f64,
    /// GP posterior, metrics and jitter.
    pub gp: GpResult,
}

/// Errors of a prediction: the kernel computation or the GP.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// Computing the kernels failed.
    #[error(transparent)]
    Kernels(#[from] NngpError),
    /// The action has no recognisable data term.
    #[error(
        "the action has no data term `tr(Y^T inv(K + kappa * I) Y)` / `logdet(K + kappa * I)` to read the output kernel from"
    )]
    NoReadout,
    /// The GP step failed.
    #[error(transparent)]
    Gp(#[from] crate::solve::gp::GpError),
    /// Shapes of the data do not fit together.
    #[error("{0}")]
    Shape(String),
}

/// The readout kernel of `theory` on `x` (all pairs), with the noise κ.
pub fn readout_kernel(
    theory: &Theory,
    x: ArrayView2<f64>,
    outputs: Option<usize>,
    settings: &NngpSettings,
) -> Result<(Array2<f64>, f64, Kernels), PredictError> {
    let kernels = nngp_kernels(
        theory,
        x,
        None,
        &NngpSettings {
            outputs,
            ..settings.clone()
        },
    )?;
    let mut kernels = kernels;
    let (kernel, noise) = evaluate_readout(theory, x, &mut kernels, false, settings, outputs)?;
    Ok((kernel, noise, kernels))
}

/// The parameter values and the readout of the unrolled action.
fn unrolled_readout(
    theory: &Theory,
    settings: &NngpSettings,
) -> Result<(Vec<f64>, Readout), PredictError> {
    let params = parameter_values(theory, &settings.overrides)?;
    let ints: Vec<i64> = theory
        .params
        .iter()
        .zip(&params)
        .map(|(p, v)| {
            if p.ty == crate::check::ir::ParamType::Int {
                *v as i64
            } else {
                0
            }
        })
        .collect();
    let action = unroll(&theory.action.body, &IndexEnv::new(), &ints).map_err(NngpError::from)?;
    let readout = find_readout(&action).ok_or(PredictError::NoReadout)?;
    Ok((params, readout))
}

/// The readout noise κ and the names of the parameters it is written with, evaluated without
/// computing any kernel (κ may not read the fields; a κ that does is an error here).
pub fn readout_noise(
    theory: &Theory,
    x: ArrayView2<f64>,
    settings: &NngpSettings,
) -> Result<(f64, Vec<String>), PredictError> {
    let (params, readout) = unrolled_readout(theory, settings)?;
    let value = noise_value(theory, &params, x, None, &Kernels::default(), &readout)?;
    let mut names = Vec::new();
    readout.noise.any(&mut |e| {
        if let ExprKind::Param(id) = e.kind
            && !names.contains(&theory.params[id].name)
        {
            names.push(theory.params[id].name.clone());
        }
        false
    });
    Ok((value, names))
}

/// κ of a readout: a scalar.
fn noise_value(
    theory: &Theory,
    params: &[f64],
    x: ArrayView2<f64>,
    targets: Option<ArrayView2<f64>>,
    kernels: &Kernels,
    readout: &Readout,
) -> Result<f64, PredictError> {
    let what = "the readout noise";
    match evaluate_value(theory, params, x, targets, kernels, &readout.noise, what)? {
        Value::Scalar(noise) => Ok(noise),
        Value::Matrix(m) => Err(PredictError::Shape(format!(
            "the readout noise must be a scalar κ (as in inv(K + kappa * I)), not a {}×{} matrix",
            m.nrows(),
            m.ncols()
        ))),
    }
}

/// The field entries the readout kernel reads (what a prediction must keep).
pub fn readout_fields(
    theory: &Theory,
    settings: &NngpSettings,
) -> Result<Vec<(usize, Vec<i64>)>, PredictError> {
    let (_, readout) = unrolled_readout(theory, settings)?;
    let mut keys = Vec::new();
    collect_fields(&readout.kernel, &mut keys);
    Ok(keys)
}

fn collect_fields(e: &crate::check::ir::Expr, out: &mut Vec<(usize, Vec<i64>)>) {
    if let crate::check::ir::ExprKind::Field { field, indices } = &e.kind {
        out.push((*field, indices.iter().map(|i| i.constant).collect()));
    }
    crate::check::for_each_child(e, |c| collect_fields(c, out));
}

/// The readout kernel and noise of `theory` from its field kernels. With `move_out`, a readout
/// kernel that is a field entry itself (`C[L]`) is moved out of `kernels` rather than copied.
fn evaluate_readout(
    theory: &Theory,
    x: ArrayView2<f64>,
    kernels: &mut Kernels,
    move_out: bool,
    settings: &NngpSettings,
    outputs: Option<usize>,
) -> Result<(Array2<f64>, f64), PredictError> {
    let (params, readout) = unrolled_readout(theory, settings)?;
    let dummy_targets = outputs.map(|d| Array2::zeros((x.nrows(), d)));
    let noise = noise_value(
        theory,
        &params,
        x,
        dummy_targets.as_ref().map(|t| t.view()),
        kernels,
        &readout,
    )?;
    if let (true, ExprKind::Field { field, indices }) = (move_out, &readout.kernel.kind) {
        let key = (
            *field,
            indices.iter().map(|i| i.constant).collect::<Vec<_>>(),
        );
        if let Some(kernel) = kernels.entries.remove(&key) {
            return Ok((kernel, noise));
        }
    }
    let kernel = evaluate_matrix(
        theory,
        &params,
        x,
        dummy_targets.as_ref().map(|t| t.view()),
        kernels,
        &readout.kernel,
        "the readout kernel",
    )?;
    crate::solve::nngp::validate_covariance("the readout kernel", &kernel)?;
    Ok((kernel, noise))
}

/// The readout kernel blocks a GP prediction needs: K(X, X), K(X, X*) and diag K(X*, X*).
#[derive(Debug)]
pub struct PredictionKernels {
    /// Train–train kernel K(X, X), P×P.
    pub train: Array2<f64>,
    /// Train–test kernel K(X, X*), P×P*.
    pub cross: Array2<f64>,
    /// Test variances diag K(X*, X*).
    pub test_diagonal: Array1<f64>,
    /// The readout noise κ.
    pub noise: f64,
    /// Entries computed by the Mehler expansion, by name, with their reports
    /// ([`super::nngp::Kernels::expansions`]).
    pub expansions: Vec<(String, ExpansionReport)>,
}

/// The readout kernel on train ∪ test patterns, split into the blocks a GP needs. Peak memory
/// is that of the NNGP recursion on P + P* patterns; the train block is compacted in place.
pub fn prediction_kernels(
    theory: &Theory,
    x_train: ArrayView2<f64>,
    x_test: ArrayView2<f64>,
    outputs: usize,
    settings: &NngpSettings,
) -> Result<PredictionKernels, PredictError> {
    let n = x_train.nrows();
    if x_test.ncols() != x_train.ncols() {
        return Err(PredictError::Shape(format!(
            "--x-test has {} features but --x has {}",
            x_test.ncols(),
            x_train.ncols()
        )));
    }
    let all =
        concatenate(Axis(0), &[x_train, x_test]).map_err(|e| PredictError::Shape(e.to_string()))?;
    let keep = Keep::Only(readout_fields(theory, settings)?);
    let settings = NngpSettings {
        pairs: PairSet::TrainAndCross(n),
        outputs: Some(outputs),
        keep,
        ..settings.clone()
    };
    let mut kernels = nngp_kernels(theory, all.view(), None, &settings)?;
    let (kernel, noise) = evaluate_readout(
        theory,
        all.view(),
        &mut kernels,
        true,
        &settings,
        Some(outputs),
    )?;
    let expansions = kernels
        .expansions
        .iter()
        .map(|(key, report)| (Kernels::name(theory, key), report.clone()))
        .collect();
    drop((kernels, all));
    let cross = kernel.slice(s![..n, n..]).to_owned();
    let test_diagonal = kernel.diag().slice(s![n..]).to_owned();
    Ok(PredictionKernels {
        train: leading_block(kernel, n),
        cross,
        test_diagonal,
        noise,
        expansions,
    })
}

/// The leading n×n block of a square matrix, reusing its buffer.
fn leading_block(kernel: Array2<f64>, n: usize) -> Array2<f64> {
    let m = kernel.nrows();
    if m == n {
        return kernel;
    }
    if !kernel.is_standard_layout() {
        return kernel.slice(s![..n, ..n]).to_owned();
    }
    let (mut data, offset) = kernel.into_raw_vec_and_offset();
    let start = offset.unwrap_or(0);
    // row i moves from start + i·m to i·n; i·n ≤ start + i·m and rows move in increasing
    // order, so no row is overwritten before it is moved
    for i in 0..n {
        data.copy_within(start + i * m..start + i * m + n, i * n);
    }
    data.truncate(n * n);
    data.shrink_to_fit();
    Array2::from_shape_vec((n, n), data).unwrap_or_else(|_| unreachable!("n·n entries kept"))
}

/// NNGP prediction: kernels on train ∪ test, then GP regression (the train kernel becomes the
/// Cholesky factor; use [`prediction_kernels`] and [`regress`] to keep it).
pub fn nngp_predict(
    theory: &Theory,
    x_train: ArrayView2<f64>,
    y_train: ArrayView2<f64>,
    x_test: ArrayView2<f64>,
    y_test: Option<ArrayView2<f64>>,
    settings: &NngpSettings,
) -> Result<NngpPrediction, PredictError> {
    check_targets(x_train, y_train, x_test, y_test)?;
    let kernels = prediction_kernels(theory, x_train, x_test, y_train.ncols(), settings)?;
    let gp = regress(
        kernels.train,
        y_train,
        kernels.cross.view(),
        kernels.test_diagonal.view(),
        kernels.noise,
        y_test,
    )?;
    Ok(NngpPrediction {
        noise: kernels.noise,
        gp,
    })
}

/// Checks that targets fit their patterns: Y has a row per training pattern, Y* a row per
/// test pattern and as many columns as Y.
pub fn check_targets(
    x_train: ArrayView2<f64>,
    y_train: ArrayView2<f64>,
    x_test: ArrayView2<f64>,
    y_test: Option<ArrayView2<f64>>,
) -> Result<(), PredictError> {
    let n = x_train.nrows();
    if y_train.nrows() != n {
        return Err(PredictError::Shape(format!(
            "--y has {} rows but --x has {n} patterns",
            y_train.nrows()
        )));
    }
    if let Some(y) = y_test
        && (y.nrows() != x_test.nrows() || y.ncols() != y_train.ncols())
    {
        return Err(PredictError::Shape(format!(
            "--y-test is {}×{} but {}×{} is needed (test patterns × outputs)",
            y.nrows(),
            y.ncols(),
            x_test.nrows(),
            y_train.ncols()
        )));
    }
    Ok(())
}
