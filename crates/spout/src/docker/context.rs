//! What every reader shares, and what it reports when it ends.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::files::FilesSetup;
use super::source::Source;
use crate::enrich::Enrichment;
use crate::position::Position;
use crate::router::Router;
use crate::stats::ReaderStats;

/// What every reader shares.
#[derive(Clone)]
pub struct ReaderContext {
    pub source: Arc<dyn Source>,
    /// The host name messages carry.
    pub host: Arc<str>,
    /// spout's own container, never read.
    pub own_id: Option<Arc<str>>,
    /// What to make of a container: whether to read it, its fields, its routes, its joining.
    pub enrichment: Arc<Enrichment>,
    pub router: Router,
    pub stats: Arc<ReaderStats>,
    pub max_line_bytes: usize,
    pub cancel: CancellationToken,
    pub exits: mpsc::Sender<ReaderExit>,
    /// How json-file logs are read, if at all.
    pub files: Arc<FilesSetup>,
    /// The daemon's root directory: where a container's json-file log is, before its inspect says.
    pub root_dir: Option<Arc<str>>,
}

/// Why a reader ended, and where it got to.
#[derive(Debug, Clone)]
pub struct ReaderExit {
    pub id: String,
    pub position: Position,
    pub reason: ExitReason,
    /// When the last run the reader saw started (the daemon's clock): a later start means the
    /// container ran again.
    pub started_ns: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// The container stopped and its log was read to the end.
    Stopped,
    /// The container is not to be read: opted out, or spout's own.
    Skipped,
    /// The container was removed.
    Gone,
    /// The daemon cannot return this container's logs.
    Unreadable,
    /// spout is shutting down, or no route is left.
    Shutdown,
}
