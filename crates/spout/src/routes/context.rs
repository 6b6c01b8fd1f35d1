//! A route's end of its queue: what it has taken, what it has handed to its transport, and what
//! the transport has made sure of.
//!
//! A message stays in memory, and counted against the route's `queue`, until the route *accepts*
//! it: UDP once sent or failed to send (it never sends again), stdout once written, TCP once the
//! peer acknowledged its last byte, HTTP on a 2xx. Until then it can be handed out again
//! ([`RouteContext::rewind`]): after a lost connection, or when a route that failed is
//! restarted. A destination that does not acknowledge therefore fills the queue and stops the
//! readers; nothing is read that could not be delivered, and nothing is taken for delivered that
//! was not. A stream keeps what it accepted lately, to write it again after a lost connection
//! ([`RouteContext::replay`]): a peer's kernel acknowledges bytes its process may never read.

use std::collections::VecDeque;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::status::RouteStatus;
use crate::backoff::Backoff;
use crate::checkpoint::Ack;
use crate::message::Message;
use crate::message::Messages;
use crate::stats::RouteStats;

/// What a route owns, across restarts of its task.
pub struct RouteContext {
    pub name: Arc<str>,
    /// This route's number, as acknowledgements name it.
    pub index: usize,
    /// How this route retries its destination.
    pub backoff: Backoff,
    pub stats: Arc<RouteStats>,
    pub status: Arc<RouteStatus>,
    /// Cancelled when the shutdown grace period is over.
    pub abort: CancellationToken,
    rx: mpsc::Receiver<Messages>,
    /// The queue's room in messages, given back as messages are accepted.
    room: Arc<Semaphore>,
    /// Batches taken from the queue with messages not yet accepted, oldest first.
    inflight: VecDeque<Messages>,
    /// Messages of the front batch already accepted.
    accepted: usize,
    /// The next message to hand out: a batch of `inflight` and a message in it.
    next: (usize, usize),
    /// The queue is closed and empty: every reader is done.
    closed: bool,
    /// The grace period ran out and what was left is counted as undelivered.
    abandoned: bool,
    /// Scratch space for acknowledgements.
    acks: Vec<Ack>,
    /// The queue's size in messages.
    capacity: usize,
    /// For how long accepted messages are kept to be written again ([`RouteContext::replay`]);
    /// none unless the route asks.
    keep_for: Option<Duration>,
    /// Messages accepted lately, oldest first: when, and which of a batch; at most `capacity`.
    recent: VecDeque<(Instant, Messages, Range<usize>)>,
    recent_len: usize,
    /// Accepted messages to hand out again, before anything else.
    replay: VecDeque<(Messages, Range<usize>)>,
}

/// What [`RouteContext::fill_batch`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fill {
    /// This many messages were encoded into the batch.
    Filled(usize),
    /// Nothing more will come: the queue is closed, and every message was handed out.
    Closed,
    /// The grace period is over.
    Aborted,
}

impl RouteContext {
    /// A route's context over its queue (`rx`, with `capacity` messages of `room`).
    pub fn new(
        name: Arc<str>,
        index: usize,
        backoff: Backoff,
        (rx, room, capacity): (mpsc::Receiver<Messages>, Arc<Semaphore>, usize),
        abort: CancellationToken,
    ) -> Self {
        RouteContext {
            name,
            index,
            backoff,
            stats: Arc::default(),
            status: Arc::default(),
            abort,
            rx,
            room,
            inflight: VecDeque::new(),
            accepted: 0,
            next: (0, 0),
            closed: false,
            abandoned: false,
            acks: Vec::new(),
            capacity,
            keep_for: None,
            recent: VecDeque::new(),
            recent_len: 0,
            replay: VecDeque::new(),
        }
    }

    /// Keeps what is accepted for `window` (at most a queue's worth), to be written again by
    /// [`RouteContext::replay`]: for a stream, whose acceptance is the peer's TCP
    /// acknowledgement, which a peer gives before its process has read the bytes.
    pub fn keep_accepted(&mut self, window: Duration) {
        self.keep_for = Some(window);
    }

    /// Hands out again, first, what was accepted within the window before `last_acked` (when
    /// the peer last acknowledged anything: one that stopped reading stopped acknowledging then):
    /// the connection it went on was lost, and its peer may have acknowledged it without reading
    /// it (a process that dies or closes with bytes unread). What is handed out again stays kept,
    /// as if accepted now, should the next connection be lost too. Returns how many.
    pub fn replay(&mut self, last_acked: Instant) -> usize {
        let Some(window) = self.keep_for else { return 0 };
        let since = last_acked.checked_sub(window).unwrap_or(last_acked);
        let now = Instant::now();
        // Whatever was still to hand out again is among what is kept.
        self.replay.clear();
        self.recent.retain(|(at, _, _)| *at >= since);
        let mut replayed = 0;
        for (at, batch, range) in &mut self.recent {
            *at = now;
            replayed += range.len();
            self.replay.push_back((Arc::clone(batch), range.clone()));
        }
        self.recent_len = replayed;
        self.stats.replayed.add(replayed as u64);
        replayed
    }

