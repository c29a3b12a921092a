//! # The linearised fluctuation system around the NNGP point
//!
//! ## Equations
//! Stationarity of $S^{(2)}(\delta C,\tilde C)+\langle S_D^{(1)},\delta C^{(L)}\rangle$
//! (THEORY.md §4.4), for a deep network
//! $$\delta C^{(l)}=G^{(l)}\delta C^{(l-1)}+\tfrac{g_l^2}{N}V^{(l)}\tilde C^{(l)},\quad
//! \delta C^{(0)}=0;\qquad\tilde C^{(l)}=G^{(l+1)\top}\tilde C^{(l+1)}\ (l<L);\qquad
//! \tilde C^{(L)}=S_D^{(1)}(C^{*(L)})+H\,\delta C^{(L)}.$$
//! Nothing here is specific to deep networks: the blocks are the derived ones of
//! [`crate::derive::hessian::second_variation`] (maps on a symmetric direction), evaluated at the
//! NNGP point with [`ActionEvaluator::evaluate_expr`], and the source is the derived backward /
//! output equations at $\tilde C=0$ ($\partial S/\partial C$ there, i.e. $S_D^{(1)}$ on the
//! readout kernel). The unknowns are the vech coordinates of every $\delta C$ and $\tilde C$
//! ([`super::coordinates`]); in them $S^{(2)}$ is the symmetric matrix
//! $\langle\mathcal B(B_k),B_m\rangle$ ($\mathcal B$ a derived block as a map), so the
//! $(C,\tilde C)$ blocks (not derived separately) are the transposes of the $(\tilde C,C)$
//! ones, and off-diagonal pairs count twice. The system
//! $S^{(2)}u=-\langle\nabla S,B\rangle$ is solved densely (faer LU): one Newton step of the full
//! action from the NNGP point.
//!
//! *Leading order* drops the $(C,C)$ blocks ($H\,\delta C^{(L)}=O(1/N)$), giving
//! $\tilde C^{(l)}=(G^{(L)}\cdots G^{(l+1)})^\top S_D^{(1)}$.
//!
//! ## Requirements
//! Small P (the four-point expectations are P-dimensional Gauss–Hermite sums); targets Y; kernel
//! entries that are symmetric matrices (`C[l]`, not the cross-time blocks `C[t, s]`).

use ndarray::{Array2, ArrayView2};

use crate::check::ir::{Expr, Theory};
use crate::derive::grad::Variable;
use crate::derive::hessian::{SecondVariation, second_variation};
use crate::derive::{DeriveError, Equations, derive};
use crate::numeric::action::{ActionError, ActionEvaluator, Owner};
use crate::solve::coordinates::Coordinates;
use crate::solve::nngp::{Kernels, NngpError, NngpSettings, nngp_kernels, parameter_values};

/// Which terms of S⁽²⁾ enter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Every block, H δC⁽ᴸ⁾ included (= one Newton step of the full action).
    Full,
    /// Without the (C, C) blocks: C̃ is the back-propagated data gradient.
    Leading,
}

/// Settings of [`linear_response`].
#[derive(Debug, Clone)]
pub struct FluctuationSettings {
    /// Parameter overrides (`--set`).
    pub overrides: Vec<(String, f64)>,
    /// Gauss–Hermite nodes per dimension for the blocks' expectations (P-dimensional).
    pub quadrature_order: usize,
    /// Which terms enter.
    pub order: Order,
    /// Generated pair formulas for the NNGP point ([`NngpSettings::native`]).
    pub native: &'static [crate::generated::NativePairMap],
}

impl Default for FluctuationSettings {
    fn default() -> Self {
        FluctuationSettings {
            overrides: Vec::new(),
            quadrature_order: 64,
            order: Order::Full,
            native: &[],
        }
    }
}

/// The response of one layer (one forward equation).
#[derive(Debug, Clone)]
pub struct LayerFluctuation {
    /// The field entry, e.g. `C[2]`.
    pub name: String,
    /// Its conjugate, e.g. `Ct[2]`.
    pub conjugate_name: String,
    /// C* at the NNGP point.
    pub nngp: Array2<f64>,
    /// ∂S/∂C at the NNGP point (full-matrix convention): S_D⁽¹⁾ on the readout kernel, 0
    /// on hidden ones.
    pub source: Array2<f64>,
    /// δC = C − C*.
    pub delta: Array2<f64>,
    /// C̃.
    pub conjugate: Array2<f64>,
}

