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
//!
//! Here: [`Variable`], the gradient entry points and the recursion over expressions;
//! `chain_rule`: traces, products, built-ins and whitened expectations (`grad_trace`);
//! `measure`: the measure terms (Stein's lemma, alone and over a time family);
//! `dependence`: [`DependenceIndex`], which sub-expressions can depend on a variable.

use crate::check::ir::{
    Builtin, Callee, ConjId, Expr, ExprKind, FieldId, FieldKind, IndexExpr, MatrixFunction, Shape,
    Theory,
};

mod chain_rule;
mod dependence;
mod measure;
use chain_rule::*;
pub use dependence::DependenceIndex;

use super::DeriveError;
use super::build::{
    add, div, expectation, inverse, is_zero, mul, neg, node, number, sub, symmetric_part,
    transpose, zero,
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

    fn unsupported(&self, e: &Expr) -> DeriveError {
        let _ = self.theory;
        DeriveError::Unsupported(format!(
            "no differentiation rule for this expression: {:?}",
            e.kind
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::build::{apply, trace};
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
