//! `slo-gate`: judges the metrics observed at a checkpoint against
//! objectives with pass and warning thresholds, weights and key objectives.
//! A key objective that fails fails the gate; otherwise a missing metric
//! makes the verdict inconclusive (never a pass); otherwise the weighted
//! score (pass = 1, warn = 0.5, fail = 0) decides.

use serde::Deserialize;

use crate::model::{Change, Finding, Outcome, Report, Severity, parse_config};

pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "objectives": {
      "type": "array",
      "items": {
        "type": "object",
        "properties": {
          "metric": {"type": "string"},
          "pass": {"type": "number", "description": "value at or better than this passes"},
          "warn": {"type": "number", "description": "value at or better than this warns; worse fails"},
          "direction": {"enum": ["below", "above"], "default": "below",
                        "description": "`below`: lower is better (error rate); `above`: higher is better (availability)"},
          "weight": {"type": "number", "exclusiveMinimum": 0, "default": 1},
          "key": {"type": "boolean", "default": false, "description": "a failing key objective fails the gate"}
        },
        "required": ["metric", "pass", "warn"],
        "additionalProperties": false
      }
    },
    "pass-score": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.9},
    "warn-score": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.6}
  },
  "additionalProperties": false
}"#;

/// Default `pass-score`: nine tenths of the weight must pass outright.
const DEFAULT_PASS_SCORE: f64 = 0.9;
/// Default `warn-score`: below six tenths the canary is clearly worse.
const DEFAULT_WARN_SCORE: f64 = 0.6;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "default_objectives")]
    objectives: Vec<Objective>,
    #[serde(default = "default_pass_score")]
    pass_score: f64,
    #[serde(default = "default_warn_score")]
    warn_score: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Objective {
    metric: String,
    pass: f64,
    warn: f64,
    #[serde(default)]
    direction: Direction,
    #[serde(default = "one")]
    weight: f64,
    #[serde(default)]
    key: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Direction {
    #[default]
    Below,
    Above,
}

fn one() -> f64 {
    1.0
}
fn default_pass_score() -> f64 {
    DEFAULT_PASS_SCORE
}
fn default_warn_score() -> f64 {
    DEFAULT_WARN_SCORE
}

/// Without objectives in the config: error rate (key), p99 latency and CPU
/// saturation, with thresholds a typical web service would hold.
fn default_objectives() -> Vec<Objective> {
    let objective = |metric: &str, pass, warn, weight, key| Objective {
        metric: metric.into(),
        pass,
        warn,
        direction: Direction::Below,
        weight,
        key,
    };
    vec![
        objective("error-rate", 0.01, 0.02, 2.0, true),
        objective("latency-p99-ms", 500.0, 800.0, 1.0, false),
        objective("cpu-saturation", 0.75, 0.9, 1.0, false),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grade {
    Pass,
    Warn,
    Fail,
}

impl Objective {
    fn grade(&self, value: f64) -> Grade {
        let better_or_equal = |threshold: f64| match self.direction {
            Direction::Below => value <= threshold,
            Direction::Above => value >= threshold,
        };
        if better_or_equal(self.pass) {
            Grade::Pass
        } else if better_or_equal(self.warn) {
            Grade::Warn
        } else {
            Grade::Fail
        }
    }

    fn comparison(&self) -> &'static str {
        match self.direction {
            Direction::Below => "≤",
            Direction::Above => "≥",
        }
    }
}

fn validate_config(config: &Config) -> Result<(), String> {
    if config.objectives.is_empty() {
        return Err("invalid config: `objectives` is empty".into());
    }
    if !(0.0..=1.0).contains(&config.warn_score)
        || !(0.0..=1.0).contains(&config.pass_score)
        || config.warn_score > config.pass_score
    {
        return Err("invalid config: scores must satisfy 0 ≤ warn-score ≤ pass-score ≤ 1".into());
    }
    for objective in &config.objectives {
        let ordered = match objective.direction {
            Direction::Below => objective.pass <= objective.warn,
            Direction::Above => objective.pass >= objective.warn,
        };
        if !ordered {
            return Err(format!(
                "invalid config: objective {}: `warn` must be looser than `pass`",
                objective.metric
            ));
        }
        if objective.weight.is_nan() || objective.weight <= 0.0 {
            return Err(format!(
                "invalid config: objective {}: weight must be positive",
                objective.metric
            ));
        }
    }
    Ok(())
}

pub fn check(change: &Change, config: &str) -> Result<Report, String> {
    let config: Config = parse_config(config)?;
    validate_config(&config)?;
    let mut graded = Vec::new();
    let mut missing = Vec::new();
    for objective in &config.objectives {
        match change
            .metrics
            .get(&objective.metric)
            .copied()
            .filter(|v| v.is_finite())
        {
            Some(value) => graded.push((objective, value, objective.grade(value))),
            None => missing.push(objective),
        }
    }
    let key_failed = graded.iter().any(|(o, _, g)| o.key && *g == Grade::Fail);
    let total: f64 = config.objectives.iter().map(|o| o.weight).sum();
    let earned: f64 = graded
        .iter()
        .map(|(o, _, g)| match g {
            Grade::Pass => o.weight,
            Grade::Warn => o.weight / 2.0,
            Grade::Fail => 0.0,
        })
        .sum();
    let score = if total > 0.0 { earned / total } else { 0.0 };
    let key_warned = graded.iter().any(|(o, _, g)| o.key && *g == Grade::Warn);
    let outcome = if key_failed {
        Outcome::Fail
    } else if !missing.is_empty() {
        Outcome::Inconclusive
    } else if score < config.warn_score {
        Outcome::Fail
    } else if score < config.pass_score || key_warned {
        Outcome::Warn
    } else {
        Outcome::Pass
    };

    let mut findings = Vec::new();
    for (objective, value, grade) in &graded {
        let (rule, severity) = match (grade, outcome) {
            (Grade::Fail, Outcome::Fail) => ("slo/objective-failed", Severity::Error),
            (Grade::Fail, _) => ("slo/objective-failed", Severity::Warning),
            (Grade::Warn, Outcome::Pass) => ("slo/objective-warned", Severity::Info),
            (Grade::Warn, _) => ("slo/objective-warned", Severity::Warning),
            (Grade::Pass, _) => ("slo/objective-met", Severity::Info),
        };
        let key = if objective.key { "key objective " } else { "" };
        findings.push(Finding::new(
            rule,
            severity,
            format!(
                "{key}{} = {value}: pass {} {}, warn {} {} (weight {})",
                objective.metric,
                objective.comparison(),
                objective.pass,
                objective.comparison(),
                objective.warn,
                objective.weight
            ),
        ));
    }
    for objective in &missing {
        findings.push(
            Finding::new("slo/missing-metric", Severity::Warning, format!("metric {} was not observed", objective.metric))
                .hint("the gate cannot pass without it; check that the metrics snapshot covers this checkpoint"),
        );
    }
    let summary = match outcome {
        Outcome::Inconclusive => format!(
            "{} of {} metric(s) missing",
            missing.len(),
            config.objectives.len()
        ),
        _ if key_failed => "a key objective failed".to_owned(),
        _ => format!(
            "score {:.2} (pass ≥ {}, warn ≥ {})",
            score, config.pass_score, config.warn_score
        ),
    };
    Ok(Report {
        outcome,
        findings,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(metrics: &[(&str, f64)], config: &str) -> Report {
        let change = Change {
            documents: Vec::new(),
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        };
        check(&change, config).unwrap()
    }

    const CONFIG: &str = r#"{"objectives": [
        {"metric": "error-rate", "pass": 0.01, "warn": 0.02, "key": true, "weight": 2},
        {"metric": "availability", "pass": 0.999, "warn": 0.99, "direction": "above"}]}"#;

    #[test]
    fn healthy_metrics_pass() {
        assert_eq!(
            run(&[("error-rate", 0.001), ("availability", 0.9995)], CONFIG).outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn a_failing_key_objective_fails_even_with_a_metric_missing() {
        assert_eq!(run(&[("error-rate", 0.5)], CONFIG).outcome, Outcome::Fail);
    }

    #[test]
    fn a_missing_metric_is_inconclusive_not_a_pass() {
        let report = run(&[("error-rate", 0.001)], CONFIG);
        assert_eq!(report.outcome, Outcome::Inconclusive);
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.rule == "slo/missing-metric")
        );
    }

    #[test]
    fn a_non_key_failure_only_lowers_the_score() {
        // error-rate passes (2 of 3 weight) and availability fails: 0.67 → warn.
        assert_eq!(
            run(&[("error-rate", 0.001), ("availability", 0.9)], CONFIG).outcome,
            Outcome::Warn
        );
    }
}
