//! `wake devnet`: N validators as separate `wake node` processes on
//! loopback, from a generated genesis with M funded accounts, driven by a
//! load generator that signs real transactions and sends them the way users
//! do, as JSON-RPC `eth_sendRawTransaction` batches.
//!
//! The generator signs everything before the measured window. During the
//! window it sends at `--tps`, round-robin over the validators, and watches
//! validator 0 over JSON-RPC: the executed head (`eth_blockNumber`), the
//! consensus head (`wake_consensus_height` on `/metrics`) and every new
//! block's transactions. A sampled transaction's latency is from
//! its submission to the moment its block is seen executed (finalized and
//! executed: with asynchronous execution that is when a wallet sees it);
//! its consensus finality is from its submission to the moment the
//! consensus head was first seen at its block's height (the order is final
//! there, before execution). Both are sampled by polling every
//! `POLL_INTERVAL`.
//! It prints a live status line, then a summary (`--json`: one line).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_consensus::TxEip1559;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use secp256k1::{SECP256K1, SecretKey};
use serde_json::{Value, json};

use crate::config::ExecutionMode;
use crate::profile::{ROLE_STATES, RoleShare};

/// Chain id of every devnet.
pub const DEVNET_CHAIN_ID: u64 = 1337;
/// Gas limit of devnet blocks: room for > 10,000 transfers per block.
const GAS_LIMIT: u64 = 1_000_000_000;
/// JSON-RPC batch size (the server's default cap is 100).
const BATCH: usize = 100;
/// One in this many transactions is timed.
const SAMPLE_EVERY: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Native transfers.
    Transfers,
    /// ERC-20 `transfer` calls on a token in the genesis.
    Erc20,
    /// Half and half.
    Mix,
}

#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Validators (separate processes).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Full nodes (separate processes, no validator key): they follow the
    /// finalized chain, execute it and serve JSON-RPC (first in
    /// `endpoints.json`); at the end their chain is checked against
    /// validator 0's.
    #[arg(long, default_value_t = 0)]
    full_nodes: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Transactions per second offered; 0: no load, the devnet only serves
    /// (JSON-RPC endpoints in `<data-dir>/endpoints.json`) until `--duration`
    /// ends or SIGTERM/SIGINT.
    #[arg(long, default_value_t = 300)]
    tps: u64,
    #[arg(long, value_enum, default_value_t = Workload::Transfers)]
    workload: Workload,
    /// Funded accounts in the genesis (all of them send).
    #[arg(long, default_value_t = 2_000)]
    accounts: u64,
    /// K: block h carries the execution result of block h-K.
    #[arg(long, default_value_t = 3)]
    delay: u64,
    /// `async`: blocks are ordered while earlier ones execute.
    /// `interleaved`: one block's execution on the critical path of every
    /// round (the baseline; see `wake_node::config`).
    #[arg(long, value_enum, default_value_t = ExecutionMode::Async)]
    execution: ExecutionMode,
    /// Minimum time between blocks, in ms (0: as fast as consensus goes,
    /// which on a lone validator means hundreds of tiny blocks a second,
    /// each with its fsyncs and triedb commit).
    #[arg(long, default_value_t = 50)]
    block_time: u64,
    /// While the mempool is empty, at most one block per this many ms
    /// (0: empty blocks as fast as consensus goes).
    #[arg(long, default_value_t = 200)]
    empty_block_ms: u64,
    /// Most gas a leader puts in one block (`[consensus] block_gas_max`).
    #[arg(long, default_value_t = crate::config::BLOCK_GAS_MAX_DEFAULT)]
    block_gas: u64,
    /// One-way latency injected on every message between validators, in ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Round timer, in ms (doubles after each failed round).
    #[arg(long, default_value_t = 1000)]
    round_timeout: u64,
    /// Data directory (default: a temporary one, removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Parallel execution threads per validator.
    #[arg(long, default_value_t = 1)]
    exec_threads: usize,
    /// triedb node cache per node, in MiB (`[execution] cache_mib`). The
    /// default is well below the state of `--accounts 1000000` (~258 MiB of
    /// live nodes), so such a run reads its state from disk.
    #[arg(long, default_value_t = 128)]
    cache_mib: usize,
    /// One JSON summary line on stdout.
    #[arg(long)]
    json: bool,
}

