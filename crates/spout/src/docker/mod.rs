//! Docker as spout reads it: where containers and their logs come from ([`source`], [`api`]),
//! how their log streams are cut into entries ([`frames`]), which containers to read and how
//! ([`watcher`], [`reader`]), and what an inspect says about a container.

pub mod api;
pub mod frames;
mod logs_http;
pub mod reader;
#[cfg(test)]
pub(crate) mod scripted;
pub mod source;
pub mod watcher;

use std::sync::Arc;

pub use crate::config::DockerHost;
use crate::message::Container;
use source::{ContainerInfo, ErrorClass};

/// How the daemon's answer with `status` and `message` is to be taken.
pub fn classify_status(status: u16, message: &str) -> ErrorClass {
    match status {
        404 => ErrorClass::Gone,
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

/// Why a container is not read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Opted out with LOGSPOUT=ignore or the label spout.exclude=true.
    OptedOut,
    /// spout's own container.
    Spout,
    /// Its log driver keeps nothing the API can return.
    Unreadable(String),
}

/// Whether to leave a container alone; `own_id` is spout's own container, if it runs in one.
pub fn skip(info: &ContainerInfo, own_id: Option<&str>) -> Option<Skip> {
    let env_ignored = info.env.iter().any(|e| e == "LOGSPOUT=ignore");
    let label_excluded = info.labels.get("spout.exclude").is_some_and(|v| v == "true");
    if env_ignored || label_excluded {
        Some(Skip::OptedOut)
    } else if own_id == Some(info.meta.id.as_str()) {
        Some(Skip::Spout)
    } else if info.log_driver.as_deref() == Some("none") {
        Some(Skip::Unreadable("none".to_owned()))
    } else {
        None
    }
}

/// The metadata every message of the container carries, with the host name they give.
pub fn container(info: &ContainerInfo, host: &Arc<str>) -> Container {
    Container { host: Arc::clone(host), ..info.meta.clone() }
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

    fn info() -> ContainerInfo {
        ContainerInfo {
            meta: Container {
                id: ID.into(),
                name: "web-1".into(),
                image_id: "sha256:15c5".into(),
                image_name: "busybox:latest".into(),
                command: "sh -c echo hi".into(),
                created: "2026-11-29T20:30:25.1Z".into(),
                tty: true,
                ..Default::default()
            },
            running: true,
            ..Default::default()
        }
    }

    #[test]
    fn metadata_matches_dockers_gelf_driver() {
        let c = container(&info(), &Arc::from("docker-1"));
        assert_eq!((c.name.as_str(), c.command.as_str()), ("web-1", "sh -c echo hi"));
        assert_eq!((c.image_name.as_str(), c.image_id.as_str()), ("busybox:latest", "sha256:15c5"));
        assert_eq!(&*c.host, "docker-1");
        assert!(c.tty);
        assert_eq!(skip(&info(), None), None);
    }

    #[test]
    fn opt_outs_and_own_container_are_skipped() {
        let mut i = info();
        i.env = vec!["A=1".into(), "LOGSPOUT=ignore".into()];
        assert_eq!(skip(&i, None), Some(Skip::OptedOut));
        let mut i = info();
        i.labels = [("spout.exclude".to_owned(), "true".to_owned())].into();
        assert_eq!(skip(&i, None), Some(Skip::OptedOut));
        assert_eq!(skip(&info(), Some(ID)), Some(Skip::Spout));
        let mut i = info();
        i.log_driver = Some("none".into());
        assert_eq!(skip(&i, None), Some(Skip::Unreadable("none".into())));
    }

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
