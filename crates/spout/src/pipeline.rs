//! The line pipeline every source shares: log entries, each with where it sits in the log, to
//! whole lines (pieces merged, terminators stripped, UTF-8, the line cap), joined into multiline
//! messages where the container's are, to the numbered messages a batch ships. Synchronous and
//! source-neutral: a source's reader decides what an entry is and where it sits; this decides
//! what ships and where a restart resumes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::checkpoint::{Ack, Progress};
use crate::line::{Assembler, Line, Span};
use crate::message::{Container, Message, Stream};
use crate::multiline::Joiner;
use crate::position::Position;
use crate::stats::ReaderStats;

pub struct Pipeline {
    assembler: Assembler,
    /// Whole lines, as the assembler completes them.
    lines: Vec<Line>,
    /// Joins multiline messages, for a container whose lines are joined.
    joiner: Option<Joiner>,
    /// Messages ready to ship: the lines, joined where they are.
    ready: Vec<Line>,
    max_line_bytes: usize,
    stats: Arc<ReaderStats>,
}

impl Pipeline {
    /// A pipeline for a container not yet inspected: no TTY, no joining.
    pub fn new(max_line_bytes: usize, stats: Arc<ReaderStats>) -> Self {
        Pipeline {
            assembler: Assembler::new(false, max_line_bytes),
            lines: Vec::new(),
            joiner: None,
            ready: Vec::new(),
            max_line_bytes,
            stats,
        }
    }

    /// The container as its inspect describes it: whether its output is a TTY's, and how its
    /// lines are joined (`None`: not at all). Before any entry.
    pub fn configure(&mut self, tty: bool, joiner: Option<Joiner>) {
        self.assembler = Assembler::new(tty, self.max_line_bytes);
        self.joiner = joiner;
    }

    pub fn tty(&self) -> bool {
        self.assembler.tty()
    }

    /// Takes one entry (the bytes the daemon stored, with their terminator if any) at `span`.
    pub fn push(&mut self, stream: Stream, ts_ns: i64, bytes: &[u8], span: Span) {
        self.assembler.push(stream, ts_ns, bytes, span, &mut self.lines);
    }

    /// Whole lines taken and not yet shipped: a reader ships before this reaches a batch.
    pub fn lines(&self) -> usize {
        self.lines.len()
    }

    /// The timestamp of the oldest line still being merged.
    pub fn held_since_ts(&self) -> Option<i64> {
        self.assembler.held_since_ts()
    }

    /// The log has ended at `end`: unterminated lines and messages under way are complete.
    pub fn flush(&mut self, end: Position) {
        self.assembler.flush(end, &mut self.lines);
        self.join();
        if let Some(joiner) = &mut self.joiner {
            joiner.flush(&mut self.ready);
        }
    }

