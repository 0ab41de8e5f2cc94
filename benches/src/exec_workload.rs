//! Execution workloads: signed transactions grouped into Cancun blocks, and
//! the genesis state they run on, all a pure function of a seed.
//!
//! The state ([`Population`]):
//! * **filler accounts** `0..accounts`: the bulk of the state (10M in the
//!   cold benchmark), addressed as in [`crate::workload`]
//!   (`keccak256(seed ‖ i)[12..]`), with no key. Every
//!   [`HOLDER_EVERY`]-th one also holds tokens. They receive transfers.
//! * **senders** `0..senders`: accounts with a real secp256k1 key (derived
//!   from the seed), funded with ether and tokens. Transactions are signed
//!   with these keys, so the executor's sender recovery does real work.
//! * **the token**: [`BenchToken`](../../contracts/BenchToken.sol), a
//!   minimal ERC-20 compiled with solc 0.8.28 (`benches/contracts/`), at
//!   [`token_address`]. Balances live in its storage, in the `balanceOf`
//!   mapping at slot 0, and the genesis writes them there directly
//!   ([`balance_slot`]) rather than minting.
//! * the EIP-4788 beacon-roots contract, as on mainnet, so the system call
//!   of every Cancun block runs real code.
//!
//! Blocks ([`generate_run`]): a run of one [`Kind`] uses its own range of
//! senders, so that runs of a benchmark never share a sender and their
//! nonces always start at 0. Conflict-free kinds use each sender once and
//! pick distinct recipients within a block; chain kinds send every
//! transaction of the run from one sender, so each depends on the one
//! before (nonce and balance).
//!
//! [`Ledger`] is the independent model of what the blocks must do to
//! balances (from the intents and the receipts' gas), for checking the
//! executed state after a run.

use alloy_consensus::proofs::calculate_transaction_root;
use alloy_consensus::{
    Block, BlockBody, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, Header, ReceiptEnvelope,
    SignableTransaction, Signed, TxEip1559,
};
use alloy_eips::eip4788::{BEACON_ROOTS_ADDRESS, BEACON_ROOTS_CODE};
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secp256k1::{Message, SECP256K1, SecretKey};
use std::collections::{BTreeMap, HashMap, HashSet};
use wake_execution::{BlockTx, ChainSpec, SpecId};
use wake_triedb::{AccountInfo, AccountUpdate, KECCAK_EMPTY, StateUpdates};

/// Chain id of the benchmark chain.
pub const CHAIN_ID: u64 = 7_777;
/// Base fee of every block, in wei (1 gwei).
pub const BASE_FEE_WEI: u64 = 1_000_000_000;
/// Fee cap of every transaction (2 gwei).
pub const MAX_FEE_WEI: u128 = 2_000_000_000;
/// Priority fee of every transaction (0.1 gwei), paid to the fee recipient.
pub const PRIORITY_FEE_WEI: u128 = 100_000_000;
/// Gas limit of a native transfer.
pub const TRANSFER_GAS_LIMIT: u64 = 21_000;
/// Gas limit of an ERC-20 transfer (it uses 35–52k).
pub const ERC20_GAS_LIMIT: u64 = 80_000;
/// A block's gas limit is at least this, and at least the sum of its
/// transactions' limits (Monad-style blocks are larger than mainnet's).
pub const BLOCK_GAS_LIMIT_MIN: u64 = 30_000_000;
/// Timestamp of the genesis; block `n` is `n` seconds later.
pub const GENESIS_TIMESTAMP: u64 = 1_750_000_000;
/// One filler account in this many holds tokens.
pub const HOLDER_EVERY: u64 = 4;
/// Fee recipient of every block.
pub const BENEFICIARY: Address = Address::repeat_byte(0xfe);

const ETHER: u128 = 1_000_000_000_000_000_000;
/// Ether of every sender at genesis.
pub const SENDER_ETHER_WEI: u128 = 1_000 * ETHER;
/// Tokens of every sender at genesis (10^6 tokens of 18 decimals).
pub const SENDER_TOKENS: u128 = 1_000_000 * ETHER;

