//! The HTTP API: GET /health, /metrics, /containers and /logs.

mod auth;
mod logs;
mod metrics;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::containers::{Board, ContainerReport};
use crate::health::{HealthSources, Report};
use crate::tail::Tail;
pub use metrics::{registry, MetricSources, RouteGauges};

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
}

/// A 4xx or 5xx answer with a JSON body `{"error": "..."}`.
pub(crate) fn error(code: StatusCode, message: String) -> axum::response::Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

pub fn router(state: ApiState) -> Router {
    let guarded = Router::new()
        .route("/containers", get(containers_handler))
        .route("/logs", get(logs::handler))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard_changes))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .route("/health", get(health_handler))
        .route("/metrics", get(metrics_handler))
        .merge(guarded)
        .with_state(state)
}

/// A JSON report; 200 while spout can do its job, 503 otherwise (see [`crate::health`]).
async fn health_handler(State(state): State<ApiState>) -> (StatusCode, Json<Report>) {
    let report = state.health.report();
    let code = if report.problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(report))
}

async fn metrics_handler(State(state): State<ApiState>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], metrics::render(&state.metrics))
}

/// Every container spout knows, by name (see [`crate::containers`]).
async fn containers_handler(State(state): State<ApiState>) -> Json<Vec<ContainerReport>> {
    Json(state.containers.report())
}

pub async fn serve(listener: TcpListener, state: ApiState, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}
