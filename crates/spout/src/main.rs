use std::io::IsTerminal;
use std::process::ExitCode;

use spout::admin::client::{ClientError, Endpoint};
use spout::admin::{routes, status};
use spout::cli::{ClientArgs, RoutesAction, RoutesArgs, TokenArgs};
use spout::config::Config;
use spout::settings::{self, Invocation, Settings, Stop};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// sysexits.h: the command was used incorrectly.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let invocation = match settings::parse(std::env::args_os().collect(), &env) {
        Ok(invocation) => invocation,
        Err(Stop::Show(e)) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(EX_USAGE) } else { ExitCode::SUCCESS };
        }
        Err(Stop::Problems(problems)) => return usage(&problems),
    };
    let outcome = match invocation {
        Invocation::Run(settings) => match config(&settings) {
            Ok(config) => return run(config, settings.args.log_level.as_deref()),
            Err(code) => return code,
        },
        Invocation::CheckConfig(settings) => match config(&settings) {
            Ok(_) => Ok(settings.describe()),
            Err(code) => return code,
        },
        Invocation::Status(args) => token(&args.token).and_then(|token| {
            let rows = status::fetch(&endpoint(&args.client), token.as_deref()).map_err(Failure::from)?;
            Ok(status::table(&rows))
        }),
        Invocation::Health(args) => {
            status::health(&endpoint(&args.client)).map(|()| String::new()).map_err(Failure::Failed)
        }
        Invocation::Routes(args) => routes_command(&args),
        Invocation::Receive(args) => match spout::receive::ReceiveConfig::from_args(&args) {
            Ok(config) => return receive(config, args.log_level.as_deref()),
            Err(problems) => return usage(&problems),
        },
    };
    match outcome {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(problem)) => usage(&[problem]),
        Err(Failure::Failed(why)) => {
            eprintln!("spout: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Every problem on stderr, and the exit code that says the command was used wrongly.
fn usage(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("spout: {p}");
    }
    ExitCode::from(EX_USAGE)
}

/// Why a subcommand that asks a running spout did not do its job.
enum Failure {
    /// The command was used wrongly (exit 64).
    Usage(String),
    /// It could not be done (exit 1).
    Failed(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        if e.is_usage() {
            Failure::Usage(e.to_string())
        } else {
            Failure::Failed(e.to_string())
        }
    }
}

/// Where the running spout's API is, for a subcommand that asks it.
fn endpoint(args: &ClientArgs) -> Endpoint {
    Endpoint::choose(args, std::env::var("SPOUT_HTTP").ok().as_deref())
}

/// The token a subcommand presents, if any.
fn token(args: &TokenArgs) -> Result<Option<String>, Failure> {
    let name = if args.api_token.is_some() { "--api-token" } else { "--api-token-file" };
    spout::config::api_token(args.api_token.as_deref(), args.api_token_file.as_deref())
        .map_err(|e| Failure::Usage(format!("{name}: {e}")))
}

/// `spout routes [list | add URI | rm ID]`.
fn routes_command(args: &RoutesArgs) -> Result<String, Failure> {
    let token = token(&args.token)?;
    let at = endpoint(&args.client);
    let action = args.action.unwrap_or(RoutesAction::List);
    let target = match (action, args.target.as_deref()) {
        (RoutesAction::List, None) => "",
        (RoutesAction::List, Some(extra)) => {
            return Err(Failure::Usage(format!("routes list takes nothing more, got '{extra}'")))
        }
        (RoutesAction::Add, None) => {
            return Err(Failure::Usage(
                "routes add needs the route's URI, e.g. spout routes add gelf+tcp://graylog:12201".to_owned(),
            ))
        }
        (RoutesAction::Rm, None) => {
            return Err(Failure::Usage("routes rm needs the route's id, as spout routes lists it".to_owned()))
        }
        (_, Some(target)) => target,
    };
    match action {
        RoutesAction::List => Ok(routes::table(&routes::list(&at, token.as_deref())?)),
        RoutesAction::Add => {
            let added = routes::add(&at, token.as_deref(), target)?;
            Ok(format!("added route {}: {}\n", added.id, added.uri))
        }
        RoutesAction::Rm => {
            routes::remove(&at, token.as_deref(), target)?;
            Ok(format!("removed route {target}\n"))
        }
    }
}

/// The validated configuration, or every problem on stderr and the exit code that says so.
fn config(settings: &Settings) -> Result<Config, ExitCode> {
    let env = |name| std::env::var(name).ok();
    Config::from_settings(settings, env("ROUTE_URIS").as_deref(), env("EXCLUDE_LABEL").as_deref())
        .map_err(|errors| usage(&errors))
}

/// spout's own log, on stderr, at `log_level` (else RUST_LOG's, else info).
fn init_logging(log_level: Option<&str>) {
    let filter = match log_level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    // --log-level was checked with the rest of the configuration; a bad RUST_LOG means info.
    let filter = filter.unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// `spout receive`, until SIGTERM or SIGINT. Its inputs are independent of each other: they
/// run on a thread per core.
fn receive(config: spout::receive::ReceiveConfig, log_level: Option<&str>) -> ExitCode {
    if let Some(level) = log_level {
        if let Err(e) = EnvFilter::try_new(level) {
            return usage(&[format!("--log-level: '{level}': {e}")]);
        }
    }
    init_logging(log_level);
    until_signalled(tokio::runtime::Builder::new_multi_thread().enable_all().build(), |shutdown| {
        spout::receive::run(config, shutdown)
    })
}

/// `spout run`: the agent, until SIGTERM or SIGINT.
fn run(config: Config, log_level: Option<&str>) -> ExitCode {
    init_logging(log_level);
    until_signalled(tokio::runtime::Builder::new_current_thread().enable_all().build(), |shutdown| {
        spout::run(config, shutdown)
    })
}

/// Runs `serve` on `runtime` until it returns, SIGTERM or SIGINT cancelling the token it is
/// given; exits 0 when it ends well.
fn until_signalled<F, E>(
    runtime: std::io::Result<tokio::runtime::Runtime>,
    serve: impl FnOnce(CancellationToken) -> F,
) -> ExitCode
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spout: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(shutdown.clone()));
        match serve(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGTERM or SIGINT starts a graceful shutdown; a second one is not needed, the grace period
/// bounds it.
async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    shutdown.cancel();
}
