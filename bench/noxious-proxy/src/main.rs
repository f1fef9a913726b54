//! `noxious-proxy`: runs noxious's TCP proxies (the `noxious` crate, the
//! Rust port of Toxiproxy) from a Toxiproxy-format config file, with no
//! toxics, as noxious-server does at start-up, without its REST API.
//!
//! Usage: `noxious-proxy --config proxies.json`, where the file is a JSON
//! array of `{"name", "listen", "upstream", "enabled"}`. Prints `ready` on
//! stdout once every listener is bound; exits on SIGINT, SIGTERM, or when
//! its standard input closes (so it does not outlive a harness that pipes
//! it and dies).

use std::process::ExitCode;

use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop};
use noxious::socket::TcpListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("noxious-proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--config"), Some(path), None) => path,
        _ => return Err("usage: noxious-proxy --config FILE".to_owned()),
    };
    let text =
        std::fs::read_to_string(&path).map_err(|err| format!("cannot read {path}: {err}"))?;
    let configs: Vec<ProxyConfig> =
        serde_json::from_str(&text).map_err(|err| format!("{path}: {err}"))?;
    if configs.is_empty() {
        return Err(format!("{path} declares no proxy"));
    }
    let (stop, stopper) = Stop::new();
    let mut closes = Vec::new();
    for config in configs {
        config
            .validate()
            .map_err(|err| format!("proxy {:?}: {err}", config.name))?;
        let name = config.name.clone();
        let (listener, info) =
            ProxyRunner::initialize_proxy::<TcpListener>(config, Toxics::empty())
                .await
                .map_err(|err| format!("proxy {name:?}: cannot listen: {err}"))?;
        let (close, closer) = Close::new();
        // Toxic events would come through here; none are sent.
        let (events, receiver) = bmrng::channel(2);
        let stop = stop.clone();
        tokio::spawn(async move {
            // Kept open while the proxy runs.
            let _events = events;
            if let Err(err) = ProxyRunner::run_proxy(listener, info, receiver, stop, closer).await {
                eprintln!("noxious-proxy: proxy {name:?} stopped: {err}");
            }
        });
        closes.push(close);
    }
    let mut stdout = tokio::io::stdout();
    let _ = stdout.write_all(b"ready\n").await;
    let _ = stdout.flush().await;

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|err| format!("cannot watch SIGTERM: {err}"))?;
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 64];
        while matches!(stdin.read(&mut buffer).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
        () = stdin_closed => {}
    }
    stopper.stop();
    for close in closes {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), close.recv()).await;
    }
    Ok(())
}
