//! Reading json-file logs directly, from the files the daemon writes: past the logs API's
//! ceiling, at exact byte offsets, and across rotations by file identity.

pub mod chain;
pub mod decode;
pub mod follow;
pub mod notify;

use std::collections::HashMap;
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

/// The size at which the daemon truncates a json-file log in place, if it does: with `max-size`
/// and one file (`max-file` 1, the default) it rotates by reopening the file truncated, and
/// what was in it is gone, read or not.
pub fn truncated_at(opts: &HashMap<String, String>) -> Option<u64> {
    let size = human_size(opts.get("max-size")?)?;
    let files = match opts.get("max-file") {
        Some(n) => n.trim().parse::<u32>().ok()?,
        None => 1,
    };
    (files <= 1).then_some(size)
}

/// A size as the daemon reads `max-size` (go-units' `FromHumanSize`): a number, a space or
/// not, and `k`, `m`, `g`, `t` or `p` in any case, with `i` and `b` or not, all in decimal units
/// (`10m` and `10MiB` are both 10,000,000 bytes).
fn human_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let scale = match unit {
        "" => 1e0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        _ => return None,
    };
    Some((number * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_truncated_in_place_with_max_size_and_one_file() {
        let opts = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(truncated_at(&opts(&[("max-size", "10m")])), Some(10_000_000));
        assert_eq!(truncated_at(&opts(&[("max-size", "1.5k"), ("max-file", "1")])), Some(1_500));
        assert_eq!(truncated_at(&opts(&[("max-size", "100KB")])), Some(100_000));
        assert_eq!(truncated_at(&opts(&[("max-size", "4096")])), Some(4_096));
        assert_eq!(truncated_at(&opts(&[("max-size", "2 MiB")])), Some(2_000_000));
        assert_eq!(truncated_at(&opts(&[("max-size", "1Gi")])), Some(1_000_000_000));
        assert_eq!(truncated_at(&opts(&[("max-size", "10x")])), None);
        assert_eq!(truncated_at(&opts(&[("max-size", "10m"), ("max-file", "3")])), None);
        assert_eq!(truncated_at(&opts(&[("max-file", "1")])), None, "never rotated");
        assert_eq!(truncated_at(&opts(&[])), None);
    }
}
