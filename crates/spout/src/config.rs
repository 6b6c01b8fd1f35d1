//! One validated configuration, built from the command line; every problem reported at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Cli;
use crate::routes::uri::RouteSpec;

/// Lines are never cut below this: Docker itself splits at 16 KiB.
const MIN_MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub docker_host: DockerHost,
    pub state_dir: PathBuf,
    pub http: Option<SocketAddr>,
    pub hostname: Option<String>,
    pub backlog: bool,
    pub max_line_bytes: usize,
    pub shutdown_grace: Duration,
    pub checkpoint_interval: Duration,
    pub routes: Vec<RouteSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerHost {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl std::fmt::Display for DockerHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerHost::Unix(path) => write!(f, "unix://{}", path.display()),
            DockerHost::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

impl Config {
    /// Validates `cli` (with ROUTE_URIS from `env_routes`); on failure, every error found.
    pub fn from_cli(cli: &Cli, env_routes: Option<&str>) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        let mut routes = Vec::new();
        for uri in cli.route_uris(env_routes) {
            match uri.parse::<RouteSpec>() {
                Ok(spec) => routes.push(spec),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if routes.is_empty() && errors.is_empty() {
            routes.push(RouteSpec::stdout());
        }
        let docker_host = parse_docker_host(&cli.docker_host).map_err(|e| errors.push(e)).ok();
        let http = match cli.http.as_str() {
            "off" => None,
            addr => addr
                .parse::<SocketAddr>()
                .map_err(|_| errors.push(format!("--http: '{addr}' is not IP:PORT or off")))
                .ok(),
        };
        let hostname = cli.hostname.clone();
        if hostname.as_deref().is_some_and(|h| h.trim().is_empty()) {
            errors.push("--hostname: must not be empty".to_owned());
        }
        if cli.max_line_bytes < MIN_MAX_LINE {
            errors.push(format!("--max-line-bytes: {} is below the minimum of {MIN_MAX_LINE}", cli.max_line_bytes));
        }
        let shutdown_grace = humantime::parse_duration(&cli.shutdown_grace)
            .map_err(|e| errors.push(format!("--shutdown-grace: '{}': {e}", cli.shutdown_grace)))
            .ok();
        let checkpoint_interval = humantime::parse_duration(&cli.checkpoint_interval)
            .ok()
            .filter(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_secs(3600));
        if checkpoint_interval.is_none() {
            errors.push(format!(
                "--checkpoint-interval: '{}' is not a duration from 10ms to 1h",
                cli.checkpoint_interval
            ));
        }
        match (docker_host, shutdown_grace, checkpoint_interval, errors.is_empty()) {
            (Some(docker_host), Some(shutdown_grace), Some(checkpoint_interval), true) => Ok(Config {
                checkpoint_interval,
                docker_host,
                state_dir: cli.state_dir.clone(),
                http,
                hostname,
                backlog: cli.backlog,
                max_line_bytes: cli.max_line_bytes,
                shutdown_grace,
                routes,
            }),
            _ => Err(errors),
        }
    }
}

fn parse_docker_host(s: &str) -> Result<DockerHost, String> {
    if let Some(path) = s.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(format!("--docker-host: '{s}' has no socket path"));
        }
        return Ok(DockerHost::Unix(PathBuf::from(path)));
    }
    if let Some(addr) = s.strip_prefix("tcp://").or_else(|| s.strip_prefix("http://")) {
        if addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
            return Ok(DockerHost::Tcp(addr.trim_end_matches('/').to_owned()));
        }
    }
    Err(format!("--docker-host: '{s}' is not unix:///PATH or tcp://HOST:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("spout").chain(args.iter().copied())).expect("parses")
    }

    #[test]
    fn defaults_route_to_stdout() {
        let config = Config::from_cli(&cli(&[]), None).expect("valid");
        assert_eq!(config.routes.len(), 1);
        assert_eq!(config.routes[0], "stdout://".parse::<RouteSpec>().expect("valid"));
        assert_eq!(config.http, Some("127.0.0.1:8000".parse().expect("addr")));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.max_line_bytes, 1 << 20);
    }

    #[test]
    fn routes_come_from_arguments_and_route_uris() {
        let config = Config::from_cli(&cli(&["gelf://a:1"]), Some("gelf+tcp://b:2, stdout://")).expect("valid");
        let uris: Vec<&str> = config.routes.iter().map(|r| r.uri.as_str()).collect();
        assert_eq!(uris, vec!["gelf://a:1", "gelf+tcp://b:2", "stdout://"]);
    }

    #[test]
    fn all_errors_are_reported_together() {
        let c = cli(&[
            "gelf://a",
            "bogus://b:1",
            "--http",
            "nowhere",
            "--docker-host",
            "ftp://x",
            "--shutdown-grace",
            "soon",
        ]);
        let errors = Config::from_cli(&c, None).expect_err("invalid");
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].contains("gelf://a") && errors[0].contains("missing port"));
        assert!(errors[1].contains("unknown scheme 'bogus'"));
    }

    #[test]
    fn http_off_and_docker_hosts() {
        let config =
            Config::from_cli(&cli(&["--http", "off", "--docker-host", "tcp://127.0.0.1:2375"]), None).expect("valid");
        assert_eq!(config.http, None);
        assert_eq!(config.docker_host, DockerHost::Tcp("127.0.0.1:2375".into()));
        assert!(parse_docker_host("unix://").is_err());
        assert_eq!(parse_docker_host("unix:///run/d.sock"), Ok(DockerHost::Unix("/run/d.sock".into())));
    }
}
