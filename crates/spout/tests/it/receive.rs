//! `spout receive`, the collector end, fed by real producers: Docker's own gelf log driver,
//! spout's agent, the OpenTelemetry SDK, a browser; and by hostile senders.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::collector::Collector;
use crate::support::receiver::TcpReceiver;
use crate::support::terminal::Terminal;
use crate::support::{free_port, http, numbered, wait_until, Container, Spout, PATIENCE};

/// What a container of these tests writes: numbered lines, then one of 13,893 bytes, long
/// enough to be cut into chunks over UDP (Docker's gelf driver sends 1420-byte datagrams), even
/// gzipped.
const SCRIPT: &str = "for i in $(seq 1 50); do echo line$i; done; seq -s, 1 3000";

fn expected_lines() -> Vec<String> {
    let mut lines = numbered("line", 1..=50);
    lines.push((1..=3000).map(|n| n.to_string()).collect::<Vec<_>>().join(","));
    lines
}

#[test]
fn dockers_gelf_driver_over_udp_gzip_zlib_and_none_and_over_tcp_arrives_whole_and_once() {
    require_docker!();
    let collector = Collector::start(&[]);
    let udp = format!("gelf-address=udp://127.0.0.1:{}", collector.gelf);
    let tcp = format!("gelf-address=tcp://127.0.0.1:{}", collector.gelf);
    let mut containers = Vec::new();
    for compression in ["gzip", "zlib", "none"] {
        let kind = format!("gelf-compression-type={compression}");
        let options = ["--log-driver", "gelf", "--log-opt", &udp, "--log-opt", &kind];
        containers.push((compression, Container::run(&options, SCRIPT)));
    }
    containers.push(("tcp", Container::run(&["--log-driver", "gelf", "--log-opt", &tcp], SCRIPT)));
    for (how, c) in &containers {
        c.wait();
        let mut lines = collector.lines_of(&c.id, 51);
        if *how != "tcp" {
            // Datagrams carry no order; their content is what counts.
            lines.sort_by_key(|l| l.strip_prefix("line").and_then(|n| n.parse::<u32>().ok()).unwrap_or(u32::MAX));
        }
        assert_eq!(lines, expected_lines(), "{how}: every line once, whole\n{}", collector.stderr());
        let first = &collector.of(&c.id)[0];
        assert_eq!(first["_container_name"], c.name.as_str(), "{how}: {first}");
        assert_eq!(first["version"], "1.1");
        assert!(first["_image_name"].as_str().is_some_and(|i| i.starts_with("spout-test-busybox")), "{first}");
        assert!(first["timestamp"].is_f64() && first["level"] == 6 && first["host"].is_string(), "{first}");
    }
    // Settled: nothing more came, and nothing was refused.
    std::thread::sleep(Duration::from_millis(500));
    for (how, c) in &containers {
        assert_eq!(collector.of(&c.id).len(), 51, "{how}: nothing twice");
    }
    assert_eq!(collector.metric("spout_receive_messages_total{input=\"udp\"}"), 153);
    assert_eq!(collector.metric("spout_receive_messages_total{input=\"tcp\"}"), 51);
    assert!(!collector.stderr().contains("refused a message"), "{}", collector.stderr());
}

