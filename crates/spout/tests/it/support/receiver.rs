//! Receivers for the tests: GELF over UDP (chunked, compressed) and messages over TCP (GELF
//! NUL-framed, or JSON lines), decoding with the codec crate and keeping every message as JSON.

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{wait_until, PATIENCE};

/// Messages received so far, per container, in arrival order. Kept per container so that a test
/// polling for its own container's lines does not hold up the receiving threads.
#[derive(Clone, Default)]
pub struct Inbox {
    by_container: Arc<Mutex<HashMap<String, Vec<Value>>>>,
    /// Messages received so far: each message gets its arrival number as `_arrival`.
    arrivals: Arc<std::sync::atomic::AtomicU64>,
    /// Payloads that were not valid GELF JSON.
    pub errors: Arc<Mutex<Vec<String>>>,
}

impl Inbox {
    fn push_payload(&self, payload: &[u8]) {
        let decoded = gelf::decompress(payload, 64 << 20)
            .map_err(|e| e.to_string())
            .and_then(|json| serde_json::from_slice::<Value>(&json).map_err(|e| e.to_string()));
        match decoded {
            Ok(v) => self.push(v),
            Err(e) => self.errors.lock().expect("lock").push(e),
        }
    }

    fn push(&self, mut v: Value) {
        v["_arrival"] = self.arrivals.fetch_add(1, Ordering::SeqCst).into();
        // GELF names it `_container_id`, spout's JSON record (and an OTLP record here)
        // `container_id`.
        let id = v["_container_id"].as_str().or(v["container_id"].as_str()).unwrap_or("").to_owned();
        self.by_container.lock().expect("lock").entry(id).or_default().push(v);
    }

    /// Each record of an OTLP request (in OTLP's JSON mapping) not holding `refused`, as
    /// `{"container_id", "message", "resource": {attributes}, "record": {the record}}`.
    fn push_otlp(&self, request: &Value, refused: Option<&str>) {
        let text = |v: &Value| v["stringValue"].as_str().unwrap_or_default().to_owned();
        for resource in request["resourceLogs"].as_array().into_iter().flatten() {
            let attributes: serde_json::Map<String, Value> = resource["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|kv| (kv["key"].as_str().unwrap_or_default().to_owned(), kv["value"].clone()))
                .collect();
            let id = attributes.get("container.id").map(text).unwrap_or_default();
            let records = resource["scopeLogs"].as_array().into_iter().flatten();
            for record in records.flat_map(|scope| scope["logRecords"].as_array().cloned().unwrap_or_default()) {
                let message = text(&record["body"]);
                if refused.is_some_and(|r| message.contains(r)) {
                    continue;
                }
                let attributes = Value::Object(attributes.clone());
                self.push(serde_json::json!({"container_id": id, "message": message, "resource": attributes, "record": record}));
            }
        }
    }

    /// How many messages of one container arrived.
    pub fn count_of(&self, container_id: &str) -> usize {
        self.by_container.lock().expect("lock").get(container_id).map_or(0, Vec::len)
    }

    /// Messages of one container, in arrival order.
    pub fn of(&self, container_id: &str) -> Vec<Value> {
        self.by_container.lock().expect("lock").get(container_id).cloned().unwrap_or_default()
    }

    /// The `short_message`s (GELF) or `message`s (JSON record) of one container.
    pub fn lines_of(&self, container_id: &str) -> Vec<String> {
        let messages = self.by_container.lock().expect("lock");
        let Some(messages) = messages.get(container_id) else { return Vec::new() };
        let line = |m: &Value| m["short_message"].as_str().or(m["message"].as_str()).map(str::to_owned);
        messages.iter().map(|m| line(m).unwrap_or_else(|| "<not a string>".to_owned())).collect()
    }

    /// Waits until `n` messages of the container arrived (more may follow) and returns their lines.
    pub fn wait_lines(&self, container_id: &str, n: usize) -> Vec<String> {
        wait_until(PATIENCE, || self.count_of(container_id) >= n);
        self.lines_of(container_id)
    }

    /// Waits for `n` lines, then a little longer to catch any extra (duplicate) ones.
    pub fn settle_lines(&self, container_id: &str, n: usize) -> Vec<String> {
        self.wait_lines(container_id, n);
        let mut last = self.count_of(container_id);
        let quiet_since = Instant::now();
        let mut quiet = quiet_since;
        while quiet.elapsed() < Duration::from_millis(500) && quiet_since.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.count_of(container_id);
            if now != last {
                last = now;
                quiet = Instant::now();
            }
        }
        self.lines_of(container_id)
    }
}

