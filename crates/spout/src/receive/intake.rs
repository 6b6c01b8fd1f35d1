//! Where every input hands what it received: payloads decompressed within a cap and checked
//! (a refusal is counted and logged, never fatal), then queued for the outputs. The queue is
//! bounded twice, in messages and in the memory they hold. TCP and HTTP wait for room, so a fast
//! sender is slowed down (an HTTP request at most `HTTP_WAIT`, then it is answered 503); UDP
//! cannot wait, and counts what it drops.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::event::{Event, Invalid};
use super::stats::{Input, Stats};

/// Most memory the queued messages may hold, as their [`Event::weight`]s count it.
pub const QUEUE_BYTES: usize = 64 << 20;
/// Most messages queued (a request's several count as one).
pub const QUEUE_ITEMS: usize = 4096;
/// How long an HTTP request waits for room before it is answered 503, keeping nothing.
pub const HTTP_WAIT: Duration = Duration::from_secs(10);

/// Why messages were not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotQueued {
    #[error("spout receive is stopping")]
    Stopping,
    #[error("no room for them in time: the outputs are behind")]
    Busy,
}

/// Messages on their way to the outputs, with the room they take; given back when dropped.
pub struct Queued {
    pub events: Vec<Event>,
    _room: OwnedSemaphorePermit,
}

#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::Sender<Queued>,
    /// In KiB of weight.
    room: Arc<Semaphore>,
    pub stats: Arc<Stats>,
    /// Most bytes a message may decompress to.
    pub max_message: usize,
}

impl Intake {
    pub fn new(stats: Arc<Stats>, max_message: usize) -> (Intake, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(QUEUE_ITEMS);
        (Intake { tx, room: Arc::new(Semaphore::new(QUEUE_BYTES >> 10)), stats, max_message }, rx)
    }

    /// A GELF payload (plain, gzip or zlib, told by its first bytes) as a checked message.
    pub fn decode(&self, payload: &[u8]) -> Result<Event, Invalid> {
        let json = gelf::decompress(payload, self.max_message)?;
        Event::parse(&json, now_s())
    }

    /// Counts and logs a refusal from `from`.
    pub fn refused(&self, input: Input, why: &Invalid, from: &dyn fmt::Display) {
        self.stats.invalid(input, why, from);
    }

    /// Queues `events` all together, waiting for room: as long as it takes (TCP), or until
    /// `wait` has passed (HTTP).
    pub async fn deliver(&self, input: Input, events: Vec<Event>, wait: Option<Duration>) -> Result<(), NotQueued> {
        let kib = kib(&events);
        let n = events.len() as u64;
        let (room, permit) = match wait {
            None => {
                let room = Arc::clone(&self.room).acquire_many_owned(kib).await.map_err(|_| NotQueued::Stopping)?;
                (room, self.tx.reserve().await)
            }
            Some(wait) => {
                let deadline = tokio::time::Instant::now() + wait;
                let room =
                    tokio::time::timeout_at(deadline, self.room_within(kib)).await.map_err(|_| NotQueued::Busy)??;
                let permit = tokio::time::timeout_at(deadline, self.tx.reserve()).await.map_err(|_| NotQueued::Busy)?;
                (room, permit)
            }
        };
        permit.map_err(|_| NotQueued::Stopping)?.send(Queued { events, _room: room });
        self.stats.received(input, n);
        Ok(())
    }

    /// `kib` of room, taken as soon as that much is free, without queueing for it: a big
    /// request waiting at the head of the semaphore's line would hold every other input up.
    async fn room_within(&self, kib: u32) -> Result<OwnedSemaphorePermit, NotQueued> {
        loop {
            match Arc::clone(&self.room).try_acquire_many_owned(kib) {
                Ok(room) => return Ok(room),
                Err(tokio::sync::TryAcquireError::Closed) => return Err(NotQueued::Stopping),
                Err(tokio::sync::TryAcquireError::NoPermits) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Queues `event` if there is room; counts it dropped otherwise.
    pub fn offer(&self, input: Input, event: Event) {
        let events = vec![event];
        let Ok(room) = Arc::clone(&self.room).try_acquire_many_owned(kib(&events)) else {
            return self.stats.dropped("full", 1);
        };
        match self.tx.try_send(Queued { events, _room: room }) {
            Ok(()) => self.stats.received(input, 1),
            Err(mpsc::error::TrySendError::Full(_)) => self.stats.dropped("full", 1),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The room `events` take, in KiB (at least one), never more than the whole queue's.
fn kib(events: &[Event]) -> u32 {
    let kib = events.iter().map(Event::weight).sum::<usize>().div_ceil(1024).max(1);
    u32::try_from(kib.min(QUEUE_BYTES >> 10)).unwrap_or(u32::MAX)
}

/// Now, in seconds since the epoch.
pub fn now_s() -> f64 {
    crate::timestamp::now_ns() as f64 / 1e9
}
