//! The Docker Engine API as a [`Source`]: bollard for the list, the events and inspects, and
//! [`LogsClient`] for the log streams themselves.

use std::collections::HashMap;
use std::sync::Arc;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerInspectResponse, ContainerSummaryStateEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;

use super::logs_http::LogsClient;
use super::source::{
    BoxFuture, BoxStream, Connect, Connected, ContainerInfo, Event, EventKind, Listed, LogsRequest, Source, SourceError,
};
use super::{classify_status, root_cause, DockerHost};
use crate::message::Container;
use crate::timestamp::parse_rfc3339_ns;

/// Seconds to wait for the daemon's answer to a request (not for the end of a stream).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Connects to the daemon at `host`.
pub struct DockerConnector {
    pub host: DockerHost,
}

impl Connect for DockerConnector {
    fn address(&self) -> String {
        self.host.to_string()
    }

    fn connect(&self) -> BoxFuture<Result<Connected, SourceError>> {
        let host = self.host.clone();
        Box::pin(async move {
            let fail = |e: &DockerError| {
                SourceError::transient(format!("cannot connect to the Docker daemon at {host}: {}", root_cause(e)))
            };
            let docker = match &host {
                DockerHost::Unix(path) => Docker::connect_with_unix(
                    &path.to_string_lossy(),
                    REQUEST_TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                ),
                DockerHost::Tcp(addr) => {
                    Docker::connect_with_http(addr, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                }
            }
            .map_err(|e| fail(&e))?;
            // Agree on a version the daemon speaks (Docker 20.10 stops at 1.41).
            let docker = docker.negotiate_version().await.map_err(|e| fail(&e))?;
            let info = docker.info().await.map_err(|e| fail(&e))?;
            let logs = LogsClient::new(&host, docker.client_version().to_string());
            Ok(Connected {
                source: Arc::new(DockerSource { docker, logs }),
                host_name: info.name.unwrap_or_default(),
                root_dir: info.docker_root_dir.filter(|d| !d.is_empty()),
            })
        })
    }
}

pub struct DockerSource {
    docker: Docker,
    logs: LogsClient,
}

impl Source for DockerSource {
    fn list(&self) -> BoxFuture<Result<Vec<Listed>, SourceError>> {
        let docker = self.docker.clone();
        Box::pin(async move {
            let all = docker
                .list_containers(Some(ListContainersOptions { all: true, ..Default::default() }))
                .await
                .map_err(|e| error("listing containers", &e))?;
            Ok(all
                .into_iter()
                .filter_map(|c| {
                    let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
                    c.id.map(|id| Listed { id, running })
                })
                .collect())
        })
    }

    fn events(&self, since_secs: i64) -> BoxStream<Result<Event, SourceError>> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), ["start", "restart", "rename", "destroy"].map(str::to_owned).to_vec()),
        ]);
        let options = EventsOptions { since: Some(since_secs.to_string()), until: None, filters: Some(filters) };
        Box::pin(self.docker.events(Some(options)).filter_map(|item| async move {
            match item {
                Err(e) => Some(Err(error("events stream", &e))),
                Ok(event) => {
                    let kind = match event.action.as_deref()? {
                        "start" | "restart" => EventKind::Start,
                        "rename" => EventKind::Rename,
                        "destroy" => EventKind::Destroy,
                        _ => return None,
                    };
                    let id = event.actor.and_then(|a| a.id).filter(|id| !id.is_empty())?;
                    Some(Ok(Event { kind, id }))
                }
            }
        }))
    }

    fn inspect(&self, id: &str) -> BoxFuture<Result<ContainerInfo, SourceError>> {
        let docker = self.docker.clone();
        let id = id.to_owned();
        Box::pin(async move {
            match docker.inspect_container(&id, None).await {
                Ok(resp) => Ok(info(resp)),
                Err(e) => Err(error(&format!("inspecting {id}"), &e)),
            }
        })
    }

    fn logs(&self, id: &str, request: LogsRequest) -> BoxStream<Result<Bytes, SourceError>> {
        self.logs.logs(id, request)
    }
}

fn error(context: &str, e: &DockerError) -> SourceError {
    match e {
        DockerError::DockerResponseServerError { status_code, message } => SourceError {
            class: classify_status(*status_code, message),
            message: format!("{context}: {status_code} {message}"),
        },
        other => SourceError::transient(format!("{context}: {}", root_cause(other))),
    }
}

/// What spout needs from an inspect answer.
fn info(resp: ContainerInspectResponse) -> ContainerInfo {
    let config = resp.config.unwrap_or_default();
    let state = resp.state.unwrap_or_default();
    let log_config = resp.host_config.and_then(|h| h.log_config);
    let time = |t: Option<String>| t.and_then(|t| parse_rfc3339_ns(t.as_bytes())).filter(|&ns| ns > 0);
    let mut command = resp.path.unwrap_or_default();
    for arg in resp.args.iter().flatten() {
        command.push(' ');
        command.push_str(arg);
    }
    ContainerInfo {
        meta: Container {
            id: resp.id.unwrap_or_default(),
            name: resp.name.unwrap_or_default().trim_start_matches('/').to_owned(),
            image_id: resp.image.unwrap_or_default(),
            image_name: config.image.unwrap_or_default(),
            command,
            created: resp.created.unwrap_or_default(),
            tty: config.tty.unwrap_or(false),
            labels: config.labels.unwrap_or_default(),
            // Enrichment's to decide (crate::enrich).
            ..Container::default()
        },
        running: state.running.unwrap_or(false),
        started_ns: time(state.started_at),
        finished_ns: time(state.finished_at),
        env: config.env.unwrap_or_default(),
        log_driver: log_config.as_ref().and_then(|l| l.typ.clone()),
        log_opts: log_config.and_then(|l| l.config).unwrap_or_default(),
        log_path: resp.log_path.filter(|p| !p.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerState, HostConfig, HostConfigLogConfig};

    #[test]
    fn an_inspect_answer_becomes_what_spout_needs() {
        let resp = ContainerInspectResponse {
            id: Some("28b8e9df64d0".into()),
            name: Some("/web-1".into()),
            image: Some("sha256:15c5".into()),
            path: Some("sh".into()),
            args: Some(vec!["-c".into(), "echo hi".into()]),
            created: Some("2026-11-29T20:30:25.1Z".into()),
            state: Some(ContainerState {
                running: Some(false),
                started_at: Some("2026-11-29T20:30:25.804920384Z".into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                ..Default::default()
            }),
            config: Some(ContainerConfig {
                image: Some("busybox:latest".into()),
                tty: Some(true),
                env: Some(vec!["A=1".into()]),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                log_config: Some(HostConfigLogConfig { typ: Some("json-file".into()), config: None }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let i = info(resp);
        assert_eq!((i.meta.name.as_str(), i.meta.command.as_str()), ("web-1", "sh -c echo hi"));
        assert_eq!((i.meta.image_name.as_str(), i.meta.image_id.as_str()), ("busybox:latest", "sha256:15c5"));
        assert!(i.meta.tty && !i.running);
        assert_eq!(i.started_ns, Some(1_795_984_225_804_920_384));
        assert_eq!(i.finished_ns, None, "Docker's zero time means never");
        assert_eq!((i.env, i.log_driver), (vec!["A=1".to_owned()], Some("json-file".to_owned())));
    }
}
