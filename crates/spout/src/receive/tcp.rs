//! The GELF TCP input: each message a frame ended by a NUL byte (a newline after it tolerated),
//! not compressed. A frame longer than `max_message` is skipped to its NUL and counted; a
//! client silent for `idle` is closed; how many at once is [`super::clients`]'s to say.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::clients::{Client, Places};
use super::event::{Event, Invalid};
use super::intake::{Intake, NotQueued};
use super::stats::Input;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_message: usize,
    pub idle: Duration,
}

/// Accepts clients until `stop`; each is read by a task of its own. At `stop`, what a client
/// sent before is still taken, then it is closed.
pub async fn run(listener: TcpListener, intake: Intake, limits: Limits, places: Arc<Places>, stop: CancellationToken) {
    let tasks = TaskTracker::new();
    while let Some(Client { stream, peer, place }) = places.next(&listener, &stop).await {
        let (intake, stop) = (intake.clone(), stop.clone());
        tasks.spawn(async move {
            intake.stats.clients.fetch_add(1, Ordering::Relaxed);
            read_client(stream, peer, &intake, limits, &stop).await;
            intake.stats.clients.fetch_sub(1, Ordering::Relaxed);
            drop(place);
        });
    }
    tasks.close();
    tasks.wait().await;
}

async fn read_client(
    mut stream: TcpStream,
    peer: SocketAddr,
    intake: &Intake,
    limits: Limits,
    stop: &CancellationToken,
) {
    let mut frames = Frames::new(limits.max_message);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = tokio::time::timeout(limits.idle, stream.read(&mut buf)) => read,
            () = stop.cancelled() => break,
        };
        let n = match read {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => n,
            Err(_) => {
                debug!(client = %peer, idle = ?limits.idle, "closing an idle client");
                return;
            }
        };
        for frame in frames.push(&buf[..n]) {
            if deliver(frame, peer, intake).await.is_err() {
                return;
            }
        }
    }
    // A last message without its NUL, at the end of the stream, is taken too.
    if let Some(frame) = frames.finish() {
        let _ = deliver(frame, peer, intake).await;
    }
}

async fn deliver(frame: Frame, peer: SocketAddr, intake: &Intake) -> Result<(), NotQueued> {
    let event = match frame {
        Frame::Whole(bytes) => Event::parse(&bytes, super::intake::now_s()),
        Frame::TooLong(max) => Err(Invalid::TooLarge(max)),
    };
    match event {
        // Waits as long as it takes: the client is slowed down, as TCP does.
        Ok(event) => intake.deliver(Input::Tcp, vec![event], None).await,
        Err(why) => {
            intake.refused(Input::Tcp, &why, &peer);
            Ok(())
        }
    }
}

#[derive(Debug, PartialEq)]
enum Frame {
    Whole(Vec<u8>),
    /// A frame over the cap, skipped.
    TooLong(usize),
}

/// Splits a byte stream at NULs, holding at most `max` bytes of an unfinished frame.
struct Frames {
    partial: Vec<u8>,
    max: usize,
    /// The current frame is over the cap: its bytes are skipped up to its NUL.
    skipping: bool,
}

impl Frames {
    fn new(max: usize) -> Frames {
        Frames { partial: Vec::new(), max, skipping: false }
    }

    /// The frames `bytes` completes.
    fn push(&mut self, mut bytes: &[u8]) -> Vec<Frame> {
        let mut done = Vec::new();
        while !bytes.is_empty() {
            let (piece, ended) = match bytes.iter().position(|&b| b == 0) {
                Some(at) => (&bytes[..at], true),
                None => (bytes, false),
            };
            bytes = if ended { &bytes[piece.len() + 1..] } else { &[] };
            if !self.skipping && self.partial.len() + piece.len() > self.max {
                self.skipping = true;
                self.partial = Vec::new();
            }
            if !self.skipping {
                self.partial.extend_from_slice(piece);
            }
            if ended {
                if std::mem::take(&mut self.skipping) {
                    done.push(Frame::TooLong(self.max));
                } else if !is_blank(&self.partial) {
                    done.push(Frame::Whole(std::mem::take(&mut self.partial)));
                }
                self.partial.clear();
            }
        }
        done
    }

    /// What is left at the end of the stream, if anything.
    fn finish(&mut self) -> Option<Frame> {
        if std::mem::take(&mut self.skipping) {
            return Some(Frame::TooLong(self.max));
        }
        let rest = std::mem::take(&mut self.partial);
        (!is_blank(&rest)).then_some(Frame::Whole(rest))
    }
}

/// Nothing but the newlines some senders put after a NUL.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_end_at_nuls_wherever_reads_cut_them_and_a_newline_after_one_is_ignored() {
        let stream = b"{\"a\":1}\0\n{\"b\":2}\0{\"c\":3}\0";
        for cut in 0..stream.len() {
            let mut frames = Frames::new(100);
            let mut got = frames.push(&stream[..cut]);
            got.extend(frames.push(&stream[cut..]));
            assert_eq!(frames.finish(), None);
            let texts: Vec<String> = got
                .into_iter()
                .map(|f| match f {
                    Frame::Whole(b) => String::from_utf8_lossy(&b).trim().to_owned(),
                    Frame::TooLong(_) => "too long".to_owned(),
                })
                .collect();
            assert_eq!(texts, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"], "cut at {cut}");
        }
    }

    #[test]
    fn an_endless_frame_holds_no_more_than_the_cap_and_the_next_one_is_read() {
        let mut frames = Frames::new(10);
        for _ in 0..1000 {
            assert!(frames.push(&[b'x'; 1000]).is_empty());
            assert!(frames.partial.len() <= 10);
        }
        assert_eq!(frames.push(b"x\0ok\0"), [Frame::TooLong(10), Frame::Whole(b"ok".to_vec())]);
        assert_eq!(frames.push(b"endless"), []);
        assert_eq!(frames.finish(), Some(Frame::Whole(b"endless".to_vec())));
    }
}
