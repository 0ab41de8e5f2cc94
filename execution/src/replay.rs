//! Replay of real mainnet blocks stored in the pevm layout
//! (risechain/pevm `data/blocks/<number>/`), for `wake replay` and the
//! `tests/tests/replay.rs` regression test.
//!
//! One block directory holds:
//! * `block.json`: the block as `eth_getBlockByNumber(n, true)` returns it
//!   (full transactions with their signature fields and `from`);
//! * `pre_state.json`: address → `{basic: {balance, nonce}, code_hash?,
//!   code?, storage}`, only the accounts and slots the block reads;
//! * `block_hashes.json` (optional): number → hash, for `BLOCKHASH`.
//!
//! [`ReplayBlock::load`] reads the three files with a size cap each, turns
//! the JSON-RPC block into the consensus [`Block<BlockTx>`] (through
//! `alloy-rpc-types-eth`, not by hand), and refuses a block whose
//! conversion is not exact: the header must hash to the block's `hash`, the
//! transactions and withdrawals must give the header's roots, and every
//! recovered sender must equal the transaction's `from`. The pre-state
//! becomes a [`ReplayState`], an in-memory [`PreState`].
//!
//! What a replay can and cannot check:
//! * The pre-state is partial, so the **state root cannot be checked**.
//!   Gas used, logs bloom, blob gas used and (from Byzantium) the receipts
//!   root must equal the header's ([`check_header`]).
//! * Before Byzantium a receipt carries the state root after its
//!   transaction, which needs the full state: [`execute_serial`] runs those
//!   blocks with a placeholder root, so their receipts root is **not
//!   checkable** and [`check_header`] never compares it.
//! * `block.json` names uncles by hash only, so their headers are missing
//!   and ommer rewards are not applied. Rewards are credited after the last
//!   transaction: they change only the state diff, never a receipt.
//! * A slot or account missing from the pre-state reads as empty, as in
//!   pevm; a block that reads outside its recorded pre-state would show up
//!   as a mismatch, not pass silently.

use crate::error::{BlockError, StateError, TxError};
use crate::executor::{BlockOutcome, execute_block, execute_block_with_roots};
use crate::spec::ChainSpec;
use crate::state::{PreState, bytecode};
use crate::tx::{BlockTx, recover_senders};
use alloy_consensus::proofs::{calculate_transaction_root, calculate_withdrawals_root};
use alloy_consensus::{Block, BlockBody, EMPTY_OMMER_ROOT_HASH, Header};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256, map::HashMap};
use alloy_rpc_types_eth::{BlockTransactions, Transaction as RpcTransaction};
use revm::bytecode::Bytecode;
use revm::database::DatabaseRef;
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wake_triedb::{AccountUpdate, KECCAK_EMPTY, StateUpdates};

/// Most bytes of one `block.json` (a 30M-gas block of calldata is ~4 MB of
/// hex; the largest fixture is under 2 MB).
pub const BLOCK_JSON_BYTES_MAX: u64 = 64 << 20;
/// Most bytes of one `pre_state.json` (the largest fixture is ~4 MB).
pub const PRE_STATE_JSON_BYTES_MAX: u64 = 512 << 20;
/// Most bytes of one `block_hashes.json` (256 hashes take ~25 KB).
pub const BLOCK_HASHES_JSON_BYTES_MAX: u64 = 1 << 20;
/// Most block directories one replay lists.
pub const BLOCK_DIRS_MAX: usize = 1 << 20;

/// Why a block directory could not be loaded. Each is a fault of the input
/// files, never of the executor.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {len} bytes exceeds the {max}-byte limit", path.display())]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("{}: {source}", path.display())]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{}: no block.json, and no subdirectory holds one", path.display())]
    NoBlocks { path: PathBuf },
    #[error("{}: more than {max} block directories", path.display())]
    TooManyBlocks { path: PathBuf, max: usize },
    #[error("block.json lists transaction hashes only; full transactions are needed")]
    TransactionHashesOnly,
    #[error("header hashes to {computed}, block.json says {claimed}")]
    HeaderHash { claimed: B256, computed: B256 },
    #[error("transactions root: header {header}, transactions give {computed}")]
    TransactionsRoot { header: B256, computed: B256 },
    #[error("withdrawals root: header {header:?}, withdrawals give {computed:?}")]
    WithdrawalsRoot { header: Option<B256>, computed: Option<B256> },
    #[error("ommers hash {header} does not match the {count} uncles listed")]
    OmmersHash { header: B256, count: usize },
    #[error("transaction {index}: no sender can be recovered: {source}")]
    Sender { index: usize, source: TxError },
    #[error("transaction {index}: recovered sender {recovered}, block.json says {from}")]
    SenderMismatch { index: usize, recovered: Address, from: Address },
    #[error("account {address}: code hash {claimed}, but its code hashes to {computed}")]
    CodeHash { address: Address, claimed: B256, computed: B256 },
    #[error("account {address}: code length {original_len} exceeds its {len} stored bytes")]
    CodeLength { address: Address, original_len: usize, len: usize },
    #[error("account {address}: code hash {code_hash} without code")]
    MissingCode { address: Address, code_hash: B256 },
    #[error("block_hashes.json: {key:?} is not a block number")]
    BlockNumber { key: String },
}

