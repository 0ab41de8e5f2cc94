//! "Real clients prove it" (issue 5): a real Ethereum client library
//! (viem, `tests/clients/check.mjs`) against the full node of a live
//! `wake devnet` (one validator, one full node): reads,
//! an ERC-20 deployed and transferred, `eth_getLogs`, `eth_getProof`
//! verified against the state root, WebSocket subscriptions, the fee
//! methods. See `tests/clients/README.md`.
//!
//! Needs Node.js (20 or newer) and npm with access to the npm registry (or
//! a warm `~/.npm` cache): without them the test fails, it does not skip.
//! The packages are installed with `npm ci` into a folder under `target/`,
//! never into the source tree.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const WAKE: &str = env!("CARGO_BIN_EXE_wake");
const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/clients");
/// Under `target/` (a real file system, as triedb's O_DIRECT needs).
const TARGET_TMP: &str = env!("CARGO_TARGET_TMPDIR");

const ENDPOINTS_TIMEOUT: Duration = Duration::from_secs(120);
const NPM_TIMEOUT: Duration = Duration::from_secs(300);
const CHECK_TIMEOUT: Duration = Duration::from_secs(270);

/// A running `wake devnet`: SIGTERM and a wait when dropped (it stops its
/// validators itself); if it does not stop within 30 s its whole process
/// group (it and its validators) is killed.
struct Devnet {
    child: Child,
    log: PathBuf,
}

impl Devnet {
    fn start(data_dir: &Path) -> Devnet {
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log).expect("create the devnet log");
        let child = Command::new(WAKE)
            // The clients talk to the full node (first in endpoints.json):
            // their transactions reach the validator by gossip.
            .args(["devnet", "--validators", "1", "--full-nodes", "1"])
            .args(["--tps", "0", "--duration", "300"])
            .args(["--accounts", "50", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log file"))
            .stderr(out)
            // Its own process group, so the validators it starts can be
            // killed with it if it hangs.
            .process_group(0)
            .spawn()
            .expect("start wake devnet");
        Devnet { child, log }
    }

    /// The ends of the devnet's output and of its validator's log.
    fn log_tail(&self) -> String {
        let read = |path: &Path| tail(&std::fs::read_to_string(path).unwrap_or_default(), 40);
        let node = self.log.with_extension("").join("node0.log");
        format!("{}\n--- {}:\n{}", read(&self.log), node.display(), read(&node))
    }

    /// Waits for `endpoints.json`, failing if the devnet exits first.
    fn endpoints(&mut self, data_dir: &Path) -> PathBuf {
        let path = data_dir.join("endpoints.json");
        let deadline = Instant::now() + ENDPOINTS_TIMEOUT;
        while !path.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "wake devnet exited with {status} before writing {}:\n{}",
                    path.display(),
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {} after {} s:\n{}",
                path.display(),
                ENDPOINTS_TIMEOUT.as_secs(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        path
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The group leader is not reaped yet, so the group is still ours.
        // SAFETY: kill(2) on the process group of our unreaped child.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

struct Finished {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs `command` to the end or `timeout` (then kills it: `status` None),
/// collecting its output.
fn run(mut command: Command, timeout: Duration) -> Finished {
    let program = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (are Node.js and npm installed?)"));
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = reader(Box::new(child.stdout.take().expect("stdout")));
    let stderr = reader(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `node --version` is 20 or newer.
fn require_node() {
    let node = run(
        {
            let mut c = Command::new("node");
            c.arg("--version");
            c
        },
        Duration::from_secs(30),
    );
    let version = node.stdout.trim();
    assert!(
        node.status.is_some_and(|s| s.success()),
        "`node --version` failed: {}{}",
        node.stdout,
        node.stderr
    );
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("unexpected `node --version`: {version:?}"));
    assert!(major >= 20, "Node.js {version} is too old: the client checks need 20 or newer");
}

/// Copies the package and its script to `dir` and installs the locked
/// packages there.
fn install(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the npm folder");
    for file in ["package.json", "package-lock.json", "check.mjs"] {
        std::fs::copy(Path::new(CLIENTS).join(file), dir.join(file))
            .unwrap_or_else(|e| panic!("copy tests/clients/{file}: {e}"));
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--prefer-offline", "--prefix"]).arg(dir);
    let started = Instant::now();
    let done = run(npm, NPM_TIMEOUT);
    assert!(
        done.status.is_some_and(|s| s.success()),
        "`npm ci` of tests/clients failed ({}); the client checks need npm and the npm \
         registry (or a warm ~/.npm cache):\n{}\n{}",
        done.status.map_or("timed out".to_string(), |s| s.to_string()),
        tail(&done.stdout, 20),
        tail(&done.stderr, 40)
    );
    println!("npm ci: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn viem_against_a_devnet() {
    require_node();
    let npm_dir = Path::new(TARGET_TMP).join("clients-npm");
    install(&npm_dir);

    let temp = tempfile::Builder::new()
        .prefix("clients-devnet-")
        .tempdir_in(TARGET_TMP)
        .expect("create the devnet folder");
    let data_dir = temp.path().join("devnet");
    let started = Instant::now();
    let mut devnet = Devnet::start(&data_dir);
    let endpoints = devnet.endpoints(&data_dir);
    println!("devnet serving after {:.1} s", started.elapsed().as_secs_f64());

    let mut node = Command::new("node");
    node.arg(npm_dir.join("check.mjs")).arg(&endpoints).current_dir(&npm_dir);
    let started = Instant::now();
    let done = run(node, CHECK_TIMEOUT);
    println!("{}", done.stdout);
    if !done.stderr.is_empty() {
        println!("stderr:\n{}", done.stderr);
    }
    println!("client checks: {:.1} s", started.elapsed().as_secs_f64());
    let status = done.status.unwrap_or_else(|| {
        panic!(
            "check.mjs did not finish within {} s:\n{}\ndevnet log:\n{}",
            CHECK_TIMEOUT.as_secs(),
            done.stdout,
            devnet.log_tail()
        )
    });
    assert!(
        status.success(),
        "client checks failed ({status}):\n{}\n{}\ndevnet log:\n{}",
        done.stdout,
        done.stderr,
        devnet.log_tail()
    );
    drop(devnet);
}
