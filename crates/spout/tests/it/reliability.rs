//! Delivery promises under the faults users meet: a black-holed destination, a destination name
//! that moves, one container flooding the rest, a slow daemon, containers that ran while spout
//! was stopped, and containers removed before spout could read them.

use std::collections::HashSet;
use std::time::Duration;

use crate::support::net::{Blackhole, HostsEntry};
use crate::support::proxy::{self, DockerProxy};
use crate::support::receiver::{Inbox, TcpReceiver, UdpReceiver};
use crate::support::{docker, free_port, numbered, unique_name, wait_until, Container, Spout, PATIENCE};

/// Lines of `want` that are not in `got`.
fn missing(got: &[String], want: &[String]) -> Vec<String> {
    let got: HashSet<&String> = got.iter().collect();
    want.iter().filter(|l| !got.contains(l)).cloned().collect()
}

/// Waits for every line of `want` from `c` in `inbox` (duplicates allowed), and fails naming what
/// is missing.
fn assert_all_arrive(inbox: &Inbox, c: &Container, want: &[String], spout: &Spout) {
    wait_until(PATIENCE, || missing(&inbox.lines_of(&c.id), want).is_empty());
    let lost = missing(&inbox.lines_of(&c.id), want);
    assert!(
        lost.is_empty(),
        "{} lines lost, e.g. {:?}; spout:\n{}",
        lost.len(),
        &lost[..lost.len().min(5)],
        spout.stderr()
    );
}

/// A daemon slow to answer the requests `delay` names (through a proxy on its socket), a GELF TCP
/// receiver, and a healthy spout between them.
fn behind_a_slow_daemon(delay: proxy::Delay, source: &str) -> (tempfile::TempDir, DockerProxy, TcpReceiver, Spout) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    let proxy = DockerProxy::start_delaying(&socket, delay);
    let r = TcpReceiver::start();
    let host = format!("unix://{}", socket.display());
    let spout = Spout::start_healthy(&[&r.route(), "--docker-host", &host, "--source", source]);
    (dir, proxy, r, spout)
}

#[test]
fn a_black_holed_destination_whose_receiver_dies_meanwhile_loses_nothing() {
    require_docker!();
    let mut r = TcpReceiver::start();
    let timeout = Duration::from_secs(3);
    let spout = Spout::start_healthy(&[&format!("gelf+tcp://127.0.0.1:{}?timeout=3s", r.port)]);
    // About 1000 lines/s for 15 s.
    let c = Container::run(
        &[],
        "i=0; while [ $i -lt 15000 ]; do i=$((i+1)); echo line$i; [ $((i % 100)) -eq 0 ] && usleep 100000; done",
    );
    r.inbox.wait_lines(&c.id, 2_000);
    {
        // The path goes silent: no reset, no answer. Lines written meanwhile sit in the kernel's
        // send buffer, never acknowledged; spout must not take them for delivered.
        let _partition = Blackhole::port(r.port);
        let detected = || {
            spout.stderr().lines().any(|l| {
                l.contains("connection lost") && (l.contains("acknowledged nothing") || l.contains("timed out"))
            })
        };
        // The documented bound: `timeout`, plus a few seconds for the write in hand and the poll.
        assert!(
            wait_until(timeout + Duration::from_secs(5), detected),
            "a black-holed connection went unnoticed; stderr:\n{}",
            spout.stderr()
        );
        // The receiver dies while its peer cannot tell, and a new one comes up on the same port.
        r.stop();
        std::thread::sleep(Duration::from_secs(2));
        r.resume();
    }
    c.wait();
    assert_all_arrive(&r.inbox, &c, &numbered("line", 1..=15_000), &spout);
    let connections = spout.stderr().lines().filter(|l| l.contains(" connected")).count();
    assert!(connections >= 2, "the dead connection was replaced; stderr:\n{}", spout.stderr());
}

#[test]
fn a_udp_destination_whose_name_moves_is_followed() {
    require_docker!();
    let old = UdpReceiver::start_at("127.0.0.2", 0);
    let new = UdpReceiver::start_at("127.0.0.3", old.port);
    let name = format!("{}.test", unique_name());
    let hosts = HostsEntry::new(&name, "127.0.0.2");
    let spout = Spout::start_healthy(&[&format!("gelf://{name}:{}?resolve_every=1s", old.port)]);
    let c = Container::run(&[], "i=0; while true; do i=$((i+1)); echo tick$i; usleep 100000; done");
    old.inbox.wait_lines(&c.id, 5);
    hosts.point_to("127.0.0.3");
    assert!(
        wait_until(PATIENCE, || new.inbox.count_of(&c.id) >= 5),
        "the route kept sending to the old address; stderr:\n{}",
        spout.stderr()
    );
    // Nothing goes to the old address any more.
    let stopped_at = old.inbox.count_of(&c.id);
    new.inbox.wait_lines(&c.id, new.inbox.count_of(&c.id) + 10);
    assert_eq!(old.inbox.count_of(&c.id), stopped_at);
}

