//! OTLP logs (`otlp+http://`): messages as an `ExportLogsServiceRequest` in protobuf, one
//! resource per container with OpenTelemetry's semantic-convention attributes (and the
//! container's own fields), one log record per line.

use std::collections::HashSet;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use crate::message::{Container, Message};
use crate::timestamp::now_ns;

/// Bytes a request spends on a resource's and a scope's framing and on the scope (besides the
/// resource's attributes), with room to spare.
const WRAPPER_BYTES: usize = 64;
/// Bytes a record's own field tag and length take, at most.
const RECORD_FRAMING: usize = 6;

/// The records of one request, each with its container, in the order they were read.
#[derive(Default)]
pub struct Records {
    records: Vec<(Arc<Container>, LogRecord)>,
    /// The containers with a record in the request, by address.
    containers: HashSet<usize>,
}

impl Records {
    /// Appends `msg` as a record, its text cut (and marked `spout.truncated`) so that the record,
    /// and its container's resource if it is the container's first, take at most `max` bytes of
    /// the request. `out` only measures the request: it grows by that many bytes. False, with
    /// nothing appended, when even an empty record takes more.
    pub fn push_within(&mut self, out: &mut Vec<u8>, msg: &Message, max: usize) -> bool {
        let first = !self.containers.contains(&(Arc::as_ptr(&msg.container) as usize));
        let wrapper = if first { resource(&msg.container).encoded_len() + WRAPPER_BYTES } else { 0 };
        let room = max.saturating_sub(wrapper + RECORD_FRAMING);
        let mut record = LogRecord::default();
        let fits = gelf::cut_to_fit(&msg.line, room, |text, cut| {
            record = log_record(msg, text, msg.truncated || cut);
            record.encoded_len()
        });
        if fits {
            out.resize(out.len() + wrapper + RECORD_FRAMING + record.encoded_len(), 0);
            self.containers.insert(Arc::as_ptr(&msg.container) as usize);
            self.records.push((Arc::clone(&msg.container), record));
        }
        fits
    }

    /// Keeps the first `n` records: those the body took.
    pub fn keep(&mut self, n: usize) {
        self.records.truncate(n);
        self.containers = self.records.iter().map(|(c, _)| Arc::as_ptr(c) as usize).collect();
    }

    /// The request, emptying `self`: one resource for each container, its records in order.
    pub fn take_request(&mut self) -> Vec<u8> {
        self.containers.clear();
        let mut resource_logs: Vec<(Arc<Container>, ResourceLogs)> = Vec::new();
        for (container, record) in self.records.drain(..) {
            let at = match resource_logs.iter().position(|(c, _)| Arc::ptr_eq(c, &container)) {
                Some(at) => at,
                None => {
                    let scope = ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "spout".to_owned(),
                            version: env!("CARGO_PKG_VERSION").to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    let logs = ResourceLogs {
                        resource: Some(resource(&container)),
                        scope_logs: vec![scope],
                        ..Default::default()
                    };
                    resource_logs.push((container, logs));
                    resource_logs.len() - 1
                }
            };
            resource_logs[at].1.scope_logs[0].log_records.push(record);
        }
        let request = ExportLogsServiceRequest { resource_logs: resource_logs.into_iter().map(|(_, r)| r).collect() };
        request.encode_to_vec()
    }
}

/// Records the destination rejected, and why, from a 200's body: `None` when it rejected none
/// (or the body is not an `ExportLogsServiceResponse`).
pub fn rejected(answer: &[u8]) -> Option<(u64, String)> {
    let partial = ExportLogsServiceResponse::decode(answer).ok()?.partial_success?;
    let rejected = u64::try_from(partial.rejected_log_records).ok().filter(|&n| n > 0)?;
    Some((rejected, partial.error_message))
}

fn log_record(msg: &Message, text: &str, truncated: bool) -> LogRecord {
    // OpenTelemetry's number for each of syslog's severities (its data model's mapping).
    let (severity_number, severity_text) = match msg.severity() {
        0 => (24, "FATAL4"),
        1 => (23, "FATAL3"),
        2 => (21, "FATAL"),
        3 => (17, "ERROR"),
        4 => (13, "WARN"),
        5 => (10, "INFO2"),
        6 => (9, "INFO"),
        _ => (5, "DEBUG"),
    };
    let mut attributes = vec![string("log.iostream", msg.stream.as_str())];
    if truncated {
        attributes.push(KeyValue { key: "spout.truncated".to_owned(), value: Some(any(Value::BoolValue(true))) });
    }
    LogRecord {
        time_unix_nano: u64::try_from(msg.ts_ns).unwrap_or(0),
        observed_time_unix_nano: u64::try_from(now_ns()).unwrap_or(0),
        severity_number,
        severity_text: severity_text.to_owned(),
        body: Some(any(Value::StringValue(text.to_owned()))),
        attributes,
        ..Default::default()
    }
}

