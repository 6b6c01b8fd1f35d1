//! The image as deploy/build-image.sh builds it, run against this host's daemon as the ECS task
//! definition runs it, and the deployment files checked with the real tools.

mod support;

use std::process::Command;

use support::receiver::TcpReceiver;
use support::{docker, wait_until, Container, PATIENCE};

const IMAGE: &str = "spout-test-image:latest";
/// The README's figure, and the target.
const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;

/// Builds the image once for the tests that need it.
fn build_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(build);
}

fn build() {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/build-image.sh"))
        .env("IMAGE", IMAGE)
        .output()
        .expect("run deploy/build-image.sh");
    assert!(out.status.success(), "build-image.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

/// spout's container, removed when dropped.
struct Agent(String);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[test]
fn the_image_is_small_ships_skips_itself_reports_health_keeps_its_state_and_stops_cleanly() {
    require_docker!();
    build_image();
    let size: u64 = docker(&["image", "inspect", "--format", "{{.Size}}", IMAGE]).parse().expect("a size");
    eprintln!("image size: {size} bytes");
    assert!(size < MAX_IMAGE_BYTES, "{size} bytes");
    // Nothing in it but the binary, its libraries, CA certificates and the state directory.
    let created = docker(&["create", IMAGE]);
    let files =
        Command::new("sh").args(["-c", &format!("docker export {created} | tar -t")]).output().expect("docker export");
    docker(&["rm", &created]);
    let files = String::from_utf8_lossy(&files.stdout).into_owned();
    for needed in ["spout", "etc/ssl/certs/ca-certificates.crt", "var/lib/spout/"] {
        assert!(files.lines().any(|f| f == needed), "{needed} missing from:\n{files}");
    }
    let unexpected: Vec<&str> = files
        .lines()
        .filter(|f| {
            !f.ends_with('/')
                && !f.contains(".so")
                && !f.starts_with("etc/")
                && !f.starts_with("proc")
                && !f.starts_with("dev")
                && !f.starts_with("sys")
                && *f != "spout"
                && *f != ".dockerenv"
        })
        .collect();
    assert!(unexpected.is_empty(), "unexpected files: {unexpected:?}");

    // As the ECS task definition runs it: its environment (ROUTE_URIS pointed at a receiver on
    // this host, reached by name), a bridge network, the socket read-only, a state directory from
    // the host, and the image's own health check (every second, to be quick).
    let port = support::free_port();
    let r = TcpReceiver::start_at("0.0.0.0", port, support::receiver::Inbox::default());
    let task: serde_json::Value =
        serde_json::from_str(include_str!("../../../deploy/ecs/task-definition.json")).expect("task definition");
    let container = &task["containerDefinitions"][0];
    let mut env: Vec<String> = container["environment"]
        .as_array()
        .expect("environment")
        .iter()
        .map(|e| format!("{}={}", e["name"].as_str().unwrap_or(""), e["value"].as_str().unwrap_or("")))
        .filter(|e| !e.starts_with("ROUTE_URIS="))
        .collect();
    env.push(format!("ROUTE_URIS=gelf+tcp://spout-test-receiver:{port}"));
    let state = tempfile::tempdir().expect("state dir");
    let name = support::unique_name();
    let agent = Agent(name.clone());
    let volume = format!("{}:/var/lib/spout", state.path().display());
    let stop_timeout = container["stopTimeout"].to_string();
    let mut args: Vec<&str> = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--add-host",
        "spout-test-receiver:host-gateway",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        "-v",
        &volume,
        "--stop-timeout",
        &stop_timeout,
        "--health-interval",
        "1s",
    ];
    for e in &env {
        args.extend(["-e", e]);
    }
    args.push(IMAGE);
    docker(&args);
    let status = || docker(&["inspect", "--format", "{{.State.Health.Status}}", &name]);
    assert!(wait_until(PATIENCE, || status() == "healthy"), "{}: {}", status(), docker(&["logs", &name]));
    // The task definition's health check, as ECS runs it: in the container, in its environment.
    let health = Command::new("docker").args(["exec", &name, "/spout", "health"]).output().expect("docker exec");
    assert!(health.status.success(), "{health:?}");
    let c = Container::run(&[], "echo from-a-container");
    c.wait();
    assert_eq!(r.inbox.wait_lines(&c.id, 1), ["from-a-container"], "{}", docker(&["logs", &name]));
    let own_id = docker(&["inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(r.inbox.count_of(&own_id), 0, "spout skips itself");
    docker(&["stop", &name]);
    assert_eq!(docker(&["inspect", "--format", "{{.State.ExitCode}}", &name]), "0", "{}", docker(&["logs", &name]));
    let checkpoint = state.path().join("checkpoints").join(&c.id);
    assert!(checkpoint.exists(), "the checkpoints are on the mounted state directory");
    drop(agent);
}

#[test]
fn the_root_dockerfile_ends_with_the_runtime_image_build_image_sh_builds() {
    let root = include_str!("../../../Dockerfile");
    let runtime = include_str!("../../../deploy/runtime.Dockerfile");
    let instructions = |text: &str| -> Vec<String> {
        let lines: Vec<String> =
            text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_owned).collect();
        let from = lines.iter().rposition(|l| l.starts_with("FROM scratch")).expect("a FROM scratch stage");
        lines[from..].iter().filter(|l| !l.starts_with("COPY")).cloned().collect()
    };
    assert_eq!(instructions(root), instructions(runtime));
}

#[test]
fn the_ecs_files_pass_botocore_and_cfn_lint_and_agree_with_the_readme() {
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/check.py"))
        .output()
        .expect("run deploy/check.py");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(2) && std::env::var("SPOUT_REQUIRE_DOCKER").as_deref() != Ok("1") {
        eprintln!("\n*** SKIPPED: {report} ***\n");
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{report}");
    eprintln!("{report}");
}

#[test]
fn the_readmes_quick_start_runs_and_health_answers_from_the_host() {
    require_docker!();
    build_image();
    let readme = include_str!("../../../README.md");
    let line = readme.lines().find(|l| l.starts_with("deploy/build-image.sh && docker run")).expect("the quick start");
    let run = line.split_once("&& ").expect("two commands").1;
    // Made this test's own: its name, a free port, a state directory of its own, the test image.
    let (name, port, state) = (support::unique_name(), support::free_port(), tempfile::tempdir().expect("dir"));
    let run = run
        .replace("--name spout", &format!("--name {name}"))
        .replace("127.0.0.1:8000:8000", &format!("127.0.0.1:{port}:8000"))
        .replace("-v /var/lib/spout:/var/lib/spout", &format!("-v {}:/var/lib/spout", state.path().display()))
        .replace("spout:latest", IMAGE);
    assert!(
        run.contains(&name) && run.contains(&port.to_string()) && run.contains(IMAGE),
        "the command changed: {run}"
    );
    let _agent = Agent(name.clone());
    let out = Command::new("sh").args(["-c", &run]).output().expect("docker run");
    assert!(out.status.success(), "{run}: {}", String::from_utf8_lossy(&out.stderr));
    let healthy = || support::http_get(port, "/health").is_some_and(|(code, _)| code == 200);
    assert!(wait_until(PATIENCE, healthy), "{}", docker(&["logs", &name]));
    let status = Command::new("docker").args(["exec", &name, "/spout", "status"]).output().expect("docker exec");
    assert!(status.status.success() && String::from_utf8_lossy(&status.stdout).starts_with("NAME"), "{status:?}");
}