#[test]
fn a_tcp_destination_whose_name_moves_is_reached_at_its_new_address() {
    require_docker!();
    let inbox = Inbox::default();
    let port = free_port();
    let mut old = TcpReceiver::start_at("127.0.0.2", port, inbox.clone());
    let name = format!("{}.test", unique_name());
    let hosts = HostsEntry::new(&name, "127.0.0.2");
    let spout = Spout::start_healthy(&[&format!("gelf+tcp://{name}:{port}")]);
    let c = Container::run(
        &[],
        "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line$i; [ $((i % 100)) -eq 0 ] && usleep 200000; done",
    );
    inbox.wait_lines(&c.id, 500);
    // The service moves: the new instance is up on the new address, the old one goes away.
    let _new = TcpReceiver::start_at("127.0.0.3", port, inbox.clone());
    hosts.point_to("127.0.0.3");
    old.stop();
    c.wait();
    assert_all_arrive(&inbox, &c, &numbered("line", 1..=3000), &spout);
    assert!(spout.stderr().contains("address=127.0.0.3"), "stderr:\n{}", spout.stderr());
}

#[test]
fn a_tty_container_writing_100_mb_without_a_newline_starves_no_one() {
    require_docker!();
    let r = TcpReceiver::start();
    let (queue, max_line) = (100u64, 65_536u64);
    let mut spout =
        Spout::start_healthy(&[&format!("{}?queue={queue}", r.route()), "--max-line-bytes", &max_line.to_string()]);
    let ticker = Container::run(&[], "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo tick$i; usleep 100000; done");
    r.inbox.wait_lines(&ticker.id, 3);
    let flood = Container::run(&["-t"], "head -c 100000000 /dev/zero | tr '\\0' x; echo; echo last-line");
    flood.wait();
    let messages = {
        r.inbox.settle_lines(&flood.id, 2);
        r.inbox.of(&flood.id)
    };
    assert_eq!(messages.len(), 2, "one cut message and the last line");
    assert_eq!(messages[0]["short_message"].as_str().map(str::len), Some(max_line as usize));
    assert_eq!(messages[0]["_truncated"], "true");
    assert_eq!(messages[1]["short_message"], "last-line");
    // While spout read the 100 MB, the ticker's lines kept arriving: those written after the flood
    // began arrived before the flood's message did.
    let flood_began = messages[0]["timestamp"].as_f64().unwrap_or(f64::MAX);
    let flood_arrived = messages[0]["_arrival"].as_u64().unwrap_or(0);
    let meanwhile = r
        .inbox
        .of(&ticker.id)
        .iter()
        .filter(|m| {
            m["timestamp"].as_f64().unwrap_or(0.0) > flood_began && m["_arrival"].as_u64() < Some(flood_arrived)
        })
        .count();
    assert!(meanwhile > 0, "no line of another container arrived while the flood was read");
    // README, "Memory": base + per route (queue + the batch in hand) x (line cap + message
    // overhead) + batch + per container (3 line caps + 1.5 MiB), two containers.
    let peak_kib = spout.peak_rss_kib();
    let bound_kib = 40 * 1024 + ((queue + 1) * (max_line + 1024) / 1024 + 256) + 2 * (3 * max_line / 1024 + 1536);
    eprintln!("flood: peak RSS {peak_kib} KiB, bound {bound_kib} KiB, {meanwhile} ticker lines arrived meanwhile");
    assert!(peak_kib < bound_kib, "peak RSS {peak_kib} KiB exceeds the documented bound {bound_kib} KiB");
    ticker.wait();
    assert_eq!(r.inbox.settle_lines(&ticker.id, 300), numbered("tick", 1..=300));
    spout.sigterm();
    assert!(spout.wait().success());
}

