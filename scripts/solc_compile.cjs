// Runs the repository's pinned solc (JavaScript build) on standard JSON from stdin.
// Imports are resolved from node_modules/ (OpenZeppelin); our own sources come inline.
// Usage: node scripts/solc_compile.cjs < input.json > output.json
//        node scripts/solc_compile.cjs --version
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const solc = require(path.join(root, "node_modules", "solc"));

if (process.argv.includes("--version")) {
  process.stdout.write(solc.version() + "\n");
  process.exit(0);
}

function findImports(unit) {
  const file = path.join(root, "node_modules", unit);
  if (!file.startsWith(path.join(root, "node_modules") + path.sep) || !fs.existsSync(file)) {
    return { error: `import not found in node_modules: ${unit}` };
  }
  return { contents: fs.readFileSync(file, "utf8") };
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
