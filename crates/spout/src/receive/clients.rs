//! Accepting TCP clients (GELF TCP, HTTP), at most so many at once: further ones wait in the
//! kernel's backlog until one leaves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// A client, holding its place among those allowed at once until dropped.
pub struct Client {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub place: OwnedSemaphorePermit,
}

/// The next client, once there is room for it; `None` once `stop` is cancelled.
pub async fn next(listener: &TcpListener, room: &Arc<Semaphore>, stop: &CancellationToken) -> Option<Client> {
    let place = tokio::select! {
        place = Arc::clone(room).acquire_owned() => place.ok()?,
        () = stop.cancelled() => return None,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => return Some(Client { stream, peer, place }),
                // Out of descriptors, or a client gone before it was accepted: try again soon.
                Err(e) => {
                    debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stop.cancelled() => return None,
        }
    }
}
