//! The HTTP API against the running agent and the real daemon: /metrics.
//!
//! Tests in this file run side by side, and spout reads every container on the host: counts
//! that must be exact come from routes whose filter takes only the test's own containers.

use std::collections::HashMap;
use std::net::TcpListener;

use crate::support::receiver::TcpReceiver;
use crate::support::{http_get, wait_until, Container, Spout, PATIENCE};

/// Every sample of a scrape, by its name and labels as written (`name{label="v"}`).
fn scrape(spout: &Spout) -> HashMap<String, f64> {
    let (code, body) = http_get(spout.http_port, "/metrics").unwrap_or_default();
    assert_eq!(code, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(series, value)| Some((series.to_owned(), value.parse().ok()?)))
        .collect()
}

fn value(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    *metrics.get(series).unwrap_or_else(|| panic!("no {series} in {metrics:#?}"))
}

#[test]
fn metrics_count_what_was_shipped_dropped_held_and_whether_routes_are_up() {
    require_docker!();
    let label = crate::support::unique_name();
    let only_mine = format!("filter.labels=spout-test:{label}");
    let r = TcpReceiver::start();
    // A destination that accepts connections and never reads: the route's queue fills with what
    // its kernel stops acknowledging, and the rest is dropped.
    let sink = TcpListener::bind("127.0.0.1:0").expect("bind");
    let sink_port = sink.local_addr().expect("addr").port();
    let down_port = crate::support::free_port();
    let good = format!("{}?{only_mine}", r.route());
    let stalled = format!("gelf+tcp://127.0.0.1:{sink_port}?queue=100&when_full=drop&{only_mine}");
    let down = format!("gelf+tcp://127.0.0.1:{down_port}?when_full=drop&{only_mine}");
    let spout = Spout::start_healthy(&[&good, &stalled, &down]);

    // 2000 lines of 16000 bytes: 32 MB, more than the sink's kernel takes unread (in one
    // json-file: a rotation under load can make the daemon send lines again).
    let c = Container::run(
        &["--label", &format!("spout-test={label}"), "--log-opt", "max-size=100m"],
        "i=0; x=$(printf '%016000d' 0); while [ $i -lt 2000 ]; do i=$((i+1)); echo $i$x; done",
    );
    c.wait();
    r.inbox.wait_lines(&c.id, 2000);
    let series = |name: &str, route: &str| format!("{name}{{route=\"{route}\"}}");
    let dropped = |route: &str| format!("spout_messages_dropped_total{{route=\"{route}\",reason=\"queue_full\"}}");
    let settled = wait_until(PATIENCE, || {
        let m = scrape(&spout);
        let stalled_total = value(&m, &series("spout_messages_sent_total", &stalled))
            + value(&m, &dropped(&stalled))
            + value(&m, &series("spout_route_queue_depth", &stalled));
        // Every line is sent, dropped, or held (written or not) by the stalled route.
        value(&m, &series("spout_messages_sent_total", &good)) >= 2000.0 && stalled_total >= 2000.0
    });
    let m = scrape(&spout);
    assert!(settled, "{m:#?}");
    // Written again after a lost connection counts again: at least every line.
    assert!(value(&m, &series("spout_messages_sent_total", &good)) >= 2000.0);
    assert!(value(&m, &series("spout_bytes_sent_total", &good)) > 2000.0 * 16_000.0);
    assert_eq!(value(&m, &series("spout_route_queue_depth", &good)), 0.0, "the good route holds nothing");
    assert_eq!(value(&m, &series("spout_route_up", &good)), 1.0);
    assert!(value(&m, &dropped(&stalled)) > 0.0, "the stalled route dropped: {m:#?}");
    assert!(value(&m, &series("spout_route_queue_depth", &stalled)) > 0.0, "and holds what it wrote: {m:#?}");
    assert!(value(&m, &series("spout_route_queue_depth", &stalled)) <= 100.0);
    assert_eq!(value(&m, &series("spout_route_up", &down)), 0.0, "nothing listens there");
    assert_eq!(value(&m, &dropped(&down)) + value(&m, &series("spout_route_queue_depth", &down)), 2000.0);
    assert!(value(&m, "spout_messages_read_total") >= 2000.0);
    assert_eq!(value(&m, "spout_docker_connected"), 1.0);
    assert!(value(&m, "spout_oldest_unaccepted_seconds") > 0.0, "the stalled route holds lines back: {m:#?}");
    for name in [
        "spout_containers_attached",
        "spout_docker_reconnects_total",
        "spout_repeats_dropped_total",
        "spout_lines_truncated_total",
    ] {
        assert!(m.contains_key(name), "{name} missing");
    }
    drop(sink);
}

