//! Section 6: the fault proxy's pass-through cost. The same upstream reached
//! directly, through haproxy, through noxious and through cairn's fault
//! proxy with a Rust and a Python pass-through injector, loaded by wrk at 1
//! and 64 connections, the hops interleaved round-robin; the table of
//! requests/s and latency added over direct, and the targets judged on it.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use cairn_tests::guests;

use crate::facts;
use crate::hops::{BODY, CairnDecider, CairnProxy, Haproxy, Noxious, UpstreamServer};
use crate::report::{Section, Target, show};
use crate::sections::{Bench, Mode, Outcome};
use crate::tools::{find_tool, http_get};
use crate::wrk::{Load, Wrk, WrkRun, version_line};

const TITLE: &str = "6. Fault proxy: cairn vs direct, haproxy, noxious";

/// The two load levels: latency at one connection, throughput at 64.
const LOADS: [Load; 2] = [
    Load {
        threads: 1,
        connections: 1,
    },
    Load {
        threads: 2,
        connections: 64,
    },
];

/// The targets of the issue for the Rust injector.
const MAX_ADDED_P50: Duration = Duration::from_micros(50);
const MIN_SHARE_OF_DIRECT: f64 = 0.80;

const INSTALL_HINT: &str = "run .ci/install-toolchains (as root: apt-get install haproxy wrk; \
     cargo install --path bench/noxious-proxy --locked --root target/bench-tools)";

/// How long to measure.
struct Plan {
    rounds: usize,
    seconds: u32,
    /// One run per hop at 64 connections before the first round (fills
    /// connection pools and instance slots); none in quick mode.
    warm_up_seconds: Option<u32>,
}

/// What stands between wrk and the upstream.
enum HopKind {
    Direct,
    Haproxy(Haproxy),
    Noxious(Noxious),
    Cairn(CairnProxy),
}

struct Hop {
    /// Short name in messages and the notes.
    key: &'static str,
    /// The table's first column.
    label: String,
    kind: HopKind,
    /// [load][round]
    runs: [Vec<WrkRun>; 2],
}

impl Hop {
    fn new(key: &'static str, label: impl Into<String>, kind: HopKind) -> Hop {
        Hop {
            key,
            label: label.into(),
            kind,
            runs: [Vec::new(), Vec::new()],
        }
    }

    /// Where clients connect.
    fn addr(&self, upstream: &UpstreamServer) -> SocketAddr {
        match &self.kind {
            HopKind::Direct => upstream.addr(),
            HopKind::Haproxy(hop) => hop.addr(),
            HopKind::Noxious(hop) => hop.addr(),
            HopKind::Cairn(hop) => hop.addr(),
        }
    }

    /// One wrk run through this hop, checked: every response came from
    /// the upstream, and through cairn every request was decided by the
    /// plugin without a failure.
    fn measure(
        &mut self,
        wrk: &Wrk,
        upstream: &UpstreamServer,
        load: Load,
        seconds: u32,
    ) -> anyhow::Result<WrkRun> {
        match &mut self.kind {
            HopKind::Haproxy(hop) => hop.ensure_running()?,
            HopKind::Noxious(hop) => hop.ensure_running()?,
            HopKind::Direct | HopKind::Cairn(_) => {}
        }
        let cairn_before = match &self.kind {
            HopKind::Cairn(hop) => hop.snapshot(),
            _ => None,
        };
        let served_before = upstream.served();
        let url = format!("http://{}/", self.addr(upstream));
        let run = wrk
            .run(&url, load, seconds)
            .with_context(|| format!("through {}", self.key))?;
        let served = upstream.served() - served_before;
        ensure!(
            served >= run.requests,
            "through {}: wrk counted {} responses but the upstream served {served}",
            self.key,
            run.requests
        );
        if let (HopKind::Cairn(hop), Some(before)) = (&self.kind, cairn_before) {
            let after = hop.snapshot().context("the experiment has finished")?;
            let decided = after.decided - before.decided;
            ensure!(
                after.plugin_failures == 0,
                "through {}: the plugin failed {} times: {:?}",
                self.key,
                after.plugin_failures,
                after.plugin_failures_by_kind
            );
            ensure!(
                decided >= run.requests && after.upstream_errors == before.upstream_errors,
                "through {}: wrk counted {} responses, the plugin decided {decided}, \
                 {} upstream errors",
                self.key,
                run.requests,
                after.upstream_errors - before.upstream_errors
            );
        }
        Ok(run)
    }
}

