//! Smart constructors for checked expressions: they fold zeros, ones, double negations and
//! transposes as they build, so derived equations come out without `0 · …` clutter;
//! scalar coefficients go first and multiply in canonical form ([`super::coefficient`]).
//! (Algebraic normal forms beyond that are the e-graph's job.)
//!
//! Symmetry belongs here too: `transpose` folds a matrix known to be symmetric, and knowing
//! that a Gram matrix A Aᵀ is symmetric takes a transpose, so the two are one concept. The
//! symmetric part sym(X) = (X + Xᵀ)/2 is what the full-matrix convention (THEORY.md §1) takes
//! of every kernel gradient — written as X itself when X equals its transpose.
//!
//! One concept, one file: smart constructors and the symmetry they fold.

use crate::check::ir::{Builtin, Callee, Dim, Expr, ExprKind, MatrixFunction, Shape};

use super::coefficient::{self, is_coefficient};
use crate::syntax::Span;

/// A node with the given kind and shape.
pub fn node(kind: ExprKind, shape: Shape) -> Expr {
    Expr {
        kind,
        shape,
        span: Span::default(),
    }
}

/// The number `v` (a scalar).
pub fn number(v: f64) -> Expr {
    node(ExprKind::Number(v), Shape::SCALAR)
}

/// The zero of a shape.
pub fn zero(shape: Shape) -> Expr {
    node(ExprKind::Number(0.0), shape)
}

/// Whether `e` is a zero (of any shape).
pub fn is_zero(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Number(v) if v == 0.0)
}

fn scalar_value(e: &Expr) -> Option<f64> {
    match e.kind {
        ExprKind::Number(v) if e.shape.is_scalar() => Some(v),
        _ => None,
    }
}

/// `a + b`
pub fn add(a: Expr, b: Expr) -> Expr {
    let shape = if a.shape.is_scalar() {
        b.shape
    } else {
        a.shape
    };
    match (scalar_value(&a), scalar_value(&b)) {
        (Some(x), Some(y)) => return number(x + y),
        _ if is_zero(&a) && b.shape == shape => return b,
        _ if is_zero(&b) && a.shape == shape => return a,
        _ => {}
    }
    if let ExprKind::Neg(inner) = b.kind {
        return sub(a, *inner);
    }
    // s·x + s·y = s·(x + y)
    if let (ExprKind::Mul(s, x), ExprKind::Mul(t, y)) = (&a.kind, &b.kind)
        && s.shape.is_scalar()
        && s == t
    {
        return mul((**s).clone(), add((**x).clone(), (**y).clone()));
    }
    // −x + b = b − x
    if let ExprKind::Neg(inner) = a.kind {
        return sub(b, *inner);
    }
    node(ExprKind::Add(Box::new(a), Box::new(b)), shape)
}

/// `a - b`
pub fn sub(a: Expr, b: Expr) -> Expr {
    let shape = if a.shape.is_scalar() {
        b.shape
    } else {
        a.shape
    };
    match (scalar_value(&a), scalar_value(&b)) {
        (Some(x), Some(y)) => return number(x - y),
        _ if is_zero(&b) && a.shape == shape => return a,
        _ if is_zero(&a) && b.shape == shape => return neg(b),
        _ => {}
    }
    if a == b && a.shape == b.shape {
        return zero(shape);
    }
    if let ExprKind::Neg(inner) = b.kind {
        return add(a, *inner);
    }
    // s·x − s·y = s·(x − y)
    if let (ExprKind::Mul(s, x), ExprKind::Mul(t, y)) = (&a.kind, &b.kind)
        && s.shape.is_scalar()
        && s == t
    {
        return mul((**s).clone(), sub((**x).clone(), (**y).clone()));
    }
    // −x − b = −(x + b)
    if let ExprKind::Neg(inner) = a.kind {
        return neg(add(*inner, b));
    }
    node(ExprKind::Sub(Box::new(a), Box::new(b)), shape)
}

/// `-a`
pub fn neg(a: Expr) -> Expr {
    match a.kind {
        ExprKind::Number(v) => node(ExprKind::Number(-v), a.shape),
        ExprKind::Neg(inner) => *inner,
        ExprKind::Sub(x, y) => sub(*y, *x),
        _ => {
            let shape = a.shape;
            node(ExprKind::Neg(Box::new(a)), shape)
        }
    }
}

