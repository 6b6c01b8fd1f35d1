//! Where the agent's options come from, and in which order: the command line, then the
//! environment (spout's own variables, then Logspout's), then the configuration file, then the
//! defaults. Every problem on the way is collected, unknown options among them, so that one run
//! lists them all.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, HealthArgs, RunArgs, StatusArgs};

/// What to do, with the problems found so far (to report with the configuration's own).
pub enum Invocation {
    Run(Settings),
    CheckConfig(Settings),
    Status(StatusArgs),
    Health(HealthArgs),
}

/// The agent's options, merged.
pub struct Settings {
    pub args: RunArgs,
    /// The file's routes, used when neither the command line nor ROUTE_URIS gives any.
    pub file_routes: Vec<String>,
    pub problems: Vec<String>,
    /// Every option as it takes effect, in the file's terms.
    effective: toml::Table,
}

impl Settings {
    /// The configuration as it takes effect, as a configuration file (the API token masked).
    pub fn describe(&self) -> String {
        format!("# spout's configuration as it takes effect\n{}", self.effective)
    }
}

/// The variables of the process, as far as the options need them.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses `argv` (program name first). `Err` only for what ends the run at once: --help,
/// --version, or a command line clap cannot make sense of beyond unknown options.
pub fn parse(argv: Vec<OsString>, env: Env) -> Result<Invocation, clap::Error> {
    let mut problems = Vec::new();
    let (argv, matches) = tolerant(argv, &mut problems)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let (sub, check) = match (&cli.command, matches.subcommand()) {
        (Some(Command::Status(status)), _) => return Ok(Invocation::Status(status.clone())),
        (Some(Command::Health(health)), _) => return Ok(Invocation::Health(health.clone())),
        (Some(Command::CheckConfig(_)), Some((_, sub))) => (sub.clone(), true),
        (Some(Command::Run(_)), Some((_, sub))) => (sub.clone(), false),
        _ => (matches.clone(), false),
    };
    let args = run_args(&cli, check);
    let mut fallback: Vec<String> = Vec::new();
    // By argument id (the field's name: `env_fields` for --env).
    let given = |id: &str| matches!(sub.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
    logspout_env(env, &given, &mut fallback);
    let mut file_routes = Vec::new();
    if let Some(path) = &args.config {
        let taken = |id: &str, long: &str| {
            // The two ways of giving the token are one option; RUST_LOG is --log-level's variable.
            let token = ["api_token", "api_token_file"];
            given(id)
                || mentions(&fallback, long)
                || (token.contains(&id) && token.iter().any(|t| given(t)))
                || (id == "log_level" && env("RUST_LOG").is_some())
        };
        match read_file(path, &taken) {
            Ok((extra, routes)) => {
                fallback.extend(extra);
                file_routes = routes;
            }
            Err(errors) => problems.extend(errors.into_iter().map(|e| format!("--config {}: {e}", path.display()))),
        }
    }
    let (args, sub) = if fallback.is_empty() {
        (args, sub)
    } else {
        let mut argv = argv;
        argv.extend(fallback.into_iter().map(OsString::from));
        let mut more = Vec::new();
        let (_, matches) = tolerant(argv, &mut more)?;
        let file = args.config.as_ref().map(|c| c.display().to_string()).unwrap_or_default();
        problems.extend(more.into_iter().map(|p| format!("--config {file}: {p}")));
        let sub = matches.subcommand().map_or_else(|| matches.clone(), |(_, sub)| sub.clone());
        (run_args(&Cli::from_arg_matches(&matches)?, check), sub)
    };
    let mut routes = args.route_uris(env("ROUTE_URIS").as_deref());
    if routes.is_empty() {
        routes.clone_from(&file_routes);
    }
    if routes.is_empty() {
        routes.push("stdout://".to_owned());
    }
    let effective = effective(&sub, routes);
    let settings = Settings { args, file_routes, problems, effective };
    Ok(if check { Invocation::CheckConfig(settings) } else { Invocation::Run(settings) })
}

/// Every option of `matches` that has a value, as the file would give it.
fn effective(matches: &ArgMatches, routes: Vec<String>) -> toml::Table {
    let command = Cli::command();
    let run = command.find_subcommand("run").cloned().unwrap_or(command);
    let mut table = toml::Table::new();
    for arg in run.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long().filter(|l| !matches!(*l, "config" | "help")) else { continue };
        let key = long.replace('-', "_");
        let value = match arg.get_action() {
            ArgAction::SetTrue => toml::Value::Boolean(matches.get_flag(id)),
            action => {
                let Ok(Some(raw)) = matches.try_get_raw(id) else { continue };
                let values: Vec<toml::Value> = raw
                    .map(|v| {
                        let v = v.to_string_lossy();
                        v.parse::<i64>().map_or_else(|_| toml::Value::String(v.into_owned()), toml::Value::Integer)
                    })
                    .collect();
                match (action, values.len()) {
                    (ArgAction::Append, _) => toml::Value::Array(values),
                    (_, 1) => values.into_iter().next().unwrap_or(toml::Value::Boolean(false)),
                    _ => continue,
                }
            }
        };
        let secret = matches!(long, "api-token");
        table.insert(key, if secret { toml::Value::String("********".to_owned()) } else { value });
    }
    table.insert("routes".to_owned(), toml::Value::Array(routes.into_iter().map(toml::Value::String).collect()));
    table
}

