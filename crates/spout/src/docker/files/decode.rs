//! A json-file log, read as the daemon writes it: one JSON object a line,
//! `{"log":"…","stream":"stdout"|"stderr","time":"<RFC 3339, ns>"}` (and `"attrs"` with some log
//! options), each entry ending at a known byte offset. The daemon writes through a buffer, so a
//! file can end in part of a line: only lines ending in `\n` are complete.
//!
//! Pure: bytes in, entries out, tested with input cut anywhere.

use std::borrow::Cow;

use serde::Deserialize;

use crate::message::Stream;
use crate::timestamp::parse_rfc3339_ns;

/// The longest line taken: an entry holds at most 16 KiB of output, which JSON escapes to at
/// most six times that. Anything longer is not the daemon's, and is skipped to its end.
pub const MAX_LINE: usize = 1 << 20;

/// One entry of the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub stream: Stream,
    pub ts_ns: i64,
    /// The output, with its `\n` when the daemon stored one (a piece of a longer line has none).
    pub log: Cow<'a, str>,
}

/// What a line of the file is.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// An entry, which ends `end` bytes into the file.
    Entry { entry: Entry<'a>, end: u64 },
    /// Bytes that are not an entry (a torn write, or not the daemon's), up to `end`.
    Garbage { bytes: usize, end: u64 },
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    stream: &'a str,
    time: &'a str,
}

/// Parses one complete line (without its `\n`).
pub fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let raw: Raw = serde_json::from_slice(line).ok()?;
    let stream = match raw.stream {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    Some(Entry { stream, ts_ns: parse_rfc3339_ns(raw.time.as_bytes())?, log: raw.log })
}

/// Cuts what is read of a file into lines, each with the offset where it ends; holds the
/// incomplete last line until the rest of it comes.
#[derive(Debug)]
pub struct Lines {
    /// Read bytes up to `end`; past it, room for the next read (zeroed once, when it grows).
    buf: Vec<u8>,
    /// Where in `buf` what is not yet taken starts.
    start: usize,
    /// Where in `buf` what was read ends.
    end: usize,
    /// The file offset of `buf[start]`.
    offset: u64,
    /// Inside a line longer than [`MAX_LINE`]: dropping it up to its newline.
    skipping: bool,
}

/// What is read from a file at once.
const CHUNK: usize = 64 * 1024;

impl Lines {
    /// Lines of a file read from `offset` on.
    pub fn new(offset: u64) -> Self {
        // Allocated at the first read: a file waiting behind the one being read costs nothing.
        Lines { buf: Vec::new(), start: 0, end: 0, offset, skipping: false }
    }

    /// The offset up to which the file has been cut into lines: where the incomplete line, if
    /// any, starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes read and held: the start of a line not yet complete.
    pub fn held(&self) -> usize {
        self.end - self.start
    }

    /// Room for the next read, after what is held: fill it, then [`Lines::filled`].
    pub fn space(&mut self) -> &mut [u8] {
        self.room(CHUNK);
        &mut self.buf[self.end..self.end + CHUNK]
    }

    /// `n` bytes of [`Lines::space`] were read.
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Takes `bytes` as read (for readers that hand out their own buffers: tests, gzip).
    pub fn push(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// What is held moved to the front, and at least `n` bytes of room after it. The room is
    /// zeroed only as the buffer grows: a read of a few bytes must not clear a whole chunk.
    fn room(&mut self, n: usize) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + n {
            self.buf.resize(self.end + n, 0);
        }
    }

