//! spout: a per-host log router for Docker.
//!
//! Data path: [`docker::watcher`] finds containers and starts one [`docker::reader`] each; readers
//! turn log streams into [`message::Message`]s and hand them to the [`router::Router`], which
//! queues them on every route in [`routes`]. See ARCHITECTURE.md.

pub mod admin;
pub mod api;
pub mod backoff;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod containers;
pub mod docker;
pub mod enrich;
mod fnv;
pub mod health;
#[cfg(test)]
mod imports;
pub mod line;
pub mod message;
pub mod multiline;
pub mod outlet;
pub mod pipeline;
pub mod position;
pub mod receive;
pub mod router;
pub mod routes;
pub mod settings;
pub mod slots;
pub mod stats;
pub mod suggest;
pub mod tail;
pub mod timestamp;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use checkpoint::Checkpoints;
use config::Config;
use docker::api::DockerConnector;
use docker::watcher::{Watcher, WatcherConfig, WatcherParts};
use health::{CheckpointHealth, DockerHealth, HealthSources};
use router::Router;
use routes::table::{Origin, RouteTable};
use stats::ReaderStats;

/// Writes the checkpoints that moved, off the async threads (each write is fsynced).
async fn persist(checkpoints: &Arc<Checkpoints>, watermark: &AtomicI64, health: &CheckpointHealth) {
    let checkpoints = Arc::clone(checkpoints);
    let watermark = watermark.load(Ordering::Acquire);
    let error = match tokio::task::spawn_blocking(move || checkpoints.persist(watermark)).await {
        Ok(Ok(_)) => {
            if health.failing() {
                info!("checkpoints are saved again");
            }
            health.saved();
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(e) => e.to_string(),
    };
    // Every second while the disk is full would bury everything else: often at first, then rarely.
    let failures = health.failed(&error);
    if failures.is_power_of_two() {
        warn!(error = %error, failures, "cannot save checkpoints; shipping goes on, and they are tried again; a restart meanwhile sends lines again");
    }
}

/// Serves the API on `listener` until spout stops.
async fn serve<L>(listener: L, state: api::ApiState, what: &'static str)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let cancel = state.cancel.clone();
    if let Err(e) = api::serve(listener, state, cancel).await {
        warn!(error = %e, "{what} stopped");
    }
}

/// Removes the API socket when spout stops, however it stops.
struct Unlink(std::path::PathBuf);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Failures that stop spout before it gets going.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Http { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("API socket: {0}")]
    Socket(#[from] api::SocketError),
    #[error("cannot start route {uri}: {problem}")]
    Route { uri: String, problem: String },
}

/// Runs spout until `shutdown` is cancelled, then stops reading, delivers what is queued within
/// the grace period, and returns.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    let state_error = |source| StartError::StateDir { path: config.state_dir.display().to_string(), source };
    std::fs::create_dir_all(&config.state_dir).map_err(state_error)?;
    // Before the checkpoints: a second spout on the same state directory stops here.
    let socket = match &config.api_socket {
        Some(path) => Some((api::bind_socket(path)?, Unlink(path.clone()))),
        None => None,
    };
    let checkpoints = Arc::new(Checkpoints::open(&config.state_dir).map_err(state_error)?);
    let listener = match config.http {
        Some(addr) => {
            Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Http { addr, source })?)
        }
        None => None,
    };

    let abort = CancellationToken::new();
    let tail = Arc::new(tail::Tail::default());
    let router = Router::new(Vec::new()).with_tail(Arc::clone(&tail));
    let routes =
        Arc::new(RouteTable::new(router.clone(), Arc::clone(&checkpoints), abort.clone(), config.state_dir.clone()));
    let given =
        config.routes.iter().map(|r| (r, Origin::Cli)).chain(config.file_routes.iter().map(|r| (r, Origin::File)));
    for (spec, origin) in given {
        routes
            .start(spec, origin)
            .map_err(|e| StartError::Route { uri: spec.shown.clone(), problem: e.to_string() })?;
    }
    routes.restore();
    let (health_tx, health_rx) = watch::channel(DockerHealth::starting());
    let checkpoint_health = Arc::new(CheckpointHealth::default());
    let health = HealthSources {
        docker_address: config.docker_host.to_string(),
        docker: health_rx.clone(),
        checkpoints: Arc::clone(&checkpoint_health),
    };
    let reader_stats = Arc::new(ReaderStats::default());
    let board = Arc::new(containers::Board::default());
    let metrics = api::MetricSources {
        readers: Arc::clone(&reader_stats),
        routes: Arc::clone(&routes),
        docker: health_rx,
        checkpoints: Arc::clone(&checkpoints),
        tail: Arc::clone(&tail),
    };
    let loopback = config.http.is_some_and(|a| a.ip().is_loopback());
    let api = api::ApiState {
        health,
        metrics: Arc::new(api::registry(metrics)),
        containers: Arc::clone(&board),
        tail: Arc::clone(&tail),
        cancel: shutdown.clone(),
        token: config.api_token.as_deref().map(Arc::from),
        local: loopback,
        routes: Arc::clone(&routes),
    };
    if let Some(listener) = listener {
        info!(addr = %config.http.map(|a| a.to_string()).unwrap_or_default(), "HTTP API listening");
        if !loopback && config.api_token.is_none() {
            warn!(addr = %config.http.map(|a| a.to_string()).unwrap_or_default(),
                  "the HTTP API listens beyond loopback without --api-token: /logs and /containers are open to anyone who can reach it, and routes cannot be changed through it");
        }
        tokio::spawn(serve(listener, api.clone(), "HTTP API"));
    }
    let socket_guard = socket.map(|(listener, unlink)| {
        info!(path = %unlink.0.display(), "API socket listening (root only, no token needed)");
        // Its permissions are the access control: whoever can connect may change routes.
        tokio::spawn(serve(listener, api::ApiState { token: None, local: true, ..api }, "API socket"));
        unlink
    });

    let watermark = Arc::new(AtomicI64::new(checkpoints.previous_run().unwrap_or_else(timestamp::now_ns)));
    let files = docker::files::FilesSetup {
        mode: config.source,
        notifier: match config.source {
            docker::files::SourceMode::Api => None,
            _ => match docker::files::notify::Notifier::start() {
                Ok(notifier) => Some(notifier),
                Err(e) => {
                    warn!(error = %e, "no inotify instance for json-file logs (root's fs.inotify.max_user_instances reached?); they are polled every 250 ms");
                    None
                }
            },
        },
        warned: Default::default(),
    };
    let watcher = Watcher::new(
        WatcherConfig {
            files: Arc::new(files),
            hostname: config.hostname.clone(),
            backlog: config.backlog,
            max_line_bytes: config.max_line_bytes,
            own_id: docker::own_container_id(),
            enrichment: Arc::new(config.enrichment.clone()),
        },
        WatcherParts {
            connector: Arc::new(DockerConnector { host: config.docker_host.clone() }),
            router: router.clone(),
            checkpoints: Arc::clone(&checkpoints),
            watermark: Arc::clone(&watermark),
            stats: Arc::clone(&reader_stats),
            board,
            health: health_tx,
            cancel: shutdown.clone(),
        },
    );
    // Once the watcher and its readers are done, `router.close()` (below) lets the routes see
    // their queues close and finish what they hold.
    let watcher = tokio::spawn(watcher.run());
    let mut every = tokio::time::interval(config.checkpoint_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => persist(&checkpoints, &watermark, &checkpoint_health).await,
            () = shutdown.cancelled() => break,
        }
    }
    let deadline = tokio::time::Instant::now() + config.shutdown_grace;
    info!(grace = ?config.shutdown_grace, "shutting down: reading stopped, delivering what is queued");
    match tokio::time::timeout_at(deadline, watcher).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(error = %e, "watcher task failed"),
        Err(_) => warn!("readers did not stop within the grace period"),
    }
    // The readers are done: with the router's queues gone, the routes finish what they hold.
    router.close();
    for route in routes.routes() {
        let Some(mut task) = route.take_task() else { continue };
        let ended = match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(ended) => ended,
            Err(_) => {
                abort.cancel();
                task.await
            }
        };
        if let Err(e) = ended {
            error!(route = %route.uri, error = %e, "route supervisor failed; what it held is read again at the next start");
        }
        let s = &route.stats;
        info!(route = %route.uri, sent = s.sent.get(), filtered = s.filtered.get(), dropped_full = s.dropped_full.get(),
              dropped_failed = s.dropped_failed.get(), undelivered = s.undelivered.get(),
              reconnects = s.reconnects.get(), crashes = s.crashes.get(), "route closed");
    }
    // Everything the routes accepted, and only that, is where the next start resumes.
    persist(&checkpoints, &watermark, &checkpoint_health).await;
    info!(
        lines = reader_stats.lines.get(),
        empty_lines = reader_stats.empty_lines.get(),
        truncated = reader_stats.truncated_lines.get(),
        repeated = reader_stats.repeated_entries.get(),
        unshipped_bytes = reader_stats.unshipped_bytes.get(),
        lost_logs = reader_stats.lost_logs.get(),
        unconfirmed_ends = reader_stats.unconfirmed_ends.get(),
        "stopped"
    );
    drop(socket_guard);
    Ok(())
}
