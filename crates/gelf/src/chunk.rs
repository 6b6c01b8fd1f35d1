//! GELF UDP chunking (magic 1e 0f, 8-byte message id, sequence number, count) and reassembly.

use std::collections::{HashMap, VecDeque};
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
    #[error("chunk is cut short: a header and no payload, or less")]
    ShortHeader,
    #[error("chunk count {0} is outside 1..=128")]
    BadCount(u8),
    #[error("chunk sequence number {seq} is not below its count {count}")]
    BadSequence { seq: u8, count: u8 },
    #[error("chunk count changed within one message")]
    CountMismatch,
    #[error("message would exceed {0} bytes")]
    TooLarge(usize),
}

impl ReassembleError {
    /// A short name for counting refusals by kind.
    pub fn reason(&self) -> &'static str {
        match self {
            ReassembleError::ShortHeader => "short_chunk",
            ReassembleError::BadCount(_) => "chunk_count",
            ReassembleError::BadSequence { .. } => "chunk_sequence",
            ReassembleError::CountMismatch => "chunk_count",
            ReassembleError::TooLarge(_) => "too_large",
        }
    }
}

struct Partial {
    first_seen: Instant,
    /// Tells this message from an earlier one with the same id, in `Reassembler::order`.
    generation: u64,
    parts: Vec<Option<Vec<u8>>>,
    received: usize,
    /// Payload bytes received.
    bytes: usize,
    /// Memory held, as counted against the cap: the payload and what keeping it costs.
    held: usize,
}

/// What keeping an incomplete message costs beyond its chunks' payload: its entry, and a slot
/// for each of its chunks (so that a flood of tiny chunks counts too).
fn message_cost(count: usize) -> usize {
    128 + count * std::mem::size_of::<Option<Vec<u8>>>()
}

/// What keeping one chunk costs beyond its payload.
const CHUNK_COST: usize = 32;

/// What keeping a message of the most chunks costs beyond its payload: a byte cap on pending
/// messages must leave this much room beside the largest message.
pub const MAX_MESSAGE_OVERHEAD: usize = 128 + MAX_CHUNKS * (std::mem::size_of::<Option<Vec<u8>>>() + CHUNK_COST);

/// Puts chunked GELF messages back together, within bounds: incomplete messages hold at most
/// `max_pending_bytes` (their chunks and what keeping them costs; past it the oldest are given
/// up, and counted), each message is at most `max_message` bytes, and complete within `timeout`
/// of its first chunk.
pub struct Reassembler {
    pending: HashMap<[u8; 8], Partial>,
    /// Pending messages, oldest first; entries of messages no longer pending are skipped (and
    /// swept out once they outnumber the live ones).
    order: VecDeque<([u8; 8], u64)>,
    generation: u64,
    pending_bytes: usize,
    max_pending_bytes: usize,
    max_message: usize,
    timeout: Duration,
    evicted: u64,
    expired: u64,
}

impl Reassembler {
    pub fn new(max_pending_bytes: usize, max_message: usize, timeout: Duration) -> Self {
        Self {
            pending: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
            pending_bytes: 0,
            max_pending_bytes,
            max_message,
            timeout,
            evicted: 0,
            expired: 0,
        }
    }

