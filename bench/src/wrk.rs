//! wrk, the HTTP load generator of the fault-proxy section: one bounded run
//! (`wrk -tT -cC -dDs --latency URL`) and the parsing of what it prints
//! (requests/s, latency p50 and p99, errors). Anything unexpected in its
//! output is an error that quotes the output.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::tools::{ChildGuard, wait_bounded};

/// One load level: wrk's threads and connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub requests_per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// The wrk binary.
#[derive(Debug, Clone)]
pub struct Wrk {
    pub path: PathBuf,
}

impl Wrk {
    /// Runs wrk against `url` for `seconds` (wrk takes whole seconds) at
    /// `load`, waits at most `seconds` + 20 s, and parses its report. Non-2xx
    /// responses and socket errors make the run an error: the figures
    /// would not be those of a working hop.
    pub fn run(&self, url: &str, load: Load, seconds: u32) -> anyhow::Result<WrkRun> {
        let mut command = Command::new(&self.path);
        command
            .arg(format!("-t{}", load.threads))
            .arg(format!("-c{}", load.connections))
            .arg(format!("-d{seconds}s"))
            .arg("--timeout")
            .arg("5s")
            .arg("--latency")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .with_context(|| format!("cannot run {}", self.path.display()))?;
        let mut guard = ChildGuard::new("wrk", child);
        let bound = Duration::from_secs(u64::from(seconds) + 20);
        let status = wait_bounded(&mut guard, bound)?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(out) = guard.child_mut().stdout.as_mut() {
            out.read_to_string(&mut stdout)
                .context("cannot read wrk's output")?;
        }
        if let Some(err) = guard.child_mut().stderr.as_mut() {
            let _ = err.read_to_string(&mut stderr);
        }
        if !status.success() {
            bail!(
                "wrk against {url} exited with {status}: {}{}",
                stdout.trim(),
                stderr.trim()
            );
        }
        parse(&stdout)
            .with_context(|| format!("wrk against {url} ({} connections)", load.connections))
    }

    /// wrk's version line (`wrk 4.1.0 [epoll] …`), for the section's text.
    pub fn version(&self) -> String {
        version_line(&self.path, "-v")
    }
}

/// The first line a tool prints for `flag` (stdout, else stderr), without
/// a trailing copyright; `unknown` when it cannot be run.
pub fn version_line(tool: &Path, flag: &str) -> String {
    let Ok(output) = Command::new(tool).arg(flag).stdin(Stdio::null()).output() else {
        return "unknown".to_owned();
    };
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().next().unwrap_or("unknown").trim();
    line.split(" Copyright")
        .next()
        .unwrap_or(line)
        .split(" - http")
        .next()
        .unwrap_or(line)
        .trim()
        .to_owned()
}

/// Parses wrk's report (with `--latency`).
pub fn parse(output: &str) -> anyhow::Result<WrkRun> {
    let unexpected = |what: &str| anyhow::anyhow!("{what} in wrk's output:\n{}", output.trim_end());
    let mut requests = None;
    let mut requests_per_second = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut in_distribution = false;
    for line in output.lines() {
        let line = line.trim();
        if line == "Latency Distribution" {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            if let Some((percent, value)) = line.split_once(char::is_whitespace) {
                let value = value.trim();
                match percent {
                    "50%" => p50 = Some(parse_time(value).ok_or_else(|| unexpected("a bad p50"))?),
                    "99%" => p99 = Some(parse_time(value).ok_or_else(|| unexpected("a bad p99"))?),
                    "75%" | "90%" => {}
                    _ => in_distribution = false,
                }
            } else {
                in_distribution = false;
            }
        }
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            requests_per_second = Some(
                rest.trim()
                    .parse::<f64>()
                    .map_err(|_| unexpected("a bad Requests/sec"))?,
            );
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            requests = Some(
                count
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| unexpected("a bad request count"))?,
            );
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            bail!(
                "{} responses were not 2xx or 3xx:\n{}",
                rest.trim(),
                output.trim_end()
            );
        } else if line.starts_with("Socket errors:") {
            bail!("wrk saw socket errors ({line}):\n{}", output.trim_end());
        }
    }
    let run = WrkRun {
        requests: requests.ok_or_else(|| unexpected("no request count"))?,
        requests_per_second: requests_per_second.ok_or_else(|| unexpected("no Requests/sec"))?,
        p50: p50.ok_or_else(|| unexpected("no 50% latency"))?,
        p99: p99.ok_or_else(|| unexpected("no 99% latency"))?,
    };
    if run.requests == 0 || !run.requests_per_second.is_finite() || run.requests_per_second <= 0.0 {
        return Err(unexpected("no request completed"));
    }
    Ok(run)
}

/// A wrk duration: `52.00us`, `1.20ms`, `1.00s`, `2.00m`, `1.00h`.
fn parse_time(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let micros = match unit {
        "us" => number,
        "ms" => number * 1e3,
        "s" => number * 1e6,
        "m" => number * 60e6,
        "h" => number * 3600e6,
        _ => return None,
    };
    (micros.is_finite() && micros >= 0.0).then(|| Duration::from_nanos((micros * 1e3) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 1s test @ http://127.0.0.1:18081/
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    52.31us   10.00us   1.20ms   90.00%
    Req/Sec    18.20k     1.00k   20.00k    70.00%
  Latency Distribution
     50%   49.00us
     75%   55.00us
     90%   60.00us
     99%    1.25ms
  18200 requests in 1.00s, 5.00MB read
Requests/sec:  18193.52
Transfer/sec:      5.00MB
";

    #[test]
    fn a_report_gives_rate_count_and_percentiles() {
        let run = parse(REPORT).expect("parses");
        assert_eq!(run.requests, 18200);
        assert!((run.requests_per_second - 18193.52).abs() < 1e-6);
        assert_eq!(run.p50, Duration::from_micros(49));
        assert_eq!(run.p99, Duration::from_micros(1250));
    }

    #[test]
    fn errors_and_surprises_are_refused_with_the_output_quoted() {
        let non_2xx = REPORT.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 12\nRequests/sec",
        );
        let err = parse(&non_2xx).expect_err("non-2xx refused").to_string();
        assert!(err.contains("12 responses were not 2xx"), "{err}");
        let socket = REPORT.replace(
            "Requests/sec",
            "  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec",
        );
        assert!(parse(&socket).is_err());
        let err = parse("unable to connect to 127.0.0.1:1 Connection refused")
            .expect_err("garbage refused")
            .to_string();
        assert!(err.contains("Connection refused"), "{err}");
        let bad_unit = REPORT.replace("49.00us", "49.00xs");
        assert!(parse(&bad_unit).is_err());
    }

    #[test]
    fn wrk_times_read_in_every_unit() {
        assert_eq!(parse_time("52.00us"), Some(Duration::from_micros(52)));
        assert_eq!(parse_time("1.50ms"), Some(Duration::from_micros(1500)));
        assert_eq!(parse_time("2.00s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_time("1.00m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_time("nonsense"), None);
        assert_eq!(parse_time("12"), None);
    }
}
