//! /routes: the routes while spout runs. `GET` lists them, `POST {"uri": ...}` adds one (kept
//! in the state directory, back after a restart; it gets the lines read from then on), and
//! `DELETE /routes/{id}` removes one added that way (it gives up what it holds, and no
//! checkpoint waits for it any more). Every refusal is a 4xx with `{"error": ...}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::state::{error, ApiState};
use crate::routes::status::Link;
use crate::routes::table::{Origin, Route, TableError};
use crate::timestamp::format_rfc3339_ns;

#[derive(Debug, Serialize)]
pub struct RouteView {
    pub id: String,
    pub uri: String,
    pub origin: Origin,
    pub state: Link,
    pub since: String,
    pub last_error: Option<String>,
}

impl RouteView {
    fn of(route: &Route) -> Self {
        let link = route.status.snapshot();
        RouteView {
            id: route.id.clone(),
            uri: route.uri.to_string(),
            origin: route.origin,
            state: link.link,
            since: format_rfc3339_ns(link.since_ns),
            last_error: link.last_error,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoute {
    uri: String,
}

pub async fn list(State(state): State<ApiState>) -> Json<Vec<RouteView>> {
    Json(state.routes.routes().iter().map(|r| RouteView::of(r)).collect())
}

/// Takes the body as JSON whatever its Content-Type says: `curl -d` sends form encoding's, as
/// Logspout's own README shows for its routes API.
pub async fn add(State(state): State<ApiState>, body: Bytes) -> Response {
    let new: NewRoute = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("expected {{\"uri\": \"SCHEME://HOST:PORT?...\"}}: {e}"))
        }
    };
    match state.routes.add(&new.uri) {
        Ok(route) => (StatusCode::CREATED, Json(RouteView::of(&route))).into_response(),
        Err(e) => refused(&e),
    }
}

pub async fn remove(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    match state.routes.remove(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(&e),
    }
}

fn refused(e: &TableError) -> Response {
    let code = match e {
        TableError::Bad(_) => StatusCode::BAD_REQUEST,
        TableError::NotFound(_) => StatusCode::NOT_FOUND,
        TableError::Exists(_) | TableError::NotFromApi(..) | TableError::Full => StatusCode::CONFLICT,
        TableError::Save(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(code, e.to_string())
}
