#!/usr/bin/env node
// containerd's runtime io.containerd.edgebox.v2 finds this on its PATH. Like
// bin/edgebox.js: TypeScript sources by default, the compiled build with
// EDGEBOX_COMPILED=1.
const entry =
  process.env.EDGEBOX_COMPILED === '1' ? '../dist/runtime/shim/main.js' : '../runtime/shim/main.ts';
const { main } = await import(entry);
process.exitCode = await main(process.argv);