/// One block directory, loaded and checked, ready to execute.
#[derive(Debug)]
pub struct ReplayBlock {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// The block, with no ommers (see the module doc).
    pub block: Block<BlockTx>,
    /// The block's hash (checked against its header).
    pub hash: B256,
    /// Uncles the block names; their rewards are not applied.
    pub uncles: usize,
    /// `senders[i]` sent transaction `i` (recovered, equal to `from`).
    pub senders: Vec<Address>,
    /// The fork the block runs under.
    pub spec: SpecId,
    /// The accounts, slots and block hashes the block reads.
    pub state: ReplayState,
}

impl ReplayBlock {
    /// Loads and checks the block directory `dir` under `chain`'s rules,
    /// recovering senders on up to `threads` threads.
    pub fn load(dir: &Path, chain: &ChainSpec, threads: usize) -> Result<ReplayBlock, ReplayError> {
        let block_path = dir.join("block.json");
        let rpc: RpcBlock = parse_json(&block_path, BLOCK_JSON_BYTES_MAX)?;
        let (block, hash, from, uncles) = consensus_block(rpc)?;
        let spec = chain.spec_at(block.header.number, block.header.timestamp);
        let senders = recover_senders(&block.body.transactions, spec, threads)
            .map_err(|(index, source)| ReplayError::Sender { index, source })?;
        if let Some((index, (&recovered, &from))) =
            senders.iter().zip(&from).enumerate().find(|(_, (r, f))| r != f)
        {
            return Err(ReplayError::SenderMismatch { index, recovered, from });
        }
        let state = ReplayState::load(dir)?;
        Ok(ReplayBlock { dir: dir.to_path_buf(), block, hash, uncles, senders, spec, state })
    }

    /// The block number.
    pub fn number(&self) -> u64 {
        self.block.header.number
    }

    /// Whether the header's receipts root can be checked: receipts from
    /// Byzantium on carry a status; earlier ones a state root that needs
    /// the full state.
    pub fn receipts_root_checkable(&self) -> bool {
        self.spec.is_enabled_in(SpecId::BYZANTIUM)
    }
}

/// Lists the block directories under `path`, ordered by block number: `path`
/// itself when it holds a `block.json`, else its subdirectories that do.
pub fn block_dirs(path: &Path) -> Result<Vec<PathBuf>, ReplayError> {
    if path.join("block.json").is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let io = |source| ReplayError::Io { path: path.to_path_buf(), source };
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let dir = entry.map_err(io)?.path();
        if dir.join("block.json").is_file() {
            if dirs.len() == BLOCK_DIRS_MAX {
                return Err(ReplayError::TooManyBlocks {
                    path: path.to_path_buf(),
                    max: BLOCK_DIRS_MAX,
                });
            }
            dirs.push(dir);
        }
    }
    if dirs.is_empty() {
        return Err(ReplayError::NoBlocks { path: path.to_path_buf() });
    }
    // Numeric names first, in numeric order; any others after, by name.
    dirs.sort_by_cached_key(|dir| {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (name.parse::<u64>().unwrap_or(u64::MAX), name)
    });
    Ok(dirs)
}