/// Runtime code of the benchmark ERC-20, as solc 0.8.28 compiled it
/// (`benches/contracts/compile.js`).
pub const TOKEN_RUNTIME_HEX: &str = include_str!("../contracts/BenchToken.bin-runtime");

/// `transfer(address,uint256)`.
const TRANSFER_SELECTOR: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
/// `Transfer(address,address,uint256)`.
pub const TRANSFER_EVENT: B256 =
    alloy_primitives::b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
/// Storage slot of the token's `totalSupply`.
pub const TOTAL_SUPPLY_SLOT: B256 = B256::with_last_byte(2);

/// The benchmark chain: Cancun from genesis.
pub fn chain_spec() -> ChainSpec {
    ChainSpec::single(CHAIN_ID, SpecId::CANCUN)
}

/// The token's runtime code.
pub fn token_code() -> Bytes {
    let hex = TOKEN_RUNTIME_HEX.trim();
    // Vendored and checked by a test: a decode failure is a broken checkout.
    Bytes::from(alloy_primitives::hex::decode(hex).expect("benches/contracts holds valid hex"))
}

/// Where the token lives.
pub fn token_address() -> Address {
    Address::from_slice(&keccak256(b"wake bench token")[12..])
}

/// The storage slot of `balanceOf[holder]` (Solidity: `keccak256(pad32(holder) ‖ pad32(0))`).
pub fn balance_slot(holder: Address) -> B256 {
    let mut input = [0u8; 64];
    input[12..32].copy_from_slice(holder.as_slice());
    keccak256(input)
}

/// Calldata of `transfer(to, amount)`.
pub fn transfer_calldata(to: Address, amount: U256) -> Bytes {
    let mut data = Vec::with_capacity(68);
    data.extend_from_slice(&TRANSFER_SELECTOR);
    data.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(to.as_slice());
    data.extend_from_slice(&amount.to_be_bytes::<32>());
    Bytes::from(data)
}

/// What a run's transactions do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Native transfers, distinct senders and recipients: no two
    /// transactions of a block touch the same account.
    Transfers,
    /// Native transfers all from one sender: a fully dependent chain.
    TransfersChain,
    /// ERC-20 `transfer` calls, distinct senders and recipients: the
    /// transactions share only the (read-only) contract code.
    Erc20,
    /// ERC-20 transfers all from one sender.
    Erc20Chain,
}

impl Kind {
    pub const ALL: [Kind; 4] =
        [Kind::Transfers, Kind::TransfersChain, Kind::Erc20, Kind::Erc20Chain];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Transfers => "transfers",
            Kind::TransfersChain => "transfers-chain",
            Kind::Erc20 => "erc20",
            Kind::Erc20Chain => "erc20-chain",
        }
    }

    /// Every transaction from one sender.
    pub fn is_chain(self) -> bool {
        matches!(self, Kind::TransfersChain | Kind::Erc20Chain)
    }

    pub fn is_erc20(self) -> bool {
        matches!(self, Kind::Erc20 | Kind::Erc20Chain)
    }

    pub fn gas_limit(self) -> u64 {
        if self.is_erc20() { ERC20_GAS_LIMIT } else { TRANSFER_GAS_LIMIT }
    }

    /// Senders a run of `blocks` × `txs_per_block` needs.
    pub fn senders_needed(self, blocks: u64, txs_per_block: u64) -> u64 {
        if self.is_chain() { 1 } else { blocks * txs_per_block }
    }
}

/// A sender: a secp256k1 key and its address.
#[derive(Clone, Copy, Debug)]
pub struct Sender {
    pub secret: SecretKey,
    pub address: Address,
}

/// Who an account is, for its genesis values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Participant {
    Filler(u64),
    Sender(u64),
}

/// The genesis state of a benchmark: fillers, senders, the token.
#[derive(Clone, Copy, Debug)]
pub struct Population {
    pub seed: u64,
    /// Filler accounts.
    pub accounts: u64,
    /// Accounts with keys.
    pub senders: u64,
}

