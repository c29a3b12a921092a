//! Binding parameter values: the file's defaults, overridden by `--set name=value`, checked
//! by one rule for every stage (the checker for the defaults, the CLI, the derivation and
//! every solver for the overrides).
//!
//! The rule: every value is a finite number; an `int` parameter (a depth, a number of time
//! steps) is a whole number in `0..=`[`MAX_INT_PARAM`], the language's bound, beyond which
//! unrolled sums and kernel families would not fit in memory. When a name is set twice the
//! last value wins, as on a command line.

use super::ir::{ParamType, Theory};

/// The largest value an `int` parameter may take.
pub const MAX_INT_PARAM: f64 = 10_000.0;

/// A parameter value that cannot be bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BindError {
    /// `--set` names no parameter of the theory.
    #[error("unknown parameter `{name}`{hint}")]
    UnknownParam {
        /// The name given.
        name: String,
        /// " (did you mean `g`?)" or the list of parameters.
        hint: String,
    },
    /// A value the parameter cannot take.
    #[error("parameter `{name}` = {value}: {reason}")]
    BadValue {
        /// The parameter.
        name: String,
        /// The value given.
        value: f64,
        /// Why it is refused.
        reason: String,
    },
}

/// Why `value` cannot be the value of a parameter of type `ty`, if it cannot.
pub fn value_problem(ty: ParamType, value: f64) -> Option<String> {
    if !value.is_finite() {
        return Some("not a finite number".into());
    }
    match ty {
        ParamType::Real => None,
        ParamType::Int if value.fract() != 0.0 => {
            Some("an `int` parameter needs a whole number".into())
        }
        ParamType::Int if !(0.0..=MAX_INT_PARAM).contains(&value) => Some(format!(
            "an `int` parameter must lie in 0..={MAX_INT_PARAM} (the language's bound on depths \
             and time steps)"
        )),
        ParamType::Int => None,
    }
}

impl Theory {
    /// The integer parameters' values by parameter id (0 for real parameters), as the
    /// unrolling of index ranges reads them; `params` as [`Theory::bind`] returns them.
    pub fn int_values(&self, params: &[f64]) -> Vec<i64> {
        self.params
            .iter()
            .zip(params)
            .map(|(p, v)| if p.ty == ParamType::Int { *v as i64 } else { 0 })
            .collect()
    }

    /// The value of every parameter, in declaration order: the default, or the last
    /// override that names it; every override must name a parameter and obey the rule of
    /// the module.
    pub fn bind(&self, overrides: &[(String, f64)]) -> Result<Vec<f64>, BindError> {
        for (name, value) in overrides {
            let Some(id) = self.param(name) else {
                let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                let hint = match super::closest_name(name, names.iter().copied()) {
                    Some(best) => format!(" (did you mean `{best}`?)"),
                    None if names.is_empty() => " (the theory has no parameters)".into(),
                    None => format!(" (parameters: {})", names.join(", ")),
                };
                return Err(BindError::UnknownParam {
                    name: name.clone(),
                    hint,
                });
            };
            if let Some(reason) = value_problem(self.params[id].ty, *value) {
                return Err(BindError::BadValue {
                    name: name.clone(),
                    value: *value,
                    reason,
                });
            }
        }
        Ok(self
            .params
            .iter()
            .map(|p| {
                overrides
                    .iter()
                    .rev()
                    .find(|(n, _)| *n == p.name)
                    .map_or(p.default, |(_, v)| *v)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theory() -> Theory {
        let source = "theory t\nparam g = 1.5\nparam L: int = 3\ndata X, Y\nkernel C[l] for l in 0..=L\n\
                      conj Ct[l] of C[l] for l in 1..=L\nC[0] = X X^T / d\n\
                      action S = sum(l in 1..=L, - tr(Ct[l]^T C[l]) + tr(Ct[l]^T ones))\n\
                      - 1/2 * tr(Y^T inv(C[L] + g * I) Y)\n";
        crate::compile(source, "t.action").unwrap_or_else(|d| panic!("{}", d.render(false)))
    }

    #[test]
    fn defaults_and_the_last_override_win() {
        let t = theory();
        assert_eq!(t.bind(&[]).ok(), Some(vec![1.5, 3.0]));
        let set = [("L".to_string(), 2.0), ("L".to_string(), 5.0)];
        assert_eq!(t.bind(&set).ok(), Some(vec![1.5, 5.0]));
    }

    #[test]
    fn one_rule_for_integers_and_reals() {
        let t = theory();
        for bad in [1e9, 10_001.0, -1.0, 2.5, f64::NAN, f64::INFINITY, 1e20] {
            let err = t.bind(&[("L".into(), bad)]);
            assert!(matches!(err, Err(BindError::BadValue { .. })), "L = {bad}");
        }
        assert!(t.bind(&[("L".into(), 10_000.0)]).is_ok());
        assert!(t.bind(&[("g".into(), f64::NAN)]).is_err());
        let message = t.bind(&[("L".into(), 1e9)]).err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some(
                "parameter `L` = 1000000000: an `int` parameter must lie in 0..=10000 (the \
                 language's bound on depths and time steps)"
            )
        );
        let unknown = t.bind(&[("gg".into(), 1.0)]).err().map(|e| e.to_string());
        assert_eq!(
            unknown.as_deref(),
            Some("unknown parameter `gg` (did you mean `g`?)")
        );
    }
}
