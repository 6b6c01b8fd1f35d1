//! A received message as the agent's [`Message`], so that any route the agent has can relay it:
//! Docker's gelf driver's fields (`_container_id`, `_container_name`, …) fill the container's
//! identity, `_stream` and `level` keep the stream and severity, every other field rides along
//! as one of the container's fields (`full_message` as `_full_message`). The routes' filters
//! decide on that container as on any other.

use std::sync::Arc;

use serde_json::Value;

use super::event::Event;
use crate::message::{Container, Message, Stream};

/// `event` as a message; `rejected_by` says which routes' filters do not want its container.
pub fn message(event: &Event, rejected_by: impl Fn(&Container) -> [u64; 2]) -> Message {
    let mut container = Container::default();
    let (mut line, mut ts_ns, mut level, mut stream, mut truncated) = (String::new(), 0, None, None, false);
    for (name, value) in event.fields() {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match name.as_str() {
            "version" => {}
            "host" => container.host = text.into(),
            "short_message" => line = text,
            "timestamp" => ts_ns = value.as_f64().map_or(0, |s| (s * 1e9).round() as i64),
            "level" => level = value.as_u64().map(|l| l.min(7) as u8),
            "_container_id" => container.id = text,
            "_container_name" => container.name = text,
            "_image_id" => container.image_id = text,
            "_image_name" => container.image_name = text,
            "_command" => container.command = text,
            "_created" => container.created = text,
            "_stream" => stream = Some(if text == "stderr" { Stream::Stderr } else { Stream::Stdout }),
            "_truncated" => truncated = text == "true",
            name if name.starts_with('_') => container.fields.push((name.to_owned(), text)),
            name => container.fields.push((format!("_{name}"), text)),
        }
    }
    container.fields.sort();
    container.rejected_by = rejected_by(&container);
    // Without `_stream`, errors and worse are taken for stderr, as Docker's gelf driver sends it.
    let stream = stream.unwrap_or(if level.is_some_and(|l| l <= 3) { Stream::Stderr } else { Stream::Stdout });
    Message { container: Arc::new(container), stream, ts_ns, line, truncated, ack: None, level }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::gelf_fields::GelfFields;

    #[test]
    fn a_relayed_gelf_message_is_written_again_as_it_came() {
        let json = r#"{"version":"1.1","host":"docker-1","short_message":"hi","timestamp":1800000000.123456,"level":4,
            "_container_id":"abc","_container_name":"web","_image_id":"sha256:1","_image_name":"busybox",
            "_command":"sh","_created":"2026-12-07T00:00:00Z","_tag":"t","_n":3,"_stream":"stderr"}"#;
        let event = Event::parse(json.as_bytes(), 1.0).expect("valid");
        let msg = message(&event, |_| [0; 2]);
        assert_eq!((msg.stream, msg.severity(), msg.ts_ns), (Stream::Stderr, 4, 1_800_000_000_123_456_000));
        let mut fields = GelfFields::default();
        let out: Value = serde_json::from_slice(gelf::Encoder::new().encode(&fields.message(&msg))).expect("json");
        let mut expected: Value = serde_json::from_str(json).expect("json");
        expected["_n"] = "3".into(); // a container's fields are text
        assert_eq!(out, expected);
    }

    #[test]
    fn without_a_stream_the_level_tells_and_full_message_rides_along() {
        let event =
            Event::parse(br#"{"host":"h","short_message":"m","full_message":"trace","level":3}"#, 1.0).expect("valid");
        let msg = message(&event, |_| [0; 2]);
        assert_eq!(msg.stream, Stream::Stderr);
        assert_eq!(msg.container.fields, [("_full_message".to_owned(), "trace".to_owned())]);
        let mut fields = GelfFields::default();
        let out: Value = serde_json::from_slice(gelf::Encoder::new().encode(&fields.message(&msg))).expect("json");
        assert!(out.get("_container_id").is_none(), "no empty container fields: {out}");
    }
}
