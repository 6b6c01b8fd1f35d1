//! Payload compression: gzip and zlib around our own small-message deflate, and capped
//! decompression for receivers.

use flate2::{Decompress, FlushDecompress, Status};

use crate::deflate::Deflater;

/// How a GELF UDP payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain JSON.
    None,
    /// gzip (RFC 1952): the safest choice, understood by Graylog and Logstash alike.
    Gzip,
    /// zlib (RFC 1950) with the default-level header, so the stream starts 78 9c: Logstash's gelf input
    /// recognises zlib by exactly those bytes.
    Zlib,
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            "zlib" => Ok(Self::Zlib),
            other => Err(format!("unknown compression {other:?} (expected gzip, zlib or none)")),
        }
    }
}

/// Compresses one message at a time with a [`Deflater`] kept between messages.
#[derive(Debug)]
pub struct Compressor {
    kind: Compression,
    deflater: Deflater,
}

/// gzip's member header: deflate, no name or comment, no time, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// zlib's header: deflate with a 32 KiB window, "default level". The level bits are advisory
/// (inflaters ignore them), and 78 9c is what Logstash's gelf input recognises as zlib.
const ZLIB_HEADER: [u8; 2] = [0x78, 0x9c];

impl Compressor {
    pub fn new(kind: Compression) -> Self {
        Self { kind, deflater: Deflater::default() }
    }

    /// Replaces the contents of `out` with `input`, compressed.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        match self.kind {
            Compression::None => out.extend_from_slice(input),
            Compression::Gzip => {
                out.extend_from_slice(&GZIP_HEADER);
                self.deflater.deflate(input, out);
                out.extend_from_slice(&zlib_rs::crc32::crc32(0, input).to_le_bytes());
                // The input's size modulo 2^32, as RFC 1952 defines ISIZE.
                out.extend_from_slice(&(input.len() as u32).to_le_bytes());
            }
            Compression::Zlib => {
                out.extend_from_slice(&ZLIB_HEADER);
                self.deflater.deflate(input, out);
                out.extend_from_slice(&zlib_rs::adler32::adler32(1, input).to_be_bytes());
            }
        }
    }
}

/// Why a payload could not be decompressed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("corrupt {0} stream")]
    Corrupt(&'static str),
    #[error("decompressed payload exceeds {0} bytes")]
    TooLarge(usize),
}

