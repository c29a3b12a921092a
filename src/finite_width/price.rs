//! The backward equations without an inverse kernel: Price's theorem for tilts that are
//! bilinear and linear forms of smooth entry-wise functions of the pre-activations.
//!
//! ## Equations
//! For h ~ 𝒩(m, K), ∂E[f]/∂K_αβ = ½ E[∂_α∂_β f] (full-matrix convention) and
//! K⁻¹(E[h f] − m E[f]) = E[∇f] (Stein). With f = e^A,
//! $$\partial_K\ln Z=\tfrac12\big\langle\nabla^2A+\nabla A\,\nabla A^\top\big\rangle_P,\qquad
//! \partial_m\ln Z=\langle\nabla A\rangle_P,$$
//! which is THEORY.md §4.3 (B2) for A = (g/N) φᵀC̃φ. For a tilt
//! A = Σₜ cₜ uₜ(h)ᵀMₜvₜ(h) + Σₜ rₜᵀwₜ(h) with entry-wise uₜ, vₜ, wₜ:
//! ∇A = Σₜ cₜ[u′ₜ⊙(Mₜvₜ) + v′ₜ⊙(Mₜᵀuₜ)] + Σₜ rₜ⊙w′ₜ and
//! ⟨∇²A⟩ = Σₜ cₜ[diag⟨u″⊙Mv + v″⊙Mᵀu⟩ + M∘⟨u′v′ᵀ⟩ + Mᵀ∘⟨v′u′ᵀ⟩] + diag(r⊙⟨w″⟩):
//! weighted products of M×P arrays (gemm), never a P⁴ tensor.
//!
//! Unlike (B1), ½(K⁻¹⟨(h−m)(h−m)ᵀ⟩K⁻¹ − K⁻¹), no inverse of K appears, and the average is
//! not multiplied by the width: a sampled (B1) has noise N·O(1/√M) in each of the P² entries
//! (amplified further by an ill-conditioned K), (B2) has O(|C̃|/√M). Functions with kinks
//! (relu, abs) have a second derivative that is a distribution, which samples miss: for
//! them one Stein step only, K⁻¹⟨(h−m)(h−m)ᵀ⟩K⁻¹ − K⁻¹ = ⟨∇A (K⁻¹(h−m))ᵀ⟩_P, first
//! derivatives pointwise. Functions with jumps (step, sign) have a distributional first
//! derivative: [`TiltForm::read`] declines them.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use num_dual::{Dual2_64, DualNum};
use rayon::prelude::*;

use crate::check::ir::{Builtin, Callee, Expr, ExprKind, Theory};
use crate::derive::build::mentions_random;
use crate::numeric::matrix::{MatrixContext, Value};
use crate::numeric::tall::{tall_gram, tall_times};

/// `coefficient · u(h)ᵀ M v(h)` (M the identity when None).
#[derive(Debug, Clone)]
struct Bilinear {
    coefficient: Vec<(Expr, bool)>,
    matrix: Option<Expr>,
    left: usize,
    right: usize,
}

/// `coefficient · rᵀ w(h)`.
#[derive(Debug, Clone)]
struct Linear {
    coefficient: Vec<(Expr, bool)>,
    vector: Expr,
    function: usize,
}

/// A tilt as bilinear and linear forms of smooth entry-wise functions of h.
#[derive(Debug, Clone)]
pub struct TiltForm {
    /// The distinct entry-wise functions (P-vector expressions of h).
    functions: Vec<Expr>,
    bilinear: Vec<Bilinear>,
    linear: Vec<Linear>,
    /// Every function is twice continuously differentiable (Price); otherwise one Stein
    /// step, which needs the whitened samples.
    second_order: bool,
}

/// Scalar factors (true: divide by it) and the other factors of one product.
type Term = (Vec<(Expr, bool)>, Vec<Factor>);

/// One factor of a product, in order.
enum Factor {
    Scalar(Expr, bool),
    Constant(Expr),
    Random(Expr, bool),
}

