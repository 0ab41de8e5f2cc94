//! `wake init`, `wake import` and `wake node --rpc-only` end to end, on
//! real chains: Cancun BlockchainTests of the vendored ethereum/tests,
//! converted to a geth-style `genesis.json` (config with every fork at
//! genesis, alloc from `pre`, the genesis header's fields) and a
//! `chain.rlp` (what `geth export` writes: the genesis block, then every
//! block's RLP, concatenated).
//!
//! * a valid chain imports to the test's `lastblockhash`, resumes from a
//!   shorter export, re-imports as a no-op, and `--rpc-only` serves its
//!   blocks, receipts and `postState` and refuses transactions;
//! * a block with a flipped state-root byte, and an InvalidBlocks block,
//!   stop the import with one `error:` line naming the block; the earlier
//!   blocks stay served, and the fixed chain resumes;
//! * a corrupted chain db, a missing data directory, another genesis, an
//!   unsupported fork and a file that is not RLP each give one `error:`
//!   line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{B256, Bytes, U256};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use serde_json::{Value, json};

const WAKE: &str = env!("CARGO_BIN_EXE_wake");

/// One BlockchainTest as files for `wake`.
struct Fixture {
    test: Value,
    /// The RLP of every block of the test, in order.
    blocks: Vec<Vec<u8>>,
    genesis_rlp: Vec<u8>,
}

impl Fixture {
    fn load(file: &str, name: &str) -> Fixture {
        let path = wake_tests::ethereum_tests_dir().join("BlockchainTests").join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut all: Value = serde_json::from_str(&text).unwrap();
        let test = all
            .get_mut(name)
            .map(Value::take)
            .unwrap_or_else(|| panic!("{} has no test {name}", path.display()));
        assert_eq!(test["network"], "Cancun", "{name}");
        let blocks =
            test["blocks"].as_array().unwrap().iter().map(|b| hex_bytes(&b["rlp"])).collect();
        let genesis_rlp = hex_bytes(&test["genesisRLP"]);
        Fixture { test, blocks, genesis_rlp }
    }

    /// The geth-style genesis of the test (chain id 1, as the tests sign).
    fn genesis_json(&self) -> Value {
        let header = &self.test["genesisBlockHeader"];
        let alloc: serde_json::Map<String, Value> = self.test["pre"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(address, account)| {
                let account = json!({
                    "balance": account["balance"],
                    "nonce": account["nonce"],
                    "code": account["code"],
                    "storage": account["storage"],
                });
                (address.clone(), account)
            })
            .collect();
        json!({
            "config": {
                "chainId": 1,
                "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0, "eip158Block": 0,
                "byzantiumBlock": 0, "constantinopleBlock": 0, "petersburgBlock": 0,
                "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
                "mergeNetsplitBlock": 0, "terminalTotalDifficulty": 0,
                "terminalTotalDifficultyPassed": true,
                "shanghaiTime": 0, "cancunTime": 0
            },
            "nonce": header["nonce"],
            "timestamp": header["timestamp"],
            "extraData": header["extraData"],
            "gasLimit": header["gasLimit"],
            "difficulty": header["difficulty"],
            "mixHash": header["mixHash"],
            "coinbase": header["coinbase"],
            "baseFeePerGas": header["baseFeePerGas"],
            "excessBlobGas": header["excessBlobGas"],
            "blobGasUsed": header["blobGasUsed"],
            "parentBeaconBlockRoot": header["parentBeaconBlockRoot"],
            "number": "0x0",
            "gasUsed": "0x0",
            "parentHash": B256::ZERO,
            "alloc": alloc,
        })
    }

    fn genesis_hash(&self) -> String {
        self.test["genesisBlockHeader"]["hash"].as_str().unwrap().to_string()
    }

    fn last_block_hash(&self) -> String {
        self.test["lastblockhash"].as_str().unwrap().to_string()
    }

    fn block_hash(&self, number: usize) -> String {
        self.test["blocks"][number - 1]["blockHeader"]["hash"].as_str().unwrap().to_string()
    }

    /// `geth export` of the genesis and `blocks`.
    fn chain_rlp<'a>(&'a self, blocks: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
        let mut out = self.genesis_rlp.clone();
        for block in blocks {
            out.extend_from_slice(block);
        }
        out
    }
}

fn hex_bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    hex::decode(s.trim_start_matches("0x")).unwrap()
}

fn quantity(v: &Value) -> U256 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    let digits = s.trim_start_matches("0x");
    if digits.is_empty() { U256::ZERO } else { U256::from_str_radix(digits, 16).unwrap() }
}

