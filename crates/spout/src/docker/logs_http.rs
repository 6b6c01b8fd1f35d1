//! The logs endpoint, read as raw bytes.
//!
//! bollard decodes a TTY container's log by holding output until its next newline, searching the
//! whole held buffer again at every read: a container that writes 100 MB without a newline costs
//! memory without bound and time that grows with the square of it, on spout's one thread. So this
//! one request is made with hyper (the HTTP client bollard itself uses) and its body handed to
//! [`super::frames`], which holds one entry at a time. Everything else goes through bollard.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::source::{BoxStream, LogsRequest, SourceError};
use super::{root_cause, DockerHost};

/// How long to wait for the daemon to start answering (not for the end of a stream).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes of an error answer read.
const MAX_ERROR_BODY: usize = 64 * 1024;

enum Transport {
    Unix { client: Client<hyperlocal::UnixConnector, Empty<Bytes>>, socket: PathBuf },
    Tcp { client: Client<HttpConnector, Empty<Bytes>>, authority: String },
}

pub struct LogsClient {
    transport: Transport,
    /// The API version agreed with the daemon, e.g. `1.41`.
    version: String,
}

impl LogsClient {
    pub fn new(host: &DockerHost, version: String) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        // A stream holds its connection for as long as it runs; between streams, keeping idle
        // connections to the daemon open buys little (a Unix socket connects in microseconds)
        // and would hold a file descriptor for each container of a burst.
        builder.pool_max_idle_per_host(0);
        let transport = match host {
            DockerHost::Unix(socket) => {
                Transport::Unix { client: builder.build(hyperlocal::UnixConnector), socket: socket.clone() }
            }
            DockerHost::Tcp(authority) => {
                Transport::Tcp { client: builder.build(HttpConnector::new()), authority: authority.clone() }
            }
        };
        LogsClient { transport, version }
    }

    /// `GET /containers/{id}/logs` with timestamps, both streams, from `request.since_ns` (the
    /// daemon takes `SECONDS.NANOSECONDS`).
    pub fn logs(&self, id: &str, request: LogsRequest) -> BoxStream<Result<Bytes, SourceError>> {
        let since = request.since_ns.max(0);
        let path = format!(
            "/v{}/containers/{}/logs?stdout=1&stderr=1&timestamps=1&follow={}&since={}.{:09}",
            self.version,
            escape(id),
            u8::from(request.follow),
            since / 1_000_000_000,
            since % 1_000_000_000
        );
        let answer = match &self.transport {
            Transport::Unix { client, socket } => {
                let uri: Uri = hyperlocal::Uri::new(socket, &path).into();
                client.request(get(uri))
            }
            Transport::Tcp { client, authority } => match format!("http://{authority}{path}").parse::<Uri>() {
                Ok(uri) => client.request(get(uri)),
                Err(e) => return error_stream(SourceError::transient(format!("bad request URI: {e}"))),
            },
        };
        let id = id.to_owned();
        let answer = async move {
            let response = match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(SourceError::transient(format!("logs of {id}: {}", root_cause(&e)))),
                Err(_) => {
                    return Err(SourceError::transient(format!("logs of {id}: no answer within {ANSWER_TIMEOUT:?}")))
                }
            };
            if response.status() != StatusCode::OK {
                return Err(refusal(&id, response).await);
            }
            Ok(response.into_body())
        };
        Box::pin(LogBody::Waiting(Box::pin(answer)))
    }
}

/// A log stream: the daemon's answer, then its body's data chunk by chunk (one log entry each,
/// usually, so this is on the hot path: no per-chunk future).
enum LogBody {
    Waiting(Pin<Box<dyn Future<Output = Result<Incoming, SourceError>> + Send>>),
    Body(Incoming),
    Done,
}

impl Stream for LogBody {
    type Item = Result<Bytes, SourceError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match &mut *self {
                LogBody::Waiting(answer) => match ready!(answer.as_mut().poll(cx)) {
                    Ok(body) => *self = LogBody::Body(body),
                    Err(e) => {
                        *self = LogBody::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                LogBody::Body(body) => match ready!(Pin::new(body).poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Poll::Ready(Some(Ok(data)));
                        }
                    }
                    Some(Err(e)) => {
                        *self = LogBody::Done;
                        let e = SourceError::transient(format!("log stream: {}", root_cause(&e)));
                        return Poll::Ready(Some(Err(e)));
                    }
                    None => {
                        *self = LogBody::Done;
                        return Poll::Ready(None);
                    }
                },
                LogBody::Done => return Poll::Ready(None),
            }
        }
    }
}

fn get(uri: Uri) -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    request
}

fn error_stream(e: SourceError) -> BoxStream<Result<Bytes, SourceError>> {
    Box::pin(futures_util::stream::iter([Err(e)]))
}

/// The daemon's error answer, classified: 404 means the container is gone; a driver that cannot
/// be read says so (501, or in the message on older daemons).
async fn refusal(id: &str, response: Response<Incoming>) -> SourceError {
    let status = response.status();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while text.len() < MAX_ERROR_BODY {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    text.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    let message = serde_json::from_slice::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&text).trim().to_owned());
    let class = super::classify_status(status.as_u16(), &message);
    let message = format!("logs of {id}: {} {message}", status.as_u16());
    SourceError { class, message }
}

/// A container id or name as one URI path segment.
fn escape(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_path_segment() {
        assert_eq!(escape("28b8e9df64d0"), "28b8e9df64d0");
        assert_eq!(escape("web-1_a.b"), "web-1_a.b");
        assert_eq!(escape("../x?y"), "..%2Fx%3Fy");
    }

    #[test]
    fn refusals_are_classified() {
        use super::super::classify_status;
        use super::super::source::ErrorClass;
        assert_eq!(classify_status(404, "No such container: x"), ErrorClass::Gone);
        let removing = "can not get logs from container which is dead or marked for removal";
        assert_eq!(classify_status(409, removing), ErrorClass::Gone, "as Docker 20.10 answers for a --rm job");
        assert_eq!(classify_status(409, "container is paused"), ErrorClass::Transient);
        assert_eq!(classify_status(501, "configured logging driver does not support reading"), ErrorClass::Unreadable);
        assert_eq!(classify_status(500, "configured logging driver does not support reading"), ErrorClass::Unreadable);
        assert_eq!(classify_status(500, "oops"), ErrorClass::Transient);
    }
}
