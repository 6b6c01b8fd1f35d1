//! Delivery under faults, against the real daemon: spout restarted gracefully or killed, the
//! destination down, the daemon connection cut, log rotation, and a destination that never reads.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::Duration;

use crate::support::receiver::TcpReceiver;
use crate::support::{wait_until, Container, Spout, PATIENCE};

/// A container writing `line1` … `lineN` steadily, 100 lines every `pause_ms`, so that faults
/// land in the middle of it.
fn writer(n: usize, pause_ms: u32) -> Container {
    let pause_us = pause_ms * 1000;
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo line$i; [ $((i % 100)) -eq 0 ] && usleep {pause_us}; done"
    );
    Container::run(&[], &script)
}

/// About 5000 lines/s.
pub(crate) fn steady_writer(n: usize) -> Container {
    writer(n, 20)
}

pub(crate) fn expected(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("line{i}")).collect()
}

/// Lines `line1` … `lineN` missing from `got`, and how many arrived more than once.
fn missing_and_duplicates(got: &[String], n: usize) -> (Vec<String>, usize) {
    missing_and_duplicates_of(got, &expected(n))
}

/// Asserts `got` is exactly `want`, reporting only what differs (thousands of lines are no help).
fn assert_exactly(got: &[String], want: &[String], context: &str) {
    if got == want {
        return;
    }
    let (missing, duplicates) = missing_and_duplicates_of(got, want);
    let first_diff = got.iter().zip(want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
    panic!(
        "{context}: got {} lines, want {}; {} missing (first: {:?}), {duplicates} duplicates; first difference at {first_diff}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        got.get(first_diff),
        want.get(first_diff),
    );
}

/// Asserts that no line of `want` is missing from `got` (repeats allowed), naming a few that
/// are, with `log` (spout's, and whatever else tells why); says how many repeats `context` had.
pub(crate) fn assert_none_missing(got: &[String], want: &[String], context: &str, log: &str) {
    let (missing, duplicates) = missing_and_duplicates_of(got, want);
    assert!(
        missing.is_empty(),
        "{context}: {} missing, e.g. {:?}:\n{log}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!("{context}: {duplicates} duplicates");
}

pub(crate) fn missing_and_duplicates_of(got: &[String], want: &[String]) -> (Vec<String>, usize) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for line in got {
        *seen.entry(line.as_str()).or_default() += 1;
    }
    let missing = want.iter().filter(|l| !seen.contains_key(l.as_str())).cloned().collect();
    (missing, seen.values().map(|&c| c - 1).sum())
}

fn wait_all_of(r: &TcpReceiver, c: &Container, want: &[String]) -> Vec<String> {
    wait_until(PATIENCE, || {
        r.inbox.count_of(&c.id) >= want.len() && missing_and_duplicates_of(&r.inbox.lines_of(&c.id), want).0.is_empty()
    });
    r.inbox.settle_lines(&c.id, want.len())
}

fn wait_all(r: &TcpReceiver, c: &Container, n: usize) -> Vec<String> {
    wait_all_of(r, c, &expected(n))
}

/// A state directory, a GELF TCP receiver, its route, and a healthy spout using both; a later
/// spout started in the same directory takes over where this one stops.
fn spout_with_state() -> (tempfile::TempDir, TcpReceiver, String, Spout) {
    let state = tempfile::tempdir().expect("state dir");
    let r = TcpReceiver::start();
    let route = r.route();
    let spout = Spout::start_in(state.path(), &[&route], &[]);
    spout.wait_healthy();
    (state, r, route, spout)
}

#[test]
fn a_graceful_restart_mid_stream_delivers_every_line_exactly_once() {
    require_docker!();
    let (state, r, route, mut first) = spout_with_state();
    let c = steady_writer(20_000);
    r.inbox.wait_lines(&c.id, 3_000);
    first.sigterm();
    assert!(first.wait().success(), "stderr:\n{}", first.stderr());
    // What the first one delivered is read by the receiver before the second one delivers more:
    // lines are compared in order of arrival.
    r.inbox.settle_lines(&c.id, 0);
    let second = Spout::start_in(state.path(), &[&route], &[]);
    second.wait_healthy();
    c.wait();
    assert_exactly(&wait_all(&r, &c, 20_000), &expected(20_000), "after a graceful restart");
    drop(second);
}

#[test]
fn containers_that_wrote_while_spout_was_stopped_are_shipped_from_where_it_stopped() {
    require_docker!();
    let state = tempfile::tempdir().expect("state dir");
    let r = TcpReceiver::start();
    let route = r.route();
    let running = Container::run(&[], "echo before; while [ ! -f /go ]; do sleep 0.1; done; echo during; sleep 600");
    let exiting = Container::run(&[], "echo before; while [ ! -f /go ]; do sleep 0.1; done; echo last-words");
    assert!(wait_until(PATIENCE, || running.stored_lines() == 1 && exiting.stored_lines() == 1));
    let mut first = Spout::start_in(state.path(), &[&route], &[]);
    first.wait_healthy();
    running.exec("echo first-run > /proc/1/fd/1");
    exiting.exec("echo first-run > /proc/1/fd/1");
    r.inbox.wait_lines(&running.id, 1);
    r.inbox.wait_lines(&exiting.id, 1);
    first.sigterm();
    assert!(first.wait().success());
    // While spout is stopped: a running container writes, another writes and exits, and a new
    // one starts, writes and exits.
    running.exec("touch /go");
    exiting.exec("touch /go");
    exiting.wait();
    let started = Container::run(&[], "for i in $(seq 1 50); do echo while-stopped$i; done");
    started.wait();
    let _second = Spout::start_in(state.path(), &[&route], &[]);
    let want_started: Vec<String> = (1..=50).map(|i| format!("while-stopped{i}")).collect();
    assert_exactly(&wait_all_of(&r, &started, &want_started), &want_started, "container started while stopped");
    let want_running = vec!["first-run".to_owned(), "during".to_owned()];
    assert_exactly(&wait_all_of(&r, &running, &want_running), &want_running, "container running throughout");
    let want_exiting = vec!["first-run".to_owned(), "last-words".to_owned()];
    assert_exactly(&wait_all_of(&r, &exiting, &want_exiting), &want_exiting, "container that exited meanwhile");
}

#[test]
fn kill_9_mid_stream_loses_nothing_and_repeats_at_most_a_checkpoint_intervals_worth() {
    require_docker!();
    let (state, r, route, mut first) = spout_with_state();
    // About 2000 lines/s for 10 s, killed after 6 s.
    let c = writer(20_000, 50);
    r.inbox.wait_lines(&c.id, 12_000);
    first.kill9();
    let before_kill = r.inbox.lines_of(&c.id).len();
    let _second = Spout::start_in(state.path(), &[&route], &[]);
    c.wait();
    let got = wait_all(&r, &c, 20_000);
    let (missing, duplicates) = missing_and_duplicates(&got, 20_000);
    assert!(missing.is_empty(), "missing after kill -9: {missing:?}");
    // README: what was delivered after the last saved checkpoint is sent again, about one
    // checkpoint interval (1 s) of lines plus the moment acknowledgements take: 2 s of this
    // container's own writing at most.
    let times: Vec<f64> = r.inbox.of(&c.id).iter().filter_map(|m| m["timestamp"].as_f64()).collect();
    let span = times.iter().copied().fold(f64::MIN, f64::max) - times.iter().copied().fold(f64::MAX, f64::min);
    let per_second = 20_000.0 / span.max(0.001);
    let bound = (per_second * 2.0) as usize;
    eprintln!(
        "kill -9 after {before_kill} lines: {duplicates} duplicates; {per_second:.0} lines/s written, bound {bound}"
    );
    assert!(duplicates <= bound, "{duplicates} duplicates, more than 2 s of writing ({bound})");
}

#[test]
fn a_tcp_destination_down_for_5_s_mid_stream_gets_every_line() {
    require_docker!();
    let mut r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route()]);
    let c = steady_writer(30_000);
    r.inbox.wait_lines(&c.id, 3_000);
    r.stop();
    std::thread::sleep(Duration::from_secs(5));
    r.resume();
    c.wait();
    assert_none_missing(&wait_all(&r, &c, 30_000), &expected(30_000), "destination down 5 s", &spout.stderr());
}

