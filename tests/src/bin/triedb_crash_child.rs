//! Child process of the kill test (`tests/tests/crash.rs`).
//!
//! Usage: `triedb_crash_child <db path> <max commits>`
//!
//! Opens the database, prints `opened <latest version>`, then commits versions
//! `latest+1, latest+2, …` and after each commit returns prints
//! `committed <version> <root hex>` and flushes stdout. The parent SIGKILLs it
//! at a random instant, reopens the database and checks it against what was
//! printed and against an independent in-memory model.
//!
//! The updates of version `v` are a pure function of `v` ([`wake_tests::workload::updates_for`]),
//! so a child that resumes after a crash recommits exactly what was lost, and the
//! parent can replay versions `1..=v` into a [`wake_tests::workload::Model`] whose roots come
//! from alloy-trie, not from triedb.
//!
//! The workload and the model live in `wake_tests::workload`.

use std::io::Write;
use wake_tests::workload;

/// Parses `<path> <max commits>`, commits until killed (or `max commits`).
pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: triedb_crash_child <db path> <max commits>");
        std::process::exit(2);
    }
    let path = std::path::PathBuf::from(&args[1]);
    let max_commits: u64 = match args[2].parse() {
        Ok(n) => n,
        Err(err) => {
            eprintln!("bad <max commits> {:?}: {err}", args[2]);
            std::process::exit(2);
        }
    };
    let db = match workload::open_waiting_for_lock(&workload::config(&path)).0 {
        Ok(db) => db,
        Err(err) => {
            eprintln!("open {}: {err}", path.display());
            std::process::exit(3);
        }
    };
    let latest = db.latest().map_or(0, |info| info.version);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // A write error means the parent is gone: stop.
    if writeln!(out, "opened {latest}").and_then(|()| out.flush()).is_err() {
        std::process::exit(4);
    }
    for version in latest + 1..=latest + max_commits {
        let root = match db.commit(version, &workload::updates_for(version)) {
            Ok(root) => root,
            Err(err) => {
                eprintln!("commit of version {version}: {err}");
                std::process::exit(5);
            }
        };
        if writeln!(out, "committed {version} {root}").and_then(|()| out.flush()).is_err() {
            std::process::exit(4);
        }
    }
}
