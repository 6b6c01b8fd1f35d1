//! One validated configuration, built from the command line; every problem reported at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{split_route_uris, RunArgs as Cli};
use crate::docker::files::SourceMode;
use crate::enrich::fields::{self, Extract, FieldRules, Pick};
use crate::enrich::{Enrichment, LabelMatch, Multiline};
use crate::routes::uri::RouteSpec;
use crate::settings::Sources;

/// Lines are never cut below this: Docker itself splits at 16 KiB.
const MIN_MAX_LINE: usize = 16 * 1024;
/// Routes at most: a container's filter decisions are a bit per route.
const MAX_ROUTES: usize = crate::slots::MAX_ROUTES;

#[derive(Debug, Clone)]
pub struct Config {
    pub docker_host: DockerHost,
    /// Where containers' logs are read from.
    pub source: SourceMode,
    pub state_dir: PathBuf,
    pub http: Option<SocketAddr>,
    /// The API's Unix socket (no token needed: only root can connect), if any.
    pub api_socket: Option<PathBuf>,
    /// What /logs, /containers and /routes require, if anything.
    pub api_token: Option<String>,
    pub hostname: Option<String>,
    pub backlog: bool,
    pub max_line_bytes: usize,
    pub shutdown_grace: Duration,
    pub checkpoint_interval: Duration,
    pub routes: Vec<RouteSpec>,
    /// The configuration file's routes (when neither the command line nor ROUTE_URIS gives any).
    pub file_routes: Vec<RouteSpec>,
    /// What to make of each container.
    pub enrichment: Enrichment,
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
        Config::from_cli_and_env(cli, env_routes, None)
    }

    /// Validates merged settings ([`crate::settings`]), with ROUTE_URIS and EXCLUDE_LABEL from
    /// the environment; on failure, every problem found, those of the merging first.
    pub fn from_settings(
        settings: &crate::settings::Settings,
        env_routes: Option<&str>,
        env_exclude: Option<&str>,
    ) -> Result<Config, Vec<String>> {
        let mut errors = settings.problems.clone();
        let mut file_routes = Vec::new();
        let cli_routes = settings.args.route_uris(env_routes);
        if cli_routes.is_empty() {
            for uri in &settings.file_routes {
                match uri.parse::<RouteSpec>() {
                    Ok(spec) => file_routes.push(spec),
                    Err(e) => errors.push(format!("{}: {e}", settings.sources.file_routes())),
                }
            }
            check_routes(&file_routes, &mut errors);
        }
        let config = Config::validate(&settings.args, &settings.sources, env_routes, env_exclude);
        match config {
            Ok(mut config) if errors.is_empty() => {
                if !file_routes.is_empty() {
                    // The default stdout route stands in only for no route at all.
                    config.routes.clear();
                    config.file_routes = file_routes;
                }
                Ok(config)
            }
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Validates `cli`, with ROUTE_URIS from `env_routes` and Logspout's EXCLUDE_LABEL from
    /// `env_exclude` (comma-separated); on failure, every error found.
    pub fn from_cli_and_env(
        cli: &Cli,
        env_routes: Option<&str>,
        env_exclude: Option<&str>,
    ) -> Result<Config, Vec<String>> {
        Config::validate(cli, &Sources::default(), env_routes, env_exclude)
    }

    /// Every problem names the option by where its value came from (`sources`).
    fn validate(
        cli: &Cli,
        sources: &Sources,
        env_routes: Option<&str>,
        env_exclude: Option<&str>,
    ) -> Result<Config, Vec<String>> {
        let mut errors = Vec::new();
        let mut routes = Vec::new();
        let from_env = split_route_uris(env_routes);
        let given = cli.routes.iter().map(|uri| (uri, "")).chain(from_env.iter().map(|uri| (uri, "ROUTE_URIS: ")));
        for (uri, source) in given {
            match uri.parse::<RouteSpec>() {
                Ok(spec) => routes.push(spec),
                Err(e) => errors.push(format!("{source}{e}")),
            }
        }
        if routes.is_empty() && errors.is_empty() {
            routes.push(RouteSpec::stdout());
        }
        check_routes(&routes, &mut errors);
        let name = |id: &str| sources.name(id);
        let docker_host = ok(&mut errors, &name("docker_host"), parse_docker_host(&cli.docker_host));
        let source = ok(&mut errors, &name("source"), cli.source.parse::<SourceMode>());
        let http = match cli.http.as_str() {
            "off" => None,
            addr => ok(
                &mut errors,
                &name("http"),
                addr.parse::<SocketAddr>().map_err(|_| format!("'{addr}' is not IP:PORT or off")),
            ),
        };
        let api_socket = crate::cli::api_socket(&cli.state_dir, cli.api_socket.as_deref());
        if let Some(path) = &api_socket {
            if path.as_os_str().len() > MAX_SOCKET_PATH {
                let source = if cli.api_socket.is_some() { name("api_socket") } else { name("state_dir") };
                errors.push(format!(
                    "{source}: the API socket '{}' is longer than the {MAX_SOCKET_PATH} bytes a socket's path may have (give a shorter --api-socket, or off)",
                    path.display()
                ));
            }
        }
        let token_source = if cli.token.api_token.is_some() { name("api_token") } else { name("api_token_file") };
        let api_token = ok(
            &mut errors,
            &token_source,
            api_token(cli.token.api_token.as_deref(), cli.token.api_token_file.as_deref()),
        )
        .flatten();
        let hostname = cli.hostname.clone();
        if hostname.as_deref().is_some_and(|h| h.trim().is_empty()) {
            errors.push(format!("{}: must not be empty", name("hostname")));
        }
        let max_line_bytes =
            ok(&mut errors, &name("max_line_bytes"), count(&cli.max_line_bytes, MIN_MAX_LINE, usize::MAX));
        let shutdown_grace = ok(
            &mut errors,
            &name("shutdown_grace"),
            duration(&cli.shutdown_grace, Duration::ZERO, Duration::from_secs(24 * 3600), "0s to 24h"),
        );
        let checkpoint_interval = ok(
            &mut errors,
            &name("checkpoint_interval"),
            duration(&cli.checkpoint_interval, Duration::from_millis(10), Duration::from_secs(3600), "10ms to 1h"),
        );
        if let Some(level) = &cli.log_level {
            let filter = tracing_subscriber::EnvFilter::try_new(level);
            ok(&mut errors, &name("log_level"), filter.map_err(|e| format!("'{level}': {e}")));
        }
        let mut enrichment = enrichment(cli, &name, &mut errors);
        for spec in env_exclude.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            enrichment.exclude_labels.extend(ok(&mut errors, "EXCLUDE_LABEL", LabelMatch::logspout(spec)));
        }
        match (docker_host, source, shutdown_grace, checkpoint_interval, max_line_bytes, errors.is_empty()) {
            (
                Some(docker_host),
                Some(source),
                Some(shutdown_grace),
                Some(checkpoint_interval),
                Some(max_line_bytes),
                true,
            ) => Ok(Config {
                source,
                enrichment,
                file_routes: Vec::new(),
                checkpoint_interval,
                docker_host,
                state_dir: cli.state_dir.clone(),
                http,
                api_socket,
                api_token,
                hostname,
                backlog: cli.backlog,
                max_line_bytes,
                shutdown_grace,
                routes,
            }),
            _ => Err(errors),
        }
    }
}

