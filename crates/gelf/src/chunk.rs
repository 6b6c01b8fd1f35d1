//! GELF UDP chunking (magic 1e 0f, 8-byte message id, sequence number, count) and reassembly.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const CHUNK_MAGIC: [u8; 2] = [0x1e, 0x0f];
pub const CHUNK_HEADER_LEN: usize = 12;
/// Graylog discards messages of more chunks than this.
pub const MAX_CHUNKS: usize = 128;

/// Splits payloads into datagrams of at most `chunk_size` bytes, header included.
#[derive(Debug)]
pub struct Chunker {
    chunk_size: usize,
    next_id: u64,
    /// Every datagram of the last payload, back to back; `ends` marks where each stops.
    frames: Vec<u8>,
    ends: Vec<usize>,
}

impl Chunker {
    /// `chunk_size` is the largest datagram, header included, and must leave room for a payload
    /// byte. `id_seed` starts the message ids; give each process a random one so that two
    /// senders to one receiver do not collide.
    pub fn new(chunk_size: usize, id_seed: u64) -> Self {
        assert!(chunk_size > CHUNK_HEADER_LEN, "chunk size must exceed the chunk header");
        Self { chunk_size, next_id: id_seed, frames: Vec::new(), ends: Vec::new() }
    }

    /// Payload bytes that fit in `MAX_CHUNKS` chunks.
    pub fn max_payload(&self) -> usize {
        (self.chunk_size - CHUNK_HEADER_LEN) * MAX_CHUNKS
    }

    /// Frames `payload` and returns its datagrams, or `None` when it needs more than
    /// `MAX_CHUNKS` chunks. A payload that fits one datagram is sent whole, unchunked.
    pub fn split(&mut self, payload: &[u8]) -> Option<Datagrams<'_>> {
        self.frames.clear();
        self.ends.clear();
        if payload.len() <= self.chunk_size {
            self.frames.extend_from_slice(payload);
            self.ends.push(payload.len());
            return Some(Datagrams { frames: &self.frames, ends: &self.ends, index: 0 });
        }
        let piece = self.chunk_size - CHUNK_HEADER_LEN;
        let count = payload.len().div_ceil(piece);
        if count > MAX_CHUNKS {
            return None;
        }
        let id = self.next_id.to_be_bytes();
        self.next_id = self.next_id.wrapping_add(1);
        self.frames.reserve(payload.len() + count * CHUNK_HEADER_LEN);
        for (seq, part) in payload.chunks(piece).enumerate() {
            self.frames.extend_from_slice(&CHUNK_MAGIC);
            self.frames.extend_from_slice(&id);
            // Both fit a byte: count <= MAX_CHUNKS (128).
            self.frames.push(seq as u8);
            self.frames.push(count as u8);
            self.frames.extend_from_slice(part);
            self.ends.push(self.frames.len());
        }
        Some(Datagrams { frames: &self.frames, ends: &self.ends, index: 0 })
    }
}

/// The datagrams of one payload, in order.
#[derive(Debug)]
pub struct Datagrams<'a> {
    frames: &'a [u8],
    ends: &'a [usize],
    index: usize,
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let end = *self.ends.get(self.index)?;
        let start = if self.index == 0 { 0 } else { self.ends[self.index - 1] };
        self.index += 1;
        Some(&self.frames[start..end])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.ends.len() - self.index;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Datagrams<'_> {}

/// Why a datagram was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassembleError {
    #[error("chunk header is cut short")]
    ShortHeader,
    #[error("chunk count {0} is outside 1..=128")]
    BadCount(u8),
    #[error("chunk sequence number {seq} is not below its count {count}")]
    BadSequence { seq: u8, count: u8 },
    #[error("chunk count changed within one message")]
    CountMismatch,
    #[error("too many messages in reassembly at once")]
    TooManyPending,
    #[error("message would exceed {0} bytes")]
    TooLarge(usize),
}

