//! Discovery: which containers exist and run, and one reader for each that should be read.
//!
//! Subscribes to the source's events (from a second before the list is taken, so nothing that
//! starts in between is missed), then lists the containers, and lists them again every 30 s to
//! catch whatever an event or a failed inspect missed. When the source goes away it reconnects
//! with backoff and lists again; it never gives up and never exits for the daemon.
//!
//! The loop itself never waits on the daemon: every request it needs (the lists, an inspect
//! after a rename or after a reader ended, the catch-up inspects) runs as a task of its own whose
//! answer comes back as a message. A slow daemon delays what needs its answer, never the start
//! events behind it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::context::{ExitReason, ReaderContext, ReaderExit};
use super::files::FilesSetup;
use super::reader;
use super::source::{Connect, Connected, ContainerInfo, ErrorClass, Event, EventKind, Listed, Source, SourceError};
use crate::backoff::Backoff;
use crate::checkpoint::Checkpoints;
use crate::containers::Board;
use crate::enrich::Enrichment;
use crate::health::DockerHealth;
use crate::message::Container;
use crate::position::Position;
use crate::router::Router;
use crate::stats::ReaderStats;
use crate::timestamp::now_ns;

/// Answers and events held for the watcher.
const ANSWER_QUEUE: usize = 4096;
/// How often every container is listed again, to catch what events and inspects missed.
const RELIST_EVERY: Duration = Duration::from_secs(30);
/// Inspects the watcher has under way at once; more wait for a turn in their own tasks.
const INSPECTS_AT_ONCE: usize = 16;
/// A container whose last run ended this long before the watermark, or later, may have written
/// what spout did not read: the two clocks (spout's, the daemon's) need not agree to the
/// millisecond.
const CLOCK_MARGIN_NS: i64 = 2_000_000_000;
/// Tries of an inspect that asks whether a container ran again.
const INSPECT_TRIES: u32 = 3;

pub struct WatcherConfig {
    /// `None`: the daemon's own host name.
    pub hostname: Option<String>,
    pub backlog: bool,
    pub max_line_bytes: usize,
    /// spout's own container, never read.
    pub own_id: Option<String>,
    pub enrichment: Arc<Enrichment>,
    /// How json-file logs are read, if at all.
    pub files: Arc<FilesSetup>,
}

/// What the watcher needs besides its configuration.
pub struct WatcherParts {
    pub connector: Arc<dyn Connect>,
    pub router: Router,
    pub checkpoints: Arc<Checkpoints>,
    /// Every container started before this time (ns) has been attached: saved as the time the
    /// next run reads containers without a checkpoint from.
    pub watermark: Arc<AtomicI64>,
    pub stats: Arc<ReaderStats>,
    /// What /containers shows.
    pub board: Arc<Board>,
    pub health: watch::Sender<DockerHealth>,
    pub cancel: CancellationToken,
}

/// Where a stopped container's reader got to, for when it runs again (checkpoints lag behind
/// this: they wait for the routes).
struct Stopped {
    position: Position,
    /// When the run it read started.
    started_ns: Option<i64>,
    /// When its reader ended (spout's clock): a list sent before that may not show it.
    at_ns: i64,
}

/// Why the watcher inspects a container.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// It was renamed: its messages carry the new name from now on.
    Rename,
    /// Its reader read a run that started at `since` to the end: did it run again since?
    RanAgain { since: Option<i64> },
    /// It is stopped, and spout has no position for it: did it run while spout was not watching?
    RanUnseen,
}

enum Answer {
    Event(Option<Result<Event, SourceError>>),
    Listed {
        listed_at: i64,
        catch_up: bool,
        result: Result<Vec<Listed>, SourceError>,
    },
    /// `catch_up`: one of the inspects the watermark waits for.
    Inspected {
        id: String,
        why: Why,
        catch_up: bool,
        result: Result<Box<ContainerInfo>, SourceError>,
    },
}

/// An answer, and the connection it belongs to: answers from a connection since lost are dropped.
struct Tagged {
    session: u64,
    answer: Answer,
}

struct Session {
    n: u64,
    source: Arc<dyn Source>,
    host: Arc<str>,
    /// The daemon's root directory, as it says.
    root_dir: Option<Arc<str>>,
    /// Cancels the connection's own tasks when it is over.
    cancel: CancellationToken,
}

/// The list taken on (re)connecting, until each of its stopped containers has been judged.
struct CatchUp {
    listed_at: i64,
    pending: usize,
}

