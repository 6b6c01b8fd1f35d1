//! Message to datagrams, in one reusable pipeline: encode, compress, chunk, and when a message
//! would need more than 128 chunks, cut its text until it fits.

use crate::{Chunker, Compression, Compressor, Datagrams, Encoder, Message};

pub struct UdpEncoder {
    encoder: Encoder,
    compressor: Compressor,
    compressed: Vec<u8>,
    chunker: Chunker,
}

impl UdpEncoder {
    /// See [`Chunker::new`] for `chunk_size` and `id_seed`.
    pub fn new(compression: Compression, chunk_size: usize, id_seed: u64) -> Self {
        Self {
            encoder: Encoder::new(),
            compressor: Compressor::new(compression),
            compressed: Vec::new(),
            chunker: Chunker::new(chunk_size, id_seed),
        }
    }

    /// The datagrams for `msg`. A message too large for 128 chunks has its `short_message` cut
    /// (at a character boundary) and is marked truncated. `None` only when even its fields alone
    /// exceed 128 chunks, which the caller must count as a drop.
    pub fn encode(&mut self, msg: &Message<'_>) -> Option<Datagrams<'_>> {
        let limit = self.chunker.max_payload();
        let (encoder, compressor, compressed) = (&mut self.encoder, &mut self.compressor, &mut self.compressed);
        cut_to_fit(msg.short_message, limit, |text, cut| {
            let msg = Message { short_message: text, truncated: msg.truncated || cut, ..*msg };
            compressor.compress(encoder.encode(&msg), compressed);
            compressed.len()
        });
        self.chunker.split(&self.compressed)
    }
}

/// Cuts a message's `text` until its encoding fits in `limit` bytes: `encode` encodes the message
/// with the text it is given (marked truncated when told it was cut) and returns its size; the
/// last call is the one that counts. Whole if it fits, else cut at a character boundary, else
/// empty; true when that fits. Compression and escaping make a cut's size unpredictable: it
/// shrinks in proportion, with margin, and tries again; each round at least halves the
/// overshoot, and eight rounds end at empty.
pub fn cut_to_fit(text: &str, limit: usize, mut encode: impl FnMut(&str, bool) -> usize) -> bool {
    let mut size = encode(text, false);
    let mut keep = text.len();
    for _ in 0..8 {
        if size <= limit {
            return true;
        }
        let scaled = (keep as u128 * limit as u128 * 9 / 10 / size as u128) as usize;
        keep = floor_char_boundary(text, scaled.min(keep.saturating_sub(1)));
        size = encode(&text[..keep], true);
    }
    if size > limit {
        size = encode("", true);
    }
    size <= limit
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decompress, Fields, Reassembler};
    use std::time::{Duration, Instant};

    fn round_trip(enc: &mut UdpEncoder, text: &str) -> (serde_json::Value, usize) {
        let fields = Fields::new();
        let msg = Message {
            host: "h",
            short_message: text,
            timestamp_ns: 1,
            level: 6,
            fields: &fields,
            extra: &[],
            truncated: false,
        };
        let grams: Vec<Vec<u8>> = enc.encode(&msg).expect("fits").map(<[u8]>::to_vec).collect();
        let mut r = Reassembler::new(1 << 24, 1 << 24, Duration::from_secs(5));
        let mut whole = None;
        for g in &grams {
            assert!(g.len() <= 1420);
            whole = r.push(g, Instant::now()).expect("valid").or(whole);
        }
        let json = decompress(&whole.expect("complete"), 1 << 24).expect("decompress");
        (serde_json::from_slice(&json).expect("json"), grams.len())
    }

    #[test]
    fn small_messages_pass_untouched() {
        let mut enc = UdpEncoder::new(Compression::Gzip, 1420, 1);
        let (v, n) = round_trip(&mut enc, "hello");
        assert_eq!((v["short_message"].as_str(), n), (Some("hello"), 1));
        assert!(v.get("_truncated").is_none());
    }

    #[test]
    fn oversized_messages_are_cut_to_128_chunks_and_marked() {
        // Incompressible text far beyond 128 * 1408 bytes.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let text: String = (0..400_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8)
            })
            .collect();
        for kind in [Compression::None, Compression::Gzip, Compression::Zlib] {
            let mut enc = UdpEncoder::new(kind, 1420, 1);
            let (v, n) = round_trip(&mut enc, &text);
            let got = v["short_message"].as_str().expect("text");
            assert!(n <= 128, "{kind:?}: {n} chunks");
            assert!(got.len() > 100_000, "{kind:?}: cut too much, kept {}", got.len());
            assert!(text.starts_with(got));
            assert_eq!(v["_truncated"], "true");
        }
    }

    #[test]
    fn cuts_at_character_boundaries() {
        let text = "é".repeat(200_000);
        let mut enc = UdpEncoder::new(Compression::None, 1420, 1);
        let (v, _) = round_trip(&mut enc, &text);
        assert!(v["short_message"].as_str().expect("text").chars().all(|c| c == 'é'));
    }
}