struct Partial {
    first_seen: Instant,
    parts: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: usize,
}

/// Puts chunked GELF messages back together, within bounds: at most `max_pending` messages in
/// flight, `max_message` bytes each, and each complete within `timeout` of its first chunk.
pub struct Reassembler {
    pending: HashMap<[u8; 8], Partial>,
    max_pending: usize,
    max_message: usize,
    timeout: Duration,
}

impl Reassembler {
    pub fn new(max_pending: usize, max_message: usize, timeout: Duration) -> Self {
        Self { pending: HashMap::new(), max_pending, max_message, timeout }
    }

    /// Takes one datagram; returns a whole (possibly compressed) payload once one is complete.
    pub fn push(&mut self, datagram: &[u8], now: Instant) -> Result<Option<Vec<u8>>, ReassembleError> {
        if !datagram.starts_with(&CHUNK_MAGIC) {
            if datagram.len() > self.max_message {
                return Err(ReassembleError::TooLarge(self.max_message));
            }
            return Ok(Some(datagram.to_vec()));
        }
        if datagram.len() < CHUNK_HEADER_LEN {
            return Err(ReassembleError::ShortHeader);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&datagram[2..10]);
        let (seq, count) = (datagram[10], datagram[11]);
        if count == 0 || usize::from(count) > MAX_CHUNKS {
            return Err(ReassembleError::BadCount(count));
        }
        if seq >= count {
            return Err(ReassembleError::BadSequence { seq, count });
        }
        let stale = self.pending.get(&id).is_some_and(|p| now.saturating_duration_since(p.first_seen) >= self.timeout);
        if stale {
            // Its time ran out: this chunk starts the message afresh.
            self.pending.remove(&id);
        }
        if !self.pending.contains_key(&id) {
            self.expire(now);
            if self.pending.len() >= self.max_pending {
                return Err(ReassembleError::TooManyPending);
            }
        }
        let body = &datagram[CHUNK_HEADER_LEN..];
        let partial = self.pending.entry(id).or_insert_with(|| Partial {
            first_seen: now,
            parts: vec![None; usize::from(count)],
            received: 0,
            bytes: 0,
        });
        if partial.parts.len() != usize::from(count) {
            self.pending.remove(&id);
            return Err(ReassembleError::CountMismatch);
        }
        let slot = &mut partial.parts[usize::from(seq)];
        if slot.is_none() {
            partial.bytes += body.len();
            if partial.bytes > self.max_message {
                self.pending.remove(&id);
                return Err(ReassembleError::TooLarge(self.max_message));
            }
            *slot = Some(body.to_vec());
            partial.received += 1;
        }
        if partial.received < partial.parts.len() {
            return Ok(None);
        }
        let Some(done) = self.pending.remove(&id) else { return Ok(None) };
        let mut whole = Vec::with_capacity(done.bytes);
        for part in done.parts.into_iter().flatten() {
            whole.extend_from_slice(&part);
        }
        Ok(Some(whole))
    }

    /// Forgets messages whose chunks did not all arrive in time; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.pending.len();
        let timeout = self.timeout;
        self.pending.retain(|_, p| now.saturating_duration_since(p.first_seen) < timeout);
        before - self.pending.len()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payload_is_one_unchunked_datagram() {
        let mut c = Chunker::new(100, 7);
        let grams: Vec<&[u8]> = c.split(b"{\"short_message\":\"hi\"}").expect("fits").collect();
        assert_eq!(grams, vec![b"{\"short_message\":\"hi\"}".as_slice()]);
        let exact = vec![b'x'; 100];
        assert_eq!(c.split(&exact).expect("fits").count(), 1);
    }

