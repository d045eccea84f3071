// Small plans and modules for the host's own tests.

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Hand-made modules (tests/wat/*.wat compiled with wat2wasm): they need no SDK. */
export const WASM = {
  // loops forever in `call`
  spin: Buffer.from("AGFzbQEAAAABBQFgAAF/AwIBAAUDAQABBxECBm1lbW9yeQIABGNhbGwAAAoLAQkAA0AMAAtBAAs=", "base64"),
  // grows its memory 16 pages at a time until it cannot, then traps
  hog: Buffer.from("AGFzbQEAAAABBQFgAAF/AwIBAAUDAQABBxECBm1lbW9yeQIABGNhbGwAAAoRAQ8AA0BBEEAAQX9HDQALAAs=", "base64"),
  // imports extism:host/user.launch_missiles
  badimport: Buffer.from("AGFzbQEAAAABCgJgAX4BfmAAAX8CJAEQZXh0aXNtOmhvc3QvdXNlcg9sYXVuY2hfbWlzc2lsZXMAAAMCAQEFAwEAAQcRAgZtZW1vcnkCAARjYWxsAAEKCwEJAEIAEAAaQQAL", "base64"),
  // exports `run`, not `call`
  nocall: Buffer.from("AGFzbQEAAAABBQFgAAF/AwIBAAUDAQABBxACBm1lbW9yeQIAA3J1bgAACgYBBABBAAs=", "base64"),
};

/** The built Rust conformance plug-in, or null when it is not built. */
export function conformanceWasm(lang = "rust") {
  const path = resolve(ROOT, `plugins/conformance-${lang}/build/conformance-${lang}.wasm`);
  return existsSync(path) ? readFileSync(path) : null;
}

/** @param {Uint8Array} bytes */
export function moduleRef(bytes) {
  return { digest: `sha256:${createHash("sha256").update(bytes).digest("hex")}`, path: "/nonexistent/by-digest", size: bytes.length };
}

/**
 * A component of a plan.
 * @param {"llm"|"tool"|"agent"} kind @param {Uint8Array} bytes @param {Record<string, any>} [more]
 */
export function component(kind, bytes, more = {}) {
  const { grant = {}, calls = {}, ...rest } = more;
  return {
    kind, description: `a ${kind}`, where: `test: ${kind}`, package: null, features: [], module: moduleRef(bytes),
    grant: { hosts: [], mounts: [], kv: false, wasi: null, memory_pages: 256, timeout_ms: 60000, ...grant },
    config: { kind }, secrets: [], calls: { llms: [], tools: [], agents: [], ...calls }, input_schema: null, ...rest,
  };
}

/** @param {Record<string, any>} components @param {string} entry */
export function plan(components, entry) {
  return {
    plan_version: 1, abi: 1, app: { name: "test", source: "test", origin: null }, entry, kv_scope: "test", components,
  };
}

/** Module bytes by digest, for Host.load's `modules` option. @param {Uint8Array[]} all */
export function modulesOf(...all) {
  const byDigest = new Map(all.map((b) => [moduleRef(b).digest, b]));
  return async (/** @type {any} */ c) => {
    const bytes = byDigest.get(c.module.digest);
    if (!bytes) throw new Error(`no module ${c.module.digest}`);
    return new Uint8Array(bytes);
  };
}
