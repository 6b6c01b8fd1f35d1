//! The routes while spout runs: those of the command line and the configuration file, and those
//! added through `/routes`, which are kept in the state directory and come back after a restart.
//! Each has a stable id (from its URI) and a slot of its own for the whole run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::status::RouteStatus;
use super::uri::RouteSpec;
use crate::checkpoint::Checkpoints;
use crate::router::Router;
use crate::slots::MAX_ROUTES;
use crate::stats::RouteStats;

/// The file in the state directory holding the routes added through the API.
const API_ROUTES: &str = "routes.json";

/// Where a route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Cli,
    File,
    Api,
}

/// A running route.
pub struct Route {
    pub id: String,
    /// The URI as shown (header values hidden).
    pub uri: Arc<str>,
    /// The URI as given, secrets and all: what is saved.
    given: String,
    pub origin: Origin,
    /// Its slot, as the router and the checkpoints name it.
    pub index: usize,
    pub stats: Arc<RouteStats>,
    pub status: Arc<RouteStatus>,
    /// Its free room, out of `queue` messages.
    pub room: Arc<Semaphore>,
    pub queue: usize,
    /// Makes it give up what it holds (a removed route, or the end of the grace period).
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Route {
    /// Its task, to wait for at shutdown (once).
    pub fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Gives up what it still holds.
    pub fn abort(&self) {
        self.stop.cancel();
    }
}

/// Why a route cannot be added or removed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    Bad(String),
    #[error("a route with this URI exists already: {0}")]
    Exists(String),
    #[error("no route {0}")]
    NotFound(String),
    #[error("route {0} comes from the {1}; change it there")]
    NotFromApi(String, &'static str),
    #[error("{MAX_ROUTES} routes were started in this run of spout already; restart it to add more")]
    Full,
    #[error("cannot save the routes: {0}")]
    Save(String),
}

/// The stable id of the route with `uri`.
pub fn route_id(uri: &str) -> String {
    format!("{:016x}", crate::fnv::fnv1a(uri.as_bytes()))
}

pub struct RouteTable {
    router: Router,
    checkpoints: Arc<Checkpoints>,
    /// Cancelled when the grace period is over: every route gives up.
    abort: CancellationToken,
    state_dir: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    routes: Vec<Arc<Route>>,
    next_index: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    id: String,
    uri: String,
}

impl RouteTable {
    pub fn new(router: Router, checkpoints: Arc<Checkpoints>, abort: CancellationToken, state_dir: PathBuf) -> Self {
        RouteTable { router, checkpoints, abort, state_dir, inner: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The routes now, in the order they were started.
    pub fn routes(&self) -> Vec<Arc<Route>> {
        self.lock().routes.clone()
    }

    /// Starts a route; it gets the messages read from now on.
    pub fn start(&self, spec: &RouteSpec, origin: Origin) -> Result<Arc<Route>, TableError> {
        let mut inner = self.lock();
        let id = route_id(&spec.uri);
        if inner.routes.iter().any(|r| r.id == id) {
            return Err(TableError::Exists(spec.shown.clone()));
        }
        if inner.next_index >= MAX_ROUTES {
            return Err(TableError::Full);
        }
        let index = inner.next_index;
        inner.next_index += 1;
        let stop = self.abort.child_token();
        let (queue, status, task) = super::spawn_one(spec, index, &stop);
        let route = Arc::new(Route {
            id,
            uri: Arc::clone(&queue.name),
            given: spec.uri.clone(),
            origin,
            index,
            stats: Arc::clone(&queue.stats),
            status,
            room: Arc::clone(&queue.room),
            queue: queue.capacity,
            stop,
            task: Mutex::new(Some(task)),
        });
        inner.routes.push(Arc::clone(&route));
        self.router.add(queue);
        Ok(route)
    }

    /// Adds a route through the API, and saves it.
    pub fn add(&self, uri: &str) -> Result<Arc<Route>, TableError> {
        let spec: RouteSpec = uri.parse().map_err(|e: super::uri::RouteError| TableError::Bad(e.to_string()))?;
        let route = self.start(&spec, Origin::Api)?;
        if let Err(e) = self.save(None) {
            self.stop(&route);
            return Err(e);
        }
        info!(route = %route.uri, id = %route.id, "route added");
        Ok(route)
    }

    /// Removes a route added through the API: it gives up what it holds, no container's
    /// checkpoint waits for it any more, and it does not come back after a restart.
    pub fn remove(&self, id: &str) -> Result<(), TableError> {
        let route =
            self.routes().into_iter().find(|r| r.id == id).ok_or_else(|| TableError::NotFound(id.to_owned()))?;
        match route.origin {
            Origin::Api => {}
            Origin::Cli => return Err(TableError::NotFromApi(id.to_owned(), "command line")),
            Origin::File => return Err(TableError::NotFromApi(id.to_owned(), "configuration file")),
        }
        // Saved first: a route that cannot be forgotten on disk is not removed.
        self.save(Some(&route.id))?;
        self.stop(&route);
        info!(route = %route.uri, id = %route.id, "route removed");
        Ok(())
    }

    fn stop(&self, route: &Route) {
        self.lock().routes.retain(|r| r.id != route.id);
        self.router.remove(route.index);
        route.abort();
        self.checkpoints.release_route(route.index);
    }

    /// Starts the routes added through the API in an earlier run; a route that no longer
    /// parses is warned about and left out.
    pub fn restore(&self) {
        let path = self.state_dir.join(API_ROUTES);
        let Ok(text) = std::fs::read_to_string(&path) else { return };
        let saved: Vec<Saved> = match serde_json::from_str(&text) {
            Ok(saved) => saved,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "ignoring unreadable routes added through the API");
                return;
            }
        };
        for route in saved {
            let started = route
                .uri
                .parse::<RouteSpec>()
                .map_err(|e| TableError::Bad(e.to_string()))
                .and_then(|spec| self.start(&spec, Origin::Api));
            match started {
                Ok(r) => info!(route = %r.uri, id = %r.id, "route added through the API restored"),
                Err(e) => {
                    warn!(route = %super::uri::shown(&route.uri), error = %e, "cannot restore a route added through the API")
                }
            }
        }
    }

    /// Writes the routes added through the API, but `without`, atomically.
    fn save(&self, without: Option<&str>) -> Result<(), TableError> {
        let saved: Vec<Saved> = self
            .routes()
            .iter()
            .filter(|r| r.origin == Origin::Api && Some(r.id.as_str()) != without)
            .map(|r| Saved { id: r.id.clone(), uri: r.given.clone() })
            .collect();
        let text = serde_json::to_string_pretty(&saved).map_err(|e| TableError::Save(e.to_string()))?;
        crate::checkpoint::write_atomically(&self.state_dir, API_ROUTES, &text)
            .map_err(|e| TableError::Save(e.to_string()))
    }
}