/// The longest path a Unix socket may have (`sun_path`, less its closing NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A whole number from `min` to `max`.
fn count(text: &str, min: usize, max: usize) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n < min => Err(format!("{n} is below the minimum of {min}")),
        Ok(n) if n > max => Err(format!("{n} is not a number from {min} to {max}")),
        Ok(n) => Ok(n),
        Err(_) if max == usize::MAX => Err(format!("'{text}' is not a number (at least {min})")),
        Err(_) => Err(format!("'{text}' is not a number from {min} to {max}")),
    }
}

/// A duration from `min` to `max` (`range` says so in words).
fn duration(text: &str, min: Duration, max: Duration, range: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .ok()
        .filter(|d| *d >= min && *d <= max)
        .ok_or_else(|| format!("'{text}' is not a duration from {range}"))
}

/// The API token, from `--api-token` or the first line of `--api-token-file`.
pub fn api_token(token: Option<&str>, file: Option<&std::path::Path>) -> Result<Option<String>, String> {
    let token = match (token, file) {
        (Some(_), Some(_)) => return Err("give the token or a file holding it, not both".to_owned()),
        (Some(token), None) => token.to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        (None, None) => return Ok(None),
    };
    let token = token.trim();
    if token.is_empty() {
        return Err("the token is empty".to_owned());
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err("the token may not hold spaces or control characters".to_owned());
    }
    Ok(Some(token.to_owned()))
}

