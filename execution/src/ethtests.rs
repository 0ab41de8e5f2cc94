//! Runner for ethereum/tests `BlockchainTests` JSON files, through the real
//! on-disk triedb. Used by `wake ethtests` and the workspace tests.
//!
//! For each test: commit the `pre` state as the first version (its root must be the
//! genesis state root), then import every block from its `rlp` exactly as a
//! node would: decode, find the parent, [`validate_block`], recover senders,
//! prefetch ([`Prefetched`]), [`execute_block_with_roots`] over the parent's
//! version, [`validate_outcome`], commit and [`check_state_root`]. A block with `expectException` must be
//! rejected (and the chain goes on without it); any other block must be
//! accepted. At the end the head (most total difficulty; after the merge,
//! the newest valid block) must be `lastblockhash`, and its state must hold
//! every account, slot and code of `postState` (or have root
//! `postStateHash`).
//!
//! A block's diff is committed with `TrieDb::commit_expecting` and the
//! header's state root, so a block whose root is wrong leaves no version
//! behind. Before Byzantium, the state root each receipt carries comes from
//! `TrieDb::root_of` on the cumulative diff (computed, never committed).
//! triedb commits always build on its newest version: when a block's parent
//! is not the database's newest version (a side chain), the runner rebuilds
//! a fresh database along the parent's ancestry from the diffs it kept.
//! Versions are a private counter, mapped from block hashes.

use crate::{
    BlockError, BlockTx, ChainSpec, ParallelConfig, Prefetched, SnapshotState, SpecId, StateError,
    check_state_root, decode_block, execute_block_parallel_with, execute_block_with_roots,
    recover_senders, spec_supported, validate_block, validate_outcome,
};
use alloy_consensus::{Block, Header};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use wake_triedb::{AccountInfo, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates, TrieDb};

/// Most bytes of one test file we read.
pub const TEST_FILE_BYTES_MAX: u64 = 512 << 20;
/// How far back `BLOCKHASH` sees.
const BLOCK_HASH_WINDOW: u64 = 256;

/// Where and how the runner opens its databases.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Directory for the per-test database files (on a real file system:
    /// triedb uses O_DIRECT). Each file is removed after its test.
    pub db_dir: PathBuf,
    pub cache_bytes: usize,
    pub io_depth: usize,
    /// `None`: the serial executor. `Some`: the parallel executor (blocks
    /// before Byzantium still run serially: their receipts need a state
    /// root per transaction).
    pub parallel: Option<ParallelConfig>,
}

/// The verdict on one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestStatus {
    Passed,
    Failed(String),
    /// The network has no supported spec; carries the network name.
    Skipped(String),
}

/// One test of one file.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub file: PathBuf,
    pub name: String,
    pub network: String,
    pub status: TestStatus,
}

/// Every `.json` file under `path` (or `path` itself), sorted.
pub fn collect_test_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|ext| ext == "json") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, &mut files)?;
    } else {
        files.push(path.to_path_buf());
    }
    files.sort();
    Ok(files)
}

/// Runs every test of one file. A file that cannot be read or parsed gives
/// one failed result named after the file.
pub fn run_file(path: &Path, config: &RunnerConfig) -> Vec<TestResult> {
    let fail = |name: &str, reason: String| TestResult {
        file: path.to_path_buf(),
        name: name.to_string(),
        network: "?".into(),
        status: TestStatus::Failed(reason),
    };
    let json = match read_json(path) {
        Ok(json) => json,
        Err(e) => return vec![fail("<file>", e)],
    };
    let Some(tests) = json.as_object() else {
        return vec![fail("<file>", "top level is not an object".into())];
    };
    let mut results = Vec::with_capacity(tests.len());
    for (index, (name, test)) in tests.iter().enumerate() {
        let network = test.get("network").and_then(Value::as_str).unwrap_or("?").to_string();
        let status = match parse_test(test) {
            Err(e) => TestStatus::Failed(format!("bad test: {e}")),
            Ok(parsed) => match supported_chain(&network) {
                None => TestStatus::Skipped(network.clone()),
                Some(chain) => {
                    let db_path = config.db_dir.join(format!(
                        "{}-{index}.db",
                        path.file_stem().map_or("test".into(), |s| s.to_string_lossy())
                    ));
                    let status = run_test(&chain, &parsed, &db_path, config);
                    let _ = std::fs::remove_file(&db_path);
                    match status {
                        Ok(()) => TestStatus::Passed,
                        Err(e) => TestStatus::Failed(e),
                    }
                }
            },
        };
        results.push(TestResult { file: path.to_path_buf(), name: name.clone(), network, status });
    }
    results
}

