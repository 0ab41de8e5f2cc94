// Regenerates TOKEN_BYTECODE of check.mjs from Token.sol with solc-js
// 0.8.28 (not a dependency of the check: install it in a scratch folder,
// see README.md). Prints the bytecode, one hex string.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

// solc is resolved from the working directory (the scratch folder).
const solc = createRequire(`${process.cwd()}/`)('solc');
const source = readFileSync(new URL('./Token.sol', import.meta.url), 'utf8');
const input = {
  language: 'Solidity',
  sources: { 'Token.sol': { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { '*': ['evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if ((output.errors ?? []).some((e) => e.severity === 'error')) process.exit(1);
console.error(`solc ${solc.version()}`);
console.log(`0x${output.contracts['Token.sol'].Token.evm.bytecode.object}`);
