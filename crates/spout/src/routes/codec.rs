//! What a route writes for a message: a format (the message as bytes) and, on a stream, a
//! framing (where one message ends), or, in datagrams, a packing. A scheme picks them;
//! `format=` and `framing=` override on a stream.

use std::str::FromStr;

use serde::Serialize;

use super::gelf_fields::GelfFields;
use super::syslog::{Rfc, Syslog};
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
    /// Syslog, RFC 5424 or RFC 3164, with a facility.
    Syslog(Syslog),
}

/// Where one message ends on a stream. The JSON formats never write the byte that frames them
/// (JSON escapes control characters); in a syslog message it is written as rsyslog shows
/// control characters (`#012` for a newline, `#000` for a NUL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A NUL byte after each message: GELF over TCP.
    Nul,
    /// A newline after each message: JSON lines.
    Newline,
    /// The message's length in bytes, in decimal, and a space before each message (RFC 6587's
    /// octet counting, and RFC 5425's over TLS): nothing in the message needs escaping.
    OctetCount,
}

/// How a message becomes datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// GELF, compressed, in chunks of at most `chunk_size` bytes (128 at most; the message cut to
    /// fit).
    GelfChunks { compression: gelf::Compression, chunk_size: usize },
    /// One datagram of the format, at most `max_size` bytes (the message cut to fit).
    Whole { format: Format, max_size: usize },
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const NAMES: [&str; 4] = ["gelf", "json", "rfc5424", "rfc3164"];
        match s {
            "gelf" => Ok(Format::Gelf),
            "json" => Ok(Format::Json),
            "rfc5424" => Ok(Format::Syslog(Syslog::new(Rfc::Rfc5424))),
            "rfc3164" => Ok(Format::Syslog(Syslog::new(Rfc::Rfc3164))),
            other => {
                Err(format!("'{other}' is not gelf, json, rfc5424 or rfc3164{}", suggest::did_you_mean(other, NAMES)))
            }
        }
    }
}

impl Framing {
    /// The byte after each message; none with octet counting.
    fn delimiter(self) -> Option<u8> {
        match self {
            Framing::Nul => Some(0),
            Framing::Newline => Some(b'\n'),
            Framing::OctetCount => None,
        }
    }
}

impl FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const NAMES: [&str; 3] = ["nul", "newline", "octet-count"];
        match s {
            "nul" => Ok(Framing::Nul),
            "newline" => Ok(Framing::Newline),
            "octet-count" => Ok(Framing::OctetCount),
            other => {
                Err(format!("'{other}' is not nul, newline or octet-count{}", suggest::did_you_mean(other, NAMES)))
            }
        }
    }
}

/// A format and a framing, with the buffers encoding reuses from message to message.
pub struct Codec {
    format: Format,
    framing: Framing,
    gelf: gelf::Encoder,
    fields: GelfFields,
    /// A message before its length is written (octet counting).
    counted: Vec<u8>,
}

impl Codec {
    pub fn new(format: Format, framing: Framing) -> Codec {
        Codec { format, framing, gelf: gelf::Encoder::new(), fields: GelfFields::default(), counted: Vec::new() }
    }

    /// Appends `msg` to `out`, framed.
    pub fn write(&mut self, out: &mut Vec<u8>, msg: &Message) {
        let Some(delimiter) = self.framing.delimiter() else {
            // Octet counting: the length first.
            let mut counted = std::mem::take(&mut self.counted);
            counted.clear();
            self.encode(&mut counted, msg, &msg.line, msg.truncated);
            out.extend_from_slice(counted.len().to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(&counted);
            self.counted = counted;
            return;
        };
        let start = out.len();
        self.encode(out, msg, &msg.line, msg.truncated);
        if matches!(self.format, Format::Syslog(_)) {
            escape(out, start, delimiter);
        }
        out.push(delimiter);
    }

    /// Appends `msg` to `out`, framed by a delimiter, its text cut (and marked truncated) so
    /// that the message and its delimiter take at most `max` bytes. False, with nothing
    /// appended, when even its metadata alone takes more. For the JSON formats, which never
    /// write a delimiter inside a message.
    pub fn write_within(&mut self, out: &mut Vec<u8>, msg: &Message, max: usize) -> bool {
        let start = out.len();
        let fits = gelf::cut_to_fit(&msg.line, max.saturating_sub(1), |text, cut| {
            out.truncate(start);
            self.encode(out, msg, text, msg.truncated || cut);
            out.len() - start
        });
        if !fits {
            out.truncate(start);
            return false;
        }
        out.extend(self.framing.delimiter());
        true
    }

    /// Appends `msg` with `text` for its line to `out`, unframed.
    fn encode(&mut self, out: &mut Vec<u8>, msg: &Message, text: &str, truncated: bool) {
        match self.format {
            Format::Gelf => {
                let message = gelf::Message { short_message: text, truncated, ..self.fields.message(msg) };
                out.extend_from_slice(self.gelf.encode(&message));
            }
            Format::Json => write_record_as(out, msg, text, truncated),
            Format::Syslog(syslog) => syslog.write(out, msg, text, truncated),
        }
    }
}

/// Writes each `delimiter` in `out[start..]` as rsyslog shows a control character: `#` and its
/// three octal digits.
fn escape(out: &mut Vec<u8>, start: usize, delimiter: u8) {
    if !out[start..].contains(&delimiter) {
        return;
    }
    let written = out.split_off(start);
    for b in written {
        if b == delimiter {
            out.extend_from_slice(format!("#{b:03o}").as_bytes());
        } else {
            out.push(b);
        }
    }
}

/// A packing at work, with the buffers it reuses.
pub enum Packer {
    Gelf { encoder: gelf::UdpEncoder, fields: GelfFields },
    Whole { max_size: usize, codec: Codec, datagram: Vec<u8> },
}

/// The datagrams of one message.
pub enum Datagrams<'a> {
    Chunks(gelf::Datagrams<'a>),
    One(Option<&'a [u8]>),
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Datagrams::Chunks(chunks) => chunks.next(),
            Datagrams::One(one) => one.take(),
        }
    }
}

