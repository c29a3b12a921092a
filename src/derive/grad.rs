//! Matrix calculus on checked expressions: the gradient of a scalar with respect to one
//! field or conjugate entry, in the full-matrix convention of THEORY.md §1.
//!
//! Every entry of a kernel is an independent variable and functions see the symmetric part
//! sym(C) = (C + Cᵀ)/2, so ∇_C S = sym(∇S) for kernels; conjugates and mean fields enter
//! as they are. The workhorse is ∇_X tr(W F(X)) (`grad_trace`):
//! tr(W X) → Wᵀ, tr(W Xᵀ) → W, tr(W A B) → via A with W' = B W and via B with W' = W A,
//! tr(W Z⁻¹) → via Z with W' = −Z⁻¹ W Z⁻¹, ln det Z → via Z with W = Z⁻¹, and a Gaussian
//! expectation whose measure does not depend on X is differentiated under the integral.
//!
//! The measure of `E[f(h) | h ~ N(m, K)]` contributes Stein's lemma,
//! ∂E/∂K = ½ K⁻¹ E[f (h − m)(h − m)ᵀ] K⁻¹ − ½ K⁻¹ E\[f\]. Over a time family `h ~ N(0, C)` the
//! covariance is the joint (P·T)×(P·T) kernel Σ of the times f reads, written with the
//! whitened field ĥ = Σ⁻¹(h − m) (`ExprKind::Whitened`): the block `C[a, b]` gets
//! ½ (E[f ĥ\[a\] ĥ\[b\]ᵀ] − E\[f\] E[ĥ\[a\] ĥ\[b\]ᵀ]). A cross-time block enters as
//! ½ (C[t, s] + C[s, t]ᵀ), so [`gradient`] symmetrises over the pair, not within the block.

use std::collections::HashMap;

use crate::check::ir::{
    Builtin, Callee, ConjId, Covariance, Expr, ExprKind, FieldId, FieldKind, IndexExpr,
    MatrixFunction, Shape, Theory,
};

use super::DeriveError;
use super::build::{
    add, apply, div, expectation, inverse, is_zero, mul, neg, node, number, sub, symmetric_part,
    trace, transpose, zero,
};

/// What a gradient is taken with respect to: one concrete entry of a field or conjugate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variable {
    /// A field entry `C[2]`.
    Field(FieldId, Vec<i64>),
    /// A conjugate entry `Ct[2]`.
    Conjugate(ConjId, Vec<i64>),
}

impl Variable {
    fn matches(&self, e: &Expr) -> bool {
        let same = |indices: &[IndexExpr], idx: &[i64]| {
            indices.len() == idx.len() && indices.iter().zip(idx).all(|(i, v)| i.constant == *v)
        };
        match (&e.kind, self) {
            (ExprKind::Field { field, indices }, Variable::Field(f, idx)) => {
                field == f && same(indices, idx)
            }
            (ExprKind::Conjugate { conj, indices }, Variable::Conjugate(c, idx)) => {
                conj == c && same(indices, idx)
            }
            _ => false,
        }
    }

    /// The entry as written in the theory: `C[2]`, `Ct[1,3]`.
    pub fn name(&self, theory: &Theory) -> String {
        let (name, indices) = match self {
            Variable::Field(f, v) => (&theory.fields[*f].name, v),
            Variable::Conjugate(c, v) => (&theory.conjugates[*c].name, v),
        };
        if indices.is_empty() {
            name.clone()
        } else {
            let indices: Vec<String> = indices.iter().map(i64::to_string).collect();
            format!("{name}[{}]", indices.join(","))
        }
    }

    /// The variable as an expression.
    pub fn expr(&self, theory: &Theory) -> Expr {
        let idx = |v: &[i64]| v.iter().map(|&i| IndexExpr::constant(i)).collect();
        match self {
            Variable::Field(f, v) => node(
                ExprKind::Field {
                    field: *f,
                    indices: idx(v),
                },
                theory.fields[*f].shape(),
            ),
            Variable::Conjugate(c, v) => node(
                ExprKind::Conjugate {
                    conj: *c,
                    indices: idx(v),
                },
                theory.fields[theory.conjugates[*c].of].shape(),
            ),
        }
    }
}