    /// Keeps `batch[range]`, just accepted, for a replay; forgets what is too old or too many.
    fn keep(&mut self, batch: &Messages, range: Range<usize>) {
        let Some(window) = self.keep_for else { return };
        let now = Instant::now();
        self.recent_len += range.len();
        self.recent.push_back((now, Arc::clone(batch), range));
        while let Some((at, _, range)) = self.recent.front() {
            if self.recent_len <= self.capacity && now.duration_since(*at) <= window {
                break;
            }
            self.recent_len -= range.len();
            self.recent.pop_front();
        }
    }

    /// The next message not yet handed out, if one was taken.
    fn peek(&self) -> Option<&Message> {
        self.inflight.get(self.next.0).and_then(|batch| batch.get(self.next.1))
    }

    fn advance(&mut self, n: usize) {
        self.next.1 += n;
        if self.inflight.get(self.next.0).is_some_and(|batch| self.next.1 >= batch.len()) {
            self.next = (self.next.0 + 1, 0);
        }
    }

    /// Takes the next batch from the queue; false when it is closed and empty.
    async fn take(&mut self) -> Result<bool, ()> {
        let batch = tokio::select! {
            batch = self.rx.recv() => batch,
            () = self.abort.cancelled() => return Err(()),
        };
        match batch {
            Some(batch) => {
                self.inflight.push_back(batch);
                Ok(true)
            }
            None => {
                self.closed = true;
                Ok(false)
            }
        }
    }

    /// The next messages to send, one batch at a time, for routes that send message by message
    /// (UDP); `None` once the queue is closed and everything was handed out, or on abort. A
    /// route uses this or [`RouteContext::fill_batch`].
    pub async fn next_messages(&mut self) -> Option<(Messages, std::ops::Range<usize>)> {
        if self.peek().is_none() && !matches!(self.take().await, Ok(true)) {
            return None;
        }
        let (b, i) = self.next;
        let batch = Arc::clone(&self.inflight[b]);
        let range = i..batch.len();
        self.advance(range.len());
        Some((batch, range))
    }

    /// Waits for a message, then hands out whatever else is ready, encoding each into `out`
    /// until it holds `max_bytes`: one write for many messages under load, one per message when
    /// idle. Messages handed out before and not accepted since a rewind come first.
    pub async fn fill_batch(
        &mut self,
        out: &mut Vec<u8>,
        max_bytes: usize,
        encode: impl FnMut(&mut Vec<u8>, &Message),
    ) -> Fill {
        self.fill(out, max_bytes, false, encode).await
    }

    /// As [`RouteContext::fill_batch`], but `out` never grows past `max_bytes`: a message that
    /// would take it over is left for the next body, unless it is the first (which the encoder
    /// keeps within the limit). For routes whose destination limits a request's size.
    pub async fn fill_body(
        &mut self,
        out: &mut Vec<u8>,
        max_bytes: usize,
        encode: impl FnMut(&mut Vec<u8>, &Message),
    ) -> Fill {
        self.fill(out, max_bytes, true, encode).await
    }