    /// Takes one datagram; returns a whole (possibly compressed) payload once one is complete.
    pub fn push(&mut self, datagram: &[u8], now: Instant) -> Result<Option<Vec<u8>>, ReassembleError> {
        if !datagram.starts_with(&CHUNK_MAGIC) {
            if datagram.len() > self.max_message {
                return Err(ReassembleError::TooLarge(self.max_message));
            }
            return Ok(Some(datagram.to_vec()));
        }
        if datagram.len() <= CHUNK_HEADER_LEN {
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
        self.expire(now);
        let body = &datagram[CHUNK_HEADER_LEN..];
        if let Some(partial) = self.pending.get(&id) {
            if partial.parts.len() != usize::from(count) {
                self.forget(&id);
                return Err(ReassembleError::CountMismatch);
            }
            if partial.parts[usize::from(seq)].is_some() {
                // A duplicate: the first copy stands.
                return Ok(None);
            }
            if partial.bytes + body.len() > self.max_message {
                self.forget(&id);
                return Err(ReassembleError::TooLarge(self.max_message));
            }
        } else if body.len() > self.max_message {
            return Err(ReassembleError::TooLarge(self.max_message));
        } else {
            self.generation += 1;
            let cost = message_cost(usize::from(count));
            let partial = Partial {
                first_seen: now,
                generation: self.generation,
                parts: vec![None; usize::from(count)],
                received: 0,
                bytes: 0,
                held: cost,
            };
            self.pending.insert(id, partial);
            self.order.push_back((id, self.generation));
            self.pending_bytes += cost;
        }
        let cost = body.len() + CHUNK_COST;
        self.make_room(cost, &id);
        if self.pending_bytes + cost > self.max_pending_bytes {
            // Alone, and still too big for the cap.
            self.forget(&id);
            return Err(ReassembleError::TooLarge(self.max_pending_bytes));
        }
        let Some(partial) = self.pending.get_mut(&id) else { return Ok(None) };
        partial.parts[usize::from(seq)] = Some(body.to_vec());
        partial.received += 1;
        partial.bytes += body.len();
        partial.held += cost;
        self.pending_bytes += cost;
        if partial.received < partial.parts.len() {
            return Ok(None);
        }
        let Some(done) = self.forget(&id) else { return Ok(None) };
        let mut whole = Vec::with_capacity(done.bytes);
        for part in done.parts.into_iter().flatten() {
            whole.extend_from_slice(&part);
        }
        Ok(Some(whole))
    }

    /// Gives up the oldest incomplete messages other than `keep` until `more` bytes fit.
    fn make_room(&mut self, more: usize, keep: &[u8; 8]) {
        while self.pending_bytes + more > self.max_pending_bytes {
            let Some(oldest) = self.oldest_other_than(keep) else { return };
            self.forget(&oldest);
            self.evicted += 1;
        }
    }

    fn oldest_other_than(&mut self, keep: &[u8; 8]) -> Option<[u8; 8]> {
        let live = |pending: &HashMap<[u8; 8], Partial>, (id, generation): &([u8; 8], u64)| {
            pending.get(id).is_some_and(|p| p.generation == *generation)
        };
        while let Some(front) = self.order.front() {
            if live(&self.pending, front) {
                break;
            }
            self.order.pop_front();
        }
        self.order.iter().find(|entry| &entry.0 != keep && live(&self.pending, entry)).map(|entry| entry.0)
    }

    /// Drops message `id`'s chunks, returning them.
    fn forget(&mut self, id: &[u8; 8]) -> Option<Partial> {
        let partial = self.pending.remove(id)?;
        self.pending_bytes -= partial.held;
        if self.order.len() > 2 * self.pending.len() + 64 {
            let pending = &self.pending;
            self.order.retain(|(id, generation)| pending.get(id).is_some_and(|p| p.generation == *generation));
        }
        Some(partial)
    }

    /// Forgets messages whose chunks did not all arrive in time; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        while let Some(&(id, generation)) = self.order.front() {
            let live = self.pending.get(&id).filter(|p| p.generation == generation);
            if live.is_some_and(|p| now.saturating_duration_since(p.first_seen) < self.timeout) {
                break;
            }
            // Off the order first: forgetting may sweep it, and must not take another entry.
            self.order.pop_front();
            if live.is_some() {
                self.forget(&id);
                expired += 1;
            }
        }
        self.expired += expired as u64;
        expired
    }

    /// Incomplete messages held.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes held by incomplete messages' chunks.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Incomplete messages given up so far to keep within the byte cap.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Incomplete messages given up so far because their time ran out.
    pub fn expired(&self) -> u64 {
        self.expired
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
        let mut r = Reassembler::new(1 << 20, 1 << 20, Duration::from_secs(5));
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
        let mut r = Reassembler::new(1 << 20, 64, Duration::from_secs(5));
        let now = Instant::now();
        let head = |seq: u8, count: u8, id: u8| vec![0x1e, 0x0f, id, 0, 0, 0, 0, 0, 0, 0, seq, count, b'x'];
        assert_eq!(r.push(&[0x1e, 0x0f, 1], now), Err(ReassembleError::ShortHeader));
        assert_eq!(r.push(&head(0, 0, 1), now), Err(ReassembleError::BadCount(0)));
        assert_eq!(r.push(&head(0, 200, 1), now), Err(ReassembleError::BadCount(200)));
        assert_eq!(r.push(&head(3, 3, 1), now), Err(ReassembleError::BadSequence { seq: 3, count: 3 }));
        assert_eq!(r.push(&head(0, 2, 1), now), Ok(None));
        assert_eq!(r.push(&head(1, 3, 1), now), Err(ReassembleError::CountMismatch));
        assert_eq!(r.pending(), 0, "a message whose count changed is given up");
        assert_eq!(r.push(&[b'{'; 65], now), Err(ReassembleError::TooLarge(64)));
        let mut big = head(0, 2, 3);
        big.extend([b'x'; 64]);
        assert_eq!(r.push(&big, now), Err(ReassembleError::TooLarge(64)));
    }

    #[test]
    fn the_oldest_incomplete_messages_make_room_for_new_ones_within_the_byte_cap() {
        // Room for three messages of a chunk of 100 bytes (and what keeping each costs).
        let one = message_cost(2) + 100 + CHUNK_COST;
        let mut r = Reassembler::new(3 * one, 1 << 20, Duration::from_secs(5));
        let now = Instant::now();
        let chunk = |id: u8, seq: u8| [&[0x1e, 0x0f, id, 0, 0, 0, 0, 0, 0, 0, seq, 2][..], &[b'x'; 100]].concat();
        for id in 1..=3 {
            assert_eq!(r.push(&chunk(id, 0), now), Ok(None));
        }
        assert_eq!((r.pending(), r.pending_bytes(), r.evicted()), (3, 3 * one, 0));
        // A fourth message pushes out the first, the oldest.
        assert_eq!(r.push(&chunk(4, 0), now), Ok(None));
        assert_eq!((r.pending(), r.pending_bytes(), r.evicted()), (3, 3 * one, 1));
        assert_eq!(r.push(&chunk(1, 1), now), Ok(None), "message 1 was given up: its second chunk starts it over");
        assert_eq!(r.evicted(), 2, "which pushed out message 2");
        // Message 3 is whole with its second chunk, evicting 4 to make room for it first.
        assert_eq!(r.push(&chunk(3, 1), now).expect("valid").map(|w| w.len()), Some(200));
        assert!(r.pending_bytes() <= 3 * one);
        // Thousands of never-completed messages stay within the cap.
        for n in 0..5000u32 {
            let mut c = chunk(0, 0);
            c[2..6].copy_from_slice(&n.to_be_bytes());
            c[6] = 9;
            assert_eq!(r.push(&c, now), Ok(None));
            assert!(r.pending_bytes() <= 3 * one);
        }
        assert!(r.order.len() <= 2 * r.pending() + 65, "the order of arrival stays bounded too: {}", r.order.len());
    }

    #[test]
    fn a_message_too_big_for_the_pending_cap_even_alone_is_refused() {
        let mut r = Reassembler::new(message_cost(2) + 100, 1 << 20, Duration::from_secs(5));
        let now = Instant::now();
        let chunk = [&[0x1e, 0x0f, 7, 0, 0, 0, 0, 0, 0, 0, 0, 2][..], &[b'x'; 100]].concat();
        assert_eq!(r.push(&chunk, now), Err(ReassembleError::TooLarge(message_cost(2) + 100)));
        assert_eq!((r.pending(), r.pending_bytes()), (0, 0));
    }

    #[test]
    fn tiny_chunks_of_many_chunk_messages_are_counted_at_what_keeping_them_costs() {
        let mut r = Reassembler::new(1 << 20, 1 << 20, Duration::from_secs(5));
        let now = Instant::now();
        assert_eq!(r.push(&[0x1e, 0x0f, 1, 0, 0, 0, 0, 0, 0, 0, 0, 128], now), Err(ReassembleError::ShortHeader));
        for n in 0..100_000u32 {
            let mut c = vec![0x1e, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, b'x'];
            c[2..6].copy_from_slice(&n.to_be_bytes());
            assert_eq!(r.push(&c, now), Ok(None));
        }
        assert!(r.pending_bytes() <= 1 << 20);
        assert!(r.pending() < 400, "each holds a slot for 128 chunks: {} kept", r.pending());
    }

    #[test]
    fn messages_completed_between_others_leave_the_rest_to_expire_and_be_counted() {
        let mut r = Reassembler::new(1 << 20, 1 << 20, Duration::from_secs(5));
        let t0 = Instant::now();
        let chunk = |id: u32, seq: u8| {
            let mut c = vec![0x1e, 0x0f, 0, 0, 0, 0, 0, 0, 0, 0, seq, 2, b'x'];
            c[2..6].copy_from_slice(&id.to_be_bytes());
            c
        };
        // Two left incomplete, then enough completed to make the order of arrival sweep itself.
        assert_eq!(r.push(&chunk(1, 0), t0), Ok(None));
        assert_eq!(r.push(&chunk(2, 0), t0), Ok(None));
        for id in 10..75 {
            assert_eq!(r.push(&chunk(id, 0), t0), Ok(None));
            assert!(r.push(&chunk(id, 1), t0).expect("valid").is_some());
        }
        // Once one of the two is forgotten, the order (67 entries) outnumbers 2 × 1 + 64: forgetting
        // at expiry sweeps it, which once took the other's entry too.
        assert_eq!((r.order.len(), r.pending()), (67, 2));
        assert_eq!(r.expire(t0 + Duration::from_secs(6)), 2, "both incomplete ones expire");
        assert_eq!((r.pending(), r.pending_bytes()), (0, 0));
    }

    #[test]
    fn incomplete_messages_expire() {
        let mut r = Reassembler::new(1 << 20, 1 << 20, Duration::from_secs(5));
        let t0 = Instant::now();
        let first = [0x1e, 0x0f, 9, 9, 9, 9, 9, 9, 9, 9, 0, 2, b'a'];
        assert_eq!(r.push(&first, t0), Ok(None));
        assert_eq!(r.expire(t0 + Duration::from_secs(1)), 0);
        assert_eq!(r.expire(t0 + Duration::from_secs(6)), 1);
        assert_eq!((r.pending(), r.pending_bytes(), r.expired()), (0, 0, 1));
        // A late chunk of a timed-out message does not complete it.
        let second = [0x1e, 0x0f, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, b'b'];
        assert_eq!(r.push(&first, t0), Ok(None));
        assert_eq!(r.push(&second, t0 + Duration::from_secs(6)), Ok(None));
        assert_eq!(r.pending(), 1);
    }
}
