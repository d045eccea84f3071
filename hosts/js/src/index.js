// @chainsocket/host: the portable host (no Node module imported). Node callers add src/node.js.
export { Host, HostLoadError, PluginFailed, HOST_FUNCTIONS, MAX_DEPTH, errorDocument, extismInstantiate, sha256Hex } from "./host.js";
export { loadPlan, PlanInvalid } from "./plan.js";
export { MemoryKvStore } from "./kv-memory.js";
export { KvKeyInvalid, KvTooLarge, MAX_KEY_CHARS, MAX_VALUE_BYTES, QUOTA_BYTES, QUOTA_KEYS } from "./kv.js";
export { parseBounded, JsonRejected } from "./json.js";
export { matchGrant, parseEntry } from "./grants.js";
