//! `mimamori-cloud`: the watch service and its operator CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mimamori_cloud::admin::cli;

#[derive(Parser)]
#[command(
    name = "mimamori-cloud",
    version,
    about = "Mimamori cloud watch service: ingest, ★ scoring, mails, stop notices, admin"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service: ingest (mutual TLS), admin API, mail sender, heartbeat watch.
    Serve {
        /// The service's TOML configuration (see cloud/mimamori-cloud.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Operator commands against a running service.
    Admin {
        #[command(flatten)]
        target: cli::Target,
        #[command(subcommand)]
        cmd: cli::Cmd,
    },
    /// Check a configuration file and print it with defaults filled in.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print every row of every table of a STOPPED service's database as JSON lines
    /// (table, key, value): for checks that nothing of an ended contract remains.
    #[command(hide = true)]
    DebugDumpStore {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Serve { config } => {
                let cfg = mimamori_cloud::config::Config::load(&config)?;
                mimamori_cloud::serve::serve(cfg).await
            }
            Cmd::Admin { target, cmd } => cli::run(target, cmd).await,
            Cmd::DebugDumpStore { data_dir } => {
                for row in mimamori_cloud::store::dump(&data_dir)? {
                    println!("{}", serde_json::to_string(&row)?);
                }
                Ok(())
            }
            Cmd::CheckConfig { config } => {
                let cfg = mimamori_cloud::config::Config::load(&config)?;
                // secrets (admin token, SMTP password) are never printed
                println!("{:#?}", cfg.redacted());
                Ok(())
            }
        }
    });
    // do not wait for stuck blocking work (e.g. a failed disk) before exiting
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
