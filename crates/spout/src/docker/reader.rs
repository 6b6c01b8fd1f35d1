//! One reader per container: its log stream, from a position, to whole lines, to the router.
//!
//! The end of a follow stream is not the end of the log: the daemon ends follow streams early
//! (under load, and when a container exits right after writing). So when a stream ends the
//! reader asks again from its position, without follow if the container has stopped, and only
//! a complete read of a stopped container's log ends the reader.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::context::{ExitReason, ReaderContext, ReaderExit};
use super::files::chain::LogDir;
use super::files::follow::{Files, Opened};
use super::files::{truncated_at, SourceMode};
use super::frames::{Decoded, Decoder};
use super::source::{BoxStream, ContainerInfo, ErrorClass, LogsRequest, SourceError};
use crate::backoff::Backoff;
use crate::containers::{Ended, Tracked};
use crate::enrich::Skip;
use crate::line::{Repeats, Span};
use crate::message::{Container, Stream};
use crate::multiline::Joiner;
use crate::outlet::Outlet;
use crate::pipeline::Pipeline;
use crate::position::{Cursor, Position};
use crate::timestamp::now_ns;

enum StreamEnd {
    /// The daemon ended the stream.
    Ended,
    Failed(SourceError),
    Shutdown,
}

/// A reader ships what it has and yields the thread after taking this many bytes from the daemon,
/// so that neither long lines nor a flood hold up the other containers (spout has one thread).
const TURN_BYTES: usize = 256 * 1024;

/// How long a busy stream is let fill before it is read on.
const COALESCE: Duration = Duration::from_millis(1);

/// Bytes taken from the first stream before the inspect answers: a short job's whole output
/// usually, little enough that a burst of containers starting together stays small.
const EARLY_BYTES: usize = 256 * 1024;

/// How long the log of a container removed before its inspect answered is read (shipping
/// nothing) to learn whether it wrote anything.
const REMOVED_READ_LIMIT: Duration = Duration::from_secs(5);

type LogItem = Option<Result<Bytes, SourceError>>;
type LogStream = BoxStream<Result<Bytes, SourceError>>;

/// How far a stream has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Open,
    Ended,
    Failed,
}

impl Seen {
    fn of(item: &LogItem) -> Seen {
        match item {
            Some(Ok(_)) => Seen::Open,
            None => Seen::Ended,
            Some(Err(_)) => Seen::Failed,
        }
    }
}

fn item_len(item: &LogItem) -> usize {
    match item {
        Some(Ok(bytes)) => bytes.len(),
        _ => 0,
    }
}

/// Reads container `id` from `from` until it stops for good, then reports. Its first stream
/// opens at once, while the inspect that says what the container is (and whether to read it at
/// all) is on its way: the daemon answers an inspect only after it has finished with a container
/// that exited, about 80 ms, and by then a `--rm` container and its log may be gone. `running`
/// is what the caller last saw; `meta` gets the inspected metadata; `tracked` holds its
/// progress and what /containers shows.
pub async fn run(
    ctx: ReaderContext,
    id: String,
    meta: watch::Sender<Arc<Container>>,
    tracked: Arc<Tracked>,
    from: Position,
    running: bool,
) {
    let mut reader = Reader {
        pipeline: Pipeline::new(ctx.max_line_bytes, Arc::clone(&ctx.stats)),
        cursor: Cursor::new(from.for_api()),
        from,
        stream_ended: None,
        outlet: Outlet {
            router: ctx.router.clone(),
            stats: Arc::clone(&ctx.stats),
            tracked,
            meta: meta.subscribe(),
            cancel: ctx.cancel.clone(),
        },
        repeats: Repeats::default(),
        started_ns: None,
        clean_end: false,
        files_at: None,
        ctx: ctx.clone(),
    };
    let reason = reader.run(&id, &meta, running).await;
    if reason == ExitReason::Stopped {
        reader.outlet.tracked.ended(Ended::Stopped);
    }
    let exit = ReaderExit { id, position: reader.position(), reason, started_ns: reader.started_ns };
    tokio::select! {
        _ = ctx.exits.send(exit) => {}
        () = ctx.cancel.cancelled() => {}
    }
}

struct Reader {
    ctx: ReaderContext,
    cursor: Cursor,
    /// Where it started: its position until it consumes anything (it may be a file's).
    from: Position,
    pipeline: Pipeline,
    /// When the last stream ended, while no other is open.
    stream_ended: Option<tokio::time::Instant>,
    outlet: Outlet,
    repeats: Repeats,
    /// When the run last inspected started.
    started_ns: Option<i64>,
    /// A stream ended as the daemon ended it, and nothing came since: if the container is gone
    /// now, everything it wrote may have been read (there is no confirming it).
    clean_end: bool,
    /// Where it is, once it reads the container's json-file log.
    files_at: Option<Position>,
}

