//! One-line rewrite tests in the style of egg's `test_fn!`.
//!
//! `proves!(SET; name: "start" => "goal", …)` adds both terms to one e-graph, runs the selected
//! rules (stopping as soon as the two classes merge) and asserts that they did; `refutes!` runs
//! from `start` alone to small limits and asserts that the exact `goal` term was *not* built in
//! its class (unsound rewrites stay out).

use egg::RecExpr;

use super::RuleSelection;
use crate::symbolic::lang::Math;
use crate::symbolic::runner::{Limits, runner};

fn parse(text: &str) -> RecExpr<Math> {
    text.parse()
        .unwrap_or_else(|e| panic!("test expression {text} does not parse: {e}"))
}

/// Whether the rules of `selection` prove `start = goal` within `limits`.
pub(crate) fn reaches(selection: RuleSelection, start: &str, goal: &str, limits: Limits) -> bool {
    let (start, goal) = (parse(start), parse(goal));
    let runner = runner(&start, limits)
        .with_expr(&goal)
        .with_hook(|r| {
            if r.egraph.find(r.roots[0]) == r.egraph.find(r.roots[1]) {
                Err("goal reached".into())
            } else {
                Ok(())
            }
        })
        .run(selection.rules());
    runner.egraph.find(runner.roots[0]) == runner.egraph.find(runner.roots[1])
}

/// Whether the rules of `selection`, run from `start` alone, put the exact term `goal` into the
/// class of `start` (the one-way check of `refutes!`: sound rules may well rewrite the goal
/// *into* the start, but must not build the goal from the start).
pub(crate) fn builds(selection: RuleSelection, start: &str, goal: &str, limits: Limits) -> bool {
    let (start, goal) = (parse(start), parse(goal));
    let runner = runner(&start, limits).run(selection.rules());
    runner
        .egraph
        .lookup_expr(&goal)
        .is_some_and(|id| runner.egraph.find(id) == runner.egraph.find(runner.roots[0]))
}

/// Limits of the one-line tests.
pub(crate) const TEST_LIMITS: Limits = Limits {
    iterations: 12,
    nodes: 20_000,
    rounds: 1,
};

/// Positive one-line rewrite tests.
macro_rules! proves {
    ($sel:expr; $($name:ident: $start:literal => $goal:literal),+ $(,)?) => {$(
        #[test]
        fn $name() {
            assert!(
                $crate::symbolic::rules::testing::reaches(
                    $sel, $start, $goal, $crate::symbolic::rules::testing::TEST_LIMITS),
                "{} did not rewrite to {}", $start, $goal
            );
        }
    )+};
}

/// Negative one-line rewrite tests (the goal must stay out of reach).
macro_rules! refutes {
    ($sel:expr; $($name:ident: $start:literal != $goal:literal),+ $(,)?) => {$(
        #[test]
        fn $name() {
            let limits = $crate::symbolic::runner::Limits { iterations: 6, nodes: 5_000, rounds: 1 };
            assert!(
                !$crate::symbolic::rules::testing::builds($sel, $start, $goal, limits),
                "{} unsoundly rewrote to {}", $start, $goal
            );
        }
    )+};
}

pub(crate) use {proves, refutes};
