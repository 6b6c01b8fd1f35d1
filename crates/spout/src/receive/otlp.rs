//! OTLP logs (`POST /v1/logs`, protobuf or JSON) as GELF messages: one a log record, its body
//! the `short_message`, its time the `timestamp`, its severity the `level`, and the resource's
//! and the record's attributes its fields (the record's win).

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message as _;
use serde_json::{Map, Value};

use super::event::{seconds, Event, Invalid};
use crate::enrich::fields::field_name;

/// What a request held.
#[derive(Debug, Default)]
pub struct Decoded {
    pub events: Vec<Event>,
    /// Why each refused record was refused.
    pub refused: Vec<Invalid>,
}

/// Decodes a request; `peer` names the host of records whose resource has no `host.name`. The
/// messages made hold at most `max_weight` (each record gets a copy of its resource's
/// attributes), or the request is refused whole.
pub fn decode(body: &[u8], json: bool, peer: &str, now_s: f64, max_weight: usize) -> Result<Decoded, Invalid> {
    let json = json || body.first() == Some(&b'{');
    // Decoding costs far more than the body for small parts (an empty record is 2 bytes on the
    // wire and a whole `LogRecord` in memory): weighed first, a request that would take too much is
    // refused before it takes anything.
    let decoding = if json { json_weight(body) } else { protobuf_weight(body)? };
    if decoding > max_weight {
        return Err(Invalid::TooLarge(max_weight));
    }
    let request = if json {
        let mut value: Value = serde_json::from_slice(body).map_err(|e| Invalid::Json(e.to_string()))?;
        times_as_strings(&mut value);
        serde_json::from_value::<ExportLogsServiceRequest>(value).map_err(|e| Invalid::Otlp(e.to_string()))?
    } else {
        ExportLogsServiceRequest::decode(body).map_err(|e| Invalid::Otlp(e.to_string()))?
    };
    let (mut decoded, mut weight) = (Decoded::default(), 0);
    for resource_logs in request.resource_logs {
        let resource = resource_logs.resource.map(|r| r.attributes).unwrap_or_default();
        let host = resource
            .iter()
            .find(|kv| kv.key == "host.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map_or_else(|| peer.to_owned(), text);
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs.scope.map(|s| s.name).unwrap_or_default();
            for record in scope_logs.log_records {
                match event(&record, &resource, &host, &scope, now_s) {
                    Ok(event) => {
                        weight += event.weight();
                        decoded.events.push(event);
                    }
                    Err(why) => decoded.refused.push(why),
                }
                if weight > max_weight {
                    return Err(Invalid::TooLarge(max_weight));
                }
            }
        }
    }
    Ok(decoded)
}

/// What decoding a protobuf request takes, about: its bytes, and for each of its messages (a
/// resource, a record, an attribute, a value…) what the decoded one costs.
fn protobuf_weight(body: &[u8]) -> Result<usize, Invalid> {
    let mut total = body.len();
    wire::weigh(body, wire::Kind::Request, 0, &mut total).map_err(|e| Invalid::Otlp(e.to_owned()))?;
    Ok(total)
}

/// What decoding a JSON request takes, about: its bytes twice (the JSON value, then the
/// request), and for each object or array what the decoded one costs.
fn json_weight(body: &[u8]) -> usize {
    let parts = body.iter().filter(|&&b| b == b'{' || b == b'[').count();
    2 * body.len() + parts * wire::PART_COST
}

/// OTLP's protobuf, walked without decoding it: which fields of which message are messages.
mod wire {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;

    /// What a decoded part costs beyond its own bytes, about, for JSON's objects and arrays.
    pub const PART_COST: usize = 128;

    /// Messages nest no deeper than this (prost's own limit is 100).
    const MAX_DEPTH: usize = 64;

    #[derive(Debug, Clone, Copy)]
    pub enum Kind {
        Request,
        ResourceLogs,
        Resource,
        ScopeLogs,
        Scope,
        Record,
        KeyValue,
        AnyValue,
        Array,
        KvList,
    }

