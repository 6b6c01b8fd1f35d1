//! Routes: one task per destination, each with its own bounded queue, encoder and transport,
//! supervised: a route whose task fails is restarted, and sends again what it held.

mod context;
pub mod gelf_fields;
pub mod stdout;
pub mod table;
pub mod tcp;
pub mod udp;
pub mod uri;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::error;

pub use context::{Batch, RouteContext};

use crate::router::RouteQueue;
use crate::timestamp::now_ns;
use uri::{RouteKind, RouteSpec};

/// A route whose task failed this many times in a row, without delivering anything in between,
/// cannot be brought back by restarting it: /health says so.
pub const FAILED_AFTER_CRASHES: u32 = 3;

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
    let name: Arc<str> = spec.uri.as_str().into();
    let ctx = RouteContext::new(Arc::clone(&name), index, spec.backoff.clone(), rx, Arc::clone(&room), stop.clone());
    let (stats, status) = (Arc::clone(&ctx.stats), Arc::clone(&ctx.status));
    let task = tokio::spawn(supervise(ctx, spec.kind.clone()));
    let queue = RouteQueue {
        name,
        index,
        tx,
        room,
        queue: spec.queue,
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
            RouteKind::GelfUdp(udp) => Box::pin(udp::run(ctx, udp)),
            RouteKind::GelfTcp(tcp) => Box::pin(tcp::run(ctx, tcp)),
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

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Whether a route's destination is reachable, as /health shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Not tried yet, or no message sent yet.
    Starting,
    Up,
    /// Unreachable, or failing: the route keeps trying.
    Down,
}

/// A route's state for /health: changed on transitions only, never per message.
#[derive(Debug)]
pub struct RouteStatus {
    state: Mutex<LinkState>,
    /// Task failures since the route last delivered something.
    crashes_in_a_row: AtomicU32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub link: Link,
    /// Since when (ns since the epoch).
    pub since_ns: i64,
    pub last_error: Option<String>,
}

impl Default for RouteStatus {
    fn default() -> Self {
        RouteStatus {
            state: Mutex::new(LinkState { link: Link::Starting, since_ns: now_ns(), last_error: None }),
            crashes_in_a_row: AtomicU32::new(0),
        }
    }
}

impl RouteStatus {
    fn set(&self, link: Link, error: Option<&str>) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.link != link {
            state.link = link;
            state.since_ns = now_ns();
        }
        if let Some(error) = error {
            state.last_error = Some(error.to_owned());
        }
    }

    /// The destination took what was sent.
    pub fn up(&self) {
        self.set(Link::Up, None);
    }

    /// The destination cannot be reached or failed, for `error`.
    pub fn down(&self, error: &str) {
        self.set(Link::Down, Some(error));
    }

    /// The route's task failed; returns how many times in a row.
    pub(crate) fn crashed(&self, cause: &str) -> u32 {
        self.set(Link::Down, Some(cause));
        self.crashes_in_a_row.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The route delivered something: whatever failed before, restarting it helped.
    pub fn delivered(&self) {
        if self.crashes_in_a_row.load(Ordering::Relaxed) > 0 {
            self.crashes_in_a_row.store(0, Ordering::Relaxed);
        }
    }

    pub fn crashes_in_a_row(&self) -> u32 {
        self.crashes_in_a_row.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> LinkState {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::context::tests::{batch, context};
    use super::*;

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
