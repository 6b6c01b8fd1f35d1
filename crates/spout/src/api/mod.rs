//! The HTTP API: GET /health, /metrics, /containers and /logs, and /routes; on a TCP address,
//! and on a Unix socket that only root can use, which needs no token.

mod auth;
mod logs;
mod metrics;
mod routes;
mod state;

use std::path::Path;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::containers::ContainerReport;
use crate::health::Report;
pub use metrics::{escape as escape_label, registry, MetricSources};
use state::error;
pub use state::ApiState;

pub fn router(state: ApiState) -> Router {
    let guarded = Router::new()
        .route("/containers", get(containers_handler).fallback(method_not_allowed))
        .route("/logs", get(logs::handler).fallback(method_not_allowed))
        .route("/routes", get(routes::list).post(routes::add).fallback(method_not_allowed))
        .route("/routes/{id}", delete(routes::remove).fallback(method_not_allowed))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard_changes))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/health", get(health_handler).fallback(method_not_allowed))
        .route("/metrics", get(metrics_handler).fallback(method_not_allowed))
        .merge(guarded)
        .fallback(not_found)
        .with_state(state)
}

/// A JSON report; 200 while spout can do its job, 503 otherwise (see [`crate::health`]).
async fn health_handler(State(state): State<ApiState>) -> (StatusCode, Json<Report>) {
    let report = state.health.report(&state.route_states());
    let code = if report.problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(report))
}

async fn metrics_handler(State(state): State<ApiState>) -> impl IntoResponse {
    openmetrics(&state.metrics)
}

/// GET /metrics' answer: `registry` in the OpenMetrics text format.
pub fn openmetrics(registry: &prometheus_client::registry::Registry) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], metrics::render(registry))
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    error(StatusCode::NOT_FOUND, format!("no endpoint {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not for {}", uri.path()))
}

/// Every container spout knows, by name (see [`crate::containers`]).
async fn containers_handler(State(state): State<ApiState>) -> Json<Vec<ContainerReport>> {
    let routes: Vec<(usize, Arc<str>)> = state.routes.routes().iter().map(|r| (r.index, Arc::clone(&r.uri))).collect();
    Json(state.containers.report(&routes))
}

/// Serves the API on `listener` until `cancel`.
pub async fn serve<L>(listener: L, state: ApiState, cancel: CancellationToken) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router(state)).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}

/// The API's Unix socket, bound at `path` with root-only permissions (0600). A socket left by a
/// spout that is gone is replaced; one that answers is another spout's, using the same state
/// directory, which is refused.
pub fn bind_socket(path: &Path) -> Result<UnixListener, SocketError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let error = |source| SocketError::Io { path: path.to_owned(), source };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(SocketError::NotASocket(path.to_owned())),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(SocketError::InUse(path.to_owned())),
            Err(_) => std::fs::remove_file(path).map_err(error)?,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(error)?;
    }
    // Bound under a name of its own and made root's before it is moved into place, so that no
    // one can connect while it is still open to all.
    let mut fresh = path.as_os_str().to_owned();
    fresh.push(format!(".{}", std::process::id()));
    let fresh = std::path::PathBuf::from(fresh);
    let _ = std::fs::remove_file(&fresh);
    let listener = UnixListener::bind(&fresh).map_err(error)?;
    let placed = std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&fresh, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&fresh);
        return Err(error(e));
    }
    Ok(listener)
}

/// Why the API socket cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot listen on {}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{} exists and is not a socket", .0.display())]
    NotASocket(std::path::PathBuf),
    #[error("another spout answers on {}: two spouts must not share a state directory (give each its own --state-dir)", .0.display())]
    InUse(std::path::PathBuf),
}
