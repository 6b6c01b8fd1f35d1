//! Counters for what spout did and what it could not do. Every drop is counted somewhere here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` and returns the new total.
    pub fn add(&self, n: u64) -> u64 {
        self.0.fetch_add(n, Ordering::Relaxed) + n
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Returns the count and starts again from 0.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// What the readers saw.
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Lines handed to the routes.
    pub lines: Counter,
    pub empty_lines: Counter,
    pub truncated_lines: Counter,
    /// Bytes of a TTY stream that did not start with a timestamp, skipped.
    pub garbage_bytes: Counter,
    pub stream_errors: Counter,
    /// Entries the daemon sent twice (at json-file rotation), skipped.
    pub repeated_entries: Counter,
    /// Bytes of log read from containers removed before they could be inspected, not shipped.
    pub unshipped_bytes: Counter,
    /// Containers removed with lines known or likely unread (each warned about).
    pub lost_logs: Counter,
    /// json-file log files (or spans of them) rotated away before they were read to the end
    /// (each warned about, with the span of time).
    pub lost_files: Counter,
    /// Containers removed after their log stream ended, before a second read could confirm that
    /// nothing came after (the usual end of a `--rm` job; not warned about).
    pub unconfirmed_ends: Counter,
    /// Containers with a reader now.
    pub attached: AtomicUsize,
    /// Connections to the Docker daemon made again after one was lost.
    pub docker_reconnects: Counter,
}

/// What one route did.
#[derive(Debug, Default)]
pub struct RouteStats {
    pub sent: Counter,
    /// Bytes written or sent to the destination (for UDP, datagrams with their chunk headers).
    pub bytes_sent: Counter,
    /// Not for this route: its filter rejects them.
    pub filtered: Counter,
    /// Dropped because the route's queue was full (when_full=drop).
    pub dropped_full: Counter,
    /// Dropped because they could not be encoded or sent (UDP).
    pub dropped_failed: Counter,
    /// Dropped because the destination refused them (HTTP: a 4xx that names no route problem).
    pub dropped_refused: Counter,
    /// Writes that failed and were tried again (stdout).
    pub write_failures: Counter,
    /// Times the route's task failed and was restarted.
    pub crashes: Counter,
    /// Still queued when the shutdown grace period ran out.
    pub undelivered: Counter,
    /// Connections lost.
    pub reconnects: Counter,
    /// Attempts to connect that failed.
    pub connect_failures: Counter,
    /// Requests that failed and are sent again (HTTP: no answer, a 5xx, a 429…).
    pub request_failures: Counter,
    /// Messages accepted and written again after the connection was lost (TCP, TLS).
    pub replayed: Counter,
}
