// Builds the static files of `cspm web` into dist/: chainsocket-web.js (web/main.js with the host, the
// bundle loader and their dependencies, one ESM file for browsers), index.html and style.css. cspm web
// copies them beside the app's bundle. The same sources and esbuild version give the same bytes.
//
//   npm run build:web        (from hosts/js)

import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await build({
  absWorkingDir: root, // paths in the output's comments are relative to it, never this machine's
  entryPoints: ["web/main.js"],
  outfile: "dist/chainsocket-web.js",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  keepNames: true, // error classes keep their names in messages
  legalComments: "eof", // the licences of the bundled packages (extism, ajv…) stay with their code
  external: ["node:*"], // bundle.js reads folders in Node only, behind a dynamic import never reached here
  logLevel: "warning",
});
for (const name of ["index.html", "style.css"]) await copyFile(join(root, "web", name), join(dist, name));
