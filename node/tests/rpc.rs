//! The JSON-RPC server over a real chain: a devnet genesis on a temporary
//! triedb, blocks signed with real keys and executed by the execution crate
//! (a transfer, an ERC-20 deployment, token transfers), committed to triedb
//! and recorded in the `ChainStore`; then every method through jsonrpsee's
//! HTTP and WebSocket clients, the limits and their error codes, and
//! `/metrics`.

use alloy_consensus::proofs::calculate_transaction_root;
use alloy_consensus::{
    BlockBody, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, Header, SignableTransaction, TxEip1559,
};
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, FeeHistory, TransactionReceipt};
use alloy_trie::{Nibbles, TrieAccount, proof::verify_proof};
use jsonrpsee::core::ClientError;
use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::http_client::HttpClientBuilder;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use parking_lot::Mutex;
use secp256k1::{Message, SECP256K1, SecretKey};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wake_execution::{Block, BlockTx, ChainSpec, SnapshotState, execute_block};
use wake_node::rpc::{
    ChainStore, Metrics, NodeBackend, RpcConfig, RpcServer, RpcServerHandle, StoreConfig,
    StoredBlock, SubmitError, SubmitFuture, TxSubmitter,
};
use wake_triedb::{Config, TrieDb};

mod common;

use common::{CHAIN_ID, ETHER, GWEI, Key, devnet_genesis, key};

const BENEFICIARY: Address = Address::repeat_byte(0xfe);
/// `Transfer(address,address,uint256)`.
const TRANSFER_EVENT: B256 =
    alloy_primitives::b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
const TOKEN_SUPPLY: u128 = 1_000_000 * ETHER;

fn sign(tx: TxEip1559, secret: &SecretKey) -> BlockTx {
    let hash = tx.signature_hash();
    let (recid, bytes) =
        SECP256K1.sign_ecdsa_recoverable(Message::from_digest(hash.0), secret).serialize_compact();
    let signature = Signature::from_bytes_and_parity(&bytes, i32::from(recid) != 0);
    BlockTx::Eip1559(tx.into_signed(signature))
}

fn eip1559(nonce: u64, to: TxKind, value: U256, input: Bytes, gas_limit: u64) -> TxEip1559 {
    TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: 2 * GWEI,
        to,
        value,
        access_list: Default::default(),
        input,
    }
}

/// The storage slot of `balanceOf[holder]` in the vendored ERC-20.
fn balance_slot(holder: Address) -> B256 {
    let mut input = [0u8; 64];
    input[12..32].copy_from_slice(holder.as_slice());
    keccak256(input)
}

/// Init code that gives `holder` the whole supply (slot writes, as the
/// vendored token has no constructor) and returns the runtime code.
fn token_init_code(holder: Address) -> Bytes {
    let runtime = wake_benches::exec_workload::token_code();
    let mut code = Vec::new();
    let supply = U256::from(TOKEN_SUPPLY).to_be_bytes::<32>();
    code.push(0x7f); // PUSH32 supply
    code.extend_from_slice(&supply);
    code.push(0x7f); // PUSH32 balanceOf[holder]
    code.extend_from_slice(balance_slot(holder).as_slice());
    code.push(0x55); // SSTORE
    code.push(0x7f); // PUSH32 supply
    code.extend_from_slice(&supply);
    code.extend_from_slice(&[0x60, 0x02, 0x55]); // PUSH1 2 SSTORE (totalSupply)
    let len = u16::try_from(runtime.len()).unwrap().to_be_bytes();
    let offset = u16::try_from(code.len() + 13).unwrap().to_be_bytes();
    code.extend_from_slice(&[0x61, len[0], len[1], 0x80]); // PUSH2 len DUP1
    code.extend_from_slice(&[0x61, offset[0], offset[1]]); // PUSH2 offset
    code.extend_from_slice(&[0x60, 0x00, 0x39]); // PUSH1 0 CODECOPY
    code.extend_from_slice(&[0x60, 0x00, 0xf3]); // PUSH1 0 RETURN
    assert_eq!(code.len(), usize::from(u16::from_be_bytes(offset)));
    code.extend_from_slice(&runtime);
    code.into()
}

fn calldata(selector: &str, words: &[B256]) -> Bytes {
    let mut data = keccak256(selector.as_bytes())[..4].to_vec();
    for word in words {
        data.extend_from_slice(word.as_slice());
    }
    data.into()
}

fn address_word(address: Address) -> B256 {
    address.into_word()
}

