// The schema copies the host checks against are cspm's own, byte for byte.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";
import { ROOT } from "./helpers.js";

for (const [copy, source] of [["schemas/plan.json", "cspm/schemas/plan.json"], ["schemas/abi/v1.json", "cspm/schemas/abi/v1.json"]]) {
  test(`${copy} equals ${source}`, { skip: !existsSync(resolve(ROOT, source)) && `${source} is not here` }, () => {
    const mine = readFileSync(resolve(ROOT, "hosts/js", copy));
    const theirs = readFileSync(resolve(ROOT, source));
    assert.ok(mine.equals(theirs), `${copy} differs from ${source}: copy it again (cp ../../${source} ${copy})`);
  });
}