#[test]
fn spouts_agent_to_receive_over_udp_tcp_and_http_keeps_every_field() {
    require_docker!();
    let collector = Collector::start(&[]);
    // What the agent sends, as it sends it, for comparison.
    let reference = TcpReceiver::start();
    let _agent = Spout::start_healthy(&[
        &format!("gelf://127.0.0.1:{}", collector.gelf),
        &format!("gelf+tcp://127.0.0.1:{}", collector.gelf),
        &format!("gelf+http://127.0.0.1:{}", collector.http),
        &reference.route(),
        "--field",
        "team=core",
    ]);
    let c = Container::run(&["--label", "app=shop"], &format!("{SCRIPT}; echo oops >&2"));
    c.wait();
    let mut expected = expected_lines();
    expected.push("oops".into());
    let mut sent = reference.inbox.settle_lines(&c.id, 52);
    // stdout and stderr are two streams: no order holds between them.
    sent.sort();
    expected.sort();
    assert_eq!(sent, expected);
    let received = collector.wait_for(3 * 52, |m| m["_container_id"] == c.id.as_str());
    assert_eq!(received.len(), 3 * 52, "each line once over each of UDP, TCP and HTTP");
    for input in ["udp", "tcp", "http"] {
        assert_eq!(collector.metric(&format!("spout_receive_messages_total{{input=\"{input}\"}}")), 52, "{input}");
    }
    // Each arrived exactly as the agent sent it, every field and its value kept.
    for original in reference.inbox.of(&c.id) {
        let mut original = original.clone();
        original.as_object_mut().expect("object").remove("_arrival");
        let copies = received.iter().filter(|m| **m == original).count();
        assert_eq!(copies, 3, "{original}\namong\n{received:?}");
    }
    let oops = received.iter().find(|m| m["short_message"] == "oops").expect("the stderr line");
    assert_eq!((&oops["level"], &oops["_stream"], &oops["_team"]), (&Value::from(3), &"stderr".into(), &"core".into()));
}

#[test]
fn forwarded_messages_wait_for_a_destination_that_is_down_and_keep_their_fields_and_level() {
    require_docker!();
    let mut destination = TcpReceiver::start();
    destination.stop();
    let forward = format!("{}?backoff=100ms&backoff_max=500ms", destination.route());
    // A second destination wants only what went to stderr: errors and worse, by their level.
    let errors = TcpReceiver::start();
    let errors_only = format!("{}?filter.sources=stderr", errors.route());
    let collector = Collector::start(&["--forward", &forward, "--forward", &errors_only, "--field", "relay=eu-1"]);
    let message = |n: usize| {
        format!(
            r#"{{"host":"web-1","short_message":"event{n}","level":4,"_container_id":"relayed","_user":"ann","full_message":"details {n}"}}"#
        )
    };
    let mut tcp = TcpStream::connect(("127.0.0.1", collector.gelf)).expect("connect");
    for n in 1..=100 {
        tcp.write_all(format!("{}\0", message(n)).as_bytes()).expect("write");
    }
    drop(tcp);
    for n in 101..=110 {
        let answer = http(collector.http, "POST", "/gelf", &[], message(n)).map(|a| a.0);
        assert_eq!(answer, Some(202));
    }
    // Written to --out meanwhile; the destination gets them once it is back.
    assert_eq!(collector.lines_of("relayed", 110).len(), 110);
    destination.resume();
    let mut lines = destination.inbox.settle_lines("relayed", 110);
    // TCP's and HTTP's messages meet in one queue, in whichever order they came.
    lines.sort_by_key(|l| l.strip_prefix("event").and_then(|n| n.parse::<u32>().ok()));
    assert_eq!(lines, numbered("event", 1..=110));
    let relayed = destination.inbox.of("relayed");
    let first = relayed.iter().find(|m| m["short_message"] == "event1").expect("event1");
    assert_eq!((&first["host"], &first["level"], &first["_user"]), (&"web-1".into(), &4.into(), &"ann".into()));
    assert_eq!((&first["_full_message"], &first["_relay"]), (&"details 1".into(), &"eu-1".into()));
    assert_eq!(collector.metric(&format!("spout_receive_forwarded_total{{route=\"{forward}\"}}")), 110);
    let error = r#"{"host":"web-1","short_message":"payment failed","level":3,"_container_id":"relayed"}"#;
    assert_eq!(http(collector.http, "POST", "/gelf", &[], error).map(|a| a.0), Some(202));
    assert_eq!(errors.inbox.settle_lines("relayed", 1), ["payment failed"], "the route's filter decides");
}

