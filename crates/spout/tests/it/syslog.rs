//! Syslog routes against Debian's rsyslog: RFC 5424 over UDP, TCP (octet-counted) and TLS
//! (rsyslog's own, with GnuTLS), RFC 3164 newline-framed over TCP; rsyslog restarted mid-stream.

use serde_json::Value;

use crate::delivery::{assert_none_missing, expected, missing_and_duplicates_of, steady_writer};
use crate::support::rsyslog::Rsyslog;
use crate::support::tls::Pki;
use crate::support::{numbered, wait_until, Container, Spout, PATIENCE};

/// The messages' text, in order, of those whose text starts with `prefix`.
fn texts(messages: &[Value], prefix: &str) -> Vec<String> {
    messages.iter().filter_map(|m| m["msg"].as_str()).filter(|t| t.starts_with(prefix)).map(str::to_owned).collect()
}

#[test]
fn rsyslog_gets_every_line_with_its_header_and_fields_over_udp_tcp_and_tls_in_either_rfc() {
    require_docker!();
    if !Rsyslog::available() {
        return;
    }
    let pki = Pki::new();
    let rsyslog = Rsyslog::start(&pki);
    // Each route with a facility of its own, to tell them apart in rsyslog's one output.
    let _spout = Spout::start_healthy(&[
        &format!("syslog://127.0.0.1:{}?facility=local0", rsyslog.udp_port),
        &format!("syslog+tcp://127.0.0.1:{}?facility=local1", rsyslog.tcp_port),
        &format!("syslog+tls://localhost:{}?facility=local2&ca={}", rsyslog.tls_port, pki.path("ca.pem")),
        &format!("syslog+tcp://127.0.0.1:{}?facility=local3&format=rfc3164&framing=newline", rsyslog.tcp_port),
        "--hostname",
        "spout-test-host",
        "--field",
        "team=pay\"ments]",
        // A line starting with a space continues the one before: a message with a newline.
        "--multiline-start",
        "^[^ ]",
    ]);
    // A 20 KB line (longer than a syslog datagram's 2048 bytes), made by the container rather
    // than written in its command (which every message carries).
    let script = "for i in $(seq 1 50); do echo line$i; echo err$i >&2; done; printf 'first\\n  second\\n'; \
                  head -c 20000 /dev/zero | tr '\\0' y; echo";
    let c = Container::run(&[], script);
    c.wait();
    let short_id = &c.id[..12];
    for facility in ["local0", "local1", "local2", "local3"] {
        let rfc5424 = facility != "local3";
        let mut got = rsyslog.settle(facility, &c.name, 102);
        if !rfc5424 {
            // RFC 3164 has no separator of its own after the TAG: rsyslog keeps the space.
            for m in &mut got {
                let text = m["msg"].as_str().map(|t| t.strip_prefix(' ').unwrap_or(t).to_owned());
                m["msg"] = text.into();
            }
        }
        assert_eq!(got.len(), 102, "{facility}: each line once:\n{got:#?}\nrsyslog:\n{}", rsyslog.log());
        assert_eq!(texts(&got, "line"), numbered("line", 1..=50), "{facility}");
        assert_eq!(texts(&got, "err"), numbered("err", 1..=50), "{facility}");
        // rsyslog shows a control character as `#` and its octal code, as spout writes a
        // newline where the framing is one.
        assert_eq!(texts(&got, "first"), ["first#012  second"], "{facility}");
        for m in &got {
            assert_eq!(m["host"], "spout-test-host", "{facility}: {m}");
            assert_eq!(m["procid"], short_id, "{facility}: {m}");
            let err = m["msg"].as_str().is_some_and(|t| t.starts_with("err"));
            assert_eq!(m["severity"], if err { "err" } else { "info" }, "{facility}: {m}");
        }
        for m in got.iter().filter(|_| rfc5424) {
            let stream = if m["severity"] == "err" { "stderr" } else { "stdout" };
            assert_eq!(m["msgid"], stream, "{facility}: {m}");
            // Microseconds, as spout writes them.
            let time = m["time"].as_str().unwrap_or_default();
            let digits = time.split_once('.').map(|(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
            assert_eq!(digits, Some(6), "{facility}: {m}");
            let sd = m["sd"].as_str().unwrap_or_default();
            let expected = format!(
                "[spout@32473 container_id=\"{}\" container_name=\"{}\" image_name=\"{}\" team=\"pay\\\"ments\\]\"",
                c.id,
                c.name,
                crate::support::test_image()
            );
            assert!(sd.starts_with(&expected), "{facility}: {sd}\nexpected {expected}");
        }
        if !rfc5424 {
            assert!(got.iter().all(|m| m["tag"] == format!("{}[{short_id}]:", c.name)), "{got:#?}");
        }
        let long = got.iter().find(|m| m["msg"].as_str().is_some_and(|t| t.starts_with('y'))).expect("the long line");
        let text = long["msg"].as_str().unwrap_or_default();
        if facility == "local0" {
            assert!(
                text.len() < 2048 && text.bytes().all(|b| b == b'y'),
                "cut to fit a datagram: {} bytes",
                text.len()
            );
            assert!(long["sd"].as_str().is_some_and(|sd| sd.ends_with(" truncated=\"true\"]")), "{long}");
        } else {
            assert_eq!(text, "y".repeat(20_000), "{facility}: whole on a stream");
        }
    }
}

#[test]
fn rsyslog_restarted_mid_stream_over_tcp_loses_nothing() {
    require_docker!();
    if !Rsyslog::available() {
        return;
    }
    let mut rsyslog = Rsyslog::start(&Pki::new());
    let spout = Spout::start_healthy(&[&format!("syslog+tcp://127.0.0.1:{}?backoff_max=1s", rsyslog.tcp_port)]);
    let c = steady_writer(20_000);
    let name = c.name.clone();
    let lines = |rsyslog: &Rsyslog| -> Vec<String> {
        let messages = rsyslog.messages();
        messages
            .iter()
            .filter(|m| m["app"] == name.as_str())
            .filter_map(|m| m["msg"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(wait_until(PATIENCE, || lines(&rsyslog).len() >= 3_000), "{}", rsyslog.log());
    rsyslog.restart();
    c.wait();
    let want = expected(20_000);
    wait_until(PATIENCE, || missing_and_duplicates_of(&lines(&rsyslog), &want).0.is_empty());
    assert_none_missing(&lines(&rsyslog), &want, "rsyslog restarted", &spout.stderr());
}
