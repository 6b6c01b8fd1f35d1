use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use spout::cli::{Cli, Command, RunArgs, StatusArgs};
use spout::config::Config;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// sysexits.h: the command was used incorrectly.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EX_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(*args),
        Some(Command::Status(args)) => status(&args),
    }
}

/// `spout status`: the running spout's containers as a table.
fn status(args: &StatusArgs) -> ExitCode {
    let token = match spout::config::api_token(args.api_token.as_deref(), args.api_token_file.as_deref()) {
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
fn run(cli: RunArgs) -> ExitCode {
    let env = |name| std::env::var(name).ok();
    let config = match Config::from_cli_and_env(&cli, env("ROUTE_URIS").as_deref(), env("EXCLUDE_LABEL").as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            for e in errors {
                eprintln!("spout: {e}");
            }
            return ExitCode::from(EX_USAGE);
        }
    };
    let filter = match &cli.log_level {
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
