//! The files source against the real daemon: json-file logs read directly, across rotations
//! (under load, while spout is stopped, gzipped), after kill -9, from a checkpoint spout wrote
//! before it read files, and what it leaves to the API.

use crate::support::receiver::TcpReceiver;
use crate::support::{docker, http_get, wait_until, Container, Spout, PATIENCE};
use spout::position::Position;

/// `n` numbered lines of 100 bytes, as fast as a shell pipe writes them.
fn fast_writer(n: usize, log_opts: &[&str]) -> Container {
    Container::run(&log_options(log_opts), &format!("seq 1 {n} | awk '{{printf \"%07d-{}\\n\", $1}}'", "x".repeat(92)))
}

/// `n` numbered lines of 100 bytes, about 2000 a second.
fn paced_writer(n: usize, log_opts: &[&str]) -> Container {
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); printf '%07d-{}\\n' $i; [ $((i % 100)) -eq 0 ] && usleep 50000; done",
        "x".repeat(92)
    );
    Container::run(&log_options(log_opts), &script)
}

fn log_options<'a>(opts: &[&'a str]) -> Vec<&'a str> {
    opts.iter().flat_map(|o| ["--log-opt", o]).collect()
}

/// The lines' numbers (their first seven characters; 0 for a line without one).
fn numbers(got: &[String]) -> Vec<usize> {
    got.iter().map(|l| l.get(..7).and_then(|d| d.parse().ok()).unwrap_or(0)).collect()
}

/// How often each of the numbers 1 to `n` is in `numbers` (at 1 to `n`).
fn seen(numbers: &[usize], n: usize) -> Vec<usize> {
    let mut seen = vec![0usize; n + 1];
    for &k in numbers.iter().filter(|&&k| k <= n) {
        seen[k] += 1;
    }
    seen
}

/// Asserts that `got` holds lines 1 to `n` exactly once each, in order.
fn assert_exactly_once(got: &[String], n: usize, context: &str) {
    let numbers = numbers(got);
    if numbers.len() == n && numbers.iter().enumerate().all(|(i, &k)| k == i + 1) {
        return;
    }
    let seen = seen(&numbers, n);
    let missing: Vec<usize> = (1..=n).filter(|&k| seen[k] == 0).collect();
    let repeated = seen.iter().filter(|&&c| c > 1).count();
    let first_out_of_order = numbers.iter().enumerate().position(|(i, &k)| k != i + 1);
    panic!(
        "{context}: {} lines, want {n}: {} missing (first {:?}), {repeated} repeated, first out of order at {first_out_of_order:?}",
        numbers.len(),
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}

/// The container's entry in spout's /containers.
fn entry(spout: &Spout, id: &str) -> serde_json::Value {
    let (_, body) = http_get(spout.http_port, "/containers").unwrap_or_default();
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    all.into_iter().find(|c| c["id"] == id).unwrap_or_default()
}

/// A counter's value in spout's /metrics.
fn metric(spout: &Spout, name: &str) -> f64 {
    let (_, body) = http_get(spout.http_port, "/metrics").unwrap_or_default();
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

/// spout's warnings of lines lost from one container (the metric counts every container's, and
/// the tests' containers run side by side).
fn losses_of(spout: &Spout, id: &str) -> Vec<String> {
    spout.stderr().lines().filter(|l| l.contains(id) && l.contains("lost")).map(str::to_owned).collect()
}

#[test]
fn a_writer_rotating_faster_than_it_is_read_loses_and_repeats_nothing() {
    require_docker!();
    let r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route(), "--source", "files"]);
    // 50,000 lines (9 MB of json-file) in a second or so, kept by the daemon as three files of
    // 1 MB: most files are deleted before spout has read them, and are read all the same.
    let c = fast_writer(50_000, &["max-size=1m", "max-file=3"]);
    c.wait();
    assert_exactly_once(&r.inbox.settle_lines(&c.id, 50_000), 50_000, "rotated under load");
    assert_eq!(entry(&spout, &c.id)["source"], "files");
    assert_eq!(losses_of(&spout, &c.id), Vec::<String>::new());
}

/// A receiver and a state directory, for a spout reading the files that is stopped (or killed)
/// and started again.
struct Restarts {
    state: tempfile::TempDir,
    r: TcpReceiver,
}

impl Restarts {
    fn new() -> Restarts {
        Restarts { state: tempfile::tempdir().expect("state dir"), r: TcpReceiver::start() }
    }

