//! Reading json-file logs directly, from the files the daemon writes: past the logs API's
//! ceiling, at exact byte offsets, and across rotations by file identity.

pub mod chain;
pub mod decode;
pub mod notify;
