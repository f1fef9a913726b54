//! Guardrails: a sliding window over responses as clients saw them (error
//! share and p99 latency), evaluated on every completed request once the
//! window holds enough of them; a [`Breach`] stops the experiment.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::proxy::config::Guardrails;

/// Most samples a window keeps; past it the oldest go first (at very high
/// rates the window then covers less than its duration).
pub const MAX_WINDOW_SAMPLES: usize = 50_000;

/// A guardrail crossed: which, the figure observed over the window, the
/// limit, how many requests the window held, and when (ms since start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Breach {
    /// `error-rate` or `latency-p99-ms`.
    pub guardrail: String,
    pub observed: f64,
    pub limit: f64,
    pub window_requests: u64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    latency: Duration,
    error: bool,
}

/// The window's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowFigures {
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub p99_latency: Duration,
}

/// The sliding window of one experiment.
#[derive(Debug)]
pub struct GuardrailWindow {
    guardrails: Guardrails,
    samples: VecDeque<Sample>,
    errors: u64,
}

impl GuardrailWindow {
    pub fn new(guardrails: Guardrails) -> GuardrailWindow {
        GuardrailWindow {
            guardrails,
            samples: VecDeque::new(),
            errors: 0,
        }
    }

    /// Drops samples older than `cutoff`, and the oldest past the cap.
    fn evict(&mut self, cutoff: Option<Instant>) {
        while let Some(oldest) = self.samples.front() {
            let expired = cutoff.is_some_and(|cutoff| oldest.at < cutoff);
            if !expired && self.samples.len() < MAX_WINDOW_SAMPLES {
                break;
            }
            if oldest.error {
                self.errors -= 1;
            }
            self.samples.pop_front();
        }
    }

    /// Adds a completed request and evaluates the guardrails; returns the
    /// ones breached (`elapsed_ms` dates them).
    pub fn record(
        &mut self,
        at: Instant,
        latency: Duration,
        error: bool,
        elapsed_ms: u64,
    ) -> Vec<Breach> {
        self.evict(at.checked_sub(self.guardrails.window));
        self.samples.push_back(Sample { at, latency, error });
        if error {
            self.errors += 1;
        }
        let mut breaches = Vec::new();
        if (self.samples.len() as u64) < u64::from(self.guardrails.min_requests) {
            return breaches;
        }
        if self.guardrails.max_error_rate.is_none() && self.guardrails.max_p99_latency.is_none() {
            return breaches;
        }
        let figures = self.figures();
        if let Some(limit) = self.guardrails.max_error_rate
            && figures.error_rate > limit
        {
            breaches.push(Breach {
                guardrail: "error-rate".to_owned(),
                observed: figures.error_rate,
                limit,
                window_requests: figures.requests,
                at_ms: elapsed_ms,
            });
        }
        if let Some(limit) = self.guardrails.max_p99_latency
            && figures.p99_latency > limit
        {
            breaches.push(Breach {
                guardrail: "latency-p99-ms".to_owned(),
                observed: millis_f64(figures.p99_latency),
                limit: millis_f64(limit),
                window_requests: figures.requests,
                at_ms: elapsed_ms,
            });
        }
        breaches
    }

    /// Requests, errors, error share and p99 (nearest rank) in the window.
    pub fn figures(&self) -> WindowFigures {
        let requests = self.samples.len() as u64;
        if requests == 0 {
            return WindowFigures {
                requests: 0,
                errors: 0,
                error_rate: 0.0,
                p99_latency: Duration::ZERO,
            };
        }
        let mut latencies: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        let rank = nearest_rank(latencies.len(), 0.99);
        let (_, p99, _) = latencies.select_nth_unstable(rank);
        WindowFigures {
            requests,
            errors: self.errors,
            error_rate: self.errors as f64 / requests as f64,
            p99_latency: *p99,
        }
    }
}

/// The 0-based index of quantile `q` by nearest rank in `n` sorted values.
pub fn nearest_rank(n: usize, q: f64) -> usize {
    let rank = (q * n as f64).ceil() as usize;
    rank.clamp(1, n.max(1)) - 1
}

