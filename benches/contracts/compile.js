// Compiles the benchmark contracts with the npm package `solc` (offline, no
// network once installed) and writes each one's runtime bytecode as hex.
//
//   (cd /tmp && npm install solc@0.8.28) && \
//     NODE_PATH=/tmp/node_modules node benches/contracts/compile.js
//
// (run from the repository root; see README.md in this folder).
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const dir = __dirname;
const contracts = ["BenchToken"];
const sources = {};
for (const name of contracts) {
  sources[`${name}.sol`] = { content: fs.readFileSync(path.join(dir, `${name}.sol`), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
for (const name of contracts) {
  const hex = output.contracts[`${name}.sol`][name].evm.deployedBytecode.object;
  fs.writeFileSync(path.join(dir, `${name}.bin-runtime`), hex + "\n");
  console.log(`${name}: ${hex.length / 2} bytes of runtime code (solc ${solc.version()})`);
}
