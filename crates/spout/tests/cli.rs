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
