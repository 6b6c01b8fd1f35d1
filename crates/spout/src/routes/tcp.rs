//! A stream of messages over TCP, or over TLS over TCP, written in batches: GELF JSON each ended
//! by a NUL byte (`gelf+tcp://`, `gelf+tls://`), JSON lines (`json+tcp://`, `json+tls://`), or any
//! format in any framing ([`super::codec`]).
//!
//! A successful write only means the local kernel took the bytes: when the path to the peer
//! silently drops packets, the kernel's send buffer holds megabytes the peer never saw. So a
//! message is accepted only once the peer's TCP stack has acknowledged its last byte: the kernel
//! counts the written bytes not yet acknowledged (`SIOCOUTQ`), and the route compares that with
//! what it wrote. Until then the message stays in the route's queue, so a destination that stops
//! acknowledging fills the queue and stops the readers; after a reconnect, everything not
//! acknowledged is written again. What this cannot cover is data the receiver's kernel
//! acknowledged and its process never read before it died: GELF TCP has no acknowledgement of
//! its own.
//!
//! Over TLS the same holds, counting the bytes TLS wrote to the socket (its records, handshake
//! and all) rather than the messages' bytes. One more case: a TLS 1.3 server checks the client's
//! certificate only after the handshake, so it may refuse a connection, with an alert, after
//! acknowledging what the client wrote at once. Nothing written on a TLS connection is accepted
//! before it has lived [`REFUSAL_WINDOW`].
//!
//! A dead peer is noticed in bounded time: data unacknowledged for `timeout` (TCP_USER_TIMEOUT in
//! the kernel, and the same deadline here for a peer that answers probes but takes nothing),
//! keepalive probes on an idle connection, and the peer's FIN or reset, which a task reading the
//! connection sees at once.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use super::codec::Codec;
use super::context::{Fill, RouteContext};
use super::tls::TlsSettings;
use super::uri::{HostPort, TcpRoute};

/// A batch is written once it holds this many bytes, or when the queue is empty.
const BATCH_BYTES: usize = 256 * 1024;
/// How long one address may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the peer's acknowledgements are looked at while some are awaited and nothing else
/// happens (they are also looked at after every write).
const ACK_POLL: Duration = Duration::from_millis(5);
/// How often a write that cannot go on (the peer's window is full) checks the deadline.
const STALL_POLL: Duration = Duration::from_millis(100);
/// What was accepted this long before the peer last acknowledged anything is written again on
/// the next connection when one is lost other than cleanly: the peer's kernel acknowledges bytes
/// that its process may not have read when it died or closed the connection. Lines from then may
/// arrive twice.
const REPLAY_WINDOW: Duration = Duration::from_secs(2);
/// How long after its handshake a TLS server may still refuse the connection (a TLS 1.3 server
/// checks the client's certificate, or its absence, once the client has finished): a round trip
/// and a signature check, with room to spare.
const REFUSAL_WINDOW: Duration = Duration::from_secs(1);

/// What a connection writes on: TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A TCP stream that counts the bytes written to it, to compare with what the peer acknowledged
/// whatever a TLS layer above adds.
struct Counted {
    inner: TcpStream,
    written: Arc<AtomicU64>,
}

