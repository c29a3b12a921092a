//! "Did you mean …?": the closest visible name by edit distance.

use crate::syntax::Diagnostic;
use crate::syntax::ast::Ident;

use super::Checker;
use super::ir::{BUILTIN_NAMES, Builtin};

/// Levenshtein distance between two names, in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a plausible typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

impl Checker {
    /// Every name an expression could refer to here.
    fn visible_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.keys().cloned().collect();
        names.extend(self.index_scope.iter().map(|v| v.name.clone()));
        names.extend(self.random_scope.iter().map(|r| r.name.clone()));
        names.extend(self.function_params.iter().cloned());
        names.extend(BUILTIN_NAMES.iter().map(|(n, _)| n.to_string()));
        names.extend(Builtin::ALL.iter().map(|(n, _)| n.to_string()));
        names.sort();
        names
    }

    /// Reports a name that resolves to nothing, with a suggestion when one is close.
    pub(super) fn unknown_name(&mut self, ident: &Ident) {
        let names = self.visible_names();
        let mut diagnostic = Diagnostic::new(
            "saddle::unknown_name",
            format!("unknown name `{}`", ident.name),
            ident.span,
            "not declared",
        );
        if let Some(help) = builtin_alias(&ident.name) {
            diagnostic = diagnostic.with_help(help);
        } else if let Some(help) = self.undeclared_conjugate(&ident.name) {
            diagnostic.message = format!(
                "unknown name `{}`: it looks like a conjugate kernel that is not declared",
                ident.name
            );
            diagnostic = diagnostic.with_help(help);
        } else if let Some(help) = self.argument_outside_its_function(&ident.name) {
            diagnostic = diagnostic.with_help(help);
        } else if let Some(best) = closest(&ident.name, names.iter().map(String::as_str)) {
            diagnostic = diagnostic.with_help(format!("did you mean `{best}`?"));
        } else {
            diagnostic =
                diagnostic.with_help("declare it with `param`, `kernel`, `mean`, `conj` or `data`");
        }
        self.error(diagnostic);
    }
}

/// What to write instead of a name other languages use for a built-in (`log`, `det`,
/// `trace`, …).
pub fn builtin_alias(name: &str) -> Option<String> {
    let (instead, why) = match name {
        "log" | "Log" => ("ln", "the natural logarithm"),
        "det" | "Det" => (
            "logdet",
            "ln det A, the form actions use (det itself overflows for P×P kernels)",
        ),
        "trace" | "Tr" | "Trace" => ("tr", "the trace"),
        "inverse" | "Inv" => ("inv", "the matrix inverse"),
        "arcsin" => ("asin", "the inverse sine"),
        "arccos" => ("acos", "the inverse cosine"),
        "arctan" => ("atan", "the inverse tangent"),
        "sgn" | "signum" => ("sign", "±1 by the sign"),
        "heaviside" | "Heaviside" => ("step", "the unit step"),
        "ReLU" | "Relu" => ("relu", "max(x, 0)"),
        "expect" | "Expect" | "expectation" => ("E[f | h ~ N(m, K)]", "a Gaussian expectation"),
        _ => return None,
    };
    Some(format!("saddle writes {why} as `{instead}`"))
}

impl Checker {
    /// A hint for `Ct` when a field `C` exists: the name looks like its conjugate, which
    /// needs a `conj` declaration.
    fn undeclared_conjugate(&self, name: &str) -> Option<String> {
        const SUFFIXES: [&str; 8] = ["t", "_t", "tilde", "_tilde", "hat", "_hat", "T", "c"];
        SUFFIXES.iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix).filter(|b| !b.is_empty())?;
            let field = self.fields.iter().find(|f| f.name == base)?;
            let vars: Vec<&str> = field.indices.iter().map(|b| b.var.as_str()).collect();
            let indexed = |n: &str| {
                if vars.is_empty() {
                    n.to_string()
                } else {
                    format!("{n}[{}]", vars.join(", "))
                }
            };
            let ranges: Vec<String> = vars.iter().map(|v| format!("{v} in 1..=…")).collect();
            let ranges = if ranges.is_empty() {
                String::new()
            } else {
                format!(" for {}", ranges.join(", "))
            };
            Some(format!(
                "declare it as the conjugate of `{base}`: `conj {} of {}{ranges}` (over the \
                 entries the saddle point determines)",
                indexed(name),
                indexed(base)
            ))
        })
    }

    /// A hint for a user function's argument name used outside that function's body (as
    /// in `E[phi(x) … | h ~ N(0, C)]`): inside an expectation the variable is the random one.
    fn argument_outside_its_function(&self, name: &str) -> Option<String> {
        let function = self
            .functions
            .iter()
            .find(|f| f.params.iter().any(|p| p == name))?;
        let inside = match self.random_scope.last() {
            Some(random) => format!(
                "; inside this expectation the variable is `{}`: write `{}({})`",
                random.name, function.name, random.name
            ),
            None => String::new(),
        };
        Some(format!(
            "`{name}` is the argument of `{}({})` and exists only in its definition{inside}",
            function.name,
            function.params.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("Ct", "Ct"), 0);
        assert_eq!(edit_distance("Cx", "Ct"), 1);
        assert_eq!(edit_distance("kapa", "kappa"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn closest_prefers_the_nearest_plausible_name() {
        assert_eq!(closest("kapa", ["kappa", "g", "gb"]), Some("kappa"));
        assert_eq!(closest("zzz", ["kappa", "g"]), None);
    }
}
