//! The HTTP input: `POST /gelf` (GELF, one message a request, or one a line with `--http-bulk`)
//! and `POST /v1/logs` (OTLP logs, protobuf or JSON). A request is answered only once what it
//! carries was decoded, checked and queued: 202 (OTLP: 200), or 400 naming the problem, and
//! nothing of a refused request is kept. Browsers are let in from the `--cors-origin`s only.
//!
//! Each client is bounded: its headers within 10 s, its body within `max_body` bytes and 30 s,
//! decompressed within `max_decompressed`, the messages decoded from it within `max_weight`, its
//! requests within a rate; the input holds at most so many connections, and so many from one
//! address ([`super::clients`]). A request waits for room in the queue at most
//! [`HTTP_WAIT`], then is answered 503, keeping nothing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::clients::{self, Client};
use super::event::{Event, Invalid};
use super::intake::{now_s, Intake, NotQueued, HTTP_WAIT};
use super::otlp;
use super::stats::Input;

/// A client's request headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// And its body within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct HttpInput {
    pub intake: Intake,
    /// `POST /gelf` takes one message a line.
    pub bulk: bool,
    /// Origins whose pages may post (`*`: any).
    pub cors: Vec<String>,
    pub max_body: usize,
    /// Most a body may decompress to (a single message: `intake.max_message`).
    pub max_decompressed: usize,
    /// Most memory the messages of one request may hold, as their weights count it.
    pub max_weight: usize,
    pub clients: Arc<clients::Places>,
    pub limiter: Limiter,
}