pub struct Watcher {
    config: WatcherConfig,
    parts: WatcherParts,
    /// Containers already running when spout started are read from this moment on (unless
    /// backlog), and so is every container spout has no position for.
    started_ns: i64,
    readers: HashMap<String, watch::Sender<Arc<Container>>>,
    stopped: HashMap<String, Stopped>,
    /// Containers not to be read, as their readers found: opted out, spout's own, or with logs
    /// the daemon cannot return (warned about once). Left alone until they are removed; the
    /// value is when that was found (spout's clock).
    left_alone: HashMap<String, i64>,
    tracker: TaskTracker,
    exits_tx: mpsc::Sender<ReaderExit>,
    exits_rx: mpsc::Receiver<ReaderExit>,
    answers_tx: mpsc::Sender<Tagged>,
    answers_rx: mpsc::Receiver<Tagged>,
    sessions: u64,
    catch_up: Option<CatchUp>,
    inspect_slots: Arc<Semaphore>,
    /// Tells when routes come or go, across connections.
    route_changes: watch::Receiver<u64>,
}

impl Watcher {
    pub fn new(config: WatcherConfig, parts: WatcherParts) -> Self {
        let (exits_tx, exits_rx) = mpsc::channel(1024);
        let (answers_tx, answers_rx) = mpsc::channel(ANSWER_QUEUE);
        let route_changes = parts.router.changes();
        Watcher {
            config,
            parts,
            started_ns: now_ns(),
            readers: HashMap::new(),
            stopped: HashMap::new(),
            left_alone: HashMap::new(),
            tracker: TaskTracker::new(),
            exits_tx,
            exits_rx,
            answers_tx,
            answers_rx,
            sessions: 0,
            catch_up: None,
            inspect_slots: Arc::new(Semaphore::new(INSPECTS_AT_ONCE)),
            route_changes,
        }
    }

