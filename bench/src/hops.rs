//! The fault-proxy section's upstream and the hops in front of it: a small
//! keep-alive hyper server on 127.0.0.1 (the upstream, counting what it
//! serves), haproxy as a plain HTTP proxy, noxious (the Rust port of
//! Toxiproxy) as a TCP proxy with no toxics, and cairn's fault proxy with a
//! pass-through injector. Processes are killed when their hop is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use cairn_host::proxy::{
    DecideOutcome, Experiment, ExperimentConfig, ExperimentStats, FaultDecider, FnDecider,
    PluginDecider, RunningExperiment, StopReason, Upstream as UpstreamUrl,
};
use cairn_host::{Decision, Limits, Plugin};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::tools::{ChildGuard, free_port, wait_for_port};

/// The upstream's answer to every request: 256 bytes.
pub const BODY: &[u8; 256] = &{
    let mut body = [b'x'; 256];
    let text = b"cairn-bench upstream: a fixed 256-byte body\n";
    let mut i = 0;
    while i < text.len() {
        body[i] = text[i];
        i += 1;
    }
    body[255] = b'\n';
    body
};

/// How long a hop may take to start listening.
const START_BOUND: Duration = Duration::from_secs(15);

/// The upstream: a hyper HTTP/1.1 server (keep-alive) on its own tokio
/// runtime, answering [`BODY`] to every request.
pub struct UpstreamServer {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    // Dropping the runtime stops the server.
    _runtime: tokio::runtime::Runtime,
}

impl UpstreamServer {
    pub fn start(workers: usize) -> anyhow::Result<UpstreamServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("bench-upstream")
            .enable_all()
            .build()
            .context("cannot start the upstream's tokio runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("cannot bind the upstream on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let served = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&served);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        counter.fetch_add(1, Ordering::Relaxed);
                        let mut response = http::Response::new(Full::new(Bytes::from_static(BODY)));
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain"),
                        );
                        std::future::ready(Ok::<_, Infallible>(response))
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(UpstreamServer {
            addr,
            served,
            _runtime: runtime,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// haproxy as a plain HTTP proxy hop: `mode http`, keep-alive to clients
/// and to the upstream, no logging, one thread per core.
pub struct Haproxy {
    addr: SocketAddr,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    pub fn start(binary: &Path, upstream: SocketAddr, threads: usize) -> anyhow::Result<Haproxy> {
        let dir = tempfile::tempdir().context("cannot create haproxy's directory")?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = format!(
            "global\n\
             \x20   nbthread {threads}\n\
             \x20   maxconn 4096\n\
             defaults\n\
             \x20   mode http\n\
             \x20   option http-keep-alive\n\
             \x20   timeout connect 5s\n\
             \x20   timeout client 30s\n\
             \x20   timeout server 30s\n\
             \x20   timeout http-keep-alive 30s\n\
             frontend bench\n\
             \x20   bind {addr}\n\
             \x20   default_backend upstream\n\
             backend upstream\n\
             \x20   server upstream {upstream}\n"
        );
        let config_path = dir.path().join("haproxy.cfg");
        std::fs::write(&config_path, config).context("cannot write haproxy.cfg")?;
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path)?;
        // -db: stay in the foreground (no daemon), so the guard owns it.
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let mut guard = ChildGuard::new("haproxy", child).with_stderr_file(stderr_path);
        wait_for_port(&mut guard, addr, START_BOUND)?;
        Ok(Haproxy {
            addr,
            guard,
            _dir: dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.guard.ensure_running()
    }
}

/// noxious as a TCP proxy hop: one proxy, no toxics, from a
/// Toxiproxy-format config file (`noxious-proxy --config`).
pub struct Noxious {
    addr: SocketAddr,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Noxious {
    pub fn start(binary: &Path, upstream: SocketAddr) -> anyhow::Result<Noxious> {
        let dir = tempfile::tempdir().context("cannot create noxious's directory")?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = serde_json::json!([{
            "name": "cairn-bench",
            "listen": addr.to_string(),
            "upstream": upstream.to_string(),
            "enabled": true,
        }]);
        let config_path = dir.path().join("noxious.json");
        std::fs::write(&config_path, config.to_string())
            .context("cannot write noxious's config")?;
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path)?;
        // Its stdin stays open while the guard holds the child: closing it
        // (the harness exiting, even killed) stops noxious-proxy.
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let mut guard = ChildGuard::new("noxious-proxy", child).with_stderr_file(stderr_path);
        wait_for_port(&mut guard, addr, START_BOUND)?;
        Ok(Noxious {
            addr,
            guard,
            _dir: dir,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.guard.ensure_running()
    }
}

/// cairn's fault proxy: an experiment in front of the upstream whose
/// every request (blast radius 100 %) is decided by a plugin, a fresh
/// instance per request, with the default limits and no decision log.
pub struct CairnProxy {
    experiment: Option<RunningExperiment>,
    addr: SocketAddr,
}

/// What decides in a [`CairnProxy`].
pub enum CairnDecider {
    /// A fault injector plugin, with the default limits and `{}` as config.
    Plugin(Plugin),
    /// A closure in the host that always passes: the proxy's own cost,
    /// without a sandboxed decision.
    AlwaysPass,
}

impl CairnProxy {
    /// Starts the experiment on `tokio` (whose workers then serve it).
    pub fn start(
        tokio: &tokio::runtime::Runtime,
        name: &str,
        decider: CairnDecider,
        upstream: SocketAddr,
    ) -> anyhow::Result<CairnProxy> {
        let upstream = UpstreamUrl::parse(&format!("http://{upstream}"))?;
        let mut config = ExperimentConfig::new(
            name,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream,
            // Outlives the run; stopped by `finish`.
            Duration::from_secs(24 * 3600),
        );
        config.envelope.blast_radius_percent = 100.0;
        let decider: Arc<dyn FaultDecider> = match decider {
            CairnDecider::Plugin(plugin) => {
                Arc::new(PluginDecider::new(plugin, "{}", Limits::default()))
            }
            CairnDecider::AlwaysPass => Arc::new(FnDecider::new("always-pass", |_| {
                DecideOutcome::Decided(Decision::PASS)
            })),
        };
        let experiment = tokio
            .block_on(async {
                tokio::time::timeout(START_BOUND, Experiment::start(config, decider)).await
            })
            .with_context(|| format!("the {name} experiment did not start within 15 s"))?
            .with_context(|| format!("cannot start the {name} experiment"))?;
        let addr = experiment.local_addr();
        Ok(CairnProxy {
            experiment: Some(experiment),
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn snapshot(&self) -> Option<ExperimentStats> {
        self.experiment.as_ref().map(RunningExperiment::snapshot)
    }

    /// Stops the experiment and drains it, within bounds.
    pub fn finish(&mut self, tokio: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        let Some(experiment) = self.experiment.take() else {
            return Ok(());
        };
        experiment.stop_handle().stop(StopReason::Stopped {
            by: "cairn-bench".to_owned(),
        });
        let report = tokio
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    experiment.finish_within(Duration::from_secs(2)),
                )
                .await
            })
            .context("the experiment did not finish within 10 s")?;
        ensure!(
            report.stats.plugin_failures == 0,
            "the plugin failed {} times: {:?}",
            report.stats.plugin_failures,
            report.stats.plugin_failures_by_kind
        );
        Ok(())
    }
}
