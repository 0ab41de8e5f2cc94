//! `wake init` and `wake import`: a data directory holding a chain's state
//! and blocks, filled from a geth-style `genesis.json` and an RLP chain
//! file (what `geth export` writes: blocks concatenated, no framing).
//!
//! ## The data directory
//! * `D/state/triedb`: the state; version `h` is the post-state of block
//!   `h` (triedb keeps its newest `retain_versions`, 256 by default);
//! * `D/chain.db`: every block from the genesis on, with senders and
//!   receipts ([`ChainDb`]), which is what `wake node --rpc-only`
//!   ([`crate::readonly`]) serves.
//!
//! [`DataDir::prepare`] opens (and with `create`, initializes) it and checks
//! it: the genesis block in the chain db must be the one `genesis.json`
//! gives (its state root is computed in memory, so the check needs no
//! state), and triedb must hold the chain db tip's state root.
//!
//! ## Import, per block
//! A reader thread reads the file (each block's RLP length bounded by
//! [`BLOCK_BYTES_MAX`] before anything is allocated), decodes it, and
//! recovers the senders of blocks not yet stored on several threads, up to
//! [`READ_AHEAD_BLOCKS`] ahead of execution. The importing thread then, in
//! order: skips a block already stored (same hash at that height); checks
//! that the block extends the head; refuses a fork the executor does not
//! support; [`validate_block`] against the head; prefetches its reads
//! ([`Prefetched`]); executes it with the parallel executor (the serial one
//! with intermediate roots before Byzantium); [`validate_outcome`]; commits
//! the diff to triedb with `commit_expecting(header.state_root)`; and
//! appends the block to the chain db.
//!
//! ## Design decisions
//! | decision | why |
//! |---|---|
//! | An invalid block stops the import with [`ImportError::InvalidBlock`] (number, hash, typed reason); nothing of it reaches the disk | a wrong state root fails inside `commit_expecting`, which keeps nothing; every other check runs before the commit; the data directory stays at the previous block and a fixed chain file resumes from there |
//! | Resumable: blocks already stored are skipped by hash | re-running an import is a no-op; a longer export of the same chain continues it; a different chain is refused ([`ImportError::Diverged`]) |
//! | triedb version `h` is committed before block `h` is appended | the chain db never names a block whose state is missing; a crash in between leaves triedb one version ahead, and the next import executes the block again, finds the committed root equal to the header's, and only appends |
//! | `import` initializes a missing data directory (as `init` would) | one command for the common case; a directory of another genesis is still refused |
//! | Read-ahead and sender recovery on their own thread | decoding and ECDSA recovery overlap with execution of the blocks before |

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use alloy_consensus::Header;
use alloy_primitives::{Address, B256, keccak256};
use alloy_trie::TrieAccount;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wake_execution::{
    BLOCK_BYTES_MAX, Block, BlockError, BlockTx, ChainSpec, Genesis, ParallelConfig, Prefetched,
    SnapshotState, SpecError, SpecId, StateError, TxError, check_state_root, decode_block,
    execute_block_parallel_with, execute_block_with_roots, recover_senders, spec_supported,
    validate_block, validate_outcome,
};
use wake_triedb::{KECCAK_EMPTY, StateUpdates, TrieDb};

use crate::chaindb::{ChainDb, ChainDbError, ChainRecord};
use crate::pipeline::genesis_header;

/// The chain db's file name in a data directory.
pub const CHAIN_DB_FILE: &str = "chain.db";
/// The state directory in a data directory.
pub const STATE_DIR: &str = "state";
/// The triedb file in the state directory.
pub const TRIEDB_FILE: &str = "triedb";
/// Blocks read, decoded and recovered ahead of execution.
pub const READ_AHEAD_BLOCKS: usize = 16;
/// Default triedb node cache.
pub const CACHE_MIB_DEFAULT: usize = 256;

