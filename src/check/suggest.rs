//! "Did you mean …?": the closest visible name by edit distance.

use crate::syntax::Diagnostic;
use crate::syntax::ast::Ident;

use super::Checker;
use super::declarations::BUILTIN_NAMES;
use super::ir::Builtin;

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
        if let Some(best) = closest(&ident.name, names.iter().map(String::as_str)) {
            diagnostic = diagnostic.with_help(format!("did you mean `{best}`?"));
        } else {
            diagnostic =
                diagnostic.with_help("declare it with `param`, `kernel`, `mean`, `conj` or `data`");
        }
        self.error(diagnostic);
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
