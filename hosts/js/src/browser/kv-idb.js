// A kv store on IndexedDB, for the browser host: the scoping and bounds of every store (src/kv.js,
// as src/kv-memory.js), kept across page loads. One database per origin holds every app's memory:
//
//   entries  [kv scope, component, session, key] -> {text, size}   size: key + value bytes, as counted
//   usage    [kv scope, component]               -> {keys, bytes}  the owner's totals, over all sessions
//
// A write is one readwrite transaction over both stores: it reads the owner's totals and the old
// value, checks the quota, and writes the value and the new totals together. IndexedDB runs readwrite
// transactions on overlapping stores one after the other (in every tab of the origin) and commits
// each whole or not at all, so two writers cannot both pass the quota and a refused or interrupted
// write changes nothing.

import { checkKey, checkQuota, decodeValue, encodeValue } from "../kv.js";

export const DB_NAME = "chainsocket-kv";
const DB_VERSION = 1;
const ENTRIES = "entries";
const USAGE = "usage";

/** @typedef {import("../kv.js").Scope} Scope */
/** @typedef {{text: string, size: number}} Entry */
/** @typedef {{keys: number, bytes: number}} Usage */

/** The store cannot be used (no IndexedDB, a blocked upgrade, storage refused). */
export class KvUnavailable extends Error {}

/**
 * A request's result as a promise.
 * @template T
 * @param {IDBRequest<T>} request
 * @returns {Promise<T>}
 */
function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * The transaction's end: resolves once committed, rejects when aborted (an error, a quota of the browser).
 * @param {IDBTransaction} tx
 * @returns {Promise<void>}
 */
function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new KvUnavailable("the kv transaction was aborted"));
    tx.onerror = () => {}; // onabort follows and says why
  });
}

/** @param {Scope} scope */
function checkScope(scope) {
  if (!Array.isArray(scope) || scope.length !== 3 || !scope.every((part) => typeof part === "string")) {
    throw new TypeError("a kv scope is [kv scope, component, session], three strings");
  }
}

export class IdbKvStore {
  /**
   * @param {{name?: string, indexedDB?: IDBFactory}} [options] the database name (one per origin by
   *   default) and the IndexedDB factory (globalThis.indexedDB)
   */
  constructor(options = {}) {
    this.name = options.name ?? DB_NAME;
    this.factory = options.indexedDB ?? globalThis.indexedDB;
    /** @type {Promise<IDBDatabase> | null} */
    this.opening = null;
  }

  /** The database, opened (and created) at the first use. @returns {Promise<IDBDatabase>} */
  db() {
    if (this.opening === null) {
      this.opening = this.#open();
      this.opening.catch(() => { this.opening = null; }); // the next use tries again
    }
    return this.opening;
  }

  /** @returns {Promise<IDBDatabase>} */
  #open() {
    return new Promise((resolve, reject) => {
      if (!this.factory) {
        reject(new KvUnavailable("this browser has no IndexedDB"));
        return;
      }
      let request;
      try {
        request = this.factory.open(this.name, DB_VERSION);
      } catch (err) {
        reject(new KvUnavailable(`IndexedDB cannot be opened: ${/** @type {Error} */ (err).message}`));
        return;
      }
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains(ENTRIES)) db.createObjectStore(ENTRIES);
        if (!db.objectStoreNames.contains(USAGE)) db.createObjectStore(USAGE);
      };
      request.onblocked = () => reject(new KvUnavailable("IndexedDB is held at an older version by another tab: close it and reload"));
      request.onerror = () => reject(new KvUnavailable(`IndexedDB cannot be opened: ${request.error?.message ?? "refused"}`));
      request.onsuccess = () => {
        const db = request.result;
        db.onversionchange = () => { db.close(); this.opening = null; }; // let a newer page upgrade it
        resolve(db);
      };
    });
  }

  /** @param {Scope} scope @param {string} key */
  async get(scope, key) {
    checkScope(scope);
    checkKey(key);
    const tx = (await this.db()).transaction(ENTRIES, "readonly");
    const entry = /** @type {Entry | undefined} */ (await done(tx.objectStore(ENTRIES).get([...scope, key])));
    if (entry === undefined) return null;
    if (typeof entry?.text !== "string") throw new KvUnavailable(`the stored value of key ${JSON.stringify(key.slice(0, 40))} is damaged`);
    return decodeValue(entry.text, key);
  }

  /** @param {Scope} scope @param {string} key @param {any} value */
  async set(scope, key, value) {
    checkScope(scope);
    const keySize = checkKey(key);
    const { text, size } = encodeValue(value); // refused here, before any transaction
    const tx = (await this.db()).transaction([ENTRIES, USAGE], "readwrite");
    const end = committed(tx);
    const entries = tx.objectStore(ENTRIES);
    const usageStore = tx.objectStore(USAGE);
    const owner = [scope[0], scope[1]];
    const entryKey = [...scope, key];
    try {
      const [old, found] = await Promise.all([
        /** @type {Promise<Entry | undefined>} */ (done(entries.get(entryKey))),
        /** @type {Promise<Usage | undefined>} */ (done(usageStore.get(owner))),
      ]);
      const usage = found ?? { keys: 0, bytes: 0 };
      const oldSize = old === undefined ? 0 : old.size;
      const newSize = keySize + size;
      const grow = newSize - oldSize;
      if (old === undefined || grow > 0) checkQuota(usage.keys, usage.bytes, old === undefined, grow);
      entries.put(/** @type {Entry} */ ({ text, size: newSize }), entryKey);
      usageStore.put(/** @type {Usage} */ ({ keys: usage.keys + (old === undefined ? 1 : 0), bytes: usage.bytes + grow }), owner);
    } catch (err) {
      try { tx.abort(); } catch { /* already ended */ }
      await end.catch(() => {});
      throw err;
    }
    await end;
  }

  /** @param {Scope} scope @param {string} key @returns {Promise<boolean>} */
  async delete(scope, key) {
    checkScope(scope);
    checkKey(key);
    const tx = (await this.db()).transaction([ENTRIES, USAGE], "readwrite");
    const end = committed(tx);
    const entries = tx.objectStore(ENTRIES);
    const usageStore = tx.objectStore(USAGE);
    const owner = [scope[0], scope[1]];
    const entryKey = [...scope, key];
    const [old, usage] = await Promise.all([
      /** @type {Promise<Entry | undefined>} */ (done(entries.get(entryKey))),
      /** @type {Promise<Usage | undefined>} */ (done(usageStore.get(owner))),
    ]);
    if (old !== undefined) {
      entries.delete(entryKey);
      const left = { keys: Math.max(0, (usage?.keys ?? 1) - 1), bytes: Math.max(0, (usage?.bytes ?? old.size) - old.size) };
      usageStore.put(left, owner);
    }
    await end;
    return old !== undefined;
  }

  /** What one plug-in of one app holds over all its sessions (for a page that shows it). @param {string} kvScope @param {string} component */
  async usage(kvScope, component) {
    const tx = (await this.db()).transaction(USAGE, "readonly");
    const found = /** @type {Usage | undefined} */ (await done(tx.objectStore(USAGE).get([kvScope, component])));
    return found ?? { keys: 0, bytes: 0 };
  }

  async close() {
    const opening = this.opening;
    this.opening = null;
    if (opening) (await opening.catch(() => null))?.close();
  }
}