/// A node's triedb embeds small self-contained bottom branches in their
/// parent (`wake_triedb::Config::embed_subtrees`). A node reads most of its
/// state cold, and then a lookup costs ~1.04 device reads instead of ~1.28;
/// and a bottom node has no stored children, so compaction copies it
/// without reading its parent from a random place above the floor. On the
/// 1M-account `mix` devnet this gave 3,005 tx/s against 2,224–2,468, and
/// the cached 50k-account transfer devnet lost nothing (9,875 against
/// 8,775 without; `benches/RESULTS.md`). A file written either way reads
/// the same.
const EMBED_SUBTREES: bool = true;

/// Why `init`, `import` or opening a data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", .path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("cannot create {}: {source}", .path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("{}: invalid genesis: {source}", .path.display())]
    Genesis { path: PathBuf, source: SpecError },
    #[error("{}: the genesis block is {spec:?}, which this executor does not support", .path.display())]
    UnsupportedGenesis { path: PathBuf, spec: SpecId },
    #[error("{}: the genesis state root cannot be computed: {source}", .path.display())]
    GenesisRoot { path: PathBuf, source: wake_triedb::Error },
    #[error("{} is not an initialized wake data directory ({what}); run `wake init` first", .data_dir.display())]
    NotInitialized { data_dir: PathBuf, what: String },
    #[error(
        "{} holds another chain: its genesis block is {stored}, but {} gives {given}",
        .data_dir.display(), .genesis.display()
    )]
    GenesisMismatch { data_dir: PathBuf, genesis: PathBuf, stored: B256, given: B256 },
    #[error("{} is inconsistent: {reason}", .data_dir.display())]
    Inconsistent { data_dir: PathBuf, reason: String },
    #[error("chain db: {0}")]
    ChainDb(#[from] ChainDbError),
    #[error("state database {}: {source}", .path.display())]
    Trie { path: PathBuf, source: wake_triedb::Error },
    #[error("{}: at byte offset {offset}: {reason}", .path.display())]
    ChainFile { path: PathBuf, offset: u64, reason: String },
    #[error(
        "block {number} ({hash}) does not follow the head: the data directory's newest block is {head}"
    )]
    Gap { number: u64, hash: B256, head: u64 },
    #[error(
        "block {number} ({hash}) does not link to the head: its parent is {parent}, block {} is {head}",
        .number - 1
    )]
    NotLinked { number: u64, hash: B256, parent: B256, head: B256 },
    #[error(
        "block {number} ({hash}) differs from the stored block {stored} at that height: the data directory holds another chain"
    )]
    Diverged { number: u64, hash: B256, stored: B256 },
    #[error("invalid block {number} ({hash}): {reason}")]
    InvalidBlock { number: u64, hash: B256, reason: Box<BlockError> },
    #[error("block {number} ({hash}) is {spec:?}, which this executor does not support")]
    UnsupportedFork { number: u64, hash: B256, spec: SpecId },
    #[error("block {number}: reading the state failed: {source}")]
    State { number: u64, source: StateError },
}

/// Result alias of this module.
pub type Result<T, E = ImportError> = std::result::Result<T, E>;

/// `wake init`.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// The chain's geth-style genesis file.
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// The data directory to create (or check, when it exists).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// `wake import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Concatenated RLP blocks (the `geth export` format, uncompressed).
    #[arg(value_name = "CHAIN_RLP")]
    pub chain: PathBuf,
    /// The chain's geth-style genesis file.
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// The data directory (initialized first when it is missing).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Execution threads (default: the available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// triedb node cache, MiB.
    #[arg(long, default_value_t = CACHE_MIB_DEFAULT)]
    pub cache_mib: usize,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// A parsed genesis file, with its block.
#[derive(Debug)]
pub struct LoadedGenesis {
    pub path: PathBuf,
    pub genesis: Genesis,
    pub header: Header,
    pub hash: B256,
}

