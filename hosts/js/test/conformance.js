#!/usr/bin/env node
// The JavaScript host's runner of the ABI conformance cases on Node (conformance/abi1.json; the format
// and how a runner works: conformance/README.md). It knows no case: the portable runner
// (conformance-core.js, which the browser page runs too) fills the placeholders, loads a fresh Host
// per case from the filled plan, does the steps and compares; here is what Node does its own way:
// the file read from disk, `files` written into a private folder per case (read back by the Node
// host's file: secrets), kv in a FileKvStore there, and the echo server on node:http.
//
//   node test/conformance.js --module plugins/conformance-rust/build/conformance-rust.wasm [--json] [--case ID]
//
// Exits 0 when every case passed, 1 when one failed, 2 on a usage or file error.

import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Host } from "../src/host.js";
import { FileKvStore } from "../src/kv-file.js";
import { nodeOptions } from "../src/node.js";
import * as core from "./conformance-core.js";

export { CasesInvalid, checkOutput, dataBytes, fill, mismatch, same } from "./conformance-core.js";

const HERE = dirname(fileURLToPath(import.meta.url));
export const CASES_FILE = resolve(HERE, "../../../conformance/abi1.json");

/** The case file, bounded and checked (conformance-core.js loadCases); its schema beside it. @param {string} path */
export async function loadCases(path = CASES_FILE) {
  const info = await stat(path);
  if (info.size > core.MAX_FILE_BYTES) throw new core.CasesInvalid(`${path}: larger than ${core.MAX_FILE_BYTES / 2 ** 20} MiB`);
  const doc = core.parseCasesText(await readFile(path, "utf8"), path);
  const schema = JSON.parse(await readFile(join(dirname(path), "cases.schema.json"), "utf8"));
  return core.loadCases(doc, schema, path);
}

/** The `${module}` value of a plug-in file: plan.json's module object. @param {string} path */
export async function moduleOf(path) {
  return core.moduleValue(new Uint8Array(await readFile(path)), resolve(path));
}

// ---- the echo server ---------------------------------------------------------------------------

/** A loopback server answering every request with what it received, and the list of those. */
export async function startEchoServer() {
  /** @type {any[]} */
  const seen = [];
  const server = createServer((req, res) => {
    /** @type {Buffer[]} */
    const pieces = [];
    req.on("data", (piece) => pieces.push(piece));
    req.on("end", () => {
      /** @type {Record<string, string>} */
      const headers = {};
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers[req.rawHeaders[i]] = req.rawHeaders[i + 1];
      const doc = { method: req.method, path: req.url, headers, body: Buffer.concat(pieces).toString("utf8") };
      seen.push(doc);
      const status = /^\/status\/(\d{3})/.exec(req.url ?? "");
      res.writeHead(status ? Number(status[1]) : 200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(doc));
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", () => ok(null)));
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${address.port}`,
    seen,
    close: () => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok(null)); }),
  };
}

// ---- running -----------------------------------------------------------------------------------

/**
 * Node's side of a case: the files written (mode 600) into a fresh private folder, the Node host's
 * options (modules and file: secrets read from disk), kv in that folder, all removed at the end.
 * @param {() => any[] | Promise<any[]>} echoSeen
 * @returns {core.Runner}
 */
export function nodeRunner(echoSeen) {
  return {
    echoSeen,
    openCase: async (files) => {
      const folder = await mkdtemp(join(tmpdir(), "cspm-js-conformance-"));
      /** @type {Record<string, string>} */
      const paths = {};
      try {
        for (const [name, content] of Object.entries(files)) {
          await writeFile(join(folder, name), content, { mode: 0o600 });
          paths[name] = join(folder, name);
        }
      } catch (err) {
        await rm(folder, { recursive: true, force: true });
        throw err;
      }
      return {
        files: paths,
        makeHost: (plan, observers) => Host.load(plan, { ...nodeOptions(), kv: new FileKvStore(join(folder, "kv")), ...observers }),
        close: () => rm(folder, { recursive: true, force: true }),
      };
    },
  };
}

/**
 * One case on a fresh Node host, in its own folder (files and kv).
 * @param {any} doc @param {string} caseId @param {Record<string, any>} values @param {() => any[]} echoSeen
 */
export async function runCase(doc, caseId, values, echoSeen) {
  return core.runCase(doc, caseId, values, nodeRunner(echoSeen));
}

/**
 * Every case (or the chosen ones) of the file for one plug-in.
 * @param {{module: string, cases?: string, only?: string[]}} options
 */
export async function runAll(options) {
  const doc = await loadCases(options.cases ?? CASES_FILE);
  const echo = await startEchoServer();
  try {
    const values = { module: await moduleOf(options.module), echo_url: echo.url };
    return await core.runAll(doc, values, nodeRunner(() => echo.seen), options.only ?? []);
  } finally {
    await echo.close();
  }
}

async function main() {
  const args = process.argv.slice(2);
  /** @type {{module?: string, cases?: string, only: string[], json: boolean}} */
  const options = { only: [], json: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--module") options.module = args[++i];
    else if (arg === "--cases") options.cases = args[++i];
    else if (arg === "--case") options.only.push(args[++i]);
    else if (arg === "--json") options.json = true;
    else {
      process.stderr.write(`unknown argument ${arg}\nusage: node test/conformance.js --module PLUGIN.wasm [--cases FILE] [--case ID]... [--json]\n`);
      process.exit(2);
    }
  }
  if (!options.module) {
    process.stderr.write("usage: node test/conformance.js --module PLUGIN.wasm [--cases FILE] [--case ID]... [--json]\n");
    process.exit(2);
  }
  let results;
  try {
    results = await runAll({ module: options.module, cases: options.cases, only: options.only });
  } catch (err) {
    process.stderr.write(`error: ${/** @type {Error} */ (err).message}\n`);
    process.exit(2);
  }
  const failed = results.filter((r) => !r.passed);
  if (options.json) {
    process.stdout.write(JSON.stringify({ module: resolve(options.module), passed: results.length - failed.length, failed: failed.length, results }) + "\n");
  } else {
    for (const r of results) process.stdout.write(r.passed ? `PASS ${r.case}\n` : `FAIL ${r.case}: ${r.reason}\n`);
    process.stdout.write(`${results.length - failed.length} passed, ${failed.length} failed\n`);
  }
  process.exitCode = failed.length ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