/// Serves clients until `stop`.
pub async fn run(listener: TcpListener, input: Arc<HttpInput>, stop: CancellationToken) {
    let tasks = TaskTracker::new();
    while let Some(Client { stream, peer, place }) = input.clients.next(&listener, &stop).await {
        let (input, stop) = (Arc::clone(&input), stop.clone());
        tasks.spawn(async move {
            let stats = Arc::clone(&input.intake.stats);
            stats.clients.fetch_add(1, Ordering::Relaxed);
            let service = hyper::service::service_fn(move |request| {
                let input = Arc::clone(&input);
                async move { Ok::<_, std::convert::Infallible>(input.answer(request, peer).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
                }
            }
            stats.clients.fetch_sub(1, Ordering::Relaxed);
            drop(place);
        });
    }
    tasks.close();
    tasks.wait().await;
}

type Answer = Response<Full<Bytes>>;

impl HttpInput {
    async fn answer(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        let origin = request.headers().get(header::ORIGIN).cloned();
        let path = request.uri().path();
        let input = match path {
            "/gelf" => Input::Http,
            "/v1/logs" => Input::Otlp,
            _ => return json_error(StatusCode::NOT_FOUND, &format!("no endpoint {path}")),
        };
        if let Some(origin) = &origin {
            if !self.allows(origin) {
                // A browser would refuse the answer anyway; nothing it sent is kept either.
                let why = Invalid::Origin(shown(origin));
                self.intake.refused(input, &why, &peer);
                return json_error(StatusCode::FORBIDDEN, &why.to_string());
            }
        }
        let answer = match *request.method() {
            Method::OPTIONS => preflight(),
            Method::POST if self.limiter.allow(peer.ip(), Instant::now()) => self.post(input, request, peer).await,
            Method::POST => {
                self.intake.stats.limited.add(1);
                let mut answer = json_error(StatusCode::TOO_MANY_REQUESTS, "too many requests from this client");
                answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                answer
            }
            ref other => json_error(StatusCode::METHOD_NOT_ALLOWED, &format!("{other} is not for {path}")),
        };
        with_cors(answer, origin)
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.cors.iter().any(|allowed| allowed == "*" || origin.as_bytes() == allowed.as_bytes())
    }

    async fn post(&self, input: Input, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.trim_start().starts_with("application/json"));
        let encoding = request.headers().get(header::CONTENT_ENCODING).map(|e| e.as_bytes().to_ascii_lowercase());
        if let Some(e) = &encoding {
            if !matches!(e.as_slice(), b"gzip" | b"x-gzip" | b"deflate" | b"identity") {
                let why = format!("Content-Encoding {} is not gzip, deflate or identity", String::from_utf8_lossy(e));
                return json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, &why);
            }
        }
        let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(request.into_body(), self.max_body).collect())
            .await
        {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                self.intake.refused(input, &Invalid::TooLarge(self.max_body), &peer);
                return json_error(StatusCode::PAYLOAD_TOO_LARGE, &format!("the body is over {} bytes", self.max_body));
            }
            Ok(Err(e)) => return json_error(StatusCode::BAD_REQUEST, &format!("cannot read the body: {e}")),
            Err(_) => return json_error(StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time"),
        };
        // gzip and zlib are told by their first bytes, whatever the header says. One message
        // is at most a message's size; several, a body's.
        let one = input == Input::Http && !self.bulk;
        let max = if one { self.intake.max_message } else { self.max_decompressed };
        let body = match gelf::decompress(&body, max) {
            Ok(body) => body,
            Err(e) => {
                let why = Invalid::from(e);
                self.intake.refused(input, &why, &peer);
                return json_error(StatusCode::BAD_REQUEST, &why.to_string());
            }
        };
        match input {
            Input::Otlp => self.post_otlp(&body, json, peer).await,
            _ => self.post_gelf(&body, peer).await,
        }
    }

    async fn post_gelf(&self, body: &[u8], peer: SocketAddr) -> Answer {
        let now = now_s();
        // Taken a line at a time: what a request costs grows with what passed the checks.
        let lines = body.split(|&b| b == b'\n').filter(|line| !line.iter().all(u8::is_ascii_whitespace));
        let parts: Box<dyn Iterator<Item = &[u8]>> =
            if self.bulk { Box::new(lines) } else { Box::new(std::iter::once(body)) };
        let (mut events, mut weight) = (Vec::new(), 0);
        for (n, part) in parts.enumerate() {
            let at = if self.bulk { format!("message {}: ", n + 1) } else { String::new() };
            let event = if part.len() > self.intake.max_message {
                Err(Invalid::TooLarge(self.intake.max_message))
            } else {
                Event::parse(part, now)
            };
            match event {
                Ok(event) => {
                    weight += event.weight();
                    events.push(event);
                }
                Err(why) => {
                    self.intake.refused(Input::Http, &why, &peer);
                    return json_error(StatusCode::BAD_REQUEST, &format!("{at}{why}; nothing was kept"));
                }
            }
            if weight > self.max_weight {
                return self.too_heavy(Input::Http, peer);
            }
        }
        if events.is_empty() {
            let why = Invalid::ShortMessage;
            self.intake.refused(Input::Http, &why, &peer);
            return json_error(StatusCode::BAD_REQUEST, "no message in the body");
        }
        match self.intake.deliver(Input::Http, events, Some(HTTP_WAIT)).await {
            Ok(()) => {
                let mut answer = Response::new(Full::new(Bytes::new()));
                *answer.status_mut() = StatusCode::ACCEPTED;
                answer
            }
            Err(why) => unavailable(why),
        }
    }

    /// A request whose messages would hold more than `max_weight`: refused whole.
    fn too_heavy(&self, input: Input, peer: SocketAddr) -> Answer {
        let why = Invalid::TooLarge(self.max_weight);
        self.intake.refused(input, &why, &peer);
        let text =
            format!("the messages of this request would hold more than {} bytes; nothing was kept", self.max_weight);
        json_error(StatusCode::PAYLOAD_TOO_LARGE, &text)
    }

    async fn post_otlp(&self, body: &[u8], json: bool, peer: SocketAddr) -> Answer {
        let decoded = match otlp::decode(body, json, &peer.ip().to_string(), now_s(), self.max_weight) {
            Ok(decoded) => decoded,
            Err(Invalid::TooLarge(_)) => return self.too_heavy(Input::Otlp, peer),
            Err(why) => {
                self.intake.refused(Input::Otlp, &why, &peer);
                return json_error(StatusCode::BAD_REQUEST, &why.to_string());
            }
        };
        for why in &decoded.refused {
            self.intake.refused(Input::Otlp, why, &peer);
        }
        if decoded.events.is_empty() && !decoded.refused.is_empty() {
            return json_error(StatusCode::BAD_REQUEST, &format!("no log record was valid: {}", decoded.refused[0]));
        }
        if !decoded.events.is_empty() {
            if let Err(why) = self.intake.deliver(Input::Otlp, decoded.events, Some(HTTP_WAIT)).await {
                return unavailable(why);
            }
        }
        let (content_type, body) = otlp::response(&decoded.refused, json);
        let mut answer = Response::new(Full::new(Bytes::from(body)));
        answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        answer
    }
}