impl Population {
    pub fn new(seed: u64, accounts: u64, senders: u64) -> Population {
        Population { seed, accounts, senders }
    }

    /// The address of filler `i`.
    pub fn filler_address(&self, i: u64) -> Address {
        crate::workload::Workload::new(self.seed).address(i)
    }

    /// Whether filler `i` holds tokens.
    pub fn is_holder(i: u64) -> bool {
        i.is_multiple_of(HOLDER_EVERY)
    }

    /// Ether of filler `i` at genesis (never zero).
    pub fn filler_ether(i: u64) -> U256 {
        U256::from(ETHER / 1000) * U256::from(i % 1000 + 1)
    }

    /// Tokens of filler `i` at genesis (zero unless it is a holder).
    pub fn filler_tokens(i: u64) -> U256 {
        if Self::is_holder(i) { U256::from(ETHER) * U256::from(i % 100 + 1) } else { U256::ZERO }
    }

    /// Sender `j`'s key: the first valid secret in `keccak256(seed ‖ j ‖ k)`, k = 0, 1, ...
    pub fn sender(&self, j: u64) -> Sender {
        let mut input = [0u8; 24];
        input[..8].copy_from_slice(&self.seed.to_le_bytes());
        input[8..16].copy_from_slice(&j.to_le_bytes());
        for k in 0u64.. {
            input[16..].copy_from_slice(&k.to_le_bytes());
            if let Ok(secret) = SecretKey::from_byte_array(keccak256(input).0) {
                let public = secret.public_key(SECP256K1).serialize_uncompressed();
                let address = Address::from_slice(&keccak256(&public[1..])[12..]);
                return Sender { secret, address };
            }
        }
        unreachable!("a valid secp256k1 key turns up within a few hashes")
    }

    /// The address of `who`.
    pub fn address(&self, who: Participant) -> Address {
        match who {
            Participant::Filler(i) => self.filler_address(i),
            Participant::Sender(j) => self.sender(j).address,
        }
    }

    /// Genesis (ether, tokens) of `who`.
    pub fn genesis_balances(who: Participant) -> (U256, U256) {
        match who {
            Participant::Filler(i) => (Self::filler_ether(i), Self::filler_tokens(i)),
            Participant::Sender(_) => (U256::from(SENDER_ETHER_WEI), U256::from(SENDER_TOKENS)),
        }
    }

    /// The token supply the genesis writes into `totalSupply`.
    pub fn total_supply(&self) -> U256 {
        let holders = self.accounts.div_ceil(HOLDER_EVERY);
        // Holder h = HOLDER_EVERY * k has (h % 100 + 1) tokens: sum it by residue.
        let mut units = 0u128;
        for k in 0..holders.min(100) {
            let per = u128::from((HOLDER_EVERY * k) % 100 + 1);
            // Holders k, k + 100, k + 200, ... (HOLDER_EVERY * 100 ≡ 0 mod 100).
            let count = u128::from((holders - k).div_ceil(100));
            units += per * count;
        }
        U256::from(units) * U256::from(ETHER) + U256::from(self.senders) * U256::from(SENDER_TOKENS)
    }

    /// The genesis in batches for `TrieDb::commit`, one version each: first
    /// the contracts and the senders (addresses derived on `threads`
    /// threads), then for each `batch_accounts` fillers, their accounts,
    /// then their holders' token balances. The balances go in a version of
    /// their own (one account, the token, with many slots) so that neither
    /// commit mixes a bulk of accounts with a bulk of one account's storage.
    pub fn genesis_batches(
        self,
        batch_accounts: u64,
        threads: usize,
    ) -> impl Iterator<Item = StateUpdates> {
        let batch_accounts = batch_accounts.max(1);
        let fillers = (0..self.accounts.div_ceil(batch_accounts)).flat_map(move |b| {
            let first = b * batch_accounts;
            let range = first..(first + batch_accounts).min(self.accounts);
            [self.filler_genesis(range.clone()), self.holder_genesis(range)]
        });
        std::iter::once_with(move || self.fixed_genesis(threads)).chain(fillers)
    }

