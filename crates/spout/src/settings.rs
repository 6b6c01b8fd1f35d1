//! Where the agent's options come from, and in which order: the command line, then the
//! environment (spout's own variables, then Logspout's), then the configuration file, then the
//! defaults. Every problem on the way is collected, unknown options and wrong types among them,
//! so that one run lists them all, each naming where its value came from.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, HealthArgs, ReceiveArgs, RoutesArgs, RunArgs, StatusArgs};
use crate::suggest::did_you_mean;

/// What to do.
pub enum Invocation {
    Run(Settings),
    CheckConfig(Settings),
    Status(StatusArgs),
    Health(HealthArgs),
    Routes(RoutesArgs),
    Receive(Box<ReceiveArgs>),
}

/// Why nothing can run.
#[derive(Debug)]
pub enum Stop {
    /// `--help` or `--version`: clap prints it.
    Show(clap::Error),
    /// The command line of a subcommand other than the agent's cannot be used; one line each.
    Problems(Vec<String>),
}

/// The agent's options, merged.
pub struct Settings {
    pub args: RunArgs,
    /// The file's routes, used when neither the command line nor ROUTE_URIS gives any.
    pub file_routes: Vec<String>,
    /// What is wrong so far, before the values themselves are checked.
    pub problems: Vec<String>,
    /// Where each option's value came from.
    pub sources: Sources,
    /// Every option as it takes effect, in the file's terms.
    effective: toml::Table,
}

impl Settings {
    /// The configuration as it takes effect, as a configuration file (the API token masked).
    pub fn describe(&self) -> String {
        format!("# spout's configuration as it takes effect\n{}", self.effective)
    }
}

/// Where each of the agent's options got its value, by argument id, to name it in a problem:
/// `--max-line-bytes`, `SPOUT_MAX_LINE_BYTES`, `PORT`, or `spout.toml: max_line_bytes`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    named: HashMap<String, String>,
    /// The configuration file, as given.
    file: Option<String>,
}

impl Sources {
    /// How to name option `id` (the field's name: `env_fields` for --env) in a problem.
    pub fn name(&self, id: &str) -> String {
        self.named.get(id).cloned().unwrap_or_else(|| {
            run_command()
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_long())
                .map_or_else(|| id.to_owned(), |long| format!("--{long}"))
        })
    }

    /// How to name the file's routes: `spout.toml: routes`.
    pub fn file_routes(&self) -> String {
        format!("{}: routes", self.file.as_deref().unwrap_or("--config"))
    }
}

/// The variables of the process, as far as the options need them.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses `argv` (program name first). The agent's problems are collected in its
/// [`Settings`], to be listed with those of the values; other subcommands stop at theirs.
pub fn parse(argv: Vec<OsString>, env: Env) -> Result<Invocation, Stop> {
    let mut problems = Vec::new();
    let (argv, matches) = tolerant(argv, &mut problems)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Stop::Problems(vec![one_line(&e)]))?;
    let client = |invocation| if problems.is_empty() { Ok(invocation) } else { Err(Stop::Problems(problems.clone())) };
    let (sub, check) = match (&cli.command, matches.subcommand()) {
        (Some(Command::Status(status)), _) => return client(Invocation::Status(status.clone())),
        (Some(Command::Health(health)), _) => return client(Invocation::Health(health.clone())),
        (Some(Command::Routes(routes)), _) => return client(Invocation::Routes(routes.clone())),
        (Some(Command::Receive(receive)), _) => return client(Invocation::Receive(receive.clone())),
        (Some(Command::CheckConfig(_)), Some((_, sub))) => (sub.clone(), true),
        (Some(Command::Run(_)), Some((_, sub))) => (sub.clone(), false),
        _ => (matches.clone(), false),
    };
    let args = run_args(&cli, check);
    let mut sources = Sources::default();
    let run = run_command();
    for arg in run.get_arguments() {
        let (id, env_name) = (arg.get_id().as_str(), arg.get_env().map(|e| e.to_string_lossy().into_owned()));
        if let (Some(ValueSource::EnvVariable), Some(var)) = (sub.value_source(id), env_name) {
            sources.named.insert(id.to_owned(), var);
        }
    }
    let given = |id: &str| matches!(sub.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
    let mut fallback: Vec<String> = Vec::new();
    logspout_env(env, &given, &mut fallback, &mut sources);
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
        let file = read_file(path, &taken);
        let shown = path.display().to_string();
        problems.extend(file.problems.into_iter().map(|p| format!("{shown}: {p}")));
        for (id, key) in file.named {
            sources.named.insert(id, format!("{shown}: {key}"));
        }
        sources.file = Some(shown);
        fallback.extend(file.args);
        file_routes = file.routes;
    }
    let (args, sub) = if fallback.is_empty() {
        (args, sub)
    } else {
        let mut argv = argv;
        argv.extend(fallback.into_iter().map(OsString::from));
        // What was added parses: each is `--long=value` of a known option, checked above.
        let (_, matches) = tolerant(argv, &mut problems)?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| Stop::Problems(vec![one_line(&e)]))?;
        let sub = matches.subcommand().map_or_else(|| matches.clone(), |(_, sub)| sub.clone());
        (run_args(&cli, check), sub)
    };
    let mut routes = args.route_uris(env("ROUTE_URIS").as_deref());
    if routes.is_empty() {
        routes.clone_from(&file_routes);
    }
    if routes.is_empty() {
        routes.push("stdout://".to_owned());
    }
    let effective = effective(&sub, routes);
    let settings = Settings { args, file_routes, problems, sources, effective };
    Ok(if check { Invocation::CheckConfig(settings) } else { Invocation::Run(settings) })
}