#[test]
fn route_up_falls_to_zero_while_a_tcp_destination_is_down_and_the_oldest_line_ages() {
    require_docker!();
    let label = crate::support::unique_name();
    let mut r = TcpReceiver::start();
    let route = format!("{}?filter.labels=spout-test:{label}", r.route());
    let spout = Spout::start_healthy(&[&route]);
    let c = Container::run(&["--label", &format!("spout-test={label}")], "echo one; sleep 600");
    r.inbox.wait_lines(&c.id, 1);
    let up = format!("spout_route_up{{route=\"{route}\"}}");
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), &up) == 1.0));
    assert_eq!(value(&scrape(&spout), "spout_oldest_unaccepted_seconds"), 0.0, "everything is accepted");
    r.stop();
    c.exec("echo two > /proc/1/fd/1");
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), &up) == 0.0), "{:#?}", scrape(&spout));
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), "spout_oldest_unaccepted_seconds") >= 1.0));
    r.resume();
    r.inbox.wait_lines(&c.id, 2);
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), &up) == 1.0));
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), "spout_oldest_unaccepted_seconds") == 0.0));
}

/// GET /containers, as JSON.
fn containers(spout: &Spout) -> Vec<serde_json::Value> {
    let (code, body) = http_get(spout.http_port, "/containers").unwrap_or_default();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("a JSON list")
}

fn entry(spout: &Spout, id: &str) -> Option<serde_json::Value> {
    containers(spout).into_iter().find(|c| c["id"] == id)
}

