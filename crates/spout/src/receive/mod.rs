//! `spout receive`: the collector end. GELF over UDP, TCP and HTTP, and OTLP logs over HTTP;
//! every message checked against GELF 1.1, enriched, then written as JSON lines or forwarded to
//! the agent's routes. Apart from the agent: it shares its routes, codecs and enrichment rules,
//! never its readers or checkpoints.
//!
//! Inputs → [`intake::Intake`] (decompress within a cap, check, count) → one bounded queue →
//! [`output::run`] (enrich, write, forward).

mod clients;
mod enrich;
mod event;
mod forward;
mod http;
mod intake;
mod otlp;
mod output;
mod stats;
mod tcp;
mod udp;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::ReceiveArgs;
use crate::health::RouteReport;
use crate::routes::uri::RouteSpec;
use enrich::Enrich;
use intake::Intake;
use output::{Forwards, Out};
use stats::{Forwarded, Input, Metrics, Stats};

/// The port GELF inputs listen on by convention.
pub const GELF_PORT: u16 = 12201;
/// How long the forward routes may take to deliver what they hold at shutdown.
const GRACE: Duration = Duration::from_secs(10);

/// `spout receive`'s options, checked.
#[derive(Debug)]
pub struct ReceiveConfig {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub bulk: bool,
    pub cors: Vec<String>,
    pub rate: f64,
    pub max_message: usize,
    pub max_decompressed: usize,
    pub max_pending: usize,
    pub max_body: usize,
    pub idle: Duration,
    pub max_clients: usize,
    pub max_clients_per_address: usize,
    enrich: Enrich,
    pub out: Option<Out>,
    pub forward: Vec<RouteSpec>,
    pub api: Option<SocketAddr>,
}

