//! Delivery progress and checkpoints: for each container, how far every route has accepted its
//! lines ([`progress`]), persisted in `--state-dir` ([`store`], in the [`format`] of its files)
//! so that a restarted spout resumes exactly there.

pub mod format;
pub mod progress;
pub mod store;

pub use progress::{Ack, Progress};
pub(crate) use store::write_atomically;
pub use store::Checkpoints;
