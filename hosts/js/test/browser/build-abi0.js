// Bundles the ABI 0 page (abi0-page.js with the host and its
// packages) into one ESM file for browsers, beside a copy of abi0.html, in OUT_DIR (a
// temporary folder: tests/integration/test_js_browser_abi0.py makes it). The page needs a
// bundle: the host imports packages by bare name, and ajv is CommonJS.
//
//   node test/browser/build-abi0.js OUT_DIR          (from hosts/js)

import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const out = process.argv[2];
if (!out) {
  process.stderr.write("usage: node test/browser/build-abi0.js OUT_DIR\n");
  process.exit(2);
}
await mkdir(resolve(out), { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: ["test/browser/abi0-page.js"],
  outfile: join(resolve(out), "abi0-page.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  keepNames: true, // error classes keep their names in the reasons of failed cases
  sourcemap: "inline",
  logLevel: "warning",
});
await copyFile(join(here, "abi0.html"), join(resolve(out), "abi0.html"));
