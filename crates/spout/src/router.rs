//! Fan-out from the readers to the bounded queue of every route that wants a batch, applying
//! each route's policy for a full queue. Readers call it directly: a blocking route whose queue
//! is full (its destination down, or not acknowledging) stops every reader it takes lines from,
//! so nothing is read that cannot be queued, and the other routes wait too until it has room. A
//! route that should never hold up the rest is given `when_full=drop`.
//!
//! A route's filter decides per container (and stream) ahead of time; the messages it rejects
//! never enter its queue, and its checkpoint does not wait for them.
//!
//! Routes come and go while spout runs (`/routes`): each has a number (a slot, 0 to 63) for its
//! whole life, never given to another route in the same run, so the bits that name it in
//! containers' decisions and in pending messages cannot be mistaken for another's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::{mpsc, watch, Semaphore, TryAcquireError};
use tracing::warn;

use crate::enrich::filter::RouteFilter;
use crate::message::{Container, Message, Messages};
use crate::slots::route_bit;
use crate::stats::RouteStats;

/// What a route does with a message when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait: the container's reader stops, and its lines stay in Docker's log file.
    Block,
    /// Drop the newest message and count it.
    Drop,
}

/// Most messages in one batch.
pub const SHIP_MAX: usize = 256;

/// The sending side of one route.
#[derive(Debug, Clone)]
pub struct RouteQueue {
    pub name: Arc<str>,
    /// The route's number, as acknowledgements name it.
    pub index: usize,
    /// Holds up to `queue` batches; `room` is what bounds it.
    pub tx: mpsc::Sender<Messages>,
    /// One permit per message the route may still hold: a batch takes as many as it holds, and
    /// the route gives them back as it accepts messages (a message written and not yet
    /// acknowledged still holds its permit). Closed when the route ends.
    pub room: Arc<Semaphore>,
    /// Messages this route holds at most, as its `queue` option says.
    pub capacity: usize,
    pub when_full: WhenFull,
    pub stats: Arc<RouteStats>,
    /// Which containers and streams it wants.
    pub filter: RouteFilter,
}

#[cfg(test)]
impl RouteQueue {
    /// For tests: route 0's queue of `capacity` messages, and its receiving end (which gives back
    /// no room).
    pub(crate) fn for_tests(when_full: WhenFull, capacity: usize) -> (RouteQueue, mpsc::Receiver<Messages>) {
        let (tx, rx) = mpsc::channel(capacity);
        let queue = RouteQueue {
            name: "r".into(),
            index: 0,
            tx,
            room: Arc::new(Semaphore::new(capacity)),
            capacity,
            when_full,
            stats: Arc::default(),
            filter: RouteFilter::default(),
        };
        (queue, rx)
    }
}

/// Every route has shut down; there is nowhere left to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all routes have closed")]
pub struct Closed;

#[derive(Debug, Clone)]
pub struct Router {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queues: RwLock<Arc<[RouteQueue]>>,
    batch_max: usize,
    /// Offered every batch, for `GET /logs`.
    tail: OnceLock<Arc<crate::tail::Tail>>,
    /// The slots of routes removed in this run.
    retired: AtomicU64,
    /// Counts changes to the routes: containers' route decisions are to be made again.
    changes: watch::Sender<u64>,
}

impl Router {
    pub fn new(queues: Vec<RouteQueue>) -> Self {
        let batch_max = queues.iter().map(|q| q.capacity.clamp(1, SHIP_MAX)).min().unwrap_or(SHIP_MAX);
        let shared = Shared {
            queues: RwLock::new(queues.into()),
            batch_max,
            tail: OnceLock::new(),
            retired: AtomicU64::new(0),
            changes: watch::channel(0).0,
        };
        Router { shared: Arc::new(shared) }
    }

    /// Offers every batch to `tail` too, from now on.
    pub fn with_tail(self, tail: Arc<crate::tail::Tail>) -> Self {
        let _ = self.shared.tail.set(tail);
        self
    }

