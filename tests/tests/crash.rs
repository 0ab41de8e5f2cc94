//! Kill test: a child process commits versions in a loop and is SIGKILLed at a
//! random instant; the parent reopens the database and checks that
//!
//! * the latest version is the last one the child reported (or the one after
//!   it, whose commit may have become durable before the kill),
//! * every retained version of the window is readable and its root equals both
//!   what the child printed and an independent alloy-trie model replayed from
//!   the deterministic workload,
//! * sampled accounts, slots and codes of the latest version equal the model's.
//!
//! Then it starts the child again on the same file, which resumes at latest+1.
//! The seed is printed; rerun one with `WAKE_CRASH_SEED=<seed>`.

#[allow(dead_code)]
use alloy_primitives::{Address, B256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};
use wake_tests::workload::{
    self, Model, POOL_ACCOUNTS, RETAIN_VERSIONS, SLOTS_PER_ACCOUNT, SplitMix, Watchdog,
};
use wake_triedb::TrieDb;

/// Iterations of the default (CI) run.
const CI_ITERATIONS: u64 = 60;
/// Iterations of the long run (`cargo test --release -p wake-tests --test crash -- --ignored`).
const LONG_ITERATIONS: u64 = 300;
/// The child is killed this many milliseconds (uniform) after it reports
/// that the database is open, so the kill lands among its commits however
/// long the open took on a loaded machine.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 20..=300;
/// One iteration in this many kills the child 0–20 ms after the spawn
/// instead, to also hit it while it opens (and, first, creates) the file.
const EARLY_KILL_ONE_IN: u64 = 8;
/// How long the child may take to open the database.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on the commits of one child run (it is killed long before).
const CHILD_MAX_COMMITS: u64 = 100_000;
/// How long a killed child may take to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn kill_at_random_instants_keeps_last_committed_version() {
    run_kill_test("crash-ci", CI_ITERATIONS, Duration::from_secs(240));
}

#[test]
#[ignore = "long run: 300 kill iterations"]
fn kill_at_random_instants_long() {
    run_kill_test("crash-long", LONG_ITERATIONS, Duration::from_secs(1800));
}

fn seed() -> u64 {
    match std::env::var("WAKE_CRASH_SEED") {
        Ok(seed) => seed.parse().expect("WAKE_CRASH_SEED must be a u64"),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ u64::from(std::process::id())
        }
    }
}

/// The parent's replay of the deterministic workload: the model at
/// `version` and the alloy-trie root of every version replayed so far.
struct Oracle {
    model: Model,
    version: u64,
    roots: BTreeMap<u64, B256>,
}

impl Oracle {
    fn advance_to(&mut self, version: u64) {
        assert!(
            version >= self.version,
            "oracle cannot go back from {} to {version}",
            self.version
        );
        while self.version < version {
            self.version += 1;
            self.model.apply(&workload::updates_for(self.version));
            self.roots.insert(self.version, self.model.root());
        }
    }
}

/// What one child run printed.
#[derive(Debug, Default)]
struct ChildReport {
    opened: Option<u64>,
    committed: Vec<(u64, B256)>,
}

fn parse_report(lines: &[String], context: &str) -> ChildReport {
    let mut report = ChildReport::default();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["opened", version] => {
                assert!(report.opened.is_none(), "{context}: two 'opened' lines");
                report.opened = Some(
                    version
                        .parse()
                        .unwrap_or_else(|err| panic!("{context}: bad line {line:?}: {err}")),
                );
            }
            ["committed", version, root] => {
                let version: u64 = version
                    .parse()
                    .unwrap_or_else(|err| panic!("{context}: bad line {line:?}: {err}"));
                let root = B256::from_str(root)
                    .unwrap_or_else(|err| panic!("{context}: bad line {line:?}: {err}"));
                report.committed.push((version, root));
            }
            // The last line may be cut short by the kill: never a full line,
            // as the child writes each line with one write and flush.
            _ => panic!("{context}: unexpected child output line {line:?}"),
        }
    }
    report
}

/// When to kill the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after it printed `opened`.
    AfterOpen(Duration),
    /// This long after the spawn.
    AfterSpawn(Duration),
}