/// The shape of the product `a b`.
pub fn product_shape(a: Shape, b: Shape) -> Shape {
    if a.is_scalar() {
        b
    } else if b.is_scalar() {
        a
    } else {
        Shape::new(a.rows, b.cols)
    }
}

/// `a b` (scalar or matrix product).
pub fn mul(a: Expr, b: Expr) -> Expr {
    let shape = product_shape(a.shape, b.shape);
    if is_zero(&a) || is_zero(&b) {
        return zero(shape);
    }
    match (scalar_value(&a), scalar_value(&b)) {
        (Some(x), Some(y)) => return number(x * y),
        (Some(1.0), None) => return b,
        (None, Some(1.0)) => return a,
        (Some(-1.0), None) => return neg(b),
        (None, Some(-1.0)) => return neg(a),
        _ => {}
    }
    // s·(x/s) = x: an action that divides by s presumes s ≠ 0 (`N·(g/N·K)` is `g·K`).
    if a.shape.is_scalar()
        && let Some(cancelled) = cancel_division(&a, &b)
    {
        return cancelled;
    }
    if b.shape.is_scalar()
        && let Some(cancelled) = cancel_division(&b, &a)
    {
        return cancelled;
    }
    // Coefficients multiply in canonical form (g·(g/N) = g^2/N) and go first:
    // t·(s·X) = s·(t·X) and s·(s'·X) = (s·s')·X for coefficients s, s'.
    if a.shape.is_scalar()
        && b.shape.is_scalar()
        && is_coefficient(&a)
        && is_coefficient(&b)
        && let Some(p) = coefficient::product(&a, &b)
    {
        return p;
    }
    if a.shape.is_scalar()
        && let ExprKind::Mul(s, rest) = &b.kind
        && s.shape.is_scalar()
        && is_coefficient(s)
    {
        let (s, rest) = ((**s).clone(), (**rest).clone());
        return if is_coefficient(&a) {
            mul(mul(a, s), rest)
        } else {
            mul(s, mul(a, rest))
        };
    }
    // I is the identity of the matrix product.
    if matches!(a.kind, ExprKind::Identity) && !b.shape.is_scalar() && b.shape.rows == Dim::Patterns
    {
        return b;
    }
    if matches!(b.kind, ExprKind::Identity) && !a.shape.is_scalar() && a.shape.cols == Dim::Patterns
    {
        return a;
    }
    // Scalars move to the front of matrix products: A (s B) = s (A B).
    if !a.shape.is_scalar()
        && let ExprKind::Mul(s, rest) = &b.kind
        && s.shape.is_scalar()
        && !rest.shape.is_scalar()
    {
        let (s, rest) = ((**s).clone(), (**rest).clone());
        return mul(s, mul(a, rest));
    }
    if !b.shape.is_scalar()
        && let ExprKind::Mul(s, rest) = &a.kind
        && s.shape.is_scalar()
        && !rest.shape.is_scalar()
    {
        let (s, rest) = ((**s).clone(), (**rest).clone());
        return mul(s, mul(rest, b));
    }
    // Canonical association of matrix products, scalars first: (A B) C = A (B C), A s = s A.
    if b.shape.is_scalar() && !a.shape.is_scalar() {
        return mul(b, a);
    }
    // (a 1×1 product like vᵀw is a scalar factor, not part of a matrix chain)
    if let ExprKind::Mul(x, y) = &a.kind
        && !a.shape.is_scalar()
        && !x.shape.is_scalar()
        && !y.shape.is_scalar()
        && !b.shape.is_scalar()
    {
        let (x, y) = ((**x).clone(), (**y).clone());
        return mul(x, mul(y, b));
    }
    // K⁻¹ K = K K⁻¹ = I
    if let ExprKind::Matrix(MatrixFunction::Inverse, inner) = &a.kind
        && **inner == b
    {
        return node(ExprKind::Identity, shape);
    }
    if let ExprKind::Matrix(MatrixFunction::Inverse, inner) = &b.kind
        && **inner == a
    {
        return node(ExprKind::Identity, shape);
    }
    // Pull negations out: (-a) b = -(a b).
    if let ExprKind::Neg(inner) = a.kind {
        return neg(mul(*inner, b));
    }
    if let ExprKind::Neg(inner) = b.kind {
        return neg(mul(a, *inner));
    }
    node(ExprKind::Mul(Box::new(a), Box::new(b)), shape)
}

