//! Where a reader is in a container's log, in the daemon's own terms: the timestamp of the last
//! entry consumed and how many entries carrying exactly that timestamp were consumed (the pieces
//! of a split line share one, and so can lines written within the same nanosecond).

/// A point in a container's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub ts_ns: i64,
    pub count: u32,
}

impl Position {
    /// Before the first entry: everything is new.
    pub const START: Position = Position { ts_ns: i64::MIN, count: 0 };

    /// Entries stamped at or after `ts_ns` are new.
    pub fn from_time(ts_ns: i64) -> Self {
        Position { ts_ns, count: 0 }
    }

    /// The `since` to ask the daemon for: whole seconds, rounded down so that the entries at
    /// this position's own timestamp come back and can be counted off.
    pub fn since_secs(&self) -> i32 {
        if self.ts_ns <= 0 {
            return 0;
        }
        i32::try_from(self.ts_ns.div_euclid(1_000_000_000)).unwrap_or(i32::MAX)
    }
}

/// Decides, entry by entry, which entries of a freshly opened stream are new, and keeps the
/// position up to date as they are consumed.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// Everything up to here has been consumed.
    pos: Position,
    /// Entries seen in the current stream at `pos.ts_ns` when that is where the stream resumed.
    seen_at: (i64, u32),
}

impl Cursor {
    pub fn new(pos: Position) -> Self {
        Cursor { pos, seen_at: (i64::MIN, 0) }
    }

    pub fn position(&self) -> Position {
        self.pos
    }

    /// Call before reading a new stream opened at `since_secs()`.
    pub fn restart_stream(&mut self) {
        self.seen_at = (i64::MIN, 0);
    }

    /// True when the entry stamped `ts_ns` is new (and counts it as consumed), false when it was
    /// consumed before.
    pub fn admit(&mut self, ts_ns: i64) -> bool {
        if ts_ns < self.pos.ts_ns {
            // Older than the position: consumed before. (stdout and stderr are stamped by two
            // copiers and can be stored a few microseconds out of order; the position never
            // moves backwards for them.)
            return false;
        }
        if ts_ns == self.pos.ts_ns {
            if self.seen_at.0 != ts_ns {
                self.seen_at = (ts_ns, 0);
            }
            self.seen_at.1 += 1;
            if self.seen_at.1 <= self.pos.count {
                return false;
            }
            self.pos.count = self.seen_at.1;
            return true;
        }
        self.pos = Position { ts_ns, count: 1 };
        self.seen_at = (ts_ns, 1);
        true
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
        let mut first = Cursor::new(Position::START);
        // Consume up to the second entry at 20, then the stream is cut.
        assert_eq!(admitted(&mut first, &log[..3]), vec![10, 20, 20]);
        assert_eq!(first.position(), Position { ts_ns: 20, count: 2 });
        // The daemon sends everything again from the whole second; only the rest is new.
        assert_eq!(admitted(&mut first, &log), vec![20, 30]);
        assert_eq!(first.position(), Position { ts_ns: 30, count: 1 });
        assert_eq!(admitted(&mut first, &log), Vec::<i64>::new());
    }

    #[test]
    fn start_time_admits_entries_at_or_after_it() {
        let mut c = Cursor::new(Position::from_time(20));
        assert_eq!(admitted(&mut c, &[10, 19, 20, 21]), vec![20, 21]);
    }

    #[test]
    fn out_of_order_entries_do_not_move_the_position_back() {
        let mut c = Cursor::new(Position::START);
        assert_eq!(admitted(&mut c, &[10, 12, 11, 13]), vec![10, 12, 13]);
        assert_eq!(c.position(), Position { ts_ns: 13, count: 1 });
    }

    #[test]
    fn since_is_whole_seconds_rounded_down() {
        assert_eq!(Position::START.since_secs(), 0);
        assert_eq!(Position::from_time(1_795_984_225_804_920_384).since_secs(), 1_795_984_225);
    }
}
