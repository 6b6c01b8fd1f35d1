//! Routes: one task per destination, each with its own bounded queue, encoder and transport.

mod gelf_fields;
pub mod stdout;
pub mod tcp;
pub mod udp;
pub mod uri;

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::checkpoint::Ack;
use crate::message::Message;
use crate::router::{Messages, RouteQueue, Router};
use crate::stats::RouteStats;
use uri::{RouteKind, RouteSpec};

/// A running route.
pub struct RouteHandle {
    pub name: Arc<str>,
    pub stats: Arc<RouteStats>,
    pub task: JoinHandle<()>,
}

/// Starts every route and returns the router that feeds them. Each route drains its queue until
/// every sender is gone; `abort` makes it give up on what it still holds.
pub fn spawn(specs: &[RouteSpec], abort: &CancellationToken) -> (Router, Vec<RouteHandle>) {
    let mut queues = Vec::new();
    let mut handles = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        // Every batch holds a message at least: `room` bounds the queue before the channel does.
        let (tx, rx) = mpsc::channel(spec.queue);
        let room = Arc::new(Semaphore::new(spec.queue));
        let stats = Arc::new(RouteStats::default());
        let name: Arc<str> = spec.uri.as_str().into();
        let ctx = RouteContext {
            name: Arc::clone(&name),
            index,
            rx,
            room: Arc::clone(&room),
            held: None,
            stats: Arc::clone(&stats),
            abort: abort.clone(),
            backoff: spec.backoff.clone(),
        };
        let task = match &spec.kind {
            RouteKind::GelfUdp { addr, compression, chunk_size } => {
                tokio::spawn(udp::run(ctx, addr.clone(), *compression, *chunk_size))
            }
            RouteKind::GelfTcp { addr } => tokio::spawn(tcp::run(ctx, addr.clone())),
            RouteKind::Stdout => tokio::spawn(stdout::run(ctx)),
        };
        queues.push(RouteQueue {
            name: Arc::clone(&name),
            index,
            tx,
            room,
            queue: spec.queue,
            when_full: spec.when_full,
            stats: Arc::clone(&stats),
        });
        handles.push(RouteHandle { name, stats, task });
    }
    (Router::new(queues), handles)
}

/// What a route task owns.
pub struct RouteContext {
    pub name: Arc<str>,
    /// This route's number, as acknowledgements name it.
    pub index: usize,
    /// How this route retries its destination.
    pub backoff: Backoff,
    rx: mpsc::Receiver<Messages>,
    /// The queue's room in messages, given back as batches are taken out.
    room: Arc<Semaphore>,
    /// A batch taken from the queue, and how many of its messages were handled.
    held: Option<(Messages, usize)>,
    pub stats: Arc<RouteStats>,
    /// Cancelled when the shutdown grace period is over.
    pub abort: CancellationToken,
}

/// What [`RouteContext::fill_batch`] found.
pub enum Batch {
    /// This many messages were encoded into the batch.
    Filled(usize),
    /// The queue is closed and empty: every reader is done.
    Closed,
    /// The grace period is over.
    Aborted,
}

impl RouteContext {
    /// Waits for the next whole batch of messages; `None` when the queue is closed and empty.
    /// For routes that handle messages one by one (UDP); a route uses this or
    /// [`RouteContext::fill_batch`], which may hold the rest of a batch it cut, not both.
    pub async fn recv(&mut self) -> Option<Messages> {
        let batch = self.rx.recv().await?;
        self.room.add_permits(batch.len());
        Some(batch)
    }

    /// Waits for a message, then takes whatever else is queued, encoding each into `out` until it
    /// holds `max_bytes`: one write for many messages under load, one per message when idle.
    pub async fn fill_batch(
        &mut self,
        out: &mut Vec<u8>,
        acks: &mut Vec<Ack>,
        max_bytes: usize,
        mut encode: impl FnMut(&mut Vec<u8>, &Message),
    ) -> Batch {
        let (mut batch, mut done) = match self.held.take() {
            Some(held) => held,
            None => {
                let first = tokio::select! {
                    batch = self.rx.recv() => batch,
                    () = self.abort.cancelled() => return Batch::Aborted,
                };
                let Some(batch) = first else { return Batch::Closed };
                self.room.add_permits(batch.len());
                (batch, 0)
            }
        };
        let mut count = 0;
        loop {
            while let Some(msg) = batch.get(done) {
                encode(out, msg);
                note_ack(acks, msg);
                count += 1;
                done += 1;
                if out.len() >= max_bytes {
                    if done < batch.len() {
                        self.held = Some((batch, done));
                    }
                    return Batch::Filled(count);
                }
            }
            match self.rx.try_recv() {
                Ok(next) => {
                    self.room.add_permits(next.len());
                    (batch, done) = (next, 0);
                }
                Err(_) => return Batch::Filled(count),
            }
        }
    }