/// `e` with one division by the scalar `s` removed — through leading scalar factors and
/// numerators, `(x/s)·K → x·K`, `(t·(x/s)·K)/u → (t·x·K)/u` — or `None` if `e` has none there.
fn cancel_division(s: &Expr, e: &Expr) -> Option<Expr> {
    match &e.kind {
        ExprKind::Div(x, y) if **y == *s => Some((**x).clone()),
        ExprKind::Div(x, y) => cancel_division(s, x).map(|x| div(x, (**y).clone())),
        ExprKind::Mul(x, rest) if x.shape.is_scalar() => {
            cancel_division(s, x).map(|x| mul(x, (**rest).clone()))
        }
        _ => None,
    }
}

/// `a / b` with a scalar `b`.
pub fn div(a: Expr, b: Expr) -> Expr {
    if is_zero(&a) {
        return a;
    }
    match (scalar_value(&a), scalar_value(&b)) {
        (_, Some(1.0)) => return a,
        (Some(x), Some(y)) if y != 0.0 && (x / y).fract() == 0.0 => return number(x / y),
        _ => {}
    }
    // X/s = (1/s)·X for a matrix X and a coefficient s, so that 1/s meets other coefficients
    if !a.shape.is_scalar() && b.shape.is_scalar() && is_coefficient(&b) {
        return mul(div(number(1.0), b), a);
    }
    // (s·X)/y = s·(X/y): scalar factors stay in front
    if let ExprKind::Mul(s, x) = &a.kind
        && s.shape.is_scalar()
        && !x.shape.is_scalar()
    {
        return mul((**s).clone(), div((**x).clone(), b));
    }
    let shape = a.shape;
    node(ExprKind::Div(Box::new(a), Box::new(b)), shape)
}

/// `aᵀ`, pushed through sums and products onto the factors.
pub fn transpose(a: Expr) -> Expr {
    let shape = a.shape.transposed();
    if a.shape.is_scalar() || is_zero(&a) || is_symmetric(&a) {
        return Expr { shape, ..a };
    }
    match a.kind {
        ExprKind::Transpose(inner) => *inner,
        ExprKind::Identity | ExprKind::Ones => a,
        ExprKind::Neg(inner) => neg(transpose(*inner)),
        ExprKind::Add(x, y) => add(transpose(*x), transpose(*y)),
        ExprKind::Sub(x, y) => sub(transpose(*x), transpose(*y)),
        ExprKind::Mul(x, y) => mul(transpose(*y), transpose(*x)),
        ExprKind::Div(x, y) => div(transpose(*x), *y),
        kind => node(ExprKind::Transpose(Box::new(node(kind, a.shape))), shape),
    }
}

/// `tr(a)`
pub fn trace(a: Expr) -> Expr {
    if is_zero(&a) {
        return number(0.0);
    }
    // tr(s·X) = s·tr(X)
    if let ExprKind::Mul(s, x) = &a.kind
        && s.shape.is_scalar()
    {
        return mul((**s).clone(), trace((**x).clone()));
    }
    node(
        ExprKind::Matrix(MatrixFunction::Trace, Box::new(a)),
        Shape::SCALAR,
    )
}

/// `inv(a)`
pub fn inverse(a: Expr) -> Expr {
    let shape = a.shape;
    node(
        ExprKind::Matrix(MatrixFunction::Inverse, Box::new(a)),
        shape,
    )
}

/// A built-in applied entry-wise.
pub fn apply(builtin: Builtin, arg: Expr) -> Expr {
    match (builtin, scalar_value(&arg)) {
        (Builtin::Exp, Some(0.0)) => return number(1.0),
        (Builtin::Ln, Some(1.0)) => return number(0.0),
        _ => {}
    }
    let shape = arg.shape;
    node(
        ExprKind::Apply {
            callee: Callee::Builtin(builtin),
            args: vec![arg],
        },
        shape,
    )
}

