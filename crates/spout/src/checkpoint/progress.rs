//! Acceptance accounting: for each container, how far every route has accepted its lines.
//!
//! A reader numbers the messages it ships and notes, for each, the position from which reading
//! again would reproduce it and everything after it, and which routes' filters reject it. Routes
//! take messages from their queues in order, so a route that accepted message `n` accepted every
//! earlier one it was given. A container's checkpoint is the position of the newest message every
//! route has accepted or rejected: a route that never sees a container's messages never holds
//! back its checkpoint.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::position::Position;
use crate::slots::route_bit;

/// Positions kept per container for messages not yet accepted everywhere (88 bytes each). Past
/// this, the newest entry stands for a range of messages: the checkpoint advances in coarser
/// steps, never further.
const MAX_PENDING: usize = 4096;

/// One container's shipped and accepted messages.
#[derive(Debug)]
pub struct Progress {
    /// Per route, the highest message number it accepted (0: none).
    accepted: Box<[AtomicU64]>,
    inner: Mutex<Shipped>,
}

/// A message not yet settled (or, past [`MAX_PENDING`], the newest of a range of them).
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    /// Where to resume once it and everything before it are accepted.
    resume: Position,
    /// The routes (bit `n`: route `n`) that reject it, and so need not accept it.
    rejected_by: u64,
    /// Docker's timestamps of the oldest and the newest message it stands for; `None` for a
    /// position reached without a message.
    ts_ns: Option<(i64, i64)>,
}

const _: () =
    assert!(std::mem::size_of::<Pending>() <= 88, "MAX_PENDING's memory is documented at 88 bytes a position");

#[derive(Debug, Default)]
struct Shipped {
    next_seq: u64,
    /// Per route, the number of the newest message it wants: a route that accepted that far
    /// holds nothing back, whatever the coarse entries past [`MAX_PENDING`] say.
    wanted: Vec<u64>,
    pending: VecDeque<Pending>,
    settled: Option<Position>,
    /// Docker's timestamp of the newest message settled.
    settled_ts_ns: Option<i64>,
}

impl Progress {
    /// Progress over `routes` route slots, of which those in `retired` (bit `n`: slot `n`) are
    /// gone for good and never hold anything back.
    pub fn new(routes: usize, retired: u64) -> Self {
        let inner = Shipped { wanted: vec![0; routes], ..Shipped::default() };
        let accepted = (0..routes)
            .map(|slot| {
                let gone = retired & route_bit(slot) != 0;
                AtomicU64::new(if gone { u64::MAX } else { 0 })
            })
            .collect();
        Progress { accepted, inner: Mutex::new(inner) }
    }