/// Gradient of the scalar `e` with respect to `var` in the full-matrix convention: for a
/// kernel the symmetric part, as every function sees sym(C). For a block `C[t, s]` of a time
/// family the symmetry is that of the whole (P·T)×(P·T) kernel, so `C[t, s]` enters as
/// ½ (C[t, s] + C[s, t]ᵀ): the gradient is ½ (∇_{C[t, s]} + (∇_{C[s, t]})ᵀ) of the direct
/// occurrences, plus the derivative of the family's Gaussian measure, which is symmetric as a
/// whole already (Stein's lemma over the family, `family_measure_gradient`).
pub fn gradient(theory: &Theory, e: &Expr, var: &Variable) -> Result<Expr, DeriveError> {
    gradient_indexed(theory, e, var, None)
}

/// [`gradient`] of an expression with its [`DependenceIndex`] (taking many gradients of
/// one action, one per layer).
pub fn gradient_indexed(
    theory: &Theory,
    e: &Expr,
    var: &Variable,
    index: Option<&DependenceIndex>,
) -> Result<Expr, DeriveError> {
    if let Some(partner) = family_partner(theory, var) {
        let direct = |v: &Variable| {
            let shape = v.expr(theory).shape;
            Gradient {
                theory,
                var: v,
                shape,
                family: FamilyMeasure::Exclude,
                index,
            }
            .grad(e)
        };
        let own = direct(var)?;
        let symmetrised = if partner == *var {
            symmetric_part(own)
        } else {
            mul(number(0.5), add(own, transpose(direct(&partner)?)))
        };
        let measure = Gradient {
            theory,
            var,
            shape: Shape::KERNEL,
            family: FamilyMeasure::Only,
            index,
        }
        .grad(e)?;
        return Ok(add(symmetrised, measure));
    }
    let g = raw_gradient_indexed(theory, e, var, index)?;
    Ok(if is_kernel(theory, var) {
        symmetric_part(g)
    } else {
        g
    })
}

/// Gradient with respect to `var` as if it entered unsymmetrised; [`gradient`] is its
/// symmetric part for kernels. Stationarity conditions are solved on this form: for a time
/// family, C̃[t, s] = R[t, s] with R the raw gradient's remainder solves the symmetrised
/// condition too, because the measure part is symmetric over the family.
pub fn raw_gradient(theory: &Theory, e: &Expr, var: &Variable) -> Result<Expr, DeriveError> {
    raw_gradient_indexed(theory, e, var, None)
}

/// [`raw_gradient`] with the expression's [`DependenceIndex`].
pub fn raw_gradient_indexed(
    theory: &Theory,
    e: &Expr,
    var: &Variable,
    index: Option<&DependenceIndex>,
) -> Result<Expr, DeriveError> {
    let shape = var.expr(theory).shape;
    Gradient {
        theory,
        var,
        shape,
        family: FamilyMeasure::Include,
        index,
    }
    .grad(e)
}

/// Which entries each node of one expression may mention, by the node's address: per field
/// or conjugate, the lexicographic range of the index lists below the node (any index for a
/// time family whose joint covariance an expectation uses). A gradient skips a node whose
/// ranges exclude its variable: the partial sums of an unrolled `sum(l in 1..=L, …)`, a
/// chain L deep, mention the layers up to their own only, so the gradient with respect to
/// layer l stops at once on each of those below l instead of walking it.
///
/// Addresses are stable because the expression is borrowed for the index's lifetime: no
/// other expression can live at the address of one of its nodes meanwhile, so a lookup of
/// any other expression (one built while differentiating) finds nothing and is not pruned.
pub struct DependenceIndex<'e> {
    mentions: HashMap<*const Expr, Vec<Mention>>,
    _expression: std::marker::PhantomData<&'e Expr>,
}

