//! The store: every container's checkpoint in memory, and all of them in one file,
//! `STATE_DIR/positions`, replaced atomically (temporary file, fsync, rename) when any moved:
//! two fsyncs a save however many containers there are. A line a container, `ID CHECKPOINT`,
//! each checkpoint in [`super::format`]'s format with its own checksum, and one `alive` line
//! for the watermark.
//!
//! spout used to keep a file per container under `STATE_DIR/checkpoints/` (an fsync each, every
//! save) and the watermark in `STATE_DIR/alive`. Those are read when there is no newer
//! `positions`, and deleted once a `positions` holding them is saved.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tracing::warn;

use super::format::{decode, encode};
use super::progress::Progress;
use crate::position::Position;

/// The positions' file in the state directory.
const POSITIONS: &str = "positions";
/// Its watermark's key.
const ALIVE: &str = "alive";
/// Where spout used to keep them: a directory of one file per container, and the watermark.
const LEGACY_DIR: &str = "checkpoints";
const LEGACY_ALIVE: &str = "alive";

/// Every container's checkpoint.
pub struct Checkpoints {
    state_dir: PathBuf,
    /// The previous run's watermark, if there was a previous run.
    previous_run: Option<i64>,
    inner: Mutex<Store>,
}

#[derive(Default)]
struct Store {
    /// Loaded from disk or settled since: what the next save writes.
    positions: HashMap<String, Position>,
    /// Something changed since the last save that succeeded.
    dirty: bool,
    /// The watermark last written.
    alive_saved: Option<i64>,
    /// Containers read by this process.
    live: HashMap<String, Arc<Progress>>,
    /// Forgotten since the save under way took its copy: not to be brought back by it.
    forgotten: HashSet<String>,
    /// Files of the old layout, deleted by the first save.
    legacy: Vec<PathBuf>,
}

/// What is on disk: every container's position, and the watermark.
#[derive(Debug, Default)]
pub struct Saved {
    pub positions: HashMap<String, Position>,
    pub alive: Option<i64>,
}

impl Saved {
    /// Reads the positions' file in `state_dir` (and the old layout's files, where newer). A
    /// checkpoint that cannot be read is reported and kept as [`Position::START`]: that
    /// container is read from the start of its log.
    pub fn read(state_dir: &Path) -> std::io::Result<(Saved, Vec<PathBuf>)> {
        let mut saved = Saved::default();
        let path = state_dir.join(POSITIONS);
        let written = match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    saved.take(line, &path);
                }
                Some(std::fs::metadata(&path)?.modified()?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let legacy = saved.take_legacy(state_dir, written)?;
        Ok((saved, legacy))
    }

    /// One line of the positions' file.
    fn take(&mut self, line: &str, path: &Path) {
        let Some((key, checkpoint)) = line.split_once(' ') else {
            warn!(path = %path.display(), line, "ignoring a line that is not a checkpoint");
            return;
        };
        self.take_checkpoint(key, &format!("{checkpoint}\n"), path);
    }

    /// A file of the old layout, holding one checkpoint.
    fn take_file(&mut self, key: &str, path: &Path) {
        // Unreadable is as unusable as corrupt.
        let text = std::fs::read_to_string(path).unwrap_or_default();
        self.take_checkpoint(key, &text, path);
    }

    fn take_checkpoint(&mut self, key: &str, text: &str, path: &Path) {
        match (key, decode(text)) {
            (ALIVE, Ok(pos)) => self.alive = pos.ts_ns(),
            (ALIVE, Err(e)) => warn!(path = %path.display(), error = %e, "ignoring an unusable watermark"),
            (id, _) if !is_container_id(id) => {
                warn!(path = %path.display(), key = id, "ignoring a checkpoint that is not a container's");
            }
            (id, Ok(pos)) => {
                self.positions.insert(id.to_owned(), pos);
            }
            (id, Err(e)) => {
                warn!(container = %id, path = %path.display(), error = %e, "ignoring unusable checkpoint; the container is read from the start of its log");
                self.positions.insert(id.to_owned(), Position::START);
            }
        }
    }

    /// The old layout's files: those written after `written` (the positions' file's time, if
    /// there is one: an older spout ran since) count, all are to be deleted.
    fn take_legacy(&mut self, state_dir: &Path, written: Option<SystemTime>) -> std::io::Result<Vec<PathBuf>> {
        let newer = |path: &Path| match (written, std::fs::metadata(path).and_then(|m| m.modified())) {
            (None, _) => true,
            (Some(written), Ok(modified)) => modified > written,
            (Some(_), Err(_)) => false,
        };
        let mut legacy = Vec::new();
        let alive = state_dir.join(LEGACY_ALIVE);
        if alive.is_file() {
            if newer(&alive) {
                self.take_file(ALIVE, &alive);
            }
            legacy.push(alive);
        }
        let dir = state_dir.join(LEGACY_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(legacy),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let id = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            // Leftover temporary files of an interrupted write are only deleted.
            if is_container_id(&id) && newer(&path) {
                self.take_file(&id, &path);
            }
            legacy.push(path);
        }
        legacy.push(dir);
        Ok(legacy)
    }
}