/// Runs `block` through the serial executor. Blocks before Byzantium go
/// through [`execute_block_with_roots`] with a placeholder (zero)
/// intermediate root, so their receipts root is meaningless and must not be
/// compared ([`check_header`] does not).
pub fn execute_serial(chain: &ChainSpec, block: &ReplayBlock) -> Result<BlockOutcome, BlockError> {
    if block.receipts_root_checkable() {
        execute_block(chain, &block.block, &block.senders, block.state.clone())
    } else {
        let mut no_roots = |_: &StateUpdates| -> Result<B256, StateError> { Ok(B256::ZERO) };
        execute_block_with_roots(
            chain,
            &block.block,
            &block.senders,
            block.state.clone(),
            &mut no_roots,
        )
    }
}

/// Builds the process-wide tables revm creates lazily on first use, so
/// that the first block needing them is not charged for it: c-kzg's
/// trusted setup with its precomputed tables (seconds on a small machine),
/// used by the EIP-4844 point-evaluation precompile. A node pays this once
/// at start-up. The check itself fails (zero bytes are no proof); only the
/// set-up matters.
pub fn warm_up() {
    let _ = revm::precompile::kzg_point_evaluation::verify_kzg_proof(
        &[0; 48], &[0; 32], &[0; 32], &[0; 48],
    );
}

/// A field of an execution outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    GasUsed,
    BlobGasUsed,
    ReceiptsRoot,
    LogsBloom,
    Receipts,
    Updates,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::GasUsed => "gas_used",
            Field::BlobGasUsed => "blob_gas_used",
            Field::ReceiptsRoot => "receipts_root",
            Field::LogsBloom => "logs_bloom",
            Field::Receipts => "receipts",
            Field::Updates => "updates",
        })
    }
}

/// One field that differs from what it was checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub field: Field,
    /// What the reference (header, or serial outcome) holds.
    pub expected: String,
    /// What the checked outcome holds.
    pub got: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {}, got {}", self.field, self.expected, self.got)
    }
}

/// Checks `outcome` against `block`'s header: gas used, blob gas used, logs
/// bloom, and the receipts root when [`ReplayBlock::receipts_root_checkable`].
/// The state root is never checked (partial pre-state).
pub fn check_header(block: &ReplayBlock, outcome: &BlockOutcome) -> Vec<Mismatch> {
    let header = &block.block.header;
    let mut mismatches = Vec::new();
    let mut check = |field, expected: String, got: String| {
        if expected != got {
            mismatches.push(Mismatch { field, expected, got });
        }
    };
    check(Field::GasUsed, header.gas_used.to_string(), outcome.gas_used.to_string());
    if let Some(blob_gas_used) = header.blob_gas_used {
        check(Field::BlobGasUsed, blob_gas_used.to_string(), outcome.blob_gas_used.to_string());
    }
    if block.receipts_root_checkable() {
        check(
            Field::ReceiptsRoot,
            header.receipts_root.to_string(),
            outcome.receipts_root.to_string(),
        );
    }
    check(Field::LogsBloom, header.logs_bloom.to_string(), outcome.logs_bloom.to_string());
    mismatches
}

/// Compares two outcomes of the same block field by field: receipts (all
/// of them, statuses, logs and cumulative gas included), receipts root,
/// bloom, gas, and the state diff (new code compared as a set: it is
/// content-addressed, so its order carries no meaning).
pub fn compare_outcomes(expected: &BlockOutcome, got: &BlockOutcome) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    let mut push = |field, expected: String, got: String| {
        mismatches.push(Mismatch { field, expected, got });
    };
    if expected.gas_used != got.gas_used {
        push(Field::GasUsed, expected.gas_used.to_string(), got.gas_used.to_string());
    }
    if expected.blob_gas_used != got.blob_gas_used {
        push(Field::BlobGasUsed, expected.blob_gas_used.to_string(), got.blob_gas_used.to_string());
    }
    if expected.receipts_root != got.receipts_root {
        push(
            Field::ReceiptsRoot,
            expected.receipts_root.to_string(),
            got.receipts_root.to_string(),
        );
    }
    if expected.logs_bloom != got.logs_bloom {
        push(Field::LogsBloom, expected.logs_bloom.to_string(), got.logs_bloom.to_string());
    }
    if expected.receipts != got.receipts {
        let first = expected.receipts.iter().zip(&got.receipts).position(|(a, b)| a != b);
        let (e, g) = match first {
            Some(i) => (
                format!("receipt {i}: {:?}", expected.receipts[i]),
                format!("{:?}", got.receipts[i]),
            ),
            None => (
                format!("{} receipts", expected.receipts.len()),
                format!("{} receipts", got.receipts.len()),
            ),
        };
        push(Field::Receipts, e, g);
    }
    if let Some((e, g)) = updates_difference(&expected.updates, &got.updates) {
        push(Field::Updates, e, g);
    }
    mismatches
}

