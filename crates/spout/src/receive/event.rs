//! One received message, checked against GELF 1.1 and made whole: what every input produces
//! and every output takes.

use serde_json::{Map, Value};

/// A valid GELF 1.1 message: `version` "1.1", `host` and `short_message` non-empty strings,
/// `timestamp` a number (the time of arrival where none was given), `level` a number where
/// given, every other field's name matching `^[\w\.\-]*$` and its value a string or a number.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    fields: Map<String, Value>,
    /// About the memory it holds (see [`Event::weight`]).
    weight: usize,
}

/// Why a message was refused; its [`Invalid::reason`] labels the count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("not a JSON object")]
    NotObject,
    #[error("version must be \"1.1\"")]
    Version,
    #[error("host must be a non-empty string")]
    Host,
    #[error("short_message must be a non-empty string")]
    ShortMessage,
    #[error("full_message must be a string")]
    FullMessage,
    #[error("timestamp must be a number (seconds since the epoch)")]
    Timestamp,
    #[error("level must be a number")]
    Level,
    #[error("field name {0:?} may hold only letters, digits, '_', '-' and '.'")]
    FieldName(String),
    #[error("{0}")]
    Decompress(String),
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Chunk(gelf::ReassembleError),
    #[error("OTLP: {0}")]
    Otlp(String),
    #[error("origin {0} is not allowed (--cors-origin)")]
    Origin(String),
}

impl Invalid {
    /// A short name for counting refusals by kind.
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::Json(_) => "json",
            Invalid::NotObject => "not_object",
            Invalid::Version => "version",
            Invalid::Host => "host",
            Invalid::ShortMessage => "short_message",
            Invalid::FullMessage => "full_message",
            Invalid::Timestamp => "timestamp",
            Invalid::Level => "level",
            Invalid::FieldName(_) => "field_name",
            Invalid::Decompress(_) => "decompress",
            Invalid::TooLarge(_) => "too_large",
            Invalid::Chunk(e) => e.reason(),
            Invalid::Otlp(_) => "otlp",
            Invalid::Origin(_) => "origin",
        }
    }
}

impl From<gelf::DecompressError> for Invalid {
    fn from(e: gelf::DecompressError) -> Self {
        match e {
            gelf::DecompressError::TooLarge(max) => Invalid::TooLarge(max),
            corrupt => Invalid::Decompress(corrupt.to_string()),
        }
    }
}

/// GELF's own fields, which are not additional ones.
const STANDARD: [&str; 6] = ["version", "host", "short_message", "full_message", "timestamp", "level"];

/// Whether `name` is a field name GELF allows: `^[\w\.\-]*$`.
pub fn valid_name(name: &str) -> bool {
    name.bytes().all(gelf::is_name_byte)
}

impl Event {
    /// Decodes a (decompressed) GELF payload; `now_s` is the time of arrival, in seconds.
    pub fn parse(payload: &[u8], now_s: f64) -> Result<Event, Invalid> {
        let value: Value = serde_json::from_slice(payload).map_err(|e| Invalid::Json(e.to_string()))?;
        match value {
            Value::Object(map) => Event::check(map, now_s),
            _ => Err(Invalid::NotObject),
        }
    }

    /// Checks a message's fields: the first problem refuses it. `_id`, which GELF reserves, is
    /// dropped; a true or false becomes the string "true" or "false" and an object or array its
    /// JSON text, as Graylog stores them; a null is dropped.
    pub fn check(mut map: Map<String, Value>, now_s: f64) -> Result<Event, Invalid> {
        match map.get("version") {
            None => {
                map.insert("version".into(), "1.1".into());
            }
            Some(Value::String(v)) if v == "1.1" || v == "1.0" => {
                map.insert("version".into(), "1.1".into());
            }
            Some(_) => return Err(Invalid::Version),
        }
        let non_empty = |key| map.get(key).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        if !non_empty("host") {
            return Err(Invalid::Host);
        }
        if !non_empty("short_message") {
            return Err(Invalid::ShortMessage);
        }
        if map.get("full_message").is_some_and(|m| !m.is_string()) {
            return Err(Invalid::FullMessage);
        }
        match map.get("timestamp") {
            None => {
                map.insert("timestamp".into(), seconds(now_s));
            }
            Some(t) if t.is_number() => {}
            Some(_) => return Err(Invalid::Timestamp),
        }
        if map.get("level").is_some_and(|l| !l.is_number()) {
            return Err(Invalid::Level);
        }
        map.remove("_id");
        for (name, value) in map.iter_mut() {
            if STANDARD.contains(&name.as_str()) {
                continue;
            }
            if !valid_name(name) {
                return Err(Invalid::FieldName(name.clone()));
            }
            match value {
                Value::String(_) | Value::Number(_) | Value::Null => {}
                Value::Bool(b) => *value = Value::String(b.to_string()),
                Value::Array(_) | Value::Object(_) => *value = Value::String(value.to_string()),
            }
        }
        map.retain(|_, v| !v.is_null());
        let weight = MESSAGE_COST + map.iter().map(|(name, value)| field_weight(name, value)).sum::<usize>();
        Ok(Event { fields: map, weight })
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// About the memory the message holds: its text and what keeping each field costs. Queues
    /// and requests are bounded by it.
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// Sets field `name` (an additional field's, with its `_`) to `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        let value = Value::String(value.to_owned());
        self.weight += field_weight(name, &value);
        self.fields.insert(name.to_owned(), value);
    }