impl Packer {
    pub fn new(packing: Packing) -> Packer {
        match packing {
            Packing::GelfChunks { compression, chunk_size } => Packer::Gelf {
                encoder: gelf::UdpEncoder::new(compression, chunk_size, rand::random()),
                fields: GelfFields::default(),
            },
            // A datagram is its own frame: the codec's framing is never written.
            Packing::Whole { format, max_size } => {
                Packer::Whole { max_size, codec: Codec::new(format, Framing::Nul), datagram: Vec::new() }
            }
        }
    }

    /// The datagrams of `msg`, its text cut (at a character boundary) and marked truncated
    /// where it does not fit. `None` when even its metadata alone does not fit: the caller
    /// counts a drop.
    pub fn pack(&mut self, msg: &Message) -> Option<Datagrams<'_>> {
        match self {
            Packer::Gelf { encoder, fields } => encoder.encode(&fields.message(msg)).map(Datagrams::Chunks),
            Packer::Whole { max_size, codec, datagram } => {
                let fits = gelf::cut_to_fit(&msg.line, *max_size, |text, cut| {
                    datagram.clear();
                    codec.encode(datagram, msg, text, msg.truncated || cut);
                    datagram.len()
                });
                fits.then_some(Datagrams::One(Some(&datagram[..])))
            }
        }
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
    write_record_as(out, msg, &msg.line, msg.truncated);
}

/// The record of `msg` with `text` for its line.
fn write_record_as(out: &mut Vec<u8>, msg: &Message, text: &str, truncated: bool) {
    let c = &msg.container;
    let record = Record {
        time: format_rfc3339_ns(msg.ts_ns),
        host: &c.host,
        container_id: &c.id,
        container_name: &c.name,
        image_name: &c.image_name,
        stream: msg.stream.as_str(),
        message: text,
        truncated,
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
    fn octet_counting_prefixes_each_message_with_its_length_and_delimiters_in_syslog_are_escaped() {
        let syslog = Format::Syslog(Syslog::new(Rfc::Rfc3164));
        let mut out = Vec::new();
        let mut counted = Codec::new(syslog, Framing::OctetCount);
        counted.write(&mut out, &message("first\nsecond é"));
        counted.write(&mut out, &message("next"));
        let text = String::from_utf8(out).expect("utf-8");
        let (len, rest) = text.split_once(' ').expect("a length");
        let len: usize = len.parse().expect("a number");
        assert!(rest[..len].ends_with(": first\nsecond é"), "the message as it is: {rest}");
        let (len, next) = rest[len..].split_once(' ').expect("a second length");
        assert_eq!(next.len(), len.parse::<usize>().expect("a number"));
        for (framing, end, escaped) in
            [(Framing::Newline, b'\n', "first#012second"), (Framing::Nul, 0, "first#000second")]
        {
            let mut out = Vec::new();
            Codec::new(syslog, framing).write(&mut out, &message(&format!("first{}second", end as char)));
            assert_eq!(out.iter().filter(|&&b| b == end).count(), 1, "only the frame's end");
            assert!(String::from_utf8_lossy(&out).ends_with(&format!(": {escaped}{}", end as char)));
        }
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
            level: None,
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
    fn a_whole_datagram_is_cut_to_fit_and_marked_and_never_larger() {
        let mut packer = Packer::new(Packing::Whole { format: Format::Json, max_size: 400 });
        let whole = |packer: &mut Packer, line: &str| -> Option<serde_json::Value> {
            let datagrams: Vec<Vec<u8>> = packer.pack(&message(line))?.map(<[u8]>::to_vec).collect();
            assert_eq!(datagrams.len(), 1, "one datagram a message");
            assert!(datagrams[0].len() <= 400, "{} bytes", datagrams[0].len());
            Some(serde_json::from_slice(&datagrams[0]).expect("one JSON record"))
        };
        let short = whole(&mut packer, "short").expect("fits");
        assert_eq!((short["message"].as_str(), short.get("truncated")), (Some("short"), None));
        // Long, and longer once escaped: cut at a character boundary, marked.
        for line in ["x".repeat(10_000), "\"é\u{1}".repeat(3_000)] {
            let cut = whole(&mut packer, &line).expect("cut to fit");
            let text = cut["message"].as_str().expect("text");
            assert!(!text.is_empty() && line.starts_with(text) && text.len() < line.len());
            assert_eq!(cut["truncated"], true);
        }
        // Metadata alone larger than a datagram: nothing to send.
        let mut tiny = Packer::new(Packing::Whole { format: Format::Json, max_size: 100 });
        assert!(tiny.pack(&message("x")).is_none());
    }

    #[test]
    fn names_are_checked() {
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("newline".parse::<Framing>(), Ok(Framing::Newline));
        assert!("jsno".parse::<Format>().expect_err("bad").contains("did you mean 'json'"));
        assert!("lf".parse::<Framing>().expect_err("bad").contains("not nul, newline or octet-count"));
    }
}
