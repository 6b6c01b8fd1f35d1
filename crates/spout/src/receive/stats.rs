//! What `spout receive` took in, refused and passed on: counted for `/metrics`, and refusals
//! logged at most once a second.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use tracing::warn;

use super::event::Invalid;
use crate::routes::status::RouteStatus;
use crate::stats::{Counter, RouteStats};

/// Where a message came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Input {
    Udp,
    Tcp,
    Http,
    Otlp,
}

impl Input {
    pub const ALL: [Input; 4] = [Input::Udp, Input::Tcp, Input::Http, Input::Otlp];

    pub fn as_str(self) -> &'static str {
        match self {
            Input::Udp => "udp",
            Input::Tcp => "tcp",
            Input::Http => "http",
            Input::Otlp => "otlp",
        }
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Valid messages taken in, by input.
    received: [Counter; 4],
    /// Refused messages, by input and reason.
    invalid: Mutex<BTreeMap<(Input, &'static str), u64>>,
    /// Messages given up after they were taken in, by reason (`full`: UDP's queue was full).
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    /// HTTP requests answered 429, over the rate allowed a client.
    pub limited: Counter,
    /// Bytes held by the chunks of incomplete UDP messages.
    pub pending_chunk_bytes: AtomicUsize,
    /// Incomplete chunked messages given up: to keep within --max-pending-bytes, or timed out.
    pub chunks_evicted: Counter,
    pub chunks_expired: Counter,
    /// Messages written to --out.
    pub written: Counter,
    /// TCP and HTTP clients connected now.
    pub clients: AtomicUsize,
    /// Clients closed at once: their address had all its places.
    pub clients_refused: Arc<Counter>,
    last_warned: Mutex<Option<Instant>>,
    unwarned: Counter,
}

impl Stats {
    pub fn received(&self, input: Input, n: u64) {
        self.received[input as usize].add(n);
    }

    pub fn received_count(&self, input: Input) -> u64 {
        self.received[input as usize].get()
    }

    /// Counts a refused message and logs it, at most once a second (with how many were not).
    pub fn invalid(&self, input: Input, why: &Invalid, from: &dyn fmt::Display) {
        *lock(&self.invalid).entry((input, why.reason())).or_default() += 1;
        let mut last = lock(&self.last_warned);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            self.unwarned.add(1);
            return;
        }
        *last = Some(now);
        drop(last);
        let also = self.unwarned.take();
        warn!(input = input.as_str(), from = %from, error = %why, also_refused_unlogged = also, "refused a message");
    }

    pub fn dropped(&self, reason: &'static str, n: u64) {
        *lock(&self.dropped).entry(reason).or_default() += n;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything `/metrics` shows: the inputs' counts and each forward route's.
#[derive(Debug)]
pub struct Metrics {
    pub stats: Arc<Stats>,
    pub routes: Vec<Forwarded>,
}

/// A `--forward` route, as `/metrics` and `/health` show it.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub uri: Arc<str>,
    pub stats: Arc<RouteStats>,
    pub status: Arc<RouteStatus>,
}

impl Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let routes = || self.routes.iter().map(|r| (crate::api::escape_label(&r.uri), &r.stats));
        family(
            &mut e,
            "spout_receive_forwarded",
            "Messages sent to a --forward route's destination.",
            routes().map(|(uri, s)| (vec![("route", uri)], s.sent.get())),
        )?;
        family(
            &mut e,
            "spout_receive_forward_dropped",
            "Messages a --forward route gave up, by reason: its queue full (when_full=drop), a failed UDP send, refused by the destination, or still held when the grace period ended.",
            routes().flat_map(|(uri, s)| {
                [
                    ("queue_full", &s.dropped_full),
                    ("send_failed", &s.dropped_failed),
                    ("refused", &s.dropped_refused),
                    ("undelivered", &s.undelivered),
                ]
                .map(|(reason, n)| (vec![("route", uri.clone()), ("reason", reason.to_owned())], n.get()))
            }),
        )?;
        self.stats.encode(e)
    }
}

/// A counter family: each series' labels and value.
fn family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Vec<(&'static str, String)>, u64)>,
) -> fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Stats {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        family(
            &mut e,
            "spout_receive_messages",
            "Valid messages received, by input (otlp: log records).",
            Input::ALL.into_iter().map(|i| (vec![("input", i.as_str().to_owned())], self.received_count(i))),
        )?;
        let invalid: Vec<_> = lock(&self.invalid)
            .iter()
            .map(|((input, reason), n)| {
                (vec![("input", input.as_str().to_owned()), ("reason", (*reason).to_owned())], *n)
            })
            .collect();
        family(
            &mut e,
            "spout_receive_invalid",
            "Messages refused, by input and reason; and whole HTTP requests (too_large: over a cap; origin: from an origin not let in, preflights included).",
            invalid.into_iter(),
        )?;
        let dropped: Vec<_> =
            lock(&self.dropped).iter().map(|(reason, n)| (vec![("reason", (*reason).to_owned())], *n)).collect();
        family(
            &mut e,
            "spout_receive_dropped",
            "Valid messages given up, by reason (full: no room in the queue for a UDP message; out_failed: --out could not be written; undelivered: every forward route had given up at shutdown).",
            dropped.into_iter(),
        )?;
        let counters = [
            (
                "spout_receive_rate_limited",
                "HTTP requests answered 429: over the rate a client is allowed.",
                &self.limited,
            ),
            (
                "spout_receive_chunked_evicted",
                "Incomplete chunked UDP messages given up to stay within --max-pending-bytes.",
                &self.chunks_evicted,
            ),
            (
                "spout_receive_chunked_expired",
                "Incomplete chunked UDP messages given up after 5 s.",
                &self.chunks_expired,
            ),
            ("spout_receive_written", "Messages written to --out.", &self.written),
            (
                "spout_receive_clients_refused",
                "TCP and HTTP clients closed at once: their address had --max-clients-per-address.",
                &self.clients_refused,
            ),
        ];
        for (name, help, counter) in counters {
            let metric = ConstCounter::new(counter.get());
            metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        let gauges = [
            (
                "spout_receive_pending_chunk_bytes",
                "Bytes held by the chunks of incomplete UDP messages.",
                &self.pending_chunk_bytes,
            ),
            ("spout_receive_clients", "TCP and HTTP clients connected.", &self.clients),
        ];
        for (name, help, gauge) in gauges {
            let metric = ConstGauge::new(gauge.load(Ordering::Relaxed) as i64);
            metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)?;
        }
        Ok(())
    }
}
