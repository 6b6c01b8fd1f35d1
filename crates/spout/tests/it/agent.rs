//! The agent against the real Docker daemon: every line, once, in order, with its metadata.

use crate::support::receiver::{TcpReceiver, UdpReceiver};
use crate::support::{docker, numbered, wait_until, Container, Spout, PATIENCE};

#[test]
fn stdout_and_stderr_arrive_with_every_gelf_field_over_udp_gzip_zlib_and_none() {
    require_docker!();
    let (gzip, zlib, plain) = (UdpReceiver::start(), UdpReceiver::start(), UdpReceiver::start());
    let _spout = Spout::start_healthy(&[
        &format!("gelf://127.0.0.1:{}", gzip.port),
        &format!("gelf+udp://127.0.0.1:{}?compress=zlib", zlib.port),
        &format!("gelf+udp://127.0.0.1:{}?compress=none&chunk_size=200", plain.port),
        "--hostname",
        "test-host",
    ]);
    let c = Container::run(&[], "for i in $(seq 1 50); do echo out$i; echo err$i >&2; done");
    c.wait();
    let inspect: serde_json::Value = serde_json::from_str(&docker(&["inspect", &c.id])).expect("inspect json");
    let logs = std::process::Command::new("docker").args(["logs", "-t", &c.id]).output().expect("docker logs");
    let docker_times: std::collections::HashMap<String, f64> = [logs.stdout, logs.stderr]
        .iter()
        .flat_map(|out| String::from_utf8_lossy(out).lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| l.split_once(' ').map(|(ts, line)| (line.to_owned(), support_time(ts))))
        .collect();
    let inspect = &inspect[0];
    for inbox in [&gzip.inbox, &zlib.inbox, &plain.inbox] {
        inbox.wait_lines(&c.id, 100);
        let messages = inbox.of(&c.id);
        let stream_lines = |stream: &str| -> Vec<String> {
            messages
                .iter()
                .filter(|m| m["_stream"] == stream)
                .map(|m| m["short_message"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        assert_eq!(stream_lines("stdout"), numbered("out", 1..=50));
        assert_eq!(stream_lines("stderr"), numbered("err", 1..=50));
        for m in &messages {
            assert_eq!(m["version"], "1.1");
            assert_eq!(m["host"], "test-host");
            assert_eq!(m["level"], if m["_stream"] == "stdout" { 6 } else { 3 });
            assert_eq!(m["_container_id"].as_str().map(str::len), Some(64));
            assert_eq!(m["_container_name"], c.name.as_str());
            assert_eq!(m["_image_name"], crate::support::IMAGE);
            assert_eq!(m["_image_id"], inspect["Image"]);
            assert_eq!(m["_created"], inspect["Created"]);
            assert_eq!(m["_command"], format!("sh -c {}", inspect["Args"][1].as_str().unwrap_or("")));
            assert!(m.get("_truncated").is_none());
        }
        // Docker's own timestamp for each line (as `docker logs -t` shows it), to the microsecond.
        for m in &messages {
            let ts = m["timestamp"].as_f64().expect("numeric timestamp");
            let line = m["short_message"].as_str().unwrap_or("");
            let docker_ts = docker_times.get(line).unwrap_or_else(|| panic!("{line} not in docker logs"));
            assert!((ts - docker_ts).abs() < 2e-6, "{line}: timestamp {ts}, Docker's {docker_ts}");
        }
        assert!(inbox.errors.lock().expect("lock").is_empty());
    }
}

/// RFC 3339 to fractional seconds, with spout's parser (itself unit-tested against known values).
fn support_time(s: &str) -> f64 {
    let ns = spout::timestamp::parse_rfc3339_ns(s.as_bytes()).expect("RFC 3339 time");
    ns as f64 / 1e9
}

#[test]
fn tty_container_lines_lose_their_crlf() {
    require_docker!();
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route()]);
    let c = Container::run(&["-t"], "for i in $(seq 1 20); do echo tty$i; done; printf '  spaced\\tline  \\n'");
    c.wait();
    let lines = r.inbox.settle_lines(&c.id, 21);
    let mut expected = numbered("tty", 1..=20);
    expected.push("  spaced\tline  ".to_owned());
    assert_eq!(lines, expected);
    assert!(r.inbox.of(&c.id).iter().all(|m| m["_stream"] == "stdout"));
}

#[test]
fn a_40kb_line_arrives_whole_and_a_last_line_without_newline_is_shipped() {
    require_docker!();
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route()]);
    let c = Container::run(
        &[],
        "echo before; head -c 40000 /dev/zero | tr '\\0' x; echo; echo after; printf 'no newline at the end'",
    );
    let t = Container::run(&["-t"], "head -c 40000 /dev/zero | tr '\\0' y; echo; printf 'tty without newline'");
    c.wait();
    t.wait();
    let lines = r.inbox.settle_lines(&c.id, 4);
    assert_eq!(
        lines,
        vec!["before".to_owned(), "x".repeat(40_000), "after".to_owned(), "no newline at the end".to_owned()]
    );
    let lines = r.inbox.settle_lines(&t.id, 2);
    assert_eq!(lines, vec!["y".repeat(40_000), "tty without newline".to_owned()]);
}

