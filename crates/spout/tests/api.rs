//! The HTTP API against the running agent and the real daemon: /metrics.
//!
//! Tests in this file run side by side, and spout reads every container on the host: counts
//! that must be exact come from routes whose filter takes only the test's own containers.

mod support;

use std::collections::HashMap;
use std::net::TcpListener;

use support::receiver::TcpReceiver;
use support::{http_get, wait_until, Container, Spout, PATIENCE};

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
    let label = support::unique_name();
    let only_mine = format!("filter.labels=spout-test:{label}");
    let r = TcpReceiver::start();
    // A destination that accepts connections and never reads: the route's queue fills with what
    // its kernel stops acknowledging, and the rest is dropped.
    let sink = TcpListener::bind("127.0.0.1:0").expect("bind");
    let sink_port = sink.local_addr().expect("addr").port();
    let down_port = support::free_port();
    let good = format!("{}?{only_mine}", r.route());
    let stalled = format!("gelf+tcp://127.0.0.1:{sink_port}?queue=100&when_full=drop&{only_mine}");
    let down = format!("gelf+tcp://127.0.0.1:{down_port}?when_full=drop&{only_mine}");
    let spout = Spout::start_healthy(&[&good, &stalled, &down]);

    // 2000 lines of 16000 bytes: 32 MB, more than the sink's kernel takes unread.
    let c = Container::run(
        &["--label", &format!("spout-test={label}")],
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
        value(&m, &series("spout_messages_sent_total", &good)) == 2000.0 && stalled_total >= 2000.0
    });
    let m = scrape(&spout);
    assert!(settled, "{m:#?}");
    assert_eq!(value(&m, &series("spout_messages_sent_total", &good)), 2000.0);
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
    let label = support::unique_name();
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
