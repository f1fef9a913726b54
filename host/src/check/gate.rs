//! The gate: turning the reports of a checkpoint's validators into one
//! decision (pass / warn / fail / inconclusive) under the plan's rules.

use serde::Serialize;

use serde::Deserialize;

use crate::check::plan::{GateRules, InconclusivePolicy};
use crate::runtime::call::{CallOutcome, CallReport};
use crate::runtime::verdict::{Outcome, Verdict};

/// What a plugin's failure (a sandbox stop or its own `err`) counts as at a
/// gate. A host condition (`overloaded`) is never the plugin's failure and
/// is not subject to this policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Fail closed: the plugin's check counts as failed (the default).
    #[default]
    Fail,
    /// Count as a warning.
    Warn,
    /// Count as a pass; the failure is still reported.
    Ignore,
}

impl OnError {
    /// The outcome a failed call stands for under this policy.
    pub fn outcome(self) -> Outcome {
        match self {
            OnError::Fail => Outcome::Fail,
            OnError::Warn => Outcome::Warn,
            OnError::Ignore => Outcome::Pass,
        }
    }
}

/// How one validator counts towards the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counted {
    /// What the validator answered (or its `on-error` stand-in).
    pub outcome: Outcome,
    /// What it counts as after the advisory and inconclusive rules.
    pub counts_as: Outcome,
    /// The host could not run it (`overloaded`): it counts as
    /// inconclusive whatever its `on-error` says.
    pub host_overloaded: bool,
}

/// The checkpoint's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GateDecision {
    pub outcome: Outcome,
    /// Warnings fail this gate (`fail-on-warn`).
    pub fail_on_warn: bool,
}

impl GateDecision {
    /// Whether the rollout may go on past this checkpoint.
    pub fn passed(&self) -> bool {
        match self.outcome {
            Outcome::Pass => true,
            Outcome::Warn => !self.fail_on_warn,
            Outcome::Fail | Outcome::Inconclusive => false,
        }
    }
}

/// How one validator's report counts.
pub fn count(
    report: &CallReport<Verdict>,
    on_error: OnError,
    advisory: bool,
    rules: &GateRules,
) -> Counted {
    let host_overloaded = report
        .failure_kind()
        .is_some_and(|kind| kind.is_host_condition());
    let outcome = match &report.outcome {
        CallOutcome::Completed(verdict) => verdict.outcome,
        // The host could not judge: neither the plugin's failure nor a pass.
        CallOutcome::Stopped(_) if host_overloaded => Outcome::Inconclusive,
        CallOutcome::Refused(_) | CallOutcome::Stopped(_) => on_error.outcome(),
    };
    let mut counts_as = match (outcome, rules.inconclusive) {
        // The plan's inconclusive policy is about verdicts; an overloaded
        // host stays inconclusive (never a silent pass).
        (Outcome::Inconclusive, _) if host_overloaded => Outcome::Inconclusive,
        (Outcome::Inconclusive, InconclusivePolicy::Fail) => Outcome::Fail,
        (Outcome::Inconclusive, InconclusivePolicy::Warn) => Outcome::Warn,
        (Outcome::Inconclusive, InconclusivePolicy::Pass) => Outcome::Pass,
        (other, _) => other,
    };
    if advisory && matches!(counts_as, Outcome::Fail | Outcome::Inconclusive) {
        counts_as = Outcome::Warn;
    }
    Counted {
        outcome,
        counts_as,
        host_overloaded,
    }
}

/// How one experiment counts: a guardrail breach fails the gate; an
/// injector that failed so often the experiment stopped injecting proved
/// nothing (inconclusive, under the plan's inconclusive rule); otherwise
/// the experiment passes and the validators judge its figures.
pub fn count_experiment(breached: bool, injector_gave_up: bool, rules: &GateRules) -> Counted {
    let outcome = if breached {
        Outcome::Fail
    } else if injector_gave_up {
        Outcome::Inconclusive
    } else {
        Outcome::Pass
    };
    let counts_as = match (outcome, rules.inconclusive) {
        (Outcome::Inconclusive, InconclusivePolicy::Fail) => Outcome::Fail,
        (Outcome::Inconclusive, InconclusivePolicy::Warn) => Outcome::Warn,
        (Outcome::Inconclusive, InconclusivePolicy::Pass) => Outcome::Pass,
        (other, _) => other,
    };
    Counted {
        outcome,
        counts_as,
        host_overloaded: false,
    }
}

