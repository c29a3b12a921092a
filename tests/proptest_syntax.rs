//! Property tests of the front end: random syntax trees survive print → parse unchanged,
//! and no input — random bytes or mutated examples — makes the parser or checker panic.

use proptest::prelude::*;
use saddle::syntax::ast::{
    ActionDecl, BinaryOp, Binding, ConjDecl, Definition, Expr, ExprKind, FieldDecl, FieldKind,
    File, FunctionDef, Ident, Item, ItemKind, Number, ParamDecl, ParamType,
};
use saddle::syntax::print::print_file;
use saddle::syntax::{Span, parse};

const FORBIDDEN: &[&str] = &[
    "theory", "param", "data", "kernel", "mean", "conj", "of", "action", "for", "in", "sum", "int",
    "real", "E", "exp", "ln", "sqrt", "erf", "tanh", "asin", "acos", "atan", "relu", "step",
    "sign", "abs", "tr", "inv", "logdet",
];

fn ident() -> impl Strategy<Value = Ident> + Clone {
    "[a-zA-Zκθ][a-z0-9_]{0,3}"
        .prop_filter("not reserved", |s| !FORBIDDEN.contains(&s.as_str()))
        .prop_map(|name| Ident {
            name,
            span: Span::default(),
        })
}

fn number() -> impl Strategy<Value = f64> + Clone {
    prop_oneof![
        (0u32..1000).prop_map(f64::from),
        0.0f64..1e3,
        1e-12f64..1e-4,
        1e15f64..1e300
    ]
}

fn expr(n: Expr) -> Expr {
    n
}

fn leaf() -> impl Strategy<Value = Expr> + Clone {
    prop_oneof![
        number().prop_map(|v| Expr::new(ExprKind::Number(v), Span::default())),
        ident().prop_map(|i| Expr::new(ExprKind::Name(i), Span::default())),
    ]
}

fn binding(inner: impl Strategy<Value = Expr> + Clone) -> impl Strategy<Value = Binding> {
    (ident(), inner.clone(), inner).prop_map(|(var, lower, upper)| Binding { var, lower, upper })
}

