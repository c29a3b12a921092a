//! Symbolic differentiation of a [`Math`] term with respect to a scalar symbol.
//!
//! The chain rule for every scalar node, order-preserving product rule for matrices
//! ($d(AB)=dA\,B+A\,dB$, $d A^{-1}=-A^{-1}dA\,A^{-1}$, $d\ln\det A=\operatorname{tr}A^{-1}dA$),
//! and for the Gaussian expectations **Price's theorem** (full-matrix convention, THEORY.md §1):
//! $$\partial_c\langle fg\rangle=\langle f'g'\rangle,\quad
//! \partial_a\langle fg\rangle=\tfrac12\langle f''g\rangle,\quad
//! \partial_b\langle fg\rangle=\tfrac12\langle fg''\rangle,\quad
//! \partial_{\mu_u}\langle fg\rangle=\langle f'g\rangle,\quad
//! \partial_m\langle f\rangle=\langle f'\rangle,\quad \partial_v\langle f\rangle=\tfrac12\langle f''\rangle,$$
//! where $f'$ is $d/dx$ of the body. This keeps the Jacobian $G$ compact: the gaussian rules
//! then close $\langle f'g'\rangle$ directly. A symbol inside a body other than `x` (a slope
//! `s`) is differentiated under the expectation.
//!
//! **Kinks and jumps.** $\operatorname{relu}'=H$ (`step`); $H'=\delta$ and
//! $\operatorname{sign}'=2\delta$ are Dirac deltas. Inside an `E1`/`E2` body they become
//! `(delta u)` nodes, which the gaussian rules integrate in closed form
//! ([`price`](super::rules::price)); outside a body, or when a delta itself would be
//! differentiated, [`diff`] returns a [`DiffError`] instead of a wrong answer.
//!
//! The result is built with light simplification (`0 + a = a`, `1·a = a`, `0·a = 0`, exact
//! constant folding); [`simplify`](super::runner::simplify) does the rest.

use std::collections::HashMap;

use egg::{Id, Language, RecExpr, Symbol};
use num_rational::Rational64;

use super::analysis::symbol_is_scalar;
use super::lang::{Constant, Math};

/// Why a derivative could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// `step` or `sign` differentiated outside an expectation body: a Dirac delta.
    #[error(
        "the derivative of `{function}` is a Dirac delta, which only has a value inside an E1/E2 expectation"
    )]
    DiracDelta {
        /// `step` or `sign`.
        function: &'static str,
    },
    /// A Dirac delta would be differentiated (an expectation of δ′ is not supported).
    #[error(
        "the derivative of a Dirac delta (from a second derivative of step/sign/relu) is not supported"
    )]
    DeltaDerivative,
    /// The variable names a matrix; only scalar symbols (matrix entries such as `C1_ab`) qualify.
    #[error(
        "cannot differentiate with respect to the matrix `{name}`; use a scalar entry such as `{name}_ab`"
    )]
    MatrixVariable {
        /// The variable.
        name: String,
    },
    /// The expression has no nodes.
    #[error("cannot differentiate an empty expression")]
    Empty,
    /// An element-wise function, a division by or a non-integer power of a matrix depends on the
    /// variable: its derivative needs a Hadamard product or more, which the language lacks.
    #[error("cannot differentiate `{operation}` of a matrix that depends on the variable")]
    NonScalar {
        /// The operation (`exp`, `/`, `^`, …).
        operation: String,
    },
    /// A node refers to a child that does not come before it (not a well-formed `RecExpr`).
    #[error("malformed expression: a node refers to a later node")]
    Malformed,
}

/// $\partial\,\mathtt{expr}/\partial\,\mathtt{var}$ (see the module docs).
pub fn diff(expr: &RecExpr<Math>, var: &str) -> Result<RecExpr<Math>, DiffError> {
    if expr.as_ref().is_empty() {
        return Err(DiffError::Empty);
    }
    if !expr.is_dag() {
        return Err(DiffError::Malformed);
    }
    if !symbol_is_scalar(var) {
        return Err(DiffError::MatrixVariable {
            name: var.to_string(),
        });
    }
    let mut d = Differ::default();
    let mut ids = Vec::with_capacity(expr.as_ref().len());
    for node in expr.as_ref() {
        let node = node.clone().map_children(|c| ids[usize::from(c)]);
        ids.push(d.raw(node));
    }
    let root = ids[usize::from(expr.root())];
    let result = d.derivative(root, Key::new(var, false))?;
    let out = &d.out;
    Ok(out[result].build_recexpr(|id| out[id].clone()))
}

