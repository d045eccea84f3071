// Bundles a test page (PAGE-page.js with the host and its packages) into one ESM file for browsers,
// beside a copy of PAGE.html, in OUT_DIR (a temporary folder the Python test makes). A page needs a
// bundle: the host imports packages by bare name, and ajv is CommonJS.
//
//   node test/browser/build-page.js PAGE OUT_DIR          (from hosts/js; PAGE: conformance | abi0)
//
// Used by tests/integration/test_js_browser_conformance.py and test_js_browser_abi0.py.

import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const PAGES = ["conformance", "abi0"];
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const [page, out] = process.argv.slice(2);
if (!PAGES.includes(page) || !out) {
  process.stderr.write(`usage: node test/browser/build-page.js ${PAGES.join("|")} OUT_DIR\n`);
  process.exit(2);
}
await mkdir(resolve(out), { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: [`test/browser/${page}-page.js`],
  outfile: join(resolve(out), `${page}-page.js`),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  keepNames: true, // error classes keep their names in the reasons of failed cases
  sourcemap: "inline",
  logLevel: "warning",
});
await copyFile(join(here, `${page}.html`), join(resolve(out), `${page}.html`));
