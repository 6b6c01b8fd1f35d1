//! The syslog formats: RFC 5424 (the default of `syslog://` routes) and the BSD format of RFC
//! 3164. A container's line is one message: APP-NAME (the TAG in RFC 3164) the container's
//! name, HOSTNAME the host, PROCID the short container id, MSGID the stream; severity info for
//! stdout and err for stderr (a message relayed by `spout receive`: the level it came with). RFC 5424 carries the container's fields as structured data.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use crate::message::Message;
use crate::suggest;
use crate::timestamp::Civil;

/// The SD-ID of the container's fields. An SD-ID of one's own is `name@` a private enterprise
/// number; spout has none, so it uses 32473, the number RFC 5612 sets aside for examples.
pub const SD_ID: &str = "spout@32473";

/// Which syslog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc {
    Rfc5424,
    Rfc3164,
}

/// A syslog format: which RFC, and the facility every message is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syslog {
    pub rfc: Rfc,
    pub facility: Facility,
}

impl Syslog {
    pub fn new(rfc: Rfc) -> Syslog {
        Syslog { rfc, facility: Facility::USER }
    }

    /// Appends `msg` with `text` for its line; `truncated` is marked where the format has room
    /// (RFC 5424's structured data; RFC 3164 has none).
    pub fn write(&self, out: &mut Vec<u8>, msg: &Message, text: &str, truncated: bool) {
        let priority = u16::from(self.facility.0) * 8 + u16::from(msg.severity().min(7));
        let c = &msg.container;
        let short_id = c.id.get(..12).unwrap_or(&c.id);
        let t = Civil::of(msg.ts_ns);
        match self.rfc {
            Rfc::Rfc5424 => {
                // Writing to a Vec cannot fail.
                let _ = write!(
                    out,
                    "<{priority}>1 {:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z ",
                    t.year,
                    t.month,
                    t.day,
                    t.hour,
                    t.minute,
                    t.second,
                    t.nanos / 1000
                );
                for (value, max) in [(&*c.host, 255), (&c.name, 48), (short_id, 128), (msg.stream.as_str(), 32)] {
                    push_header(out, value, max);
                    out.push(b' ');
                }
                out.push(b'[');
                out.extend_from_slice(SD_ID.as_bytes());
                let own = [("container_id", &*c.id), ("container_name", &c.name), ("image_name", &c.image_name)];
                let fields = c.fields.iter().map(|(name, value)| (name.strip_prefix('_').unwrap_or(name), &**value));
                for (name, value) in own.into_iter().chain(fields).chain(truncated.then_some(("truncated", "true"))) {
                    push_param(out, name, value);
                }
                out.extend_from_slice(b"] ");
            }
            Rfc::Rfc3164 => {
                const MONTHS: [&str; 12] =
                    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
                let month = MONTHS[(t.month - 1).clamp(0, 11) as usize];
                let _ = write!(out, "<{priority}>{month} {:>2} {:02}:{:02}:{:02} ", t.day, t.hour, t.minute, t.second);
                push_header(out, &c.host, 255);
                out.push(b' ');
                // The TAG: at most 32 alphanumeric characters (RFC 3164); `_`, `.` and `-` too, as
                // container names have them and receivers take them.
                let tag: String = c
                    .name
                    .chars()
                    .filter(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
                    .take(32)
                    .collect();
                let _ = write!(out, "{}[{short_id}]: ", if tag.is_empty() { "-" } else { &tag });
            }
        }
        out.extend_from_slice(text.as_bytes());
    }
}

/// A header field: printable US-ASCII (anything else becomes `_`), at most `max` characters, `-`
/// when empty.
fn push_header(out: &mut Vec<u8>, value: &str, max: usize) {
    if value.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(value.bytes().take(max).map(|b| if b.is_ascii_graphic() { b } else { b'_' }));
}

/// ` name="value"`: the name at most 32 printable characters other than `=`, space, `]` and `"`
/// (others become `_`), the value with `"`, `\` and `]` escaped.
fn push_param(out: &mut Vec<u8>, name: &str, value: &str) {
    if name.is_empty() {
        return;
    }
    out.push(b' ');
    let allowed = |b: u8| b.is_ascii_graphic() && !matches!(b, b'=' | b']' | b'"');
    out.extend(name.bytes().take(32).map(|b| if allowed(b) { b } else { b'_' }));
    out.extend_from_slice(b"=\"");
    for b in value.bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// A syslog facility, 0 to 23.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    pub const USER: Facility = Facility(1);
}

/// The facilities by number, as syslog.h names them.
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

impl FromStr for Facility {
    type Err = String;

