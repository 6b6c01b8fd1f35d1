//! The one type that crosses module boundaries: a line of a container's output, with who wrote
//! it. Format-neutral: codecs decide how it looks on the wire.

use std::sync::Arc;

/// A container's identity and metadata, built once per container (and again on rename) and
/// shared by every message it writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// The Docker host the container runs on, as messages name it.
    pub host: std::sync::Arc<str>,
    /// 64 hex digits.
    pub id: String,
    /// Without Docker's leading '/'.
    pub name: String,
    /// `sha256:…`
    pub image_id: String,
    /// The image as the container was started with it, e.g. `nginx:1.27`.
    pub image_name: String,
    /// Entrypoint and arguments joined by spaces, as Docker's gelf driver writes it.
    pub command: String,
    /// Creation time as the daemon reports it (RFC 3339).
    pub created: String,
    pub tty: bool,
    /// Additional fields, named with their leading `_`, sorted by name ([`crate::enrich`]).
    pub fields: Vec<(String, String)>,
    /// The container's labels, as inspected: for enrichment, and for filters decided later (a
    /// route's added while spout runs, a live tail's).
    pub labels: std::collections::HashMap<String, String>,
    /// By stream number, the routes whose filter rejects this container's messages: bit `n` is
    /// route `n`.
    pub rejected_by: [u64; 2],
}

impl Container {
    /// The routes (bit `n`: route `n`) that do not want the container's lines on `stream`.
    pub fn rejecting(&self, stream: Stream) -> u64 {
        self.rejected_by[stream as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    /// The stream numbered `n` (0: stdout, 1: stderr), as `Stream as usize` numbers them.
    pub fn from_index(n: usize) -> Stream {
        if n == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line, whole: split pieces merged, terminator stripped, text valid UTF-8.
#[derive(Debug, Clone)]
pub struct Message {
    pub container: Arc<Container>,
    pub stream: Stream,
    /// Docker's own timestamp for the line, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    pub line: String,
    /// The line was longer than the configured cap and was cut.
    pub truncated: bool,
    /// Tells the container's checkpoint when a route has accepted this message.
    pub ack: Option<crate::checkpoint::Ack>,
    /// The severity it came with (syslog's numbers, as GELF's `level`), for a message `spout
    /// receive` relays; a container's line has none, and its stream tells (see [`Message::severity`]).
    pub level: Option<u8>,
}

/// Messages travel from a reader to the routes in batches: one hand-off (and one wake-up of each
/// route) per read from the daemon, not one per line. Queues are still counted in messages.
pub type Messages = Arc<[Message]>;

impl Message {
    /// Its severity in syslog's numbers: as it came, else informational (6) for stdout and
    /// error (3) for stderr.
    pub fn severity(&self) -> u8 {
        self.level.unwrap_or(match self.stream {
            Stream::Stdout => 6,
            Stream::Stderr => 3,
        })
    }

    /// Route number `route` has accepted this message: it no longer needs reading again.
    pub fn accept(&self, route: usize) {
        if let Some(ack) = &self.ack {
            ack.accept(route);
        }
    }
}

impl Message {
    /// A stdout line of an unnamed container, with no acknowledgement: for tests.
    #[cfg(test)]
    pub(crate) fn test(line: &str) -> Message {
        Message {
            container: Arc::new(Container::default()),
            stream: Stream::Stdout,
            ts_ns: 1,
            line: line.into(),
            truncated: false,
            ack: None,
            level: None,
        }
    }

    /// A test message numbered on `progress`, to be read again from `resume`.
    #[cfg(test)]
    pub(crate) fn test_numbered(
        line: &str,
        progress: &Arc<crate::checkpoint::Progress>,
        resume: crate::position::Position,
    ) -> Message {
        let ack = crate::checkpoint::Ack { progress: Arc::clone(progress), seq: progress.ship(resume, 0, 1) };
        Message { ack: Some(ack), ..Message::test(line) }
    }
}
