//! Every BlockchainTest of ethereum/tests v14.1 (`BlockchainTests/**.json`,
//! every test object of every file, all networks): its `pre` state committed
//! into a fresh triedb as version 0 must give `genesisBlockHeader.stateRoot`,
//! and must read back (accounts, storage roots, slots, code).
//!
//! A second test checks the parser alone against alloy-trie, so a mismatch in
//! the first one is the trie's and not the parser's.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::TrieAccount;
use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use wake_triedb::{
    Account, AccountInfo, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates, TrieDb,
};

/// JSON files under `BlockchainTests/` (the other 6 of the 3,080 are TrieTests).
const EXPECTED_FILES: usize = 3_074;
/// Test objects in those files.
const EXPECTED_TESTS: usize = 14_827;

struct PreAccount {
    address: Address,
    nonce: u64,
    balance: U256,
    code: Bytes,
    /// Non-zero slots only.
    storage: BTreeMap<B256, U256>,
}

struct PreTest {
    name: String,
    network: String,
    state_root: B256,
    accounts: Vec<PreAccount>,
}

fn test_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                out.push(path);
            }
        }
    }
    let root = wake_tests::ethereum_tests_dir().join("BlockchainTests");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    assert_eq!(files.len(), EXPECTED_FILES, "JSON files under {}", root.display());
    files
}

fn relative(path: &Path) -> String {
    let base = wake_tests::ethereum_tests_dir();
    path.strip_prefix(&base).unwrap_or(path).display().to_string()
}

fn parse_u256(s: &str) -> Result<U256, String> {
    let digits = s.strip_prefix("0x").ok_or_else(|| format!("not 0x-prefixed: {s:?}"))?;
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(digits, 16).map_err(|e| format!("bad quantity {s:?}: {e}"))
}

fn parse_file(path: &Path) -> Result<Vec<PreTest>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    let tests = json.as_object().ok_or("top level is not an object")?;
    let mut out = Vec::with_capacity(tests.len());
    for (name, test) in tests {
        let ctx = |e: String| format!("{name}: {e}");
        let network = test.get("network").and_then(|v| v.as_str()).unwrap_or("?").to_string();
        let state_root = test
            .pointer("/genesisBlockHeader/stateRoot")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ctx("no genesisBlockHeader.stateRoot".into()))?
            .parse::<B256>()
            .map_err(|e| ctx(e.to_string()))?;
        let pre =
            test.get("pre").and_then(|v| v.as_object()).ok_or_else(|| ctx("no pre".into()))?;
        let mut accounts = Vec::with_capacity(pre.len());
        for (address, acc) in pre {
            let ctx = |e: String| format!("{name}: pre[{address}]: {e}");
            let field =
                |f: &str| acc.get(f).and_then(|v| v.as_str()).ok_or_else(|| ctx(format!("no {f}")));
            let address = address.parse::<Address>().map_err(|e| ctx(e.to_string()))?;
            let nonce = parse_u256(field("nonce")?).map_err(ctx)?;
            let nonce = u64::try_from(nonce).map_err(|e| ctx(e.to_string()))?;
            let balance = parse_u256(field("balance")?).map_err(ctx)?;
            let code_hex = field("code")?;
            let code = hex::decode(code_hex.strip_prefix("0x").unwrap_or(code_hex))
                .map_err(|e| ctx(e.to_string()))?;
            let mut storage = BTreeMap::new();
            let slots = acc
                .get("storage")
                .and_then(|v| v.as_object())
                .ok_or_else(|| ctx("no storage".into()))?;
            for (slot, value) in slots {
                let slot = B256::from(parse_u256(slot).map_err(ctx)?);
                let value = parse_u256(value.as_str().ok_or_else(|| ctx("bad slot value".into()))?)
                    .map_err(ctx)?;
                if !value.is_zero() {
                    storage.insert(slot, value);
                }
            }
            accounts.push(PreAccount { address, nonce, balance, code: code.into(), storage });
        }
        out.push(PreTest { name: name.clone(), network, state_root, accounts });
    }
    Ok(out)
}

fn code_hash(code: &Bytes) -> B256 {
    if code.is_empty() { KECCAK_EMPTY } else { keccak256(code) }
}

fn oracle_storage_root(acc: &PreAccount) -> B256 {
    storage_root_unhashed(acc.storage.iter().map(|(k, v)| (*k, *v)))
}

fn oracle_root(test: &PreTest) -> B256 {
    state_root_unhashed(test.accounts.iter().map(|acc| {
        (
            acc.address,
            TrieAccount::new(
                acc.nonce,
                acc.balance,
                oracle_storage_root(acc),
                code_hash(&acc.code),
            ),
        )
    }))
}

fn updates(test: &PreTest) -> StateUpdates {
    let mut updates = StateUpdates::default();
    for acc in &test.accounts {
        let info =
            AccountInfo { nonce: acc.nonce, balance: acc.balance, code_hash: code_hash(&acc.code) };
        updates.accounts.insert(
            acc.address,
            AccountUpdate::Set { info, wipe_storage: false, storage: acc.storage.clone() },
        );
        if !acc.code.is_empty() {
            updates.codes.push(acc.code.clone());
        }
    }
    updates
}