/// 503: stopping, or no room in time; the client may send again later, nothing was kept.
fn unavailable(why: NotQueued) -> Answer {
    let mut answer = json_error(StatusCode::SERVICE_UNAVAILABLE, &format!("{why}; nothing was kept"));
    answer.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    answer
}

/// The answer to a browser's preflight from an allowed origin.
fn preflight() -> Answer {
    let mut answer = Response::new(Full::new(Bytes::new()));
    *answer.status_mut() = StatusCode::NO_CONTENT;
    let headers = answer.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, content-encoding"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    answer
}

/// Lets the page of an allowed `origin` read the answer.
fn with_cors(mut answer: Answer, origin: Option<HeaderValue>) -> Answer {
    let headers = answer.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    answer
}

fn json_error(status: StatusCode, why: &str) -> Answer {
    let body = serde_json::json!({ "error": why }).to_string();
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}

/// A header's value for a message: at most 100 characters of it.
fn shown(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).chars().take(100).collect()
}

/// Requests a client may make: `rate` a second, `2 × rate` at once. Clients are told by their
/// address; at most `MAX_CLIENTS` are remembered, after which those at rest are forgotten.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

const MAX_CLIENTS: usize = 65_536;

impl Limiter {
    pub fn new(rate: f64) -> Limiter {
        Limiter { rate, clients: Mutex::default() }
    }

    fn burst(&self) -> f64 {
        (2.0 * self.rate).max(1.0)
    }

    /// Whether `client` may make a request at `now` (taking one if so).
    pub fn allow(&self, client: IpAddr, now: Instant) -> bool {
        let client = clients::network(client);
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let burst = self.burst();
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            let rate = self.rate;
            clients.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
            if clients.len() >= MAX_CLIENTS {
                clients.clear();
            }
        }
        let bucket = clients.entry(client).or_insert(Bucket { tokens: burst, at: now });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_a_burst_then_its_rate_and_others_are_not_held_back() {
        let limiter = Limiter::new(10.0);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| limiter.allow(a, t0)).count();
        assert_eq!(allowed, 20, "a burst of twice the rate");
        assert!(limiter.allow(b, t0), "another client has its own allowance");
        let later = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| limiter.allow(a, later)).count(), 5, "then the rate");
    }

    #[test]
    fn the_addresses_of_one_ipv6_network_share_an_allowance() {
        let limiter = Limiter::new(1.0);
        let t0 = Instant::now();
        let allowed =
            (0..10u16).filter(|n| limiter.allow(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, *n]), t0)).count();
        assert_eq!(allowed, 2, "one /64, one burst");
    }

    #[test]
    fn the_clients_remembered_are_bounded() {
        let limiter = Limiter::new(1.0);
        let t0 = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 + 10) {
            assert!(limiter.allow(IpAddr::from(n.to_be_bytes()), t0));
        }
        assert!(limiter.clients.lock().expect("lock").len() <= MAX_CLIENTS);
    }
}
