//! GELF over HTTP and HTTPS (`gelf+http://`, `gelf+https://`), against Python's own HTTP server
//! (and nginx terminating TLS in front of it).

use crate::support::receiver::{Answers, HttpReceiver};
use crate::support::tls::{ClientCerts, Nginx, Pki};
use crate::support::{docker, http_get, numbered, Container, Spout};

#[test]
fn gelf_over_http_arrives_once_through_500s_429s_and_503s_in_bulk_gzipped_and_over_tls_with_headers_hidden() {
    require_docker!();
    if !Nginx::available() {
        return;
    }
    // One message a request, the first ones answered 500 for a while, 429 and 503. (Header
    // names arrive in lower case, as hyper writes them.)
    let failures = [500, 500, 500, 429, 503];
    let single = HttpReceiver::start(Answers { fail: &failures, ..Answers::default() });
    let bulk = HttpReceiver::start(Answers::default());
    let behind_tls = HttpReceiver::start(Answers::default());
    let pki = Pki::new();
    let tls = Nginx::tls_in_front(&pki, behind_tls.port, ClientCerts::NotAsked);
    let single_route =
        format!("gelf+http://127.0.0.1:{}?header=Authorization:Bearer%20s3cret&compress=none", single.port);
    let _spout = Spout::start_healthy(&[
        &single_route,
        &format!("gelf+http://127.0.0.1:{}/custom/path?bulk=true&max_body=2000", bulk.port),
        &format!("gelf+https://localhost:{}?bulk=true&ca={}", tls.port, pki.path("ca.pem")),
    ]);
    let long = "w".repeat(5000);
    // The long line made by the container, not written in its command (which every message carries).
    let c =
        Container::run(&[], "for i in $(seq 1 100); do echo line$i; done; head -c 5000 /dev/zero | tr '\\0' w; echo");
    c.wait();
    let mut expected = numbered("line", 1..=100);
    expected.push(long.clone());
    assert_eq!(single.inbox.settle_lines(&c.id, 101), expected, "every line once, in order, through the failures");
    assert_eq!(behind_tls.inbox.settle_lines(&c.id, 101), expected, "over HTTPS");
    let cut = bulk.inbox.settle_lines(&c.id, 101);
    assert_eq!(cut.len(), 101, "{:?}\n{}", bulk.requests(), _spout.stderr());
    assert_eq!(cut[..100], expected[..100]);
    assert!(cut[100].len() < 2000 && long.starts_with(&cut[100]), "cut to fit max_body: {} bytes", cut[100].len());
    assert!(bulk.inbox.of(&c.id).last().is_some_and(|m| m["_truncated"] == "true"));

    let requests = single.requests();
    let statuses: Vec<u64> = requests.iter().take(6).filter_map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [500, 500, 500, 429, 503, 202]);
    assert!(requests[..6].iter().all(|r| r["body"] == requests[0]["body"]), "the same message sent again each time");
    for r in &requests {
        assert_eq!(r["path"], "/gelf");
        assert_eq!(r["headers"]["authorization"], "Bearer s3cret");
        assert_eq!(r["headers"]["content-type"], "application/json");
        assert!(r["headers"].get("content-encoding").is_none(), "compress=none: {r}");
    }
    let requests = bulk.requests();
    let most = requests.iter().map(|r| r["body"].as_str().unwrap_or_default().lines().count()).max();
    assert!(most.is_some_and(|n| n > 1), "many messages a request: at most {most:?} in {} requests", requests.len());
    for r in &requests {
        assert_eq!(r["path"], "/custom/path");
        assert_eq!(r["headers"]["content-encoding"], "gzip");
        let body = r["body"].as_str().unwrap_or_default();
        assert!(body.len() <= 2000, "a body within max_body: {} bytes", body.len());
    }

    // The header's value is nobody's business but the destination's.
    let health = _spout.health().1;
    let (_, metrics) = http_get(_spout.http_port, "/metrics").expect("metrics");
    for shown in [&health, &metrics, &_spout.stderr()] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    assert!(health.contains("header=Authorization:***"), "{health}");
}

