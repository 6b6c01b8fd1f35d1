//! A route's state as /health shows it, changed on transitions only.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::timestamp::now_ns;

/// A route whose task failed this many times in a row, without delivering anything in between,
/// cannot be brought back by restarting it: /health says so.
pub const FAILED_AFTER_CRASHES: u32 = 3;

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
