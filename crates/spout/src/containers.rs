//! What spout is doing with each container it knows, for `GET /containers` and `spout status`:
//! the watcher enters and removes containers, each reader keeps its own entry up to date (a few
//! atomic stores per batch, never per line), and a report is put together when asked for.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::watch;

use crate::checkpoint::Progress;
use crate::message::{Container, Stream};
use crate::position::Position;
use crate::slots::route_bit;
use crate::stats::Counter;
use crate::timestamp::format_rfc3339_ns;

/// One container, as its reader and the watcher keep it.
pub struct Tracked {
    meta: watch::Receiver<Arc<Container>>,
    progress: Arc<Progress>,
    pub lines: Counter,
    pub bytes: Counter,
    /// Docker's timestamp of the newest line shipped (`i64::MIN`: none yet).
    last_read_ns: AtomicI64,
    /// The reader waits for room in a route's queue.
    waiting: AtomicBool,
    /// Where its reader reads it from: `api` or `files`.
    source: Mutex<Option<&'static str>>,
    ended: Mutex<Option<Ended>>,
}

/// Why a container is no longer read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It stopped, and its log was read to the end.
    Stopped,
    /// Not read at all, and why.
    LeftAlone(String),
}

impl Tracked {
    /// The container's delivery progress.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// The reader shipped `lines` lines of `bytes` bytes, the newest stamped `newest_ns`.
    pub fn shipped(&self, lines: u64, bytes: u64, newest_ns: i64) {
        self.lines.add(lines);
        self.bytes.add(bytes);
        self.last_read_ns.fetch_max(newest_ns, Ordering::Relaxed);
    }

    /// The reader waits (or no longer waits) for room in a route's queue.
    pub fn waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::Relaxed);
    }

    /// Its reader reads it from `source` (`api` or `files`).
    pub fn reading_from(&self, source: &'static str) {
        *self.source.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(source);
    }

    pub fn ended(&self, why: Ended) {
        *self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
    }
}

/// Every container spout knows.
#[derive(Default)]
pub struct Board {
    known: Mutex<HashMap<String, Arc<Tracked>>>,
}

/// One container in a report.
#[derive(Debug, Serialize)]
pub struct ContainerReport {
    pub id: String,
    pub name: String,
    pub image: String,
    /// `reading`, `caught_up`, `waiting_for_route`, `stopped` or `left_alone`.
    pub state: &'static str,
    /// Why it is left alone.
    pub reason: Option<String>,
    /// Where it is read from: `files` (its json-file log) or `api` (the Docker API); `null`
    /// until its reader knows.
    pub source: Option<&'static str>,
    pub lines_shipped: u64,
    pub bytes_shipped: u64,
    /// Docker's timestamp of the newest line read and shipped.
    pub last_read: Option<String>,
    /// Docker's timestamp of the newest line every route has accepted (as of the last
    /// checkpoint, every `--checkpoint-interval`).
    pub last_accepted: Option<String>,
    /// Where a restart would resume: the position of the last entry accepted everywhere.
    pub checkpoint: Option<CheckpointReport>,
    /// The routes its lines go to (their filters want them).
    pub routes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckpointReport {
    /// Docker's timestamp of the entry.
    pub time: String,
    /// Read through the API: which of the entries with that timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Read from its json-file: the bytes of the file consumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl CheckpointReport {
    fn of(position: Position) -> Option<Self> {
        let time = format_rfc3339_ns(position.ts_ns()?);
        Some(match position {
            Position::Api(p) => CheckpointReport { time, count: Some(p.count), offset: None },
            Position::File(p) => CheckpointReport { time, count: None, offset: Some(p.offset) },
        })
    }
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Tracked>>> {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A reader starts on container `id`: its entry, carrying on the counts of an earlier run.
    pub fn attach(&self, id: &str, meta: watch::Receiver<Arc<Container>>, progress: Arc<Progress>) -> Arc<Tracked> {
        let mut known = self.lock();
        let tracked = Arc::new(Tracked {
            meta,
            progress,
            lines: Counter::default(),
            bytes: Counter::default(),
            last_read_ns: AtomicI64::new(i64::MIN),
            waiting: AtomicBool::new(false),
            source: Mutex::new(None),
            ended: Mutex::new(None),
        });
        if let Some(earlier) = known.get(id) {
            let last_read = earlier.last_read_ns.load(Ordering::Relaxed);
            tracked.shipped(earlier.lines.get(), earlier.bytes.get(), last_read);
        }
        known.insert(id.to_owned(), Arc::clone(&tracked));
        tracked
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Forgets every container but those in `existing`.
    pub fn retain(&self, existing: &HashSet<String>) {
        self.lock().retain(|id, _| existing.contains(id));
    }

    /// Every container, by name.
    /// `routes`: the routes' slots and URIs.
    pub fn report(&self, routes: &[(usize, Arc<str>)]) -> Vec<ContainerReport> {
        let known: Vec<(String, Arc<Tracked>)> =
            self.lock().iter().map(|(id, t)| (id.clone(), Arc::clone(t))).collect();
        let mut report: Vec<ContainerReport> = known.into_iter().map(|(id, t)| one(id, &t, routes)).collect();
        report.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        report
    }
}

fn one(id: String, t: &Tracked, route_names: &[(usize, Arc<str>)]) -> ContainerReport {
    let meta = Arc::clone(&t.meta.borrow());
    let ended = t.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let (state, reason) = match ended {
        Some(Ended::Stopped) => ("stopped", None),
        Some(Ended::LeftAlone(why)) => ("left_alone", Some(why)),
        None if t.waiting.load(Ordering::Relaxed) => ("waiting_for_route", None),
        None if t.progress.oldest_unaccepted_ns().is_none() => ("caught_up", None),
        None => ("reading", None),
    };
    let (checkpoint, accepted_ns) = t.progress.settled();
    let rejected_everywhere = meta.rejecting(Stream::Stdout) & meta.rejecting(Stream::Stderr);
    let routes = route_names
        .iter()
        .filter(|(n, _)| rejected_everywhere & route_bit(*n) == 0)
        .map(|(_, name)| name.to_string())
        .collect();
    let last_read = t.last_read_ns.load(Ordering::Relaxed);
    ContainerReport {
        name: if meta.name.is_empty() { id.clone() } else { meta.name.clone() },
        id,
        image: meta.image_name.clone(),
        state,
        reason,
        source: *t.source.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        lines_shipped: t.lines.get(),
        bytes_shipped: t.bytes.get(),
        last_read: (last_read != i64::MIN).then(|| format_rfc3339_ns(last_read)),
        last_accepted: accepted_ns.map(format_rfc3339_ns),
        checkpoint: checkpoint.and_then(CheckpointReport::of),
        routes,
    }
}
