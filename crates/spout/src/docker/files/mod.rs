//! Reading json-file logs directly, from the files the daemon writes: past the logs API's
//! ceiling, at exact byte offsets, and across rotations by file identity.

pub mod chain;
pub mod decode;
pub mod follow;
pub mod notify;

use std::sync::atomic::AtomicBool;

/// Where the readers read containers' logs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMode {
    /// Through the Docker API, always.
    Api,
    /// From json-file logs only; other containers are left alone.
    Files,
    /// From its json-file log where the container has one spout can read, else through the API.
    Auto,
}

impl std::str::FromStr for SourceMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "api" => Ok(SourceMode::Api),
            "files" => Ok(SourceMode::Files),
            "auto" => Ok(SourceMode::Auto),
            other => Err(format!(
                "'{other}' is not api, files or auto{}",
                crate::suggest::did_you_mean(other, ["api", "files", "auto"])
            )),
        }
    }
}

/// What every reader shares for reading json-file logs.
pub struct FilesSetup {
    pub mode: SourceMode,
    /// The agent's inotify instance; `None`: files are polled.
    pub notifier: Option<notify::Notifier>,
    /// Said once that json-file logs cannot be read here.
    pub warned: AtomicBool,
}
