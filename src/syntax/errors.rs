//! Syntax errors in words a physicist reads: pest's expected-rule lists become
//! "expected an expression, found `)`", brackets are matched before parsing, and reserved
//! words used as names are called what they are.

use pest::error::{Error, ErrorVariant, InputLocation};

use super::diagnostic::Diagnostic;
use super::grammar::Rule;
use super::span::Span;

/// Words that cannot be used as names.
pub const RESERVED_WORDS: &[&str] = &[
    "theory", "param", "data", "kernel", "mean", "conj", "of", "action", "for", "in", "sum", "int",
    "real",
];

/// Finds unbalanced `(`/`)` and `[`/`]` (comments are skipped).
pub fn check_delimiters(source: &str) -> Vec<Diagnostic> {
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut problems = Vec::new();
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' if chars.peek().is_some_and(|&(_, n)| n == '/') => {
                for (_, n) in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' if stack.len() >= super::limits::MAX_BRACKETS => {
                problems.push(
                    Diagnostic::new(
                        "saddle::nesting_too_deep",
                        format!(
                            "brackets nested more than {} deep",
                            super::limits::MAX_BRACKETS
                        ),
                        Span::new(i, i + c.len_utf8()),
                        "nested too deeply",
                    )
                    .with_help("split the expression into named functions or definitions"),
                );
                return problems;
            }
            '(' | '[' => stack.push((c, i)),
            ')' | ']' => {
                let want = if c == ')' { '(' } else { '[' };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    Some((open, at)) => {
                        problems.push(
                            Diagnostic::new(
                                "saddle::mismatched_delimiter",
                                format!("`{c}` closes `{open}`"),
                                Span::new(i, i + 1),
                                format!("expected `{}`", closing(open)),
                            )
                            .with_related(Span::new(at, at + 1), "opened here"),
                        );
                        return problems;
                    }
                    None => {
                        problems.push(
                            Diagnostic::new(
                                "saddle::unmatched_delimiter",
                                format!("`{c}` has no matching `{want}`"),
                                Span::new(i, i + 1),
                                "closes nothing",
                            )
                            .with_help("remove it, or add the opening bracket"),
                        );
                        return problems;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((open, at)) = stack.pop() {
        problems.push(
            Diagnostic::new(
                "saddle::unclosed_delimiter",
                format!("`{open}` is never closed"),
                Span::new(at, at + 1),
                "opened here",
            )
            .with_help(format!("add `{}` where the group ends", closing(open))),
        );
    }
    problems
}

fn closing(open: char) -> char {
    if open == '(' { ')' } else { ']' }
}

/// Turns a pest error into a diagnostic that says what was expected in words.
pub fn syntax_error(source: &str, error: &Error<Rule>) -> Diagnostic {
    let pos = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = found_token(source, pos);
    // `found` is empty at the end of the file: point just past the last character.
    let span = Span::new(pos.min(source.len()), (pos + found.len()).min(source.len()));
    let expected = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => describe_expected(positives),
        ErrorVariant::CustomError { message } => message.clone(),
    };
    let found_words = if found.is_empty() {
        "the end of the file".to_string()
    } else {
        format!("`{found}`")
    };
    if RESERVED_WORDS.contains(&found.as_str()) && expected.contains("a name") {
        return Diagnostic::new(
            "saddle::reserved_word",
            format!("`{found}` is a reserved word and cannot be used as a name"),
            span,
            "reserved word",
        )
        .with_help(format!(
            "rename it, e.g. `{found}_`; reserved: {}",
            RESERVED_WORDS.join(", ")
        ));
    }
    let mut diagnostic = Diagnostic::new(
        "saddle::syntax",
        format!("expected {expected}, found {found_words}"),
        span,
        format!("expected {expected}"),
    );
    if let Some(help) = hint_for(source, pos, &found) {
        diagnostic = diagnostic.with_help(help);
    }
    diagnostic
}

/// The word or symbol at `pos` (empty at the end of the file).
fn found_token(source: &str, pos: usize) -> String {
    let rest = &source[pos.min(source.len())..];
    let mut chars = rest.chars();
    match chars.next() {
        None => String::new(),
        Some(c) if c.is_alphanumeric() || c == '_' => rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
            .collect(),
        Some(c) => c.to_string(),
    }
}

/// Hints for frequent slips.
fn hint_for(source: &str, pos: usize, found: &str) -> Option<String> {
    let pos = pos.min(source.len());
    let line_start = source[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[pos..].find('\n').map_or(source.len(), |i| pos + i);
    let line = source[line_start..line_end].trim();
    let first_word: String = line
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let starts_with_name = !first_word.is_empty() && !RESERVED_WORDS.contains(&first_word.as_str());
    if starts_with_name && !line.contains('=') && line_start > 0 {
        return Some(
            "a product written by juxtaposition must stay on one line; to continue an expression \
             on the next line, start that line with an operator (`+`, `-`, `*`)"
                .to_string(),
        );
    }
    match found {
        "*" if source[pos..].starts_with("**") => Some("powers are written with `^`".to_string()),
        "{" | "}" => Some("group with parentheses `( … )`".to_string()),
        _ => None,
    }
}

/// Names grammar rules the way a user thinks of them, deduplicated and joined with "or".
fn describe_expected(rules: &[Rule]) -> String {
    let mut words: Vec<&'static str> = Vec::new();
    for rule in rules {
        let word = rule_words(*rule);
        if !words.contains(&word) {
            words.push(word);
        }
    }
    match words.len() {
        0 => "something else".to_string(),
        1 => words[0].to_string(),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    }
}

fn rule_words(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "the end of the file",
        Rule::theory_decl
        | Rule::param_decl
        | Rule::data_decl
        | Rule::field_decl
        | Rule::conj_decl
        | Rule::function_def
        | Rule::definition
        | Rule::action_decl => {
            "a declaration (`theory`, `param`, `data`, `kernel`, `conj`, `action`, a definition)"
        }
        Rule::expr
        | Rule::term
        | Rule::unary
        | Rule::power
        | Rule::exponent
        | Rule::postfix
        | Rule::primary
        | Rule::paren
        | Rule::call
        | Rule::application
        | Rule::prefix_function
        | Rule::indexed
        | Rule::sum
        | Rule::expectation
        | Rule::standalone_expr => "an expression",
        Rule::add_op | Rule::mul_op | Rule::juxtapose => "an operator",
        Rule::neg => "`-`",
        Rule::number | Rule::signed_number => "a number",
        Rule::name | Rule::name_list => "a name",
        Rule::param_type | Rule::kw_int | Rule::kw_real => "a type (`int` or `real`)",
        Rule::field_kind | Rule::kw_kernel | Rule::kw_mean => "`kernel` or `mean`",
        Rule::for_clause | Rule::kw_for => "`for`",
        Rule::binding => "an index binding like `l in 1..=L`",
        Rule::range | Rule::inclusive_dots | Rule::exclusive_dots => "a range `a..=b`",
        Rule::index_list => "`[`",
        Rule::transpose => "`^T`",
        Rule::kw_of => "`of`",
        Rule::kw_in => "`in`",
        Rule::kw_theory => "`theory`",
        Rule::kw_param => "`param`",
        Rule::kw_data => "`data`",
        Rule::kw_conj => "`conj`",
        Rule::kw_action => "`action`",
        Rule::kw_sum => "`sum`",
        Rule::keyword => "a keyword",
        Rule::file | Rule::item => "a declaration",
        Rule::WHITESPACE | Rule::COMMENT | Rule::ws => "a blank",
        Rule::ident_start | Rule::ident_char => "a name",
    }
}
