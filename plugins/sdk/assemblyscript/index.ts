// Package entry for asc, which resolves `import … from "@chainsocket/as-sdk"` to this file.
export * from "./assembly/index";
