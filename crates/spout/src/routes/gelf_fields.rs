//! GELF fields of each container (Docker's gelf driver's, then the container's own, see
//! [`crate::enrich`]), encoded once per container rather than once per line.

use std::collections::HashMap;
use std::sync::Arc;

use crate::message::{Container, Message};

/// Bound the cache; past either, it starts over (entries are rebuilt on demand). A container's
/// fields are few, but a message relayed by `spout receive` brings its own, as many as its
/// sender chose.
const MAX_CONTAINERS: usize = 4096;
const MAX_BYTES: usize = 16 << 20;

#[derive(Default)]
pub struct GelfFields {
    by_id: HashMap<String, (Arc<Container>, gelf::Fields)>,
    /// About what the cache holds: each entry's fields, encoded and as the container has them.
    bytes: usize,
}

impl GelfFields {
    /// The GELF message for `msg`, borrowing its container's encoded fields.
    pub fn message<'a>(&'a mut self, msg: &'a Message) -> gelf::Message<'a> {
        let fields = self.fields(&msg.container);
        gelf::Message {
            host: &msg.container.host,
            short_message: &msg.line,
            timestamp_ns: msg.ts_ns,
            level: msg.severity(),
            fields,
            extra: match msg.stream {
                crate::message::Stream::Stdout => &[("_stream", "stdout")],
                crate::message::Stream::Stderr => &[("_stream", "stderr")],
            },
            truncated: msg.truncated,
        }
    }

    fn fields(&mut self, container: &Arc<Container>) -> &gelf::Fields {
        let fresh = self.by_id.get(&container.id).is_some_and(|(c, _)| Arc::ptr_eq(c, container));
        if !fresh {
            let fields = encode(container);
            let bytes = 2 * fields.len();
            if self.by_id.len() >= MAX_CONTAINERS || self.bytes + bytes > MAX_BYTES {
                self.by_id.clear();
                self.bytes = 0;
            }
            self.bytes += bytes;
            if let Some((_, old)) = self.by_id.insert(container.id.clone(), (Arc::clone(container), fields)) {
                self.bytes = self.bytes.saturating_sub(2 * old.len());
            }
        }
        &self.by_id[&container.id].1
    }
}

/// The fields Docker's own gelf log driver sends, so existing streams and dashboards keep working.
fn encode(c: &Container) -> gelf::Fields {
    let mut fields = gelf::Fields::new();
    let pairs = [
        ("_container_id", c.id.as_str()),
        ("_container_name", c.name.as_str()),
        ("_image_id", c.image_id.as_str()),
        ("_image_name", c.image_name.as_str()),
        ("_command", c.command.as_str()),
        ("_created", c.created.as_str()),
    ];
    // The standard names are fixed and valid, the others sanitised (crate::enrich::fields): a
    // failure here would be a bug caught by the tests.
    // A message relayed by `spout receive` may come from no container: it has none of these.
    let pairs = pairs.into_iter().filter(|(_, value)| !value.is_empty());
    for (name, value) in pairs.chain(c.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
        let _ = fields.push_str(name, value);
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Stream;

    fn msg(container: &Arc<Container>, stream: Stream) -> Message {
        Message {
            container: Arc::clone(container),
            stream,
            ts_ns: 1_500_000_000,
            line: "hi".into(),
            truncated: false,
            ack: None,
            level: None,
        }
    }

    #[test]
    fn every_field_of_dockers_gelf_driver() {
        let c = Arc::new(Container {
            host: "docker-1".into(),
            id: "a".repeat(64),
            name: "web".into(),
            image_id: "sha256:1".into(),
            image_name: "busybox".into(),
            command: "sh -c x".into(),
            created: "2026-11-29T20:30:25.1Z".into(),
            tty: false,
            fields: vec![("_ecs_cluster".into(), "production".into()), ("_service".into(), "web".into())],
            rejected_by: [0; 2],
            labels: Default::default(),
        });
        let mut cache = GelfFields::default();
        let m = msg(&c, Stream::Stderr);
        let v: serde_json::Value =
            serde_json::from_slice(gelf::Encoder::new().encode(&cache.message(&m))).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "version": "1.1", "host": "docker-1", "short_message": "hi", "timestamp": 1.5, "level": 3,
                "_container_id": "a".repeat(64), "_container_name": "web", "_image_id": "sha256:1",
                "_image_name": "busybox", "_command": "sh -c x", "_created": "2026-11-29T20:30:25.1Z",
                "_ecs_cluster": "production", "_service": "web", "_stream": "stderr",
            })
        );
        let names: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        let standard = names.iter().filter(|n| crate::enrich::fields::STANDARD.contains(&n.as_str()));
        assert_eq!(standard.count(), 7, "every standard field sent is one no container field may replace");
    }

    #[test]
    fn the_cache_holds_a_bounded_number_of_bytes_whatever_the_fields() {
        let mut cache = GelfFields::default();
        for n in 0..100 {
            let fields = vec![("_big".to_owned(), "x".repeat(1 << 20))];
            let c = Arc::new(Container { id: n.to_string(), fields, ..Default::default() });
            let m = msg(&c, Stream::Stdout);
            assert!(gelf::Encoder::new().encode(&cache.message(&m)).len() > 1 << 20);
            assert!(cache.bytes <= MAX_BYTES, "{} bytes after {n}", cache.bytes);
        }
        assert!(cache.by_id.len() < 10);
    }

    #[test]
    fn a_renamed_container_gets_new_fields() {
        let old = Arc::new(Container { name: "old".into(), ..Default::default() });
        let new = Arc::new(Container { name: "new".into(), ..Default::default() });
        let mut cache = GelfFields::default();
        let mut enc = gelf::Encoder::new();
        let (a, b) = (msg(&old, Stream::Stdout), msg(&new, Stream::Stdout));
        assert!(String::from_utf8_lossy(enc.encode(&cache.message(&a))).contains("\"old\""));
        assert!(String::from_utf8_lossy(enc.encode(&cache.message(&b))).contains("\"new\""));
    }
}