/// Whether `e` mentions the random variable `var` (or, with `None`, any random variable).
pub fn mentions_random(e: &Expr, var: Option<&str>) -> bool {
    if let ExprKind::RandomVar { name, .. } | ExprKind::Whitened { name, .. } = &e.kind {
        return var.is_none_or(|v| v == name);
    }
    e.children().any(|c| mentions_random(c, var))
}

/// `E[body | var ~ N(mean, cov)]`, with factors free of the random variable pulled out.
pub fn expectation(var: &str, body: Expr, mean: Expr, cov: crate::check::ir::Covariance) -> Expr {
    if !mentions_random(&body, Some(var)) {
        return body;
    }
    // First and second moments: E[h] = m, E[h − m] = 0, E[(h − m)(h − m)ᵀ] = K.
    let centred = |e: &Expr| -> bool {
        match &e.kind {
            ExprKind::RandomVar { name, time: None } => name == var && is_zero(&mean),
            ExprKind::Sub(h, m) => {
                matches!(&h.kind, ExprKind::RandomVar { name, time: None } if name == var)
                    && **m == mean
            }
            _ => false,
        }
    };
    if let ExprKind::RandomVar { name, time: None } = &body.kind
        && name == var
    {
        return mean;
    }
    if centred(&body) {
        return zero(body.shape);
    }
    if let (ExprKind::Mul(u, v), crate::check::ir::Covariance::Matrix(k)) = (&body.kind, &cov)
        && centred(u)
        && let ExprKind::Transpose(w) = &v.kind
        && centred(w)
        && u == w
    {
        return (**k).clone();
    }
    // ⟨f·(s·X)⟩ = s·⟨f·X⟩ for a scalar s free of the random variable
    if let ExprKind::Mul(a, b) = &body.kind
        && let ExprKind::Mul(s, rest) = &b.kind
        && s.shape.is_scalar()
        && !mentions_random(s, Some(var))
        && (a.shape.is_scalar() || rest.shape.is_scalar())
    {
        let inner = mul((**a).clone(), (**rest).clone());
        return mul((**s).clone(), expectation(var, inner, mean, cov));
    }
    match body.kind {
        ExprKind::Neg(inner) => neg(expectation(var, *inner, mean, cov)),
        ExprKind::Mul(a, b)
            if !mentions_random(&a, Some(var)) && (a.shape.is_scalar() || b.shape.is_scalar()) =>
        {
            mul(*a, expectation(var, *b, mean, cov))
        }
        ExprKind::Mul(a, b)
            if !mentions_random(&b, Some(var)) && (a.shape.is_scalar() || b.shape.is_scalar()) =>
        {
            mul(expectation(var, *a, mean, cov), *b)
        }
        ExprKind::Div(a, b) if !mentions_random(&b, Some(var)) => {
            div(expectation(var, *a, mean, cov), *b)
        }
        kind => {
            let shape = body.shape;
            let body = node(kind, shape);
            node(
                ExprKind::Expectation {
                    var: var.to_string(),
                    body: Box::new(body),
                    mean: Box::new(mean),
                    cov,
                },
                shape,
            )
        }
    }
}

/// Rebuilds `e` bottom-up through the smart constructors, replacing every node for which
/// `replace` answers `Some`.
pub fn substitute(e: &Expr, replace: &dyn Fn(&Expr) -> Option<Expr>) -> Expr {
    if let Some(r) = replace(e) {
        return r;
    }
    let s = |x: &Expr| substitute(x, replace);
    match &e.kind {
        ExprKind::Neg(a) => neg(s(a)),
        ExprKind::Add(a, b) => add(s(a), s(b)),
        ExprKind::Sub(a, b) => sub(s(a), s(b)),
        ExprKind::Mul(a, b) => mul(s(a), s(b)),
        ExprKind::Div(a, b) => div(s(a), s(b)),
        ExprKind::Pow(a, b) => node(ExprKind::Pow(Box::new(s(a)), Box::new(s(b))), e.shape),
        ExprKind::Transpose(a) => transpose(s(a)),
        ExprKind::Matrix(MatrixFunction::Trace, a) => trace(s(a)),
        ExprKind::Matrix(f, a) => node(ExprKind::Matrix(*f, Box::new(s(a))), e.shape),
        ExprKind::Apply {
            callee: Callee::Builtin(b),
            args,
        } if args.len() == 1 => apply(*b, s(&args[0])),
        ExprKind::Apply { callee, args } => node(
            ExprKind::Apply {
                callee: *callee,
                args: args.iter().map(s).collect(),
            },
            e.shape,
        ),
        ExprKind::Expectation {
            var,
            body,
            mean,
            cov,
        } => {
            let cov = match cov {
                crate::check::ir::Covariance::Matrix(c) => {
                    crate::check::ir::Covariance::Matrix(Box::new(s(c)))
                }
                family => family.clone(),
            };
            expectation(var, s(body), s(mean), cov)
        }
        _ => e.clone(),
    }
}

