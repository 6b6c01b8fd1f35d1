//! The two wire formats of the logs endpoint, cut back into log entries: pure state machines fed
//! whatever pieces the connection delivers.
//!
//! An ordinary container's log comes multiplexed: each entry is a frame, an 8-byte header (the
//! stream: 1 stdout, 2 stderr; three zero bytes; the payload's length, big-endian) and the payload
//! `TIMESTAMP SP BYTES`. A TTY container's log is raw: entries follow each other with nothing but
//! their timestamps to tell where one ends. Neither holds more than one entry (about 16 KiB) at
//! a time, however long a line the container writes without a newline.

use crate::line::PIECE_SIZE;
use crate::message::Stream;
use crate::timestamp::parse_rfc3339_ns;

/// A timestamp, up to 9 fraction digits and a `+HH:MM` offset, is at most this long.
const MAX_TIMESTAMP_LEN: usize = 35;

/// Splits one entry into its timestamp and bytes.
pub fn split_timestamp(frame: &[u8]) -> Option<(i64, &[u8])> {
    let space = frame.iter().take(MAX_TIMESTAMP_LEN + 1).position(|&b| b == b' ')?;
    let ts = parse_rfc3339_ns(&frame[..space])?;
    Some((ts, &frame[space + 1..]))
}

/// What [`TtySplitter::next_entry`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum TtyEntry<'a> {
    Entry {
        ts_ns: i64,
        bytes: &'a [u8],
    },
    /// Bytes that did not start with a timestamp, skipped up to the next newline.
    Garbage(usize),
}

/// A TTY container's log stream is raw: entries follow each other with no framing but their
/// timestamps. This cuts it back into entries: up to and including the first `\n`, or exactly
/// [`PIECE_SIZE`] bytes when no `\n` comes that soon.
#[derive(Debug, Default)]
pub struct TtySplitter {
    buf: Vec<u8>,
    start: usize,
}

impl TtySplitter {
    pub fn push(&mut self, bytes: &[u8]) {
        compact(&mut self.buf, &mut self.start);
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held back, waiting for the rest of their entry.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole entry. At the end of the stream (`eof`), what is left is the last entry.
    /// `not_after_ns` is now, give or take: no entry is stamped later.
    pub fn next_entry(&mut self, eof: bool, not_after_ns: i64) -> Option<TtyEntry<'_>> {
        let rest = &self.buf[self.start..];
        if rest.is_empty() {
            return None;
        }
        let Some((ts_ns, body)) = split_timestamp(rest) else {
            if rest.len() <= MAX_TIMESTAMP_LEN && !eof && !rest.contains(&b'\n') {
                return None; // a timestamp still arriving
            }
            let skip = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
            self.start += skip;
            return Some(TtyEntry::Garbage(skip));
        };
        let header = rest.len() - body.len();
        let window = &body[..body.len().min(PIECE_SIZE)];
        let len = match window.iter().position(|&b| b == b'\n') {
            Some(nl) => nl + 1,
            None if body.len() >= PIECE_SIZE => PIECE_SIZE,
            None if eof => body.len(),
            None => return None,
        };
        // An unterminated last entry of one run is followed straight away by the next run's
        // first entry; if this entry holds what looks like the next one, cut it there.
        let len = next_entry_within(&body[..len], ts_ns, not_after_ns).unwrap_or(len);
        let start = self.start + header;
        self.start = start + len;
        Some(TtyEntry::Entry { ts_ns, bytes: &self.buf[start..start + len] })
    }
}

/// Where, within an entry, the next one seems to begin: a timestamp in exactly the daemon's
/// format (nine fraction digits, `Z`, then a space), no earlier than this entry's and not in the
/// future. Only an unterminated entry (the last output of one run, followed by the next run's
/// first entry) can run into the next one; an application's own ISO timestamps have other
/// shapes, and a time from the future cannot be a later run.
fn next_entry_within(entry: &[u8], ts_ns: i64, not_after_ns: i64) -> Option<usize> {
    const DOCKER_TS: &[u8] = b"2006-01-02T15:04:05.000000000Z ";
    let body = entry.strip_suffix(b"\n").unwrap_or(entry);
    let shaped = |c: &[u8]| {
        c.iter()
            .zip(DOCKER_TS)
            .all(|(&b, &pattern)| if pattern.is_ascii_digit() { b.is_ascii_digit() } else { b == pattern })
    };
    (1..body.len().saturating_sub(DOCKER_TS.len())).find(|&i| {
        let candidate = &body[i..i + DOCKER_TS.len()];
        body[i + 10] == b'T'
            && shaped(candidate)
            && parse_rfc3339_ns(&candidate[..DOCKER_TS.len() - 1]).is_some_and(|t| (ts_ns..=not_after_ns).contains(&t))
    })
}

