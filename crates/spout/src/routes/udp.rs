//! Datagrams over UDP: GELF compressed and chunked (`gelf://`), or one JSON record per datagram
//! (`json+udp://`). Fire and forget: what the network loses is lost.
//!
//! UDP never says that a destination moved (a receiver redeployed behind service discovery, a
//! load balancer's addresses rotating): datagrams to the old address just vanish. So the name is
//! looked up again every `resolve_every` and soon after a failed send, in the background, and the
//! route follows it when the address changes.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, error, info, warn};

use super::codec::{Datagrams, Packer};
use super::context::RouteContext;
use super::uri::{HostPort, UdpRoute};

/// After a failed send the name is looked up again this soon (unless a lookup is under way).
const RESOLVE_AFTER_ERROR: Duration = Duration::from_secs(1);

pub async fn run(ctx: &mut RouteContext, route: &UdpRoute) {
    let mut target = loop {
        match Target::open(&route.addr).await {
            Ok(target) => break target,
            Err(e) => {
                ctx.status.down(&e.to_string());
                warn!(route = %ctx.name, error = %e, "cannot open UDP route, retrying");
                tokio::select! {
                    () = tokio::time::sleep(ctx.backoff.next_delay()) => {}
                    () = ctx.abort.cancelled() => return ctx.abandon(),
                }
            }
        }
    };
    ctx.backoff.reset();
    ctx.status.up();
    info!(route = %ctx.name, peer = %route.addr, address = %target.peer, "UDP route ready");
    let mut packer = Packer::new(route.packing);
    let mut resolve_at = Instant::now() + route.resolve_every;
    let mut lookup: Option<AbortOnDropHandle<io::Result<Vec<SocketAddr>>>> = None;
    let mut failing = false;
    loop {
        if lookup.is_none() && Instant::now() >= resolve_at {
            let addr = route.addr.clone();
            lookup = Some(AbortOnDropHandle::new(tokio::spawn(async move { resolve(&addr).await })));
        }
        let idle = lookup.is_none();
        let found = async {
            match lookup.as_mut() {
                Some(handle) => handle.await,
                None => std::future::pending().await,
            }
        };
        let (batch, range) = tokio::select! {
            next = ctx.next_messages() => match next {
                Some(next) => next,
                None if ctx.abort.is_cancelled() => return ctx.abandon(),
                None => return,
            },
            found = found => {
                lookup = None;
                resolve_at = Instant::now() + route.resolve_every;
                match found {
                    Ok(Ok(addrs)) => target.follow(&addrs, &ctx.name).await,
                    Ok(Err(e)) => debug!(route = %ctx.name, error = %e, "cannot look up the destination again, keeping its address"),
                    Err(e) => debug!(route = %ctx.name, error = %e, "lookup task failed"),
                }
                continue;
            }
            () = tokio::time::sleep_until(resolve_at), if idle => continue,
        };
        let mut sent = 0;
        let mut error = None;
        for msg in &batch[range.clone()] {
            let packer_now = &mut packer;
            let encoded = std::panic::catch_unwind(AssertUnwindSafe(move || {
                let packer = packer_now; // moved in: what it returns may borrow the packer, not the closure
                packer.pack(msg)
            }));
            let encoded = match encoded {
                Ok(encoded) => encoded,
                Err(panic) => {
                    // A bug on this message: dropped and reported, never sent again and again.
                    ctx.encoding_failed(msg, panic.as_ref());
                    packer = Packer::new(route.packing);
                    continue;
                }
            };
            match encoded {
                None => {
                    ctx.stats.dropped_failed.add(1);
                    error!(route = %ctx.name, container = %msg.container.name, "message metadata alone is larger than the route can send (128 GELF chunks, or max_size), dropped");
                }
                Some(datagrams) => match send_all(&target.socket, datagrams).await {
                    Ok(bytes) => {
                        sent += 1;
                        ctx.stats.bytes_sent.add(bytes);
                    }
                    Err(e) => {
                        // Connection refused (an ICMP answer to an earlier datagram) and the
                        // like: the datagram is gone, the socket still works.
                        let dropped = ctx.stats.dropped_failed.add(1);
                        if dropped.is_power_of_two() {
                            warn!(route = %ctx.name, address = %target.peer, error = %e, dropped, "UDP send failed, message dropped");
                        }
                        error = Some(e);
                    }
                },
            }
        }
        // UDP promises nothing more than the send: the messages are done with either way, and
        // the checkpoint need not wait for them.
        ctx.accept(range.len());
        ctx.stats.sent.add(sent);
        ctx.status.delivered();
        match error {
            Some(e) => {
                // Perhaps the destination moved: look again soon.
                resolve_at = resolve_at.min(Instant::now() + RESOLVE_AFTER_ERROR);
                ctx.status.down(&format!("sending to {}: {e}", target.peer));
                failing = true;
            }
            None if failing => {
                failing = false;
                ctx.status.up();
            }
            None => {}
        }
    }
}

/// Sends every datagram of a message; returns the bytes sent.
async fn send_all(socket: &UdpSocket, datagrams: Datagrams<'_>) -> io::Result<u64> {
    let mut bytes = 0;
    for datagram in datagrams {
        bytes += socket.send(datagram).await? as u64;
    }
    Ok(bytes)
}

async fn resolve(addr: &HostPort) -> io::Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((addr.host.as_str(), addr.port)).await?.collect();
    if found.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} has no address", addr.host)));
    }
    Ok(found)
}

/// A socket connected to one of the destination's addresses.
struct Target {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl Target {
    async fn open(addr: &HostPort) -> io::Result<Target> {
        let found = resolve(addr).await?;
        Target::to(found[0]).await
    }

    async fn to(peer: SocketAddr) -> io::Result<Target> {
        let local = if peer.is_ipv4() {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(peer).await?;
        Ok(Target { socket, peer })
    }

    /// Keeps the address while the name still has it; otherwise moves to the first one found.
    async fn follow(&mut self, found: &[SocketAddr], route: &str) {
        let Some(&next) = found.first() else { return };
        if found.contains(&self.peer) {
            return;
        }
        let moved = if next.is_ipv4() == self.peer.is_ipv4() {
            self.socket.connect(next).await.map(|()| self.peer = next)
        } else {
            Target::to(next).await.map(|target| *self = target)
        };
        match moved {
            Ok(()) => info!(route = %route, to = %next, "the destination's address changed; sending there"),
            Err(e) => warn!(route = %route, to = %next, error = %e, "cannot use the destination's new address"),
        }
    }
}