#[test]
fn containers_shows_each_containers_state_progress_and_routes_and_status_prints_it() {
    require_docker!();
    let r = TcpReceiver::start();
    let label = crate::support::unique_name();
    let other_route = format!("{}?filter.labels=spout-test:nobody", r.route());
    let spout = Spout::start_healthy(&[&r.route(), &other_route]);
    let running = Container::run(&[], "for i in 1 2 3; do echo line$i; done; sleep 600");
    let stopped = Container::run(&["--label", &format!("spout-test={label}")], "echo only-line");
    let ignored = Container::run(&["-e", "LOGSPOUT=ignore"], "echo secret; sleep 600");
    r.inbox.wait_lines(&running.id, 3);
    stopped.wait();
    r.inbox.wait_lines(&stopped.id, 1);

    // Caught up once the checkpoint says every route accepted its lines.
    let caught_up = |c: &serde_json::Value| c["state"] == "caught_up" && c["last_accepted"] == c["last_read"];
    assert!(
        wait_until(PATIENCE, || entry(&spout, &running.id).is_some_and(|c| caught_up(&c))),
        "{:#?}",
        entry(&spout, &running.id)
    );
    let c = entry(&spout, &running.id).expect("known");
    assert_eq!(c["name"], running.name.as_str());
    assert_eq!(c["image"], crate::support::IMAGE);
    assert_eq!(c["lines_shipped"], 3);
    assert_eq!(c["bytes_shipped"], 15);
    assert!(c["last_read"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(c["checkpoint"]["time"], c["last_read"], "a restart resumes after the last line");
    assert_eq!(c["routes"], serde_json::json!([r.route()]), "the second route's filter rejects it");

    assert!(wait_until(PATIENCE, || entry(&spout, &stopped.id).is_some_and(|c| c["state"] == "stopped")));
    let ignored_entry = || entry(&spout, &ignored.id);
    assert!(
        wait_until(PATIENCE, || ignored_entry().is_some_and(|c| c["state"] == "left_alone")),
        "{:#?}",
        ignored_entry()
    );
    let reason = ignored_entry().and_then(|c| c["reason"].as_str().map(str::to_owned)).unwrap_or_default();
    assert!(reason.contains("opted out"), "{reason}");

    // `spout status` prints the same for a person.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spout"))
        .args(["status", "--http", &format!("127.0.0.1:{}", spout.http_port)])
        .output()
        .expect("spout status");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    let line_of = |name: &str| table.lines().find(|l| l.starts_with(name)).map(str::to_owned);
    assert!(table.starts_with("NAME"), "{table}");
    let running_line = line_of(&running.name).unwrap_or_default();
    assert!(
        running_line.contains("caught_up") && running_line.contains(" 3 ") && running_line.contains("0.0s"),
        "{table}"
    );
    assert!(line_of(&stopped.name).is_some_and(|l| l.contains("stopped")), "{table}");
    assert!(line_of(&ignored.name).is_some_and(|l| l.contains("left_alone: opted out")), "{table}");
    eprintln!("{table}");

    // And says so when no spout answers.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spout"))
        .args(["status", "--http", &format!("127.0.0.1:{}", crate::support::free_port())])
        .output()
        .expect("spout status");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach spout's API"));
}

/// `curl -sN URL` in the background, its output lines arriving on a channel.
fn curl_lines(url: &str) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("curl")
        .args(["-sN", url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn next_lines(rx: &std::sync::mpsc::Receiver<String>, n: usize) -> Vec<String> {
    (0..n).map_while(|_| rx.recv_timeout(PATIENCE).ok()).collect()
}

#[test]
fn logs_streams_every_message_live_as_text_or_json_with_filters() {
    require_docker!();
    let spout = Spout::start_healthy(&[]);
    let label = crate::support::unique_name();
    let base = format!("http://127.0.0.1:{}/logs", spout.http_port);
    let (mut text, text_rx) = curl_lines(&format!("{base}?filter.labels=spout-test:{label}"));
    let (mut json, json_rx) =
        curl_lines(&format!("{base}?format=json&filter.labels=spout-test:{label}&filter.sources=stderr"));
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), "spout_tail_clients") == 2.0));
    let _other = Container::run(&[], "echo not-mine; sleep 600");
    let c = Container::run(&["--label", &format!("spout-test={label}")], "echo out-line; echo err-line >&2; sleep 600");
    let mut got = next_lines(&text_rx, 2);
    got.sort();
    assert_eq!(got, [format!("{}|err-line", c.name), format!("{}|out-line", c.name)]);
    let record: serde_json::Value =
        serde_json::from_str(&next_lines(&json_rx, 1)[0]).expect("one JSON object per line");
    assert_eq!((record["message"].as_str(), record["stream"].as_str()), (Some("err-line"), Some("stderr")));
    assert_eq!(record["container_id"], c.id.as_str());
    let _ = text.kill();
    let _ = json.kill();
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), "spout_tail_clients") == 0.0), "leaving frees the places");
}

#[test]
fn a_logs_client_that_never_reads_is_dropped_and_the_routes_keep_shipping() {
    require_docker!();
    use std::io::Write;
    let r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route()]);
    // Asks for the tail and never reads a byte of it.
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", spout.http_port)).expect("connect");
    write!(stuck, "GET /logs HTTP/1.1\r\nHost: spout\r\n\r\n").expect("request");
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), "spout_tail_clients") == 1.0));
    let c = Container::run(
        &["--log-opt", "max-size=100m"],
        "i=0; x=$(printf '%01000d' 0); while [ $i -lt 20000 ]; do i=$((i+1)); echo $i$x; done",
    );
    c.wait();
    assert_eq!(r.inbox.wait_lines(&c.id, 20_000).len(), 20_000, "every line reached the route");
    let m = scrape(&spout);
    assert_eq!(value(&m, "spout_tail_clients_dropped_total"), 1.0, "{m:#?}");
    assert_eq!(value(&m, "spout_tail_clients"), 0.0, "its place is free again");
    drop(stuck);
}

