//! The command line, as typed. [`crate::config`] turns it into a validated configuration.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "spout",
    version,
    about = "A per-host log router for Docker: every container's lines, with metadata, to GELF or JSON.",
    after_help = "With no route, every message is written to stdout as one JSON object per line.\n\
                  Routes: gelf://HOST:PORT (UDP), gelf+udp://HOST:PORT, gelf+tcp://HOST:PORT, stdout://\n\
                  `spout [OPTIONS] [ROUTE]...` is `spout run [OPTIONS] [ROUTE]...`.\n\
                  `spout receive` is the other end: a GELF and OTLP input (see `spout receive --help`).",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Without a subcommand: run the agent.
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the default).
    Run(Box<RunArgs>),
    /// Check the configuration: print it as it would take effect (secrets masked) and exit 0,
    /// or list every problem and exit 64.
    CheckConfig(Box<RunArgs>),
    /// Show what a running spout is doing with each container.
    Status(StatusArgs),
    /// Ask a running spout whether it is healthy (GET /health): exit 0 when it is, 1 otherwise,
    /// saying why. The image's health check: no shell or curl needed.
    Health(HealthArgs),
    /// List a running spout's routes, or add or remove one while it runs.
    Routes(RoutesArgs),
    /// Receive GELF (UDP, TCP, HTTP) and OTLP logs (HTTP): print each message as a JSON line,
    /// write it to a file, or forward it to routes. With no input given, UDP and TCP on
    /// 0.0.0.0:12201.
    Receive(Box<ReceiveArgs>),
}

/// `spout receive`'s options.
#[derive(Debug, Clone, Args)]
pub struct ReceiveArgs {
    /// GELF over UDP (plain, gzip or zlib; chunked or not) on ADDR: HOST:PORT, :PORT or PORT.
    #[arg(long, value_name = "ADDR")]
    pub udp: Option<String>,

    /// GELF over TCP (each message ended by a NUL byte) on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<String>,

    /// HTTP on ADDR: POST /gelf (a GELF message) and POST /v1/logs (OTLP logs, protobuf or JSON).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,

    /// POST /gelf takes several messages, one a line.
    #[arg(long)]
    pub http_bulk: bool,

    /// Let pages from ORIGIN (e.g. https://app.example.com, or * for any) post to the HTTP
    /// input; repeatable. A request from any other origin is refused.
    #[arg(long, value_name = "ORIGIN")]
    pub cors_origin: Vec<String>,

    /// Requests a second one HTTP client (by address) may make, with bursts of twice as many;
    /// more are answered 429.
    #[arg(long, value_name = "N", default_value = "100")]
    pub http_rate: f64,

    /// Largest message: a TCP frame, a reassembled UDP message, a message once decompressed.
    #[arg(long, value_name = "BYTES", default_value = "2097152")]
    pub max_message_bytes: usize,

    /// Largest size a compressed message or body may decompress to.
    #[arg(long, value_name = "BYTES", default_value = "8388608")]
    pub max_decompressed_bytes: usize,

    /// Most bytes the chunks of incomplete UDP messages may hold; past it the oldest are given up.
    #[arg(long, value_name = "BYTES", default_value = "67108864")]
    pub max_pending_bytes: usize,

    /// Largest HTTP request body, as sent (compressed or not).
    #[arg(long, value_name = "BYTES", default_value = "8388608")]
    pub max_body_bytes: usize,

    /// A TCP client that sends nothing for this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,

    /// Most TCP clients, and most HTTP clients, connected at once.
    #[arg(long, value_name = "N", default_value = "1024")]
    pub max_clients: usize,

    /// Most TCP clients, and most HTTP clients, from one address (an IPv6 /64) at once; more are
    /// closed at once.
    #[arg(long, value_name = "N", default_value = "256")]
    pub max_clients_per_address: usize,

    /// A field _KEY=VALUE on every message; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub field: Vec<String>,

    /// Fields from a pattern: the named groups of REGEX, matched against the message's field
    /// SOURCE (e.g. host, short_message, _container_name; name and image say _container_name
    /// and _image_name), become fields _<group>; repeatable.
    #[arg(long, value_name = "SOURCE=REGEX")]
    pub extract: Vec<String>,

    /// Write each message, as one JSON object a line, to FILE (appended), or - for stdout
    /// [default: stdout, unless --forward is given].
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,

