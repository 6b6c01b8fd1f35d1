//! GELF 1.1 messages as JSON.

use crate::json::write_str;

/// Additional fields that stay the same for many messages (for spout: one container's metadata),
/// encoded once as a JSON fragment and spliced into every message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    json: Vec<u8>,
}

/// Why a field name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("additional field name {0:?} must start with '_' and be followed by letters, digits, '_', '-' or '.'")]
    BadName(String),
    #[error("additional field name \"_id\" is reserved by GELF")]
    ReservedId,
}

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a string field. Values that are not strings or numbers (booleans, objects) are not
    /// offered on purpose: Graylog drops booleans and flattens objects.
    pub fn push_str(&mut self, name: &str, value: &str) -> Result<&mut Self, FieldError> {
        check_name(name)?;
        self.json.push(b',');
        write_str(&mut self.json, name);
        self.json.push(b':');
        write_str(&mut self.json, value);
        Ok(self)
    }

    /// The fields' encoded length in bytes.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

/// Whether GELF allows `b` in a field name (`^[\w\.\-]*$`).
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn check_name(name: &str) -> Result<(), FieldError> {
    if name == "_id" {
        return Err(FieldError::ReservedId);
    }
    let valid = name.len() > 1 && name.starts_with('_') && name[1..].bytes().all(is_name_byte);
    if valid {
        Ok(())
    } else {
        Err(FieldError::BadName(name.to_owned()))
    }
}

/// One GELF message, borrowed from whoever owns the data.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub host: &'a str,
    pub short_message: &'a str,
    /// Nanoseconds since the Unix epoch; written as seconds with microsecond precision.
    pub timestamp_ns: i64,
    /// Syslog severity, 0 (emergency) to 7 (debug).
    pub level: u8,
    /// Fields shared by many messages.
    pub fields: &'a Fields,
    /// Fields of this message only, written after `fields`, names already checked.
    pub extra: &'a [(&'a str, &'a str)],
    /// Adds `"_truncated":"true"` (a string: Graylog drops JSON booleans).
    pub truncated: bool,
}

/// Writes messages as GELF JSON into a buffer it keeps, so encoding allocates nothing once warm.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes `msg` and returns the JSON, valid until the next call.
    pub fn encode(&mut self, msg: &Message<'_>) -> &[u8] {
        self.buf.clear();
        write_message(&mut self.buf, msg);
        &self.buf
    }
}

/// Appends `msg` as one GELF JSON object to `out`.
pub fn write_message(out: &mut Vec<u8>, msg: &Message<'_>) {
    out.extend_from_slice(b"{\"version\":\"1.1\",\"host\":");
    // GELF requires a non-empty host; receivers reject the message otherwise.
    write_str(out, if msg.host.is_empty() { "unknown" } else { msg.host });
    out.extend_from_slice(b",\"short_message\":");
    write_str(out, msg.short_message);
    out.extend_from_slice(b",\"timestamp\":");
    write_timestamp(out, msg.timestamp_ns);
    out.extend_from_slice(b",\"level\":");
    out.push(b'0' + msg.level.min(7));
    out.extend_from_slice(&msg.fields.json);
    for (name, value) in msg.extra {
        out.push(b',');
        write_str(out, name);
        out.push(b':');
        write_str(out, value);
    }
    if msg.truncated {
        out.extend_from_slice(b",\"_truncated\":\"true\"");
    }
    out.push(b'}');
}

/// Seconds with exactly six decimals, computed with integers so no float rounding creeps in.
fn write_timestamp(out: &mut Vec<u8>, ns: i64) {
    let micros = ns.div_euclid(1_000);
    let (secs, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    out.extend_from_slice(format!("{secs}.{frac:06}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container_fields() -> Fields {
        let mut f = Fields::new();
        f.push_str("_container_id", "abc").expect("valid").push_str("_container_name", "web").expect("valid");
        f
    }

    #[test]
    fn encodes_every_field_byte_exact() {
        let fields = container_fields();
        let msg = Message {
            host: "docker-1",
            short_message: "hello \"world\"",
            timestamp_ns: 1_764_448_225_804_920_384,
            level: 6,
            fields: &fields,
            extra: &[("_stream", "stdout")],
            truncated: false,
        };
        let mut enc = Encoder::new();
        assert_eq!(
            std::str::from_utf8(enc.encode(&msg)).expect("utf8"),
            r#"{"version":"1.1","host":"docker-1","short_message":"hello \"world\"","timestamp":1764448225.804920,"level":6,"_container_id":"abc","_container_name":"web","_stream":"stdout"}"#
        );
    }

    #[test]
    fn truncated_flag_is_a_string() {
        let fields = Fields::new();
        let msg = Message {
            host: "h",
            short_message: "x",
            timestamp_ns: 0,
            level: 3,
            fields: &fields,
            extra: &[],
            truncated: true,
        };
        let v: serde_json::Value = serde_json::from_slice(Encoder::new().encode(&msg)).expect("json");
        assert_eq!(v["_truncated"], "true");
        assert_eq!(v["timestamp"].as_f64(), Some(0.0));
        assert_eq!(v["level"], 3);
    }

    #[test]
    fn empty_host_is_replaced() {
        let fields = Fields::new();
        let msg = Message {
            host: "",
            short_message: "x",
            timestamp_ns: 0,
            level: 6,
            fields: &fields,
            extra: &[],
            truncated: false,
        };
        let v: serde_json::Value = serde_json::from_slice(Encoder::new().encode(&msg)).expect("json");
        assert_eq!(v["host"], "unknown");
    }

    #[test]
    fn timestamp_keeps_microseconds_and_drops_nanoseconds() {
        let mut out = Vec::new();
        write_timestamp(&mut out, 1_000_000_001_999);
        assert_eq!(out, b"1000.000001");
        out.clear();
        write_timestamp(&mut out, 5_000_000_000);
        assert_eq!(out, b"5.000000");
    }

    #[test]
    fn field_names_are_checked() {
        let mut f = Fields::new();
        assert_eq!(f.push_str("_id", "x").err(), Some(FieldError::ReservedId));
        assert!(matches!(f.push_str("name", "x"), Err(FieldError::BadName(_))));
        assert!(matches!(f.push_str("_", "x"), Err(FieldError::BadName(_))));
        assert!(matches!(f.push_str("_a b", "x"), Err(FieldError::BadName(_))));
        assert!(f.push_str("_a.b-c_1", "x").is_ok());
        let msg = Message {
            host: "h",
            short_message: "m",
            timestamp_ns: 0,
            level: 6,
            fields: &f,
            extra: &[],
            truncated: false,
        };
        let v: serde_json::Value = serde_json::from_slice(Encoder::new().encode(&msg)).expect("json");
        assert_eq!(v["_a.b-c_1"], "x");
    }
}