/// `transfer(to, amount)` on `token`.
fn transfer_calldata(to: Address, amount: U256) -> Bytes {
    calldata("transfer(address,uint256)", &[address_word(to), B256::from(amount)])
}

/// A signed token transfer.
fn token_transfer_tx(nonce: u64, token: Address, to: Address, amount: U256, from: &Key) -> BlockTx {
    let input = transfer_calldata(to, amount);
    sign(eip1559(nonce, TxKind::Call(token), U256::ZERO, input, 100_000), &from.secret)
}

/// A devnet chain executed for real into a temporary triedb.
struct Chain {
    _dir: tempfile::TempDir,
    db: TrieDb,
    chain: ChainSpec,
    store: Arc<ChainStore>,
    parent: Header,
    hashes: HashMap<u64, B256>,
}

impl Chain {
    fn new(alice: Address, bob: Address) -> Chain {
        let genesis = devnet_genesis(&[(alice, 1_000 * ETHER), (bob, 5 * ETHER)]);
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let db = TrieDb::open(Config::new(dir.path().join("state.db"))).unwrap();
        let state_root = db.commit(0, &genesis.state_updates()).unwrap();
        let header = Header {
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: genesis.coinbase,
            state_root,
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            number: 0,
            gas_limit: genesis.gas_limit,
            timestamp: genesis.timestamp,
            extra_data: genesis.extra_data.clone(),
            mix_hash: genesis.mix_hash,
            base_fee_per_gas: genesis.base_fee_per_gas,
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            ..Default::default()
        };
        let store = Arc::new(ChainStore::new(StoreConfig::default()));
        let stored = StoredBlock::without_transactions(header.clone());
        let mut hashes = HashMap::new();
        hashes.insert(0, stored.hash);
        store.insert(stored).unwrap();
        Chain { _dir: dir, db, chain: genesis.spec, store, parent: header, hashes }
    }

    /// Executes a block of `txs` (sent by `senders`), commits it and
    /// stores it; returns the stored block.
    fn push(&mut self, txs: Vec<BlockTx>, senders: Vec<Address>) -> Arc<StoredBlock> {
        let number = self.parent.number + 1;
        let mut header = Header {
            parent_hash: self.parent.hash_slow(),
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: BENEFICIARY,
            transactions_root: calculate_transaction_root(&txs),
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            number,
            gas_limit: self.parent.gas_limit,
            timestamp: self.parent.timestamp + 1,
            base_fee_per_gas: self
                .parent
                .next_block_base_fee(alloy_eips::eip1559::BaseFeeParams::ethereum()),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            ..Default::default()
        };
        let body = BlockBody {
            transactions: txs,
            ommers: Vec::new(),
            withdrawals: Some(Withdrawals::default()),
        };
        let block = Block { header: header.clone(), body };
        let outcome = {
            let snapshot = self.db.snapshot(number - 1).unwrap();
            let state = SnapshotState::new(&snapshot, &self.hashes);
            execute_block(&self.chain, &block, &senders, state).unwrap()
        };
        header.state_root = self.db.commit(number, &outcome.updates).unwrap();
        header.receipts_root = outcome.receipts_root;
        header.logs_bloom = outcome.logs_bloom;
        header.gas_used = outcome.gas_used;
        let block = Block { header: header.clone(), body: block.body };
        let stored = StoredBlock::new(block, senders, outcome.receipts).unwrap();
        self.hashes.insert(number, stored.hash);
        self.store.insert(stored).unwrap();
        self.parent = header;
        self.store.latest().unwrap()
    }
}

/// What `eth_sendRawTransaction` handed to the pool.
type Submitted = Arc<Mutex<Vec<Bytes>>>;

fn serve(chain: &Chain, config: RpcConfig) -> (RpcServerHandle, Submitted, Arc<Metrics>) {
    let submitted: Submitted = Arc::default();
    let sink = Arc::clone(&submitted);
    let submitter = move |raw: Bytes| -> Result<B256, SubmitError> {
        let hash = keccak256(&raw);
        let mut pool = sink.lock();
        if pool.len() >= 2 {
            return Err(SubmitError::Busy("txpool is full".into()));
        }
        pool.push(raw);
        Ok(hash)
    };
    let backend = NodeBackend::new(
        Arc::clone(&chain.store),
        chain.chain.clone(),
        chain.db.clone(),
        Box::new(submitter),
    );
    let metrics = Arc::new(Metrics::new());
    let config = RpcConfig { addr: "127.0.0.1:0".parse().unwrap(), ..config };
    let handle = RpcServer::start(
        config,
        Arc::new(backend),
        Arc::clone(&metrics),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    (handle, submitted, metrics)
}

fn error_code(e: ClientError) -> i32 {
    match e {
        ClientError::Call(e) => e.code(),
        e => panic!("expected a call error, got {e:?}"),
    }
}

fn quantity(v: &Value) -> u128 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a quantity: {v}"));
    u128::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// One raw HTTP/1.1 exchange; returns (status line, body).
async fn http_raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, rest) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.push_str(&tail[..size]);
            rest = &tail[size + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    (status, body)
}

