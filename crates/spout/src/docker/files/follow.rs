//! A container's json-file log read directly, from a position to the end of the run: the file
//! being written, then each file the daemon creates at a rotation (opened the moment it is
//! created, so that a rotated file is read to its end through its descriptor even after the
//! daemon deleted it), woken on the notifier's grid.
//!
//! The reader stops when the daemon closed the file being written and an inspect says the
//! container stopped: everything it wrote is in the file by then.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use super::chain::{LogDir, LogFile};
use super::decode::Decoded;
use super::notify::{too_many, Follow, News, LET_GO};
use crate::docker::context::{ExitReason, ReaderContext};
use crate::docker::source::ErrorClass;
use crate::line::Span;
use crate::outlet::Outlet;
use crate::pipeline::Pipeline;
use crate::position::{Cursor, FilePosition, Position};
use crate::timestamp::format_rfc3339_ns;

/// Bytes read from the files in one turn before the reader ships and lets the others run.
const TURN_BYTES: usize = 256 * 1024;
/// Without inotify, how often a file is looked at for more, and (every [`POLLS_PER_CHECK`]th
/// time while nothing comes) the container asked whether it still runs.
const POLL: Duration = Duration::from_millis(250);
const POLLS_PER_CHECK: u32 = 8;
/// Entries of another file stamped this much before a position may still come after it (the
/// daemon's two copiers stamp and store in batches).
const DISORDER_NS: i64 = 2_000_000_000;

/// What a reader needs to follow a container's files.
pub struct Files<'a> {
    pub id: &'a str,
    pub ctx: &'a ReaderContext,
    pub pipeline: &'a mut Pipeline,
    pub outlet: &'a mut Outlet,
    /// Where the reader is: the end of the last entry consumed.
    pub position: &'a mut Position,
    /// When the run the reader reads started.
    pub started_ns: &'a mut Option<i64>,
}

/// A log opened to be followed: its files now (oldest first), and what the notifier says of it.
pub struct Opened {
    pub log: LogDir,
    pub files: Vec<LogFile>,
    /// What the notifier tells of it (unwatched, without inotify: its reader polls).
    pub follow: Arc<Follow>,
    /// The container may have stopped before the watch began (its file closed unheard): its
    /// reader asks, once it has read what is there.
    pub ask: bool,
    /// The size at which the daemon truncates the file in place ([`super::truncated_at`]).
    pub truncated_at: Option<u64>,
}

impl Opened {
    /// Follows `log` and opens its files, through the follow, so that no file is missed or
    /// taken twice should the daemon rotate meanwhile. `Ok` with no file: there is no json-file
    /// log there.
    pub fn open(log: LogDir, ctx: &ReaderContext) -> std::io::Result<Opened> {
        let follow = match &ctx.files.notifier {
            Some(notifier) => match notifier.follow(&log) {
                Ok(follow) => follow,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(e),
                Err(e) => {
                    debug!(dir = %log.dir.display(), error = %e, "cannot watch a log directory; polling it");
                    Arc::new(Follow::unwatched(&log))
                }
            },
            None => Arc::new(Follow::unwatched(&log)),
        };
        // An unreadable directory says so here.
        std::fs::read_dir(&log.dir)?;
        follow.look(false);
        let news = follow.take();
        if news.rescan {
            return Err(std::io::Error::other("cannot list the log directory"));
        }
        Ok(Opened { log, files: news.created.into(), follow, ask: news.closed, truncated_at: None })
    }
}

/// One step of reading.
enum Turn {
    /// A turn's worth was read, or a batch filled: ship and go on.
    More,
    /// The file being read has nothing more for now.
    End,
}

/// What an inspect said of a container whose log file was closed.
enum Asked {
    Running,
    Stopped(ExitReason),
    /// It could not be asked (or spout is stopping).
    Unknown,
}

