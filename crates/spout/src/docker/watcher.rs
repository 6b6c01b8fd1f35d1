//! Discovery: which containers exist and run, and one reader for each that should be read.
//!
//! Subscribes to the daemon's events (from a second before the list is taken, so nothing that
//! starts in between is missed), then lists the containers, and lists them again every 30 s to
//! catch whatever an event or a failed inspect missed. When the daemon goes away it reconnects
//! with backoff and lists again; it never gives up and never exits for the daemon.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerSummaryStateEnum, EventMessage};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::{debug, info, warn};

use super::reader::{self, ExitReason, ReaderContext, ReaderExit};
use super::{classify, connect, inspected, ErrorClass};
use crate::backoff::Backoff;
use crate::checkpoint::Checkpoints;
use crate::config::DockerHost;
use crate::message::Container;
use crate::position::Position;
use crate::router::Router;
use crate::stats::ReaderStats;
use crate::timestamp::now_ns;

/// Events held between the task reading them and the watcher.
const EVENT_QUEUE: usize = 4096;
/// How often every container is listed again, to catch what events and inspects missed.
const RELIST_EVERY: Duration = Duration::from_secs(30);

/// Whether spout is connected to the daemon's events, as /health reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Connected,
    Disconnected(String),
}

pub struct WatcherConfig {
    pub docker_host: DockerHost,
    /// `None`: the daemon's own host name.
    pub hostname: Option<String>,
    pub backlog: bool,
    pub max_line_bytes: usize,
    /// spout's own container, never read.
    pub own_id: Option<String>,
}

pub struct Watcher {
    config: WatcherConfig,
    router: Router,
    checkpoints: Arc<Checkpoints>,
    stats: Arc<ReaderStats>,
    health: watch::Sender<Health>,
    cancel: CancellationToken,
    /// Containers already running when spout started are read from this moment on (unless
    /// backlog), and so is every container spout has no position for.
    started_ns: i64,
    /// Every container started before this time (ns) has been attached: saved as the time the
    /// next run reads containers without a checkpoint from.
    watermark: Arc<AtomicI64>,
    readers: HashMap<String, watch::Sender<Arc<Container>>>,
    /// Where stopped containers' readers got to, for when they start again (checkpoints lag
    /// behind this: they wait for the routes).
    positions: HashMap<String, Position>,
    /// Containers that started again while their reader was still running.
    restarted: HashSet<String>,
    /// Containers not to be read, as their readers found: opted out, spout's own, or with logs
    /// the daemon cannot return (warned about once). Left alone until they are removed.
    left_alone: HashSet<String>,
    tracker: TaskTracker,
    exits_tx: mpsc::Sender<ReaderExit>,
    exits_rx: mpsc::Receiver<ReaderExit>,
}

struct Session {
    docker: Docker,
    host: Arc<str>,
}

impl Watcher {
    pub fn new(
        config: WatcherConfig,
        router: Router,
        checkpoints: Arc<Checkpoints>,
        watermark: Arc<AtomicI64>,
        stats: Arc<ReaderStats>,
        health: watch::Sender<Health>,
        cancel: CancellationToken,
    ) -> Self {
        let (exits_tx, exits_rx) = mpsc::channel(1024);
        Watcher {
            config,
            router,
            checkpoints,
            stats,
            health,
            cancel,
            started_ns: now_ns(),
            watermark,
            readers: HashMap::new(),
            positions: HashMap::new(),
            left_alone: HashSet::new(),
            restarted: HashSet::new(),
            tracker: TaskTracker::new(),
            exits_tx,
            exits_rx,
        }
    }