impl ReceiveConfig {
    /// Checks the options; every problem names its option.
    pub fn from_args(args: &ReceiveArgs) -> Result<ReceiveConfig, Vec<String>> {
        let mut problems = Vec::new();
        let mut address = |name: &str, given: Option<&str>| {
            given.and_then(|a| listen_address(a).map_err(|e| problems.push(format!("--{name}: {e}"))).ok())
        };
        let (mut udp, mut tcp) = (address("udp", args.udp.as_deref()), address("tcp", args.tcp.as_deref()));
        let http = address("http", args.http.as_deref());
        let api = match args.api.as_str() {
            "off" => None,
            given => address("api", Some(given)),
        };
        if args.udp.is_none() && args.tcp.is_none() && args.http.is_none() {
            let any = SocketAddr::from(([0, 0, 0, 0], GELF_PORT));
            (udp, tcp) = (Some(any), Some(any));
        }
        if args.http.is_none() {
            for (given, name) in [(args.http_bulk, "--http-bulk"), (!args.cors_origin.is_empty(), "--cors-origin")] {
                if given {
                    problems.push(format!("{name} is for the HTTP input: give --http ADDR too"));
                }
            }
        }
        for origin in &args.cors_origin {
            let well_formed = origin == "*"
                || origin.split_once("://").is_some_and(|(scheme, host)| {
                    matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
                });
            if !well_formed {
                problems.push(format!(
                    "--cors-origin: '{origin}' is not an origin such as https://app.example.com (scheme, host and port, no path), or *"
                ));
            }
        }
        let mut at_least = |name: &str, value: usize, min: usize| {
            if value < min {
                problems.push(format!("--{name}: {value} is below {min}"));
            }
        };
        at_least("max-message-bytes", args.max_message_bytes, 1024);
        at_least("max-decompressed-bytes", args.max_decompressed_bytes, 1024);
        at_least("max-pending-bytes", args.max_pending_bytes, 65_536);
        at_least("max-body-bytes", args.max_body_bytes, 1024);
        at_least("max-clients", args.max_clients, 1);
        at_least("max-clients-per-address", args.max_clients_per_address, 1);
        // A whole message must fit, with what keeping its chunks costs.
        let whole = args.max_message_bytes.saturating_add(gelf::MAX_MESSAGE_OVERHEAD);
        if args.max_pending_bytes < whole {
            problems.push(format!(
                "--max-pending-bytes: {} is below --max-message-bytes and what keeping its chunks costs ({whole}): a whole message must fit",
                args.max_pending_bytes
            ));
        }
        if !(args.http_rate > 0.0 && args.http_rate.is_finite()) {
            problems.push(format!("--http-rate: {} is not a positive number of requests a second", args.http_rate));
        }
        let enrich = Enrich::parse(&args.field, &args.extract).unwrap_or_else(|e| {
            problems.extend(e);
            Enrich::default()
        });
        let mut forward = Vec::new();
        for uri in &args.forward {
            match uri.parse::<RouteSpec>() {
                Ok(spec) => forward.push(spec),
                Err(e) => problems.push(format!("--forward: {e}")),
            }
        }
        if forward.len() > crate::slots::MAX_ROUTES {
            problems.push(format!("--forward: at most {} routes", crate::slots::MAX_ROUTES));
        }
        let out = match args.out.as_deref() {
            None if forward.is_empty() => Some(Out::Stdout),
            None => None,
            Some("-") => Some(Out::Stdout),
            Some(path) => {
                // Opened now, so that a path that cannot be written is told at once.
                let opened = std::fs::OpenOptions::new().create(true).append(true).open(path);
                if let Err(e) = opened {
                    problems.push(format!("--out: cannot open {path}: {e}"));
                }
                Some(Out::File(PathBuf::from(path)))
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ReceiveConfig {
            udp,
            tcp,
            http,
            bulk: args.http_bulk,
            cors: args.cors_origin.clone(),
            rate: args.http_rate,
            max_message: args.max_message_bytes,
            max_decompressed: args.max_decompressed_bytes,
            max_pending: args.max_pending_bytes,
            max_body: args.max_body_bytes,
            idle: args.idle_timeout,
            max_clients: args.max_clients,
            max_clients_per_address: args.max_clients_per_address,
            enrich,
            out,
            forward,
            api,
        })
    }
}

/// `HOST:PORT`, `:PORT` (every address) or `PORT`.
fn listen_address(given: &str) -> Result<SocketAddr, String> {
    let bad = || format!("'{given}' is not HOST:PORT, :PORT or PORT");
    if let Ok(port) = given.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Some(port) = given.strip_prefix(':') {
        return port.parse::<u16>().map(|p| SocketAddr::from(([0, 0, 0, 0], p))).map_err(|_| bad());
    }
    if let Ok(addr) = given.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !given.contains(':') {
        return Err(bad());
    }
    let mut found = given.to_socket_addrs().map_err(|e| format!("cannot resolve '{given}': {e}"))?;
    found.next().ok_or_else(bad)
}

/// Failures that stop `spout receive` before it gets going.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {what} {addr}: {source}")]
pub struct BindError {
    what: &'static str,
    addr: SocketAddr,
    source: std::io::Error,
}

/// Receives until `shutdown`, then delivers what is queued and returns.
pub async fn run(config: ReceiveConfig, shutdown: CancellationToken) -> Result<(), BindError> {
    let bind_error = |what, addr| move |source| BindError { what, addr, source };
    // Every socket is bound before anything starts, so that a port in use stops it at once.
    let udp = match config.udp {
        Some(addr) => Some(udp::bind(addr).map_err(bind_error("UDP", addr))?),
        None => None,
    };
    let tcp = match config.tcp {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(bind_error("TCP", addr))?),
        None => None,
    };
    let http = match config.http {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(bind_error("HTTP", addr))?),
        None => None,
    };
    let api = match config.api {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(bind_error("API", addr))?),
        None => None,
    };

    let stats = Arc::new(Stats::default());
    let (intake, rx) = Intake::new(Arc::clone(&stats), config.max_message);
    let places = || {
        let refused = Arc::clone(&stats.clients_refused);
        Arc::new(clients::Places::new(config.max_clients, config.max_clients_per_address, refused))
    };
    let forwards = Forwards::start(&config.forward);
    let stop = CancellationToken::new();
    let mut inputs = tokio::task::JoinSet::new();
    let mut listening = Vec::new();
    if let Some(socket) = udp {
        listening.push(("udp", socket.local_addr().ok()));
        inputs.spawn(udp::run(socket, intake.clone(), config.max_pending, config.max_message, stop.clone()));
    }
    if let Some(listener) = tcp {
        listening.push(("tcp", listener.local_addr().ok()));
        let limits = tcp::Limits { max_message: config.max_message, idle: config.idle };
        inputs.spawn(tcp::run(listener, intake.clone(), limits, places(), stop.clone()));
    }
    if let Some(listener) = http {
        listening.push(("http", listener.local_addr().ok()));
        let input = http::HttpInput {
            intake: intake.clone(),
            bulk: config.bulk,
            cors: config.cors.clone(),
            max_body: config.max_body,
            max_decompressed: config.max_decompressed,
            // What a body (or one message) may decompress to, with room for what keeping its
            // messages costs; a quarter of the queue at most, so that one request leaves room.
            max_weight: (2 * config.max_decompressed.max(config.max_message)).min(intake::QUEUE_BYTES / 4),
            clients: places(),
            limiter: http::Limiter::new(config.rate),
        };
        inputs.spawn(http::run(listener, Arc::new(input), stop.clone()));
    }
    drop(intake);
    for (input, addr) in &listening {
        info!(input, addr = %addr.map(|a| a.to_string()).unwrap_or_default(), "listening");
    }
    for route in &forwards.shown {
        info!(route = %route.uri, "forwarding");
    }
    if let Some(listener) = api {
        let state = ApiState {
            metrics: Arc::new(crate::api::registry(Metrics {
                stats: Arc::clone(&stats),
                routes: forwards.shown.clone(),
            })),
            listening: listening.iter().map(|(i, a)| (*i, a.map(|a| a.to_string()).unwrap_or_default())).collect(),
            routes: forwards.shown.clone(),
        };
        info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "API listening (/health, /metrics)");
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            let served =
                axum::serve(listener, api_router(state)).with_graceful_shutdown(cancel.cancelled_owned()).await;
            if let Err(e) = served {
                warn!(error = %e, "API stopped");
            }
        });
    }
    let deadline = {
        let outputs = output::run(rx, config.enrich, config.out, &forwards, Arc::clone(&stats));
        tokio::pin!(outputs);
        tokio::select! {
            () = &mut outputs => tokio::time::Instant::now() + GRACE,
            () = shutdown.cancelled() => {
                info!(grace = ?GRACE, "stopping: inputs closed, delivering what is queued");
                let deadline = tokio::time::Instant::now() + GRACE;
                stop.cancel();
                // The outputs go on taking from the queue while the inputs hand in their last (a
                // TCP client's frames already read may wait for room).
                let drained = tokio::time::timeout_at(deadline, async {
                    tokio::join!(async { while inputs.join_next().await.is_some() {} }, &mut outputs)
                })
                .await;
                // A forward route that cannot deliver holds the queue up: past the grace period it
                // gives up what it holds, and the rest of the queue is counted as it goes.
                if drained.is_err() {
                    forwards.abort();
                    tokio::join!(async { while inputs.join_next().await.is_some() {} }, &mut outputs);
                }
                deadline
            }
        }
    };
    forwards.finish(deadline).await;
    let received: Vec<String> =
        Input::ALL.iter().map(|i| format!("{}={}", i.as_str(), stats.received_count(*i))).collect();
    info!(received = %received.join(" "), written = stats.written.get(), "stopped");
    Ok(())
}