    #[test]
    fn chunk_headers_and_boundaries_are_byte_exact() {
        let mut c = Chunker::new(20, 0x0102_0304_0506_0708);
        let payload: Vec<u8> = (0..21u8).collect();
        let grams: Vec<Vec<u8>> = c.split(&payload).expect("fits").map(<[u8]>::to_vec).collect();
        // 8 payload bytes per chunk: 8 + 8 + 5.
        assert_eq!(
            grams,
            vec![
                [&[0x1e, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 0, 3][..], &payload[0..8]].concat(),
                [&[0x1e, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3][..], &payload[8..16]].concat(),
                [&[0x1e, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 2, 3][..], &payload[16..21]].concat(),
            ]
        );
        // The next message gets the next id.
        let next: Vec<&[u8]> = c.split(&payload).expect("fits").collect();
        assert_eq!(&next[0][2..10], &[1, 2, 3, 4, 5, 6, 7, 9]);
    }

    #[test]
    fn at_most_128_chunks() {
        let mut c = Chunker::new(13, 0);
        assert_eq!(c.max_payload(), 128);
        assert_eq!(c.split(&[b'a'; 128]).expect("fits").count(), 128);
        assert!(c.split(&[b'a'; 129]).is_none());
    }

    #[test]
    fn reassembles_out_of_order_and_duplicated_chunks() {
        let mut c = Chunker::new(20, 42);
        let payload: Vec<u8> = (0..100u8).collect();
        let mut grams: Vec<Vec<u8>> = c.split(&payload).expect("fits").map(<[u8]>::to_vec).collect();
        grams.reverse();
        grams.insert(1, grams[0].clone());
        let mut r = Reassembler::new(8, 1 << 20, Duration::from_secs(5));
        let now = Instant::now();
        let mut out = None;
        for g in &grams {
            if let Some(whole) = r.push(g, now).expect("valid chunk") {
                out = Some(whole);
            }
        }
        assert_eq!(out, Some(payload));
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn hostile_chunks_are_refused() {
        let mut r = Reassembler::new(1, 64, Duration::from_secs(5));
        let now = Instant::now();
        let head = |seq: u8, count: u8, id: u8| vec![0x1e, 0x0f, id, 0, 0, 0, 0, 0, 0, 0, seq, count, b'x'];
        assert_eq!(r.push(&[0x1e, 0x0f, 1], now), Err(ReassembleError::ShortHeader));
        assert_eq!(r.push(&head(0, 0, 1), now), Err(ReassembleError::BadCount(0)));
        assert_eq!(r.push(&head(0, 200, 1), now), Err(ReassembleError::BadCount(200)));
        assert_eq!(r.push(&head(3, 3, 1), now), Err(ReassembleError::BadSequence { seq: 3, count: 3 }));
        assert_eq!(r.push(&head(0, 2, 1), now), Ok(None));
        assert_eq!(r.push(&head(0, 2, 2), now), Err(ReassembleError::TooManyPending));
        assert_eq!(r.push(&head(1, 3, 1), now), Err(ReassembleError::CountMismatch));
        assert_eq!(r.push(&[b'{'; 65], now), Err(ReassembleError::TooLarge(64)));
    }

    #[test]
    fn incomplete_messages_expire() {
        let mut r = Reassembler::new(4, 1 << 20, Duration::from_secs(5));
        let t0 = Instant::now();
        let first = [0x1e, 0x0f, 9, 9, 9, 9, 9, 9, 9, 9, 0, 2, b'a'];
        assert_eq!(r.push(&first, t0), Ok(None));
        assert_eq!(r.expire(t0 + Duration::from_secs(1)), 0);
        assert_eq!(r.expire(t0 + Duration::from_secs(6)), 1);
        assert_eq!(r.pending(), 0);
        // A late chunk of a timed-out message does not complete it.
        let second = [0x1e, 0x0f, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, b'b'];
        assert_eq!(r.push(&first, t0), Ok(None));
        assert_eq!(r.push(&second, t0 + Duration::from_secs(6)), Ok(None));
        assert_eq!(r.pending(), 1);
    }
}
