//! `wake`: the validator node binary.
//!
//! Subcommands: `wake bench triedb` (the storage benchmark, see [`bench`]),
//! `wake ethtests` (BlockchainTests through the executor and triedb, see
//! [`ethtests`]) and `wake replay` (real mainnet blocks checked against
//! their headers, see [`replay`]), `wake sim` (seeded consensus
//! simulations), `wake keys generate` and `wake node --config` (a
//! validator over libp2p, see `wake_node::validator`).
//! Logs go to stderr through `tracing` (filter with `RUST_LOG`, default
//! `info`). Errors end the process with one `error:` line and exit
//! status 1.

mod bench;
mod bench_consensus;
mod bench_loopback;
mod ethtests;
mod replay;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// wake: an asynchronous-execution Ethereum validator node.
#[derive(Debug, Parser)]
#[command(name = "wake", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a benchmark.
    Bench {
        #[command(subcommand)]
        bench: bench::BenchCommand,
    },
    /// Run ethereum/tests BlockchainTest files through the executor and triedb.
    Ethtests(ethtests::EthtestsArgs),
    /// Seeded consensus simulations with Byzantine validators, checked by invariants.
    Sim(sim::SimArgs),
    /// Replay real mainnet blocks (pevm layout) and check them against their headers.
    Replay(replay::ReplayArgs),
    /// A local devnet: N validator processes, real transactions, a live status line.
    Devnet(wake_node::devnet::DevnetArgs),
    /// Validator keys.
    Keys {
        #[command(subcommand)]
        keys: KeysCommand,
    },
    /// Run a validator from a `node.toml` (see `wake_node::config`).
    Node {
        /// The node's configuration file.
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate a validator key: writes the secret (mode 0600, never
    /// overwriting) and prints the public key and libp2p peer id as JSON.
    Generate {
        /// Where to write the secret key.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { out } => {
            let secret: [u8; 32] = rand::random();
            wake_node::config::write_new_key(&out, &secret)?;
            let public = wake_consensus::crypto::ed25519_key_from_seed(secret).verifying_key();
            let peer_id = wake_node::p2p::peer_id_of(public.as_bytes())?;
            println!(
                "{}",
                serde_json::json!({
                    "key_file": out.display().to_string(),
                    "public_key": hex::encode(public.as_bytes()),
                    "peer_id": peer_id.to_string(),
                })
            );
            Ok(())
        }
    }
}

fn node(config: &std::path::Path) -> anyhow::Result<()> {
    let config = wake_node::config::NodeConfig::load(config)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    wake_node::validator::run(&config, &stop)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench { bench } => bench::run(bench),
        Command::Ethtests(args) => ethtests::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Devnet(args) => wake_node::devnet::run(args),
        Command::Keys { keys: command } => keys(command),
        Command::Node { config } => node(&config),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_bench_triedb() {
        let cli = Cli::try_parse_from([
            "wake",
            "bench",
            "triedb",
            "--quick",
            "--json",
            "--no-nomt",
            "--blocks",
            "3",
        ])
        .unwrap();
        let Command::Bench { bench: bench::BenchCommand::Triedb(args) } = cli.command else {
            panic!("parsed as another command")
        };
        let opts = args.options();
        assert_eq!(opts.accounts, 1_000_000);
        assert_eq!(opts.blocks, 3);
        assert!(!opts.nomt);
    }
}