    /// When the oldest message under way is complete for want of a new line, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        self.joiner.as_ref().and_then(Joiner::deadline)
    }

    /// Completes the messages no line has joined for the timeout.
    pub fn expire(&mut self, now: Instant) {
        if let Some(joiner) = &mut self.joiner {
            joiner.expire(now, &mut self.ready);
        }
    }

    /// Time spent away from the log (waiting for room in a route's queue, for a stream to open)
    /// is not time without a new line.
    pub fn postpone(&mut self, by: Duration) {
        if let Some(joiner) = &mut self.joiner {
            joiner.postpone(by);
        }
    }

    /// Passes the completed lines through the joiner, and counts the empty lines skipped.
    fn join(&mut self) {
        let empty = std::mem::take(&mut self.assembler.empty_lines);
        if empty > 0 {
            self.stats.empty_lines.add(empty);
        }
        match &mut self.joiner {
            Some(joiner) => {
                for line in self.lines.drain(..) {
                    joiner.push(line, &mut self.ready);
                }
            }
            None => self.ready.append(&mut self.lines),
        }
    }

    /// The next batch of at most `max` messages of `container` ready to ship, each numbered in
    /// `progress` with where a restart resumes to reproduce it; empty when none is ready.
    pub fn next_batch(&mut self, max: usize, container: &Arc<Container>, progress: &Arc<Progress>) -> Vec<Message> {
        self.join();
        let take = self.ready.len().min(max.max(1));
        self.ready
            .drain(..take)
            .map(|line| {
                if line.truncated {
                    self.stats.truncated_lines.add(1);
                }
                let rejected_by = container.rejecting(line.stream);
                let ack =
                    Ack { progress: Arc::clone(progress), seq: progress.ship(line.resume, rejected_by, line.ts_ns) };
                Message {
                    container: Arc::clone(container),
                    stream: line.stream,
                    ts_ns: line.ts_ns,
                    line: line.text,
                    truncated: line.truncated,
                    ack: Some(ack),
                    level: None,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multiline::Rules;
    use crate::position::{FileId, FilePosition};

    const T0: i64 = 1_795_984_225_000_000_000;

    /// Positions as the files source makes them: offsets in one file.
    fn at(offset: u64) -> Position {
        let file = FileId { dev: 1, ino: 2, fingerprint: 3 };
        Position::File(FilePosition { file, offset, ts_ns: T0 })
    }

    /// Feeds `entries` (stream, text) at consecutive offsets, each `len` bytes; returns the
    /// messages shipped and the progress they were numbered in.
    fn run(pipeline: &mut Pipeline, entries: &[(Stream, &str)]) -> (Vec<Message>, Arc<Progress>) {
        let progress = Arc::new(Progress::new(1, 0));
        let mut offset = 0;
        let mut out = Vec::new();
        for (i, (stream, text)) in entries.iter().enumerate() {
            let span = Span { before: at(offset), after: at(offset + 100) };
            pipeline.push(*stream, T0 + i as i64, text.as_bytes(), span);
            offset += 100;
            out.extend(pipeline.next_batch(256, &Arc::new(Container::default()), &progress));
        }
        (out, progress)
    }

    #[test]
    fn lines_ship_numbered_and_resume_after_the_entry_that_completed_them() {
        let mut p = Pipeline::new(1 << 20, Arc::default());
        let (out, progress) = run(&mut p, &[(Stream::Stdout, "one\n"), (Stream::Stderr, "two\n")]);
        let texts: Vec<&str> = out.iter().map(|m| m.line.as_str()).collect();
        assert_eq!(texts, ["one", "two"]);
        for m in &out {
            if let Some(ack) = &m.ack {
                ack.accept(0);
            }
        }
        assert_eq!(progress.settle(), Some(at(200)));
    }

    #[test]
    fn a_split_line_resumes_before_its_first_piece_until_it_is_whole() {
        let mut p = Pipeline::new(1 << 20, Arc::default());
        let piece = "x".repeat(crate::line::PIECE_SIZE);
        let progress = Arc::new(Progress::new(1, 0));
        let c = Arc::new(Container::default());
        p.push(Stream::Stdout, T0, piece.as_bytes(), Span { before: at(0), after: at(100) });
        p.push(Stream::Stderr, T0 + 1, b"other\n", Span { before: at(100), after: at(200) });
        let first = p.next_batch(256, &c, &progress);
        assert_eq!(first.iter().map(|m| m.line.as_str()).collect::<Vec<_>>(), ["other"]);
        p.push(Stream::Stdout, T0, b"end\n", Span { before: at(200), after: at(300) });
        let second = p.next_batch(256, &c, &progress);
        assert_eq!(second[0].line.len(), crate::line::PIECE_SIZE + 3);
        for m in first.iter().chain(&second) {
            m.ack.as_ref().expect("numbered").accept(0);
        }
        assert_eq!(progress.settle(), Some(at(300)));
        let mut only_first = Pipeline::new(1 << 20, Arc::default());
        let progress = Arc::new(Progress::new(1, 0));
        only_first.push(Stream::Stdout, T0, piece.as_bytes(), Span { before: at(0), after: at(100) });
        only_first.push(Stream::Stderr, T0 + 1, b"other\n", Span { before: at(100), after: at(200) });
        for m in only_first.next_batch(256, &c, &progress) {
            m.ack.as_ref().expect("numbered").accept(0);
        }
        assert_eq!(progress.settle(), Some(at(0)), "not past the first piece of a line still being merged");
    }

    #[test]
    fn joined_messages_leave_whole_and_batches_are_capped() {
        let mut p = Pipeline::new(1 << 20, Arc::default());
        let rules = Rules {
            start: regex::Regex::new(r"^\S").expect("valid"),
            timeout: Duration::from_secs(1),
            max_lines: 100,
            max_bytes: 1 << 20,
        };
        p.configure(false, Some(Joiner::new(rules, at(0))));
        let entries = [(Stream::Stdout, "error\n"), (Stream::Stdout, "\tat a\n"), (Stream::Stdout, "next\n")];
        let (out, _) = run(&mut p, &entries);
        assert_eq!(out.iter().map(|m| m.line.as_str()).collect::<Vec<_>>(), ["error\n\tat a"]);
        p.flush(at(300));
        let rest = p.next_batch(256, &Arc::new(Container::default()), &Arc::new(Progress::new(1, 0)));
        assert_eq!(rest.iter().map(|m| m.line.as_str()).collect::<Vec<_>>(), ["next"]);

        let mut p = Pipeline::new(1 << 20, Arc::default());
        let many: Vec<(Stream, &str)> = (0..10).map(|_| (Stream::Stdout, "l\n")).collect();
        let progress = Arc::new(Progress::new(1, 0));
        for (i, (stream, text)) in many.iter().enumerate() {
            let span = Span { before: at(i as u64), after: at(i as u64 + 1) };
            p.push(*stream, T0, text.as_bytes(), span);
        }
        let c = Arc::new(Container::default());
        assert_eq!(p.next_batch(4, &c, &progress).len(), 4);
        assert_eq!(p.next_batch(4, &c, &progress).len(), 4);
        assert_eq!(p.next_batch(4, &c, &progress).len(), 2);
        assert!(p.next_batch(4, &c, &progress).is_empty());
    }
}
