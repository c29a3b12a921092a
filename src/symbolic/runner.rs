//! Running the rules: equality saturation under explicit limits, then extraction.
//!
//! [`simplify`] adds the expression to an e-graph with the [`ConstantFold`] analysis, runs the
//! selected [`RuleSet`](super::rules::RuleSet)s with egg's backoff scheduler until saturation or
//! until the iteration or node limit ([`Limits`]) stops it, and extracts the cheapest term under
//! [`MathCost`]. That is one *round*; the extracted term starts a fresh round, as long as the cost
//! keeps falling, up to `Limits::rounds`. Fresh rounds matter: associativity and commutativity
//! fill a node budget long before constants are gathered in a term that a closed-form rule
//! produced late, and a restart from the cheapest term gives the tidying rules the whole budget
//! again (a 2 500-node round is also far cheaper than one 10 000-node round).
//!
//! Determinism: the wall-clock limit is set to an hour so that it never decides a result; only
//! the node, iteration and round limits do, so a given input and selection give the same result
//! on every machine and every run. (Rule application order inside egg also depends on the
//! interning order of symbols, which can differ between processes when other threads intern
//! first; egg's `deterministic` feature would remove that last source of variation. Extraction
//! itself breaks ties structurally, see [`cost`](super::cost).) Hitting a limit is not an
//! error: the best term found so far is returned together with the [`StopReason`] of the last
//! round.

use std::time::Duration;

use egg::{CostFunction, Extractor, RecExpr, Runner};

use super::analysis::ConstantFold;
use super::cost::MathCost;
use super::lang::Math;
use super::rules::RuleSelection;

/// Iteration, e-node and round limits of one [`simplify`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many rule-application iterations per round.
    pub iterations: usize,
    /// A round stops once its e-graph holds more e-nodes than this.
    pub nodes: usize,
    /// At most this many rounds (each restarting from the cheapest term so far).
    pub rounds: usize,
}

impl Default for Limits {
    /// 30 iterations and 2 500 e-nodes per round, at most 4 rounds.
    fn default() -> Self {
        Limits {
            iterations: 30,
            nodes: 2_500,
            rounds: 4,
        }
    }
}

/// Why the rewriting stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// No rule added anything new: every equivalent form reachable by the rules is known.
    Saturated,
    /// The iteration limit was reached (the number of iterations run).
    IterationLimit(usize),
    /// The node limit was exceeded (the e-graph size when it stopped).
    NodeLimit(usize),
    /// The (hour-long) safety time limit was reached.
    TimeLimit,
    /// Anything else egg reported.
    Other(String),
}

impl StopReason {
    /// Whether a limit, not saturation, ended the run.
    pub fn is_limit(&self) -> bool {
        !matches!(self, StopReason::Saturated)
    }
}

impl From<egg::StopReason> for StopReason {
    fn from(reason: egg::StopReason) -> Self {
        match reason {
            egg::StopReason::Saturated => StopReason::Saturated,
            egg::StopReason::IterationLimit(n) => StopReason::IterationLimit(n),
            egg::StopReason::NodeLimit(n) => StopReason::NodeLimit(n),
            egg::StopReason::TimeLimit(_) => StopReason::TimeLimit,
            egg::StopReason::Other(text) => StopReason::Other(text),
        }
    }
}

/// The result of [`simplify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simplified {
    /// The cheapest equivalent expression found.
    pub expr: RecExpr<Math>,
    /// Its total [`MathCost`] weight.
    pub cost: u64,
    /// Why the last round stopped.
    pub stop_reason: StopReason,
    /// Iterations run, summed over the rounds.
    pub iterations: usize,
    /// E-nodes in the e-graph of the last round.
    pub nodes: usize,
    /// Rounds run.
    pub rounds: usize,
}

/// The wall-clock limit handed to egg: far beyond any node/iteration limit, so never decisive.
const SAFETY_TIME_LIMIT: Duration = Duration::from_secs(3600);

/// A runner holding `expr` under `limits` (the configuration every run of this stage uses).
pub(crate) fn runner(expr: &RecExpr<Math>, limits: Limits) -> Runner<Math, ConstantFold> {
    Runner::default()
        .with_iter_limit(limits.iterations)
        .with_node_limit(limits.nodes)
        .with_time_limit(SAFETY_TIME_LIMIT)
        .with_expr(expr)
}

/// Simplifies `expr` with the selected rule sets under the default [`Limits`].
pub fn simplify(expr: &RecExpr<Math>, rules: RuleSelection) -> Simplified {
    simplify_with(expr, rules, Limits::default())
}