    /// spout, started and healthy.
    fn start(&self) -> Spout {
        let route = self.r.route();
        let spout = Spout::start_in(self.state.path(), &[route.as_str(), "--source", "files"], &[]);
        spout.wait_healthy();
        spout
    }
}

/// Stops spout once part of the writer's lines arrived, lets the writer rotate its log many
/// times meanwhile, starts spout again, and checks every line arrived exactly once.
fn stopped_across_rotations(log_opts: &[&str]) {
    let run = Restarts::new();
    let r = &run.r;
    let mut first = run.start();
    let c = paced_writer(3_000, log_opts);
    r.inbox.wait_lines(&c.id, 300);
    first.sigterm();
    assert!(first.wait().success(), "stderr:\n{}", first.stderr());
    r.inbox.settle_lines(&c.id, 0);
    c.wait();
    let second = run.start();
    assert_exactly_once(&r.inbox.settle_lines(&c.id, 3_000), 3_000, &format!("stopped across rotations {log_opts:?}"));
    assert!(!second.stderr().contains("rotated away"), "stderr:\n{}", second.stderr());
}

#[test]
fn a_log_truncated_in_place_is_read_from_its_start_each_time_exactly_once() {
    require_docker!();
    let r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route(), "--source", "files"]);
    // max-size alone keeps one file, which the daemon truncates in place once it holds 10 kB:
    // every ten lines of 1 kB here (about 1,065 bytes each as the daemon stores them). A line every 50 ms leaves spout time to read each before
    // the next write truncates it (what a truncation takes unread is gone for every reader).
    let script = format!(
        "i=0; while [ $i -lt 100 ]; do i=$((i+1)); printf '%07d-{}\\n' $i; usleep 50000; done",
        "x".repeat(992)
    );
    let c = Container::run(&log_options(&["max-size=10k"]), &script);
    c.wait();
    let got: Vec<String> = r.inbox.settle_lines(&c.id, 100).into_iter().map(|l| l[..7].to_owned()).collect();
    assert_exactly_once(&got, 100, "truncated in place nine times");
    assert_eq!(losses_of(&spout, &c.id), Vec::<String>::new());
    assert_eq!(entry(&spout, &c.id)["source"], "files");
}

#[test]
fn stopped_across_rotations_and_started_again_every_line_arrives_exactly_once() {
    require_docker!();
    // About 110 lines a file: some thirty rotations while spout is stopped; every file is kept.
    stopped_across_rotations(&["max-size=20k", "max-file=100"]);
}

#[test]
fn stopped_across_rotations_of_gzipped_files_every_line_arrives_exactly_once() {
    require_docker!();
    // The file spout was reading is compressed while it is stopped: it resumes inside the copy.
    stopped_across_rotations(&["max-size=20k", "max-file=100", "compress=true"]);
}

#[test]
fn killed_mid_stream_across_rotations_every_line_arrives_and_repeats_are_bounded() {
    require_docker!();
    let run = Restarts::new();
    let r = &run.r;
    let mut first = run.start();
    let c = paced_writer(8_000, &["max-size=50k", "max-file=100"]);
    r.inbox.wait_lines(&c.id, 3_000);
    first.kill9();
    let _second = run.start();
    c.wait();
    assert!(wait_until(PATIENCE, || r.inbox.count_of(&c.id) >= 8_000));
    let got = r.inbox.settle_lines(&c.id, 8_000);
    let seen = seen(&numbers(&got), 8_000);
    let missing: Vec<usize> = (1..=8_000).filter(|&k| seen[k] == 0).collect();
    assert!(missing.is_empty(), "missing after kill -9: {:?}", &missing[..missing.len().min(10)]);
    // What was delivered after the last checkpoint (every second) is sent again: at most about
    // two seconds of this writer's lines (2000 a second).
    let repeated = got.len() - 8_000;
    eprintln!("kill -9 across rotations: {repeated} lines sent again");
    assert!(repeated <= 4_000, "{repeated} lines sent again");
}