#[test]
fn invalid_utf8_becomes_replacement_characters_and_empty_lines_are_skipped() {
    require_docker!();
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route()]);
    let c = Container::run(&[], "printf 'ok\\377\\376bad\\n\\n\\nlatin1 caf\\351\\n'; echo done");
    c.wait();
    assert_eq!(r.inbox.settle_lines(&c.id, 3), vec!["ok\u{fffd}\u{fffd}bad", "latin1 caf\u{fffd}", "done"]);
}

/// A container that prints "old" lines, waits for /go, then prints "new" lines and idles.
fn waiting_container() -> Container {
    let c = Container::run(
        &[],
        "echo old1; echo old2; while [ ! -f /go ]; do sleep 0.1; done; echo new1; echo new2; sleep 600",
    );
    assert!(wait_until(PATIENCE, || c.stored_lines() == 2), "container never wrote its first lines");
    c
}

#[test]
fn a_container_running_before_spout_is_shipped_from_spouts_start() {
    require_docker!();
    let c = waiting_container();
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route()]);
    c.exec("touch /go");
    assert_eq!(r.inbox.settle_lines(&c.id, 2), vec!["new1", "new2"]);
}

#[test]
fn backlog_ships_the_whole_history_of_a_running_container() {
    require_docker!();
    let c = waiting_container();
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route(), "--backlog"]);
    c.exec("touch /go");
    assert_eq!(r.inbox.settle_lines(&c.id, 4), vec!["old1", "old2", "new1", "new2"]);
}

#[test]
fn backlog_can_be_set_in_the_environment() {
    require_docker!();
    let c = waiting_container();
    let r = TcpReceiver::start();
    let spout = Spout::start_with_env(&[], &[("ROUTE_URIS", &r.route()), ("BACKLOG", "true")]);
    spout.wait_healthy();
    c.exec("touch /go");
    assert_eq!(r.inbox.settle_lines(&c.id, 4), vec!["old1", "old2", "new1", "new2"]);
}

#[test]
fn a_restarted_container_ships_each_run_once() {
    require_docker!();
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route()]);
    let script = "n=$(cat /n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /n; for i in 1 2 3; do echo run$n-$i; done";
    let c = Container::run(&[], script);
    c.wait();
    r.inbox.wait_lines(&c.id, 3);
    c.start();
    c.wait();
    r.inbox.wait_lines(&c.id, 6);
    docker(&["restart", &c.id]);
    c.wait();
    let expected: Vec<String> = (1..=3).flat_map(|run| (1..=3).map(move |i| format!("run{run}-{i}"))).collect();
    assert_eq!(r.inbox.settle_lines(&c.id, 9), expected);
}

