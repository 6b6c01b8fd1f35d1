//! Joins the lines of a multiline message (a stack trace) into one: a line matching the start
//! pattern begins a message, any other line is appended to the one under way on its stream. The
//! two streams are joined apart and never mix.
//!
//! Checkpoints must never pass a message that is only partly joined, or a restart would ship its
//! first half and then its second half as a message of its own. Positions in a log are linear,
//! and messages of the two streams interleave, so the joiner hands messages on only at a cut: a
//! point in the log with every line before it in a message handed on, and every line after it in
//! one still held. A message under way holds back everything after its first line, of both
//! streams, and a message complete on one stream waits while one that began before its last line
//! is still under way on the other. Each message handed on carries the position of the last cut
//! at or before it, so a graceful restart reads the held messages again, and ships them once,
//! whole.

use std::collections::VecDeque;
use std::time::Duration;

use regex::Regex;
use tokio::time::Instant;

use crate::line::Line;
use crate::message::Stream;
use crate::position::Position;

/// The joining rules a container's lines follow.
#[derive(Debug, Clone)]
pub struct Rules {
    /// A line matching this starts a message.
    pub start: Regex,
    /// A message is complete when no line has joined it for this long.
    pub timeout: Duration,
    /// A message is complete at this many lines.
    pub max_lines: usize,
    /// A message never grows past this many bytes (the `--max-line-bytes` of single lines).
    pub max_bytes: usize,
}

#[derive(Debug)]
struct Open {
    line: Line,
    lines: usize,
    /// The number of its last line.
    last: u64,
    /// When the last line joined.
    joined_at: Instant,
}

#[derive(Debug)]
enum Slot {
    /// Being joined on this stream.
    Open(Stream),
    /// Complete, its last line the one numbered so.
    Done(Line, u64),
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    /// The number of its first line, counting every line the joiner took.
    first: u64,
    /// Where reading again reproduces it and everything after it: where the line before it
    /// resumes.
    before: Position,
}

/// One container's joiner.
#[derive(Debug)]
pub struct Joiner {
    rules: Rules,
    open: [Option<Open>; 2],
    /// Messages in the log order of their first lines.
    queue: VecDeque<Entry>,
    /// Bytes of the complete messages held back in `queue`.
    held_bytes: usize,
    /// Lines taken so far.
    taken: u64,
    /// Where the last line taken resumes.
    last_resume: Position,
}

impl Joiner {
    /// A joiner for a log read from `from`.
    pub fn new(rules: Rules, from: Position) -> Self {
        Joiner { rules, open: [None, None], queue: VecDeque::new(), held_bytes: 0, taken: 0, last_resume: from }
    }

    /// Takes one line; appends to `out` whatever is now ready to ship.
    pub fn push(&mut self, line: Line, out: &mut Vec<Line>) {
        let slot = line.stream as usize;
        let before = self.last_resume;
        self.last_resume = line.resume;
        self.taken += 1;
        let now = Instant::now();
        if let Some(open) = &mut self.open[slot] {
            let joins = !self.rules.start.is_match(&line.text)
                && open.lines < self.rules.max_lines
                && open.line.text.len() + 1 + line.text.len() <= self.rules.max_bytes;
            if joins {
                open.line.text.push('\n');
                open.line.text.push_str(&line.text);
                open.line.truncated |= line.truncated;
                open.line.resume = line.resume;
                open.lines += 1;
                open.last = self.taken;
                open.joined_at = now;
                return;
            }
            self.close(line.stream);
        }
        self.open[slot] = Some(Open { line, lines: 1, last: self.taken, joined_at: now });
        self.queue.push_back(Entry { slot: Slot::Open(Stream::from_index(slot)), first: self.taken, before });
        self.ship_ready(out);
    }