impl TiltForm {
    /// Reads `tilt` (in the random variable `var`), or None when it is not of this form.
    pub fn read(theory: &Theory, var: &str, tilt: &Expr) -> Option<TiltForm> {
        let mut form = TiltForm {
            functions: Vec::new(),
            bilinear: Vec::new(),
            linear: Vec::new(),
            second_order: true,
        };
        let mut terms = Vec::new();
        split_terms(tilt, var, Vec::new(), &mut terms)?;
        for (coefficient, factors) in terms {
            let mut coefficient = coefficient;
            let mut rest = Vec::new();
            for f in factors {
                match f {
                    Factor::Scalar(e, inverse) => coefficient.push((e, inverse)),
                    other => rest.push(other),
                }
            }
            match rest.as_slice() {
                [
                    Factor::Random(u, true),
                    Factor::Constant(m),
                    Factor::Random(v, false),
                ] => {
                    let left = form.function(theory, var, u)?;
                    let right = form.function(theory, var, v)?;
                    form.bilinear.push(Bilinear {
                        coefficient,
                        matrix: Some(m.clone()),
                        left,
                        right,
                    });
                }
                [Factor::Random(u, true), Factor::Random(v, false)] => {
                    let left = form.function(theory, var, u)?;
                    let right = form.function(theory, var, v)?;
                    form.bilinear.push(Bilinear {
                        coefficient,
                        matrix: None,
                        left,
                        right,
                    });
                }
                [Factor::Constant(r), Factor::Random(w, false)] => {
                    let function = form.function(theory, var, w)?;
                    form.linear.push(Linear {
                        coefficient,
                        vector: transpose(r),
                        function,
                    });
                }
                [Factor::Random(w, true), Factor::Constant(r)] => {
                    let function = form.function(theory, var, w)?;
                    form.linear.push(Linear {
                        coefficient,
                        vector: r.clone(),
                        function,
                    });
                }
                [Factor::Constant(_)] => {} // a constant: no gradient
                _ => return None,
            }
        }
        Some(form)
    }

    fn function(&mut self, theory: &Theory, var: &str, e: &Expr) -> Option<usize> {
        let r = regularity(theory, var, e, false)?;
        if r == Regularity::Jumps {
            return None;
        }
        self.second_order &= r == Regularity::Smooth;
        if let Some(i) = self.functions.iter().position(|f| f == e) {
            return Some(i);
        }
        self.functions.push(e.clone());
        Some(self.functions.len() - 1)
    }

    /// Whether the backward equation needs second derivatives only (Price's theorem), or
    /// one Stein step with the whitened samples K⁻¹(h − m).
    pub fn second_order(&self) -> bool {
        self.second_order
    }

    /// The distinct entry-wise functions the tilt is made of.
    pub fn functions(&self) -> &[Expr] {
        &self.functions
    }

    /// The tilt's terms with their coefficients and matrices evaluated in `constants` (on P
    /// patterns): A = Σ uᵀ·Mv + Σ rᵀw.
    pub fn terms(&self, constants: &MatrixContext<'_>, p: usize) -> Result<EvaluatedTilt, String> {
        let bilinear = self
            .bilinear
            .iter()
            .map(|b| {
                let c = scalar(&b.coefficient, constants)?;
                let matrix = match &b.matrix {
                    None => Array2::eye(p),
                    Some(e) => match constants.eval(e).map_err(|e| e.to_string())? {
                        Value::Matrix(x) if x.dim() == (p, p) => x,
                        Value::Scalar(s) => Array2::from_elem((p, p), s),
                        Value::Matrix(x) => {
                            return Err(format!("a {}×{} matrix", x.nrows(), x.ncols()));
                        }
                    },
                };
                Ok((matrix * c, b.left, b.right))
            })
            .collect::<Result<_, String>>()?;
        let linear = self
            .linear
            .iter()
            .map(|l| {
                let c = scalar(&l.coefficient, constants)?;
                let r = match constants.eval(&l.vector).map_err(|e| e.to_string())? {
                    Value::Matrix(x) if x.len() == p => Array1::from_iter(x.iter().copied()) * c,
                    Value::Scalar(s) => Array1::from_elem(p, s * c),
                    Value::Matrix(x) => {
                        return Err(format!("a {}×{} vector", x.nrows(), x.ncols()));
                    }
                };
                Ok((r, l.function))
            })
            .collect::<Result<_, String>>()?;
        Ok(EvaluatedTilt { bilinear, linear })
    }

