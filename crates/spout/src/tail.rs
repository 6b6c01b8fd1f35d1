//! The live tail behind `GET /logs`: every batch the readers hand to the router is offered to
//! the tail's clients too, as the same shared batch. A client that falls behind is dropped and
//! counted; nothing ever waits for one, and with no client the tail costs one check per batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::message::Messages;
use crate::stats::Counter;

/// Batches a client may fall behind by before it is dropped.
const LAG_BATCHES: usize = 64;

/// Clients at most at once.
pub const MAX_CLIENTS: usize = 8;

#[derive(Debug)]
pub struct Tail {
    tx: broadcast::Sender<Messages>,
    clients: AtomicUsize,
    /// Clients dropped for falling behind.
    pub dropped: Counter,
}

impl Default for Tail {
    fn default() -> Self {
        Tail { tx: broadcast::channel(LAG_BATCHES).0, clients: AtomicUsize::new(0), dropped: Counter::default() }
    }
}

/// One client's place in the tail; leaving frees it.
pub struct Client {
    tail: Arc<Tail>,
    pub rx: broadcast::Receiver<Messages>,
}

impl Client {
    pub fn tail(&self) -> &Tail {
        &self.tail
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.tail.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Tail {
    /// Offers a batch to the clients, if there are any.
    pub fn offer(&self, batch: &Messages) {
        if self.tx.receiver_count() > 0 {
            // Fails only when the last client left meanwhile.
            let _ = self.tx.send(Arc::clone(batch));
        }
    }

    /// A new client, unless [`MAX_CLIENTS`] are there already.
    pub fn join(self: &Arc<Self>) -> Option<Client> {
        let joined =
            self.clients.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < MAX_CLIENTS).then_some(n + 1));
        joined.ok().map(|_| Client { tail: Arc::clone(self), rx: self.tx.subscribe() })
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn batch(line: &str) -> Messages {
        vec![Message::test(line)].into()
    }

    #[tokio::test]
    async fn clients_get_every_batch_and_a_lagging_one_learns_it_fell_behind() {
        let tail = Arc::new(Tail::default());
        tail.offer(&batch("before anyone listens"));
        let mut fast = tail.join().expect("room");
        let mut slow = tail.join().expect("room");
        for i in 0..LAG_BATCHES + 1 {
            tail.offer(&batch(&format!("l{i}")));
            let got = fast.rx.recv().await.expect("open");
            assert_eq!(got[0].line, format!("l{i}"));
        }
        assert!(matches!(slow.rx.recv().await, Err(broadcast::error::RecvError::Lagged(1))));
    }

    #[test]
    fn clients_are_capped_and_leaving_frees_a_place() {
        let tail = Arc::new(Tail::default());
        let clients: Vec<Client> = (0..MAX_CLIENTS).map(|_| tail.join().expect("room")).collect();
        assert!(tail.join().is_none());
        drop(clients);
        assert_eq!(tail.clients(), 0);
        assert!(tail.join().is_some());
    }
}