impl LoadedGenesis {
    /// Reads and parses `path` and computes the genesis block (its state
    /// root in memory).
    pub fn load(path: &Path) -> Result<LoadedGenesis> {
        let read = |source| ImportError::ReadFile { path: path.into(), source };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > wake_execution::GENESIS_JSON_BYTES_MAX as u64 {
            let source = SpecError::TooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: wake_execution::GENESIS_JSON_BYTES_MAX,
            };
            return Err(ImportError::Genesis { path: path.into(), source });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let genesis = Genesis::from_json(&text)
            .map_err(|source| ImportError::Genesis { path: path.into(), source })?;
        let spec = genesis.spec.spec_at(0, genesis.timestamp);
        if !spec_supported(spec) {
            return Err(ImportError::UnsupportedGenesis { path: path.into(), spec });
        }
        let root = genesis_state_root(&genesis)
            .map_err(|source| ImportError::GenesisRoot { path: path.into(), source })?;
        let header = genesis_header(&genesis, root);
        let hash = header.hash_slow();
        Ok(LoadedGenesis { path: path.into(), genesis, header, hash })
    }

    /// The chain's rules.
    pub fn chain(&self) -> &ChainSpec {
        &self.genesis.spec
    }
}

/// The state root of a genesis alloc, computed in memory (no database).
pub fn genesis_state_root(genesis: &Genesis) -> Result<B256, wake_triedb::Error> {
    let mut leaves = Vec::with_capacity(genesis.alloc.len());
    for (address, account) in &genesis.alloc {
        let slots = account
            .storage
            .iter()
            .map(|(slot, value)| (keccak256(slot), alloy_rlp::encode(value)))
            .collect();
        let storage_root = wake_triedb::trie_root_with_threads(slots, 1)?;
        let code_hash =
            if account.code.is_empty() { KECCAK_EMPTY } else { keccak256(&account.code) };
        let leaf =
            TrieAccount { nonce: account.nonce, balance: account.balance, storage_root, code_hash };
        leaves.push((keccak256(address), alloy_rlp::encode(leaf)));
    }
    wake_triedb::trie_root(leaves)
}

/// The paths of a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    pub root: PathBuf,
}

/// An open, checked data directory.
pub struct OpenDataDir {
    pub dir: DataDir,
    pub genesis: LoadedGenesis,
    pub chain_db: ChainDb,
    pub triedb: TrieDb,
    /// The genesis was committed by this call (a fresh directory).
    pub initialized: bool,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn chain_db_path(&self) -> PathBuf {
        self.root.join(CHAIN_DB_FILE)
    }

    pub fn triedb_path(&self) -> PathBuf {
        self.root.join(STATE_DIR).join(TRIEDB_FILE)
    }

