// loadBundle against bundles that `cspm bundle` makes (skipped when cspm is not on PATH): from a folder
// and over HTTP (the browser's path: fetch), every file verified when read, and each kind of tampering
// refused: a changed, missing or linked file, a path out of the folder, an unknown version.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer } from "node:http";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { loadBundle, BundleInvalid } from "../src/bundle.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const HELLO = path.join(ROOT, "examples", "hello-conformance.yaml");
const haveCspm = spawnSync("cspm", ["--version"], { encoding: "utf8" }).status === 0;
const skip = haveCspm ? false : "cspm is not on PATH";

/** @type {string} */
let work;
/** @type {Record<string, string>} */
let env;

before(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), "bundle-js-"));
  // cspm's caches and approvals in the temp folder: the test leaves the user's alone
  env = { ...process.env, CSPM_CACHE_DIR: path.join(work, "cache"), CSPM_DATA_DIR: path.join(work, "data"),
          CSPM_CONFIG_DIR: path.join(work, "config") };
});

after(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

/**
 * `cspm bundle APP --out DIR` into a new folder under the temp dir; returns the folder.
 * @param {string} app
 * @param {string[]} [extra]
 */
function bundle(app, extra = []) {
  const out = path.join(work, `b${Math.random().toString(16).slice(2)}`);
  const run = spawnSync("cspm", ["bundle", app, "--out", out, "--json", ...extra], { encoding: "utf8", env, timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr + run.stdout);
  return out;
}

/** @param {string} folder */
async function manifest(folder) {
  return JSON.parse(await fs.readFile(path.join(folder, "bundle.json"), "utf8"));
}

/** @param {string} folder @param {any} data */
async function writeManifest(folder, data) {
  await fs.writeFile(path.join(folder, "bundle.json"), JSON.stringify(data));
}

test("a bundle loads and every module reads back verified", { skip }, async () => {
  const dir = bundle(HELLO);
  const b = await loadBundle(dir);
  assert.equal(b.plan.entry, "echo_agent");
  assert.deepEqual(Object.keys(b.plan.components).sort(), ["echo_agent", "echo_llm", "echo_tool"]);
  for (const c of Object.values(b.plan.components)) {
    assert.match(c.module.path, /^blobs\/[0-9a-f]{64}$/);
    const bytes = await b.readFile(c.module.path);
    assert.equal(bytes.byteLength, c.module.size);
    assert.deepEqual(Array.from(bytes.subarray(0, 4)), [0, 0x61, 0x73, 0x6d]); // \0asm
  }
  assert.equal(b.plan.app.source, "hello-conformance.yaml");
  const again = await loadBundle(pathToFileURL(dir)); // a file: URL is the same folder
  assert.deepEqual(again.files, b.files);
});

test("a changed, missing or linked file is refused when read", { skip }, async () => {
  const dir = bundle(HELLO);
  const b = await loadBundle(dir);
  const [first, second, third] = Object.keys(b.files).sort();
  const bytes = await fs.readFile(path.join(dir, first));
  bytes[bytes.length - 1] ^= 1; // same size, one bit changed
  await fs.writeFile(path.join(dir, first), bytes);
  await assert.rejects(b.readFile(first), (err) => err instanceof BundleInvalid && /sha256:.*changed/.test(err.message));
  await fs.appendFile(path.join(dir, second), "x");
  await assert.rejects(b.readFile(second), BundleInvalid);
  await fs.rm(path.join(dir, third));
  await assert.rejects(b.readFile(third), /missing/);
  await fs.symlink(path.join(ROOT, "README.md"), path.join(dir, third));
  await assert.rejects(b.readFile(third), /symbolic link/);
  await assert.rejects(b.readFile("bundle.json"), /not a file of the bundle/);
  await assert.rejects(b.readFile("blobs/../bundle.json"), /not a file of the bundle/);
});

test("a linked folder inside the bundle is refused", { skip }, async () => {
  const dir = bundle(HELLO);
  const b = await loadBundle(dir);
  const outside = path.join(work, "outside-blobs");
  await fs.rename(path.join(dir, "blobs"), outside);
  await fs.symlink(outside, path.join(dir, "blobs"));
  await assert.rejects(b.readFile(Object.keys(b.files)[0]), /not a folder of the bundle/);
});

test("a manifest that escapes, lies or is from the future is refused", { skip }, async () => {
  const dir = bundle(HELLO);
  const good = await manifest(dir);
  const rel = Object.keys(good.files)[0];
  /** @type {[string, (m: any) => void, RegExp][]} */
  const cases = [
    ["version", (m) => { m.bundle_version = 2; }, /bundle_version 2/],
    ["no version", (m) => { delete m.bundle_version; }, /no bundle_version/],
    ["dot-dot", (m) => { m.files[`blobs/../../${rel}`] = m.files[rel]; }, /leaves the bundle/],
    ["absolute", (m) => { m.files[`/etc/${rel}`] = m.files[rel]; }, /leaves the bundle/],
    ["other layout", (m) => { m.files["other/x"] = m.files[rel]; }, /not blobs/],
    ["misnamed", (m) => { m.files[rel] = { sha256: "0".repeat(64), size: m.files[rel].size }; }, /not the digest/],
    ["module path out", (m) => { Object.values(m.plan.components)[0].module.path = "/etc/passwd"; }, /leaves the bundle/],
    ["invalid plan", (m) => { m.plan.entry = "ghost"; }, /plan: entry/],
    ["file secret", (m) => {
      Object.values(m.plan.components)[0].secrets.push({ name: "k", source: "file:/etc/shadow", header: "Authorization",
                                                         format: "Bearer {}", hosts: null, query: null });
    }, /env: only/],
  ];
  for (const [name, change, expect] of cases) {
    const data = structuredClone(good);
    change(data);
    await writeManifest(dir, data);
    await assert.rejects(loadBundle(dir), (err) => err instanceof BundleInvalid && expect.test(err.message), name);
  }
  await writeManifest(dir, good);
  await loadBundle(dir);
  await fs.writeFile(path.join(dir, "bundle.json"), "[".repeat(100));
  await assert.rejects(loadBundle(dir), /not a bundle manifest/);
});

test("over HTTP (a browser's fetch), with the self-ask demo's model and data mounts", { skip }, async () => {
  const dir = bundle("chainsocket/self-ask-demo", ["--allow-capabilities"]);
  const server = createServer(async (req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname).replace(/^\/bundle\//, "");
    try {
      const body = await fs.readFile(path.join(dir, path.normalize(rel)));
      res.writeHead(200, { "content-length": body.byteLength }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  try {
    const address = /** @type {import("node:net").AddressInfo} */ (server.address());
    const b = await loadBundle(`http://127.0.0.1:${address.port}/bundle`);
    const mounts = Object.values(b.plan.components).flatMap((c) => c.grant.mounts);
    assert.deepEqual(mounts.map((m) => m.guest).sort(), ["/data/people", "/models/selfask"]);
    for (const mount of mounts) {
      const [file] = b.mountFiles(mount.host);
      assert.equal(b.mountFiles(mount.host).length, 1);
      const bytes = await b.readFile(file);
      assert.equal(bytes.byteLength, b.files[file].size);
    }
    const model = b.mountFiles(mounts.find((m) => m.guest === "/models/selfask")?.host ?? "")[0];
    assert.equal(new TextDecoder().decode((await b.readFile(model)).subarray(0, 4)), "GGUF");
    const blob = Object.keys(b.files).find((f) => f.startsWith("blobs/")) ?? "";
    await fs.appendFile(path.join(dir, blob), "tampered");
    await assert.rejects(b.readFile(blob), BundleInvalid);
    await assert.rejects(b.readFile("mounts/x"), /not a file of the bundle/);
  } finally {
    server.close();
  }
});
