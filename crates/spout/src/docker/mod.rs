//! Docker as spout reads it: where containers and their logs come from ([`source`], [`api`]),
//! how their log streams are cut into entries ([`frames`]), which containers to read and how
//! ([`watcher`], [`reader`]). What spout makes of a container is [`crate::enrich`]'s.

pub mod api;
pub mod context;
pub mod files;
pub mod frames;
mod logs_http;
pub mod reader;
#[cfg(test)]
pub(crate) mod scripted;
pub mod source;
pub mod watcher;

use std::sync::Arc;

pub use crate::config::DockerHost;
use crate::enrich::Enrichment;
use crate::message::Container;
use crate::router::Router;
use source::{ContainerInfo, ErrorClass};

/// What every message of an inspected container carries: its metadata and fields, and which
/// routes want it.
pub fn describe(enrichment: &Enrichment, router: &Router, info: &ContainerInfo, host: &Arc<str>) -> Arc<Container> {
    let mut container = enrichment.container(info, host);
    container.rejected_by = router.rejected_by(&container);
    Arc::new(container)
}

/// How the daemon's answer with `status` and `message` is to be taken.
pub fn classify_status(status: u16, message: &str) -> ErrorClass {
    match status {
        404 => ErrorClass::Gone,
        // A `--rm` job the daemon is removing: its log can no longer be read, ever.
        409 if message.contains("dead or marked for removal") => ErrorClass::Gone,
        501 => ErrorClass::Unreadable,
        _ if message.contains("does not support reading") => ErrorClass::Unreadable,
        _ => ErrorClass::Transient,
    }
}

/// The innermost cause of an error, which says what went wrong in plain words ("Connection
/// refused"), where the outer ones say only which layer noticed ("client error (Connect)").
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// spout's own container id, when it runs in one: Docker bind-mounts the container's own
/// /etc/hostname, /etc/hosts and /etc/resolv.conf from /var/lib/docker/containers/<id>/, and
/// (cgroup v1) names its cgroups after it.
pub fn own_container_id() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    id_from_mountinfo(&mountinfo).or_else(|| id_from_cgroup(&cgroup))
}

/// Only the three files Docker mounts into a container count: on the host itself, mountinfo also
/// lists other containers' directories (their /dev/shm, for one).
fn id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        if !matches!(mount_point, "/etc/hostname" | "/etc/hosts" | "/etc/resolv.conf") {
            return None;
        }
        hex_id_after(root, "/containers/")
    })
}

fn id_from_cgroup(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|line| hex_id_after(line, "/docker/"))
}

fn hex_id_after(text: &str, marker: &str) -> Option<String> {
    text.match_indices(marker).find_map(|(i, _)| {
        let id = text.get(i + marker.len()..i + marker.len() + 64)?;
        id.bytes().all(|b| b.is_ascii_hexdigit()).then(|| id.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "28b8e9df64d0d021bf3589f3bbddd0b8b0da96234517d51821931d3e1c55ab26";

    #[test]
    fn finds_own_id_in_mountinfo_and_cgroup() {
        let mountinfo = format!(
            "1233 1200 0:52 / / rw - overlay overlay rw\n\
             1234 1200 254:1 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(id_from_mountinfo(&mountinfo), Some(ID.to_owned()));
        assert_eq!(id_from_cgroup(&format!("12:pids:/docker/{ID}\n")), Some(ID.to_owned()));
        assert_eq!(id_from_cgroup("0::/\n"), None);
    }

    #[test]
    fn other_containers_mounts_on_the_host_are_not_ours() {
        let host = format!("620 29 0:60 / /var/lib/docker/containers/{ID}/mounts/shm rw - tmpfs shm rw\n");
        assert_eq!(id_from_mountinfo(&host), None);
    }

    /// An error that says only which layer noticed, caused by one that says what happened.
    #[derive(Debug)]
    struct Layered(std::io::Error);

    impl std::fmt::Display for Layered {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl std::error::Error for Layered {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_root_cause_is_the_innermost_error() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(root_cause(&Layered(refused)), "Connection refused");
    }
}