struct Account {
    secret: SecretKey,
    address: Address,
}

fn account(i: u64) -> Account {
    let mut seed = keccak256([b"wake-devnet-account/".as_slice(), &i.to_be_bytes()].concat());
    loop {
        if let Ok(secret) = SecretKey::from_byte_array(seed.0) {
            let public = secret.public_key(SECP256K1).serialize_uncompressed();
            let address = Address::from_slice(&keccak256(&public[1..])[12..]);
            return Account { secret, address };
        }
        seed = keccak256(seed);
    }
}

fn genesis_json(accounts: &[Account], workload: Workload) -> Value {
    let mut alloc = serde_json::Map::new();
    let rich = format!("{:#x}", U256::from(10u64).pow(U256::from(24u64)));
    for a in accounts {
        alloc.insert(format!("{:#x}", a.address), json!({ "balance": rich }));
    }
    if workload != Workload::Transfers {
        let mut storage = serde_json::Map::new();
        let tokens = format!("{:#x}", U256::from(10u64).pow(U256::from(24u64)));
        for a in accounts {
            storage.insert(
                format!("{:#x}", wake_benches::exec_workload::balance_slot(a.address)),
                json!(tokens),
            );
        }
        alloc.insert(
            format!("{:#x}", wake_benches::exec_workload::token_address()),
            json!({
                "balance": "0x0",
                "code": format!("{}", wake_benches::exec_workload::token_code()),
                "storage": storage,
            }),
        );
    }
    json!({
        "config": {
            "chainId": DEVNET_CHAIN_ID,
            "homesteadBlock": 0, "eip150Block": 0, "eip158Block": 0, "byzantiumBlock": 0,
            "constantinopleBlock": 0, "petersburgBlock": 0, "istanbulBlock": 0,
            "berlinBlock": 0, "londonBlock": 0,
            "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": true,
            "shanghaiTime": 0, "cancunTime": 0
        },
        "gasLimit": format!("{GAS_LIMIT:#x}"),
        "baseFeePerGas": "0x3b9aca00",
        "timestamp": "0x0",
        "alloc": alloc,
    })
}

/// Transaction `k`: account `k % n` at nonce `k / n`, to the next account.
fn transaction(k: u64, accounts: &[Account], workload: Workload) -> (B256, Bytes) {
    let n = accounts.len() as u64;
    let from = &accounts[(k % n) as usize];
    let to = accounts[((k + 1) % n) as usize].address;
    let erc20 = match workload {
        Workload::Transfers => false,
        Workload::Erc20 => true,
        Workload::Mix => k % 2 == 1,
    };
    let (kind, input, gas_limit, value) = if erc20 {
        let token = wake_benches::exec_workload::token_address();
        let data = wake_benches::exec_workload::transfer_calldata(to, U256::from(1u64));
        (TxKind::Call(token), data, 100_000, U256::ZERO)
    } else {
        (TxKind::Call(to), Bytes::new(), 21_000, U256::from(1u64))
    };
    let tx = TxEip1559 {
        chain_id: DEVNET_CHAIN_ID,
        nonce: k / n,
        gas_limit,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: kind,
        value,
        access_list: Default::default(),
        input,
    };
    let raw = Bytes::from(wake_benches::exec_workload::sign(tx, &from.secret).encoded_2718());
    (keccak256(&raw), raw)
}

/// Load connections in all, at the least.
const SENDERS_MIN: usize = 4;

/// One `eth_sendRawTransaction` batch of the load, encoded.
struct Batch {
    /// When it is sent, from the start of the window.
    due: Duration,
    body: Vec<u8>,
    txs: u64,
    /// Indices of the sampled transactions in it (finality is measured on those).
    sampled: Vec<usize>,
}

/// A blocking JSON-RPC client over one keep-alive HTTP/1.1 connection.
struct Rpc {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Rpc {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    fn call(&mut self, body: &Value) -> anyhow::Result<Value> {
        self.call_bytes(&serde_json::to_vec(body)?)
    }

