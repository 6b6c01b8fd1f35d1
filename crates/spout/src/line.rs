//! From log entries to whole lines: split pieces merged, terminators stripped, text made valid
//! UTF-8, and the daemon's re-sends spotted. ([`crate::docker::frames`] cuts the stream into entries.)
//!
//! The daemon writes every log entry as `TIMESTAMP SP BYTES`. A line longer than 16 KiB is stored
//! as several entries of exactly 16 KiB, all with the line's timestamp and only the last ending
//! in `\n`; an entry without `\n` is therefore a piece of a longer line, or the unterminated last
//! output of a stopped container.

use std::collections::VecDeque;

use crate::fnv::fnv1a;
use crate::message::Stream;
use crate::position::Position;

/// Largest entry the daemon writes without a newline, and so the size of every non-final piece.
pub const PIECE_SIZE: usize = 16 * 1024;

/// Spots the daemon sending entries again. When a json-file log rotates under a follow stream,
/// Docker 20.10 sends entries again: the last line before the rotation, or, under load, every line
/// from the start of the current file (seen: 71 lines). A stream is stamped in order, each line on
/// its own, so a re-send shows as a complete entry that is stamped no later than the latest one and
/// equals one of the recent ones; from there the re-send runs until an entry is stamped later than
/// anything seen. Entries that go back in time but match nothing recent (the clock was set back)
/// are kept: a missed re-send costs duplicates, a false match would cost lines.
#[derive(Debug, Default)]
pub struct Repeats {
    recent: [VecDeque<(i64, u64)>; 2],
    latest: [i64; 2],
    replaying: [bool; 2],
}

/// How many complete entries per stream a re-send is recognised by (16 bytes each).
const REPEAT_WINDOW: usize = 256;

impl Repeats {
    /// True when this entry is part of a re-send (and should be skipped).
    pub fn is_repeat(&mut self, stream: Stream, ts_ns: i64, bytes: &[u8]) -> bool {
        let slot = stream as usize;
        if ts_ns > self.latest[slot] {
            self.replaying[slot] = false;
        } else if self.replaying[slot] {
            return true;
        }
        if !bytes.ends_with(b"\n") {
            self.latest[slot] = self.latest[slot].max(ts_ns);
            return false;
        }
        let key = (ts_ns, fnv1a(bytes));
        let recent = &mut self.recent[slot];
        if ts_ns <= self.latest[slot] && recent.contains(&key) {
            self.replaying[slot] = true;
            return true;
        }
        self.latest[slot] = self.latest[slot].max(ts_ns);
        if recent.len() == REPEAT_WINDOW {
            recent.pop_front();
        }
        recent.push_back(key);
        false
    }
}

/// A whole line, ready to become a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stream: Stream,
    pub ts_ns: i64,
    pub text: String,
    pub truncated: bool,
    /// Where reading must start again to reproduce this line and everything after it: the end of
    /// its last piece, or, while another line is still being merged, the start of that one.
    pub resume: Position,
}

/// Where an entry sits in the log: the reader's position before and after consuming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub before: Position,
    pub after: Position,
}

#[derive(Debug)]
struct Pending {
    ts_ns: i64,
    bytes: Vec<u8>,
    truncated: bool,
    /// The position before its first piece, and which pending line started first.
    before: Position,
    started: u64,
}

/// Merges pieces of split lines, per stream, into lines of at most `max_line` bytes.
#[derive(Debug)]
pub struct Assembler {
    tty: bool,
    max_line: usize,
    pending: [Option<Pending>; 2],
    started: u64,
    /// Empty lines seen and skipped.
    pub empty_lines: u64,
}

impl Assembler {
    pub fn new(tty: bool, max_line: usize) -> Self {
        Self { tty, max_line, pending: [None, None], started: 0, empty_lines: 0 }
    }

    /// Whether the lines come from a TTY container.
    pub fn tty(&self) -> bool {
        self.tty
    }

