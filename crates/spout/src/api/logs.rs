//! GET /logs: a live stream of every message read, as `NAME|MESSAGE` lines or (`format=json`)
//! one JSON object per line, optionally filtered with the routes' `filter.*` options.
//!
//! Each client has a task of its own between the tail and its response: a client that does not
//! keep up is dropped (counted) instead of slowing anything down, and what it holds meanwhile is
//! bounded.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use tracing::debug;

use super::{error, ApiState};
use crate::enrich::filter::RouteFilter;
use crate::message::Message;
use crate::tail::{Client, MAX_CLIENTS};

/// Chunks of output a client may have waiting before it is dropped.
const CLIENT_CHUNKS: usize = 16;

pub async fn handler(State(state): State<ApiState>, Query(mut params): Query<BTreeMap<String, String>>) -> Response {
    let json = match params.remove("format").as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return error(StatusCode::BAD_REQUEST, format!("format: unknown '{other}' (expected text or json)"))
        }
    };
    let filter = match RouteFilter::from_options(&mut params) {
        Ok(filter) => filter,
        Err(problems) => return error(StatusCode::BAD_REQUEST, problems.join("; ")),
    };
    if let Some(name) = params.keys().next() {
        return error(StatusCode::BAD_REQUEST, format!("unknown parameter '{name}' (expected format or filter.*)"));
    }
    let Some(client) = state.tail.join() else {
        return error(StatusCode::TOO_MANY_REQUESTS, format!("{MAX_CLIENTS} clients are tailing already"));
    };
    let (tx, rx) = mpsc::channel(CLIENT_CHUNKS);
    tokio::spawn(forward(client, filter, json, tx, state.cancel.clone()));
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let content_type = if json { "application/x-ndjson" } else { "text/plain; charset=utf-8" };
    ([(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response()
}

/// Moves what the client wants from the tail to its response, until it leaves, falls behind,
/// or spout stops.
async fn forward(
    mut client: Client,
    filter: RouteFilter,
    json: bool,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        let batch = tokio::select! {
            batch = client.rx.recv() => batch,
            () = tx.closed() => return,
            () = cancel.cancelled() => return,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(broadcast::error::RecvError::Lagged(_)) => return dropped(&client),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut out = Vec::new();
        for msg in batch.iter().filter(|m| filter.wants_container(&m.container)[m.stream as usize]) {
            write(&mut out, msg, json);
        }
        if out.is_empty() {
            continue;
        }
        match tx.try_send(Ok(Bytes::from(out))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return dropped(&client),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

fn dropped(client: &Client) {
    let total = client.tail().dropped.add(1);
    debug!(dropped = total, "a /logs client fell behind and was dropped");
}

fn write(out: &mut Vec<u8>, msg: &Message, json: bool) {
    if json {
        crate::routes::stdout::write_record(out, msg);
    } else {
        out.extend_from_slice(msg.container.name.as_bytes());
        out.push(b'|');
        out.extend_from_slice(msg.line.as_bytes());
        out.push(b'\n');
    }
}