impl Checkpoints {
    /// Opens `state_dir` (created already) and loads what is saved there.
    pub fn open(state_dir: &Path) -> std::io::Result<Checkpoints> {
        let (saved, legacy) = Saved::read(state_dir)?;
        let dirty = !legacy.is_empty();
        let inner = Mutex::new(Store {
            positions: saved.positions,
            alive_saved: saved.alive,
            dirty,
            legacy,
            ..Store::default()
        });
        Ok(Checkpoints { state_dir: state_dir.to_owned(), previous_run: saved.alive, inner })
    }

    /// The watermark the previous run saved: a container it has no checkpoint for started after
    /// that, and is read from then.
    pub fn previous_run(&self) -> Option<i64> {
        self.previous_run
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where a container was left, by an earlier run of spout or as last saved by this one.
    pub fn saved(&self, id: &str) -> Option<Position> {
        self.lock().positions.get(id).copied()
    }

    /// The progress of a container read by this process, created on first use at `from`, where
    /// its reader starts: that is its checkpoint until routes accept anything, so a restart
    /// before then reads from the same place again.
    /// `retired`: the route slots gone for good.
    pub fn progress(&self, id: &str, retired: u64, from: Position) -> Arc<Progress> {
        let mut store = self.lock();
        let progress = store.live.entry(id.to_owned()).or_insert_with(|| {
            let p = Progress::new(crate::slots::MAX_ROUTES, retired);
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

    /// Saves every checkpoint, if any moved, and `watermark`: every container started before it
    /// has been attached, so one without a checkpoint can be read from there by the next run.
    /// Returns how many containers' checkpoints moved or went.
    pub fn persist(&self, watermark_ns: i64) -> std::io::Result<usize> {
        let (text, changed, legacy) = {
            let mut store = self.lock();
            let settled: Vec<(String, Position)> =
                store.live.iter().filter_map(|(id, p)| p.settle().map(|pos| (id.clone(), pos))).collect();
            let mut changed = 0;
            for (id, pos) in settled {
                if store.positions.insert(id, pos) != Some(pos) {
                    changed += 1;
                }
            }
            store.dirty |= changed > 0 || store.alive_saved != Some(watermark_ns);
            if !store.dirty {
                return Ok(0);
            }
            store.dirty = false;
            changed += store.forgotten.len();
            store.forgotten.clear();
            let mut text = format!("{ALIVE} {}", encode(Position::from_time(watermark_ns)));
            let mut ids: Vec<&String> = store.positions.keys().collect();
            ids.sort_unstable();
            for id in ids {
                text.push_str(id);
                text.push(' ');
                text.push_str(&encode(store.positions[id]));
            }
            (text, changed, store.legacy.clone())
        };
        let saved = write_atomically(&self.state_dir, POSITIONS, &text)
            // The rename itself is durable once the directory is.
            .and_then(|()| std::fs::File::open(&self.state_dir).and_then(|d| d.sync_all()));
        let mut store = self.lock();
        if let Err(e) = saved {
            store.dirty = true;
            return Err(e);
        }
        store.alive_saved = Some(watermark_ns);
        // Forgotten meanwhile: the next save leaves it out.
        store.dirty |= !store.forgotten.is_empty();
        if !legacy.is_empty() {
            drop(store);
            remove_legacy(&legacy);
            self.lock().legacy.clear();
        }
        Ok(changed)
    }

    /// Forgets a container that no longer exists; the next save leaves it out.
    pub fn forget(&self, id: &str) {
        let mut store = self.lock();
        let known = store.positions.remove(id).is_some();
        store.live.remove(id);
        if known {
            store.forgotten.insert(id.to_owned());
            store.dirty = true;
        }
    }

    /// Forgets every container not in `existing`.
    pub fn retain(&self, existing: &HashSet<String>) {
        let gone: Vec<String> = {
            let store = self.lock();
            store.positions.keys().chain(store.live.keys()).filter(|id| !existing.contains(*id)).cloned().collect()
        };
        for id in gone {
            self.forget(&id);
        }
    }
}

/// Deletes the old layout's files, now that the positions' file holds what they held; what
/// cannot be deleted is reported once, and read again (and found older) by the next start.
fn remove_legacy(paths: &[PathBuf]) {
    for path in paths {
        let removed = if path.is_dir() { std::fs::remove_dir(path) } else { std::fs::remove_file(path) };
        if let Err(e) = removed.or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }) {
            warn!(path = %path.display(), error = %e, "cannot delete a checkpoint file of an earlier spout");
        }
    }
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Replaces `dir/name` with `contents` atomically: a temporary file, fsync, rename. Only its
/// owner may read it (routes added through the API may carry credentials in headers).
pub(crate) fn write_atomically(dir: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!("{name}.tmp"));
    // Left by a crash, it may have other permissions: made afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::progress::tests::pos;

    fn accepted(cps: &Checkpoints, id: &str, at: Position) {
        let p = cps.progress(id, 0, pos(1));
        let seq = p.ship(at, !1, 0);
        p.accept(0, seq);
    }

    /// Checkpoints in `dir` with two containers' saved: a's at 42, b's at 43.
    fn two_saved(dir: &Path) -> (Checkpoints, String, String) {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let cps = Checkpoints::open(dir).expect("open");
        accepted(&cps, &a, pos(42));
        accepted(&cps, &b, pos(43));
        cps.persist(1_000).expect("persist");
        (cps, a, b)
    }

    #[test]
    fn every_checkpoint_is_saved_in_one_file_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        {
            let cps = Checkpoints::open(dir.path()).expect("open");
            accepted(&cps, &a, pos(42));
            // b: nothing accepted, so where its reader started.
            cps.progress(&b, 0, pos(5)).ship(pos(7), !1, 0);
            assert_eq!(cps.previous_run(), None);
            assert_eq!(cps.persist(1_000).expect("persist"), 2);
            assert_eq!(cps.persist(1_000).expect("persist"), 0, "nothing moved");
            assert_eq!(cps.persist(2_000).expect("persist"), 0, "the watermark moved: saved, no checkpoint changed");
        }
        let entries: Vec<String> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries, [POSITIONS], "one file, no temporary one left");
        let cps = Checkpoints::open(dir.path()).expect("reopen");
        assert_eq!(cps.previous_run(), Some(2_000));
        assert_eq!(cps.saved(&a), Some(pos(42)));
        assert_eq!(cps.saved(&b), Some(pos(5)));
    }