/// Spawns the child, kills it at `kill_at`, and returns its stdout lines.
fn run_child_until_killed(path: &Path, kill_at: KillAt, context: &str) -> Vec<String> {
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_triedb_crash_child"))
        .arg(path)
        .arg(CHILD_MAX_COMMITS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{context}: spawn child: {err}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Readers drain the pipes concurrently so the child never blocks on a
    // full pipe; they end at EOF, when the child is dead.
    let (line_sender, line_receiver) = std::sync::mpsc::channel::<String>();
    let stdout_reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_sender.send(line).is_err() {
                break;
            }
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut lines = Vec::new();
    match kill_at {
        KillAt::AfterSpawn(delay) => std::thread::sleep(delay),
        KillAt::AfterOpen(delay) => {
            // The first line is `opened`; a child that dies first is caught below.
            match line_receiver.recv_timeout(OPEN_TIMEOUT) {
                Ok(line) => lines.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!(
                        "{context}: the child did not open the database within {OPEN_TIMEOUT:?}"
                    );
                }
            }
            std::thread::sleep(delay);
        }
    }
    let exited_early = child.try_wait().unwrap_or_else(|err| panic!("{context}: try_wait: {err}"));
    if exited_early.is_none() {
        let pid = i32::try_from(child.id()).expect("pid fits in i32");
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own
        // child, not yet reaped, so the id cannot have been reused.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "{context}: kill: {}", std::io::Error::last_os_error());
    }
    let deadline = Instant::now() + REAP_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                panic!("{context}: child not reaped {REAP_TIMEOUT:?} after SIGKILL");
            }
            Err(err) => panic!("{context}: wait: {err}"),
        }
    };
    stdout_reader.join().expect("stdout reader panicked");
    lines.extend(line_receiver.try_iter());
    let stderr_text = stderr_reader.join().expect("stderr reader panicked");
    assert!(
        exited_early.is_none() && status.signal() == Some(libc::SIGKILL),
        "{context}: child ended by itself before the kill with {status:?}; stderr:\n{stderr_text}\nstdout:\n{}",
        lines.join("\n")
    );
    lines
}