    fn from_str(s: &str) -> Result<Facility, String> {
        if let Some(n) = FACILITIES.iter().position(|name| *name == s) {
            return Ok(Facility(n as u8));
        }
        match s.parse::<u8>() {
            Ok(n) if n < 24 => Ok(Facility(n)),
            _ => Err(format!(
                "'{s}' is not a facility (a name such as user, daemon or local0 to local7, or 0 to 23){}",
                suggest::did_you_mean(s, FACILITIES)
            )),
        }
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(FACILITIES[usize::from(self.0)])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::{Container, Stream};

    fn message(stream: Stream, line: &str) -> Message {
        let container = Container {
            id: "3b6ba57db54a0123456789abcdef0123456789abcdef0123456789abcdef0123".into(),
            name: "ecs-web-3-app-e4f2a1".into(),
            host: "ip-10-0-1-7".into(),
            image_name: "registry.example/web:1.4".into(),
            fields: vec![("_ecs_cluster".into(), "prod".into()), ("_quote".into(), "a \"b\" c\\d]e".into())],
            ..Default::default()
        };
        // 2026-12-07T04:05:06.123456789Z
        Message { container: Arc::new(container), stream, ts_ns: 1_796_616_306_123_456_789, ..Message::test(line) }
    }

    fn written(syslog: Syslog, msg: &Message, truncated: bool) -> String {
        let mut out = Vec::new();
        syslog.write(&mut out, msg, &msg.line, truncated);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn rfc5424_has_every_header_field_and_the_fields_as_structured_data() {
        let line = written(Syslog::new(Rfc::Rfc5424), &message(Stream::Stdout, "hello é"), false);
        assert_eq!(
            line,
            "<14>1 2026-12-07T04:05:06.123456Z ip-10-0-1-7 ecs-web-3-app-e4f2a1 3b6ba57db54a stdout \
             [spout@32473 container_id=\"3b6ba57db54a0123456789abcdef0123456789abcdef0123456789abcdef0123\" \
             container_name=\"ecs-web-3-app-e4f2a1\" image_name=\"registry.example/web:1.4\" ecs_cluster=\"prod\" \
             quote=\"a \\\"b\\\" c\\\\d\\]e\"] hello é"
        );
        let local3 = Syslog { facility: "local3".parse().expect("facility"), ..Syslog::new(Rfc::Rfc5424) };
        let line = written(local3, &message(Stream::Stderr, "oops"), true);
        assert!(line.starts_with("<155>1 "), "local3 (19) × 8 + err (3): {line}");
        assert!(line.ends_with(" truncated=\"true\"] oops"), "{line}");
    }

    #[test]
    fn header_fields_are_printable_ascii_cut_to_their_limits_or_nil() {
        let mut msg = message(Stream::Stdout, "x");
        let c = Arc::make_mut(&mut msg.container);
        c.name = "n".repeat(60);
        c.host = "".into();
        let line = written(Syslog::new(Rfc::Rfc5424), &msg, false);
        let parts: Vec<&str> = line.splitn(7, ' ').collect();
        assert_eq!(parts[2], "-", "an empty HOSTNAME is the NILVALUE");
        assert_eq!(parts[3], "n".repeat(48), "APP-NAME at most 48 characters");
        let mut msg = message(Stream::Stdout, "x");
        Arc::make_mut(&mut msg.container).host = "host name\u{e9}".into();
        let line = written(Syslog::new(Rfc::Rfc5424), &msg, false);
        assert_eq!(line.split(' ').nth(2), Some("host_name__"), "{line}");
    }

    #[test]
    fn rfc3164_pads_the_day_and_tags_with_the_name_and_short_id() {
        let mut msg = message(Stream::Stderr, "boom");
        msg.ts_ns -= 6 * 86_400 * 1_000_000_000; // 2026-12-01
        assert_eq!(
            written(Syslog::new(Rfc::Rfc3164), &msg, true),
            "<11>Dec  1 04:05:06 ip-10-0-1-7 ecs-web-3-app-e4f2a1[3b6ba57db54a]: boom"
        );
    }

    #[test]
    fn facilities_by_name_or_number() {
        assert_eq!("user".parse::<Facility>(), Ok(Facility::USER));
        assert_eq!("23".parse::<Facility>().map(|f| f.to_string()), Ok("local7".to_owned()));
        assert!("24".parse::<Facility>().is_err());
        assert!("locl0".parse::<Facility>().expect_err("bad").contains("did you mean 'local0'"));
    }
}
