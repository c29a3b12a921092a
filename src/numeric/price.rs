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

use crate::check::ir::{Expr, ExprKind, Theory};
use crate::derive::build::mentions_random;
use crate::numeric::jet::{Regularity, jet, regularity};
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