pub struct UdpReceiver {
    pub port: u16,
    pub inbox: Inbox,
}

impl UdpReceiver {
    pub fn start() -> UdpReceiver {
        UdpReceiver::start_at("127.0.0.1", 0)
    }

    /// A receiver on `ip:port` (port 0: any).
    pub fn start_at(ip: &str, port: u16) -> UdpReceiver {
        let socket = UdpSocket::bind((ip, port)).expect("bind udp");
        // spout sends a batch of lines back to back, as any sender under load does; the default
        // buffer (about 90 small datagrams) would lose some before this thread reads them. Like a
        // real GELF input, the receiver sizes its buffer (capped by net.core.rmem_max).
        socket2::SockRef::from(&socket).set_recv_buffer_size(8 << 20).expect("SO_RCVBUF");
        let port = socket.local_addr().expect("addr").port();
        let inbox = Inbox::default();
        let sink = inbox.clone();
        std::thread::spawn(move || {
            let mut reassembler = gelf::Reassembler::new(64 << 20, 64 << 20, Duration::from_secs(5));
            let mut buf = vec![0u8; 65_536];
            while let Ok(n) = socket.recv(&mut buf) {
                match reassembler.push(&buf[..n], Instant::now()) {
                    Ok(Some(payload)) => sink.push_payload(&payload),
                    Ok(None) => {}
                    Err(e) => sink.errors.lock().expect("lock").push(e.to_string()),
                }
            }
        });
        UdpReceiver { port, inbox }
    }
}

/// A TCP receiver of messages each ended by a delimiter (NUL for GELF, a newline for JSON lines)
/// that can be stopped (every connection closed, the port released) and started again on the
/// same port.
pub struct TcpReceiver {
    pub ip: String,
    pub port: u16,
    pub inbox: Inbox,
    running: Option<Arc<AtomicBool>>,
    delimiter: u8,
}

impl TcpReceiver {
    pub fn start() -> TcpReceiver {
        TcpReceiver::start_on(super::free_port())
    }

    /// A receiver of messages each ended by a newline.
    pub fn start_lines() -> TcpReceiver {
        let mut r = TcpReceiver {
            ip: "127.0.0.1".into(),
            port: super::free_port(),
            inbox: Inbox::default(),
            running: None,
            delimiter: b'\n',
        };
        r.resume();
        r
    }

    pub fn start_on(port: u16) -> TcpReceiver {
        TcpReceiver::start_at("127.0.0.1", port, Inbox::default())
    }

    /// A receiver on `ip:port` keeping what it receives in `inbox` (which others may share).
    pub fn start_at(ip: &str, port: u16, inbox: Inbox) -> TcpReceiver {
        let mut r = TcpReceiver { ip: ip.to_owned(), port, inbox, running: None, delimiter: 0 };
        r.resume();
        r
    }

    /// The spout route that sends here.
    pub fn route(&self) -> String {
        format!("gelf+tcp://127.0.0.1:{}", self.port)
    }

