//! Text → [`ast::File`](crate::syntax::ast::File): the pest grammar in `grammars/action.pest`
//! and the one place where pest's parse tree becomes the typed syntax tree.
//!
//! One concept, one file: pest's parse tree turned into the AST, rule by rule.

use super::ast::{
    ActionDecl, BinaryOp, Binding, ConjDecl, Definition, Expr, ExprKind, FieldDecl, FieldKind,
    File, FunctionDef, Ident, Item, ItemKind, Number, ParamDecl, ParamType,
};
use super::comments::attach_comments;
use super::diagnostic::Diagnostic;
use super::errors::{check_delimiters, syntax_error};
use super::span::Span;
use pest::Parser as _;
use pest::iterators::Pair;

pub use super::grammar::{ActionParser, Rule};

/// Parses a whole `.action` source text.
///
/// Returns every syntax problem found: unbalanced brackets first (they confuse everything
/// else), then the first grammar error, then problems inside well-formed text (exclusive
/// ranges, numbers that do not fit in an `f64`).
pub fn parse_file(source: &str) -> Result<File, Vec<Diagnostic>> {
    let delimiter_errors = check_delimiters(source);
    if !delimiter_errors.is_empty() {
        return Err(delimiter_errors);
    }
    let mut pairs =
        ActionParser::parse(Rule::file, source).map_err(|e| vec![syntax_error(source, &e)])?;
    let file_pair = pairs.next().ok_or_else(|| vec![empty_parse()])?;
    let mut builder = Builder {
        problems: Vec::new(),
    };
    let mut items = Vec::new();
    for pair in file_pair.into_inner() {
        if pair.as_rule() != Rule::EOI {
            items.push(builder.item(pair));
        }
    }
    if !builder.problems.is_empty() {
        return Err(builder.problems);
    }
    let mut file = File {
        items,
        end_comments: Vec::new(),
    };
    let too_deep = super::limits::check_nesting(&file);
    if !too_deep.is_empty() {
        return Err(too_deep);
    }
    let mut items = std::mem::take(&mut file.items);
    for item in &mut items {
        // pest's implicit blanks before a trailing optional part end up inside the item's
        // span; the declaration itself ends at its last token.
        item.span.end =
            item.span.start + trim_trailing_trivia(&source[item.span.start..item.span.end]).len();
    }
    let end_comments = attach_comments(source, &mut items);
    Ok(File {
        items,
        end_comments,
    })
}

/// Parses a single expression (used by tests and by `--set` style helpers).
pub fn parse_expr(source: &str) -> Result<Expr, Vec<Diagnostic>> {
    let delimiter_errors = check_delimiters(source);
    if !delimiter_errors.is_empty() {
        return Err(delimiter_errors);
    }
    let mut pairs = ActionParser::parse(Rule::standalone_expr, source)
        .map_err(|e| vec![syntax_error(source, &e)])?;
    let pair = pairs
        .next()
        .and_then(|p| p.into_inner().next())
        .ok_or_else(|| vec![empty_parse()])?;
    let mut builder = Builder {
        problems: Vec::new(),
    };
    let expr = builder.expr(pair);
    if builder.problems.is_empty() {
        Ok(expr)
    } else {
        Err(builder.problems)
    }
}

/// `text` without trailing blanks and `//` comments.
fn trim_trailing_trivia(mut text: &str) -> &str {
    loop {
        text = text.trim_end();
        let line_start = text.rfind('\n').map_or(0, |i| i + 1);
        match text[line_start..].find("//") {
            Some(i) => text = &text[..line_start + i],
            None => return text,
        }
    }
}

fn empty_parse() -> Diagnostic {
    Diagnostic::new(
        "saddle::syntax",
        "the parser produced nothing",
        Span::new(0, 0),
        "here",
    )
}

/// Converts pest pairs into AST nodes, collecting problems that the grammar lets through.
struct Builder {
    problems: Vec<Diagnostic>,
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    pair.as_span().into()
}

fn ident(pair: Pair<'_, Rule>) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: span_of(&pair),
    }
}