    /// How many batches [`genesis_batches`](Self::genesis_batches) yields.
    pub fn genesis_batches_len(&self, batch_accounts: u64) -> u64 {
        1 + 2 * self.accounts.div_ceil(batch_accounts.max(1))
    }

    /// The contracts, the token supply and the senders.
    pub fn fixed_genesis(&self, threads: usize) -> StateUpdates {
        let senders: Vec<u64> = (0..self.senders).collect();
        let addresses = par_map(&senders, threads, |&j| self.sender(j).address);
        let mut updates = StateUpdates::default();
        let mut token_storage: BTreeMap<B256, U256> = BTreeMap::new();
        for address in addresses {
            updates.accounts.insert(
                address,
                AccountUpdate::info(AccountInfo {
                    nonce: 0,
                    balance: U256::from(SENDER_ETHER_WEI),
                    code_hash: KECCAK_EMPTY,
                }),
            );
            token_storage.insert(balance_slot(address), U256::from(SENDER_TOKENS));
        }
        token_storage.insert(TOTAL_SUPPLY_SLOT, self.total_supply());
        let code = token_code();
        updates.accounts.insert(
            token_address(),
            AccountUpdate::Set {
                info: contract_info(&code),
                wipe_storage: false,
                storage: token_storage,
            },
        );
        updates.codes.push(code);
        updates
            .accounts
            .insert(BEACON_ROOTS_ADDRESS, AccountUpdate::info(contract_info(&BEACON_ROOTS_CODE)));
        updates.codes.push(BEACON_ROOTS_CODE.clone());
        updates
    }

    /// The accounts of fillers `range`.
    pub fn filler_genesis(&self, range: std::ops::Range<u64>) -> StateUpdates {
        let mut updates = StateUpdates::default();
        for i in range {
            updates.accounts.insert(
                self.filler_address(i),
                AccountUpdate::info(AccountInfo {
                    nonce: 0,
                    balance: Self::filler_ether(i),
                    code_hash: KECCAK_EMPTY,
                }),
            );
        }
        updates
    }

    /// The token balances of the holders among fillers `range`, in the
    /// token's storage (empty when the range holds no holder).
    pub fn holder_genesis(&self, range: std::ops::Range<u64>) -> StateUpdates {
        let storage: BTreeMap<B256, U256> = range
            .filter(|&i| Self::is_holder(i))
            .map(|i| (balance_slot(self.filler_address(i)), Self::filler_tokens(i)))
            .collect();
        let mut updates = StateUpdates::default();
        if !storage.is_empty() {
            updates.accounts.insert(
                token_address(),
                AccountUpdate::Set {
                    info: contract_info(&token_code()),
                    wipe_storage: false,
                    storage,
                },
            );
        }
        updates
    }
}

fn contract_info(code: &Bytes) -> AccountInfo {
    AccountInfo { nonce: 1, balance: U256::ZERO, code_hash: keccak256(code) }
}

/// One run's blocks: a kind, a size and the senders it may use.
#[derive(Clone, Copy, Debug)]
pub struct RunPlan {
    pub kind: Kind,
    pub blocks: u64,
    pub txs_per_block: u64,
    /// The run uses senders `first_sender..first_sender + kind.senders_needed(..)`.
    pub first_sender: u64,
    /// Seeds the choice of recipients and amounts.
    pub tag: u64,
}

impl RunPlan {
    pub fn senders_needed(&self) -> u64 {
        self.kind.senders_needed(self.blocks, self.txs_per_block)
    }
}

/// One transaction's intended effect.
#[derive(Clone, Copy, Debug)]
pub struct Intent {
    pub from: Participant,
    pub to: Participant,
    /// Wei for native transfers, token units for ERC-20 transfers.
    pub amount: U256,
    pub token: bool,
}

/// A block and what each of its transactions should do.
#[derive(Clone, Debug)]
pub struct GeneratedBlock {
    pub block: Block<BlockTx>,
    pub intents: Vec<Intent>,
    /// The senders' addresses (what recovery must give), in order.
    pub senders: Vec<Address>,
}

