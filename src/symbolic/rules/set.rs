//! Named rule sets and the selection of which of them run.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use super::{Rw, algebra, gaussian, matrix, price, trig};

/// One family of rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleSet {
    /// Ring laws, powers, `exp`/`ln`, `sqrt`, `abs` ([`algebra`](super::algebra)).
    Algebra,
    /// `asin`/`acos`/`atan` relations ([`trig`](super::trig)).
    Trig,
    /// Transpose, trace, inverse, identity, `logdet` ([`matrix`](super::matrix)).
    Matrix,
    /// Gaussian closed forms, including the Price-theorem derivatives
    /// ([`gaussian`](super::gaussian), [`price`](super::price)).
    Gaussian,
}

impl RuleSet {
    /// Every family, in a fixed order.
    pub const ALL: [RuleSet; 4] = [
        RuleSet::Algebra,
        RuleSet::Trig,
        RuleSet::Matrix,
        RuleSet::Gaussian,
    ];

    /// The name used in reports and in [`RuleSelection::from_names`].
    pub fn name(self) -> &'static str {
        match self {
            RuleSet::Algebra => "algebra",
            RuleSet::Trig => "trig",
            RuleSet::Matrix => "matrix",
            RuleSet::Gaussian => "gaussian",
        }
    }

    /// The rules of this family (built once, then shared).
    pub fn rules(self) -> &'static [Rw] {
        static TABLES: OnceLock<[Vec<Rw>; 4]> = OnceLock::new();
        let tables = TABLES.get_or_init(|| {
            let mut gauss = gaussian::rules();
            gauss.extend(price::rules());
            [algebra::rules(), trig::rules(), matrix::rules(), gauss]
        });
        &tables[self as usize]
    }
}

impl fmt::Display for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`RuleSet::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule set `{0}` (known: algebra, trig, matrix, gaussian)")]
pub struct UnknownRuleSet(pub String);

impl FromStr for RuleSet {
    type Err = UnknownRuleSet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleSet::ALL
            .into_iter()
            .find(|set| set.name() == s)
            .ok_or_else(|| UnknownRuleSet(s.to_string()))
    }
}

/// Which rule sets a [`simplify`](crate::symbolic::runner::simplify) call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleSelection {
    enabled: [bool; 4],
}

impl Default for RuleSelection {
    /// Every rule set.
    fn default() -> Self {
        Self::all()
    }
}

impl RuleSelection {
    /// Every rule set.
    pub fn all() -> Self {
        RuleSelection { enabled: [true; 4] }
    }

    /// No rules: simplification is then constant folding only.
    pub fn none() -> Self {
        RuleSelection {
            enabled: [false; 4],
        }
    }

    /// Only `set`.
    pub fn only(set: RuleSet) -> Self {
        Self::none().with(set)
    }

    /// This selection plus `set`.
    pub fn with(mut self, set: RuleSet) -> Self {
        self.enabled[set as usize] = true;
        self
    }

    /// This selection without `set`.
    pub fn without(mut self, set: RuleSet) -> Self {
        self.enabled[set as usize] = false;
        self
    }

    /// Whether `set` is selected.
    pub fn contains(&self, set: RuleSet) -> bool {
        self.enabled[set as usize]
    }

    /// The selection of the named sets (`["algebra", "gaussian"]`).
    pub fn from_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, UnknownRuleSet> {
        names
            .into_iter()
            .try_fold(Self::none(), |sel, name| Ok(sel.with(name.parse()?)))
    }

    /// The selected sets, in the order of [`RuleSet::ALL`].
    pub fn sets(&self) -> impl Iterator<Item = RuleSet> + '_ {
        RuleSet::ALL.into_iter().filter(|s| self.contains(*s))
    }

    /// The selected rules, family by family.
    pub fn rules(&self) -> Vec<&'static Rw> {
        self.sets().flat_map(|s| s.rules().iter()).collect()
    }
}

/// Name and number of rules of every rule set, in the order of [`RuleSet::ALL`].
pub fn rule_sets() -> Vec<(&'static str, usize)> {
    RuleSet::ALL
        .into_iter()
        .map(|s| (s.name(), s.rules().len()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_rule_names_are_unique() {
        for set in RuleSet::ALL {
            assert_eq!(set.name().parse::<RuleSet>(), Ok(set));
        }
        assert!("calculus".parse::<RuleSet>().is_err());
        let mut names: Vec<String> = RuleSelection::all()
            .rules()
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total, "duplicate rule names");
        assert_eq!(rule_sets().iter().map(|(_, n)| n).sum::<usize>(), total);
    }

    #[test]
    fn selections_compose() {
        let sel = RuleSelection::from_names(["algebra", "trig"]).expect("known names");
        assert!(sel.contains(RuleSet::Algebra) && !sel.contains(RuleSet::Gaussian));
        assert_eq!(
            sel.without(RuleSet::Trig),
            RuleSelection::only(RuleSet::Algebra)
        );
        assert!(RuleSelection::none().rules().is_empty());
    }
}