/// Section 6: the pass-through cost of cairn's fault proxy against direct,
/// haproxy and noxious.
pub fn section(bench: &Bench) -> anyhow::Result<Outcome> {
    let plan = match bench.mode {
        Mode::Full => Plan {
            rounds: 5,
            seconds: 3,
            warm_up_seconds: Some(2),
        },
        Mode::Quick => Plan {
            rounds: 1,
            seconds: 1,
            warm_up_seconds: None,
        },
    };
    let quick = bench.mode == Mode::Quick;
    let mut skipped = Vec::new();

    let Some(wrk) = find_tool("wrk", None).map(|path| Wrk { path }) else {
        if quick {
            let mut section = Section::new(TITLE, "", &[]);
            section.about =
                format!("Skipped: wrk, the load generator, is not installed ({INSTALL_HINT}).");
            return Ok((section, Vec::new()));
        }
        bail!("wrk is not installed; {INSTALL_HINT}");
    };
    let mut require = |what: &str, found: bool| -> anyhow::Result<bool> {
        if found {
            return Ok(true);
        }
        if quick {
            skipped.push(format!("{what} ({INSTALL_HINT})"));
            return Ok(false);
        }
        bail!("{what}; {INSTALL_HINT}, or see BENCHMARKS.md")
    };
    let haproxy_bin = find_tool("haproxy", None);
    require("haproxy is not installed", haproxy_bin.is_some())?;
    let noxious_bin = find_tool("noxious-proxy", Some(Path::new(facts::NOXIOUS_PROXY)));
    require(
        "noxious-proxy (bench/noxious-proxy) is not installed",
        noxious_bin.is_some(),
    )?;
    let python_guest = facts::PASSTHROUGH_INJECTOR_PY;
    require(
        "the Python pass-through injector (plugin-sdk/python/tests/passthrough) was not built",
        python_guest.is_some(),
    )?;

    let upstream = UpstreamServer::start(bench.cores)?;
    // cairn's proxy runs as `cairn` runs it: a tokio runtime with one
    // worker per core. Declared before the hops, so it outlives them.
    let proxy_tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(bench.cores)
        .thread_name("bench-cairn-proxy")
        .enable_all()
        .build()
        .context("cannot start the proxy's tokio runtime")?;
    let load_plugin = |path: &str| {
        bench
            .runtime
            .load_file(Path::new(path), None)
            .with_context(|| format!("cannot load {path}"))
    };

    let mut hops = vec![Hop::new("direct", "direct (no proxy)", HopKind::Direct)];
    if let Some(binary) = &haproxy_bin {
        hops.push(Hop::new(
            "haproxy",
            "haproxy, HTTP proxy",
            HopKind::Haproxy(Haproxy::start(binary, upstream.addr(), bench.cores)?),
        ));
    }
    if let Some(binary) = &noxious_bin {
        hops.push(Hop::new(
            "noxious",
            "noxious, TCP proxy, no toxics",
            HopKind::Noxious(Noxious::start(binary, upstream.addr())?),
        ));
    }
    hops.push(Hop::new(
        "cairn-rust",
        "**cairn**, Rust pass-through injector",
        HopKind::Cairn(CairnProxy::start(
            &proxy_tokio,
            "bench-rust",
            CairnDecider::Plugin(load_plugin(guests::PASSTHROUGH_INJECTOR)?),
            upstream.addr(),
        )?),
    ));
    if let Some(guest) = python_guest {
        hops.push(Hop::new(
            "cairn-python",
            "cairn, Python pass-through injector",
            HopKind::Cairn(CairnProxy::start(
                &proxy_tokio,
                "bench-python",
                CairnDecider::Plugin(load_plugin(guest)?),
                upstream.addr(),
            )?),
        ));
    }
    // Not a peer: the same proxy deciding in the host, to tell its own
    // cost from the sandboxed decision's.
    hops.push(Hop::new(
        "cairn-no-plugin",
        "cairn, no plugin (a host closure passes)",
        HopKind::Cairn(CairnProxy::start(
            &proxy_tokio,
            "bench-no-plugin",
            CairnDecider::AlwaysPass,
            upstream.addr(),
        )?),
    ));

    // For profiling one hop: `CAIRN_BENCH_PROXY_HOPS=cairn-rust` keeps
    // direct and the hops named (comma-separated keys).
    if let Ok(keep) = std::env::var("CAIRN_BENCH_PROXY_HOPS") {
        hops.retain(|hop| hop.key == "direct" || keep.split(',').any(|key| key.trim() == hop.key));
        skipped.push(format!(
            "only direct and {keep} were measured (CAIRN_BENCH_PROXY_HOPS)"
        ));
    }
    // Every hop answers the upstream's body before anything is timed.
    for hop in &hops {
        let (status, body) =
            http_get(hop.addr(&upstream)).with_context(|| format!("through {}", hop.key))?;
        ensure!(
            status == 200 && body == BODY,
            "through {}: status {status} and a {}-byte body, expected 200 and the upstream's {} bytes",
            hop.key,
            body.len(),
            BODY.len()
        );
    }
    if let Some(seconds) = plan.warm_up_seconds {
        for hop in &mut hops {
            hop.measure(&wrk, &upstream, LOADS[1], seconds)
                .context("warming up")?;
        }
    }
    for round in 0..plan.rounds {
        if !quick {
            eprintln!("cairn-bench: proxy round {}/{}", round + 1, plan.rounds);
        }
        for (load_index, load) in LOADS.iter().enumerate() {
            // Round-robin, the first hop rotating from round to round.
            for offset in 0..hops.len() {
                let index = (round + offset) % hops.len();
                let hop = &mut hops[index];
                let run = hop.measure(&wrk, &upstream, *load, plan.seconds)?;
                hop.runs[load_index].push(run);
            }
        }
    }
    for hop in &mut hops {
        if let HopKind::Cairn(proxy) = &mut hop.kind {
            proxy
                .finish(&proxy_tokio)
                .with_context(|| format!("finishing {}", hop.key))?;
        }
    }
    let haproxy_version = haproxy_bin
        .as_deref()
        .map(|binary| version_line(binary, "-v"));
    let outcome = tabulate(
        bench,
        &plan,
        &hops,
        &wrk.version(),
        haproxy_version,
        &skipped,
    );
    // Processes killed, experiments and servers stopped.
    drop(hops);
    drop(proxy_tokio);
    drop(upstream);
    Ok(outcome)
}