    /// Opens the data directory and checks it against `genesis`. With
    /// `create`, a missing or empty directory is initialized first
    /// (genesis state committed as triedb version 0, genesis block appended
    /// to the chain db); without, it must exist.
    pub fn prepare(
        &self,
        genesis: LoadedGenesis,
        create: bool,
        cache_mib: usize,
    ) -> Result<OpenDataDir> {
        let not_initialized =
            |what: String| ImportError::NotInitialized { data_dir: self.root.clone(), what };
        let inconsistent =
            |reason: String| ImportError::Inconsistent { data_dir: self.root.clone(), reason };
        let chain_path = self.chain_db_path();
        let trie_path = self.triedb_path();
        if create {
            let state = self.root.join(STATE_DIR);
            std::fs::create_dir_all(&state)
                .map_err(|source| ImportError::CreateDir { path: state, source })?;
        } else if !self.root.is_dir() {
            return Err(not_initialized("no such directory".into()));
        } else if !chain_path.is_file() {
            return Err(not_initialized(format!("no {}", chain_path.display())));
        }

        let (mut chain_db, _) = if create {
            ChainDb::open_or_create(&chain_path)?
        } else {
            ChainDb::open(&chain_path)?
        };
        match (chain_db.first(), chain_db.hash(0)) {
            (None, _) if !create => {
                return Err(not_initialized(format!("{} is empty", chain_path.display())));
            }
            (None, _) => {}
            (Some(0), Some(stored)) if stored != genesis.hash => {
                return Err(ImportError::GenesisMismatch {
                    data_dir: self.root.clone(),
                    genesis: genesis.path.clone(),
                    stored,
                    given: genesis.hash,
                });
            }
            (Some(0), _) => {}
            (Some(first), _) => {
                return Err(inconsistent(format!(
                    "the chain db starts at block {first}, not at the genesis"
                )));
            }
        }
        if chain_db.tip().is_some() && !trie_path.is_file() {
            return Err(inconsistent(format!("{} is missing", trie_path.display())));
        }

        let trie_error = |source| ImportError::Trie { path: trie_path.clone(), source };
        let mut config = wake_triedb::Config::new(&trie_path);
        config.cache_bytes = cache_mib << 20;
        config.embed_subtrees = EMBED_SUBTREES;
        let triedb = TrieDb::open(config).map_err(trie_error)?;

        let mut initialized = false;
        if chain_db.tip().is_none() {
            let root = genesis.header.state_root;
            match triedb.latest() {
                None => {
                    triedb
                        .commit_expecting(0, &genesis.genesis.state_updates(), root)
                        .map_err(trie_error)?;
                    initialized = true;
                }
                // Committed by an init that stopped before the append.
                Some(v) if v.version == 0 && v.state_root == root => initialized = true,
                Some(v) => {
                    return Err(inconsistent(format!(
                        "the state database holds version {} (root {}) but the chain db is empty; \
                         remove the directory and run `wake init` again",
                        v.version, v.state_root
                    )));
                }
            }
            chain_db.append(0, &ChainRecord::without_transactions(genesis.header.clone()))?;
            tracing::info!(
                data_dir = %self.root.display(),
                genesis = %genesis.hash,
                state_root = %root,
                accounts = genesis.genesis.alloc.len(),
                "data directory initialized"
            );
        }

        // triedb holds the tip's state (or one version more: a crash between
        // the commit and the append).
        let (Some(tip), Some(tip_root)) =
            (chain_db.tip(), chain_db.tip_header().map(|h| h.state_root))
        else {
            return Err(inconsistent("the chain db has no tip".into()));
        };
        let latest = triedb.latest().map(|v| v.version);
        if latest != Some(tip) && latest != tip.checked_add(1) {
            return Err(inconsistent(format!(
                "the chain db ends at block {tip}, the state database at version {latest:?}"
            )));
        }
        let root = triedb.snapshot(tip).map_err(trie_error)?.state_root();
        if root != tip_root {
            return Err(inconsistent(format!(
                "block {tip} has state root {tip_root}, the state database {root}"
            )));
        }
        Ok(OpenDataDir { dir: self.clone(), genesis, chain_db, triedb, initialized })
    }
}

/// `wake init`: creates (or checks) the data directory. Prints one line.
pub fn run_init(args: &InitArgs) -> Result<()> {
    let genesis = LoadedGenesis::load(&args.genesis)?;
    let open = DataDir::new(&args.data_dir).prepare(genesis, true, CACHE_MIB_DEFAULT)?;
    let verb = if open.initialized { "initialized" } else { "already initialized" };
    println!(
        "{} {verb}: genesis {} (state root {}), chain id {}, head {}",
        args.data_dir.display(),
        open.genesis.hash,
        open.genesis.header.state_root,
        open.genesis.chain().chain_id,
        open.chain_db.tip().unwrap_or_default(),
    );
    Ok(())
}

/// `wake import`: imports, then prints the summary. The summary is printed
/// also when an invalid block stops the import (the error follows).
pub fn run_import(args: &ImportArgs) -> Result<()> {
    let genesis = LoadedGenesis::load(&args.genesis)?;
    let mut open = DataDir::new(&args.data_dir).prepare(genesis, true, args.cache_mib)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let bar = progress_bar(!args.no_progress);
    let mut summary = ImportSummary::default();
    let result = import_chain(&mut open, &args.chain, threads, &bar, &mut summary);
    bar.finish_and_clear();
    println!("{summary}");
    result
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Blocks executed and stored.
    pub imported: u64,
    /// Blocks already stored (same hash), skipped.
    pub skipped: u64,
    pub txs: u64,
    pub gas: u64,
    pub elapsed: Duration,
    /// The data directory's newest block afterwards.
    pub head_number: u64,
    pub head_hash: B256,
}