    async fn fill(
        &mut self,
        out: &mut Vec<u8>,
        max_bytes: usize,
        strict: bool,
        mut encode: impl FnMut(&mut Vec<u8>, &Message),
    ) -> Fill {
        // What is replayed was accepted already: written, not counted. A message the encoder
        // fails on was reported when it was first handed out.
        while let Some((batch, range)) = self.replay.front_mut() {
            let mark = out.len();
            if std::panic::catch_unwind(AssertUnwindSafe(|| encode(out, &batch[range.start]))).is_err() {
                out.truncate(mark);
            }
            range.start += 1;
            if range.start >= range.end {
                self.replay.pop_front();
            }
            if out.len() >= max_bytes {
                return Fill::Filled(0);
            }
        }
        if !out.is_empty() && self.peek().is_none() && self.rx.is_empty() {
            return Fill::Filled(0);
        }
        if self.peek().is_none() {
            match self.take().await {
                Ok(true) => {}
                Ok(false) => return Fill::Closed,
                Err(()) => return Fill::Aborted,
            }
        }
        let mut count = 0;
        loop {
            while let Some(msg) = self.peek() {
                let mark = out.len();
                // A message that makes the encoder fail (a bug) is dropped and reported, not sent
                // again and again: it would stall this route, and through it every reader.
                if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| encode(out, msg))) {
                    out.truncate(mark);
                    self.encoding_failed(msg, panic.as_ref());
                }
                if strict && count > 0 && out.len() > max_bytes {
                    out.truncate(mark);
                    return Fill::Filled(count);
                }
                self.advance(1);
                count += 1;
                if out.len() >= max_bytes {
                    return Fill::Filled(count);
                }
            }
            match self.rx.try_recv() {
                Ok(batch) => self.inflight.push_back(batch),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return Fill::Filled(count);
                }
                Err(mpsc::error::TryRecvError::Empty) => return Fill::Filled(count),
            }
        }
    }

    /// Counts and reports a message that could not be encoded; it is accepted with its batch.
    pub fn encoding_failed(&self, msg: &Message, panic: &(dyn std::any::Any + Send)) {
        self.stats.dropped_failed.add(1);
        tracing::error!(route = %self.name, container = %msg.container.name, ts_ns = msg.ts_ns,
                        cause = %super::status::panic_message(panic), "cannot encode a message; it is dropped");
    }

    /// The `n` oldest messages handed out and not yet accepted are accepted: the checkpoints
    /// need not wait for them, and their room in the queue is given back.
    pub fn accept(&mut self, mut n: usize) {
        let mut acks = std::mem::take(&mut self.acks);
        let mut given_back = 0;
        while n > 0 {
            let Some(front) = self.inflight.front() else { break };
            let take = n.min(front.len() - self.accepted);
            for msg in &front[self.accepted..self.accepted + take] {
                note_ack(&mut acks, msg);
            }
            let front = Arc::clone(front);
            self.keep(&front, self.accepted..self.accepted + take);
            self.accepted += take;
            given_back += take;
            n -= take;
            if self.accepted == front.len() {
                self.inflight.pop_front();
                self.accepted = 0;
                self.next = match self.next {
                    (0, _) => (0, 0),
                    (b, i) => (b - 1, i),
                };
            }
        }
        for ack in acks.drain(..) {
            ack.accept(self.index);
        }
        self.acks = acks;
        self.room.add_permits(given_back);
    }

    /// Hands out again, from the oldest one not accepted, every message handed out before: what
    /// a lost connection or a failed task held is sent again.
    pub fn rewind(&mut self) {
        // A batch is dropped from the front as soon as all of it is accepted.
        self.next = (0, self.accepted);
    }

    /// Messages taken from the queue and not yet accepted.
    pub fn unaccepted(&self) -> usize {
        self.inflight.iter().map(|b| b.len()).sum::<usize>() - self.accepted
    }

    /// The route has nothing left to do: every reader is done and everything was accepted, or it
    /// gave up at the end of the grace period.
    pub fn is_done(&self) -> bool {
        self.abandoned || (self.closed && self.inflight.is_empty() && self.replay.is_empty())
    }

    /// Counts what is not accepted as undelivered; for a route that is giving up. It stays
    /// unaccepted, so a restarted spout reads it again.
    pub fn abandon(&mut self) {
        self.abandoned = true;
        self.rx.close();
        self.room.close();
        let mut left = self.unaccepted() as u64;
        self.inflight.clear();
        self.accepted = 0;
        self.next = (0, 0);
        while let Ok(batch) = self.rx.try_recv() {
            left += batch.len() as u64;
        }
        if left > 0 {
            self.stats.undelivered.add(left);
            tracing::error!(route = %self.name, messages = left, "shutdown grace period over, messages not delivered");
        }
    }
}

impl Drop for RouteContext {
    /// A route that ended takes nothing more: readers waiting for room learn it is closed.
    fn drop(&mut self) {
        self.room.close();
    }
}

