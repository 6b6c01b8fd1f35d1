//! Messages posted over HTTP or HTTPS, one request at a time on a kept-alive connection:
//! GELF to Graylog's HTTP input (`gelf+http://`, `gelf+https://`), one message a request or,
//! with `bulk=true`, many separated by newlines; or OTLP logs (`otlp+http://`, `otlp+https://`),
//! many records a request ([`super::otlp`]).
//!
//! HTTP has an acknowledgement of its own: a request's messages are accepted on a 2xx answer
//! (with OTLP, less the records a partial success names as rejected: dropped and counted).
//! A 5xx, a 429 or 408, a lost connection or no answer within `timeout` sends the same body again
//! after a backoff (or the `Retry-After` the server asked for), so nothing is lost; so does a
//! 3xx (redirects are not followed), 401, 403, 404 or 407, which no message can be the cause of
//! (the route's address or its credentials are wrong): the route is down until someone fixes it,
//! and the lines wait. Any other 4xx refuses those messages themselves: they are dropped,
//! counted, and logged once for each status.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use super::codec::{Codec, Format, Framing};
use super::context::{Fill, RouteContext};
use super::otlp::{self, Records};
use super::tls::TlsSettings;
use super::uri::{BodyEncoding, HttpRoute, Payload};

/// How long one address may take to accept a connection, TLS included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer's body read (and thrown away) to keep the connection for the next
/// request; a longer one costs the connection.
const MAX_ANSWER: usize = 64 * 1024;
/// The longest `Retry-After` taken at its word.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What became of a request.
enum Answer {
    /// With the answer's body.
    Accepted(Bytes),
    /// Refused for what it holds: its messages are dropped.
    Refused(StatusCode),
    /// Send it again, after this long if the server said.
    Retry(String, Option<Duration>),
}

pub async fn run(ctx: &mut RouteContext, route: &HttpRoute) {
    if let Some(tls) = &route.tls {
        tls.warn_if_insecure(&ctx.name, &route.addr);
    }
    let mut codec = Codec::new(Format::Gelf, Framing::Newline);
    let mut records = Records::default();
    // One message a request, or as many as fit in the body.
    let limit = if route.payload == Payload::Gelf { 1 } else { route.max_body };
    let max_body = route.max_body;
    let content_type = match route.payload {
        Payload::Otlp => "application/x-protobuf",
        _ => "application/json",
    };
    let mut rejections: u64 = 0;
    let mut body: Vec<u8> = Vec::with_capacity(max_body);
    let mut conn: Option<Conn> = None;
    let mut refused: HashSet<StatusCode> = HashSet::new();
    loop {
        if ctx.is_done() {
            return;
        }
        body.clear();
        let mut unfit = 0;
        let filled = ctx
            .fill_body(&mut body, limit, |out, msg| {
                let fits = match route.payload {
                    Payload::Otlp => records.push_within(out, msg, max_body),
                    _ => codec.write_within(out, msg, max_body),
                };
                if !fits {
                    unfit += 1;
                }
            })
            .await;
        let count = match filled {
            Fill::Filled(n) => n,
            Fill::Aborted => return ctx.abandon(),
            // Every request was answered before the next was filled: nothing is left.
            Fill::Closed => return,
        };
        if unfit > 0 {
            ctx.stats.dropped_failed.add(unfit);
            warn!(route = %ctx.name, messages = unfit, max_body, "messages whose metadata alone is larger than max_body are dropped");
        }
        if body.is_empty() {
            ctx.accept(count);
            continue;
        }
        if route.payload == Payload::Otlp {
            // The body measured the records; the request is made of those it took.
            records.keep(count - unfit as usize);
            body = records.take_request();
        }
        let payload = match route.compress {
            BodyEncoding::Gzip => gzip(&body),
            BodyEncoding::Identity => Bytes::copy_from_slice(&body),
        };
        loop {
            let answer = tokio::select! {
                answer = post(&mut conn, ctx, route, content_type, payload.clone()) => answer,
                () = ctx.abort.cancelled() => return ctx.abandon(),
            };
            match answer {
                Answer::Accepted(answer) => {
                    if let Some((rejected, why)) = otlp::rejected(&answer).filter(|_| route.payload == Payload::Otlp) {
                        ctx.stats.dropped_refused.add(rejected);
                        rejections += 1;
                        if rejections.is_power_of_two() {
                            warn!(route = %ctx.name, records = rejected, reason = %why, rejections,
                                  "the destination rejected records of an accepted request; they are dropped (counted in spout_messages_dropped_total{{reason=\"refused\"}})");
                        }
                    }
                    ctx.stats.sent.add(count as u64);
                    ctx.stats.bytes_sent.add(payload.len() as u64);
                    ctx.accept(count);
                    ctx.status.delivered();
                    ctx.backoff.reset();
                    break;
                }
                Answer::Refused(status) => {
                    ctx.stats.dropped_refused.add(count as u64);
                    ctx.accept(count);
                    if refused.insert(status) {
                        warn!(route = %ctx.name, status = status.as_u16(), messages = count,
                              "the destination refused a request; its messages are dropped (logged once per status, counted in spout_messages_dropped_total{{reason=\"refused\"}})");
                    }
                    break;
                }
                Answer::Retry(why, after) => {
                    ctx.status.down(&why);
                    let failures = ctx.stats.request_failures.add(1);
                    if failures.is_power_of_two() {
                        warn!(route = %ctx.name, peer = %route.addr, error = %why, failures, "request failed, sending it again");
                    }
                    let delay = after.unwrap_or_else(|| ctx.backoff.next_delay());
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = ctx.abort.cancelled() => return ctx.abandon(),
                    }
                }
            }
        }
    }
}