/// Largest frame payload taken: the daemon's are a timestamp and one 16 KiB piece at most. A
/// larger one (never seen from Docker) is skipped and counted, not buffered.
const MAX_FRAME: usize = 64 * 1024;

/// Bytes kept before already-consumed ones are dropped from the front of a buffer.
const COMPACT_AT: usize = 64 * 1024;

/// What a decoder found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    Entry {
        stream: Stream,
        ts_ns: i64,
        bytes: &'a [u8],
    },
    /// Bytes that were not an entry (no timestamp, a bad or oversized frame), skipped.
    Garbage(usize),
}

/// Cuts a multiplexed stream into frames.
#[derive(Debug, Default)]
pub struct Demux {
    buf: Vec<u8>,
    start: usize,
    /// Payload bytes of an oversized frame still to be skipped.
    skip: usize,
}

impl Demux {
    pub fn push(&mut self, bytes: &[u8]) {
        compact(&mut self.buf, &mut self.start);
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, or garbage skipped; `None` until more bytes come. At the end of the
    /// stream (`eof`) a frame cut off is garbage.
    pub fn next_frame(&mut self, eof: bool) -> Option<Decoded<'_>> {
        let rest = &self.buf[self.start..];
        if self.skip > 0 {
            let n = self.skip.min(rest.len());
            self.skip -= n;
            self.start += n;
            return (n > 0).then_some(Decoded::Garbage(n));
        }
        let Some(header) = rest.get(..8) else { return cut_off(&mut self.start, self.buf.len(), eof) };
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let stream = match header[..4] {
            [1, 0, 0, 0] => Stream::Stdout,
            [2, 0, 0, 0] => Stream::Stderr,
            _ => {
                // Not a frame header: the stream cannot be followed any further. Drop what is
                // buffered; whatever follows is garbage too, unless it happens to realign.
                let n = rest.len();
                self.start += n;
                return Some(Decoded::Garbage(n));
            }
        };
        if len > MAX_FRAME {
            self.start += 8;
            self.skip = len;
            return Some(Decoded::Garbage(8));
        }
        let Some(payload) = rest.get(8..8 + len) else { return cut_off(&mut self.start, self.buf.len(), eof) };
        self.start += 8 + len;
        Some(match split_timestamp(payload) {
            Some((ts_ns, bytes)) => Decoded::Entry { stream, ts_ns, bytes },
            None => Decoded::Garbage(len),
        })
    }