    impl Kind {
        /// The message that field `field` of this one holds, if it is one.
        fn child(self, field: u64) -> Option<Kind> {
            Some(match (self, field) {
                (Kind::Request, 1) => Kind::ResourceLogs,
                (Kind::ResourceLogs, 1) => Kind::Resource,
                (Kind::ResourceLogs, 2) => Kind::ScopeLogs,
                (Kind::Resource, 1) | (Kind::Scope, 3) | (Kind::Record, 6) | (Kind::KvList, 1) => Kind::KeyValue,
                (Kind::ScopeLogs, 1) => Kind::Scope,
                (Kind::ScopeLogs, 2) => Kind::Record,
                (Kind::Record, 5) | (Kind::KeyValue, 2) | (Kind::Array, 1) => Kind::AnyValue,
                (Kind::AnyValue, 5) => Kind::Array,
                (Kind::AnyValue, 6) => Kind::KvList,
                _ => return None,
            })
        }

        fn cost(self) -> usize {
            let size = match self {
                Kind::Record => std::mem::size_of::<LogRecord>(),
                Kind::KeyValue => std::mem::size_of::<KeyValue>(),
                Kind::AnyValue => std::mem::size_of::<AnyValue>(),
                _ => PART_COST,
            };
            size + 32
        }
    }

    fn varint(buf: &mut &[u8]) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first().ok_or("cut short")?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a varint longer than 10 bytes")
    }

    fn take<'a>(buf: &mut &'a [u8], n: u64) -> Result<&'a [u8], &'static str> {
        let n = usize::try_from(n).map_err(|_| "a length beyond memory")?;
        if n > buf.len() {
            return Err("cut short");
        }
        let (taken, rest) = buf.split_at(n);
        *buf = rest;
        Ok(taken)
    }

    /// Adds to `total` what decoding `buf`, a `kind`, costs.
    pub fn weigh(mut buf: &[u8], kind: Kind, depth: usize, total: &mut usize) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err("messages nested too deep");
        }
        while !buf.is_empty() {
            let key = varint(&mut buf)?;
            match key & 7 {
                0 => {
                    varint(&mut buf)?;
                }
                1 => {
                    take(&mut buf, 8)?;
                }
                5 => {
                    take(&mut buf, 4)?;
                }
                2 => {
                    let len = varint(&mut buf)?;
                    let part = take(&mut buf, len)?;
                    if let Some(child) = kind.child(key >> 3) {
                        *total = total.saturating_add(child.cost());
                        weigh(part, child, depth + 1, total)?;
                    }
                }
                _ => return Err("a group or an unknown wire type"),
            }
        }
        Ok(())
    }
}

/// OTLP/JSON allows 64-bit times as numbers or as strings; the generated types take strings
/// only.
fn times_as_strings(request: &mut Value) {
    let records = request
        .get_mut("resourceLogs")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get_mut("scopeLogs")?.as_array_mut())
        .flatten()
        .filter_map(|s| s.get_mut("logRecords")?.as_array_mut())
        .flatten();
    for record in records {
        for key in ["timeUnixNano", "observedTimeUnixNano"] {
            if let Some(time) = record.get_mut(key).filter(|t| t.is_number()) {
                *time = Value::String(time.to_string());
            }
        }
    }
}

