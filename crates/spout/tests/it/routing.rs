//! Routing and enrichment against the real daemon: containers named and labelled as the ECS
//! agent names and labels them, opt-outs, stack traces on both streams, and routes with filters.

use std::collections::HashMap;

use crate::support::receiver::TcpReceiver;
use crate::support::{docker, wait_until, Container, Spout, PATIENCE};
use serde_json::Value;

const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task/production/0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The pattern the README gives for ECS's container names.
const NAME_PATTERN: &str =
    r"^ecs-(?P<environment>[^-]+)-(?P<service>.+)-\d+-(?P<container>[A-Za-z0-9-]+)-[0-9a-f]{20}$";

/// `docker run` options for the labels the ECS agent sets on a task's container.
fn ecs_labels(container_name: &str) -> Vec<String> {
    [
        ("com.amazonaws.ecs.cluster", "production"),
        ("com.amazonaws.ecs.task-arn", ARN),
        ("com.amazonaws.ecs.task-definition-family", "production-backend-app"),
        ("com.amazonaws.ecs.task-definition-version", "12"),
        ("com.amazonaws.ecs.container-name", container_name),
    ]
    .into_iter()
    .flat_map(|(k, v)| ["--label".to_owned(), format!("{k}={v}")])
    .collect()
}

/// A name as the ECS agent gives it, unique to this test run: 20 hex digits at the end.
fn ecs_name(container: &str) -> String {
    let unique = crate::support::unique_name()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("ecs-production-backend-app-12-{container}-{unique:016x}{:04x}", std::process::id() & 0xffff)
}

/// `docker run -d --name NAME OPTIONS IMAGE sh -c SCRIPT`, removed when dropped.
fn run_named(name: &str, options: &[String], script: &str) -> Container {
    let mut args: Vec<&str> = vec!["run", "-d", "--name", name];
    args.extend(options.iter().map(String::as_str));
    args.extend([crate::support::IMAGE, "sh", "-c", script]);
    Container { id: docker(&args), name: name.to_owned() }
}

/// A Java-style stack trace, starting with a timestamped line as log frameworks write them.
fn trace(what: &str) -> Vec<String> {
    vec![
        format!("2026-12-02 10:00:00.000 ERROR {what} failed"),
        format!("java.lang.IllegalStateException: {what}"),
        "\tat com.example.App.run(App.java:42)".to_owned(),
        "\tat com.example.App.main(App.java:7)".to_owned(),
        "Caused by: java.io.IOException: disk full".to_owned(),
        "\t... 2 more".to_owned(),
    ]
}

/// A shell command printing `lines` with one write, to `fd`.
fn printf(lines: &[String], fd: u8) -> String {
    let escaped: String = lines
        .iter()
        .map(|l| format!("{}\\n", l.replace('\\', "\\\\").replace('\t', "\\t").replace('\'', "")))
        .collect();
    format!("printf '{escaped}' >&{fd}")
}

fn field<'a>(m: &'a Value, name: &str) -> Option<&'a str> {
    m[name].as_str()
}

fn by_stream(messages: &[Value]) -> HashMap<String, Vec<String>> {
    let mut streams: HashMap<String, Vec<String>> = HashMap::new();
    for m in messages {
        let stream = field(m, "_stream").unwrap_or("?").to_owned();
        streams.entry(stream).or_default().push(field(m, "short_message").unwrap_or("").to_owned());
    }
    streams
}