/// The solution of the linearised system.
#[derive(Debug, Clone)]
pub struct Fluctuations {
    /// The width N (the parameter `N`), when the theory has one.
    pub width: Option<f64>,
    /// Which terms entered.
    pub order: Order,
    /// One per forward equation, in order.
    pub layers: Vec<LayerFluctuation>,
}

impl Fluctuations {
    /// N·δC of layer `i` (an O(1) quantity), when the theory has a width `N`.
    pub fn scaled_delta(&self, i: usize) -> Option<Array2<f64>> {
        Some(&self.layers.get(i)?.delta * self.width?)
    }
}

/// Why the linearised system could not be set up or solved.
#[derive(Debug, thiserror::Error)]
pub enum FluctuationError {
    /// The NNGP point could not be computed.
    #[error(transparent)]
    Kernels(#[from] NngpError),
    /// The equations could not be derived.
    #[error("deriving the equations: {0}")]
    Derive(#[from] DeriveError),
    /// A block or source could not be evaluated.
    #[error("evaluating {what}: {source}")]
    Evaluate {
        /// The block or equation.
        what: String,
        /// The problem.
        source: ActionError,
    },
    /// A block or equation the derivation could not produce.
    #[error("{what} is not available: {reason}")]
    Underived {
        /// The block or equation.
        what: String,
        /// The derivation's reason.
        reason: String,
    },
    /// A theory outside what the solver handles.
    #[error("{0}")]
    Unsupported(String),
    /// A quadrature too coarse to resolve the four-point expectations.
    #[error(
        "quadrature order {0}: at least {MIN_QUADRATURE_ORDER} nodes per dimension are needed \
         (fewer make the fluctuation terms vanish)"
    )]
    BadQuadrature(usize),
    /// The targets are missing.
    #[error("the fluctuation system needs targets Y (the data term is its source)")]
    MissingTargets,
    /// S⁽²⁾ is singular (or too ill-conditioned to trust the solution).
    #[error(
        "the linearised system is singular: the residual of the solve is {residual:e} (relative)"
    )]
    Singular {
        /// ‖S⁽²⁾u + b‖ / ‖b‖.
        residual: f64,
    },
}

/// The fewest Gauss–Hermite nodes per dimension the finite-width solvers accept: one node
/// sits at the mean and makes every covariance vanish (all corrections zero), and the
/// fourth moments of the Hessian blocks need a few more.
pub const MIN_QUADRATURE_ORDER: usize = 4;

/// The linearised saddle point of `theory` on inputs `x` and targets `y`.
pub fn linear_response(
    theory: &Theory,
    x: ArrayView2<f64>,
    y: Option<ArrayView2<f64>>,
    settings: &FluctuationSettings,
) -> Result<Fluctuations, FluctuationError> {
    let y = y.ok_or(FluctuationError::MissingTargets)?;
    if settings.quadrature_order < MIN_QUADRATURE_ORDER {
        return Err(FluctuationError::BadQuadrature(settings.quadrature_order));
    }
    let params = parameter_values(theory, &settings.overrides)?;
    let named: Vec<(String, f64)> = theory
        .params
        .iter()
        .zip(&params)
        .map(|(p, v)| (p.name.clone(), *v))
        .collect();
    let nngp_settings = NngpSettings {
        overrides: settings.overrides.clone(),
        native: settings.native,
        ..NngpSettings::default()
    };
    let kernels = nngp_kernels(theory, x, Some(y), &nngp_settings)?;
    let equations = derive(theory, &named)?;
    let sv = second_variation(theory, &equations);
    let system = System::new(&sv, &equations, &kernels, &params, x, y, settings)?;
    let (hessian, source) = system.assemble(settings.order)?;
    let n = system.coords.len();
    let mut rhs = faer::Mat::<f64>::zeros(n, 1);
    for (i, s) in source.iter().enumerate() {
        rhs[(i, 0)] = -s;
    }
    let matrix = faer::Mat::from_fn(n, n, |i, j| hessian[i][j]);
    let u = solve_dense(&matrix, &rhs)?;

    let layers = equations.forward.len();
    let mut out = Vec::with_capacity(layers);
    for (i, eq) in equations.forward.iter().enumerate() {
        let (field, conj) = (i, layers + i);
        let Variable::Field(f, idx) = &eq.unknown else {
            return Err(FluctuationError::Unsupported(
                "a forward equation not solved for a field".into(),
            ));
        };
        let nngp = kernels
            .entries
            .get(&(*f, idx.clone()))
            .cloned()
            .ok_or_else(|| FluctuationError::Unsupported(format!("no NNGP value of {f}")))?;
        out.push(LayerFluctuation {
            name: system.coords.blocks[field].name.clone(),
            conjugate_name: system.coords.blocks[conj].name.clone(),
            nngp,
            source: system.source_matrices[i].clone(),
            delta: system.coords.matrix(field, &u),
            conjugate: system.coords.matrix(conj, &u),
        });
    }
    Ok(Fluctuations {
        width: theory.param("N").map(|id| params[id]),
        order: settings.order,
        layers: out,
    })
}