#[test]
fn bad_logs_requests_get_400_with_a_json_error() {
    require_docker!();
    let spout = Spout::start_healthy(&[]);
    for (query, part) in [
        ("format=xml", "format: unknown 'xml'"),
        ("filter.sources=stdin", "filter.sources: unknown source 'stdin'"),
        ("filter.name=%5B", "filter.name: bad glob '['"),
        ("tail=10", "unknown parameter 'tail'"),
    ] {
        let (code, body) = http_get(spout.http_port, &format!("/logs?{query}")).unwrap_or_default();
        assert_eq!(code, 400, "{query}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
        assert!(error["error"].as_str().is_some_and(|e| e.contains(part)), "{query}: {body}");
    }
}

#[test]
fn with_a_token_logs_and_containers_need_it_and_health_and_metrics_stay_open() {
    require_docker!();
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("write");
    let spout = Spout::start_healthy(&["--api-token-file", token_file.to_str().expect("utf-8")]);
    let port = spout.http_port;
    for path in ["/containers", "/logs"] {
        for headers in [&[][..], &[("Authorization", "Bearer wrong")][..], &[("Authorization", "s3cret-token")][..]] {
            let (code, head, body) = crate::support::http(port, "GET", path, headers, "").unwrap_or_default();
            assert_eq!(code, 401, "{path} {headers:?}: {body}");
            assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
            let error: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert!(error["error"].as_str().is_some_and(|e| e.contains("Bearer")));
        }
    }
    let right = [("Authorization", "Bearer s3cret-token")];
    assert_eq!(crate::support::http(port, "GET", "/containers", &right, "").map(|r| r.0), Some(200));
    for path in ["/health", "/metrics"] {
        assert_eq!(http_get(port, path).map(|r| r.0), Some(200), "{path} stays open");
    }
    let status = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_spout"))
            .args(["status", "--http", &format!("127.0.0.1:{port}")])
            .args(args)
            .env_remove("SPOUT_API_TOKEN")
            .output()
            .expect("spout status")
    };
    let without = status(&[]);
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("answered 401"));
    assert!(status(&["--api-token-file", token_file.to_str().expect("utf-8")]).status.success());
    assert!(status(&["--api-token", "s3cret-token"]).status.success());
}

#[test]
fn an_api_beyond_loopback_without_a_token_is_warned_about() {
    require_docker!();
    let state = tempfile::tempdir().expect("dir");
    let port = crate::support::free_port();
    let out = std::process::Command::new("timeout")
        .args([
            "--preserve-status",
            "-s",
            "TERM",
            "5",
            env!("CARGO_BIN_EXE_spout"),
            "--http",
            &format!("0.0.0.0:{port}"),
            "--state-dir",
        ])
        .arg(state.path())
        .env_remove("SPOUT_API_TOKEN")
        .output()
        .expect("run spout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("listens beyond loopback without --api-token"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "it runs, and stops on SIGTERM: {stderr}");
}

fn routes_of(spout: &Spout, headers: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let (code, _, body) = crate::support::http(spout.http_port, "GET", "/routes", headers, "").unwrap_or_default();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("a JSON list")
}

/// POST /routes with `uri` and `headers` (no Content-Type among them: as `curl -d` sends it,
/// Logspout's habit, it is JSON all the same): status and body.
fn add_route(port: u16, uri: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let body = serde_json::json!({ "uri": uri }).to_string();
    let (code, _, body) = crate::support::http(port, "POST", "/routes", headers, &body).unwrap_or_default();
    (code, serde_json::from_str(&body).unwrap_or_default())
}

#[test]
fn routes_are_added_listed_removed_and_those_added_come_back_after_a_restart() {
    require_docker!();
    let state = tempfile::tempdir().expect("state dir");
    let (first_r, added_r) = (TcpReceiver::start(), TcpReceiver::start());
    let cli_route = first_r.route();
    let start = || {
        let spout = Spout::start_in(state.path(), &[&cli_route], &[]);
        spout.wait_healthy();
        spout
    };
    let mut spout = start();
    let listed = routes_of(&spout, &[]);
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0]["uri"].as_str(), listed[0]["origin"].as_str()), (Some(cli_route.as_str()), Some("cli")));

    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let (code, added) = add_route(spout.http_port, &added_r.route(), &form);
    assert_eq!(code, 201, "{added}");
    assert_eq!(added["origin"], "api");
    let id = added["id"].as_str().expect("an id").to_owned();
    assert_eq!(routes_of(&spout, &[]).len(), 2);
    let c = Container::run(&[], "while true; do sleep 0.2; [ -f /say ] && cat /say && rm /say; done");
    c.exec("echo after-add > /say");
    assert_eq!(added_r.inbox.wait_lines(&c.id, 1), ["after-add"], "the added route gets what is read from then on");

    // Back after a restart, from the state directory.
    spout.sigterm();
    assert!(spout.wait().success());
    spout = start();
    let listed = routes_of(&spout, &[]);
    assert!(listed.iter().any(|r| r["id"] == id.as_str() && r["origin"] == "api"), "{listed:#?}");
    c.exec("echo after-restart > /say");
    assert_eq!(added_r.inbox.wait_lines(&c.id, 2), ["after-add", "after-restart"]);

    // Removed: it gets nothing more, and stays removed after a restart.
    let (code, _, body) =
        crate::support::http(spout.http_port, "DELETE", &format!("/routes/{id}"), &[], "").unwrap_or_default();
    assert_eq!(code, 204, "{body}");
    c.exec("echo after-delete > /say");
    first_r.inbox.wait_lines(&c.id, 3);
    assert_eq!(added_r.inbox.settle_lines(&c.id, 2).len(), 2, "nothing after the delete");
    spout.sigterm();
    assert!(spout.wait().success());
    let spout = start();
    assert_eq!(routes_of(&spout, &[]).len(), 1);
    assert_eq!(
        first_r.inbox.settle_lines(&c.id, 3),
        ["after-add", "after-restart", "after-delete"],
        "exactly once through it all"
    );
}