/// The first difference between two state diffs, described, or `None`.
fn updates_difference(expected: &StateUpdates, got: &StateUpdates) -> Option<(String, String)> {
    let describe = |u: Option<&AccountUpdate>| match u {
        None => "untouched".to_string(),
        Some(u) => format!("{u:?}"),
    };
    let addresses = expected.accounts.keys().chain(got.accounts.keys());
    for address in addresses {
        let (e, g) = (expected.accounts.get(address), got.accounts.get(address));
        if e != g {
            return Some((format!("{address}: {}", describe(e)), describe(g)));
        }
    }
    let mut codes_expected: Vec<&Bytes> = expected.codes.iter().collect();
    let mut codes_got: Vec<&Bytes> = got.codes.iter().collect();
    codes_expected.sort();
    codes_got.sort();
    (codes_expected != codes_got).then(|| {
        (format!("{} new codes", expected.codes.len()), format!("{} new codes", got.codes.len()))
    })
}

/// The pre-state of one replayed block, in memory: a [`PreState`] that
/// answers what `pre_state.json` and `block_hashes.json` hold and reads
/// everything else as empty (absent account, zero slot). Cloning shares
/// it, so each executor (or worker thread) takes its own handle.
#[derive(Clone, Debug, Default)]
pub struct ReplayState(Arc<ReplayStateInner>);

#[derive(Debug, Default)]
struct ReplayStateInner {
    accounts: HashMap<Address, ReplayAccount>,
    /// Code by hash (each checked against its hash when loaded).
    codes: HashMap<B256, Bytecode>,
    block_hashes: BTreeMap<u64, B256>,
}

#[derive(Debug)]
struct ReplayAccount {
    /// Balance, nonce and code hash. The code is left out, as triedb's
    /// view does: revm asks `code_by_hash_ref`, and the overlay then knows
    /// the code is not new.
    info: AccountInfo,
    storage: HashMap<U256, U256>,
}

impl ReplayState {
    /// Reads `pre_state.json` and, when present, `block_hashes.json` from
    /// `dir`, checking every code hash against its code.
    pub fn load(dir: &Path) -> Result<ReplayState, ReplayError> {
        let accounts: HashMap<Address, JsonAccount> =
            parse_json(&dir.join("pre_state.json"), PRE_STATE_JSON_BYTES_MAX)?;
        let mut codes = HashMap::default();
        let accounts = accounts
            .into_iter()
            .map(|(address, account)| {
                let (account, code) = account.into_replay(address)?;
                if let Some(code) = code {
                    codes.insert(account.info.code_hash, code);
                }
                Ok((address, account))
            })
            .collect::<Result<_, ReplayError>>()?;

        let hashes_path = dir.join("block_hashes.json");
        let block_hashes = if hashes_path.is_file() {
            let by_text: BTreeMap<String, B256> =
                parse_json(&hashes_path, BLOCK_HASHES_JSON_BYTES_MAX)?;
            by_text
                .into_iter()
                .map(|(key, hash)| match key.parse::<u64>() {
                    Ok(number) => Ok((number, hash)),
                    Err(_) => Err(ReplayError::BlockNumber { key }),
                })
                .collect::<Result<_, _>>()?
        } else {
            BTreeMap::new()
        };
        Ok(ReplayState(Arc::new(ReplayStateInner { accounts, codes, block_hashes })))
    }

    /// Accounts in the pre-state.
    pub fn accounts(&self) -> usize {
        self.0.accounts.len()
    }

    /// Storage slots in the pre-state, over all accounts.
    pub fn slots(&self) -> usize {
        self.0.accounts.values().map(|a| a.storage.len()).sum()
    }
}

impl DatabaseRef for ReplayState {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self.0.accounts.get(&address).map(|account| account.info.clone()))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        if code_hash == KECCAK_EMPTY || code_hash.is_zero() {
            return Ok(Bytecode::default());
        }
        match self.0.codes.get(&code_hash) {
            Some(code) => Ok(code.clone()),
            // Code deployed in the block is answered by the overlay; no
            // account of the pre-state has this hash.
            None => {
                Err(wake_triedb::Error::InvalidValue("code hash not in the replay pre-state")
                    .into())
            }
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        Ok(self
            .0
            .accounts
            .get(&address)
            .and_then(|account| account.storage.get(&index).copied())
            .unwrap_or_default())
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        Ok(self.0.block_hashes.get(&number).copied().unwrap_or_default())
    }
}

