//! Shared support for the integration tests: the real Docker daemon, a test image built FROM
//! scratch with Debian's busybox-static, GELF receivers, and spout itself as a child process.

pub mod collector;
pub mod net;
pub mod proxy;
pub mod receiver;
pub mod rsyslog;
pub mod terminal;
pub mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "spout-test-busybox:latest";

/// How long any wait in the tests may take before the test fails; generous, since the point is
/// what arrives, not how fast.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Set to 1, skips the tests that need what this machine lacks (a Docker daemon; botocore and
/// cfn-lint), each saying so where cargo shows it. Unset, a missing part fails them: a test
/// suite that ran nothing must not pass.
pub const SKIP_MISSING: &str = "SPOUT_TEST_SKIP_MISSING";

/// True when a Docker daemon answers. Without one the calling test fails, saying how to skip it
/// on purpose; with SPOUT_TEST_SKIP_MISSING=1 it is skipped, loudly.
pub fn docker_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        Command::new("docker")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !available {
        let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
        missing(&format!("no Docker daemon answers `docker info` at {host}"));
    }
    available
}

/// Fails the calling test for want of `what`, or, with SPOUT_TEST_SKIP_MISSING=1, says it is
/// skipped: on stderr itself, which the test harness does not capture, so that it shows among
/// cargo's own lines.
pub fn missing(what: &str) {
    if std::env::var(SKIP_MISSING).as_deref() != Ok("1") {
        panic!("{what}: this test needs it; set {SKIP_MISSING}=1 to skip such tests on purpose");
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {what} ({SKIP_MISSING}=1)");
}

/// Skips the calling test (returning early) when no Docker daemon is available.
#[macro_export]
macro_rules! require_docker {
    () => {
        if !$crate::support::docker_available() {
            return;
        }
        $crate::support::test_image();
    };
}

/// Builds the test image once: busybox-static on an empty filesystem. No registry needed.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("busybox not found: install Debian's busybox-static");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(&busybox, dir.path().join("busybox")).expect("copy busybox");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"/bin/sh\"]\n",
        )
        .expect("write Dockerfile");
        let out = Command::new("docker")
            .args(["build", "-q", "-t", IMAGE])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("run docker build");
        assert!(out.status.success(), "docker build failed: {}", String::from_utf8_lossy(&out.stderr));
    });
    IMAGE
}

/// Runs `docker ARGS` and returns its trimmed stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A test container, removed when dropped.
pub struct Container {
    pub id: String,
    pub name: String,
}

impl Container {
    /// `docker run -d [OPTIONS] IMAGE sh -c SCRIPT`, with a unique name.
    pub fn run(options: &[&str], script: &str) -> Container {
        let name = unique_name();
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(options);
        args.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        let id = docker(&args);
        Container { id, name }
    }

    /// `count` containers running the same script, started at once from as many threads, as a
    /// deploy or a host reboot does.
    pub fn run_together(count: usize, options: &[&str], script: &str) -> Vec<Container> {
        std::thread::scope(|s| {
            let starting: Vec<_> = (0..count).map(|_| s.spawn(|| Container::run(options, script))).collect();
            starting.into_iter().map(|t| t.join().expect("docker run")).collect()
        })
    }

    /// Blocks until the container has exited.
    pub fn wait(&self) {
        docker(&["wait", &self.id]);
    }

    pub fn start(&self) {
        docker(&["start", &self.id]);
    }

    pub fn exec(&self, script: &str) {
        docker(&["exec", &self.id, "sh", "-c", script]);
    }