#[tokio::test]
async fn rpc_serves_a_real_chain() {
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let mut chain = Chain::new(alice.address, bob.address);
    let token = alice.address.create(1);

    // Block 1: a transfer and the token's deployment. Block 2: a token transfer.
    let transfer = sign(
        eip1559(0, TxKind::Call(carol.address), U256::from(ETHER), Bytes::new(), 21_000),
        &alice.secret,
    );
    let deploy = sign(
        eip1559(1, TxKind::Create, U256::ZERO, token_init_code(alice.address), 1_000_000),
        &alice.secret,
    );
    let block1 = chain.push(vec![transfer, deploy], vec![alice.address; 2]);
    let tokens = U256::from(250u64) * U256::from(ETHER);
    let token_transfer = token_transfer_tx(2, token, carol.address, tokens, &alice);
    let block2 = chain.push(vec![token_transfer], vec![alice.address]);
    assert!(block1.receipts.iter().chain(&block2.receipts).all(|r| r.status()));
    chain.store.set_finalized(1);

    let (server, submitted, _metrics) = serve(&chain, RpcConfig::default());
    let client = HttpClientBuilder::default().build(server.http_url()).unwrap();

    // Identity and head.
    let id: Value = client.request("eth_chainId", rpc_params![]).await.unwrap();
    assert_eq!(id, json!("0x539"));
    let version: String = client.request("net_version", rpc_params![]).await.unwrap();
    assert_eq!(version, "1337");
    let client_version: String = client.request("web3_clientVersion", rpc_params![]).await.unwrap();
    assert!(client_version.starts_with("wake/v"), "{client_version}");
    let syncing: Value = client.request("eth_syncing", rpc_params![]).await.unwrap();
    assert_eq!(syncing, json!(false));
    let head: Value = client.request("eth_blockNumber", rpc_params![]).await.unwrap();
    assert_eq!(head, json!("0x2"));

    // Blocks by number (genesis included), tag and hash.
    let genesis: Value =
        client.request("eth_getBlockByNumber", rpc_params!["0x0", false]).await.unwrap();
    assert_eq!(genesis["number"], json!("0x0"));
    assert_eq!(genesis["transactions"], json!([]));
    assert_eq!(genesis["hash"], json!(chain.hashes[&0]));
    let latest: alloy_rpc_types_eth::Block<Value> =
        client.request("eth_getBlockByNumber", rpc_params!["latest", true]).await.unwrap();
    assert_eq!(latest.header.hash, block2.hash);
    assert_eq!(latest.header.inner, block2.header);
    assert_eq!(latest.transactions.len(), 1);
    let finalized: Value =
        client.request("eth_getBlockByNumber", rpc_params!["finalized", false]).await.unwrap();
    assert_eq!(finalized["number"], json!("0x1"));
    assert_eq!(finalized["transactions"], json!(block1.tx_hashes));
    let safe: Value =
        client.request("eth_getBlockByNumber", rpc_params!["safe", false]).await.unwrap();
    assert_eq!(safe["hash"], json!(block1.hash));
    let by_hash: Value =
        client.request("eth_getBlockByHash", rpc_params![block1.hash, true]).await.unwrap();
    assert_eq!(by_hash["transactions"][1]["hash"], json!(block1.tx_hashes[1]));
    assert_eq!(by_hash["transactions"][1]["from"], json!(alice.address));
    assert_eq!(by_hash["transactions"][1]["to"], Value::Null);
    let missing: Value =
        client.request("eth_getBlockByNumber", rpc_params!["0x99", false]).await.unwrap();
    assert_eq!(missing, Value::Null);

    // Transactions and receipts.
    let tx: Value =
        client.request("eth_getTransactionByHash", rpc_params![block1.tx_hashes[0]]).await.unwrap();
    assert_eq!(tx["from"], json!(alice.address));
    assert_eq!(tx["to"], json!(carol.address));
    assert_eq!(tx["blockNumber"], json!("0x1"));
    assert_eq!(tx["transactionIndex"], json!("0x0"));
    assert_eq!(quantity(&tx["value"]), ETHER);
    let base_fee = u128::from(block1.header.base_fee_per_gas.unwrap());
    let price = base_fee + 2 * GWEI; // the fee cap (10 gwei) is not reached
    assert_eq!(quantity(&tx["gasPrice"]), price);
    let receipt: TransactionReceipt = client
        .request("eth_getTransactionReceipt", rpc_params![block1.tx_hashes[0]])
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.gas_used, 21_000);
    assert_eq!(receipt.effective_gas_price, price);
    assert_eq!(receipt.from, alice.address);
    assert_eq!(receipt.contract_address, None);
    let deploy_receipt: TransactionReceipt = client
        .request("eth_getTransactionReceipt", rpc_params![block1.tx_hashes[1]])
        .await
        .unwrap();
    assert_eq!(deploy_receipt.contract_address, Some(token));
    assert_eq!(deploy_receipt.to, None);
    assert_eq!(
        deploy_receipt.gas_used,
        block1.receipts[1].cumulative_gas_used() - block1.receipts[0].cumulative_gas_used()
    );
    let transfer_receipt: TransactionReceipt = client
        .request("eth_getTransactionReceipt", rpc_params![block2.tx_hashes[0]])
        .await
        .unwrap();
    let logs = transfer_receipt.inner.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].address(), token);
    assert_eq!(logs[0].topics()[0], TRANSFER_EVENT);
    assert_eq!(logs[0].topics()[2], address_word(carol.address));
    assert_eq!(logs[0].block_hash, Some(block2.hash));
    assert_eq!(logs[0].transaction_hash, Some(block2.tx_hashes[0]));
    assert_eq!(logs[0].log_index, Some(0));
    let unknown: Value = client
        .request("eth_getTransactionReceipt", rpc_params![B256::repeat_byte(9)])
        .await
        .unwrap();
    assert_eq!(unknown, Value::Null);

    // State: balances after the transfer, nonces, code, storage.
    let carol_balance: Value =
        client.request("eth_getBalance", rpc_params![carol.address, "latest"]).await.unwrap();
    assert_eq!(quantity(&carol_balance), ETHER);
    let carol_before: Value =
        client.request("eth_getBalance", rpc_params![carol.address, "0x0"]).await.unwrap();
    assert_eq!(quantity(&carol_before), 0);
    let alice_balance: Value =
        client.request("eth_getBalance", rpc_params![alice.address]).await.unwrap();
    let gas_paid: u128 = [(&block1, 0), (&block1, 1), (&block2, 0)]
        .iter()
        .map(|(b, i)| u128::from(b.gas_used_by(*i)) * b.effective_gas_price(*i))
        .sum();
    assert_eq!(quantity(&alice_balance), 1_000 * ETHER - ETHER - gas_paid);
    let nonce: Value = client
        .request("eth_getTransactionCount", rpc_params![alice.address, "latest"])
        .await
        .unwrap();
    assert_eq!(nonce, json!("0x3"));
    let nonce_then: Value = client
        .request(
            "eth_getTransactionCount",
            rpc_params![alice.address, json!({"blockHash": block1.hash})],
        )
        .await
        .unwrap();
    assert_eq!(nonce_then, json!("0x2"));
    let code: Bytes = client.request("eth_getCode", rpc_params![token, "latest"]).await.unwrap();
    assert_eq!(code, wake_benches::exec_workload::token_code());
    let no_code: Bytes =
        client.request("eth_getCode", rpc_params![carol.address, "latest"]).await.unwrap();
    assert!(no_code.is_empty());
    let slot: B256 = client
        .request("eth_getStorageAt", rpc_params![token, balance_slot(carol.address), "latest"])
        .await
        .unwrap();
    assert_eq!(U256::from_be_bytes(slot.0), tokens);
    let supply: B256 =
        client.request("eth_getStorageAt", rpc_params![token, "0x2", "latest"]).await.unwrap();
    assert_eq!(U256::from_be_bytes(supply.0), U256::from(TOKEN_SUPPLY));

    // eth_getProof, verified with alloy-trie against the block's state root.
    let carol_slot = balance_slot(carol.address);
    let empty_slot = B256::repeat_byte(0x42);
    let proof: EIP1186AccountProofResponse = client
        .request("eth_getProof", rpc_params![token, vec![carol_slot, empty_slot], "latest"])
        .await
        .unwrap();
    let account = TrieAccount {
        nonce: proof.nonce,
        balance: proof.balance,
        storage_root: proof.storage_hash,
        code_hash: proof.code_hash,
    };
    assert_eq!(proof.code_hash, keccak256(wake_benches::exec_workload::token_code()));
    verify_proof(
        block2.header.state_root,
        Nibbles::unpack(keccak256(token)),
        Some(alloy_rlp::encode(account)),
        &proof.account_proof,
    )
    .unwrap();
    assert_eq!(proof.storage_proof.len(), 2);
    assert_eq!(proof.storage_proof[0].value, tokens);
    verify_proof(
        proof.storage_hash,
        Nibbles::unpack(keccak256(carol_slot)),
        Some(alloy_rlp::encode(tokens)),
        &proof.storage_proof[0].proof,
    )
    .unwrap();
    assert_eq!(proof.storage_proof[1].value, U256::ZERO);
    verify_proof(
        proof.storage_hash,
        Nibbles::unpack(keccak256(empty_slot)),
        None,
        &proof.storage_proof[1].proof,
    )
    .unwrap();
    // An absent account proves its absence.
    let nobody = Address::repeat_byte(0x77);
    let absent: EIP1186AccountProofResponse = client
        .request("eth_getProof", rpc_params![nobody, Vec::<B256>::new(), "latest"])
        .await
        .unwrap();
    assert_eq!(absent.balance, U256::ZERO);
    verify_proof(
        block2.header.state_root,
        Nibbles::unpack(keccak256(nobody)),
        None,
        &absent.account_proof,
    )
    .unwrap();

    // eth_call: balanceOf now and at block 1; a revert with its reason.
    let balance_of = |who: Address| json!({"to": token, "data": calldata("balanceOf(address)", &[address_word(who)])});
    let out: Bytes =
        client.request("eth_call", rpc_params![balance_of(carol.address), "latest"]).await.unwrap();
    assert_eq!(U256::from_be_slice(&out), tokens);
    let out: Bytes =
        client.request("eth_call", rpc_params![balance_of(carol.address), "0x1"]).await.unwrap();
    assert_eq!(U256::from_be_slice(&out), U256::ZERO);
    let too_much = json!({
        "from": carol.address,
        "to": token,
        "data": transfer_calldata(bob.address, tokens + U256::from(1)),
    });
    let e = client
        .request::<Bytes, _>("eth_call", rpc_params![too_much.clone(), "latest"])
        .await
        .unwrap_err();
    match e {
        ClientError::Call(e) => {
            assert_eq!(e.code(), 3);
            assert_eq!(e.message(), "execution reverted: ERC20: transfer amount exceeds balance");
            let data: Bytes = serde_json::from_str(e.data().unwrap().get()).unwrap();
            assert_eq!(&data[..4], &[0x08, 0xc3, 0x79, 0xa0]);
        }
        e => panic!("{e:?}"),
    }

    // eth_estimateGas: a transfer is 21,000; a token transfer is near what it used.
    let estimate: Value = client
        .request(
            "eth_estimateGas",
            rpc_params![json!({"from": bob.address, "to": carol.address, "value": "0x1"})],
        )
        .await
        .unwrap();
    assert_eq!(estimate, json!("0x5208"));
    let token_call = json!({
        "from": carol.address,
        "to": token,
        "data": transfer_calldata(bob.address, U256::from(5)),
    });
    let estimate: Value = client.request("eth_estimateGas", rpc_params![token_call]).await.unwrap();
    let estimate = quantity(&estimate) as u64;
    assert!((30_000..70_000).contains(&estimate), "{estimate}");
    let e = client.request::<Value, _>("eth_estimateGas", rpc_params![too_much]).await.unwrap_err();
    assert_eq!(error_code(e), 3);

    // Fees.
    let gas_price: Value = client.request("eth_gasPrice", rpc_params![]).await.unwrap();
    let tip: Value = client.request("eth_maxPriorityFeePerGas", rpc_params![]).await.unwrap();
    assert_eq!(quantity(&tip), 2 * GWEI, "every recent transaction tipped 2 gwei");
    assert_eq!(
        quantity(&gas_price),
        u128::from(block2.header.base_fee_per_gas.unwrap()) + 2 * GWEI
    );
    let history: FeeHistory = client
        .request("eth_feeHistory", rpc_params!["0x3", "latest", vec![25.0, 75.0]])
        .await
        .unwrap();
    assert_eq!(history.oldest_block, 0);
    assert_eq!(history.base_fee_per_gas.len(), 4);
    assert_eq!(history.base_fee_per_gas[2], u128::from(block2.header.base_fee_per_gas.unwrap()));
    assert_eq!(
        history.base_fee_per_gas[3],
        u128::from(
            block2
                .header
                .next_block_base_fee(alloy_eips::eip1559::BaseFeeParams::ethereum())
                .unwrap()
        )
    );
    assert_eq!(history.gas_used_ratio[2], block2.header.gas_used as f64 / 30_000_000.0);
    let reward = history.reward.unwrap();
    assert_eq!(reward, vec![vec![0, 0], vec![2 * GWEI, 2 * GWEI], vec![2 * GWEI, 2 * GWEI]]);

    // eth_getLogs by address and topic, by block hash, and with no match.
    let filter = json!({"fromBlock": "0x0", "toBlock": "latest", "address": token, "topics": [TRANSFER_EVENT]});
    let logs: Vec<alloy_rpc_types_eth::Log> =
        client.request("eth_getLogs", rpc_params![filter]).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].block_number, Some(2));
    assert_eq!(logs[0].transaction_index, Some(0));
    let by_recipient = json!({"fromBlock": "0x1", "topics": [Value::Null, Value::Null, address_word(carol.address)]});
    let logs: Vec<Value> = client.request("eth_getLogs", rpc_params![by_recipient]).await.unwrap();
    assert_eq!(logs.len(), 1, "no toBlock: up to latest");
    let by_recipient = json!({"fromBlock": "0x1", "toBlock": "0x1", "topics": [Value::Null, Value::Null, address_word(carol.address)]});
    let logs: Vec<Value> = client.request("eth_getLogs", rpc_params![by_recipient]).await.unwrap();
    assert!(logs.is_empty());
    let at_hash = json!({"blockHash": block1.hash});
    let logs: Vec<Value> = client.request("eth_getLogs", rpc_params![at_hash]).await.unwrap();
    assert!(logs.is_empty());
    let other_topic = json!({"fromBlock": "0x0", "topics": [B256::repeat_byte(1)]});
    let logs: Vec<Value> = client.request("eth_getLogs", rpc_params![other_topic]).await.unwrap();
    assert!(logs.is_empty());

    // eth_sendRawTransaction hands well-formed transactions to the pool.
    let next = sign(
        eip1559(3, TxKind::Call(bob.address), U256::from(1), Bytes::new(), 21_000),
        &alice.secret,
    );
    let raw: Bytes = alloy_eips::eip2718::Encodable2718::encoded_2718(&next).into();
    let hash: B256 =
        client.request("eth_sendRawTransaction", rpc_params![raw.clone()]).await.unwrap();
    assert_eq!(hash, keccak256(&raw));
    assert_eq!(submitted.lock().as_slice(), std::slice::from_ref(&raw));
    let e = client
        .request::<B256, _>("eth_sendRawTransaction", rpc_params!["0x02deadbeef"])
        .await
        .unwrap_err();
    assert_eq!(error_code(e), -32000);
    assert_eq!(submitted.lock().len(), 1);
    let _: B256 = client.request("eth_sendRawTransaction", rpc_params![raw.clone()]).await.unwrap();
    let e =
        client.request::<B256, _>("eth_sendRawTransaction", rpc_params![raw]).await.unwrap_err();
    assert_eq!(error_code(e), -32005, "a full pool is a limit");

    // Malformed params: -32602, and the server keeps serving.
    for (method, params) in [
        ("eth_getBalance", json!(["0xzz", "latest"])),
        ("eth_getBalance", json!([alice.address, "sideways"])),
        ("eth_getBlockByNumber", json!(["latest"])),
        ("eth_getBlockByNumber", json!([{"a": 1}, true])),
        ("eth_getBlockByHash", json!(["0x1234", false])),
        ("eth_call", json!([{"to": 5}])),
        ("eth_getLogs", json!([{"topics": [[], [], [], [], []]}])),
        ("eth_feeHistory", json!(["0x2", "latest", [50.0, 10.0]])),
        ("eth_getProof", json!([token, "notalist", "latest"])),
        ("eth_subscribe", json!(["newHeads"])),
    ] {
        let body =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let (_, response) = http_raw(server.local_addr(), "POST", "/", &body).await;
        let response: Value = serde_json::from_str(&response).unwrap();
        let code = response["error"]["code"].as_i64();
        if method == "eth_subscribe" {
            // Subscriptions need a WebSocket.
            assert!(code.is_some(), "{method} {params}: {response}");
        } else {
            assert_eq!(code, Some(-32602), "{method} {params}: {response}");
        }
    }
    let unknown_method =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_mine", "params": []}).to_string();
    let (_, response) = http_raw(server.local_addr(), "POST", "/", &unknown_method).await;
    assert_eq!(serde_json::from_str::<Value>(&response).unwrap()["error"]["code"], json!(-32601));

    // Subscriptions over WebSocket: newHeads and logs see blocks inserted after.
    let ws = WsClientBuilder::default().build(server.ws_url()).await.unwrap();
    let mut heads = ws
        .subscribe::<Value, _>("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .unwrap();
    let mut token_logs = ws
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["logs", json!({"address": token})],
            "eth_unsubscribe",
        )
        .await
        .unwrap();
    let e = ws
        .subscribe::<Value, _>(
            "eth_subscribe",
            rpc_params!["newPendingTransactions"],
            "eth_unsubscribe",
        )
        .await
        .unwrap_err();
    assert_eq!(error_code(e), -32602);
    let to_bob = token_transfer_tx(0, token, bob.address, U256::from(7), &carol);
    let block3 = chain.push(vec![to_bob], vec![carol.address]);
    let head = tokio::time::timeout(Duration::from_secs(10), heads.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(head["number"], json!("0x3"));
    assert_eq!(head["hash"], json!(block3.hash));
    let log = tokio::time::timeout(Duration::from_secs(10), token_logs.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(log["transactionHash"], json!(block3.tx_hashes[0]));
    assert_eq!(log["topics"][2], json!(address_word(bob.address)));
    heads.unsubscribe().await.unwrap();
    // The WebSocket serves plain calls too.
    let head: Value = ws.request("eth_blockNumber", rpc_params![]).await.unwrap();
    assert_eq!(head, json!("0x3"));

    // /metrics on the same port counts the calls made above.
    let (status, text) = http_raw(server.local_addr(), "GET", "/metrics", "").await;
    assert!(status.contains("200"), "{status}");
    assert!(text.contains("wake_rpc_requests_total{method=\"eth_getBalance\"}"), "{text}");
    assert!(text.contains("wake_rpc_request_duration_seconds_bucket{"), "{text}");
    assert!(text.contains("wake_rpc_errors_total{method=\"eth_call\"}"), "{text}");
    server.stop();
}

#[tokio::test]
async fn rpc_limits_answer_with_standard_codes() {
    let (alice, bob) = (key(1), key(2));
    let mut chain = Chain::new(alice.address, bob.address);
    for _ in 0..4 {
        chain.push(Vec::new(), Vec::new());
    }
    let config = RpcConfig {
        batch_requests_max: 3,
        logs_block_range_max: 2,
        logs_results_max: 10,
        proof_slots_max: 2,
        request_body_bytes_max: 4_096,
        ..RpcConfig::default()
    };
    let (server, _, _) = serve(&chain, config);
    let addr = server.local_addr();
    let call =
        |id: u32| json!({"jsonrpc": "2.0", "id": id, "method": "eth_blockNumber", "params": []});

    // A batch at the limit is served; one over it is refused with -32005.
    let (_, body) =
        http_raw(addr, "POST", "/", &json!([call(1), call(2), call(3)]).to_string()).await;
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|a| a["result"] == json!("0x4")));
    let (_, body) =
        http_raw(addr, "POST", "/", &json!([call(1), call(2), call(3), call(4)]).to_string()).await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["error"]["code"], json!(-32005), "{answer}");

    // An oversized request body.
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": ["x".repeat(5_000)]});
    let (status, body) = http_raw(addr, "POST", "/", &big.to_string()).await;
    assert!(status.contains("413"), "{status}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["error"]["code"], json!(-32007));

    // eth_getLogs block range, eth_getProof key count.
    let client = HttpClientBuilder::default().build(server.http_url()).unwrap();
    let ok: Vec<Value> = client
        .request("eth_getLogs", rpc_params![json!({"fromBlock": "0x1", "toBlock": "0x2"})])
        .await
        .unwrap();
    assert!(ok.is_empty());
    let e = client
        .request::<Vec<Value>, _>(
            "eth_getLogs",
            rpc_params![json!({"fromBlock": "0x0", "toBlock": "0x3"})],
        )
        .await
        .unwrap_err();
    match e {
        ClientError::Call(e) => {
            assert_eq!(e.code(), -32005);
            assert_eq!(e.message(), "exceed maximum block range: 2");
        }
        e => panic!("{e:?}"),
    }
    let e = client
        .request::<Vec<Value>, _>(
            "eth_getLogs",
            rpc_params![json!({"fromBlock": "0x3", "toBlock": "0x1"})],
        )
        .await
        .unwrap_err();
    assert_eq!(error_code(e), -32602);
    let keys = vec![B256::ZERO; 3];
    let e = client
        .request::<Value, _>("eth_getProof", rpc_params![alice.address, keys, "latest"])
        .await
        .unwrap_err();
    assert_eq!(error_code(e), -32005);

    // State that is not stored: a block above the head.
    let e = client
        .request::<Value, _>("eth_getBalance", rpc_params![alice.address, "0x10"])
        .await
        .unwrap_err();
    assert_eq!(error_code(e), -32000);
    // No finalized block yet: the tag finds nothing.
    let none: Value =
        client.request("eth_getBlockByNumber", rpc_params!["finalized", false]).await.unwrap();
    assert_eq!(none, Value::Null);
    server.stop();
}

