//! Routes over TLS (`gelf+tls://`, `json+tls://`), against Debian's nginx terminating TLS in
//! front of a test receiver.

use crate::delivery::{assert_none_missing, expected, missing_and_duplicates_of, steady_writer};
use crate::support::receiver::TcpReceiver;
use crate::support::tls::{ClientCerts, Nginx, Pki};
use crate::support::{http_get, numbered, wait_until, Container, Spout, PATIENCE};

/// The routes' state in /health, in the order given.
fn route_states(spout: &Spout) -> Vec<(String, String)> {
    let health: serde_json::Value = serde_json::from_str(&spout.health().1).unwrap_or_default();
    let routes = health["routes"].as_array().cloned().unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    routes.iter().map(|r| (text(&r["state"]), text(&r["last_error"]))).collect()
}

#[test]
fn gelf_and_json_over_tls_arrive_whole_and_a_certificate_problem_is_named_and_retried() {
    require_docker!();
    if !Nginx::available() {
        return;
    }
    let pki = Pki::new();
    let (gelf, json, insecure) = (TcpReceiver::start(), TcpReceiver::start_lines(), TcpReceiver::start());
    let gelf_tls = Nginx::tls_in_front(&pki, gelf.port, ClientCerts::NotAsked);
    let json_tls = Nginx::tls_in_front(&pki, json.port, ClientCerts::Required);
    let insecure_tls = Nginx::tls_in_front(&pki, insecure.port, ClientCerts::NotAsked);
    let ca = pki.path("ca.pem");
    // The test CA is not among the system's: this route cannot verify the server.
    let unverified_route = format!("gelf+tls://localhost:{}", gelf_tls.port);
    let spout = Spout::start_healthy(&[
        &format!("gelf+tls://localhost:{}?ca={ca}", gelf_tls.port),
        &format!(
            "json+tls://127.0.0.1:{}?ca={ca}&cert={}&key={}",
            json_tls.port,
            pki.path("client.pem"),
            pki.path("client.key")
        ),
        &format!("gelf+tls://127.0.0.1:{}?insecure_skip_verify=true", insecure_tls.port),
        &unverified_route,
    ]);
    // Lines longer than a TLS record (16 KiB) among short ones.
    let long = "z".repeat(40_000);
    let c = Container::run(&[], &format!("for i in $(seq 1 100); do echo line$i; done; echo {long}; echo last"));
    c.wait();
    let mut expected = numbered("line", 1..=100);
    expected.extend([long, "last".to_owned()]);
    for (name, receiver) in [("gelf", &gelf), ("json", &json), ("insecure", &insecure)] {
        assert_eq!(receiver.inbox.settle_lines(&c.id, 102), expected, "{name} over TLS, each line once and in order");
    }
    let unverified = || route_states(&spout).get(3).cloned().unwrap_or_default();
    let named = || {
        let (state, error) = unverified();
        state == "down" && error.contains("invalid peer certificate") && error.contains("UnknownIssuer")
    };
    assert!(wait_until(PATIENCE, named), "{:?}", unverified());
    let (_, metrics) = http_get(spout.http_port, "/metrics").expect("metrics");
    let failures = metrics
        .lines()
        .find(|l| l.starts_with(&format!("spout_route_connect_failures_total{{route=\"{unverified_route}\"}}")))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert!(failures.is_some_and(|n| n >= 1), "counted:\n{metrics}");
    let stderr = spout.stderr();
    assert!(stderr.contains("cannot connect, retrying") && stderr.contains("UnknownIssuer"), "{stderr}");
    let warned = stderr.lines().filter(|l| l.contains("WARN") && l.contains("insecure_skip_verify=true")).count();
    assert_eq!(warned, 1, "one loud warning for the route that verifies nothing:\n{stderr}");
}

#[test]
fn a_server_refusing_the_client_after_the_handshake_loses_nothing() {
    require_docker!();
    if !Nginx::available() {
        return;
    }
    // TLS 1.3: the server checks the client's certificate (here, its absence) only once the
    // client has finished its handshake, and has acknowledged, at the TCP level, what the client
    // wrote meanwhile when it refuses (nginx closes the connection, without an alert).
    let pki = Pki::new();
    let receiver = TcpReceiver::start_lines();
    let refusing = Nginx::tls_in_front(&pki, receiver.port, ClientCerts::Required);
    let port = refusing.port;
    let spout =
        Spout::start_healthy(&[&format!("json+tls://localhost:{port}?ca={}&backoff_max=1s", pki.path("ca.pem"))]);
    let c = Container::run(&[], "for i in $(seq 1 200); do echo line$i; done");
    c.wait();
    let refused = || {
        let states = route_states(&spout);
        states.first().is_some_and(|(state, error)| state == "down" && error.contains("right after the TLS handshake"))
    };
    assert!(wait_until(PATIENCE, refused), "{:?}\nnginx:\n{}", route_states(&spout), refusing.log());
    // Several connections were refused after their handshake, each with lines written on it.
    assert!(wait_until(PATIENCE, || spout.stderr().matches("connection lost").count() >= 2), "{}", spout.stderr());
    assert!(receiver.inbox.lines_of(&c.id).is_empty(), "nginx passes nothing on before the client is verified");
    drop(refusing);
    let _accepting = Nginx::tls_on(port, &pki, receiver.port, ClientCerts::NotAsked);
    assert_eq!(receiver.inbox.settle_lines(&c.id, 200), numbered("line", 1..=200), "every line, once, in order");
}

#[test]
fn a_receiver_behind_tls_restarted_mid_stream_loses_nothing() {
    require_docker!();
    if !Nginx::available() {
        return;
    }
    let pki = Pki::new();
    let mut receiver = TcpReceiver::start();
    let tls = Nginx::tls_in_front(&pki, receiver.port, ClientCerts::NotAsked);
    let spout =
        Spout::start_healthy(&[&format!("gelf+tls://localhost:{}?ca={}&backoff_max=1s", tls.port, pki.path("ca.pem"))]);
    let c = steady_writer(20_000);
    receiver.inbox.wait_lines(&c.id, 3_000);
    // What nginx took and the receiver had not read is gone with it; nginx then closes spout's
    // connection, and refuses the next ones until the receiver is back.
    receiver.stop();
    std::thread::sleep(std::time::Duration::from_secs(2));
    receiver.resume();
    c.wait();
    let want = expected(20_000);
    let all_in = || missing_and_duplicates_of(&receiver.inbox.lines_of(&c.id), &want).0.is_empty();
    wait_until(PATIENCE, all_in);
    let log = format!("{}\nnginx:\n{}", spout.stderr(), tls.log());
    assert_none_missing(&receiver.inbox.lines_of(&c.id), &want, "receiver behind TLS restarted", &log);
}
