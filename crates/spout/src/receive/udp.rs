//! The GELF UDP input: whole or chunked datagrams, plain, gzip or zlib. Chunks are put back
//! together in any order, duplicates ignored, at most 128 of them, within 5 s of the first; the
//! chunks of incomplete messages hold at most `max_pending_bytes`, the oldest given up first.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gelf::Reassembler;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::event::Invalid;
use super::intake::Intake;
use super::stats::Input;

/// Graylog's limit: a chunked message complete within 5 s of its first chunk, or given up.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(5);

/// Asked of the kernel for the socket's receive buffer (capped by net.core.rmem_max): a burst
/// of datagrams waits there while a message is decoded.
const RECEIVE_BUFFER: usize = 8 << 20;

/// Binds the input's socket.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    socket.set_nonblocking(true)?;
    // Best effort: a smaller buffer only means drops under a burst.
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Receives until `stop`.
pub async fn run(
    socket: UdpSocket,
    intake: Intake,
    max_pending_bytes: usize,
    max_message: usize,
    stop: CancellationToken,
) {
    let mut chunks = Reassembler::new(max_pending_bytes, max_message, CHUNK_TIMEOUT);
    let mut buf = vec![0u8; 65_536];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let (n, from) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                // An ICMP error for an earlier datagram, or no memory for this one: go on.
                Err(_) => continue,
            },
            _ = tick.tick() => {
                chunks.expire(Instant::now());
                account(&chunks, &intake);
                continue;
            }
            () = stop.cancelled() => return,
        };
        let whole = chunks.push(&buf[..n], Instant::now());
        account(&chunks, &intake);
        match whole {
            Ok(Some(payload)) => match intake.decode(&payload) {
                Ok(event) => intake.offer(Input::Udp, event),
                Err(why) => intake.refused(Input::Udp, &why, &from),
            },
            Ok(None) => {}
            Err(why) => intake.refused(Input::Udp, &Invalid::Chunk(why), &from),
        }
    }
}

/// Brings the reassembler's counts to the stats.
fn account(chunks: &Reassembler, intake: &Intake) {
    let stats = &intake.stats;
    stats.pending_chunk_bytes.store(chunks.pending_bytes(), Ordering::Relaxed);
    let evicted = chunks.evicted().saturating_sub(stats.chunks_evicted.get());
    stats.chunks_evicted.add(evicted);
    let expired = chunks.expired().saturating_sub(stats.chunks_expired.get());
    stats.chunks_expired.add(expired);
}
