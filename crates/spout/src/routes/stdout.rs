//! JSON lines on spout's standard output: `spout` alone shows every container's logs.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::warn;

use super::codec::{Codec, Format, Framing};
use super::context::{Fill, RouteContext};

const BATCH_BYTES: usize = 64 * 1024;

/// Writes every message to `out`. A write that fails is not accepted, nor is anything after it:
/// the route backs off and writes again from the first message not accepted, so the queue fills
/// and the readers wait meanwhile rather than lose what could not be written.
pub async fn run(ctx: &mut RouteContext, mut out: impl AsyncWrite + Unpin) {
    let mut codec = Codec::new(Format::Json, Framing::Newline);
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut failures: u64 = 0;
    let mut up = false;
    loop {
        batch.clear();
        let count = match ctx.fill_batch(&mut batch, BATCH_BYTES, |out, msg| codec.write(out, msg)).await {
            Fill::Filled(n) => n,
            Fill::Closed => return,
            Fill::Aborted => return ctx.abandon(),
        };
        let written = async {
            out.write_all(&batch).await?;
            out.flush().await
        };
        let written = tokio::select! {
            written = written => written,
            () = ctx.abort.cancelled() => return ctx.abandon(),
        };
        match written {
            Ok(()) => {
                ctx.stats.sent.add(count as u64);
                ctx.stats.bytes_sent.add(batch.len() as u64);
                ctx.accept(count);
                if failures > 0 || !up {
                    failures = 0;
                    up = true;
                    ctx.backoff.reset();
                    ctx.status.up();
                }
                ctx.status.delivered();
            }
            Err(e) => {
                failures += 1;
                up = false;
                ctx.stats.write_failures.add(1);
                ctx.status.down(&e.to_string());
                if failures.is_power_of_two() {
                    warn!(route = %ctx.name, error = %e, failures, "cannot write to stdout; writing again from the first message not written");
                }
                ctx.rewind();
                tokio::select! {
                    () = tokio::time::sleep(ctx.backoff.next_delay()) => {}
                    () = ctx.abort.cancelled() => return ctx.abandon(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::message::Message;

    /// A writer that fails its first `failures` writes, then keeps what it is given.
    struct Failing {
        failures: usize,
        written: Vec<u8>,
    }

    impl AsyncWrite for Failing {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            if self.failures > 0 {
                self.failures -= 1;
                return std::task::Poll::Ready(Err(std::io::Error::other("disk full")));
            }
            self.written.extend_from_slice(buf);
            std::task::Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_stays_unaccepted_with_all_after_it_until_a_write_succeeds() {
        use crate::checkpoint::Progress;
        use crate::position::Position;
        let (mut ctx, tx, room) = super::super::context::tests::context(10);
        let progress = Arc::new(Progress::new(1, 0));
        let messages: crate::message::Messages =
            (1..=3).map(|i| Message::test_numbered(&format!("line{i}"), &progress, Position::from_time(i))).collect();
        room.forget_permits(3);
        tx.send(messages).await.expect("open");
        drop(tx);
        // The destination fails for a while: nothing is accepted, and the readers find no room.
        let mut out = Failing { failures: usize::MAX, written: Vec::new() };
        let failing = tokio::time::timeout(std::time::Duration::from_secs(60), run(&mut ctx, &mut out)).await;
        assert!(failing.is_err(), "the route keeps trying");
        assert!(ctx.stats.write_failures.get() > 2);
        assert_eq!(progress.settle(), None, "a failed write is not accepted");
        assert_eq!(room.available_permits(), 7);
        // Then it works again: everything is written once, in order, and accepted.
        out.failures = 0;
        run(&mut ctx, &mut out).await;
        let lines: Vec<String> = String::from_utf8_lossy(&out.written)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["message"].as_str().unwrap_or("").to_owned()
            })
            .collect();
        assert_eq!(lines, ["line1", "line2", "line3"]);
        assert_eq!(progress.settle(), Some(Position::from_time(3)));
        assert_eq!(room.available_permits(), 10);
    }
}