    /// Takes one entry and appends the lines it completes to `out`.
    pub fn push(&mut self, stream: Stream, ts_ns: i64, bytes: &[u8], span: Span, out: &mut Vec<Line>) {
        let first_new = out.len();
        // Pieces of one line share its timestamp: a piece with another timestamp starts a new
        // line, and the unterminated one before it is complete as it is. That one does not
        // include this entry, so it resumes before it.
        let slot = stream as usize;
        if self.pending[slot].as_ref().is_some_and(|p| p.ts_ns != ts_ns) {
            self.flush_slot(stream, out);
        }
        let flushed = out.len();
        self.push_entry(stream, ts_ns, bytes, span.before, out);
        // Lines completed now resume after this entry, unless a line still being merged started
        // earlier: the checkpoint must not pass its first piece.
        let held = self.held_from();
        for line in &mut out[first_new..flushed] {
            line.resume = held.unwrap_or(span.before);
        }
        for line in &mut out[flushed..] {
            line.resume = held.unwrap_or(span.after);
        }
    }

    /// The timestamp of the oldest line still being merged: its remaining pieces carry it, so a
    /// reopened stream must not start after it.
    pub fn held_since_ts(&self) -> Option<i64> {
        self.pending.iter().flatten().map(|p| p.ts_ns).min()
    }

    /// The position before the first piece of the oldest line still being merged.
    pub fn held_from(&self) -> Option<Position> {
        self.pending.iter().flatten().min_by_key(|p| p.started).map(|p| p.before)
    }

    fn push_entry(&mut self, stream: Stream, ts_ns: i64, bytes: &[u8], before: Position, out: &mut Vec<Line>) {
        let slot = stream as usize;
        let (body, complete) = match bytes.strip_suffix(b"\n") {
            Some(body) if self.tty => (body.strip_suffix(b"\r").unwrap_or(body), true),
            Some(body) => (body, true),
            None => (bytes, false),
        };
        match (&mut self.pending[slot], complete) {
            (None, true) => {
                let (text, truncated) = self.cut(body);
                self.emit(stream, ts_ns, text, truncated, out);
            }
            (pending, _) => {
                let started = &mut self.started;
                let p = pending.get_or_insert_with(|| {
                    *started += 1;
                    Pending { ts_ns, bytes: Vec::new(), truncated: false, before, started: *started }
                });
                let room = self.max_line.saturating_sub(p.bytes.len());
                p.bytes.extend_from_slice(&body[..body.len().min(room)]);
                p.truncated |= body.len() > room;
                if complete {
                    self.flush_slot(stream, out);
                }
            }
        }
    }

    /// Ships unterminated lines: the log has ended at `end`, nothing more will complete them.
    pub fn flush(&mut self, end: Position, out: &mut Vec<Line>) {
        let first_new = out.len();
        self.flush_slot(Stream::Stdout, out);
        self.flush_slot(Stream::Stderr, out);
        for line in &mut out[first_new..] {
            line.resume = end;
        }
    }

    fn flush_slot(&mut self, stream: Stream, out: &mut Vec<Line>) {
        if let Some(p) = self.pending[stream as usize].take() {
            let bytes = if self.tty { p.bytes.strip_suffix(b"\r").unwrap_or(&p.bytes) } else { &p.bytes };
            let text = String::from_utf8_lossy(bytes).into_owned();
            self.emit(stream, p.ts_ns, text, p.truncated, out);
        }
    }

    fn cut(&self, body: &[u8]) -> (String, bool) {
        let truncated = body.len() > self.max_line;
        (String::from_utf8_lossy(&body[..body.len().min(self.max_line)]).into_owned(), truncated)
    }

