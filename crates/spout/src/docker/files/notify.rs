//! Change notification for json-file logs: one inotify instance for the agent (root may hold
//! `fs.inotify.max_user_instances` of them, 128 by default, shared with the daemon's own log
//! followers) and a watch on each followed log's directory.
//!
//! The daemon creates a log's next file at each rotation. It is opened here, at once, whatever
//! its reader is doing: a file rotated away and deleted while its reader waits (for room in a
//! route's queue, say) is still read to its end, through the descriptor.
//!
//! Notifications come at most once every [`TICK`], on a grid every reader shares: a host of
//! steady writers wakes spout a hundred times a second, not once a line, and the lines of all
//! its containers reach the routes in the same turn.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::chain::{LogDir, LogFile};

/// How often, at most, readers are woken for what their files got.
pub const TICK: Duration = Duration::from_millis(10);

/// Files of one log held open unread, behind the one being read, before the oldest is let go:
/// a route blocked for long on a fast writer would otherwise hold every rotated file, and the
/// disk space the daemon means to free, for as long.
pub const MAX_HELD: usize = 16;

/// The next instant of the grid every reader and the notifier wake on.
pub fn next_tick() -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = Instant::from_std(*ORIGIN.get_or_init(std::time::Instant::now));
    let now = Instant::now();
    let tick = TICK.as_nanos();
    let ticks = now.duration_since(origin).as_nanos() / tick + 1;
    origin + Duration::from_nanos(u64::try_from(ticks * tick).unwrap_or(u64::MAX))
}

/// The agent's inotify instance.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

struct Shared {
    watches: Mutex<Watches>,
    /// The logs followed in each watched directory.
    followers: Mutex<HashMap<WatchDescriptor, Vec<Weak<Follow>>>>,
}

/// What one reader hears of its log's directory.
pub struct Follow {
    log: LogDir,
    wd: WatchDescriptor,
    wake: Notify,
    news: Mutex<News>,
    shared: Weak<Shared>,
}

/// What happened to a followed log since its reader last looked.
#[derive(Debug, Default)]
pub struct News {
    /// Its files the daemon created (at start, and at each rotation), opened, oldest first.
    pub created: VecDeque<LogFile>,
    /// The file being written was closed: the container stopped (or the daemon let go of it).
    pub closed: bool,
    /// Events were lost: the directory is to be looked at again.
    pub rescan: bool,
    /// Files let go unread past [`MAX_HELD`], and Docker's timestamps of their first entries.
    pub dropped: Vec<LogFile>,
    /// Files created and gone before they could be opened.
    pub missed: u64,
}

impl Notifier {
    /// Starts the instance and the task that reads its events.
    pub fn start() -> io::Result<Notifier> {
        let inotify = Inotify::init()?;
        let events = inotify.into_event_stream([0u8; 16 * 1024])?;
        let shared = Arc::new(Shared { watches: Mutex::new(events.watches()), followers: Mutex::default() });
        tokio::spawn(run(events, Arc::downgrade(&shared)));
        Ok(Notifier { shared })
    }

    /// Follows `log`: its reader hears of new bytes, new files and the file being closed, until
    /// the [`Follow`] is dropped.
    pub fn follow(&self, log: &LogDir) -> io::Result<Arc<Follow>> {
        let mask = WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::MODIFY | WatchMask::CLOSE_WRITE;
        // Under the followers' lock: a watch is removed only when its last follower goes.
        let mut followers = self.shared.lock_followers();
        let wd = lock(&self.shared.watches).add(&log.dir, mask | WatchMask::ONLYDIR)?;
        let follow = Arc::new(Follow {
            log: log.clone(),
            wd: wd.clone(),
            wake: Notify::new(),
            news: Mutex::default(),
            shared: Arc::downgrade(&self.shared),
        });
        let list = followers.entry(wd).or_default();
        list.retain(|f| f.strong_count() > 0);
        list.push(Arc::downgrade(&follow));
        Ok(follow)
    }
}

