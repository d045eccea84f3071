// A kv store in memory: for browsers without IndexedDB, tests, and one-shot runs. Same bounds as every store.

import { applySet, checkKey, decodeValue } from "./kv.js";

export class MemoryKvStore {
  constructor() {
    /** @type {Map<string, import("./kv.js").OwnerData>} */
    this.owners = new Map();
  }

  /** @param {import("./kv.js").Scope} scope */
  owner(scope) {
    const name = JSON.stringify([scope[0], scope[1]]);
    let data = this.owners.get(name);
    if (!data) {
      data = { sessions: {} };
      this.owners.set(name, data);
    }
    return data;
  }

  /** @param {import("./kv.js").Scope} scope @param {string} key */
  async get(scope, key) {
    checkKey(key);
    const entries = this.owner(scope).sessions[scope[2]];
    return entries && Object.hasOwn(entries, key) ? decodeValue(entries[key], key) : null;
  }

  /** @param {import("./kv.js").Scope} scope @param {string} key @param {any} value */
  async set(scope, key, value) {
    const data = this.owner(scope);
    const copy = { sessions: { ...data.sessions, [scope[2]]: { ...(data.sessions[scope[2]] ?? {}) } } };
    applySet(copy, scope[2], key, value);
    data.sessions = copy.sessions;
  }

  /** @param {import("./kv.js").Scope} scope @param {string} key */
  async delete(scope, key) {
    checkKey(key);
    const entries = this.owner(scope).sessions[scope[2]];
    if (!entries || !Object.hasOwn(entries, key)) return false;
    delete entries[key];
    return true;
  }

  async close() {}
}
