// Chainsocket SDK for AssemblyScript plug-ins, built on @extism/as-pdk.
//
//   kernel  – input/output, error, config, vars, logs (word-wise memory copies)
//   json    – the Json value type, parser and serializer
//   types   – typed ABI messages (LlmInput, ToolOutput, …), Result and HostError
//   host    – the Chainsocket host functions: callLlm, callTool, callAgent, httpFetch,
//             kvGet, kvSet, emit*, and the raw hostCall
//   plugin  – handleJson/handleTool/handleLlm/handleAgent for a plug-in's `call`
//
// Build plug-ins with `--use abort=~lib/@chainsocket/as-sdk/assembly/kernel/abortHandler`.

export * from "./kernel";
export * from "./json";
export * from "./types";
export * from "./host";
export * from "./plugin";