    /// The next complete line's entry, or the garbage it is; `None` until a line is complete.
    pub fn next_line(&mut self) -> Option<Decoded<'_>> {
        let held = self.end - self.start;
        let Some(newline) = memchr(&self.buf[self.start..self.end]) else {
            if held > MAX_LINE {
                // Not a line of the daemon's: drop what is held, and the rest up to its end.
                self.take(held);
                self.skipping = true;
                return Some(Decoded::Garbage { bytes: held, end: self.offset });
            }
            return None;
        };
        let skipping = std::mem::replace(&mut self.skipping, false);
        let start = self.start;
        self.take(newline + 1);
        let end = self.offset;
        if skipping {
            return Some(Decoded::Garbage { bytes: newline + 1, end });
        }
        Some(match parse(&self.buf[start..start + newline]) {
            Some(entry) => Decoded::Entry { entry, end },
            None => Decoded::Garbage { bytes: newline + 1, end },
        })
    }

    fn take(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = concat!(
        r#"{"log":"hello\n","stream":"stdout","time":"2026-12-06T19:20:05.013890855Z"}"#,
        "\n",
        r#"{"log":"tab\there \"quoted\" \u00e9\n","stream":"stderr","time":"2026-12-06T19:20:05.1Z"}"#,
        "\n",
        r#"{"log":"no newline","stream":"stdout","attrs":{"tag":"x"},"time":"2026-12-06T19:20:06Z"}"#,
        "\n",
    );

    fn all(lines: &mut Lines) -> Vec<(Option<(Stream, String)>, u64)> {
        let mut out = Vec::new();
        while let Some(d) = lines.next_line() {
            out.push(match d {
                Decoded::Entry { entry, end } => (Some((entry.stream, entry.log.into_owned())), end),
                Decoded::Garbage { end, .. } => (None, end),
            });
        }
        out
    }

    #[test]
    fn entries_with_their_ends_whatever_the_reads() {
        let ends: Vec<u64> = LOG.match_indices('\n').map(|(i, _)| i as u64 + 1).collect();
        let expected = vec![
            (Some((Stream::Stdout, "hello\n".to_owned())), ends[0]),
            (Some((Stream::Stderr, "tab\there \"quoted\" é\n".to_owned())), ends[1]),
            (Some((Stream::Stdout, "no newline".to_owned())), ends[2]),
        ];
        let mut whole = Lines::new(0);
        whole.push(LOG.as_bytes());
        assert_eq!(all(&mut whole), expected);
        for size in 1..20 {
            let mut lines = Lines::new(0);
            let mut got = Vec::new();
            for piece in LOG.as_bytes().chunks(size) {
                let space = lines.space();
                space[..piece.len()].copy_from_slice(piece);
                lines.filled(piece.len());
                got.extend(all(&mut lines));
            }
            assert_eq!(got, expected, "read {size} bytes at a time");
            assert_eq!(lines.held(), 0);
        }
    }

    #[test]
    fn a_partial_last_line_waits_and_offsets_count_from_where_reading_began() {
        let mut lines = Lines::new(1000);
        let first = LOG.find('\n').expect("a line") + 1;
        lines.push(&LOG.as_bytes()[..first + 10]);
        assert_eq!(all(&mut lines).len(), 1);
        assert_eq!((lines.offset(), lines.held()), (1000 + first as u64, 10));
        lines.push(&LOG.as_bytes()[first + 10..]);
        assert_eq!(all(&mut lines).len(), 2);
        assert_eq!(lines.offset(), 1000 + LOG.len() as u64);
    }

    #[test]
    fn garbage_is_skipped_and_counted_and_an_endless_line_is_bounded() {
        let mut lines = Lines::new(0);
        lines.push(b"{\"log\":\"torn\n{not json}\n");
        lines.push(LOG.as_bytes());
        let got = all(&mut lines);
        assert_eq!(got.iter().filter(|(e, _)| e.is_none()).count(), 2);
        assert_eq!(got.iter().filter(|(e, _)| e.is_some()).count(), 3);
        let mut lines = Lines::new(0);
        let endless = vec![b'x'; CHUNK];
        for _ in 0..(MAX_LINE / CHUNK + 1) {
            lines.push(&endless);
            assert!(all(&mut lines).iter().all(|(e, _)| e.is_none()));
        }
        assert!(lines.held() <= MAX_LINE, "what is held stays bounded");
        lines.push(b"rest of it\n");
        lines.push(LOG.as_bytes());
        let got = all(&mut lines);
        assert_eq!(got.iter().filter(|(e, _)| e.is_some()).count(), 3, "the next lines are read: {got:?}");
    }

    #[test]
    fn a_wrong_stream_or_time_is_garbage() {
        assert!(parse(br#"{"log":"x\n","stream":"stdin","time":"2026-12-06T19:20:05Z"}"#).is_none());
        assert!(parse(br#"{"log":"x\n","stream":"stdout","time":"yesterday"}"#).is_none());
        assert!(parse(br#"{"log":"x\n","stream":"stdout"}"#).is_none());
        let e = parse(br#"{"log":"x\n","stream":"stdout","time":"2026-12-06T19:20:05.5Z"}"#).expect("valid");
        assert_eq!(e.ts_ns % 1_000_000_000, 500_000_000);
    }
}
