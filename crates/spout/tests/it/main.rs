//! The integration tests, in one binary: against the real Docker daemon (and, for the
//! deployment files, botocore and cfn-lint), with spout run as a child process. `support` holds
//! what they share.

#[macro_use]
mod support;

mod agent;
mod api;
mod cli;
mod delivery;
mod files;
mod http;
mod image;
mod receive;
mod reliability;
mod routing;
mod syslog;
mod tls;