/// Median of `values` (the lower middle for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Microseconds with a sign and a unit that fits: `+38.2 µs`, `-1.20 ms`.
fn signed(us: f64) -> String {
    if !us.is_finite() {
        return "n/a".to_owned();
    }
    let sign = if us < 0.0 { "-" } else { "+" };
    format!("{sign}{}", show(Duration::from_secs_f64(us.abs() / 1e6)))
}

fn percent(share: f64) -> String {
    if !share.is_finite() {
        "n/a".to_owned()
    } else if share < 0.1 {
        format!("{:.1} %", share * 100.0)
    } else {
        format!("{:.0} %", share * 100.0)
    }
}

/// The figures of one hop at one load: medians over rounds, and against
/// another hop the medians of the per-round differences and ratios.
struct Figures<'a> {
    runs: &'a [WrkRun],
}

impl Figures<'_> {
    fn rps(&self) -> f64 {
        median(self.runs.iter().map(|r| r.requests_per_second).collect())
    }
    fn p50(&self) -> f64 {
        median(self.runs.iter().map(|r| micros(r.p50)).collect())
    }
    fn p99(&self) -> f64 {
        median(self.runs.iter().map(|r| micros(r.p99)).collect())
    }
    fn paired(&self, other: &Figures<'_>, f: impl Fn(&WrkRun, &WrkRun) -> f64) -> f64 {
        median(
            self.runs
                .iter()
                .zip(other.runs)
                .map(|(a, b)| f(a, b))
                .collect(),
        )
    }
    /// Added p50 over `base`, µs.
    fn added_p50(&self, base: &Figures<'_>) -> f64 {
        self.paired(base, |a, b| micros(a.p50) - micros(b.p50))
    }
    /// The smallest and largest per-round added p50, µs.
    fn added_p50_range(&self, base: &Figures<'_>) -> (f64, f64) {
        self.runs
            .iter()
            .zip(base.runs)
            .map(|(a, b)| micros(a.p50) - micros(b.p50))
            .fold((f64::NAN, f64::NAN), |(low, high), d| {
                (low.min(d), high.max(d))
            })
    }
    fn added_p99(&self, base: &Figures<'_>) -> f64 {
        self.paired(base, |a, b| micros(a.p99) - micros(b.p99))
    }
    /// Requests/s as a share of `base`'s.
    fn rps_share(&self, base: &Figures<'_>) -> f64 {
        self.paired(base, |a, b| a.requests_per_second / b.requests_per_second)
    }
}

fn figures<'a>(hops: &'a [Hop], key: &str, load: usize) -> Option<Figures<'a>> {
    hops.iter().find(|hop| hop.key == key).map(|hop| Figures {
        runs: &hop.runs[load],
    })
}

