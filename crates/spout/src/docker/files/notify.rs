//! Change notification for json-file logs, with inotify: a watch on each followed log's
//! directory in each of two instances, however many containers (root may hold
//! `fs.inotify.max_user_instances`, 128 by default, shared with the daemon's own log followers),
//! read by one thread of their own. Two, so that rotations are read the moment they come while
//! writes wait for the tick in a queue of their own (the kernel merges writes in a row into one
//! event).
//!
//! - Rotations (a file created or renamed in the directory, the file being written closed) are
//!   handled the moment they happen: the daemon's next file is opened at once, whatever the
//!   runtime's one thread is doing, so that a file rotated away and deleted while its reader
//!   waits (for room in a route's queue, say) is still read to its end, through the descriptor.
//!   At 12 MB/s with `max-size=1m` and `max-file=3` a file lives 250 ms; a timer's wake-up on
//!   a loaded 2-core machine was seen to come 117 ms late.
//! - Writes wake the readers at most once every [`TICK`], all together: a host of steady
//!   writers wakes spout a hundred times a second, not once a line, the lines of all its
//!   containers reach the routes in the same turn, and the thread wakes the runtime once for
//!   all of them ([`Wakes`]).
//! - A log written tick after tick is read at every tick without the kernel telling of each
//!   write ([`Follow::settle`]): its directory's writes watch hears nothing more until the log
//!   has been quiet for [`QUIET_TICKS`]. An event per write cost more than reading the file
//!   (about 3 µs each, in the kernel and on this thread, on a host of steady writers).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use rustix::event::{PollFd, PollFlags, Timespec};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::chain::{Known, LogDir, LogFile};

/// How often, at most, readers are woken for what their files got.
pub const TICK: Duration = Duration::from_millis(10);

/// Ticks without a new byte after which a log read at every tick is heard of by events again.
const QUIET_TICKS: u32 = 2;

/// Files of one log a reader may hold open unread behind the one it reads (beyond those there
/// when it started) before the oldest is let go: any up to `MAX_HELD`, more while they hold less
/// than `HELD_BYTES` in all, never more than `MAX_HELD_FILES` (descriptors). A reader behind a
/// route blocked for long on a fast writer would otherwise hold every rotated file, and the disk
/// space the daemon means to free, for as long; a count alone would let small files go early
/// (16 files of `max-size=20k` are 320 kB, a fraction of a second of a fast writer).
pub const MAX_HELD: usize = 16;
const HELD_BYTES: u64 = 256 << 20;
const MAX_HELD_FILES: usize = 1024;

/// Whether `held` are more files than a reader may hold ([`MAX_HELD`]).
pub fn too_many<'a>(held: impl ExactSizeIterator<Item = &'a LogFile>) -> bool {
    let n = held.len();
    n > MAX_HELD_FILES || n > MAX_HELD && held.map(LogFile::size).sum::<u64>() > HELD_BYTES
}

/// Why a file was let go unread, as [`too_many`] says.
pub const LET_GO: &str =
    "a rotated log file was let go unread: too many waited behind the one being read (more than 16 holding 256 MiB, or 1024)";

/// The agent's inotify instances.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

struct Shared {
    /// Rotations, then writes.
    watches: Mutex<(Watches, Watches)>,
    /// The logs followed in each watched directory, by either instance's descriptor.
    followers: Mutex<HashMap<Key, Vec<Weak<Follow>>>>,
    /// The logs read at every tick, written to at every tick ([`Follow::settle`]).
    busy: Mutex<Vec<Weak<Follow>>>,
}

/// A watch in one of the two instances. Not inotify's `WatchDescriptor`: both instances number
/// their watches from 1, and that type, told equal numbers of two instances, compares the
/// instances with a `kcmp` system call, at every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    writes: bool,
    id: i32,
}

impl Key {
    fn of(wd: &WatchDescriptor, writes: bool) -> Key {
        Key { writes, id: wd.get_watch_descriptor_id() }
    }
}

const ROTATIONS: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::ONLYDIR);
const WRITES: WatchMask = WatchMask::MODIFY.union(WatchMask::ONLYDIR);
/// The writes watch of a directory whose every log is read at every tick: no event per write.
/// A mask needs an event: the directory's own deletion, which the rotations' instance hears too.
const BUSY: WatchMask = WatchMask::DELETE_SELF.union(WatchMask::ONLYDIR);

