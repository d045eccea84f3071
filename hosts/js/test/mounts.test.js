// Mounts on Node: Node's WASI has no read-only preopen, so a read-only mount is a private copy.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { mountFolder } from "../src/node.js";

/** @param {(dir: string) => Promise<void>} body */
async function inTemp(body) {
  const dir = await mkdtemp(join(tmpdir(), "cspm-js-mount-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("a read-only mount is a private, read-only copy: the granted folder never changes", () => inTemp(async (dir) => {
  const model = join(dir, "model");
  await mkdir(join(model, "sub"), { recursive: true });
  await writeFile(join(model, "model.gguf"), "weights");
  await writeFile(join(model, "sub", "vocab.txt"), "a b c");
  const copy = await mountFolder(model, false);
  assert.notEqual(copy, model);
  assert.equal(await readFile(join(copy, "model.gguf"), "utf8"), "weights");
  assert.equal(await readFile(join(copy, "sub", "vocab.txt"), "utf8"), "a b c");
  assert.equal((await stat(join(copy, "model.gguf"))).mode & 0o777, 0o444);
  assert.equal((await stat(copy)).mode & 0o777, 0o555);
  assert.equal(await mountFolder(model, false), copy); // one copy per folder and process
  if (process.getuid?.() === 0) {  // root ignores modes: what a plug-in writes lands in the copy only
    await writeFile(join(copy, "model.gguf"), "overwritten");
    assert.equal(await readFile(join(model, "model.gguf"), "utf8"), "weights");
  } else {
    await assert.rejects(writeFile(join(copy, "model.gguf"), "overwritten"), { code: "EACCES" });
  }
}));

test("a writable mount is the granted folder itself", () => inTemp(async (dir) => {
  assert.equal(await mountFolder(dir, true), dir);
}));

test("a link inside a mount is refused: it could lead out of it", () => inTemp(async (dir) => {
  const data = join(dir, "data");
  await mkdir(data);
  await symlink("/etc/passwd", join(data, "people.json"));
  await assert.rejects(mountFolder(data, false), /not a regular file or folder/);
}));

test("the copies are removed when the process exits", () => inTemp(async (dir) => {
  const data = join(dir, "data");
  await mkdir(join(data, "nested"), { recursive: true });
  await writeFile(join(data, "nested", "f"), "x");
  const node = fileURLToPath(new URL("../src/node.js", import.meta.url));
  const copy = execFileSync(process.execPath, ["--input-type=module", "-e",
    `import { mountFolder } from ${JSON.stringify(node)}; console.log(await mountFolder(${JSON.stringify(data)}, false));`],
  { encoding: "utf8" }).trim();
  assert.match(copy, /cspm-mount-/);
  assert.equal(existsSync(copy), false);
}));