fn run_args(cli: &Cli, check: bool) -> RunArgs {
    match (&cli.command, check) {
        (Some(Command::CheckConfig(args)), true) | (Some(Command::Run(args)), false) => (**args).clone(),
        _ => cli.run.clone(),
    }
}

/// Whether `args` already set the option named `--long`.
fn mentions(args: &[String], long: &str) -> bool {
    args.iter().any(|a| *a == format!("--{long}") || a.starts_with(&format!("--{long}=")))
}

/// Parses, taking out (and reporting) every unknown option rather than stopping at the first.
fn tolerant(mut argv: Vec<OsString>, problems: &mut Vec<String>) -> Result<(Vec<OsString>, ArgMatches), clap::Error> {
    for _ in 0..64 {
        match Cli::command().try_get_matches_from(&argv) {
            Ok(matches) => return Ok((argv, matches)),
            Err(e) if e.kind() == clap::error::ErrorKind::UnknownArgument => {
                let Some(clap::error::ContextValue::String(bad)) = e.get(clap::error::ContextKind::InvalidArg) else {
                    return Err(e);
                };
                let bad = bad.clone();
                let at = argv
                    .iter()
                    .skip(1)
                    .position(|a| a.to_str().is_some_and(|a| a == bad || a.starts_with(&format!("{bad}="))));
                let Some(at) = at else { return Err(e) };
                argv.remove(at + 1);
                problems.push(format!("unknown option '{bad}'"));
            }
            Err(e) => return Err(e),
        }
    }
    Cli::command().try_get_matches_from(&argv).map(|m| (argv, m))
}

/// Logspout's variables, where they mean something here and spout's own are not set.
fn logspout_env(env: Env, given: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
    if !given("http") {
        let (bind, port) = (env("HTTP_BIND_ADDRESS"), env("PORT"));
        if bind.is_some() || port.is_some() {
            let bind = bind.unwrap_or_else(|| "0.0.0.0".to_owned());
            let port = port.unwrap_or_else(|| "80".to_owned());
            let bracketed = bind.contains(':') && !bind.starts_with('[');
            let addr = if bracketed { format!("[{bind}]:{port}") } else { format!("{bind}:{port}") };
            out.push(format!("--http={addr}"));
        }
    }
    if !given("log_level") && env("RUST_LOG").is_none() && env("DEBUG").is_some_and(|d| !d.is_empty()) {
        out.push("--log-level=debug".to_owned());
    }
    if !given("hostname") {
        if let Some(name) = env("SYSLOG_HOSTNAME").filter(|n| !n.is_empty()) {
            out.push(format!("--hostname={name}"));
        }
    }
}

