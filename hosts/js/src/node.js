// What a Node host reads from its machine: modules from the plan's paths, secrets from env: and file:
// sources (as cspm/runtime/secrets.py), a kv file store, and mounts as real folders.

import { chmodSync, constants, readdirSync, rmSync } from "node:fs";
import { chmod, copyFile, lstat, mkdir, mkdtemp, open, readdir } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { FileKvStore } from "./kv-file.js";
import { MAX_MODULE_BYTES, MAX_SECRET_CHARS } from "./host.js";
import { workerEngine } from "./worker-host.js";

/**
 * At most `limit` bytes of a regular file; an error for anything else (a FIFO, a device, a folder, a larger file).
 * O_NONBLOCK so a FIFO cannot hang the open; /dev/zero and /proc files cannot stream without end.
 * @param {string} path @param {number} limit
 */
export async function readBounded(path, limit) {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`${path} is not a regular file`);
    const buffer = new Uint8Array(limit + 1);
    let size = 0;
    while (size <= limit) {
      const { bytesRead } = await handle.read(buffer, size, limit + 1 - size, null);
      if (!bytesRead) break;
      size += bytesRead;
    }
    if (size > limit) throw new Error(`${path} is larger than ${limit} bytes`);
    return buffer.slice(0, size);
  } finally {
    await handle.close();
  }
}

/** The bytes of a plan component's module, read from its `module.path`. @param {import("./plan.js").Component} component */
export async function readModule(component) {
  return readBounded(component.module.path, MAX_MODULE_BYTES);
}

/**
 * A secret's value from `env:NAME` or `file:PATH` (trailing whitespace stripped, at most 16 KiB of
 * UTF-8); null for an unset variable. @param {string} source
 * @returns {Promise<string | null>}
 */
export async function readSecret(source) {
  const colon = source.indexOf(":");
  const kind = source.slice(0, colon);
  const ref = source.slice(colon + 1);
  if (kind === "env") return process.env[ref] ?? null;
  if (kind !== "file") throw new Error(`unknown secret source ${JSON.stringify(source.slice(0, 40))}`);
  const path = ref.startsWith("~/") ? resolve(homedir(), ref.slice(2)) : isAbsolute(ref) ? ref : resolve(ref);
  let bytes;
  try {
    bytes = await readBounded(path, MAX_SECRET_CHARS);
  } catch (err) {
    throw new Error(`cannot read ${path}: ${/** @type {Error} */ (err).message}`);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes).trim();
  } catch {
    throw new Error(`${path} is not UTF-8 text`);
  }
}

/**
 * The options a Node host needs, on this machine: modules from the plan's paths, secrets from the
 * environment and files, mounts at their host folders, kv in `kvDir` (a FileKvStore; in memory
 * when omitted), and every plug-in in one worker (src/worker-host.js; an `instantiate` of yours
 * overrides that). Spread into Host.load's options, overriding what you need.
 * @param {{kvDir?: string}} [options]
 * @returns {import("./host.js").HostOptions}
 */
export function nodeOptions(options = {}) {
  return {
    modules: readModule,
    secrets: readSecret,
    mountPath: (mount) => mountFolder(mount.host, mount.writable),
    engine: workerEngine, // every instance in one worker: a routed call stays in that thread
    ...(options.kvDir ? { kv: new FileKvStore(options.kvDir) } : {}),
  };
}

const MAX_MOUNT_DEPTH = 8;
/** @type {string[]} private copies made by this process, removed when it exits */
const copies = [];
/** @type {Map<string, Promise<string>>} one copy per folder and process */
const copied = new Map();

/**
 * The folder to give WASI for a mount. Node's WASI has no read-only preopen, so a read-only mount
 * (a model, a data package) is given as a private copy (reflinked where the file system can): a
 * plug-in that writes there changes only its copy, never the store or the bundle. A writable mount
 * is the folder itself, as granted.
 * @param {string} folder @param {boolean} writable
 * @returns {Promise<string>}
 */
export function mountFolder(folder, writable) {
  if (writable) return Promise.resolve(folder);
  let copy = copied.get(folder);
  if (!copy) {
    copy = privateCopy(folder);
    copied.set(folder, copy);
  }
  return copy;
}

/** @param {string} folder */
async function privateCopy(folder) {
  const target = await mkdtemp(join(tmpdir(), "cspm-mount-"));
  if (copies.length === 0) process.once("exit", removeCopies);
  copies.push(target);
  await copyTree(folder, target, 0);
  return target;
}

/** Regular files and folders only (a link is refused: it could lead out of the mount). @param {string} from @param {string} to @param {number} depth */
async function copyTree(from, to, depth) {
  if (depth > MAX_MOUNT_DEPTH) throw new Error(`${from}: folders nested more than ${MAX_MOUNT_DEPTH} deep`);
  for (const entry of await readdir(from)) {
    const source = join(from, entry);
    const info = await lstat(source);
    const target = join(to, entry);
    if (info.isDirectory()) {
      await mkdir(target);
      await copyTree(source, target, depth + 1);
      await chmod(target, 0o555);
    } else if (info.isFile()) {
      await copyFile(source, target, constants.COPYFILE_FICLONE);
      await chmod(target, 0o444);
    } else {
      throw new Error(`${source} is not a regular file or folder`);
    }
  }
  await chmod(to, 0o555);
}

function removeCopies() {
  for (const copy of copies) {
    try {
      chmodTree(copy);
      rmSync(copy, { recursive: true, force: true });
    } catch { /* a temporary folder left behind is not worth failing an exit for */ }
  }
}

/** Make a copy's folders writable again so it can be removed. @param {string} folder */
function chmodTree(folder) {
  chmodSync(folder, 0o755);
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (entry.isDirectory()) chmodTree(join(folder, entry.name));
  }
}
