//! GET /logs: a live stream of every message read, as `NAME|MESSAGE` lines or (`format=json`)
//! one JSON object per line, optionally filtered with the routes' `filter.*` options.
//!
//! Each client has a task of its own between the tail and its response: a client that does not
//! keep up is dropped (counted) instead of slowing anything down, and what it holds meanwhile is
//! bounded.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{broadcast, Notify};
use tracing::debug;

use super::state::{error, ApiState};
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
    let outbox = Arc::new(Outbox::default());
    tokio::spawn(forward(client, filter, json, Arc::clone(&outbox), state.cancel.clone()));
    let body = futures_util::stream::unfold(Reading(outbox), |reading| async move {
        reading.0.next().await.map(|chunk| (Ok::<_, Infallible>(chunk), reading))
    });
    let content_type = if json { "application/x-ndjson" } else { "text/plain; charset=utf-8" };
    ([(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response()
}

/// What waits for one client: at most [`CLIENT_CHUNKS`] chunks. A client that lets it fill is
/// dropped, and what waited for it is let go at once (its connection may stay open, with nothing
/// behind it, until the client goes away).
#[derive(Default)]
struct Outbox {
    chunks: Mutex<VecDeque<Bytes>>,
    /// The client was dropped, or spout stops: no more chunks.
    ended: AtomicBool,
    /// The response is gone (the client left).
    left: AtomicBool,
    ready: Notify,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Bytes>> {
        self.chunks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a chunk; false when the client has too much waiting already.
    fn push(&self, chunk: Bytes) -> bool {
        let mut chunks = self.lock();
        if chunks.len() >= CLIENT_CHUNKS {
            return false;
        }
        chunks.push_back(chunk);
        drop(chunks);
        self.ready.notify_one();
        true
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.lock().clear();
        self.ready.notify_one();
    }

    async fn next(&self) -> Option<Bytes> {
        loop {
            let ready = self.ready.notified();
            if let Some(chunk) = self.lock().pop_front() {
                return Some(chunk);
            }
            if self.ended.load(Ordering::Acquire) {
                return None;
            }
            ready.await;
        }
    }
}

/// The response's end of an outbox: dropped when the client goes away.
struct Reading(Arc<Outbox>);

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.left.store(true, Ordering::Release);
    }
}

/// Moves what the client wants from the tail to its outbox, until it leaves, falls behind, or
/// spout stops.
async fn forward(
    mut client: Client,
    filter: RouteFilter,
    json: bool,
    outbox: Arc<Outbox>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut check_left = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let batch = tokio::select! {
            batch = client.rx.recv() => batch,
            _ = check_left.tick() => {
                if outbox.left.load(Ordering::Acquire) {
                    return outbox.end();
                }
                continue;
            }
            () = cancel.cancelled() => return outbox.end(),
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(broadcast::error::RecvError::Lagged(_)) => return dropped(&client, &outbox),
            Err(broadcast::error::RecvError::Closed) => return outbox.end(),
        };
        let mut out = Vec::new();
        for msg in batch.iter().filter(|m| filter.wants_container(&m.container)[m.stream as usize]) {
            write(&mut out, msg, json);
        }
        if outbox.left.load(Ordering::Acquire) {
            return outbox.end();
        }
        if out.is_empty() {
            continue;
        }
        if !outbox.push(Bytes::from(out)) {
            return dropped(&client, &outbox);
        }
    }
}

fn dropped(client: &Client, outbox: &Outbox) {
    outbox.end();
    let total = client.tail().dropped.add(1);
    debug!(dropped = total, "a /logs client fell behind and was dropped");
}

fn write(out: &mut Vec<u8>, msg: &Message, json: bool) {
    if json {
        crate::routes::codec::write_record(out, msg);
        out.push(b'\n');
    } else {
        out.extend_from_slice(msg.container.name.as_bytes());
        out.push(b'|');
        out.extend_from_slice(msg.line.as_bytes());
        out.push(b'\n');
    }
}