/// A data directory and the files `wake` reads, in a temporary directory.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(name: &str) -> Workspace {
        Workspace { dir: wake_tests::temp_db_dir(name) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn init(&self, genesis: &Path) -> Output {
        wake(&["init", "--genesis", s(genesis), "--data-dir", s(&self.data_dir())])
    }

    fn import(&self, chain: &Path, genesis: &Path) -> Output {
        wake(&[
            "import",
            s(chain),
            "--genesis",
            s(genesis),
            "--data-dir",
            s(&self.data_dir()),
            "--no-progress",
        ])
    }

    fn rpc_only(&self, genesis: &Path) -> Command {
        let mut command = Command::new(WAKE);
        command.args([
            "node",
            "--rpc-only",
            "--data-dir",
            s(&self.data_dir()),
            "--genesis",
            s(genesis),
            "--rpc",
            "127.0.0.1:0",
            "--cache-mib",
            "32",
        ]);
        command
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn wake(args: &[&str]) -> Output {
    Command::new(WAKE).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "wake failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

/// The one `error:` line of a failed run.
#[track_caller]
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "wake succeeded: {}", stdout(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected, stderr:\n{stderr}");
    errors[0].to_string()
}

/// A running `wake node --rpc-only`, stopped with SIGTERM on drop.
struct Server {
    child: Child,
    client: HttpClient,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(mut command: Command) -> Server {
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line =
            lines.next().unwrap_or_else(|| panic!("rpc-only exited: {:?}", child.wait())).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = {
            let _guard = runtime.enter();
            HttpClientBuilder::default().request_timeout(Duration::from_secs(10)).build(&url)
        }
        .unwrap();
        Server { child, client, runtime }
    }

    fn call(&self, method: &str, params: jsonrpsee::core::params::ArrayParams) -> Value {
        self.runtime
            .block_on(self.client.request::<Value, _>(method, params))
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn call_err(&self, method: &str, params: jsonrpsee::core::params::ArrayParams) -> String {
        match self.runtime.block_on(self.client.request::<Value, _>(method, params)) {
            Ok(v) => panic!("{method} answered {v}"),
            Err(e) => e.to_string(),
        }
    }

    fn block_number(&self) -> u64 {
        quantity(&self.call("eth_blockNumber", rpc_params![])).to::<u64>()
    }

    fn block_hash(&self, number: u64) -> String {
        let block = self.call("eth_getBlockByNumber", rpc_params![format!("{number:#x}"), false]);
        block["hash"].as_str().unwrap_or_else(|| panic!("block {number}: {block}")).to_string()
    }

    /// SIGTERM, then the exit status must be success within a few seconds.
    fn stop(mut self) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "rpc-only exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "rpc-only did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `summary` says `imported` blocks, `present` already present, and ends
/// at `head`.
#[track_caller]
fn assert_summary(summary: &str, imported: usize, present: usize, head: usize, hash: &str) {
    let want = format!("imported {imported} blocks ({present} already present)");
    assert!(summary.contains(&want), "{want:?} not in {summary:?}");
    let want = format!("head {head} {hash}");
    assert!(summary.contains(&want), "{want:?} not in {summary:?}");
}

const VALID: (&str, &str) = ("ValidBlocks/bcEIP1559/medDemand.json", "medDemand_Cancun");

#[test]
fn imports_a_cancun_chain_resumes_and_serves_it_read_only() {
    let fixture = Fixture::load(VALID.0, VALID.1);
    let n = fixture.blocks.len();
    assert!(n >= 20, "{n} blocks");
    let ws = Workspace::new("import-valid");
    let genesis = ws.write("genesis.json", fixture.genesis_json().to_string());
    let full = ws.write("chain.rlp", fixture.chain_rlp(&fixture.blocks));
    let prefix = ws.write("prefix.rlp", fixture.chain_rlp(&fixture.blocks[..10]));

    // init: our genesis block is the test's, and a second init is a no-op.
    let out = assert_ok(&ws.init(&genesis));
    assert!(out.contains("initialized") && out.contains(&fixture.genesis_hash()), "{out}");
    let out = assert_ok(&ws.init(&genesis));
    assert!(out.contains("already initialized"), "{out}");

    // A shorter export, then the full one (resumes), then again (no-op).
    let out = assert_ok(&ws.import(&prefix, &genesis));
    assert_summary(&out, 10, 1, 10, &fixture.block_hash(10));
    let out = assert_ok(&ws.import(&full, &genesis));
    assert_summary(&out, n - 10, 11, n, &fixture.last_block_hash());
    let out = assert_ok(&ws.import(&full, &genesis));
    assert_summary(&out, 0, n + 1, n, &fixture.last_block_hash());

    let server = Server::start(ws.rpc_only(&genesis));
    assert_eq!(server.block_number(), n as u64);
    assert_eq!(server.block_hash(n as u64), fixture.last_block_hash());
    assert_eq!(server.block_hash(0), fixture.genesis_hash());
    for number in 1..=n {
        assert_eq!(server.block_hash(number as u64), fixture.block_hash(number), "block {number}");
    }
    let latest = server.call("eth_getBlockByNumber", rpc_params!["latest", false]);
    assert_eq!(latest["hash"], fixture.last_block_hash());
    assert_eq!(server.call("eth_syncing", rpc_params![]), json!(false));

    // Every account and slot of postState.
    let mut slots = 0;
    for (address, account) in fixture.test["postState"].as_object().unwrap() {
        let balance = server.call("eth_getBalance", rpc_params![address, "latest"]);
        assert_eq!(quantity(&balance), quantity(&account["balance"]), "{address}");
        let nonce = server.call("eth_getTransactionCount", rpc_params![address, "latest"]);
        assert_eq!(quantity(&nonce), quantity(&account["nonce"]), "{address}");
        let code = server.call("eth_getCode", rpc_params![address, "latest"]);
        assert_eq!(code, account["code"], "{address}");
        for (slot, value) in account["storage"].as_object().unwrap() {
            let got = server.call("eth_getStorageAt", rpc_params![address, slot, "latest"]);
            assert_eq!(quantity(&got), quantity(value), "{address} slot {slot}");
            slots += 1;
        }
    }
    assert!(slots > 10, "{slots} slots checked");

    // Block 1's transactions: found with their receipts, and the receipts
    // as served (status, gas, logs) hash to the block's receipts root.
    // Sending one again is refused as read-only.
    let (block, block_hash) = wake_execution::decode_block(&fixture.blocks[0]).unwrap();
    assert!(!block.body.transactions.is_empty());
    let receipts: Vec<_> = block
        .body
        .transactions
        .iter()
        .map(|tx| {
            let receipt = server.call("eth_getTransactionReceipt", rpc_params![tx.trie_hash()]);
            assert_eq!(receipt["blockHash"], json!(block_hash), "{receipt}");
            serde_json::from_value::<alloy_rpc_types_eth::TransactionReceipt>(receipt)
                .expect("a receipt viem would parse")
                .into_primitives_receipt()
                .inner
        })
        .collect();
    assert_eq!(
        alloy_consensus::proofs::calculate_receipt_root(&receipts),
        block.header.receipts_root,
        "receipts served for block 1"
    );
    let tx = &block.body.transactions[0];
    let tx_hash = tx.trie_hash();
    let found = server.call("eth_getTransactionByHash", rpc_params![tx_hash]);
    assert_eq!(found["blockNumber"], "0x1");
    let raw = Bytes::from(tx.encoded_2718());
    let refused = server.call_err("eth_sendRawTransaction", rpc_params![raw]);
    assert!(refused.contains("read-only"), "{refused}");
    server.stop();

    // A flipped byte in the chain db's first record (not the tail): the
    // read-only node refuses to start, naming the file and the offset.
    let chain_db = ws.data_dir().join("chain.db");
    let mut bytes = std::fs::read(&chain_db).unwrap();
    bytes[100] ^= 0x10;
    std::fs::write(&chain_db, &bytes).unwrap();
    let error = error_line(&ws.rpc_only(&genesis).output().unwrap());
    assert!(error.contains("chain.db") && error.contains("corrupt"), "{error}");
    assert!(error.contains("offset 16"), "{error}");
}

#[test]
fn an_invalid_block_stops_the_import_and_keeps_the_earlier_blocks() {
    let fixture = Fixture::load(VALID.0, VALID.1);
    let n = fixture.blocks.len();
    let ws = Workspace::new("import-invalid");
    let genesis = ws.write("genesis.json", fixture.genesis_json().to_string());

    // Block 8 with one byte of its state root flipped (a new hash, a block
    // that executes fine and fails only at the state root).
    let bad_number = 8;
    let state_root = hex_bytes(&fixture.test["blocks"][bad_number - 1]["blockHeader"]["stateRoot"]);
    let mut bad = fixture.blocks[bad_number - 1].clone();
    let at = bad.windows(32).position(|w| w == state_root.as_slice()).unwrap();
    bad[at + 5] ^= 0x01;
    let (_, bad_hash) = wake_execution::decode_block(&bad).unwrap();
    let mut blocks: Vec<Vec<u8>> = fixture.blocks.clone();
    blocks[bad_number - 1] = bad;
    let chain = ws.write("bad.rlp", fixture.chain_rlp(&blocks));

    let output = ws.import(&chain, &genesis);
    let error = error_line(&output);
    assert!(error.contains(&format!("invalid block {bad_number} ({bad_hash})")), "{error}");
    assert!(error.contains("state root"), "{error}");
    assert_summary(
        &stdout(&output),
        bad_number - 1,
        1,
        bad_number - 1,
        &fixture.block_hash(bad_number - 1),
    );

    // The directory serves the blocks before it, and their state.
    let server = Server::start(ws.rpc_only(&genesis));
    assert_eq!(server.block_number(), bad_number as u64 - 1);
    assert_eq!(server.block_hash(bad_number as u64 - 1), fixture.block_hash(bad_number - 1));
    let none = server.call("eth_getBlockByNumber", rpc_params![format!("{bad_number:#x}"), false]);
    assert_eq!(none, Value::Null);
    server.stop();

    // The good chain resumes after the last good block.
    let good = ws.write("good.rlp", fixture.chain_rlp(&fixture.blocks));
    let out = assert_ok(&ws.import(&good, &genesis));
    assert_summary(&out, n - bad_number + 1, bad_number, n, &fixture.last_block_hash());

    // An InvalidBlocks test: two good blocks, then one with an ommer after
    // the merge.
    let uncle =
        Fixture::load("InvalidBlocks/bcUncleTest/UncleIsBrother.json", "UncleIsBrother_Cancun");
    assert!(uncle.test["blocks"][2]["expectException"].is_string());
    let ws = Workspace::new("import-uncle");
    let genesis = ws.write("genesis.json", uncle.genesis_json().to_string());
    let chain = ws.write("chain.rlp", uncle.chain_rlp(&uncle.blocks));
    let output = ws.import(&chain, &genesis);
    let (_, bad_hash) = wake_execution::decode_block(&uncle.blocks[2]).unwrap();
    let error = error_line(&output);
    assert!(error.contains(&format!("invalid block 3 ({bad_hash})")), "{error}");
    assert!(error.contains("ommer"), "{error}");
    assert_summary(&stdout(&output), 2, 1, 2, &uncle.block_hash(2));
}

#[test]
fn bad_inputs_give_one_error_line() {
    let fixture = Fixture::load(VALID.0, VALID.1);
    let ws = Workspace::new("import-refusals");
    let mut genesis_json = fixture.genesis_json();
    let genesis = ws.write("genesis.json", genesis_json.to_string());

    // --rpc-only on a directory that was never initialized.
    let error = error_line(&ws.rpc_only(&genesis).output().unwrap());
    assert!(error.contains("not an initialized wake data directory"), "{error}");

    // A file that is not RLP blocks (after a successful init).
    let junk = ws.write("junk.rlp", b"hello, world");
    let error = error_line(&ws.import(&junk, &genesis));
    assert!(error.contains("junk.rlp") && error.contains("offset 0"), "{error}");
    // A block cut short at the end of the file.
    let mut truncated = fixture.chain_rlp(&fixture.blocks[..2]);
    truncated.truncate(truncated.len() - 10);
    let truncated = ws.write("truncated.rlp", truncated);
    let output = ws.import(&truncated, &genesis);
    let error = error_line(&output);
    assert!(error.contains("truncated"), "{error}");
    assert_summary(&stdout(&output), 1, 1, 1, &fixture.block_hash(1));

    // Another genesis (one more wei somewhere) is refused, the directory
    // is left as it was.
    let alloc = genesis_json["alloc"].as_object_mut().unwrap();
    alloc.insert("0x00000000000000000000000000000000000000ff".into(), json!({"balance": "0x1"}));
    let other = ws.write("other.json", genesis_json.to_string());
    let error = error_line(&ws.init(&other));
    assert!(error.contains("holds another chain"), "{error}");
    let error = error_line(&ws.import(&junk, &other));
    assert!(error.contains("holds another chain"), "{error}");

    // A fork the executor does not run.
    genesis_json["config"]["pragueTime"] = json!(0);
    let prague = ws.write("prague.json", genesis_json.to_string());
    let fresh = Workspace::new("import-prague");
    let error = error_line(&fresh.init(&prague));
    assert!(error.contains("PRAGUE") && error.contains("not support"), "{error}");
    assert!(!fresh.data_dir().join("chain.db").exists());

    // The directory still serves its one imported block.
    let server = Server::start(ws.rpc_only(&genesis));
    assert_eq!(server.block_number(), 1);
    server.stop();
}