#[test]
fn a_container_removed_while_being_read_loses_nothing_before_and_harms_nothing_after() {
    require_docker!();
    let r = TcpReceiver::start();
    let mut spout = Spout::start_healthy(&[&r.route()]);
    let c = Container::run(&[], "i=0; while true; do i=$((i+1)); echo line$i; usleep 2000; done");
    r.inbox.wait_lines(&c.id, 50);
    docker(&["rm", "-f", &c.id]);
    let lines = r.inbox.settle_lines(&c.id, 50);
    assert_eq!(lines, numbered("line", 1..=lines.len()), "lines before removal arrive once and in order");
    assert!(spout.is_running());
    assert_eq!(spout.health().0, 200);
    let next = Container::run(&[], "echo still here");
    next.wait();
    assert_eq!(r.inbox.settle_lines(&next.id, 1), vec!["still here"]);
}

#[test]
fn short_rm_jobs_are_shipped_whole_or_reported() {
    require_docker!();
    let r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route()]);
    // Each job writes and exits at once, and the daemon removes it right after. A reader that
    // waited for its inspect (answered only once the daemon is done with the exited container)
    // found nothing left and said nothing; one that reads while the inspect is on its way ships
    // the job's lines, unless the job was removed before the daemon answered, which it reports.
    // Through the API, a job removed between the end of its follow stream and the read that
    // confirms it (the daemon ends follow streams early under load) has an end spout cannot
    // confirm: it says so (debug, and counted), having shipped the lines it got, in order.
    let script = "i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo \"$HOSTNAME job line $i\"; done";
    let jobs = Container::run_together(10, &["--rm"], script);
    let whole = |job: &Container| r.inbox.lines_of(&job.id).len() == 20;
    let reported = |job: &Container, stderr: &str| {
        let said = lines_naming(stderr, &job.id)
            .iter()
            .any(|l| l.contains("removed before") || l.contains("end could not be confirmed"));
        let got = r.inbox.lines_of(&job.id);
        let host = &job.id[..12];
        said && got.iter().enumerate().all(|(i, line)| *line == format!("{host} job line {}", i + 1))
    };
    let settled = wait_until(PATIENCE, || jobs.iter().all(|job| whole(job) || reported(job, &spout.stderr())));
    let stderr = spout.stderr();
    let neither: Vec<String> = jobs
        .iter()
        .filter(|job| !whole(job) && !reported(job, &stderr))
        .map(|job| {
            format!("{} ({} lines): {:?}", job.id, r.inbox.lines_of(&job.id).len(), lines_naming(&stderr, &job.id))
        })
        .collect();
    assert!(settled, "jobs neither shipped whole nor reported:\n{}", neither.join("\n"));
    let mut shipped = 0;
    for job in &jobs {
        if whole(job) {
            let host = &job.id[..12];
            let expected: Vec<String> = (1..=20).map(|i| format!("{host} job line {i}")).collect();
            assert_eq!(r.inbox.settle_lines(&job.id, 20), expected, "job {}", job.name);
            let warned = stderr.lines().any(|l| l.contains("WARN") && l.contains(&job.id));
            assert!(!warned, "job {} arrived whole but was reported as a loss:\n{stderr}", job.name);
            shipped += 1;
        }
    }
    eprintln!("{shipped} of {} --rm jobs shipped, the rest reported", jobs.len());
    // Reading while the inspect is on its way is what ships short jobs; most must make it.
    assert!(shipped * 10 >= jobs.len() * 7, "only {shipped} of {} --rm jobs shipped:\n{stderr}", jobs.len());
}