    /// Forward each message to ROUTE, any route the agent takes (e.g. gelf+tls://graylog:12201,
    /// syslog+tcp://host:514, otlp+http://collector:4318); repeatable.
    #[arg(long, value_name = "ROUTE")]
    pub forward: Vec<String>,

    /// Address of GET /health and GET /metrics, or off.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8001")]
    pub api: String,

    /// spout's own log level or filter (error, warn, info, debug, trace) [default: RUST_LOG, else info].
    #[arg(long)]
    pub log_level: Option<String>,
}

/// Where the subcommands that ask a running spout find its API: its Unix socket, which needs no
/// token, unless `--http` is given.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The running spout's API socket [default: STATE_DIR/api.sock].
    #[arg(long, value_name = "PATH", env = "SPOUT_API_SOCKET")]
    pub api_socket: Option<PathBuf>,

    /// The running spout's state directory, where its API socket is.
    #[arg(long, value_name = "DIR", env = "SPOUT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Ask the HTTP API at this address instead of the socket. Without it, and with no socket,
    /// the address in SPOUT_HTTP (or 127.0.0.1:8000) is asked.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,

    #[command(flatten)]
    pub token: TokenArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RoutesArgs {
    /// What to do: `list` (the default), `add URI` (it gets the lines read from then on, and
    /// comes back after a restart) or `rm ID` (a route added so, by the id the list shows).
    #[arg(value_enum, value_name = "ACTION")]
    pub action: Option<RoutesAction>,

    /// The route to add (`add`), e.g. gelf+tcp://graylog:12201, or the id to remove (`rm`).
    #[arg(value_name = "URI|ID")]
    pub target: Option<String>,

    #[command(flatten)]
    pub client: ClientArgs,

    #[command(flatten)]
    pub token: TokenArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoutesAction {
    #[value(alias = "ls")]
    List,
    Add,
    #[value(alias = "remove")]
    Rm,
}

/// The HTTP API's token: the agent's, or the one a client presents.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// A token the TCP API's /logs, /containers and /routes require (`Authorization: Bearer
    /// TOKEN`); /health and /metrics stay open, and the API socket needs none.
    #[arg(long, env = "SPOUT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// A file holding the API token (its first line).
    #[arg(long, value_name = "FILE", env = "SPOUT_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
}

/// Where spout keeps its state unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/spout";

/// The API socket: `given` (`off` for none), or `api.sock` in the state directory.
pub fn api_socket(state_dir: &Path, given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(path) if path == Path::new("off") => None,
        Some(path) => Some(path.to_owned()),
        None => Some(state_dir.join("api.sock")),
    }
}