/// Which derivative: the variable, and whether we are inside an expectation body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    var: Symbol,
    in_body: bool,
}

impl Key {
    fn new(var: &str, in_body: bool) -> Self {
        Key {
            var: Symbol::from(var),
            in_body,
        }
    }
}

/// One arena for the input and every derivative, with hash-consing and derivative tables.
#[derive(Default)]
struct Differ {
    out: RecExpr<Math>,
    /// Whether each arena node is scalar-valued (the naming convention of the analysis).
    scalar: Vec<bool>,
    memo: HashMap<Math, Id>,
    tables: HashMap<Key, HashMap<Id, Id>>,
}

impl Differ {
    /// Adds `node` as is (hash-consed).
    fn raw(&mut self, node: Math) -> Id {
        if let Some(&id) = self.memo.get(&node) {
            return id;
        }
        let scalar = match &node {
            Math::Symbol(s) => symbol_is_scalar(s.as_str()),
            Math::Trace(_) | Math::LogDet(_) | Math::Expect1(_) | Math::Expect2(_) => true,
            other => other.all(|c| self.scalar[usize::from(c)]),
        };
        let id = self.out.add(node.clone());
        self.scalar.push(scalar);
        self.memo.insert(node, id);
        id
    }

    fn is_scalar(&self, id: Id) -> bool {
        self.scalar[usize::from(id)]
    }

    fn constant(&self, id: Id) -> Option<Rational64> {
        match &self.out[id] {
            Math::Num(c) => Some(c.0),
            _ => None,
        }
    }

    fn is(&self, id: Id, value: i64) -> bool {
        self.constant(id) == Some(Rational64::from_integer(value))
    }

    fn num(&mut self, value: i64) -> Id {
        self.raw(Math::Num(Constant::int(value)))
    }

    /// Adds `node`, simplifying the trivial cases.
    fn add(&mut self, node: Math) -> Id {
        if let Some(c) = super::analysis::fold_constant(&node, |id| self.constant(id).map(Constant))
        {
            return self.raw(Math::Num(c));
        }
        match node {
            Math::Add([a, b]) if self.is(a, 0) => b,
            Math::Add([a, b]) | Math::Sub([a, b]) if self.is(b, 0) => a,
            Math::Sub([a, b]) if self.is(a, 0) => self.add(Math::Neg(b)),
            Math::Mul([a, b]) if self.is(a, 0) || self.is(b, 0) => self.num(0),
            Math::Mul([a, b]) if self.is(a, 1) => b,
            Math::Mul([a, b]) | Math::Div([a, b]) if self.is(b, 1) => a,
            Math::Div([a, _]) if self.is(a, 0) => a,
            Math::Neg(a) => match self.out[a] {
                Math::Neg(inner) => inner,
                _ => self.raw(node),
            },
            Math::Pow([a, n]) if self.is(n, 1) => a,
            Math::Expect1([f, ..]) if self.is(f, 0) => f,
            Math::Expect2([f, g, ..]) if self.is(f, 0) || self.is(g, 0) => self.num(0),
            _ => self.raw(node),
        }
    }

    fn mul(&mut self, a: Id, b: Id) -> Id {
        self.add(Math::Mul([a, b]))
    }

    fn div(&mut self, a: Id, b: Id) -> Id {
        self.add(Math::Div([a, b]))
    }

    fn square(&mut self, a: Id) -> Id {
        let two = self.num(2);
        self.add(Math::Pow([a, two]))
    }

    /// `term · da`, skipping the work when `da = 0`.
    fn chain(&mut self, da: Id, term: impl FnOnce(&mut Self) -> Id) -> Id {
        if self.is(da, 0) {
            da
        } else {
            let t = term(self);
            self.mul(t, da)
        }
    }

    /// The derivative of node `target` of the arena under `key`.
    fn derivative(&mut self, target: Id, key: Key) -> Result<Id, DiffError> {
        // Nodes reachable from `target` (not through expectation bodies: they bind `x`) whose
        // derivative is unknown, processed children first (arena order is topological).
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![target];
        while let Some(id) = stack.pop() {
            if self.tables.get(&key).is_some_and(|t| t.contains_key(&id)) || !seen.insert(id) {
                continue;
            }
            stack.extend(parameters(&self.out[id]));
        }
        let mut todo: Vec<Id> = seen.into_iter().collect();
        todo.sort_unstable();
        for id in todo {
            if self.tables.get(&key).is_some_and(|t| t.contains_key(&id)) {
                continue;
            }
            let d = self.node_derivative(id, key)?;
            self.tables.entry(key).or_default().insert(id, d);
        }
        self.tables
            .get(&key)
            .and_then(|t| t.get(&target).copied())
            .ok_or(DiffError::Malformed)
    }