    /// ∂ ln Z/∂K and ∂ ln Z/∂m under sample weights `w` (summing to one) on the samples
    /// `h` (M×P): ½⟨∇²A + ∇A∇Aᵀ⟩ (Price) or, for functions with kinks, ½ sym⟨∇A ĥᵀ⟩ with
    /// the rows ĥ = K⁻¹(h − m) of `whitened` (one Stein step); and ⟨∇A⟩.
    pub fn gradients(
        &self,
        theory: &Theory,
        var: &str,
        h: ArrayView2<'_, f64>,
        w: ArrayView1<'_, f64>,
        whitened: Option<ArrayView2<'_, f64>>,
        constants: &MatrixContext<'_>,
    ) -> Result<(Array2<f64>, Array1<f64>), String> {
        let (m, p) = h.dim();
        let jets: Vec<[Array2<f64>; 3]> = self
            .functions
            .iter()
            .map(|f| jet(theory, var, f, h, constants))
            .collect::<Result<_, _>>()?;
        let terms = self.terms(constants, p)?;
        let weighted = |a: &Array2<f64>| a * &w.insert_axis(Axis(1));
        let mut gradient = Array2::<f64>::zeros((m, p));
        let mut hessian = Array2::<f64>::zeros((p, p));
        let mut diagonal = Array1::<f64>::zeros(p);
        for (mm, left, right) in &terms.bilinear {
            let [u, u1, u2] = &jets[*left];
            let [v, v1, v2] = &jets[*right];
            let mv = tall_times(v.view(), mm.t()); // rows (M v)ᵀ
            let mtu = tall_times(u.view(), mm.view()); // rows (Mᵀ u)ᵀ
            Zip::from(&mut gradient)
                .and(u1)
                .and(&mv)
                .and(v1)
                .and(&mtu)
                .for_each(|g, &a, &b, &c, &d| *g += a * b + c * d);
            diagonal += &(u2 * &mv + v2 * &mtu).t().dot(&w);
            let cross = tall_gram(u1.view(), weighted(v1).view()); // ⟨u′v′ᵀ⟩
            hessian += &(mm * &cross);
            hessian += &(&mm.t() * &cross.t());
        }
        for (r, function) in &terms.linear {
            let [_, w1, w2] = &jets[*function];
            gradient += &(w1 * &r.view().insert_axis(Axis(0)));
            diagonal += &(w2.t().dot(&w) * r);
        }
        let mean = gradient.t().dot(&w);
        if !self.second_order {
            let whitened = whitened.ok_or("the whitened samples are needed")?;
            let first = tall_gram(weighted(&gradient).view(), whitened);
            return Ok(((&first + &first.t()) * 0.25, mean));
        }
        let mut second = tall_gram(gradient.view(), weighted(&gradient).view());
        second += &hessian;
        second.diag_mut().zip_mut_with(&diagonal, |a, b| *a += b);
        let second = (&second + &second.t()) * 0.25;
        Ok((second, mean))
    }
}

/// A tilt's terms at given conjugates: (c·M, u, v) for each c·uᵀMv and (c·r, w) for each
/// c·rᵀw, functions by their index in [`TiltForm::functions`].
#[derive(Debug, Clone)]
pub struct EvaluatedTilt {
    /// The bilinear terms.
    pub bilinear: Vec<(Array2<f64>, usize, usize)>,
    /// The linear terms.
    pub linear: Vec<(Array1<f64>, usize)>,
}

/// The product of scalar factors (true: divide by it).
fn scalar(coefficient: &[(Expr, bool)], constants: &MatrixContext<'_>) -> Result<f64, String> {
    let mut c = 1.0;
    for (e, inverse) in coefficient {
        match constants.eval(e).map_err(|e| e.to_string())? {
            Value::Scalar(v) if *inverse => c /= v,
            Value::Scalar(v) => c *= v,
            Value::Matrix(_) => return Err("a matrix where a number was expected".into()),
        }
    }
    Ok(c)
}

/// One term of an average's integrand: c·f(h)g(h)ᵀ or c·f(h), functions by index.
#[derive(Debug, Clone)]
pub enum BodyTerm {
    /// c·f gᵀ (P×P).
    Outer {
        /// The coefficient c.
        coefficient: f64,
        /// f.
        left: usize,
        /// g.
        right: usize,
    },
    /// c·f (a P-vector).
    Vector {
        /// The coefficient c.
        coefficient: f64,
        /// f.
        function: usize,
    },
}