impl Files<'_> {
    /// Reads the container's log from `*position` until it stops, is removed, or spout stops.
    pub async fn run(mut self, opened: Opened, running: bool) -> ExitReason {
        let Opened { log: _, files, follow, ask, truncated_at } = opened;
        let (mut current, mut next, mut cursor) = match self.start(files, &follow) {
            Some(start) => start,
            None => return ExitReason::Shutdown,
        };
        // The files behind the first one read that were there at start: the log as the daemon
        // keeps it, held whatever their number.
        let mut found = next.len();
        let mut polls = 0;
        // A job found exited is read to its end and no further.
        let mut check_stopped = !running || ask;
        // The end of the file being read was reached after the next file was known to exist:
        // it was complete then (the daemon writes one file at a time), so that end is its end.
        let mut complete = false;
        // The container has stopped: every file is read to its end, then the reader is done.
        let mut stopped: Option<ExitReason> = None;
        // The directory could not be listed: it is looked at again after a pause.
        let mut look_again = false;
        // The closes of the file being written that a truncation was looked for after.
        let mut closes_seen = 0;
        // An inspect failed: the container is asked about again after a pause.
        let mut ask_again = false;
        let mut read_errors = 0u32;
        // New bytes were read since the reader last waited.
        let mut heard = false;
        loop {
            let turn = match self.turn(&mut current, &mut cursor, &mut heard) {
                Ok(turn) => turn,
                Err(e) => {
                    // A read from an open file failing is the disk's trouble: try again in a
                    // while, and not as the end of a file complete.
                    read_errors += 1;
                    if read_errors.is_power_of_two() {
                        warn!(container = %self.id, file = %current.name, error = %e, failures = read_errors,
                              "cannot read a log file; trying again");
                    }
                    complete = false;
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => continue,
                        () = self.ctx.cancel.cancelled() => return ExitReason::Shutdown,
                    }
                }
            };
            if !self.outlet.ship(self.pipeline).await {
                return ExitReason::Shutdown;
            }
            if let Some(capacity) = truncated_at {
                // The daemon closes the file, then opens it truncated: from a close heard on (at
                // every turn without inotify), the file is looked at after every turn until the
                // truncation is seen, so that a reader behind, or held up shipping, does not read
                // on into what the daemon wrote after it. No close, no system call.
                let closes = follow.closes();
                if (closes != closes_seen || !follow.watched()) && self.truncated(&mut current, capacity, &follow) {
                    closes_seen = closes;
                    continue;
                }
            }
            if let Turn::More = turn {
                tokio::task::yield_now().await;
                continue;
            }
            if !follow.watched() || look_again {
                look_again = false;
                follow.look(true);
            }
            let news = follow.take();
            check_stopped |= news.closed;
            if news.rescan {
                // The directory cannot be listed now (gone with the container, or no descriptor
                // left): looked at again after a pause, and the container asked about.
                look_again = true;
                check_stopped = true;
            }
            self.take_news(news, &mut next, found, &follow);
            if !next.is_empty() {
                if !complete {
                    // Written to until the next file was made: read it to its end once more.
                    complete = true;
                    continue;
                }
                complete = false;
                let left = current.lines().held();
                if left > 0 {
                    // Not a whole entry, and nothing will complete it.
                    self.ctx.stats.garbage_bytes.add(left as u64);
                }
                debug!(container = %self.id, from = %current.name, "log file rotated; reading the next one");
                follow.release(&current.id);
                if let Some(successor) = next.pop_front() {
                    current = successor;
                    found = found.saturating_sub(1);
                }
                continue;
            }
            if let Some(reason) = stopped {
                return self.finish(reason).await;
            }
            if check_stopped {
                check_stopped = false;
                match self.stopped().await {
                    // Read what came before the file was closed, then finish.
                    Asked::Stopped(reason) => {
                        stopped = Some(reason);
                        continue;
                    }
                    Asked::Running => {}
                    Asked::Unknown if self.ctx.cancel.is_cancelled() => return ExitReason::Shutdown,
                    Asked::Unknown => ask_again = true,
                }
            }
            if follow.settle(std::mem::take(&mut heard)) {
                // Heard of by events again: what came before they were back made none.
                continue;
            }
            // Nothing more for now: wait for news (writes come at most once a tick, on the grid
            // every reader shares), or for a message under way to be complete; polled without
            // inotify, or to try again what failed.
            let poll = (!follow.watched() || look_again || ask_again).then(|| tokio::time::Instant::now() + POLL);
            tokio::select! {
                () = changed(&follow, poll) => {
                    if !follow.watched() {
                        polls += 1;
                        check_stopped |= polls % POLLS_PER_CHECK == 0;
                    }
                    check_stopped |= std::mem::take(&mut ask_again);
                }
                () = sleep_until(self.pipeline.deadline()) => {
                    self.pipeline.expire(tokio::time::Instant::now());
                }
                () = self.ctx.cancel.cancelled() => return ExitReason::Shutdown,
            }
        }
    }

    /// Where reading starts: the file of the position, found by identity, and the files after
    /// it; or, for a position in the API's terms (an older checkpoint, a start time), the file
    /// its first new entry can be in, with a cursor that skips what was consumed.
    fn start(&mut self, files: Vec<LogFile>, follow: &Follow) -> Option<(LogFile, VecDeque<LogFile>, Option<Cursor>)> {
        let mut files: VecDeque<LogFile> = files.into();
        // Files before the one reading starts in are let go: they are not to be taken again.
        let skip = |files: &mut VecDeque<LogFile>, n: usize| {
            for f in files.drain(..n) {
                follow.release(&f.id);
            }
        };
        let oldest_ts = files.front().and_then(|f| f.first_ts);
        match *self.position {
            Position::File(p) => match files.iter().position(|f| f.is(&p.file)) {
                Some(i) => {
                    skip(&mut files, i);
                    let mut current = files.pop_front()?;
                    if let Err(e) = current.skip_to(p.offset) {
                        warn!(container = %self.id, file = %current.name, error = %e,
                                  "cannot resume in a log file at the checkpoint; reading it from its start");
                        let _ = current.skip_to(0);
                    }
                    Some((current, files, None))
                }
                None => {
                    self.lost(
                        p.ts_ns,
                        oldest_ts,
                        "its log file at the checkpoint was rotated away before spout read it to its end",
                    );
                    let current = files.pop_front()?;
                    Some((current, files, None))
                }
            },
            Position::Api(p) => {
                if p.count > 0 && oldest_ts.is_some_and(|first| first > p.max_ts_ns) {
                    self.lost(
                        p.ts_ns,
                        oldest_ts,
                        "what it wrote after the checkpoint was rotated away before spout read it",
                    );
                }
                // The last file that starts early enough to hold the first new entry.
                let from = p.max_ts_ns.saturating_sub(DISORDER_NS);
                let before = files.iter().skip(1).take_while(|f| f.first_ts.is_some_and(|t| t <= from)).count();
                skip(&mut files, before);
                let current = files.pop_front()?;
                let cursor = (p != crate::position::ApiPosition::START).then(|| Cursor::new(p));
                Some((current, files, cursor))
            }
        }
    }

    /// Reads `file` on from where it is, into the pipeline, until its end for now, a turn's
    /// worth, or a batch; `heard` is set when it read new bytes.
    fn turn(&mut self, file: &mut LogFile, cursor: &mut Option<Cursor>, heard: &mut bool) -> std::io::Result<Turn> {
        let mut taken = 0;
        let batch = self.ctx.router.batch_max();
        let mut at_end = false;
        loop {
            // Known once its first line is whole: in place before any entry is decoded.
            let id = file.id;
            let at = |offset, ts_ns| FilePosition { file: id, offset, ts_ns };
            while let Some(decoded) = file.lines().next_line() {
                match decoded {
                    Decoded::Entry { entry, end } => {
                        // Reading again from the end of what came before reproduces this entry.
                        let before = *self.position;
                        let after = Position::File(at(end, entry.ts_ns));
                        let admitted = match cursor {
                            Some(c) => c.admit(entry.ts_ns),
                            None => true,
                        };
                        if admitted {
                            *cursor = None;
                            let span = Span { before, after };
                            self.pipeline.push(entry.stream, entry.ts_ns, entry.log.as_bytes(), span);
                        }
                        *self.position = after;
                    }
                    Decoded::Garbage { bytes, end } => {
                        self.ctx.stats.garbage_bytes.add(bytes as u64);
                        let ts = self.position.ts_ns().unwrap_or(0);
                        *self.position = Position::File(at(end, ts));
                    }
                }
                if self.pipeline.lines() >= batch {
                    return Ok(Turn::More);
                }
            }
            if at_end {
                return Ok(Turn::End);
            }
            if taken >= TURN_BYTES {
                return Ok(Turn::More);
            }
            let n = file.fill()?;
            if n == 0 {
                return Ok(Turn::End);
            }
            *heard = true;
            taken += n;
            at_end = file.at_end();
        }
    }

    /// Whether the daemon truncated the file being read in place (`max-file` 1), at `capacity`
    /// bytes; if so, it is read again from its start, and what it held unread is reported.
    fn truncated(&mut self, file: &mut LogFile, capacity: u64, follow: &Follow) -> bool {
        match file.truncated() {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                debug!(container = %self.id, error = %e, "cannot tell whether a log file was truncated");
                return false;
            }
        }
        let read = file.read_offset();
        let held = file.lines().held();
        if held > 0 {
            // The start of a line whose end went with the rest.
            self.ctx.stats.garbage_bytes.add(held as u64);
        }
        let ts = self.position.ts_ns().unwrap_or(i64::MIN);
        // Pieces of a line under way are shipped as they are: the rest of it is gone.
        self.pipeline.flush(*self.position);
        follow.truncated(&file.id);
        if let Err(e) = file.restart() {
            warn!(container = %self.id, file = %file.name, error = %e, "cannot read a truncated log file again");
        }
        *self.position = Position::File(FilePosition { file: file.id, offset: 0, ts_ns: ts });
        // The daemon truncates once the file holds `capacity` bytes, before its next write: read
        // that far, and to the end of a line, nothing was lost (unless it truncated twice since,
        // which only the span between the lines on either side could tell).
        if read < capacity || held > 0 {
            self.lost(
                ts,
                file.first_ts,
                "the daemon truncated its log file in place (max-size with max-file 1) before spout read it to its end",
            );
        } else {
            debug!(container = %self.id, "log file truncated in place; reading it from its start");
        }
        true
    }

    /// Files the daemon created since the last look, and those let go or missed unread. The
    /// first `found` files of `next` were there at start.
    fn take_news(&mut self, mut news: News, next: &mut VecDeque<LogFile>, found: usize, follow: &Follow) {
        if news.missed > 0 {
            // Somewhere after what was read, and before the newest file known.
            let until = news.created.back().or(next.back()).and_then(|f| f.first_ts);
            let why = format!(
                "{} log file(s) were rotated away before spout could open them (the daemon rotated faster than spout got a CPU)",
                news.missed
            );
            self.lost(self.position.ts_ns().unwrap_or(i64::MIN), until, &why);
        }
        for first_ts in news.dropped.drain(..) {
            let until = news.created.front().or(next.front()).and_then(|f| f.first_ts);
            self.lost(first_ts.unwrap_or(i64::MIN), until, LET_GO);
        }
        if !news.created.is_empty() {
            next.extend(news.created);
            LogFile::in_order(next);
        }
        // Held behind the one being read: those found at start, and those that came since,
        // bounded. A reader that falls further behind (a route blocked for long) lets the oldest
        // of these go, and their disk space, saying so.
        while too_many(next.range(found.min(next.len())..)) {
            if let Some(oldest) = next.remove(found) {
                follow.release(&oldest.id);
                let until = next.get(found).and_then(|f| f.first_ts);
                self.lost(oldest.first_ts.unwrap_or(i64::MIN), until, LET_GO);
            }
        }
    }

    /// Whether the container has stopped (or is gone), by an inspect.
    async fn stopped(&mut self) -> Asked {
        let answer = tokio::select! {
            answer = self.ctx.source.inspect(self.id) => answer,
            () = self.ctx.cancel.cancelled() => return Asked::Unknown,
        };
        match answer {
            Ok(info) => {
                *self.started_ns = info.started_ns;
                if info.running {
                    Asked::Running
                } else {
                    Asked::Stopped(ExitReason::Stopped)
                }
            }
            // Removed: every file it had is held open, and is read to its end.
            Err(e) if e.class == ErrorClass::Gone => Asked::Stopped(ExitReason::Gone),
            Err(e) => {
                debug!(container = %self.id, error = %e, "cannot inspect a container whose log file was closed; asking again");
                Asked::Unknown
            }
        }
    }

    /// The log is complete: what is left of it, then the unterminated last line.
    async fn finish(&mut self, reason: ExitReason) -> ExitReason {
        let end = *self.position;
        self.pipeline.flush(end);
        if !self.outlet.ship(self.pipeline).await {
            return ExitReason::Shutdown;
        }
        self.outlet.tracked.progress().reached(end);
        reason
    }

    /// Warns about, and counts, lines rotated away unread: written from `from_ns` (Docker's
    /// time) to `until_ns`.
    fn lost(&self, from_ns: i64, until_ns: Option<i64>, why: &str) {
        self.ctx.stats.lost_files.add(1);
        let name = self.outlet.meta.borrow().name.clone();
        let from = if from_ns == i64::MIN { "its start".to_owned() } else { format_rfc3339_ns(from_ns) };
        let until = until_ns.map_or_else(|| "now".to_owned(), format_rfc3339_ns);
        warn!(container = %self.id, name = %name, from = %from, until = %until,
              "{why}: the lines it wrote in that span that spout had not read are lost");
    }
}

/// Until the notifier says the log changed, or (unwatched) until `poll`.
async fn changed(follow: &Follow, poll: Option<tokio::time::Instant>) {
    match poll {
        Some(at) => tokio::time::sleep_until(at).await,
        None => follow.changed().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