#[test]
fn twenty_containers_started_together_lose_no_line() {
    require_docker!();
    let r = TcpReceiver::start();
    let _spout = Spout::start_healthy(&[&r.route()]);
    let script = "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo \"$HOSTNAME line $i\"; done";
    let containers = Container::run_together(20, &[], script);
    for c in &containers {
        c.wait();
    }
    for c in &containers {
        let lines = r.inbox.wait_lines(&c.id, 2000);
        let host = &c.id[..12];
        let expected: Vec<String> = (1..=2000).map(|i| format!("{host} line {i}")).collect();
        assert_eq!(lines.len(), 2000, "container {} delivered {} of 2000", c.name, lines.len());
        assert_eq!(lines, expected);
    }
    // Everything arrived; once the last container's lines have been quiet a while, no container
    // may have more than its 2000.
    if let Some(last) = containers.last() {
        r.inbox.settle_lines(&last.id, 2000);
    }
    for c in &containers {
        assert_eq!(r.inbox.count_of(&c.id), 2000, "duplicates for {}", c.name);
    }
}

#[test]
fn a_tcp_destination_that_is_down_at_first_gets_everything_once_it_is_up() {
    require_docker!();
    let port = crate::support::free_port();
    let _spout = Spout::start_healthy(&[&format!("gelf+tcp://127.0.0.1:{port}")]);
    let c = Container::run(&[], "for i in $(seq 1 300); do echo msg$i; done");
    c.wait();
    let r = TcpReceiver::start_on(port);
    assert_eq!(r.inbox.settle_lines(&c.id, 300), numbered("msg", 1..=300));
}

#[test]
fn without_routes_spout_writes_json_lines_to_stdout() {
    require_docker!();
    let spout = Spout::start_healthy(&[]);
    let c = Container::run(&[], "echo hello; echo oops >&2");
    c.wait();
    let mine = || -> Vec<serde_json::Value> {
        spout
            .stdout()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["container_id"] == c.id.as_str())
            .collect()
    };
    assert!(wait_until(PATIENCE, || mine().len() >= 2), "stdout: {}", spout.stdout());
    let mut records = mine();
    assert_eq!(records.len(), 2);
    // stdout and stderr are copied by two goroutines in the daemon: no order between them.
    records.sort_by_key(|r| r["stream"].as_str().map(str::to_owned));
    records.reverse();
    assert_eq!((records[0]["message"].as_str(), records[0]["stream"].as_str()), (Some("hello"), Some("stdout")));
    assert_eq!((records[1]["message"].as_str(), records[1]["stream"].as_str()), (Some("oops"), Some("stderr")));
    assert_eq!(records[0]["container_name"], c.name.as_str());
    assert!(records[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[test]
fn opted_out_containers_are_skipped_and_unreadable_ones_warned_about_once() {
    require_docker!();
    let r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route()]);
    let by_env = Container::run(&["-e", "LOGSPOUT=ignore"], "echo secret-env");
    let by_label = Container::run(&["--label", "spout.exclude=true"], "echo secret-label");
    let no_driver = Container::run(&["--log-driver", "none"], "echo nowhere");
    no_driver.wait();
    no_driver.start();
    no_driver.wait();
    let control = Container::run(&[], "echo shipped");
    for c in [&by_env, &by_label, &control] {
        c.wait();
    }
    assert_eq!(r.inbox.settle_lines(&control.id, 1), vec!["shipped"]);
    assert!(r.inbox.lines_of(&by_env.id).is_empty());
    assert!(r.inbox.lines_of(&by_label.id).is_empty());
    let warnings = spout.stderr().lines().filter(|l| l.contains("WARN") && l.contains(&no_driver.id)).count();
    assert_eq!(warnings, 1, "stderr:\n{}", spout.stderr());
}

