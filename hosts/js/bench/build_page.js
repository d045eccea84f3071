// Builds the page's script as web/build.js does (same entry, same esbuild options) into a file of the
// caller's choosing, so bench/hosts_bench.py measures the browser host of the current sources rather
// than whatever dist/ was last built from, and never rewrites dist/ (which tests and `cspm web` read).
//
//   node hosts/js/bench/build_page.js OUT.js

import { build } from "esbuild";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [out] = process.argv.slice(2);
if (!out || process.argv.length !== 3) {
  console.error("usage: build_page.js OUT.js");
  process.exit(2);
}
await build({
  absWorkingDir: root,
  entryPoints: ["web/main.js"],
  outfile: resolve(out),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  keepNames: true,
  legalComments: "eof",
  external: ["node:*"],
  logLevel: "warning",
});