/// Whether `e` is known to be a symmetric matrix: kernels (functions see sym(C)), I, ones,
/// Gram matrices A Aᵀ, and sums, scalar multiples, inverses and expectations of those.
pub fn is_symmetric(e: &Expr) -> bool {
    if !e.shape.is_square() {
        return false;
    }
    match &e.kind {
        ExprKind::Number(_) | ExprKind::Identity | ExprKind::Ones => true,
        // A two-time block C[t, s] is symmetric only on the diagonal t = s.
        ExprKind::Field { indices, .. } => {
            e.shape == Shape::KERNEL && indices.windows(2).all(|w| w[0] == w[1])
        }
        ExprKind::Neg(a) | ExprKind::Transpose(a) => is_symmetric(a),
        ExprKind::Add(a, b) | ExprKind::Sub(a, b) => is_symmetric(a) && is_symmetric(b),
        ExprKind::Mul(a, b) if a.shape.is_scalar() => is_symmetric(b),
        ExprKind::Mul(a, b) if b.shape.is_scalar() => is_symmetric(a),
        ExprKind::Mul(a, b) => {
            matches!(&b.kind, ExprKind::Transpose(t) if **t == **a)
                || (a.shape.cols == Dim::One && **b == transpose((**a).clone()))
        }
        ExprKind::Div(a, _) => is_symmetric(a),
        ExprKind::Matrix(MatrixFunction::Inverse, a) => is_symmetric(a),
        ExprKind::Expectation { body, .. } => is_symmetric(body),
        _ => false,
    }
}

/// `(a + aᵀ)/2`
pub fn symmetric_part(a: Expr) -> Expr {
    if is_zero(&a) || is_symmetric(&a) {
        return a;
    }
    let t = transpose(a.clone());
    if t == a || same_terms(&a, &t) {
        return a;
    }
    div(add(a, t), number(2.0))
}

/// One summand of a flattened sum: its sign, its scalar factors and what they multiply.
type Summand = (bool, Vec<Expr>, Expr);

fn summands(e: &Expr) -> Vec<Summand> {
    let negated = |v: Vec<Summand>| v.into_iter().map(|(n, s, x)| (!n, s, x)).collect();
    let scaled = |v: Vec<Summand>, f: Expr| {
        v.into_iter()
            .map(|(n, mut s, x)| {
                s.push(f.clone());
                (n, s, x)
            })
            .collect()
    };
    match &e.kind {
        ExprKind::Add(a, b) => [summands(a), summands(b)].concat(),
        ExprKind::Sub(a, b) => [summands(a), negated(summands(b))].concat(),
        ExprKind::Neg(a) => negated(summands(a)),
        ExprKind::Mul(f, x) if f.shape.is_scalar() && !x.shape.is_scalar() => {
            scaled(summands(x), (**f).clone())
        }
        ExprKind::Div(x, f) if !x.shape.is_scalar() => {
            scaled(summands(x), div(number(1.0), (**f).clone()))
        }
        _ => vec![(false, Vec::new(), e.clone())],
    }
}

/// Whether two sums have the same summands in another order (`X + Y` and `Y + X`): the
/// symmetric part of a matrix equal to its transpose is the matrix itself.
fn same_terms(a: &Expr, b: &Expr) -> bool {
    let (x, mut y) = (summands(a), summands(b));
    x.len() == y.len()
        && x.iter()
            .all(|item| match y.iter().position(|other| other == item) {
                Some(i) => {
                    y.swap_remove(i);
                    true
                }
                None => false,
            })
}
