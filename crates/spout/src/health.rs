//! What /health reports: the Docker connection, each route, and whether checkpoints are saved.
//!
//! The rule for the status code: 503 when spout cannot do its job and restarting it is the
//! remedy an orchestrator has: no connection to the Docker daemon, or a route whose task fails
//! again each time it is restarted. A destination that is merely down is not that: restarting
//! spout would not bring it back, and its lines wait in Docker's log files meanwhile. It shows
//! in the body, as does a state directory that cannot be written.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

use crate::routes::status::{Link, RouteStatus, FAILED_AFTER_CRASHES};
use crate::timestamp::{format_rfc3339_ns, now_ns};

/// The Docker connection, as the watcher keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerHealth {
    pub connected: bool,
    /// Since when connected, or not (ns since the epoch).
    pub since_ns: i64,
    /// Why not connected.
    pub error: Option<String>,
}

impl DockerHealth {
    pub fn starting() -> Self {
        DockerHealth { connected: false, since_ns: now_ns(), error: Some("starting".to_owned()) }
    }

    /// The next state: connected or not, keeping the time of the last change.
    pub fn next(&self, connected: bool, error: Option<String>) -> Self {
        let since_ns = if connected == self.connected { self.since_ns } else { now_ns() };
        DockerHealth { connected, since_ns, error }
    }
}

/// Whether checkpoints are being saved.
#[derive(Debug, Default)]
pub struct CheckpointHealth(Mutex<SaveState>);

#[derive(Debug, Default, Clone)]
struct SaveState {
    last_saved_ns: Option<i64>,
    failing_since_ns: Option<i64>,
    error: Option<String>,
    failures: u64,
}

impl CheckpointHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, SaveState> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn saved(&self) {
        let mut s = self.lock();
        *s = SaveState { last_saved_ns: Some(now_ns()), ..SaveState::default() };
    }

    /// The last save failed.
    pub fn failing(&self) -> bool {
        self.lock().failing_since_ns.is_some()
    }

    /// A save failed; returns how many times in a row.
    pub fn failed(&self, error: &str) -> u64 {
        let mut s = self.lock();
        s.failing_since_ns.get_or_insert_with(now_ns);
        s.error = Some(error.to_owned());
        s.failures += 1;
        s.failures
    }
}

/// Everything /health looks at.
#[derive(Clone)]
pub struct HealthSources {
    pub docker_address: String,
    pub docker: watch::Receiver<DockerHealth>,
    pub checkpoints: Arc<CheckpointHealth>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// "ok", or "unavailable" (answered with 503).
    pub status: &'static str,
    /// Why unavailable, in plain words.
    pub problems: Vec<String>,
    pub docker: DockerReport,
    pub routes: Vec<RouteReport>,
    pub checkpoints: CheckpointReport,
}

