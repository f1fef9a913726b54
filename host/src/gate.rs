//! The gate: turning the reports of a checkpoint's validators into one
//! decision (pass / warn / fail / inconclusive) under the plan's rules.

use serde::Serialize;

use crate::call::CallReport;
use crate::failure::OnError;
use crate::plan::{GateRules, InconclusivePolicy};
use crate::verdict::{Outcome, Verdict};

/// How one validator counts towards the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counted {
    /// What the validator answered (or its `on-error` stand-in).
    pub outcome: Outcome,
    /// What it counts as after the advisory and inconclusive rules.
    pub counts_as: Outcome,
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

fn severity(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Pass => 0,
        Outcome::Warn => 1,
        Outcome::Inconclusive => 2,
        Outcome::Fail => 3,
    }
}

/// How one validator's report counts.
pub fn count(
    report: &CallReport<Verdict>,
    on_error: OnError,
    advisory: bool,
    rules: &GateRules,
) -> Counted {
    let outcome = report.effective_outcome(on_error);
    let mut counts_as = match (outcome, rules.inconclusive) {
        (Outcome::Inconclusive, InconclusivePolicy::Fail) => Outcome::Fail,
        (Outcome::Inconclusive, InconclusivePolicy::Warn) => Outcome::Warn,
        (Outcome::Inconclusive, InconclusivePolicy::Pass) => Outcome::Pass,
        (other, _) => other,
    };
    if advisory && matches!(counts_as, Outcome::Fail | Outcome::Inconclusive) {
        counts_as = Outcome::Warn;
    }
    Counted { outcome, counts_as }
}

/// The gate over counted validators: the worst of them (fail >
/// inconclusive > warn > pass); a checkpoint without validators passes.
pub fn decide(counted: &[Counted], rules: &GateRules) -> GateDecision {
    let outcome = counted
        .iter()
        .map(|c| c.counts_as)
        .max_by_key(|o| severity(*o))
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
    use crate::call::CallOutcome;
    use crate::failure::{Failure, FailureKind};
    use crate::sandbox::CapturedOutput;

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
}