    fn known(&self, id: Id, key: Key) -> Id {
        // Invariant: the arena is a DAG (checked in `diff`, kept by `add`), so every parameter
        // has a smaller id and was processed before its parent in `derivative`.
        self.tables[&key][&id]
    }

    fn node_derivative(&mut self, id: Id, key: Key) -> Result<Id, DiffError> {
        let node = self.out[id].clone();
        let d = |s: &Self, c: &Id| s.known(*c, key);
        let result = match node {
            Math::Num(_) | Math::Pi => self.num(0),
            Math::Symbol(s) => self.num(i64::from(s == key.var)),
            Math::Add([a, b]) => {
                let (da, db) = (d(self, &a), d(self, &b));
                self.add(Math::Add([da, db]))
            }
            Math::Sub([a, b]) => {
                let (da, db) = (d(self, &a), d(self, &b));
                self.add(Math::Sub([da, db]))
            }
            Math::Neg(a) => {
                let da = d(self, &a);
                self.add(Math::Neg(da))
            }
            Math::Mul([a, b]) => {
                let (da, db) = (d(self, &a), d(self, &b));
                let left = self.mul(da, b);
                let right = self.mul(a, db);
                self.add(Math::Add([left, right]))
            }
            Math::Div([_, b]) if !self.is_scalar(b) && !self.is(d(self, &b), 0) => {
                return Err(non_scalar(&node));
            }
            Math::Div([a, b]) => {
                let (da, db) = (d(self, &a), d(self, &b));
                let first = self.div(da, b);
                let num = self.mul(a, db);
                let den = self.square(b);
                let second = self.div(num, den);
                self.add(Math::Sub([first, second]))
            }
            Math::Pow([a, n]) if !self.is_scalar(a) => self.matrix_power(&node, a, n, key)?,
            Math::Pow([a, n]) => self.power(a, n, d(self, &a), d(self, &n)),
            Math::Transpose(a) => {
                let da = d(self, &a);
                self.add(Math::Transpose(da))
            }
            Math::Trace(a) => {
                let da = d(self, &a);
                self.add(Math::Trace(da))
            }
            Math::Inverse(a) => {
                let da = d(self, &a);
                self.chain_matrix(da, |s| {
                    let inv = s.add(Math::Inverse(a));
                    let left = s.mul(inv, da);
                    let prod = s.mul(left, inv);
                    s.add(Math::Neg(prod))
                })
            }
            Math::LogDet(a) => {
                let da = d(self, &a);
                self.chain_matrix(da, |s| {
                    let inv = s.add(Math::Inverse(a));
                    let prod = s.mul(inv, da);
                    s.add(Math::Trace(prod))
                })
            }
            Math::Delta(a) => {
                if !self.is(d(self, &a), 0) {
                    return Err(DiffError::DeltaDerivative);
                }
                self.num(0)
            }
            Math::Sign(a) | Math::Step(a) if !key.in_body && !self.is(d(self, &a), 0) => {
                let function = if matches!(node, Math::Sign(_)) {
                    "sign"
                } else {
                    "step"
                };
                return Err(DiffError::DiracDelta { function });
            }
            Math::BvnCdf([h, k, r]) => self.bvn(h, k, r, key),
            Math::Expect1(_) | Math::Expect2(_) => self.expectation(&node, key)?,
            _ => {
                let Some(&a) = node.children().first() else {
                    return Ok(self.num(0));
                };
                let da = d(self, &a);
                if !self.is_scalar(a) && !self.is(da, 0) {
                    return Err(non_scalar(&node));
                }
                self.chain(da, |s| s.outer_derivative(&node, a))
            }
        };
        Ok(result)
    }

    /// Like [`Differ::chain`] for matrix-valued terms that already contain `da`.
    fn chain_matrix(&mut self, da: Id, term: impl FnOnce(&mut Self) -> Id) -> Id {
        if self.is(da, 0) { da } else { term(self) }
    }
}

fn non_scalar(node: &Math) -> DiffError {
    DiffError::NonScalar {
        operation: node.to_string(),
    }
}

/// The children of `node` that are parameters (not expectation bodies).
fn parameters(node: &Math) -> Vec<Id> {
    match node {
        Math::Expect1([_, rest @ ..]) => rest.to_vec(),
        Math::Expect2([_, _, rest @ ..]) => rest.to_vec(),
        _ => node.children().to_vec(),
    }
}

mod expect;
mod unary;

#[cfg(test)]
mod tests;