impl PreState for ReplayState {
    /// Whether the recorded slots hold a non-zero value: the pre-state is
    /// partial, so storage the block never reads is not known.
    fn has_storage_ref(&self, address: Address) -> Result<bool, StateError> {
        Ok(self
            .0
            .accounts
            .get(&address)
            .is_some_and(|account| account.storage.values().any(|v| !v.is_zero())))
    }
}

/// `block.json`: a JSON-RPC block with full transactions.
type RpcBlock = alloy_rpc_types_eth::Block<RpcTransaction<BlockTx>>;

/// The consensus block of `rpc`, its hash, each transaction's `from` and the
/// number of uncles, after checking that the conversion is exact.
fn consensus_block(
    rpc: RpcBlock,
) -> Result<(Block<BlockTx>, B256, Vec<Address>, usize), ReplayError> {
    let claimed = rpc.header.hash;
    let header: Header = rpc.header.inner;
    let computed = header.hash_slow();
    if computed != claimed {
        return Err(ReplayError::HeaderHash { claimed, computed });
    }
    let uncles = rpc.uncles.len();
    if uncles == 0 && header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(ReplayError::OmmersHash { header: header.ommers_hash, count: 0 });
    }
    let rpc_txs = match rpc.transactions {
        BlockTransactions::Full(txs) => txs,
        BlockTransactions::Hashes(hashes) if hashes.is_empty() => Vec::new(),
        BlockTransactions::Hashes(_) | BlockTransactions::Uncle => {
            return Err(ReplayError::TransactionHashesOnly);
        }
    };
    let (transactions, from): (Vec<BlockTx>, Vec<Address>) =
        rpc_txs.into_iter().map(|tx| tx.inner.into_parts()).unzip();
    let computed = calculate_transaction_root(&transactions);
    if computed != header.transactions_root {
        return Err(ReplayError::TransactionsRoot { header: header.transactions_root, computed });
    }
    let computed = rpc.withdrawals.as_ref().map(|w| calculate_withdrawals_root(w));
    if computed != header.withdrawals_root {
        return Err(ReplayError::WithdrawalsRoot { header: header.withdrawals_root, computed });
    }
    let body = BlockBody { transactions, ommers: Vec::new(), withdrawals: rpc.withdrawals };
    Ok((Block { header, body }, claimed, from, uncles))
}

/// One account of `pre_state.json`.
#[derive(Deserialize)]
struct JsonAccount {
    basic: JsonBasic,
    #[serde(default)]
    code_hash: Option<B256>,
    #[serde(default)]
    code: Option<JsonCode>,
    #[serde(default)]
    storage: HashMap<U256, U256>,
}

#[derive(Deserialize)]
struct JsonBasic {
    balance: U256,
    nonce: u64,
}

/// revm's serialised analysed legacy bytecode: the code padded with zeros,
/// and its original length (the jump table is recomputed, not trusted).
#[derive(Deserialize)]
struct JsonCode {
    bytecode: Bytes,
    original_len: usize,
}

impl JsonAccount {
    /// The account and its code, checked against the code hash.
    fn into_replay(
        self,
        address: Address,
    ) -> Result<(ReplayAccount, Option<Bytecode>), ReplayError> {
        let code = match self.code {
            Some(JsonCode { bytecode: padded, original_len }) => {
                if original_len > padded.len() {
                    return Err(ReplayError::CodeLength {
                        address,
                        original_len,
                        len: padded.len(),
                    });
                }
                Some(padded.slice(..original_len))
            }
            None => None,
        };
        let (code_hash, code) = match (self.code_hash, code) {
            (claimed, Some(code)) => {
                let computed = keccak256(&code);
                if claimed.is_some_and(|claimed| claimed != computed) {
                    return Err(ReplayError::CodeHash {
                        address,
                        claimed: claimed.unwrap_or_default(),
                        computed,
                    });
                }
                (computed, Some(bytecode(code)))
            }
            (Some(code_hash), None) if code_hash != KECCAK_EMPTY => {
                return Err(ReplayError::MissingCode { address, code_hash });
            }
            (_, None) => (KECCAK_EMPTY, None),
        };
        let info = AccountInfo {
            balance: self.basic.balance,
            nonce: self.basic.nonce,
            code_hash,
            code: None,
            ..Default::default()
        };
        Ok((ReplayAccount { info, storage: self.storage }, code))
    }
}

