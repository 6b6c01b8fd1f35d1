//! The HTTP API: GET /health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::{HealthSources, Report};

pub fn router(health: HealthSources) -> Router {
    Router::new().route("/health", get(health_handler)).with_state(health)
}

/// A JSON report; 200 while spout can do its job, 503 otherwise (see [`crate::health`]).
async fn health_handler(State(health): State<HealthSources>) -> (StatusCode, Json<Report>) {
    let report = health.report();
    let code = if report.problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(report))
}

pub async fn serve(listener: TcpListener, health: HealthSources, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(health)).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}