/// The entries of one field (`conjugate` false) or conjugate mentioned below a node.
#[derive(Clone, Debug, PartialEq)]
struct Mention {
    conjugate: bool,
    id: usize,
    /// `None`: any index.
    range: Option<(Vec<i64>, Vec<i64>)>,
}

impl<'e> DependenceIndex<'e> {
    /// Indexes every node of `e`.
    pub fn new(e: &'e Expr) -> Self {
        let mut index = DependenceIndex {
            mentions: HashMap::new(),
            _expression: std::marker::PhantomData,
        };
        index.visit(e);
        index
    }

    fn visit(&mut self, e: &Expr) -> Vec<Mention> {
        let constants = |indices: &[IndexExpr]| indices.iter().map(|i| i.constant).collect();
        let single = |idx: Vec<i64>| Some((idx.clone(), idx));
        let own = match &e.kind {
            ExprKind::Field { field, indices } => Some((false, *field, single(constants(indices)))),
            ExprKind::Conjugate { conj, indices } => {
                Some((true, *conj, single(constants(indices))))
            }
            ExprKind::Expectation {
                cov: Covariance::Family(f),
                ..
            } => Some((false, *f, None)),
            _ => None,
        };
        let mut mentions = Vec::new();
        if let Some((conjugate, id, range)) = own {
            mentions.push(Mention {
                conjugate,
                id,
                range,
            });
        }
        let mut children = Vec::new();
        crate::check::for_each_child(e, |c| children.push(c));
        for child in children {
            for mention in self.visit(child) {
                merge(&mut mentions, mention);
            }
        }
        self.mentions.insert(e as *const Expr, mentions.clone());
        mentions
    }

    /// Whether `e` (a node of the indexed expression) certainly does not mention `var`;
    /// false for any other expression.
    fn excludes(&self, e: &Expr, var: &Variable) -> bool {
        let Some(mentions) = self.mentions.get(&(e as *const Expr)) else {
            return false;
        };
        let (conjugate, id, idx) = match var {
            Variable::Field(f, idx) => (false, *f, idx),
            Variable::Conjugate(c, idx) => (true, *c, idx),
        };
        !mentions.iter().any(|m| {
            m.conjugate == conjugate
                && m.id == id
                && m.range
                    .as_ref()
                    .is_none_or(|(low, high)| low <= idx && idx <= high)
        })
    }
}

/// Adds `mention` to `mentions`, widening the range of the same field or conjugate.
fn merge(mentions: &mut Vec<Mention>, mention: Mention) {
    match mentions
        .iter_mut()
        .find(|m| m.conjugate == mention.conjugate && m.id == mention.id)
    {
        None => mentions.push(mention),
        Some(existing) => {
            existing.range = match (existing.range.take(), mention.range) {
                (Some((low, high)), Some((l, h))) => Some((low.min(l), high.max(h))),
                _ => None,
            }
        }
    }
}