/// Commits the pre-state into a fresh database at `db_path` and checks it.
fn check_test(db_path: &Path, test: &PreTest) -> Result<(), String> {
    let mut config = Config::new(db_path);
    config.cache_bytes = 1 << 20;
    config.chunk_bytes = 1 << 20;
    let db = TrieDb::open(config).map_err(|e| format!("open: {e}"))?;
    let root = db.commit(0, &updates(test)).map_err(|e| format!("commit(0): {e}"))?;
    if root != test.state_root {
        return Err(format!(
            "state root: got {root}, expected genesisBlockHeader.stateRoot {} (alloy-trie oracle: {}; {} accounts)",
            test.state_root,
            oracle_root(test),
            test.accounts.len()
        ));
    }
    let snap = db.snapshot(0).map_err(|e| format!("snapshot(0): {e}"))?;
    if snap.state_root() != root {
        return Err(format!(
            "snapshot(0).state_root() = {}, commit returned {root}",
            snap.state_root()
        ));
    }
    for acc in &test.accounts {
        let want = Account {
            nonce: acc.nonce,
            balance: acc.balance,
            code_hash: code_hash(&acc.code),
            storage_root: oracle_storage_root(acc),
        };
        let got =
            snap.account(&acc.address).map_err(|e| format!("account({}): {e}", acc.address))?;
        if got != Some(want) {
            return Err(format!("account({}): got {got:?}, expected {want:?}", acc.address));
        }
        for (slot, value) in &acc.storage {
            let got = snap
                .storage(&acc.address, slot)
                .map_err(|e| format!("storage({}, {slot}): {e}", acc.address))?;
            if got != *value {
                return Err(format!(
                    "storage({}, {slot}): got {got}, expected {value}",
                    acc.address
                ));
            }
        }
        if !acc.code.is_empty() {
            let got =
                snap.code(&want.code_hash).map_err(|e| format!("code({}): {e}", want.code_hash))?;
            if got.as_ref() != Some(&acc.code) {
                return Err(format!(
                    "code({}) of {}: got {got:?}, expected {}",
                    want.code_hash, acc.address, acc.code
                ));
            }
        }
    }
    Ok(())
}

/// Runs `per_file` over every test file on a few threads; returns (tests, failures).
fn for_each_file(
    per_file: impl Fn(&Path, &[PreTest], &mut Vec<String>) + Sync,
) -> (usize, Vec<String>) {
    let files = test_files();
    let next = AtomicUsize::new(0);
    let tests = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..wake_tests::test_threads() {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let mut local = Vec::new();
                    match parse_file(path) {
                        Ok(parsed) => {
                            tests.fetch_add(parsed.len(), Ordering::Relaxed);
                            per_file(path, &parsed, &mut local);
                        }
                        Err(e) => local.push(format!("{}: parse error: {e}", relative(path))),
                    }
                    failures.lock().unwrap().extend(local);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    (tests.into_inner(), failures)
}

fn report(what: &str, tests: usize, failures: &[String], start: Instant) {
    println!(
        "{what}: {tests} BlockchainTests checked, {} failed, in {:.1?}",
        failures.len(),
        start.elapsed()
    );
    const SHOWN: usize = 50;
    assert!(
        failures.is_empty(),
        "{what}: {} of {tests} BlockchainTests failed (first {SHOWN} shown):\n{}",
        failures.len(),
        failures.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(tests, EXPECTED_TESTS, "number of BlockchainTests found");
}

/// The parser and alloy-trie alone reproduce every genesis state root.
#[test]
fn prestate_parser_matches_alloy_oracle() {
    let start = Instant::now();
    let (tests, failures) = for_each_file(|path, parsed, failures| {
        for test in parsed {
            let root = oracle_root(test);
            if root != test.state_root {
                failures.push(format!(
                    "{} :: {} ({}): alloy-trie oracle root {root}, expected {}",
                    relative(path),
                    test.name,
                    test.network,
                    test.state_root
                ));
            }
        }
    });
    report("pre-state parser vs alloy-trie", tests, &failures, start);
}

/// Every test's pre-state, committed into a fresh triedb, gives the genesis
/// state root and reads back.
#[test]
fn prestate_roots_through_triedb() {
    let start = Instant::now();
    let (tests, failures) = for_each_file(|path, parsed, failures| {
        let dir = wake_tests::temp_db_dir("blockchain-prestate");
        for (i, test) in parsed.iter().enumerate() {
            let db_path = dir.path().join(format!("{i}.db"));
            if let Err(e) = check_test(&db_path, test) {
                failures.push(format!(
                    "{} :: {} ({}): {e}",
                    relative(path),
                    test.name,
                    test.network
                ));
            }
            let _ = std::fs::remove_file(&db_path);
        }
    });
    report("pre-state through triedb", tests, &failures, start);
}