fn event(record: &LogRecord, resource: &[KeyValue], host: &str, scope: &str, now_s: f64) -> Result<Event, Invalid> {
    let mut fields = Map::new();
    for kv in resource.iter().chain(&record.attributes) {
        if let (Some(name), Some(value)) = (field_name(&kv.key), kv.value.as_ref().and_then(|v| v.value.as_ref())) {
            fields.insert(name, json(value));
        }
    }
    let body = record.body.as_ref().and_then(|b| b.value.as_ref()).map(text).unwrap_or_default();
    let short_message = if body.is_empty() { record.event_name.clone() } else { body };
    fields.insert("version".into(), "1.1".into());
    fields.insert("host".into(), host.into());
    fields.insert("short_message".into(), short_message.into());
    let ns = [record.time_unix_nano, record.observed_time_unix_nano].into_iter().find(|&t| t > 0);
    fields.insert("timestamp".into(), ns.map_or_else(|| seconds(now_s), |ns| seconds(ns as f64 / 1e9)));
    if let Some(level) = level(record.severity_number) {
        fields.insert("level".into(), level.into());
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let extra = [
        ("_severity_text", record.severity_text.clone()),
        ("_trace_id", hex(&record.trace_id)),
        ("_span_id", hex(&record.span_id)),
        ("_otel_scope", scope.to_owned()),
    ];
    for (name, value) in extra {
        if !value.is_empty() {
            fields.insert(name.into(), value.into());
        }
    }
    Event::check(fields, now_s)
}

/// syslog's severity for OpenTelemetry's number (1–4 trace … 21–24 fatal); none for unset.
fn level(severity: i32) -> Option<u8> {
    Some(match severity {
        1..=8 => 7,
        9..=12 => 6,
        13..=16 => 4,
        17..=20 => 3,
        21..=24 => 2,
        _ => return None,
    })
}

/// A value as GELF holds one: a string or a number; anything else as its text.
fn json(value: &AnyValue) -> Value {
    match value {
        AnyValue::IntValue(n) => (*n).into(),
        AnyValue::DoubleValue(d) => {
            serde_json::Number::from_f64(*d).map_or_else(|| d.to_string().into(), Value::Number)
        }
        other => text(other).into(),
    }
}

fn text(value: &AnyValue) -> String {
    match value {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::IntValue(n) => n.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        AnyValue::BytesValue(b) => String::from_utf8_lossy(b).into_owned(),
        AnyValue::ArrayValue(a) => {
            let items: Vec<Value> = a.values.iter().filter_map(|v| v.value.as_ref()).map(json).collect();
            Value::Array(items).to_string()
        }
        AnyValue::KvlistValue(kv) => {
            let map: Map<String, Value> = kv
                .values
                .iter()
                .filter_map(|kv| Some((kv.key.clone(), json(kv.value.as_ref()?.value.as_ref()?))))
                .collect();
            Value::Object(map).to_string()
        }
    }
}

/// The answer to an export: its content type and body, in the request's encoding, with the
/// records refused as a partial success.
pub fn response(refused: &[Invalid], json: bool) -> (&'static str, Vec<u8>) {
    let partial_success = refused.first().map(|why| ExportLogsPartialSuccess {
        rejected_log_records: refused.len() as i64,
        error_message: why.to_string(),
    });
    let response = ExportLogsServiceResponse { partial_success };
    if json {
        // `{}` for a full success, as the specification writes it, not a null partial success.
        let body = if response.partial_success.is_some() {
            serde_json::to_vec(&response).unwrap_or_default()
        } else {
            b"{}".to_vec()
        };
        ("application/json", body)
    } else {
        ("application/x-protobuf", response.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::AnyValue as Any;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;

    fn kv(key: &str, value: AnyValue) -> KeyValue {
        KeyValue { key: key.into(), value: Some(Any { value: Some(value) }) }
    }

    #[test]
    fn a_protobuf_export_becomes_one_message_a_record() {
        let record = |body: &str, severity: i32| LogRecord {
            time_unix_nano: 1_800_000_000_250_000_000,
            severity_number: severity,
            severity_text: "WARN".into(),
            body: Some(Any { value: Some(AnyValue::StringValue(body.into())) }),
            attributes: vec![
                kv("user.id", AnyValue::IntValue(7)),
                kv("service.name", AnyValue::StringValue("r".into())),
            ],
            trace_id: vec![0xab; 16],
            ..Default::default()
        };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("host.name", AnyValue::StringValue("web-1".into())),
                        kv("service.name", AnyValue::StringValue("shop".into())),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![record("clicked", 13), record("", 0)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let decoded = decode(&request.encode_to_vec(), false, "10.0.0.9", 1.0, 1 << 20).expect("decoded");
        assert_eq!(decoded.refused.len(), 1, "the record with no body and no event name");
        assert_eq!(decoded.refused[0].reason(), "short_message");
        let e = decoded.events[0].fields();
        assert_eq!(e["host"], "web-1");
        assert_eq!(e["short_message"], "clicked");
        assert_eq!(e["timestamp"], 1_800_000_000.25);
        assert_eq!(e["level"], 4);
        assert_eq!(e["_user.id"], 7);
        assert_eq!(e["_service.name"], "r", "the record's attribute wins over the resource's");
        assert_eq!(e["_severity_text"], "WARN");
        assert_eq!(e["_trace_id"], "ab".repeat(16));
        let (_, body) = response(&decoded.refused, false);
        let answer = ExportLogsServiceResponse::decode(body.as_slice()).expect("response");
        assert_eq!(answer.partial_success.map(|p| p.rejected_log_records), Some(1));
    }

    #[test]
    fn otlp_json_with_times_as_numbers_or_strings_and_no_host_name() {
        let body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"front"}}]},
            "scopeLogs":[{"scope":{"name":"web"},"logRecords":[
              {"timeUnixNano":1800000000500000000,"severityNumber":17,"body":{"stringValue":"boom"},
               "attributes":[{"key":"n","value":{"intValue":"3"}},{"key":"ok","value":{"boolValue":true}}]},
              {"observedTimeUnixNano":"1800000001000000000","body":{"kvlistValue":{"values":[{"key":"a","value":{"intValue":1}}]}}}
            ]}]}]}"#;
        let decoded = decode(body.as_bytes(), true, "192.0.2.1", 1.0, 1 << 20).expect("decoded");
        assert!(decoded.refused.is_empty(), "{:?}", decoded.refused);
        let (a, b) = (decoded.events[0].fields(), decoded.events[1].fields());
        assert_eq!((&a["host"], &a["short_message"], &a["level"]), (&"192.0.2.1".into(), &"boom".into(), &3.into()));
        assert_eq!(a["timestamp"], 1_800_000_000.5);
        assert_eq!(
            (&a["_n"], &a["_ok"], &a["_service.name"], &a["_otel_scope"]),
            (&3.into(), &"true".into(), &"front".into(), &"web".into())
        );
        assert_eq!((&b["short_message"], &b["timestamp"]), (&r#"{"a":1}"#.into(), &1_800_000_001.0.into()));
        assert!(matches!(decode(b"{\"resourceLogs\":3}", true, "p", 1.0, 1 << 20), Err(Invalid::Otlp(_))));
        assert!(matches!(decode(b"\x0a\xff\xff", false, "p", 1.0, 1 << 20), Err(Invalid::Otlp(_))));
    }

    #[test]
    fn a_request_whose_records_would_each_copy_a_big_resource_is_refused_whole() {
        let big = kv("big", AnyValue::StringValue("r".repeat(100_000)));
        let record =
            LogRecord { body: Some(Any { value: Some(AnyValue::StringValue("x".into())) }), ..Default::default() };
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource { attributes: vec![big], ..Default::default() }),
                scope_logs: vec![ScopeLogs { log_records: vec![record; 1000], ..Default::default() }],
                ..Default::default()
            }],
        };
        let body = request.encode_to_vec();
        assert!(body.len() < 200_000, "a small request: {} bytes", body.len());
        assert_eq!(decode(&body, false, "p", 1.0, 8 << 20).map(|d| d.events.len()), Err(Invalid::TooLarge(8 << 20)));
    }

    #[test]
    fn a_request_that_would_take_far_more_decoded_than_its_bytes_is_refused_before_decoding() {
        // 100,000 empty records: 2 bytes each on the wire, a whole `LogRecord` each decoded.
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs { log_records: vec![LogRecord::default(); 100_000], ..Default::default() }],
                ..Default::default()
            }],
        };
        let body = request.encode_to_vec();
        assert!(body.len() < 300_000);
        let weight = protobuf_weight(&body).expect("well formed");
        assert!(weight > 100_000 * std::mem::size_of::<LogRecord>(), "{weight}");
        assert_eq!(decode(&body, false, "p", 1.0, 8 << 20).map(|d| d.events.len()), Err(Invalid::TooLarge(8 << 20)));
        let json = format!(
            "{{\"resourceLogs\":[{{\"scopeLogs\":[{{\"logRecords\":[{}]}}]}}]}}",
            vec!["{}"; 100_000].join(",")
        );
        assert_eq!(
            decode(json.as_bytes(), true, "p", 1.0, 8 << 20).map(|d| d.events.len()),
            Err(Invalid::TooLarge(8 << 20))
        );
        // Cut short, or nested past any sense: refused, never a crash.
        assert!(matches!(protobuf_weight(&body[..body.len() - 1]), Err(Invalid::Otlp(_))));
        let field = |key: u8, inner: Vec<u8>| {
            let mut out = vec![key];
            let mut len = inner.len();
            while len >= 0x80 {
                out.push((len as u8 & 0x7f) | 0x80);
                len >>= 7;
            }
            out.push(len as u8);
            out.extend(inner);
            out
        };
        let mut deep = Vec::new();
        for _ in 0..200 {
            // AnyValue.array_value (5) holding ArrayValue.values (1) holding the next.
            deep = field(0x2a, field(0x0a, deep));
        }
        let mut weight = 0;
        assert!(wire::weigh(&deep, wire::Kind::AnyValue, 0, &mut weight).is_err());
    }
}