#[test]
fn a_destination_that_closes_with_lines_acknowledged_and_unread_gets_them_again() {
    require_docker!();
    // A destination whose process takes nothing for a second, then dies: its kernel acknowledged
    // what fit in its buffer, and resets the connection since it was never read.
    let port = crate::support::free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let spout = Spout::start_healthy(&[&format!("gelf+tcp://127.0.0.1:{port}?backoff_max=500ms")]);
    let c = writer(5_000, 1);
    let (stalled, _) = listener.accept().expect("accept");
    std::thread::sleep(Duration::from_secs(1));
    drop(stalled);
    drop(listener);
    let r = TcpReceiver::start_on(port);
    c.wait();
    let context = "destination closed with lines unread";
    assert_none_missing(&wait_all(&r, &c, 5_000), &expected(5_000), context, &spout.stderr());
}

#[test]
fn cutting_the_docker_connection_mid_stream_loses_and_repeats_nothing() {
    require_docker!();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    let proxy = crate::support::proxy::DockerProxy::start(&socket);
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route(), "--docker-host", &format!("unix://{}", socket.display())]);
    let c = steady_writer(20_000);
    r.inbox.wait_lines(&c.id, 3_000);
    proxy.cut_all();
    r.inbox.wait_lines(&c.id, 8_000);
    proxy.cut_all();
    c.wait();
    assert_exactly(&wait_all(&r, &c, 20_000), &expected(20_000), "after two cuts");
}