    /// Lines the daemon holds for this container, both streams.
    pub fn stored_lines(&self) -> usize {
        let out = Command::new("docker").args(["logs", &self.id]).output().expect("docker logs");
        out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count()
            + out.stderr.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub fn unique_name() -> String {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("spout-test-{}-{n}", std::process::id())
}

/// A port nothing listens on right now, below Linux's ephemeral range (32768 and up): a port
/// from that range can be taken, while its listener is stopped, as the local end of any outgoing
/// connection, and a receiver restarted on it would then fail to bind.
pub fn free_port() -> u16 {
    let seed = u64::from(std::process::id()) << 32 | u64::from(SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..1000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 10_000 + (x % 20_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 10000 and 30000");
}

/// spout as a child process with its own state dir and HTTP port; killed when dropped.
pub struct Spout {
    child: Child,
    pub http_port: u16,
    /// Kept alive for spouts that own their state directory.
    _state_dir: Option<tempfile::TempDir>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Spout {
    pub fn start(args: &[&str]) -> Spout {
        Spout::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Spout {
        let dir = tempfile::tempdir().expect("state dir");
        let mut spout = Spout::start_in(dir.path(), args, env);
        spout._state_dir = Some(dir);
        spout
    }

    /// Starts spout with `dir` as its state directory, so a later spout can take over from it.
    /// An `--http ADDR` among `args` is used as it is (its port is the API's).
    pub fn start_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Spout {
        let given = args.iter().position(|a| *a == "--http").and_then(|i| args.get(i + 1));
        let http_port = match given.and_then(|addr| addr.rsplit_once(':')) {
            Some((_, port)) => port.parse().expect("--http ADDR:PORT"),
            None => free_port(),
        };
        let own_http = given.is_none().then(|| ["--http".to_owned(), format!("127.0.0.1:{http_port}")]);
        let run = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stdout_path = dir.join(format!("spout-{run}.stdout"));
        let stderr_path = dir.join(format!("spout-{run}.stderr"));
        // SPOUT_TEST_SOURCE=api runs a test binary through the Docker API (.ci/run does, for the
        // delivery, routing and agent tests), unless the test says which source itself.
        let given_source = args.contains(&"--source");
        let source = std::env::var("SPOUT_TEST_SOURCE").ok().filter(|_| !given_source);
        let child = Command::new(env!("CARGO_BIN_EXE_spout"))
            .args(args)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(own_http.iter().flatten())
            .args(source.iter().flat_map(|s| ["--source", s.as_str()]))
            .env_remove("ROUTE_URIS")
            .env_remove("BACKLOG")
            .env("RUST_LOG", "info,spout=debug")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("start spout");
        Spout { child, http_port, _state_dir: None, stdout_path, stderr_path }
    }

    /// Starts spout and waits until /health says it is connected to Docker.
    pub fn start_healthy(args: &[&str]) -> Spout {
        let spout = Spout::start(args);
        spout.wait_healthy();
        spout
    }

    pub fn wait_healthy(&self) {
        let ok = wait_until(PATIENCE, || self.health().0 == 200);
        assert!(ok, "spout never became healthy; stderr:\n{}", self.stderr());
    }

    /// GET /health: status code and body.
    pub fn health(&self) -> (u16, String) {
        http_get(self.http_port, "/health").unwrap_or((0, String::new()))
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// kill -9: no chance to save anything.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Peak resident memory so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.child.id())
    }

    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    }

    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait for spout")
    }
}

impl Drop for Spout {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident memory of process `pid` so far, in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// A bare HTTP/1.1 GET on localhost.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path, &[], "").map(|(status, _, body)| (status, body))
}

/// A bare HTTP/1.1 request on localhost: status, head, body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> Option<(u16, String, String)> {
    let body = body.as_ref();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(&[request.as_bytes(), body].concat()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Some((status, head.to_owned(), body.to_owned()))
}

/// The code blocks in language `lang` (`sh`, `js`) of the README's section headed `heading`
/// (`## Quick start`), up to the next heading, in order.
pub fn readme_blocks(heading: &str, lang: &str) -> Vec<String> {
    let readme = include_str!("../../../../../README.md");
    let section = readme.split(&format!("\n{heading}\n")).nth(1).unwrap_or_else(|| panic!("the README has {heading}"));
    let end = ["\n## ", "\n### "].iter().filter_map(|h| section.find(h)).min().unwrap_or(section.len());
    let section = &section[..end];
    section
        .split(&format!("```{lang}\n"))
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or("").trim().to_owned())
        .collect()
}

/// `prefix1`, `prefix2`, … for the numbers in `range`: the lines a numbered writer writes.
pub fn numbered(prefix: &str, range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// Polls `done` until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