    fn queues(&self) -> Arc<[RouteQueue]> {
        Arc::clone(&self.shared.queues.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn change(&self, change: impl FnOnce(&mut Vec<RouteQueue>)) {
        let mut queues = self.shared.queues.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changed = queues.to_vec();
        change(&mut changed);
        *queues = changed.into();
        drop(queues);
        self.shared.changes.send_modify(|n| *n += 1);
    }

    /// A new route: it gets the messages read from now on.
    pub fn add(&self, queue: RouteQueue) {
        self.change(|queues| queues.push(queue));
    }

    /// Route `index` is gone: no message goes to it any more, and its slot is never used again.
    pub fn remove(&self, index: usize) {
        self.shared.retired.fetch_or(route_bit(index), Ordering::AcqRel);
        self.change(|queues| queues.retain(|q| q.index != index));
    }

    /// No route gets anything more: at shutdown, once the readers are done, so that the routes
    /// see their queues close once they have delivered what they hold.
    pub fn close(&self) {
        self.change(Vec::clear);
    }

    /// The slots of the routes removed in this run.
    pub fn retired(&self) -> u64 {
        self.shared.retired.load(Ordering::Acquire)
    }

    /// Tells when routes come or go.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// By stream number, the routes (bit `n`: route `n`) that do not want `c`'s messages: those
    /// whose filter rejects it, and every slot no route holds.
    pub fn rejected_by(&self, c: &Container) -> [u64; 2] {
        let mut rejected = [u64::MAX; 2];
        for q in self.queues().iter() {
            let bit = route_bit(q.index);
            for (stream, wanted) in q.filter.wants_container(c).into_iter().enumerate() {
                if wanted {
                    rejected[stream] &= !bit;
                }
            }
        }
        rejected
    }

    /// Most messages to put in one batch: [`SHIP_MAX`], or less where the whole queue of a route
    /// there at start is smaller. Routes added later may have smaller queues: [`Router::send`]
    /// cuts a batch to fit each route's queue.
    pub fn batch_max(&self) -> usize {
        self.shared.batch_max
    }

    /// Queues `batch` (at most [`Router::batch_max`] messages) on every route: waits where the route
    /// blocks when full, drops and counts where it drops. Fails only when no route is left.
    pub async fn send(&self, batch: Vec<Message>) -> Result<(), Closed> {
        let batch: Messages = batch.into();
        if let Some(tail) = self.shared.tail.get() {
            tail.offer(&batch);
        }
        let mut open = 0;
        for q in self.queues().iter() {
            let Some(wanted) = wanted_by(&batch, q) else {
                // Rejected by the route's filter: as good as accepted.
                open += usize::from(!q.room.is_closed());
                continue;
            };
            let mut sent = true;
            // Cut to fit a route's whole queue, so that every part fits once the queue is empty.
            for part in fit(wanted, q.capacity) {
                sent &= Self::queue(q, part).await;
            }
            open += usize::from(sent);
        }
        if open == 0 {
            Err(Closed)
        } else {
            Ok(())
        }
    }

    /// Queues `batch` on `q`, waiting or dropping as it says; false when the route is gone.
    async fn queue(q: &RouteQueue, batch: Messages) -> bool {
        let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        match q.when_full {
            WhenFull::Block => match q.room.acquire_many(n).await {
                Ok(permits) => {
                    permits.forget();
                    q.tx.send(batch).await.is_ok()
                }
                Err(_) => false,
            },
            WhenFull::Drop => match q.room.try_acquire_many(n) {
                Ok(permits) => {
                    permits.forget();
                    q.tx.try_send(batch).is_ok()
                }
                Err(TryAcquireError::Closed) => false,
                Err(TryAcquireError::NoPermits) => {
                    // Dropped for good: this route is done with them, and the checkpoint
                    // must not wait for them (nor, best effort, for what it still holds:
                    // README, "Not promised").
                    for msg in batch.iter() {
                        msg.accept(q.index);
                    }
                    let n = u64::from(n);
                    let total = q.stats.dropped_full.add(n);
                    // Warn when the total passes a power of two: often at first, rarely later.
                    if (total - n).leading_zeros() != total.leading_zeros() {
                        warn!(route = %q.name, dropped = total, "route queue full, dropping messages (when_full=drop)");
                    }
                    true
                }
            },
        }
    }
}

/// `batch` in parts of at most `max` messages.
fn fit(batch: Messages, max: usize) -> Vec<Messages> {
    if batch.len() <= max.max(1) {
        return vec![batch];
    }
    batch.chunks(max.max(1)).map(Messages::from).collect()
}

/// The messages of `batch` that route `q` wants, if any: the whole batch, shared, when it
/// wants them all (a batch is one container's, so it usually wants all or none).
fn wanted_by(batch: &Messages, q: &RouteQueue) -> Option<Messages> {
    let bit = route_bit(q.index);
    let wants = |m: &Message| m.container.rejecting(m.stream) & bit == 0;
    let wanted = batch.iter().filter(|m| wants(m)).count();
    let rejected = (batch.len() - wanted) as u64;
    if rejected > 0 {
        q.stats.filtered.add(rejected);
    }
    if wanted == batch.len() {
        Some(Arc::clone(batch))
    } else if wanted == 0 {
        None
    } else {
        Some(batch.iter().filter(|m| wants(m)).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lines: &[&str]) -> Vec<Message> {
        lines.iter().map(|line| Message::test(line)).collect()
    }

    fn lines(batch: Option<Messages>) -> Vec<String> {
        batch.map(|b| b.iter().map(|m| m.line.clone()).collect()).unwrap_or_default()
    }

    fn queue(when_full: WhenFull, capacity: usize) -> (RouteQueue, mpsc::Receiver<Messages>) {
        RouteQueue::for_tests(when_full, capacity)
    }

    #[tokio::test]
    async fn fans_out_and_counts_drops() {
        let (dropping, mut drop_rx) = queue(WhenFull::Drop, 3);
        let (blocking, mut block_rx) = queue(WhenFull::Block, 5);
        let stats = Arc::clone(&dropping.stats);
        let router = Router::new(vec![dropping, blocking]);
        router.send(batch(&["a", "b"])).await.expect("open");
        router.send(batch(&["c", "d", "e"])).await.expect("open");
        assert_eq!(stats.dropped_full.get(), 3, "the queue is counted in messages: the second batch does not fit");
        assert_eq!(lines(drop_rx.recv().await), ["a", "b"]);
        assert_eq!(lines(block_rx.recv().await), ["a", "b"]);
        assert_eq!(lines(block_rx.recv().await), ["c", "d", "e"]);
    }

    #[tokio::test]
    async fn blocks_until_the_route_makes_room() {
        let (blocking, mut rx) = queue(WhenFull::Block, 2);
        let room = Arc::clone(&blocking.room);
        let router = Router::new(vec![blocking]);
        router.send(batch(&["a"])).await.expect("open");
        router.send(batch(&["b"])).await.expect("open");
        let pending = tokio::spawn({
            let router = router.clone();
            async move { router.send(batch(&["c"])).await }
        });
        tokio::task::yield_now().await;
        assert!(!pending.is_finished(), "two one-message batches fill a queue of two");
        assert_eq!(lines(rx.recv().await), ["a"]);
        room.add_permits(1);
        assert_eq!(pending.await.expect("joined"), Ok(()));
        assert_eq!(lines(rx.recv().await), ["b"]);
        assert_eq!(lines(rx.recv().await), ["c"]);
    }

    #[tokio::test]
    async fn closed_when_no_route_is_left() {
        let (q, rx) = queue(WhenFull::Block, 1);
        drop(rx);
        q.room.close();
        assert_eq!(Router::new(vec![q]).send(batch(&["a"])).await, Err(Closed));
    }

    #[tokio::test]
    async fn a_route_gets_only_what_its_filter_wants() {
        let (all, mut all_rx) = queue(WhenFull::Block, 10);
        let (mut stderr_only, mut stderr_rx) = queue(WhenFull::Block, 10);
        stderr_only.index = 1;
        let (stats, room) = (Arc::clone(&stderr_only.stats), Arc::clone(&stderr_only.room));
        let router = Router::new(vec![all, stderr_only]);
        let container = Arc::new(crate::message::Container { rejected_by: [0b10, 0], ..Default::default() });
        let mut batch = batch(&["out", "err", "out"]);
        for m in &mut batch {
            m.container = Arc::clone(&container);
        }
        batch[1].stream = crate::message::Stream::Stderr;
        router.send(batch.clone()).await.expect("open");
        assert_eq!(lines(all_rx.recv().await), ["out", "err", "out"]);
        assert_eq!(lines(stderr_rx.recv().await), ["err"]);
        assert_eq!((stats.filtered.get(), room.available_permits()), (2, 9), "rejected messages take no room");
        batch.remove(1);
        router.send(batch).await.expect("open");
        assert_eq!(lines(all_rx.recv().await), ["out", "out"]);
        assert!(stderr_rx.try_recv().is_err(), "nothing for a route that rejects the whole batch");
    }

    #[test]
    fn no_batch_is_larger_than_the_smallest_queue() {
        let (small, _rx) = queue(WhenFull::Block, 5);
        let (large, _rx2) = queue(WhenFull::Block, 10_000);
        assert_eq!(Router::new(vec![small, large]).batch_max(), 5);
        let (large, _rx3) = queue(WhenFull::Block, 10_000);
        assert_eq!(Router::new(vec![large]).batch_max(), SHIP_MAX);
    }
}