impl Reader {
    /// Where it is: the last entry consumed, or where it started.
    fn position(&self) -> Position {
        if let Some(at) = self.files_at {
            return at;
        }
        let now = self.cursor.position();
        if now == self.from.for_api() {
            self.from
        } else {
            Position::Api(now)
        }
    }

    async fn run(&mut self, id: &str, meta: &watch::Sender<Arc<Container>>, running: bool) -> ExitReason {
        let mut first = Some(running);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            if self.ctx.cancel.is_cancelled() {
                return ExitReason::Shutdown;
            }
            let before = self.position();
            let (running, end) = match first.take() {
                Some(follow) => match self.first_read(id, meta, follow).await {
                    Ok(Some(read)) => read,
                    Ok(None) => {
                        // Not inspected: nothing may be shipped yet. Start over from the same
                        // position.
                        first = Some(follow);
                        if self.pause(&mut backoff).await {
                            return ExitReason::Shutdown;
                        }
                        continue;
                    }
                    Err(reason) => return reason,
                },
                None => {
                    let inspect = self.ctx.source.inspect(id);
                    let answer = tokio::select! {
                        answer = inspect => answer,
                        () = self.ctx.cancel.cancelled() => return ExitReason::Shutdown,
                    };
                    match answer {
                        Ok(info) => {
                            self.started_ns = info.started_ns;
                            (info.running, self.read_stream(id, info.running).await)
                        }
                        Err(e) if e.class == ErrorClass::Gone => return self.finish(ExitReason::Gone).await,
                        Err(e) => {
                            debug!(container = %id, error = %e, "inspect failed, retrying");
                            if self.pause(&mut backoff).await {
                                return ExitReason::Shutdown;
                            }
                            continue;
                        }
                    }
                }
            };
            match end {
                StreamEnd::Shutdown => return ExitReason::Shutdown,
                StreamEnd::Ended if !running => return self.finish(ExitReason::Stopped).await,
                StreamEnd::Ended => {
                    // A follow stream ended: the container stopped, or the daemon cut it. Read
                    // again from here; an idle repeat backs off.
                    if self.position() != before {
                        backoff.reset();
                    } else if self.pause(&mut backoff).await {
                        return ExitReason::Shutdown;
                    }
                }
                StreamEnd::Failed(e) => match e.class {
                    ErrorClass::Gone => return self.finish(ExitReason::Gone).await,
                    ErrorClass::Unreadable => {
                        warn!(container = %id, name = %self.outlet.meta.borrow().name, error = %e,
                              "container's log driver cannot be read through the Docker API; its logs are not shipped");
                        self.outlet.tracked.ended(Ended::LeftAlone(format!("its log cannot be read: {e}")));
                        return ExitReason::Unreadable;
                    }
                    ErrorClass::Transient => {
                        self.ctx.stats.stream_errors.add(1);
                        debug!(container = %id, error = %e, "log stream failed, resuming from last position");
                        if self.pause(&mut backoff).await {
                            return ExitReason::Shutdown;
                        }
                    }
                },
            }
        }
    }

    /// The first read: opens the stream (following it if `follow`) and inspects the container
    /// meanwhile, holding what the stream brings until the inspect says whether and how to read
    /// it. A json-file log where the daemon keeps it is opened instead of the stream, so that a
    /// `--rm` job's file is read even once the daemon removed it. Returns whether the container
    /// runs (or may: read again) and how the stream ended; `None` when the inspect failed and
    /// nothing was consumed; `Err` when the reader is done (its files read, or nothing to read).
    async fn first_read(
        &mut self,
        id: &str,
        meta: &watch::Sender<Arc<Container>>,
        follow: bool,
    ) -> Result<Option<(bool, StreamEnd)>, ExitReason> {
        let early_files = self.early_files(id);
        let mut stream = match early_files {
            Some(_) => None,
            None => Some(self.open_stream(id, follow)),
        };
        let mut early: Vec<LogItem> = Vec::new();
        let mut early_bytes = 0;
        let answer = {
            let inspect = self.ctx.source.inspect(id);
            tokio::pin!(inspect);
            loop {
                let more =
                    stream.is_some() && early_bytes < EARLY_BYTES && !matches!(early.last(), Some(None | Some(Err(_))));
                tokio::select! {
                    answer = &mut inspect => break answer,
                    item = next_item(&mut stream), if more => {
                        early_bytes += item_len(&item);
                        early.push(item);
                    }
                    () = self.ctx.cancel.cancelled() => return Err(ExitReason::Shutdown),
                }
            }
        };
        let info = match answer {
            Ok(info) => info,
            Err(e) if e.class == ErrorClass::Gone => {
                return Err(match stream {
                    Some(stream) => self.removed_before_inspect(id, stream, early).await,
                    None => {
                        self.removed_before_inspect(id, Box::pin(futures_util::stream::empty()), early_log(early_files))
                            .await
                    }
                })
            }
            Err(e) => {
                debug!(container = %id, error = %e, "inspect failed, retrying");
                return Ok(None);
            }
        };
        // Described even when left alone: /containers shows what it is.
        meta.send_replace(super::describe(&self.ctx.enrichment, &self.ctx.router, &info, &self.ctx.host));
        if let Some(skip) = self.ctx.enrichment.skip(&info, self.ctx.own_id.as_deref()) {
            self.outlet.tracked.ended(Ended::LeftAlone(skip.to_string()));
            if let Skip::Unreadable(_) = skip {
                warn!(container = %id, name = %info.meta.name, reason = %skip,
                      "container's log driver keeps nothing the Docker API can return; its logs are not shipped");
                return Err(ExitReason::Unreadable);
            }
            debug!(container = %id, name = %info.meta.name, reason = ?skip, "not reading container");
            return Err(ExitReason::Skipped);
        }
        self.started_ns = info.started_ns;
        let max_bytes = self.ctx.max_line_bytes;
        let joiner = self.ctx.enrichment.multiline(&info, max_bytes).map(|rules| Joiner::new(rules, self.position()));
        self.pipeline.configure(info.meta.tty, joiner);
        let mut stream = match (self.choose(&info, early_files), stream) {
            (Choice::Files(opened), _) => {
                self.outlet.tracked.reading_from("files");
                return Err(self.read_files(id, *opened, info.running).await);
            }
            (Choice::LeftAlone(why), _) => {
                info!(container = %id, name = %info.meta.name, reason = %why, "not reading container");
                self.outlet.tracked.ended(Ended::LeftAlone(why));
                return Err(ExitReason::Unreadable);
            }
            (Choice::Api, Some(stream)) => stream,
            (Choice::Api, None) => self.open_stream(id, follow),
        };
        self.outlet.tracked.reading_from("api");
        if follow && !info.running {
            // A job that has already exited: its follow stream may end before its last lines,
            // and a `--rm` job is about to be removed. Read it again at once, without follow,
            // rather than after another inspect.
            let end = self.pump(&mut stream, early).await;
            if !matches!(end, StreamEnd::Ended) {
                return Ok(Some((true, end)));
            }
            drop(stream);
            return Ok(Some((false, self.read_stream(id, false).await)));
        }
        // A stream that followed must be read again once it ends, whatever the inspect saw when
        // it answered.
        Ok(Some((info.running || follow, self.pump(&mut stream, early).await)))
    }

    /// The container's json-file log where the daemon keeps its containers, if it has one there
    /// and spout may read it.
    fn early_files(&self, id: &str) -> Option<Box<Opened>> {
        if self.ctx.files.mode == SourceMode::Api {
            return None;
        }
        let root = self.ctx.root_dir.as_deref()?;
        let log = LogDir { dir: Path::new(root).join("containers").join(id), base: format!("{id}-json.log") };
        Opened::open(log, &self.ctx).ok().filter(|o| !o.files.is_empty()).map(Box::new)
    }

    /// Where to read the inspected container from, as `--source` says and the container allows.
    fn choose(&self, info: &ContainerInfo, early: Option<Box<Opened>>) -> Choice {
        let mode = self.ctx.files.mode;
        if mode == SourceMode::Api {
            return Choice::Api;
        }
        let json_file = info.log_driver.as_deref() == Some("json-file");
        let Some(log) = info.log_path.as_deref().filter(|_| json_file).and_then(|p| LogDir::of(Path::new(p))) else {
            return match mode {
                SourceMode::Files => Choice::LeftAlone(format!(
                    "its log driver is {}, and --source files reads json-file logs only",
                    info.log_driver.as_deref().unwrap_or("unknown")
                )),
                _ => Choice::Api,
            };
        };
        let truncated_at = truncated_at(&info.log_opts);
        if let Some(early) = early.filter(|e| e.log == log) {
            return Choice::Files(Box::new(Opened { truncated_at, ..*early }));
        }
        let why = match Opened::open(log.clone(), &self.ctx) {
            // Opened after the inspect: the container may have stopped in between, unheard.
            Ok(opened) if !opened.files.is_empty() => {
                return Choice::Files(Box::new(Opened { ask: true, truncated_at, ..opened }));
            }
            Ok(_) => "there is no log file in it".to_owned(),
            Err(e) => e.to_string(),
        };
        if mode == SourceMode::Files {
            return Choice::LeftAlone(format!("its json-file log cannot be read at {}: {why}", log.dir.display()));
        }
        if !self.ctx.files.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            warn!(dir = %log.dir.display(), error = %why,
                  "json-file logs cannot be read here, so containers are read through the Docker API; to read them directly, mount the daemon's containers directory into spout's container at the same path, read-only (-v /var/lib/docker/containers:/var/lib/docker/containers:ro)");
        }
        Choice::Api
    }

    /// Reads the container's json-file log to the end of its run.
    async fn read_files(&mut self, id: &str, opened: Opened, running: bool) -> ExitReason {
        let mut position = self.position();
        let ctx = self.ctx.clone();
        let files = Files {
            id,
            ctx: &ctx,
            pipeline: &mut self.pipeline,
            outlet: &mut self.outlet,
            position: &mut position,
            started_ns: &mut self.started_ns,
        };
        let reason = files.run(opened, running).await;
        self.files_at = Some(position);
        reason
    }

    /// The container was removed before the daemon answered its inspect: nothing says whether it
    /// opted out, so none of its log is shipped. Reads on (shipping nothing) just far enough to
    /// tell whether it wrote anything, so that only what is known to be lost is reported as lost.
    async fn removed_before_inspect(&mut self, id: &str, mut stream: LogStream, early: Vec<LogItem>) -> ExitReason {
        let mut bytes: usize = early.iter().map(item_len).sum();
        let mut seen = early.last().map_or(Seen::Open, Seen::of);
        // The daemon ends a removed container's stream; should it not, do not wait for ever.
        let give_up = tokio::time::sleep(REMOVED_READ_LIMIT);
        tokio::pin!(give_up);
        while bytes == 0 && seen == Seen::Open {
            let item = tokio::select! {
                item = stream.next() => item,
                () = &mut give_up => break,
                () = self.ctx.cancel.cancelled() => return ExitReason::Shutdown,
            };
            bytes += item_len(&item);
            seen = Seen::of(&item);
        }
        if bytes > 0 {
            self.ctx.stats.unshipped_bytes.add(bytes as u64);
            self.ctx.stats.lost_logs.add(1);
            warn!(container = %id, bytes_read = bytes, "container removed before the daemon answered its inspect; without knowing whether it opted out, its log is not shipped");
        } else if seen != Seen::Failed {
            // Its stream ended empty (it wrote nothing, or the daemon ended the stream early), or
            // brought nothing for a while.
            self.ctx.stats.unconfirmed_ends.add(1);
            debug!(container = %id, "container removed before its inspect answered; its log was empty as far as it was read");
        } else {
            self.ctx.stats.lost_logs.add(1);
            warn!(container = %id, "container removed before its log could be read; whatever it wrote is lost");
        }
        ExitReason::Gone
    }

    /// Sleeps for the next backoff delay; true when shutdown came first.
    async fn pause(&self, backoff: &mut Backoff) -> bool {
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => false,
            () = self.ctx.cancel.cancelled() => true,
        }
    }

    /// The log is read to its end, or the container is gone: ship the unterminated last line.
    async fn finish(&mut self, reason: ExitReason) -> ExitReason {
        if reason == ExitReason::Gone {
            let (id, name) = {
                let meta = self.outlet.meta.borrow();
                (meta.id.clone(), meta.name.clone())
            };
            if self.clean_end {
                // The usual end of a `--rm` job: its stream ended, and it was removed before a
                // second read could confirm that nothing came after.
                self.ctx.stats.unconfirmed_ends.add(1);
                debug!(container = %id, name = %name, "container removed after its log stream ended; its end could not be confirmed");
            } else {
                self.ctx.stats.lost_logs.add(1);
                warn!(container = %id, name = %name,
                      "container removed before its log was read to the end; what it wrote after the last line read is lost");
            }
        }
        self.pipeline.flush(self.position());
        if !self.ship().await {
            return ExitReason::Shutdown;
        }
        // Whatever followed the last message (empty lines) need not be read again either.
        self.outlet.tracked.progress().reached(self.position());
        reason
    }

    async fn read_stream(&mut self, id: &str, follow: bool) -> StreamEnd {
        let mut stream = self.open_stream(id, follow);
        self.pump(&mut stream, Vec::new()).await
    }

    fn open_stream(&mut self, id: &str, follow: bool) -> LogStream {
        if let Some(ended) = self.stream_ended.take() {
            // Without a stream no line could join: that time does not count.
            self.pipeline.postpone(ended.elapsed());
        }
        let since_ns = self.cursor.since_ns(self.pipeline.held_since_ts());
        let stream = self.ctx.source.logs(id, LogsRequest { follow, since_ns });
        self.cursor.restart_stream();
        // A new stream's overlap with the last one is the cursor's business; repeats are looked
        // for within one stream only.
        self.repeats = Repeats::default();
        stream
    }

    /// Takes `early` (items already read), then the rest of `stream`, shipping as it goes.
    async fn pump(&mut self, stream: &mut LogStream, early: Vec<LogItem>) -> StreamEnd {
        let mut decoder = Decoder::new(self.pipeline.tty());
        for item in early {
            if let Some(end) = self.take(item, &mut decoder) {
                return self.end_stream(end).await;
            }
        }
        loop {
            if self.pipeline.lines() > 0 && !self.ship().await {
                return StreamEnd::Shutdown;
            }
            let joined_until = self.pipeline.deadline();
            let item = tokio::select! {
                // Lines already waiting join before a message under way is taken as complete.
                biased;
                () = self.ctx.cancel.cancelled() => return StreamEnd::Shutdown,
                item = stream.next() => item,
                () = sleep_until(joined_until) => {
                    // A multiline message no line has joined for a while is complete.
                    self.pipeline.expire(tokio::time::Instant::now());
                    if !self.ship().await {
                        return StreamEnd::Shutdown;
                    }
                    continue;
                }
            };
            let mut taken = item_len(&item);
            let mut items = 1;
            let mut ended = self.take(item, &mut decoder);
            // The daemon sends each log entry as an HTTP chunk of its own, handed over by the
            // connection's own task. Before deciding the stream has nothing more, give that task
            // a turn: lines then go on in batches, one per read from the daemon, not one at a time.
            let mut yielded = false;
            let mut dry = false;
            while ended.is_none() && self.pipeline.lines() < self.ctx.router.batch_max() && taken < TURN_BYTES {
                match stream.next().now_or_never() {
                    Some(item) => {
                        taken += item_len(&item);
                        items += 1;
                        ended = self.take(item, &mut decoder);
                        yielded = false;
                    }
                    None if yielded => {
                        dry = true;
                        break;
                    }
                    None => {
                        tokio::task::yield_now().await;
                        yielded = true;
                    }
                }
            }
            if let Some(end) = ended {
                return self.end_stream(end).await;
            }
            if taken >= TURN_BYTES {
                // A turn's worth of work: ship it and let the other tasks run, even if the
                // daemon has more ready (a flood, or a long line that makes no lines at all).
                if !self.ship().await {
                    return StreamEnd::Shutdown;
                }
                tokio::task::yield_now().await;
            } else if dry && items > 1 {
                // Entries come faster than they are read one by one: the daemon writes each as
                // it goes, and reading each as it comes costs a system call and a wake-up per
                // line (a sixth of spout's CPU when shipping a backlog). Ship, then let the
                // stream fill for a moment before reading on. A stream with one entry at a time
                // is read at once.
                if !self.ship().await {
                    return StreamEnd::Shutdown;
                }
                tokio::select! {
                    () = tokio::time::sleep(COALESCE) => {}
                    () = self.ctx.cancel.cancelled() => return StreamEnd::Shutdown,
                }
            }
        }
    }

    /// Ships what the stream's end completed and notes how it ended.
    async fn end_stream(&mut self, end: StreamEnd) -> StreamEnd {
        if matches!(end, StreamEnd::Ended) {
            self.clean_end = true;
        }
        self.stream_ended = Some(tokio::time::Instant::now());
        if self.ship().await {
            end
        } else {
            StreamEnd::Shutdown
        }
    }

    /// Takes one item of the log stream; `Some` when it was the stream's last.
    fn take(&mut self, item: LogItem, decoder: &mut Decoder) -> Option<StreamEnd> {
        match item {
            Some(Ok(bytes)) => {
                self.clean_end &= bytes.is_empty();
                decoder.push(&bytes);
                self.decode(decoder, false);
                None
            }
            Some(Err(e)) => Some(StreamEnd::Failed(e)),
            None => {
                self.decode(decoder, true);
                Some(StreamEnd::Ended)
            }
        }
    }

    fn decode(&mut self, decoder: &mut Decoder, eof: bool) {
        // No entry of a TTY stream can be stamped later than now, give or take a clock step.
        let not_after_ns = if self.pipeline.tty() { now_ns() + 60_000_000_000 } else { i64::MAX };
        while let Some(decoded) = decoder.next_entry(eof, not_after_ns) {
            match decoded {
                Decoded::Entry { stream, ts_ns, bytes } => self.entry(stream, ts_ns, bytes),
                Decoded::Garbage(n) => {
                    self.ctx.stats.garbage_bytes.add(n as u64);
                }
            }
        }
    }

    fn entry(&mut self, stream: Stream, ts_ns: i64, bytes: &[u8]) {
        if self.repeats.is_repeat(stream, ts_ns, bytes) {
            self.ctx.stats.repeated_entries.add(1);
            return;
        }
        let before = self.position();
        if self.cursor.admit(ts_ns) {
            let span = Span { before, after: self.position() };
            self.pipeline.push(stream, ts_ns, bytes, span);
        }
    }

    /// Hands the messages ready to the router; false when shutting down or no route is left.
    async fn ship(&mut self) -> bool {
        self.outlet.ship(&mut self.pipeline).await
    }
}

