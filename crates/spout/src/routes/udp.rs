//! GELF over UDP: compressed, chunked datagrams. Fire and forget: what the network loses is lost.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use gelf::{Compression, UdpEncoder};
use tokio::net::UdpSocket;
use tracing::{error, info, warn};

use super::gelf_fields::GelfFields;
use super::uri::HostPort;
use super::RouteContext;
use crate::backoff::Backoff;

pub async fn run(mut ctx: RouteContext, addr: HostPort, compression: Compression, chunk_size: usize) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let socket = loop {
        match open(&addr).await {
            Ok(socket) => break socket,
            Err(e) => {
                warn!(route = %ctx.name, error = %e, "cannot open UDP route, retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = ctx.abort.cancelled() => return ctx.abandon(0),
                }
            }
        }
    };
    info!(route = %ctx.name, peer = %addr, "UDP route ready");
    let mut encoder = UdpEncoder::new(compression, chunk_size, rand::random());
    let mut fields = GelfFields::default();
    loop {
        let msg = tokio::select! {
            msg = ctx.rx.recv() => match msg {
                Some(msg) => msg,
                None => return,
            },
            () = ctx.abort.cancelled() => return ctx.abandon(0),
        };
        let Some(datagrams) = encoder.encode(&fields.message(&msg)) else {
            ctx.stats.dropped_failed.add(1);
            error!(route = %ctx.name, container = %msg.container.name, "message fields alone exceed 128 chunks, dropped");
            continue;
        };
        let mut failed = None;
        for datagram in datagrams {
            if let Err(e) = socket.send(datagram).await {
                failed = Some(e);
                break;
            }
        }
        match failed {
            None => {
                ctx.stats.sent.add(1);
            }
            Some(e) => {
                // Connection refused (an ICMP answer to an earlier datagram) and the like: the
                // datagram is gone, the socket still works.
                let dropped = ctx.stats.dropped_failed.add(1);
                if dropped.is_power_of_two() {
                    warn!(route = %ctx.name, error = %e, dropped, "UDP send failed, message dropped");
                }
            }
        }
    }
}

async fn open(addr: &HostPort) -> std::io::Result<UdpSocket> {
    let peer: SocketAddr = tokio::net::lookup_host((addr.host.as_str(), addr.port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} has no address", addr.host)))?;
    let local = if peer.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(peer).await?;
    Ok(socket)
}