/// A kept-alive connection: the request half, and the task driving it.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    _driver: AbortOnDropHandle<()>,
}

/// Posts `payload` on the connection, connecting first if there is none (or it closed).
async fn post(
    conn: &mut Option<Conn>,
    ctx: &RouteContext,
    route: &HttpRoute,
    content_type: &'static str,
    payload: Bytes,
) -> Answer {
    // A kept-alive connection that the server closed (idle too long) just as the request went
    // out fails it: no failure of the destination's, so the request goes again at once, once, on
    // a new connection.
    let mut stale_ok = true;
    loop {
        let reused = match conn.as_ref() {
            Some(c) if !c.sender.is_closed() => true,
            _ => {
                *conn = None;
                match connect(route).await {
                    Ok(c) => {
                        info!(route = %ctx.name, peer = %route.addr, "connected");
                        *conn = Some(c);
                        false
                    }
                    Err(e) => {
                        ctx.stats.connect_failures.add(1);
                        return Answer::Retry(e, None);
                    }
                }
            }
        };
        match exchange(conn, route, content_type, payload.clone()).await {
            Err(Exchange::Failed(_)) if reused && std::mem::take(&mut stale_ok) => continue,
            Err(Exchange::Failed(e)) => return Answer::Retry(format!("{}: {e}", route.addr), None),
            Err(Exchange::TimedOut) => {
                let waited = humantime::format_duration(route.timeout);
                return Answer::Retry(format!("{}: no answer within {waited}", route.addr), None);
            }
            Ok((status, after, read)) => return answer(status, after, read),
        }
    }
}

/// Why a request got no answer.
enum Exchange {
    Failed(String),
    TimedOut,
}

/// Sends the request on the connection and reads the answer; the connection is dropped unless
/// it can carry the next request.
async fn exchange(
    conn: &mut Option<Conn>,
    route: &HttpRoute,
    content_type: &'static str,
    payload: Bytes,
) -> Result<(StatusCode, Option<Duration>, Option<Bytes>), Exchange> {
    let Some(c) = conn.as_mut() else { return Err(Exchange::Failed("not connected".to_owned())) };
    let answer = tokio::time::timeout(route.timeout, async {
        c.sender.ready().await.map_err(|e| e.to_string())?;
        let response = c.sender.send_request(request(route, content_type, payload)).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        // Read to its end (up to a limit), so that the connection can carry the next request.
        let read = http_body_util::Limited::new(response.into_body(), MAX_ANSWER).collect().await;
        Ok::<_, String>((status, retry_after, read.ok().map(|body| body.to_bytes())))
    })
    .await;
    match answer {
        Ok(Ok(answer)) => {
            if answer.2.is_none() {
                *conn = None;
            }
            Ok(answer)
        }
        Ok(Err(e)) => {
            *conn = None;
            Err(Exchange::Failed(e))
        }
        Err(_) => {
            *conn = None;
            Err(Exchange::TimedOut)
        }
    }
}

/// What an answer means for the request's messages.
fn answer(status: StatusCode, after: Option<Duration>, read: Option<Bytes>) -> Answer {
    match status.as_u16() {
        200..=299 => Answer::Accepted(read.unwrap_or_default()),
        408 | 429 | 500..=599 => Answer::Retry(format!("HTTP {status}"), after.map(|d| d.min(MAX_RETRY_AFTER))),
        300..=399 => Answer::Retry(
            format!("HTTP {status}: redirects are not followed; give the route the address it names"),
            None,
        ),
        401 | 403 | 404 | 407 => Answer::Retry(format!("HTTP {status}: check the route's address and headers"), None),
        _ => Answer::Refused(status),
    }
}

fn request(route: &HttpRoute, content_type: &'static str, payload: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::post(route.path.as_str())
        .header(hyper::header::HOST, route.addr.to_string())
        .header(hyper::header::CONTENT_TYPE, content_type);
    if route.compress == BodyEncoding::Gzip {
        request = request.header(hyper::header::CONTENT_ENCODING, "gzip");
    }
    for header in &route.headers {
        request = request.header(&header.name, &header.value);
    }
    // Every part was checked when the route was parsed.
    request.body(Full::new(payload)).unwrap_or_else(|_| Request::new(Full::default()))
}

/// `Retry-After` in seconds (the HTTP-date form is not taken).
fn retry_after(headers: &hyper::HeaderMap) -> Option<Duration> {
    let value = headers.get(hyper::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// Connects (TLS too for `https`) and sets up HTTP/1.1 on the connection.
async fn connect(route: &HttpRoute) -> Result<Conn, String> {
    let addr = &route.addr;
    let tls = route.tls.as_ref().map(TlsSettings::handshaker).transpose()?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((addr.host.as_str(), addr.port)))
        .await
        .map_err(|_| format!("{addr}: no answer within {}", humantime::format_duration(CONNECT_TIMEOUT)))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => handshake(TokioIo::new(stream)).await,
        Some(tls) => {
            let stream = tls.shake(stream, addr, CONNECT_TIMEOUT).await.map_err(|e| e.to_string())?;
            handshake(TokioIo::new(stream)).await
        }
    }
}

async fn handshake<T>(io: T) -> Result<Conn, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn { sender, _driver: AbortOnDropHandle::new(driver) })
}
