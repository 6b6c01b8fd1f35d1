//! Where a reader is in a container's log, in the terms of where the log is read from.
//!
//! Through the logs API ([`ApiPosition`]) there are no offsets, only timestamps, and the log
//! file is not in timestamp order (see [`Cursor`]), so a position names the last entry consumed
//! (its timestamp, and which occurrence of that timestamp it was: the pieces of a split line
//! share one) and the latest timestamp consumed so far. Reading json-file logs directly
//! ([`FilePosition`]), a position is a file, by identity, and a byte offset in it.

/// A point in a container's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Api(ApiPosition),
    File(FilePosition),
}

impl Position {
    /// Before the first entry: everything is new.
    pub const START: Position = Position::Api(ApiPosition::START);

    /// Entries stamped at or after `ts_ns`, and everything stored after the first of them, are new.
    pub fn from_time(ts_ns: i64) -> Self {
        Position::Api(ApiPosition::from_time(ts_ns))
    }

    /// Docker's timestamp of the last entry consumed, if any was.
    pub fn ts_ns(&self) -> Option<i64> {
        match self {
            Position::Api(p) => (p.ts_ns != i64::MIN).then_some(p.ts_ns),
            Position::File(p) => Some(p.ts_ns),
        }
    }

    /// The same point for reading through the logs API. A file position has no count of
    /// timestamps, so it becomes everything stamped from a margin before its entry: some
    /// entries again, none lost.
    pub fn for_api(&self) -> ApiPosition {
        match self {
            Position::Api(p) => *p,
            Position::File(p) => ApiPosition::from_time(p.ts_ns.saturating_sub(REOPEN_MARGIN_NS)),
        }
    }
}

/// A point in a container's log as the logs API can find it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiPosition {
    /// Timestamp of the last entry consumed.
    pub ts_ns: i64,
    /// Which entry carrying `ts_ns`, counted in file order from 1, the last consumed one was.
    pub count: u32,
    /// The latest timestamp of any entry consumed. Every entry stamped later is unconsumed.
    pub max_ts_ns: i64,
}

impl ApiPosition {
    /// Before the first entry: everything is new.
    pub const START: ApiPosition = ApiPosition { ts_ns: i64::MIN, count: 0, max_ts_ns: i64::MIN };

    /// Entries stamped at or after `ts_ns`, and everything stored after the first of them, are new.
    pub fn from_time(ts_ns: i64) -> Self {
        ApiPosition { ts_ns, count: 0, max_ts_ns: ts_ns.saturating_sub(1) }
    }
}

/// A json-file log file, whatever it is called now: the daemon renames it at each rotation,
/// and may compress it (a new inode). Inodes are reused, so the file's first line (which carries
/// a timestamp in nanoseconds) says which file it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// A hash of the file's first line, with its newline; 0 while it has none.
    pub fingerprint: u64,
}

/// A point in a json-file log: the end of the last entry consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePosition {
    pub file: FileId,
    /// Bytes of the file consumed (of its uncompressed content).
    pub offset: u64,
    /// Docker's timestamp of the last entry consumed.
    pub ts_ns: i64,
}

/// How far before a position a reopened stream starts. The daemon stamps stdout and stderr in
/// two copiers and stores them in batches, so the log file is not in timestamp order: an entry
/// stored after the position can carry an earlier time (seen: 50 stdout lines stored before a
/// stderr line stamped earlier than most of them; 3 ms earlier at most among 40,000 lines of a
/// fast writer on both streams). A copier starved of a CPU stamps its line and stores it later:
/// a second covers the longest such stall seen on a loaded machine (117 ms) many times over.
const REOPEN_MARGIN_NS: i64 = 1_000_000_000;

/// Distinct timestamps whose occurrences are counted at once; entries sharing a timestamp (the
/// pieces of one line) are stored close together.
const RECENT: usize = 8;

/// Decides, entry by entry, which entries of a freshly opened stream are new, and keeps the
/// position up to date as they are consumed.
///
/// The daemon returns entries in file order. A reopened stream skips up to and including the last
/// consumed entry, then takes everything after it, whatever its timestamp. Before that entry
/// comes, an entry stamped later than every consumed one can only be new (everything consumed
/// is stamped no later than `max_ts_ns`), so it is taken; anything else is skipped.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// The last consumed entry.
    pos: ApiPosition,
    /// Where the current stream resumes, and whether it has got there.
    resume: ApiPosition,
    passed: bool,
    /// Occurrences of recent timestamps in the current stream, oldest replaced first.
    recent: [(i64, u32); RECENT],
    next_slot: usize,
}

impl Cursor {
    pub fn new(pos: ApiPosition) -> Self {
        let mut cursor = Cursor { pos, resume: pos, passed: false, recent: [(i64::MIN, 0); RECENT], next_slot: 0 };
        cursor.restart_stream();
        cursor
    }

    pub fn position(&self) -> ApiPosition {
        self.pos
    }

