// Compile aiprov's contracts with the pinned solc from node_modules (npm ci) into the artifacts aiprov ships
// (ABI, creation bytecode, compiler version and settings), and the test-only contracts into the artifacts the
// chain tests read. Deterministic: the same sources and the same solc give the same bytes, which
// tests/chain/test_contract_build.py checks against the committed files. OpenZeppelin imports are read from
// node_modules/@openzeppelin/contracts (pinned in package-lock.json) under their import names, so the metadata
// hash in the bytecode names them as every other build of OpenZeppelin does.
//
//   node contracts/build.mjs [SHIP_DIR [TEST_DIR]]
//     (defaults: src/aiprov/contracts and tests/chain/artifacts)
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const solc = require("solc");

const SOLC_VERSION = "0.8.37";
const SHIPPED = ["AiprovRegistry", "AiprovToken", "AiprovStaking"];
const TEST_ONLY = ["ReentrantToken"];
const sourceOf = (name) => (TEST_ONLY.includes(name) ? `contracts/test/${name}.sol` : `contracts/${name}.sol`);
// Pinned: the default evmVersion moves with solc and may target a fork that some chains and py-evm do not run.
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  // The metadata hash (IPFS) stays in the bytecode so Sourcify-style verification can match the source.
  metadata: { bytecodeHash: "ipfs" },
};
const SELECTED = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.deployedBytecode.immutableReferences"];

const version = solc.version();
if (!version.startsWith(`${SOLC_VERSION}+`)) {
  console.error(`solc ${version} is not the pinned ${SOLC_VERSION}: run npm ci`);
  process.exit(1);
}

function findImport(path) {
  if (!path.startsWith("@openzeppelin/contracts/")) return { error: `unexpected import ${path}` };
  try {
    return { contents: readFileSync(join(root, "node_modules", path), "utf8") };
  } catch (e) {
    return { error: `${path}: ${e.message} (run npm ci)` };
  }
}

// One compilation per contract, so a contract's metadata (and bytecode) names only the sources it uses.
function compile(name) {
  const source = sourceOf(name);
  const input = {
    language: "Solidity",
    sources: { [source]: { content: readFileSync(join(root, source), "utf8") } },
    settings: { ...SETTINGS, outputSelection: { [source]: { [name]: SELECTED } } },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  // Our sources compile without warnings; OpenZeppelin's own (solc's note on its transient-storage reentrancy
  // guard, which clears the slot at the end of each call) are not ours to fix.
  const ours = (e) => !e.sourceLocation || e.sourceLocation.file.startsWith("contracts/");
  const problems = (output.errors || []).filter((e) => e.severity === "error" || (e.type === "Warning" && ours(e)));
  if (problems.length) {
    for (const e of problems) console.error(e.formattedMessage);
    process.exit(1);
  }
  const contract = output.contracts[source][name];
  const artifact = {
    contractName: name,
    source,
    compiler: { name: "solc", version },
    settings: SETTINGS,
    abi: contract.abi,
    bytecode: `0x${contract.evm.bytecode.object}`,
    deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
  };
  // Where immutables sit in the deployed code (filled in at deployment), so a reader can compare code exactly.
  const immutables = contract.evm.deployedBytecode.immutableReferences || {};
  if (Object.keys(immutables).length) artifact.immutableReferences = immutables;
  return artifact;
}

const shipDir = resolve(process.argv[2] || join(root, "src/aiprov/contracts"));
const testDir = resolve(process.argv[3] || join(root, "tests/chain/artifacts"));
for (const [dir, names] of [[shipDir, SHIPPED], [testDir, TEST_ONLY]]) {
  mkdirSync(dir, { recursive: true });
  for (const name of names) {
    const out = join(dir, `${name}.json`);
    writeFileSync(out, JSON.stringify(compile(name), null, 2) + "\n");
    console.log(`${out}: ${name} compiled by solc ${version}`);
  }
}