/// Answers each transaction only once `expected` of them have arrived:
/// served one after another, a batch would never finish.
struct GatheringSubmitter {
    barrier: Arc<tokio::sync::Barrier>,
    arrived: Arc<Mutex<Vec<Bytes>>>,
}

impl TxSubmitter for GatheringSubmitter {
    fn submit(&self, raw: Bytes) -> SubmitFuture {
        let barrier = Arc::clone(&self.barrier);
        self.arrived.lock().push(raw.clone());
        Box::pin(async move {
            barrier.wait().await;
            Ok(keccak256(&raw))
        })
    }
}

/// The transactions of one JSON-RPC batch reach the pool together (its
/// calls run concurrently), and the answers still come in request order,
/// with a malformed transaction and another method in between.
#[tokio::test]
async fn a_batch_of_transactions_reaches_the_pool_together() {
    let (alice, bob) = (key(1), key(2));
    let chain = Chain::new(alice.address, bob.address);
    const TXS: usize = 5;
    let raws: Vec<Bytes> = (0..TXS as u64)
        .map(|nonce| {
            let tx = sign(
                eip1559(nonce, TxKind::Call(bob.address), U256::from(1), Bytes::new(), 21_000),
                &alice.secret,
            );
            alloy_eips::eip2718::Encodable2718::encoded_2718(&tx).into()
        })
        .collect();
    let arrived = Arc::new(Mutex::new(Vec::new()));
    let submitter = GatheringSubmitter {
        barrier: Arc::new(tokio::sync::Barrier::new(TXS)),
        arrived: Arc::clone(&arrived),
    };
    let backend = NodeBackend::new(
        Arc::clone(&chain.store),
        chain.chain.clone(),
        chain.db.clone(),
        Box::new(submitter),
    );
    let config = RpcConfig { addr: "127.0.0.1:0".parse().unwrap(), ..RpcConfig::default() };
    let server = RpcServer::start(
        config,
        Arc::new(backend),
        Arc::new(Metrics::new()),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    let send = |id: usize, raw: &Bytes| json!({"jsonrpc": "2.0", "id": id, "method": "eth_sendRawTransaction", "params": [raw]});
    let mut batch: Vec<Value> = raws.iter().enumerate().map(|(i, raw)| send(i, raw)).collect();
    batch
        .insert(2, json!({"jsonrpc": "2.0", "id": 100, "method": "eth_blockNumber", "params": []}));
    batch.insert(4, json!({"jsonrpc": "2.0", "id": 101, "method": "eth_sendRawTransaction", "params": ["0x02deadbeef"]}));
    let body = Value::Array(batch).to_string();
    let request = http_raw(server.local_addr(), "POST", "/", &body);
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), request)
        .await
        .expect("the batch's transactions were not admitted together");
    assert!(status.contains("200"), "{status}");
    let answers: Vec<Value> = serde_json::from_str(&body).unwrap();
    let ids: Vec<u64> = answers.iter().map(|a| a["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [0, 1, 100, 2, 101, 3, 4]);
    assert_eq!(answers[2]["result"], json!("0x0"));
    assert_eq!(answers[4]["error"]["code"], json!(-32000), "{}", answers[4]);
    let hashes: Vec<B256> = answers
        .iter()
        .filter(|a| a["id"].as_u64().unwrap() < 100)
        .map(|a| serde_json::from_value(a["result"].clone()).unwrap())
        .collect();
    assert_eq!(hashes, raws.iter().map(keccak256).collect::<Vec<_>>());
    let mut arrived = arrived.lock().clone();
    arrived.sort();
    let mut expected = raws.clone();
    expected.sort();
    assert_eq!(arrived, expected);
}
