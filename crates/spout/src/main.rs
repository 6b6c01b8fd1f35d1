use std::io::IsTerminal;
use std::process::ExitCode;

use spout::cli::StatusArgs;
use spout::config::Config;
use spout::settings::{self, Invocation, Settings};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// sysexits.h: the command was used incorrectly.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let invocation = match settings::parse(std::env::args_os().collect(), &env) {
        Ok(invocation) => invocation,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EX_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match invocation {
        Invocation::Run(settings) => match config(&settings) {
            Ok(config) => run(config, settings.args.log_level.as_deref()),
            Err(code) => code,
        },
        Invocation::CheckConfig(settings) => match config(&settings) {
            Ok(_) => {
                print!("{}", settings.describe());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Invocation::Status(args) => status(&args),
        Invocation::Health(args) => match spout::status::health(&args.http) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("spout: {why}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The validated configuration, or every problem on stderr and the exit code that says so.
fn config(settings: &Settings) -> Result<Config, ExitCode> {
    let env = |name| std::env::var(name).ok();
    Config::from_settings(settings, env("ROUTE_URIS").as_deref(), env("EXCLUDE_LABEL").as_deref()).map_err(|errors| {
        for e in errors {
            eprintln!("spout: {e}");
        }
        ExitCode::from(EX_USAGE)
    })
}

/// `spout status`: the running spout's containers as a table.
fn status(args: &StatusArgs) -> ExitCode {
    let token = match spout::config::api_token(args.token.api_token.as_deref(), args.token.api_token_file.as_deref()) {
        Ok(token) => token,
        Err(e) => {
            eprintln!("spout: --api-token: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    match spout::status::fetch(&args.http, token.as_deref()) {
        Ok(rows) => {
            print!("{}", spout::status::table(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `spout run`: the agent, until SIGTERM or SIGINT.
fn run(config: Config, log_level: Option<&str>) -> ExitCode {
    let filter = match log_level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    };
    let filter = match filter {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("spout: --log-level: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spout: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(shutdown.clone()));
        match spout::run(config, shutdown).await {
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
