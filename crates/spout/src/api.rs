//! The HTTP API: GET /health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::docker::watcher::Health;

pub fn router(health: watch::Receiver<Health>) -> Router {
    Router::new().route("/health", get(health_handler)).with_state(health)
}

/// 200 while connected to the Docker events stream, 503 with the reason otherwise.
async fn health_handler(State(health): State<watch::Receiver<Health>>) -> (StatusCode, String) {
    match &*health.borrow() {
        Health::Connected => (StatusCode::OK, "ok\n".to_owned()),
        Health::Disconnected(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

pub async fn serve(
    listener: TcpListener,
    health: watch::Receiver<Health>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(health)).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}
