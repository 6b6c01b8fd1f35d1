//! The image as deploy/build-image.sh builds it, run against this host's daemon as the ECS task
//! definition runs it, and the deployment files checked with the real tools.

use std::process::Command;

use crate::support::receiver::TcpReceiver;
use crate::support::terminal::Terminal;
use crate::support::{docker, wait_until, Container, PATIENCE};

const IMAGE: &str = "spout-test-image:latest";
/// The README's figure, and the issue's target.
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

/// spout's container, removed when dropped, with the anonymous volume its image declares.
struct Agent(String);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", "-v", &self.0]).output();
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
    docker(&["rm", "-v", &created]);
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
    // this host, reached by name), a bridge network, its mounts (the state directory a temporary
    // one), and the image's own health check (every second, to be quick).
    let port = crate::support::free_port();
    let r = TcpReceiver::start_at("0.0.0.0", port, crate::support::receiver::Inbox::default());
    let task: serde_json::Value =
        serde_json::from_str(include_str!("../../../../deploy/ecs/task-definition.json")).expect("task definition");
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
    let name = crate::support::unique_name();
    let agent = Agent(name.clone());
    let volumes: Vec<String> = container["mountPoints"]
        .as_array()
        .expect("mount points")
        .iter()
        .map(|m| {
            let source = task["volumes"]
                .as_array()
                .and_then(|vs| vs.iter().find(|v| v["name"] == m["sourceVolume"]))
                .and_then(|v| v["host"]["sourcePath"].as_str())
                .expect("a host volume");
            let target = m["containerPath"].as_str().expect("a path");
            let source = if target == "/var/lib/spout" { state.path().to_str().expect("utf-8") } else { source };
            let ro = if m["readOnly"] == true { ":ro" } else { "" };
            format!("{source}:{target}{ro}")
        })
        .collect();
    let stop_timeout = container["stopTimeout"].to_string();
    let mut args: Vec<&str> = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--add-host",
        "spout-test-receiver:host-gateway",
        "--stop-timeout",
        &stop_timeout,
        "--health-interval",
        "1s",
    ];
    for v in &volumes {
        args.extend(["-v", v]);
    }
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
    // Read from its json-file, through the mount.
    let status = Command::new("docker").args(["exec", &name, "/spout", "status"]).output().expect("docker exec");
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.lines().any(|l| l.starts_with(&c.name) && l.contains(" files ")), "{status}");
    let own_id = docker(&["inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(r.inbox.count_of(&own_id), 0, "spout skips itself");
    docker(&["stop", &name]);
    assert_eq!(docker(&["inspect", "--format", "{{.State.ExitCode}}", &name]), "0", "{}", docker(&["logs", &name]));
    let (saved, _) = spout::checkpoint::store::Saved::read(state.path()).expect("the positions file");
    assert!(saved.positions.contains_key(&c.id), "the checkpoints are on the mounted state directory");
    drop(agent);
}

#[test]
fn the_root_dockerfile_ends_with_the_runtime_image_build_image_sh_builds() {
    let root = include_str!("../../../../Dockerfile");
    let runtime = include_str!("../../../../deploy/runtime.Dockerfile");
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
    if out.status.code() == Some(2) {
        crate::support::missing(report.trim());
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{report}");
    eprintln!("{report}");
}

#[test]
fn the_readmes_quick_start_as_printed_ships_to_this_host_and_adds_a_route_with_no_token() {
    require_docker!();
    build_image();
    let blocks = crate::support::readme_blocks("## Quick start", "sh");
    let [start, receiver, ship] = &blocks[..3] else { panic!("the quick start has three blocks: {blocks:?}") };
    // Made this test's own: its name, free ports, a state directory of its own, the test images;
    // and, as the issue asks, a token given as an argument.
    let (name, port, state) =
        (crate::support::unique_name(), crate::support::free_port(), tempfile::tempdir().expect("dir"));
    let receiver_port = crate::support::free_port().to_string();
    let run = start.split_once("&& ").expect("build, then run").1;
    let run = run
        .replace("--name spout", &format!("--name {name}"))
        .replace("127.0.0.1:8000:8000", &format!("127.0.0.1:{port}:8000"))
        .replace("-v /var/lib/spout:/var/lib/spout", &format!("-v {}:/var/lib/spout", state.path().display()))
        .replace("spout:latest", IMAGE)
        + " --api-token s3cret-token";
    assert!(run.contains(&name) && run.contains(&port.to_string()) && run.contains(IMAGE), "changed: {run}");
    let _agent = Agent(name.clone());
    let out = Command::new("sh").args(["-c", &run]).output().expect("docker run");
    assert!(out.status.success(), "{run}: {}", String::from_utf8_lossy(&out.stderr));
    let healthy = || crate::support::http_get(port, "/health").is_some_and(|(code, _)| code == 200);
    assert!(wait_until(PATIENCE, healthy), "{}", docker(&["logs", &name]));
    // `--cap-add SYS_NICE` lets rotated files be opened ahead of other work: at real-time
    // priority, or (where the host gives containers no real-time budget) at nice -20.
    let logs = Command::new("docker").args(["logs", &name]).output().expect("docker logs");
    let logs = String::from_utf8_lossy(&logs.stderr).into_owned();
    let priority = logs.lines().find(|l| l.contains("rotated files are opened at")).unwrap_or_default();
    assert!(priority.contains("real-time priority") || priority.contains("highest ordinary priority"), "{logs}");

    let terminal = Terminal::run(&receiver.replace("12201", &receiver_port));
    // Listening (state 0A in /proc/net/tcp, the port in hex) before the route connects.
    let local = format!(":{:04X} ", receiver_port.parse::<u16>().expect("a port"));
    let listening = || {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        table.lines().any(|l| {
            l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").ends_with(&local))
                && l.split_whitespace().nth(3) == Some("0A")
        })
    };
    assert!(wait_until(PATIENCE, listening), "the receiver listens");
    let mut said = String::new();
    for line in ship.lines() {
        let command = line
            .replace("docker exec spout ", &format!("docker exec {name} "))
            .replace("12201", &receiver_port)
            .replace(" busybox ", &format!(" {} ", crate::support::IMAGE));
        let out = Command::new("sh").args(["-c", &command]).output().expect("sh");
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
        said.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(said.starts_with("added route "), "{said}");
    let shipped = || terminal.shows("\"short_message\":\"hello from a container\"");
    assert!(wait_until(PATIENCE, shipped), "the receiver never printed the line: {}", docker(&["logs", &name]));

    // Inside the container, with no token: the routes, the status, and removing the route.
    let exec = |args: &[&str]| {
        let out = Command::new("docker").args(["exec", &name, "/spout"]).args(args).output().expect("docker exec");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let uri = format!("gelf+tcp://host.docker.internal:{receiver_port}");
    let routes = exec(&["routes"]);
    let row = routes.lines().find(|l| l.contains(&uri)).unwrap_or_else(|| panic!("{uri} not in\n{routes}"));
    assert!(row.contains(" api ") && row.contains(" up "), "{routes}");
    assert!(exec(&["status"]).starts_with("NAME"));
    // From the host, the published TCP API still refuses changes without the token.
    let body = format!("{{\"uri\": \"{uri}?queue=5\"}}");
    assert_eq!(crate::support::http(port, "POST", "/routes", &[], &body).map(|a| a.0), Some(401));
    let id = row.split_whitespace().next().expect("an id");
    assert_eq!(exec(&["routes", "rm", id]).trim(), format!("removed route {id}"));
    assert!(!exec(&["routes"]).contains(&uri), "removed");
}

#[test]
fn without_the_containers_directory_the_image_reads_through_the_api_saying_so_once() {
    require_docker!();
    build_image();
    let r = TcpReceiver::start_at("0.0.0.0", crate::support::free_port(), crate::support::receiver::Inbox::default());
    let name = crate::support::unique_name();
    let _agent = Agent(name.clone());
    let route = format!("gelf+tcp://host.docker.internal:{}", r.port);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--add-host",
        "host.docker.internal:host-gateway",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        IMAGE,
        &route,
    ]);
    let (a, b) = (Container::run(&[], "echo one; sleep 600"), Container::run(&[], "echo two; sleep 600"));
    assert_eq!(r.inbox.wait_lines(&a.id, 1), ["one"], "{}", docker(&["logs", &name]));
    assert_eq!(r.inbox.wait_lines(&b.id, 1), ["two"]);
    let logs = Command::new("docker").args(["logs", &name]).output().expect("docker logs");
    let logs = String::from_utf8_lossy(&logs.stderr).into_owned();
    assert_eq!(logs.matches("json-file logs cannot be read here").count(), 1, "one warning:\n{logs}");
    let status = Command::new("docker").args(["exec", &name, "/spout", "status"]).output().expect("docker exec");
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.lines().any(|l| l.starts_with(&a.name) && l.contains(" api ")), "{status}");
}

/// `docker-compose` on deploy/compose's try-out as project `project`; `down -v` when dropped.
struct Compose {
    project: String,
    env: Vec<(&'static str, String)>,
}

impl Compose {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/compose/docker-compose.yml");
        Command::new("docker-compose")
            .args(["--no-ansi", "-p", &self.project, "-f", file])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run docker-compose (Debian's docker-compose)")
    }

    /// What is left of the project: containers, volumes, networks.
    fn left(&self) -> String {
        let label = format!("label=com.docker.compose.project={}", self.project);
        ["ps -aq", "volume ls -q", "network ls -q"]
            .iter()
            .map(|what| {
                let mut args: Vec<&str> = what.split(' ').collect();
                args.extend(["--filter", &label]);
                docker(&args)
            })
            .filter(|found| !found.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "-t", "1"]);
    }
}

#[test]
fn the_compose_try_out_comes_up_from_the_local_images_shows_the_demos_lines_and_goes_down_leaving_nothing() {
    require_docker!();
    if Command::new("docker-compose").arg("version").output().is_err() {
        crate::support::missing("docker-compose (Debian's package) is not installed");
        return;
    }
    build_image();
    // docker-compose names projects with letters and digits only.
    let project = crate::support::unique_name().replace('-', "");
    let port = crate::support::free_port();
    let env = vec![
        ("SPOUT_IMAGE", IMAGE.to_owned()),
        ("DEMO_IMAGE", crate::support::IMAGE.to_owned()),
        ("RECEIVE_HTTP", format!("127.0.0.1:{port}")),
    ];
    let compose = Compose { project, env };
    let up = compose.run(&["up", "-d", "--no-build"]);
    assert!(up.status.success(), "up: {}", String::from_utf8_lossy(&up.stderr));
    let printed = || String::from_utf8_lossy(&compose.run(&["logs", "--no-color", "receive"]).stdout).into_owned();
    let shipped = || printed().contains("\"short_message\":\"demo line 3\"");
    assert!(wait_until(PATIENCE, shipped), "the receiver never printed the demo's lines:\n{}", printed());
    // And a front end's event, from the origin it lets in.
    let event = r#"{"host":"browser","short_message":"front end event"}"#;
    let answer = crate::support::http(port, "POST", "/gelf", &[("Origin", "http://localhost:3000")], event);
    assert_eq!(answer.map(|a| a.0), Some(202));
    assert!(wait_until(PATIENCE, || printed().contains("\"short_message\":\"front end event\"")), "{}", printed());
    // The receiver's own output is not shipped back to it.
    let demo_lines = printed().lines().filter(|l| l.contains("demo line")).count();
    let nested = printed().lines().filter(|l| l.contains("\\\"short_message\\\"")).count();
    assert!(demo_lines > 0 && nested == 0, "{}", printed());

    let down = compose.run(&["down", "-v", "-t", "1"]);
    assert!(down.status.success(), "down: {}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(compose.left(), "", "nothing left behind");
}