    /// Route `route` is gone: nothing it was given holds anything back any more.
    pub fn release(&self, route: usize) {
        if let Some(a) = self.accepted.get(route) {
            a.store(u64::MAX, Ordering::Release);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shipped> {
        // A panic while holding this lock cannot leave it inconsistent: every update is a push or
        // a pop. Carry on with the data.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Numbers a message about to be shipped; `resume` is where reading must start again to
    /// reproduce it and everything after it; `rejected_by` the routes whose filters reject it;
    /// `ts_ns` its Docker timestamp.
    pub fn ship(&self, resume: Position, rejected_by: u64, ts_ns: i64) -> u64 {
        let mut s = self.lock();
        s.next_seq += 1;
        let seq = s.next_seq;
        // The routes that want it: usually one or two bits of 64.
        let mut wants = !rejected_by;
        while wants != 0 {
            let route = wants.trailing_zeros() as usize;
            if let Some(wanted) = s.wanted.get_mut(route) {
                *wanted = seq;
            }
            wants &= wants - 1;
        }
        if s.pending.len() >= MAX_PENDING {
            if let Some(last) = s.pending.back_mut() {
                // Settles only once everything up to `seq` is accepted, and then `resume` is right.
                // A route may skip the range only if it rejects all of it.
                let ts_ns =
                    last.ts_ns.map_or((ts_ns, ts_ns), |(oldest, newest)| (oldest.min(ts_ns), newest.max(ts_ns)));
                *last = Pending { seq, resume, rejected_by: last.rejected_by & rejected_by, ts_ns: Some(ts_ns) };
                return seq;
            }
        }
        s.pending.push_back(Pending { seq, resume, rejected_by, ts_ns: Some((ts_ns, ts_ns)) });
        seq
    }

    /// Notes a position reached without a message (the end of a stopped container's log): it
    /// settles once every message shipped before it is accepted.
    pub fn reached(&self, pos: Position) {
        let mut s = self.lock();
        let seq = s.next_seq;
        if let Some(last) = s.pending.back_mut().filter(|last| last.seq == seq) {
            last.resume = pos;
        } else if s.pending.len() < MAX_PENDING {
            // Everything shipped before has settled: every route may pass it.
            s.pending.push_back(Pending { seq, resume: pos, rejected_by: u64::MAX, ts_ns: None });
        }
    }

    /// Route `route` accepted message `seq` (and, by queue order, every earlier one).
    pub fn accept(&self, route: usize, seq: u64) {
        if let Some(a) = self.accepted.get(route) {
            a.fetch_max(seq, Ordering::Release);
        }
    }

    /// The position every route has got past, if it moved since the last call: `Some` only when
    /// there is something new to persist.
    pub fn settle(&self) -> Option<Position> {
        let accepted = self.accepted();
        let mut s = self.lock();
        let mut newest = None;
        while s.pending.front().is_some_and(|p| s.everywhere(p, &accepted)) {
            if let Some(p) = s.pending.pop_front() {
                if let Some((_, ts)) = p.ts_ns {
                    s.settled_ts_ns = Some(s.settled_ts_ns.map_or(ts, |t| t.max(ts)));
                }
                newest = Some(p.resume);
            }
        }
        if newest.is_some() && newest != s.settled {
            s.settled = newest;
            return newest;
        }
        None
    }

    /// Docker's timestamp of the oldest message read and not yet accepted by every route.
    pub fn oldest_unaccepted_ns(&self) -> Option<i64> {
        let accepted = self.accepted();
        let s = self.lock();
        s.pending.iter().skip_while(|p| s.everywhere(p, &accepted)).filter_map(|p| p.ts_ns.map(|t| t.0)).min()
    }

    /// As of the last [`Progress::settle`]: the position every route has got past, and Docker's
    /// timestamp of the newest message every route has accepted.
    pub fn settled(&self) -> (Option<Position>, Option<i64>) {
        let s = self.lock();
        (s.settled, s.settled_ts_ns)
    }

    /// What each route accepted so far. Loaded before the lock is taken, so it can only be behind.
    fn accepted(&self) -> Vec<u64> {
        self.accepted.iter().map(|a| a.load(Ordering::Acquire)).collect()
    }
}

impl Shipped {
    /// Whether every route has accepted `p` or need not: taken in order, every earlier message
    /// has settled, so a route that rejects this one has accepted everything it was given
    /// before it.
    fn everywhere(&self, p: &Pending, accepted: &[u64]) -> bool {
        accepted
            .iter()
            .zip(&self.wanted)
            .enumerate()
            .all(|(route, (&a, &wanted))| a >= p.seq || a >= wanted || p.rejected_by & route_bit(route) != 0)
    }
}

/// A message's claim on its container's progress: accepting it tells the checkpoint.
#[derive(Debug, Clone)]
pub struct Ack {
    pub progress: Arc<Progress>,
    pub seq: u64,
}

impl Ack {
    pub fn accept(&self, route: usize) {
        self.progress.accept(route, self.seq);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pos(ts_ns: i64) -> Position {
        Position::Api(crate::position::ApiPosition { ts_ns, count: 1, max_ts_ns: ts_ns })
    }

    #[test]
    fn settles_at_what_every_route_accepted() {
        let p = Progress::new(2, 0);
        let (a, b, c) = (p.ship(pos(10), 0, 0), p.ship(pos(20), 0, 0), p.ship(pos(30), 0, 0));
        assert_eq!(p.settle(), None);
        p.accept(0, c);
        assert_eq!(p.settle(), None, "route 1 has accepted nothing");
        p.accept(1, a);
        assert_eq!(p.settle(), Some(pos(10)));
        p.accept(1, b);
        assert_eq!(p.settle(), Some(pos(20)));
        assert_eq!(p.settle(), None, "nothing moved");
        p.reached(pos(35));
        p.accept(1, c);
        assert_eq!(p.settle(), Some(pos(35)), "the end of the log settles after the last message");
    }

    #[test]
    fn a_route_that_rejects_a_message_does_not_hold_it_back() {
        let p = Progress::new(2, 0);
        let wanted = p.ship(pos(10), 0, 0);
        let rejected = p.ship(pos(20), 0b10, 0);
        p.accept(0, rejected);
        assert_eq!(p.settle(), None, "route 1 has not accepted the message it wants");
        p.accept(1, wanted);
        assert_eq!(p.settle(), Some(pos(20)), "nor need it accept the one it rejects");
        p.ship(pos(30), 0b11, 0);
        assert_eq!(p.settle(), Some(pos(30)));
    }

    #[test]
    fn a_coarse_entry_settles_once_each_route_has_all_it_wanted() {
        let p = Progress::new(2, 0);
        for i in 0..MAX_PENDING as i64 {
            // Route 1 wants every other message.
            p.ship(pos(i), if i % 2 == 0 { 0 } else { 0b10 }, 0);
        }
        // Past the bound, the last entry stands for a range that ends with one route 1 rejects.
        let last_wanted_by_1 = p.ship(pos(MAX_PENDING as i64), 0, 0);
        let end = p.ship(pos(MAX_PENDING as i64 + 1), 0b10, 0);
        p.accept(0, end);
        p.accept(1, last_wanted_by_1);
        assert_eq!(p.settle(), Some(pos(MAX_PENDING as i64 + 1)), "route 1 has everything it wanted");
    }

    #[test]
    fn the_oldest_unaccepted_message_is_the_first_not_accepted_everywhere() {
        let p = Progress::new(2, 0);
        assert_eq!(p.oldest_unaccepted_ns(), None);
        let a = p.ship(pos(1), 0, 100);
        p.ship(pos(2), 0, 200);
        assert_eq!(p.oldest_unaccepted_ns(), Some(100));
        p.accept(0, a);
        assert_eq!(p.oldest_unaccepted_ns(), Some(100), "route 1 has not accepted it");
        p.accept(1, a);
        assert_eq!(p.oldest_unaccepted_ns(), Some(200), "settled or not, an accepted message no longer counts");
    }

    #[test]
    fn pending_positions_are_bounded() {
        let p = Progress::new(1, 0);
        let mut last = 0;
        for i in 0..(MAX_PENDING as i64 + 10) {
            last = p.ship(pos(i), 0, 0);
        }
        assert_eq!(p.lock().pending.len(), MAX_PENDING);
        p.accept(0, last - 1);
        // The coarse last entry is not settled until its whole range is accepted.
        assert_eq!(p.settle(), Some(pos(MAX_PENDING as i64 - 2)));
        p.accept(0, last);
        assert_eq!(p.settle(), Some(pos(MAX_PENDING as i64 + 9)));
    }
}