    fn emit(&mut self, stream: Stream, ts_ns: i64, text: String, truncated: bool, out: &mut Vec<Line>) {
        if text.is_empty() {
            self.empty_lines += 1;
            return;
        }
        // `resume` is set by the caller, who knows what is still held.
        out.push(Line { stream, ts_ns, text, truncated, resume: Position::START });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Pushes an entry whose position is its time.
    pub(crate) fn push(a: &mut Assembler, stream: Stream, ts_ns: i64, bytes: &[u8], out: &mut Vec<Line>) {
        let here = Position::from_time(ts_ns);
        a.push(stream, ts_ns, bytes, Span { before: here, after: here }, out);
    }

    pub(crate) fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn strips_newline_only_and_skips_empty_lines() {
        let mut a = Assembler::new(false, 1 << 20);
        let mut out = Vec::new();
        push(&mut a, Stream::Stdout, 1, b"  indented\t\n", &mut out);
        push(&mut a, Stream::Stdout, 2, b"\n", &mut out);
        push(&mut a, Stream::Stdout, 3, b"crlf kept off a tty\r\n", &mut out);
        assert_eq!(texts(&out), vec!["  indented\t", "crlf kept off a tty\r"]);
        assert_eq!(a.empty_lines, 1);
    }

    #[test]
    fn tty_lines_lose_their_crlf() {
        let mut a = Assembler::new(true, 1 << 20);
        let mut out = Vec::new();
        push(&mut a, Stream::Stdout, 1, b"hello\r\n", &mut out);
        push(&mut a, Stream::Stdout, 2, b"\r\n", &mut out);
        assert_eq!(texts(&out), vec!["hello"]);
        assert_eq!(a.empty_lines, 1);
    }

    #[test]
    fn merges_pieces_sharing_a_timestamp() {
        let mut a = Assembler::new(false, 1 << 20);
        let mut out = Vec::new();
        let piece = vec![b'a'; PIECE_SIZE];
        push(&mut a, Stream::Stdout, 7, &piece, &mut out);
        push(&mut a, Stream::Stderr, 8, b"interleaved\n", &mut out);
        push(&mut a, Stream::Stdout, 7, &piece, &mut out);
        push(&mut a, Stream::Stdout, 7, b"tail\n", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "interleaved");
        assert_eq!(out[1].text.len(), 2 * PIECE_SIZE + 4);
        assert_eq!((out[1].ts_ns, out[1].stream, out[1].truncated), (7, Stream::Stdout, false));
    }

    #[test]
    fn unterminated_line_ends_at_a_new_timestamp_or_the_end_of_stream() {
        let mut a = Assembler::new(false, 1 << 20);
        let mut out = Vec::new();
        push(&mut a, Stream::Stdout, 1, b"no newline", &mut out);
        assert!(out.is_empty());
        push(&mut a, Stream::Stdout, 2, b"next run\n", &mut out);
        push(&mut a, Stream::Stdout, 3, b"last", &mut out);
        a.flush(Position::START, &mut out);
        assert_eq!(texts(&out), vec!["no newline", "next run", "last"]);
    }

    #[test]
    fn lines_never_resume_past_a_line_still_being_merged() {
        let mut a = Assembler::new(false, 1 << 20);
        let mut out = Vec::new();
        let at = |ts| Position::Api(crate::position::ApiPosition { ts_ns: ts, count: 1, max_ts_ns: ts });
        a.push(Stream::Stdout, 10, b"first piece of a long line", Span { before: at(9), after: at(10) }, &mut out);
        a.push(Stream::Stderr, 11, b"complete\n", Span { before: at(10), after: at(11) }, &mut out);
        a.push(Stream::Stdout, 10, b" and its end\n", Span { before: at(11), after: at(12) }, &mut out);
        a.push(Stream::Stderr, 13, b"after\n", Span { before: at(12), after: at(13) }, &mut out);
        let got: Vec<(&str, i64)> =
            out.iter().map(|l| (l.text.as_str(), l.resume.ts_ns().unwrap_or(i64::MIN))).collect();
        assert_eq!(got, vec![("complete", 9), ("first piece of a long line and its end", 12), ("after", 13)]);
        assert_eq!(a.held_from(), None);
        a.push(Stream::Stdout, 14, b"unterminated", Span { before: at(13), after: at(14) }, &mut out);
        assert_eq!(a.held_from(), Some(at(13)));
        a.flush(at(14), &mut out);
        assert_eq!(out.last().map(|l| l.resume), Some(at(14)));
        // An unterminated line ended by a new timestamp resumes before the entry that ended it.
        a.push(Stream::Stdout, 20, b"prompt> ", Span { before: at(19), after: at(20) }, &mut out);
        a.push(Stream::Stdout, 21, b"next\n", Span { before: at(20), after: at(21) }, &mut out);
        let got: Vec<(&str, i64)> =
            out[out.len() - 2..].iter().map(|l| (l.text.as_str(), l.resume.ts_ns().unwrap_or(i64::MIN))).collect();
        assert_eq!(got, vec![("prompt> ", 20), ("next", 21)]);
        assert_eq!(a.held_since_ts(), None);
        a.push(Stream::Stderr, 30, b"long", Span { before: at(21), after: at(30) }, &mut out);
        assert_eq!(a.held_since_ts(), Some(30));
    }

    #[test]
    fn caps_long_lines_and_marks_them() {
        let mut a = Assembler::new(false, 10);
        let mut out = Vec::new();
        push(&mut a, Stream::Stdout, 1, b"0123456", &mut out);
        push(&mut a, Stream::Stdout, 1, b"789abcdef\n", &mut out);
        push(&mut a, Stream::Stdout, 2, b"0123456789abc\n", &mut out);
        push(&mut a, Stream::Stdout, 3, b"short\n", &mut out);
        assert_eq!(texts(&out), vec!["0123456789", "0123456789", "short"]);
        assert_eq!(out.iter().map(|l| l.truncated).collect::<Vec<_>>(), vec![true, true, false]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let mut a = Assembler::new(false, 1 << 20);
        let mut out = Vec::new();
        push(&mut a, Stream::Stdout, 1, b"ok\xff\xfebad\n", &mut out);
        assert_eq!(texts(&out), vec!["ok\u{fffd}\u{fffd}bad"]);
    }

    #[test]
    fn a_rotation_repeat_is_spotted_and_nothing_else() {
        let mut r = Repeats::default();
        assert!(!r.is_repeat(Stream::Stdout, 1, b"line\n"));
        assert!(r.is_repeat(Stream::Stdout, 1, b"line\n"), "same stream, time and bytes");
        assert!(!r.is_repeat(Stream::Stderr, 1, b"line\n"), "another stream");
        assert!(!r.is_repeat(Stream::Stdout, 2, b"line\n"), "another time: the same text written again");
        // Identical pieces of one long line share a timestamp and are not repeats.
        assert!(!r.is_repeat(Stream::Stdout, 3, b"xxxx"));
        assert!(!r.is_repeat(Stream::Stdout, 3, b"xxxx"));
        assert!(!r.is_repeat(Stream::Stdout, 3, b"xx\n"));
        // A few lines sent again after a rotation, a long line's pieces among them.
        for ts in 10..20 {
            assert!(!r.is_repeat(Stream::Stdout, ts, format!("l{ts}\n").as_bytes()));
        }
        assert!(r.is_repeat(Stream::Stdout, 16, b"l16\n"));
        assert!(r.is_repeat(Stream::Stdout, 17, b"a piece"), "within a re-send, pieces too");
        assert!((17..20).all(|ts| r.is_repeat(Stream::Stdout, ts, format!("l{ts}\n").as_bytes())));
        assert!(!r.is_repeat(Stream::Stdout, 20, b"l20\n"), "the re-send ends at the first new entry");
        // The clock set back: earlier timestamps, but nothing seen before: kept.
        assert!(!r.is_repeat(Stream::Stdout, 5, b"after the clock went back\n"));
        assert!(!r.is_repeat(Stream::Stdout, 6, b"and more\n"));
    }
}