/// Adds `msg`'s acknowledgement to `acks`. Acceptance is "this message and every earlier one of
/// its container", so a run of one container's messages needs only its last.
fn note_ack(acks: &mut Vec<Ack>, msg: &Message) {
    let Some(ack) = &msg.ack else { return };
    match acks.last_mut() {
        Some(last) if Arc::ptr_eq(&last.progress, &ack.progress) => last.seq = ack.seq,
        _ => acks.push(ack.clone()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::checkpoint::Progress;
    use crate::position::Position;

    /// A context over a queue of `queue` messages, its sender, and the queue's room.
    pub(crate) fn context(queue: usize) -> (RouteContext, mpsc::Sender<Messages>, Arc<Semaphore>) {
        let (tx, rx) = mpsc::channel(queue);
        let room = Arc::new(Semaphore::new(queue));
        let backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
        let ctx = RouteContext::new("r".into(), 0, backoff, (rx, Arc::clone(&room), queue), CancellationToken::new());
        (ctx, tx, room)
    }

    /// One batch of these lines.
    pub(crate) fn batch(lines: &[&str]) -> Messages {
        lines.iter().map(|line| Message::test(line)).collect::<Vec<_>>().into()
    }

    fn encode(out: &mut Vec<u8>, msg: &Message) {
        out.extend_from_slice(msg.line.as_bytes());
        out.push(b'|');
    }

    async fn fill(ctx: &mut RouteContext, max: usize) -> (Fill, String) {
        let mut out = Vec::new();
        let got = ctx.fill_batch(&mut out, max, encode).await;
        (got, String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn a_full_batch_is_cut_and_its_rest_comes_next() {
        let (mut ctx, tx, _room) = context(10);
        tx.send(batch(&["aa", "bb", "cc"])).await.expect("open");
        tx.send(batch(&["dd", "ee"])).await.expect("open");
        assert_eq!(fill(&mut ctx, 5).await, (Fill::Filled(2), "aa|bb|".into()));
        assert_eq!(fill(&mut ctx, 100).await, (Fill::Filled(3), "cc|dd|ee|".into()), "the rest, then the next batch");
        drop(tx);
        assert_eq!(fill(&mut ctx, 100).await, (Fill::Closed, String::new()));
        assert!(!ctx.is_done(), "closed, but nothing accepted yet");
        ctx.accept(5);
        assert!(ctx.is_done());
    }

    #[tokio::test]
    async fn room_comes_back_only_as_messages_are_accepted() {
        let (mut ctx, tx, room) = context(10);
        room.forget_permits(5);
        tx.send(batch(&["aa", "bb", "cc"])).await.expect("open");
        tx.send(batch(&["dd", "ee"])).await.expect("open");
        assert_eq!(fill(&mut ctx, 100).await.0, Fill::Filled(5));
        assert_eq!(room.available_permits(), 5, "handed out is not accepted");
        ctx.accept(4);
        assert_eq!(room.available_permits(), 9);
        assert_eq!(ctx.unaccepted(), 1);
    }

    #[tokio::test]
    async fn a_rewind_hands_out_again_from_the_oldest_unaccepted() {
        let (mut ctx, tx, _room) = context(10);
        tx.send(batch(&["aa", "bb", "cc"])).await.expect("open");
        tx.send(batch(&["dd"])).await.expect("open");
        assert_eq!(fill(&mut ctx, 100).await.1, "aa|bb|cc|dd|");
        ctx.accept(1);
        ctx.rewind();
        assert_eq!(fill(&mut ctx, 100).await.1, "bb|cc|dd|", "everything after the accepted one");
        ctx.accept(2);
        ctx.rewind();
        assert_eq!(fill(&mut ctx, 100).await.1, "dd|", "a rewind onto a batch boundary");
        tx.send(batch(&["ee"])).await.expect("open");
        assert_eq!(fill(&mut ctx, 100).await.1, "ee|", "then what is new");
        ctx.accept(2);
        assert_eq!(ctx.unaccepted(), 0);
    }

    #[tokio::test]
    async fn messages_handed_out_one_batch_at_a_time() {
        let (mut ctx, tx, _room) = context(10);
        tx.send(batch(&["aa", "bb"])).await.expect("open");
        let (b, range) = ctx.next_messages().await.expect("a batch");
        assert_eq!((b.len(), range), (2, 0..2));
        ctx.accept(1);
        ctx.rewind();
        let (_, range) = ctx.next_messages().await.expect("the rest again");
        assert_eq!(range, 1..2);
        drop(tx);
        ctx.accept(1);
        assert!(ctx.next_messages().await.is_none());
        assert!(ctx.is_done());
    }

    #[tokio::test]
    async fn accepting_tells_each_containers_progress() {
        let (mut ctx, tx, _room) = context(10);
        let (p, q) = (Arc::new(Progress::new(1, 0)), Arc::new(Progress::new(1, 0)));
        let numbered = |progress: &Arc<Progress>, line: &str| {
            Message::test_numbered(line, progress, Position::from_time(i64::try_from(line.len()).unwrap_or(0)))
        };
        let messages: Messages = vec![numbered(&p, "a"), numbered(&p, "bb"), numbered(&q, "ccc")].into();
        tx.send(messages).await.expect("open");
        assert_eq!(fill(&mut ctx, 100).await.0, Fill::Filled(3));
        ctx.accept(2);
        assert_eq!(p.settle(), Some(Position::from_time(2)), "both of p's messages");
        assert_eq!(q.settle(), None, "q's message is not accepted yet");
        ctx.accept(1);
        assert_eq!(q.settle(), Some(Position::from_time(3)));
    }

    #[tokio::test]
    async fn abandoning_counts_every_message_left_and_closes_the_room() {
        let (mut ctx, tx, room) = context(10);
        tx.send(batch(&["aa", "bb", "cc"])).await.expect("open");
        tx.send(batch(&["dd"])).await.expect("open");
        assert_eq!(fill(&mut ctx, 1).await.0, Fill::Filled(1));
        ctx.accept(1);
        ctx.abandon();
        assert_eq!(ctx.stats.undelivered.get(), 3, "two left of the first batch, one queued");
        assert!(room.is_closed(), "readers waiting for room learn the route is gone");
        assert!(ctx.is_done());
    }

    #[tokio::test]
    async fn what_was_accepted_lately_is_written_again_first_and_not_counted() {
        let (mut ctx, tx, _room) = context(10);
        assert_eq!(ctx.replay(Instant::now()), 0, "nothing kept unless asked");
        ctx.keep_accepted(Duration::from_secs(60));
        tx.send(batch(&["a", "b", "c"])).await.expect("open");
        assert_eq!(fill(&mut ctx, 100).await, (Fill::Filled(3), "a|b|c|".to_owned()));
        ctx.accept(2);
        // Lost: the two accepted come again, then the one that was not.
        assert_eq!(ctx.replay(Instant::now()), 2);
        // Lost again before they were written: still kept, and handed out once.
        assert_eq!(ctx.replay(Instant::now()), 2);
        ctx.rewind();
        assert_eq!(fill(&mut ctx, 100).await, (Fill::Filled(1), "a|b|c|".to_owned()), "only c is to accept");
        ctx.accept(1);
        assert_eq!(ctx.stats.replayed.get(), 4);
        // Only what was accepted within the window before the peer last acknowledged anything.
        let later = Instant::now() + Duration::from_secs(120);
        assert_eq!(ctx.replay(later), 0);
        // At most a queue's worth is kept.
        for _ in 0..4 {
            tx.send(batch(&["d", "e", "f"])).await.expect("open");
            let (filled, _) = fill(&mut ctx, 100).await;
            assert_eq!(filled, Fill::Filled(3));
            ctx.accept(3);
        }
        assert_eq!(ctx.replay(Instant::now()), 9, "the newest whole batches within 10 messages");
        drop(tx);
        assert_eq!(fill(&mut ctx, 6).await.0, Fill::Filled(0), "replayed before the queue is found closed");
        assert!(!ctx.is_done(), "three still to write again");
        assert_eq!(fill(&mut ctx, 100).await.0, Fill::Filled(0));
        assert_eq!(fill(&mut ctx, 100).await.0, Fill::Closed);
        assert!(ctx.is_done());
    }

    #[tokio::test]
    async fn a_body_never_grows_past_its_limit_unless_one_message_alone_does() {
        let (mut ctx, tx, _room) = context(10);
        tx.send(batch(&["aaaa", "bbbb", "cccc", "dddddddddddddddd"])).await.expect("open");
        let encode = |out: &mut Vec<u8>, msg: &Message| {
            out.extend_from_slice(msg.line.as_bytes());
            out.push(b'|');
        };
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let mut out = Vec::new();
            let filled = ctx.fill_body(&mut out, 12, encode).await;
            bodies.push((filled, String::from_utf8(out).expect("utf-8")));
        }
        assert_eq!(
            bodies,
            [
                (Fill::Filled(2), "aaaa|bbbb|".to_owned()),
                (Fill::Filled(1), "cccc|".to_owned()),
                (Fill::Filled(1), "dddddddddddddddd|".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_message_the_encoder_fails_on_is_dropped_and_the_rest_go_on() {
        let (mut ctx, tx, _room) = context(10);
        tx.send(batch(&["aa", "poison", "cc"])).await.expect("open");
        let mut out = Vec::new();
        let encode = |out: &mut Vec<u8>, msg: &Message| {
            out.extend_from_slice(b"partial");
            assert_ne!(msg.line, "poison", "an encoder bug");
            out.truncate(out.len() - 7);
            out.extend_from_slice(msg.line.as_bytes());
            out.push(b'|');
        };
        assert_eq!(ctx.fill_batch(&mut out, 100, encode).await, Fill::Filled(3), "counted, to be accepted in order");
        assert_eq!(out, b"aa|cc|");
        assert_eq!(ctx.stats.dropped_failed.get(), 1);
    }
}
