//! The command line: bad input exits 64 with one line naming the bad part. No Docker needed.

use std::process::Command;

fn spout(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spout"))
        .args(args)
        .args(["--http", "off", "--docker-host", "unix:///nonexistent.sock"])
        .env_remove("ROUTE_URIS")
        .output()
        .expect("run spout");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_bad_route_uri_exits_64_naming_the_bad_part() {
    let cases = [
        ("gelf://graylog", "missing port in 'graylog'"),
        ("gelf+udp://graylog:99999", "bad port '99999'"),
        ("kafka://broker:9092", "unknown scheme 'kafka'"),
        ("gelf+tpc://graylog:12201", "unknown scheme 'gelf+tpc' (did you mean 'gelf+tcp'?)"),
        ("gelf+tcp://graylog:12201?queu=10", "unknown option 'queu' for gelf+tcp:// (did you mean 'queue'?)"),
        ("gelf://graylog:12201?compress=brotli", "option compress"),
        ("gelf://graylog:12201?chunk_size=9", "option chunk_size: '9'"),
        ("gelf+tcp://graylog:12201?wat=1", "unknown option 'wat'"),
    ];
    for (uri, part) in cases {
        let (code, stderr) = spout(&[uri]);
        assert_eq!(code, Some(64), "{uri}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{uri}: one line expected, got {stderr}");
        assert!(stderr.contains(uri) && stderr.contains(part), "{uri}: {stderr}");
    }
}

#[test]
fn route_uris_from_the_environment_are_checked_too() {
    let out = Command::new(env!("CARGO_BIN_EXE_spout"))
        .args(["--http", "off"])
        .env("ROUTE_URIS", "gelf+tcp://ok:1,gelf://bad")
        .output()
        .expect("run spout");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gelf://bad"));
}

#[test]
fn bad_options_exit_64() {
    assert_eq!(spout(&["--shutdown-grace", "forever"]).0, Some(64));
    assert_eq!(spout(&["--max-line-bytes", "10"]).0, Some(64));
    assert_eq!(spout(&["--no-such-flag"]).0, Some(64));
}

#[test]
fn help_and_version_exit_zero() {
    let (code, _) = spout(&["--help"]);
    assert_eq!(code, Some(0));
    let (code, _) = spout(&["--version"]);
    assert_eq!(code, Some(0));
}

#[test]
fn bad_enrichment_options_exit_64_listing_every_problem_by_option() {
    let (code, stderr) = spout(&[
        "gelf://h:1?filter.sources=stdin",
        "--extract",
        "name=(?P<env>",
        "--field",
        "bad name=x",
        "--multiline-start",
        "[",
        "--labels-regex",
        "(",
    ]);
    assert_eq!(code, Some(64), "{stderr}");
    let expected = [
        "option filter.sources: unknown source 'stdin'",
        "--extract: bad regex",
        "--field: field name 'bad name'",
        "--labels-regex: bad regex '('",
        "--multiline-start: bad regex '['",
    ];
    assert_eq!(stderr.lines().count(), expected.len(), "one line per problem: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
}

#[test]
fn run_is_the_default_subcommand() {
    for args in [&["gelf://graylog"][..], &["run", "gelf://graylog"][..]] {
        let (code, stderr) = spout(args);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains("missing port in 'graylog'"), "{args:?}: {stderr}");
    }
}

/// `spout ARGS` with `env`, nothing of the caller's spout variables: exit code, stdout, stderr.
fn spout_with(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spout"));
    for (name, _) in
        std::env::vars().filter(|(n, _)| n.starts_with("SPOUT_") || n == "ROUTE_URIS" || n == "DOCKER_HOST")
    {
        command.env_remove(name);
    }
    let out = command.args(args).envs(env.iter().copied()).output().expect("run spout");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The TOML example under the README's "Configuration file".
fn readme_example() -> String {
    let readme = include_str!("../../../../README.md");
    let section = readme.split("## Configuration file").nth(1).expect("the README has the section");
    let block = section.split("```toml\n").nth(1).expect("a toml block");
    block.split("```").next().expect("closed").to_owned()
}

#[test]
fn the_readmes_configuration_file_checks_and_takes_effect_below_flags_and_env() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("spout.toml");
    std::fs::write(&file, readme_example()).expect("write");
    let path = file.to_str().expect("utf-8");
    let (code, out, err) = spout_with(&["check-config", "--config", path], &[]);
    assert_eq!(code, Some(0), "{err}");
    let effective: toml::Table = out.parse().expect("check-config prints TOML");
    let file: toml::Table = readme_example().parse().expect("the example is TOML");
    for (key, value) in &file {
        let expected = match (key.as_str(), value) {
            ("api_token", _) => toml::Value::String("********".into()),
            (_, toml::Value::String(s)) if s.parse::<i64>().is_ok() => toml::Value::Integer(s.parse().unwrap_or(0)),
            _ => value.clone(),
        };
        assert_eq!(effective.get(key), Some(&expected), "{key}: {out}");
    }
    assert!(!out.contains(file.get("api_token").and_then(|t| t.as_str()).unwrap_or("never")), "the token is masked");

    // Flags, then the environment, then the file.
    let (code, out, err) = spout_with(
        &["check-config", "--config", path, "--state-dir", "/from-flag"],
        &[("SPOUT_STATE_DIR", "/from-env"), ("SPOUT_MAX_LINE_BYTES", "99999")],
    );
    assert_eq!(code, Some(0), "{err}");
    let effective: toml::Table = out.parse().expect("TOML");
    assert_eq!(effective["state_dir"].as_str(), Some("/from-flag"));
    assert_eq!(effective["max_line_bytes"].as_integer(), Some(99_999));
    assert_eq!(effective["routes"], file["routes"]);
    let (_, out, _) = spout_with(&["check-config", "--config", path, "stdout://"], &[]);
    let effective: toml::Table = out.parse().expect("TOML");
    assert_eq!(effective["routes"].as_array().map(Vec::len), Some(1), "routes given elsewhere replace the file's");
}

#[test]
fn check_config_lists_every_problem_of_the_file_the_flags_and_the_routes() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "routes = [\"gelf://nowhere\"]\nbacklog = \"yes\"\nfrobnicate = 1\nmultiline_start = \"(\"\n",
    )
    .expect("write");
    let (code, out, err) = spout_with(&["check-config", "--config", file.to_str().expect("utf-8"), "--wat"], &[]);
    assert_eq!(code, Some(64), "{out}{err}");
    assert!(out.is_empty());
    for part in ["unknown option '--wat'", "backlog: expected true or false", "unknown key 'frobnicate'"] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    // A key that is wrong hides nothing: the others' values are checked like the command line's.
    assert!(
        err.contains("missing port in 'nowhere'") && err.contains("bad.toml: multiline_start: bad regex '('"),
        "{err}"
    );
}