    /// Runs until cancelled, then waits for every reader to stop.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let cancel = self.cancel.clone();
        while !cancel.is_cancelled() {
            let session = tokio::select! {
                ended = self.session() => ended,
                () = cancel.cancelled() => Ok(()),
            };
            if let Err(reason) = session {
                warn!(error = %reason, "lost the Docker daemon, reconnecting");
                if self.health.send_replace(Health::Disconnected(reason)) == Health::Connected {
                    backoff.reset();
                }
            }
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

    /// One connection to the daemon, until it is lost (`Err` with the reason).
    async fn session(&mut self) -> Result<(), String> {
        let docker = connect(&self.config.docker_host).await.map_err(|e| format!("cannot connect to Docker: {e}"))?;
        let host: Arc<str> = match &self.config.hostname {
            Some(name) => name.as_str().into(),
            None => docker.info().await.map_err(|e| format!("docker info: {e}"))?.name.unwrap_or_default().into(),
        };
        let session = Session { docker, host };
        // Events are taken from a second before the list, so a container that starts in between
        // is seen either way; a task of their own reads them, so the daemon never finds spout too
        // slow a subscriber while it inspects containers.
        let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
        let since = now_ns() / 1_000_000_000 - 1;
        let _pump = AbortOnDropHandle::new(tokio::spawn(pump_events(session.docker.clone(), since, events_tx)));
        self.reconcile(&session, true).await?;
        info!(readers = self.readers.len(), "connected to Docker");
        self.health.send_replace(Health::Connected);
        let mut relist = tokio::time::interval_at(tokio::time::Instant::now() + RELIST_EVERY, RELIST_EVERY);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(Ok(event)) => {
                        let id = event.actor.and_then(|a| a.id).unwrap_or_default();
                        match event.action.as_deref().unwrap_or("") {
                            "start" | "restart" => {
                                if self.readers.contains_key(&id) {
                                    // Its reader may be on its way out, having seen it stop.
                                    self.restarted.insert(id.clone());
                                }
                                self.attach(&session, &id, true);
                            }
                            "rename" => self.rename(&session, &id).await,
                            "destroy" => {
                                self.positions.remove(&id);
                                self.left_alone.remove(&id);
                                self.checkpoints.forget(&id);
                            }
                            _ => {}
                        }
                    }
                    Some(Err(reason)) => return Err(reason),
                    None => return Err("events stream ended".to_owned()),
                },
                Some(exit) = self.exits_rx.recv() => self.reader_exited(&session, exit).await,
                _ = relist.tick() => self.reconcile(&session, false).await?,
            }
        }
    }

    /// Lists every container: attaches to running ones that have no reader (whatever an event or
    /// a failed inspect missed), and forgets what is kept for containers that no longer exist.
    /// Right after (re)connecting (`catch_up`) it also attaches stopped containers that may have
    /// written what was not read: those with a checkpoint from an earlier run, and those created
    /// since the watermark. Once every attach succeeded, the watermark moves to the list's time.
    async fn reconcile(&mut self, session: &Session, catch_up: bool) -> Result<(), String> {
        let listed_at = now_ns();
        let all = session
            .docker
            .list_containers(Some(ListContainersOptions { all: true, ..Default::default() }))
            .await
            .map_err(|e| format!("listing containers: {e}"))?;
        let watermark_secs = self.watermark.load(Ordering::Acquire).div_euclid(1_000_000_000);
        let mut existing = HashSet::with_capacity(all.len());
        for summary in all {
            let Some(id) = summary.id else { continue };
            let running = summary.state == Some(ContainerSummaryStateEnum::RUNNING);
            let unread_tail = catch_up
                && !self.positions.contains_key(&id)
                && (self.checkpoints.saved(&id).is_some() || summary.created.is_some_and(|c| c >= watermark_secs - 1));
            if running || unread_tail {
                self.attach(session, &id, running);
            }
            existing.insert(id);
        }
        self.positions.retain(|id, _| existing.contains(id));
        self.left_alone.retain(|id| existing.contains(id));
        self.checkpoints.retain(&existing);
        // Every container listed has a reader now (one that cannot inspect its container yet
        // keeps trying, from a position its checkpoint already holds).
        self.watermark.fetch_max(listed_at, Ordering::AcqRel);
        Ok(())
    }

    /// Starts a reader for `id` unless it has one or is left alone. The reader inspects the
    /// container itself, while its first stream opens: waiting for the inspect here would delay
    /// every container behind this one, and the daemon answers it only once it is done with a
    /// container that exited (about 80 ms), when a `--rm` container may already be gone.
    /// `running` is what the caller last saw.
    fn attach(&mut self, session: &Session, id: &str, running: bool) {
        if id.is_empty() || self.readers.contains_key(id) || self.left_alone.contains(id) {
            return;
        }
        // Where this process left it, else where an earlier spout left it; else everything since
        // an earlier spout was last alive (it started while spout was stopped), or since this
        // one started, or (backlog) its whole history.
        let from = match self.positions.remove(id).or_else(|| self.checkpoints.saved(id)) {
            Some(pos) => pos,
            None if self.config.backlog => Position::START,
            None => Position::from_time(self.checkpoints.previous_run().unwrap_or(self.started_ns)),
        };
        let progress = self.checkpoints.progress(id, self.router.len(), from);
        debug!(container = %id, ?from, "attaching");
        // Until the reader's inspect answers, the container is known by its id alone.
        let placeholder = Container { host: Arc::clone(&session.host), id: id.to_owned(), ..Container::default() };
        let (meta, _) = watch::channel(Arc::new(placeholder));
        self.readers.insert(id.to_owned(), meta.clone());
        let ctx = ReaderContext {
            docker: session.docker.clone(),
            host: Arc::clone(&session.host),
            own_id: self.config.own_id.as_deref().map(Arc::from),
            router: self.router.clone(),
            stats: Arc::clone(&self.stats),
            max_line_bytes: self.config.max_line_bytes,
            cancel: self.cancel.child_token(),
            exits: self.exits_tx.clone(),
        };
        self.tracker.spawn(reader::run(ctx, id.to_owned(), meta, progress, from, running));
    }

    async fn rename(&mut self, session: &Session, id: &str) {
        let Some(meta) = self.readers.get(id) else { return };
        if let Ok(resp) = session.docker.inspect_container(id, None).await {
            let found = inspected(resp, &session.host, self.config.own_id.as_deref());
            info!(container = %id, name = %found.container.name, "container renamed");
            meta.send_replace(Arc::new(found.container));
        }
    }

    async fn reader_exited(&mut self, session: &Session, exit: ReaderExit) {
        let restarted = self.restarted.remove(&exit.id);
        self.readers.remove(&exit.id);
        match exit.reason {
            ExitReason::Stopped => {
                self.positions.insert(exit.id.clone(), exit.position);
                if restarted {
                    // It started again while its reader was finishing: read what that run
                    // wrote, even if (a short run) it has already stopped again.
                    self.attach(session, &exit.id, true);
                } else {
                    // It may have started again with its start event still on the way.
                    self.attach_if_running(session, &exit.id).await;
                }
            }
            ExitReason::Unreadable | ExitReason::Skipped => {
                self.checkpoints.forget(&exit.id);
                self.left_alone.insert(exit.id);
            }
            ExitReason::Gone | ExitReason::Shutdown => {
                self.positions.remove(&exit.id);
            }
        }
    }

    async fn attach_if_running(&mut self, session: &Session, id: &str) {
        match session.docker.inspect_container(id, None).await {
            Ok(resp) if resp.state.as_ref().and_then(|s| s.running).unwrap_or(false) => {
                self.attach(session, id, true);
            }
            Ok(_) => {}
            Err(e) if classify(&e) == ErrorClass::Gone => {
                self.positions.remove(id);
                self.checkpoints.forget(id);
            }
            // Running after all? The next reconcile attaches it.
            Err(_) => {}
        }
    }
}

/// Reads the daemon's container events into `tx` until the stream fails or ends.
async fn pump_events(docker: Docker, since_secs: i64, tx: mpsc::Sender<Result<EventMessage, String>>) {
    let since = since_secs.to_string();
    let filters = HashMap::from([
        ("type".to_owned(), vec!["container".to_owned()]),
        ("event".to_owned(), ["start", "restart", "rename", "destroy"].map(str::to_owned).to_vec()),
    ]);
    let mut events = docker.events(Some(EventsOptions { since: Some(since), until: None, filters: Some(filters) }));
    loop {
        let item = match events.next().await {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(format!("events stream: {e}")),
            None => Err("events stream ended".to_owned()),
        };
        let last = item.is_err();
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}