#[test]
fn a_refused_message_is_dropped_counted_and_logged_once_and_the_rest_arrive() {
    require_docker!();
    let receiver = HttpReceiver::start(Answers { refuse: Some("poison"), ..Answers::default() });
    let spout = Spout::start_healthy(&[&format!("gelf+http://127.0.0.1:{}", receiver.port)]);
    let c =
        Container::run(&[], "for i in $(seq 1 10); do echo line$i; done; echo poi''son1; echo poi''son2; echo line11");
    c.wait();
    let mut expected = numbered("line", 1..=10);
    expected.push("line11".to_owned());
    assert_eq!(receiver.inbox.settle_lines(&c.id, 11), expected, "{:?}\n{}", receiver.requests(), spout.stderr());
    let refused: Vec<String> = receiver
        .requests()
        .iter()
        .filter(|r| r["status"] == 400)
        .filter_map(|r| r["body"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(refused.len(), 2, "each refused once, never sent again: {refused:?}");
    let (_, metrics) = http_get(spout.http_port, "/metrics").expect("metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with("spout_messages_dropped_total{")
            && l.contains("reason=\"refused\"")
            && l.ends_with(" 2")),
        "{metrics}"
    );
    let warned = spout.stderr().lines().filter(|l| l.contains("WARN") && l.contains("refused a request")).count();
    assert_eq!(warned, 1, "logged once for the one status:\n{}", spout.stderr());
}

#[test]
fn otlp_records_arrive_with_the_semantic_conventions_and_a_partial_rejection_is_counted() {
    require_docker!();
    // The first request answered 503; records holding "poison" rejected in a partial success.
    let receiver = HttpReceiver::start(Answers { fail: &[503], refuse: Some("poison") });
    let spout = Spout::start_healthy(&[
        &format!("otlp+http://127.0.0.1:{}", receiver.port),
        "--hostname",
        "spout-test-host",
        "--field",
        "team=pay",
    ]);
    let script = "for i in $(seq 1 50); do echo line$i; echo err$i >&2; done; echo poi''son; head -c 20000 /dev/zero | tr '\\0' z; echo";
    let c = Container::run(&[], script);
    c.wait();
    let got = receiver.inbox.settle_lines(&c.id, 101);
    let of = |prefix: &str| got.iter().filter(|l| l.starts_with(prefix)).cloned().collect::<Vec<_>>();
    assert_eq!(of("line"), numbered("line", 1..=50));
    assert_eq!(of("err"), numbered("err", 1..=50));
    assert_eq!(of("z"), ["z".repeat(20_000)], "a 20 KB line whole");
    assert_eq!(got.len(), 101, "each once, the rejected one not among them");
    // Docker's own timestamps, as `docker logs` gives them for stdout.
    let stamps: std::collections::HashMap<String, u64> = docker(&["logs", "--timestamps", &c.id])
        .lines()
        .filter_map(|l| {
            let (time, line) = l.split_once(' ')?;
            Some((line.to_owned(), u64::try_from(spout::timestamp::parse_rfc3339_ns(time.as_bytes())?).ok()?))
        })
        .collect();
    let text = |v: &serde_json::Value| v["stringValue"].as_str().unwrap_or_default().to_owned();
    let mut stamped = 0;
    for m in receiver.inbox.of(&c.id) {
        let resource = &m["resource"];
        assert_eq!(text(&resource["host.name"]), "spout-test-host");
        assert_eq!(text(&resource["container.name"]), c.name);
        assert_eq!(text(&resource["container.image.name"]), "spout-test-busybox");
        assert_eq!(resource["container.image.tags"]["arrayValue"]["values"][0]["stringValue"], "latest");
        assert_eq!(text(&resource["container.runtime"]), "docker");
        assert_eq!(text(&resource["team"]), "pay");
        let record = &m["record"];
        let err = m["message"].as_str().is_some_and(|l| l.starts_with("err"));
        let severity = if err { "SEVERITY_NUMBER_ERROR" } else { "SEVERITY_NUMBER_INFO" };
        assert_eq!(record["severityNumber"], severity, "{record}");
        let stream = &record["attributes"][0];
        assert_eq!(
            (stream["key"].as_str(), text(&stream["value"])),
            (Some("log.iostream"), (if err { "stderr" } else { "stdout" }).to_owned())
        );
        let time: u64 = record["timeUnixNano"].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
        if let Some(&stamp) = m["message"].as_str().and_then(|l| stamps.get(l)) {
            assert_eq!(time, stamp, "Docker's timestamp, to the nanosecond: {record}");
            stamped += 1;
        }
    }
    assert!(stamped >= 50, "the stdout lines' timestamps compared: {stamped}");
    let requests = receiver.requests();
    assert_eq!(requests[0]["status"], 503);
    for r in &requests {
        assert_eq!(r["path"], "/v1/logs");
        assert_eq!(r["headers"]["content-type"], "application/x-protobuf");
        assert_eq!(r["headers"]["content-encoding"], "gzip");
    }
    let (_, metrics) = http_get(spout.http_port, "/metrics").expect("metrics");
    let refused = metrics.lines().any(|l| {
        l.starts_with("spout_messages_dropped_total{") && l.contains("reason=\"refused\"") && l.ends_with(" 1")
    });
    assert!(refused, "the rejected record counted:\n{metrics}");
    assert!(spout.stderr().contains("refused by the test receiver"), "the reason logged:\n{}", spout.stderr());
}