/// A container as an OpenTelemetry resource: the semantic conventions' attributes, then its own
/// fields by their names (without GELF's leading `_`).
fn resource(c: &Container) -> Resource {
    let (image, tag) = split_image(&c.image_name);
    let mut attributes = vec![
        string("host.name", &c.host),
        string("container.id", &c.id),
        string("container.name", &c.name),
        string("container.image.name", image),
        string("container.runtime", "docker"),
    ];
    if let Some(tag) = tag {
        let tags = ArrayValue { values: vec![any(Value::StringValue(tag.to_owned()))] };
        attributes.push(KeyValue { key: "container.image.tags".to_owned(), value: Some(any(Value::ArrayValue(tags))) });
    }
    let field = |name: &str| c.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let ecs = [
        ("_ecs_task_arn", "aws.ecs.task.arn"),
        ("_ecs_task_family", "aws.ecs.task.family"),
        ("_ecs_task_revision", "aws.ecs.task.revision"),
    ];
    let mut on_ecs = false;
    for (name, key) in ecs {
        if let Some(value) = field(name) {
            attributes.push(string(key, value));
            on_ecs = true;
        }
    }
    // The cluster label is the cluster's ARN or its name; only an ARN has a convention.
    if let Some(arn) = field("_ecs_cluster").filter(|v| v.starts_with("arn:")) {
        attributes.push(string("aws.ecs.cluster.arn", arn));
    }
    if on_ecs {
        attributes.push(string("cloud.provider", "aws"));
        attributes.push(string("cloud.platform", "aws_ecs"));
    }
    for (name, value) in &c.fields {
        attributes.push(string(name.strip_prefix('_').unwrap_or(name), value));
    }
    Resource { attributes, ..Default::default() }
}

/// `registry/name:tag` as its name and tag (none for a digest or no tag).
fn split_image(image: &str) -> (&str, Option<&str>) {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (image, None),
    }
}

fn any(value: Value) -> AnyValue {
    AnyValue { value: Some(value) }
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(any(Value::StringValue(value.to_owned()))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Stream;

    fn message(container: &Arc<Container>, stream: Stream, line: &str) -> Message {
        Message { container: Arc::clone(container), stream, ts_ns: 1_796_616_306_123_456_789, ..Message::test(line) }
    }

    fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn one_resource_per_container_with_the_conventions_and_one_record_per_line() {
        let web = Arc::new(Container {
            id: "3b6ba57db54a".into(),
            name: "ecs-web".into(),
            host: "ip-10-0-1-7".into(),
            image_name: "registry.example:5000/web:1.4".into(),
            fields: vec![
                ("_ecs_cluster".into(), "arn:aws:ecs:eu-west-1:123:cluster/prod".into()),
                ("_ecs_task_arn".into(), "arn:aws:ecs:eu-west-1:123:task/prod/0f1e".into()),
                ("_team".into(), "pay".into()),
            ],
            ..Default::default()
        });
        let db = Arc::new(Container {
            id: "9f".into(),
            name: "db".into(),
            image_name: "postgres".into(),
            ..Default::default()
        });
        let mut records = Records::default();
        let mut out = Vec::new();
        for msg in
            [message(&web, Stream::Stdout, "a"), message(&db, Stream::Stdout, "b"), message(&web, Stream::Stderr, "c")]
        {
            assert!(records.push_within(&mut out, &msg, 4096));
        }
        let request = ExportLogsServiceRequest::decode(&records.take_request()[..]).expect("protobuf");
        assert_eq!(request.resource_logs.len(), 2, "one resource per container");
        let web_logs = &request.resource_logs[0];
        let attributes = &web_logs.resource.as_ref().expect("resource").attributes;
        let text = |key: &str| match attribute(attributes, key) {
            Some(Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        };
        assert_eq!(text("container.image.name"), Some("registry.example:5000/web"));
        assert_eq!(text("aws.ecs.cluster.arn"), Some("arn:aws:ecs:eu-west-1:123:cluster/prod"));
        assert_eq!(text("aws.ecs.task.arn"), Some("arn:aws:ecs:eu-west-1:123:task/prod/0f1e"));
        assert_eq!(text("cloud.platform"), Some("aws_ecs"));
        assert_eq!(text("team"), Some("pay"));
        let Some(Value::ArrayValue(tags)) = attribute(attributes, "container.image.tags") else { panic!("tags") };
        assert_eq!(tags.values[0].value, Some(Value::StringValue("1.4".into())));
        let logs = &web_logs.scope_logs[0].log_records;
        let lines: Vec<_> = logs.iter().map(|r| (r.severity_number, r.body.clone().and_then(|b| b.value))).collect();
        assert_eq!(lines, [(9, Some(Value::StringValue("a".into()))), (17, Some(Value::StringValue("c".into())))]);
        assert_eq!(logs[0].time_unix_nano, 1_796_616_306_123_456_789);
        let db_attributes = &request.resource_logs[1].resource.as_ref().expect("resource").attributes;
        assert!(
            attribute(db_attributes, "container.image.tags").is_none()
                && attribute(db_attributes, "cloud.provider").is_none()
        );
    }

    #[test]
    fn a_record_is_cut_to_fit_and_marked_and_the_body_measures_what_is_sent() {
        let c =
            Arc::new(Container { id: "3b6ba57db54a".repeat(5), image_name: "web:1.4".into(), ..Default::default() });
        let mut records = Records::default();
        let mut out = Vec::new();
        assert!(records.push_within(&mut out, &message(&c, Stream::Stdout, &"x".repeat(10_000)), 1024));
        assert!(out.len() <= 1024, "{} bytes", out.len());
        records.keep(1);
        let body = records.take_request();
        assert!(body.len() <= out.len(), "the request ({} bytes) within what was measured ({})", body.len(), out.len());
        let request = ExportLogsServiceRequest::decode(&body[..]).expect("protobuf");
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(attribute(&record.attributes, "spout.truncated"), Some(&Value::BoolValue(true)));
        assert!(!records.push_within(&mut out, &message(&c, Stream::Stdout, "x"), 10), "nothing fits in 10 bytes");
    }

    #[test]
    fn a_partial_success_says_how_many_were_rejected() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let answer = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too old".into(),
            }),
        };
        assert_eq!(rejected(&answer.encode_to_vec()), Some((2, "too old".to_owned())));
        assert_eq!(rejected(&ExportLogsServiceResponse::default().encode_to_vec()), None);
        assert_eq!(rejected(b""), None);
    }
}