/// Where the next block goes: its number, and its parent's hash.
#[derive(Clone, Copy, Debug)]
pub struct ChainTip {
    pub number: u64,
    pub hash: B256,
}

impl ChainTip {
    /// The tip right after genesis (block 0, whose hash the benchmark does not model).
    pub fn genesis(seed: u64) -> ChainTip {
        ChainTip { number: 0, hash: keccak256(seed.to_le_bytes()) }
    }
}

/// Generates a run's blocks on `threads` threads (keys derived and
/// transactions signed in parallel), on top of `tip`, which it advances.
/// Panics if the population is too small for the plan (validate with
/// [`check_plan`] first).
pub fn generate_run(
    population: &Population,
    plan: &RunPlan,
    tip: &mut ChainTip,
    threads: usize,
) -> Vec<GeneratedBlock> {
    check_plan(population, plan).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = StdRng::seed_from_u64(
        population.seed ^ plan.tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xe7ec,
    );
    let chain_sender = plan.kind.is_chain().then(|| population.sender(plan.first_sender));
    let mut blocks = Vec::with_capacity(plan.blocks as usize);
    for b in 0..plan.blocks {
        // Distinct recipients within the block (holders for ERC-20).
        let mut seen = HashSet::with_capacity(plan.txs_per_block as usize);
        let mut plans = Vec::with_capacity(plan.txs_per_block as usize);
        while plans.len() < plan.txs_per_block as usize {
            let to = if plan.kind.is_erc20() {
                rng.random_range(0..population.accounts.div_ceil(HOLDER_EVERY)) * HOLDER_EVERY
            } else {
                rng.random_range(0..population.accounts)
            };
            if !seen.insert(to) {
                continue;
            }
            let t = plans.len() as u64;
            let (sender, nonce) = if plan.kind.is_chain() {
                (plan.first_sender, b * plan.txs_per_block + t)
            } else {
                (plan.first_sender + b * plan.txs_per_block + t, 0)
            };
            let amount = if plan.kind.is_erc20() {
                U256::from(ETHER) + U256::from(rng.random_range(1..1_000_000u64))
            } else {
                U256::from(rng.random_range(1..1_000_000_000u64))
            };
            plans.push((sender, nonce, to, amount));
        }
        let signed = par_map(&plans, threads, |&(sender, nonce, to, amount)| {
            let key = match chain_sender {
                Some(key) => key,
                None => population.sender(sender),
            };
            let to_address = population.filler_address(to);
            let tx = if plan.kind.is_erc20() {
                TxEip1559 {
                    chain_id: CHAIN_ID,
                    nonce,
                    gas_limit: ERC20_GAS_LIMIT,
                    max_fee_per_gas: MAX_FEE_WEI,
                    max_priority_fee_per_gas: PRIORITY_FEE_WEI,
                    to: TxKind::Call(token_address()),
                    value: U256::ZERO,
                    access_list: Default::default(),
                    input: transfer_calldata(to_address, amount),
                }
            } else {
                TxEip1559 {
                    chain_id: CHAIN_ID,
                    nonce,
                    gas_limit: TRANSFER_GAS_LIMIT,
                    max_fee_per_gas: MAX_FEE_WEI,
                    max_priority_fee_per_gas: PRIORITY_FEE_WEI,
                    to: TxKind::Call(to_address),
                    value: amount,
                    access_list: Default::default(),
                    input: Bytes::new(),
                }
            };
            (BlockTx::Eip1559(sign(tx, &key.secret)), key.address)
        });
        let intents = plans
            .iter()
            .map(|&(sender, _, to, amount)| Intent {
                from: Participant::Sender(sender),
                to: Participant::Filler(to),
                amount,
                token: plan.kind.is_erc20(),
            })
            .collect();
        let (transactions, senders): (Vec<BlockTx>, Vec<Address>) = signed.into_iter().unzip();
        let gas_limit = BLOCK_GAS_LIMIT_MIN.max(plan.txs_per_block * plan.kind.gas_limit());
        let block = make_block(tip, transactions, gas_limit, &mut rng);
        blocks.push(GeneratedBlock { block, intents, senders });
    }
    blocks
}

