#!/usr/bin/env node
// Makes the npm `solc` package answer like a native solc binary, for py-solc-x:
//   --version        prints "Version: <x.y.z+commit.hash...>" (native format)
//   --standard-json  reads Standard JSON input on stdin, writes Standard JSON output on stdout
// The npm CLI (solcjs) prints a banner before its JSON, which py-solc-x cannot parse.
// Imports are resolved from --base-path / --allow-paths (or the working directory).
"use strict";
const fs = require("fs");
const path = require("path");

function loadSolc() {
  const explicit = process.env.TBCIM_SOLCJS_MODULE;
  const searchFrom = [process.cwd(), __dirname, path.join(__dirname, "..")];
  const where = explicit || require.resolve("solc", { paths: searchFrom });
  return require(where);
}

function main(argv) {
  const solc = loadSolc();
  if (argv.includes("--version")) {
    process.stdout.write("solc, the solidity compiler (npm solc adapter)\nVersion: " + solc.version() + "\n");
    return 0;
  }
  if (!argv.includes("--standard-json")) {
    process.stderr.write("solcjs_adapter: only --version and --standard-json are supported\n");
    return 2;
  }
  const roots = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--base-path" || argv[i] === "--allow-paths") {
      roots.push(...String(argv[i + 1] || "").split(",").filter(Boolean));
    }
  }
  if (roots.length === 0) roots.push(process.cwd());
  const findImports = (importPath) => {
    for (const root of roots) {
      const candidate = path.resolve(root, importPath);
      if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
    }
    return { error: "File not found: " + importPath };
  };
  const input = fs.readFileSync(0, "utf8");
  process.stdout.write(solc.compile(input, { import: findImports }));
  return 0;
}

process.exitCode = main(process.argv.slice(2));