#[test]
fn health_is_503_naming_the_address_and_the_cause_when_docker_cannot_be_reached_and_200_when_it_can() {
    require_docker!();
    for (host, cause) in
        [("unix:///nonexistent/docker.sock", "/nonexistent/docker.sock"), ("tcp://127.0.0.1:1", "Connection refused")]
    {
        let down = Spout::start(&["--docker-host", host]);
        assert!(wait_until(PATIENCE, || down.health().0 == 503));
        let out = std::process::Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", &format!("http://127.0.0.1:{}/health", down.http_port)])
            .output()
            .expect("curl");
        let out = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = out.rsplit_once('\n').unwrap_or_default();
        assert_eq!(code, "503", "{out}");
        let health: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(health["status"], "unavailable");
        assert_eq!(health["docker"]["connected"], false);
        assert_eq!(health["docker"]["address"], host);
        let problem = health["problems"][0].as_str().unwrap_or("");
        assert!(problem.contains(host) && problem.contains(cause), "{host}: {problem}");
        let never_reached = down.stderr().lines().any(|l| l.contains("cannot reach the Docker daemon"));
        assert!(never_reached && !down.stderr().contains("lost the Docker daemon"), "{}", down.stderr());
    }
    let r = TcpReceiver::start();
    let up = Spout::start_healthy(&[&r.route()]);
    let (code, body) = up.health();
    let health: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(health["docker"]["connected"], true);
    assert_eq!(health["routes"][0]["uri"], r.route());
    assert_eq!(health["checkpoints"]["saving"], true);
}

#[test]
fn health_stays_200_while_a_destination_is_down_and_says_so() {
    require_docker!();
    let port = crate::support::free_port();
    let spout = Spout::start_healthy(&[&format!("gelf+tcp://127.0.0.1:{port}")]);
    let c = Container::run(&[], "echo hello");
    c.wait();
    let down = || {
        let (code, body) = spout.health();
        let health: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        code == 200 && health["routes"][0]["state"] == "down" && health["routes"][0]["last_error"].is_string()
    };
    assert!(wait_until(PATIENCE, down), "{:?}", spout.health());
}

#[test]
fn sigterm_delivers_what_is_queued_and_exits_zero() {
    require_docker!();
    let port = crate::support::free_port();
    // stdout:// shows when every line has been read and queued; the TCP route is down until
    // after SIGTERM, so the lines can only reach it during the grace period.
    let mut spout =
        Spout::start_healthy(&[&format!("gelf+tcp://127.0.0.1:{port}"), "stdout://", "--shutdown-grace", "30s"]);
    let c = Container::run(&[], "for i in $(seq 1 500); do echo bye$i; done");
    c.wait();
    assert!(wait_until(PATIENCE, || spout.stdout().matches(&c.id).count() >= 500));
    spout.sigterm();
    let r = TcpReceiver::start_on(port);
    let status = spout.wait();
    assert!(status.success(), "exit status {status:?}; stderr:\n{}", spout.stderr());
    assert_eq!(r.inbox.settle_lines(&c.id, 500), numbered("bye", 1..=500));
}

#[test]
fn spout_waits_for_the_daemon_and_reconnects_after_every_connection_is_cut() {
    require_docker!();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    let r = TcpReceiver::start();
    let mut spout = Spout::start(&[&r.route(), "--docker-host", &format!("unix://{}", socket.display())]);
    // No daemon behind the socket yet: spout stays up and says why it is unhealthy.
    assert!(wait_until(PATIENCE, || spout.health().0 == 503));
    assert!(spout.is_running());
    let proxy = crate::support::proxy::DockerProxy::start(&socket);
    spout.wait_healthy();
    let first = Container::run(&[], "for i in $(seq 1 100); do echo first$i; done; sleep 600");
    assert_eq!(r.inbox.wait_lines(&first.id, 100), numbered("first", 1..=100));

    proxy.cut_all();
    assert!(wait_until(PATIENCE, || spout.health().0 == 503 || spout.stderr().contains("lost the Docker daemon")));
    spout.wait_healthy();
    let second = Container::run(&[], "for i in $(seq 1 100); do echo second$i; done");
    second.wait();
    assert_eq!(r.inbox.settle_lines(&second.id, 100), numbered("second", 1..=100));
    first.exec("echo after-the-cut > /proc/1/fd/1");
    let mut expected = numbered("first", 1..=100);
    expected.push("after-the-cut".to_owned());
    assert_eq!(r.inbox.settle_lines(&first.id, 101), expected, "resumed without loss or duplicates");
}

