//! Fan-out from the readers to every route's bounded queue, applying each route's policy for a
//! full queue. Readers call it directly, so a blocking route stops exactly the readers that feed
//! it, and nothing is read that cannot be queued.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::warn;

use crate::message::Message;
use crate::routes::uri::WhenFull;
use crate::stats::RouteStats;

/// The sending side of one route.
#[derive(Debug, Clone)]
pub struct RouteQueue {
    pub name: Arc<str>,
    /// The route's number, as acknowledgements name it.
    pub index: usize,
    pub tx: mpsc::Sender<Arc<Message>>,
    pub when_full: WhenFull,
    pub stats: Arc<RouteStats>,
}

/// Every route has shut down; there is nowhere left to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all routes have closed")]
pub struct Closed;

#[derive(Debug, Clone)]
pub struct Router {
    queues: Arc<[RouteQueue]>,
}

impl Router {
    pub fn new(queues: Vec<RouteQueue>) -> Self {
        Router { queues: queues.into() }
    }

    /// How many routes there are.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Queues `msg` on every route: waits where the route blocks when full, drops and counts
    /// where it drops. Fails only when no route is left.
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        let msg = Arc::new(msg);
        let mut open = 0;
        for q in self.queues.iter() {
            let sent = match q.when_full {
                WhenFull::Block => q.tx.send(Arc::clone(&msg)).await.is_ok(),
                WhenFull::Drop => match q.tx.try_send(Arc::clone(&msg)) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(dropped)) => {
                        // Dropped for good: this route is done with it, and the checkpoint
                        // must not wait for it.
                        dropped.accept(q.index);
                        let dropped = q.stats.dropped_full.add(1);
                        if dropped.is_power_of_two() {
                            warn!(route = %q.name, dropped, "route queue full, dropping messages (when_full=drop)");
                        }
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
            };
            open += usize::from(sent);
        }
        if open == 0 {
            Err(Closed)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Container, Stream};

    fn msg(line: &str) -> Message {
        Message {
            container: Arc::new(Container::default()),
            stream: Stream::Stdout,
            ts_ns: 1,
            line: line.into(),
            truncated: false,
            ack: None,
        }
    }

    fn queue(when_full: WhenFull, cap: usize) -> (RouteQueue, mpsc::Receiver<Arc<Message>>) {
        let (tx, rx) = mpsc::channel(cap);
        (RouteQueue { name: "r".into(), index: 0, tx, when_full, stats: Arc::default() }, rx)
    }

    #[tokio::test]
    async fn fans_out_and_counts_drops() {
        let (dropping, mut drop_rx) = queue(WhenFull::Drop, 1);
        let (blocking, mut block_rx) = queue(WhenFull::Block, 2);
        let stats = Arc::clone(&dropping.stats);
        let router = Router::new(vec![dropping, blocking]);
        router.send(msg("a")).await.expect("open");
        router.send(msg("b")).await.expect("open");
        assert_eq!(stats.dropped_full.get(), 1);
        assert_eq!(drop_rx.recv().await.map(|m| m.line.clone()), Some("a".into()));
        assert_eq!(block_rx.recv().await.map(|m| m.line.clone()), Some("a".into()));
        assert_eq!(block_rx.recv().await.map(|m| m.line.clone()), Some("b".into()));
    }

    #[tokio::test]
    async fn blocks_until_the_route_takes_it() {
        let (blocking, mut rx) = queue(WhenFull::Block, 1);
        let router = Router::new(vec![blocking]);
        router.send(msg("a")).await.expect("open");
        let pending = tokio::spawn({
            let router = router.clone();
            async move { router.send(msg("b")).await }
        });
        tokio::task::yield_now().await;
        assert!(!pending.is_finished());
        assert_eq!(rx.recv().await.map(|m| m.line.clone()), Some("a".into()));
        assert_eq!(pending.await.expect("joined"), Ok(()));
        assert_eq!(rx.recv().await.map(|m| m.line.clone()), Some("b".into()));
    }

    #[tokio::test]
    async fn closed_when_no_route_is_left() {
        let (q, rx) = queue(WhenFull::Block, 1);
        drop(rx);
        assert_eq!(Router::new(vec![q]).send(msg("a")).await, Err(Closed));
    }
}
