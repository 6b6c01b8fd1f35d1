//! Where received messages go: one JSON object a line to a file or stdout, and to any routes
//! the agent has (`--forward`), each with its own queue, backpressure and reconnects.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::enrich::Enrich;
use super::forward;
use super::intake::Queued;
use super::stats::{Forwarded, Stats};
use crate::router::Router;
use crate::routes::uri::RouteSpec;

/// Where `--out` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Stdout,
    File(PathBuf),
}

/// The routes messages are forwarded to, running.
pub struct Forwards {
    router: Router,
    tasks: Vec<(Arc<str>, JoinHandle<()>)>,
    /// Makes the routes give up what they hold, at the end of the grace period.
    abort: CancellationToken,
    pub shown: Vec<Forwarded>,
}

impl Forwards {
    /// Starts a route for each of `specs`.
    pub fn start(specs: &[RouteSpec]) -> Forwards {
        let abort = CancellationToken::new();
        let (mut queues, mut tasks, mut shown) = (Vec::new(), Vec::new(), Vec::new());
        for (index, spec) in specs.iter().enumerate() {
            let (queue, status, task) = crate::routes::spawn_one(spec, index, &abort);
            let uri: Arc<str> = spec.shown.as_str().into();
            shown.push(Forwarded { uri: Arc::clone(&uri), stats: Arc::clone(&queue.stats), status });
            tasks.push((uri, task));
            queues.push(queue);
        }
        Forwards { router: Router::new(queues), tasks, abort, shown }
    }

    /// Makes the routes give up what they hold, counting it undelivered.
    pub fn abort(&self) {
        self.abort.cancel();
    }

    /// Lets the routes deliver what they hold until `deadline`, then makes them give it up.
    pub async fn finish(self, deadline: tokio::time::Instant) {
        self.router.close();
        for (uri, mut task) in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                self.abort.cancel();
                let _ = task.await;
            }
            info!(route = %uri, "route closed");
        }
        for f in &self.shown {
            let s = &f.stats;
            let lost = s.dropped_full.get() + s.dropped_failed.get() + s.dropped_refused.get() + s.undelivered.get();
            info!(route = %f.uri, sent = s.sent.get(), dropped = lost, "forwarded");
        }
    }
}

/// Takes messages until every input is gone: enriches them, then writes and forwards them.
pub async fn run(
    mut rx: mpsc::Receiver<Queued>,
    enrich: Enrich,
    out: Option<Out>,
    forwards: &Forwards,
    stats: Arc<Stats>,
) {
    let mut writer: Option<Box<dyn AsyncWrite + Unpin + Send>> = match &out {
        None => None,
        Some(Out::Stdout) => Some(Box::new(tokio::io::stdout())),
        Some(Out::File(path)) => {
            match tokio::fs::OpenOptions::new().create(true).append(true).open(path).await {
                Ok(file) => Some(Box::new(file)),
                // Checked at start; should it vanish meanwhile, the forwards go on.
                Err(e) => {
                    error!(path = %path.display(), error = %e, "cannot open --out; messages are not written");
                    None
                }
            }
        }
    };
    let batch_max = forwards.router.batch_max();
    let forwarding = !forwards.tasks.is_empty();
    let (mut text, mut batch) = (Vec::new(), Vec::new());
    while let Some(first) = rx.recv().await {
        // The room they take in the queue is given back once they are written and forwarded.
        let mut taken = vec![first];
        let mut count = taken[0].events.len();
        while count < batch_max {
            match rx.try_recv() {
                Ok(more) => {
                    count += more.events.len();
                    taken.push(more);
                }
                Err(_) => break,
            }
        }
        text.clear();
        let written = if writer.is_some() { count as u64 } else { 0 };
        for queued in &mut taken {
            for event in &mut queued.events {
                enrich.apply(event);
                if writer.is_some() {
                    event.write_json(&mut text);
                    text.push(b'\n');
                }
                if forwarding {
                    batch.push(forward::message(event, |c| forwards.router.rejected_by(c)));
                }
            }
        }
        if let Some(w) = writer.as_mut() {
            // A file's writes are done in the background: its errors come with the flush.
            let outcome = match w.write_all(&text).await {
                Ok(()) => w.flush().await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    stats.written.add(written);
                }
                Err(e) => {
                    stats.dropped("out_failed", written);
                    error!(error = %e, messages = written, "cannot write to --out; these messages are not written");
                }
            }
        }
        // The router cuts a batch to fit each route's queue.
        let n = batch.len() as u64;
        if forwarding && forwards.router.send(std::mem::take(&mut batch)).await.is_err() {
            // Every route has given up (the grace period is over): these never reached one.
            stats.dropped("undelivered", n);
        }
        drop(taken);
        // A burst of big messages leaves no big buffer behind.
        text.shrink_to(1 << 20);
    }
    if let Some(w) = writer.as_mut() {
        let _ = w.flush().await;
    }
}