/// An average's integrand as outer products and vectors of twice continuously
/// differentiable entry-wise functions (plus constants, which no expectation moves), so
/// that Price's theorem gives its derivative in the kernel:
/// ∂⟨f_α g_β⟩ = δK_αβ⟨f′_α g′_β⟩ + ½δK_αα⟨f″_α g_β⟩ + ½δK_ββ⟨f_α g″_β⟩ (+ the mean's).
#[derive(Debug, Clone)]
pub struct BodyForm {
    /// The terms, functions indexing `functions`.
    pub terms: Vec<BodyTerm>,
    /// The distinct functions.
    pub functions: Vec<Expr>,
    /// Terms without the random variable: (c, e) for c·e.
    pub constants: Vec<(f64, Expr)>,
}

impl BodyForm {
    /// Reads `body` (in `var`) with its scalar coefficients evaluated in `constants`, or
    /// None when it is not of this form.
    pub fn read(
        theory: &Theory,
        var: &str,
        body: &Expr,
        constants: &MatrixContext<'_>,
    ) -> Option<BodyForm> {
        Self::read_up_to(theory, var, body, constants, Regularity::Smooth)
    }

    /// [`BodyForm::read`], its functions allowed to be as rough as `roughest` (kinks: a
    /// first derivative almost everywhere is all a gradient needs).
    pub fn read_up_to(
        theory: &Theory,
        var: &str,
        body: &Expr,
        constants: &MatrixContext<'_>,
        roughest: Regularity,
    ) -> Option<BodyForm> {
        let mut form = BodyForm {
            terms: Vec::new(),
            functions: Vec::new(),
            constants: Vec::new(),
        };
        let mut split = Vec::new();
        split_terms(body, var, Vec::new(), &mut split)?;
        for (coefficient, factors) in split {
            let mut coefficient = coefficient;
            let mut rest = Vec::new();
            for f in factors {
                match f {
                    Factor::Scalar(e, inverse) => coefficient.push((e, inverse)),
                    other => rest.push(other),
                }
            }
            // a coefficient or constant that reads a field would move with it: not this form
            let reads_fields = |e: &Expr| e.any(&mut |x| matches!(x.kind, ExprKind::Field { .. }));
            if coefficient.iter().any(|(e, _)| reads_fields(e))
                || rest
                    .iter()
                    .any(|f| matches!(f, Factor::Constant(e) if reads_fields(e)))
            {
                return None;
            }
            let c = scalar(&coefficient, constants).ok()?;
            match rest.as_slice() {
                [Factor::Random(f, false), Factor::Random(g, true)] => {
                    let left = form.function(theory, var, f, roughest)?;
                    let right = form.function(theory, var, g, roughest)?;
                    form.terms.push(BodyTerm::Outer {
                        coefficient: c,
                        left,
                        right,
                    });
                }
                [Factor::Random(f, false)] => {
                    let function = form.function(theory, var, f, roughest)?;
                    form.terms.push(BodyTerm::Vector {
                        coefficient: c,
                        function,
                    });
                }
                [Factor::Constant(e)] => form.constants.push((c, e.clone())),
                _ => return None,
            }
        }
        Some(form)
    }

    fn function(
        &mut self,
        theory: &Theory,
        var: &str,
        e: &Expr,
        roughest: Regularity,
    ) -> Option<usize> {
        if regularity(theory, var, e, false)? > roughest {
            return None;
        }
        if let Some(i) = self.functions.iter().position(|f| f == e) {
            return Some(i);
        }
        self.functions.push(e.clone());
        Some(self.functions.len() - 1)
    }
}

fn transpose(e: &Expr) -> Expr {
    crate::derive::build::node(
        ExprKind::Transpose(Box::new(e.clone())),
        crate::check::ir::Shape {
            rows: e.shape.cols,
            cols: e.shape.rows,
        },
    )
}

