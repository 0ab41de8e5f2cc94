//! `wake`: the validator node binary.
//!
//! Subcommands: `wake bench triedb` (the storage benchmark, see [`bench`]),
//! `wake ethtests` (BlockchainTests through the executor and triedb, see
//! [`ethtests`]) and `wake replay` (real mainnet blocks checked against
//! their headers, see [`replay`]), `wake sim` (seeded consensus
//! simulations), `wake keys generate` and `wake node --config` (a
//! validator over libp2p, see `wake_node::validator`); `wake init` and
//! `wake import` (a data directory filled from a genesis and an RLP chain,
//! see `wake_node::import`) and `wake node --rpc-only` (that directory
//! served read-only over JSON-RPC, see `wake_node::readonly`).
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
    /// Run a validator from a `node.toml` (see `wake_node::config`), or
    /// serve an imported data directory read-only (`--rpc-only`).
    Node {
        /// The node's configuration file.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "rpc_only",
            conflicts_with = "rpc_only"
        )]
        config: Option<std::path::PathBuf>,
        #[command(flatten)]
        read_only: wake_node::readonly::RpcOnlyArgs,
    },
    /// Create a data directory from a geth-style genesis file (idempotent).
    Init(wake_node::import::InitArgs),
    /// Import concatenated RLP blocks (`geth export`) into a data directory.
    Import(wake_node::import::ImportArgs),
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

fn node(
    config: Option<&std::path::Path>,
    read_only: &wake_node::readonly::RpcOnlyArgs,
) -> anyhow::Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let Some(config) = config.filter(|_| !read_only.rpc_only) else {
        return Ok(wake_node::readonly::run(read_only, &stop)?);
    };
    let config = wake_node::config::NodeConfig::load(config)?;
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
        Command::Node { config, read_only } => node(config.as_deref(), &read_only),
        Command::Init(args) => Ok(wake_node::import::run_init(&args)?),
        Command::Import(args) => Ok(wake_node::import::run_import(&args)?),
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

    #[test]
    fn parses_node_modes() {
        let cli = Cli::try_parse_from(["wake", "node", "--config", "node.toml"]).unwrap();
        let Command::Node { config, read_only } = cli.command else { panic!("not node") };
        assert_eq!(config.as_deref(), Some(std::path::Path::new("node.toml")));
        assert!(!read_only.rpc_only);
        let cli = Cli::try_parse_from([
            "wake",
            "node",
            "--rpc-only",
            "--data-dir",
            "d",
            "--genesis",
            "g.json",
            "--rpc",
            "127.0.0.1:0",
        ])
        .unwrap();
        let Command::Node { config, read_only } = cli.command else { panic!("not node") };
        assert!(config.is_none() && read_only.rpc_only);
        assert_eq!(read_only.rpc.port(), 0);
        // Either mode, not both, not neither; --rpc-only needs its paths.
        assert!(Cli::try_parse_from(["wake", "node"]).is_err());
        assert!(Cli::try_parse_from(["wake", "node", "--rpc-only", "--data-dir", "d"]).is_err());
        assert!(
            Cli::try_parse_from([
                "wake",
                "node",
                "--config",
                "c",
                "--rpc-only",
                "--data-dir",
                "d",
                "--genesis",
                "g"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["wake", "node", "--config", "c", "--data-dir", "d"]).is_err());
        let cli = Cli::try_parse_from([
            "wake",
            "import",
            "chain.rlp",
            "--genesis",
            "g.json",
            "--data-dir",
            "d",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Import(args) if args.chain.ends_with("chain.rlp")));
    }
}
