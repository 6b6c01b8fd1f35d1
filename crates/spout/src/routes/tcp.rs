//! GELF over TCP: uncompressed JSON messages, each ended by a NUL byte, written in batches.
//! When the destination is down, the batch in hand waits (and with it, through the bounded queue,
//! the readers) while the route reconnects with backoff; it is written again in full once
//! connected, so a failed write costs duplicates, not lines.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{info, warn};

use super::gelf_fields::GelfFields;
use super::uri::HostPort;
use super::{Batch, RouteContext};
use crate::backoff::Backoff;
use crate::message::Message;

/// A batch is written once it holds this many bytes, or when the queue is empty.
const BATCH_BYTES: usize = 256 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(mut ctx: RouteContext, addr: HostPort) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let mut encoder = gelf::Encoder::new();
    let mut fields = GelfFields::default();
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    let mut in_batch = 0usize;
    let mut conn: Option<TcpStream> = None;
    loop {
        if in_batch == 0 {
            let encode = |out: &mut Vec<u8>, msg: &Message| {
                out.extend_from_slice(encoder.encode(&fields.message(msg)));
                out.push(0);
            };
            match ctx.fill_batch(&mut batch, BATCH_BYTES, encode).await {
                Batch::Filled(n) => in_batch = n,
                Batch::Aborted => return ctx.abandon(0),
                Batch::Closed => {
                    if let Some(mut stream) = conn.take() {
                        // A clean close, so the peer reads everything before it sees the end.
                        let _ = stream.shutdown().await;
                    }
                    return;
                }
            }
        }
        if conn.is_none() {
            match connect(&addr).await {
                Ok(stream) => {
                    info!(route = %ctx.name, peer = %addr, "connected");
                    conn = Some(stream);
                }
                Err(e) => {
                    let attempts = ctx.stats.reconnects.add(1);
                    if attempts.is_power_of_two() {
                        warn!(route = %ctx.name, peer = %addr, error = %e, attempts, "cannot connect, retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next_delay()) => continue,
                        () = ctx.abort.cancelled() => return ctx.abandon(in_batch),
                    }
                }
            }
        }
        let Some(stream) = conn.as_mut() else { continue };
        let written = tokio::select! {
            written = stream.write_all(&batch) => written,
            () = ctx.abort.cancelled() => return ctx.abandon(in_batch),
        };
        match written {
            Ok(()) => {
                ctx.stats.sent.add(in_batch as u64);
                batch.clear();
                in_batch = 0;
                backoff.reset();
            }
            Err(e) => {
                warn!(route = %ctx.name, peer = %addr, error = %e, messages = in_batch, "write failed, reconnecting to send again");
                conn = None;
            }
        }
    }
}

async fn connect(addr: &HostPort) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((addr.host.as_str(), addr.port)))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