#[derive(Clone)]
struct ApiState {
    metrics: Arc<Registry>,
    listening: Vec<(&'static str, String)>,
    routes: Vec<Forwarded>,
}

fn api_router(state: ApiState) -> Router {
    Router::new().route("/health", get(health)).route("/metrics", get(metrics)).with_state(state)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    problems: Vec<String>,
    inputs: std::collections::BTreeMap<&'static str, String>,
    routes: Vec<RouteReport>,
}

/// 200 while every forward route works, 503 once one has failed again and again.
async fn health(State(state): State<ApiState>) -> (StatusCode, Json<Health>) {
    let mut problems = Vec::new();
    let routes = state.routes.iter().map(|r| RouteReport::of(&r.uri, &r.status, &mut problems)).collect();
    let code = if problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let status = if problems.is_empty() { "ok" } else { "unavailable" };
    (code, Json(Health { status, problems, inputs: state.listening.iter().cloned().collect(), routes }))
}

async fn metrics(State(state): State<ApiState>) -> impl axum::response::IntoResponse {
    crate::api::openmetrics(&state.metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_operators_write_them() {
        assert_eq!(listen_address("12201"), Ok(SocketAddr::from(([0, 0, 0, 0], 12201))));
        assert_eq!(listen_address(":8080"), Ok(SocketAddr::from(([0, 0, 0, 0], 8080))));
        assert_eq!(listen_address("127.0.0.1:9"), Ok(SocketAddr::from(([127, 0, 0, 1], 9))));
        assert!(listen_address("localhost:9").is_ok_and(|a| a.port() == 9));
        assert!(listen_address("nope").is_err() && listen_address(":x").is_err());
    }
}
