#!/usr/bin/env node
// Runs a bundle (`cspm bundle APP --out DIR`) on Node, with nothing of Python: what a server or an
// edge function embedding the host does, as one command.
//
//   node hosts/js/bin/run.js BUNDLE --input TEXT [--entry NAME] [--session ID] [--kv-dir DIR] [--json] [-v]
//
// Every module and mount file is checked against bundle.json before anything is instantiated.
// Exit codes as cspm's: 0 answered, 1 the run failed, 2 usage or a bundle that does not verify.

import { resolve } from "node:path";
import { parseArgs } from "node:util";

// Node's WASI is marked experimental; its warning on every run is noise to someone running an app.
// (The host is imported below, after this: Extism imports node:wasi, which warns as it loads.)
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  if (warning.name !== "ExperimentalWarning") process.stderr.write(`${warning.name}: ${warning.message}\n`);
});

const USAGE = "usage: run.js BUNDLE --input TEXT [--entry NAME] [--session ID] [--kv-dir DIR] [--json] [-v]";

/** @param {string} message @param {number} code @returns {never} */
function fail(message, code) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

async function main() {
  const { BundleInvalid, loadBundle } = await import("../src/bundle.js");
  const { Host, HostLoadError } = await import("../src/host.js");
  const { mountFolder, nodeOptions } = await import("../src/node.js");
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        input: { type: "string" }, entry: { type: "string" }, session: { type: "string" },
        "kv-dir": { type: "string" }, json: { type: "boolean" }, verbose: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    fail(`${/** @type {Error} */ (err).message}\n${USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (positionals.length !== 1 || values.input === undefined) fail(USAGE, 2);
  const dir = resolve(positionals[0]);
  const json = Boolean(values.json);

  let bundle;
  try {
    bundle = await loadBundle(dir);
    // A mount is a real folder for Node's WASI: every file of it is checked before the folder is handed over.
    for (const component of Object.values(bundle.plan.components)) {
      for (const mount of component.grant.mounts) {
        for (const file of bundle.mountFiles(mount.host)) await bundle.readFile(file);
      }
    }
  } catch (err) {
    if (err instanceof BundleInvalid) fail(err.message, 2);
    throw err;
  }
  const loaded = bundle;

  let streamed = false; // a flag, not the text: a long stream must not grow the host
  let host;
  try {
    host = await Host.load(loaded.plan, {
      ...nodeOptions({ kvDir: values["kv-dir"] }),
      modules: (component) => loaded.readFile(component.module.path),
      mountPath: (mount) => mountFolder(resolve(dir, mount.host), mount.writable),
      onChunk: json ? undefined : (_component, text) => { streamed = true; process.stdout.write(text); },
      onLog: values.verbose ? (component, level, message) => { process.stderr.write(`${component} ${level}: ${message}\n`); } : undefined,
      ...(values.session ? { session: values.session } : {}),
    });
  } catch (err) {
    if (err instanceof HostLoadError) fail(err.message, 2);
    throw err;
  }
  try {
    const entry = values.entry ?? loaded.plan.entry;
    const result = await host.run(values.input, { entry });
    if (json) {
      process.stdout.write(`${JSON.stringify({ output: result.output, finish_reason: result.finishReason,
        session: result.session, entry, response: result.response }, null, 2)}\n`);
    } else if (streamed) {  // the answer is on the screen; an error's message is not what streamed
      process.stdout.write(result.finishReason === "error" ? `\n${result.output}\n` : "\n");
    } else {
      process.stdout.write(`${result.output}\n`);
    }
    if (!json && !["final_answer", "stop"].includes(result.finishReason)) {
      process.stderr.write(`finish_reason: ${result.finishReason}\n`);
    }
    process.exitCode = result.finishReason === "error" ? 1 : 0;
  } catch (err) {
    fail(/** @type {Error} */ (err).message, 1);
  } finally {
    await host.close();
  }
}

main().catch((err) => fail(err instanceof Error ? err.stack ?? err.message : String(err), 1));