    /// A call whose request body is already encoded.
    fn call_bytes(&mut self, body: &[u8]) -> anyhow::Result<Value> {
        let result = self.try_call(body);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn try_call(&mut self, body: &[u8]) -> anyhow::Result<Value> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.set_nodelay(true)?;
            self.stream = Some(BufReader::new(stream));
        }
        let reader = self.stream.as_mut().context("connected")?;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let stream = reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut status = String::new();
        reader.read_line(&mut status)?;
        let mut length = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = Some(value.trim().parse::<usize>()?);
            }
        }
        let length = length.context("response without Content-Length")?;
        if length > 64 << 20 {
            bail!("response of {length} bytes");
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        if !status.contains(" 200") {
            bail!("HTTP {}: {}", status.trim(), String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }

    /// `GET /metrics`: the value of every unlabelled `wake_*` gauge asked for.
    fn gauges(&mut self, names: &[&str]) -> anyhow::Result<Vec<Option<u64>>> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut text = String::new();
        stream.take(16 << 20).read_to_string(&mut text)?;
        Ok(names
            .iter()
            .map(|name| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                    .and_then(|value| value.trim().parse::<f64>().ok())
                    .map(|value| value as u64)
            })
            .collect())
    }

    fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let response =
            self.call(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))?;
        if let Some(error) = response.get("error") {
            bail!("{method}: {error}");
        }
        Ok(response["result"].clone())
    }
}

/// The roles whose clocks the summary reports (`wake_role_time_microseconds`).
const ROLES: [&str; 3] = ["consensus", "execution", "commit"];

/// Each role's (busy, idle, blocked) microseconds so far, from `/metrics`.
type RoleTotals = [(u64, u64, u64); ROLES.len()];

fn role_totals(rpc: &mut Rpc) -> anyhow::Result<RoleTotals> {
    let names: Vec<String> = ROLES
        .iter()
        .flat_map(|role| {
            ROLE_STATES.iter().map(move |state| {
                format!("wake_role_time_microseconds_total{{role=\"{role}\",state=\"{state}\"}}")
            })
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let values = rpc.gauges(&names)?;
    let mut totals = RoleTotals::default();
    for (i, total) in totals.iter_mut().enumerate() {
        let at = |j: usize| values[i * ROLE_STATES.len() + j].unwrap_or(0);
        *total = (at(0), at(1), at(2));
    }
    Ok(totals)
}

fn hex_u64(value: &Value) -> Option<u64> {
    u64::from_str_radix(value.as_str()?.trim_start_matches("0x"), 16).ok()
}

struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a child we spawned and still own.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Writes keys, genesis and configs; returns the config paths and RPC addresses.
fn write_network(
    dir: &Path,
    args: &DevnetArgs,
    accounts: &[Account],
) -> anyhow::Result<(Vec<PathBuf>, Vec<SocketAddr>)> {
    std::fs::write(
        dir.join("genesis.json"),
        serde_json::to_vec(&genesis_json(accounts, args.workload))?,
    )?;
    let mut keys = Vec::new();
    let mut set = String::new();
    let mut p2p_ports = Vec::new();
    for i in 0..args.validators {
        let secret: [u8; 32] = rand::random();
        let path = dir.join(format!("v{i}.key"));
        if !path.exists() {
            crate::config::write_new_key(&path, &secret)?;
        }
        let secret = crate::config::read_key(&path)?;
        let public = wake_consensus::crypto::ed25519_key_from_seed(secret).verifying_key();
        let port = free_port()?;
        set += &format!(
            "[[validators]]\npublic_key = \"{}\"\nstake = 1\naddress = \"/ip4/127.0.0.1/tcp/{port}\"\n",
            hex::encode(public.as_bytes())
        );
        keys.push(path);
        p2p_ports.push(port);
    }
    let mut configs = Vec::new();
    let mut rpcs = Vec::new();
    for (i, port) in p2p_ports.iter().enumerate() {
        let rpc = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = dir.join(format!("node{i}.toml"));
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data{i}\"\nkey_file = \"v{i}.key\"\nlisten = \"/ip4/127.0.0.1/tcp/{port}\"\n\
                 [consensus]\nexecution_delay = {}\nround_timeout_ms = {}\nexecution = \"{}\"\nblock_time_ms = {}\nempty_block_ms = {}\nblock_gas_max = {}\n\
                 [network]\ninject_latency_ms = {}\n\
                 [execution]\ngenesis = \"genesis.json\"\nrpc = \"{rpc}\"\nthreads = {}\ncache_mib = {}\n{set}",
                args.delay,
                args.round_timeout,
                args.execution.name(),
                args.block_time,
                args.empty_block_ms,
                args.block_gas,
                args.latency_ms,
                args.exec_threads,
                args.cache_mib,
            ),
        )?;
        configs.push(config);
        rpcs.push(rpc);
    }
    for j in 0..args.full_nodes {
        let rpc = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let port = free_port()?;
        let config = dir.join(format!("full{j}.toml"));
        std::fs::write(
            &config,
            format!(
                "data_dir = \"full{j}\"\nlisten = \"/ip4/127.0.0.1/tcp/{port}\"\n\
                 [network]\ninject_latency_ms = {}\n\
                 [execution]\ngenesis = \"genesis.json\"\nrpc = \"{rpc}\"\nthreads = {}\ncache_mib = {}\n{set}",
                args.latency_ms, args.exec_threads, args.cache_mib
            ),
        )?;
        configs.push(config);
        rpcs.push(rpc);
    }
    Ok((configs, rpcs))
}