/// Splits a sum into products, each with its scalar coefficients (inverse: divide).
fn split_terms(
    e: &Expr,
    var: &str,
    coefficient: Vec<(Expr, bool)>,
    out: &mut Vec<Term>,
) -> Option<()> {
    let random = |x: &Expr| mentions_random(x, Some(var));
    match &e.kind {
        ExprKind::Add(a, b) => {
            split_terms(a, var, coefficient.clone(), out)?;
            split_terms(b, var, coefficient, out)
        }
        ExprKind::Sub(a, b) => {
            split_terms(a, var, coefficient.clone(), out)?;
            let mut negative = coefficient;
            negative.push((crate::derive::build::number(-1.0), false));
            split_terms(b, var, negative, out)
        }
        ExprKind::Neg(a) => {
            let mut negative = coefficient;
            negative.push((crate::derive::build::number(-1.0), false));
            split_terms(a, var, negative, out)
        }
        ExprKind::Div(a, b) if !random(b) && b.shape.is_scalar() => {
            let mut c = coefficient;
            c.push(((**b).clone(), true));
            split_terms(a, var, c, out)
        }
        ExprKind::Mul(a, b) if !random(a) && a.shape.is_scalar() => {
            let mut c = coefficient;
            c.push(((**a).clone(), false));
            split_terms(b, var, c, out)
        }
        ExprKind::Mul(a, b) if !random(b) && b.shape.is_scalar() => {
            let mut c = coefficient;
            c.push(((**b).clone(), false));
            split_terms(a, var, c, out)
        }
        _ if !random(e) => {
            out.push((coefficient, vec![Factor::Constant(e.clone())]));
            Some(())
        }
        _ => {
            let mut factors = Vec::new();
            product_factors(e, var, &mut factors)?;
            out.push((coefficient, factors));
            Some(())
        }
    }
}

fn product_factors(e: &Expr, var: &str, out: &mut Vec<Factor>) -> Option<()> {
    let random = mentions_random(e, Some(var));
    match &e.kind {
        ExprKind::Mul(a, b) => {
            product_factors(a, var, out)?;
            product_factors(b, var, out)
        }
        ExprKind::Div(a, b) if !mentions_random(b, Some(var)) && b.shape.is_scalar() => {
            product_factors(a, var, out)?;
            out.push(Factor::Scalar((**b).clone(), true));
            Some(())
        }
        _ if !random && e.shape.is_scalar() => {
            out.push(Factor::Scalar(e.clone(), false));
            Some(())
        }
        _ if !random => {
            out.push(Factor::Constant(e.clone()));
            Some(())
        }
        ExprKind::Transpose(a) if a.shape.cols == crate::check::ir::Dim::One => {
            out.push(Factor::Random((**a).clone(), true));
            Some(())
        }
        _ if e.shape.cols == crate::check::ir::Dim::One && !e.shape.is_scalar() => {
            out.push(Factor::Random(e.clone(), false));
            Some(())
        }
        _ => None,
    }
}

/// How differentiable an entry-wise function is: what the samples can see of its
/// derivatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Regularity {
    /// Twice continuously differentiable: Price's theorem.
    Smooth,
    /// Kinks (relu, abs): the first derivative pointwise, the second a distribution.
    Kinked,
    /// Jumps (step, sign): already the first derivative is a distribution.
    Jumps,
}

/// How differentiable a built-in is.
pub fn builtin_regularity(b: Builtin) -> Regularity {
    match b {
        Builtin::Relu | Builtin::Abs => Regularity::Kinked,
        Builtin::Step | Builtin::Sign => Regularity::Jumps,
        _ => Regularity::Smooth,
    }
}

/// The regularity of `e` as an entry-wise function of h, None when it is not entry-wise.
pub fn regularity(theory: &Theory, var: &str, e: &Expr, in_function: bool) -> Option<Regularity> {
    let go = |x: &Expr| regularity(theory, var, x, in_function);
    let constant = |x: &Expr| {
        !mentions_random(x, Some(var))
            && x.shape.is_scalar()
            && (in_function || !x.any(&mut |y| matches!(y.kind, ExprKind::FunctionArg(_))))
    };
    match &e.kind {
        ExprKind::RandomVar { name, time: None } => (name == var).then_some(Regularity::Smooth),
        ExprKind::FunctionArg(_) => in_function.then_some(Regularity::Smooth),
        ExprKind::Neg(a) => go(a),
        ExprKind::Add(a, b) | ExprKind::Sub(a, b) | ExprKind::Mul(a, b) => {
            let entrywise =
                |x: &Expr| x.shape.is_scalar() || mentions_random(x, Some(var)) || in_function;
            if !(entrywise(a) && entrywise(b)) {
                return None;
            }
            Some(go(a)?.max(go(b)?))
        }
        ExprKind::Div(a, b) | ExprKind::Pow(a, b) => Some(go(a)?.max(go(b)?)),
        ExprKind::Apply { callee, args } => {
            let own = match callee {
                Callee::Builtin(b) => builtin_regularity(*b),
                Callee::User(id) => regularity(theory, var, &theory.functions[*id].body, true)?,
            };
            args.iter().try_fold(own, |acc, a| Some(acc.max(go(a)?)))
        }
        _ if constant(e) => Some(Regularity::Smooth),
        _ => None,
    }
}