impl Shared {
    fn lock_followers(&self) -> MutexGuard<'_, HashMap<WatchDescriptor, Vec<Weak<Follow>>>> {
        lock(&self.followers)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Follow {
    /// Until something happened (or happens) to the log.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// What happened since the last look.
    pub fn take(&self) -> News {
        std::mem::take(&mut *lock(&self.news))
    }

    /// The daemon created the log's file being written: open it now.
    fn created(&self) {
        let path = self.log.current();
        let opened = std::fs::File::open(&path).and_then(|f| LogFile::plain(f, self.log.base.clone()));
        let mut news = lock(&self.news);
        match opened {
            Ok(file) => {
                news.created.push_back(file);
                if news.created.len() > MAX_HELD {
                    if let Some(oldest) = news.created.pop_front() {
                        news.dropped.push(oldest);
                    }
                }
            }
            // Rotated away already: a whole file is lost.
            Err(e) if e.kind() == io::ErrorKind::NotFound => news.missed += 1,
            Err(e) => {
                debug!(path = %path.display(), error = %e, "cannot open a new log file; looking again");
                news.rescan = true;
            }
        }
    }

    fn mark(&self, f: impl FnOnce(&mut News)) {
        f(&mut lock(&self.news));
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else { return };
        let mut followers = shared.lock_followers();
        let last = match followers.get_mut(&self.wd) {
            Some(list) => {
                list.retain(|f| f.strong_count() > 0);
                list.is_empty()
            }
            None => false,
        };
        if last {
            followers.remove(&self.wd);
            // Gone with its directory already, or never there: nothing to remove.
            let _ = lock(&shared.watches).remove(self.wd.clone());
        }
    }
}

/// Reads the instance's events until spout stops, handing each to the logs it concerns, then
/// waits for the next tick.
async fn run(mut events: inotify::EventStream<[u8; 16 * 1024]>, shared: Weak<Shared>) {
    loop {
        let first = events.next().await;
        let Some(shared) = shared.upgrade() else { return };
        let mut touched: Vec<Arc<Follow>> = Vec::new();
        let mut next = first;
        loop {
            match next {
                Some(Ok(event)) => handle(&shared, &event, &mut touched),
                Some(Err(e)) => {
                    warn!(error = %e, "cannot read inotify events; json-file logs are looked at again");
                    for follow in all(&shared) {
                        follow.mark(|n| n.rescan = true);
                        touched.push(follow);
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                None => return,
            }
            // Whatever else is there already, in the same turn.
            match events.next().now_or_never() {
                Some(more) => next = more,
                None => break,
            }
        }
        for follow in &touched {
            follow.wake.notify_one();
        }
        drop(touched);
        drop(shared);
        tokio::time::sleep_until(next_tick()).await;
    }
}

fn all(shared: &Shared) -> Vec<Arc<Follow>> {
    shared.lock_followers().values().flatten().filter_map(Weak::upgrade).collect()
}

fn handle(shared: &Shared, event: &inotify::Event<std::ffi::OsString>, touched: &mut Vec<Arc<Follow>>) {
    if event.mask.contains(EventMask::Q_OVERFLOW) {
        for follow in all(shared) {
            follow.mark(|n| n.rescan = true);
            touched.push(follow);
        }
        return;
    }
    let followers: Vec<Arc<Follow>> = match shared.lock_followers().get(&event.wd) {
        Some(list) => list.iter().filter_map(Weak::upgrade).collect(),
        None => return,
    };
    for follow in followers {
        let ours = event.name.as_ref().and_then(|n| n.to_str()).is_some_and(|n| n == follow.log.base);
        if ours && event.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
            follow.created();
        } else if ours && event.mask.contains(EventMask::CLOSE_WRITE) {
            follow.mark(|n| n.closed = true);
        } else if !ours && !event.mask.intersects(EventMask::IGNORED | EventMask::DELETE_SELF) {
            continue;
        }
        if !touched.iter().any(|t| Arc::ptr_eq(t, &follow)) {
            touched.push(follow);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::docker::files::chain::tests::entry;

    async fn changed(follow: &Follow) -> News {
        tokio::time::timeout(Duration::from_secs(10), follow.changed()).await.expect("woken");
        follow.take()
    }

    #[tokio::test]
    async fn new_files_are_opened_as_they_come_and_writes_and_closes_are_heard() {
        let notifier = Notifier::start().expect("inotify");
        let dir = tempfile::tempdir().expect("dir");
        let log = LogDir { dir: dir.path().to_owned(), base: "c-json.log".into() };
        let follow = notifier.follow(&log).expect("follow");
        let mut first = std::fs::File::create(log.current()).expect("create");
        let news = changed(&follow).await;
        assert_eq!(news.created.len(), 1);
        first.write_all(entry(1).as_bytes()).expect("write");
        changed(&follow).await;
        // A rotation: renamed, and the next one created; the first is deleted before anyone
        // read it, and is read all the same, from the descriptor opened when it was created.
        std::fs::rename(log.current(), dir.path().join("c-json.log.1")).expect("rename");
        std::fs::write(log.current(), entry(2)).expect("create");
        std::fs::remove_file(dir.path().join("c-json.log.1")).expect("rm");
        drop(first);
        let mut created = news.created;
        while created.len() < 2 {
            created.extend(changed(&follow).await.created);
        }
        let mut texts = Vec::new();
        for file in &mut created {
            while file.fill().expect("read") > 0 {}
            while let Some(d) = file.lines().next_line() {
                if let super::super::decode::Decoded::Entry { entry, .. } = d {
                    texts.push(entry.log.trim_end().to_owned());
                }
            }
        }
        assert_eq!(texts, ["line 1", "line 2"]);
        let w = std::fs::OpenOptions::new().append(true).open(log.current()).expect("open");
        drop(w);
        let mut closed = false;
        while !closed {
            closed = changed(&follow).await.closed;
        }
    }

    #[tokio::test]
    async fn a_watch_outlives_a_follower_that_goes_while_another_follows() {
        let notifier = Notifier::start().expect("inotify");
        let dir = tempfile::tempdir().expect("dir");
        let log = LogDir { dir: dir.path().to_owned(), base: "c-json.log".into() };
        let old = notifier.follow(&log).expect("follow");
        let new = notifier.follow(&log).expect("follow");
        drop(old);
        std::fs::File::create(log.current()).expect("create");
        assert_eq!(changed(&new).await.created.len(), 1);
    }

    #[test]
    fn ticks_are_on_one_grid() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
        rt.block_on(async {
            let (a, b) = (next_tick(), next_tick());
            assert!(a > Instant::now() && a <= Instant::now() + TICK);
            assert!(b == a || b == a + TICK);
        });
    }
}
