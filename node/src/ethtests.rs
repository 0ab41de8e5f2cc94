//! `wake ethtests <dir-or-file>...`: runs ethereum/tests BlockchainTest
//! files through the serial (or, with `--parallel`, the parallel) executor
//! and the on-disk triedb (the runner is
//! `wake_execution::ethtests`). Prints one line per failure, the skipped
//! networks, and ends with `N passed, M failed, K skipped`; `--json` adds
//! one JSON summary line on stdout. Exit status 1 when a test failed.

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;
use wake_execution::ParallelConfig;
use wake_execution::ethtests::{RunnerConfig, Summary, TestStatus, collect_test_files, run_files};

#[derive(Debug, Args)]
pub struct EthtestsArgs {
    /// BlockchainTest JSON files, or directories searched for `*.json`.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Worker threads (one test file at a time each) [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Directory for the per-test databases [default: a new directory under
    /// the system temp dir, removed at the end]. Must not be tmpfs (O_DIRECT).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Node cache per test database, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 8)]
    cache_mib: usize,
    /// Reads in flight per batch.
    #[arg(long, value_name = "N", default_value_t = 4)]
    io_depth: usize,
    /// Execute with the optimistic parallel executor on N threads per block
    /// (blocks before Byzantium still run serially) [default: serial].
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// With --parallel: run every transaction speculatively first, even at
    /// its turn, so deferred fees and validation are exercised everywhere.
    #[arg(long, requires = "parallel")]
    always_speculate: bool,
    /// Print a JSON summary line on stdout at the end.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// A directory removed when dropped (only one we created).
struct OwnedDir(Option<PathBuf>);

impl Drop for OwnedDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn run(args: EthtestsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut files = Vec::new();
    for path in &args.paths {
        files.extend(
            collect_test_files(path).with_context(|| format!("listing {}", path.display()))?,
        );
    }
    anyhow::ensure!(!files.is_empty(), "no .json files under the given paths");

    let (db_dir, _owned) = match &args.data_dir {
        Some(dir) => (dir.clone(), OwnedDir(None)),
        None => {
            let dir = std::env::temp_dir().join(format!("wake-ethtests-{}", std::process::id()));
            (dir.clone(), OwnedDir(Some(dir)))
        }
    };
    std::fs::create_dir_all(&db_dir).with_context(|| format!("creating {}", db_dir.display()))?;
    let parallel = args.parallel.map(|threads| ParallelConfig {
        threads: threads.max(1),
        always_speculate: args.always_speculate,
    });
    let config = RunnerConfig {
        db_dir,
        cache_bytes: args.cache_mib << 20,
        io_depth: args.io_depth,
        parallel,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    tracing::info!(files = files.len(), threads, db_dir = %config.db_dir.display(), "running BlockchainTests");

    let bar = if args.no_progress || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(
            Some(files.len() as u64),
            ProgressDrawTarget::stderr_with_hz(4),
        )
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>22} [{bar:36.cyan/blue}] {human_pos}/{human_len} files ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix("ethtests");
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let on_file = |_: &std::path::Path, results: &[wake_execution::ethtests::TestResult]| {
        let new_failures =
            results.iter().filter(|r| matches!(r.status, TestStatus::Failed(_))).count();
        let total =
            failed.fetch_add(new_failures, std::sync::atomic::Ordering::Relaxed) + new_failures;
        if new_failures > 0 {
            bar.set_message(format!("{total} failed"));
        }
        bar.inc(1);
    };
    let results = run_files(&files, &config, threads, &on_file);
    bar.finish_and_clear();

    for r in &results {
        if let TestStatus::Failed(reason) = &r.status {
            println!("FAIL {} :: {} ({}): {reason}", r.file.display(), r.name, r.network);
        }
    }
    let summary = Summary::of(&results);
    for (network, count) in &summary.skipped {
        println!("skipped {count} tests of network {network} (no supported spec)");
    }
    let elapsed = started.elapsed();
    if args.json {
        let json = serde_json::json!({
            "passed": summary.passed,
            "failed": summary.failed,
            "skipped": summary.skipped_total(),
            "skipped_by_network": summary.skipped,
            "by_network": summary.by_network.iter().map(|(n, (p, f))| (n.clone(), serde_json::json!({"passed": p, "failed": f}))).collect::<serde_json::Map<_, _>>(),
            "files": files.len(),
            "threads": threads,
            "seconds": elapsed.as_secs_f64(),
        });
        println!("{json}");
    }
    tracing::info!(seconds = format!("{:.1}", elapsed.as_secs_f64()), "done");
    println!("{}", summary.line());
    anyhow::ensure!(summary.failed == 0, "{} tests failed", summary.failed);
    Ok(())
}