/// The partner `C[s, t]` of a block `C[t, s]` of a time family (itself on the diagonal).
fn family_partner(theory: &Theory, var: &Variable) -> Option<Variable> {
    match var {
        Variable::Field(f, idx) if theory.fields[*f].is_time_family() => match idx.as_slice() {
            [t, s] => Some(Variable::Field(*f, vec![*s, *t])),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `var` is an entry of a kernel field (not a mean field, not a conjugate).
pub fn is_kernel(theory: &Theory, var: &Variable) -> bool {
    matches!(var, Variable::Field(f, _) if theory.fields[*f].kind == FieldKind::Kernel)
}

/// Which occurrences of a time-family block a gradient follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyMeasure {
    /// All: the direct ones and the family's Gaussian measure.
    Include,
    /// The direct occurrences only.
    Exclude,
    /// The family's Gaussian measure only.
    Only,
}

struct Gradient<'a> {
    theory: &'a Theory,
    var: &'a Variable,
    shape: Shape,
    family: FamilyMeasure,
    index: Option<&'a DependenceIndex<'a>>,
}

impl Gradient<'_> {
    fn depends(&self, e: &Expr) -> bool {
        if self.var.matches(e) {
            return true;
        }
        if self.index.is_some_and(|index| index.excludes(e, self.var)) {
            return false;
        }
        if let ExprKind::Expectation {
            cov: crate::check::ir::Covariance::Family(f),
            ..
        } = &e.kind
            && matches!(self.var, Variable::Field(field, _) if field == f)
        {
            return true;
        }
        e.children().any(|c| self.depends(c))
    }

    /// ∇ of a scalar.
    fn grad(&self, e: &Expr) -> Result<Expr, DeriveError> {
        if self.index.is_some_and(|index| index.excludes(e, self.var)) {
            return Ok(zero(self.shape));
        }
        // Sums (and scalar products, which hold factored sums: N·(x + y + …)) go straight
        // to their parts, each checked for dependence on its own: checking every partial sum
        // of an unrolled `sum(l in 1..=L, …)` (a chain L deep) walked the whole chain at
        // every level, O(L²) per gradient and O(L³) for the L equations. A factor whose
        // gradient is zero is not copied (its copy would be multiplied by zero).
        match &e.kind {
            ExprKind::Add(a, b) => return Ok(add(self.grad(a)?, self.grad(b)?)),
            ExprKind::Sub(a, b) => return Ok(sub(self.grad(a)?, self.grad(b)?)),
            ExprKind::Mul(a, b) if a.shape.is_scalar() && b.shape.is_scalar() => {
                let (grad_a, grad_b) = (self.grad(a)?, self.grad(b)?);
                let times = |factor: &Expr, gradient: Expr| {
                    if is_zero(&gradient) {
                        mul(zero(factor.shape), gradient)
                    } else {
                        mul(factor.clone(), gradient)
                    }
                };
                return Ok(add(times(a, grad_b), times(b, grad_a)));
            }
            ExprKind::Neg(a) => {
                let inner = self.grad(a)?;
                return Ok(if is_zero(&inner) {
                    zero(self.shape)
                } else {
                    neg(inner)
                });
            }
            _ => {}
        }
        if !self.depends(e) {
            return Ok(zero(self.shape));
        }
        Ok(match &e.kind {
            // a 1×1 product of matrices and vectors: its own trace
            ExprKind::Mul(..) => self.grad_trace(None, e)?,
            ExprKind::Div(a, b) => {
                let first = div(self.grad(a)?, (**b).clone());
                if self.depends(b) {
                    let square = mul((**b).clone(), (**b).clone());
                    sub(first, div(mul((**a).clone(), self.grad(b)?), square))
                } else {
                    first
                }
            }
            ExprKind::Pow(a, b) if !self.depends(b) => {
                let lowered = node(
                    ExprKind::Pow(a.clone(), Box::new(sub((**b).clone(), number(1.0)))),
                    Shape::SCALAR,
                );
                mul(mul((**b).clone(), lowered), self.grad(a)?)
            }
            ExprKind::Apply {
                callee: Callee::Builtin(f),
                args,
            } if args.len() == 1 && args[0].shape.is_scalar() => {
                let inner = self.grad(&args[0])?;
                let s = args[0].clone();
                match f {
                    Builtin::Ln => div(inner, s),
                    _ => mul(derivative(*f, s)?, inner),
                }
            }
            ExprKind::Matrix(MatrixFunction::Trace, m) => self.grad_trace(None, m)?,
            ExprKind::Matrix(MatrixFunction::LogDet, z) => {
                self.grad_trace(Some(inverse((**z).clone())), z)?
            }
            ExprKind::Expectation {
                var,
                body,
                mean,
                cov,
            } => {
                let under_integral =
                    expectation(var, self.grad(body)?, (**mean).clone(), cov.clone());
                add(under_integral, self.measure_gradient(var, body, mean, cov)?)
            }
            _ => return Err(self.unsupported(e)),
        })
    }

    /// The part of ∇E[f(h)] that comes from the Gaussian measure 𝒩(m, K) (Stein's lemma):
    /// ∂E/∂K = ½ K⁻¹ E[f (h − m)(h − m)ᵀ] K⁻¹ − ½ K⁻¹ E[f], ∂E/∂m = K⁻¹ E[f (h − m)],
    /// chained through K(X) and m(X).
    fn measure_gradient(
        &self,
        var: &str,
        f: &Expr,
        mean: &Expr,
        cov: &Covariance,
    ) -> Result<Expr, DeriveError> {
        let k = match cov {
            Covariance::Matrix(k) => (**k).clone(),
            Covariance::Family(field) => return self.family_measure_gradient(var, f, mean, *field),
        };
        let (k_depends, m_depends) = (self.depends(&k), self.depends(mean));
        if !k_depends && !m_depends {
            return Ok(zero(self.shape));
        }
        let h = node(
            ExprKind::RandomVar {
                name: var.to_string(),
                time: None,
            },
            Shape::VECTOR,
        );
        let centred = sub(h, mean.clone());
        let k_inv = inverse(k.clone());
        let e = |body: Expr| expectation(var, body, mean.clone(), cov.clone());
        let mut total = zero(self.shape);
        if k_depends {
            let second = e(mul(
                f.clone(),
                mul(centred.clone(), transpose(centred.clone())),
            ));
            let g = mul(
                number(0.5),
                sub(
                    mul(k_inv.clone(), mul(second, k_inv.clone())),
                    mul(e(f.clone()), k_inv.clone()),
                ),
            );
            total = add(total, self.grad_trace(Some(g), &k)?);
        }
        if m_depends {
            let gm = mul(k_inv, e(mul(f.clone(), centred)));
            total = add(total, self.grad_trace(Some(transpose(gm)), mean)?);
        }
        Ok(total)
    }

    /// The part of ∇E[f(h)] from the measure of a time family `h ~ N(m, C)` (Stein's lemma
    /// over the joint covariance Σ of the times U that f reads): with ĥ = Σ⁻¹(h − m),
    /// ∂E[f]/∂Σ = ½ (E[f ĥ ĥᵀ] − E[f] Σ⁻¹) and Σ⁻¹ = E[ĥ ĥᵀ], so the block `C[a, b]` gets
    /// ½ (E[f ĥ[a] ĥ[b]ᵀ] − E[f] E[ĥ[a] ĥ[b]ᵀ]), zero unless a, b ∈ U. This is symmetric over
    /// the family (the (b, a) block is its transpose), which [`gradient`] relies on.
    fn family_measure_gradient(
        &self,
        var: &str,
        f: &Expr,
        mean: &Expr,
        family: FieldId,
    ) -> Result<Expr, DeriveError> {
        if self.depends(mean) {
            return Err(DeriveError::Unsupported(
                "the mean of an expectation over a time family depends on the variable".into(),
            ));
        }
        let (a, b) = match self.var {
            Variable::Field(v, idx) if *v == family && self.family != FamilyMeasure::Exclude => {
                match idx.as_slice() {
                    [a, b] => (*a, *b),
                    _ => return Ok(zero(self.shape)),
                }
            }
            _ => return Ok(zero(self.shape)),
        };
        if mentions_whitened(f) {
            return Err(DeriveError::Unsupported(
                "second derivatives of an expectation over a time family with respect to its kernel blocks are not derived symbolically".into(),
            ));
        }
        let mut times = std::collections::BTreeSet::new();
        random_times(f, var, &mut times)?;
        if !times.contains(&a) || !times.contains(&b) {
            return Ok(zero(self.shape));
        }
        let over: Vec<i64> = times.into_iter().collect();
        let whitened = |time: i64| {
            node(
                ExprKind::Whitened {
                    name: var.to_string(),
                    time,
                    over: over.clone(),
                },
                Shape::VECTOR,
            )
        };
        let outer = mul(whitened(a), transpose(whitened(b)));
        let e = |body: Expr| expectation(var, body, mean.clone(), Covariance::Family(family));
        Ok(mul(
            number(0.5),
            sub(
                e(mul(f.clone(), outer.clone())),
                mul(e(f.clone()), e(outer)),
            ),
        ))
    }

    /// ∇_X tr(W F); `w = None` stands for the identity.
    fn grad_trace(&self, w: Option<Expr>, f: &Expr) -> Result<Expr, DeriveError> {
        if !self.depends(f) {
            return Ok(zero(self.shape));
        }
        if self.var.matches(f) {
            if self.family == FamilyMeasure::Only {
                return Ok(zero(self.shape));
            }
            return Ok(match w {
                Some(w) => transpose(w),
                None => node(ExprKind::Identity, self.shape),
            });
        }
        let matrix_product =
            matches!(&f.kind, ExprKind::Mul(a, b) if !a.shape.is_scalar() && !b.shape.is_scalar());
        if f.shape.is_scalar() && !matrix_product {
            let g = self.grad(f)?;
            return Ok(match w {
                Some(w) if w.shape.is_scalar() => mul(w, g),
                Some(w) => mul(trace(w), g),
                None => g,
            });
        }
        Ok(match &f.kind {
            ExprKind::Transpose(g) => self.grad_trace(w.map(transpose), g)?,
            ExprKind::Neg(a) => neg(self.grad_trace(w, a)?),
            ExprKind::Add(a, b) => add(self.grad_trace(w.clone(), a)?, self.grad_trace(w, b)?),
            ExprKind::Sub(a, b) => sub(self.grad_trace(w.clone(), a)?, self.grad_trace(w, b)?),
            ExprKind::Mul(a, b) if a.shape.is_scalar() => {
                let value = trace(times(w.clone(), (**b).clone()));
                add(
                    mul((**a).clone(), self.grad_trace(w, b)?),
                    mul(value, self.grad(a)?),
                )
            }
            ExprKind::Mul(a, b) if b.shape.is_scalar() => {
                let value = trace(times(w.clone(), (**a).clone()));
                add(
                    mul((**b).clone(), self.grad_trace(w, a)?),
                    mul(value, self.grad(b)?),
                )
            }
            ExprKind::Mul(a, b) => {
                // tr(W A B): through A with B W, through B with W A
                let via_a = self.grad_trace(Some(times_right((**b).clone(), w.clone())), a)?;
                let via_b = self.grad_trace(Some(times(w, (**a).clone())), b)?;
                add(via_a, via_b)
            }
            ExprKind::Div(a, s) => {
                let first = div(self.grad_trace(w.clone(), a)?, (**s).clone());
                if self.depends(s) {
                    let value = trace(times(w, (**a).clone()));
                    sub(
                        first,
                        div(mul(value, self.grad(s)?), mul((**s).clone(), (**s).clone())),
                    )
                } else {
                    first
                }
            }
            ExprKind::Matrix(MatrixFunction::Inverse, z) => {
                // d tr(W Z⁻¹) = −tr(Z⁻¹ W Z⁻¹ dZ)
                let zi = inverse((**z).clone());
                let w_next = mul(times_right(zi.clone(), w), zi);
                self.grad_trace(Some(neg(w_next)), z)?
            }
            ExprKind::Expectation {
                var,
                body,
                mean,
                cov,
            } => {
                // tr(W E[B]) = E[tr(W B)]
                let scalar = expectation(
                    var,
                    trace(times(w, (**body).clone())),
                    (**mean).clone(),
                    cov.clone(),
                );
                self.grad(&scalar)?
            }
            _ => return Err(self.unsupported(f)),
        })
    }

    fn unsupported(&self, e: &Expr) -> DeriveError {
        let _ = self.theory;
        DeriveError::Unsupported(format!(
            "no differentiation rule for this expression: {:?}",
            e.kind
        ))
    }
}