/// The file's options as arguments, for those not `taken` already (by argument id and long
/// name), and its routes.
fn read_file(path: &Path, taken: &dyn Fn(&str, &str) -> bool) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read it: {e}")])?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| vec![syntax_error(&text, &e)])?;
    let command = Cli::command();
    let run = command.find_subcommand("run").cloned().unwrap_or(command);
    let mut args = Vec::new();
    let mut routes = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in &table {
        if key == "routes" {
            match strings(value) {
                Some(list) => routes = list,
                None => {
                    errors.push("routes: expected a list of URIs, routes = [\"gelf+tcp://graylog:12201\"]".to_owned())
                }
            }
            continue;
        }
        let long = key.replace('_', "-");
        let arg = run.get_arguments().find(|a| {
            !key.contains('-') && a.get_long() == Some(long.as_str()) && !matches!(long.as_str(), "config" | "help")
        });
        let Some(arg) = arg else {
            errors.push(format!("unknown key '{key}'"));
            continue;
        };
        if taken(arg.get_id().as_str(), &long) {
            continue;
        }
        // `--long=value`: a value that starts with '-' stays a value.
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(true)) => args.push(format!("--{long}")),
            (ArgAction::SetTrue, toml::Value::Boolean(false)) => {}
            (ArgAction::SetTrue, _) => errors.push(format!("{key}: expected true or false")),
            (ArgAction::Append, value) => match strings(value) {
                Some(list) => args.extend(list.into_iter().map(|v| format!("--{long}={v}"))),
                None => errors.push(format!("{key}: expected a value or a list of values")),
            },
            (_, value) => match scalar(value) {
                Some(v) => args.push(format!("--{long}={v}")),
                None => errors.push(format!("{key}: expected one value (a string, number or boolean)")),
            },
        }
    }
    if errors.is_empty() {
        Ok((args, routes))
    } else {
        Err(errors)
    }
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string, or a list of strings.
fn strings(value: &toml::Value) -> Option<Vec<String>> {
    let string = |v: &toml::Value| v.as_str().map(str::to_owned);
    match value {
        toml::Value::Array(items) => items.iter().map(string).collect(),
        other => string(other).map(|v| vec![v]),
    }
}