/// A jet-valued value: the same for every entry, or one per entry.
#[derive(Clone)]
enum Jet {
    Scalar(Dual2_64),
    Entries(Vec<Dual2_64>),
}

impl Jet {
    fn map(self, f: impl Fn(Dual2_64) -> Dual2_64) -> Jet {
        match self {
            Jet::Scalar(x) => Jet::Scalar(f(x)),
            Jet::Entries(mut v) => {
                v.iter_mut().for_each(|x| *x = f(*x));
                Jet::Entries(v)
            }
        }
    }

    fn zip(self, other: Jet, f: impl Fn(Dual2_64, Dual2_64) -> Dual2_64) -> Jet {
        match (self, other) {
            (Jet::Scalar(a), Jet::Scalar(b)) => Jet::Scalar(f(a, b)),
            (Jet::Scalar(a), Jet::Entries(mut v)) => {
                v.iter_mut().for_each(|x| *x = f(a, *x));
                Jet::Entries(v)
            }
            (Jet::Entries(mut v), Jet::Scalar(b)) => {
                v.iter_mut().for_each(|x| *x = f(*x, b));
                Jet::Entries(v)
            }
            (Jet::Entries(mut a), Jet::Entries(b)) => {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x = f(*x, *y));
                Jet::Entries(a)
            }
        }
    }
}

/// erf or exp of every entry, composed with the entries' own derivatives: the values and
/// slopes by the vectorised kernels of [`crate::numeric::vector_math`] (the libm calls of the
/// generic path dominate a jet over many samples), f″ from them (erf″ = −2x·erf′, exp″ = exp).
fn vectorised_builtin(b: Builtin, x: &mut [Dual2_64], isa: crate::numeric::vector_math::Isa) {
    use crate::numeric::vector_math::{erf_slice, exp_slice};
    let re: Vec<f64> = x.iter().map(|d| d.re).collect();
    let mut value = vec![0.0; re.len()];
    let mut slope = vec![0.0; re.len()];
    match b {
        Builtin::Erf => erf_slice(isa, &re, &mut value, &mut slope),
        _ => exp_slice(isa, &re, &mut value),
    }
    for ((x, &f), &d) in x.iter_mut().zip(&value).zip(&slope) {
        let (first, second) = match b {
            Builtin::Erf => (d, -2.0 * x.re * d),
            _ => (f, f),
        };
        *x = Dual2_64::new(f, first * x.v1, second * x.v1 * x.v1 + first * x.v2);
    }
}

/// Entries per block of [`jet`]: a block's dual numbers (24 bytes each, one vector per node
/// of the expression) stay in cache, and blocks run on every thread.
const JET_BLOCK: usize = 1 << 14;

/// f(h), f′(h), f″(h) entry by entry (M×P each), by second-order dual numbers: the entry-wise
/// function is compiled once (its constants evaluated, user functions inlined), then run on
/// blocks of rows in parallel, one pass over a block per node of the expression.
pub fn jet(
    theory: &Theory,
    var: &str,
    f: &Expr,
    h: ArrayView2<'_, f64>,
    constants: &MatrixContext<'_>,
) -> Result<[Array2<f64>; 3], String> {
    let program = JetProgram::compile(theory, var, f, 0, constants)?;
    let (m, p) = h.dim();
    let h = h.as_standard_layout();
    let mut out = [
        Array2::<f64>::zeros((m, p)),
        Array2::<f64>::zeros((m, p)),
        Array2::<f64>::zeros((m, p)),
    ];
    let isa = crate::numeric::vector_math::Isa::detect();
    let rows = (JET_BLOCK / p.max(1)).max(1);
    let [v, d1, d2] = &mut out;
    let (Some(input), Some(v), Some(d1), Some(d2)) = (
        h.as_slice(),
        v.as_slice_mut(),
        d1.as_slice_mut(),
        d2.as_slice_mut(),
    ) else {
        return Err("a jet of arrays not in standard layout".into());
    };
    let block = rows * p.max(1);
    input
        .par_chunks(block)
        .zip(v.par_chunks_mut(block))
        .zip(d1.par_chunks_mut(block))
        .zip(d2.par_chunks_mut(block))
        .for_each(|(((x, v), d1), d2)| {
            let seeds: Vec<Dual2_64> = x.iter().map(|&x| Dual2_64::new(x, 1.0, 0.0)).collect();
            match program.eval(&seeds, isa, &[]) {
                Jet::Scalar(y) => {
                    v.fill(y.re);
                    d1.fill(y.v1);
                    d2.fill(y.v2);
                }
                Jet::Entries(y) => {
                    for (((y, v), d1), d2) in y.iter().zip(v).zip(d1).zip(d2) {
                        (*v, *d1, *d2) = (y.re, y.v1, y.v2);
                    }
                }
            }
        });
    Ok(out)
}