#[test]
fn removing_a_route_releases_its_hold_on_the_checkpoints() {
    require_docker!();
    let state = tempfile::tempdir().expect("state dir");
    let r = TcpReceiver::start();
    let spout = Spout::start_in(state.path(), &[&r.route()], &[]);
    spout.wait_healthy();
    // A route to nowhere holds every line it wants until it is removed.
    let nowhere = format!("gelf+tcp://127.0.0.1:{}", crate::support::free_port());
    let (code, added) = add_route(spout.http_port, &nowhere, &[]);
    assert_eq!(code, 201);
    let c = Container::run(&[], "for i in $(seq 1 500); do echo line$i; done; sleep 600");
    r.inbox.wait_lines(&c.id, 500);
    let held = || entry(&spout, &c.id).is_some_and(|e| e["state"] == "reading");
    assert!(wait_until(PATIENCE, held), "the route to nowhere holds them: {:#?}", entry(&spout, &c.id));
    let id = added["id"].as_str().expect("id");
    assert_eq!(
        crate::support::http(spout.http_port, "DELETE", &format!("/routes/{id}"), &[], "").map(|r| r.0),
        Some(204)
    );
    assert!(wait_until(PATIENCE, || entry(&spout, &c.id).is_some_and(|e| e["state"] == "caught_up")));
    // A restart resumes after the lines: none is sent again.
    let mut spout = spout;
    spout.sigterm();
    assert!(spout.wait().success());
    let _again = Spout::start_in(state.path(), &[&r.route()], &[]);
    _again.wait_healthy();
    c.exec("echo line501 > /proc/1/fd/1");
    let want: Vec<String> = (1..=501).map(|i| format!("line{i}")).collect();
    assert_eq!(r.inbox.settle_lines(&c.id, 501), want);
}

