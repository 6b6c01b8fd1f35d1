//! Delivery progress and checkpoints: for each container, how far every route has accepted its
//! lines, persisted in `--state-dir` so that a restarted spout resumes exactly there.
//!
//! A reader numbers the messages it ships and notes, for each, the position from which reading
//! again would reproduce it and everything after it, and which routes' filters reject it. Routes
//! take messages from their queues in order, so a route that accepted message `n` accepted every
//! earlier one it was given. A container's checkpoint is the position of the newest message every
//! route has accepted or rejected: a route that never sees a container's messages never holds
//! back its checkpoint.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::warn;

use crate::fnv::fnv1a;
use crate::position::Position;
use crate::router::route_bit;

/// Positions kept per container for messages not yet accepted everywhere (32 bytes each). Past
/// this, the newest entry stands for a range of messages: the checkpoint advances in coarser
/// steps, never further.
const MAX_PENDING: usize = 4096;

/// One container's shipped and accepted messages.
#[derive(Debug)]
pub struct Progress {
    /// Per route, the highest message number it accepted (0: none).
    accepted: Box<[AtomicU64]>,
    inner: Mutex<Shipped>,
}

/// A message not yet settled (or, past [`MAX_PENDING`], the newest of a range of them).
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    /// Where to resume once it and everything before it are accepted.
    resume: Position,
    /// The routes (bit `n`: route `n`) that reject it, and so need not accept it.
    rejected_by: u64,
    /// Docker's timestamps of the oldest and the newest message it stands for; `None` for a
    /// position reached without a message.
    ts_ns: Option<(i64, i64)>,
}

#[derive(Debug, Default)]
struct Shipped {
    next_seq: u64,
    /// Per route, the number of the newest message it wants: a route that accepted that far
    /// holds nothing back, whatever the coarse entries past [`MAX_PENDING`] say.
    wanted: Vec<u64>,
    pending: VecDeque<Pending>,
    settled: Option<Position>,
    /// Docker's timestamp of the newest message settled.
    settled_ts_ns: Option<i64>,
}

impl Progress {
    /// Progress over `routes` route slots, of which those in `retired` (bit `n`: slot `n`) are
    /// gone for good and never hold anything back.
    pub fn new(routes: usize, retired: u64) -> Self {
        let inner = Shipped { wanted: vec![0; routes], ..Shipped::default() };
        let accepted = (0..routes)
            .map(|slot| {
                let gone = retired & route_bit(slot) != 0;
                AtomicU64::new(if gone { u64::MAX } else { 0 })
            })
            .collect();
        Progress { accepted, inner: Mutex::new(inner) }
    }