pub fn millis_f64(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guardrails(min: u32, rate: Option<f64>, p99_ms: Option<u64>) -> Guardrails {
        Guardrails {
            window: Duration::from_secs(1),
            min_requests: min,
            max_error_rate: rate,
            max_p99_latency: p99_ms.map(Duration::from_millis),
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn nothing_is_judged_before_min_requests() {
        let mut window = GuardrailWindow::new(guardrails(5, Some(0.1), None));
        let t0 = Instant::now();
        for i in 0..4 {
            assert!(window.record(t0 + MS(i), MS(1), true, i).is_empty());
        }
        let breaches = window.record(t0 + MS(4), MS(1), true, 4);
        assert_eq!(
            breaches,
            vec![Breach {
                guardrail: "error-rate".into(),
                observed: 1.0,
                limit: 0.1,
                window_requests: 5,
                at_ms: 4,
            }]
        );
    }

    #[test]
    fn error_rate_is_over_the_sliding_window_only() {
        let mut window = GuardrailWindow::new(guardrails(4, Some(0.5), None));
        let t0 = Instant::now();
        // Three errors early, then they slide out of the 1 s window.
        for i in 0..3 {
            window.record(t0 + MS(i), MS(1), true, 0);
        }
        for i in 0..4 {
            let breaches = window.record(t0 + MS(1500 + i), MS(1), false, 0);
            assert!(breaches.is_empty(), "{breaches:?}");
        }
        let figures = window.figures();
        assert_eq!((figures.requests, figures.errors), (4, 0));
        // 2 errors of 6 = 0.33: under 0.5; 4 of 8 = 0.5: not over; 5 of 9 is.
        window.record(t0 + MS(1600), MS(1), true, 0);
        assert!(window.record(t0 + MS(1601), MS(1), true, 0).is_empty());
        window.record(t0 + MS(1602), MS(1), true, 0);
        assert!(window.record(t0 + MS(1603), MS(1), true, 0).is_empty());
        let breaches = window.record(t0 + MS(1604), MS(1), true, 1604);
        assert_eq!(breaches.len(), 1);
        assert!((breaches[0].observed - 5.0 / 9.0).abs() < 1e-9);
        assert_eq!(breaches[0].window_requests, 9);
    }

    #[test]
    fn p99_is_the_nearest_rank_of_the_window() {
        assert_eq!(nearest_rank(100, 0.99), 98);
        assert_eq!(nearest_rank(1, 0.99), 0);
        assert_eq!(nearest_rank(10, 0.5), 4);
        let mut window = GuardrailWindow::new(guardrails(100, None, Some(50)));
        let t0 = Instant::now();
        // 99 fast requests and one slow: p99 (rank 99 of 100) is fast.
        for i in 0..99 {
            assert!(window.record(t0 + MS(i), MS(10), false, 0).is_empty());
        }
        assert!(window.record(t0 + MS(99), MS(500), false, 0).is_empty());
        assert_eq!(window.figures().p99_latency, MS(10));
        // A second slow one puts p99 over the limit.
        let breaches = window.record(t0 + MS(100), MS(400), false, 100);
        assert_eq!(breaches.len(), 1);
        assert_eq!(breaches[0].guardrail, "latency-p99-ms");
        assert_eq!(breaches[0].observed, 400.0);
        assert_eq!(breaches[0].limit, 50.0);
    }

    #[test]
    fn the_window_is_capped() {
        let mut window = GuardrailWindow::new(Guardrails {
            window: Duration::from_secs(3600),
            ..guardrails(1, None, None)
        });
        let t0 = Instant::now();
        for i in 0..(MAX_WINDOW_SAMPLES as u64 + 10) {
            window.record(t0 + Duration::from_micros(i), MS(1), i % 2 == 0, 0);
        }
        let figures = window.figures();
        assert_eq!(figures.requests, MAX_WINDOW_SAMPLES as u64);
        assert_eq!(figures.errors, MAX_WINDOW_SAMPLES as u64 / 2);
    }
}