#[derive(Debug, Serialize)]
pub struct DockerReport {
    pub address: String,
    pub connected: bool,
    pub since: String,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RouteReport {
    pub uri: String,
    pub state: Link,
    pub since: String,
    pub last_error: Option<String>,
    /// Failures of the route's task since it last delivered anything.
    pub crashes_in_a_row: u32,
}

#[derive(Debug, Serialize)]
pub struct CheckpointReport {
    pub saving: bool,
    pub last_saved: Option<String>,
    pub failing_since: Option<String>,
    pub error: Option<String>,
}

impl RouteReport {
    /// A route's report; a route that keeps failing adds its problem to `problems`.
    pub fn of(uri: &str, status: &RouteStatus, problems: &mut Vec<String>) -> RouteReport {
        let link = status.snapshot();
        let crashes_in_a_row = status.crashes_in_a_row();
        if crashes_in_a_row >= FAILED_AFTER_CRASHES {
            let why = link.last_error.as_deref().unwrap_or("unknown");
            problems.push(format!("route {uri} failed {crashes_in_a_row} times in a row after restarts: {why}"));
        }
        RouteReport {
            uri: uri.to_owned(),
            state: link.link,
            since: format_rfc3339_ns(link.since_ns),
            last_error: link.last_error,
            crashes_in_a_row,
        }
    }
}

impl HealthSources {
    /// The report, over `routes` (each route's URI and state).
    pub fn report(&self, routes: &[(Arc<str>, Arc<RouteStatus>)]) -> Report {
        let mut problems = Vec::new();
        let docker = self.docker.borrow().clone();
        if !docker.connected {
            let why = docker.error.as_deref().unwrap_or("unknown");
            problems.push(format!("not connected to the Docker daemon at {}: {why}", self.docker_address));
        }
        let routes = routes.iter().map(|(uri, status)| RouteReport::of(uri, status, &mut problems)).collect();
        let saves = self.checkpoints.lock().clone();
        Report {
            status: if problems.is_empty() { "ok" } else { "unavailable" },
            problems,
            docker: DockerReport {
                address: self.docker_address.clone(),
                connected: docker.connected,
                since: format_rfc3339_ns(docker.since_ns),
                error: docker.error,
            },
            routes,
            checkpoints: CheckpointReport {
                saving: saves.failing_since_ns.is_none(),
                last_saved: saves.last_saved_ns.map(format_rfc3339_ns),
                failing_since: saves.failing_since_ns.map(format_rfc3339_ns),
                error: saves.error,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sources {
        health: HealthSources,
        routes: Vec<(Arc<str>, Arc<RouteStatus>)>,
    }

    impl Sources {
        fn report(&self) -> Report {
            self.health.report(&self.routes)
        }
    }

    fn sources(connected: bool) -> (Sources, Arc<RouteStatus>) {
        let health = DockerHealth::starting().next(connected, (!connected).then(|| "Connection refused".to_owned()));
        let (_tx, docker) = watch::channel(health);
        let route = Arc::new(RouteStatus::default());
        let health = HealthSources { docker_address: "tcp://127.0.0.1:1".into(), docker, checkpoints: Arc::default() };
        (Sources { health, routes: vec![("gelf+tcp://graylog:12201".into(), Arc::clone(&route))] }, route)
    }

    #[test]
    fn unavailable_without_docker_with_the_address_and_the_cause() {
        let (sources, _) = sources(false);
        let report = sources.report();
        assert_eq!(report.status, "unavailable");
        assert_eq!(report.problems, ["not connected to the Docker daemon at tcp://127.0.0.1:1: Connection refused"]);
    }

    #[test]
    fn a_destination_down_is_reported_but_not_unavailable() {
        let (sources, route) = sources(true);
        route.down("connection refused");
        let report = sources.report();
        assert_eq!(report.status, "ok");
        assert_eq!(report.routes[0].state, Link::Down);
        assert_eq!(report.routes[0].last_error.as_deref(), Some("connection refused"));
    }

    #[test]
    fn a_route_that_fails_after_each_restart_makes_spout_unavailable() {
        let (sources, route) = sources(true);
        for _ in 0..FAILED_AFTER_CRASHES {
            route.crashed("its task panicked: bug");
        }
        let report = sources.report();
        assert_eq!(report.status, "unavailable");
        assert!(report.problems[0].contains("gelf+tcp://graylog:12201") && report.problems[0].contains("bug"));
        route.delivered();
        assert_eq!(sources.report().status, "ok");
    }

    #[test]
    fn checkpoints_that_cannot_be_saved_are_reported() {
        let (sources, _) = sources(true);
        sources.health.checkpoints.saved();
        assert!(sources.report().checkpoints.saving);
        assert_eq!(sources.health.checkpoints.failed("No space left on device (os error 28)"), 1);
        let report = sources.report();
        assert!(!report.checkpoints.saving && report.checkpoints.failing_since.is_some());
        assert_eq!(report.status, "ok", "shipping goes on; only a restart would read more again");
        sources.health.checkpoints.saved();
        assert!(sources.report().checkpoints.saving);
    }
}