    /// The `since` for the next stream, in nanoseconds (0: from the start): a margin before the
    /// position, and no later than `held_since_ns` (the timestamp of a line still being merged,
    /// whose remaining pieces carry it).
    pub fn since_ns(&self, held_since_ns: Option<i64>) -> i64 {
        let from = held_since_ns.map_or(self.pos.ts_ns, |held| held.min(self.pos.ts_ns));
        if from <= 0 {
            return 0;
        }
        (from - REOPEN_MARGIN_NS).max(1)
    }

    /// Call before reading a new stream opened at `since_ns()`.
    pub fn restart_stream(&mut self) {
        self.resume = self.pos;
        self.passed = self.pos == ApiPosition::START;
        self.recent = [(i64::MIN, 0); RECENT];
    }

    /// True when the entry stamped `ts_ns` is new (and counts it as consumed), false when it was
    /// consumed before.
    pub fn admit(&mut self, ts_ns: i64) -> bool {
        let occurrence = self.count(ts_ns);
        if !self.passed {
            let r = self.resume;
            if ts_ns == r.ts_ns && occurrence == r.count {
                // The last consumed entry: everything after it is new.
                self.passed = true;
                return false;
            }
            if ts_ns <= r.max_ts_ns {
                return false;
            }
            // Later than anything consumed (the position was a start time, or its entry is
            // gone): new from here on.
            self.passed = true;
        }
        self.pos = ApiPosition { ts_ns, count: occurrence, max_ts_ns: self.pos.max_ts_ns.max(ts_ns) };
        true
    }

    /// Counts one more entry stamped `ts_ns` in this stream and returns its occurrence number.
    /// A timestamp pushed out of the recent set starts again at 1, which can only make a later
    /// resume stop early (duplicates), never late (loss).
    fn count(&mut self, ts_ns: i64) -> u32 {
        if let Some(slot) = self.recent.iter_mut().find(|(ts, _)| *ts == ts_ns) {
            slot.1 += 1;
            return slot.1;
        }
        self.recent[self.next_slot] = (ts_ns, 1);
        self.next_slot = (self.next_slot + 1) % RECENT;
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(cursor: &mut Cursor, stream: &[i64]) -> Vec<i64> {
        cursor.restart_stream();
        stream.iter().copied().filter(|&ts| cursor.admit(ts)).collect()
    }

    #[test]
    fn resuming_skips_exactly_what_was_consumed() {
        let log = [10, 20, 20, 20, 30];
        let mut c = Cursor::new(ApiPosition::START);
        // Consume up to the second entry at 20, then the stream is cut.
        assert_eq!(admitted(&mut c, &log[..3]), vec![10, 20, 20]);
        assert_eq!(c.position(), ApiPosition { ts_ns: 20, count: 2, max_ts_ns: 20 });
        // The daemon sends everything again from before the position; only the rest is new.
        assert_eq!(admitted(&mut c, &log), vec![20, 30]);
        assert_eq!(c.position(), ApiPosition { ts_ns: 30, count: 1, max_ts_ns: 30 });
        assert_eq!(admitted(&mut c, &log), Vec::<i64>::new());
    }

    #[test]
    fn entries_stored_out_of_timestamp_order_are_neither_lost_nor_repeated() {
        // stdout stored in a batch before a stderr entry stamped earlier.
        let log = [10, 12, 14, 11, 13, 15];
        let mut c = Cursor::new(ApiPosition::START);
        assert_eq!(admitted(&mut c, &log), log.to_vec());
        for cut in 1..log.len() {
            let mut c = Cursor::new(ApiPosition::START);
            let mut got = admitted(&mut c, &log[..cut]);
            got.extend(admitted(&mut c, &log));
            assert_eq!(got, log.to_vec(), "cut after {cut} entries");
        }
    }

    #[test]
    fn start_time_admits_entries_from_the_first_at_or_after_it() {
        let mut c = Cursor::new(ApiPosition::from_time(20));
        assert_eq!(admitted(&mut c, &[10, 19, 20, 21, 15]), vec![20, 21, 15]);
    }

    #[test]
    fn a_vanished_position_entry_does_not_stall_the_stream() {
        let mut c = Cursor::new(ApiPosition { ts_ns: 20, count: 5, max_ts_ns: 20 });
        assert_eq!(admitted(&mut c, &[10, 20, 20, 30, 40]), vec![30, 40]);
    }

    #[test]
    fn since_is_a_second_before_to_the_nanosecond() {
        assert_eq!(Cursor::new(ApiPosition::START).since_ns(None), 0);
        let c = Cursor::new(ApiPosition::from_time(1_795_984_225_804_920_384));
        assert_eq!(c.since_ns(None), 1_795_984_224_804_920_384);
        assert_eq!(c.since_ns(Some(1_795_984_100_000_000_000)), 1_795_984_099_000_000_000);
        assert_eq!(c.since_ns(Some(1_795_984_300_000_000_000)), 1_795_984_224_804_920_384);
    }
}
