//! Routes: one task per destination, each with its own bounded queue, encoder and transport,
//! supervised: a route whose task fails is restarted, and sends again what it held.

pub mod codec;
mod context;
pub mod gelf_fields;
pub mod http;
mod options;
pub mod otlp;
pub mod status;
pub mod stdout;
pub mod syslog;
pub mod table;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod uri;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::error;

use context::RouteContext;

use crate::router::RouteQueue;
use status::{panic_message, RouteStatus};
use uri::{RouteKind, RouteSpec};

/// Starts route `spec` in slot `index` and returns its end of the router, its state and its
/// task. It drains its queue until every sender is gone; `stop` makes it give up what it still
/// holds.
pub fn spawn_one(
    spec: &RouteSpec,
    index: usize,
    stop: &CancellationToken,
) -> (RouteQueue, Arc<RouteStatus>, JoinHandle<()>) {
    // Every batch holds a message at least: `room` bounds the queue before the channel does.
    let (tx, rx) = mpsc::channel(spec.queue);
    let room = Arc::new(Semaphore::new(spec.queue));
    let name: Arc<str> = spec.shown.as_str().into();
    let queue = (rx, Arc::clone(&room), spec.queue);
    let ctx = RouteContext::new(Arc::clone(&name), index, spec.backoff.clone(), queue, stop.clone());
    let (stats, status) = (Arc::clone(&ctx.stats), Arc::clone(&ctx.status));
    let task = tokio::spawn(supervise(ctx, spec.kind.clone()));
    let queue = RouteQueue {
        name,
        index,
        tx,
        room,
        capacity: spec.queue,
        when_full: spec.when_full,
        stats,
        filter: spec.filter.clone(),
    };
    (queue, status, task)
}

type RouteFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One run of a route's task, over its context.
trait RunRoute: Send + Sync {
    fn run<'a>(&'a self, ctx: &'a mut RouteContext) -> RouteFuture<'a>;
}

impl RunRoute for RouteKind {
    fn run<'a>(&'a self, ctx: &'a mut RouteContext) -> RouteFuture<'a> {
        match self {
            RouteKind::Udp(udp) => Box::pin(udp::run(ctx, udp)),
            RouteKind::Tcp(tcp) => Box::pin(tcp::run(ctx, tcp)),
            RouteKind::Http(http) => Box::pin(http::run(ctx, http)),
            RouteKind::Stdout => Box::pin(stdout::run(ctx, tokio::io::stdout())),
        }
    }
}

/// Runs a route until it is done, restarting it with backoff whenever its task panics or ends
/// with messages still to deliver: they are handed out again to the new run, nothing is lost.
async fn supervise(mut ctx: RouteContext, route: impl RunRoute) {
    let mut restarts = ctx.backoff.clone();
    loop {
        let outcome = AssertUnwindSafe(route.run(&mut ctx)).catch_unwind().await;
        if outcome.is_ok() && ctx.is_done() {
            return;
        }
        let cause = match outcome {
            Ok(()) => "its task ended with messages still to deliver".to_owned(),
            Err(panic) => format!("its task panicked: {}", panic_message(panic.as_ref())),
        };
        let crashes = ctx.stats.crashes.add(1);
        if ctx.status.crashed(&cause) == 1 {
            restarts.reset();
        }
        error!(route = %ctx.name, cause = %cause, crashes, unaccepted = ctx.unaccepted(),
               "route failed; restarting it to send again what it held");
        ctx.rewind();
        tokio::select! {
            () = tokio::time::sleep(restarts.next_delay()) => {}
            () = ctx.abort.cancelled() => return ctx.abandon(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::context::tests::{batch, context};
    use std::sync::atomic::Ordering;
    use std::sync::Mutex;

    use super::*;
    use crate::routes::status::FAILED_AFTER_CRASHES;

    /// A route that collects what it sends, and panics once after taking a batch (a bug that
    /// strikes once), or every time.
    struct Flaky {
        sent: Mutex<Vec<String>>,
        panicked: AtomicBool,
        always: bool,
    }

    impl RunRoute for Flaky {
        fn run<'a>(&'a self, ctx: &'a mut RouteContext) -> RouteFuture<'a> {
            Box::pin(async move {
                while let Some((batch, range)) = ctx.next_messages().await {
                    if self.always || !self.panicked.swap(true, Ordering::Relaxed) {
                        panic!("bug on {}", batch[range.start].line);
                    }
                    let n = range.len();
                    self.sent.lock().expect("lock").extend(batch[range].iter().map(|m| m.line.clone()));
                    ctx.accept(n);
                    ctx.status.delivered();
                }
            })
        }
    }

    #[tokio::test]
    async fn a_route_that_panics_is_restarted_and_loses_nothing() {
        let (ctx, tx, _room) = context(10);
        let (stats, status) = (Arc::clone(&ctx.stats), Arc::clone(&ctx.status));
        let route = Arc::new(Flaky { sent: Mutex::default(), panicked: AtomicBool::new(false), always: false });
        let task = tokio::spawn({
            let route = Arc::clone(&route);
            async move { supervise(ctx, ArcRoute(route)).await }
        });
        tx.send(batch(&["a", "b"])).await.expect("open");
        tx.send(batch(&["c"])).await.expect("open");
        drop(tx);
        task.await.expect("the supervisor itself never panics");
        assert_eq!(*route.sent.lock().expect("lock"), ["a", "b", "c"], "what the failed run held is sent again");
        assert_eq!(stats.crashes.get(), 1);
        assert_eq!(status.crashes_in_a_row(), 0, "it delivered after its restart");
        assert_eq!(status.snapshot().last_error.as_deref(), Some("its task panicked: bug on a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_that_keeps_failing_is_counted_and_abandoned_at_the_end_of_the_grace_period() {
        let (ctx, tx, _room) = context(10);
        let (stats, status, abort) = (Arc::clone(&ctx.stats), Arc::clone(&ctx.status), ctx.abort.clone());
        let route = Arc::new(Flaky { sent: Mutex::default(), panicked: AtomicBool::new(false), always: true });
        let task = tokio::spawn(supervise(ctx, ArcRoute(Arc::clone(&route))));
        tx.send(batch(&["a", "b"])).await.expect("open");
        while status.crashes_in_a_row() < FAILED_AFTER_CRASHES {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        abort.cancel();
        task.await.expect("the supervisor itself never panics");
        assert!(route.sent.lock().expect("lock").is_empty());
        assert!(stats.crashes.get() >= u64::from(FAILED_AFTER_CRASHES));
        assert_eq!(stats.undelivered.get(), 2, "what it held is counted, not taken for delivered");
    }

    struct ArcRoute(Arc<Flaky>);

    impl RunRoute for ArcRoute {
        fn run<'a>(&'a self, ctx: &'a mut RouteContext) -> RouteFuture<'a> {
            self.0.run(ctx)
        }
    }
}