fn any_expr() -> impl Strategy<Value = Expr> + Clone {
    leaf().prop_recursive(5, 48, 4, |inner| {
        let e = |kind| Expr::new(kind, Span::default());
        prop_oneof![
            (ident(), prop::collection::vec(inner.clone(), 1..3))
                .prop_map(move |(base, indices)| e(ExprKind::Index { base, indices })),
            (ident(), prop::collection::vec(inner.clone(), 1..3))
                .prop_map(move |(func, args)| e(ExprKind::Call { func, args })),
            (
                prop::sample::select(vec!["ln", "exp", "tr", "inv", "sqrt"]),
                inner.clone()
            )
                .prop_map(move |(f, arg)| e(ExprKind::Prefix {
                    func: Ident {
                        name: f.to_string(),
                        span: Span::default()
                    },
                    arg: Box::new(arg)
                })),
            inner
                .clone()
                .prop_map(move |a| e(ExprKind::Neg(Box::new(a)))),
            inner
                .clone()
                .prop_map(move |a| e(ExprKind::Transpose(Box::new(a)))),
            (
                prop::sample::select(vec![
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Juxtapose,
                    BinaryOp::Div,
                    BinaryOp::Pow
                ]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(move |(op, l, r)| e(ExprKind::Binary {
                    op,
                    lhs: Box::new(l),
                    rhs: Box::new(r)
                })),
            (
                prop::collection::vec(binding(inner.clone()), 1..3),
                inner.clone()
            )
                .prop_map(move |(bindings, body)| e(ExprKind::Sum {
                    bindings,
                    body: Box::new(body)
                })),
            (inner.clone(), ident(), inner.clone(), inner.clone()).prop_map(
                move |(body, var, mean, cov)| e(ExprKind::Expectation {
                    body: Box::new(body),
                    var,
                    mean: Box::new(mean),
                    cov: Box::new(cov)
                })
            ),
        ]
        .prop_map(expr)
    })
}

fn comment() -> impl Strategy<Value = String> {
    "[ a-zA-Z0-9×κ/()=+-]{0,20}[a-z]".prop_map(|s| s)
}

/// A comment line above a declaration, as the AST keeps it: with its `//`, possibly bare.
fn comment_line() -> impl Strategy<Value = String> {
    "([ a-zA-Z0-9×κ/()=+-]{0,20}[a-z])?".prop_map(|s| format!("//{s}"))
}

fn item_kind() -> impl Strategy<Value = ItemKind> {
    let names = || prop::collection::vec(ident(), 0..3);
    prop_oneof![
        ident().prop_map(ItemKind::Theory),
        (
            ident(),
            prop::option::of(prop::sample::select(vec![ParamType::Int, ParamType::Real])),
            -1e6f64..1e6
        )
            .prop_map(|(name, declared_type, v)| ItemKind::Param(ParamDecl {
                name,
                declared_type,
                default: Number {
                    value: v,
                    span: Span::default()
                }
            })),
        prop::collection::vec(ident(), 1..3).prop_map(ItemKind::Data),
        (
            prop::sample::select(vec![FieldKind::Kernel, FieldKind::Mean]),
            ident(),
            names(),
            prop::collection::vec(binding(any_expr()), 0..2)
        )
            .prop_map(|(kind, name, indices, ranges)| ItemKind::Field(FieldDecl {
                kind,
                name,
                indices,
                ranges
            })),
        (
            ident(),
            names(),
            ident(),
            names(),
            prop::collection::vec(binding(any_expr()), 0..2)
        )
            .prop_map(
                |(name, indices, of, of_indices, ranges)| ItemKind::Conj(ConjDecl {
                    name,
                    indices,
                    of,
                    of_indices,
                    ranges
                })
            ),
        (ident(), prop::collection::vec(ident(), 1..3), any_expr()).prop_map(
            |(name, params, body)| ItemKind::Function(FunctionDef { name, params, body })
        ),
        (
            ident(),
            prop::collection::vec(any_expr(), 0..3),
            any_expr(),
            prop::collection::vec(binding(any_expr()), 0..2)
        )
            .prop_map(
                |(target, indices, body, ranges)| ItemKind::Definition(Definition {
                    target,
                    indices,
                    body,
                    ranges
                })
            ),
        (ident(), any_expr()).prop_map(|(name, body)| ItemKind::Action(ActionDecl { name, body })),
    ]
}

fn file() -> impl Strategy<Value = File> {
    let item = (
        item_kind(),
        prop::collection::vec(comment_line(), 0..2),
        prop::option::of(comment()),
        any::<bool>(),
    )
        .prop_map(
            |(kind, leading_comments, trailing_comment, blank_line_before)| Item {
                kind,
                leading_comments,
                trailing_comment,
                blank_line_before,
                span: Span::default(),
            },
        );
    (
        prop::collection::vec(item, 0..6),
        prop::collection::vec(comment_line(), 0..2),
    )
        .prop_map(|(mut items, end_comments)| {
            if let Some(first) = items.first_mut() {
                first.blank_line_before = false;
            }
            File {
                items,
                end_comments,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_files_round_trip_through_the_printer(file in file()) {
        let printed = print_file(&file);
        let reparsed = parse(&printed, "random.action");
        prop_assert!(reparsed.is_ok(), "printed text does not parse:\n{printed}\n{}", reparsed.err().map(|d| d.render(false)).unwrap_or_default());
        let reparsed = reparsed.unwrap_or_else(|_| unreachable!());
        prop_assert_eq!(&reparsed, &file, "printed:\n{}", printed);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = saddle::compile(&text, "bytes.action").map_err(|d| d.render(false));
    }

    #[test]
    fn mutated_examples_never_panic(
        which in 0usize..8,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..12, prop::sample::select(vec![
            "", "(", ")", "[", "]", ",", "^T", "^", "-", "+", "*", "/", " ", "\n", "l", "L", "C", "Ct", "h", "0", "1.5",
            "..", "..=", "sum(", "E[", "|", "~", "N(", "for", "in", "of", "kernel", "conj", "//", "é", "𝟙",
        ])), 1..6),
    ) {
        let mut names: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            .expect("examples/")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "action"))
            .collect();
        names.sort();
        let mut text = std::fs::read_to_string(&names[which % names.len()]).expect("readable example");
        for (at, delete, insert) in edits {
            let mut start = at.index(text.len() + 1);
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + delete).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(start..end, insert);
        }
        let _ = saddle::compile(&text, "mutated.action").map_err(|d| d.render(false));
    }
}
