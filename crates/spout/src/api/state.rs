//! What the endpoints share: the state they read, and how they answer an error.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::containers::Board;
use crate::health::HealthSources;
use crate::routes::table::RouteTable;
use crate::tail::Tail;

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
    /// Only this host can reach the API here: it listens on loopback, or on the Unix socket.
    pub local: bool,
    pub routes: Arc<RouteTable>,
}

impl ApiState {
    /// Each route's URI and state.
    pub(super) fn route_states(&self) -> Vec<(Arc<str>, Arc<crate::routes::status::RouteStatus>)> {
        self.routes.routes().iter().map(|r| (Arc::clone(&r.uri), Arc::clone(&r.status))).collect()
    }
}

/// A 4xx or 5xx answer with a JSON body `{"error": "..."}`.
pub(crate) fn error(code: StatusCode, message: String) -> axum::response::Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}