impl ImportSummary {
    pub fn mgas_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.gas as f64 / 1e6 / secs } else { 0.0 }
    }
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} blocks ({} already present), {} transactions, {:.3} Mgas in {:.2} s \
             ({:.2} Mgas/s); head {} {}",
            self.imported,
            self.skipped,
            self.txs,
            self.gas as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.mgas_per_sec(),
            self.head_number,
            self.head_hash,
        )
    }
}

/// Imports every block of `chain_file` into `open`; `summary` counts what
/// was done, also when a block stops the import.
pub fn import_chain(
    open: &mut OpenDataDir,
    chain_file: &Path,
    threads: usize,
    bar: &ProgressBar,
    summary: &mut ImportSummary,
) -> Result<()> {
    let started = Instant::now();
    let file = File::open(chain_file)
        .map_err(|source| ImportError::ReadFile { path: chain_file.into(), source })?;
    let file_len = file
        .metadata()
        .map_err(|source| ImportError::ReadFile { path: chain_file.into(), source })?
        .len();
    bar.set_length(file_len);
    let chain = open.genesis.chain().clone();
    let stored_tip = open.chain_db.tip().unwrap_or_default();
    let result = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel(READ_AHEAD_BLOCKS);
        let reader = BlockReader { path: chain_file, file, file_len, chain: &chain, stored_tip };
        std::thread::Builder::new()
            .name("wake-import-read".into())
            .spawn_scoped(scope, move || reader.run(&tx, threads))
            .map_err(|source| ImportError::ReadFile { path: chain_file.into(), source })?;
        let mut importer = Importer { open: &mut *open, chain: &chain, threads };
        importer.run(rx, bar, summary, started)
    });
    summary.elapsed = started.elapsed();
    summary.head_number = open.chain_db.tip().unwrap_or_default();
    summary.head_hash = open.chain_db.hash(summary.head_number).unwrap_or_default();
    result
}

/// One block as the reader hands it over.
struct ReadBlock {
    /// Byte offset just past the block in the file.
    end: u64,
    block: Block<BlockTx>,
    hash: B256,
    /// `None` for blocks the data directory already holds.
    senders: Option<std::result::Result<Vec<Address>, (usize, TxError)>>,
}

struct BlockReader<'a> {
    path: &'a Path,
    file: File,
    file_len: u64,
    chain: &'a ChainSpec,
    stored_tip: u64,
}

impl BlockReader<'_> {
    fn run(self, tx: &SyncSender<Result<ReadBlock>>, threads: usize) {
        let mut reader = BufReader::with_capacity(1 << 20, &self.file);
        let mut offset = 0u64;
        let mut ordinal = 0u64;
        while offset < self.file_len {
            let item = self.next(&mut reader, offset, ordinal, threads);
            let failed = item.is_err();
            if let Ok(read) = &item {
                offset = read.end;
            }
            ordinal += 1;
            if tx.send(item).is_err() || failed {
                return;
            }
        }
    }

    fn next(
        &self,
        reader: &mut impl Read,
        offset: u64,
        ordinal: u64,
        threads: usize,
    ) -> Result<ReadBlock> {
        let bad = |reason: String| ImportError::ChainFile {
            path: self.path.into(),
            offset,
            reason: format!("block #{ordinal} of the file: {reason}"),
        };
        let left = self.file_len - offset;
        let mut prefix = [0u8; 9];
        reader.read_exact(&mut prefix[..1]).map_err(|e| bad(format!("read failed: {e}")))?;
        let (header_len, payload_len) = match prefix[0] {
            0xc0..=0xf7 => (1u64, u64::from(prefix[0] - 0xc0)),
            first @ 0xf8..=0xff => {
                let len_of_len = usize::from(first - 0xf7);
                if left < 1 + len_of_len as u64 {
                    return Err(bad("the file ends inside an RLP header".into()));
                }
                reader
                    .read_exact(&mut prefix[1..1 + len_of_len])
                    .map_err(|e| bad(format!("read failed: {e}")))?;
                let mut len = 0u64;
                for byte in &prefix[1..1 + len_of_len] {
                    len = (len << 8) | u64::from(*byte);
                }
                (1 + len_of_len as u64, len)
            }
            other => {
                return Err(bad(format!(
                    "byte {other:#04x} does not start an RLP list (not an RLP block file?)"
                )));
            }
        };
        let total = header_len.saturating_add(payload_len);
        if total > BLOCK_BYTES_MAX as u64 {
            return Err(bad(format!("{total} bytes exceeds the {BLOCK_BYTES_MAX}-byte limit")));
        }
        if total > left {
            return Err(bad(format!(
                "the block is {total} bytes but the file ends after {left} (truncated file?)"
            )));
        }
        let mut bytes = vec![0u8; total as usize];
        bytes[..header_len as usize].copy_from_slice(&prefix[..header_len as usize]);
        reader
            .read_exact(&mut bytes[header_len as usize..])
            .map_err(|e| bad(format!("read failed: {e}")))?;
        let (block, hash) = decode_block(&bytes).map_err(|e| bad(format!("{e}")))?;
        let header = &block.header;
        let senders = (header.number > self.stored_tip).then(|| {
            let spec = self.chain.spec_at(header.number, header.timestamp);
            recover_senders(&block.body.transactions, spec, threads)
        });
        Ok(ReadBlock { end: offset + total, block, hash, senders })
    }
}