    /// Tells the checkpoints that these messages were accepted.
    pub fn accept(&self, acks: &mut Vec<Ack>) {
        for ack in acks.drain(..) {
            ack.accept(self.index);
        }
    }

    /// Counts what is still queued as undelivered; for a route that is giving up.
    pub fn abandon(&mut self, held: usize) {
        self.rx.close();
        self.room.close();
        let mut left = held as u64;
        if let Some((batch, done)) = self.held.take() {
            left += (batch.len() - done) as u64;
        }
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
pub fn note_ack(acks: &mut Vec<Ack>, msg: &Message) {
    let Some(ack) = &msg.ack else { return };
    match acks.last_mut() {
        Some(last) if Arc::ptr_eq(&last.progress, &ack.progress) => last.seq = ack.seq,
        _ => acks.push(ack.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::message::{Container, Stream};

    fn context(queue: usize) -> (RouteContext, mpsc::Sender<Messages>) {
        let (tx, rx) = mpsc::channel(queue);
        let ctx = RouteContext {
            name: "r".into(),
            index: 0,
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(1)),
            rx,
            room: Arc::new(Semaphore::new(queue)),
            held: None,
            stats: Arc::default(),
            abort: CancellationToken::new(),
        };
        (ctx, tx)
    }

    fn batch(lines: &[&str]) -> Messages {
        let container = Arc::new(Container::default());
        lines
            .iter()
            .map(|line| Message {
                container: Arc::clone(&container),
                stream: Stream::Stdout,
                ts_ns: 1,
                line: (*line).into(),
                truncated: false,
                ack: None,
            })
            .collect::<Vec<_>>()
            .into()
    }

    fn encode(out: &mut Vec<u8>, msg: &Message) {
        out.extend_from_slice(msg.line.as_bytes());
        out.push(b'|');
    }

    #[tokio::test]
    async fn a_full_batch_is_cut_and_its_rest_comes_next() {
        let (mut ctx, tx) = context(10);
        ctx.room.forget_permits(5);
        tx.send(batch(&["aa", "bb", "cc"])).await.expect("open");
        tx.send(batch(&["dd", "ee"])).await.expect("open");
        let (mut out, mut acks) = (Vec::new(), Vec::new());
        assert!(matches!(ctx.fill_batch(&mut out, &mut acks, 5, encode).await, Batch::Filled(2)));
        assert_eq!(out, b"aa|bb|");
        out.clear();
        assert!(matches!(ctx.fill_batch(&mut out, &mut acks, 100, encode).await, Batch::Filled(3)));
        assert_eq!(out, b"cc|dd|ee|", "the rest of the cut batch, then the next one");
        assert_eq!(ctx.room.available_permits(), 10, "taking batches out gives their room back");
        drop(tx);
        assert!(matches!(ctx.fill_batch(&mut out, &mut acks, 100, encode).await, Batch::Closed));
    }

    #[tokio::test]
    async fn abandoning_counts_every_message_left_and_closes_the_room() {
        let (mut ctx, tx) = context(10);
        tx.send(batch(&["aa", "bb", "cc"])).await.expect("open");
        tx.send(batch(&["dd"])).await.expect("open");
        let (mut out, mut acks) = (Vec::new(), Vec::new());
        assert!(matches!(ctx.fill_batch(&mut out, &mut acks, 1, encode).await, Batch::Filled(1)));
        ctx.abandon(1);
        assert_eq!(ctx.stats.undelivered.get(), 4, "one held, two left of the cut batch, one queued");
        assert!(ctx.room.is_closed(), "readers waiting for room learn the route is gone");
    }
}