/// Reads `path` (at most `max` bytes) and parses it as JSON.
fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, max: u64) -> Result<T, ReplayError> {
    let bytes = read_bounded(path, max)?;
    serde_json::from_slice(&bytes)
        .map_err(|source| ReplayError::Json { path: path.to_path_buf(), source })
}

/// The contents of `path`, refused when longer than `max` bytes (checked on
/// the bytes read, not only the file's stated size).
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReplayError> {
    let io = |source| ReplayError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let stated = file.metadata().map_err(io)?.len();
    if stated > max {
        return Err(ReplayError::TooLarge { path: path.to_path_buf(), len: stated, max });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(stated).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(io)?;
    let len = bytes.len() as u64;
    if len > max {
        return Err(ReplayError::TooLarge { path: path.to_path_buf(), len, max });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn oversized_file_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "block_hashes.json", &" ".repeat(100));
        let err = read_bounded(&dir.path().join("block_hashes.json"), 99).unwrap_err();
        assert!(matches!(err, ReplayError::TooLarge { len: 100, max: 99, .. }), "{err}");
    }

    #[test]
    fn pre_state_code_is_checked_against_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        // 0x00 (STOP), padded as revm serialises analysed code.
        let good = keccak256([0u8]);
        write(
            dir.path(),
            "pre_state.json",
            &format!(
                r#"{{"0x0000000000000000000000000000000000000001":{{"basic":{{"balance":"0x10","nonce":3}},
                "code_hash":"{good}","code":{{"bytecode":"0x0000","original_len":1,"jump_table":null}},
                "storage":{{"0x1":"0x2","0x0000000000000000000000000000000000000000000000000000000000000003":"0x0"}}}}}}"#
            ),
        );
        let state = ReplayState::load(dir.path()).unwrap();
        let address = Address::with_last_byte(1);
        let info = state.basic_ref(address).unwrap().unwrap();
        assert_eq!((info.balance, info.nonce, info.code_hash), (U256::from(16), 3, good));
        assert_eq!(state.storage_ref(address, U256::from(1)).unwrap(), U256::from(2));
        assert_eq!(state.storage_ref(address, U256::from(9)).unwrap(), U256::ZERO);
        assert!(state.has_storage_ref(address).unwrap());
        assert_eq!(state.basic_ref(Address::ZERO).unwrap(), None);

        let bad = B256::repeat_byte(7);
        write(
            dir.path(),
            "pre_state.json",
            &format!(
                r#"{{"0x0000000000000000000000000000000000000001":{{"basic":{{"balance":"0x0","nonce":0}},
                "code_hash":"{bad}","code":{{"bytecode":"0x00","original_len":1}},"storage":{{}}}}}}"#
            ),
        );
        assert!(matches!(ReplayState::load(dir.path()), Err(ReplayError::CodeHash { .. })));

        write(
            dir.path(),
            "pre_state.json",
            r#"{"0x0000000000000000000000000000000000000001":{"basic":{"balance":"0x0","nonce":0},
            "code":{"bytecode":"0x00","original_len":5},"storage":{}}}"#,
        );
        assert!(matches!(ReplayState::load(dir.path()), Err(ReplayError::CodeLength { .. })));
    }

    #[test]
    fn block_hashes_need_numeric_keys() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "pre_state.json", "{}");
        let hash = B256::repeat_byte(1);
        write(dir.path(), "block_hashes.json", &format!(r#"{{"17":"{hash}"}}"#));
        assert_eq!(ReplayState::load(dir.path()).unwrap().block_hash_ref(17).unwrap(), hash);
        write(dir.path(), "block_hashes.json", &format!(r#"{{"0x11":"{hash}"}}"#));
        assert!(matches!(ReplayState::load(dir.path()), Err(ReplayError::BlockNumber { .. })));
    }

    #[test]
    fn missing_directory_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(block_dirs(dir.path()), Err(ReplayError::NoBlocks { .. })));
        let missing = dir.path().join("nope");
        assert!(matches!(
            ReplayBlock::load(&missing, &ChainSpec::mainnet(), 1),
            Err(ReplayError::Io { .. })
        ));
    }
}