/// Solves `A u = b` (LU with partial pivoting) and checks the residual.
pub(crate) fn solve_dense(
    a: &faer::Mat<f64>,
    b: &faer::Mat<f64>,
) -> Result<Vec<f64>, FluctuationError> {
    use faer::linalg::solvers::Solve;
    let u = a.partial_piv_lu().solve(b);
    let residual = (a * &u - b).norm_l2() / b.norm_l2().max(f64::MIN_POSITIVE);
    if !residual.is_finite() || residual > 1e-8 {
        return Err(FluctuationError::Singular { residual });
    }
    Ok((0..u.nrows()).map(|i| u[(i, 0)]).collect())
}

/// The blocks of S⁽²⁾ and the source, ready to be evaluated.
struct System<'a> {
    sv: &'a SecondVariation,
    coords: Coordinates,
    evaluator: ActionEvaluator,
    /// Variable values at the NNGP point (directions zero).
    base: Vec<f64>,
    /// ∂S/∂C at the NNGP point per forward equation (full matrices).
    source_matrices: Vec<Array2<f64>>,
}

impl<'a> System<'a> {
    fn new(
        sv: &'a SecondVariation,
        equations: &Equations,
        kernels: &Kernels,
        params: &[f64],
        x: ArrayView2<f64>,
        y: ArrayView2<f64>,
        settings: &FluctuationSettings,
    ) -> Result<Self, FluctuationError> {
        let mut unknowns: Vec<Variable> = equations
            .forward
            .iter()
            .map(|e| e.unknown.clone())
            .collect();
        unknowns.extend(equations.forward.iter().map(|e| e.stationary_in.clone()));
        for v in &unknowns {
            if let Variable::Field(_, idx) = v
                && idx.windows(2).any(|w| w[0] != w[1])
            {
                return Err(FluctuationError::Unsupported(format!(
                    "{}: cross blocks of a multi-index kernel are not symmetric matrices; \
                     the fluctuation system handles one kernel per layer",
                    Kernels::name(&sv.theory, &(field_id(v), idx.clone()))
                )));
            }
        }
        let p = x.nrows();
        let coords = Coordinates::new(&sv.theory, &unknowns, p);
        let evaluator =
            ActionEvaluator::new(&sv.theory, params, x, Some(y), settings.quadrature_order)
                .map_err(|source| FluctuationError::Evaluate {
                    what: "the action".into(),
                    source,
                })?;
        let directions = [sv.kernel_direction, sv.vector_direction];
        let mut base = Vec::with_capacity(evaluator.variables().len());
        for v in evaluator.variables().as_slice() {
            base.push(match v.owner {
                Owner::Conjugate(_) => 0.0,
                Owner::Field(f) if directions.contains(&f) => 0.0,
                Owner::Field(f) => {
                    let m = kernels
                        .entries
                        .get(&(f, v.indices.clone()))
                        .ok_or_else(|| {
                            FluctuationError::Unsupported(format!(
                                "{} is neither defined nor given by a forward equation",
                                Kernels::name(&sv.theory, &(f, v.indices.clone()))
                            ))
                        })?;
                    m[[v.row, v.col]]
                }
            });
        }
        let mut system = System {
            sv,
            coords,
            evaluator,
            base,
            source_matrices: Vec::new(),
        };
        // ∂S/∂C at C̃ = 0: the backward equations C̃ = R, with R at the NNGP point.
        for eq in &equations.forward {
            let backward = equations
                .backward
                .iter()
                .find(|b| b.stationary_in == eq.unknown)
                .ok_or_else(|| {
                    FluctuationError::Unsupported(format!(
                        "no backward equation for {}",
                        system.name(&eq.unknown)
                    ))
                })?;
            let what = format!("∂S/∂{} at the NNGP point", system.name(&eq.unknown));
            let rhs = backward
                .nngp
                .as_ref()
                .map_err(|e| FluctuationError::Underived {
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
            let m = system.evaluate(rhs, &system.base, &what)?;
            system.source_matrices.push(m);
        }
        Ok(system)
    }

    fn name(&self, v: &Variable) -> String {
        self.coords
            .blocks
            .iter()
            .find(|b| &b.variable == v)
            .map_or_else(|| format!("{v:?}"), |b| b.name.clone())
    }

    fn evaluate(
        &self,
        e: &Expr,
        values: &[f64],
        what: &str,
    ) -> Result<Array2<f64>, FluctuationError> {
        let m = self.evaluator.evaluate_expr(e, values).map_err(|source| {
            FluctuationError::Evaluate {
                what: what.to_string(),
                source,
            }
        })?;
        Ok(Array2::from_shape_fn(m.shape(), |(i, j)| *m.get(i, j)))
    }

    /// S⁽²⁾ in vech coordinates (rows, as a dense matrix) and the source ⟨∂S, B⟩.
    fn assemble(&self, order: Order) -> Result<(Vec<Vec<f64>>, Vec<f64>), FluctuationError> {
        let n = self.coords.len();
        let mut hessian = vec![vec![0.0; n]; n];
        let is_field = |v: &Variable| matches!(v, Variable::Field(..));
        let known = |v: &Variable| self.coords.blocks.iter().position(|b| &b.variable == v);
        for block in &self.sv.blocks {
            if order == Order::Leading && is_field(&block.row) && is_field(&block.column) {
                continue;
            }
            let (Some(r), Some(c)) = (known(&block.row), known(&block.column)) else {
                return Err(FluctuationError::Unsupported(
                    "S⁽²⁾ has a block in a variable that no forward equation determines".into(),
                ));
            };
            let what = format!(
                "∂²S/∂{}∂{}",
                self.coords.blocks[r].name, self.coords.blocks[c].name
            );
            let map = block
                .map
                .as_ref()
                .map_err(|e| FluctuationError::Underived {
                    what: what.clone(),
                    reason: e.to_string(),
                })?;
            let direction = if self.coords.blocks[r].kernel {
                self.sv.kernel_direction
            } else {
                self.sv.vector_direction
            };
            let (r0, c0) = (self.coords.blocks[r].start, self.coords.blocks[c].start);
            for (k, pair) in self.coords.pairs(r).into_iter().enumerate() {
                let e = self.coords.basis(r, pair);
                let mut values = self.base.clone();
                for (i, v) in self.evaluator.variables().as_slice().iter().enumerate() {
                    if v.owner == Owner::Field(direction) {
                        values[i] = e[[v.row, v.col]];
                    }
                }
                let value = self.evaluate(map, &values, &what)?;
                for (j, entry) in self
                    .coords
                    .pair_with_basis(c, &value)
                    .into_iter()
                    .enumerate()
                {
                    hessian[r0 + k][c0 + j] = entry;
                    // the (C, C̃) blocks are not derived separately: S⁽²⁾ is symmetric
                    hessian[c0 + j][r0 + k] = entry;
                }
            }
        }
        let mut source = vec![0.0; n];
        for (i, m) in self.source_matrices.iter().enumerate() {
            let start = self.coords.blocks[i].start;
            for (k, v) in self.coords.pair_with_basis(i, m).into_iter().enumerate() {
                source[start + k] = v;
            }
        }
        Ok((hessian, source))
    }
}

fn field_id(v: &Variable) -> usize {
    match v {
        Variable::Field(f, _) | Variable::Conjugate(f, _) => *f,
    }
}
