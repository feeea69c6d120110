//! `dscode-exthost`: the supervisor as a standalone program.

mod bench;
mod demo;
mod doctor;
mod grants;
mod secret;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use dscode_extension_host::Supervisor;
use dscode_extension_host::config::Config;
use dscode_extension_host::control::{self, ControlHandler, ExecParams, StatusReply};
use dscode_extension_host::rpc::{IpcManager, NoMethods, PrivateListener, RequestError};
use dscode_extension_host::runtime::runtime_dir;
use serde_json::value::RawValue;

/// Runs editor extensions in sandboxed, supervised Node.js hosts.
#[derive(Debug, Parser)]
#[command(name = "dscode-exthost", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter (`info`, `debug`, `dscode_extension_host=trace`); `RUST_LOG` also works.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the example extensions, run their commands, kill one and watch it come back.
    Demo,
    /// Run the supervisor in the foreground until SIGINT or SIGTERM.
    Run {
        /// The TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Show the hosts of a running supervisor.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The control socket (default: the one `run` uses).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Run an extension command in a running supervisor and print its result as JSON.
    Exec {
        /// The extension id (`publisher.name`).
        extension: String,
        /// The command id.
        command: String,
        /// The arguments, as a JSON array.
        #[arg(default_value = "[]")]
        args: String,
        /// The control socket (default: the one `run` uses).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Allow an extension a permission it asks for (recorded in the grants file).
    Grant(GrantArgs),
    /// Take back a permission granted earlier.
    Revoke(GrantArgs),
    /// Forbid a permission (or a scope of it); a deny wins over every allow.
    Deny(GrantArgs),
    /// Manage an extension's or host's secrets in the OS keyring (values come from stdin).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Measure every scenario beside its baselines (see BENCHMARKS.md); figures are recorded,
    /// not judged, except against the targets the table marks as met or not.
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Fewer samples (under 30 s): checks that everything runs, not the figures.
        #[arg(long)]
        quick: bool,
    },
    /// The scale scenario's supervisor, run by `bench` in a process of its own.
    #[command(hide = true)]
    BenchScale {
        #[arg(long)]
        hosts: usize,
        #[arg(long)]
        idle_ms: u64,
    },
    /// Show which isolation layers this machine can enforce, and why not.
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The bwrap executable to check (default: `bwrap` on PATH).
        #[arg(long)]
        bwrap: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct GrantArgs {
    /// The extension id (`publisher.name`).
    extension: String,
    /// The permission, as in manifests: `fileSystem.read`, `fileSystem.read:src/**`, ...
    permission: String,
    /// The supervisor config that names the extension and the grants file.
    #[arg(long)]
    config: PathBuf,
    /// The control socket of a running supervisor to reload (default: the one `run` uses).
    #[arg(long)]
    socket: Option<PathBuf>,
}

fn init_logging(format: LogFormat, filter: Option<&str>, default: &str) {
    let filter = filter.map_or_else(
        || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()),
        tracing_subscriber::EnvFilter::new,
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Where a client looks for a running supervisor's control socket (it creates nothing).
pub(crate) fn default_socket() -> PathBuf {
    dscode_extension_host::runtime::expected_runtime_dir().join("control.sock")
}

/// Where `run` puts its control socket: the runtime directory, made if need be.
fn own_socket() -> anyhow::Result<PathBuf> {
    Ok(runtime_dir()
        .context("failed to prepare the runtime directory")?
        .join("control.sock"))
}

fn main() -> ExitCode {
    // When the sandbox runs this binary as its stage, that is all it does.
    dscode_extension_host::sandbox::stage::run_if_requested();
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run { .. } => "info",
        // The demo narrates state changes itself.
        Command::Demo | Command::Bench { .. } | Command::BenchScale { .. } => "error",
        _ => "warn",
    };
    init_logging(cli.log_format, cli.log.as_deref(), default_level);
    // One thread runs every host's traffic; blocking work (sandbox set-up, spawns, file and
    // keyring calls) goes to the blocking pool. Measured with `bench`: half the supervisor CPU
    // per request of the multi-thread runtime, whose cross-thread wake-ups dominate the cost of
    // a round trip, at the same throughput.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo => demo::run().await,
            Command::Run { config } => run(&config).await,
            Command::Status { json, socket } => status(json, socket).await,
            Command::Exec {
                extension,
                command,
                args,
                socket,
            } => exec(&extension, &command, &args, socket).await,
            Command::Grant(args) => grants::edit(grants::Edit::Grant, args).await,
            Command::Revoke(args) => grants::edit(grants::Edit::Revoke, args).await,
            Command::Deny(args) => grants::edit(grants::Edit::Deny, args).await,
            Command::Secret(command) => secret::run(command).await,
            Command::Doctor { json, bwrap } => doctor::run(json, bwrap),
            Command::Bench { json, quick } => bench::run(json, quick).await,
            Command::BenchScale { hosts, idle_ms } => {
                let report =
                    bench::scale_child(hosts, std::time::Duration::from_millis(idle_ms)).await?;
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Moves a grants file from beside the config (the old default) to the state folder.
pub(crate) fn migrate_grants(config: &Config) -> anyhow::Result<()> {
    if let Some((old, new)) = config
        .migrate_grants()
        .context("failed to move the grants file to the state folder")?
    {
        tracing::info!(from = %old.display(), to = %new.display(), "moved the grants file to the state folder, out of every workspace");
        eprintln!(
            "moved the grants file {} to {} (the state folder, out of every workspace)",
            old.display(),
            new.display()
        );
    }
    Ok(())
}

async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    migrate_grants(&config)?;
    if let Err(err) = dscode_extension_host::process::sys::set_non_dumpable() {
        tracing::warn!(error = %err, "could not mark the supervisor non-dumpable");
    }
    match dscode_extension_host::raise_fd_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(err) => tracing::warn!(error = %err, "could not raise the open-file limit"),
    }
    let supervisor = Supervisor::from_config(&config).await?;
    let socket = match config.control_socket() {
        Some(path) => path,
        None => own_socket()?,
    };
    let listener = PrivateListener::bind(&socket)
        .await
        .context("failed to open the control socket")?;
    tracing::info!(socket = %socket.display(), hosts = supervisor.hosts().len(), "supervisor running");
    let server = tokio::spawn(control::serve_with(
        listener,
        ControlHandler::new(supervisor.clone()),
        config.control_limits(),
    ));
    for (id, result) in supervisor.start_all().await {
        if let Err(err) = result {
            tracing::error!(extension = %id, error = %err, "host did not start");
        }
    }
    wait_for_signal().await?;
    tracing::info!("stopping every host");
    server.abort();
    supervisor.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).context("failed to install a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to install a SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

async fn connect(socket: Option<PathBuf>) -> anyhow::Result<dscode_extension_host::rpc::Peer> {
    let socket = match socket {
        Some(path) => path,
        None => default_socket(),
    };
    let (connection, _events) = IpcManager::new()
        .connect(&socket, Arc::new(NoMethods))
        .await?;
    Ok(connection)
}

async fn status(json: bool, socket: Option<PathBuf>) -> anyhow::Result<()> {
    let connection = connect(socket).await?;
    let reply = connection.request("status", None).await.map_err(remote)?;
    if json {
        println!("{}", reply.get());
        return Ok(());
    }
    let status: StatusReply =
        serde_json::from_str(reply.get()).context("supervisor sent a malformed status")?;
    println!(
        "{:<32} {:<11} {:>8} {:>8}  REASON",
        "EXTENSION", "STATE", "PID", "RESTARTS"
    );
    for host in status.hosts {
        let pid = host.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        println!(
            "{:<32} {:<11} {:>8} {:>8}  {}",
            host.id, host.state, pid, host.restarts, host.reason
        );
    }
    Ok(())
}

async fn exec(
    extension: &str,
    command: &str,
    args: &str,
    socket: Option<PathBuf>,
) -> anyhow::Result<()> {
    let args: Box<RawValue> = serde_json::from_str(args)
        .with_context(|| format!("JSON_ARGS is not valid JSON: {args}"))?;
    if !args.get().trim_start().starts_with('[') {
        bail!("JSON_ARGS must be a JSON array, for example '[\"Ada\"]'");
    }
    let connection = connect(socket).await?;
    let params = ExecParams {
        extension: extension.to_owned(),
        command: command.to_owned(),
        args,
    };
    let params =
        serde_json::value::to_raw_value(&params).context("failed to encode the request")?;
    // The host applies its own request timeout; this one only guards against a stuck supervisor.
    let reply = connection
        .request_with(
            "exec",
            Some(params),
            std::time::Duration::from_secs(3600),
            None,
        )
        .await
        .map_err(remote)?;
    println!("{}", reply.get());
    Ok(())
}

fn remote(err: RequestError) -> anyhow::Error {
    match err {
        RequestError::Remote(error) => anyhow::anyhow!("{}: {}", error.code, error.message),
        other => anyhow::Error::new(other),
    }
}