    /// Runs until cancelled, then waits for every reader to stop.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let cancel = self.parts.cancel.clone();
        let address = self.parts.connector.address();
        let mut failures: u64 = 0;
        while !cancel.is_cancelled() {
            let connected = tokio::select! {
                connected = self.parts.connector.connect() => connected,
                () = cancel.cancelled() => break,
            };
            let reason = match connected {
                Ok(connected) => match self.serve(connected).await {
                    Ok(()) => break,
                    Err(reason) => {
                        warn!(docker = %address, error = %reason, "lost the Docker daemon, reconnecting");
                        backoff.reset();
                        failures = 0;
                        reason
                    }
                },
                Err(e) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        warn!(docker = %address, error = %e, attempts = failures, "cannot reach the Docker daemon, retrying");
                    }
                    e.message
                }
            };
            self.parts.health.send_modify(|h| *h = h.next(false, Some(reason)));
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = cancel.cancelled() => break,
            }
        }
        self.tracker.close();
        // Readers report on exit; keep taking their reports so none waits on a full channel.
        let tracker = self.tracker.clone();
        let drain = async { while self.exits_rx.recv().await.is_some() {} };
        tokio::select! {
            () = tracker.wait() => {}
            () = drain => {}
        }
    }

    /// One connection to the source, until it is lost (`Err` with the reason) or spout stops.
    async fn serve(&mut self, connected: Connected) -> Result<(), String> {
        if self.sessions > 0 {
            self.parts.stats.docker_reconnects.add(1);
        }
        self.sessions += 1;
        let host: Arc<str> = match &self.config.hostname {
            Some(name) => name.as_str().into(),
            None => connected.host_name.into(),
        };
        let session = Session {
            n: self.sessions,
            source: connected.source,
            host,
            root_dir: connected.root_dir.map(Arc::from),
            cancel: self.parts.cancel.child_token(),
        };
        let _stop_tasks = session.cancel.clone().drop_guard();
        self.catch_up = None;
        self.spawn_events(&session);
        self.spawn_list(&session, true);
        let mut relist = tokio::time::interval_at(tokio::time::Instant::now() + RELIST_EVERY, RELIST_EVERY);
        // Routes may have changed while there was no connection.
        self.rejudge();
        loop {
            tokio::select! {
                Ok(()) = self.route_changes.changed() => self.rejudge(),
                Some(tagged) = self.answers_rx.recv() => {
                    if tagged.session == session.n {
                        self.answer(&session, tagged.answer)?;
                    }
                }
                Some(exit) = self.exits_rx.recv() => self.reader_exited(&session, exit),
                _ = relist.tick() => self.spawn_list(&session, false),
                () = self.parts.cancel.cancelled() => return Ok(()),
            }
        }
    }

    /// Routes came or went: every container's decisions are made again (from the metadata its
    /// messages carry; no inspect needed), and its next messages follow them.
    fn rejudge(&self) {
        for meta in self.readers.values() {
            meta.send_modify(|c| {
                let rejected_by = self.parts.router.rejected_by(c);
                if rejected_by != c.rejected_by {
                    *c = Arc::new(crate::message::Container { rejected_by, ..(**c).clone() });
                }
            });
        }
    }

    fn answer(&mut self, session: &Session, answer: Answer) -> Result<(), String> {
        match answer {
            Answer::Event(Some(Ok(event))) => self.event(session, event),
            Answer::Event(Some(Err(e))) => return Err(e.message),
            Answer::Event(None) => return Err("the events stream ended".to_owned()),
            Answer::Listed { result: Err(e), .. } => return Err(e.message),
            Answer::Listed { listed_at, catch_up, result: Ok(all) } => {
                self.listed(session, all, listed_at, catch_up);
                if catch_up {
                    info!(readers = self.readers.len(), "connected to Docker");
                    self.parts.health.send_modify(|h| *h = h.next(true, None));
                }
            }
            Answer::Inspected { id, why, catch_up, result } => {
                self.inspected(session, &id, why, result);
                if catch_up {
                    self.judged_one();
                }
            }
        }
        Ok(())
    }

    fn event(&mut self, session: &Session, event: Event) {
        let id = event.id;
        match event.kind {
            // A container with a reader that starts again is read again once its reader is done
            // with the run before (see `reader_exited`).
            EventKind::Start => self.attach(session, &id, true),
            EventKind::Rename => {
                if self.readers.contains_key(&id) {
                    self.spawn_inspect(session, &id, Why::Rename, false);
                }
            }
            EventKind::Destroy => {
                self.parts.board.remove(&id);
                self.stopped.remove(&id);
                self.left_alone.remove(&id);
                self.parts.checkpoints.forget(&id);
            }
        }
    }

    /// Attaches to running containers that have no reader (whatever an event or a failed inspect
    /// missed), and forgets what is kept for containers that no longer exist. Right after
    /// (re)connecting (`catch_up`) it also looks at every stopped container for what ran while
    /// spout was not watching. The watermark moves to the list's time once every container in it
    /// has been attached or judged.
    fn listed(&mut self, session: &Session, all: Vec<Listed>, listed_at: i64, catch_up: bool) {
        let mut existing = HashSet::with_capacity(all.len());
        let mut pending = 0;
        for Listed { id, running } in all {
            let known = self.readers.contains_key(&id) || self.left_alone.contains_key(&id);
            if running {
                self.attach(session, &id, true);
            } else if catch_up && !known {
                if let Some(stopped) = self.stopped.get(&id) {
                    // Read by this process before the connection was lost: did it run since?
                    let why = Why::RanAgain { since: stopped.started_ns };
                    self.spawn_inspect(session, &id, why, true);
                    pending += 1;
                } else if self.parts.checkpoints.saved(&id).is_some() {
                    // Read by an earlier spout: whatever it wrote after the checkpoint is unread.
                    self.attach(session, &id, false);
                } else {
                    self.spawn_inspect(session, &id, Why::RanUnseen, true);
                    pending += 1;
                }
            }
            existing.insert(id);
        }
        // What the list does not show is gone, unless it came after the list was asked for: a
        // container that started meanwhile has a reader, or has had one since.
        self.stopped.retain(|id, s| existing.contains(id) || s.at_ns >= listed_at);
        self.left_alone.retain(|id, at| existing.contains(id) || *at >= listed_at);
        existing.extend(self.readers.keys().cloned());
        existing.extend(self.stopped.keys().cloned());
        existing.extend(self.left_alone.keys().cloned());
        self.parts.checkpoints.retain(&existing);
        self.parts.board.retain(&existing);
        if catch_up && pending > 0 {
            self.catch_up = Some(CatchUp { listed_at, pending });
        }
        if self.catch_up.is_none() {
            self.parts.watermark.fetch_max(listed_at, Ordering::AcqRel);
        }
    }

    fn inspected(&mut self, session: &Session, id: &str, why: Why, result: Result<Box<ContainerInfo>, SourceError>) {
        match (why, result) {
            (Why::Rename, Ok(info)) => {
                if let Some(meta) = self.readers.get(id) {
                    info!(container = %id, name = %info.meta.name, "container renamed");
                    meta.send_replace(super::describe(
                        &self.config.enrichment,
                        &self.parts.router,
                        &info,
                        &session.host,
                    ));
                }
            }
            (Why::Rename, Err(e)) => debug!(container = %id, error = %e, "cannot inspect a renamed container"),
            (Why::RanAgain { since }, Ok(info)) => {
                if info.running || info.started_ns > since {
                    self.attach(session, id, info.running);
                }
            }
            (Why::RanUnseen, Ok(info)) => {
                let watermark = self.parts.watermark.load(Ordering::Acquire);
                if info.running || info.finished_ns.is_some_and(|f| f >= watermark - CLOCK_MARGIN_NS) {
                    self.attach(session, id, info.running);
                }
            }
            (_, Err(e)) if e.class == ErrorClass::Gone => {
                self.stopped.remove(id);
                self.parts.checkpoints.forget(id);
            }
            // Cannot tell whether it ran: read it, which costs a request and ships only what is
            // new after its position.
            (Why::RanUnseen, Err(_)) => self.attach(session, id, false),
            // Running after all? The next list attaches it.
            (Why::RanAgain { .. }, Err(e)) => debug!(container = %id, error = %e, "cannot inspect a stopped container"),
        }
    }

    /// One more stopped container of the catch-up list judged.
    fn judged_one(&mut self) {
        if let Some(catch_up) = &mut self.catch_up {
            catch_up.pending = catch_up.pending.saturating_sub(1);
            if catch_up.pending == 0 {
                self.parts.watermark.fetch_max(catch_up.listed_at, Ordering::AcqRel);
                self.catch_up = None;
            }
        }
    }

    /// Starts a reader for `id` unless it has one or is left alone. The reader inspects the
    /// container itself, while its first stream opens: waiting for the inspect here would delay
    /// every container behind this one, and the daemon answers it only once it is done with a
    /// container that exited (about 80 ms), when a `--rm` container may already be gone.
    /// `running` is what the caller last saw.
    fn attach(&mut self, session: &Session, id: &str, running: bool) {
        if id.is_empty() || self.readers.contains_key(id) || self.left_alone.contains_key(id) {
            return;
        }
        let checkpoints = &self.parts.checkpoints;
        // Where this process left it, else where an earlier spout left it; else everything since
        // an earlier spout was last alive (it started while spout was stopped), or since this
        // one started, or (backlog) its whole history.
        let from = match self.stopped.remove(id).map(|s| s.position).or_else(|| checkpoints.saved(id)) {
            Some(pos) => pos,
            None if self.config.backlog => Position::START,
            None => Position::from_time(checkpoints.previous_run().unwrap_or(self.started_ns)),
        };
        let progress = checkpoints.progress(id, self.parts.router.retired(), from);
        debug!(container = %id, ?from, "attaching");
        // Until the reader's inspect answers, the container is known by its id alone.
        let placeholder = Container { host: Arc::clone(&session.host), id: id.to_owned(), ..Container::default() };
        let (meta, _) = watch::channel(Arc::new(placeholder));
        self.readers.insert(id.to_owned(), meta.clone());
        self.parts.stats.attached.store(self.readers.len(), Ordering::Relaxed);
        let ctx = ReaderContext {
            source: Arc::clone(&session.source),
            host: Arc::clone(&session.host),
            own_id: self.config.own_id.as_deref().map(Arc::from),
            enrichment: Arc::clone(&self.config.enrichment),
            router: self.parts.router.clone(),
            stats: Arc::clone(&self.parts.stats),
            max_line_bytes: self.config.max_line_bytes,
            cancel: self.parts.cancel.child_token(),
            exits: self.exits_tx.clone(),
            files: Arc::clone(&self.config.files),
            root_dir: session.root_dir.clone(),
        };
        let tracked = self.parts.board.attach(id, meta.subscribe(), progress);
        self.tracker.spawn(reader::run(ctx, id.to_owned(), meta, tracked, from, running));
    }

    fn reader_exited(&mut self, session: &Session, exit: ReaderExit) {
        self.readers.remove(&exit.id);
        self.parts.stats.attached.store(self.readers.len(), Ordering::Relaxed);
        match exit.reason {
            ExitReason::Stopped => {
                // It may have run again meanwhile, even briefly: its start event found the reader
                // still busy with the run before. The daemon's own start time says.
                let since = exit.started_ns;
                let stopped = Stopped { position: exit.position, started_ns: since, at_ns: now_ns() };
                self.stopped.insert(exit.id.clone(), stopped);
                self.spawn_inspect(session, &exit.id, Why::RanAgain { since }, false);
            }
            ExitReason::Unreadable | ExitReason::Skipped => {
                self.parts.checkpoints.forget(&exit.id);
                self.left_alone.insert(exit.id, now_ns());
            }
            ExitReason::Gone => {
                self.stopped.remove(&exit.id);
                self.parts.board.remove(&exit.id);
            }
            ExitReason::Shutdown => {
                self.stopped.remove(&exit.id);
            }
        }
    }

    /// Reads the source's events into the answers until the stream fails or ends.
    fn spawn_events(&self, session: &Session) {
        // From a second before the list, so that a container starting in between is seen either
        // way; a task of its own reads them, so the daemon never finds spout a slow subscriber.
        let mut events = session.source.events(now_ns() / 1_000_000_000 - 1);
        let (tx, n, cancel) = (self.answers_tx.clone(), session.n, session.cancel.clone());
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    item = events.next() => item,
                    () = cancel.cancelled() => return,
                };
                let last = !matches!(item, Some(Ok(_)));
                let sent = tokio::select! {
                    sent = tx.send(Tagged { session: n, answer: Answer::Event(item) }) => sent.is_ok(),
                    () = cancel.cancelled() => false,
                };
                if !sent || last {
                    return;
                }
            }
        });
    }

    fn spawn_list(&self, session: &Session, catch_up: bool) {
        let listed_at = now_ns();
        let list = session.source.list();
        self.spawn_request(session, async move { Answer::Listed { listed_at, catch_up, result: list.await } });
    }

    fn spawn_inspect(&self, session: &Session, id: &str, why: Why, catch_up: bool) {
        let (source, slots, id) = (Arc::clone(&session.source), Arc::clone(&self.inspect_slots), id.to_owned());
        self.spawn_request(session, async move {
            let _slot = slots.acquire().await;
            let mut tries = 0;
            let result = loop {
                tries += 1;
                let result = source.inspect(&id).await.map(Box::new);
                let retry = matches!(why, Why::RanAgain { .. })
                    && tries < INSPECT_TRIES
                    && result.as_ref().is_err_and(|e| e.class == ErrorClass::Transient);
                if !retry {
                    break result;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            Answer::Inspected { id, why, catch_up, result }
        });
    }

    /// Runs a request to the daemon as a task of its own; its answer comes back as a message
    /// (unless the connection it belongs to is over by then).
    fn spawn_request(&self, session: &Session, request: impl Future<Output = Answer> + Send + 'static) {
        let (tx, n, cancel) = (self.answers_tx.clone(), session.n, session.cancel.clone());
        tokio::spawn(async move {
            tokio::select! {
                answer = request => {
                    let _ = tx.send(Tagged { session: n, answer }).await;
                }
                () = cancel.cancelled() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::scripted::{self as s, Scripted, Step};
    use crate::router::RouteQueue;
    use crate::router::WhenFull;

    struct Running {
        task: tokio::task::JoinHandle<()>,
        cancel: CancellationToken,
        watermark: Arc<AtomicI64>,
        _state: tempfile::TempDir,
        _queue: mpsc::Receiver<crate::message::Messages>,
    }

    impl Running {
        async fn stop(self) {
            self.cancel.cancel();
            self.task.await.expect("watcher task");
        }
    }

    fn start(source: &Scripted) -> Running {
        let state = tempfile::tempdir().expect("tempdir");
        let checkpoints = Arc::new(Checkpoints::open(state.path()).expect("checkpoints"));
        let (queue, rx) = RouteQueue::for_tests(WhenFull::Block, 100_000);
        let cancel = CancellationToken::new();
        let watermark = Arc::new(AtomicI64::new(now_ns()));
        let (health, _) = watch::channel(DockerHealth::starting());
        let watcher = Watcher::new(
            WatcherConfig {
                hostname: None,
                backlog: false,
                max_line_bytes: 1 << 20,
                own_id: None,
                enrichment: Arc::default(),
                files: Arc::new(FilesSetup {
                    mode: crate::docker::files::SourceMode::Api,
                    notifier: None,
                    warned: Default::default(),
                }),
            },
            WatcherParts {
                connector: Arc::new(source.clone()),
                router: Router::new(vec![queue]),
                checkpoints,
                watermark: Arc::clone(&watermark),
                stats: Arc::default(),
                board: Arc::new(crate::containers::Board::default()),
                health,
                cancel: cancel.clone(),
            },
        );
        Running { task: tokio::spawn(watcher.run()), cancel, watermark, _state: state, _queue: rx }
    }

    /// Lets the watcher work (time is paused and jumps ahead whenever everything waits) until
    /// `done` holds of the source's journal.
    async fn until(source: &Scripted, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        for _ in 0..10_000 {
            let journal = source.journal();
            if done(&journal) {
                return journal;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never happened; journal: {:#?}", source.journal());
    }

    fn at(journal: &[String], entry: &str) -> usize {
        journal.iter().position(|j| j == entry).unwrap_or_else(|| panic!("no {entry:?} in {journal:#?}"))
    }

    fn count(journal: &[String], entry: &str) -> usize {
        journal.iter().filter(|j| *j == entry).count()
    }

    fn start_event(id: &str) -> Result<Event, SourceError> {
        Ok(Event { kind: EventKind::Start, id: id.into() })
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_started_while_the_list_is_slow_is_read_at_once_and_once() {
        let source = Scripted::default();
        let listed = vec![Listed { id: "a".into(), running: true }, Listed { id: "b".into(), running: true }];
        source.list(Duration::from_secs(5), listed);
        for id in ["a", "b"] {
            source.inspect(id, s::running(id)).logs(id, vec![Step::Hang]);
        }
        let events = source.events();
        let running = start(&source);
        events.send(start_event("b")).expect("send");
        let journal = until(&source, |j| j.iter().any(|e| e == "logs a follow=true")).await;
        assert!(at(&journal, "logs b follow=true") < at(&journal, "listed"), "b is read before the list answers");
        assert_eq!(count(&journal, "logs b follow=true"), 1, "and not a second time when the list shows it");
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_inspect_does_not_hold_back_the_start_events_behind_it() {
        let source = Scripted::default();
        source.list(Duration::ZERO, vec![Listed { id: "a".into(), running: true }]);
        // The reader's own inspect, then the one after a rename, which takes ten seconds.
        source.inspect("a", s::running("a"));
        source.inspect("a", s::Inspect { delay: Duration::from_secs(10), answer: Ok(s::info("a", true)) });
        source.inspect("b", s::running("b"));
        source.logs("a", vec![Step::Hang]).logs("b", vec![Step::Hang]);
        let events = source.events();
        let running = start(&source);
        until(&source, |j| j.iter().any(|e| e == "inspected a")).await;
        events.send(Ok(Event { kind: EventKind::Rename, id: "a".into() })).expect("send");
        events.send(start_event("b")).expect("send");
        let journal = until(&source, |j| count(j, "inspected a") == 2).await;
        let renamed = journal.iter().rposition(|e| e == "inspected a").unwrap_or(0);
        assert!(at(&journal, "logs b follow=true") < renamed, "b is read while a's inspect is under way: {journal:#?}");
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn on_start_a_stopped_container_is_read_only_if_it_ran_while_spout_was_not_watching() {
        let source = Scripted::default();
        let listed = ["ran", "idle"].map(|id| Listed { id: id.into(), running: false }).to_vec();
        source.list(Duration::ZERO, listed);
        let mut ran = s::info("ran", false);
        ran.finished_ns = Some(now_ns() + 1_000_000_000);
        let mut idle = s::info("idle", false);
        idle.finished_ns = Some(now_ns() - 3600 * 1_000_000_000);
        for (id, info) in [("ran", ran), ("idle", idle)] {
            source.inspect(id, s::Inspect { delay: Duration::from_millis(50), answer: Ok(info) });
            source.logs(id, Vec::new());
        }
        let running = start(&source);
        let before = running.watermark.load(Ordering::Acquire);
        let journal = until(&source, |j| j.iter().any(|e| e == "logs ran follow=false")).await;
        assert!(!journal.iter().any(|e| e.starts_with("logs idle")), "{journal:#?}");
        until(&source, |_| running.watermark.load(Ordering::Acquire) > before).await;
        running.stop().await;
    }
}
