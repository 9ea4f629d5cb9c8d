//! `outrigger`: the one binary. With no subcommand it runs everything in one process on the embedded
//! default; the server subcommands run the parts of the distributed form; the client subcommands call the
//! control API.

mod admin_token;
mod boundary;
mod cli;
mod config;
mod explorers;
mod listener;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// mimalloc serves the ~70 allocations of a state GET in about a fifth of glibc's instructions (see the README's
/// instruction counts).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dapr building-block APIs as hosted remote sidecars, for many tenants.
#[derive(Parser, Debug)]
#[command(name = "outrigger", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (read before OUTRIGGER_* environment variables)
    #[arg(long, env = "OUTRIGGER_CONFIG", global = true)]
    config: Option<PathBuf>,

    #[command(flatten)]
    connection: cli::ConnectionArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve only the Dapr HTTP and gRPC APIs, sending calls to workers over NATS (distributed form)
    Gateway,
    /// Execute calls for one worker pool, taken from NATS (distributed form)
    Worker {
        /// The pool to serve
        #[arg(long, default_value = outrigger_bus::DEFAULT_POOL)]
        pool: String,
    },
    /// Serve only the control API (distributed form; run `outrigger migrate` first)
    ControlApi {
        /// Apply pending database migrations before serving
        #[arg(long)]
        migrate: bool,
    },
    /// Apply the control-plane database migrations and exit
    Migrate,
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: in a file or a log collector they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run_server(config_file: Option<PathBuf>, command: Option<Command>) -> anyhow::Result<()> {
    let config = Config::load(config_file.as_deref())?;
    init_logging(&config);
    match command {
        None => server::run(config, server::Role::AllInOne, true).await,
        Some(Command::Gateway) => server::run(config, server::Role::Gateway, false).await,
        Some(Command::Worker { pool }) => server::run(config, server::Role::Worker { pool }, false).await,
        Some(Command::ControlApi { migrate }) => server::run(config, server::Role::ControlApi, migrate).await,
        Some(Command::Migrate) => server::migrate(config).await,
        Some(Command::Client(_)) => unreachable!("client commands do not start a server"),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    let outcome = match args.command {
        Some(Command::Client(command)) => cli::run(args.connection, command).await,
        command => run_server(args.config, command).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