#[test]
fn rotation_does_not_stop_following() {
    require_docker!();
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route()]);
    // About 100 bytes a line, 500 kB in all: five rotations of 100 kB, three files kept.
    let script = "i=0; while [ $i -lt 5000 ]; do i=$((i+1)); echo \"line$i $(printf '%080d' $i)\"; usleep 1000; done";
    let c = Container::run(&["--log-opt", "max-size=100k", "--log-opt", "max-file=3"], script);
    c.wait();
    let want: Vec<String> = (1..=5000).map(|i| format!("line{i} {i:080}")).collect();
    wait_until(PATIENCE, || r.inbox.lines_of(&c.id).len() >= 5000);
    assert_exactly(&r.inbox.settle_lines(&c.id, 5000), &want, "across rotations");
}

#[test]
fn memory_stays_bounded_while_the_destination_never_reads() {
    require_docker!();
    // A destination that accepts connections and never reads from them.
    let sink = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = sink.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || sink.incoming().take(4).filter_map(Result::ok).collect::<Vec<_>>());
    let (queue, max_line) = (1000u64, 16_384u64);
    let mut spout = Spout::start_healthy(&[
        &format!("gelf+tcp://127.0.0.1:{port}?queue={queue}"),
        "--max-line-bytes",
        &max_line.to_string(),
        "--shutdown-grace",
        "1s",
    ]);
    // 200 MB of lines as long as the bound assumes (16383 bytes and the newline), written as fast
    // as the daemon takes them.
    let c = Container::run(&[], "yes \"$(head -c 16383 /dev/zero | tr '\\0' x)\" | head -n 12800");
    c.wait();
    // Give spout time to read all it can; it must be stuck on the full queue by now.
    std::thread::sleep(Duration::from_secs(3));
    let peak_kib = spout.peak_rss_kib();
    // README, "Memory": base + per route (its queue, which holds what is written and not yet
    // acknowledged too, and the message in hand) x (line cap + message overhead) + the encoded
    // batch + per container two lines being merged and a batch gathered.
    let bound_kib = 40 * 1024 + ((queue + 1) * (max_line + 1024) / 1024 + 256) + (3 * max_line / 1024 + 1536);
    eprintln!("peak RSS {peak_kib} KiB with 200 MB written and a destination that never reads; bound {bound_kib} KiB");
    assert!(peak_kib < bound_kib, "peak RSS {peak_kib} KiB exceeds the documented bound {bound_kib} KiB");
    spout.sigterm();
    assert!(spout.wait().success());
    drop(held);
}