/// The gate over counted validators: the worst of them (fail >
/// inconclusive > warn > pass); a checkpoint without validators passes.
pub fn decide(counted: &[Counted], rules: &GateRules) -> GateDecision {
    let outcome = counted
        .iter()
        .map(|c| c.counts_as)
        .max()
        .unwrap_or(Outcome::Pass);
    GateDecision {
        outcome,
        fail_on_warn: rules.fail_on_warn,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime::call::CallOutcome;
    use crate::runtime::failure::{Failure, FailureKind};
    use crate::runtime::sandbox::CapturedOutput;

    fn report(outcome: CallOutcome<Verdict>) -> CallReport<Verdict> {
        CallReport {
            plugin: "p".into(),
            outcome,
            elapsed: Duration::ZERO,
            fuel_used: None,
            peak_memory_bytes: 0,
            output: CapturedOutput::default(),
        }
    }

    fn verdict(outcome: Outcome) -> CallReport<Verdict> {
        report(CallOutcome::Completed(Verdict {
            outcome,
            findings: vec![],
            summary: None,
            findings_dropped: 0,
        }))
    }

    const RULES: GateRules = GateRules {
        fail_on_warn: false,
        inconclusive: InconclusivePolicy::Inconclusive,
    };

    #[test]
    fn gate_is_the_worst_counted_outcome() {
        let counted: Vec<_> = [Outcome::Pass, Outcome::Warn, Outcome::Inconclusive]
            .into_iter()
            .map(|o| count(&verdict(o), OnError::Fail, false, &RULES))
            .collect();
        assert_eq!(decide(&counted, &RULES).outcome, Outcome::Inconclusive);
        let with_fail = [
            counted.clone(),
            vec![count(&verdict(Outcome::Fail), OnError::Fail, false, &RULES)],
        ]
        .concat();
        assert_eq!(decide(&with_fail, &RULES).outcome, Outcome::Fail);
        assert_eq!(decide(&[], &RULES).outcome, Outcome::Pass);
    }

    #[test]
    fn advisory_validators_warn_instead_of_failing() {
        let counted = count(&verdict(Outcome::Fail), OnError::Fail, true, &RULES);
        assert_eq!(
            (counted.outcome, counted.counts_as),
            (Outcome::Fail, Outcome::Warn)
        );
        let stopped = report(CallOutcome::Stopped(Failure::new(
            FailureKind::Timeout,
            "t",
        )));
        assert_eq!(
            count(&stopped, OnError::Fail, true, &RULES).counts_as,
            Outcome::Warn
        );
    }

    #[test]
    fn inconclusive_policy_maps_inconclusive_verdicts() {
        for (policy, expected) in [
            (InconclusivePolicy::Inconclusive, Outcome::Inconclusive),
            (InconclusivePolicy::Fail, Outcome::Fail),
            (InconclusivePolicy::Warn, Outcome::Warn),
            (InconclusivePolicy::Pass, Outcome::Pass),
        ] {
            let rules = GateRules {
                fail_on_warn: false,
                inconclusive: policy,
            };
            assert_eq!(
                count(
                    &verdict(Outcome::Inconclusive),
                    OnError::Fail,
                    false,
                    &rules
                )
                .counts_as,
                expected
            );
        }
    }

    #[test]
    fn fail_on_warn_stops_a_warning_gate() {
        let warn = [count(&verdict(Outcome::Warn), OnError::Fail, false, &RULES)];
        assert!(decide(&warn, &RULES).passed());
        let strict = GateRules {
            fail_on_warn: true,
            ..RULES
        };
        assert!(!decide(&warn, &strict).passed());
    }

    #[test]
    fn on_error_policy_applies_to_sandbox_failures() {
        let stopped = report(CallOutcome::Stopped(Failure::new(
            FailureKind::MemoryLimit,
            "m",
        )));
        assert_eq!(
            count(&stopped, OnError::Fail, false, &RULES).counts_as,
            Outcome::Fail
        );
        assert_eq!(
            count(&stopped, OnError::Ignore, false, &RULES).counts_as,
            Outcome::Pass
        );
    }

    #[test]
    fn an_overloaded_host_is_inconclusive_whatever_on_error_or_the_plan_says() {
        let overloaded = report(CallOutcome::Stopped(Failure::new(
            FailureKind::Overloaded,
            "the host was overloaded",
        )));
        let lenient = GateRules {
            fail_on_warn: false,
            inconclusive: InconclusivePolicy::Pass,
        };
        for on_error in [OnError::Fail, OnError::Warn, OnError::Ignore] {
            for rules in [RULES, lenient] {
                let counted = count(&overloaded, on_error, false, &rules);
                assert_eq!(counted.outcome, Outcome::Inconclusive, "{on_error:?}");
                assert_eq!(counted.counts_as, Outcome::Inconclusive, "{on_error:?}");
                assert!(counted.host_overloaded);
            }
        }
        let fail = count(&verdict(Outcome::Fail), OnError::Fail, false, &RULES);
        let decision = decide(
            &[count(&overloaded, OnError::Ignore, false, &RULES), fail],
            &RULES,
        );
        assert_eq!(decision.outcome, Outcome::Fail, "a real failure still wins");
    }
}