/// The name of node `i` of the devnet (validators first, then full nodes).
fn node_name(args: &DevnetArgs, i: usize) -> String {
    if i < args.validators { format!("node{i}") } else { format!("full{}", i - args.validators) }
}

/// A full node's chain against validator 0's.
struct FullNodeCheck {
    /// The height both had executed when compared.
    height: u64,
    /// Same block hash and state root there.
    agrees: bool,
}

/// Waits (up to 60 s) until each full node has executed what validator 0
/// has, then compares the block hash and state root at that height.
fn check_full_nodes(
    validator: &mut Rpc,
    full_nodes: &mut [Rpc],
) -> anyhow::Result<Vec<FullNodeCheck>> {
    let target = hex_u64(&validator.request("eth_blockNumber", json!([]))?).unwrap_or(0);
    let block_at = |rpc: &mut Rpc, height: u64| -> anyhow::Result<(Value, Value)> {
        let block = rpc.request("eth_getBlockByNumber", json!([format!("{height:#x}"), false]))?;
        Ok((block["hash"].clone(), block["stateRoot"].clone()))
    };
    let expected = block_at(validator, target)?;
    let mut checks = Vec::new();
    for (j, rpc) in full_nodes.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let executed = hex_u64(&rpc.request("eth_blockNumber", json!([]))?).unwrap_or(0);
            if executed >= target {
                break;
            }
            if Instant::now() > deadline {
                bail!("full node {j} executed only {executed} of {target} blocks within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let got = block_at(rpc, target)?;
        let agrees = got == expected;
        if !agrees {
            eprintln!("full node {j}: block {target} is {got:?}, validator 0 has {expected:?}");
        }
        checks.push(FullNodeCheck { height: target, agrees });
    }
    Ok(checks)
}

/// What the run measured.
struct Summary {
    txs_sent: u64,
    txs_included: u64,
    tps_sustained: f64,
    latencies_ms: Vec<f64>,
    /// Submission to consensus commit of the block, per sampled transaction.
    consensus_latencies_ms: Vec<f64>,
    lag_max: u64,
    blocks: u64,
    send_errors: u64,
    /// Each validator's role shares over the window ([`ROLES`] order).
    roles: Vec<[RoleShare; ROLES.len()]>,
    /// Receipts of sampled included transactions: succeeded, reverted.
    receipts_ok: u64,
    receipts_failed: u64,
}

/// How often the generator looks at validator 0's heads: the resolution of
/// the latency figures (a 50 ms block time asks for finer than 100 ms).
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Receipts of at most this many sampled transactions are checked.
const RECEIPTS_CHECKED_MAX: usize = 200;

pub fn run(args: DevnetArgs) -> anyhow::Result<()> {
    if args.validators == 0 || args.accounts < 2 || args.duration == 0 {
        bail!("--validators and --duration must be > 0 and --accounts ≥ 2");
    }
    if args.block_gas < 21_000 {
        bail!("--block-gas must be at least 21000 (one transfer)");
    }
    if args.block_time.max(args.empty_block_ms) >= args.round_timeout {
        bail!("--block-time and --empty-block-ms must be below --round-timeout");
    }
    let temp;
    let dir = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp =
                tempfile::Builder::new().prefix("wake-devnet-").tempdir_in(std::env::temp_dir())?;
            temp.path().to_owned()
        }
    };
    eprintln!(
        "wake devnet: {} validators ({} execution), {} accounts, {} workload at {} tx/s for {} s, data in {}",
        args.validators,
        args.execution.name(),
        args.accounts,
        format!("{:?}", args.workload).to_lowercase(),
        args.tps,
        args.duration,
        dir.display()
    );
    let accounts: Vec<Account> = (0..args.accounts).map(account).collect();
    let (configs, rpcs) = write_network(&dir, &args, &accounts)?;

    let total = (args.tps * args.duration) as usize;
    let bar = indicatif::ProgressBar::new(total as u64).with_message("signing");
    let txs: Vec<(B256, Bytes)> = (0..total as u64)
        .map(|k| {
            bar.inc(1);
            transaction(k, &accounts, args.workload)
        })
        .collect();
    bar.finish_and_clear();

    let exe = std::env::current_exe().context("locating the wake binary")?;
    let mut processes = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("{}.log", node_name(&args, i))))?;
        let child = Command::new(&exe)
            .args(["node", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a validator")?;
        processes.push(Process { child });
    }
    eprintln!(
        "started {} validators and {} full nodes; logs in {}/node*.log, full*.log",
        args.validators,
        args.full_nodes,
        dir.display()
    );
    let mut clients: Vec<Rpc> = rpcs.iter().map(|a| Rpc::new(*a)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for (i, client) in clients.iter_mut().enumerate() {
        while client.request("eth_chainId", json!([])).is_err() {
            let name = node_name(&args, i);
            if Instant::now() > deadline {
                bail!("{name} did not serve JSON-RPC within 120 s (see its log)");
            }
            if let Ok(Some(status)) = processes[i].child.try_wait() {
                bail!("{name} exited with {status} (see {}/{name}.log)", dir.display());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let (validator_rpcs, full_rpcs) = rpcs.split_at(args.validators);
    write_endpoints(&dir, validator_rpcs, full_rpcs)?;
    if args.tps == 0 {
        return serve(&args, &mut clients[0], &mut processes);
    }
    // The load goes to the validators (as a wallet would send to any node,
    // a full node gossips what it is sent; the validators here take it
    // directly so the load generator's own cost stays the same).
    let (validator_clients, full_clients) = clients.split_at_mut(args.validators);
    let summary = drive(&args, &txs, validator_rpcs, &mut validator_clients[0])?;
    let full_nodes = check_full_nodes(&mut validator_clients[0], full_clients)?;
    drop(processes);
    report(&args, &summary, &full_nodes);
    if full_nodes.iter().any(|check| !check.agrees) {
        bail!("a full node's chain differs from validator 0's (see above)");
    }
    Ok(())
}

/// `endpoints.json`: where each node serves JSON-RPC, for outside clients.
fn write_endpoints(
    dir: &Path,
    validator_rpcs: &[SocketAddr],
    full_rpcs: &[SocketAddr],
) -> anyhow::Result<()> {
    let entries = |rpcs: &[SocketAddr]| -> Vec<Value> {
        rpcs.iter()
            .map(|a| json!({"http": format!("http://{a}"), "ws": format!("ws://{a}")}))
            .collect()
    };
    let endpoints = json!({
        "chain_id": DEVNET_CHAIN_ID,
        "validators": entries(validator_rpcs),
        "full_nodes": entries(full_rpcs),
    });
    // Written whole, then renamed: a reader never sees half a file.
    let path = dir.join("endpoints.json");
    let partial = dir.join("endpoints.json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(&endpoints)?)?;
    std::fs::rename(&partial, &path)?;
    for (i, rpc) in validator_rpcs.iter().enumerate() {
        eprintln!("validator {i}: JSON-RPC http://{rpc} ws://{rpc}");
    }
    for (j, rpc) in full_rpcs.iter().enumerate() {
        eprintln!("full node {j}: JSON-RPC http://{rpc} ws://{rpc}");
    }
    Ok(())
}

/// `--tps 0`: no load; serve until the duration ends, a signal arrives or
/// a validator exits, with the status line going.
fn serve(args: &DevnetArgs, watcher: &mut Rpc, processes: &mut [Process]) -> anyhow::Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let started = Instant::now();
    let mut last_status = Instant::now();
    while started.elapsed() < Duration::from_secs(args.duration)
        && !stop.load(std::sync::atomic::Ordering::Relaxed)
    {
        for (i, process) in processes.iter_mut().enumerate() {
            if let Ok(Some(status)) = process.child.try_wait() {
                bail!("validator {i} exited with {status}");
            }
        }
        if last_status.elapsed() >= Duration::from_secs(5) {
            last_status = Instant::now();
            let executed = watcher.request("eth_blockNumber", json!([])).ok();
            let executed = executed.as_ref().and_then(hex_u64).unwrap_or(0);
            eprintln!("[{:5.1}s] serving; executed {executed}", started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("devnet stopped after {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn drive(
    args: &DevnetArgs,
    txs: &[(B256, Bytes)],
    rpcs: &[SocketAddr],
    watcher: &mut Rpc,
) -> anyhow::Result<Summary> {
    let sampled: HashMap<B256, usize> =
        txs.iter().enumerate().step_by(SAMPLE_EVERY).map(|(i, (hash, _))| (*hash, i)).collect();
    let start_height = hex_u64(&watcher.request("eth_blockNumber", json!([]))?).unwrap_or(0);
    let mut roles_after = None;
    let window = Duration::from_secs(args.duration);
    // The senders: threads with a connection each, spread evenly over the
    // validators, each sending its share of the paced batches (batch b to
    // connection b mod n), so one slow answer does not hold back the others. The
    // request bodies are encoded before the window, like the signing.
    let tps = args.tps;
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<(usize, Instant)>();
    // At least SENDERS_MIN connections in all (several per validator when
    // there are few), so the round trip of one batch does not cap the rate.
    let per_validator = SENDERS_MIN.div_ceil(rpcs.len());
    let targets: Vec<SocketAddr> =
        rpcs.iter().flat_map(|a| std::iter::repeat_n(*a, per_validator)).collect();
    let mut shares: Vec<Vec<Batch>> = (0..targets.len()).map(|_| Vec::new()).collect();
    for (index, batch) in txs.chunks(BATCH).enumerate() {
        let first = index * BATCH;
        let body: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(j, (_, raw))| {
                json!({"jsonrpc": "2.0", "id": first + j, "method": "eth_sendRawTransaction", "params": [raw]})
            })
            .collect();
        let sampled = (first..first + batch.len()).filter(|i| i % SAMPLE_EVERY == 0).collect();
        shares[index % targets.len()].push(Batch {
            due: Duration::from_secs_f64(first as f64 / tps as f64),
            body: serde_json::to_vec(&body)?,
            txs: batch.len() as u64,
            sampled,
        });
    }
    let mut scrapers: Vec<Rpc> = rpcs.iter().map(|a| Rpc::new(*a)).collect();
    let roles_before =
        scrapers.iter_mut().map(role_totals).collect::<anyhow::Result<Vec<RoleTotals>>>()?;
    let started = Instant::now();
    let mut senders: Vec<std::thread::JoinHandle<u64>> = targets
        .iter()
        .zip(shares)
        .map(|(addr, share)| {
            let (addr, sent_tx) = (*addr, sent_tx.clone());
            std::thread::spawn(move || {
                let mut client = Rpc::new(addr);
                let mut errors = 0u64;
                for batch in share {
                    if let Some(wait) = (started + batch.due).checked_duration_since(Instant::now())
                    {
                        std::thread::sleep(wait);
                    }
                    let now = Instant::now();
                    match client.call_bytes(&batch.body) {
                        Ok(Value::Array(responses)) => {
                            errors += responses.iter().filter(|r| r.get("error").is_some()).count()
                                as u64;
                        }
                        _ => errors += batch.txs,
                    }
                    for i in batch.sampled {
                        let _ = sent_tx.send((i, now));
                    }
                }
                errors
            })
        })
        .collect();
    drop(sent_tx);

    let mut sent_at: HashMap<usize, Instant> = HashMap::new();
    let mut latencies_ms = Vec::new();
    let mut consensus_latencies_ms = Vec::new();
    // When the consensus head was first seen at each height not yet executed.
    let mut committed_at: std::collections::BTreeMap<u64, Instant> = Default::default();
    let mut consensus_seen = start_height;
    let mut included_samples: Vec<B256> = Vec::new();
    let mut next_block = start_height + 1;
    let (mut included, mut included_in_window, mut lag_max) = (0u64, 0u64, 0u64);
    let mut last_status = Instant::now();
    let drain_deadline = started + window + Duration::from_secs(15);
    let mut send_errors = 0;
    loop {
        while let Ok((i, at)) = sent_rx.try_recv() {
            sent_at.insert(i, at);
        }
        let executed = hex_u64(&watcher.request("eth_blockNumber", json!([]))?).unwrap_or(0);
        let consensus = watcher
            .gauges(&["wake_consensus_height"])?
            .first()
            .copied()
            .flatten()
            .unwrap_or(executed)
            .max(executed);
        lag_max = lag_max.max(consensus.saturating_sub(executed));
        let polled = Instant::now();
        for height in consensus_seen + 1..=consensus {
            committed_at.insert(height, polled);
        }
        consensus_seen = consensus_seen.max(consensus);
        while next_block <= executed {
            let block = watcher
                .request("eth_getBlockByNumber", json!([format!("{next_block:#x}"), false]))?;
            let seen = Instant::now();
            let hashes = block["transactions"].as_array().cloned().unwrap_or_default();
            included += hashes.len() as u64;
            if seen <= started + window {
                included_in_window += hashes.len() as u64;
            }
            for hash in hashes.iter().filter_map(|h| h.as_str()?.parse::<B256>().ok()) {
                if let Some(i) = sampled.get(&hash)
                    && let Some(at) = sent_at.get(i)
                {
                    latencies_ms.push(seen.duration_since(*at).as_secs_f64() * 1e3);
                    let committed = committed_at.get(&next_block).copied().unwrap_or(seen);
                    consensus_latencies_ms
                        .push(committed.saturating_duration_since(*at).as_secs_f64() * 1e3);
                    included_samples.push(hash);
                }
            }
            committed_at.remove(&next_block);
            next_block += 1;
        }
        if roles_after.is_none() && started.elapsed() >= window {
            roles_after = Some(
                scrapers
                    .iter_mut()
                    .map(role_totals)
                    .collect::<anyhow::Result<Vec<RoleTotals>>>()?,
            );
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            let (p50, p99) = percentiles(&latencies_ms);
            let (c50, c99) = percentiles(&consensus_latencies_ms);
            eprintln!(
                "[{secs:5.1}s] height {consensus} finalized {consensus} executed {executed} lag {} \
                 | included {included} ({:.0} tx/s) | finality (executed) p50 {p50:.0} ms p99 {p99:.0} ms \
                 | order final p50 {c50:.0} ms p99 {c99:.0} ms",
                consensus.saturating_sub(executed),
                included as f64 / secs.max(1e-9),
            );
        }
        for handle in senders.extract_if(.., |h| h.is_finished()) {
            send_errors += handle.join().unwrap_or(0);
        }
        let all_in = senders.is_empty() && included >= txs.len() as u64 - send_errors;
        if all_in || Instant::now() > drain_deadline {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    for handle in senders.drain(..) {
        send_errors += handle.join().unwrap_or(0);
    }
    let roles_after = match roles_after {
        Some(after) => after,
        None => {
            scrapers.iter_mut().map(role_totals).collect::<anyhow::Result<Vec<RoleTotals>>>()?
        }
    };
    let roles = roles_before
        .iter()
        .zip(&roles_after)
        .map(|(before, after)| std::array::from_fn(|i| RoleShare::between(before[i], after[i])))
        .collect();
    let (mut receipts_ok, mut receipts_failed) = (0, 0);
    for hash in included_samples.iter().take(RECEIPTS_CHECKED_MAX) {
        let receipt = watcher.request("eth_getTransactionReceipt", json!([hash]))?;
        match receipt["status"].as_str() {
            Some("0x1") => receipts_ok += 1,
            _ => receipts_failed += 1,
        }
    }
    Ok(Summary {
        roles,
        receipts_ok,
        receipts_failed,
        txs_sent: txs.len() as u64,
        txs_included: included,
        tps_sustained: included_in_window as f64 / window.as_secs_f64(),
        latencies_ms,
        consensus_latencies_ms,
        lag_max,
        blocks: next_block - 1 - start_height,
        send_errors,
    })
}

fn percentiles(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn report(args: &DevnetArgs, s: &Summary, full_nodes: &[FullNodeCheck]) {
    let (p50, p99) = percentiles(&s.latencies_ms);
    let (c50, c99) = percentiles(&s.consensus_latencies_ms);
    if args.json {
        println!(
            "{}",
            json!({
                "validators": args.validators,
                "duration_s": args.duration,
                "workload": format!("{:?}", args.workload).to_lowercase(),
                "accounts": args.accounts,
                "tps_offered": args.tps,
                "tps_sustained": s.tps_sustained,
                "txs_sent": s.txs_sent,
                "txs_included": s.txs_included,
                "send_errors": s.send_errors,
                "sampled_receipts_ok": s.receipts_ok,
                "sampled_receipts_failed": s.receipts_failed,
                "finality_ms_p50": p50,
                "finality_ms_p99": p99,
                "consensus_finality_ms_p50": c50,
                "consensus_finality_ms_p99": c99,
                "execution_lag_blocks_max": s.lag_max,
                "blocks_finalized": s.blocks,
                "execution_mode": args.execution.name(),
                "execution_delay": match args.execution {
                    ExecutionMode::Async => args.delay,
                    ExecutionMode::Interleaved => crate::config::INTERLEAVED_DELAY,
                },
                "block_time_ms": args.block_time,
                "empty_block_ms": args.empty_block_ms,
                "block_gas_max": args.block_gas,
                "injected_latency_ms": args.latency_ms,
                "cache_mib": args.cache_mib,
                "full_nodes": full_nodes.len(),
                "full_nodes_agree": full_nodes.iter().all(|c| c.agrees),
                "full_nodes_checked_height": full_nodes.iter().map(|c| c.height).min(),
                "roles": s.roles.iter().map(|shares| {
                    ROLES.iter().zip(shares).map(|(role, share)| {
                        (role.to_string(), json!({
                            "busy": share.busy, "idle": share.idle, "blocked": share.blocked,
                        }))
                    }).collect::<serde_json::Map<String, Value>>()
                }).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "summary: {} validators, {} s: {:.0} tx/s sustained ({} of {} transactions included, {} refused), \
             {} blocks, finality (executed) p50 {p50:.0} ms p99 {p99:.0} ms, order final p50 {c50:.0} ms \
             p99 {c99:.0} ms, execution lag ≤ {} blocks",
            args.validators,
            args.duration,
            s.tps_sustained,
            s.txs_included,
            s.txs_sent,
            s.send_errors,
            s.blocks,
            s.lag_max
        );
        let pct = |x: f64| format!("{:.0}%", x * 100.0);
        for (i, shares) in s.roles.iter().enumerate() {
            let parts: Vec<String> = ROLES
                .iter()
                .zip(shares)
                .map(|(role, share)| {
                    format!(
                        "{role} busy {} idle {} blocked {}",
                        pct(share.busy),
                        pct(share.idle),
                        pct(share.blocked)
                    )
                })
                .collect();
            println!("validator {i} over the window: {}", parts.join("; "));
        }
        for (j, check) in full_nodes.iter().enumerate() {
            let verdict = if check.agrees { "agrees" } else { "DIFFERS" };
            println!("full node {j}: {verdict} with validator 0 at block {}", check.height);
        }
    }
}