    /// A field as text: a string as it is, a number as written.
    pub fn text(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self.fields.get(name)? {
            Value::String(s) => Some(s.as_str().into()),
            Value::Number(n) => Some(n.to_string().into()),
            _ => None,
        }
    }

    /// The message as one line of JSON (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing a map of strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &self.fields);
    }
}

/// What keeping a message costs beyond its fields.
const MESSAGE_COST: usize = 128;

/// What keeping a field costs: its name and value, and the map's entry.
fn field_weight(name: &str, value: &Value) -> usize {
    64 + name.len() + value.as_str().map_or(16, str::len)
}

/// A time in seconds as a JSON number (microseconds kept).
pub fn seconds(s: f64) -> Value {
    serde_json::Number::from_f64((s * 1e6).round() / 1e6).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Event, Invalid> {
        Event::parse(json.as_bytes(), 1_800_000_000.5)
    }

    #[test]
    fn a_docker_gelf_driver_message_is_kept_whole() {
        let json = r#"{"version":"1.1","host":"h","short_message":"hi","timestamp":1.5,"level":6,
                       "_container_id":"abc","_command":"sh -c x","_tag":"t","_n":3}"#;
        let e = parse(json).expect("valid");
        let expected: Value = serde_json::from_str(json).expect("json");
        assert_eq!(Value::Object(e.fields().clone()), expected);
        assert!(e.weight() > json.len(), "its weight counts what keeping it costs: {}", e.weight());
    }

    #[test]
    fn what_a_sender_left_out_is_filled_in_and_what_gelf_reserves_is_dropped() {
        let e = parse(r#"{"host":"h","short_message":"m","_id":"x","_ok":true,"_obj":{"a":1},"_gone":null}"#)
            .expect("valid");
        assert_eq!(e.fields()["version"], "1.1");
        assert_eq!(e.fields()["timestamp"], 1_800_000_000.5);
        assert!(e.fields().get("_id").is_none() && e.fields().get("_gone").is_none());
        assert_eq!(e.fields()["_ok"], "true");
        assert_eq!(e.fields()["_obj"], r#"{"a":1}"#);
    }

    #[test]
    fn each_rule_refuses_with_its_own_reason() {
        let cases = [
            ("{", "json"),
            ("[1]", "not_object"),
            (r#"{"version":"2","host":"h","short_message":"m"}"#, "version"),
            (r#"{"short_message":"m"}"#, "host"),
            (r#"{"host":"","short_message":"m"}"#, "host"),
            (r#"{"host":7,"short_message":"m"}"#, "host"),
            (r#"{"host":"h"}"#, "short_message"),
            (r#"{"host":"h","short_message":""}"#, "short_message"),
            (r#"{"host":"h","short_message":"m","full_message":1}"#, "full_message"),
            (r#"{"host":"h","short_message":"m","timestamp":"1.5"}"#, "timestamp"),
            (r#"{"host":"h","short_message":"m","level":"info"}"#, "level"),
            (r#"{"host":"h","short_message":"m","_a b":"x"}"#, "field_name"),
            (r#"{"host":"h","short_message":"m","_ü":"x"}"#, "field_name"),
        ];
        for (json, reason) in cases {
            assert_eq!(parse(json).map_err(|e| e.reason()), Err(reason), "{json}");
        }
        // Dots and dashes are allowed, as GELF's pattern says.
        assert!(parse(r#"{"host":"h","short_message":"m","_service.name-x":"x"}"#).is_ok());
    }
}
