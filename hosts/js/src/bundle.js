// A bundle (docs/formats.md "Bundle", made by `cspm bundle APP --out DIR`): bundle.json (the plan with
// paths relative to the folder, and the sha256 and size of every other file), blobs/<sha256 hex> (the
// modules) and mounts/<sha256 hex>/<file> (model and data packages). Read from a folder (Node) or a URL
// (a browser: fetch). bundle.json is the root of trust; every other file is checked against it, with
// SubtleCrypto, each time it is read: a host never compiles or mounts bytes it has not verified.

import { parseBounded, JsonRejected } from "./json.js";
import { loadPlan, PlanInvalid } from "./plan.js";

/** @typedef {import("./plan.js").Plan} Plan */
/** @typedef {{sha256: string, size: number}} FileEntry */
/**
 * @typedef {{
 *   plan: Plan,
 *   files: Readonly<Record<string, FileEntry>>,
 *   readFile: (relPath: string) => Promise<Uint8Array>,
 *   mountFiles: (host: string) => string[],
 * }} Bundle
 * `plan` keeps the bundle's relative paths (`module.path` = `blobs/<hex>`, a mount's `host` =
 * `mounts/<hex>`); `readFile` returns a file's bytes once they match bundle.json; `mountFiles` lists the
 * files of a mount (relative paths, to pass to readFile).
 */
/** @typedef {{read: (relPath: string, maxBytes: number) => Promise<Uint8Array>, where: (relPath: string) => string}} Reader */

export const BUNDLE_VERSION = 1;
export const MANIFEST = "bundle.json";
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
export const MAX_FILES = 4096;
export const MAX_MODULE_BYTES = 64 * 1024 * 1024; // as cspm/formats/plan.py
export const MAX_MOUNT_FILE_BYTES = 16 * 1024 * 1024 * 1024; // one model's weights (cspm/bundle.py)

const HEX = "[0-9a-f]{64}";
const LAYOUT = new RegExp(`^(blobs/${HEX}|mounts/${HEX}/[A-Za-z0-9_][A-Za-z0-9._-]{0,254})$`);

/** A bundle that does not verify: a bad manifest, a path out of the folder, a missing or changed file. */
export class BundleInvalid extends Error {}

/**
 * Open a bundle: read and check bundle.json (its version, every path relative and inside, the plan
 * valid and naming only the bundle's own files). Files are verified when read.
 * @param {string | URL} base a folder path (Node), or the bundle's URL (`http(s):`, `file:`)
 * @returns {Promise<Bundle>}
 */
export async function loadBundle(base) {
  const reader = await readerFor(base);
  let data;
  try {
    data = parseBounded(await reader.read(MANIFEST, MAX_MANIFEST_BYTES), { maxBytes: MAX_MANIFEST_BYTES });
  } catch (err) {
    if (err instanceof JsonRejected) throw new BundleInvalid(`${reader.where(MANIFEST)}: not a bundle manifest: ${err.message}`);
    throw err;
  }
  const where = reader.where(MANIFEST);
  if (typeof data !== "object" || data === null || Array.isArray(data) || !Object.hasOwn(data, "bundle_version")) {
    throw new BundleInvalid(`${where}: not a bundle manifest (no bundle_version)`);
  }
  if (data.bundle_version !== BUNDLE_VERSION) {
    throw new BundleInvalid(`${where}: bundle_version ${JSON.stringify(data.bundle_version)} is not one this host knows (${BUNDLE_VERSION})`);
  }
  const keys = Object.keys(data).sort().join(",");
  if (keys !== "bundle_version,files,plan") throw new BundleInvalid(`${where}: a bundle manifest has exactly bundle_version, plan and files`);
  const files = checkFiles(data.files, where);
  let plan;
  try {
    plan = loadPlan(data.plan);
  } catch (err) {
    if (err instanceof PlanInvalid) throw new BundleInvalid(`${where}: plan: ${err.message}`);
    throw err;
  }
  checkPlanPaths(plan, files, where);

  /** @param {string} relPath */
  async function readFile(relPath) {
    if (typeof relPath !== "string" || !Object.hasOwn(files, relPath)) {
      throw new BundleInvalid(`${JSON.stringify(relPath)} is not a file of the bundle (${where})`);
    }
    const entry = files[relPath];
    const bytes = await reader.read(relPath, entry.size);
    if (bytes.byteLength !== entry.size) {
      throw new BundleInvalid(`${reader.where(relPath)} is not ${entry.size} bytes as ${MANIFEST} says: it was changed`);
    }
    if (await sha256Hex(bytes) !== entry.sha256) {
      throw new BundleInvalid(`${reader.where(relPath)} is not sha256:${entry.sha256} as ${MANIFEST} says: it was changed`);
    }
    return bytes;
  }

  /** @param {string} host */
  function mountFiles(host) {
    return Object.keys(files).filter((rel) => rel.startsWith(`${host}/`)).sort();
  }

  return { plan, files: Object.freeze(files), readFile, mountFiles };
}

