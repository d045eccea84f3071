// A kv store in a folder, for Node: one JSON file per plug-in of one app (its name: the sha256 of
// [kv scope, component]), replaced whole by an atomic write (a temporary file in the same folder, then
// rename), so a crash leaves the old or the new file, never a torn one. The quota bounds each file;
// a file larger than the quota allows is refused as damaged rather than read. Several hosts in one
// process share the per-owner lock; separate processes writing the same owner are not serialized
// (the Python host's SQLite store is the one for that).

import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { OwnerLocks, QUOTA_BYTES, QUOTA_KEYS, applySet, checkKey, decodeValue } from "./kv.js";

/** Bytes a file may take: the quota, plus JSON quoting of every key and value (at worst 6× for \u escapes). */
export const MAX_FILE_BYTES = 6 * QUOTA_BYTES + 64 * QUOTA_KEYS + 1024;
const LOCKS = new OwnerLocks();

export class FileKvStore {
  /** @param {string} dir created when missing */
  constructor(dir) {
    this.dir = dir;
  }

  /** @param {import("./kv.js").Scope} scope */
  path(scope) {
    const name = createHash("sha256").update(JSON.stringify([scope[0], scope[1]])).digest("hex");
    return join(this.dir, `${name}.json`);
  }

  /** @param {string} path @returns {Promise<import("./kv.js").OwnerData>} */
  async load(path) {
    let size;
    try {
      size = (await stat(path)).size;
    } catch (err) {
      if (/** @type {any} */ (err).code === "ENOENT") return { sessions: {} };
      throw err;
    }
    if (size > MAX_FILE_BYTES) throw new Error(`kv file ${path} is ${size} bytes, more than any store writes: it is damaged`);
    const data = JSON.parse(await readFile(path, "utf8"));
    if (typeof data !== "object" || data === null || typeof data.sessions !== "object" || data.sessions === null) {
      throw new Error(`kv file ${path} is not a kv file: it is damaged`);
    }
    return data;
  }

  /** @param {string} path @param {import("./kv.js").OwnerData} data */
  async save(path, data) {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const temp = join(this.dir, `.${randomBytes(8).toString("hex")}.tmp`);
    const handle = await open(temp, "wx", 0o600);
    try {
      await handle.writeFile(JSON.stringify(data));
      await handle.sync();
    } catch (err) {
      await handle.close();
      await rm(temp, { force: true });
      throw err;
    }
    await handle.close();
    try {
      await rename(temp, path);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** @param {import("./kv.js").Scope} scope @param {string} key */
  async get(scope, key) {
    checkKey(key);
    const path = this.path(scope);
    return LOCKS.run(path, async () => {
      const entries = (await this.load(path)).sessions[scope[2]];
      return entries && Object.hasOwn(entries, key) ? decodeValue(entries[key], key) : null;
    });
  }

  /** @param {import("./kv.js").Scope} scope @param {string} key @param {any} value */
  async set(scope, key, value) {
    checkKey(key);
    const path = this.path(scope);
    await LOCKS.run(path, async () => {
      const data = await this.load(path);
      applySet(data, scope[2], key, value);
      await this.save(path, data);
    });
  }

  /** @param {import("./kv.js").Scope} scope @param {string} key */
  async delete(scope, key) {
    checkKey(key);
    const path = this.path(scope);
    return LOCKS.run(path, async () => {
      const data = await this.load(path);
      const entries = data.sessions[scope[2]];
      if (!entries || !Object.hasOwn(entries, key)) return false;
      delete entries[key];
      await this.save(path, data);
      return true;
    });
  }

  async close() {}
}
