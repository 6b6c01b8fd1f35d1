//! JSON lines on spout's standard output: `spout` alone shows every container's logs.

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tracing::error;

use super::{Batch, RouteContext};
use crate::message::Message;
use crate::timestamp::format_rfc3339_ns;

const BATCH_BYTES: usize = 64 * 1024;

#[derive(Serialize)]
struct Record<'a> {
    time: String,
    host: &'a str,
    container_id: &'a str,
    container_name: &'a str,
    image_name: &'a str,
    stream: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// One message as one line of JSON, newline included.
pub fn write_record(out: &mut Vec<u8>, msg: &Message) {
    let c = &msg.container;
    let record = Record {
        time: format_rfc3339_ns(msg.ts_ns),
        host: &c.host,
        container_id: &c.id,
        container_name: &c.name,
        image_name: &c.image_name,
        stream: msg.stream.as_str(),
        message: &msg.line,
        truncated: msg.truncated,
    };
    // Serializing plain strings into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, &record).is_ok() {
        out.push(b'\n');
    }
}

pub async fn run(mut ctx: RouteContext) {
    let mut stdout = tokio::io::stdout();
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut acks = Vec::new();
    loop {
        let count = match ctx.fill_batch(&mut batch, &mut acks, BATCH_BYTES, write_record).await {
            Batch::Filled(n) => n as u64,
            Batch::Closed => return,
            Batch::Aborted => return ctx.abandon(0),
        };
        let written = async {
            stdout.write_all(&batch).await?;
            stdout.flush().await
        };
        let written = tokio::select! {
            written = written => written,
            () = ctx.abort.cancelled() => return ctx.abandon(count as usize),
        };
        match written {
            Ok(()) => {
                ctx.stats.sent.add(count);
                ctx.accept(&mut acks);
            }
            Err(e) => {
                let dropped = ctx.stats.dropped_failed.add(count);
                if dropped == count {
                    error!(route = %ctx.name, error = %e, "cannot write to stdout, dropping messages");
                }
            }
        }
        batch.clear();
        acks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Container, Stream};
    use std::sync::Arc;

    #[test]
    fn one_json_object_per_line() {
        let c = Arc::new(Container {
            host: "h".into(),
            id: "i".into(),
            name: "n".into(),
            image_name: "img".into(),
            ..Default::default()
        });
        let msg = Message {
            container: c,
            stream: Stream::Stderr,
            ts_ns: 1_795_984_225_804_920_384,
            line: "a \"b\"\nc".into(),
            truncated: true,
            ack: None,
        };
        let mut out = Vec::new();
        write_record(&mut out, &msg);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"time": "2026-11-29T20:30:25.804920384Z", "host": "h", "container_id": "i",
                "container_name": "n", "image_name": "img", "stream": "stderr", "message": "a \"b\"\nc", "truncated": true})
        );
    }
}
