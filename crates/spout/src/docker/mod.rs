//! A thin layer over bollard: connecting, what spout needs from an inspect, and which daemon
//! errors mean what.

pub mod reader;
pub mod watcher;

use std::sync::Arc;

use bollard::errors::Error as DockerError;
use bollard::models::ContainerInspectResponse;
use bollard::Docker;

use crate::config::DockerHost;
use crate::message::Container;

/// Seconds to wait for the daemon's answer to a request (not for the end of a stream).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Connects and agrees on an API version the daemon speaks (Docker 20.10 stops at 1.41).
pub async fn connect(host: &DockerHost) -> Result<Docker, DockerError> {
    let docker = match host {
        DockerHost::Unix(path) => {
            Docker::connect_with_unix(&path.to_string_lossy(), REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)?
        }
        DockerHost::Tcp(addr) => Docker::connect_with_http(addr, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)?,
    };
    docker.negotiate_version().await
}

/// How the daemon answered, in the terms spout acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The container no longer exists.
    Gone,
    /// The container's log driver cannot be read back through the API.
    Unreadable,
    /// Anything else: try again later.
    Transient,
}

pub fn classify(err: &DockerError) -> ErrorClass {
    match err {
        DockerError::DockerResponseServerError { status_code: 404, .. } => ErrorClass::Gone,
        DockerError::DockerResponseServerError { status_code, message }
            if *status_code == 501 || message.contains("does not support reading") =>
        {
            ErrorClass::Unreadable
        }
        _ => ErrorClass::Transient,
    }
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

/// What spout learns from one inspect.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub container: Container,
    pub running: bool,
    pub skip: Option<Skip>,
}

/// Reads an inspect answer; `own_id` is spout's own container, if it runs in one.
pub fn inspected(resp: ContainerInspectResponse, host: &Arc<str>, own_id: Option<&str>) -> Inspected {
    let id = resp.id.unwrap_or_default();
    let config = resp.config.unwrap_or_default();
    let running = resp.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    let env_ignored = config.env.iter().flatten().any(|e| e == "LOGSPOUT=ignore");
    let label_excluded = config.labels.as_ref().and_then(|l| l.get("spout.exclude")).is_some_and(|v| v == "true");
    let driver = resp.host_config.as_ref().and_then(|h| h.log_config.as_ref()).and_then(|l| l.typ.clone());
    let skip = if env_ignored || label_excluded {
        Some(Skip::OptedOut)
    } else if own_id == Some(id.as_str()) {
        Some(Skip::Spout)
    } else if driver.as_deref() == Some("none") {
        Some(Skip::Unreadable("none".to_owned()))
    } else {
        None
    };
    let mut command = resp.path.unwrap_or_default();
    for arg in resp.args.iter().flatten() {
        command.push(' ');
        command.push_str(arg);
    }
    let container = Container {
        host: Arc::clone(host),
        name: resp.name.unwrap_or_default().trim_start_matches('/').to_owned(),
        image_id: resp.image.unwrap_or_default(),
        image_name: config.image.unwrap_or_default(),
        command,
        created: resp.created.unwrap_or_default(),
        tty: config.tty.unwrap_or(false),
        id,
    };
    Inspected { container, running, skip }
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
    use bollard::models::{ContainerConfig, ContainerState, HostConfig, HostConfigLogConfig};

    fn host() -> Arc<str> {
        Arc::from("docker-1")
    }

    const ID: &str = "28b8e9df64d0d021bf3589f3bbddd0b8b0da96234517d51821931d3e1c55ab26";

    fn response() -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(ID.into()),
            name: Some("/web-1".into()),
            image: Some("sha256:15c5".into()),
            path: Some("sh".into()),
            args: Some(vec!["-c".into(), "echo hi".into()]),
            created: Some("2026-11-29T20:30:25.1Z".into()),
            state: Some(ContainerState { running: Some(true), ..Default::default() }),
            config: Some(ContainerConfig {
                image: Some("busybox:latest".into()),
                tty: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn metadata_matches_dockers_gelf_driver() {
        let i = inspected(response(), &host(), None);
        assert_eq!(i.container.name, "web-1");
        assert_eq!(i.container.command, "sh -c echo hi");
        assert_eq!(i.container.image_name, "busybox:latest");
        assert_eq!(i.container.image_id, "sha256:15c5");
        assert!(i.container.tty && i.running && i.skip.is_none());
    }

    #[test]
    fn opt_outs_and_own_container_are_skipped() {
        let mut r = response();
        r.config.as_mut().expect("config").env = Some(vec!["A=1".into(), "LOGSPOUT=ignore".into()]);
        assert_eq!(inspected(r, &host(), None).skip, Some(Skip::OptedOut));
        let mut r = response();
        r.config.as_mut().expect("config").labels = Some([("spout.exclude".to_owned(), "true".to_owned())].into());
        assert_eq!(inspected(r, &host(), None).skip, Some(Skip::OptedOut));
        assert_eq!(inspected(response(), &host(), Some(ID)).skip, Some(Skip::Spout));
        let mut r = response();
        r.host_config = Some(HostConfig {
            log_config: Some(HostConfigLogConfig { typ: Some("none".into()), config: None }),
            ..Default::default()
        });
        assert_eq!(inspected(r, &host(), None).skip, Some(Skip::Unreadable("none".into())));
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

    #[test]
    fn classifies_daemon_errors() {
        let err = |status_code, message: &str| DockerError::DockerResponseServerError {
            status_code,
            message: message.into(),
        };
        assert_eq!(classify(&err(404, "No such container")), ErrorClass::Gone);
        assert_eq!(classify(&err(501, "configured logging driver does not support reading")), ErrorClass::Unreadable);
        assert_eq!(classify(&err(500, "configured logging driver does not support reading")), ErrorClass::Unreadable);
        assert_eq!(classify(&err(500, "oops")), ErrorClass::Transient);
    }
}