/// The chain of a test network, when every fork in it is executable.
fn supported_chain(network: &str) -> Option<ChainSpec> {
    let chain = ChainSpec::for_test_network(network).ok()?;
    chain.forks().iter().all(|(spec, _)| spec_supported(*spec)).then_some(chain)
}

fn read_json(path: &Path) -> Result<Value, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > TEST_FILE_BYTES_MAX {
        return Err(format!("{len} bytes exceeds {TEST_FILE_BYTES_MAX}"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

struct ExpectedAccount {
    nonce: u64,
    balance: U256,
    code: Bytes,
    /// Every listed slot, zeros included.
    storage: BTreeMap<B256, U256>,
}

struct TestBlock {
    rlp: Bytes,
    expect_exception: Option<String>,
}

struct ParsedTest {
    genesis_rlp: Bytes,
    genesis_hash: B256,
    genesis_state_root: B256,
    pre: BTreeMap<Address, ExpectedAccount>,
    blocks: Vec<TestBlock>,
    last_block_hash: B256,
    post_state: Option<BTreeMap<Address, ExpectedAccount>>,
    post_state_hash: Option<B256>,
}

fn quantity(v: &Value) -> Result<U256, String> {
    let s = v.as_str().ok_or_else(|| format!("not a string: {v}"))?;
    let digits = s.strip_prefix("0x").ok_or_else(|| format!("not 0x-prefixed: {s:?}"))?;
    if digits.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(digits, 16).map_err(|e| format!("bad quantity {s:?}: {e}"))
}

fn data(v: &Value) -> Result<Bytes, String> {
    let s = v.as_str().ok_or_else(|| format!("not a string: {v}"))?;
    s.parse::<Bytes>().map_err(|e| format!("bad hex {s:?}: {e}"))
}

fn hash(v: Option<&Value>, what: &str) -> Result<B256, String> {
    let s = v.and_then(Value::as_str).ok_or_else(|| format!("no {what}"))?;
    s.parse::<B256>().map_err(|e| format!("bad {what} {s:?}: {e}"))
}

fn accounts(v: &Value) -> Result<BTreeMap<Address, ExpectedAccount>, String> {
    let map = v.as_object().ok_or("accounts are not an object")?;
    let mut out = BTreeMap::new();
    for (address, acc) in map {
        let ctx = |e: String| format!("account {address}: {e}");
        let field = |f: &str| acc.get(f).ok_or_else(|| ctx(format!("no {f}")));
        let address: Address = address.parse().map_err(|e| ctx(format!("{e}")))?;
        let nonce = u64::try_from(quantity(field("nonce")?).map_err(ctx)?)
            .map_err(|_| ctx("nonce overflows".into()))?;
        let mut storage = BTreeMap::new();
        for (slot, value) in
            field("storage")?.as_object().ok_or_else(|| ctx("bad storage".into()))?
        {
            storage.insert(
                B256::from(quantity(&Value::String(slot.clone())).map_err(ctx)?),
                quantity(value).map_err(ctx)?,
            );
        }
        out.insert(
            address,
            ExpectedAccount {
                nonce,
                balance: quantity(field("balance")?).map_err(ctx)?,
                code: data(field("code")?).map_err(ctx)?,
                storage,
            },
        );
    }
    Ok(out)
}

fn parse_test(test: &Value) -> Result<ParsedTest, String> {
    let blocks = test
        .get("blocks")
        .and_then(Value::as_array)
        .ok_or("no blocks")?
        .iter()
        .map(|b| {
            Ok(TestBlock {
                rlp: data(b.get("rlp").ok_or("block without rlp")?)?,
                expect_exception: b
                    .get("expectException")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ParsedTest {
        genesis_rlp: data(test.get("genesisRLP").ok_or("no genesisRLP")?)?,
        genesis_hash: hash(test.pointer("/genesisBlockHeader/hash"), "genesis hash")?,
        genesis_state_root: hash(test.pointer("/genesisBlockHeader/stateRoot"), "genesis root")?,
        pre: accounts(test.get("pre").ok_or("no pre")?)?,
        blocks,
        last_block_hash: hash(test.get("lastblockhash"), "lastblockhash")?,
        post_state: test.get("postState").map(accounts).transpose()?,
        post_state_hash: test
            .get("postStateHash")
            .map(|v| hash(Some(v), "postStateHash"))
            .transpose()?,
    })
}

fn code_hash(code: &Bytes) -> B256 {
    if code.is_empty() { KECCAK_EMPTY } else { keccak256(code) }
}

fn pre_updates(pre: &BTreeMap<Address, ExpectedAccount>) -> StateUpdates {
    let mut updates = StateUpdates::default();
    for (address, acc) in pre {
        if !acc.code.is_empty() {
            updates.codes.push(acc.code.clone());
        }
        let info =
            AccountInfo { nonce: acc.nonce, balance: acc.balance, code_hash: code_hash(&acc.code) };
        let storage =
            acc.storage.iter().filter(|(_, v)| !v.is_zero()).map(|(k, v)| (*k, *v)).collect();
        updates
            .accounts
            .insert(*address, AccountUpdate::Set { info, wipe_storage: false, storage });
    }
    updates
}

/// A block the chain accepted.
struct Node {
    header: Header,
    parent: Option<B256>,
    total_difficulty: U256,
    /// Its diff (the genesis's is the `pre` state), for rebuilds.
    updates: StateUpdates,
}

/// The database and which accepted block its newest version holds.
struct Store {
    /// File name stem of this test's databases.
    base: PathBuf,
    /// The current database file.
    path: PathBuf,
    config: RunnerConfig,
    db: Option<TrieDb>,
    /// Hash of the block whose post-state is the newest version; `None`
    /// after a rejected block was committed.
    head: Option<B256>,
    version: u64,
    generation: u32,
}

impl Store {
    /// Drops the current database file and opens an empty one (a new file
    /// name each time, so a lock the old handle may still hold cannot bite).
    fn open_fresh(&mut self) -> Result<(), String> {
        self.remove();
        self.generation += 1;
        let mut name = self.base.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(format!(".{}", self.generation));
        self.path = self.base.with_file_name(name);
        // A file left by an earlier, killed run must not be reopened.
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing stale {}: {e}", self.path.display())),
        }
        let mut config = Config::new(&self.path);
        config.cache_bytes = self.config.cache_bytes;
        config.io_depth = self.config.io_depth;
        config.chunk_bytes = 1 << 20;
        self.db = Some(TrieDb::open(config).map_err(|e| format!("triedb open: {e}"))?);
        self.version = 0;
        self.head = None;
        Ok(())
    }

    fn db(&self) -> &TrieDb {
        self.db.as_ref().expect("store is open")
    }

    /// Commits `updates` as the next version; the newest version then no
    /// longer holds any known block's state until the caller says so.
    fn commit(&mut self, updates: &StateUpdates) -> Result<B256, String> {
        self.head = None;
        self.version += 1;
        let version = self.version;
        self.db().commit(version, updates).map_err(|e| format!("triedb commit: {e}"))
    }

    /// Commits `updates` as the next version if its state root is
    /// `expected`. Returns the root either way: on a mismatch nothing was
    /// committed and the newest version (and `head`) are unchanged.
    fn commit_expecting(&mut self, updates: &StateUpdates, expected: B256) -> Result<B256, String> {
        let version = self.version + 1;
        match self.db().commit_expecting(version, updates, expected) {
            Ok(root) => {
                self.version = version;
                self.head = None;
                Ok(root)
            }
            Err(wake_triedb::Error::RootMismatch { computed, .. }) => Ok(computed),
            Err(e) => {
                // Whether anything reached the disk is unknown: rebuild next time.
                self.head = None;
                Err(format!("triedb commit: {e}"))
            }
        }
    }

    /// Makes the newest version the post-state of `hash`, rebuilding along
    /// its ancestry when needed.
    fn checkout(&mut self, hash: B256, nodes: &HashMap<B256, Node>) -> Result<(), String> {
        if self.head == Some(hash) {
            return Ok(());
        }
        let mut path = Vec::new();
        let mut cursor = Some(hash);
        while let Some(h) = cursor {
            let node = nodes.get(&h).ok_or_else(|| format!("missing ancestor {h}"))?;
            path.push(h);
            cursor = node.parent;
        }
        self.open_fresh()?;
        for h in path.iter().rev() {
            let node = &nodes[h];
            let root = self.commit(&node.updates)?;
            if root != node.header.state_root {
                return Err(format!(
                    "rebuild of {h}: root {root}, header {}",
                    node.header.state_root
                ));
            }
        }
        self.head = Some(hash);
        Ok(())
    }

    fn remove(&mut self) {
        self.db = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

fn run_test(
    chain: &ChainSpec,
    test: &ParsedTest,
    db_path: &Path,
    config: &RunnerConfig,
) -> Result<(), String> {
    let mut store = Store {
        base: db_path.to_path_buf(),
        path: db_path.to_path_buf(),
        config: config.clone(),
        db: None,
        head: None,
        version: 0,
        generation: 0,
    };
    let result = import_chain(chain, test, &mut store);
    store.remove();
    result
}

fn import_chain(chain: &ChainSpec, test: &ParsedTest, store: &mut Store) -> Result<(), String> {
    let (genesis, genesis_hash) =
        decode_block(&test.genesis_rlp).map_err(|e| format!("genesis rlp: {e}"))?;
    let genesis = genesis.header;
    if genesis_hash != test.genesis_hash {
        return Err(format!("genesis hash {genesis_hash}, expected {}", test.genesis_hash));
    }
    store.open_fresh()?;
    let pre = pre_updates(&test.pre);
    let root = store.commit(&pre)?;
    if root != test.genesis_state_root || root != genesis.state_root {
        return Err(format!("pre-state root {root}, expected {}", test.genesis_state_root));
    }
    store.head = Some(genesis_hash);
    let mut nodes = HashMap::new();
    let genesis_td = genesis.difficulty;
    nodes.insert(
        genesis_hash,
        Node { header: genesis, parent: None, total_difficulty: genesis_td, updates: pre },
    );
    let mut head = genesis_hash;

    for (i, block) in test.blocks.iter().enumerate() {
        match import_block(chain, &block.rlp, &mut nodes, store) {
            Ok(hash) => {
                if let Some(exception) = &block.expect_exception {
                    return Err(format!("block {i}: accepted, expected {exception}"));
                }
                let (new, old) = (&nodes[&hash], &nodes[&head]);
                if new.total_difficulty > old.total_difficulty
                    || (new.total_difficulty == old.total_difficulty
                        && new.header.difficulty.is_zero())
                {
                    head = hash;
                }
            }
            Err(ImportError::Block(e))
                if e.is_invalid_block() && block.expect_exception.is_some() =>
            {
                tracing::debug!(
                    block = i,
                    reason = %e,
                    expected = block.expect_exception.as_deref().unwrap_or_default(),
                    "rejected as expected"
                );
            }
            Err(e) => {
                let expected = block
                    .expect_exception
                    .as_deref()
                    .map_or(String::new(), |x| format!(" (expected {x})"));
                return Err(format!("block {i}: {e}{expected}"));
            }
        }
    }

    if head != test.last_block_hash {
        return Err(format!("head {head}, expected lastblockhash {}", test.last_block_hash));
    }
    store.checkout(head, &nodes)?;
    let head_root = nodes[&head].header.state_root;
    if let Some(expected) = test.post_state_hash
        && expected != head_root
    {
        return Err(format!("postStateHash {expected}, head state root {head_root}"));
    }
    if let Some(post) = &test.post_state {
        check_post_state(store, post)?;
    }
    Ok(())
}

/// Imports one block; returns its hash, or why it was rejected.
fn import_block(
    chain: &ChainSpec,
    rlp: &[u8],
    nodes: &mut HashMap<B256, Node>,
    store: &mut Store,
) -> Result<B256, ImportError> {
    let (block, hash): (Block<BlockTx>, B256) = decode_block(rlp)?;
    let parent = nodes
        .get(&block.header.parent_hash)
        .ok_or(BlockError::UnknownParent(block.header.parent_hash))?;
    let spec = validate_block(chain, &parent.header, &block)?;
    let senders = recover_senders(&block.body.transactions, spec, 1)
        .map_err(|(index, source)| BlockError::Transaction { index, source })?;

    let mut hashes = BTreeMap::new();
    let mut cursor = Some(block.header.parent_hash);
    while let Some(h) = cursor {
        let Some(node) = nodes.get(&h) else { break };
        if node.header.number + BLOCK_HASH_WINDOW < block.header.number {
            break;
        }
        hashes.insert(node.header.number, h);
        cursor = node.parent;
    }

    let parent_td = parent.total_difficulty;
    store.checkout(block.header.parent_hash, nodes).map_err(ImportError::Store)?;
    let snapshot = store
        .db()
        .snapshot(store.version)
        .map_err(|e| ImportError::Store(format!("snapshot: {e}")))?;
    // Before Byzantium each receipt holds the state root after its
    // transaction: triedb computes the root of the cumulative diff over the
    // parent's state without committing it.
    let db = store.db();
    let mut roots =
        |updates: &StateUpdates| -> Result<B256, StateError> { Ok(db.root_of(updates)?) };
    // The block's likely reads, in one overlapped batch.
    let state =
        Prefetched::load(SnapshotState::new(&snapshot, &hashes), &snapshot, &block, &senders)
            .map_err(BlockError::from)?;
    let outcome = match store.config.parallel {
        Some(config) if spec.is_enabled_in(SpecId::BYZANTIUM) => {
            execute_block_parallel_with(chain, &block, &senders, state, config)?.0
        }
        _ => execute_block_with_roots(chain, &block, &senders, state, &mut roots)?,
    };
    drop(snapshot);
    validate_outcome(&block.header, &outcome)?;
    // Durable only if the root is the header's: a block with a wrong state
    // root leaves the parent's state as the newest version.
    let root = store
        .commit_expecting(&outcome.updates, block.header.state_root)
        .map_err(ImportError::Store)?;
    check_state_root(&block.header, root)?;
    store.head = Some(hash);
    let total_difficulty = parent_td.saturating_add(block.header.difficulty);
    let parent_hash = block.header.parent_hash;
    nodes.insert(
        hash,
        Node {
            header: block.header,
            parent: Some(parent_hash),
            total_difficulty,
            updates: outcome.updates,
        },
    );
    Ok(hash)
}

/// Why a block was not imported: the block's fault, or the runner's.
enum ImportError {
    Block(BlockError),
    Store(String),
}

impl From<BlockError> for ImportError {
    fn from(e: BlockError) -> Self {
        ImportError::Block(e)
    }
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Block(e) => write!(f, "{e}"),
            ImportError::Store(e) => write!(f, "{e}"),
        }
    }
}

fn check_post_state(
    store: &Store,
    post: &BTreeMap<Address, ExpectedAccount>,
) -> Result<(), String> {
    let snapshot = store.db().snapshot(store.version).map_err(|e| format!("snapshot: {e}"))?;
    for (address, want) in post {
        let got = snapshot
            .account(address)
            .map_err(|e| format!("read {address}: {e}"))?
            .ok_or_else(|| format!("post state: account {address} missing"))?;
        if got.nonce != want.nonce || got.balance != want.balance {
            return Err(format!(
                "post state {address}: nonce {} balance {}, expected nonce {} balance {}",
                got.nonce, got.balance, want.nonce, want.balance
            ));
        }
        if got.code_hash != code_hash(&want.code) {
            return Err(format!(
                "post state {address}: code hash {}, expected {}",
                got.code_hash,
                code_hash(&want.code)
            ));
        }
        if !want.code.is_empty() {
            let code = snapshot.code(&got.code_hash).map_err(|e| format!("read code: {e}"))?;
            if code.as_ref() != Some(&want.code) {
                return Err(format!("post state {address}: stored code differs"));
            }
        }
        for (slot, value) in &want.storage {
            let got = snapshot
                .storage(address, slot)
                .map_err(|e| format!("read {address} {slot}: {e}"))?;
            if got != *value {
                return Err(format!("post state {address} slot {slot}: {got}, expected {value}"));
            }
        }
    }
    Ok(())
}

/// Runs `files` on `threads` threads (one database per test), calling
/// `on_file` with each file's results as it finishes. Results come back in
/// file order.
pub fn run_files(
    files: &[PathBuf],
    config: &RunnerConfig,
    threads: usize,
    on_file: &(dyn Fn(&Path, &[TestResult]) + Sync),
) -> Vec<TestResult> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Vec<TestResult>)>> = Mutex::new(Vec::with_capacity(files.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let results = run_file(path, config);
                    on_file(path, &results);
                    done.lock().unwrap_or_else(|p| p.into_inner()).push((i, results));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, results)| results).collect()
}

/// Counts of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    /// Skipped tests by network.
    pub skipped: BTreeMap<String, usize>,
    /// Passed and failed tests by network.
    pub by_network: BTreeMap<String, (usize, usize)>,
}

impl Summary {
    pub fn of(results: &[TestResult]) -> Summary {
        let mut summary = Summary::default();
        for r in results {
            match &r.status {
                TestStatus::Passed => {
                    summary.passed += 1;
                    summary.by_network.entry(r.network.clone()).or_default().0 += 1;
                }
                TestStatus::Failed(_) => {
                    summary.failed += 1;
                    summary.by_network.entry(r.network.clone()).or_default().1 += 1;
                }
                TestStatus::Skipped(network) => {
                    *summary.skipped.entry(network.clone()).or_default() += 1;
                }
            }
        }
        summary
    }

    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }

    /// `N passed, M failed, K skipped`.
    pub fn line(&self) -> String {
        format!("{} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped_total())
    }
}
