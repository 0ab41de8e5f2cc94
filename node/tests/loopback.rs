//! Four validators as separate `wake node` processes on loopback, over the
//! real libp2p transport (issue 4, section 4.2):
//! 1. they commit ≥ 100 blocks;
//! 2. one is killed (SIGKILL) and the other three keep committing;
//! 3. it restarts from its data directory, syncs and votes again;
//! 4. afterwards the ledgers agree at every height, and no journal holds
//!    two different block votes in one round (checked from the files, not
//!    from anything the nodes report).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wake_consensus::{FileJournal, FileLedger, Ledger, VoteKind};

const VALIDATORS: usize = 4;
const WAKE: &str = env!("CARGO_BIN_EXE_wake");

struct Validator {
    config: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    /// Highest height this process logged as committed.
    committed: Arc<AtomicU64>,
    /// The last lines of its log, for failure messages.
    log_tail: Arc<Mutex<Vec<String>>>,
}

impl Validator {
    fn start(&mut self) {
        let mut child = Command::new(WAKE)
            .args(["node", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wake node");
        let stderr = child.stderr.take().unwrap();
        let committed = self.committed.clone();
        let tail = self.log_tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(height) = committed_height(&line) {
                    committed.fetch_max(height, Ordering::Relaxed);
                }
                let mut tail = tail.lock().unwrap();
                tail.push(line);
                if tail.len() > 40 {
                    tail.remove(0);
                }
            }
        });
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it does not exit within 10 s.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on a child we spawned and still own.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn height(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    fn journal(&self) -> PathBuf {
        self.data_dir.join("consensus/journal")
    }

    fn ledger(&self) -> PathBuf {
        self.data_dir.join("consensus/ledger")
    }
}

impl Drop for Validator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `… committed height=17 round=18 …` → 17.
fn committed_height(line: &str) -> Option<u64> {
    let rest = line.split(" committed ").nth(1).or_else(|| line.strip_suffix(" committed"))?;
    let digits: String =
        rest.split("height=").nth(1)?.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn generate_key(path: &Path) -> String {
    let output = Command::new(WAKE)
        .args(["keys", "generate", "--out"])
        .arg(path)
        .output()
        .expect("run wake keys generate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["public_key"].as_str().unwrap().to_owned()
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn wait_until(what: &str, timeout: Duration, validators: &[Validator], done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            let mut report = format!("timed out waiting until {what}\n");
            for (i, v) in validators.iter().enumerate() {
                report += &format!("--- validator {i} at height {}:\n", v.height());
                report += &v.log_tail.lock().unwrap().join("\n");
                report += "\n";
            }
            panic!("{report}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn setup(dir: &Path) -> Vec<Validator> {
    let ports = free_ports(VALIDATORS);
    let keys: Vec<String> =
        (0..VALIDATORS).map(|i| generate_key(&dir.join(format!("v{i}.key")))).collect();
    let mut set = String::new();
    for (key, port) in keys.iter().zip(&ports) {
        set += &format!(
            "[[validators]]\npublic_key = \"{key}\"\nstake = 1\naddress = \"/ip4/127.0.0.1/tcp/{port}\"\n"
        );
    }
    (0..VALIDATORS)
        .map(|i| {
            let config = dir.join(format!("node{i}.toml"));
            std::fs::write(
                &config,
                format!(
                    "data_dir = \"data{i}\"\nkey_file = \"v{i}.key\"\nlisten = \"/ip4/127.0.0.1/tcp/{}\"\n\
                     [consensus]\nround_timeout_ms = 400\n{set}",
                    ports[i]
                ),
            )
            .unwrap();
            Validator {
                config,
                data_dir: dir.join(format!("data{i}")),
                child: None,
                committed: Arc::default(),
                log_tail: Arc::default(),
            }
        })
        .collect()
}

#[test]
fn four_processes_commit_survive_a_kill_and_the_restarted_one_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let mut validators = setup(dir.path());
    for v in &mut validators {
        v.start();
    }

    // 1. Everyone commits ≥ 100 blocks.
    wait_until("all four committed 100 blocks", Duration::from_secs(180), &validators, || {
        validators.iter().all(|v| v.height() >= 100)
    });

    // 2. Kill validator 3; the other three go on.
    validators[3].kill();
    let journal_before_kill = FileJournal::read_records(&validators[3].journal()).unwrap();
    let last_round_before_kill = journal_before_kill.iter().map(|r| r.round).max().unwrap();
    let at_kill = validators[..3].iter().map(Validator::height).max().unwrap();
    wait_until("the other three committed 20 more", Duration::from_secs(120), &validators, || {
        validators[..3].iter().all(|v| v.height() >= at_kill + 20)
    });

    // 3. Restart it: it syncs past where the others were, and goes on.
    let at_restart = validators[..3].iter().map(Validator::height).max().unwrap();
    validators[3].start();
    wait_until("the restarted one caught up", Duration::from_secs(120), &validators, || {
        validators[3].height() >= at_restart + 10
    });
    let target = validators.iter().map(Validator::height).max().unwrap() + 10;
    wait_until("all four committed 10 more", Duration::from_secs(120), &validators, || {
        validators.iter().all(|v| v.height() >= target)
    });
    for v in &mut validators {
        v.stop();
    }

    // 4. Audit the files.
    let ledgers: Vec<FileLedger> =
        validators.iter().map(|v| FileLedger::open(&v.ledger(), 0, false).unwrap()).collect();
    let common = ledgers.iter().map(Ledger::tip_height).min().unwrap();
    assert!(common >= 100 + 20, "common ledger height {common}");
    for height in 1..=common {
        let ids: Vec<_> =
            ledgers.iter().map(|l| l.get(height).unwrap().unwrap().header.id()).collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "ledgers disagree at height {height}");
    }
    for (i, v) in validators.iter().enumerate() {
        let records = FileJournal::read_records(&v.journal()).unwrap();
        let mut block_votes: BTreeMap<u64, _> = BTreeMap::new();
        for record in &records {
            if let VoteKind::Block(id) = record.kind
                && let Some(previous) = block_votes.insert(record.round, id)
            {
                assert_eq!(
                    previous, id,
                    "validator {i} signed two blocks in round {}",
                    record.round
                );
            }
        }
        assert!(block_votes.len() >= 100, "validator {i} cast {} block votes", block_votes.len());
    }
    let records = FileJournal::read_records(&validators[3].journal()).unwrap();
    let votes_after_restart = records
        .iter()
        .filter(|r| r.round > last_round_before_kill && matches!(r.kind, VoteKind::Block(_)))
        .count();
    assert!(votes_after_restart >= 5, "the restarted validator cast {votes_after_restart} votes");
}

#[test]
fn parses_commit_lines() {
    let line =
        "2026-11-25T16:00:00Z  INFO wake_node::validator: committed height=17 round=18 author=1";
    assert_eq!(committed_height(line), Some(17));
    assert_eq!(committed_height("INFO status committed=5"), None);
}

#[test]
fn bad_configs_and_missing_keys_exit_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |config: &Path| {
        let output = Command::new(WAKE).args(["node", "--config"]).arg(config).output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    let missing = run(&dir.path().join("absent.toml"));
    assert!(missing.contains("error: cannot read"), "{missing}");

    let key = generate_key(&dir.path().join("v.key"));
    let config = dir.path().join("node.toml");
    let body = |key_file: &str, listen: &str| {
        format!(
            "data_dir = \"d\"\nkey_file = \"{key_file}\"\nlisten = \"{listen}\"\n\
             [[validators]]\npublic_key = \"{key}\"\nstake = 1\n"
        )
    };
    std::fs::write(&config, body("nokey.key", "/ip4/127.0.0.1/tcp/0")).unwrap();
    let no_key = run(&config);
    assert!(no_key.contains("nokey.key"), "{no_key}");

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    std::fs::write(&config, body("v.key", &format!("/ip4/127.0.0.1/tcp/{port}"))).unwrap();
    let in_use = run(&config);
    assert!(in_use.contains("cannot listen"), "{in_use}");

    // A key that exists is never overwritten.
    let again = Command::new(WAKE)
        .args(["keys", "generate", "--out"])
        .arg(dir.path().join("v.key"))
        .output()
        .unwrap();
    assert!(!again.status.success());
}