    /// Completes the messages no line has joined for the timeout, and ships what that frees.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Line>) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            if self.open[stream as usize].as_ref().is_some_and(|o| now >= o.joined_at + self.rules.timeout) {
                self.close(stream);
            }
        }
        self.ship_ready(out);
    }

    /// When the oldest message under way times out, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        self.open.iter().flatten().map(|o| o.joined_at + self.rules.timeout).min()
    }

    /// The log has ended: everything under way is complete.
    pub fn flush(&mut self, out: &mut Vec<Line>) {
        self.close(Stream::Stdout);
        self.close(Stream::Stderr);
        self.ship_ready(out);
    }

    /// Time spent away from the log stream (waiting for room in a route's queue, for a stream
    /// to open) is not time without a new line: the messages under way wait that much longer.
    pub fn postpone(&mut self, by: Duration) {
        for open in self.open.iter_mut().flatten() {
            open.joined_at += by;
        }
    }

    fn close(&mut self, stream: Stream) {
        let Some(open) = self.open[stream as usize].take() else { return };
        let entry = self.queue.iter_mut().find(|e| matches!(e.slot, Slot::Open(s) if s == stream));
        if let Some(entry) = entry {
            self.held_bytes += open.line.text.len();
            entry.slot = Slot::Done(open.line, open.last);
        }
    }

    /// Ships the messages before the last cut. What is held back is bounded: past `max_lines`
    /// messages or `max_bytes` bytes, the earliest message under way is complete as it is.
    fn ship_ready(&mut self, out: &mut Vec<Line>) {
        loop {
            let ready = self.ready();
            let mut resume = self.queue.front().map_or(self.last_resume, |e| e.before);
            let mut last = 0;
            for _ in 0..ready {
                let Some(Entry { slot: Slot::Done(mut line, line_last), .. }) = self.queue.pop_front() else { break };
                self.held_bytes -= line.text.len();
                last = last.max(line_last);
                match self.queue.front() {
                    None => resume = self.last_resume,
                    Some(next) if last < next.first => resume = next.before,
                    // The next message began before this one ended: no cut here.
                    Some(_) => {}
                }
                line.resume = resume;
                out.push(line);
            }
            let over = self.queue.len() > self.rules.max_lines || self.held_bytes > self.rules.max_bytes;
            let earliest_open = self.queue.iter().find_map(|e| match e.slot {
                Slot::Open(stream) => Some(stream),
                Slot::Done(..) => None,
            });
            match earliest_open {
                Some(stream) if over => self.close(stream),
                _ => return,
            }
        }
    }

    /// How many messages at the front of the queue lie before a cut.
    fn ready(&self) -> usize {
        let mut last = 0;
        let mut ready = 0;
        for (i, entry) in self.queue.iter().enumerate() {
            let Slot::Done(_, line_last) = entry.slot else { break };
            last = last.max(line_last);
            if self.queue.get(i + 1).is_none_or(|next| last < next.first) {
                ready = i + 1;
            }
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            start: Regex::new(r"^\S").expect("valid"),
            timeout: Duration::from_secs(1),
            max_lines: 1000,
            max_bytes: 1 << 20,
        }
    }

    fn pos(n: i64) -> Position {
        Position::Api(crate::position::ApiPosition { ts_ns: n, count: 1, max_ts_ns: n })
    }

    /// Line `n` of `stream`, resuming after itself.
    fn line(stream: Stream, n: i64, text: &str) -> Line {
        Line { stream, ts_ns: n, text: text.into(), truncated: false, resume: pos(n) }
    }

    /// Pushes `lines`, numbered from `first` on.
    fn feed(j: &mut Joiner, first: i64, lines: &[(Stream, &str)], out: &mut Vec<Line>) {
        for (n, (stream, text)) in (first..).zip(lines) {
            j.push(line(*stream, n, text), out);
        }
    }

    const OUT: Stream = Stream::Stdout;
    const ERR: Stream = Stream::Stderr;

    fn texts(out: &[Line]) -> Vec<&str> {
        out.iter().map(|l| l.text.as_str()).collect()
    }

    const TRACE: [&str; 4] = [
        "Exception in thread \"main\" java.lang.IllegalStateException: boom",
        "\tat com.example.App.run(App.java:42)",
        "\tat com.example.App.main(App.java:7)",
        "Caused by: java.io.IOException: disk",
    ];

    #[tokio::test(start_paused = true)]
    async fn a_stack_trace_becomes_one_message_per_start() {
        let mut j = Joiner::new(rules(), Position::START);
        let mut out = Vec::new();
        for (n, text) in TRACE.iter().enumerate() {
            j.push(line(Stream::Stdout, n as i64 + 1, text), &mut out);
        }
        assert_eq!(texts(&out), [TRACE[..3].join("\n")], "'Caused by' starts a message of its own");
        assert_eq!((out[0].ts_ns, out[0].resume), (1, pos(3)));
        j.push(line(Stream::Stdout, 5, "\t... 3 more"), &mut out);
        j.flush(&mut out);
        assert_eq!(out[1].text, format!("{}\n\t... 3 more", TRACE[3]));
        assert_eq!(out[1].resume, pos(5));
    }

    #[tokio::test(start_paused = true)]
    async fn streams_never_mix_and_leave_at_cuts_in_the_log() {
        let mut j = Joiner::new(rules(), pos(0));
        let mut out = Vec::new();
        let lines = [(OUT, "out trace"), (ERR, "err trace"), (OUT, "\tat out"), (ERR, "\tat err"), (OUT, "next out")];
        feed(&mut j, 1, &lines, &mut out);
        assert!(out.is_empty(), "the stdout message is complete, but the stderr one began inside it");
        feed(&mut j, 6, &[(ERR, "next err")], &mut out);
        assert_eq!(texts(&out), ["out trace\n\tat out", "err trace\n\tat err"]);
        assert_eq!(out[0].resume, pos(0), "no cut between the two: a restart reads both again");
        assert_eq!(out[1].resume, pos(4), "the cut after line 4");
        j.flush(&mut out);
        assert_eq!(texts(&out)[2..], ["next out", "next err"]);
        assert_eq!((out[2].resume, out[3].resume), (pos(5), pos(6)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_message_waits_for_one_begun_inside_it() {
        let mut j = Joiner::new(rules(), pos(0));
        let mut out = Vec::new();
        feed(&mut j, 1, &[(OUT, "out trace"), (ERR, "err trace"), (OUT, "\tat out"), (OUT, "next out")], &mut out);
        assert!(out.is_empty(), "shipping the stdout trace now would checkpoint inside it or past line 2");
        feed(&mut j, 5, &[(ERR, "next err")], &mut out);
        assert_eq!(texts(&out), ["out trace\n\tat out", "err trace"]);
        assert_eq!(out[1].resume, pos(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_mid_trace_resumes_before_it() {
        let mut j = Joiner::new(rules(), pos(0));
        let mut out = Vec::new();
        feed(&mut j, 1, &[(OUT, "single"), (OUT, "trace"), (OUT, "\tat a"), (ERR, "other")], &mut out);
        assert_eq!(texts(&out), ["single"]);
        assert_eq!(out[0].resume, pos(1), "shipped up to before the trace: a restart reads it whole");
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_is_complete_after_the_timeout_since_its_last_line() {
        let mut j = Joiner::new(rules(), Position::START);
        let mut out = Vec::new();
        j.push(line(Stream::Stdout, 1, "trace"), &mut out);
        tokio::time::advance(Duration::from_millis(600)).await;
        j.push(line(Stream::Stdout, 2, "\tat a"), &mut out);
        let deadline = j.deadline().expect("a message is under way");
        j.expire(deadline - Duration::from_millis(1), &mut out);
        assert!(out.is_empty());
        j.postpone(Duration::from_secs(2));
        j.expire(deadline, &mut out);
        assert!(out.is_empty(), "time away from the stream does not count");
        j.expire(deadline + Duration::from_secs(2), &mut out);
        assert_eq!(texts(&out), ["trace\n\tat a"]);
        assert_eq!(j.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn caps_on_lines_and_bytes_complete_a_message() {
        let mut j = Joiner::new(Rules { max_lines: 3, max_bytes: 20, ..rules() }, Position::START);
        let mut out = Vec::new();
        for n in 1..=5 {
            j.push(line(Stream::Stdout, n, if n == 1 { "start" } else { " cont" }), &mut out);
        }
        assert_eq!(texts(&out), ["start\n cont\n cont"], "three lines at most");
        j.push(line(Stream::Stdout, 6, " 0123456789abcdef"), &mut out);
        assert_eq!(texts(&out)[1], " cont\n cont", "20 bytes at most");
    }

    #[tokio::test(start_paused = true)]
    async fn lines_held_back_behind_a_message_are_bounded() {
        let mut j = Joiner::new(Rules { max_lines: 10, ..rules() }, Position::START);
        let mut out = Vec::new();
        j.push(line(Stream::Stdout, 1, "trace"), &mut out);
        for n in 2..=12 {
            j.push(line(Stream::Stderr, n, "flood"), &mut out);
        }
        assert_eq!(out[0].text, "trace", "shipped as it was, rather than hold more");
        assert!(out.len() >= 10);
        assert!(j.queue.len() <= 11);
    }
}