/**
 * The `files` table: relative paths of the bundle's layout, each `{sha256, size}` within bounds and
 * named by its own digest.
 * @param {unknown} files
 * @param {string} where
 * @returns {Record<string, FileEntry>}
 */
function checkFiles(files, where) {
  if (typeof files !== "object" || files === null || Array.isArray(files)) throw new BundleInvalid(`${where}: files: not an object`);
  const names = Object.keys(files);
  if (names.length > MAX_FILES) throw new BundleInvalid(`${where}: files: more than ${MAX_FILES} entries`);
  /** @type {Record<string, FileEntry>} */
  const out = Object.create(null);
  for (const rel of names) {
    checkRelative(rel, where);
    if (!LAYOUT.test(rel)) throw new BundleInvalid(`${where}: files: ${JSON.stringify(rel)} is not blobs/<sha256 hex> or mounts/<sha256 hex>/<file>`);
    const entry = /** @type {Record<string, unknown>} */ (files)[rel];
    const max = rel.startsWith("blobs/") ? MAX_MODULE_BYTES : MAX_MOUNT_FILE_BYTES;
    if (typeof entry !== "object" || entry === null || Object.keys(entry).sort().join(",") !== "sha256,size"
        || typeof (/** @type {any} */ (entry)).sha256 !== "string" || !new RegExp(`^${HEX}$`).test(/** @type {any} */ (entry).sha256)
        || !Number.isSafeInteger(/** @type {any} */ (entry).size) || /** @type {any} */ (entry).size < 0 || /** @type {any} */ (entry).size > max) {
      throw new BundleInvalid(`${where}: files: ${rel}: must be {"sha256": <hex>, "size": <bytes>} within the bounds`);
    }
    const { sha256, size } = /** @type {FileEntry} */ (entry);
    if (sha256 !== rel.split("/")[1]) throw new BundleInvalid(`${where}: files: ${rel}: its sha256 is not the digest it is named by`);
    out[rel] = Object.freeze({ sha256, size });
  }
  return out;
}

/**
 * A path inside the bundle: relative, no `..`, `.` or empty segment, no backslash.
 * @param {string} rel
 * @param {string} where
 */
function checkRelative(rel, where) {
  if (rel.startsWith("/") || rel.includes("\\") || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(rel)
      || rel.split("/").some((s) => s === ".." || s === "." || s === "")) {
    throw new BundleInvalid(`${where}: ${JSON.stringify(rel)} leaves the bundle folder`);
  }
}

/**
 * Every module and mount the plan names is the bundle's own: `blobs/<its digest>` listed with its
 * size, `mounts/<its digest>` read-only with files; secrets come from the environment only.
 * @param {Plan} plan
 * @param {Record<string, FileEntry>} files
 * @param {string} where
 */
function checkPlanPaths(plan, files, where) {
  for (const [name, c] of Object.entries(plan.components)) {
    checkRelative(c.module.path, where);
    const rel = `blobs/${c.module.digest.slice("sha256:".length)}`;
    if (c.module.path !== rel || !Object.hasOwn(files, rel) || files[rel].size !== c.module.size) {
      throw new BundleInvalid(`${where}: plan: components/${name}/module: its path must be ${rel}, a file of the bundle of size ${c.module.size}`);
    }
    c.grant.mounts.forEach((mount, index) => {
      checkRelative(mount.host, where);
      const host = mount.digest === null ? null : `mounts/${mount.digest.slice("sha256:".length)}`;
      if (host === null || mount.host !== host || mount.writable || !Object.keys(files).some((f) => f.startsWith(`${host}/`))) {
        throw new BundleInvalid(`${where}: plan: components/${name}/grant/mounts/${index}: a bundle mounts only its own packages, read-only, at mounts/<digest hex>`);
      }
    });
    for (const secret of c.secrets) {
      if (!secret.source.startsWith("env:")) {
        throw new BundleInvalid(`${where}: plan: components/${name}/secrets: a bundle reads secrets from env: only`);
      }
    }
  }
}