    /// Bytes held back, waiting for the rest of their frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// A frame not whole yet, from `start` to `end`: more may come, unless the stream has ended and
/// the rest is garbage.
fn cut_off<'a>(start: &mut usize, end: usize, eof: bool) -> Option<Decoded<'a>> {
    let n = end - *start;
    if !eof || n == 0 {
        return None;
    }
    *start = end;
    Some(Decoded::Garbage(n))
}

/// Drops consumed bytes from the front of `buf`, cheaply when all of it was consumed.
fn compact(buf: &mut Vec<u8>, start: &mut usize) {
    if *start == buf.len() {
        buf.clear();
        *start = 0;
    } else if *start > COMPACT_AT {
        buf.drain(..*start);
        *start = 0;
    }
}

/// A log stream of either kind.
#[derive(Debug)]
pub enum Decoder {
    Multiplexed(Demux),
    Raw(TtySplitter),
}

impl Decoder {
    /// The decoder for a TTY container's stream, or an ordinary one's.
    pub fn new(tty: bool) -> Self {
        if tty {
            Decoder::Raw(TtySplitter::default())
        } else {
            Decoder::Multiplexed(Demux::default())
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        match self {
            Decoder::Multiplexed(d) => d.push(bytes),
            Decoder::Raw(t) => t.push(bytes),
        }
    }

    /// The next entry. At the end of the stream (`eof`), a raw stream's last bytes are its last
    /// entry, and a multiplexed stream's incomplete frame is garbage. `not_after_ns` is now, give
    /// or take: no entry is stamped later.
    pub fn next_entry(&mut self, eof: bool, not_after_ns: i64) -> Option<Decoded<'_>> {
        match self {
            Decoder::Multiplexed(d) => d.next_frame(eof),
            Decoder::Raw(t) => match t.next_entry(eof, not_after_ns)? {
                TtyEntry::Entry { ts_ns, bytes } => Some(Decoded::Entry { stream: Stream::Stdout, ts_ns, bytes }),
                TtyEntry::Garbage(n) => Some(Decoded::Garbage(n)),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::line::tests::{push, texts};
    use crate::line::Assembler;

    const TS: &str = "2026-11-29T20:30:25.804920384Z";
    const TS_NS: i64 = 1_795_984_225_804_920_384;

    #[test]
    fn splits_the_timestamp_off_a_frame() {
        assert_eq!(split_timestamp(format!("{TS} hello world\n").as_bytes()), Some((TS_NS, &b"hello world\n"[..])));
        assert_eq!(split_timestamp(format!("{TS} ").as_bytes()), Some((TS_NS, &b""[..])));
        assert_eq!(split_timestamp(b"hello world"), None);
        assert_eq!(split_timestamp(b""), None);
    }

    fn entries(s: &mut TtySplitter, eof: bool) -> Vec<(i64, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some(e) = s.next_entry(eof, i64::MAX) {
            match e {
                TtyEntry::Entry { ts_ns, bytes } => v.push((ts_ns, bytes.to_vec())),
                TtyEntry::Garbage(n) => v.push((-1, vec![b'?'; n])),
            }
        }
        v
    }

    #[test]
    fn tty_stream_is_cut_into_entries_across_fragments() {
        let ts2 = "2026-11-29T20:30:26.000000001Z";
        let stream = format!("{TS} first\r\n{ts2} second\r\n{ts2} tail");
        // Fed one byte at a time, the result is the same as all at once.
        let mut s = TtySplitter::default();
        let mut got = Vec::new();
        for b in stream.as_bytes() {
            s.push(std::slice::from_ref(b));
            got.extend(entries(&mut s, false));
        }
        got.extend(entries(&mut s, true));
        let ns2 = TS_NS + 195_079_617;
        assert_eq!(got, vec![(TS_NS, b"first\r\n".to_vec()), (ns2, b"second\r\n".to_vec()), (ns2, b"tail".to_vec())]);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn tty_pieces_are_exactly_16k() {
        let body = "b".repeat(40_000);
        let stream = format!(
            "{TS} {}{TS} {}{TS} {}\r\n",
            &body[..PIECE_SIZE],
            &body[PIECE_SIZE..2 * PIECE_SIZE],
            &body[2 * PIECE_SIZE..]
        );
        let mut s = TtySplitter::default();
        s.push(stream.as_bytes());
        let got = entries(&mut s, false);
        assert_eq!(
            got.iter().map(|e| e.1.len()).collect::<Vec<_>>(),
            vec![PIECE_SIZE, PIECE_SIZE, 40_000 - 2 * PIECE_SIZE + 2]
        );
        let mut a = Assembler::new(true, 1 << 20);
        let mut out = Vec::new();
        for (ts, bytes) in &got {
            push(&mut a, Stream::Stdout, *ts, bytes, &mut out);
        }
        assert_eq!(texts(&out), vec![body.as_str()]);
    }

    #[test]
    fn tty_unterminated_entry_followed_by_a_restart() {
        let ts2 = "2026-11-29T20:31:00.000000000Z";
        let stream = format!("{TS} prompt> {ts2} restarted\r\n");
        let mut s = TtySplitter::default();
        s.push(stream.as_bytes());
        let got = entries(&mut s, false);
        assert_eq!(got.iter().map(|e| e.1.as_slice()).collect::<Vec<_>>(), vec![&b"prompt> "[..], b"restarted\r\n"]);
    }

    #[test]
    fn tty_lines_quoting_timestamps_stay_whole() {
        let iso = format!("{TS} token expires 2026-11-30T20:30:25.123456+00:00 user=x\r\n");
        let docker_format_in_the_future = format!("{TS} until 2099-01-01T00:00:00.000000000Z now\r\n");
        for line in [iso, docker_format_in_the_future] {
            let mut s = TtySplitter::default();
            s.push(line.as_bytes());
            let mut got = Vec::new();
            while let Some(e) = s.next_entry(false, TS_NS + 1_000_000_000) {
                got.push(format!("{e:?}"));
            }
            assert_eq!(got.len(), 1, "{line}: {got:?}");
        }
    }

    #[test]
    fn tty_garbage_is_skipped_to_the_next_line() {
        let mut s = TtySplitter::default();
        s.push(format!("not a timestamp\n{TS} ok\n").as_bytes());
        let got = entries(&mut s, false);
        assert_eq!(got, vec![(-1, vec![b'?'; 16]), (TS_NS, b"ok\n".to_vec())]);
    }

    /// One multiplexed frame.
    pub(crate) fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn decoded(d: &mut Decoder, eof: bool) -> Vec<(i64, Vec<u8>)> {
        let mut v = Vec::new();
        while let Some(e) = d.next_entry(eof, i64::MAX) {
            match e {
                Decoded::Entry { stream, ts_ns, bytes } => {
                    let mut b = bytes.to_vec();
                    b.insert(0, if stream == Stream::Stdout { b'o' } else { b'e' });
                    v.push((ts_ns, b));
                }
                Decoded::Garbage(n) => v.push((-1, vec![b'?'; n])),
            }
        }
        v
    }

    #[test]
    fn multiplexed_frames_are_cut_out_across_any_fragmentation() {
        let mut stream = frame(1, format!("{TS} out\n").as_bytes());
        stream.extend(frame(2, format!("{TS} err\n").as_bytes()));
        stream.extend(frame(1, format!("{TS} ").as_bytes()));
        let want = vec![(TS_NS, b"oout\n".to_vec()), (TS_NS, b"eerr\n".to_vec()), (TS_NS, b"o".to_vec())];
        for size in [1, 2, 7, 8, 9, 30, stream.len()] {
            let mut d = Decoder::new(false);
            let mut got = Vec::new();
            for piece in stream.chunks(size) {
                d.push(piece);
                got.extend(decoded(&mut d, false));
            }
            got.extend(decoded(&mut d, true));
            assert_eq!(got, want, "pieces of {size} bytes");
        }
    }

    #[test]
    fn bad_frames_are_counted_and_skipped_without_buffering_them() {
        let mut d = Decoder::new(false);
        // A frame without a timestamp, then one claiming 100 MB: its header is skipped, and
        // then its payload as it comes, never held.
        d.push(&frame(1, b"no timestamp\n"));
        let mut huge = vec![1, 0, 0, 0];
        huge.extend_from_slice(&100_000_000u32.to_be_bytes());
        d.push(&huge);
        assert_eq!(decoded(&mut d, false), vec![(-1, vec![b'?'; 13]), (-1, vec![b'?'; 8])]);
        d.push(&[b'x'; 70_000]);
        assert_eq!(decoded(&mut d, false), vec![(-1, vec![b'?'; 70_000])]);
        if let Decoder::Multiplexed(m) = &d {
            assert_eq!(m.buffered(), 0);
        }
        // Not a frame header at all: what is buffered is dropped.
        let mut d = Decoder::new(false);
        d.push(b"HTTP/1.1 garbage");
        assert_eq!(decoded(&mut d, false), vec![(-1, vec![b'?'; 16])]);
        // A frame cut off by the end of the stream.
        let mut d = Decoder::new(false);
        d.push(&frame(1, format!("{TS} whole\n").as_bytes())[..20]);
        assert_eq!(decoded(&mut d, false), vec![]);
        assert_eq!(decoded(&mut d, true), vec![(-1, vec![b'?'; 20])]);
    }

    #[test]
    fn a_tty_stream_without_newlines_comes_out_in_pieces_and_holds_one() {
        // 1 MB without a newline, as the daemon stores it: 16 KiB pieces sharing one timestamp.
        let piece = "z".repeat(PIECE_SIZE);
        let mut d = Decoder::new(true);
        let mut pieces = 0;
        for _ in 0..64 {
            d.push(format!("{TS} {piece}").as_bytes());
            for (ts, bytes) in decoded(&mut d, false) {
                assert_eq!((ts, bytes.len()), (TS_NS, 1 + PIECE_SIZE), "the stream's mark and one piece");
                pieces += 1;
            }
            if let Decoder::Raw(t) = &d {
                assert!(t.buffered() <= PIECE_SIZE + TS.len() + 1);
            }
        }
        assert_eq!(pieces, 64);
    }
}
