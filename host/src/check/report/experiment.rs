//! Experiments in reports: the human summary of one experiment (shared by
//! `cairn check` and `cairn proxy`) and its JSON form in the check report.
//! Every field from a plan, a plugin or a decision log is shown on one line,
//! escaped (see [`crate::escape`]).

use std::fmt::Write;

use serde_json::{Value, json};

use crate::check::experiment::{ExperimentResult, workload_metrics};
use crate::check::gate::Counted;
use crate::escape::single_line as safe;
use crate::proxy::{ExperimentReport, StopReason};

/// A few lines about one experiment: what ran, why it ended, what clients
/// saw, how they retried, and any guardrail breach.
pub fn experiment_summary(report: &ExperimentReport) -> String {
    let stats = &report.stats;
    let mut out = String::new();
    let digest = report
        .decider
        .digest
        .as_deref()
        .map(|d| d.trim_start_matches("sha256:"))
        .and_then(|d| d.get(..12))
        .map_or(std::borrow::Cow::Borrowed(""), safe);
    let _ = writeln!(
        out,
        "experiment {} (injector {} {digest}, seed {}, upstream {}): {:.1} s, ended: {}",
        safe(&report.name),
        safe(&report.decider.name),
        report.seed,
        safe(&report.upstream),
        report.ended_unix_ms.saturating_sub(report.started_unix_ms) as f64 / 1000.0,
        safe(&report.stop_reason.to_string()),
    );
    let faults: Vec<String> = stats
        .faults
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(kind, count)| format!("{} {count}", safe(kind)))
        .collect();
    let skipped: Vec<String> = stats
        .skipped
        .iter()
        .filter(|(_, count)| **count > 0)
        .map(|(reason, count)| format!("{} {count}", safe(reason)))
        .collect();
    let _ = writeln!(
        out,
        "  requests {} · asked the injector {} · faulted {}{} · injector failures {}{}",
        stats.requests,
        stats.decided,
        stats.faulted,
        if faults.is_empty() {
            String::new()
        } else {
            format!(" ({})", faults.join(", "))
        },
        stats.plugin_failures,
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" · left untouched: {}", skipped.join(", "))
        },
    );
    let statuses: Vec<String> = stats
        .statuses
        .iter()
        .map(|(status, count)| format!("{} ×{count}", safe(status)))
        .collect();
    let ms = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
    let _ = writeln!(
        out,
        "  clients saw: {} · errors {}{} · latency p50 {} p99 {}",
        if statuses.is_empty() {
            "no responses".to_owned()
        } else {
            statuses.join(", ")
        },
        stats.client_errors,
        stats
            .error_rate()
            .map(|rate| format!(" ({:.1}%)", rate * 100.0))
            .unwrap_or_default(),
        ms(stats.latency_p50_ms),
        ms(stats.latency_p99_ms),
    );
    if stats.logical_requests > 0 {
        let logical = stats.logical_requests as f64;
        let _ = writeln!(
            out,
            "  retries: {} logical request(s), {:.2} attempts each (max {}), gaps min {} median {}, \
             amplification {:.2}",
            stats.logical_requests,
            stats.requests as f64 / logical,
            stats.attempts_max,
            ms(stats.retry_gap_min_ms),
            ms(stats.retry_gap_median_ms),
            stats.upstream_requests as f64 / logical,
        );
    }
    for breach in &report.breaches {
        let _ = writeln!(
            out,
            "  ✗ guardrail {} breached at {:.1} s: {:.3} > {:.3} over {} request(s) in the window",
            safe(&breach.guardrail),
            breach.at_ms as f64 / 1000.0,
            breach.observed,
            breach.limit,
            breach.window_requests,
        );
    }
    if let Some(error) = &report.decision_log_error {
        let _ = writeln!(
            out,
            "  ! the decision log could not be written: {}",
            safe(error)
        );
    } else if let Some(path) = &report.decision_log {
        let _ = writeln!(
            out,
            "  decision log: {} (replay: cairn experiment replay {})",
            safe(&path.display().to_string()),
            safe(&path.display().to_string())
        );
    }
    out
}

/// An experiment of a checkpoint, with its workload, for people.
pub(super) fn human(result: &ExperimentResult, counted: &Counted) -> String {
    let mut out = String::new();
    for line in experiment_summary(&result.report).lines() {
        let _ = writeln!(out, "  {line}");
    }
    if let Some(workload) = &result.workload {
        let _ = writeln!(
            out,
            "    workload: {} logical request(s), {} attempt(s); {} succeeded, {} failed after retries",
            workload.logical_requests, workload.attempts, workload.successes, workload.failures,
        );
    }
    if let Some(approval) = &result.approval {
        let _ = writeln!(
            out,
            "    approved by {} (at {} ms since the epoch)",
            safe(&approval.by),
            approval.at_unix_ms
        );
    }
    if matches!(result.report.stop_reason, StopReason::PluginFailures { .. }) {
        let _ = writeln!(
            out,
            "    the injector failed too often; the experiment stopped injecting and counts as {}",
            counted.counts_as
        );
    }
    out
}

/// An experiment of a checkpoint, for `--format json`.
pub(super) fn json(result: &ExperimentResult, counted: &Counted) -> Value {
    json!({
        "name": result.name,
        "injector": result.injector,
        "sha256": result.digest.to_hex(),
        "seed": result.seed,
        "upstream": result.upstream,
        "outcome": counted.outcome,
        "counts-as": counted.counts_as,
        "approval": result.approval,
        "report": result.report,
        "workload": result.workload,
        "metrics": result
            .metrics()
            .into_iter()
            .map(|metric| (metric.name, json!(metric.value)))
            .collect::<serde_json::Map<String, Value>>(),
        "workload-metrics": result.workload.as_ref().map(|w| {
            workload_metrics(w)
                .into_iter()
                .map(|(name, value)| (name, json!(value)))
                .collect::<serde_json::Map<String, Value>>()
        }),
    })
}