/// What one reader hears of its log's directory.
pub struct Follow {
    log: LogDir,
    /// In the rotations' instance and the writes'; `None`: not watched, and its reader looks at
    /// the directory itself.
    wds: Option<(WatchDescriptor, WatchDescriptor)>,
    wake: Notify,
    news: Mutex<News>,
    /// The files its reader has, and had: a look at the directory opens only the others.
    known: Mutex<Known>,
    /// How often the file being written was closed: the daemon closes it before it truncates it
    /// in place, and its reader looks for a truncation only after a close.
    closes: AtomicU64,
    /// Read at every tick ([`Follow::settle`]).
    busy: AtomicBool,
    /// Busy, and its directory's write events turned off by the notifier's thread, at a tick.
    unheard: AtomicBool,
    pace: Mutex<Pace>,
    shared: Weak<Shared>,
}

/// How often a followed log is written to, as its reader finds.
#[derive(Debug, Default)]
struct Pace {
    /// When the reader last found new bytes.
    heard_at: Option<Instant>,
    /// Ticks in a row it found none, busy.
    quiet: u32,
}

/// What happened to a followed log since its reader last looked.
#[derive(Debug, Default)]
pub struct News {
    /// Its files the daemon created (at start, and at each rotation), opened, oldest first.
    pub created: VecDeque<LogFile>,
    /// The file being written was closed: the container stopped (or the daemon let go of it).
    pub closed: bool,
    /// A look at the directory failed: it is to be looked at again.
    pub rescan: bool,
    /// Files let go unread, [`too_many`] waiting: their first entries' timestamps.
    pub dropped: Vec<Option<i64>>,
    /// Files the daemon created and deleted before a look found them.
    pub missed: u64,
}

/// The readers to wake, handed by the notifier's thread to a task on the runtime: a task woken
/// from another thread costs the runtime a system call each time, from its own thread nothing.
/// So the thread wakes one task, once, and that task wakes every reader.
#[derive(Default)]
struct Wakes {
    readers: Mutex<Vec<Arc<Follow>>>,
    ready: Notify,
    /// The thread is gone: the task ends.
    closed: AtomicBool,
}

impl Wakes {
    async fn run(self: Arc<Self>) {
        loop {
            self.ready.notified().await;
            let readers = std::mem::take(&mut *lock(&self.readers));
            for follow in readers {
                follow.wake.notify_one();
            }
            if self.closed.load(Ordering::Acquire) {
                return;
            }
        }
    }
}

impl Notifier {
    /// Starts the instances, the thread that reads their events, and (on the runtime it is
    /// called on) the task that wakes readers.
    pub fn start() -> io::Result<Notifier> {
        let rotations = Inotify::init()?;
        let writes = Inotify::init()?;
        let watches = Mutex::new((rotations.watches(), writes.watches()));
        let shared = Arc::new(Shared { watches, followers: Mutex::default(), busy: Mutex::default() });
        let weak = Arc::downgrade(&shared);
        let wakes = Arc::new(Wakes::default());
        tokio::spawn(wakes.clone().run());
        std::thread::Builder::new().name("spout-inotify".into()).spawn(move || {
            match hurry() {
                Priority::RealTime => info!("json-file logs: rotated files are opened at real-time priority"),
                Priority::Nice(e) => info!(
                    real_time = %e,
                    "json-file logs: rotated files are opened at the highest ordinary priority (nice -20)"
                ),
                Priority::Normal(e) => info!(
                    error = %e,
                    "json-file logs: rotated files are opened at normal priority (without CAP_SYS_NICE; \
                     `--cap-add SYS_NICE` gives it): on a host short of CPU, a file the daemon rotates \
                     away within a few hundred milliseconds may be gone before spout opens it (warned, counted)"
                ),
            }
            run(rotations, writes, &weak, &wakes);
            wakes.closed.store(true, Ordering::Release);
            wakes.ready.notify_one();
        })?;
        Ok(Notifier { shared })
    }

