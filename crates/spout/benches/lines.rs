//! The reader's hot path, from Docker's frames to whole lines: `cargo bench -p spout`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spout::docker::frames::split_timestamp;
use spout::line::{Assembler, Line, Repeats, Span};
use spout::message::Stream;
use spout::position::{Cursor, Position};

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
/// position, and merge pieces into lines.
fn read(frames: &[Vec<u8>], repeats: &mut Repeats, assembler: &mut Assembler, out: &mut Vec<Line>) -> usize {
    let mut cursor = Cursor::new(Position::START);
    let mut n = 0;
    for frame in frames {
        let Some((ts_ns, bytes)) = split_timestamp(frame) else { continue };
        if repeats.is_repeat(Stream::Stdout, ts_ns, bytes) {
            continue;
        }
        let before = cursor.position();
        if cursor.admit(ts_ns) {
            let span = Span { before, after: cursor.position() };
            assembler.push(Stream::Stdout, ts_ns, bytes, span, out);
        }
        n += out.len();
        out.clear();
    }
    n
}

fn lines(c: &mut Criterion) {
    let frames = frames(1000, 100);
    let mut group = c.benchmark_group("reader");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("1000_lines_of_100_bytes", |b| {
        let mut out = Vec::new();
        b.iter(|| read(&frames, &mut Repeats::default(), &mut Assembler::new(false, 1 << 20), &mut out))
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
        b.iter(|| read(&frames, &mut Repeats::default(), &mut Assembler::new(false, 1 << 20), &mut out))
    });
    group.finish();
}

criterion_group!(benches, lines, partial_merge);
criterion_main!(benches);