fn run_kill_test(name: &str, iterations: u64, limit: Duration) {
    let seed = seed();
    println!("{name}: seed {seed} (rerun with WAKE_CRASH_SEED={seed})");
    let watchdog = Watchdog::arm("kill test", limit);
    let started = Instant::now();
    let dir = wake_tests::temp_db_dir(name);
    let path = dir.path().join("state.triedb");
    let mut rng = SplitMix(seed);
    let mut oracle = Oracle { model: Model::default(), version: 0, roots: BTreeMap::new() };
    // Every root the children printed, across runs (a version recommitted
    // after a crash must print the same root).
    let mut printed: BTreeMap<u64, B256> = BTreeMap::new();
    let mut latest_seen = 0u64;
    let mut kills_mid_run = 0u64;
    let mut committed_total = 0u64;
    let mut kills_before_open = 0u64;
    let mut lock_waits = 0u64;
    let mut lock_wait_max = Duration::ZERO;

    for iteration in 0..iterations {
        let context = format!("seed {seed} iteration {iteration}");
        watchdog.progress(context.clone());
        let kill_at = if rng.below(EARLY_KILL_ONE_IN) == 0 {
            KillAt::AfterSpawn(Duration::from_millis(rng.below(21)))
        } else {
            let span = KILL_AFTER_MS.end() - KILL_AFTER_MS.start() + 1;
            KillAt::AfterOpen(Duration::from_millis(KILL_AFTER_MS.start() + rng.below(span)))
        };
        let lines = run_child_until_killed(&path, kill_at, &context);
        let report = parse_report(&lines, &context);
        if report.opened.is_none() {
            kills_before_open += 1;
        }

        // What the child saw at open is what the parent last saw.
        if let Some(opened) = report.opened {
            assert_eq!(
                opened, latest_seen,
                "{context}: child opened at a version other than the parent's last check"
            );
        } else {
            assert!(report.committed.is_empty(), "{context}: commits printed without 'opened'");
        }
        for (expected, &(version, root)) in (latest_seen + 1..).zip(&report.committed) {
            assert_eq!(version, expected, "{context}: child committed out of order");
            if let Some(previous) = printed.insert(version, root) {
                assert_eq!(
                    previous, root,
                    "{context}: version {version} recommitted with another root"
                );
            }
        }
        committed_total += report.committed.len() as u64;
        // The last version the child reported durable (or the parent's last check).
        let last_reported = report.committed.last().map_or(latest_seen, |&(version, _)| version);

        // The child is dead and reaped, but its lock may outlive it briefly
        // (see `open_waiting_for_lock`): wait for it, boundedly, and count it.
        let (opened, lock_wait) = workload::open_waiting_for_lock(&workload::config(&path));
        let db = opened.unwrap_or_else(|err| {
            panic!(
                "{context}: reopen after kill (killed {kill_at:?}) failed after waiting {lock_wait:?}: {err}"
            )
        });
        if lock_wait > Duration::ZERO {
            lock_waits += 1;
            lock_wait_max = lock_wait_max.max(lock_wait);
        }
        let latest = db.latest().map_or(0, |info| info.version);
        // A commit that returned is durable; the one in flight at the kill may be.
        assert!(
            latest == last_reported || latest == last_reported + 1,
            "{context}: latest after reopen is {latest}, the child last reported {last_reported} (killed {kill_at:?})"
        );
        if latest == last_reported + 1 {
            kills_mid_run += 1;
        }
        oracle.advance_to(latest);
        if latest == 0 {
            assert!(db.versions().is_empty(), "{context}: versions without a latest");
            drop(db);
            continue;
        }
        check_versions(&db, latest, &oracle, &printed, &context);
        check_latest_values(&db, latest, &oracle.model, &mut rng, &context);
        drop(db);
        latest_seen = latest;
        println!(
            "{context}: killed {kill_at:?}, {} commits printed, latest {latest}",
            report.committed.len()
        );
    }
    drop(watchdog);
    // The test proves something only if the children made progress.
    assert!(
        latest_seen >= iterations / 2,
        "seed {seed}: only {latest_seen} versions in {iterations} kill iterations: the children barely committed"
    );
    println!(
        "{name}: seed {seed}: {iterations} kills, {committed_total} commits printed, latest {latest_seen}, \
         {kills_mid_run} kills left an unreported durable commit, {kills_before_open} kills came \
         before the open finished, {lock_waits} reopens waited for the dead child's lock \
         (longest {lock_wait_max:?}), {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(dir);
}

/// The whole retention window is readable, with the oracle's roots.
fn check_versions(
    db: &TrieDb,
    latest: u64,
    oracle: &Oracle,
    printed: &BTreeMap<u64, B256>,
    context: &str,
) {
    let info = db.latest().expect("latest exists");
    assert_eq!(
        info.state_root, oracle.roots[&latest],
        "{context}: root of latest version {latest} differs from the alloy-trie model"
    );
    let versions = db.versions();
    let retained: Vec<u64> = versions.iter().map(|v| v.version).collect();
    assert!(
        retained.windows(2).all(|w| w[0] < w[1]),
        "{context}: versions() not increasing: {retained:?}"
    );
    assert_eq!(retained.last(), Some(&latest), "{context}: versions() does not end at latest");
    let window_start = latest.saturating_sub(RETAIN_VERSIONS - 1).max(1);
    for version in window_start..=latest {
        assert!(
            retained.contains(&version),
            "{context}: version {version} of the retention window {window_start}..={latest} is missing: {retained:?}"
        );
    }
    for version in &versions {
        let expected = oracle.roots[&version.version];
        assert_eq!(
            version.state_root, expected,
            "{context}: version {} root differs from the alloy-trie model",
            version.version
        );
        if let Some(root) = printed.get(&version.version) {
            assert_eq!(
                version.state_root, *root,
                "{context}: version {} root differs from the child's",
                version.version
            );
        }
        let snapshot = db.snapshot(version.version).unwrap_or_else(|err| {
            panic!("{context}: snapshot of retained version {}: {err}", version.version)
        });
        assert_eq!(snapshot.state_root(), expected, "{context}: snapshot {} root", version.version);
    }
}

/// Sampled accounts (batch and single reads), slots and codes of the latest
/// version equal the model's.
fn check_latest_values(db: &TrieDb, latest: u64, model: &Model, rng: &mut SplitMix, context: &str) {
    let snapshot =
        db.snapshot(latest).unwrap_or_else(|err| panic!("{context}: snapshot {latest}: {err}"));
    let indexes: Vec<u64> = (0..96).map(|_| rng.below(POOL_ACCOUNTS)).collect();
    let addresses: Vec<Address> = indexes.iter().map(|&i| workload::address(i)).collect();
    let batch = snapshot
        .accounts(&addresses)
        .unwrap_or_else(|err| panic!("{context}: batch account read at {latest}: {err}"));
    assert_eq!(batch.len(), addresses.len(), "{context}: batch read length");
    for ((index, address), got) in indexes.iter().zip(&addresses).zip(&batch) {
        assert_eq!(
            *got,
            model.account(address),
            "{context}: account #{index} {address} at version {latest} (batch read)"
        );
    }
    for (index, address) in indexes.iter().zip(&addresses).take(16) {
        let got = snapshot
            .account(address)
            .unwrap_or_else(|err| panic!("{context}: account read at {latest}: {err}"));
        assert_eq!(
            got,
            model.account(address),
            "{context}: account #{index} {address} at version {latest}"
        );
        if index % 4 == 0 {
            for slot_index in 0..SLOTS_PER_ACCOUNT {
                let key = workload::slot(slot_index);
                let got = snapshot
                    .storage(address, &key)
                    .unwrap_or_else(|err| panic!("{context}: storage read at {latest}: {err}"));
                assert_eq!(
                    got,
                    model.storage(address, &key),
                    "{context}: slot {slot_index} of account #{index} at version {latest}"
                );
            }
        }
        if let Some(account) = model.accounts.get(address)
            && account.info.code_hash != wake_triedb::KECCAK_EMPTY
        {
            let code = snapshot
                .code(&account.info.code_hash)
                .unwrap_or_else(|err| panic!("{context}: code read at {latest}: {err}"));
            assert_eq!(
                code.as_ref(),
                model.codes.get(&account.info.code_hash),
                "{context}: code of account #{index}"
            );
        }
    }
}
