#!/usr/bin/env node
// Runs one request on a run plan with the Node host (a test tool; bin/run.js runs bundles):
//   node test/run-plan.js PLAN.json --input TEXT [--entry NAME] [--kv DIR]
// prints {"output", "finish_reason", "chunks", "logs"} as JSON; exit 1 when the request fails.
import { readFile } from "node:fs/promises";
import { Host } from "../src/host.js";
import { nodeOptions } from "../src/node.js";

const args = process.argv.slice(2);
const option = (/** @type {string} */ name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const input = option("--input");
if (!args[0] || input === undefined) {
  process.stderr.write("usage: node test/run-plan.js PLAN.json --input TEXT [--entry NAME] [--kv DIR]\n");
  process.exit(2);
}
const plan = JSON.parse(await readFile(args[0], "utf8"));
/** @type {string[]} */
const chunks = [];
/** @type {string[]} */
const logs = [];
const host = await Host.load(plan, {
  ...nodeOptions({ kvDir: option("--kv") }),
  onChunk: (_component, text) => chunks.push(text),
  onLog: (component, level, message) => logs.push(`${component} ${level}: ${message}`),
});
try {
  const result = await host.run(input, { entry: option("--entry") });
  process.stdout.write(JSON.stringify({ output: result.output, finish_reason: result.finishReason, chunks, logs }) + "\n");
} catch (err) {
  process.stderr.write(`${/** @type {Error} */ (err).message}\n`);
  process.exitCode = 1;
} finally {
  await host.close();
}
