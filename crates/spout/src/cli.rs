//! The command line, as typed. [`crate::config`] turns it into a validated configuration.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "spout",
    version,
    about = "A per-host log router for Docker: every container's lines, with metadata, to GELF or JSON.",
    after_help = "With no route, every message is written to stdout as one JSON object per line.\n\
                  Routes: gelf://HOST:PORT (UDP), gelf+udp://HOST:PORT, gelf+tcp://HOST:PORT, stdout://"
)]
pub struct Cli {
    /// Where to send logs: route URIs such as gelf+tcp://graylog:12201.
    #[arg(value_name = "ROUTE")]
    pub routes: Vec<String>,

    /// Docker Engine API endpoint: unix:///PATH or tcp://HOST:PORT.
    #[arg(long, env = "DOCKER_HOST", default_value = "unix:///var/run/docker.sock")]
    pub docker_host: String,

    /// Directory for spout's state; created if missing.
    #[arg(long, env = "SPOUT_STATE_DIR", default_value = "/var/lib/spout")]
    pub state_dir: PathBuf,

    /// Address of the HTTP API (GET /health), or `off`.
    #[arg(long, env = "SPOUT_HTTP", default_value = "127.0.0.1:8000")]
    pub http: String,

    /// Host name put on every message [default: the Docker daemon's host name].
    #[arg(long, env = "SPOUT_HOSTNAME")]
    pub hostname: Option<String>,

    /// Ship the whole log history of containers already running at start, not only what they
    /// write from now on.
    #[arg(long, env = "BACKLOG", value_parser = clap::builder::FalseyValueParser::new())]
    pub backlog: bool,

    /// Lines longer than this many bytes are cut and marked `_truncated`.
    #[arg(long, env = "SPOUT_MAX_LINE_BYTES", default_value_t = 1 << 20)]
    pub max_line_bytes: usize,

    /// How often read positions are saved to the state directory (e.g. 1s, 500ms).
    #[arg(long, env = "SPOUT_CHECKPOINT_INTERVAL", default_value = "1s")]
    pub checkpoint_interval: String,

    /// How long to keep delivering queued messages after SIGTERM or SIGINT (e.g. 10s, 500ms).
    #[arg(long, env = "SPOUT_SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: String,

    /// spout's own log level or filter (error, warn, info, debug, trace) [default: RUST_LOG, else info].
    #[arg(long)]
    pub log_level: Option<String>,
}

impl Cli {
    /// Routes from the command line, then from ROUTE_URIS (comma-separated, as in Logspout).
    pub fn route_uris(&self, env_routes: Option<&str>) -> Vec<String> {
        let from_env = env_routes.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty());
        self.routes.iter().map(String::as_str).chain(from_env).map(str::to_owned).collect()
    }
}