/// Whether `population` can serve `plan`: its senders exist, and a block
/// can find distinct recipients.
pub fn check_plan(population: &Population, plan: &RunPlan) -> Result<(), String> {
    let senders_end = plan.first_sender + plan.senders_needed();
    if senders_end > population.senders {
        return Err(format!(
            "run needs senders up to {senders_end}, the population has {}",
            population.senders
        ));
    }
    let recipients = if plan.kind.is_erc20() {
        population.accounts.div_ceil(HOLDER_EVERY)
    } else {
        population.accounts
    };
    // Distinct recipients drawn at random: keep the block well below the pool.
    if plan.txs_per_block.saturating_mul(2) > recipients {
        return Err(format!(
            "{} transactions per block need at least {} recipients, the population has {recipients}",
            plan.txs_per_block,
            plan.txs_per_block * 2
        ));
    }
    Ok(())
}

/// A Cancun block on top of `tip` (advanced to it). The result fields
/// (state root, receipts root, bloom, gas used) are left zero: finding them
/// is what the benchmark measures.
fn make_block(
    tip: &mut ChainTip,
    transactions: Vec<BlockTx>,
    gas_limit: u64,
    rng: &mut StdRng,
) -> Block<BlockTx> {
    let number = tip.number + 1;
    let header = Header {
        parent_hash: tip.hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: BENEFICIARY,
        transactions_root: calculate_transaction_root(&transactions),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        number,
        gas_limit,
        timestamp: GENESIS_TIMESTAMP + number,
        mix_hash: B256::from(rng.random::<[u8; 32]>()),
        base_fee_per_gas: Some(BASE_FEE_WEI),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::from(rng.random::<[u8; 32]>())),
        ..Default::default()
    };
    *tip = ChainTip { number, hash: header.hash_slow() };
    Block {
        header,
        body: BlockBody {
            transactions,
            ommers: Vec::new(),
            withdrawals: Some(Withdrawals::default()),
        },
    }
}

/// Signs an EIP-1559 transaction with `secret` (libsecp256k1).
pub fn sign(tx: TxEip1559, secret: &SecretKey) -> Signed<TxEip1559> {
    let hash = tx.signature_hash();
    let (recid, bytes) =
        SECP256K1.sign_ecdsa_recoverable(Message::from_digest(hash.0), secret).serialize_compact();
    tx.into_signed(Signature::from_bytes_and_parity(&bytes, i32::from(recid) != 0))
}

/// `f` over `items` on up to `threads` scoped threads, in order.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// Expected balances after the blocks executed so far: genesis values plus
/// the intents' transfers minus fees (from the receipts' gas), kept for
/// every account the blocks touched. It knows nothing of the executor.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Address → (ether, tokens) expected now.
    expected: HashMap<Address, (U256, U256)>,
    /// Priority fees the fee recipient earned.
    pub fees_to_beneficiary: U256,
}

/// Why a block's receipts or the executed state disagree with the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("transaction {index}: status failed")]
    Failed { index: usize },
    #[error("transaction {index}: {logs} logs, expected {expected}")]
    Logs { index: usize, logs: usize, expected: usize },
    #[error("{receipts} receipts for {txs} transactions")]
    Count { receipts: usize, txs: usize },
    #[error("{what} of {address}: {actual}, expected {expected}")]
    Balance { what: &'static str, address: Address, actual: U256, expected: U256 },
}

