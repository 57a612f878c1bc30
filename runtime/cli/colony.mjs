#!/usr/bin/env node
// The `colony` command. Installed, it runs the compiled CLI on plain Node; in this repository it
// runs the sources through the TypeScript loader (runtime/cli/load-cli.mjs decides).
import { Worker } from 'node:worker_threads';
import { loadCli } from './load-cli.mjs';

// A worker's heartbeat thread starts now, so its start-up overlaps the loading of the runtime
// below; runtime/process/register-worker.ts takes it over.
if (process.argv[2] === 'worker') {
  const hb = new Worker(new URL('../process/heartbeat-thread.mjs', import.meta.url), { execArgv: [] });
  hb.unref(); // a worker that fails to start must still exit
  globalThis[Symbol.for('colony.heartbeatThread')] = hb;
}
const { main } = await loadCli();
await main(process.argv.slice(2));
