//! # GP prediction with the NNGP kernel of a theory
//!
//! ## Equations
//! The readout kernel K (THEORY.md §3) on train ∪ test patterns gives K(X, X), k* and k**;
//! the posterior mean is k*ᵀ (K + κI)⁻¹ Y and the latent variance k** − k*ᵀ (K + κI)⁻¹ k*
//! ([`crate::solve::gp`]). Test–test covariances are never computed: every NNGP map is
//! entry-wise, so the train–train, train–test and test-diagonal entries close on themselves.

use ndarray::{Array2, ArrayView2, Axis, concatenate, s};

use crate::check::ir::Theory;
use crate::derive::unroll::{IndexEnv, unroll};
use crate::solve::gp::{GpResult, regress};
use crate::solve::nngp::{
    Keep, Kernels, NngpError, NngpSettings, PairSet, evaluate_matrix, nngp_kernels,
    parameter_values,
};
use crate::solve::readout::{Readout, find_readout};

/// Everything an NNGP prediction produced.
#[derive(Debug)]
pub struct NngpPrediction {
    /// The readout kernel on the training patterns.
    pub train_kernel: Array2<f64>,
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
    let (kernel, noise) = evaluate_readout(theory, x, &kernels, settings, outputs)?;
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

fn evaluate_readout(
    theory: &Theory,
    x: ArrayView2<f64>,
    kernels: &Kernels,
    settings: &NngpSettings,
    outputs: Option<usize>,
) -> Result<(Array2<f64>, f64), PredictError> {
    let (params, readout) = unrolled_readout(theory, settings)?;
    let dummy_targets = outputs.map(|d| Array2::zeros((x.nrows(), d)));
    let kernel = evaluate_matrix(
        theory,
        &params,
        x,
        dummy_targets.as_ref().map(|t| t.view()),
        kernels,
        &readout.kernel,
        "the readout kernel",
    )?;
    let noise = evaluate_matrix(
        theory,
        &params,
        x,
        dummy_targets.as_ref().map(|t| t.view()),
        kernels,
        &readout.noise,
        "the readout noise",
    )?;
    Ok((kernel, noise[[0, 0]]))
}

/// NNGP prediction: kernels on train ∪ test, then GP regression.
pub fn nngp_predict(
    theory: &Theory,
    x_train: ArrayView2<f64>,
    y_train: ArrayView2<f64>,
    x_test: ArrayView2<f64>,
    y_test: Option<ArrayView2<f64>>,
    settings: &NngpSettings,
) -> Result<NngpPrediction, PredictError> {
    let n = x_train.nrows();
    if y_train.nrows() != n {
        return Err(PredictError::Shape(format!(
            "--y has {} rows but --x has {n} patterns",
            y_train.nrows()
        )));
    }
    if x_test.ncols() != x_train.ncols() {
        return Err(PredictError::Shape(format!(
            "--x-test has {} features but --x has {}",
            x_test.ncols(),
            x_train.ncols()
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
    let all =
        concatenate(Axis(0), &[x_train, x_test]).map_err(|e| PredictError::Shape(e.to_string()))?;
    let keep = Keep::Only(readout_fields(theory, settings)?);
    let settings = NngpSettings {
        pairs: PairSet::TrainAndCross(n),
        outputs: Some(y_train.ncols()),
        keep,
        ..settings.clone()
    };
    let kernels = nngp_kernels(theory, all.view(), None, &settings)?;
    let (kernel, noise) = evaluate_readout(
        theory,
        all.view(),
        &kernels,
        &settings,
        Some(y_train.ncols()),
    )?;
    drop(kernels);
    let train_kernel = kernel.slice(s![..n, ..n]).to_owned();
    let cross = kernel.slice(s![..n, n..]).to_owned();
    let test_diagonal = kernel.slice(s![n.., n..]).diag().to_owned();
    drop(kernel);
    let gp = regress(
        train_kernel.clone(),
        y_train,
        cross.view(),
        test_diagonal.view(),
        noise,
        y_test,
    )?;
    Ok(NngpPrediction {
        train_kernel,
        noise,
        gp,
    })
}
