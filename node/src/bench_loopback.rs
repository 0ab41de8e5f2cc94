//! The loopback half of `wake bench consensus`: N `wake node` processes
//! (ordering only: no execution, payload = the leader's clock) on
//! 127.0.0.1 over real libp2p (tcp + noise + yamux), every vote fsynced to
//! its journal before it leaves, as in production.
//!
//! Each process logs `committed height=… round=… age_ms=…`, where `age_ms`
//! is the time from the leader stamping the proposal to this validator
//! committing it (one machine, one clock). The run measures a window that
//! starts at the first commit of every validator: rounds and blocks per
//! second at validator 0, and the commit latency p50/p99 over every
//! (block, validator).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// What the loopback run measured.
pub struct LoopbackSection {
    validators: usize,
    seconds: f64,
    rounds_per_s: f64,
    blocks_per_s: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    samples: usize,
}

/// One commit line of one validator.
#[derive(Clone, Copy)]
struct Commit {
    at: Instant,
    height: u64,
    round: u64,
    age_ms: Option<u64>,
}

fn field(line: &str, name: &str) -> Option<u64> {
    let digits: String =
        line.split(&format!(" {name}=")).nth(1)?.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn parse(line: &str, at: Instant) -> Option<Commit> {
    if !line.contains(" committed ") && !line.ends_with(" committed") {
        return None;
    }
    Some(Commit {
        at,
        height: field(line, "height")?,
        round: field(line, "round")?,
        age_ms: field(line, "age_ms"),
    })
}

struct Node {
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `validators` processes for `seconds` after they all commit.
pub fn run(validators: usize, seconds: u64) -> anyhow::Result<LoopbackSection> {
    let dir = tempfile::Builder::new().prefix("wake-bench-loopback-").tempdir()?;
    let mut set = String::new();
    let mut ports = Vec::new();
    for i in 0..validators {
        let secret: [u8; 32] = rand::random();
        wake_node::config::write_new_key(&dir.path().join(format!("v{i}.key")), &secret)?;
        let public = wake_consensus::crypto::ed25519_key_from_seed(secret).verifying_key();
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        set += &format!(
            "[[validators]]\npublic_key = \"{}\"\nstake = 1\naddress = \"/ip4/127.0.0.1/tcp/{port}\"\n",
            hex::encode(public.as_bytes())
        );
        ports.push(port);
    }
    let exe = std::env::current_exe().context("locating the wake binary")?;
    let commits: Vec<Arc<Mutex<Vec<Commit>>>> = (0..validators).map(|_| Arc::default()).collect();
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let config = dir.path().join(format!("node{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data{i}\"\nkey_file = \"v{i}.key\"\nlisten = \"/ip4/127.0.0.1/tcp/{port}\"\n{set}"
            ),
        )?;
        let mut child = Command::new(&exe)
            .args(["node", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting a validator")?;
        let stderr = child.stderr.take().context("validator stderr")?;
        let sink = commits[i].clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(commit) = parse(&line, Instant::now())
                    && let Ok(mut sink) = sink.lock()
                {
                    sink.push(commit);
                }
            }
        });
        nodes.push(Node { child });
    }
    let count = |i: usize| commits[i].lock().map_or(0, |c| c.len());
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..validators).any(|i| count(i) == 0) {
        if Instant::now() > deadline {
            bail!("the loopback validators did not all commit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let end = Instant::now();
    drop(nodes);

    let in_window = |c: &Commit| c.at >= start && c.at <= end;
    let first: Vec<Commit> = commits[0].lock().map_or(Vec::new(), |c| c.clone());
    let window: Vec<&Commit> = first.iter().filter(|c| in_window(c)).collect();
    let (Some(a), Some(b)) = (window.first(), window.last()) else {
        bail!("validator 0 committed nothing in the measured window");
    };
    let span = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let mut ages: Vec<f64> = Vec::new();
    for sink in &commits {
        if let Ok(sink) = sink.lock() {
            ages.extend(
                sink.iter().filter(|c| in_window(c)).filter_map(|c| c.age_ms).map(|ms| ms as f64),
            );
        }
    }
    ages.sort_by(f64::total_cmp);
    let at = |q: f64| ages.get(((ages.len().max(1) - 1) as f64 * q).round() as usize).copied();
    Ok(LoopbackSection {
        validators,
        seconds: end.duration_since(start).as_secs_f64(),
        rounds_per_s: b.round.saturating_sub(a.round) as f64 / span,
        blocks_per_s: b.height.saturating_sub(a.height) as f64 / span,
        latency_ms_p50: at(0.5).unwrap_or(f64::NAN),
        latency_ms_p99: at(0.99).unwrap_or(f64::NAN),
        samples: ages.len(),
    })
}

impl LoopbackSection {
    pub fn to_json(&self) -> Value {
        json!({
            "validators": self.validators,
            "seconds": self.seconds,
            "rounds_per_s": self.rounds_per_s,
            "blocks_per_s": self.blocks_per_s,
            "commit_latency_ms_p50": self.latency_ms_p50,
            "commit_latency_ms_p99": self.latency_ms_p99,
            "latency_samples": self.samples,
        })
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nwake bench consensus — loopback: {} `wake node` processes on 127.0.0.1, libp2p \
             tcp+noise+yamux, journal fsync per vote, ordering only, {:.1} s",
            self.validators, self.seconds
        );
        let _ = writeln!(
            t,
            "rounds/s {:.1} | blocks/s {:.1} | commit latency (proposal → commit, every validator) \
             p50 {:.1} ms p99 {:.1} ms over {} commits",
            self.rounds_per_s,
            self.blocks_per_s,
            self.latency_ms_p50,
            self.latency_ms_p99,
            self.samples
        );
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commit_lines() {
        let now = Instant::now();
        let line = "2026-11-25T17:00:00Z  INFO wake_node::validator: committed height=17 round=18 author=1 payload_bytes=8 age_ms=12";
        let commit = parse(line, now).unwrap();
        assert_eq!((commit.height, commit.round, commit.age_ms), (17, 18, Some(12)));
        assert!(parse("INFO wake_node::validator: status round=3 committed=2", now).is_none());
    }
}