#[test]
fn every_problem_of_the_flags_the_environment_and_the_file_at_once_each_naming_its_source() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("spout.toml");
    std::fs::write(
        &file,
        "stat_dir = \"/srv/spout\"\nmax_line_bytes = \"big\"\nroutes = \"gelf+tcp://logstash:12201\"\nmultiline_start = \"(\"\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8");
    for command in ["check-config", "run"] {
        let (code, out, err) = spout_with(
            &[command, "--config", path, "--multiline-max-lines", "lots", "--api-tokn", "s3cret", "--http", "off"],
            &[("SPOUT_SHUTDOWN_GRACE", "forever")],
        );
        assert_eq!(code, Some(64), "{err}");
        assert!(out.is_empty(), "{out}");
        let expected = [
            "unknown option '--api-tokn' (did you mean '--api-token'?)".to_owned(),
            format!("{path}: max_line_bytes: expected a number, got the string \"big\""),
            format!("{path}: routes: expected a list of route URIs, e.g. routes = [\"gelf+tcp://graylog:12201\"], got the string \"gelf+tcp://logstash:12201\""),
            format!("{path}: unknown key 'stat_dir' (did you mean 'state_dir'?)"),
            "SPOUT_SHUTDOWN_GRACE: 'forever' is not a duration from 0s to 24h".to_owned(),
            format!("{path}: multiline_start: bad regex '('"),
            "--multiline-max-lines: 'lots' is not a number from 1 to 100000".to_owned(),
        ];
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), expected.len(), "one line per problem:\n{err}");
        for (line, expected) in lines.iter().zip(&expected) {
            assert!(line.starts_with(&format!("spout: {expected}")), "{line:?} is not {expected:?}:\n{err}");
        }
        assert!(!err.contains("s3cret"), "the misspelt token option's value is not echoed: {err}");
    }
    // clap's own errors are one line too, naming the option.
    let (code, _, err) = spout_with(&["--max-line-bytes", "big", "--http", "off", "--state-dir"], &[]);
    assert_eq!(code, Some(64));
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("a value is required for '--state-dir <STATE_DIR>'"), "{err}");
    assert!(err.contains("--max-line-bytes: 'big' is not a number (at least 16384)"), "{err}");
    assert!(!err.contains("Usage") && !err.contains("error:"), "{err}");
}

#[test]
fn logspouts_variables_are_understood() {
    let (code, out, err) = spout_with(
        &["check-config"],
        &[
            ("ROUTE_URIS", "gelf+tcp://a:1"),
            ("BACKLOG", "true"),
            ("PORT", "8080"),
            ("DEBUG", "1"),
            ("SYSLOG_HOSTNAME", "node-7"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let effective: toml::Table = out.parse().expect("TOML");
    assert_eq!(effective["http"].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(effective["backlog"].as_bool(), Some(true));
    assert_eq!(effective["hostname"].as_str(), Some("node-7"));
    assert_eq!(effective["log_level"].as_str(), Some("debug"));
    assert_eq!(effective["routes"].as_array().map(|r| r.len()), Some(1));
}
