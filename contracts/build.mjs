// Compile contracts/AiprovRegistry.sol with the pinned solc from node_modules (npm ci) into the artifact that
// aiprov ships: ABI, creation bytecode, compiler version and settings. Deterministic: the same source and the
// same solc give the same bytes, which tests/chain/test_contract_build.py checks against the committed file.
//
//   node contracts/build.mjs [OUT]     (default: src/aiprov/contracts/AiprovRegistry.json)
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const solc = require("solc");

const SOLC_VERSION = "0.8.37";
const NAME = "AiprovRegistry";
const SOURCE = `contracts/${NAME}.sol`;
// Pinned: the default evmVersion moves with solc and may target a fork that some chains and py-evm do not run.
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  // The metadata hash (IPFS) stays in the bytecode so Sourcify-style verification can match the source.
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: { [SOURCE]: { [NAME]: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const version = solc.version();
if (!version.startsWith(`${SOLC_VERSION}+`)) {
  console.error(`solc ${version} is not the pinned ${SOLC_VERSION}: run npm ci`);
  process.exit(1);
}
const input = {
  language: "Solidity",
  sources: { [SOURCE]: { content: readFileSync(join(root, SOURCE), "utf8") } },
  settings: SETTINGS,
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const problems = (output.errors || []).filter((e) => e.severity === "error" || e.type === "Warning");
if (problems.length) {
  for (const e of problems) console.error(e.formattedMessage);
  process.exit(1);
}
const contract = output.contracts[SOURCE][NAME];
const { outputSelection, ...settings } = SETTINGS;
const artifact = {
  contractName: NAME,
  source: SOURCE,
  compiler: { name: "solc", version },
  settings,
  abi: contract.abi,
  bytecode: `0x${contract.evm.bytecode.object}`,
  deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
};
const out = resolve(process.argv[2] || join(root, "src/aiprov/contracts", `${NAME}.json`));
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(artifact, null, 2) + "\n");
console.log(`${out}: ${NAME} compiled by solc ${version}`);