struct Importer<'a> {
    open: &'a mut OpenDataDir,
    chain: &'a ChainSpec,
    threads: usize,
}

impl Importer<'_> {
    fn run(
        &mut self,
        blocks: Receiver<Result<ReadBlock>>,
        bar: &ProgressBar,
        summary: &mut ImportSummary,
        started: Instant,
    ) -> Result<()> {
        for item in blocks {
            let read = item?;
            let number = read.block.header.number;
            bar.set_position(read.end);
            match self.open.chain_db.hash(number) {
                Some(stored) if stored == read.hash => {
                    summary.skipped += 1;
                    continue;
                }
                Some(stored) => {
                    return Err(ImportError::Diverged { number, hash: read.hash, stored });
                }
                None => {}
            }
            let gas = read.block.header.gas_used;
            let txs = read.block.body.transactions.len() as u64;
            self.import_block(read)?;
            summary.imported += 1;
            summary.txs += txs;
            summary.gas += gas;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "block {number}, {} txs, {:.1} Mgas/s",
                summary.txs,
                summary.gas as f64 / 1e6 / secs
            ));
        }
        Ok(())
    }

    /// Validates, executes, commits and stores the block after the head.
    fn import_block(&mut self, read: ReadBlock) -> Result<()> {
        let ReadBlock { block, hash, senders, .. } = read;
        let number = block.header.number;
        let chain_db = &self.open.chain_db;
        let (Some(head), Some(parent)) = (chain_db.tip(), chain_db.tip_header().cloned()) else {
            return Err(ImportError::Inconsistent {
                data_dir: self.open.dir.root.clone(),
                reason: "the chain db is empty".into(),
            });
        };
        if Some(number) != head.checked_add(1) {
            return Err(ImportError::Gap { number, hash, head });
        }
        let head_hash = chain_db.hash(head).unwrap_or_default();
        if block.header.parent_hash != head_hash {
            return Err(ImportError::NotLinked {
                number,
                hash,
                parent: block.header.parent_hash,
                head: head_hash,
            });
        }
        let spec = self.chain.spec_at(number, block.header.timestamp);
        if !spec_supported(spec) {
            return Err(ImportError::UnsupportedFork { number, hash, spec });
        }
        let verdict = |e: BlockError| match e {
            BlockError::State(source) => ImportError::State { number, source },
            BlockError::UnsupportedSpec(spec) => {
                ImportError::UnsupportedFork { number, hash, spec }
            }
            reason => ImportError::InvalidBlock { number, hash, reason: Box::new(reason) },
        };
        validate_block(self.chain, &parent, &block).map_err(verdict)?;
        let senders = match senders {
            Some(Ok(senders)) => senders,
            Some(Err((index, source))) => {
                return Err(verdict(BlockError::Transaction { index, source }));
            }
            None => recover_senders(&block.body.transactions, spec, self.threads)
                .map_err(|(index, source)| verdict(BlockError::Transaction { index, source }))?,
        };

        let triedb = &self.open.triedb;
        let trie_path = self.open.dir.triedb_path();
        let trie_error = |source| ImportError::Trie { path: trie_path.clone(), source };
        // A crash between a commit and its append leaves triedb one version
        // ahead: the block is executed again, and only appended.
        let committed_ahead = triedb.latest().is_some_and(|v| v.version == number);
        let pre_byzantium = !spec.is_enabled_in(SpecId::BYZANTIUM);
        if committed_ahead && pre_byzantium {
            return Err(ImportError::Inconsistent {
                data_dir: self.open.dir.root.clone(),
                reason: format!(
                    "the state database already holds version {number}, and a pre-Byzantium \
                     block cannot be executed again over it (its receipts need intermediate roots)"
                ),
            });
        }
        let snapshot = triedb.snapshot(head).map_err(trie_error)?;
        let state = SnapshotState::new(&snapshot, chain_db);
        let state = Prefetched::load(state, &snapshot, &block, &senders)
            .map_err(|source| ImportError::State { number, source })?;
        let outcome = if pre_byzantium {
            let mut roots = |updates: &StateUpdates| -> Result<B256, StateError> {
                Ok(triedb.root_of(updates)?)
            };
            execute_block_with_roots(self.chain, &block, &senders, state, &mut roots)
        } else {
            execute_block_parallel_with(
                self.chain,
                &block,
                &senders,
                state,
                ParallelConfig::new(self.threads),
            )
            .map(|(outcome, _stats)| outcome)
        }
        .map_err(verdict)?;
        drop(snapshot);
        validate_outcome(&block.header, &outcome).map_err(verdict)?;

        let expected = block.header.state_root;
        let root = if committed_ahead {
            triedb.snapshot(number).map_err(trie_error)?.state_root()
        } else {
            match triedb.commit_expecting(number, &outcome.updates, expected) {
                Ok(root) => root,
                // Nothing was committed: the state is still the head's.
                Err(wake_triedb::Error::RootMismatch { computed, .. }) => computed,
                Err(source) => return Err(trie_error(source)),
            }
        };
        if committed_ahead && root != expected {
            return Err(ImportError::Inconsistent {
                data_dir: self.open.dir.root.clone(),
                reason: format!(
                    "the state database holds version {number} with root {root} from an \
                     interrupted import of another block; block {number} ({hash}) has {expected}"
                ),
            });
        }
        check_state_root(&block.header, root).map_err(verdict)?;
        let record = ChainRecord { block, senders, receipts: outcome.receipts };
        self.open.chain_db.append(number, &record)?;
        Ok(())
    }
}