/// The `run` subcommand: every option of the agent.
fn run_command() -> clap::Command {
    let command = Cli::command();
    command.find_subcommand("run").cloned().unwrap_or(command)
}

/// Every option of `matches` that has a value, as the file would give it.
fn effective(matches: &ArgMatches, routes: Vec<String>) -> toml::Table {
    let mut table = toml::Table::new();
    for arg in run_command().get_arguments() {
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
    // Header values are secrets too.
    let routes = routes.iter().map(|uri| toml::Value::String(crate::routes::uri::shown(uri))).collect();
    table.insert("routes".to_owned(), toml::Value::Array(routes));
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

/// Parses, taking out (and reporting) every argument clap refuses, unknown options and options
/// without their value among them, rather than stopping at the first. Only what cannot be taken
/// out (and --help, --version) stops it.
fn tolerant(mut argv: Vec<OsString>, problems: &mut Vec<String>) -> Result<(Vec<OsString>, ArgMatches), Stop> {
    loop {
        let e = match Cli::command().try_get_matches_from(&argv) {
            Ok(matches) => return Ok((argv, matches)),
            Err(e) => e,
        };
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
            || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        {
            return Err(Stop::Show(e));
        }
        problems.push(one_line(&e));
        let bad = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(bad)) => bad.split_whitespace().next().unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        let at = argv.iter().skip(1).position(|a| {
            a.to_str().is_some_and(|a| !bad.is_empty() && (a == bad || a.starts_with(&format!("{bad}="))))
        });
        let Some(at) = at.map(|at| at + 1) else { return Err(Stop::Problems(std::mem::take(problems))) };
        let removed = argv.remove(at);
        // `--api-tokn x`: the option meant takes a value, so `x` is its value, not a route.
        let value_of_it = e.kind() == ErrorKind::UnknownArgument
            && !removed.to_string_lossy().contains('=')
            && takes_value(&e)
            && argv.get(at).is_some_and(|next| !next.to_string_lossy().starts_with('-'));
        if value_of_it {
            argv.remove(at);
        }
    }
}

/// Whether the option clap suggests for an unknown one takes a value.
fn takes_value(e: &clap::Error) -> bool {
    let Some(ContextValue::String(meant)) = e.get(ContextKind::SuggestedArg) else { return false };
    let long = meant.trim_start_matches('-');
    let command = Cli::command();
    let mut commands = std::iter::once(&command).chain(command.get_subcommands());
    commands
        .any(|c| c.get_arguments().any(|a| a.get_long() == Some(long) && !matches!(a.get_action(), ArgAction::SetTrue)))
}

/// clap's error as one line: what is wrong, with its suggestion, without the usage.
pub fn one_line(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::UnknownArgument {
        if let Some(ContextValue::String(bad)) = e.get(ContextKind::InvalidArg) {
            let what = if bad.starts_with('-') { "unknown option" } else { "unexpected argument" };
            let suggestion = match e.get(ContextKind::SuggestedArg) {
                Some(ContextValue::String(s)) => format!(" (did you mean '{s}'?)"),
                _ => String::new(),
            };
            return format!("{what} '{bad}'{suggestion}");
        }
    }
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_start_matches("error: "))
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect();
    lines.join("; ")
}

