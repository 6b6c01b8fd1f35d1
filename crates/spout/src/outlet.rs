//! A reader's end toward the routes, whatever its source: takes what a [`Pipeline`] has ready,
//! in batches, to the router, and keeps what /containers shows of it up to date.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::containers::Tracked;
use crate::message::Container;
use crate::pipeline::Pipeline;
use crate::router::Router;
use crate::stats::ReaderStats;

pub struct Outlet {
    pub router: Router,
    pub stats: Arc<ReaderStats>,
    /// Its delivery progress, and what /containers shows of it.
    pub tracked: Arc<Tracked>,
    /// What its messages carry: the inspected metadata, renamed and re-routed as the watcher
    /// says.
    pub meta: watch::Receiver<Arc<Container>>,
    pub cancel: CancellationToken,
}

impl Outlet {
    /// Hands the messages `pipeline` has ready to the router; false when shutting down or no
    /// route is left.
    pub async fn ship(&mut self, pipeline: &mut Pipeline) -> bool {
        let container = Arc::clone(&self.meta.borrow_and_update());
        let shipping_since = tokio::time::Instant::now();
        loop {
            let batch = pipeline.next_batch(self.router.batch_max(), &container, self.tracked.progress());
            if batch.is_empty() {
                break;
            }
            let n = batch.len() as u64;
            let bytes = batch.iter().map(|m| m.line.len() as u64).sum();
            let newest_ns = batch.iter().map(|m| m.ts_ns).max().unwrap_or(i64::MIN);
            self.tracked.waiting(true);
            let sent = tokio::select! {
                sent = self.router.send(batch) => sent.is_ok(),
                () = self.cancel.cancelled() => false,
            };
            self.tracked.waiting(false);
            if !sent {
                return false;
            }
            self.stats.lines.add(n);
            self.tracked.shipped(n, bytes, newest_ns);
        }
        // Waiting for room in the routes' queues is not time without a new line.
        pipeline.postpone(shipping_since.elapsed());
        true
    }
}