impl Builder {
    fn item(&mut self, pair: Pair<'_, Rule>) -> Item {
        let span = span_of(&pair);
        let rule = pair.as_rule();
        let mut inner = pair.into_inner();
        let kind = match rule {
            Rule::theory_decl => {
                inner.next(); // keyword
                ItemKind::Theory(self.next_ident(&mut inner))
            }
            Rule::param_decl => {
                inner.next();
                let name = self.next_ident(&mut inner);
                let mut declared_type = None;
                let mut default = Number { value: 0.0, span };
                for part in inner {
                    match part.as_rule() {
                        Rule::param_type => {
                            let word = part.as_str().trim();
                            declared_type = Some(if word == "int" {
                                ParamType::Int
                            } else {
                                ParamType::Real
                            });
                        }
                        Rule::signed_number => default = self.number(&part),
                        _ => {}
                    }
                }
                ItemKind::Param(ParamDecl {
                    name,
                    declared_type,
                    default,
                })
            }
            Rule::data_decl => ItemKind::Data(
                inner
                    .filter(|p| p.as_rule() == Rule::name)
                    .map(ident)
                    .collect(),
            ),
            Rule::field_decl => {
                let kind_pair = inner.next();
                let kind = match kind_pair.as_ref().map(|p| p.as_str().trim()) {
                    Some("mean") => FieldKind::Mean,
                    _ => FieldKind::Kernel,
                };
                let name = self.next_ident(&mut inner);
                let (mut indices, mut ranges) = (Vec::new(), Vec::new());
                for part in inner {
                    match part.as_rule() {
                        Rule::name_list => indices = part.into_inner().map(ident).collect(),
                        Rule::for_clause => ranges = self.for_clause(part),
                        _ => {}
                    }
                }
                ItemKind::Field(FieldDecl {
                    kind,
                    name,
                    indices,
                    ranges,
                })
            }
            Rule::conj_decl => {
                inner.next();
                let name = self.next_ident(&mut inner);
                let (mut indices, mut of, mut of_indices, mut ranges) =
                    (Vec::new(), None, Vec::new(), Vec::new());
                for part in inner {
                    match part.as_rule() {
                        Rule::name_list if of.is_none() => {
                            indices = part.into_inner().map(ident).collect()
                        }
                        Rule::name_list => of_indices = part.into_inner().map(ident).collect(),
                        Rule::name => of = Some(ident(part)),
                        Rule::for_clause => ranges = self.for_clause(part),
                        _ => {}
                    }
                }
                let of = of.unwrap_or_else(|| Ident {
                    name: String::new(),
                    span,
                });
                ItemKind::Conj(ConjDecl {
                    name,
                    indices,
                    of,
                    of_indices,
                    ranges,
                })
            }
            Rule::function_def => {
                let name = self.next_ident(&mut inner);
                let mut params = Vec::new();
                let mut body = None;
                for part in inner {
                    match part.as_rule() {
                        Rule::name => params.push(ident(part)),
                        Rule::expr => body = Some(self.expr(part)),
                        _ => {}
                    }
                }
                let body = body.unwrap_or_else(|| Expr::new(ExprKind::Number(0.0), span));
                ItemKind::Function(FunctionDef { name, params, body })
            }
            Rule::definition => {
                let target = self.next_ident(&mut inner);
                let (mut indices, mut body, mut ranges) = (Vec::new(), None, Vec::new());
                for part in inner {
                    match part.as_rule() {
                        Rule::index_list => {
                            indices = part.into_inner().map(|p| self.expr(p)).collect()
                        }
                        Rule::expr => body = Some(self.expr(part)),
                        Rule::for_clause => ranges = self.for_clause(part),
                        _ => {}
                    }
                }
                let body = body.unwrap_or_else(|| Expr::new(ExprKind::Number(0.0), span));
                ItemKind::Definition(Definition {
                    target,
                    indices,
                    body,
                    ranges,
                })
            }
            _ => {
                // Rule::action_decl
                inner.next();
                let name = self.next_ident(&mut inner);
                let body = match inner.next() {
                    Some(p) => self.expr(p),
                    None => Expr::new(ExprKind::Number(0.0), span),
                };
                ItemKind::Action(ActionDecl { name, body })
            }
        };
        Item {
            kind,
            leading_comments: Vec::new(),
            trailing_comment: None,
            blank_line_before: false,
            span,
        }
    }