/// `W F` with `None` standing for the identity.
fn times(w: Option<Expr>, f: Expr) -> Expr {
    match w {
        Some(w) => mul(w, f),
        None => f,
    }
}

/// `F W` with `None` standing for the identity.
fn times_right(f: Expr, w: Option<Expr>) -> Expr {
    match w {
        Some(w) => mul(f, w),
        None => f,
    }
}

/// d f(s)/ds for the scalar built-ins.
fn derivative(f: Builtin, s: Expr) -> Result<Expr, DeriveError> {
    let sq = || mul(s.clone(), s.clone());
    Ok(match f {
        Builtin::Exp => apply(Builtin::Exp, s),
        Builtin::Sqrt => div(number(0.5), apply(Builtin::Sqrt, s)),
        Builtin::Erf => {
            let pi = node(ExprKind::Pi, Shape::SCALAR);
            mul(
                div(number(2.0), apply(Builtin::Sqrt, pi)),
                apply(Builtin::Exp, neg(sq())),
            )
        }
        Builtin::Tanh => {
            let t = apply(Builtin::Tanh, s);
            sub(number(1.0), mul(t.clone(), t))
        }
        Builtin::Asin => div(number(1.0), apply(Builtin::Sqrt, sub(number(1.0), sq()))),
        Builtin::Acos => neg(div(
            number(1.0),
            apply(Builtin::Sqrt, sub(number(1.0), sq())),
        )),
        Builtin::Atan => div(number(1.0), add(number(1.0), sq())),
        // Kinks take their pointwise derivative, as in the symbolic engine
        // (`symbolic::diff`): relu' = step, |x|' = sign (Price's theorem inside an
        // expectation gives the same). Jumps have only a δ and are refused.
        Builtin::Relu => apply(Builtin::Step, s),
        Builtin::Abs => apply(Builtin::Sign, s),
        Builtin::Ln => div(number(1.0), s),
        Builtin::Step | Builtin::Sign => {
            return Err(DeriveError::Unsupported(format!(
                "`{}` has no classical derivative",
                f.name()
            )));
        }
    })
}