/// Where the file does not read as TOML: the message and the line, never the line's text (it
/// may hold the token).
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let line = e.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(line) => format!("line {line}: {}", e.message()),
        None => e.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("spout").chain(args.iter().copied()).map(OsString::from).collect()
    }

    fn settings(args: &[&str], env: &[(&str, &str)]) -> Settings {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match parse(argv(args), &lookup).expect("parses") {
            Invocation::Run(s) | Invocation::CheckConfig(s) => s,
            Invocation::Status(_) | Invocation::Health(_) => panic!("not the agent"),
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn the_file_fills_in_what_the_command_line_leaves() {
        let f = file("state_dir = \"/srv/spout\"\nbackoff_is_not_an_option = 1\n");
        let s = settings(&["--config", f.path().to_str().expect("utf-8")], &[]);
        assert_eq!(s.problems, [format!("--config {}: unknown key 'backoff_is_not_an_option'", f.path().display())]);
        let f = file("state_dir = \"/srv/spout\"\nbacklog = true\nfield = [\"a=1\", \"b=2\"]\nmax_line_bytes = 65536\nroutes = [\"gelf+tcp://g:1\"]\n");
        let path = f.path().to_str().expect("utf-8");
        let s = settings(&["--config", path, "--state-dir", "/cli"], &[]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.args.state_dir, std::path::PathBuf::from("/cli"), "the command line first");
        assert!(s.args.backlog);
        assert_eq!(s.args.field, ["a=1", "b=2"]);
        assert_eq!(s.args.max_line_bytes, 65536);
        assert_eq!(s.file_routes, ["gelf+tcp://g:1"]);
        let s = settings(&["check-config", "--config", path], &[]);
        assert_eq!(s.args.state_dir, std::path::PathBuf::from("/srv/spout"));
    }

    #[test]
    fn wrong_types_and_bad_toml_are_problems_named_by_key() {
        let f = file("backlog = \"yes\"\nstate_dir = [\"a\", \"b\"]\nroutes = 3\n");
        let s = settings(&["--config", f.path().to_str().expect("utf-8")], &[]);
        assert_eq!(s.problems.len(), 3, "{:?}", s.problems);
        let f = file("state_dir = \n");
        let s = settings(&["--config", f.path().to_str().expect("utf-8")], &[]);
        assert_eq!(s.problems.len(), 1);
        let s = settings(&["--config", "/nonexistent/spout.toml"], &[]);
        assert!(s.problems[0].contains("cannot read it"));
    }

    #[test]
    fn keys_are_the_long_names_with_underscores_and_values_stay_values() {
        let f = file("state-dir = \"/x\"\nenv = [\"JAVA_OPTS\"]\nmultiline_start = '-{3} BEGIN'\n");
        let s = settings(&["--config", f.path().to_str().expect("utf-8")], &[]);
        assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
        assert!(s.problems[0].ends_with("unknown key 'state-dir'"));
        let f = file("env = [\"JAVA_OPTS\"]\nmultiline_start = '-{3} BEGIN'\n");
        let s = settings(&["--config", f.path().to_str().expect("utf-8")], &[]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.args.env_fields, ["JAVA_OPTS"]);
        assert_eq!(s.args.multiline_start.as_deref(), Some("-{3} BEGIN"));
    }

    #[test]
    fn a_syntax_error_names_the_line_and_never_shows_it() {
        let f = file("http = \"127.0.0.1:1\"\napi_token = s3cret\n");
        let s = settings(&["--config", f.path().to_str().expect("utf-8")], &[]);
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].contains("line 2"), "{:?}", s.problems);
        assert!(!s.problems[0].contains("s3cret"), "{:?}", s.problems);
    }

    #[test]
    fn unknown_options_are_problems_among_the_others() {
        let s = settings(&["--frobnicate", "--state-dir", "/x", "--wat=1"], &[]);
        assert_eq!(s.problems, ["unknown option '--frobnicate'", "unknown option '--wat'"]);
        assert_eq!(s.args.state_dir, std::path::PathBuf::from("/x"));
    }

    #[test]
    fn logspouts_variables_where_spouts_are_not_set() {
        let s = settings(&[], &[("PORT", "8080"), ("DEBUG", "1"), ("SYSLOG_HOSTNAME", "node-7")]);
        assert_eq!(s.args.http, "0.0.0.0:8080");
        assert_eq!(s.args.log_level.as_deref(), Some("debug"));
        assert_eq!(s.args.hostname.as_deref(), Some("node-7"));
        let s = settings(&["--http", "127.0.0.1:9"], &[("PORT", "8080"), ("HTTP_BIND_ADDRESS", "10.0.0.1")]);
        assert_eq!(s.args.http, "127.0.0.1:9", "spout's own come first");
        let s = settings(&[], &[("HTTP_BIND_ADDRESS", "10.0.0.1")]);
        assert_eq!(s.args.http, "10.0.0.1:80");
        let s = settings(&[], &[("HTTP_BIND_ADDRESS", "[::1]"), ("PORT", "81")]);
        assert_eq!(s.args.http, "[::1]:81");
        let f = file("log_level = \"warn\"\n");
        let s = settings(&["--config", f.path().to_str().expect("utf-8")], &[("RUST_LOG", "trace")]);
        assert_eq!(s.args.log_level, None, "RUST_LOG is --log-level's variable: it beats the file");
    }
}
