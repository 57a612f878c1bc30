#!/usr/bin/env node
// The `colony` command. Registers the TypeScript loader (workers load .ts task modules), then
// hands over to the CLI.
import { Worker } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

// A worker's heartbeat thread starts now, so its start-up overlaps the loading of the runtime
// below; runtime/worker-main.ts takes it over.
if (process.argv[2] === 'worker') {
  const hb = new Worker(new URL('../process/heartbeat-thread.mjs', import.meta.url), { execArgv: [] });
  hb.unref(); // a worker that fails to start must still exit
  globalThis[Symbol.for('colony.heartbeatThread')] = hb;
}
register();
const { main } = await import('./cli.ts');
await main(process.argv.slice(2));