/// Logspout's variables, where they mean something here and spout's own are not set.
fn logspout_env(env: Env, given: &dyn Fn(&str) -> bool, out: &mut Vec<String>, sources: &mut Sources) {
    let mut set = |id: &str, name: &str, arg: String| {
        sources.named.insert(id.to_owned(), name.to_owned());
        out.push(arg);
    };
    if !given("http") {
        let (bind, port) = (env("HTTP_BIND_ADDRESS"), env("PORT"));
        let name = match (&bind, &port) {
            (Some(_), Some(_)) => "HTTP_BIND_ADDRESS and PORT",
            (Some(_), None) => "HTTP_BIND_ADDRESS",
            _ => "PORT",
        };
        if bind.is_some() || port.is_some() {
            let bind = bind.unwrap_or_else(|| "0.0.0.0".to_owned());
            let port = port.unwrap_or_else(|| "80".to_owned());
            let bracketed = bind.contains(':') && !bind.starts_with('[');
            let addr = if bracketed { format!("[{bind}]:{port}") } else { format!("{bind}:{port}") };
            set("http", name, format!("--http={addr}"));
        }
    }
    if !given("log_level") && env("RUST_LOG").is_none() && env("DEBUG").is_some_and(|d| !d.is_empty()) {
        set("log_level", "DEBUG", "--log-level=debug".to_owned());
    }
    if !given("hostname") {
        if let Some(name) = env("SYSLOG_HOSTNAME").filter(|n| !n.is_empty()) {
            set("hostname", "SYSLOG_HOSTNAME", format!("--hostname={name}"));
        }
    }
}

/// What the configuration file gives: its options as arguments (for those not taken already),
/// which option each key set, its routes, and what is wrong with it, key by key.
#[derive(Default)]
struct FileOptions {
    args: Vec<String>,
    /// (argument id, key)
    named: Vec<(String, String)>,
    routes: Vec<String>,
    problems: Vec<String>,
}

/// The file's options, for those not `taken` already (by argument id and long name). A key
/// that is wrong is reported and left out; the others still apply.
fn read_file(path: &Path, taken: &dyn Fn(&str, &str) -> bool) -> FileOptions {
    let mut out = FileOptions::default();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            out.problems.push(format!("cannot read it: {e}"));
            return out;
        }
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            out.problems.push(syntax_error(&text, &e));
            return out;
        }
    };
    let run = run_command();
    let options: Vec<&clap::Arg> =
        run.get_arguments().filter(|a| a.get_long().is_some_and(|l| !matches!(l, "config" | "help"))).collect();
    let keys: Vec<String> = options.iter().filter_map(|a| a.get_long()).map(|l| l.replace('-', "_")).collect();
    for (key, value) in &table {
        if key == "routes" {
            match strings(value) {
                Some(list) => out.routes = list,
                None => out.problems.push(format!(
                    "routes: expected a list of route URIs, e.g. routes = [\"gelf+tcp://graylog:12201\"], got {}",
                    shown(key, value)
                )),
            }
            continue;
        }
        let Some(arg) = options
            .iter()
            .find(|a| !key.contains('-') && a.get_long().map(|l| l.replace('-', "_")) == Some(key.clone()))
        else {
            let known = keys.iter().map(String::as_str).chain(["routes"]);
            out.problems.push(format!("unknown key '{key}'{}", did_you_mean(key, known)));
            continue;
        };
        let long = key.replace('_', "-");
        // cli.rs names the value of every numeric option N: the file must give those a number.
        let number = arg.get_value_names().is_some_and(|names| names.iter().any(|n| n == "N"));
        // `--long=value`: a value that starts with '-' stays a value.
        let parsed = match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(b)) => {
                Ok(if *b { vec![format!("--{long}")] } else { Vec::new() })
            }
            (ArgAction::SetTrue, _) => Err("true or false"),
            (ArgAction::Append, value) => match strings(value) {
                Some(list) => Ok(list.into_iter().map(|v| format!("--{long}={v}")).collect()),
                None => Err("a list of strings, e.g. [\"a\", \"b\"]"),
            },
            (_, toml::Value::Integer(n)) if number => Ok(vec![format!("--{long}={n}")]),
            (_, _) if number => Err("a number"),
            (_, toml::Value::String(s)) => Ok(vec![format!("--{long}={s}")]),
            (_, _) => Err("a string"),
        };
        match parsed {
            Ok(args) => {
                if !taken(arg.get_id().as_str(), &long) {
                    out.args.extend(args);
                    out.named.push((arg.get_id().to_string(), key.clone()));
                }
            }
            Err(expected) => out.problems.push(format!("{key}: expected {expected}, got {}", shown(key, value))),
        }
    }
    out
}

