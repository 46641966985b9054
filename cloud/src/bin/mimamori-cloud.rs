//! `mimamori-cloud`: the watch service. Only the command-line surface exists so far; the
//! service itself (ingest, store, scoring, mails, portal) is built by the cloud issue.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mimamori-cloud", version, about = "Mimamori cloud watch service")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve ingest, admin API and portal (not built yet).
    Serve {
        /// Path of the service's TOML configuration.
        #[arg(long)]
        config: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve { config } => anyhow::bail!(
            "mimamori-cloud serve is not built yet (config {}); protocol version {}",
            config.display(),
            protocol::PROTOCOL_VERSION
        ),
    }
}