#[test]
fn routes_filter_fields_enrich_opt_outs_skip_and_stack_traces_join() {
    require_docker!();
    let (all, web_stderr, team) = (TcpReceiver::start(), TcpReceiver::start(), TcpReceiver::start());
    let web_name = ecs_name("app");
    let routes = [
        all.route(),
        format!("{}?filter.name=ecs-production-*&filter.sources=stderr", web_stderr.route()),
        format!("{}?filter.labels=com.example.team:pay*&filter.image=spout-test-*", team.route()),
    ];
    let mut args: Vec<&str> = routes.iter().map(String::as_str).collect();
    args.extend([
        "--name-pattern",
        NAME_PATTERN,
        "--field",
        "region=eu-west-1",
        "--labels",
        "com.example.team",
        "--env",
        "JAVA_OPTS",
        "--multiline-start",
        r"^\d{4}-\d\d-\d\d ",
        "--exclude-label",
        "com.example.debug",
    ]);
    let spout = Spout::start_healthy(&args);

    // What is not read: ECS's pause container and agent, and three kinds of opt-out.
    let pause = run_named(&ecs_name("internalecspause"), &ecs_labels("~internal~ecs~pause"), "echo pause-line");
    // The ECS agent's container has this name on every instance; one left by an earlier run goes.
    let _ = std::process::Command::new("docker").args(["rm", "-f", "ecs-agent"]).output();
    let agent = run_named("ecs-agent", &[], "echo agent-line");
    let ignored = Container::run(&["-e", "LOGSPOUT=ignore"], "echo ignored-line");
    let excluded = Container::run(&["--label", "spout.exclude=true"], "echo excluded-line");
    let debug = Container::run(&["--label", "com.example.debug=1"], "echo debug-line");

    // What is: a task's container with a stack trace on each stream, one with joining off, and
    // one of another team.
    let (out_trace, err_trace) = (trace("checkout"), trace("payment"));
    let mut web_options = ecs_labels("app");
    web_options.extend(
        ["--label", "com.example.team=payments", "--label", "spout.field.tier=web", "-e", "JAVA_OPTS=-Xmx1g"]
            .map(str::to_owned),
    );
    let after = "2026-12-02 10:00:01.000 INFO after".to_owned();
    let web_script =
        format!("{}; {}; {}", printf(&out_trace, 1), printf(&err_trace, 2), printf(std::slice::from_ref(&after), 1));
    let web = run_named(&web_name, &web_options, &web_script);
    let plain = Container::run(&["--label", "spout.multiline=off"], &printf(&trace("plain"), 1));
    let other_team = Container::run(&["--label", "com.example.team=data"], "echo other-team");

    for c in [&pause, &agent, &ignored, &excluded, &debug, &web, &plain, &other_team] {
        c.wait();
    }
    // The web container: two messages on stdout (the trace whole, then the line after it), one
    // on stderr, every field set.
    assert!(wait_until(PATIENCE, || all.inbox.count_of(&web.id) >= 3), "stderr:\n{}", spout.stderr());
    let web_messages = all.inbox.of(&web.id);
    let streams = by_stream(&web_messages);
    assert_eq!(streams["stdout"], [out_trace.join("\n"), after.clone()]);
    assert_eq!(streams["stderr"], [err_trace.join("\n")]);
    let expected_fields = [
        ("_ecs_cluster", "production"),
        ("_ecs_task_arn", ARN),
        ("_ecs_task_id", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        ("_ecs_task_family", "production-backend-app"),
        ("_ecs_task_revision", "12"),
        ("_ecs_container_name", "app"),
        ("_environment", "production"),
        ("_service", "backend-app"),
        ("_container", "app"),
        ("_region", "eu-west-1"),
        ("_com.example.team", "payments"),
        ("_JAVA_OPTS", "-Xmx1g"),
        ("_tier", "web"),
        ("_container_name", web_name.as_str()),
        ("_container_id", web.id.as_str()),
    ];
    for m in &web_messages {
        for (name, value) in expected_fields {
            assert_eq!(field(m, name), Some(value), "{name} of {m}");
        }
        assert!(m.get("_id").is_none());
    }

    // Joining off: the trace arrives line by line. Another team's container: no ECS fields.
    let plain_lines = all.inbox.settle_lines(&plain.id, trace("plain").len());
    assert_eq!(plain_lines, trace("plain"));
    let other = all.inbox.settle_lines(&other_team.id, 1);
    assert_eq!(other, ["other-team"]);
    let other = &all.inbox.of(&other_team.id)[0];
    assert_eq!((field(other, "_region"), field(other, "_com.example.team")), (Some("eu-west-1"), Some("data")));
    assert!(field(other, "_ecs_cluster").is_none() && field(other, "_environment").is_none());

    // Each filtered route got exactly its share.
    assert_eq!(web_stderr.inbox.settle_lines(&web.id, 1), [err_trace.join("\n")]);
    assert_eq!(team.inbox.settle_lines(&web.id, 3).len(), 3);
    assert_eq!(by_stream(&team.inbox.of(&web.id)), streams);
    for c in [&plain, &other_team] {
        assert_eq!(web_stderr.inbox.count_of(&c.id) + team.inbox.count_of(&c.id), 0, "{} was filtered out", c.name);
    }

    // Nothing of the containers left alone, each for its reason.
    let log = spout.stderr();
    for (c, reason) in [
        (&pause, "EcsInternal"),
        (&agent, "EcsInternal"),
        (&ignored, "OptedOut"),
        (&excluded, "OptedOut"),
        (&debug, "Excluded(\"com.example.debug\")"),
    ] {
        let told = log.lines().any(|l| l.contains("not reading container") && l.contains(&c.id) && l.contains(reason));
        assert!(told, "{} not skipped as {reason}:\n{log}", c.name);
        for r in [&all, &web_stderr, &team] {
            assert_eq!(r.inbox.count_of(&c.id), 0, "{} was shipped", c.name);
        }
    }
}

/// `line1` … `lineN`, every 50th followed by two lines of a stack trace.
fn traced_writer_script(n: usize) -> String {
    format!(
        "i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo line$i; \
         if [ $((i % 50)) -eq 0 ]; then printf \"\\tat frame%d\\n\\tat frame%d\\n\" $i $i; usleep 20000; fi; done"
    )
}

fn traced_messages(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| if i % 50 == 0 { format!("line{i}\n\tat frame{i}\n\tat frame{i}") } else { format!("line{i}") })
        .collect()
}