/// A value as a problem shows it (never the token's).
fn shown(key: &str, value: &toml::Value) -> String {
    match value {
        _ if key == "api_token" => "a value not shown here".to_owned(),
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(n) => format!("the number {n}"),
        toml::Value::Float(n) => format!("the number {n}"),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "a list".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

/// A list of strings.
fn strings(value: &toml::Value) -> Option<Vec<String>> {
    match value {
        toml::Value::Array(items) => items.iter().map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => None,
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
        match parse(argv(args), &lookup).map_err(|e| format!("{e:?}")).expect("parses") {
            Invocation::Run(s) | Invocation::CheckConfig(s) => s,
            Invocation::Status(_) | Invocation::Health(_) | Invocation::Routes(_) | Invocation::Receive(_) => {
                panic!("not the agent")
            }
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
        assert_eq!(s.problems, [format!("{}: unknown key 'backoff_is_not_an_option'", f.path().display())]);
        let f = file("state_dir = \"/srv/spout\"\nbacklog = true\nfield = [\"a=1\", \"b=2\"]\nmax_line_bytes = 65536\nroutes = [\"gelf+tcp://g:1\"]\n");
        let path = f.path().to_str().expect("utf-8");
        let s = settings(&["--config", path, "--state-dir", "/cli"], &[]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.args.state_dir, std::path::PathBuf::from("/cli"), "the command line first");
        assert!(s.args.backlog);
        assert_eq!(s.args.field, ["a=1", "b=2"]);
        assert_eq!(s.args.max_line_bytes, "65536");
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
        assert!(s.problems[0].ends_with("unknown key 'state-dir' (did you mean 'state_dir'?)"), "{:?}", s.problems);
        let f = file("env = [\"JAVA_OPTS\"]\nmultiline_start = '-{3} BEGIN'\n");
        let s = settings(&["--config", f.path().to_str().expect("utf-8")], &[]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.args.env_fields, ["JAVA_OPTS"]);
        assert_eq!(s.args.multiline_start.as_deref(), Some("-{3} BEGIN"));
    }

    #[test]
    fn every_problem_of_every_source_names_it_and_the_good_keys_still_apply() {
        let f = file(
            "stat_dir = \"/x\"\nmax_line_bytes = \"big\"\nroutes = \"gelf://a:1\"\nhostname = \"from-file\"\nfield = \"a=1\"\nbacklog = 1\nhttp = 8000\napi_token = 5\n",
        );
        let path = f.path().display().to_string();
        // (clap reads spout's own variables from the process's environment: tests/it/cli.rs has them.)
        let s = settings(&["--config", &path, "--api-tokn", "x", "--multiline-max-lines", "lots"], &[]);
        let expected = [
            "unknown option '--api-tokn' (did you mean '--api-token'?)".to_owned(),
            format!("{path}: api_token: expected a string, got a value not shown here"),
            format!("{path}: backlog: expected true or false, got the number 1"),
            format!("{path}: field: expected a list of strings, e.g. [\"a\", \"b\"], got the string \"a=1\""),
            format!("{path}: http: expected a string, got the number 8000"),
            format!("{path}: max_line_bytes: expected a number, got the string \"big\""),
            format!("{path}: routes: expected a list of route URIs, e.g. routes = [\"gelf+tcp://graylog:12201\"], got the string \"gelf://a:1\""),
            format!("{path}: unknown key 'stat_dir' (did you mean 'state_dir'?)"),
        ];
        assert_eq!(s.problems, expected);
        assert_eq!(s.args.hostname.as_deref(), Some("from-file"), "the good keys apply");
        assert_eq!(s.sources.name("hostname"), format!("{path}: hostname"));
        assert_eq!(s.sources.name("multiline_max_lines"), "--multiline-max-lines");
        assert_eq!(s.sources.name("env_fields"), "--env");
        assert_eq!(s.sources.file_routes(), format!("{path}: routes"));
    }

    #[test]
    fn an_option_without_its_value_is_a_problem_among_the_others() {
        let s = settings(&["--wat", "--state-dir"], &[]);
        assert_eq!(s.problems.len(), 2, "{:?}", s.problems);
        assert_eq!(s.problems[0], "unknown option '--wat'");
        assert!(s.problems[1].contains("--state-dir") && !s.problems[1].contains('\n'), "{:?}", s.problems);
    }

    #[test]
    fn other_subcommands_stop_at_their_problems_one_line_each() {
        let lookup = |_: &str| None;
        for args in [&["status", "--wat"][..], &["routes", "ad", "x"], &["health", "--http"]] {
            match parse(argv(args), &lookup) {
                Err(Stop::Problems(problems)) => {
                    assert_eq!(problems.len(), 1, "{args:?}: {problems:?}");
                    assert!(!problems[0].contains('\n') && !problems[0].contains("Usage"), "{problems:?}");
                }
                _ => panic!("{args:?} is refused"),
            }
        }
        assert!(matches!(parse(argv(&["--help"]), &lookup), Err(Stop::Show(_))));
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