    /// Starts listening again, keeping what was received.
    pub fn resume(&mut self) {
        // The old listener's thread lets go of the port within a few milliseconds of stop().
        let mut listener = TcpListener::bind((self.ip.as_str(), self.port));
        for _ in 0..100 {
            if listener.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            listener = TcpListener::bind((self.ip.as_str(), self.port));
        }
        let listener = listener.expect("bind tcp");
        listener.set_nonblocking(true).expect("nonblocking");
        let running = Arc::new(AtomicBool::new(true));
        self.running = Some(Arc::clone(&running));
        let inbox = self.inbox.clone();
        let delimiter = self.delimiter;
        std::thread::spawn(move || {
            while running.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let inbox = inbox.clone();
                        let running = Arc::clone(&running);
                        // One thread reads, as fast as the socket gives; another decodes. What
                        // was read before stop() is decoded (a receiver that took it in); what was
                        // still in the socket is lost, as in a crash.
                        let (chunks_tx, chunks_rx) = std::sync::mpsc::channel::<Vec<u8>>();
                        std::thread::spawn(move || {
                            let mut pending: Vec<u8> = Vec::new();
                            for chunk in chunks_rx {
                                pending.extend_from_slice(&chunk);
                                let mut start = 0;
                                while let Some(len) = pending[start..].iter().position(|&b| b == delimiter) {
                                    inbox.push_payload(&pending[start..start + len]);
                                    start += len + 1;
                                }
                                pending.drain(..start);
                            }
                        });
                        std::thread::spawn(move || {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
                            let mut buf = vec![0u8; 256 * 1024];
                            while running.load(Ordering::SeqCst) {
                                match conn.read(&mut buf) {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        if chunks_tx.send(buf[..n].to_vec()).is_err() {
                                            break;
                                        }
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => break,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
    }

    /// Stops accepting and drops every connection (what was not read yet is lost, as with a
    /// crashed destination).
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.store(false, Ordering::SeqCst);
        }
        // Let the threads notice and close their sockets.
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Drop for TcpReceiver {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.store(false, Ordering::SeqCst);
        }
    }
}

/// GELF or OTLP over HTTP: Python's own HTTP server (`http_receiver.py`) answering requests, every
/// request kept (path, headers, decompressed body or decoded OTLP, the answer given) and every
/// message of a 2xx-answered body in the inbox (GELF, one per line; OTLP, each record not
/// rejected). Killed when dropped.
pub struct HttpReceiver {
    pub port: u16,
    pub inbox: Inbox,
    requests: Arc<Mutex<Vec<Value>>>,
    child: std::process::Child,
    running: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

/// How an [`HttpReceiver`] answers.
#[derive(Default)]
pub struct Answers<'a> {
    /// These statuses to the first requests, in turn (429 and 503 with Retry-After: 1).
    pub fail: &'a [u16],
    /// 400 to a body holding this.
    pub refuse: Option<&'a str>,
}

impl HttpReceiver {
    pub fn start(answers: Answers<'_>) -> HttpReceiver {
        let dir = tempfile::tempdir().expect("receiver dir");
        let out = dir.path().join("requests.json");
        let port = super::free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/http_receiver.py");
        let mut command = std::process::Command::new("python3");
        let fail: Vec<String> = answers.fail.iter().map(u16::to_string).collect();
        command.arg(script).arg(port.to_string()).arg(&out).arg("--fail").arg(fail.join(","));
        if let Some(text) = answers.refuse {
            command.arg("--refuse").arg(text);
        }
        let child = command.spawn().expect("start python3 http_receiver.py");
        let listening = wait_until(PATIENCE, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(listening, "the HTTP receiver does not listen on {port}");
        let (inbox, requests, running) =
            (Inbox::default(), Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(true)));
        let (sink, kept, go_on) = (inbox.clone(), Arc::clone(&requests), Arc::clone(&running));
        let refused = answers.refuse.map(str::to_owned);
        std::thread::spawn(move || {
            let mut read = 0;
            while go_on.load(Ordering::SeqCst) {
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                // Whole lines only: the server may be writing the last one.
                let end = text.rfind('\n').map_or(0, |i| i + 1);
                for line in text[read.min(end)..end].lines() {
                    let request: Value = serde_json::from_str(line).expect("a request record");
                    if request["status"].as_u64().is_some_and(|s| (200..300).contains(&s)) {
                        for message in request["body"].as_str().unwrap_or("").split('\n').filter(|m| !m.is_empty()) {
                            sink.push_payload(message.as_bytes());
                        }
                        sink.push_otlp(&request["otlp"], refused.as_deref());
                    }
                    kept.lock().expect("lock").push(request);
                }
                read = end;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        HttpReceiver { port, inbox, requests, child, running, _dir: dir }
    }

    /// Every request so far: `path`, `headers`, `body` and the `status` answered.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
