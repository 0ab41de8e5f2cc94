// A real Ethereum client library (viem) against a live wake devnet: reads,
// an ERC-20 deployed and used, logs, verified state proofs, WebSocket
// subscriptions and the fee methods. One line per check; exit status 0 only
// when every check passed.
//
//   node check.mjs <data-dir>/endpoints.json
//
// The endpoints file is what `wake devnet` writes once every node serves
// JSON-RPC: {"chain_id": 1337, "validators": [{"http": ..., "ws": ...}],
// "full_nodes": [...]}. The first full node is used when there is one, else
// validator 0. The funded key is derived here as the devnet derives it
// (account 0 sends, account 1 receives), so nothing secret is passed in.
// Meant for a quiet devnet (`--tps 0`): the native-balance check assumes no
// one else moves accounts 0 and 1 meanwhile.

import { readFileSync } from 'node:fs';
import {
  concat,
  createPublicClient,
  createWalletClient,
  defineChain,
  encodeDeployData,
  getContractAddress,
  hexToBigInt,
  hexToBytes,
  http,
  isAddressEqual,
  keccak256,
  pad,
  parseAbi,
  parseEventLogs,
  size,
  stringToBytes,
  toEventSelector,
  toHex,
  toRlp,
  fromRlp,
  webSocket,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

// ---------------------------------------------------------------------------
// The token. Source: Token.sol next to this file (a minimal
// OpenZeppelin-style ERC-20: the constructor mints the supply to the
// deployer; standard Transfer / Approval events). Bytecode: solc 0.8.28
// (solc-js 0.8.28+commit.7893614a), optimizer on with 200 runs, EVM version
// cancun, metadata hash off; regenerate with compile.mjs (README.md).
// Storage: name 0, symbol 1, totalSupply 2, balanceOf 3, allowance 4.

const TOKEN_ABI = parseAbi([
  'constructor(string name_, string symbol_, uint256 supply)',
  'function name() view returns (string)',
  'function symbol() view returns (string)',
  'function decimals() view returns (uint8)',
  'function totalSupply() view returns (uint256)',
  'function balanceOf(address) view returns (uint256)',
  'function allowance(address, address) view returns (uint256)',
  'function transfer(address to, uint256 value) returns (bool)',
  'function approve(address spender, uint256 value) returns (bool)',
  'function transferFrom(address from, address to, uint256 value) returns (bool)',
  'event Transfer(address indexed from, address indexed to, uint256 value)',
  'event Approval(address indexed owner, address indexed spender, uint256 value)',
  'error InsufficientBalance(address from, uint256 balance, uint256 needed)',
  'error InsufficientAllowance(address spender, uint256 allowance, uint256 needed)',
  'error ZeroAddress()',
]);
const BALANCE_OF_SLOT = 3n;

const TOKEN_BYTECODE = `0x${[
  '608060405234801561000f575f5ffd5b5060405161089438038061089483398101604081905261002e91610134565b5f',
  '6100398482610225565b5060016100468382610225565b506002819055335f8181526003602090815260408083208590',
  '55518481527fddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef910160405180910390a3',
  '5050506102df565b634e487b7160e01b5f52604160045260245ffd5b5f82601f8301126100ba575f5ffd5b8151600160',
  '0160401b038111156100d3576100d3610097565b604051601f8201601f19908116603f011681016001600160401b0381',
  '11828210171561010157610101610097565b604052818152838201602001851015610118575f5ffd5b81602085016020',
  '83015e5f918101602001919091529392505050565b5f5f5f60608486031215610146575f5ffd5b83516001600160401b',
  '0381111561015b575f5ffd5b610167868287016100ab565b602086015190945090506001600160401b03811115610184',
  '575f5ffd5b610190868287016100ab565b925050604084015190509250925092565b600181811c908216806101b55760',
  '7f821691505b6020821081036101d357634e487b7160e01b5f52602260045260245ffd5b50919050565b601f82111561',
  '022057805f5260205f20601f840160051c810160208510156101fe5750805b601f840160051c820191505b8181101561',
  '021d575f815560010161020a565b50505b505050565b81516001600160401b0381111561023e5761023e610097565b61',
  '02528161024c84546101a1565b846101d9565b6020601f821160018114610284575f831561026d5750848201515b5f19',
  '600385901b1c1916600184901b17845561021d565b5f84815260208120601f198516915b828110156102b35787850151',
  '825560209485019460019092019101610293565b50848210156102d057868401515f19600387901b60f8161c19168155',
  '5b50505050600190811b01905550565b6105a8806102ec5f395ff3fe608060405234801561000f575f5ffd5b50600436',
  '10610090575f3560e01c8063313ce56711610063578063313ce567146100ff57806370a082311461011957806395d89b',
  '4114610138578063a9059cbb14610140578063dd62ed3e14610153575f5ffd5b806306fdde0314610094578063095ea7',
  'b3146100b257806318160ddd146100d557806323b872dd146100ec575b5f5ffd5b61009c61017d565b6040516100a991',
  '90610441565b60405180910390f35b6100c56100c0366004610491565b610208565b60405190151581526020016100a9',
  '565b6100de60025481565b6040519081526020016100a9565b6100c56100fa3660046104b9565b610294565b61010760',
  '1281565b60405160ff90911681526020016100a9565b6100de6101273660046104f3565b60036020525f908152604090',
  '205481565b61009c610339565b6100c561014e366004610491565b610346565b6100de610161366004610513565b6004',
  '60209081525f928352604080842090915290825290205481565b5f805461018990610544565b80601f01602080910402',
  '602001604051908101604052809291908181526020018280546101b590610544565b80156102005780601f106101d757',
  '610100808354040283529160200191610200565b820191905f5260205f20905b81548152906001019060200180831161',
  '01e357829003601f168201915b505050505081565b5f6001600160a01b0383166102305760405163d92e233d60e01b81',
  '5260040160405180910390fd5b335f8181526004602090815260408083206001600160a01b0388168085529083529281',
  '9020869055518581529192917f8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925910160',
  '405180910390a35060015b92915050565b6001600160a01b0383165f9081526004602090815260408083203384529091',
  '528120545f19811461032357828110156102f557604051630c95cf2760e11b8152336004820152602481018290526044',
  '81018490526064015b60405180910390fd5b6102ff838261057c565b6001600160a01b0386165f908152600460209081',
  '5260408083203384529091529020555b61032e85858561035b565b506001949350505050565b60018054610189906105',
  '44565b5f61035233848461035b565b50600192915050565b6001600160a01b0382166103825760405163d92e233d60e0',
  '1b815260040160405180910390fd5b6001600160a01b0383165f90815260036020526040902054818110156103d45760',
  '405163db42144d60e01b81526001600160a01b038516600482015260248101829052604481018390526064016102ec56',
  '5b6001600160a01b038085165f8181526003602052604080822086860390559286168082529083902080548601905591',
  '517fddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef906104339086815260200190565b',
  '60405180910390a350505050565b602081525f82518060208401528060208501604085015e5f60408285010152604060',
  '1f19601f83011684010191505092915050565b80356001600160a01b038116811461048c575f5ffd5b919050565b5f5f',
  '604083850312156104a2575f5ffd5b6104ab83610476565b946020939093013593505050565b5f5f5f60608486031215',
  '6104cb575f5ffd5b6104d484610476565b92506104e260208501610476565b929592945050506040919091013590565b',
  '5f60208284031215610503575f5ffd5b61050c82610476565b9392505050565b5f5f60408385031215610524575f5ffd',
  '5b61052d83610476565b915061053b60208401610476565b90509250929050565b600181811c9082168061055857607f',
  '821691505b60208210810361057657634e487b7160e01b5f52602260045260245ffd5b50919050565b81810381811115',
  '61028e57634e487b7160e01b5f52601160045260245ffdfea164736f6c634300081c000a',
].join('')}`;

const TOKEN_NAME = 'Wake Check Token';
const TOKEN_SYMBOL = 'WCT';
const SUPPLY = 1_000_000n * 10n ** 18n;
const AMOUNT = 12_345n * 10n ** 18n;
const AMOUNT_2 = 7n;

// ---------------------------------------------------------------------------
// Chain facts.

const CHAIN_ID = 1337;
const GENESIS_BALANCE = 10n ** 24n;
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const EMPTY_TRIE_ROOT = '0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421';
const TRANSFER_TOPIC = toEventSelector('Transfer(address,address,uint256)');
const RECEIPT_TIMEOUT_MS = 60_000;
const SUBSCRIPTION_TIMEOUT_MS = 30_000;
const OVERALL_TIMEOUT_MS = Number(process.env.CHECK_TIMEOUT_MS ?? 240_000);

// Account i of a devnet: keccak256("wake-devnet-account/" ++ i as 8 bytes,
// big-endian), re-hashed while it is not a valid secp256k1 secret key (as
// `fn account` in node/src/devnet.rs).
function devnetKey(i) {
  const index = new Uint8Array(8);
  new DataView(index.buffer).setBigUint64(0, BigInt(i));
  let seed = keccak256(concat([stringToBytes('wake-devnet-account/'), index]));
  for (;;) {
    const k = hexToBigInt(seed);
    if (k > 0n && k < SECP256K1_N) return seed;
    seed = keccak256(seed);
  }
}

// ---------------------------------------------------------------------------
// Checks and their report.

let passed = 0;
let failed = 0;
// The last HTTP exchanges, shown under a failed check.
const exchanges = [];
const EXCHANGES_KEPT = 3;

function remember(kind, text) {
  exchanges.push(`${kind} ${text.length > 600 ? `${text.slice(0, 600)}...` : text}`);
  while (exchanges.length > 2 * EXCHANGES_KEPT) exchanges.shift();
}

async function check(name, body) {
  exchanges.length = 0;
  try {
    const detail = await body();
    passed += 1;
    console.log(`ok   ${name}${detail ? `: ${detail}` : ''}`);
    return true;
  } catch (e) {
    failed += 1;
    const message = e?.shortMessage ?? e?.message ?? String(e);
    const details = e?.details && !message.includes(e.details) ? ` (${e.details})` : '';
    console.log(`FAIL ${name}: ${message.split('\n')[0]}${details}`);
    for (const line of exchanges) console.log(`       ${line}`);
    if (process.env.CHECK_VERBOSE) console.log(e);
    return false;
  }
}

class CheckError extends Error {}

function assert(condition, message) {
  if (!condition) throw new CheckError(message);
}

function show(value) {
  return typeof value === 'bigint' ? `${value}` : JSON.stringify(value);
}

function assertEq(actual, expected, what) {
  if (actual !== expected) {
    throw new CheckError(`${what}: got ${show(actual)}, expected ${show(expected)}`);
  }
}

function assertSameHex(actual, expected, what) {
  assert(
    typeof actual === 'string' && actual.toLowerCase() === expected.toLowerCase(),
    `${what}: got ${show(actual)}, expected ${show(expected)}`,
  );
}

// Set once the step that produces it passed; a later check that needs it
// fails (it is never skipped) when it is missing.
function need(value, what) {
  if (value === undefined || value === null) throw new CheckError(`not run: needs ${what}, which failed`);
  return value;
}

async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckError(`${what}: nothing within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Merkle-Patricia proofs (EIP-1186), checked from the root down.

function nibbles(bytes) {
  const out = [];
  for (const b of bytes) out.push(b >> 4, b & 15);
  return out;
}

// Walks `proof` (RLP nodes, root first) from `root` along keccak256(key);
// returns the RLP value at the leaf (hex), or null where the proof shows
// the key absent. Every node must be the one its parent names: the first
// hashes to `root`, each next one to the reference its parent holds
// (children under 32 bytes are inline in their parent, as in Ethereum).
// Throws when the proof does not prove either.
function walkProof(root, key, proof, what) {
  if (root.toLowerCase() === EMPTY_TRIE_ROOT && proof.length === 0) return null;
  const path = nibbles(hexToBytes(keccak256(key)));
  let at = 0;
  let used = 0;
  let next = root.toLowerCase();
  let value = null;
  for (;;) {
    let node;
    if (typeof next === 'string') {
      assert(used < proof.length, `${what}: proof ends after ${used} nodes; the path needs node ${next}`);
      const hash = keccak256(proof[used]);
      assertEq(hash, next, `${what}: keccak256 of proof node ${used}`);
      node = fromRlp(proof[used], 'hex');
      used += 1;
    } else {
      node = next;
    }
    assert(Array.isArray(node), `${what}: a trie node that is not an RLP list`);
    let child;
    if (node.length === 17) {
      assert(at < path.length, `${what}: the path ends at a branch`);
      child = node[path[at]];
      at += 1;
      if (child === '0x') break; // empty slot on the path: absent
    } else if (node.length === 2) {
      const encoded = nibbles(hexToBytes(node[0]));
      const flag = encoded[0];
      assert(flag <= 3, `${what}: bad hex-prefix flag ${flag}`);
      const part = encoded.slice(flag & 1 ? 1 : 2);
      const rest = path.slice(at);
      const prefix = part.length <= rest.length && part.every((n, j) => n === rest[j]);
      if (flag >= 2) {
        // Leaf: the key is here, or this leaf proves it absent.
        if (prefix && part.length === rest.length) value = node[1];
        break;
      }
      if (!prefix) break; // extension leading elsewhere: absent
      at += part.length;
      child = node[1];
    } else {
      throw new CheckError(`${what}: a trie node of ${node.length} items`);
    }
    assert(
      Array.isArray(child) || size(child) === 32,
      `${what}: a child reference of ${Array.isArray(child) ? 'a list' : size(child)} bytes`,
    );
    next = child;
  }
  assertEq(proof.length - used, 0, `${what}: proof nodes past the end of the path`);
  return value;
}

// Minimal big-endian bytes of an integer, as RLP encodes integers.
function rlpInt(n) {
  const value = BigInt(n);
  if (value === 0n) return '0x';
  const hex = value.toString(16);
  return `0x${hex.length % 2 ? '0' : ''}${hex}`;
}

function verifyAccountProof(proof, stateRoot, what) {
  const leaf = walkProof(stateRoot, proof.address, proof.accountProof, `${what} account proof`);
  assert(leaf !== null, `${what}: the account proof shows the account absent`);
  const expected = toRlp([
    rlpInt(proof.nonce ?? 0),
    rlpInt(proof.balance ?? 0n),
    proof.storageHash,
    proof.codeHash,
  ]);
  assertSameHex(leaf, expected, `${what}: RLP account at the end of the proof`);
}

function flipLastByte(hex) {
  const bytes = hexToBytes(hex);
  bytes[bytes.length - 1] ^= 1;
  return toHex(bytes);
}

function mustReject(verify, what) {
  try {
    verify();
  } catch (e) {
    if (e instanceof CheckError) return;
    throw e;
  }
  throw new CheckError(`the proof verifier accepted ${what}`);
}

// ---------------------------------------------------------------------------

async function main() {
  const endpointsPath = process.argv[2];
  if (!endpointsPath) {
    console.error('usage: node check.mjs <data-dir>/endpoints.json');
    process.exit(2);
  }
  const overall = setTimeout(() => {
    console.log(`FAIL overall: not finished within ${OVERALL_TIMEOUT_MS / 1000} s`);
    process.exit(1);
  }, OVERALL_TIMEOUT_MS);
  overall.unref();

  let endpoint;
  let endpoints;
  await check('endpoints file', async () => {
    endpoints = JSON.parse(readFileSync(endpointsPath, 'utf8'));
    const fullNodes = endpoints.full_nodes ?? [];
    const validators = endpoints.validators ?? [];
    endpoint = fullNodes.length > 0 ? fullNodes[0] : validators[0];
    assert(endpoint?.http && endpoint?.ws, `no node with http and ws in ${endpointsPath}`);
    assertEq(endpoints.chain_id, CHAIN_ID, 'chain_id');
    const which = fullNodes.length > 0 ? 'full node 0' : 'validator 0';
    return `${which}: ${endpoint.http} ${endpoint.ws}`;
  });
  if (!endpoint) return;

  const chain = defineChain({
    id: CHAIN_ID,
    name: 'wake devnet',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [endpoint.http], webSocket: [endpoint.ws] } },
  });
  const transport = http(endpoint.http, {
    retryCount: 0,
    timeout: 20_000,
    onFetchRequest: (_request, init) => remember('>', String(init.body)),
    onFetchResponse: async (response) => remember('<', `${response.status} ${await response.clone().text()}`),
  });
  const client = createPublicClient({ chain, transport, pollingInterval: 200 });
  const sender = privateKeyToAccount(devnetKey(0));
  const recipient = privateKeyToAccount(devnetKey(1)).address;
  const wallet = createWalletClient({ chain, transport, account: sender, pollingInterval: 200 });

  // --- the basics -----------------------------------------------------------

  await check('eth_chainId', async () => {
    assertEq(await client.getChainId(), CHAIN_ID, 'chain id');
    return `${CHAIN_ID}`;
  });

  await check('net_version', async () => {
    assertEq(await client.request({ method: 'net_version' }), `${CHAIN_ID}`, 'net_version');
  });

  await check('web3_clientVersion', async () => {
    const version = await client.request({ method: 'web3_clientVersion' });
    assert(typeof version === 'string' && /^wake\/v\d+\.\d+\.\d+/.test(version), `unexpected ${show(version)}`);
    return version;
  });

  await check('eth_blockNumber advances', async () => {
    const first = await client.getBlockNumber({ cacheTime: 0 });
    const deadline = Date.now() + 15_000;
    let now = first;
    while (now <= first) {
      assert(Date.now() < deadline, `still ${first} after 15 s`);
      await sleep(200);
      now = await client.getBlockNumber({ cacheTime: 0 });
    }
    return `${first} -> ${now}`;
  });

  let head;
  await check('eth_getBlockByNumber / ByHash', async () => {
    head = await client.getBlock({ blockTag: 'latest' });
    assert(head.number > 0n, `latest block is ${head.number}`);
    assertEq(size(head.hash), 32, 'hash size');
    assert(head.baseFeePerGas > 0n, `baseFeePerGas ${head.baseFeePerGas}`);
    assert(head.gasLimit > 0n, `gasLimit ${head.gasLimit}`);
    const parent = await client.getBlock({ blockNumber: head.number - 1n });
    assertSameHex(head.parentHash, parent.hash, `parentHash of block ${head.number}`);
    const byHash = await client.getBlock({ blockHash: head.hash });
    assertEq(byHash.number, head.number, 'number of the block by hash');
    assertSameHex(byHash.stateRoot, head.stateRoot, 'stateRoot of the block by hash');
    return `block ${head.number}, base fee ${head.baseFeePerGas} wei, gas limit ${head.gasLimit}`;
  });

  // The state before this script sends anything.
  let before;
  await check('funded devnet accounts', async () => {
    const blockNumber = await client.getBlockNumber({ cacheTime: 0 });
    const [balance, nonce, recipientBalance, code] = await Promise.all([
      client.getBalance({ address: sender.address, blockNumber }),
      client.getTransactionCount({ address: sender.address, blockNumber }),
      client.getBalance({ address: recipient, blockNumber }),
      client.getCode({ address: sender.address, blockNumber }),
    ]);
    assert(balance > 10n ** 21n, `account 0 ${sender.address} holds only ${balance} wei`);
    // Untouched accounts hold exactly the genesis amount.
    if (nonce === 0) assertEq(balance, GENESIS_BALANCE, 'balance of untouched account 0');
    assert(code === undefined || code === '0x', `account 0 has code ${code}`);
    before = { blockNumber, balance, nonce, recipientBalance };
    return `sender ${sender.address} (nonce ${nonce}, ${balance} wei), recipient ${recipient}`;
  });

  // --- fees -------------------------------------------------------------------

  await check('eth_gasPrice', async () => {
    const price = await client.getGasPrice();
    const latest = await client.getBlock({ blockTag: 'latest' });
    assert(price >= latest.baseFeePerGas, `gas price ${price} under the base fee ${latest.baseFeePerGas}`);
    return `${price} wei`;
  });

  await check('eth_maxPriorityFeePerGas', async () => {
    const tip = await client.estimateMaxPriorityFeePerGas();
    assert(typeof tip === 'bigint' && tip >= 0n, `tip ${show(tip)}`);
    return `${tip} wei`;
  });

  await check('eth_feeHistory', async () => {
    const history = await client.getFeeHistory({ blockCount: 4, blockTag: 'latest', rewardPercentiles: [25, 75] });
    assertEq(history.baseFeePerGas.length, 5, 'baseFeePerGas entries (4 blocks + next)');
    assertEq(history.gasUsedRatio.length, 4, 'gasUsedRatio entries');
    assertEq(history.reward?.length, 4, 'reward entries');
    assert(history.reward.every((r) => r.length === 2 && r.every((x) => x >= 0n)), 'reward rows of 2 numbers');
    assert(history.baseFeePerGas.every((f) => typeof f === 'bigint' && f > 0n), 'base fees > 0');
    assert(history.gasUsedRatio.every((r) => r >= 0 && r <= 1), 'gasUsedRatio in [0, 1]');
    const fee = await client.getBlock({ blockNumber: history.oldestBlock });
    assertEq(history.baseFeePerGas[0], fee.baseFeePerGas, `base fee of block ${history.oldestBlock}`);
    return `blocks ${history.oldestBlock}..${history.oldestBlock + 3n}, base fees ${history.baseFeePerGas.join(' ')}`;
  });

  // --- the token --------------------------------------------------------------

  const deployData = encodeDeployData({
    abi: TOKEN_ABI,
    bytecode: TOKEN_BYTECODE,
    args: [TOKEN_NAME, TOKEN_SYMBOL, SUPPLY],
  });

  let deployEstimate;
  await check('eth_estimateGas (deploy)', async () => {
    deployEstimate = await client.estimateGas({ account: sender, data: deployData });
    assert(deployEstimate > 53_000n, `estimate ${deployEstimate} is below the intrinsic cost of a create`);
    assert(deployEstimate < head.gasLimit, `estimate ${deployEstimate} over the block gas limit`);
    return `${deployEstimate} gas`;
  });

  let deployReceipt;
  let deployNonce;
  let token;
  await check('deploy ERC-20 (eth_sendRawTransaction, receipt)', async () => {
    const nonce = await client.getTransactionCount({ address: sender.address, blockTag: 'pending' });
    deployNonce = nonce;
    const hash = await wallet.sendTransaction({ data: deployData, nonce });
    const receipt = await client.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
    assertEq(receipt.status, 'success', 'deploy status');
    assert(receipt.contractAddress, 'no contractAddress in the receipt');
    const expected = getContractAddress({ from: sender.address, nonce: BigInt(nonce) });
    assert(isAddressEqual(receipt.contractAddress, expected), `contractAddress ${receipt.contractAddress}, expected ${expected}`);
    assert(isAddressEqual(receipt.from, sender.address), `receipt from ${receipt.from}`);
    assertEq(receipt.to, null, 'receipt to of a create');
    assertEq(receipt.type, 'eip1559', 'receipt type');
    assert(receipt.gasUsed <= need(deployEstimate, 'the deploy estimate'), `used ${receipt.gasUsed} > estimate ${deployEstimate}`);
    const [mint] = parseEventLogs({ abi: TOKEN_ABI, logs: receipt.logs, eventName: 'Transfer' });
    assertEq(receipt.logs.length, 1, 'logs in the deploy receipt');
    assert(mint && isAddressEqual(mint.args.to, sender.address) && mint.args.value === SUPPLY, 'the mint Transfer event');
    deployReceipt = receipt;
    token = receipt.contractAddress;
    return `${token} in block ${receipt.blockNumber}, ${receipt.gasUsed} gas`;
  });

  await check('eth_getTransactionByHash (deploy)', async () => {
    const receipt = need(deployReceipt, 'the deploy');
    const tx = await client.getTransaction({ hash: receipt.transactionHash });
    assert(isAddressEqual(tx.from, sender.address), `from ${tx.from}`);
    assertEq(tx.to, null, 'to of a create');
    assertEq(tx.type, 'eip1559', 'type');
    assertEq(tx.chainId, CHAIN_ID, 'chainId');
    assertEq(tx.nonce, deployNonce, 'nonce');
    assertSameHex(tx.input, deployData, 'input');
    assertSameHex(tx.blockHash, receipt.blockHash, 'blockHash');
    assertEq(tx.blockNumber, receipt.blockNumber, 'blockNumber');
    assertEq(tx.transactionIndex, receipt.transactionIndex, 'transactionIndex');
    assert(tx.maxFeePerGas >= receipt.effectiveGasPrice, `maxFeePerGas ${tx.maxFeePerGas} < effectiveGasPrice ${receipt.effectiveGasPrice}`);
  });

  let code;
  await check('eth_getCode', async () => {
    code = await client.getCode({ address: need(token, 'the token') });
    assert(code && size(code) > 100, `code ${show(code)}`);
    // The runtime code is the tail of the creation code (no immutables).
    assert(TOKEN_BYTECODE.toLowerCase().includes(code.slice(2).toLowerCase()), 'runtime code not found in the creation code');
    // A create pays 53,000 plus 200 gas per byte of code it leaves.
    const floor = 53_000n + 200n * BigInt(size(code));
    assert(deployReceipt.gasUsed > floor, `deploy used ${deployReceipt.gasUsed} gas, under ${floor}`);
    return `${size(code)} bytes`;
  });

  await check('eth_call (name, symbol, decimals, totalSupply)', async () => {
    const address = need(token, 'the token');
    const read = (functionName) => client.readContract({ address, abi: TOKEN_ABI, functionName });
    const [name, symbol, decimals, totalSupply] = await Promise.all(
      ['name', 'symbol', 'decimals', 'totalSupply'].map(read),
    );
    assertEq(name, TOKEN_NAME, 'name');
    assertEq(symbol, TOKEN_SYMBOL, 'symbol');
    assertEq(decimals, 18, 'decimals');
    assertEq(totalSupply, SUPPLY, 'totalSupply');
    return `${name} (${symbol}), ${totalSupply}`;
  });

  await check('eth_call revert (custom error)', async () => {
    const address = need(token, 'the token');
    try {
      await client.simulateContract({ address, abi: TOKEN_ABI, functionName: 'transfer', args: [recipient, SUPPLY + 1n], account: sender });
    } catch (e) {
      const error = e.walk?.((x) => x?.data?.errorName);
      assertEq(error?.data?.errorName, 'InsufficientBalance', 'decoded revert');
      assertEq(error.data.args[2], SUPPLY + 1n, 'revert argument');
      return 'InsufficientBalance decoded';
    }
    throw new CheckError('a transfer over the balance did not revert');
  });

  const transferData = { address: token, abi: TOKEN_ABI, functionName: 'transfer', args: [recipient, AMOUNT] };
  let transferEstimate;
  await check('eth_estimateGas (transfer)', async () => {
    need(token, 'the token');
    transferEstimate = await client.estimateContractGas({ ...transferData, account: sender });
    assert(transferEstimate > 21_000n + 20_000n, `estimate ${transferEstimate} is below a transfer setting a fresh slot`);
    assert(transferEstimate < 200_000n, `estimate ${transferEstimate} is too high for an ERC-20 transfer`);
    return `${transferEstimate} gas`;
  });

  let transferReceipt;
  await check('ERC-20 transfer (receipt)', async () => {
    need(token, 'the token');
    const hash = await wallet.writeContract(transferData);
    const receipt = await client.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
    assertEq(receipt.status, 'success', 'transfer status');
    assert(isAddressEqual(receipt.to, token), `receipt to ${receipt.to}`);
    assertEq(receipt.contractAddress ?? null, null, 'contractAddress of a call');
    assert(receipt.gasUsed <= need(transferEstimate, 'the transfer estimate'), `used ${receipt.gasUsed} > estimate ${transferEstimate}`);
    assert(receipt.blockNumber > deployReceipt.blockNumber, 'transfer not after the deploy');
    const events = parseEventLogs({ abi: TOKEN_ABI, logs: receipt.logs });
    assertEq(events.length, 1, 'events in the transfer receipt');
    assertEq(events[0].eventName, 'Transfer', 'event');
    assert(isAddressEqual(events[0].args.from, sender.address) && isAddressEqual(events[0].args.to, recipient), 'Transfer from / to');
    assertEq(events[0].args.value, AMOUNT, 'Transfer value');
    transferReceipt = receipt;
    return `block ${receipt.blockNumber}, ${receipt.gasUsed} gas`;
  });

  await check('eth_getBlockByNumber (full transactions)', async () => {
    const receipt = need(transferReceipt, 'the transfer');
    const block = await client.getBlock({ blockNumber: receipt.blockNumber, includeTransactions: true });
    assertSameHex(block.hash, receipt.blockHash, 'block hash vs receipt blockHash');
    const tx = block.transactions.find((t) => t.hash.toLowerCase() === receipt.transactionHash.toLowerCase());
    assert(tx, `transaction ${receipt.transactionHash} not in block ${block.number}`);
    assertEq(tx.transactionIndex, receipt.transactionIndex, 'transactionIndex');
    assert(isAddressEqual(tx.from, sender.address), `from ${tx.from}`);
    assert(receipt.effectiveGasPrice >= block.baseFeePerGas, `effectiveGasPrice ${receipt.effectiveGasPrice} < base fee ${block.baseFeePerGas}`);
    assert(block.gasUsed >= receipt.gasUsed, `block gasUsed ${block.gasUsed} < the transfer's ${receipt.gasUsed}`);
    return `${block.transactions.length} transactions`;
  });

  await check('balanceOf (eth_call at the deploy and transfer blocks)', async () => {
    const address = need(token, 'the token');
    const at = need(transferReceipt, 'the transfer').blockNumber;
    const balanceOf = (who, blockNumber) =>
      client.readContract({ address, abi: TOKEN_ABI, functionName: 'balanceOf', args: [who], blockNumber });
    assertEq(await balanceOf(sender.address, at), SUPPLY - AMOUNT, 'sender token balance after');
    assertEq(await balanceOf(recipient, at), AMOUNT, 'recipient token balance after');
    const deployed = deployReceipt.blockNumber;
    assertEq(await balanceOf(sender.address, deployed), SUPPLY, 'sender token balance at the deploy block');
    assertEq(await balanceOf(recipient, deployed), 0n, 'recipient token balance at the deploy block');
    return `sender ${SUPPLY - AMOUNT}, recipient ${AMOUNT}`;
  });

  await check('eth_getBalance / eth_getTransactionCount', async () => {
    const start = need(before, 'the funded accounts');
    const deploy = need(deployReceipt, 'the deploy');
    const transfer = need(transferReceipt, 'the transfer');
    const blockNumber = transfer.blockNumber;
    const [balance, nonce, recipientBalance] = await Promise.all([
      client.getBalance({ address: sender.address, blockNumber }),
      client.getTransactionCount({ address: sender.address, blockNumber }),
      client.getBalance({ address: recipient, blockNumber }),
    ]);
    const fees = deploy.gasUsed * deploy.effectiveGasPrice + transfer.gasUsed * transfer.effectiveGasPrice;
    assertEq(start.balance - balance, fees, 'sender balance spent (= gasUsed x effectiveGasPrice of both)');
    assertEq(nonce, start.nonce + 2, 'sender nonce');
    assertEq(recipientBalance, start.recipientBalance, 'recipient native balance');
    return `sender paid ${fees} wei, nonce ${nonce}`;
  });

  await check('eth_getLogs (Transfer over the block range)', async () => {
    const address = need(token, 'the token');
    const deploy = deployReceipt;
    const transfer = need(transferReceipt, 'the transfer');
    const logs = await client.getLogs({
      address,
      event: TOKEN_ABI.find((x) => x.type === 'event' && x.name === 'Transfer'),
      fromBlock: deploy.blockNumber,
      toBlock: transfer.blockNumber,
    });
    assertEq(logs.length, 2, 'Transfer logs of the token');
    const expect = [
      { receipt: deploy, from: '0x0000000000000000000000000000000000000000', to: sender.address, value: SUPPLY },
      { receipt: transfer, from: sender.address, to: recipient, value: AMOUNT },
    ];
    logs.forEach((log, i) => {
      const { receipt, from, to, value } = expect[i];
      assert(isAddressEqual(log.address, address), `log ${i} address ${log.address}`);
      assertEq(log.topics.length, 3, `log ${i} topics`);
      assertSameHex(log.topics[0], TRANSFER_TOPIC, `log ${i} topic 0`);
      assertSameHex(log.topics[1], pad(from), `log ${i} topic 1 (from)`);
      assertSameHex(log.topics[2], pad(to), `log ${i} topic 2 (to)`);
      assertSameHex(log.data, toHex(value, { size: 32 }), `log ${i} data`);
      assertEq(log.blockNumber, receipt.blockNumber, `log ${i} blockNumber`);
      assertSameHex(log.blockHash, receipt.blockHash, `log ${i} blockHash`);
      assertSameHex(log.transactionHash, receipt.transactionHash, `log ${i} transactionHash`);
      assertEq(log.transactionIndex, receipt.transactionIndex, `log ${i} transactionIndex`);
      assertEq(log.logIndex, receipt.logs[0].logIndex, `log ${i} logIndex`);
      assertEq(log.removed, false, `log ${i} removed`);
    });
    // A topic filter (to = recipient) keeps the transfer only.
    const toRecipient = await client.getLogs({
      address,
      event: TOKEN_ABI.find((x) => x.type === 'event' && x.name === 'Transfer'),
      args: { to: recipient },
      fromBlock: deploy.blockNumber,
      toBlock: transfer.blockNumber,
    });
    assertEq(toRecipient.length, 1, 'logs with topic 2 = recipient');
    assertSameHex(toRecipient[0].transactionHash, transfer.transactionHash, 'the filtered log');
    // By block hash.
    const inBlock = await client.getLogs({ address, blockHash: transfer.blockHash });
    assertEq(inBlock.length, 1, 'token logs in the transfer block (by blockHash)');
    return `2 logs in blocks ${deploy.blockNumber}..${transfer.blockNumber}, topic and blockHash filters`;
  });

  const balanceSlot = (who) => keccak256(concat([pad(who), toHex(BALANCE_OF_SLOT, { size: 32 })]));

  await check('eth_getStorageAt (balanceOf slot)', async () => {
    const address = need(token, 'the token');
    const blockNumber = need(transferReceipt, 'the transfer').blockNumber;
    const value = await client.getStorageAt({ address, slot: balanceSlot(sender.address), blockNumber });
    assertEq(hexToBigInt(value), SUPPLY - AMOUNT, 'balanceOf[sender] slot');
  });

  await check('eth_getProof (sender account, verified)', async () => {
    const blockNumber = need(transferReceipt, 'the transfer').blockNumber;
    const [proof, block, balance, nonce] = await Promise.all([
      client.getProof({ address: sender.address, storageKeys: [], blockNumber }),
      client.getBlock({ blockNumber }),
      client.getBalance({ address: sender.address, blockNumber }),
      client.getTransactionCount({ address: sender.address, blockNumber }),
    ]);
    assert(proof.accountProof.length > 0, 'empty account proof');
    assertSameHex(keccak256(proof.accountProof[0]), block.stateRoot, 'keccak256 of the first proof node vs stateRoot');
    verifyAccountProof(proof, block.stateRoot, 'sender');
    assertEq(proof.balance, balance, 'proof balance vs eth_getBalance');
    assertEq(proof.nonce, nonce, 'proof nonce vs eth_getTransactionCount');
    assertSameHex(proof.storageHash, EMPTY_TRIE_ROOT, 'storageHash of an account without storage');
    assertSameHex(proof.codeHash, keccak256('0x'), 'codeHash of an account without code');
    // The verifier itself: a proof of another balance, or with one node
    // changed, must not pass.
    mustReject(() => verifyAccountProof({ ...proof, balance: proof.balance + 1n }, block.stateRoot, 'x'), 'a wrong balance');
    const last = proof.accountProof.length - 1;
    const tampered = proof.accountProof.map((node, i) => (i === last ? flipLastByte(node) : node));
    mustReject(() => verifyAccountProof({ ...proof, accountProof: tampered }, block.stateRoot, 'x'), 'a changed node');
    return `${proof.accountProof.length} nodes to stateRoot ${block.stateRoot.slice(0, 10)}... of block ${blockNumber}`;
  });

  await check('eth_getProof (token account and storage, verified)', async () => {
    const address = need(token, 'the token');
    const blockNumber = need(transferReceipt, 'the transfer').blockNumber;
    const unused = keccak256(stringToBytes('a slot nobody wrote'));
    const keys = [balanceSlot(sender.address), balanceSlot(recipient), unused];
    const [proof, block] = await Promise.all([
      client.getProof({ address, storageKeys: keys, blockNumber }),
      client.getBlock({ blockNumber }),
    ]);
    verifyAccountProof(proof, block.stateRoot, 'token');
    assertSameHex(proof.codeHash, keccak256(need(code, 'the token code')), 'codeHash vs keccak256(eth_getCode)');
    assert(proof.storageHash.toLowerCase() !== EMPTY_TRIE_ROOT, 'token storage root is empty');
    assertEq(proof.storageProof.length, 3, 'storage proofs');
    const expected = [SUPPLY - AMOUNT, AMOUNT, 0n];
    proof.storageProof.forEach((p, i) => {
      assertEq(hexToBigInt(p.key), hexToBigInt(keys[i]), `storage proof ${i} key`);
      assertEq(p.value, expected[i], `storage proof ${i} value`);
      const leaf = walkProof(proof.storageHash, keys[i], p.proof, `storage proof ${i}`);
      if (expected[i] === 0n) {
        assertEq(leaf, null, `storage proof ${i}: a zero slot must be proven absent`);
      } else {
        assert(leaf !== null, `storage proof ${i} shows the slot absent`);
        assertSameHex(leaf, toRlp(rlpInt(expected[i])), `storage proof ${i}: RLP value at the leaf`);
      }
    });
    return `storageHash ${proof.storageHash.slice(0, 10)}..., 2 slots proven present, 1 absent`;
  });

  // --- WebSocket --------------------------------------------------------------

  const wsClient = createPublicClient({ chain, transport: webSocket(endpoint.ws, { retryCount: 0, timeout: 20_000 }) });

  await check('eth_subscribe newHeads (WebSocket)', async () => {
    const heads = [];
    let unwatch;
    await within(
      SUBSCRIPTION_TIMEOUT_MS,
      'two new heads',
      new Promise((resolve, reject) => {
        unwatch = wsClient.watchBlocks({
          poll: false,
          emitOnBegin: false,
          onBlock: (block) => {
            heads.push(block);
            if (heads.length >= 3) resolve();
          },
          onError: reject,
        });
      }),
    ).finally(() => unwatch?.());
    for (let i = 1; i < heads.length; i++) {
      assert(heads[i].number > heads[i - 1].number, `head numbers ${heads.map((h) => h.number).join(', ')} do not increase`);
      if (heads[i].number === heads[i - 1].number + 1n) {
        assertSameHex(heads[i].parentHash, heads[i - 1].hash, `parentHash of head ${heads[i].number}`);
      }
    }
    for (const h of heads) {
      const block = await client.getBlock({ blockNumber: h.number });
      assertSameHex(block.hash, h.hash, `head ${h.number} hash vs eth_getBlockByNumber`);
      assertSameHex(block.stateRoot, h.stateRoot, `head ${h.number} stateRoot`);
    }
    return `heads ${heads.map((h) => h.number).join(', ')}`;
  });

  await check('eth_subscribe logs (WebSocket)', async () => {
    const address = need(token, 'the token');
    let unwatch;
    let hash;
    const seen = [];
    const subscribed = new Promise((resolve, reject) => {
      unwatch = wsClient.watchContractEvent({
        address,
        abi: TOKEN_ABI,
        eventName: 'Transfer',
        args: { to: recipient },
        poll: false,
        onLogs: (logs) => {
          seen.push(...logs);
          if (hash && seen.some((l) => l.transactionHash.toLowerCase() === hash.toLowerCase())) resolve();
        },
        onError: reject,
      });
    });
    // watchContractEvent subscribes asynchronously; give it a moment.
    await sleep(500);
    hash = await wallet.writeContract({ ...transferData, args: [recipient, AMOUNT_2] });
    await within(SUBSCRIPTION_TIMEOUT_MS, 'the Transfer log of a new transfer', subscribed).finally(() => unwatch?.());
    const log = seen.find((l) => l.transactionHash.toLowerCase() === hash.toLowerCase());
    assertEq(log.args.value, AMOUNT_2, 'value of the pushed log');
    assert(isAddressEqual(log.args.from, sender.address), `from ${log.args.from}`);
    const receipt = await client.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
    assertEq(receipt.status, 'success', 'second transfer status');
    assertEq(log.blockNumber, receipt.blockNumber, 'pushed log blockNumber');
    return `log of ${hash.slice(0, 10)}... in block ${log.blockNumber}`;
  });

  console.log(`${passed + failed} checks, ${passed} passed, ${failed} failed`);
}

main()
  .catch((e) => {
    failed += 1;
    console.log(`FAIL script: ${e?.stack ?? e}`);
  })
  .finally(() => process.exit(failed === 0 && passed > 0 ? 0 : 1));