#[test]
fn a_file_rotated_away_while_spout_was_stopped_is_warned_about_with_its_span_and_counted() {
    require_docker!();
    let run = Restarts::new();
    let r = &run.r;
    let mut first = run.start();
    let script = format!(
        "for i in $(seq 1 50); do printf '%07d-early\\n' $i; done; while [ ! -f /go ]; do sleep 0.1; done; \
         seq 51 3000 | awk '{{printf \"%07d-{}\\n\", $1}}'; sleep 600",
        "x".repeat(92)
    );
    let c = Container::run(&log_options(&["max-size=20k", "max-file=2"]), &script);
    r.inbox.wait_lines(&c.id, 50);
    first.sigterm();
    assert!(first.wait().success(), "stderr:\n{}", first.stderr());
    // While spout is stopped, the file it was reading is rotated away and deleted.
    c.exec("touch /go");
    let rotated_away = || {
        let kept = std::process::Command::new("docker").args(["logs", &c.id]).output().expect("docker logs");
        let kept = String::from_utf8_lossy(&kept.stdout).into_owned();
        kept.contains("0003000-") && !kept.contains("0000050-early")
    };
    assert!(wait_until(PATIENCE, rotated_away), "the daemon rotated the early lines away");
    let second = run.start();
    let warned = || {
        second
            .stderr()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&c.id) && l.contains("rotated away") && l.contains("from="))
    };
    assert!(wait_until(PATIENCE, warned), "stderr:\n{}", second.stderr());
    assert!(wait_until(PATIENCE, || metric(&second, "spout_log_files_lost_total") >= 1.0));
    // What is still there is read.
    let last = format!("0003000-{}", "x".repeat(92));
    assert!(wait_until(PATIENCE, || r.inbox.lines_of(&c.id).contains(&last)), "the last line arrives");
}

/// FNV-1a, as spout's checkpoints sum themselves.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[test]
fn a_checkpoint_written_before_spout_read_files_resumes_after_its_line_exactly() {
    require_docker!();
    let state = tempfile::tempdir().expect("state dir");
    let r = TcpReceiver::start();
    let c = Container::run(
        &[],
        "for i in $(seq 1 100); do echo line$i; done; while [ ! -f /go ]; do sleep 0.1; done; \
         for i in $(seq 101 120); do echo line$i; done; sleep 600",
    );
    assert!(wait_until(PATIENCE, || c.stored_lines() == 100));
    // The checkpoint an earlier spout (format 1, read through the API) left after line 60.
    let logs = docker(&["logs", "--timestamps", &c.id]);
    let stamp = logs.lines().find(|l| l.ends_with(" line60")).and_then(|l| l.split(' ').next()).expect("line60");
    let ts = spout::timestamp::parse_rfc3339_ns(stamp.as_bytes()).expect("a timestamp");
    let body = format!("spout-checkpoint 1 {ts} 1 {ts}");
    let dir = state.path().join("state").join("checkpoints");
    std::fs::create_dir_all(&dir).expect("checkpoints dir");
    std::fs::write(dir.join(&c.id), format!("{body} {:016x}\n", fnv1a(body.as_bytes()))).expect("write");
    let spout = Spout::start_in(state.path(), &[&r.route(), "--source", "files"], &[]);
    spout.wait_healthy();
    c.exec("touch /go");
    let want: Vec<String> = (61..=120).map(|i| format!("line{i}")).collect();
    assert_eq!(r.inbox.settle_lines(&c.id, 60), want, "stderr:\n{}", spout.stderr());
    // Kept from then on in the files' terms, in the one file for every container.
    let saved = || spout::checkpoint::store::Saved::read(&state.path().join("state")).ok().map(|(s, _)| s);
    let in_files = || matches!(saved().and_then(|s| s.positions.get(&c.id).copied()), Some(Position::File(_)));
    assert!(wait_until(PATIENCE, in_files), "{:?}", saved());
    assert!(!dir.exists(), "the old layout is gone once its checkpoints are saved anew");
}

#[test]
fn a_container_whose_log_is_not_a_json_file_is_read_through_the_api() {
    require_docker!();
    let r = TcpReceiver::start();
    let spout = Spout::start_healthy(&[&r.route()]);
    let local = Container::run(&["--log-driver", "local"], "echo from-local; sleep 600");
    let json = Container::run(&[], "echo from-json-file; sleep 600");
    assert_eq!(r.inbox.wait_lines(&local.id, 1), ["from-local"]);
    assert_eq!(r.inbox.wait_lines(&json.id, 1), ["from-json-file"]);
    assert!(wait_until(PATIENCE, || entry(&spout, &local.id)["source"] == "api"));
    assert_eq!(entry(&spout, &json.id)["source"], "files");
    // With files only, it is left alone, saying why.
    let files_only = Spout::start_healthy(&[&r.route(), "--source", "files"]);
    let left = || entry(&files_only, &local.id);
    assert!(wait_until(PATIENCE, || left()["state"] == "left_alone"), "{}", left());
    assert!(left()["reason"].as_str().is_some_and(|r| r.contains("json-file")), "{}", left());
}