fn tabulate(
    bench: &Bench,
    plan: &Plan,
    hops: &[Hop],
    wrk_version: &str,
    haproxy_version: Option<String>,
    skipped: &[String],
) -> Outcome {
    let mut section = Section::new(
        TITLE,
        &format!(
            "The same upstream (a hyper HTTP/1.1 server in the harness on 127.0.0.1, \
             keep-alive, a {}-byte body) reached directly and through each hop, all on \
             loopback: {}; noxious 1.0.4 (the Rust port of Toxiproxy: its proxy runner as \
             noxious-server runs it, `bench/noxious-proxy`), a TCP proxy with no toxics; \
             cairn's fault proxy (`cairn_host::proxy::Experiment`, blast radius 100 %, \
             default limits, no decision log) asking a fresh instance of a pass-through \
             injector about every request, Rust (`tests/guests/passthrough-injector`) or \
             Python (`plugin-sdk/python/tests/passthrough`, componentize-py), then forwarding \
             over its pooled keep-alive client; and, to split the cost, the same proxy with \
             a closure in the host deciding instead of a plugin. Load: {wrk_version}, `wrk -t1 -c1` and \
             `wrk -t2 -c64` with `--latency`, {} s per run; the hops take turns \
             (round-robin, the first hop rotating), {} round{}. Figures are medians over \
             the rounds; added latency and % of direct are medians of the per-round \
             differences and ratios against direct in the same round. The upstream (tokio, \
             {cores} workers), cairn's proxy (tokio, {cores} workers), the other proxies \
             and wrk share the machine's {cores} cores.",
            BODY.len(),
            match &haproxy_version {
                Some(version) => format!(
                    "{version} as a plain HTTP proxy (`mode http`, keep-alive to clients and \
                     to the upstream, {} threads, no logging)",
                    bench.cores
                ),
                None => "haproxy (not installed: skipped)".to_owned(),
            },
            plan.seconds,
            plan.rounds,
            if plan.rounds == 1 { "" } else { "s" },
            cores = bench.cores,
        ),
        &[
            "way",
            "connections",
            "requests/s",
            "% of direct",
            "p50",
            "p99",
            "added p50",
            "added p50, rounds' range",
            "added p99",
        ],
    );
    for (load_index, load) in LOADS.iter().enumerate() {
        let Some(direct) = figures(hops, "direct", load_index) else {
            continue;
        };
        for hop in hops {
            let own = Figures {
                runs: &hop.runs[load_index],
            };
            let is_direct = hop.key == "direct";
            section.row(vec![
                hop.label.clone(),
                load.connections.to_string(),
                format!("{:.0}", own.rps()),
                if is_direct {
                    "100 %".to_owned()
                } else {
                    percent(own.rps_share(&direct))
                },
                show(Duration::from_secs_f64(own.p50() / 1e6)),
                show(Duration::from_secs_f64(own.p99() / 1e6)),
                if is_direct {
                    "—".to_owned()
                } else {
                    signed(own.added_p50(&direct))
                },
                if is_direct {
                    "—".to_owned()
                } else {
                    let (low, high) = own.added_p50_range(&direct);
                    format!("{} … {}", signed(low), signed(high))
                },
                if is_direct {
                    "—".to_owned()
                } else {
                    signed(own.added_p99(&direct))
                },
            ]);
        }
    }

    let mut notes = String::new();
    let mut targets = Vec::new();
    let at = |key: &str, load: usize| figures(hops, key, load);
    if let (Some(rust1), Some(rust64), Some(direct1), Some(direct64)) = (
        at("cairn-rust", 0),
        at("cairn-rust", 1),
        at("direct", 0),
        at("direct", 1),
    ) {
        let added = rust1.added_p50(&direct1);
        let share = rust64.rps_share(&direct64);
        let _ = write!(
            notes,
            "cairn with the Rust injector: {} of direct's requests/s at 1 connection and {} at \
             64; {} added at p50 with 1 connection ({} at 64).",
            percent(rust1.rps_share(&direct1)),
            percent(share),
            signed(added),
            signed(rust64.added_p50(&direct64)),
        );
        for (key, name) in [("noxious", "noxious"), ("haproxy", "haproxy")] {
            if let (Some(peer1), Some(peer64)) = (at(key, 0), at(key, 1)) {
                let _ = write!(
                    notes,
                    " Against {name}: {:.2}× its requests/s at 1 connection and {:.2}× at 64; \
                     added p50 {} vs {name}'s {} (1 connection).",
                    rust1.paired(&peer1, |a, b| a.requests_per_second / b.requests_per_second),
                    rust64.paired(&peer64, |a, b| a.requests_per_second
                        / b.requests_per_second),
                    signed(added),
                    signed(peer1.added_p50(&direct1)),
                );
            }
        }
        if let (Some(py1), Some(py64)) = (at("cairn-python", 0), at("cairn-python", 1)) {
            let _ = write!(
                notes,
                " With the Python injector (a CPython interpreter instantiated per request): \
                 {} of direct's requests/s at 64 connections, {} added at p50 with 1.",
                percent(py64.rps_share(&direct64)),
                signed(py1.added_p50(&direct1)),
            );
        }
        if let (Some(bare1), Some(bare64)) = (at("cairn-no-plugin", 0), at("cairn-no-plugin", 1)) {
            let _ = write!(
                notes,
                " The same proxy without a plugin (a closure in the host passes every request; \
                 not a peer, a split of the cost): {} of direct's requests/s at 64 connections, \
                 {} added at p50 with 1; the Rust injector's sandboxed decision costs the rest \
                 ({} at p50 with 1 connection; its requests/s are {} of the closure's at 64).",
                percent(bare64.rps_share(&direct64)),
                signed(bare1.added_p50(&direct1)),
                signed(rust1.paired(&bare1, |a, b| micros(a.p50) - micros(b.p50))),
                percent(rust64.rps_share(&bare64)),
            );
        }
        targets.push(Target {
            goal: format!(
                "fault proxy, Rust injector: ≤ {} µs added at p50 over direct (1 connection)",
                MAX_ADDED_P50.as_micros()
            ),
            measured: signed(added),
            met: added <= micros(MAX_ADDED_P50),
        });
        targets.push(Target {
            goal: format!(
                "fault proxy, Rust injector: ≥ {:.0} % of direct's requests/s (64 connections)",
                MIN_SHARE_OF_DIRECT * 100.0
            ),
            measured: percent(share),
            met: share >= MIN_SHARE_OF_DIRECT,
        });
        if let (Some(nox1), Some(nox64)) = (at("noxious", 0), at("noxious", 1)) {
            let noxious_added = nox1.added_p50(&direct1);
            targets.push(Target {
                goal: "fault proxy, Rust injector ahead of noxious: less added p50 (1 connection)"
                    .into(),
                measured: format!("{} vs {}", signed(added), signed(noxious_added)),
                met: added < noxious_added,
            });
            let over = rust64.paired(&nox64, |a, b| a.requests_per_second / b.requests_per_second);
            targets.push(Target {
                goal:
                    "fault proxy, Rust injector ahead of noxious: more requests/s (64 connections)"
                        .into(),
                measured: format!("{:.0} vs {:.0} ({over:.2}×)", rust64.rps(), nox64.rps()),
                met: over > 1.0,
            });
        }
    }
    if let Some(nox1) = at("noxious", 0)
        && nox1.p99() > 30_000.0
    {
        let _ = write!(
            notes,
            "\n\nnoxious sets no TCP_NODELAY on its sockets (noxious 1.0.4, `socket.rs`): its \
             p99 of {} at one connection is the signature of Nagle's algorithm meeting \
             delayed ACKs (40 ms on Linux), which also drags its requests/s at one connection.",
            show(Duration::from_secs_f64(nox1.p99() / 1e6)),
        );
    }
    for what in skipped {
        let _ = write!(notes, "\n\nSkipped: {what}.");
    }
    section.notes = notes;
    (section, targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_signed_figures_read_well() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
        assert_eq!(signed(38.2), "+38.2 µs");
        assert_eq!(signed(-1200.0), "-1.20 ms");
        assert_eq!(signed(f64::NAN), "n/a");
        assert_eq!(percent(0.834), "83 %");
        assert_eq!(percent(0.0042), "0.4 %");
    }

    #[test]
    fn added_latency_and_shares_pair_rounds() {
        let run = |rps: f64, p50_us: u64| WrkRun {
            requests: 1,
            requests_per_second: rps,
            p50: Duration::from_micros(p50_us),
            p99: Duration::from_micros(p50_us * 2),
        };
        // The machine slows down in round 2 for both: pairing keeps the
        // difference at 10 µs and the share at 80 %.
        let direct = [run(100.0, 50), run(50.0, 100)];
        let proxy = [run(80.0, 60), run(40.0, 110)];
        let direct = Figures { runs: &direct };
        let proxy = Figures { runs: &proxy };
        assert_eq!(proxy.added_p50(&direct), 10.0);
        assert!((proxy.rps_share(&direct) - 0.8).abs() < 1e-9);
    }
}
