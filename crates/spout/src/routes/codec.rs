//! What a route writes for a message: a format (the message as bytes) and, on a stream, a
//! framing (where one message ends). A scheme picks both; `format=` and `framing=` override.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::gelf_fields::GelfFields;
use crate::message::Message;
use crate::suggest;
use crate::timestamp::format_rfc3339_ns;

/// A message as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// GELF 1.1 JSON, the container's fields as additional fields.
    Gelf,
    /// spout's own JSON record (`stdout://`): time, host, container, stream, message, fields.
    Json,
}

/// Where one message ends on a stream. Neither format ever writes the byte that frames it: JSON
/// escapes control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A NUL byte after each message: GELF over TCP.
    Nul,
    /// A newline after each message: JSON lines.
    Newline,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gelf" => Ok(Format::Gelf),
            "json" => Ok(Format::Json),
            other => Err(format!("'{other}' is not gelf or json{}", suggest::did_you_mean(other, ["gelf", "json"]))),
        }
    }
}

impl FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nul" => Ok(Framing::Nul),
            "newline" => Ok(Framing::Newline),
            other => {
                Err(format!("'{other}' is not nul or newline{}", suggest::did_you_mean(other, ["nul", "newline"])))
            }
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Gelf => "gelf",
            Format::Json => "json",
        })
    }
}

/// A format and a framing, with the buffers encoding reuses from message to message.
pub struct Codec {
    format: Format,
    framing: Framing,
    gelf: gelf::Encoder,
    fields: GelfFields,
}

impl Codec {
    pub fn new(format: Format, framing: Framing) -> Codec {
        Codec { format, framing, gelf: gelf::Encoder::new(), fields: GelfFields::default() }
    }

    /// Appends `msg` to `out`, framed.
    pub fn write(&mut self, out: &mut Vec<u8>, msg: &Message) {
        match self.format {
            Format::Gelf => out.extend_from_slice(self.gelf.encode(&self.fields.message(msg))),
            Format::Json => write_record(out, msg),
        }
        out.push(match self.framing {
            Framing::Nul => 0,
            Framing::Newline => b'\n',
        });
    }
}

#[derive(Serialize)]
struct Record<'a> {
    time: String,
    host: &'a str,
    container_id: &'a str,
    container_name: &'a str,
    image_name: &'a str,
    stream: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(skip_serializing_if = "Fields::is_empty")]
    fields: Fields<'a>,
}

/// The container's additional fields as one object, named without GELF's leading `_`.
struct Fields<'a>(&'a [(String, String)]);

impl Fields<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Fields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name.strip_prefix('_').unwrap_or(name), value)))
    }
}

/// One message as spout's JSON record, on one line (no newline).
pub fn write_record(out: &mut Vec<u8>, msg: &Message) {
    let c = &msg.container;
    let record = Record {
        time: format_rfc3339_ns(msg.ts_ns),
        host: &c.host,
        container_id: &c.id,
        container_name: &c.name,
        image_name: &c.image_name,
        stream: msg.stream.as_str(),
        message: &msg.line,
        truncated: msg.truncated,
        fields: Fields(&c.fields),
    };
    // Serializing plain strings into a Vec cannot fail; should it, nothing half-written stays.
    let mark = out.len();
    if serde_json::to_writer(&mut *out, &record).is_err() {
        out.truncate(mark);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::{Container, Stream};

    fn message(line: &str) -> Message {
        let container = Container {
            id: "0123456789ab".into(),
            name: "web".into(),
            host: "h".into(),
            fields: vec![("_team".into(), "pay".into())],
            ..Default::default()
        };
        Message { container: Arc::new(container), stream: Stream::Stderr, ts_ns: 1_500_000_000, ..Message::test(line) }
    }

    fn frames(codec: &mut Codec, lines: &[&str], end: u8) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for line in lines {
            codec.write(&mut out, &message(line));
        }
        assert_eq!(out.last(), Some(&end));
        out.split(|&b| b == end)
            .filter(|f| !f.is_empty())
            .map(|f| serde_json::from_slice(f).expect("each frame one JSON object"))
            .collect()
    }

    #[test]
    fn gelf_frames_end_in_nul_and_json_lines_in_a_newline_whatever_the_message_holds() {
        let lines = ["plain", "with\nnewline", "with\0nul", "\"quoted\" é"];
        let gelf = frames(&mut Codec::new(Format::Gelf, Framing::Nul), &lines, 0);
        assert_eq!(gelf.iter().map(|m| m["short_message"].as_str()).collect::<Vec<_>>(), lines.map(Some));
        assert_eq!(gelf[0]["_team"], "pay");
        assert_eq!(gelf[0]["_container_name"], "web");
        let json = frames(&mut Codec::new(Format::Json, Framing::Newline), &lines, b'\n');
        assert_eq!(json.iter().map(|m| m["message"].as_str()).collect::<Vec<_>>(), lines.map(Some));
        // Any format with any framing.
        let json_nul = frames(&mut Codec::new(Format::Json, Framing::Nul), &lines, 0);
        assert_eq!(json_nul.len(), lines.len());
    }

    #[test]
    fn the_json_record_is_one_object_on_one_line() {
        let c = Arc::new(Container {
            host: "h".into(),
            id: "i".into(),
            name: "n".into(),
            image_name: "img".into(),
            fields: vec![("_ecs_cluster".into(), "prod".into())],
            ..Default::default()
        });
        let msg = Message {
            container: c,
            stream: Stream::Stderr,
            ts_ns: 1_795_984_225_804_920_384,
            line: "a \"b\"\nc".into(),
            truncated: true,
            ack: None,
        };
        let mut out = Vec::new();
        Codec::new(Format::Json, Framing::Newline).write(&mut out, &msg);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"time": "2026-11-29T20:30:25.804920384Z", "host": "h", "container_id": "i",
                "container_name": "n", "image_name": "img", "stream": "stderr", "message": "a \"b\"\nc", "truncated": true,
                "fields": {"ecs_cluster": "prod"}})
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("newline".parse::<Framing>(), Ok(Framing::Newline));
        assert!("jsno".parse::<Format>().expect_err("bad").contains("did you mean 'json'"));
        assert!("lf".parse::<Framing>().expect_err("bad").contains("not nul or newline"));
    }
}
