//! One reader per container: its log stream, from a position, to whole lines, to the router.
//!
//! The end of a follow stream is not the end of the log: the daemon ends follow streams early
//! (under load, and when a container exits right after writing). So when a stream ends the
//! reader asks again from its position, without follow if the container has stopped, and only
//! a complete read of a stopped container's log ends the reader.

use std::sync::Arc;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{classify, inspected, ErrorClass, Skip};
use crate::backoff::Backoff;
use crate::checkpoint::{Ack, Progress};
use crate::line::{split_timestamp, Assembler, Line, Repeats, Span, TtyEntry, TtySplitter};
use crate::message::{Container, Message, Stream};
use crate::position::{Cursor, Position};
use crate::router::Router;
use crate::stats::ReaderStats;
use crate::timestamp::now_ns;

/// What every reader shares.
#[derive(Clone)]
pub struct ReaderContext {
    pub docker: Docker,
    /// The host name messages carry.
    pub host: Arc<str>,
    /// spout's own container, never read.
    pub own_id: Option<Arc<str>>,
    pub router: Router,
    pub stats: Arc<ReaderStats>,
    pub max_line_bytes: usize,
    pub cancel: CancellationToken,
    pub exits: mpsc::Sender<ReaderExit>,
}

/// Why a reader ended, and where it got to.
#[derive(Debug, Clone)]
pub struct ReaderExit {
    pub id: String,
    pub position: Position,
    pub reason: ExitReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// The container stopped and its log was read to the end.
    Stopped,
    /// The container is not to be read: opted out, or spout's own.
    Skipped,
    /// The container was removed.
    Gone,
    /// The daemon cannot return this container's logs.
    Unreadable,
    /// spout is shutting down, or no route is left.
    Shutdown,
}

enum StreamEnd {
    /// The daemon ended the stream.
    Ended,
    Failed(bollard::errors::Error),
    Shutdown,
}

/// A batch is shipped once its lines hold this many bytes, so long lines do not pile up.
const SHIP_BYTES: usize = 256 * 1024;

/// Items taken from the first stream before the inspect answers: enough for a short job's whole
/// output, few enough (at most 16 KiB each) that a flood waits in the daemon, not here.
const EARLY_ITEMS: usize = 256;

type LogItem = Option<Result<LogOutput, bollard::errors::Error>>;

/// A container's log stream, as bollard returns it.
trait LogStream: futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin {}
impl<S: futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin> LogStream for S {}

/// Reads container `id` from `from` until it stops for good, then reports. Its first stream
/// opens at once, while the inspect that says what the container is (and whether to read it at
/// all) is on its way: the daemon answers an inspect only after it has finished with a container
/// that exited, about 80 ms, and by then a `--rm` container and its log may be gone. `running`
/// is what the caller last saw; `meta` gets the inspected metadata.
pub async fn run(
    ctx: ReaderContext,
    id: String,
    meta: watch::Sender<Arc<Container>>,
    progress: Arc<Progress>,
    from: Position,
    running: bool,
) {
    let mut reader = Reader {
        assembler: Assembler::new(false, ctx.max_line_bytes),
        cursor: Cursor::new(from),
        lines: Vec::new(),
        progress,
        repeats: Repeats::default(),
        meta: meta.subscribe(),
        ctx: ctx.clone(),
    };
    let reason = reader.run(&id, &meta, running).await;
    let exit = ReaderExit { id, position: reader.cursor.position(), reason };
    tokio::select! {
        _ = ctx.exits.send(exit) => {}
        () = ctx.cancel.cancelled() => {}
    }
}

struct Reader {
    ctx: ReaderContext,
    meta: watch::Receiver<Arc<Container>>,
    cursor: Cursor,
    assembler: Assembler,
    lines: Vec<Line>,
    progress: Arc<Progress>,
    repeats: Repeats,
}

