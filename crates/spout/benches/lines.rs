//! The reader's hot path, from Docker's frames to whole lines, and the whole cost of a line from
//! its frame to GELF JSON, with and without a container's extra fields: `cargo bench -p spout`
//! (bench/fields.sh prints the ratio of the last two).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spout::docker::frames::split_timestamp;
use spout::line::{Assembler, Line, Repeats, Span};
use spout::message::{Container, Message, Stream};
use spout::position::{ApiPosition, Cursor, Position};
use spout::routes::gelf_fields::GelfFields;

/// Docker's frames as the logs API sends them with timestamps=1, one per log entry.
fn frames(lines: usize, line_len: usize) -> Vec<Vec<u8>> {
    (0..lines)
        .map(|i| {
            let mut f = format!("2026-11-29T23:10:{:02}.{:09}Z {:08} ", (i / 1_000_000) % 60, i % 1_000_000_000, i)
                .into_bytes();
            f.resize(f.len() + line_len.saturating_sub(10), b'x');
            f.push(b'\n');
            f
        })
        .collect()
}

/// What the reader does with each frame: take off the timestamp, look for a re-send, advance the
/// position, and merge pieces into lines, appended to `out`.
fn read(frames: &[Vec<u8>], repeats: &mut Repeats, assembler: &mut Assembler, out: &mut Vec<Line>) {
    let mut cursor = Cursor::new(ApiPosition::START);
    for frame in frames {
        let Some((ts_ns, bytes)) = split_timestamp(frame) else { continue };
        if repeats.is_repeat(Stream::Stdout, ts_ns, bytes) {
            continue;
        }
        let before = Position::Api(cursor.position());
        if cursor.admit(ts_ns) {
            let span = Span { before, after: Position::Api(cursor.position()) };
            assembler.push(Stream::Stdout, ts_ns, bytes, span, out);
        }
    }
}

fn lines(c: &mut Criterion) {
    let frames = frames(1000, 100);
    let mut group = c.benchmark_group("reader");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("1000_lines_of_100_bytes", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            read(&frames, &mut Repeats::default(), &mut Assembler::new(false, 1 << 20), &mut out)
        })
    });
    group.finish();
}

/// A 64 KiB line as the json-file stores it: four 16 KiB pieces with one timestamp, the last one
/// ending in a newline.
fn partial_merge(c: &mut Criterion) {
    let ts = "2026-11-29T23:10:24.915257123Z ";
    let piece = vec![b'y'; 16 * 1024];
    let mut frames = Vec::new();
    for i in 0..4 {
        let mut f = ts.as_bytes().to_vec();
        f.extend_from_slice(&piece);
        if i == 3 {
            f.push(b'\n');
        }
        frames.push(f);
    }
    let mut group = c.benchmark_group("partial_merge");
    group.throughput(Throughput::Bytes(4 * piece.len() as u64));
    group.bench_function("64KiB_line_in_4_pieces", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            read(&frames, &mut Repeats::default(), &mut Assembler::new(false, 1 << 20), &mut out)
        })
    });
    group.finish();
}

/// A container as enrichment describes it, with `extra` additional fields such as an ECS task's.
fn container(extra: usize) -> Arc<Container> {
    let fields = [
        ("_ecs_cluster", "production"),
        ("_ecs_container_name", "app"),
        ("_ecs_task_arn", "arn:aws:ecs:eu-west-1:123456789012:task/production/0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        ("_ecs_task_family", "production-backend-app"),
        ("_ecs_task_id", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        ("_ecs_task_revision", "12"),
        ("_environment", "production"),
        ("_region", "eu-west-1"),
        ("_service", "backend-app"),
        ("_container", "app"),
    ];
    Arc::new(Container {
        host: "ip-10-0-1-23".into(),
        id: "28b8e9df64d0d021bf3589f3bbddd0b8b0da96234517d51821931d3e1c55ab26".into(),
        name: "ecs-production-backend-app-12-app-e2f6c8a1b3d5f7a9c0e1".into(),
        image_id: "sha256:15c5e2a7b6d1f0a9c8e7d6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5".into(),
        image_name: "registry.example/backend:1.4".into(),
        command: "java -jar /app.jar".into(),
        created: "2026-12-02T10:00:00.000000000Z".into(),
        fields: fields.iter().take(extra).map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    })
}

/// Every line of `frames` from its frame to GELF JSON, as the reader and a GELF route do it.
fn ship(frames: &[Vec<u8>], container: &Arc<Container>, cache: &mut GelfFields, out: &mut Vec<u8>) -> usize {
    let mut lines = Vec::new();
    read(frames, &mut Repeats::default(), &mut Assembler::new(false, 1 << 20), &mut lines);
    let mut bytes = 0;
    for line in lines {
        let msg = Message {
            container: Arc::clone(container),
            stream: line.stream,
            ts_ns: line.ts_ns,
            line: line.text,
            truncated: line.truncated,
            ack: None,
            level: None,
        };
        out.clear();
        gelf::write_message(out, &cache.message(&msg));
        bytes += out.len();
    }
    bytes
}

/// The cost of a line with ten extra fields, against one with none: within 10 % (issue 9).
fn per_line(c: &mut Criterion) {
    let frames = frames(1000, 100);
    let mut group = c.benchmark_group("per_line");
    group.throughput(Throughput::Elements(frames.len() as u64));
    for (name, extra) in [("no_extra_fields", 0), ("ten_extra_fields", 10)] {
        let container = container(extra);
        let mut cache = GelfFields::default();
        let mut out = Vec::new();
        group.bench_function(name, |b| b.iter(|| ship(&frames, &container, &mut cache, &mut out)));
    }
    group.finish();
}

criterion_group!(benches, lines, partial_merge, per_line);
criterion_main!(benches);
