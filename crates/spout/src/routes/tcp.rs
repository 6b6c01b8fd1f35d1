//! GELF over TCP: uncompressed JSON messages, each ended by a NUL byte, written in batches.
//!
//! A successful write only means the local kernel took the bytes: when the receiver dies, what was
//! in flight or in its receive buffer is gone, and the sender learns of it only later. So a
//! written batch is kept for a replay window and counted as accepted only once it has aged past
//! it (or once a clean close, our FIN answered by the peer's EOF, proves everything was read).
//! After a reconnect, every batch not yet accepted is written again: a destination restart costs
//! duplicates, not lines. While the destination is down, the batch in hand waits, and with it,
//! through the bounded queue, the readers.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};

use super::gelf_fields::GelfFields;
use super::uri::HostPort;
use super::{Batch, RouteContext};
use crate::checkpoint::Ack;
use crate::message::Message;

/// A batch is written once it holds this many bytes, or when the queue is empty.
const BATCH_BYTES: usize = 256 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a written batch is kept to be written again should the connection turn out dead.
const REPLAY_WINDOW: Duration = Duration::from_secs(2);
/// Most bytes kept for replay; past it the oldest batches are accepted early.
const REPLAY_MAX_BYTES: usize = 4 << 20;
/// How long a clean close waits for the peer's EOF.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A batch written to the connection, not yet accepted.
struct Written {
    at: Instant,
    bytes: Vec<u8>,
    acks: Vec<Ack>,
    messages: usize,
}

/// How a connection ended, as its watching task saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Open,
    /// The peer closed its side: it read everything before it (a clean close).
    Eof,
    /// Reset or failed: unread data may have been thrown away.
    Failed,
}

/// A connection, and the task that watches it for the peer closing it.
struct Conn {
    tx: OwnedWriteHalf,
    ended: watch::Receiver<Ended>,
    _watch: AbortOnDropHandle<()>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        let (mut rx, tx) = stream.into_split();
        let (ended_tx, ended) = watch::channel(Ended::Open);
        // The peer never sends anything: whatever the read returns (EOF or an error) means the
        // connection is over, usually long before a write would say so.
        let watch = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let how = loop {
                match rx.read(&mut buf).await {
                    Ok(0) => break Ended::Eof,
                    Ok(_) => {}
                    Err(_) => break Ended::Failed,
                }
            };
            let _ = ended_tx.send(how);
        });
        Conn { tx, ended, _watch: AbortOnDropHandle::new(watch) }
    }

    fn is_closed(&self) -> bool {
        *self.ended.borrow() != Ended::Open
    }
}

struct Route {
    ctx: RouteContext,
    addr: HostPort,
    conn: Option<Conn>,
    /// A connection was lost: wait a backoff delay before the next attempt, so a destination
    /// that accepts and drops connections is not hammered.
    lost: bool,
    replay: VecDeque<Written>,
    replay_bytes: usize,
}

pub async fn run(ctx: RouteContext, addr: HostPort) {
    let mut route = Route { ctx, addr, conn: None, lost: false, replay: VecDeque::new(), replay_bytes: 0 };
    route.run().await;
}

