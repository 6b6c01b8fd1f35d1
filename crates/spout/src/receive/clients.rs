//! Accepting TCP clients (GELF TCP, HTTP): at most so many at once, and so many from one address
//! (an IPv6 client's /64 counts as one), so that one host cannot take every place. A client
//! past the input's limit waits in the kernel's backlog; one past its address's is closed at
//! once, and counted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::stats::Counter;

/// The places of one input.
#[derive(Debug)]
pub struct Places {
    room: Arc<Semaphore>,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    per_address: usize,
    /// Clients closed at once: their address had all its places.
    pub refused: Arc<Counter>,
}

/// A client, holding its place until dropped.
pub struct Client {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub place: Place,
}

/// A client's place among those allowed at once.
pub struct Place {
    places: Arc<Places>,
    network: IpAddr,
    _room: OwnedSemaphorePermit,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut by_address = self.places.by_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = by_address.get_mut(&self.network) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.network);
            }
        }
    }
}

impl Places {
    pub fn new(max: usize, per_address: usize, refused: Arc<Counter>) -> Places {
        Places { room: Arc::new(Semaphore::new(max)), by_address: Mutex::default(), per_address, refused }
    }

    /// The next client, once there is room for it; `None` once `stop` is cancelled.
    pub async fn next(self: &Arc<Self>, listener: &TcpListener, stop: &CancellationToken) -> Option<Client> {
        loop {
            let room = tokio::select! {
                room = Arc::clone(&self.room).acquire_owned() => room.ok()?,
                () = stop.cancelled() => return None,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // Out of descriptors, or a client gone before it was accepted: try again soon.
                    Err(e) => {
                        debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stop.cancelled() => return None,
            };
            let network = network(peer.ip());
            let mut by_address = self.by_address.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let taken = by_address.entry(network).or_default();
            if *taken >= self.per_address {
                drop(by_address);
                self.refused.add(1);
                debug!(client = %peer, "closing a client: its address has all its places");
                continue;
            }
            *taken += 1;
            drop(by_address);
            return Some(Client { stream, peer, place: Place { places: Arc::clone(self), network, _room: room } });
        }
    }
}

/// Where a client is from, as limits count it: its IPv4 address, or its IPv6 /64 (a host is
/// given a whole /64).
pub fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}