#[test]
fn a_graceful_restart_ships_every_joined_message_once_on_every_route_whatever_the_filters() {
    require_docker!();
    let state = tempfile::tempdir().expect("state dir");
    let (everything, quiet_only) = (TcpReceiver::start(), TcpReceiver::start());
    // A quiet container, its lines not joined, started once spout is up; the busy one is
    // rejected by the second route, whose checkpoint must not wait for it.
    let quiet_name = crate::support::unique_name();
    let routes = [everything.route(), format!("{}?filter.name={quiet_name}", quiet_only.route())];
    let args = [routes[0].as_str(), routes[1].as_str(), "--multiline-start", "^line"];
    let first = Spout::start_in(state.path(), &args, &[]);
    first.wait_healthy();
    let quiet_script = "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo quiet$i; usleep 250000; done";
    let quiet = run_named(&quiet_name, &["--label".to_owned(), "spout.multiline=off".to_owned()], quiet_script);
    let busy = Container::run(&[], &traced_writer_script(20_000));
    everything.inbox.wait_lines(&busy.id, 3_000);
    first.sigterm();
    let mut first = first;
    assert!(first.wait().success(), "stderr:\n{}", first.stderr());
    // What the first one delivered is read by the receivers before the second one delivers more:
    // messages are compared in order of arrival.
    everything.inbox.settle_lines(&busy.id, 0);
    let second = Spout::start_in(state.path(), &args, &[]);
    second.wait_healthy();
    busy.wait();
    quiet.wait();

    let want = traced_messages(20_000);
    assert!(wait_until(PATIENCE, || everything.inbox.count_of(&busy.id) >= want.len()));
    let got = everything.inbox.settle_lines(&busy.id, want.len());
    assert!(
        got == want,
        "busy container: {} messages, want {}; first difference at {:?}",
        got.len(),
        want.len(),
        got.iter().zip(&want).position(|(g, w)| g != w)
    );
    let want_quiet: Vec<String> = (1..=40).map(|i| format!("quiet{i}")).collect();
    assert_eq!(everything.inbox.settle_lines(&quiet.id, 40), want_quiet);
    assert_eq!(quiet_only.inbox.settle_lines(&quiet.id, 40), want_quiet);
    assert_eq!(quiet_only.inbox.count_of(&busy.id), 0);
    drop(second);
}