/// An entry-wise function of one random variable, its constants evaluated.
#[derive(Debug, Clone)]
enum JetProgram {
    Input,
    Constant(f64),
    /// The i-th argument of the innermost call.
    Argument(usize),
    /// A user function's body on its arguments, each evaluated once.
    Call(Vec<JetProgram>, Box<JetProgram>),
    Neg(Box<JetProgram>),
    Add(Box<JetProgram>, Box<JetProgram>),
    Sub(Box<JetProgram>, Box<JetProgram>),
    Mul(Box<JetProgram>, Box<JetProgram>),
    Div(Box<JetProgram>, Box<JetProgram>),
    Pow(Box<JetProgram>, Box<JetProgram>),
    Builtin(Builtin, Box<JetProgram>),
}

impl JetProgram {
    /// `e` (the body of a function of `arity` arguments, or the integrand for 0) with every
    /// subexpression free of the random variable and of the arguments evaluated.
    fn compile(
        theory: &Theory,
        var: &str,
        e: &Expr,
        arity: usize,
        constants: &MatrixContext<'_>,
    ) -> Result<JetProgram, String> {
        let depends = mentions_random(e, Some(var))
            || e.any(&mut |x| matches!(x.kind, ExprKind::FunctionArg(_)));
        if !depends {
            match constants.eval(e) {
                Ok(Value::Scalar(v)) => return Ok(JetProgram::Constant(v)),
                Ok(Value::Matrix(_)) => return Err("a matrix inside an entry-wise function".into()),
                // a user function of constants (`sq(2)`) is compiled like any call below
                Err(err) if !matches!(e.kind, ExprKind::Apply { .. }) => {
                    return Err(err.to_string());
                }
                Err(_) => {}
            }
        }
        let go = |y: &Expr| Self::compile(theory, var, y, arity, constants).map(Box::new);
        Ok(match &e.kind {
            ExprKind::RandomVar { .. } => JetProgram::Input,
            ExprKind::FunctionArg(i) if *i < arity => JetProgram::Argument(*i),
            ExprKind::FunctionArg(_) => return Err("a function argument out of range".into()),
            ExprKind::Neg(a) => JetProgram::Neg(go(a)?),
            ExprKind::Add(a, b) => JetProgram::Add(go(a)?, go(b)?),
            ExprKind::Sub(a, b) => JetProgram::Sub(go(a)?, go(b)?),
            ExprKind::Mul(a, b) => JetProgram::Mul(go(a)?, go(b)?),
            ExprKind::Div(a, b) => JetProgram::Div(go(a)?, go(b)?),
            ExprKind::Pow(a, b) => JetProgram::Pow(go(a)?, go(b)?),
            ExprKind::Apply {
                callee,
                args: inner,
            } => match callee {
                Callee::Builtin(b) => match inner.as_slice() {
                    [a] => JetProgram::Builtin(*b, go(a)?),
                    _ => return Err("a built-in with several arguments".into()),
                },
                Callee::User(id) => {
                    let inner = inner
                        .iter()
                        .map(|a| Self::compile(theory, var, a, arity, constants))
                        .collect::<Result<Vec<_>, _>>()?;
                    let body = Self::compile(
                        theory,
                        var,
                        &theory.functions[*id].body,
                        inner.len(),
                        constants,
                    )?;
                    JetProgram::Call(inner, Box::new(body))
                }
            },
            _ => return Err("a construct outside an entry-wise function".into()),
        })
    }

