//! GELF over UDP: compressed, chunked datagrams. Fire and forget: what the network loses is lost.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use gelf::{Compression, UdpEncoder};
use tokio::net::UdpSocket;
use tracing::{debug, error, info, warn};

use super::gelf_fields::GelfFields;
use super::uri::HostPort;
use super::RouteContext;

/// How often the destination's name is looked up again.
const RESOLVE_EVERY: Duration = Duration::from_secs(60);

pub async fn run(mut ctx: RouteContext, addr: HostPort, compression: Compression, chunk_size: usize) {
    let mut backoff = ctx.backoff.clone();
    let (socket, mut peer) = loop {
        match open(&addr).await {
            Ok(opened) => break opened,
            Err(e) => {
                warn!(route = %ctx.name, error = %e, "cannot open UDP route, retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = ctx.abort.cancelled() => return ctx.abandon(0),
                }
            }
        }
    };
    let mut resolved_at = Instant::now();
    info!(route = %ctx.name, peer = %addr, "UDP route ready");
    let mut encoder = UdpEncoder::new(compression, chunk_size, rand::random());
    let mut fields = GelfFields::default();
    let abort = ctx.abort.clone();
    loop {
        let batch = tokio::select! {
            batch = ctx.recv() => match batch {
                Some(batch) => batch,
                None => return,
            },
            () = abort.cancelled() => return ctx.abandon(0),
        };
        if resolved_at.elapsed() >= RESOLVE_EVERY {
            // Destinations move (a service's address changes); UDP would never say so.
            resolved_at = Instant::now();
            match resolve(&addr).await {
                Ok(now) if now != peer => match socket.connect(now).await {
                    Ok(()) => {
                        info!(route = %ctx.name, from = %peer, to = %now, "destination address changed");
                        peer = now;
                    }
                    Err(e) => warn!(route = %ctx.name, error = %e, "cannot use the destination's new address"),
                },
                Ok(_) => {}
                Err(e) => {
                    debug!(route = %ctx.name, error = %e, "cannot resolve the destination again, keeping its address")
                }
            }
        }
        let mut sent = 0;
        for msg in batch.iter() {
            match encoder.encode(&fields.message(msg)) {
                None => {
                    ctx.stats.dropped_failed.add(1);
                    error!(route = %ctx.name, container = %msg.container.name, "message fields alone exceed 128 chunks, dropped");
                }
                Some(datagrams) => match send_all(&socket, datagrams).await {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        // Connection refused (an ICMP answer to an earlier datagram) and the
                        // like: the datagram is gone, the socket still works.
                        let dropped = ctx.stats.dropped_failed.add(1);
                        if dropped.is_power_of_two() {
                            warn!(route = %ctx.name, error = %e, dropped, "UDP send failed, message dropped");
                        }
                    }
                },
            }
            // UDP promises nothing more than the send: the message is done with either way, and
            // the checkpoint need not wait for it.
            msg.accept(ctx.index);
        }
        ctx.stats.sent.add(sent);
    }
}

async fn send_all(socket: &UdpSocket, datagrams: gelf::Datagrams<'_>) -> std::io::Result<()> {
    for datagram in datagrams {
        socket.send(datagram).await?;
    }
    Ok(())
}

async fn resolve(addr: &HostPort) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host((addr.host.as_str(), addr.port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} has no address", addr.host)))
}

async fn open(addr: &HostPort) -> std::io::Result<(UdpSocket, SocketAddr)> {
    let peer = resolve(addr).await?;
    let local = if peer.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(peer).await?;
    Ok((socket, peer))
}
