//! Where every input hands what it received: payloads decompressed within a cap and checked
//! (a refusal is counted and logged, never fatal), then queued for the outputs in a bounded
//! queue. TCP and HTTP wait for room, so a fast sender is slowed down; UDP cannot wait, and
//! counts what it drops.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::event::{Event, Invalid};
use super::stats::{Input, Stats};

/// The outputs are gone: the receiver is stopping.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("spout receive is stopping")]
pub struct Stopping;

#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::Sender<Event>,
    pub stats: Arc<Stats>,
    /// Most bytes a payload may decompress to.
    pub max_decompressed: usize,
}

impl Intake {
    pub fn new(tx: mpsc::Sender<Event>, stats: Arc<Stats>, max_decompressed: usize) -> Intake {
        Intake { tx, stats, max_decompressed }
    }

    /// A GELF payload (plain, gzip or zlib, told by its first bytes) as a checked message.
    pub fn decode(&self, payload: &[u8]) -> Result<Event, Invalid> {
        let json = gelf::decompress(payload, self.max_decompressed)?;
        Event::parse(&json, now_s())
    }

    /// Counts and logs a refusal from `from`.
    pub fn refused(&self, input: Input, why: &Invalid, from: &dyn fmt::Display) {
        self.stats.invalid(input, why, from);
    }

    /// Queues `event`, waiting for room.
    pub async fn deliver(&self, input: Input, event: Event) -> Result<(), Stopping> {
        self.tx.send(event).await.map_err(|_| Stopping)?;
        self.stats.received(input);
        Ok(())
    }

    /// Queues `event` if there is room; counts it dropped otherwise.
    pub fn offer(&self, input: Input, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => self.stats.received(input),
            Err(mpsc::error::TrySendError::Full(_)) => self.stats.dropped("full", 1),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Now, in seconds since the epoch.
pub fn now_s() -> f64 {
    crate::timestamp::now_ns() as f64 / 1e9
}