#[test]
fn every_bad_routes_request_gets_a_4xx_with_a_json_error() {
    require_docker!();
    let r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route()]);
    let port = spout.http_port;
    let cli_id = routes_of(&spout, &[])[0]["id"].as_str().expect("id").to_owned();
    let json = [("Content-Type", "application/json")];
    // Method, path, headers, body; the status and part of the error expected.
    type Case<'a> = (&'a str, String, &'a [(&'a str, &'a str)], String, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("POST", "/routes".into(), &json, "{not json".into(), 400, "expected {\"uri\""),
        ("POST", "/routes".into(), &[], "uri=gelf://a:1".into(), 400, "expected value at line 1 column 1"),
        ("POST", "/routes".into(), &json, "{\"url\": \"gelf://a:1\"}".into(), 400, "unknown field `url`"),
        ("POST", "/routes".into(), &json, "{\"uri\": \"gelf://graylog\"}".into(), 400, "missing port in 'graylog'"),
        ("POST", "/routes".into(), &json, format!("{{\"uri\": \"{}\"}}", r.route()), 409, "exists already"),
        ("DELETE", "/routes/0123456789abcdef".into(), &[], String::new(), 404, "no route 0123456789abcdef"),
        ("DELETE", format!("/routes/{cli_id}"), &[], String::new(), 409, "comes from the command line"),
        ("PUT", "/routes".into(), &json, "{}".into(), 405, "PUT is not for /routes"),
        ("GET", "/nothing".into(), &[], String::new(), 404, "no endpoint /nothing"),
    ];
    for (method, path, headers, body, status, part) in cases {
        let (code, _, answer) = crate::support::http(port, method, &path, headers, &body).unwrap_or_default();
        assert_eq!(code, status, "{method} {path} {body}: {answer}");
        let error: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        assert!(error["error"].as_str().is_some_and(|e| e.contains(part)), "{method} {path} {body}: {answer}");
    }
    assert_eq!(routes_of(&spout, &[]).len(), 1, "nothing was added");

    // Eight tail clients at most: the ninth is turned away.
    let tails: Vec<std::net::TcpStream> = (0..8)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            std::io::Write::write_all(&mut s, b"GET /logs HTTP/1.1\r\nHost: spout\r\n\r\n").expect("request");
            s
        })
        .collect();
    assert!(wait_until(PATIENCE, || value(&scrape(&spout), "spout_tail_clients") == 8.0));
    let (code, _, body) = crate::support::http(port, "GET", "/logs", &[], "").unwrap_or_default();
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("8 clients are tailing already"), "{body}");
    drop(tails);
}

#[test]
fn beyond_loopback_changes_need_a_token() {
    require_docker!();
    let port = crate::support::free_port();
    let http = format!("0.0.0.0:{port}");
    let spout = Spout::start(&["--http", &http]);
    spout.wait_healthy();
    let (code, error) = add_route(port, "stdout://?queue=5", &[]);
    assert_eq!(code, 403, "{error}");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("--api-token")));
    assert_eq!(routes_of(&spout, &[]).len(), 1, "reading needs no token without one");
    drop(spout);

    let port = crate::support::free_port();
    let http = format!("0.0.0.0:{port}");
    let spout = Spout::start(&["--http", &http, "--api-token", "t0ken"]);
    spout.wait_healthy();
    assert_eq!(add_route(port, "stdout://?queue=5", &[]).0, 401);
    let (code, added) = add_route(port, "stdout://?queue=5", &[("Authorization", "Bearer t0ken")]);
    assert_eq!(code, 201, "{added}");
    assert_eq!(routes_of(&spout, &[("Authorization", "Bearer t0ken")]).len(), 2);
}

#[test]
fn routes_from_the_configuration_file_run_and_say_where_they_come_from() {
    require_docker!();
    let r = TcpReceiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("spout.toml");
    std::fs::write(&file, format!("routes = [\"{}\"]\nfield = [\"from=file\"]\n", r.route())).expect("write");
    let spout = Spout::start_healthy(&["--config", file.to_str().expect("utf-8")]);
    let listed = routes_of(&spout, &[]);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!((listed[0]["uri"].as_str(), listed[0]["origin"].as_str()), (Some(r.route().as_str()), Some("file")));
    let c = Container::run(&[], "echo configured");
    c.wait();
    r.inbox.wait_lines(&c.id, 1);
    assert_eq!(r.inbox.of(&c.id)[0]["_from"], "file");
    let id = listed[0]["id"].as_str().expect("id");
    let (code, _, body) =
        crate::support::http(spout.http_port, "DELETE", &format!("/routes/{id}"), &[], "").unwrap_or_default();
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("configuration file"), "{body}");
}