    #[test]
    fn a_corrupt_line_costs_only_its_container_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_saved, a, b) = two_saved(dir.path());
        let path = dir.path().join(POSITIONS);
        let text = std::fs::read_to_string(&path).expect("read");
        // One digit of b's line changed: its checksum no longer matches.
        let bad: Vec<String> = text
            .lines()
            .map(|l| if l.starts_with(&b) { l.replacen(" 43 ", " 44 ", 1) } else { l.to_owned() })
            .collect();
        assert_ne!(bad.join("\n") + "\n", text);
        std::fs::write(&path, bad.join("\n") + "\nnot a checkpoint\n").expect("write");
        let cps = Checkpoints::open(dir.path()).expect("reopen");
        assert_eq!(cps.saved(&a), Some(pos(42)));
        assert_eq!(cps.saved(&b), Some(Position::START), "a corrupt checkpoint means: from the start");
        assert_eq!(cps.previous_run(), Some(1_000));
    }

    #[test]
    fn forgotten_containers_are_left_out_of_the_next_save_even_one_under_way() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cps, a, b) = two_saved(dir.path());
        cps.retain(&HashSet::from([b.clone()]));
        assert_eq!(cps.saved(&a), None);
        assert_eq!(cps.persist(1_000).expect("persist"), 1, "a went");
        let cps = Checkpoints::open(dir.path()).expect("reopen");
        assert_eq!((cps.saved(&a), cps.saved(&b)), (None, Some(pos(43))));
    }

    #[test]
    fn the_old_layout_is_read_then_replaced_and_read_again_only_where_newer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let legacy = dir.path().join(LEGACY_DIR);
        std::fs::create_dir(&legacy).expect("mkdir");
        std::fs::write(legacy.join(&a), encode(pos(42))).expect("write");
        std::fs::write(legacy.join(&b), "spout-checkpoint 1 1 2 3 dead\n").expect("write");
        std::fs::write(legacy.join(format!("{a}.tmp")), "half").expect("write");
        std::fs::write(dir.path().join(LEGACY_ALIVE), encode(Position::from_time(7_000))).expect("write");
        let cps = Checkpoints::open(dir.path()).expect("open");
        assert_eq!(cps.previous_run(), Some(7_000));
        assert_eq!(cps.saved(&a), Some(pos(42)));
        assert_eq!(cps.saved(&b), Some(Position::START));
        cps.persist(8_000).expect("persist");
        assert!(!legacy.exists() && !dir.path().join(LEGACY_ALIVE).exists(), "the old files are gone once saved anew");
        let cps = Checkpoints::open(dir.path()).expect("reopen");
        assert_eq!(cps.saved(&a), Some(pos(42)));
        assert_eq!(cps.previous_run(), Some(8_000));
        // An older spout ran since, and wrote its own layout again: its files are the newer.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::create_dir(&legacy).expect("mkdir");
        std::fs::write(legacy.join(&a), encode(pos(50))).expect("write");
        let cps = Checkpoints::open(dir.path()).expect("reopen");
        assert_eq!(cps.saved(&a), Some(pos(50)));
    }
}