/// Routes given twice, or too many.
fn check_routes(routes: &[RouteSpec], errors: &mut Vec<String>) {
    for (i, route) in routes.iter().enumerate() {
        if routes[..i].iter().any(|r| r.uri == route.uri) {
            errors.push(format!("route {:?} is given twice", route.shown));
        }
    }
    if routes.len() > MAX_ROUTES {
        errors.push(format!("{} routes given: spout takes at most {MAX_ROUTES}", routes.len()));
    }
}

/// The value of `result`, or `None` with its error, naming `option`, added to `errors`.
fn ok<T>(errors: &mut Vec<String>, option: &str, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(format!("{option}: {e}"))).ok()
}

/// The enrichment options, validated; what is wrong goes to `errors`, each naming its option.
fn enrichment(cli: &Cli, name: &dyn Fn(&str) -> String, errors: &mut Vec<String>) -> Enrichment {
    let exclude_labels = cli
        .exclude_label
        .iter()
        .filter_map(|spec| ok(errors, &name("exclude_label"), LabelMatch::parse(spec)))
        .collect();
    let mut extracts: Vec<Extract> =
        cli.extract.iter().filter_map(|spec| ok(errors, &name("extract"), Extract::parse(spec))).collect();
    if let Some(pattern) = &cli.name_pattern {
        let regex = ok(errors, &name("name_pattern"), fields::named_groups(pattern));
        extracts.extend(regex.map(|regex| Extract { subject: fields::Subject::Name, regex }));
    }
    let mut statics: Vec<(String, String)> = Vec::new();
    for spec in &cli.field {
        let parsed = spec
            .split_once('=')
            .ok_or_else(|| format!("'{spec}' is not KEY=VALUE"))
            .and_then(|(key, value)| Ok((fields::check_name(key)?, value.to_owned())))
            .and_then(|(field, value)| match statics.iter().any(|(n, _)| *n == field) {
                true => Err(format!("field '{}' is given twice", &field[1..])),
                false => Ok((field, value)),
            });
        statics.extend(ok(errors, &name("field"), parsed));
    }
    let labels = Pick {
        keys: cli.labels.iter().filter(|k| !k.is_empty()).cloned().collect(),
        regex: cli.labels_regex.as_deref().and_then(|re| ok(errors, &name("labels_regex"), fields::regex(re))),
    };
    let env = Pick {
        keys: cli.env_fields.iter().filter(|k| !k.is_empty()).cloned().collect(),
        regex: cli.env_regex.as_deref().and_then(|re| ok(errors, &name("env_regex"), fields::regex(re))),
    };
    let start = cli.multiline_start.as_deref().and_then(|re| ok(errors, &name("multiline_start"), fields::regex(re)));
    let timeout = duration(&cli.multiline_timeout, Duration::from_millis(10), Duration::from_secs(60), "10ms to 60s");
    let timeout = ok(errors, &name("multiline_timeout"), timeout).unwrap_or_default();
    let max_lines = ok(errors, &name("multiline_max_lines"), count(&cli.multiline_max_lines, 1, 100_000)).unwrap_or(1);
    Enrichment {
        exclude_labels,
        include_ecs_internal: cli.include_ecs_internal,
        fields: FieldRules { statics, labels, env, extracts },
        multiline: Multiline { start, timeout, max_lines },
    }
}