#[test]
fn spout_health_exits_0_while_healthy_and_1_with_the_reason_when_not() {
    require_docker!();
    let spout = Spout::start_healthy(&[]);
    let health = |addr: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_spout"))
            .args(["health", "--http", &addr])
            .env_remove("SPOUT_HTTP")
            .output()
            .expect("spout health")
    };
    assert_eq!(health(format!("127.0.0.1:{}", spout.http_port)).status.code(), Some(0));
    let nobody = health(format!("127.0.0.1:{}", crate::support::free_port()));
    assert_eq!(nobody.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("cannot reach spout's API"));
    // A spout that cannot reach Docker answers 503, and says why.
    let lost = Spout::start(&["--docker-host", "tcp://127.0.0.1:1"]);
    let unhealthy = || health(format!("127.0.0.1:{}", lost.http_port));
    assert!(wait_until(PATIENCE, || unhealthy().status.code() == Some(1)
        && String::from_utf8_lossy(&unhealthy().stderr).contains("unhealthy (503)")));
    assert!(String::from_utf8_lossy(&unhealthy().stderr).contains("not connected to the Docker daemon"));
}

#[test]
fn the_api_socket_is_roots_needs_no_token_and_is_one_spouts() {
    require_docker!();
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let r = TcpReceiver::start();
    let dir = tempfile::tempdir().expect("dir");
    let port = crate::support::free_port();
    let http = format!("0.0.0.0:{port}");
    let mut spout = Spout::start_in(dir.path(), &["--http", &http, "--api-token", "t0ken"], &[]);
    spout.wait_healthy();
    let state = dir.path().join("state");
    let socket = state.join("api.sock");
    let meta = std::fs::symlink_metadata(&socket).expect("the socket is in the state directory");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "root's only");
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_spout"))
            .args(args)
            .arg("--state-dir")
            .arg(&state)
            .env_remove("SPOUT_API_TOKEN")
            .env_remove("SPOUT_API_TOKEN_FILE")
            .env_remove("SPOUT_API_SOCKET")
            .output()
            .expect("run spout");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };

    // No token through the socket: add, list, status, health, and remove.
    let (code, out, err) = admin(&["routes", "add", &r.route()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("added route "), "{out}");
    let (code, listed, err) = admin(&["routes"]);
    assert_eq!(code, Some(0), "{err}");
    let row = listed.lines().find(|l| l.contains(&r.route())).expect("the added route is listed");
    assert!(row.contains(" api "), "{listed}");
    let id = row.split_whitespace().next().expect("an id").to_owned();
    let c = Container::run(&[], "echo through-the-socket-route");
    c.wait();
    assert_eq!(r.inbox.wait_lines(&c.id, 1), ["through-the-socket-route"]);
    let (code, out, err) = admin(&["status"]);
    assert!(code == Some(0) && out.starts_with("NAME") && out.contains(&c.name), "{out}{err}");
    assert_eq!(admin(&["health"]).0, Some(0));

    // The TCP listener keeps its rules: beyond loopback, the token.
    assert_eq!(add_route(port, "stdout://?queue=5", &[]).0, 401);
    assert_eq!(crate::support::http(port, "GET", "/routes", &[], "").map(|a| a.0), Some(401));

    let (code, out, err) = admin(&["routes", "rm", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), format!("removed route {id}"));
    let (code, _, err) = admin(&["routes", "rm", &id]);
    assert_eq!(code, Some(1));
    assert!(err.contains("answered 404") && err.contains(&id), "{err}");
    let (code, _, err) = admin(&["routes", "add", "gelf+tcp://nowhere"]);
    assert_eq!(code, Some(64), "a bad route is a usage error: {err}");
    assert!(err.contains("missing port in 'nowhere'"), "{err}");

    // A second spout on the same state directory would write the same checkpoints: refused.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_spout"))
        .args(["--http", "off", "--state-dir"])
        .arg(&state)
        .output()
        .expect("run a second spout");
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another spout answers on"), "{second:?}");

    spout.sigterm();
    assert!(spout.wait().success());
    assert!(!socket.exists(), "the socket goes with spout");
    // One left by a spout that was killed is taken over.
    let mut again = Spout::start_in(dir.path(), &[], &[]);
    again.wait_healthy();
    again.kill9();
    assert!(socket.exists());
    let again = Spout::start_in(dir.path(), &[], &[]);
    again.wait_healthy();
    assert_eq!(admin(&["health"]).0, Some(0), "{}", again.stderr());
}