/// Simplifies `expr` with the selected rule sets under `limits`.
pub fn simplify_with(expr: &RecExpr<Math>, rules: RuleSelection, limits: Limits) -> Simplified {
    let mut result = Simplified {
        expr: expr.clone(),
        cost: if expr.as_ref().is_empty() || !expr.is_dag() {
            0
        } else {
            MathCost.cost_rec(expr).weight
        },
        stop_reason: StopReason::Saturated,
        iterations: 0,
        nodes: 0,
        rounds: 0,
    };
    if expr.as_ref().is_empty() {
        return result;
    }
    if !expr.is_dag() {
        result.stop_reason =
            StopReason::Other("malformed expression: a node refers to a later node".into());
        return result;
    }
    let rules = rules.rules();
    while result.rounds < limits.rounds {
        let runner = runner(&result.expr, limits).run(rules.iter().copied());
        let (cost, best) = Extractor::new(&runner.egraph, MathCost).find_best(runner.roots[0]);
        result.rounds += 1;
        result.iterations += runner.iterations.len();
        result.nodes = runner.egraph.total_size();
        result.stop_reason = runner
            .stop_reason
            .map_or(StopReason::Other("not run".into()), StopReason::from);
        let improved = cost.weight < result.cost;
        if improved || result.rounds == 1 {
            result.expr = best;
            result.cost = cost.weight;
        }
        if !improved || result.stop_reason == StopReason::Saturated {
            break;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::symbolic::rules::RuleSet;

    fn run(expr: &str, rules: RuleSelection) -> Simplified {
        simplify(&expr.parse().expect("test expression parses"), rules)
    }

    #[test]
    fn small_inputs_saturate() {
        let s = run("(+ 1 (* 2 (- a a)))", RuleSelection::all());
        assert_eq!((s.expr.to_string(), s.cost), ("1".to_string(), 1));
        assert_eq!(s.stop_reason, StopReason::Saturated);
        let s = run("(* 1/2 (+ 1/3 1/6))", RuleSelection::none());
        assert_eq!(s.expr.to_string(), "1/4");
        let empty = simplify(&RecExpr::default(), RuleSelection::all());
        assert_eq!((empty.cost, empty.rounds), (0, 0));
        let bad = RecExpr::from(vec![Math::Neg(egg::Id::from(1)), Math::Pi]);
        let s = simplify(&bad, RuleSelection::all());
        assert!(matches!(s.stop_reason, StopReason::Other(_)) && s.rounds == 0);
    }

    #[test]
    fn functions_without_closed_form_stay_expectations() {
        let s = run("(E2 (tanh x) (tanh x) 0 0 a b c)", RuleSelection::all());
        assert_eq!(s.expr.to_string(), "(E2 (tanh x) (tanh x) 0 0 a b c)");
        let s = run("(* 2 (E1 (tanh (* 3 x)) m v))", RuleSelection::all());
        assert!(
            s.expr.to_string().contains("(E1 (tanh (* 3 x)) m v)"),
            "{}",
            s.expr
        );
    }

    #[test]
    fn results_are_deterministic() {
        let e = "(E2 (relu x) (relu x) 0 0 a b c)";
        let (first, second) = (run(e, RuleSelection::all()), run(e, RuleSelection::all()));
        assert_eq!(first, second);
        assert!(!first.expr.to_string().contains("E2"));
    }

    /// Inputs that explode under each family finish at a limit, fast.
    #[test]
    fn pathological_inputs_stop_at_a_limit_quickly() {
        let product: String = (1..=12).fold("z".to_string(), |acc, i| format!("(* a{i} {acc})"));
        let sums = "(* (+ a b) (* (+ c d) (* (+ e f) (* (+ g h) (+ k l)))))";
        let chain = "(tr (* (+ A B) (* g (* (+ C D) (* h (* (T E) (* (inv F) (+ G H))))))))";
        let arcs = "(+ (acos r1) (+ (acos r2) (+ (acos r3) (+ (acos r4) (acos r5)))))";
        let body = "(+ (+ (+ x (relu x)) (step x)) (+ (sign x) (erf x)))";
        let pair = format!("(E2 {body} {body} 0 0 a b c)");
        let cases = [
            (RuleSelection::only(RuleSet::Algebra), product.as_str()),
            (RuleSelection::only(RuleSet::Algebra), sums),
            (
                RuleSelection::only(RuleSet::Matrix).with(RuleSet::Algebra),
                chain,
            ),
            (
                RuleSelection::only(RuleSet::Trig).with(RuleSet::Algebra),
                arcs,
            ),
            (
                RuleSelection::only(RuleSet::Gaussian).with(RuleSet::Algebra),
                pair.as_str(),
            ),
            (RuleSelection::all(), pair.as_str()),
        ];
        for (rules, input) in cases {
            let start = Instant::now();
            let s = run(input, rules);
            let elapsed = start.elapsed();
            assert!(s.stop_reason.is_limit(), "{input}: {:?}", s.stop_reason);
            assert!(elapsed < Duration::from_secs(2), "{input}: {elapsed:?}");
            assert!(
                s.nodes < 4 * Limits::default().nodes,
                "{input}: {} nodes",
                s.nodes
            );
            println!(
                "{input}: {:?} after {} rounds, {} iterations, {elapsed:?}",
                s.stop_reason, s.rounds, s.iterations
            );
        }
    }
}