/// Whether `e` reads a whitened random variable.
fn mentions_whitened(e: &Expr) -> bool {
    e.any(&mut |x| matches!(x.kind, ExprKind::Whitened { .. }))
}

/// The times `t` of the family members `var[t]` that `e` reads (after unrolling, constants).
fn random_times(
    e: &Expr,
    var: &str,
    times: &mut std::collections::BTreeSet<i64>,
) -> Result<(), DeriveError> {
    if let ExprKind::RandomVar { name, time } = &e.kind
        && name == var
    {
        let Some(t) = time.as_ref().filter(|t| t.terms.is_empty()) else {
            return Err(DeriveError::Unsupported(format!(
                "`{var}` read without a constant time in an expectation over a time family"
            )));
        };
        times.insert(t.constant);
    }
    let mut result = Ok(());
    crate::check::for_each_child(e, |c| {
        if result.is_ok() {
            result = random_times(c, var, times);
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::unroll::{IndexEnv, unroll};

    /// recurrent_erf at T = 2, unrolled: its expectation reads h[0] and h[1].
    fn recurrent() -> (Theory, Expr) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/recurrent_erf.action");
        let source = std::fs::read_to_string(path).expect("example");
        let theory = crate::compile(&source, path).expect("checks");
        let ints: Vec<i64> = theory
            .params
            .iter()
            .map(|p| if p.name == "T" { 2 } else { 0 })
            .collect();
        let action = unroll(&theory.action.body, &IndexEnv::new(), &ints).expect("unrolls");
        (theory, action)
    }

    /// The example `name` unrolled with the integer parameter `int` = `value`.
    fn unrolled(name: &str, int: &str, value: i64) -> (Theory, Expr) {
        let path = format!("{}/examples/{name}.action", env!("CARGO_MANIFEST_DIR"));
        let source = std::fs::read_to_string(&path).expect("example");
        let theory = crate::compile(&source, &path).expect("checks");
        let ints: Vec<i64> = theory
            .params
            .iter()
            .map(|p| if p.name == int { value } else { 0 })
            .collect();
        let action = unroll(&theory.action.body, &IndexEnv::new(), &ints).expect("unrolls");
        (theory, action)
    }

    /// The derivation and the symbolic engine agree on kinks (|x|' = sign x, relu' = step)
    /// and both refuse jumps (their derivative is a δ).
    #[test]
    fn kinks_take_their_pointwise_derivative_in_both_engines() {
        use crate::symbolic::diff::diff;
        use crate::symbolic::lang::Math;
        let x = || node(ExprKind::Pi, Shape::SCALAR);
        assert_eq!(
            derivative(Builtin::Abs, x()).ok(),
            Some(apply(Builtin::Sign, x()))
        );
        assert_eq!(
            derivative(Builtin::Relu, x()).ok(),
            Some(apply(Builtin::Step, x()))
        );
        assert!(derivative(Builtin::Sign, x()).is_err());
        assert!(derivative(Builtin::Step, x()).is_err());
        let expr: egg::RecExpr<Math> = "(abs x)".parse().expect("a term");
        let symbolic = diff(&expr, "x").expect("abs has a pointwise derivative");
        assert!(
            symbolic.as_ref().iter().any(|n| matches!(n, Math::Sign(_))),
            "{symbolic}"
        );
    }

    #[test]
    fn the_dependence_index_changes_no_gradient() {
        for (name, int, value) in [
            ("deep_erf", "L", 6),
            ("deep_tanh", "L", 3),
            ("binary_threshold", "L", 3),
            ("recurrent_erf", "T", 3),
        ] {
            let (theory, action) = unrolled(name, int, value);
            let index = DependenceIndex::new(&action);
            let mut variables = Vec::new();
            for l in 0..=value {
                for id in 0..theory.fields.len() {
                    variables.push(Variable::Field(id, vec![l]));
                    variables.push(Variable::Field(id, vec![l, l]));
                    variables.push(Variable::Field(id, vec![l, (l + 1).min(value)]));
                }
                for id in 0..theory.conjugates.len() {
                    variables.push(Variable::Conjugate(id, vec![l]));
                    variables.push(Variable::Conjugate(id, vec![l, l]));
                }
            }
            let mut nonzero = 0;
            for var in &variables {
                let plain = gradient(&theory, &action, var);
                let indexed = gradient_indexed(&theory, &action, var, Some(&index));
                assert_eq!(plain, indexed, "{name}: {var:?}");
                let raw = raw_gradient(&theory, &action, var);
                let raw_indexed = raw_gradient_indexed(&theory, &action, var, Some(&index));
                assert_eq!(raw, raw_indexed, "{name}: raw {var:?}");
                nonzero += usize::from(plain.is_ok_and(|g| !is_zero(&g)));
            }
            assert!(
                nonzero >= value as usize,
                "{name}: only {nonzero} gradients"
            );
        }
    }

    #[test]
    fn the_dependence_index_prunes_the_partial_sums_below_a_layer() {
        let (_, action) = unrolled("deep_erf", "L", 6);
        let index = DependenceIndex::new(&action);
        // the root mentions every layer; some partial sum of the chain mentions no C̃[6]
        let last = Variable::Conjugate(0, vec![6]);
        assert!(!index.excludes(&action, &last));
        let mut node = &action;
        let mut pruned = false;
        while let ExprKind::Add(a, _) | ExprKind::Sub(a, _) = &node.kind {
            pruned |= index.excludes(a, &last);
            node = a;
        }
        assert!(pruned, "no partial sum was excluded");
        // an expression built elsewhere is never pruned
        assert!(!index.excludes(&action.clone(), &Variable::Conjugate(0, vec![99])));
    }

    #[test]
    fn family_measure_enters_only_the_blocks_the_expectation_reads() {
        let (theory, action) = recurrent();
        let read = gradient(&theory, &action, &Variable::Field(0, vec![1, 1])).expect("C[1, 1]");
        assert!(mentions_whitened(&read));
        // time 2 is read by no expectation: C[1, 2] enters directly only
        let direct = gradient(&theory, &action, &Variable::Field(0, vec![1, 2])).expect("C[1, 2]");
        assert!(!mentions_whitened(&direct));
    }

    #[test]
    fn second_family_derivatives_are_reported_not_guessed() {
        let (theory, action) = recurrent();
        let var = Variable::Field(0, vec![1, 1]);
        let first = gradient(&theory, &action, &var).expect("first derivative");
        let contracted = trace(first);
        match gradient(&theory, &contracted, &var) {
            Err(DeriveError::Unsupported(why)) => assert!(why.contains("second derivatives")),
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
}
