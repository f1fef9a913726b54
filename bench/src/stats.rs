//! Samples of one measurement and their summary: median and p99 by nearest
//! rank, and how long to keep sampling (a [`Budget`]).

use std::hint::black_box;
use std::time::{Duration, Instant};

/// How long to sample one measurement: at least `min` samples, then more
/// until `time` has passed or `max` samples are in.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub time: Duration,
    pub min: usize,
    pub max: usize,
}

impl Budget {
    pub const fn new(time: Duration, min: usize, max: usize) -> Budget {
        Budget { time, min, max }
    }
}

/// Measured values of one measurement, in the order taken.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<Duration>,
}

impl Samples {
    pub fn from_values(values: Vec<Duration>) -> Samples {
        Samples { values }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at percentile `p` (0 < p ≤ 100) by nearest rank; zero when
    /// there are no samples.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.values.clone();
        sorted.sort_unstable();
        let Some(last) = sorted.len().checked_sub(1) else {
            return Duration::ZERO;
        };
        // Nearest rank: the smallest value with at least p % of the samples
        // at or below it.
        let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
        sorted[rank.saturating_sub(1).min(last)]
    }

    pub fn median(&self) -> Duration {
        self.percentile(50.0)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }

    pub fn max(&self) -> Duration {
        self.values.iter().copied().max().unwrap_or_default()
    }
}

/// Times each call of `operation` on its own, after a warm-up of a tenth of
/// the budget; stops at the first error.
pub fn time_each<T>(
    budget: Budget,
    mut operation: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<Samples> {
    let mut timed = || {
        let start = Instant::now();
        black_box(operation()?);
        Ok(start.elapsed())
    };
    let warm_up = Budget::new(budget.time / 10, budget.min.div_ceil(10), budget.max / 10);
    collect(warm_up, &mut timed)?;
    collect(budget, timed)
}

/// Times several operations that are compared with each other, taking one
/// sample of each in turn (a, b, c, a, b, c, …) after a warm-up of each.
/// On a shared, noisy machine a burst of steal time then lands on all of
/// them alike instead of on whichever block was running; the ratios of
/// their medians are what the comparisons quote. The budget is per
/// operation.
/// Operations of different types go in as `&mut dyn FnMut`s.
pub fn time_interleaved(
    budget: Budget,
    operations: &mut [impl FnMut() -> anyhow::Result<()>],
) -> anyhow::Result<Vec<Samples>> {
    let timed = |operation: &mut dyn FnMut() -> anyhow::Result<()>| {
        let start = Instant::now();
        operation()?;
        anyhow::Ok(start.elapsed())
    };
    let warm_up = budget.min.div_ceil(10).max(1);
    for operation in operations.iter_mut() {
        for _ in 0..warm_up {
            timed(operation)?;
        }
    }
    let mut samples = vec![Samples::default(); operations.len()];
    let start = Instant::now();
    let mut rounds = 0;
    // The time budget covers all operations together.
    let time = budget.time * u32::try_from(operations.len()).unwrap_or(u32::MAX);
    while rounds < budget.max && (rounds < budget.min || start.elapsed() < time) {
        for (operation, samples) in operations.iter_mut().zip(samples.iter_mut()) {
            samples.values.push(timed(operation)?);
        }
        rounds += 1;
    }
    Ok(samples)
}

/// Takes samples that `measure` computes itself (an overshoot, a rate);
/// stops at the first error.
pub fn collect(
    budget: Budget,
    mut measure: impl FnMut() -> anyhow::Result<Duration>,
) -> anyhow::Result<Samples> {
    let start = Instant::now();
    let mut values = Vec::with_capacity(budget.min.max(16));
    while values.len() < budget.max && (values.len() < budget.min || start.elapsed() < budget.time)
    {
        values.push(measure()?);
    }
    Ok(Samples { values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_timing_takes_one_sample_of_each_per_round_and_stops_at_errors() {
        let mut order = Vec::new();
        let order_cell = std::cell::RefCell::new(&mut order);
        let mut a = || {
            order_cell.borrow_mut().push('a');
            anyhow::Ok(())
        };
        let mut b = || {
            order_cell.borrow_mut().push('b');
            anyhow::Ok(())
        };
        let operations: &mut [&mut dyn FnMut() -> anyhow::Result<()>] = &mut [&mut a, &mut b];
        let samples = time_interleaved(Budget::new(Duration::ZERO, 3, 3), operations).unwrap();
        assert_eq!(samples.len(), 2);
        assert!(samples.iter().all(|s| s.len() == 3));
        // One warm-up call each, then a and b alternate.
        assert_eq!(order.iter().collect::<String>(), "abababab");

        let mut failing = || anyhow::bail!("verdicts differ");
        assert!(time_interleaved(Budget::new(Duration::ZERO, 3, 3), &mut [&mut failing]).is_err());
    }

    fn micros(values: &[u64]) -> Samples {
        Samples::from_values(values.iter().copied().map(Duration::from_micros).collect())
    }

    #[test]
    fn median_and_p99_are_nearest_rank_values() {
        let samples = micros(&(1..=100).rev().collect::<Vec<_>>());
        assert_eq!(samples.median(), Duration::from_micros(50));
        assert_eq!(samples.p99(), Duration::from_micros(99));
        assert_eq!(samples.max(), Duration::from_micros(100));
        // With fewer than 100 samples p99 is the largest.
        assert_eq!(micros(&[3, 1, 2]).p99(), Duration::from_micros(3));
        assert_eq!(micros(&[3, 1, 2]).median(), Duration::from_micros(2));
        assert_eq!(micros(&[]).median(), Duration::ZERO);
    }

    #[test]
    fn a_budget_takes_at_least_min_and_at_most_max_samples() {
        let zero = || Ok(Duration::ZERO);
        let few = collect(Budget::new(Duration::ZERO, 5, 100), zero).expect("no error");
        assert_eq!(few.len(), 5);
        let capped = collect(Budget::new(Duration::from_secs(60), 1, 7), zero).expect("no error");
        assert_eq!(capped.len(), 7);
    }

    #[test]
    fn sampling_stops_at_the_first_error() {
        let mut calls = 0;
        let result = time_each(Budget::new(Duration::from_secs(60), 100, 1000), || {
            calls += 1;
            anyhow::ensure!(calls < 4, "call {calls} failed");
            Ok(())
        });
        assert_eq!(result.expect_err("fails").to_string(), "call 4 failed");
    }
}
