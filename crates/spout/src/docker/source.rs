//! The seam between where a container's log entries come from and shipping them.
//!
//! The watcher and the readers speak to a [`Source`]: list the containers, follow the events,
//! inspect one container, stream one container's log as raw bytes. [`super::api`] implements it
//! over the Docker Engine API; the tests implement it with scripted answers, so the readers'
//! protocol (streams that end early, re-sends, containers that vanish) is tested without a
//! daemon. Numbering, merging and positions stay with the reader, whatever the source.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use crate::message::Container;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// How a failed request is to be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The container no longer exists.
    Gone,
    /// The container's log driver cannot be read back through the API.
    Unreadable,
    /// Anything else: try again later.
    Transient,
}

/// A request that failed, in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub class: ErrorClass,
    pub message: String,
}

impl SourceError {
    pub fn transient(message: impl Into<String>) -> Self {
        SourceError { class: ErrorClass::Transient, message: message.into() }
    }

    pub fn gone(message: impl Into<String>) -> Self {
        SourceError { class: ErrorClass::Gone, message: message.into() }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourceError {}

/// A container as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub running: bool,
}

/// What one inspect says about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Identity and metadata as messages carry them, but for `host`: the name messages give the
    /// host is not the source's to say.
    pub meta: Container,
    pub running: bool,
    /// When its latest run started and ended (ns since the epoch), if it ever did.
    pub started_ns: Option<i64>,
    pub finished_ns: Option<i64>,
    /// `KEY=VALUE`, as the container was started.
    pub env: Vec<String>,
    pub log_driver: Option<String>,
    /// The log driver's options (`max-size`, `max-file`, …), the daemon's defaults merged in.
    pub log_opts: HashMap<String, String>,
    /// Where a json-file log is (inspect's `LogPath`), on the daemon's host.
    pub log_path: Option<String>,
}

/// The container events the watcher acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Started, or restarted.
    Start,
    Rename,
    Destroy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub id: String,
}

/// Which part of a container's log to stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogsRequest {
    /// Keep the stream open for what the container writes next.
    pub follow: bool,
    /// Entries stamped at or after this time, in nanoseconds since the epoch (0: the whole log).
    pub since_ns: i64,
}

/// Where containers and their logs come from.
pub trait Source: Send + Sync {
    /// Every container, running or not.
    fn list(&self) -> BoxFuture<Result<Vec<Listed>, SourceError>>;

    /// Container events from `since_secs` on, until the stream fails or ends.
    fn events(&self, since_secs: i64) -> BoxStream<Result<Event, SourceError>>;

    fn inspect(&self, id: &str) -> BoxFuture<Result<ContainerInfo, SourceError>>;

    /// A container's log with timestamps, as the daemon sends it: multiplexed frames for an
    /// ordinary container, the raw stream for a TTY one ([`super::frames`] reads both).
    fn logs(&self, id: &str, request: LogsRequest) -> BoxStream<Result<Bytes, SourceError>>;
}

/// A source reached, the host name it reports, and where it keeps containers' files.
pub struct Connected {
    pub source: Arc<dyn Source>,
    pub host_name: String,
    /// The daemon's root directory (`/var/lib/docker`), if it says.
    pub root_dir: Option<String>,
}

/// Reaches a source: once at start, and again whenever it was lost.
pub trait Connect: Send + Sync {
    /// Where it connects, for messages about it.
    fn address(&self) -> String;

    fn connect(&self) -> BoxFuture<Result<Connected, SourceError>>;
}
