//! `cairn serve`: arguments, the new-token helper, and running the server
//! until SIGINT/SIGTERM (the first drains, a second stops at once).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::cli::exit::{self, CliError};
use crate::cli::signals;
use crate::serve::Server;

pub(crate) const SERVE_ABOUT: &str = "\
Serve checks, experiments and rollouts over HTTP, for the tenants, plans and
tokens a configuration file names.

Every plan is loaded and its plugins compiled before the server listens; a
plan that does not load stops the start (exit 65 or 67). SIGHUP reloads the
configuration and every plan: the new ones are loaded completely before they
replace the old, and a reload that fails leaves the old ones serving (the
log and /readyz say why). SIGINT or SIGTERM drains: new requests get 503,
running experiments stop their faults, requests in flight finish (up to
[server] shutdown-grace-ms); a second signal stops at once. Rollouts a
stopped server left running are resumed when it starts again.

Tokens are stored as SHA-256 hashes; `cairn serve --new-token NAME` prints
a new token and the lines for the configuration.

  cairn serve --config examples/serve/serve.toml
  curl -H \"Authorization: Bearer $TOKEN\" --data-binary @bundle.json \\
      'http://127.0.0.1:7878/v1/checks?plan=example'

The API is described in host/openapi.json (also at GET /v1/openapi.json).";

pub(crate) const SERVE_EXIT_CODES: &str = "\
Exit codes:
  0   stopped after draining (SIGINT or SIGTERM)
  64  wrong command line
  65  invalid configuration or plan (file:line:column)
  66  the configuration could not be read
  67  a plugin could not be built or loaded
  69  the listen address is in use or not available
  70  internal error
  130, 143  stopped at once by a second SIGINT or SIGTERM";

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The server configuration (TOML: [server] and [[tenant]] tables).
    #[arg(long, value_name = "FILE", required_unless_present = "new_token")]
    pub config: Option<PathBuf>,
    /// Listen here instead of the configuration's `[server] listen`
    /// (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Print a new random token for IDENTITY and its `[[tenant.token]]`
    /// lines, then exit.
    #[arg(long, value_name = "IDENTITY", conflicts_with_all = ["config", "listen"])]
    pub new_token: Option<String>,
}

pub(crate) fn run(
    tokio: &tokio::runtime::Runtime,
    args: ServeArgs,
    cache_dir: Option<PathBuf>,
) -> Result<u8, CliError> {
    if let Some(identity) = args.new_token {
        let (token, hash) = crate::serve::config::new_token()
            .map_err(|err| CliError::internal("cannot read /dev/urandom", err))?;
        println!(
            "token (give it to {}; it is not stored): {token}",
            crate::escape::single_line(&identity)
        );
        println!();
        println!("[[tenant.token]]");
        println!("identity = {}", toml_string(&identity));
        println!("sha256 = \"{hash}\"");
        return Ok(exit::PASS);
    }
    let Some(config) = args.config else {
        return Err(CliError::Usage("--config FILE is required".to_owned()));
    };
    tokio.block_on(async {
        let shutdown = signals::drain_on_first_signal();
        let server = Server::bind(&config, args.listen, cache_dir).await?;
        let addr = server
            .local_addr()
            .map_err(|err| CliError::internal("cannot read the listen address", err))?;
        eprintln!("cairn: serving on http://{addr} (SIGHUP reloads plans; Ctrl-C drains)");
        server.run(shutdown).await?;
        eprintln!("cairn: stopped");
        Ok(exit::PASS)
    })
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