/// The agent's options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where to send logs: route URIs such as gelf+tcp://graylog:12201.
    #[arg(value_name = "ROUTE")]
    pub routes: Vec<String>,

    /// A TOML file with any of these options (long names with `_` for `-`) and `routes = [...]`;
    /// the command line and the environment take precedence over it.
    #[arg(long, value_name = "FILE", env = "SPOUT_CONFIG")]
    pub config: Option<PathBuf>,

    /// Docker Engine API endpoint: unix:///PATH or tcp://HOST:PORT.
    #[arg(long, env = "DOCKER_HOST", default_value = "unix:///var/run/docker.sock")]
    pub docker_host: String,

    /// Where containers' logs are read from: `files` (their json-file logs, directly), `api`
    /// (the Docker API), or `auto` (files where spout can read them, the API otherwise).
    #[arg(long, value_name = "auto|files|api", env = "SPOUT_SOURCE", default_value = "auto")]
    pub source: String,

    /// Directory for spout's state; created if missing.
    #[arg(long, env = "SPOUT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Address of the HTTP API, or `off`.
    #[arg(long, env = "SPOUT_HTTP", default_value = "127.0.0.1:8000")]
    pub http: String,

    /// The API's Unix socket, root's only (mode 0600), where `spout status`, `spout health` and
    /// `spout routes` find it with no token, or `off` [default: STATE_DIR/api.sock].
    #[arg(long, value_name = "PATH", env = "SPOUT_API_SOCKET")]
    pub api_socket: Option<PathBuf>,

    #[command(flatten)]
    pub token: TokenArgs,

    /// Host name put on every message [default: the Docker daemon's host name].
    #[arg(long, env = "SPOUT_HOSTNAME")]
    pub hostname: Option<String>,

    /// Ship the whole log history of containers already running at start, not only what they
    /// write from now on.
    #[arg(long, env = "BACKLOG", value_parser = clap::builder::FalseyValueParser::new())]
    pub backlog: bool,

    /// Lines longer than this many bytes are cut and marked `_truncated`.
    #[arg(long, value_name = "N", env = "SPOUT_MAX_LINE_BYTES", default_value = "1048576")]
    pub max_line_bytes: String,

    /// How often read positions are saved to the state directory (e.g. 1s, 500ms).
    #[arg(long, env = "SPOUT_CHECKPOINT_INTERVAL", default_value = "1s")]
    pub checkpoint_interval: String,

    /// How long to keep delivering queued messages after SIGTERM or SIGINT (e.g. 10s, 500ms).
    #[arg(long, env = "SPOUT_SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: String,

    /// Do not read containers with this label (KEY), or with it set to VALUE (KEY=VALUE);
    /// repeatable. Also LOGSPOUT=ignore, spout.exclude=true and Logspout's EXCLUDE_LABEL
    /// (KEY for the value true, or KEY:VALUE) leave a container out.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub exclude_label: Vec<String>,

    /// Read the ECS agent's container and ECS's internal pause containers too.
    #[arg(long, env = "SPOUT_INCLUDE_ECS_INTERNAL", value_parser = clap::builder::FalseyValueParser::new())]
    pub include_ecs_internal: bool,

    /// Fields from a pattern: the named groups of REGEX, matched against SOURCE (name, image or
    /// label:KEY), become fields _<group>; repeatable.
    #[arg(long, value_name = "SOURCE=REGEX")]
    pub extract: Vec<String>,

    /// Same as --extract name=REGEX.
    #[arg(long, value_name = "REGEX", env = "SPOUT_NAME_PATTERN")]
    pub name_pattern: Option<String>,

    /// A field _KEY=VALUE on every message; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub field: Vec<String>,

    /// Container labels that become fields _<label>; comma-separated, repeatable.
    #[arg(long, value_name = "KEY,...", env = "SPOUT_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,

    /// Container labels whose names match REGEX become fields.
    #[arg(long, value_name = "REGEX", env = "SPOUT_LABELS_REGEX")]
    pub labels_regex: Option<String>,

    /// Container environment variables that become fields _<VARIABLE>; comma-separated, repeatable.
    #[arg(long = "env", value_name = "KEY,...", env = "SPOUT_ENV", value_delimiter = ',')]
    pub env_fields: Vec<String>,

    /// Container environment variables whose names match REGEX become fields.
    #[arg(long, value_name = "REGEX", env = "SPOUT_ENV_REGEX")]
    pub env_regex: Option<String>,

    /// Join multiline messages: a line matching REGEX starts a message, any other line is
    /// appended to the one before (per container and stream). Containers may set their own with
    /// the label spout.multiline.start=REGEX, or turn joining off with spout.multiline=off.
    #[arg(long, value_name = "REGEX", env = "SPOUT_MULTILINE_START")]
    pub multiline_start: Option<String>,

    /// A multiline message is complete when no line has joined it for this long.
    #[arg(long, value_name = "DURATION", env = "SPOUT_MULTILINE_TIMEOUT", default_value = "1s")]
    pub multiline_timeout: String,

    /// A multiline message is complete at this many lines.
    #[arg(long, value_name = "N", env = "SPOUT_MULTILINE_MAX_LINES", default_value = "1000")]
    pub multiline_max_lines: String,

    /// spout's own log level or filter (error, warn, info, debug, trace) [default: RUST_LOG, else info].
    #[arg(long)]
    pub log_level: Option<String>,
}

impl RunArgs {
    /// Routes from the command line, then from ROUTE_URIS.
    pub fn route_uris(&self, env_routes: Option<&str>) -> Vec<String> {
        self.routes.iter().cloned().chain(split_route_uris(env_routes)).collect()
    }
}

/// ROUTE_URIS's routes: comma-separated, as in Logspout. A comma not followed by `SCHEME://`
/// belongs to the URI before it (`filter.sources=stdout,stderr`).
pub fn split_route_uris(env_routes: Option<&str>) -> Vec<String> {
    let mut uris: Vec<String> = Vec::new();
    for part in env_routes.unwrap_or("").split(',') {
        match uris.last_mut() {
            Some(uri) if !part.trim().is_empty() && !starts_with_scheme(part.trim()) => {
                uri.push(',');
                uri.push_str(part.trim_end());
            }
            _ => uris.push(part.trim().to_owned()),
        }
    }
    uris.retain(|s| !s.is_empty());
    uris
}

fn starts_with_scheme(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}
