//! An executing validator stops, is killed, and restarts from its data
//! directory: it resumes at the executed tip of its chain db (no genesis
//! commit, no re-execution of what it had executed), serves the same
//! blocks and state as before, and goes on producing blocks.
//!
//! The data directory comes from a `wake devnet --data-dir` run (one
//! validator, transfers), whose `node0.toml` is then run with `wake node`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::U256;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use serde_json::Value;

const WAKE: &str = env!("CARGO_BIN_EXE_wake");

fn quantity(v: &Value) -> U256 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    U256::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// `wake node --config node0.toml`, its log in a file, killed on drop.
struct Node {
    child: Child,
    log: std::path::PathBuf,
}

impl Node {
    fn start(config: &Path, log: std::path::PathBuf) -> Node {
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(WAKE)
            .args(["node", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Node { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown path runs.
    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Rpc {
    client: HttpClient,
    runtime: tokio::runtime::Runtime,
}

impl Rpc {
    fn new(addr: &str) -> Rpc {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = {
            let _guard = runtime.enter();
            HttpClientBuilder::default()
                .request_timeout(Duration::from_secs(5))
                .build(format!("http://{addr}"))
                .unwrap()
        };
        Rpc { client, runtime }
    }

    fn try_call(
        &self,
        method: &str,
        params: jsonrpsee::core::params::ArrayParams,
    ) -> Option<Value> {
        self.runtime.block_on(self.client.request::<Value, _>(method, params)).ok()
    }

    fn call(&self, method: &str, params: jsonrpsee::core::params::ArrayParams) -> Value {
        self.try_call(method, params).unwrap_or_else(|| panic!("{method} failed"))
    }

    fn block_number(&self) -> Option<u64> {
        self.try_call("eth_blockNumber", rpc_params![]).map(|v| quantity(&v).to::<u64>())
    }

    fn block(&self, number: u64) -> Value {
        self.call("eth_getBlockByNumber", rpc_params![format!("{number:#x}"), false])
    }

    /// Waits until the node answers with a height of at least `height`.
    fn wait_for(&self, height: u64, node: &Node) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(h) = self.block_number().filter(|h| *h >= height) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "no height {height} within 60 s; log:\n{}",
                tail(&node.log())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The `executed=` of the "resumed" line, which must be there.
fn resumed_at(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("resumed from the data directory"))
        .unwrap_or_else(|| panic!("no resume line; log:\n{}", tail(log)));
    assert!(!log.contains("genesis committed"), "genesis committed again:\n{}", tail(log));
    let value = line.split("executed=").nth(1).unwrap_or_else(|| panic!("{line}"));
    value.split_whitespace().next().unwrap().parse().unwrap()
}

/// Hash and state root of `number`.
fn identity(rpc: &Rpc, number: u64) -> (Value, Value) {
    let block = rpc.block(number);
    (block["hash"].clone(), block["stateRoot"].clone())
}

#[test]
fn an_executing_validator_resumes_from_its_data_directory_after_a_kill() {
    let dir = wake_tests::temp_db_dir("restart");
    let data = dir.path().join("devnet");
    let output = Command::new(WAKE)
        .args(["devnet", "--validators", "1", "--duration", "3", "--tps", "100"])
        .args(["--accounts", "100", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "devnet failed:\n{stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["txs_included"], 300, "{summary}");

    let config = data.join("node0.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let rpc_addr = text
        .lines()
        .find_map(|l| l.strip_prefix("rpc = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no rpc in {text}"))
        .to_string();
    let genesis: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("genesis.json")).unwrap()).unwrap();
    let accounts: Vec<String> =
        genesis["alloc"].as_object().unwrap().keys().take(5).cloned().collect();
    let rpc = Rpc::new(&rpc_addr);

    // First restart, after the devnet's clean stop.
    let node = Node::start(&config, dir.path().join("run1.log"));
    let first = rpc.wait_for(1, &node);
    let resumed = resumed_at(&node.log());
    assert!(resumed >= 1 && first >= resumed, "resumed at {resumed}, serving {first}");
    // The transfers' state, read at `latest` (no transaction is sent any more).
    let state = |rpc: &Rpc| -> Vec<(Value, Value)> {
        accounts
            .iter()
            .map(|a| {
                (
                    rpc.call("eth_getBalance", rpc_params![a, "latest"]),
                    rpc.call("eth_getTransactionCount", rpc_params![a, "latest"]),
                )
            })
            .collect()
    };
    let before = state(&rpc);
    assert!(before.iter().any(|(_, nonce)| quantity(nonce) > U256::ZERO), "{before:?}");
    // It goes on producing (empty) blocks; then SIGKILL at some instant.
    let seen = rpc.wait_for(first + 5, &node);
    let known: Vec<(u64, (Value, Value))> =
        (1..=seen).map(|number| (number, identity(&rpc, number))).collect();
    std::thread::sleep(Duration::from_millis(700));
    node.kill();

    // Second restart, after the kill.
    let node = Node::start(&config, dir.path().join("run2.log"));
    let again = rpc.wait_for(seen, &node);
    let resumed = resumed_at(&node.log());
    assert!(resumed >= seen, "resumed at {resumed}, but {seen} was served before the kill");
    for (number, before) in &known {
        assert_eq!(&identity(&rpc, *number), before, "block {number} after the restart");
    }
    assert_eq!(state(&rpc), before, "account state after the restart");
    // And the chain goes on from there.
    rpc.wait_for(again + 5, &node);
    let log = node.kill();
    assert!(!log.contains("ERROR"), "{}", tail(&log));
}
