//! The codec's hot path, one message at a time: `cargo bench -p spout-gelf`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gelf::{Chunker, Compression, Compressor, Encoder, Fields, Message, UdpEncoder};

/// A container's metadata as spout attaches it to every message.
fn container_fields() -> Fields {
    let mut f = Fields::new();
    for (name, value) in [
        ("_container_id", "4f1c0e7a9b2d8c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a"),
        ("_container_name", "checkout-api-7"),
        ("_image_id", "sha256:9b2d8c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a4f1c0e7a"),
        ("_image_name", "registry.example.com/shop/checkout-api:2.14.1"),
        ("_command", "/app/checkout-api --config /etc/checkout.yaml"),
        ("_created", "2026-11-29T20:30:25.123456789Z"),
    ] {
        f.push_str(name, value).expect("valid field name");
    }
    f
}

const LINE: &str =
    "2026-11-29 23:10:24.915 INFO  [http-nio-8080-exec-7] c.e.shop.CheckoutController - order 81723 \"paid\" in 42 ms";

fn message<'a>(fields: &'a Fields, line: &'a str) -> Message<'a> {
    Message {
        host: "ip-10-0-12-34",
        short_message: line,
        timestamp_ns: 1_795_993_824_915_257_123,
        level: 6,
        fields,
        extra: &[("_stream", "stdout")],
        truncated: false,
    }
}

fn encode(c: &mut Criterion) {
    let fields = container_fields();
    let mut encoder = Encoder::new();
    let msg = message(&fields, LINE);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("gelf_json", |b| b.iter(|| encoder.encode(std::hint::black_box(&msg)).len()));
    group.finish();
}

fn compress(c: &mut Criterion) {
    let fields = container_fields();
    let json = Encoder::new().encode(&message(&fields, LINE)).to_vec();
    let mut group = c.benchmark_group("compress_one_message");
    group.throughput(Throughput::Bytes(json.len() as u64));
    for kind in [Compression::Gzip, Compression::Zlib] {
        let mut compressor = Compressor::new(kind);
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::from_parameter(format!("{kind:?}")), |b| {
            b.iter(|| {
                compressor.compress(std::hint::black_box(&json), &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

fn chunk(c: &mut Criterion) {
    // A 64 KiB payload in 1420-byte datagrams: 47 chunks.
    let payload: Vec<u8> = (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut chunker = Chunker::new(1420, 7);
    let mut group = c.benchmark_group("chunk");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("64KiB_into_1420", |b| {
        b.iter(|| chunker.split(std::hint::black_box(&payload)).map(|d| d.map(<[u8]>::len).sum::<usize>()))
    });
    group.finish();
}

fn udp_pipeline(c: &mut Criterion) {
    let fields = container_fields();
    let msg = message(&fields, LINE);
    let mut group = c.benchmark_group("udp_encode");
    group.throughput(Throughput::Elements(1));
    for kind in [Compression::Gzip, Compression::None] {
        let mut encoder = UdpEncoder::new(kind, 1420, 7);
        group.bench_function(BenchmarkId::from_parameter(format!("{kind:?}")), |b| {
            b.iter(|| encoder.encode(std::hint::black_box(&msg)).map(|d| d.len()))
        });
    }
    group.finish();
}

criterion_group!(benches, encode, compress, chunk, udp_pipeline);
criterion_main!(benches);