#[test]
fn stopping_with_a_forward_destination_down_ends_after_the_grace_period_counting_what_was_not_sent() {
    let down = crate::support::free_port();
    // A queue of one: the first message is held by the route, the second waits for room.
    let forward = format!("gelf+tcp://127.0.0.1:{down}?backoff=100ms&queue=1");
    let mut collector = Collector::start(&["--forward", &forward]);
    for n in 1..=3 {
        let message = format!(r#"{{"host":"h","short_message":"held{n}","_container_id":"held"}}"#);
        assert_eq!(http(collector.http, "POST", "/gelf", &[], message).map(|a| a.0), Some(202));
    }
    assert_eq!(collector.lines_of("held", 2), ["held1", "held2"], "written to --out meanwhile");
    // And a TCP client held back, its frames read and waiting for room.
    let mut tcp = TcpStream::connect(("127.0.0.1", collector.gelf)).expect("connect");
    tcp.set_write_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let frame = format!("{{\"host\":\"h\",\"short_message\":\"{}\"}}\0", "t".repeat(1000));
    while tcp.write_all(frame.as_bytes()).is_ok() {}
    assert_eq!(
        collector.stop(),
        Some(0),
        "it ends, with the route's grace period, and says so:\n{}",
        collector.stderr()
    );
    let stderr = collector.stderr();
    assert!(
        stderr.contains("shutdown grace period over, messages not delivered") && stderr.contains("messages=1"),
        "{stderr}"
    );
    assert_eq!(collector.lines_of("held", 3).len(), 3, "what was queued is still written");
}

#[test]
fn one_address_gets_its_share_of_the_clients_and_no_more() {
    let collector = Collector::start(&["--max-clients-per-address", "2"]);
    let connect = || {
        let c = TcpStream::connect(("127.0.0.1", collector.gelf)).expect("connect");
        c.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        c
    };
    let (mut first, mut second, mut third) = (connect(), connect(), connect());
    let mut byte = [0u8; 1];
    // Open: nothing to read, and no end either.
    let mut still_open = |c: &mut TcpStream| {
        c.read(&mut byte)
            .is_err_and(|e| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
    };
    assert!(!still_open(&mut third), "the third is closed at once");
    for open in [&mut first, &mut second] {
        assert!(still_open(open), "the first two stay open");
    }
    assert_eq!(collector.metric("spout_receive_clients_refused_total"), 1);
    // A place freed is a place to take.
    drop(first);
    let taken = wait_until(PATIENCE, || {
        let mut again = connect();
        still_open(&mut again)
            && again.write_all(b"{\"host\":\"h\",\"short_message\":\"in\",\"_container_id\":\"share\"}\0").is_ok()
    });
    assert!(taken);
    assert_eq!(collector.lines_of("share", 1)[0], "in");
}

#[test]
fn bad_options_are_all_named_and_exit_64() {
    let out = Command::new(env!("CARGO_BIN_EXE_spout"))
        .args(["receive", "--udp", "nope", "--cors-origin", "app.example.com", "--forward", "gelf+tcp://x"])
        .args(["--extract", "short_message=no-group"])
        .output()
        .expect("run spout receive");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    for named in [
        "--udp: 'nope'",
        "--cors-origin is for the HTTP input",
        "--cors-origin: 'app.example.com'",
        "--forward: bad route",
        "--extract: regex 'no-group' has no named group",
    ] {
        assert!(stderr.contains(named), "{named} not in:\n{stderr}");
    }
}

#[test]
fn the_udp_input_counts_what_its_full_queue_drops_and_tcp_slows_its_sender_instead() {
    // A destination that never reads: the forward route's queue fills, then the intake's, then
    // UDP drops (counted) while a TCP sender is held back and loses nothing.
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let forward = format!("gelf+tcp://127.0.0.1:{}?queue=10", stuck.local_addr().expect("addr").port());
    let collector = Collector::start(&["--forward", &forward]);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let payload = format!(r#"{{"host":"h","short_message":"{}"}}"#, "u".repeat(1000));
    for _ in 0..20_000 {
        let _ = udp.send_to(payload.as_bytes(), ("127.0.0.1", collector.gelf));
    }
    let dropped = || collector.metric("spout_receive_dropped_total{reason=\"full\"}") > 0;
    assert!(wait_until(PATIENCE, dropped), "{}", collector.stderr());
    // A TCP client is slowed down, never dropped: its writes stop being taken.
    let mut tcp = TcpStream::connect(("127.0.0.1", collector.gelf)).expect("connect");
    tcp.set_write_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let frame = format!("{payload}\0");
    let mut written = 0usize;
    while tcp.write_all(frame.as_bytes()).is_ok() {
        written += 1;
        assert!(written < 1_000_000, "a TCP sender is never held back");
    }
    drop(tcp);
    // The destination reads at last: everything the TCP client wrote whole arrives.
    let drain = std::thread::spawn(move || {
        let (mut conn, _) = stuck.accept().expect("the route's connection");
        let _ = std::io::copy(&mut conn, &mut std::io::sink());
    });
    let tcp_received = || collector.metric("spout_receive_messages_total{input=\"tcp\"}");
    assert!(wait_until(PATIENCE, || tcp_received() == written as u64), "{} of {written}", tcp_received());
    drop(collector);
    let _ = drain.join();
}

/// The GELF payload of a message `text`, gzipped.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// Datagrams of `payload` in GELF chunks of `size` payload bytes, message id `id`.
fn chunks(payload: &[u8], size: usize, id: u64) -> Vec<Vec<u8>> {
    let count = payload.len().div_ceil(size);
    payload
        .chunks(size)
        .enumerate()
        .map(|(seq, part)| [&[0x1e, 0x0f][..], &id.to_be_bytes(), &[seq as u8, count as u8], part].concat())
        .collect()
}

#[test]
fn hostile_input_is_counted_and_survived_within_its_caps_and_a_valid_message_still_arrives() {
    let mut collector = Collector::start(&["--max-pending-bytes", "8388608"]);
    let to = ("127.0.0.1", collector.gelf);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let send = |datagram: &[u8]| {
        udp.send_to(datagram, to).expect("send");
        // The kernel's buffer is big, not endless.
        std::thread::sleep(Duration::from_micros(50));
    };
    // Shuffled and duplicated chunks: one message, once.
    let whole = gzip(br#"{"host":"h","short_message":"shuffled","_container_id":"hostile"}"#);
    let mut grams = chunks(&whole, 16, 1);
    grams.reverse();
    grams.insert(1, grams[0].clone());
    grams.push(grams[2].clone());
    grams.iter().for_each(|g| send(g));
    // A chunk count over 128, a sequence number out of range, truncated gzip, invalid JSON.
    send(&[&[0x1e, 0x0f][..], &2u64.to_be_bytes(), &[0, 129], b"x"].concat());
    send(&[&[0x1e, 0x0f][..], &3u64.to_be_bytes(), &[5, 5], b"x"].concat());
    send(&whole[..whole.len() / 2]);
    send(b"{\"host\":\"h\",");
    // 200 MiB of zeros, gzipped (about 200 KB), over UDP in chunks and over HTTP.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..200 {
        bomb.write_all(&zeros).expect("gzip");
    }
    let bomb = bomb.finish().expect("gzip");
    chunks(&bomb, 8000, 4).iter().for_each(|g| send(g));
    // A valid message of 3 MiB, gzipped into one datagram: over --max-message-bytes once inflated.
    let big = format!(r#"{{"host":"h","short_message":"{}"}}"#, "b".repeat(3 << 20));
    send(&gzip(big.as_bytes()));
    let answer = http(collector.http, "POST", "/gelf", &[("Content-Encoding", "gzip")], &bomb).map(|a| a.0);
    assert_eq!(answer, Some(400), "a bomb is refused");
    // 2,000 chunked messages never completed: 16 MB of first chunks, over the 8 MiB cap.
    for id in 0..2000u64 {
        send(&chunks(&[b'x'; 16_000], 8000, 1000 + id)[0]);
    }
    // An endless TCP frame (64 MiB, no NUL), then a valid one on the same connection.
    let mut endless = TcpStream::connect(to).expect("connect");
    let mib = vec![b'e'; 1 << 20];
    for _ in 0..64 {
        endless.write_all(&mib).expect("write");
    }
    endless
        .write_all(b"\0{\"host\":\"h\",\"short_message\":\"after the endless frame\",\"_container_id\":\"hostile\"}\0")
        .expect("write");
    // A slow-loris client: its headers a byte at a time. The input closes it.
    let mut loris = TcpStream::connect(("127.0.0.1", collector.http)).expect("connect");
    loris.write_all(b"POST /gelf HTTP/1.1\r\nHost: x\r\n").expect("write");
    loris.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let closed = wait_until(PATIENCE, || {
        let _ = loris.write_all(b"X");
        let mut answer = [0u8; 512];
        match loris.read(&mut answer) {
            Ok(0) => true,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            // Some answer (a 408, say); the close follows.
            Ok(_) => false,
        }
    });
    assert!(closed, "the slow client is closed");

    let valid = r#"{"host":"h","short_message":"still here","_container_id":"hostile"}"#;
    udp.send_to(valid.as_bytes(), to).expect("send");
    let lines = collector.lines_of("hostile", 3);
    assert_eq!(lines.len(), 3, "{lines:?}\n{}", collector.stderr());
    for line in ["shuffled", "after the endless frame", "still here"] {
        assert_eq!(lines.iter().filter(|l| *l == line).count(), 1, "{line} once in {lines:?}");
    }
    assert!(collector.is_running());
    for (reason, input) in [
        ("chunk_count", "udp"),
        ("chunk_sequence", "udp"),
        ("decompress", "udp"),
        ("json", "udp"),
        ("too_large", "udp"),
        ("too_large", "http"),
        ("too_large", "tcp"),
    ] {
        let series = format!("spout_receive_invalid_total{{input=\"{input}\",reason=\"{reason}\"}}");
        assert!(collector.metric(&series) >= 1, "{series} counted:\n{}", collector.stderr());
    }
    assert!(collector.metric("spout_receive_chunked_evicted_total") >= 500, "the oldest incomplete messages gave way");
    assert!(collector.metric("spout_receive_pending_chunk_bytes") <= 8 << 20);
    // Within its caps: 8 MiB of chunks, a 2 MiB frame, an 8 MiB decompression, and buffers; the
    // bomb alone would be 200 MiB, the endless frame 64.
    let peak = collector.peak_rss_kib();
    eprintln!("spout receive after the hostile input: peak RSS {peak} KiB");
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
}

/// Whether `python3` can import `module`; if not, the test fails (or is skipped) saying so.
fn python_has(module: &str, package: &str) -> bool {
    let found = Command::new("python3").args(["-c", &format!("import {module}")]).status().is_ok_and(|s| s.success());
    if !found {
        crate::support::missing(&format!("python3 cannot import {module} (PyPI: {package})"));
    }
    found
}

#[test]
fn the_opentelemetry_sdk_exports_logs_over_otlp_http_plain_and_gzipped() {
    if !python_has("opentelemetry.exporter.otlp.proto.http", "opentelemetry-sdk opentelemetry-exporter-otlp-proto-http")
    {
        return;
    }
    let collector = Collector::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/support/otel_sdk.py");
    let endpoint = format!("http://127.0.0.1:{}/v1/logs", collector.http);
    for compression in ["none", "gzip"] {
        let out = Command::new("python3")
            .args([script, &endpoint, "20"])
            .env("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
            .env("OTEL_RESOURCE_ATTRIBUTES", format!("run={compression}"))
            .output()
            .expect("run otel_sdk.py");
        assert!(
            out.status.success(),
            "{compression}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            collector.stderr()
        );
    }
    for run in ["none", "gzip"] {
        let got = collector.wait_for(22, |m| m["_run"] == run);
        let mut expected: Vec<String> = (1..=20).map(|i| format!("order {i} placed")).collect();
        expected.extend(["stock low".to_owned(), "payment failed".to_owned()]);
        let lines: Vec<&str> = got.iter().filter_map(|m| m["short_message"].as_str()).collect();
        assert_eq!(lines, expected, "{run}: every record once, in order");
        let order = &got[6];
        assert_eq!((&order["host"], &order["level"], &order["_order.id"]), (&"sdk-host".into(), &6.into(), &7.into()));
        assert_eq!((&order["_customer"], &order["_service.name"]), (&"ann".into(), &"checkout".into()));
        assert_eq!((&got[20]["level"], &got[21]["level"]), (&4.into(), &3.into()), "warning and error");
        assert!(got.iter().all(|m| m["timestamp"].as_f64().is_some_and(|t| t > 1.7e9)), "the records' own times");
    }
    assert_eq!(collector.metric("spout_receive_messages_total{input=\"otlp\"}"), 44);
}

/// The README's two-terminal try-out.
const TRY_IT: &str = "### Try it in two terminals";

/// The README's front-end snippet: the `js` block of its try-out.
fn readme_front_end_snippet() -> String {
    let blocks = crate::support::readme_blocks(TRY_IT, "js");
    blocks.into_iter().next().expect("the README shows a front end's fetch() in a js block")
}

/// The README snippet's receiver and page origin, replaced by the test's.
const README_RECEIVER: &str = "http://localhost:12280";

/// A page that runs the README's snippet, then posts an OTLP/JSON record and a plain-text GELF
/// message (which a browser sends without asking first), and writes what became of each.
fn front_end_page(receiver: &str) -> String {
    let snippet = readme_front_end_snippet().replace(README_RECEIVER, receiver);
    format!(
        r#"<!doctype html><html><body><pre id="log"></pre><script>
const say = (t) => {{ document.getElementById("log").textContent += t + "\n"; }};
const realFetch = window.fetch;
const fetches = [];
window.fetch = (...args) => {{ const p = realFetch(...args); fetches.push(p); return p; }};
{snippet}
const now = String(Date.now() * 1000000);
fetch("{receiver}/v1/logs", {{
  method: "POST",
  headers: {{ "Content-Type": "application/json" }},
  body: JSON.stringify({{ resourceLogs: [{{ resource: {{ attributes: [{{ key: "service.name", value: {{ stringValue: "front" }} }}] }},
    scopeLogs: [{{ logRecords: [{{ timeUnixNano: now, severityNumber: 17, body: {{ stringValue: "render failed" }} }}] }}] }}] }}),
}});
fetch("{receiver}/gelf", {{ method: "POST", mode: "no-cors", body: JSON.stringify({{ host: "page", short_message: "sent without asking from " + location.hostname }}) }});
Promise.allSettled(fetches).then((results) => {{
  say("answers: " + results.map((r) => (r.status === "fulfilled" ? String(r.value.status) : "refused")).join(" "));
}});
</script></body></html>"#
    )
}

/// Loads `url` in headless Chromium until its page is done; returns the page's text.
fn chromium(url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=15000"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium (Debian's chromium)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_browser_posts_gelf_and_otlp_from_an_allowed_origin_and_is_refused_from_any_other() {
    if Command::new("chromium").arg("--version").output().is_err() {
        crate::support::missing("chromium (Debian's package) is not installed");
        return;
    }
    let pages = free_port();
    let allowed = format!("http://127.0.0.1:{pages}");
    let collector = Collector::start(&["--cors-origin", &allowed]);
    let site = Site::serve(pages, &front_end_page(&format!("http://127.0.0.1:{}", collector.http)));

    // From another origin (the same server by another name) the browser asks, is refused, and
    // sends nothing; what it sends without asking is refused by the input.
    let refused = chromium(&format!("http://localhost:{pages}/index.html"));
    assert!(refused.contains("answers: refused refused"), "{refused}");
    // From the allowed origin, the events arrive.
    let page = chromium(&format!("{allowed}/index.html"));
    assert!(page.contains("answers: 202 200"), "{page}\n{}", collector.stderr());
    drop(site);

    let clicked = collector.wait_for(1, |m| m["short_message"] == "checkout clicked");
    assert_eq!(clicked.len(), 1, "the allowed page's event, once: {:?}", collector.messages());
    assert_eq!((&clicked[0]["host"], &clicked[0]["_user"]), (&"127.0.0.1".into(), &"ann".into()));
    let failed = collector.wait_for(1, |m| m["short_message"] == "render failed");
    assert_eq!((failed.len(), &failed[0]["level"], &failed[0]["_service.name"]), (1, &3.into(), &"front".into()));
    let sent = |from: &str| {
        collector.messages().iter().any(|m| m["short_message"] == format!("sent without asking from {from}"))
    };
    assert!(sent("127.0.0.1"), "from the allowed origin, a request the browser sends without asking arrives");
    assert!(!sent("localhost"), "from any other, it is refused");
    let origin = collector.metric("spout_receive_invalid_total{input=\"http\",reason=\"origin\"}");
    assert!(origin >= 2, "the other origin's requests are counted: {origin}");
}

/// Serves `page` as /index.html on `port` with Python's HTTP server, until dropped.
struct Site {
    server: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Site {
    fn serve(port: u16, page: &str) -> Site {
        let dir = tempfile::tempdir().expect("site dir");
        std::fs::write(dir.path().join("index.html"), page).expect("page");
        let server = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let serving = wait_until(PATIENCE, || crate::support::http_get(port, "/index.html").is_some());
        assert!(serving, "the page server answers");
        Site { server, _dir: dir }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[test]
fn the_readmes_two_terminal_try_out_as_printed_shows_a_containers_line_and_a_front_ends_event() {
    require_docker!();
    let has_chromium = Command::new("chromium").arg("--version").output().is_ok();
    if !has_chromium {
        crate::support::missing("chromium (Debian's package) is not installed");
        return;
    }
    let blocks = crate::support::readme_blocks(TRY_IT, "sh");
    let [build_and_receive, agent, write, receive_http] = &blocks[..] else {
        panic!("the try-out has four sh blocks: {blocks:?}")
    };
    // Made this test's own: the debug build, free ports, a state directory of its own, the test
    // image; root already, so no sudo. The receivers' APIs are off: two may run at once.
    let spout = env!("CARGO_BIN_EXE_spout");
    let (gelf, web, pages, api) = (free_port(), free_port(), free_port(), free_port());
    let state = tempfile::tempdir().expect("state dir");
    let own = |command: &str| {
        command
            .replace("sudo target/release/spout", spout)
            .replace("target/release/spout", spout)
            .replace("12201", &gelf.to_string())
            .replace("12280", &web.to_string())
            .replace("http://localhost:3000", &format!("http://127.0.0.1:{pages}"))
            .replace(" busybox ", &format!(" {} ", crate::support::IMAGE))
    };
    let (_, receive) = build_and_receive.split_once("&& ").expect("build, then receive");
    // Its inputs' default port, 12201, made the test's own too.
    let receiver = Terminal::run(&format!("{} --udp :{gelf} --tcp :{gelf} --api off", own(receive)));
    let agent = own(agent) + &format!(" --state-dir {} --http 127.0.0.1:{api}", state.path().display());
    let _agent = Terminal::run(&agent);
    let healthy = || crate::support::http_get(api, "/health").is_some_and(|(code, _)| code == 200);
    assert!(wait_until(PATIENCE, healthy), "the agent answers: {agent}");
    let run = |command: &str| {
        let out = Command::new("sh").args(["-c", &own(command)]).output().expect("sh");
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(write);
    let shipped = || receiver.shows("\"short_message\":\"hello from a container\"");
    assert!(wait_until(PATIENCE, shipped), "never printed:\n{}\nthe agent:\n{}", receiver.output(), _agent.output());
    assert!(receiver.shows("\"_command\":\"echo hello from a container\""));
    drop(receiver);

    // The receiver again, with the HTTP input; a container's line and a page's event.
    let receiver = Terminal::run(&format!("{} --api off", own(receive_http)));
    let page = front_end_page(&format!("http://127.0.0.1:{web}"));
    let _site = Site::serve(pages, &page);
    let listening = || crate::support::http(web, "OPTIONS", "/gelf", &[], "").is_some();
    assert!(wait_until(PATIENCE, listening), "the HTTP input answers");
    run(write);
    let answers = chromium(&format!("http://127.0.0.1:{pages}/index.html"));
    assert!(answers.contains("answers: 202"), "{answers}");
    let both = || {
        receiver.shows("\"short_message\":\"hello from a container\"")
            && receiver.shows("\"_user\":\"ann\",\"host\":\"127.0.0.1\",\"short_message\":\"checkout clicked\"")
    };
    assert!(wait_until(PATIENCE, both), "the front end's event beside the container's line");
}

#[test]
fn the_http_input_answers_only_once_a_request_is_checked_in_bulk_gzipped_or_deflated_and_keeps_nothing_of_a_bad_one() {
    let collector = Collector::start(&["--http-bulk", "--http-rate", "20", "--idle-timeout", "1s"]);
    let line = |n: usize| format!(r#"{{"host":"h","short_message":"bulk{n}","_container_id":"http"}}"#);
    let body = |range: std::ops::RangeInclusive<usize>| range.map(line).collect::<Vec<_>>().join("\n") + "\n";
    let post = |headers: &[(&str, &str)], body: &[u8]| http(collector.http, "POST", "/gelf", headers, body);
    assert_eq!(post(&[], body(1..=3).as_bytes()).map(|a| a.0), Some(202));
    assert_eq!(post(&[("Content-Encoding", "gzip")], &gzip(body(4..=6).as_bytes())).map(|a| a.0), Some(202));
    let mut deflated = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    deflated.write_all(body(7..=9).as_bytes()).expect("deflate");
    let deflated = deflated.finish().expect("deflate");
    assert_eq!(post(&[("Content-Encoding", "deflate")], &deflated).map(|a| a.0), Some(202));
    // One bad line refuses the whole request, saying which; nothing of it is kept.
    let bad = format!("{}\n{{\"host\":\"h\"}}\n{}\n", line(100), line(101));
    let (status, _, answer) = post(&[], bad.as_bytes()).expect("answer");
    assert_eq!(status, 400);
    let answer: Value = serde_json::from_str(&answer).expect("a JSON error");
    assert!(
        answer["error"].as_str().is_some_and(|e| e.contains("message 2") && e.contains("short_message")),
        "{answer}"
    );
    assert_eq!(post(&[("Content-Encoding", "br")], b"x").map(|a| a.0), Some(415));
    assert_eq!(collector.lines_of("http", 9), numbered("bulk", 1..=9));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(collector.of("http").len(), 9, "nothing of the refused request");

    // A client over its rate is answered 429 and counted.
    let answers: Vec<u16> = (0..60).filter_map(|_| post(&[], line(0).as_bytes()).map(|a| a.0)).collect();
    assert!(answers.contains(&429), "{answers:?}");
    assert!(collector.metric("spout_receive_rate_limited_total") > 0);
    // An idle TCP client is closed after --idle-timeout.
    let mut idle = TcpStream::connect(("127.0.0.1", collector.gelf)).expect("connect");
    idle.set_read_timeout(Some(PATIENCE)).expect("timeout");
    assert_eq!(idle.read(&mut [0u8; 1]).ok(), Some(0), "closed by the input");
}