fn parse_docker_host(s: &str) -> Result<DockerHost, String> {
    if let Some(path) = s.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(format!("'{s}' has no socket path"));
        }
        return Ok(DockerHost::Unix(PathBuf::from(path)));
    }
    if let Some(addr) = s.strip_prefix("tcp://").or_else(|| s.strip_prefix("http://")) {
        if addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
            return Ok(DockerHost::Tcp(addr.trim_end_matches('/').to_owned()));
        }
    }
    Err(format!("'{s}' is not unix:///PATH or tcp://HOST:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once("spout").chain(args.iter().copied())).expect("parses");
        assert!(cli.command.is_none());
        cli.run
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
    fn enrichment_options_are_validated_together_naming_each_option() {
        let c = cli(&[
            "--extract",
            "name=(?P<environment>[a-z]+",
            "--extract",
            "host=(?P<x>.)",
            "--name-pattern",
            "^ecs-.*",
            "--field",
            "bad name=1",
            "--field",
            "novalue",
            "--field",
            "container_id=x",
            "--field",
            "a=1",
            "--field",
            "a=2",
            "--labels-regex",
            "[",
            "--env-regex",
            "(",
            "--multiline-start",
            "*",
            "--multiline-timeout",
            "2h",
            "--exclude-label",
            "=x",
            "--multiline-max-lines",
            "0",
        ]);
        let errors = Config::from_cli(&c, None).expect_err("invalid");
        let expected = [
            "--exclude-label: '=x'",
            "--extract: bad regex '(?P<environment>[a-z]+'",
            "--extract: unknown source 'host'",
            "--name-pattern: regex '^ecs-.*' has no named group",
            "--field: field name 'bad name'",
            "--field: 'novalue' is not KEY=VALUE",
            "--field: field name 'container_id' is one of the standard fields",
            "--field: field 'a' is given twice",
            "--labels-regex: bad regex '['",
            "--env-regex: bad regex '('",
            "--multiline-start: bad regex '*'",
            "--multiline-timeout: '2h'",
            "--multiline-max-lines: 0",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.starts_with(expected), "{error:?} does not start with {expected:?}");
        }
    }

    #[test]
    fn enrichment_from_the_command_line() {
        let c = cli(&[
            "gelf://a:1?filter.name=web-*",
            "stdout://",
            "--field",
            "region=eu-west-1",
            "--labels",
            "a,b",
            "--labels",
            "c",
            "--name-pattern",
            "^(?P<service>[a-z]+)-",
            "--extract",
            "label:x=(?P<y>.*)",
            "--multiline-start",
            r"^\S",
            "--exclude-label",
            "a=b",
        ]);
        let e = Config::from_cli(&c, None).expect("valid").enrichment;
        assert_eq!(e.fields.statics, [("_region".to_owned(), "eu-west-1".to_owned())]);
        assert_eq!(e.fields.labels.keys.len(), 3);
        assert_eq!(e.fields.extracts.len(), 2);
        assert_eq!(e.exclude_labels, [LabelMatch { key: "a".into(), value: Some("b".into()), any_case: false }]);
        let logspout = Config::from_cli_and_env(&cli(&[]), None, Some("k8s-app, team:data")).expect("valid");
        assert_eq!(
            logspout.enrichment.exclude_labels,
            [LabelMatch::logspout("k8s-app").expect("valid"), LabelMatch::logspout("team:data").expect("valid")]
        );
        assert_eq!(e.multiline.start.map(|r| r.to_string()), Some(r"^\S".to_owned()));
        assert_eq!(e.multiline.timeout, Duration::from_secs(1));
    }

    #[test]
    fn route_uris_keep_commas_inside_a_uri() {
        let c = cli(&[]);
        let uris = c.route_uris(Some("gelf://a:1?filter.sources=stdout,stderr, gelf+tcp://b:2?filter.labels=a:1,b:2,"));
        assert_eq!(uris, ["gelf://a:1?filter.sources=stdout,stderr", "gelf+tcp://b:2?filter.labels=a:1,b:2"]);
        assert_eq!(c.route_uris(Some("gelf://a:1,,stdout://")), ["gelf://a:1", "stdout://"], "empty parts separate");
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