impl Route {
    async fn run(&mut self) {
        let mut encoder = gelf::Encoder::new();
        let mut fields = GelfFields::default();
        let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
        let mut acks = Vec::new();
        let mut in_batch = 0usize;
        let mut draining = false;
        loop {
            // A connection found closed first: nothing written on it may count as accepted now.
            if self.conn.as_ref().is_some_and(Conn::is_closed) {
                self.lost_connection("the destination closed the connection");
            }
            if self.conn.is_some() {
                self.accept_aged(Instant::now());
            }
            // Disconnected with unaccepted batches: reconnect and resend them now, not when the
            // next line comes.
            let resend_now = self.conn.is_none() && !self.replay.is_empty();
            if in_batch == 0 && !draining && !resend_now {
                let encode = |out: &mut Vec<u8>, msg: &Message| {
                    out.extend_from_slice(encoder.encode(&fields.message(msg)));
                    out.push(0);
                };
                let oldest = self.replay.front().map(|w| w.at + REPLAY_WINDOW);
                let conn_ended = self.conn.as_mut().map(|c| &mut c.ended);
                let ended = async move {
                    match conn_ended {
                        Some(ended) => {
                            let _ = ended.changed().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                let filled = tokio::select! {
                    filled = self.ctx.fill_batch(&mut batch, &mut acks, BATCH_BYTES, encode) => filled,
                    // Idle: age out what was written, and notice a closed connection early.
                    () = sleep_until(oldest) => continue,
                    () = ended => continue,
                };
                match filled {
                    Batch::Filled(n) => in_batch = n,
                    Batch::Aborted => return self.give_up(0),
                    Batch::Closed => draining = true,
                }
            }
            if draining && in_batch == 0 && self.replay.is_empty() {
                return;
            }
            if !self.ensure_connected().await {
                return self.give_up(in_batch);
            }
            if in_batch == 0 && !draining {
                continue; // connected only to resend
            }
            if draining && in_batch == 0 {
                // Everything is written; prove it was read before calling it accepted. Without
                // that proof it stays unaccepted, and a restarted spout reads it again.
                if self.close_cleanly().await {
                    self.accept_all();
                } else {
                    warn!(route = %self.ctx.name, batches = self.replay.len(), "the destination did not confirm the last writes; they will be sent again after a restart");
                }
                return;
            }
            match self.write(&batch).await {
                Ok(()) => {
                    self.ctx.stats.sent.add(in_batch as u64);
                    // An exact-size copy: the batch buffer (256 KiB and up) is reused, and a
                    // second's worth of small batches must not each pin one.
                    let written = Written {
                        at: Instant::now(),
                        bytes: batch.clone(),
                        acks: std::mem::take(&mut acks),
                        messages: in_batch,
                    };
                    self.replay_bytes += written.bytes.len();
                    self.replay.push_back(written);
                    batch.clear();
                    in_batch = 0;
                }
                Err(e) => self.lost_connection(&e.to_string()),
            }
            if self.ctx.abort.is_cancelled() {
                return self.give_up(in_batch);
            }
        }
    }

    /// Connects if needed, writing again whatever is waiting for replay. False when aborted.
    async fn ensure_connected(&mut self) -> bool {
        while self.conn.is_none() {
            if std::mem::take(&mut self.lost) {
                tokio::select! {
                    () = tokio::time::sleep(self.ctx.backoff.next_delay()) => {}
                    () = self.ctx.abort.cancelled() => return false,
                }
            }
            match connect(&self.addr).await {
                Ok(stream) => {
                    info!(route = %self.ctx.name, peer = %self.addr, replay = self.replay.len(), "connected");
                    self.conn = Some(Conn::new(stream));
                    if let Err(e) = self.resend().await {
                        self.lost_connection(&e.to_string());
                    }
                }
                Err(e) => {
                    let attempts = self.ctx.stats.connect_failures.add(1);
                    if attempts.is_power_of_two() {
                        warn!(route = %self.ctx.name, peer = %self.addr, error = %e, attempts, "cannot connect, retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(self.ctx.backoff.next_delay()) => {}
                        () = self.ctx.abort.cancelled() => return false,
                    }
                }
            }
        }
        true
    }

    /// Writes every batch kept for replay again, oldest first, restarting their windows.
    async fn resend(&mut self) -> std::io::Result<()> {
        let now = Instant::now();
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        for written in self.replay.iter_mut() {
            tokio::select! {
                result = conn.tx.write_all(&written.bytes) => result?,
                () = self.ctx.abort.cancelled() => return Ok(()),
            }
            written.at = now;
        }
        if !self.replay.is_empty() {
            debug!(route = %self.ctx.name, batches = self.replay.len(), "wrote unaccepted batches again");
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(conn) = self.conn.as_mut() else { return Err(std::io::ErrorKind::NotConnected.into()) };
        tokio::select! {
            result = conn.tx.write_all(bytes) => result,
            () = self.ctx.abort.cancelled() => Err(std::io::ErrorKind::Interrupted.into()),
        }
    }

    /// Shuts our side down and waits for the peer's EOF: then it has read everything. A reset
    /// proves nothing.
    async fn close_cleanly(&mut self) -> bool {
        let Some(mut conn) = self.conn.take() else { return false };
        if conn.tx.shutdown().await.is_err() {
            return false;
        }
        let end = async {
            loop {
                let now = *conn.ended.borrow_and_update();
                if now != Ended::Open || conn.ended.changed().await.is_err() {
                    return now;
                }
            }
        };
        tokio::select! {
            end = tokio::time::timeout(CLOSE_WAIT, end) => end == Ok(Ended::Eof),
            () = self.ctx.abort.cancelled() => false,
        }
    }

    fn lost_connection(&mut self, why: &str) {
        if self.conn.take().is_some() {
            self.lost = true;
            let losses = self.ctx.stats.reconnects.add(1);
            if losses.is_power_of_two() {
                warn!(route = %self.ctx.name, peer = %self.addr, error = %why, replay = self.replay.len(), losses, "connection lost, reconnecting to write again what was not accepted");
            }
        }
    }

    /// Accepts batches written longer ago than the replay window, or beyond its byte budget.
    fn accept_aged(&mut self, now: Instant) {
        while let Some(oldest) = self.replay.front() {
            let aged = now.saturating_duration_since(oldest.at) >= REPLAY_WINDOW;
            if !aged && self.replay_bytes <= REPLAY_MAX_BYTES {
                break;
            }
            if let Some(mut written) = self.replay.pop_front() {
                self.replay_bytes -= written.bytes.len();
                self.ctx.accept(&mut written.acks);
                // This connection has proven itself: the next loss starts backing off afresh.
                self.ctx.backoff.reset();
            }
        }
    }

    fn accept_all(&mut self) {
        while let Some(mut written) = self.replay.pop_front() {
            self.ctx.accept(&mut written.acks);
        }
        self.replay_bytes = 0;
    }

    /// The grace period is over: the batch in hand and the queue are not delivered, and what was
    /// written but not confirmed stays unaccepted; a restarted spout reads all of it again.
    fn give_up(&mut self, in_batch: usize) {
        let unconfirmed: usize = self.replay.iter().map(|w| w.messages).sum();
        if unconfirmed > 0 {
            warn!(route = %self.ctx.name, messages = unconfirmed, "written but not confirmed when the grace period ended");
        }
        self.ctx.abandon(in_batch);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn connect(addr: &HostPort) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((addr.host.as_str(), addr.port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