    /// The function's jet on every entry of `seeds` (the variable's jets), `args` the
    /// innermost call's argument values.
    fn eval(&self, seeds: &[Dual2_64], isa: crate::numeric::vector_math::Isa, args: &[Jet]) -> Jet {
        let go = |a: &JetProgram| a.eval(seeds, isa, args);
        match self {
            JetProgram::Input => Jet::Entries(seeds.to_vec()),
            JetProgram::Constant(v) => Jet::Scalar(Dual2_64::from(*v)),
            // compile checked the index against the call's arity
            JetProgram::Argument(i) => args
                .get(*i)
                .cloned()
                .unwrap_or(Jet::Scalar(Dual2_64::from(f64::NAN))),
            JetProgram::Call(inner, body) => {
                let values: Vec<Jet> = inner.iter().map(go).collect();
                body.eval(seeds, isa, &values)
            }
            JetProgram::Neg(a) => go(a).map(|x| -x),
            JetProgram::Add(a, b) => go(a).zip(go(b), |x, y| x + y),
            JetProgram::Sub(a, b) => go(a).zip(go(b), |x, y| x - y),
            JetProgram::Mul(a, b) => go(a).zip(go(b), |x, y| x * y),
            JetProgram::Div(a, b) => go(a).zip(go(b), |x, y| x / y),
            JetProgram::Pow(a, b) => go(a).zip(go(b), |x, y| {
                if y.v1 == 0.0 && y.v2 == 0.0 {
                    x.powf(y.re)
                } else {
                    x.powd(y)
                }
            }),
            JetProgram::Builtin(b, a) => match (b, go(a)) {
                (Builtin::Erf | Builtin::Exp, Jet::Entries(mut x)) => {
                    vectorised_builtin(*b, &mut x, isa);
                    Jet::Entries(x)
                }
                (b, v) => v.map(|x| crate::numeric::action::ops::builtin(*b, &x)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::ir::Shape;
    use crate::derive::build::node;

    /// Nested user functions that use their argument several times, a parameter, a
    /// constant call and erf: the jets equal f, f′, f″ by hand on every entry, in blocks.
    #[test]
    fn jets_of_nested_user_functions_match_the_derivatives_by_hand() {
        let source = "theory t\nparam a = 0.5\nsq(x) = x * x\n\
            f(x) = sq(sq(x)) + a * erf(x) + sq(2)\ndata X, Y\n\
            kernel C[l] for l in 0..=1\nconj Ct[l] of C[l] for l in 1..=1\n\
            C[0] = X X^T / d\naction S = -tr(Ct[1]^T C[1])\n\
            + 10 * ln E[exp(f(h)^T Ct[1] f(h) / 10) | h ~ N(0, C[0])]\n";
        let theory = crate::compile(source, "t.action").expect("checks");
        let id = theory
            .functions
            .iter()
            .position(|f| f.name == "f")
            .expect("f");
        let h = node(
            ExprKind::RandomVar {
                name: "h".into(),
                time: None,
            },
            Shape::SCALAR,
        );
        let call = node(
            ExprKind::Apply {
                callee: Callee::User(id),
                args: vec![h],
            },
            Shape::SCALAR,
        );
        let params = [0.5];
        let lookup = |_: usize, _: &[i64]| -> Option<&Array2<f64>> { None };
        let name = |_: usize| String::new();
        let ctx = MatrixContext {
            params: &params,
            inputs: None,
            targets: None,
            field: &lookup,
            field_name: &name,
        };
        // more entries than one block, an odd number of columns
        let (m, p) = (JET_BLOCK / 3 + 17, 7);
        let x = Array2::from_shape_fn((m, p), |(i, j)| ((i * p + j) as f64 * 0.37).sin() * 2.0);
        let [v, d1, d2] = jet(&theory, "h", &call, x.view(), &ctx).expect("a jet");
        let gauss = |x: f64| 2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp();
        for ((&x, &v), (&d1, &d2)) in x.iter().zip(&v).zip(d1.iter().zip(&d2)) {
            let want = x.powi(4) + 0.5 * libm::erf(x) + 4.0;
            let slope = 4.0 * x.powi(3) + 0.5 * gauss(x);
            let curvature = 12.0 * x * x - x * gauss(x);
            assert!(
                (v - want).abs() < 1e-12 * want.abs().max(1.0),
                "{x}: {v} vs {want}"
            );
            assert!(
                (d1 - slope).abs() < 1e-12 * slope.abs().max(1.0),
                "{x}: {d1}"
            );
            assert!(
                (d2 - curvature).abs() < 1e-12 * curvature.abs().max(1.0),
                "{x}: {d2}"
            );
        }
    }
}
