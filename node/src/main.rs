//! `wake`: the validator node binary.
//!
//! Subcommands: `wake bench triedb` (the storage benchmark, see [`bench`]),
//! `wake ethtests` (BlockchainTests through the executor and triedb, see
//! [`ethtests`]) and `wake replay` (real mainnet blocks checked against
//! their headers, see [`replay`]); the node, devnet and import commands
//! come later.
//! Logs go to stderr through `tracing` (filter with `RUST_LOG`, default
//! `info`). Errors end the process with one `error:` line and exit
//! status 1.

mod bench;
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
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Bench { bench } => bench::run(bench),
        Command::Ethtests(args) => ethtests::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Replay(args) => replay::run(args),
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