impl Counted {
    fn count(&self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = polled {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.count(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.count(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Whether a connection is still open, as its watching task sees it, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnState {
    Open,
    /// The peer closed its side.
    Eof,
    /// Reset, or timed out by the kernel.
    Failed(String),
}

/// A connection lost: why, and, when what it got acknowledged lately is to be written again,
/// when the peer last acknowledged anything.
struct Loss {
    why: String,
    replay: Option<Instant>,
}

/// Why a write did not complete.
enum Fail {
    Aborted,
    Lost(String),
}

/// A connection, and what was written on it.
struct Conn {
    tx: WriteHalf<Box<dyn Stream>>,
    /// The TCP socket, to ask the kernel what the peer acknowledged.
    probe: OwnedFd,
    /// Bytes written to the socket, counted as they go.
    to_socket: Arc<AtomicU64>,
    ended: watch::Receiver<ConnState>,
    _watch: AbortOnDropHandle<()>,
    peer: SocketAddr,
    /// Bytes the kernel took on this connection, and of them, acknowledged by the peer.
    sent: u64,
    acked: u64,
    /// Nothing is accepted before then: the TLS server may still refuse the connection.
    refusable_until: Option<Instant>,
    /// Each batch written and not yet accepted: where it ends (as `sent` counts) and how many
    /// messages it holds.
    written: VecDeque<(u64, usize)>,
    /// When the acknowledgements last moved, or data last became outstanding.
    progress_at: Instant,
}

impl Conn {
    /// `stream` is the socket of `counters`, perhaps with TLS over it.
    fn new(stream: Box<dyn Stream>, counters: Counters, peer: SocketAddr, tls: bool) -> Conn {
        let (mut rx, tx) = tokio::io::split(stream);
        let (ended_tx, ended) = watch::channel(ConnState::Open);
        // The peer sends no messages (TLS reads its own records here): whatever the read returns
        // (EOF, a TLS alert, or an error such as the kernel giving up after TCP_USER_TIMEOUT)
        // means the connection is over, usually long before a write would say so.
        let watch = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let how = loop {
                match rx.read(&mut buf).await {
                    Ok(0) => break ConnState::Eof,
                    Ok(_) => {}
                    Err(e) => break ConnState::Failed(e.to_string()),
                }
            };
            let _ = ended_tx.send(how);
        });
        Conn {
            tx,
            probe: counters.probe,
            to_socket: counters.to_socket,
            ended,
            _watch: AbortOnDropHandle::new(watch),
            peer,
            sent: 0,
            acked: 0,
            refusable_until: tls.then(|| Instant::now() + REFUSAL_WINDOW),
            written: VecDeque::new(),
            progress_at: Instant::now(),
        }
    }

    fn outstanding(&self) -> bool {
        self.acked < self.sent
    }

    /// Whether the TLS server may still refuse this connection.
    fn refusable(&self) -> bool {
        self.refusable_until.is_some_and(|until| Instant::now() < until)
    }

    /// Why the connection was lost (with the likely cause when a TLS server dropped it right
    /// after the handshake: nginx closes without an alert), and whether what it got
    /// acknowledged lately is to be written again: unless the peer closed it cleanly. A peer's
    /// kernel closes cleanly (FIN) only when its process has read everything acknowledged;
    /// closed with bytes unread, it resets the connection.
    fn loss(&self, why: String) -> Loss {
        let replay = (!matches!(*self.ended.borrow(), ConnState::Eof)).then_some(self.progress_at);
        let why = match self.refusable() {
            true => format!("{why} right after the TLS handshake: the server may require a client certificate (cert= and key=) or refuse the one given"),
            false => why,
        };
        Loss { why, replay }
    }

    /// Accepts the batches the peer has acknowledged. Fails when the connection is over, or when
    /// nothing has been acknowledged for `timeout` while data was outstanding.
    fn check(&mut self, ctx: &mut RouteContext, timeout: Duration) -> Result<(), String> {
        self.accept_acknowledged(ctx)?;
        match &*self.ended.borrow() {
            ConnState::Open => {}
            ConnState::Eof => return Err("the destination closed the connection".to_owned()),
            ConnState::Failed(e) => return Err(e.clone()),
        }
        if self.outstanding() && self.progress_at.elapsed() >= timeout {
            return Err(format!("the destination acknowledged nothing for {}", humantime::format_duration(timeout)));
        }
        Ok(())
    }

    /// Accepts the batches the peer has acknowledged. The kernel keeps its count after a reset
    /// or a timeout, so this holds for a connection just lost too.
    fn accept_acknowledged(&mut self, ctx: &mut RouteContext) -> Result<(), String> {
        let unacked = unacked_bytes(&self.probe).map_err(|e| format!("cannot read the connection's state: {e}"))?;
        let acked = self.sent.saturating_sub(unacked);
        if acked > self.acked {
            self.acked = acked;
            self.progress_at = Instant::now();
        }
        if self.refusable() {
            return Ok(());
        }
        let mut accepted = 0;
        while let Some(&(end, n)) = self.written.front() {
            if end > self.acked {
                break;
            }
            self.written.pop_front();
            accepted += n;
        }
        if accepted > 0 {
            ctx.accept(accepted);
            ctx.status.delivered();
            // This connection has proven itself: the next loss starts backing off afresh.
            ctx.backoff.reset();
        }
        Ok(())
    }

    /// Writes `bytes` and flushes them to the socket (TLS holds some back until then), checking
    /// the peer's acknowledgements (and the deadline) while a full window holds the write up.
    async fn write(&mut self, ctx: &mut RouteContext, bytes: &[u8], timeout: Duration) -> Result<(), Fail> {
        if !self.outstanding() {
            self.progress_at = Instant::now();
        }
        let mut at = 0;
        loop {
            let tx = &mut self.tx;
            let step = async {
                match at < bytes.len() {
                    true => tx.write(&bytes[at..]).await.map(Some),
                    false => tx.flush().await.map(|()| None),
                }
            };
            // Biased, and the timer made only when polled: a write that goes through at once (the
            // usual case) costs no timer.
            let stepped = tokio::select! {
                biased;
                stepped = step => Some(stepped),
                () = async { tokio::time::sleep(STALL_POLL).await } => None,
                () = ctx.abort.cancelled() => return Err(Fail::Aborted),
            };
            self.sent = self.to_socket.load(Ordering::Relaxed);
            match stepped {
                Some(Ok(Some(0))) => return Err(Fail::Lost("the connection takes no more data".to_owned())),
                Some(Ok(Some(n))) => at += n,
                Some(Ok(None)) => return Ok(()),
                Some(Err(e)) => return Err(Fail::Lost(e.to_string())),
                None => self.check(ctx, timeout).map_err(Fail::Lost)?,
            }
        }
    }
}

pub async fn run(ctx: &mut RouteContext, route: &TcpRoute) {
    if let Some(tls) = &route.tls {
        tls.warn_if_insecure(&ctx.name, &route.addr);
    }
    ctx.keep_accepted(REPLAY_WINDOW);
    let mut codec = Codec::new(route.format, route.framing);
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    let mut conn: Option<Conn> = None;
    // A connection was lost: wait a backoff delay before the next attempt, so a destination that
    // accepts and drops connections is not hammered.
    let mut lost = false;
    loop {
        if let Some(c) = conn.as_mut() {
            if let Err(why) = c.check(ctx, route.timeout) {
                let loss = c.loss(why);
                conn = None;
                lose(ctx, &route.addr, &loss);
                lost = true;
            }
        }
        if ctx.is_done() {
            if let Some(mut c) = conn.take() {
                // Everything was acknowledged: say goodbye.
                let _ = tokio::time::timeout(CONNECT_TIMEOUT, c.tx.shutdown()).await;
            }
            return;
        }
        // Batches written and not accepted yet: acknowledged or not (a TLS connection accepts
        // nothing in its first second), they are looked at until they are.
        let awaiting = conn.as_ref().is_some_and(|c| !c.written.is_empty());
        let ended = async {
            match conn.as_mut() {
                Some(c) => {
                    let _ = c.ended.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        batch.clear();
        let filled = tokio::select! {
            biased;
            filled = ctx.fill_batch(&mut batch, BATCH_BYTES, |out, msg| codec.write(out, msg)) => filled,
            // Idle: look at the acknowledgements awaited, and notice a closed connection early.
            () = async { tokio::time::sleep(ACK_POLL).await }, if awaiting => continue,
            () = ended => continue,
        };
        let count = match filled {
            Fill::Filled(n) => n,
            Fill::Aborted => return give_up(ctx, conn.as_ref()),
            Fill::Closed => {
                // Everything is written: wait for the acknowledgements.
                tokio::select! {
                    () = tokio::time::sleep(ACK_POLL) => continue,
                    () = ctx.abort.cancelled() => return give_up(ctx, conn.as_ref()),
                }
            }
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(ctx, route, &mut lost).await {
                Some(c) => conn.insert(c),
                None => return give_up(ctx, None),
            },
        };
        match c.write(ctx, &batch, route.timeout).await {
            Ok(()) => {
                c.written.push_back((c.sent, count));
                ctx.stats.sent.add(count as u64);
                ctx.stats.bytes_sent.add(batch.len() as u64);
            }
            Err(Fail::Aborted) => return give_up(ctx, conn.as_ref()),
            Err(Fail::Lost(why)) => {
                // What the peer acknowledged before the loss needs no second write.
                let _ = c.accept_acknowledged(ctx);
                let loss = c.loss(why);
                conn = None;
                lose(ctx, &route.addr, &loss);
                lost = true;
            }
        }
    }
}

/// The connection is gone: everything it did not get acknowledged is handed out again, after
/// what it got acknowledged lately if the loss calls for it.
fn lose(ctx: &mut RouteContext, addr: &HostPort, loss: &Loss) {
    let replayed = loss.replay.map_or(0, |last_acked| ctx.replay(last_acked.into_std()));
    ctx.rewind();
    ctx.status.down(&loss.why);
    let losses = ctx.stats.reconnects.add(1);
    if losses.is_power_of_two() {
        warn!(route = %ctx.name, peer = %addr, error = %loss.why, unaccepted = ctx.unaccepted(), replayed, losses,
              "connection lost, reconnecting to write again what was not acknowledged (and, unless the peer closed it cleanly, what was in the last 2 s)");
    }
}

/// Connects, backing off first if the last connection was lost. `None` when aborted.
async fn connect(ctx: &mut RouteContext, route: &TcpRoute, lost: &mut bool) -> Option<Conn> {
    loop {
        if std::mem::take(lost) {
            tokio::select! {
                () = tokio::time::sleep(ctx.backoff.next_delay()) => {}
                () = ctx.abort.cancelled() => return None,
            }
        }
        let opened = tokio::select! {
            opened = open(route) => opened,
            () = ctx.abort.cancelled() => return None,
        };
        match opened {
            Ok(conn) => {
                info!(route = %ctx.name, peer = %route.addr, address = %conn.peer, unaccepted = ctx.unaccepted(), "connected");
                ctx.status.up();
                return Some(conn);
            }
            Err(e) => {
                ctx.status.down(&e.to_string());
                let attempts = ctx.stats.connect_failures.add(1);
                if attempts.is_power_of_two() {
                    warn!(route = %ctx.name, peer = %route.addr, error = %e, attempts, "cannot connect, retrying");
                }
                *lost = true;
            }
        }
    }
}

/// The grace period is over: what is not accepted stays unaccepted, and a restarted spout reads
/// it again.
fn give_up(ctx: &mut RouteContext, conn: Option<&Conn>) {
    if let Some(c) = conn.filter(|c| c.outstanding()) {
        warn!(route = %ctx.name, bytes = c.sent - c.acked, "written but not acknowledged when the grace period ended");
    }
    ctx.abandon();
}

/// Connects, and shakes hands over TLS if the route says so.
async fn open(route: &TcpRoute) -> io::Result<Conn> {
    let tls = route.tls.as_ref().map(TlsSettings::handshaker).transpose().map_err(io::Error::other)?;
    let (stream, peer) = reach(route).await?;
    let counters = Counters { probe: stream.as_fd().try_clone_to_owned()?, to_socket: Arc::new(AtomicU64::new(0)) };
    let counted = Counted { inner: stream, written: counters.to_socket.clone() };
    Ok(match tls {
        None => Conn::new(Box::new(counted), counters, peer, false),
        Some(tls) => Conn::new(Box::new(tls.shake(counted, &peer, CONNECT_TIMEOUT).await?), counters, peer, true),
    })
}

/// What a connection's writes are compared with: the socket, and the bytes written to it.
struct Counters {
    probe: OwnedFd,
    to_socket: Arc<AtomicU64>,
}

/// Looks the destination up again (it may have moved) and tries each address in turn.
async fn reach(route: &TcpRoute) -> io::Result<(TcpStream, SocketAddr)> {
    let addr = &route.addr;
    let found = tokio::net::lookup_host((addr.host.as_str(), addr.port)).await?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{} has no address", addr.host));
    for peer in found {
        match tokio::time::timeout(CONNECT_TIMEOUT, connect_to(peer, route)).await {
            Ok(Ok(stream)) => return Ok((stream, peer)),
            Ok(Err(e)) => last = io::Error::new(e.kind(), format!("{peer}: {e}")),
            Err(_) => {
                let waited = humantime::format_duration(CONNECT_TIMEOUT);
                last = io::Error::new(io::ErrorKind::TimedOut, format!("{peer}: no answer within {waited}"));
            }
        }
    }
    Err(last)
}

async fn connect_to(peer: SocketAddr, route: &TcpRoute) -> io::Result<TcpStream> {
    let socket = if peer.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    configure(&SockRef::from(&socket), route)?;
    let stream = socket.connect(peer).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Bounds how long a dead peer can go unnoticed: TCP_USER_TIMEOUT when data is outstanding, and
/// keepalive probes when idle (after `keepalive` of silence, a third of it apart). With a user
/// timeout set, Linux gives up on unanswered probes once the peer has been silent that long too.
fn configure(socket: &SockRef<'_>, route: &TcpRoute) -> io::Result<()> {
    let interval = (route.keepalive / 3).max(Duration::from_secs(1));
    socket
        .set_tcp_keepalive(&TcpKeepalive::new().with_time(route.keepalive).with_interval(interval).with_retries(3))?;
    socket.set_tcp_user_timeout(Some(route.timeout))
}

/// Bytes written to a TCP socket that its peer has not acknowledged yet, sent or not.
#[allow(unsafe_code)]
fn unacked_bytes(socket: impl AsFd) -> io::Result<u64> {
    // SIOCOUTQ, which Linux numbers as TIOCOUTQ (tcp(7)).
    const SIOCOUTQ: rustix::ioctl::Opcode = libc::TIOCOUTQ as rustix::ioctl::Opcode;
    // SAFETY: for a TCP socket, SIOCOUTQ writes the count as an `int` through the pointer it is
    // given, which is what this getter passes and reads back.
    let count = unsafe {
        let getter = rustix::ioctl::Getter::<SIOCOUTQ, libc::c_int>::new();
        rustix::ioctl::ioctl(socket, getter)
    }?;
    Ok(u64::try_from(count).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn route(port: u16) -> TcpRoute {
        TcpRoute {
            addr: HostPort { host: "127.0.0.1".into(), port },
            format: super::super::codec::Format::Gelf,
            framing: super::super::codec::Framing::Nul,
            tls: None,
            timeout: Duration::from_secs(7),
            keepalive: Duration::from_secs(9),
        }
    }

    #[tokio::test]
    async fn connections_are_set_to_notice_a_dead_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (stream, _) = reach(&route(port)).await.expect("connect");
        let s = SockRef::from(&stream);
        assert_eq!(s.tcp_user_timeout().expect("get"), Some(Duration::from_secs(7)));
        assert!(s.keepalive().expect("get"));
        assert_eq!(s.tcp_keepalive_time().expect("get"), Duration::from_secs(9));
        assert_eq!(s.tcp_keepalive_interval().expect("get"), Duration::from_secs(3));
        assert_eq!(s.tcp_keepalive_retries().expect("get"), 3);
    }

    #[tokio::test]
    async fn unacknowledged_bytes_are_what_the_peer_has_not_acknowledged() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (mut stream, _) = reach(&route(port)).await.expect("connect");
        let (mut peer, _) = listener.accept().expect("accept");
        stream.write_all(&[7u8; 1000]).await.expect("write");
        // Loopback acknowledges at once; a peer that reads nothing still acknowledges what fits
        // in its receive buffer.
        let mut waited = 0;
        while unacked_bytes(&stream).expect("ioctl") > 0 && waited < 1000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            waited += 1;
        }
        assert_eq!(unacked_bytes(&stream).expect("ioctl"), 0);
        let mut buf = [0u8; 1000];
        peer.read_exact(&mut buf).expect("read");
        assert_eq!(buf, [7u8; 1000]);
    }
}