#[test]
fn start_events_are_handled_while_the_daemon_is_slow_to_answer_inspects() {
    require_docker!();
    let (_dir, _proxy, r, spout) = behind_a_slow_daemon(proxy::inspects(Duration::from_secs(3)), "auto");
    let renamed = Container::run(&[], "sleep 600");
    let mut name = renamed.name.clone();
    for _ in 0..5 {
        let next = unique_name();
        docker(&["rename", &name, &next]);
        name = next;
    }
    let started = Container::run(&[], "echo started; sleep 600");
    assert_eq!(r.inbox.wait_lines(&started.id, 1), ["started"]);
    assert!(wait_until(PATIENCE, || spout.stderr().matches("container renamed").count() >= 5));
    // Each rename makes spout inspect the container, and each inspect takes 3 s: a watcher that
    // waited for them would see the start event only after all five.
    let stderr = spout.stderr();
    let attached = stderr.lines().position(|l| l.contains("attaching") && l.contains(&started.id));
    let first_rename = stderr.lines().position(|l| l.contains("container renamed"));
    assert!(attached < first_rename, "the start waited for the renames; stderr:\n{stderr}");
}

/// Stops `first` gracefully, runs `c` to its end, and starts a spout in the same state directory.
fn run_while_stopped(mut first: Spout, c: &Container, state: &std::path::Path, route: &str) -> Spout {
    first.sigterm();
    assert!(first.wait().success(), "stderr:\n{}", first.stderr());
    c.start();
    c.wait();
    // Long enough before the next start that its events (from a second before) do not show it.
    std::thread::sleep(Duration::from_secs(2));
    Spout::start_in(state, &[route], &[])
}

#[test]
fn a_container_created_while_spout_ran_and_started_while_it_was_stopped_is_shipped() {
    require_docker!();
    let state = tempfile::tempdir().expect("state dir");
    let r = TcpReceiver::start();
    let first = Spout::start_in(state.path(), &[&r.route()], &[]);
    first.wait_healthy();
    let name = unique_name();
    let id =
        docker(&["create", "--name", &name, crate::support::IMAGE, "sh", "-c", "for i in 1 2 3; do echo late$i; done"]);
    let c = Container { id, name };
    // Wait for spout's periodic list (every 30 s) to have seen it: the time from which the next
    // start reads containers it has no checkpoint for moves well past its creation.
    let created: serde_json::Value = serde_json::from_str(&docker(&["inspect", &c.id])).expect("inspect");
    let created = created[0]["Created"].as_str().and_then(|t| spout::timestamp::parse_rfc3339_ns(t.as_bytes()));
    let created = created.expect("a creation time");
    let state_dir = state.path().join("state");
    let watermark =
        || spout::checkpoint::store::Saved::read(&state_dir).ok().and_then(|(saved, _)| saved.alive).unwrap_or(0);
    assert!(wait_until(Duration::from_secs(45), || watermark() > created + 2_000_000_000));
    let _second = run_while_stopped(first, &c, state.path(), &r.route());
    assert_eq!(r.inbox.settle_lines(&c.id, 3), numbered("late", 1..=3));
}

#[test]
fn a_container_that_ran_before_spout_and_again_while_it_was_stopped_ships_only_the_new_run() {
    require_docker!();
    let state = tempfile::tempdir().expect("state dir");
    let r = TcpReceiver::start();
    let script = "n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; echo run$n-a; echo run$n-b";
    let c = Container::run(&[], script);
    c.wait();
    // Its creation well before spout's first start (a second's slack would blur the two).
    std::thread::sleep(Duration::from_secs(3));
    let first = Spout::start_in(state.path(), &[&r.route()], &[]);
    first.wait_healthy();
    let _second = run_while_stopped(first, &c, state.path(), &r.route());
    assert_eq!(r.inbox.settle_lines(&c.id, 2), ["run2-a", "run2-b"]);
}

#[test]
fn a_job_removed_before_its_log_could_be_read_through_the_api_is_reported_as_a_loss_and_read_from_its_file() {
    require_docker!();
    let delay = || proxy::log_streams(Duration::from_secs(3));
    let (_dir, _proxy, r, spout) = behind_a_slow_daemon(delay(), "api");
    let job = Container::run(&["--rm"], "echo one; echo two");
    let reported =
        || spout.stderr().lines().any(|l| l.contains("WARN") && l.contains(&job.id) && l.contains("removed before"));
    assert!(wait_until(PATIENCE, reported), "stderr:\n{}", spout.stderr());
    assert!(r.inbox.lines_of(&job.id).is_empty());
    drop(spout);
    // Its json-file is opened as it starts, and read after the daemon removed it.
    let (_dir, _proxy, r, spout) = behind_a_slow_daemon(delay(), "files");
    let job = Container::run(&["--rm"], "echo one; echo two");
    assert_eq!(r.inbox.wait_lines(&job.id, 2), ["one", "two"], "stderr:\n{}", spout.stderr());
}