    /// Follows `log`: its reader hears of new bytes, new files and the file being closed, until
    /// the [`Follow`] is dropped.
    pub fn follow(&self, log: &LogDir) -> io::Result<Arc<Follow>> {
        // Under the followers' lock: a watch is removed only when its last follower goes.
        let mut followers = lock(&self.shared.followers);
        let wds = {
            let mut watches = lock(&self.shared.watches);
            let rotations = watches.0.add(&log.dir, ROTATIONS)?;
            match watches.1.add(&log.dir, WRITES) {
                Ok(writes) => (rotations, writes),
                Err(e) => {
                    if !followers.contains_key(&Key::of(&rotations, false)) {
                        let _ = watches.0.remove(rotations);
                    }
                    return Err(e);
                }
            }
        };
        let follow = Arc::new(Follow {
            log: log.clone(),
            wds: Some(wds.clone()),
            wake: Notify::new(),
            news: Mutex::default(),
            known: Mutex::default(),
            closes: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            unheard: AtomicBool::new(false),
            pace: Mutex::default(),
            shared: Arc::downgrade(&self.shared),
        });
        for key in [Key::of(&wds.0, false), Key::of(&wds.1, true)] {
            let list = followers.entry(key).or_default();
            list.retain(|f| f.strong_count() > 0);
            list.push(Arc::downgrade(&follow));
        }
        Ok(follow)
    }
}

/// How far ahead of spout's other work the notifier's thread runs.
#[derive(Debug)]
enum Priority {
    /// Real-time FIFO scheduling, at its lowest priority: ahead of every ordinary thread.
    RealTime,
    /// The highest ordinary priority (nice -20), real-time denied: weighed about 87 times an
    /// ordinary thread when the CPU is shared (against the threads of spout's own cgroup, where
    /// it has one).
    Nice(io::Error),
    /// Both denied.
    Normal(io::Error),
}

/// Puts the calling thread as far ahead as the process may (CAP_SYS_NICE): real-time, else
/// nice -20. A rotation is a race with the daemon, which deletes the oldest file a few rotations
/// on: on a busy 2-core host the thread was seen to wait, runnable, 96 ms for a CPU the daemon
/// and the writer kept, and files created and deleted meanwhile were never opened. Its work per
/// event is bounded (a look at one directory), and the kernel keeps real-time threads to 95 % of
/// a CPU whatever they do. In a container on a host with real-time group scheduling (cgroup v1)
/// real-time needs a budget the daemon gives only when told to (`--cpu-rt-runtime`).
#[allow(unsafe_code)]
fn hurry() -> Priority {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler only reads the parameter it is given; pid 0 is this thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        return Priority::RealTime;
    }
    let denied = io::Error::last_os_error();
    // SAFETY: plain integers; on Linux, who 0 with PRIO_PROCESS is the calling thread.
    match unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) } {
        0 => Priority::Nice(denied),
        _ => Priority::Normal(io::Error::last_os_error()),
    }
}

