// kv stores: scoping, bounds, quota, and the file store's atomic writes.
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FileKvStore, MAX_FILE_BYTES } from "../src/kv-file.js";
import { MemoryKvStore } from "../src/kv-memory.js";
import { KvKeyInvalid, KvTooLarge, QUOTA_KEYS, applySet } from "../src/kv.js";

/** @param {(dir: string) => Promise<void>} body */
async function inTemp(body) {
  const dir = await mkdtemp(join(tmpdir(), "cspm-js-kv-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const stores = {
  memory: async (/** @type {string} */ _dir) => new MemoryKvStore(),
  file: async (/** @type {string} */ dir) => new FileKvStore(join(dir, "kv")),
};

for (const [kind, make] of Object.entries(stores)) {
  test(`${kind} store: values by (app, component, session), null when absent`, () => inTemp(async (dir) => {
    const kv = await make(dir);
    const value = { n: [1, "two", null, true], s: "héllo 🦀" };
    await kv.set(["app", "c", "s1"], "k", value);
    assert.deepEqual(await kv.get(["app", "c", "s1"], "k"), value);
    assert.equal(await kv.get(["app", "c", "s2"], "k"), null);
    assert.equal(await kv.get(["app", "d", "s1"], "k"), null);
    assert.equal(await kv.get(["other", "c", "s1"], "k"), null);
    assert.equal(await kv.delete(["app", "c", "s1"], "k"), true);
    assert.equal(await kv.delete(["app", "c", "s1"], "k"), false);
    assert.equal(await kv.get(["app", "c", "s1"], "k"), null);
  }));

  test(`${kind} store: keys and values are bounded, and a refused write changes nothing`, () => inTemp(async (dir) => {
    const kv = await make(dir);
    await kv.set(["a", "c", "s"], "k", 1);
    await assert.rejects(kv.set(["a", "c", "s"], "k", "x".repeat(1024 * 1024)), KvTooLarge);
    await assert.rejects(kv.set(["a", "c", "s"], "k".repeat(513), 1), KvKeyInvalid);
    await assert.rejects(kv.set(["a", "c", "s"], "\ud800", 1), KvKeyInvalid);
    await assert.rejects(kv.get(["a", "c", "s"], ""), KvKeyInvalid);
    assert.equal(await kv.get(["a", "c", "s"], "k"), 1);
  }));
}

test("the quota counts every session of a plug-in together, and a write that does not grow is allowed", () => {
  /** @type {import("../src/kv.js").OwnerData} */
  const data = { sessions: { s0: {}, s1: {} } };
  for (let i = 0; i < QUOTA_KEYS - 1; i++) data.sessions[`s${i % 2}`][`k${i}`] = String(i);
  applySet(data, "s2", `k${QUOTA_KEYS - 1}`, 1);
  assert.throws(() => applySet(data, "another", "one-more", 1), /kv quota: this plug-in already holds 10000 keys/);
  applySet(data, "s0", "k0", 5); // replacing a key is not a new key
  const big = { sessions: {} };
  const mib = "x".repeat(1024 * 1024 - 2); // 1 MiB of JSON text: the largest value
  for (let i = 0; i < 63; i++) applySet(big, `s${i}`, "kk", mib); // 63 × (1 MiB + 2)
  assert.throws(() => applySet(big, "s63", "kk", mib), /would pass its quota of 64 MiB/);
  applySet(big, "s0", "kk", "small"); // shrinking is always allowed, and makes room
  applySet(big, "s63", "kk", mib);
});

test("file store: each write replaces the file whole (no temporary left), concurrent writes all land", () => inTemp(async (dir) => {
  const kv = new FileKvStore(join(dir, "kv"));
  await Promise.all(Array.from({ length: 40 }, (_, i) => kv.set(["a", "c", "s"], `k${i}`, { i })));
  for (let i = 0; i < 40; i++) assert.deepEqual(await kv.get(["a", "c", "s"], `k${i}`), { i });
  const files = await readdir(join(dir, "kv"));
  assert.equal(files.length, 1);
  assert.match(files[0], /^[0-9a-f]{64}\.json$/);
  JSON.parse(await readFile(join(dir, "kv", files[0]), "utf8"));
  // a temporary file a crash left behind is ignored, and another store on the folder sees every write
  await writeFile(join(dir, "kv", ".deadbeef.tmp"), "{torn");
  assert.deepEqual(await new FileKvStore(join(dir, "kv")).get(["a", "c", "s"], "k7"), { i: 7 });
}));

test("file store: a file larger than any store writes, or not a kv file, is refused as damaged", () => inTemp(async (dir) => {
  const kv = new FileKvStore(dir);
  const path = kv.path(["a", "c", "s"]);
  await writeFile(path, "");
  await truncate(path, MAX_FILE_BYTES + 1); // sparse: no disk used
  await assert.rejects(kv.get(["a", "c", "s"], "k"), /more than any store writes: it is damaged/);
  await writeFile(path, "[1]");
  await assert.rejects(kv.set(["a", "c", "s"], "k", 1), /not a kv file/);
}));
