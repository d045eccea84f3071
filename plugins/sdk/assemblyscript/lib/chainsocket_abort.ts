// Keeps the SDK's abort handler in every program, whatever the plug-in's own files import.
//
// Build with both options:
//   --lib node_modules/@chainsocket/as-sdk/lib
//   --use abort=~lib/@chainsocket/as-sdk/assembly/kernel/abortHandler
// `--use abort=…` names an element that must be part of the program: when no file of the plug-in
// imports the SDK, asc fails with "AS111: Element '…/abortHandler' not found". asc always parses
// the files of a `--lib` folder, and this one imports the SDK's kernel (at the same path as a
// plug-in's own import, so nothing is compiled twice). It exports nothing: asc makes the exports
// of `--lib` files globals. It adds no code: asc compiles only what is used.
import "@chainsocket/as-sdk/assembly/kernel";