/** @param {Uint8Array} bytes */
async function sha256Hex(bytes) {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", /** @type {BufferSource} */ (bytes)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * How the bundle's files are read: fetch for http(s) URLs, the file system for a path or a file: URL.
 * @param {string | URL} base
 * @returns {Promise<Reader>}
 */
async function readerFor(base) {
  const text = String(base);
  if (base instanceof URL || /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text)) {
    const url = new URL(text.endsWith("/") ? text : `${text}/`);
    if (url.protocol === "file:") {
      const { fileURLToPath } = await import("node:url");
      return fileReader(fileURLToPath(url));
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new BundleInvalid(`${text}: not a folder, file: or http(s): URL`);
    return fetchReader(url);
  }
  return fileReader(text);
}

/**
 * Node: files under a folder, opened without following a symbolic link anywhere below it.
 * @param {string} folder
 * @returns {Promise<Reader>}
 */
async function fileReader(folder) {
  const fs = await import("node:fs/promises");
  const { constants } = await import("node:fs");
  const path = await import("node:path");
  const root = await fs.realpath(folder).catch(() => path.resolve(folder)); // the folder named; nothing inside may be a link
  const where = (/** @type {string} */ rel) => path.join(root, rel);
  return {
    where,
    async read(rel, maxBytes) {
      const parts = rel.split("/");
      for (let i = 1; i < parts.length; i++) { // each folder between the root and the file
        const info = await fs.lstat(path.join(root, ...parts.slice(0, i))).catch(() => null);
        if (info === null) throw new BundleInvalid(`${where(rel)} is missing`);
        if (!info.isDirectory()) throw new BundleInvalid(`${path.join(root, ...parts.slice(0, i))} is not a folder of the bundle (a symbolic link?)`);
      }
      let handle;
      try {
        handle = await fs.open(where(rel), constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
      } catch (err) {
        const code = /** @type {NodeJS.ErrnoException} */ (err).code;
        if (code === "ELOOP") throw new BundleInvalid(`${where(rel)} is a symbolic link; a bundle holds only its own files`);
        if (code === "ENOENT") throw new BundleInvalid(`${where(rel)} is missing`);
        throw err;
      }
      try {
        const info = await handle.stat();
        if (!info.isFile()) throw new BundleInvalid(`${where(rel)} is not a regular file`);
        if (info.size > maxBytes) throw new BundleInvalid(`${where(rel)} is larger than ${maxBytes} bytes`);
        const bytes = new Uint8Array(info.size);
        let filled = 0;
        while (filled < bytes.byteLength) {
          const { bytesRead } = await handle.read(bytes, filled, bytes.byteLength - filled, filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return filled === bytes.byteLength ? bytes : bytes.subarray(0, filled);
      } finally {
        await handle.close();
      }
    },
  };
}

/**
 * A browser (or Node with a URL): files fetched under the bundle's URL, read with a size bound, and
 * refused when a redirect took them outside it.
 * @param {URL} base
 * @returns {Reader}
 */
function fetchReader(base) {
  const where = (/** @type {string} */ rel) => new URL(rel, base).href;
  return {
    where,
    async read(rel, maxBytes) {
      const url = where(rel);
      const response = await fetch(url);
      if (response.url && !response.url.startsWith(base.href)) {
        throw new BundleInvalid(`${url} was redirected outside the bundle, to ${response.url}`);
      }
      if (!response.ok) throw new BundleInvalid(`${url}: HTTP ${response.status}${response.status === 404 ? " (missing)" : ""}`);
      const length = Number(response.headers.get("content-length") ?? "NaN");
      if (length > maxBytes) throw new BundleInvalid(`${url} is larger than ${maxBytes} bytes`);
      if (!response.body) return new Uint8Array(await response.arrayBuffer());
      /** @type {Uint8Array[]} */
      const chunks = [];
      let total = 0;
      const stream = response.body.getReader();
      for (;;) {
        const { done, value } = await stream.read();
        if (done) break;
        total += value.byteLength;
        if (total > maxBytes) {
          await stream.cancel();
          throw new BundleInvalid(`${url} is larger than ${maxBytes} bytes`);
        }
        chunks.push(value);
      }
      const bytes = new Uint8Array(total);
      let offset = 0;
      for (const chunk of chunks) {
        bytes.set(chunk, offset);
        offset += chunk.byteLength;
      }
      return bytes;
    },
  };
}
