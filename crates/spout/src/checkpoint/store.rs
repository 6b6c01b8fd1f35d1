//! The store: every container's checkpoint in memory, and one file per container under
//! `STATE_DIR/checkpoints/`, each replaced atomically (temporary file, fsync, rename).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::warn;

use super::format::{decode, encode};
use super::progress::Progress;
use crate::position::Position;

/// The watermark's file in the state directory.
const ALIVE: &str = "alive";

/// Every container's checkpoint.
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
                Ok(pos) => pos.ts_ns(),
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
    use crate::checkpoint::progress::tests::pos;

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
