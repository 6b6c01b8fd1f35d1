//! The HTTP API: GET /health, /metrics, /containers and /logs, and /routes.

mod auth;
mod logs;
mod metrics;
mod routes;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::containers::{Board, ContainerReport};
use crate::health::{HealthSources, Report};
use crate::routes::table::RouteTable;
use crate::tail::Tail;
pub use metrics::{registry, MetricSources};

/// What the endpoints read.
#[derive(Clone)]
pub struct ApiState {
    pub health: HealthSources,
    pub metrics: Arc<Registry>,
    pub containers: Arc<Board>,
    pub tail: Arc<Tail>,
    /// Ends the live streams when spout stops.
    pub cancel: CancellationToken,
    /// What /logs, /containers and /routes require.
    pub token: Option<Arc<str>>,
    /// The API listens on loopback only.
    pub loopback: bool,
    pub routes: Arc<RouteTable>,
}

impl ApiState {
    /// Each route's URI and state.
    fn route_states(&self) -> Vec<(Arc<str>, Arc<crate::routes::RouteStatus>)> {
        self.routes.routes().iter().map(|r| (Arc::clone(&r.uri), Arc::clone(&r.status))).collect()
    }
}

/// A 4xx or 5xx answer with a JSON body `{"error": "..."}`.
pub(crate) fn error(code: StatusCode, message: String) -> axum::response::Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

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
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], metrics::render(&state.metrics))
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

pub async fn serve(listener: TcpListener, state: ApiState, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}