impl Ledger {
    /// Folds one executed block in, checking its receipts: every
    /// transaction succeeded, and an ERC-20 transfer logged one `Transfer`.
    pub fn record(
        &mut self,
        population: &Population,
        block: &GeneratedBlock,
        receipts: &[ReceiptEnvelope],
    ) -> Result<(), LedgerError> {
        if receipts.len() != block.intents.len() {
            return Err(LedgerError::Count { receipts: receipts.len(), txs: block.intents.len() });
        }
        let price = U256::from(u128::from(BASE_FEE_WEI) + PRIORITY_FEE_WEI);
        let mut cumulative = 0u64;
        for (index, ((intent, receipt), sender)) in
            block.intents.iter().zip(receipts).zip(&block.senders).enumerate()
        {
            if !receipt.status() {
                return Err(LedgerError::Failed { index });
            }
            let logs = receipt.logs().len();
            let expected_logs = usize::from(intent.token);
            if logs != expected_logs
                || (intent.token && receipt.logs()[0].topics()[0] != TRANSFER_EVENT)
            {
                return Err(LedgerError::Logs { index, logs, expected: expected_logs });
            }
            let gas = receipt.cumulative_gas_used() - cumulative;
            cumulative = receipt.cumulative_gas_used();
            let to = population.address(intent.to);
            let from = self.entry(*sender, intent.from);
            from.0 -= U256::from(gas) * price;
            if intent.token {
                from.1 -= intent.amount;
            } else {
                from.0 -= intent.amount;
            }
            let to = self.entry(to, intent.to);
            if intent.token {
                to.1 += intent.amount;
            } else {
                to.0 += intent.amount;
            }
            self.fees_to_beneficiary += U256::from(gas) * U256::from(PRIORITY_FEE_WEI);
        }
        Ok(())
    }

    fn entry(&mut self, address: Address, who: Participant) -> &mut (U256, U256) {
        self.expected.entry(address).or_insert_with(|| Population::genesis_balances(who))
    }

    /// The expected (ether, tokens) of an account the blocks touched.
    pub fn expected(&self, address: &Address) -> Option<(U256, U256)> {
        self.expected.get(address).copied()
    }

    /// Compares an account's executed balances with the ledger.
    pub fn check(&self, address: Address, ether: U256, tokens: U256) -> Result<(), LedgerError> {
        let Some((want_ether, want_tokens)) = self.expected(&address) else {
            return Ok(());
        };
        if ether != want_ether {
            return Err(LedgerError::Balance {
                what: "ether",
                address,
                actual: ether,
                expected: want_ether,
            });
        }
        if tokens != want_tokens {
            return Err(LedgerError::Balance {
                what: "tokens",
                address,
                actual: tokens,
                expected: want_tokens,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_code_is_vendored() {
        let code = token_code();
        assert!(code.len() > 1000, "{}", code.len());
        // The dispatcher knows `transfer`.
        assert!(code.windows(4).any(|w| w == TRANSFER_SELECTOR));
    }

    #[test]
    fn transfer_event_topic() {
        assert_eq!(TRANSFER_EVENT, keccak256("Transfer(address,address,uint256)"));
        assert_eq!(TRANSFER_SELECTOR, keccak256("transfer(address,uint256)")[..4]);
    }

    #[test]
    fn total_supply_sums_the_genesis() {
        for accounts in [0, 1, 5, 399, 400, 401, 1234] {
            let population = Population::new(1, accounts, 3);
            let sum: U256 = (0..accounts).map(Population::filler_tokens).sum::<U256>()
                + U256::from(3u8) * U256::from(SENDER_TOKENS);
            assert_eq!(population.total_supply(), sum, "{accounts}");
        }
    }

    #[test]
    fn runs_are_deterministic() {
        let population = Population::new(9, 1000, 40);
        let plan =
            RunPlan { kind: Kind::Erc20, blocks: 2, txs_per_block: 10, first_sender: 5, tag: 1 };
        let a = generate_run(&population, &plan, &mut ChainTip::genesis(9), 2);
        let b = generate_run(&population, &plan, &mut ChainTip::genesis(9), 1);
        assert_eq!(a.len(), 2);
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.block.header.hash_slow(), b.block.header.hash_slow());
            assert_eq!(a.senders, b.senders);
        }
        assert_eq!(a[1].block.header.parent_hash, a[0].block.header.hash_slow());
    }
}