#[test]
fn a_renamed_container_is_shipped_under_its_new_name() {
    require_docker!();
    let r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route()]);
    let c = Container::run(&[], "echo before; while [ ! -f /go ]; do sleep 0.1; done; echo after; sleep 600");
    r.inbox.wait_lines(&c.id, 1);
    let new_name = crate::support::unique_name();
    docker(&["rename", &c.name, &new_name]);
    // The rename event reaches spout asynchronously: write only once spout has taken it in.
    let renamed = format!("name={new_name}");
    assert!(wait_until(PATIENCE, || spout
        .stderr()
        .lines()
        .any(|l| l.contains("container renamed") && l.contains(&renamed))));
    c.exec("touch /go");
    let messages = {
        r.inbox.settle_lines(&c.id, 2);
        r.inbox.of(&c.id)
    };
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["_container_name"], c.name.as_str());
    assert_eq!(messages[1]["_container_name"], new_name.as_str());
}

#[test]
fn json_lines_and_gelf_framed_by_newlines_over_tcp_and_json_records_over_udp_arrive_whole() {
    require_docker!();
    let (json, gelf, udp) = (TcpReceiver::start_lines(), TcpReceiver::start_lines(), UdpReceiver::start());
    let _spout = Spout::start_healthy(&[
        &format!("json+tcp://127.0.0.1:{}", json.port),
        &format!("gelf+tcp://127.0.0.1:{}?framing=newline", gelf.port),
        &format!("json+udp://127.0.0.1:{}?max_size=1000", udp.port),
        "--field",
        "team=payments",
    ]);
    // A line with characters JSON must escape, lines of both streams, and a line longer than the
    // UDP route's datagrams.
    let long = "y".repeat(3000);
    let script = format!(
        "printf 'tab\\there \"quoted\" back\\\\slash\\n'; for i in $(seq 1 100); do echo line$i; echo err$i >&2; done; echo {long}"
    );
    let c = Container::run(&[], &script);
    c.wait();
    for inbox in [&json.inbox, &gelf.inbox, &udp.inbox] {
        let lines = inbox.settle_lines(&c.id, 202);
        // The streams are stored by two copiers: order holds within a stream only.
        assert!(lines.iter().any(|l| l == "tab\there \"quoted\" back\\slash"), "the escaped line whole");
        let of = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).cloned().collect::<Vec<_>>();
        assert_eq!(of("line"), numbered("line", 1..=100));
        assert_eq!(of("err"), numbered("err", 1..=100));
        assert_eq!(lines.len(), 202, "each line once");
        assert!(inbox.errors.lock().expect("lock").is_empty());
    }
    // Whole over TCP; over UDP cut to fit the datagram, and marked.
    assert!(json.inbox.lines_of(&c.id).contains(&long));
    let cut = udp.inbox.of(&c.id).into_iter().find(|m| m["message"].as_str().is_some_and(|l| l.starts_with('y')));
    let cut = cut.expect("the long line");
    assert!(cut["message"].as_str().is_some_and(|l| l.len() < 1000 && long.starts_with(l)), "{}", cut["message"]);
    assert_eq!(cut["truncated"], true);
    for m in json.inbox.of(&c.id) {
        assert_eq!(m["container_name"], c.name.as_str());
        assert_eq!(m["container_id"].as_str().map(str::len), Some(64));
        assert_eq!(m["fields"]["team"], "payments");
        let stream = if m["message"].as_str().is_some_and(|l| l.starts_with("err")) { "stderr" } else { "stdout" };
        assert_eq!(m["stream"], stream);
        assert!(
            m["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 30),
            "RFC 3339 with nanoseconds: {}",
            m["time"]
        );
    }
    for m in gelf.inbox.of(&c.id) {
        assert_eq!(m["version"], "1.1");
        assert_eq!(m["_team"], "payments");
    }
}

/// The lines of spout's log that name a container.
fn lines_naming<'a>(log: &'a str, container_id: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(container_id)).collect()
}