impl Reader {
    async fn run(&mut self, id: &str, meta: &watch::Sender<Arc<Container>>, running: bool) -> ExitReason {
        let mut first = Some(running);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            if self.ctx.cancel.is_cancelled() {
                return ExitReason::Shutdown;
            }
            let before = self.cursor.position();
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
                    let inspect = self.ctx.docker.inspect_container(id, None);
                    let resp = tokio::select! {
                        resp = inspect => resp,
                        () = self.ctx.cancel.cancelled() => return ExitReason::Shutdown,
                    };
                    match resp.map(|r| r.state.and_then(|s| s.running).unwrap_or(false)) {
                        Ok(running) => (running, self.read_stream(id, running).await),
                        Err(e) if classify(&e) == ErrorClass::Gone => return self.finish(ExitReason::Gone).await,
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
                    if self.cursor.position() != before {
                        backoff.reset();
                    } else if self.pause(&mut backoff).await {
                        return ExitReason::Shutdown;
                    }
                }
                StreamEnd::Failed(e) => match classify(&e) {
                    ErrorClass::Gone => return self.finish(ExitReason::Gone).await,
                    ErrorClass::Unreadable => {
                        warn!(container = %id, name = %self.meta.borrow().name, error = %e,
                              "container's log driver cannot be read through the Docker API; its logs are not shipped");
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
    /// it. Returns whether the container runs (or may: read again) and how the stream ended;
    /// `None` when the inspect failed and nothing was consumed.
    async fn first_read(
        &mut self,
        id: &str,
        meta: &watch::Sender<Arc<Container>>,
        follow: bool,
    ) -> Result<Option<(bool, StreamEnd)>, ExitReason> {
        let mut stream = self.open_stream(id, follow);
        let mut early: Vec<LogItem> = Vec::new();
        let resp = {
            let docker = self.ctx.docker.clone();
            let inspect = docker.inspect_container(id, None);
            tokio::pin!(inspect);
            loop {
                let more = early.len() < EARLY_ITEMS && !matches!(early.last(), Some(None | Some(Err(_))));
                tokio::select! {
                    resp = &mut inspect => break resp,
                    item = stream.next(), if more => early.push(item),
                    () = self.ctx.cancel.cancelled() => return Err(ExitReason::Shutdown),
                }
            }
        };
        let running = match resp {
            Ok(resp) => {
                let found = inspected(resp, &self.ctx.host, self.ctx.own_id.as_deref());
                match found.skip {
                    None => {}
                    Some(Skip::Unreadable(driver)) => {
                        warn!(container = %id, name = %found.container.name, driver = %driver,
                              "container's log driver keeps nothing the Docker API can return; its logs are not shipped");
                        return Err(ExitReason::Unreadable);
                    }
                    Some(skip) => {
                        debug!(container = %id, name = %found.container.name, reason = ?skip, "not reading container");
                        return Err(ExitReason::Skipped);
                    }
                }
                self.assembler = Assembler::new(found.container.tty, self.ctx.max_line_bytes);
                meta.send_replace(Arc::new(found.container));
                if follow && !found.running {
                    // A job that has already exited: its follow stream may end before its last
                    // lines, and a `--rm` job is about to be removed. Read it again at once,
                    // without follow, rather than after another inspect.
                    let end = self.pump(&mut stream, early).await;
                    if !matches!(end, StreamEnd::Ended) {
                        return Ok(Some((true, end)));
                    }
                    drop(stream);
                    return Ok(Some((false, self.read_stream(id, false).await)));
                }
                // A stream that followed must be read again once it ends, whatever the inspect
                // saw when it answered.
                found.running || follow
            }
            // Removed before it could be inspected: nothing says whether it opted out, so what
            // it wrote is not shipped.
            Err(e) if classify(&e) == ErrorClass::Gone => {
                let entries = early.iter().filter(|item| matches!(item, Some(Ok(_)))).count();
                self.ctx.stats.unshipped_entries.add(entries as u64);
                warn!(container = %id, entries_read = entries, "container removed before the daemon answered its inspect; without knowing whether it opted out, its log is not shipped");
                return Err(ExitReason::Gone);
            }
            Err(e) => {
                debug!(container = %id, error = %e, "inspect failed, retrying");
                return Ok(None);
            }
        };
        Ok(Some((running, self.pump(&mut stream, early).await)))
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
            warn!(container = %self.meta.borrow().id, name = %self.meta.borrow().name,
                  "container removed before its log was read to the end; what it wrote after the last line read is lost");
        }
        self.assembler.flush(self.cursor.position(), &mut self.lines);
        if !self.ship().await {
            return ExitReason::Shutdown;
        }
        // Whatever followed the last message (empty lines) need not be read again either.
        self.progress.reached(self.cursor.position());
        reason
    }

    async fn read_stream(&mut self, id: &str, follow: bool) -> StreamEnd {
        let mut stream = self.open_stream(id, follow);
        self.pump(&mut stream, Vec::new()).await
    }

    fn open_stream(&mut self, id: &str, follow: bool) -> impl LogStream {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            timestamps: true,
            since: self.cursor.since_secs(self.assembler.held_since_ts()),
            ..Default::default()
        };
        let stream = self.ctx.docker.logs(id, Some(options));
        self.cursor.restart_stream();
        // A new stream's overlap with the last one is the cursor's business; repeats are looked
        // for within one stream only.
        self.repeats = Repeats::default();
        stream
    }

    /// Takes `early` (items already read), then the rest of `stream`, shipping as it goes.
    async fn pump(&mut self, stream: &mut impl LogStream, early: Vec<LogItem>) -> StreamEnd {
        let mut tty = TtySplitter::default();
        for item in early {
            if let Some(end) = self.take(item, &mut tty) {
                return if self.ship().await { end } else { StreamEnd::Shutdown };
            }
        }
        loop {
            if !self.lines.is_empty() && !self.ship().await {
                return StreamEnd::Shutdown;
            }
            let item = tokio::select! {
                item = stream.next() => item,
                () = self.ctx.cancel.cancelled() => return StreamEnd::Shutdown,
            };
            let mut ended = self.take(item, &mut tty);
            // Lines arrive one HTTP chunk at a time, each handed over by the connection's own
            // task. Before deciding the stream has nothing more, give that task a turn: lines
            // then go on in batches, one per read from the daemon, not one at a time.
            let mut yielded = false;
            let mut bytes: usize = self.lines.iter().map(|l| l.text.len()).sum();
            while ended.is_none() && self.lines.len() < self.ctx.router.batch_max() && bytes < SHIP_BYTES {
                match stream.next().now_or_never() {
                    Some(item) => {
                        let had = self.lines.len();
                        ended = self.take(item, &mut tty);
                        bytes += self.lines[had..].iter().map(|l| l.text.len()).sum::<usize>();
                        yielded = false;
                    }
                    None if yielded => break,
                    None => {
                        tokio::task::yield_now().await;
                        yielded = true;
                    }
                }
            }
            if let Some(end) = ended {
                return if self.ship().await { end } else { StreamEnd::Shutdown };
            }
        }
    }

    /// Takes one item of the log stream; `Some` when it was the stream's last.
    fn take(&mut self, item: LogItem, tty: &mut TtySplitter) -> Option<StreamEnd> {
        match item {
            Some(Ok(LogOutput::StdOut { message })) => self.entry_frame(Stream::Stdout, &message),
            Some(Ok(LogOutput::StdErr { message })) => self.entry_frame(Stream::Stderr, &message),
            Some(Ok(LogOutput::Console { message })) => {
                tty.push(&message);
                self.tty_entries(tty, false);
            }
            Some(Ok(LogOutput::StdIn { .. })) => {}
            Some(Err(e)) => return Some(StreamEnd::Failed(e)),
            None => {
                self.tty_entries(tty, true);
                return Some(StreamEnd::Ended);
            }
        }
        None
    }

    fn entry_frame(&mut self, stream: Stream, frame: &[u8]) {
        match split_timestamp(frame) {
            Some((ts_ns, bytes)) => self.entry(stream, ts_ns, bytes),
            None => {
                self.ctx.stats.garbage_bytes.add(frame.len() as u64);
            }
        }
    }

    fn tty_entries(&mut self, tty: &mut TtySplitter, eof: bool) {
        let not_after_ns = now_ns() + 60_000_000_000;
        while let Some(entry) = tty.next_entry(eof, not_after_ns) {
            match entry {
                TtyEntry::Entry { ts_ns, bytes } => self.entry(Stream::Stdout, ts_ns, bytes),
                TtyEntry::Garbage(n) => {
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
        let before = self.cursor.position();
        if self.cursor.admit(ts_ns) {
            let span = Span { before, after: self.cursor.position() };
            self.assembler.push(stream, ts_ns, bytes, span, &mut self.lines);
        }
    }

    /// Hands the completed lines to the router; false when shutting down or no route is left.
    async fn ship(&mut self) -> bool {
        let empty = std::mem::take(&mut self.assembler.empty_lines);
        if empty > 0 {
            self.ctx.stats.empty_lines.add(empty);
        }
        if self.lines.is_empty() {
            return true;
        }
        let container = Arc::clone(&self.meta.borrow_and_update());
        let mut lines = self.lines.drain(..).peekable();
        while lines.peek().is_some() {
            let batch: Vec<Message> = lines
                .by_ref()
                .take(self.ctx.router.batch_max())
                .map(|line| {
                    if line.truncated {
                        self.ctx.stats.truncated_lines.add(1);
                    }
                    let ack = Ack { progress: Arc::clone(&self.progress), seq: self.progress.ship(line.resume) };
                    Message {
                        container: Arc::clone(&container),
                        stream: line.stream,
                        ts_ns: line.ts_ns,
                        line: line.text,
                        truncated: line.truncated,
                        ack: Some(ack),
                    }
                })
                .collect();
            let n = batch.len() as u64;
            let sent = tokio::select! {
                sent = self.ctx.router.send(batch) => sent.is_ok(),
                () = self.ctx.cancel.cancelled() => false,
            };
            if !sent {
                return false;
            }
            self.ctx.stats.lines.add(n);
        }
        true
    }
}