/// Where a container is read from.
enum Choice {
    Files(Box<Opened>),
    Api,
    /// Not at all, and why.
    LeftAlone(String),
}

/// The next item of `stream`, or never without one.
async fn next_item(stream: &mut Option<LogStream>) -> LogItem {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// What a log opened early had, as a removed container's reader reports it: something, or not.
fn early_log(opened: Option<Box<Opened>>) -> Vec<LogItem> {
    let wrote = opened.is_some_and(|o| o.files.iter().any(|f| f.first_ts.is_some()));
    if wrote {
        vec![Some(Ok(Bytes::from_static(b"(a json-file log)"))), None]
    } else {
        vec![None]
    }
}

/// Sleeps until `deadline`, or for ever when there is none.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::docker::files::FilesSetup;
    use crate::docker::scripted::{self as s, Scripted, Step};
    use crate::enrich::Enrichment;
    use crate::router::{RouteQueue, Router, WhenFull};
    use crate::stats::ReaderStats;

    const T0: i64 = 1_795_984_225_000_000_000;

    /// Line `n`, stamped `n` ms after T0.
    fn line(n: i64) -> Step {
        s::out(T0 + n * 1_000_000, &format!("l{n}"))
    }

    fn lines(range: std::ops::RangeInclusive<i64>) -> Vec<Step> {
        range.map(line).collect()
    }

    fn want(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
        range.map(|n| format!("l{n}")).collect()
    }

    struct Read {
        lines: Vec<String>,
        names: Vec<String>,
        truncated: Vec<bool>,
        exit: ReaderExit,
        stats: Arc<ReaderStats>,
    }

    /// Runs one reader of container `id` to its end against `source`.
    async fn read(source: &Scripted, id: &str, running: bool) -> Read {
        read_cut_at(source, id, running, 1 << 20).await
    }

    async fn read_cut_at(source: &Scripted, id: &str, running: bool, max_line_bytes: usize) -> Read {
        read_with(source, id, running, Enrichment::default(), max_line_bytes, None).await
    }

    /// Reads with `enrichment`, shutting down after `stop_after` if the reader has not ended.
    async fn read_with(
        source: &Scripted,
        id: &str,
        running: bool,
        enrichment: Enrichment,
        max_line_bytes: usize,
        stop_after: Option<Duration>,
    ) -> Read {
        let (queue, mut rx) = RouteQueue::for_tests(WhenFull::Block, 100_000);
        let (exits, mut exits_rx) = mpsc::channel(1);
        let stats = Arc::new(ReaderStats::default());
        let ctx = ReaderContext {
            source: Arc::new(source.clone()),
            host: "h".into(),
            own_id: None,
            enrichment: Arc::new(enrichment),
            router: Router::new(vec![queue]),
            stats: Arc::clone(&stats),
            max_line_bytes,
            cancel: CancellationToken::new(),
            exits,
            files: Arc::new(FilesSetup { mode: SourceMode::Api, notifier: None, warned: Default::default() }),
            root_dir: None,
        };
        if let Some(after) = stop_after {
            let cancel = ctx.cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                cancel.cancel();
            });
        }
        let progress = Arc::new(crate::checkpoint::Progress::new(1, 0));
        progress.reached(Position::START);
        let (meta, _) = watch::channel(Arc::new(Container::default()));
        let tracked = crate::containers::Board::default().attach(id, meta.subscribe(), progress);
        run(ctx, id.into(), meta, tracked, Position::START, running).await;
        // A reader shut down may not get to report.
        let shut_down =
            ReaderExit { id: id.into(), position: Position::START, reason: ExitReason::Shutdown, started_ns: None };
        let exit = exits_rx.recv().await.unwrap_or(shut_down);
        let (mut lines, mut names, mut truncated) = (Vec::new(), Vec::new(), Vec::new());
        while let Ok(batch) = rx.try_recv() {
            for m in batch.iter() {
                lines.push(m.line.clone());
                names.push(m.container.name.clone());
                truncated.push(m.truncated);
            }
        }
        Read { lines, names, truncated, exit, stats }
    }

    #[tokio::test(start_paused = true)]
    async fn a_follow_stream_that_ends_early_is_read_again_from_where_it_ended() {
        let source = Scripted::default();
        source.inspect("c", s::running("c")).inspect("c", s::running("c")).inspect("c", s::stopped("c"));
        // The daemon ends the first follow stream after three lines; the second follow stream
        // sends everything since its `since` again, then ends as the container stops; the last
        // read, without follow, has the last line.
        source.logs("c", lines(1..=3)).logs("c", lines(1..=5)).logs("c", lines(1..=6));
        let r = read(&source, "c", true).await;
        assert_eq!(r.lines, want(1..=6), "every line once, in order");
        assert_eq!(r.exit.reason, ExitReason::Stopped);
        let logs: Vec<String> = source.journal().into_iter().filter(|j| j.starts_with("logs")).collect();
        assert_eq!(logs, ["logs c follow=true", "logs c follow=true", "logs c follow=false"]);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_sent_again_at_a_rotation_are_dropped() {
        let source = Scripted::default();
        source.inspect("c", s::stopped("c"));
        let mut steps = lines(1..=5);
        steps.extend(lines(3..=5));
        steps.extend(lines(6..=7));
        source.logs("c", steps);
        let r = read(&source, "c", false).await;
        assert_eq!(r.lines, want(1..=7));
        assert_eq!(r.stats.repeated_entries.get(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_404_in_mid_stream_ends_the_reader_with_what_was_read_and_reports_a_loss() {
        let source = Scripted::default();
        source.inspect("c", s::running("c"));
        let mut steps = lines(1..=2);
        steps.push(Step::Fail(crate::docker::source::SourceError::gone("No such container")));
        source.logs("c", steps);
        let r = read(&source, "c", true).await;
        assert_eq!(r.lines, want(1..=2));
        assert_eq!(r.exit.reason, ExitReason::Gone);
        assert_eq!((r.stats.lost_logs.get(), r.stats.unconfirmed_ends.get()), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_removed_before_its_inspect_answers_is_not_shipped_and_is_reported() {
        let source = Scripted::default();
        source.inspect("c", s::gone(Duration::from_millis(80)));
        let mut steps = lines(1..=2);
        steps.push(Step::Hang);
        source.logs("c", steps);
        let r = read(&source, "c", true).await;
        assert!(r.lines.is_empty(), "without its inspect, an opt-out cannot be ruled out");
        assert_eq!(r.exit.reason, ExitReason::Gone);
        assert_eq!(r.stats.lost_logs.get(), 1);
        assert!(r.stats.unshipped_bytes.get() > 0);

        // One that wrote nothing is no loss.
        let source = Scripted::default();
        source.inspect("c", s::gone(Duration::from_millis(80))).logs("c", Vec::new());
        let r = read(&source, "c", true).await;
        assert_eq!((r.stats.lost_logs.get(), r.stats.unconfirmed_ends.get()), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_inspect_holds_the_lines_until_it_says_what_the_container_is() {
        let source = Scripted::default();
        let slow = s::Inspect { delay: Duration::from_secs(5), answer: Ok(s::info("c", false)) };
        source.inspect("c", slow);
        source.logs("c", lines(1..=2)).logs("c", lines(1..=3));
        let r = read(&source, "c", true).await;
        assert_eq!(r.lines, want(1..=3));
        assert!(r.names.iter().all(|n| n == "name-of-c"), "every line carries the inspected metadata: {:?}", r.names);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_read_to_a_clean_end_then_removed_is_unconfirmed_not_lost() {
        let source = Scripted::default();
        source.inspect("c", s::stopped("c"));
        let gone = Step::Fail(crate::docker::source::SourceError::gone("No such container"));
        source.logs("c", lines(1..=2)).logs("c", vec![gone]);
        let r = read(&source, "c", true).await;
        assert_eq!(r.lines, want(1..=2));
        assert_eq!(r.exit.reason, ExitReason::Gone);
        assert_eq!((r.stats.lost_logs.get(), r.stats.unconfirmed_ends.get()), (0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tty_flood_without_newlines_is_cut_and_the_last_line_follows() {
        let source = Scripted::default();
        let mut info = s::info("c", false);
        info.meta.tty = true;
        source.inspect("c", s::Inspect { delay: Duration::ZERO, answer: Ok(info) });
        // 4 MiB without a newline, as the daemon stores it: 16 KiB pieces sharing a timestamp.
        let ts = crate::timestamp::format_rfc3339_ns(T0);
        let piece = format!("{ts} {}", "x".repeat(crate::line::PIECE_SIZE));
        let mut steps: Vec<Step> = (0..256).map(|_| Step::Bytes(piece.clone().into())).collect();
        let end = crate::timestamp::format_rfc3339_ns(T0 + 1);
        steps.push(Step::Bytes(format!("{ts} tail\r\n{end} last line\r\n").into()));
        source.logs("c", steps);
        let r = read_cut_at(&source, "c", false, 64 * 1024).await;
        let got: Vec<(usize, bool)> = r.lines.iter().map(String::len).zip(r.truncated).collect();
        assert_eq!(got, [(64 * 1024, true), (9, false)], "one cut message, then the last line");
        assert_eq!(r.lines[1], "last line");
    }

    fn joining() -> Enrichment {
        let mut e = Enrichment::default();
        e.multiline.start = Some(regex::Regex::new(r"^\S").expect("valid"));
        e
    }

    fn texts(range: std::ops::RangeInclusive<i64>, text: impl Fn(i64) -> String) -> Vec<Step> {
        range.map(|n| s::out(T0 + n * 1_000_000, &text(n))).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_stack_trace_is_joined_and_the_last_one_ships_when_the_container_stops() {
        let source = Scripted::default();
        source.inspect("c", s::stopped("c"));
        let trace = |n| if n % 3 == 1 { format!("error {n}") } else { format!("\tat frame {n}") };
        source.logs("c", texts(1..=6, trace));
        let r = read_with(&source, "c", false, joining(), 1 << 20, None).await;
        assert_eq!(r.lines, ["error 1\n\tat frame 2\n\tat frame 3", "error 4\n\tat frame 5\n\tat frame 6"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trace_that_stops_growing_ships_after_the_timeout_and_a_partial_one_never() {
        let source = Scripted::default();
        source.inspect("c", s::running("c"));
        let mut steps = texts(1..=2, |n| if n == 1 { "error".into() } else { "\tat frame".into() });
        steps.push(Step::Hang);
        source.logs("c", steps);
        let r = read_with(&source, "c", true, joining(), 1 << 20, Some(Duration::from_secs(5))).await;
        assert_eq!(r.lines, ["error\n\tat frame"], "complete after the timeout, with the stream still open");

        // Shut down before the timeout: nothing of the trace ships, and the reader's position
        // stays before it, so the next start reads it whole.
        let source = Scripted::default();
        source.inspect("c", s::running("c"));
        let mut steps = texts(1..=3, |n| {
            if n == 1 {
                "single".into()
            } else if n == 2 {
                "error".into()
            } else {
                "\tat frame".into()
            }
        });
        steps.push(Step::Hang);
        source.logs("c", steps);
        let r = read_with(&source, "c", true, joining(), 1 << 20, Some(Duration::from_millis(500))).await;
        assert_eq!(r.lines, ["single"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_does_not_hold_the_thread_from_other_readers() {
        let source = Scripted::default();
        let mut info = s::info("flood", false);
        info.meta.tty = true;
        source.inspect("flood", s::Inspect { delay: Duration::ZERO, answer: Ok(info) });
        source.inspect("calm", s::stopped("calm"));
        // 100 MB without a newline, every byte ready at once: only the reader's own turns let
        // anything else run.
        let piece = Bytes::from(format!("{} {}", crate::timestamp::format_rfc3339_ns(T0), "x".repeat(16 * 1024)));
        source.logs("flood", (0..6400).map(|_| Step::Bytes(piece.clone())).collect());
        source.logs("calm", lines(1..=3));
        let done = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for id in ["flood", "calm"] {
            let (source, done) = (source.clone(), Arc::clone(&done));
            tasks.push(tokio::spawn(async move {
                let r = read(&source, id, false).await;
                done.lock().expect("lock").push(id);
                r
            }));
        }
        for task in tasks {
            task.await.expect("reader task");
        }
        assert_eq!(*done.lock().expect("lock"), ["calm", "flood"]);
    }
}