    /// Route `route` is gone: nothing it was given holds anything back any more.
    pub fn release(&self, route: usize) {
        if let Some(a) = self.accepted.get(route) {
            a.store(u64::MAX, Ordering::Release);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shipped> {
        // A panic while holding this lock cannot leave it inconsistent: every update is a push or
        // a pop. Carry on with the data.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Numbers a message about to be shipped; `resume` is where reading must start again to
    /// reproduce it and everything after it; `rejected_by` the routes whose filters reject it;
    /// `ts_ns` its Docker timestamp.
    pub fn ship(&self, resume: Position, rejected_by: u64, ts_ns: i64) -> u64 {
        let mut s = self.lock();
        s.next_seq += 1;
        let seq = s.next_seq;
        // The routes that want it: usually one or two bits of 64.
        let mut wants = !rejected_by;
        while wants != 0 {
            let route = wants.trailing_zeros() as usize;
            if let Some(wanted) = s.wanted.get_mut(route) {
                *wanted = seq;
            }
            wants &= wants - 1;
        }
        if s.pending.len() >= MAX_PENDING {
            if let Some(last) = s.pending.back_mut() {
                // Settles only once everything up to `seq` is accepted, and then `resume` is right.
                // A route may skip the range only if it rejects all of it.
                let ts_ns =
                    last.ts_ns.map_or((ts_ns, ts_ns), |(oldest, newest)| (oldest.min(ts_ns), newest.max(ts_ns)));
                *last = Pending { seq, resume, rejected_by: last.rejected_by & rejected_by, ts_ns: Some(ts_ns) };
                return seq;
            }
        }
        s.pending.push_back(Pending { seq, resume, rejected_by, ts_ns: Some((ts_ns, ts_ns)) });
        seq
    }

    /// Notes a position reached without a message (the end of a stopped container's log): it
    /// settles once every message shipped before it is accepted.
    pub fn reached(&self, pos: Position) {
        let mut s = self.lock();
        let seq = s.next_seq;
        if let Some(last) = s.pending.back_mut().filter(|last| last.seq == seq) {
            last.resume = pos;
        } else if s.pending.len() < MAX_PENDING {
            // Everything shipped before has settled: every route may pass it.
            s.pending.push_back(Pending { seq, resume: pos, rejected_by: u64::MAX, ts_ns: None });
        }
    }

    /// Route `route` accepted message `seq` (and, by queue order, every earlier one).
    pub fn accept(&self, route: usize, seq: u64) {
        if let Some(a) = self.accepted.get(route) {
            a.fetch_max(seq, Ordering::Release);
        }
    }

    /// The position every route has got past, if it moved since the last call: `Some` only when
    /// there is something new to persist.
    pub fn settle(&self) -> Option<Position> {
        let accepted = self.accepted();
        let mut s = self.lock();
        let mut newest = None;
        while s.pending.front().is_some_and(|p| s.everywhere(p, &accepted)) {
            if let Some(p) = s.pending.pop_front() {
                if let Some((_, ts)) = p.ts_ns {
                    s.settled_ts_ns = Some(s.settled_ts_ns.map_or(ts, |t| t.max(ts)));
                }
                newest = Some(p.resume);
            }
        }
        if newest.is_some() && newest != s.settled {
            s.settled = newest;
            return newest;
        }
        None
    }

    /// Docker's timestamp of the oldest message read and not yet accepted by every route.
    pub fn oldest_unaccepted_ns(&self) -> Option<i64> {
        let accepted = self.accepted();
        let s = self.lock();
        s.pending.iter().skip_while(|p| s.everywhere(p, &accepted)).filter_map(|p| p.ts_ns.map(|t| t.0)).min()
    }

    /// As of the last [`Progress::settle`]: the position every route has got past, and Docker's
    /// timestamp of the newest message every route has accepted.
    pub fn settled(&self) -> (Option<Position>, Option<i64>) {
        let s = self.lock();
        (s.settled, s.settled_ts_ns)
    }

    /// What each route accepted so far. Loaded before the lock is taken, so it can only be behind.
    fn accepted(&self) -> Vec<u64> {
        self.accepted.iter().map(|a| a.load(Ordering::Acquire)).collect()
    }
}

impl Shipped {
    /// Whether every route has accepted `p` or need not: taken in order, every earlier message
    /// has settled, so a route that rejects this one has accepted everything it was given
    /// before it.
    fn everywhere(&self, p: &Pending, accepted: &[u64]) -> bool {
        accepted
            .iter()
            .zip(&self.wanted)
            .enumerate()
            .all(|(route, (&a, &wanted))| a >= p.seq || a >= wanted || p.rejected_by & route_bit(route) != 0)
    }
}

/// A message's claim on its container's progress: accepting it tells the checkpoint.
#[derive(Debug, Clone)]
pub struct Ack {
    pub progress: Arc<Progress>,
    pub seq: u64,
}

impl Ack {
    pub fn accept(&self, route: usize) {
        self.progress.accept(route, self.seq);
    }
}

/// Why a checkpoint file was not used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a spout checkpoint")]
    Format,
    #[error("checksum mismatch (torn or corrupt file)")]
    Checksum,
}

const MAGIC: &str = "spout-checkpoint 1";
/// The watermark's file in the state directory.
const ALIVE: &str = "alive";

/// The file's one line: magic, position, and a checksum of everything before it.
pub fn encode(pos: Position) -> String {
    let body = format!("{MAGIC} {} {} {}", pos.ts_ns, pos.count, pos.max_ts_ns);
    format!("{body} {:016x}\n", fnv1a(body.as_bytes()))
}

pub fn decode(text: &str) -> Result<Position, CheckpointError> {
    let line = text.strip_suffix('\n').ok_or(CheckpointError::Format)?;
    let (body, sum) = line.rsplit_once(' ').ok_or(CheckpointError::Format)?;
    let sum = u64::from_str_radix(sum, 16).map_err(|_| CheckpointError::Format)?;
    let numbers = body.strip_prefix(MAGIC).and_then(|r| r.strip_prefix(' ')).ok_or(CheckpointError::Format)?;
    if fnv1a(body.as_bytes()) != sum {
        return Err(CheckpointError::Checksum);
    }
    let mut fields = numbers.split(' ');
    let mut next = || fields.next().ok_or(CheckpointError::Format);
    let ts_ns = next()?.parse().map_err(|_| CheckpointError::Format)?;
    let count = next()?.parse().map_err(|_| CheckpointError::Format)?;
    let max_ts_ns = next()?.parse().map_err(|_| CheckpointError::Format)?;
    if fields.next().is_some() {
        return Err(CheckpointError::Format);
    }
    Ok(Position { ts_ns, count, max_ts_ns })
}

/// Every container's checkpoint: in memory, and one file per container under
/// `STATE_DIR/checkpoints/`, each replaced atomically (temporary file, fsync, rename).
pub struct Checkpoints {
    dir: PathBuf,
    /// Holds `alive`: the watermark (see `persist`).
    state_dir: PathBuf,
    /// The previous run's watermark, if there was a previous run.
    previous_run: Option<i64>,
    inner: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    /// Loaded from disk or persisted since.
    saved: HashMap<String, Position>,
    /// Settled but not yet written (a write failed, or is under way).
    unsaved: HashMap<String, Position>,
    /// The watermark last written to `alive`.
    alive_saved: Option<i64>,
    /// Containers read by this process.
    live: HashMap<String, Arc<Progress>>,
    /// Containers removed since the last save: their files are deleted by the next save, after
    /// any write of theirs it makes, so a save under way cannot bring a file back.
    removed: HashSet<String>,
}

impl Checkpoints {
    /// Opens (creating) `state_dir/checkpoints` and loads what is there. Files that cannot be
    /// read are reported and ignored: that container is read from the start of its log.
    pub fn open(state_dir: &Path) -> std::io::Result<Checkpoints> {
        let dir = state_dir.join("checkpoints");
        std::fs::create_dir_all(&dir)?;
        let mut saved = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()).filter(|n| is_container_id(n)) else {
                // Leftover temporary files of an interrupted write.
                let _ = std::fs::remove_file(&path);
                continue;
            };
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| decode(&t).map_err(|e| e.to_string()))
            {
                Ok(pos) => {
                    saved.insert(id.to_owned(), pos);
                }
                Err(e) => {
                    warn!(container = %id, path = %path.display(), error = %e, "ignoring unusable checkpoint; the container is read from the start of its log");
                    saved.insert(id.to_owned(), Position::START);
                }
            }
        }
        let alive_path = state_dir.join(ALIVE);
        let previous_run = match std::fs::read_to_string(&alive_path) {
            Ok(text) => match decode(&text) {
                Ok(pos) => Some(pos.ts_ns),
                Err(e) => {
                    warn!(path = %alive_path.display(), error = %e, "ignoring unusable state file");
                    None
                }
            },
            Err(_) => None,
        };
        let inner = Mutex::new(Store { saved, alive_saved: previous_run, ..Store::default() });
        Ok(Checkpoints { dir, state_dir: state_dir.to_owned(), previous_run, inner })
    }

    /// The watermark the previous run saved: a container it has no checkpoint for started after
    /// that, and is read from then.
    pub fn previous_run(&self) -> Option<i64> {
        self.previous_run
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where a container was left by an earlier run of spout, if anywhere.
    pub fn saved(&self, id: &str) -> Option<Position> {
        self.lock().saved.get(id).copied()
    }

    /// The progress of a container read by this process, created on first use at `from`, where
    /// its reader starts: that is its checkpoint until routes accept anything, so a restart
    /// before then reads from the same place again.
    /// `retired`: the route slots gone for good.
    pub fn progress(&self, id: &str, retired: u64, from: Position) -> Arc<Progress> {
        let mut store = self.lock();
        let progress = store.live.entry(id.to_owned()).or_insert_with(|| {
            let p = Progress::new(crate::router::MAX_ROUTES, retired);
            p.reached(from);
            Arc::new(p)
        });
        Arc::clone(progress)
    }

    /// Route `route` is gone: it holds back no container's checkpoint any more.
    pub fn release_route(&self, route: usize) {
        for progress in self.lock().live.values() {
            progress.release(route);
        }
    }

    /// Docker's timestamp of the oldest line read and not yet accepted by every route, over every
    /// container.
    pub fn oldest_unaccepted_ns(&self) -> Option<i64> {
        let live: Vec<Arc<Progress>> = self.lock().live.values().cloned().collect();
        live.iter().filter_map(|p| p.oldest_unaccepted_ns()).min()
    }

    /// Writes every checkpoint that moved, and `watermark`: every container started before it
    /// has been attached, so one without a checkpoint can be read from there by the next run.
    /// Errors are returned after trying them all.
    pub fn persist(&self, watermark_ns: i64) -> std::io::Result<usize> {
        let (moved, alive_moved): (Vec<(String, Position)>, bool) = {
            let mut store = self.lock();
            let settled: Vec<(String, Position)> =
                store.live.iter().filter_map(|(id, p)| p.settle().map(|pos| (id.clone(), pos))).collect();
            store.unsaved.extend(settled);
            let moved = store.unsaved.iter().map(|(id, pos)| (id.clone(), *pos)).collect();
            (moved, store.alive_saved != Some(watermark_ns))
        };
        let mut first_error = None;
        let mut written = 0;
        for (id, pos) in &moved {
            if self.lock().removed.contains(id) {
                continue;
            }
            match write_atomically(&self.dir, id, &encode(*pos)) {
                Ok(()) => {
                    written += 1;
                    let mut store = self.lock();
                    if store.removed.contains(id) {
                        continue;
                    }
                    store.saved.insert(id.clone(), *pos);
                    // Unless it moved on meanwhile, it is saved.
                    if store.unsaved.get(id) == Some(pos) {
                        store.unsaved.remove(id);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let removed = std::mem::take(&mut self.lock().removed);
        for id in &removed {
            match std::fs::remove_file(self.dir.join(id)) {
                Ok(()) => written += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Tried again next time.
                    self.lock().removed.insert(id.clone());
                    first_error.get_or_insert(e);
                }
            }
        }
        // The watermark moves only when the containers are listed again: written when it did.
        if alive_moved {
            let written = write_atomically(&self.state_dir, ALIVE, &encode(Position::from_time(watermark_ns)))
                .and_then(|()| std::fs::File::open(&self.state_dir).and_then(|d| d.sync_all()));
            match written {
                Ok(()) => self.lock().alive_saved = Some(watermark_ns),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if written > 0 {
            // The renames and removals themselves are durable once the directory is.
            if let Err(e) = std::fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// Forgets a container that no longer exists; the next save deletes its file (this runs on
    /// the runtime's thread, which does no file I/O).
    pub fn forget(&self, id: &str) {
        let mut store = self.lock();
        store.saved.remove(id);
        store.unsaved.remove(id);
        store.live.remove(id);
        if is_container_id(id) {
            store.removed.insert(id.to_owned());
        }
    }

    /// Forgets every container not in `existing`.
    pub fn retain(&self, existing: &HashSet<String>) {
        let gone: Vec<String> = {
            let store = self.lock();
            store.saved.keys().chain(store.live.keys()).filter(|id| !existing.contains(*id)).cloned().collect()
        };
        for id in gone {
            self.forget(&id);
        }
    }
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Replaces `dir/name` with `contents` atomically: a temporary file, fsync, rename.
pub(crate) fn write_atomically(dir: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(ts_ns: i64) -> Position {
        Position { ts_ns, count: 1, max_ts_ns: ts_ns }
    }

    #[test]
    fn settles_at_what_every_route_accepted() {
        let p = Progress::new(2, 0);
        let (a, b, c) = (p.ship(pos(10), 0, 0), p.ship(pos(20), 0, 0), p.ship(pos(30), 0, 0));
        assert_eq!(p.settle(), None);
        p.accept(0, c);
        assert_eq!(p.settle(), None, "route 1 has accepted nothing");
        p.accept(1, a);
        assert_eq!(p.settle(), Some(pos(10)));
        p.accept(1, b);
        assert_eq!(p.settle(), Some(pos(20)));
        assert_eq!(p.settle(), None, "nothing moved");
        p.reached(pos(35));
        p.accept(1, c);
        assert_eq!(p.settle(), Some(pos(35)), "the end of the log settles after the last message");
    }

    #[test]
    fn a_route_that_rejects_a_message_does_not_hold_it_back() {
        let p = Progress::new(2, 0);
        let wanted = p.ship(pos(10), 0, 0);
        let rejected = p.ship(pos(20), 0b10, 0);
        p.accept(0, rejected);
        assert_eq!(p.settle(), None, "route 1 has not accepted the message it wants");
        p.accept(1, wanted);
        assert_eq!(p.settle(), Some(pos(20)), "nor need it accept the one it rejects");
        p.ship(pos(30), 0b11, 0);
        assert_eq!(p.settle(), Some(pos(30)));
    }

    #[test]
    fn a_coarse_entry_settles_once_each_route_has_all_it_wanted() {
        let p = Progress::new(2, 0);
        for i in 0..MAX_PENDING as i64 {
            // Route 1 wants every other message.
            p.ship(pos(i), if i % 2 == 0 { 0 } else { 0b10 }, 0);
        }
        // Past the bound, the last entry stands for a range that ends with one route 1 rejects.
        let last_wanted_by_1 = p.ship(pos(MAX_PENDING as i64), 0, 0);
        let end = p.ship(pos(MAX_PENDING as i64 + 1), 0b10, 0);
        p.accept(0, end);
        p.accept(1, last_wanted_by_1);
        assert_eq!(p.settle(), Some(pos(MAX_PENDING as i64 + 1)), "route 1 has everything it wanted");
    }

    #[test]
    fn the_oldest_unaccepted_message_is_the_first_not_accepted_everywhere() {
        let p = Progress::new(2, 0);
        assert_eq!(p.oldest_unaccepted_ns(), None);
        let a = p.ship(pos(1), 0, 100);
        p.ship(pos(2), 0, 200);
        assert_eq!(p.oldest_unaccepted_ns(), Some(100));
        p.accept(0, a);
        assert_eq!(p.oldest_unaccepted_ns(), Some(100), "route 1 has not accepted it");
        p.accept(1, a);
        assert_eq!(p.oldest_unaccepted_ns(), Some(200), "settled or not, an accepted message no longer counts");
    }

    #[test]
    fn pending_positions_are_bounded() {
        let p = Progress::new(1, 0);
        let mut last = 0;
        for i in 0..(MAX_PENDING as i64 + 10) {
            last = p.ship(pos(i), 0, 0);
        }
        assert_eq!(p.lock().pending.len(), MAX_PENDING);
        p.accept(0, last - 1);
        // The coarse last entry is not settled until its whole range is accepted.
        assert_eq!(p.settle(), Some(pos(MAX_PENDING as i64 - 2)));
        p.accept(0, last);
        assert_eq!(p.settle(), Some(pos(MAX_PENDING as i64 + 9)));
    }

    #[test]
    fn files_round_trip_and_corruption_is_detected() {
        let p = Position { ts_ns: 1_795_984_225_804_920_384, count: 3, max_ts_ns: 1_795_984_225_900_000_000 };
        let text = encode(p);
        assert_eq!(decode(&text), Ok(p));
        assert_eq!(decode(&text.replace(" 3 ", " 4 ")), Err(CheckpointError::Checksum));
        assert_eq!(decode(&text[..text.len() / 2]), Err(CheckpointError::Format));
        assert_eq!(decode(""), Err(CheckpointError::Format));
        assert_eq!(decode("garbage\n"), Err(CheckpointError::Format));
        assert_eq!(decode(&encode(Position::START)), Ok(Position::START));
    }

    #[test]
    fn persisted_checkpoints_survive_reopening_and_bad_files_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        {
            let cps = Checkpoints::open(dir.path()).expect("open");
            let pa = cps.progress(&a, 0, pos(1));
            let seq = pa.ship(pos(42), !1, 0);
            pa.accept(0, seq);
            cps.progress(&b, 0, pos(5)).ship(pos(7), !1, 0);
            assert_eq!(cps.previous_run(), None);
            // a: accepted up to 42; b: nothing accepted, so where its reader started.
            assert_eq!(cps.persist(1_000).expect("persist"), 2);
            assert_eq!(cps.persist(2_000).expect("persist"), 0, "unchanged checkpoints are not rewritten");
        }
        std::fs::write(dir.path().join("checkpoints").join(&b), "spout-checkpoint 1 1 2 3 dead\n").expect("write");
        std::fs::write(dir.path().join("checkpoints").join(format!("{a}.tmp")), "half").expect("write");
        let cps = Checkpoints::open(dir.path()).expect("reopen");
        assert_eq!(cps.previous_run(), Some(2_000));
        assert_eq!(cps.saved(&a), Some(pos(42)));
        assert_eq!(cps.saved(&b), Some(Position::START), "a corrupt checkpoint means: from the start");
        assert!(!dir.path().join("checkpoints").join(format!("{a}.tmp")).exists());
        cps.retain(&HashSet::from([b.clone()]));
        assert_eq!(cps.saved(&a), None);
        assert!(
            dir.path().join("checkpoints").join(&a).exists(),
            "deleted by the next save, not on the caller's thread"
        );
        cps.persist(3_000).expect("persist");
        assert!(!dir.path().join("checkpoints").join(&a).exists());
    }

    #[test]
    fn a_removed_container_that_moved_since_the_last_save_is_deleted_not_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = "a".repeat(64);
        let cps = Checkpoints::open(dir.path()).expect("open");
        let pa = cps.progress(&a, 0, pos(1));
        let seq = pa.ship(pos(42), !1, 0);
        pa.accept(0, seq);
        cps.persist(1_000).expect("persist");
        assert!(dir.path().join("checkpoints").join(&a).exists());
        // Moved again, then removed before the next save.
        let seq = pa.ship(pos(43), !1, 0);
        pa.accept(0, seq);
        cps.forget(&a);
        cps.persist(2_000).expect("persist");
        assert!(!dir.path().join("checkpoints").join(&a).exists());
        assert_eq!(cps.saved(&a), None);
    }
}