fn progress_bar(enabled: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:36.cyan/blue}] {binary_bytes}/{binary_total_bytes} ({eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix("import");
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_root_in_memory_equals_triedb() {
        let json = r#"{
            "config": {
                "chainId": 1337, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
                "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
                "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
                "terminalTotalDifficulty": 0, "shanghaiTime": 0, "cancunTime": 0
            },
            "gasLimit": "0x1c9c380",
            "alloc": {
                "0x00000000000000000000000000000000000000aa": {
                    "balance": "0xde0b6b3a7640000", "code": "0x6001",
                    "storage": {"0x01": "0x02", "0x03": "0x0100000000000000000000"}
                },
                "0x00000000000000000000000000000000000000bb": {"balance": "0x1", "nonce": "0x5"}
            }
        }"#;
        let genesis = Genesis::from_json(json).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = wake_triedb::Config::new(dir.path().join("triedb"));
        config.chunk_bytes = 1 << 20;
        config.io_backend = wake_triedb::IoBackendChoice::Pread;
        let db = match TrieDb::open(config) {
            Ok(db) => db,
            // tmpfs refuses O_DIRECT: nothing to compare against here.
            Err(e) => return eprintln!("skipped: {e}"),
        };
        let committed = db.commit(0, &genesis.state_updates()).unwrap();
        assert_eq!(genesis_state_root(&genesis).unwrap(), committed);
    }
}
