//! A scripted source for the reader's and the watcher's unit tests: each answer is set up by the
//! test, and every request is written down in order, so the protocol (streams that end early,
//! re-sends, containers that vanish, slow answers) is tested without a daemon and without timing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::frames::tests::frame;
use super::source::{
    BoxFuture, BoxStream, Connect, Connected, ContainerInfo, Event, Listed, LogsRequest, Source, SourceError,
};
use crate::message::Container;

/// One step of a scripted log stream.
#[derive(Debug, Clone)]
pub enum Step {
    Bytes(Bytes),
    /// The stream fails with this error (and ends).
    Fail(SourceError),
    /// Nothing ever again: a follow stream of an idle container.
    Hang,
}

/// A stdout entry as the daemon frames it.
pub fn out(ts_ns: i64, text: &str) -> Step {
    Step::Bytes(frame(1, format!("{} {text}\n", crate::timestamp::format_rfc3339_ns(ts_ns)).as_bytes()).into())
}

/// An inspect answer, after `delay`.
#[derive(Debug, Clone)]
pub struct Inspect {
    pub delay: Duration,
    pub answer: Result<ContainerInfo, SourceError>,
}

pub fn running(id: &str) -> Inspect {
    Inspect { delay: Duration::ZERO, answer: Ok(info(id, true)) }
}

pub fn stopped(id: &str) -> Inspect {
    Inspect { delay: Duration::ZERO, answer: Ok(info(id, false)) }
}

pub fn gone(delay: Duration) -> Inspect {
    Inspect { delay, answer: Err(SourceError::gone("No such container")) }
}

pub fn info(id: &str, running: bool) -> ContainerInfo {
    ContainerInfo {
        meta: Container { id: id.into(), name: format!("name-of-{id}"), ..Default::default() },
        running,
        started_ns: Some(1_000),
        finished_ns: (!running).then_some(2_000),
        ..Default::default()
    }
}

#[derive(Default)]
struct Script {
    lists: VecDeque<(Duration, Result<Vec<Listed>, SourceError>)>,
    inspects: HashMap<String, VecDeque<Inspect>>,
    logs: HashMap<String, VecDeque<Vec<Step>>>,
    events: Option<mpsc::UnboundedReceiver<Result<Event, SourceError>>>,
    /// What was asked and answered, in order: `list`, `listed`, `inspect ID`, `inspected ID`,
    /// `logs ID follow=B`.
    journal: Vec<String>,
}

/// A source whose answers a test sets up. Per container, inspects and log streams are answered
/// in the order given, the last one again once they run out.
#[derive(Default, Clone)]
pub struct Scripted(Arc<Mutex<Script>>);

impl Scripted {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn list(&self, delay: Duration, answer: Vec<Listed>) -> &Self {
        self.script().lists.push_back((delay, Ok(answer)));
        self
    }

    pub fn inspect(&self, id: &str, answer: Inspect) -> &Self {
        self.script().inspects.entry(id.into()).or_default().push_back(answer);
        self
    }

    pub fn logs(&self, id: &str, steps: Vec<Step>) -> &Self {
        self.script().logs.entry(id.into()).or_default().push_back(steps);
        self
    }

    /// Events the test sends as it goes.
    pub fn events(&self) -> mpsc::UnboundedSender<Result<Event, SourceError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.script().events = Some(rx);
        tx
    }

    pub fn journal(&self) -> Vec<String> {
        self.script().journal.clone()
    }

    fn note(&self, entry: String) {
        self.script().journal.push(entry);
    }

    /// Takes the next answer of `queue`, or repeats the last one.
    fn next<T: Clone>(queue: &mut VecDeque<T>) -> Option<T> {
        if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        }
    }
}

impl Source for Scripted {
    fn list(&self) -> BoxFuture<Result<Vec<Listed>, SourceError>> {
        self.note("list".into());
        let next = Scripted::next(&mut self.script().lists);
        let me = self.clone();
        Box::pin(async move {
            let (delay, answer) = next.unwrap_or((Duration::ZERO, Ok(Vec::new())));
            tokio::time::sleep(delay).await;
            me.note("listed".into());
            answer
        })
    }

    fn events(&self, _since_secs: i64) -> BoxStream<Result<Event, SourceError>> {
        match self.script().events.take() {
            Some(mut rx) => Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))),
            None => Box::pin(futures_util::stream::pending()),
        }
    }

    fn inspect(&self, id: &str) -> BoxFuture<Result<ContainerInfo, SourceError>> {
        self.note(format!("inspect {id}"));
        let next = self.script().inspects.get_mut(id).and_then(Scripted::next);
        let (me, id) = (self.clone(), id.to_owned());
        Box::pin(async move {
            let Some(Inspect { delay, answer }) = next else {
                return Err(SourceError::gone(format!("no such container: {id}")));
            };
            tokio::time::sleep(delay).await;
            me.note(format!("inspected {id}"));
            answer
        })
    }

    fn logs(&self, id: &str, request: LogsRequest) -> BoxStream<Result<Bytes, SourceError>> {
        self.note(format!("logs {id} follow={}", request.follow));
        let steps = self.script().logs.get_mut(id).and_then(Scripted::next).unwrap_or_default();
        Box::pin(futures_util::stream::unfold(VecDeque::from(steps), |mut steps| async move {
            loop {
                match steps.pop_front()? {
                    Step::Bytes(bytes) => return Some((Ok(bytes), steps)),
                    Step::Fail(e) => return Some((Err(e), VecDeque::new())),
                    Step::Hang => std::future::pending::<()>().await,
                }
            }
        }))
    }
}

impl Connect for Scripted {
    fn address(&self) -> String {
        "scripted://".into()
    }

    fn connect(&self) -> BoxFuture<Result<Connected, SourceError>> {
        let source: Arc<dyn Source> = Arc::new(self.clone());
        Box::pin(async move { Ok(Connected { source, host_name: "test-host".into(), root_dir: None }) })
    }
}