/// Whether `cmf flg` start a zlib stream (RFC 1950): deflate with a window of at most 32 KiB,
/// and a valid check. JSON never starts so: its first byte is `{` or white space.
fn is_zlib(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

/// Decompresses a GELF payload, telling the format by its first bytes (gzip 1f 8b, zlib with any
/// valid header, anything else plain), and refuses to produce more than `max_len` bytes.
pub fn decompress(payload: &[u8], max_len: usize) -> Result<Vec<u8>, DecompressError> {
    let (mut state, name) = match payload {
        [0x1f, 0x8b, ..] => (Decompress::new_gzip(15), "gzip"),
        [cmf, flg, ..] if is_zlib(*cmf, *flg) => (Decompress::new(true), "zlib"),
        _ if payload.len() > max_len => return Err(DecompressError::TooLarge(max_len)),
        _ => return Ok(payload.to_vec()),
    };
    let mut out = Vec::with_capacity((payload.len() * 4).min(max_len));
    loop {
        let consumed = usize::try_from(state.total_in()).unwrap_or(usize::MAX).min(payload.len());
        if out.len() == out.capacity() {
            if out.len() >= max_len {
                return Err(DecompressError::TooLarge(max_len));
            }
            out.reserve_exact(out.capacity().max(256).min(max_len - out.len()));
        }
        match state.decompress_vec(&payload[consumed..], &mut out, FlushDecompress::Finish) {
            // reserve_exact may still round up; the cap is the cap.
            Ok(Status::StreamEnd) if out.len() > max_len => return Err(DecompressError::TooLarge(max_len)),
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_)
                if usize::try_from(state.total_in()).unwrap_or(usize::MAX) == consumed
                    && out.len() < out.capacity() =>
            {
                // No progress with room to spare: the stream is cut short.
                return Err(DecompressError::Corrupt(name));
            }
            Ok(_) => {}
            Err(_) => return Err(DecompressError::Corrupt(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = br#"{"version":"1.1","host":"h","short_message":"hello hello hello hello"}"#;

    #[test]
    fn gzip_and_zlib_round_trip_with_reused_state() {
        for kind in [Compression::Gzip, Compression::Zlib, Compression::None] {
            let mut c = Compressor::new(kind);
            let mut out = Vec::new();
            for input in [SAMPLE, b"".as_slice(), &vec![b'x'; 100_000], SAMPLE] {
                c.compress(input, &mut out);
                assert_eq!(decompress(&out, 1 << 20).expect("round trip"), input, "{kind:?}");
            }
        }
    }

    /// A message as spout sends it: a log line and a container's metadata.
    const TYPICAL: &[u8] = br#"{"version":"1.1","host":"ip-10-0-12-34","short_message":"2026-11-29 23:10:24.915 INFO  [http-nio-8080-exec-7] c.e.shop.CheckoutController - order 81723 \"paid\" in 42 ms","timestamp":1795993824.915257,"level":6,"_container_id":"4f1c0e7a9b2d8c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a","_container_name":"checkout-api-7","_image_id":"sha256:9b2d8c3e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a4f1c0e7a","_image_name":"registry.example.com/shop/checkout-api:2.14.1","_command":"/app/checkout-api --config /etc/checkout.yaml","_created":"2026-11-29T20:30:25.123456789Z","_stream":"stdout"}"#;

    #[test]
    fn compresses_about_as_well_as_zlib_at_its_fastest() {
        let mut ours = Vec::new();
        Compressor::new(Compression::Zlib).compress(TYPICAL, &mut ours);
        let mut fastest = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut fastest, TYPICAL).expect("in memory");
        let fastest = fastest.finish().expect("in memory");
        assert!(ours.len() * 10 <= fastest.len() * 11, "{} bytes, zlib's fastest {}", ours.len(), fastest.len());
    }

    #[test]
    fn headers_are_what_receivers_recognise() {
        let mut out = Vec::new();
        Compressor::new(Compression::Gzip).compress(SAMPLE, &mut out);
        assert_eq!(&out[..2], &[0x1f, 0x8b]);
        Compressor::new(Compression::Zlib).compress(SAMPLE, &mut out);
        assert_eq!(&out[..2], &[0x78, 0x9c], "Logstash only knows the default-level zlib header");
    }

    #[test]
    fn incompressible_input_still_fits() {
        let noise: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut out = Vec::new();
        Compressor::new(Compression::Gzip).compress(&noise, &mut out);
        assert_eq!(decompress(&out, 1 << 20).expect("round trip"), noise);
    }

    #[test]
    fn decompression_is_capped() {
        let mut out = Vec::new();
        Compressor::new(Compression::Gzip).compress(&vec![b'a'; 1 << 20], &mut out);
        assert_eq!(decompress(&out, 1000), Err(DecompressError::TooLarge(1000)));
        assert_eq!(decompress(&[b'{'; 2000], 1000), Err(DecompressError::TooLarge(1000)));
        // Just over the cap, from a small payload: never more than the cap comes back.
        Compressor::new(Compression::Zlib).compress(&vec![b'b'; 1001], &mut out);
        assert_eq!(decompress(&out, 1000), Err(DecompressError::TooLarge(1000)));
        assert_eq!(decompress(&out, 1001).map(|v| v.len()), Ok(1001));
    }

    #[test]
    fn corrupt_streams_are_errors_not_panics() {
        let mut out = Vec::new();
        Compressor::new(Compression::Gzip).compress(SAMPLE, &mut out);
        assert!(decompress(&out[..out.len() / 2], 1 << 20).is_err());
        assert!(decompress(&[0x1f, 0x8b, 0, 0, 0, 0], 1 << 20).is_err());
        assert!(decompress(&[0x78, 0x9c, 0xff, 0xff], 1 << 20).is_err());
    }

    #[test]
    fn zlib_is_recognised_at_every_level_not_only_by_78_9c() {
        use std::io::Write;
        let mut headers = Vec::new();
        for level in [0, 1, 6, 9] {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
            z.write_all(SAMPLE).expect("write");
            let out = z.finish().expect("zlib");
            headers.push([out[0], out[1]]);
            assert_eq!(decompress(&out, 1 << 20).as_deref(), Ok(SAMPLE), "level {level}");
        }
        assert_eq!(headers, [[0x78, 0x01], [0x78, 0x01], [0x78, 0x9c], [0x78, 0xda]]);
        // A smaller window (here 512 bytes, CINFO 1) has its own first byte.
        let mut small = flate2::Compress::new_with_window_bits(flate2::Compression::default(), true, 9);
        let mut out = Vec::with_capacity(SAMPLE.len() * 2 + 64);
        small.compress_vec(SAMPLE, &mut out, flate2::FlushCompress::Finish).expect("zlib");
        assert_eq!(out[0], 0x18);
        assert_eq!(decompress(&out, 1 << 20).as_deref(), Ok(SAMPLE));
        assert!(!is_zlib(b'{', b'"') && !is_zlib(b' ', b'{'));
    }

    #[test]
    fn names_parse() {
        assert_eq!("gzip".parse::<Compression>(), Ok(Compression::Gzip));
        assert!("lz4".parse::<Compression>().is_err());
    }
}