    fn next_ident(&mut self, inner: &mut pest::iterators::Pairs<'_, Rule>) -> Ident {
        match inner.find(|p| p.as_rule() == Rule::name) {
            Some(p) => ident(p),
            None => Ident {
                name: String::new(),
                span: Span::default(),
            },
        }
    }

    fn number(&mut self, pair: &Pair<'_, Rule>) -> Number {
        let span = span_of(pair);
        let value = pair.as_str().parse::<f64>().unwrap_or(f64::INFINITY);
        if !value.is_finite() {
            self.problems.push(
                Diagnostic::new(
                    "saddle::number_out_of_range",
                    format!(
                        "the number `{}` does not fit in a 64-bit float",
                        pair.as_str()
                    ),
                    span,
                    "too large",
                )
                .with_help("numbers must lie within ±1.8e308"),
            );
            return Number { value: 0.0, span };
        }
        Number { value, span }
    }

    fn for_clause(&mut self, pair: Pair<'_, Rule>) -> Vec<Binding> {
        pair.into_inner()
            .filter(|p| p.as_rule() == Rule::binding)
            .map(|p| self.binding(p))
            .collect()
    }

    fn binding(&mut self, pair: Pair<'_, Rule>) -> Binding {
        let mut var = None;
        let mut bounds = Vec::new();
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::name => var = Some(ident(part)),
                Rule::range => {
                    for piece in part.into_inner() {
                        match piece.as_rule() {
                            Rule::expr => bounds.push(self.expr(piece)),
                            Rule::exclusive_dots => self.problems.push(
                                Diagnostic::new(
                                    "saddle::exclusive_range",
                                    "ranges in saddle are inclusive and written with `..=`",
                                    span_of(&piece),
                                    "`..` is not a range operator here",
                                )
                                .with_help("write `a..=b` for the indices a, a+1, …, b"),
                            ),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let var = var.unwrap_or_else(|| Ident {
            name: String::new(),
            span: Span::default(),
        });
        let mut bounds = bounds.into_iter();
        let zero = || Expr::new(ExprKind::Number(0.0), Span::default());
        let lower = bounds.next().unwrap_or_else(zero);
        let upper = bounds.next().unwrap_or_else(zero);
        Binding { var, lower, upper }
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let mut inner = pair.into_inner();
        let Some(first) = inner.next() else {
            return Expr::new(ExprKind::Number(0.0), Span::default());
        };
        let mut acc = self.term(first);
        while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
            let op = if op.as_str() == "+" {
                BinaryOp::Add
            } else {
                BinaryOp::Sub
            };
            let rhs = self.term(rhs);
            acc = binary(op, acc, rhs);
        }
        acc
    }

    fn term(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let mut inner = pair.into_inner();
        let Some(first) = inner.next() else {
            return Expr::new(ExprKind::Number(0.0), Span::default());
        };
        let mut acc = self.unary(first);
        while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
            let op = match (op.as_rule(), op.as_str()) {
                (Rule::juxtapose, _) => BinaryOp::Juxtapose,
                (_, "*") => BinaryOp::Mul,
                _ => BinaryOp::Div,
            };
            let rhs = if rhs.as_rule() == Rule::power {
                self.power(rhs)
            } else {
                self.unary(rhs)
            };
            acc = binary(op, acc, rhs);
        }
        acc
    }

    fn unary(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = span_of(&pair);
        let mut negations = Vec::new();
        let mut operand = None;
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::neg => negations.push(span_of(&part)),
                _ => operand = Some(self.power(part)),
            }
        }
        let mut acc = operand.unwrap_or_else(|| Expr::new(ExprKind::Number(0.0), span));
        for neg in negations.into_iter().rev() {
            let span = neg.to(acc.span);
            acc = Expr::new(ExprKind::Neg(Box::new(acc)), span);
        }
        acc
    }

    fn power(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let mut inner = pair.into_inner();
        let Some(base) = inner.next() else {
            return Expr::new(ExprKind::Number(0.0), Span::default());
        };
        let base = self.postfix(base);
        match inner.next() {
            Some(exponent) => {
                let exponent = self.unary(exponent);
                binary(BinaryOp::Pow, base, exponent)
            }
            None => base,
        }
    }

    fn postfix(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let mut inner = pair.into_inner();
        let Some(primary) = inner.next() else {
            return Expr::new(ExprKind::Number(0.0), Span::default());
        };
        let mut acc = self.primary(primary);
        for transpose in inner {
            let span = acc.span.to(span_of(&transpose));
            acc = Expr::new(ExprKind::Transpose(Box::new(acc)), span);
        }
        acc
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = span_of(&pair);
        let Some(inner) = pair.into_inner().next() else {
            return Expr::new(ExprKind::Number(0.0), span);
        };
        let rule = inner.as_rule();
        let kind = match rule {
            Rule::number => ExprKind::Number(self.number(&inner).value),
            Rule::name => ExprKind::Name(ident(inner)),
            Rule::paren => match inner.into_inner().next() {
                // Parentheses only group: the node keeps the span with the parentheses.
                Some(e) => self.expr(e).kind,
                None => ExprKind::Number(0.0),
            },
            Rule::call | Rule::indexed => {
                let mut parts = inner.into_inner();
                let name = self.next_ident(&mut parts);
                let args: Vec<Expr> = parts
                    .filter(|p| p.as_rule() == Rule::expr)
                    .map(|p| self.expr(p))
                    .collect();
                if rule == Rule::call {
                    ExprKind::Call { func: name, args }
                } else {
                    ExprKind::Index {
                        base: name,
                        indices: args,
                    }
                }
            }
            Rule::application => {
                let mut parts = inner.into_inner();
                let func = parts.next().map_or_else(
                    || Ident {
                        name: String::new(),
                        span,
                    },
                    ident,
                );
                let arg = match parts.find(|p| p.as_rule() == Rule::power) {
                    Some(p) => self.power(p),
                    None => Expr::new(ExprKind::Number(0.0), span),
                };
                ExprKind::Prefix {
                    func,
                    arg: Box::new(arg),
                }
            }
            Rule::sum => {
                let mut bindings = Vec::new();
                let mut body = None;
                for part in inner.into_inner() {
                    match part.as_rule() {
                        Rule::binding => bindings.push(self.binding(part)),
                        Rule::expr => body = Some(self.expr(part)),
                        _ => {}
                    }
                }
                let body = body.unwrap_or_else(|| Expr::new(ExprKind::Number(0.0), span));
                ExprKind::Sum {
                    bindings,
                    body: Box::new(body),
                }
            }
            _ => {
                // Rule::expectation
                let mut exprs = Vec::new();
                let mut var = None;
                for part in inner.into_inner() {
                    match part.as_rule() {
                        Rule::expr => exprs.push(self.expr(part)),
                        Rule::name => var = Some(ident(part)),
                        _ => {}
                    }
                }
                let mut exprs = exprs.into_iter();
                let zero = || Expr::new(ExprKind::Number(0.0), span);
                let body = exprs.next().unwrap_or_else(zero);
                let mean = exprs.next().unwrap_or_else(zero);
                let cov = exprs.next().unwrap_or_else(zero);
                let var = var.unwrap_or_else(|| Ident {
                    name: String::new(),
                    span,
                });
                ExprKind::Expectation {
                    body: Box::new(body),
                    var,
                    mean: Box::new(mean),
                    cov: Box::new(cov),
                }
            }
        };
        Expr::new(kind, span)
    }
}

fn binary(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    let span = lhs.span.to(rhs.span);
    Expr::new(
        ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
    )
}
