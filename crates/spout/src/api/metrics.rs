//! GET /metrics: spout's counters in the Prometheus (OpenMetrics) text format, read at each
//! scrape from the counters spout keeps anyway. No metric has a per-container label: a host's
//! containers come and go, and each would be a series of its own.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::checkpoint::Checkpoints;
use crate::health::DockerHealth;
use crate::routes::status::Link;
use crate::routes::table::{Route, RouteTable};
use crate::stats::ReaderStats;
use crate::timestamp::now_ns;

/// Where every metric comes from.
#[derive(Clone)]
pub struct MetricSources {
    pub readers: Arc<ReaderStats>,
    pub routes: Arc<RouteTable>,
    pub docker: watch::Receiver<DockerHealth>,
    pub checkpoints: Arc<Checkpoints>,
    pub tail: Arc<crate::tail::Tail>,
}

impl fmt::Debug for MetricSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricSources").finish_non_exhaustive()
    }
}

/// A registry holding one collector: spout's, or `spout receive`'s.
pub fn registry(collector: impl Collector + 'static) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    registry
}

/// The registry as text.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// A label value as the text format needs it (prometheus-client writes them as they are): a
/// route's URI may hold `"` or `\\`.
pub fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge<T: prometheus_client::encoding::EncodeGaugeValue + Copy + fmt::Debug + Send + Sync>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: T,
) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl MetricSources {
    /// One series per route (and per `reason`, where given) of a counter or gauge.
    fn per_route(
        &self,
        e: &mut DescriptorEncoder,
        (name, help, metric_type): (&str, &str, MetricType),
        reasons: &[&str],
        value: impl Fn(&Route, &str) -> i64,
    ) -> fmt::Result {
        let mut family = e.encode_descriptor(name, help, None, metric_type)?;
        for route in self.routes.routes() {
            let uri = escape(&route.uri);
            for &reason in reasons {
                let labels: Vec<(&str, &str)> = match reason {
                    "" => vec![("route", &uri)],
                    reason => vec![("route", &uri), ("reason", reason)],
                };
                let v = value(&route, reason);
                let series = family.encode_family(&labels)?;
                match metric_type {
                    MetricType::Counter => ConstCounter::new(v.max(0) as u64).encode(series)?,
                    _ => ConstGauge::new(v).encode(series)?,
                }
            }
        }
        Ok(())
    }
}

impl Collector for MetricSources {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let r = &self.readers;
        counter(
            &mut e,
            "spout_messages_read",
            "Messages read from containers and handed to the routes.",
            r.lines.get(),
        )?;
        counter(
            &mut e,
            "spout_repeats_dropped",
            "Log entries the daemon sent again (at a json-file rotation), dropped.",
            r.repeated_entries.get(),
        )?;
        counter(&mut e, "spout_lines_truncated", "Lines cut at --max-line-bytes.", r.truncated_lines.get())?;
        counter(&mut e, "spout_empty_lines", "Empty lines, skipped.", r.empty_lines.get())?;
        counter(
            &mut e,
            "spout_containers_lost_logs",
            "Containers removed with lines known or likely unread.",
            r.lost_logs.get(),
        )?;
        counter(
            &mut e,
            "spout_log_files_lost",
            "json-file log files rotated away before they were read to their end.",
            r.lost_files.get(),
        )?;
        gauge(
            &mut e,
            "spout_containers_attached",
            "Containers being read.",
            r.attached.load(Ordering::Relaxed) as i64,
        )?;
        gauge(
            &mut e,
            "spout_docker_connected",
            "1 while connected to the Docker daemon.",
            i64::from(self.docker.borrow().connected),
        )?;
        counter(
            &mut e,
            "spout_docker_reconnects",
            "Connections to the Docker daemon made again after one was lost.",
            r.docker_reconnects.get(),
        )?;
        let oldest = self.checkpoints.oldest_unaccepted_ns().map_or(0.0, |ts| (now_ns() - ts).max(0) as f64 / 1e9);
        gauge(&mut e, "spout_oldest_unaccepted_seconds",
              "Age (from Docker's timestamp) of the oldest line read and not yet accepted by every route; 0 when there is none.",
              oldest)?;
        gauge(&mut e, "spout_tail_clients", "Clients of GET /logs.", self.tail.clients() as i64)?;
        counter(
            &mut e,
            "spout_tail_clients_dropped",
            "Clients of GET /logs dropped for falling behind.",
            self.tail.dropped.get(),
        )?;
        let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.per_route(
            &mut e,
            ("spout_messages_sent", "Messages sent (written or sent) to the route's destination.", MetricType::Counter),
            &[""],
            |route, _| count(route.stats.sent.get()),
        )?;
        self.per_route(
            &mut e,
            ("spout_bytes_sent", "Bytes written or sent to the route's destination.", MetricType::Counter),
            &[""],
            |route, _| count(route.stats.bytes_sent.get()),
        )?;
        self.per_route(
            &mut e,
            ("spout_messages_dropped", "Messages a route gave up: its queue full (when_full=drop), a send that failed (UDP), refused by the destination (HTTP), or still queued when the shutdown grace period ended.", MetricType::Counter),
            &["queue_full", "send_failed", "refused", "undelivered"],
            |route, reason| match reason {
                "queue_full" => count(route.stats.dropped_full.get()),
                "send_failed" => count(route.stats.dropped_failed.get()),
                "refused" => count(route.stats.dropped_refused.get()),
                _ => count(route.stats.undelivered.get()),
            },
        )?;
        self.per_route(
            &mut e,
            ("spout_messages_filtered", "Messages the route's filter rejects.", MetricType::Counter),
            &[""],
            |route, _| count(route.stats.filtered.get()),
        )?;
        self.per_route(
            &mut e,
            (
                "spout_route_queue_depth",
                "Messages held for the route: queued, and written but not yet acknowledged.",
                MetricType::Gauge,
            ),
            &[""],
            |route, _| route.queue.saturating_sub(route.room.available_permits()) as i64,
        )?;
        self.per_route(
            &mut e,
            (
                "spout_route_up",
                "0 while the route's destination cannot be reached or fails, else 1.",
                MetricType::Gauge,
            ),
            &[""],
            |route, _| i64::from(route.status.snapshot().link != Link::Down),
        )?;
        self.per_route(
            &mut e,
            (
                "spout_route_reconnects",
                "Connections to the route's destination lost and made again.",
                MetricType::Counter,
            ),
            &[""],
            |route, _| count(route.stats.reconnects.get()),
        )?;
        self.per_route(
            &mut e,
            (
                "spout_route_connect_failures",
                "Attempts to connect to the route's destination that failed (TLS handshakes included).",
                MetricType::Counter,
            ),
            &[""],
            |route, _| count(route.stats.connect_failures.get()),
        )?;
        self.per_route(
            &mut e,
            (
                "spout_route_request_failures",
                "Requests to the route's destination that failed and are sent again (HTTP).",
                MetricType::Counter,
            ),
            &[""],
            |route, _| count(route.stats.request_failures.get()),
        )?;
        self.per_route(
            &mut e,
            (
                "spout_route_replayed",
                "Messages a stream route had delivered and wrote again after its connection was lost (TCP, TLS).",
                MetricType::Counter,
            ),
            &[""],
            |route, _| count(route.stats.replayed.get()),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn label_values_are_escaped_as_the_text_format_wants() {
        assert_eq!(escape(r#"gelf://h:1?filter.name=a"b\c"#), r#"gelf://h:1?filter.name=a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
    }
}