impl Shared {
    /// Sets the writes watch of `log`'s directory (`wd`) to an event per write while any of its
    /// followers waits for events, to none while every one is read at every tick. Decided and
    /// set under the followers' lock, so that of two calls at once the later decides last.
    fn arm(&self, wd: &WatchDescriptor, log: &LogDir) {
        let key = Key::of(wd, true);
        let list = lock(&self.followers);
        let followers: Vec<Arc<Follow>> = match list.get(&key) {
            Some(list) => list.iter().filter_map(Weak::upgrade).collect(),
            None => return,
        };
        let waiting = followers.iter().any(|f| !f.busy.load(Ordering::Relaxed));
        // The same watch, its mask replaced (a container's directory is never made again by that
        // name); gone with the directory, the reader hears so from the rotations' instance.
        if let Err(e) = lock(&self.watches).1.add(&log.dir, if waiting { WRITES } else { BUSY }) {
            debug!(dir = %log.dir.display(), error = %e, "cannot change a log directory's watch");
        }
        // Let go after the lock: a follower dropped takes it to go.
        drop(list);
        drop(followers);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Follow {
    /// A log no notifier watches: its reader looks at the directory itself ([`Follow::look`]).
    pub fn unwatched(log: &LogDir) -> Follow {
        Follow {
            log: log.clone(),
            wds: None,
            wake: Notify::new(),
            news: Mutex::default(),
            known: Mutex::default(),
            closes: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            unheard: AtomicBool::new(false),
            pace: Mutex::default(),
            shared: Weak::new(),
        }
    }

    pub fn watched(&self) -> bool {
        self.wds.is_some()
    }

    /// Until something happened (or happens) to the log (never, unwatched).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// What happened since the last look.
    pub fn take(&self) -> News {
        std::mem::take(&mut *lock(&self.news))
    }

    /// How often the file being written was closed since the log was followed (never, unwatched).
    pub fn closes(&self) -> u64 {
        self.closes.load(Ordering::Relaxed)
    }

    /// The daemon truncated the file `id` in place: the reader reads it again from its start.
    pub fn truncated(&self, id: &crate::position::FileId) {
        lock(&self.known).truncated(id);
    }

    /// The reader read the file `id` to its end and let it go.
    pub fn release(&self, id: &crate::position::FileId) {
        lock(&self.known).release(id);
    }

    /// Looks at the directory: the files there that the reader does not have yet are opened
    /// now, and are news (`bounded`, the oldest are let go while [`too_many`] wait). At every
    /// rotation, so that a file renamed again before the notifier got to it is found as long as
    /// it is there.
    pub fn look(&self, bounded: bool) {
        let found = self.log.new_files(&mut lock(&self.known));
        let mut news = lock(&self.news);
        match found {
            Ok(files) => {
                for f in &files {
                    debug!(file = %f.name, ino = f.id.ino, first = ?f.first_ts, "found a log file");
                }
                news.created.extend(files);
                // Two looks at once (the reader's and the thread's) may hand their files over in
                // either order.
                LogFile::in_order(&mut news.created);
                while bounded && too_many(news.created.iter()) {
                    if let Some(oldest) = news.created.pop_front() {
                        lock(&self.known).release(&oldest.id);
                        // Closed now: its disk space is the daemon's to free.
                        news.dropped.push(oldest.first_ts);
                    }
                }
            }
            Err(e) => {
                debug!(dir = %self.log.dir.display(), error = %e, "cannot look at a log directory; looking again later");
                news.rescan = true;
            }
        }
    }

    /// Tells whether the reader's look found new bytes (`heard`), and so how the log is to be
    /// heard of: a log found written two ticks running is read at every tick, the kernel's event
    /// for each write turned off (by the notifier's thread, at a tick: then the ticks are sure to
    /// go on); one quiet for [`QUIET_TICKS`] is heard of by events again. True when the reader is
    /// to look once more: what was written between its look and the events' return made none.
    pub fn settle(self: &Arc<Self>, heard: bool) -> bool {
        let (Some(shared), Some((_, writes))) = (self.shared.upgrade(), &self.wds) else { return false };
        let mut pace = lock(&self.pace);
        let busy = self.busy.load(Ordering::Relaxed);
        if heard {
            pace.quiet = 0;
            let now = Instant::now();
            let running = pace.heard_at.replace(now).is_some_and(|at| now - at <= TICK * 3 / 2);
            if running && !busy {
                self.busy.store(true, Ordering::Relaxed);
                lock(&shared.busy).push(Arc::downgrade(self));
            }
            return false;
        }
        if !busy {
            return false;
        }
        pace.quiet += 1;
        if pace.quiet < QUIET_TICKS {
            return false;
        }
        pace.quiet = 0;
        self.busy.store(false, Ordering::Relaxed);
        lock(&shared.busy).retain(|f| f.strong_count() > 0 && !std::ptr::eq(f.as_ptr(), Arc::as_ptr(self)));
        if self.unheard.swap(false, Ordering::Relaxed) {
            shared.arm(writes, &self.log);
        }
        true
    }

    fn mark(&self, f: impl FnOnce(&mut News)) {
        f(&mut lock(&self.news));
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let (Some(shared), Some((rotations, writes))) = (self.shared.upgrade(), self.wds.clone()) else { return };
        let mut followers = lock(&shared.followers);
        let mut watches = lock(&shared.watches);
        for (wd, in_writes) in [(rotations, false), (writes, true)] {
            let key = Key::of(&wd, in_writes);
            let last = followers.get_mut(&key).is_some_and(|list| {
                list.retain(|f| f.strong_count() > 0);
                list.is_empty()
            });
            if last {
                followers.remove(&key);
                // Gone with its directory already: nothing to remove.
                let _ = if in_writes { watches.1.remove(wd) } else { watches.0.remove(wd) };
            }
        }
    }
}

/// Reads both instances' events for as long as spout runs: rotations at once, writes and the
/// busy logs on a grid of [`TICK`]s, which runs while either has anything.
fn run(mut rotations: Inotify, mut writes: Inotify, shared: &Weak<Shared>, wakes: &Wakes) {
    let mut buffer = [0u8; 16 * 1024];
    // The grid's next tick; `None`: it stopped, and the next write wakes its reader at once.
    let mut tick: Option<Instant> = None;
    let mut failures = 0u32;
    loop {
        let now = Instant::now();
        let timeout = tick.map(|at| {
            let wait = at.saturating_duration_since(now);
            Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: i64::from(wait.subsec_nanos()) }
        });
        let (rotated, written) = {
            // Between ticks, writes wait in their instance's queue.
            let mut fds = vec![PollFd::new(&rotations, PollFlags::IN)];
            if tick.is_none() {
                fds.push(PollFd::new(&writes, PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {
                    let ready = |fd: &PollFd<'_>| !fd.revents().is_empty();
                    (ready(&fds[0]), fds.get(1).is_some_and(ready))
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        warn!(error = %e, "cannot wait for inotify events");
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    (true, true)
                }
            }
        };
        let Some(shared) = shared.upgrade() else { return };
        let mut touched: Vec<Arc<Follow>> = Vec::new();
        if rotated {
            drain(&mut rotations, false, &mut buffer, &shared, &mut touched);
        }
        let ticked = tick.is_some_and(|at| Instant::now() >= at);
        if written || ticked {
            drain(&mut writes, true, &mut buffer, &shared, &mut touched);
            let busy = ticked && wake_busy(&shared, &mut touched);
            tick = (written || busy || !touched.is_empty()).then(|| Instant::now() + TICK);
        }
        if !touched.is_empty() {
            let mut readers = lock(&wakes.readers);
            for follow in touched {
                add_once(&mut readers, follow);
            }
            drop(readers);
            wakes.ready.notify_one();
        }
    }
}

/// Adds the logs read at every tick to `touched`, and turns off the write events of those that
/// became busy since the last tick (here, at a tick, which goes on while any log is busy: turned
/// off by the reader while no tick ran, its writes would wake no one); false when there are none.
fn wake_busy(shared: &Shared, touched: &mut Vec<Arc<Follow>>) -> bool {
    let mut quieten = Vec::new();
    {
        let mut busy = lock(&shared.busy);
        busy.retain(|f| f.strong_count() > 0);
        if busy.is_empty() {
            return false;
        }
        for follow in busy.iter().filter_map(Weak::upgrade) {
            if !follow.unheard.swap(true, Ordering::Relaxed) {
                quieten.push(Arc::clone(&follow));
            }
            add_once(touched, follow);
        }
    }
    for follow in quieten {
        if let Some((_, writes)) = &follow.wds {
            shared.arm(writes, &follow.log);
        }
    }
    true
}

/// Every event the instance has now, each handed to the logs it concerns.
fn drain(inotify: &mut Inotify, writes: bool, buffer: &mut [u8], shared: &Shared, touched: &mut Vec<Arc<Follow>>) {
    // The followers of one event's directory, in a list reused from event to event.
    let mut followers = Vec::new();
    // The logs that rotated: each looked at once for all the events read together (a rotation
    // renames every file of the log, an event each: looked at per event, a log of `max-file`
    // files would be listed that many times).
    let mut rotated: Vec<Arc<Follow>> = Vec::new();
    loop {
        match inotify.read_events(buffer) {
            Ok(events) => {
                let mut any = false;
                for event in events {
                    any = true;
                    let key = Key::of(&event.wd, writes);
                    handle(shared, key, event.mask, event.name, &mut followers, &mut rotated, touched);
                }
                for follow in rotated.drain(..) {
                    follow.look(true);
                }
                if !any {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    warn!(error = %e, "cannot read inotify events; json-file logs are looked at again");
                    look_at_all(shared, touched);
                }
                return;
            }
        }
    }
}

/// Events were lost: every log is looked at, and its reader woken.
fn look_at_all(shared: &Shared, touched: &mut Vec<Arc<Follow>>) {
    let every: Vec<Arc<Follow>> = lock(&shared.followers).values().flatten().filter_map(Weak::upgrade).collect();
    for follow in every {
        follow.look(true);
        add_once(touched, follow);
    }
}

/// Adds `follow` to `list` unless it is there already.
fn add_once(list: &mut Vec<Arc<Follow>>, follow: Arc<Follow>) {
    if !list.iter().any(|f| Arc::ptr_eq(f, &follow)) {
        list.push(follow);
    }
}

fn handle(
    shared: &Shared,
    key: Key,
    mask: EventMask,
    name: Option<&std::ffi::OsStr>,
    followers: &mut Vec<Arc<Follow>>,
    rotated: &mut Vec<Arc<Follow>>,
    touched: &mut Vec<Arc<Follow>>,
) {
    if mask.contains(EventMask::Q_OVERFLOW) {
        // Events were lost: any log may have rotated.
        look_at_all(shared, touched);
        return;
    }
    // Upgraded under the lock, used after it: a follower dropped here takes the lock to go.
    match lock(&shared.followers).get(&key) {
        Some(list) => followers.extend(list.iter().filter_map(Weak::upgrade)),
        None => return,
    }
    let name = name.and_then(|n| n.to_str()).unwrap_or_default();
    for follow in followers.drain(..) {
        let ours = follow.log.is_ours(name);
        let current = name == follow.log.base;
        if ours && mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
            // A rotation: a new file being written, or one renamed.
            add_once(rotated, Arc::clone(&follow));
        } else if ours && !name.ends_with(".gz") && mask.contains(EventMask::DELETE) {
            let missed = lock(&follow.known).deleted();
            if missed == 0 {
                continue;
            }
            follow.mark(|n| n.missed += missed);
        } else if current && mask.contains(EventMask::CLOSE_WRITE)
            || mask.intersects(EventMask::IGNORED | EventMask::DELETE_SELF)
        {
            // The file being written was closed, or the directory is gone (the container was
            // removed): the reader asks whether the container still runs.
            if mask.contains(EventMask::CLOSE_WRITE) {
                follow.closes.fetch_add(1, Ordering::Relaxed);
            }
            follow.mark(|n| n.closed = true);
        } else if !current {
            continue;
        }
        add_once(touched, follow);
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

    /// A log followed in a directory of its own, its file created and heard of.
    async fn followed() -> (Notifier, tempfile::TempDir, Arc<Follow>, std::fs::File) {
        let notifier = Notifier::start().expect("inotify");
        let dir = tempfile::tempdir().expect("dir");
        let log = LogDir { dir: dir.path().to_owned(), base: "c-json.log".into() };
        let follow = notifier.follow(&log).expect("follow");
        let file = std::fs::File::create(log.current()).expect("create");
        changed(&follow).await;
        (notifier, dir, follow, file)
    }

    /// Until the log has not been woken for five ticks: the grid has stopped.
    async fn quiet(follow: &Follow) {
        while tokio::time::timeout(TICK * 5, follow.changed()).await.is_ok() {}
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

    #[tokio::test]
    async fn a_log_written_at_every_tick_is_read_at_every_tick_and_heard_of_again_once_quiet() {
        let (notifier, _dir, follow, mut file) = followed().await;
        // Written, and found written, twice within a tick and a half: busy (a loaded machine may
        // take longer between two looks; not for long).
        for n in 0.. {
            file.write_all(entry(n).as_bytes()).expect("write");
            changed(&follow).await;
            assert!(!follow.settle(true), "busy or not, nothing to look at again");
            if follow.busy.load(Ordering::Relaxed) {
                break;
            }
            assert!(n < 1000, "never busy");
        }
        // Nothing written: woken at every tick all the same, until quiet for two ticks.
        changed(&follow).await;
        assert!(!follow.settle(false), "one quiet tick");
        changed(&follow).await;
        assert!(follow.settle(false), "two: events are back, and the reader looks once more");
        assert!(!follow.busy.load(Ordering::Relaxed));
        // Drained: whatever the ticks left.
        quiet(&follow).await;
        // A write now is heard of.
        file.write_all(entry(0).as_bytes()).expect("write");
        changed(&follow).await;
        assert!(lock(&notifier.shared.busy).iter().all(|f| !f.ptr_eq(&Arc::downgrade(&follow))));
    }

    #[tokio::test]
    async fn a_log_that_turns_busy_while_no_tick_runs_is_still_heard() {
        let (_notifier, _dir, follow, mut file) = followed().await;
        // Quiet: the grid stops.
        quiet(&follow).await;
        // Found written at two looks in a row, as a reader held up for a while finds it: busy,
        // while no tick runs. Its next writes are heard all the same.
        assert!(!follow.settle(true));
        assert!(!follow.settle(true));
        assert!(follow.busy.load(Ordering::Relaxed));
        for n in 0..3 {
            file.write_all(entry(n).as_bytes()).expect("write");
            changed(&follow).await;
        }
    }
}
